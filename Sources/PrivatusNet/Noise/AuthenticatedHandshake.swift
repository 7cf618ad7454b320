import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto

/// The Privatus transport handshake: Noise XX (``NoiseHandshake``) whose payloads bind each
/// side's Noise static key to its Ed25519 identity, so the handshake ends with the peer's
/// authenticated ``PeerID`` (docs/PROTOCOL.md, "Transport handshake (Noise XX)").
///
/// - Prologue: `"privatus/1" ‖ count u8 ‖ the supported protocol versions, one byte each`. Both
///   sides must pass the same list, or the initiator fails to read message 2 with
///   ``NoiseError/decryptionFailed``: a version list altered on the way (a downgrade) breaks the
///   handshake.
/// - Message 1 (initiator): empty payload; the responder refuses any other.
/// - Message 2 (responder) and message 3 (initiator): a ``HandshakePayload`` — the identity key
///   and its `noise-static` signature over the sender's Noise static key.
/// - The initiator always knows whom it dials: after message 2 it checks the responder's PeerID
///   against the expected one and, on a mismatch, throws ``NoiseError/unexpectedPeer`` without
///   producing message 3, so it never reveals its own identity to the wrong node.
///
/// Drive it with ``start()`` (initiator) and ``receive(_:)``, performing the returned
/// ``Action``. A step that throws leaves the handshake as it was; the caller abandons it (closes
/// the connection). No I/O, no clock.
public struct AuthenticatedHandshake: ~Copyable, Sendable {
    /// The protocol versions this build speaks.
    public static let supportedVersions: [UInt8] = [1]
    /// The ASCII label that starts the prologue.
    public static let prologueLabel = "privatus/1"

    /// What the caller does next.
    public enum Action: ~Copyable, Sendable {
        /// Send this handshake message and wait for the peer's next one.
        case send(Data)
        /// Send this last handshake message; the session is established (initiator).
        case sendAndFinish(Data, Outcome)
        /// The session is established (responder, after message 3).
        case finish(Outcome)
    }

    /// An established, authenticated session.
    public struct Outcome: ~Copyable, Sendable {
        /// The transport cipher states.
        public var transport: NoiseTransport
        /// The peer's PeerID: SHA-256 of ``remoteIdentity``.
        public let remotePeer: PeerID
        /// The peer's Ed25519 identity key, which signed ``remoteStaticKey``.
        public let remoteIdentity: IdentityPublicKey
        /// The peer's Noise static key, as used in this handshake.
        public let remoteStaticKey: Curve25519.KeyAgreement.PublicKey
        /// The Noise handshake hash, the same on both sides.
        public let handshakeHash: Data
    }

    private var state: NoiseHandshakeState
    private var finished = false
    private let localPayload: Data
    private let expectedPeer: PeerID?
    private let rekeyInterval: UInt64

    /// The initiator's side of a handshake with the node expected to be `expectedPeer`.
    /// - Parameters:
    ///   - identity: this node's identity, which signs its Noise static key.
    ///   - noiseStatic: this node's Noise static key.
    ///   - expectedPeer: the PeerID being dialled; any other responder is refused before message 3.
    ///   - versions: the supported protocol versions (1 to 255 of them), in the prologue.
    ///   - rekeyInterval: messages per direction between two rekeys of the transport.
    public init(
        initiator identity: IdentityKey,
        noiseStatic: Curve25519.KeyAgreement.PrivateKey,
        expectedPeer: PeerID,
        versions: [UInt8] = supportedVersions,
        rekeyInterval: UInt64 = NoiseTransport.defaultRekeyInterval
    ) {
        self.init(
            role: .initiator, identity: identity, noiseStatic: noiseStatic, expectedPeer: expectedPeer,
            versions: versions, rekeyInterval: rekeyInterval
        )
    }

    /// The responder's side: it accepts any identity that proves itself; the caller decides what
    /// to do with the authenticated ``Outcome/remotePeer``.
    /// - Parameters:
    ///   - identity: this node's identity, which signs its Noise static key.
    ///   - noiseStatic: this node's Noise static key.
    ///   - versions: the supported protocol versions (1 to 255 of them), in the prologue.
    ///   - rekeyInterval: messages per direction between two rekeys of the transport.
    public init(
        responder identity: IdentityKey,
        noiseStatic: Curve25519.KeyAgreement.PrivateKey,
        versions: [UInt8] = supportedVersions,
        rekeyInterval: UInt64 = NoiseTransport.defaultRekeyInterval
    ) {
        self.init(
            role: .responder, identity: identity, noiseStatic: noiseStatic, expectedPeer: nil,
            versions: versions, rekeyInterval: rekeyInterval
        )
    }

    private init(
        role: NoiseHandshake.Role,
        identity: IdentityKey,
        noiseStatic: Curve25519.KeyAgreement.PrivateKey,
        expectedPeer: PeerID?,
        versions: [UInt8],
        rekeyInterval: UInt64
    ) {
        precondition(rekeyInterval > 0, "the rekey interval is at least one message")
        state = NoiseHandshakeState(
            role: role, prologue: Self.prologue(versions: versions), staticKey: noiseStatic, ephemeralKey: nil)
        localPayload = HandshakePayload(identity: identity, noiseStatic: noiseStatic.publicKey).encoded
        self.expectedPeer = expectedPeer
        self.rekeyInterval = rekeyInterval
    }

    /// The prologue for a list of supported versions: `"privatus/1" ‖ count u8 ‖ versions`.
    public static func prologue(versions: [UInt8]) -> Data {
        precondition((1...255).contains(versions.count), "between 1 and 255 supported versions")
        var prologue = Data(prologueLabel.utf8)
        prologue.append(UInt8(versions.count))
        prologue.append(contentsOf: versions)
        return prologue
    }

    /// The initiator's message 1 (its payload is empty).
    /// - Throws: ``NoiseError/outOfTurn`` for a responder or a second call.
    public mutating func start() throws(NoiseError) -> Data {
        guard !finished, state.role == .initiator else { throw .outOfTurn }
        var next = state
        let message = try next.writeMessage(payload: Data())
        state = next
        return message
    }

    /// Reads the peer's next handshake message and says what to do next.
    /// - Throws: any ``NoiseError``: ``NoiseError/outOfTurn`` when no message is expected;
    ///   ``NoiseError/messageTooLarge``, ``NoiseError/malformedMessage``,
    ///   ``NoiseError/decryptionFailed``, ``NoiseError/invalidPublicKey`` from Noise;
    ///   ``NoiseError/malformedPayload``, ``NoiseError/unsupportedPayloadVersion``,
    ///   ``NoiseError/invalidSignature`` for the payload; ``NoiseError/unexpectedPeer`` (initiator,
    ///   message 2: no message 3 is produced). The handshake does not advance on any error.
    public mutating func receive(_ message: some DataProtocol) throws(NoiseError) -> Action {
        guard !finished, !state.isComplete, !state.isMyTurn else { throw .outOfTurn }
        var next = state
        let payload = try next.readMessage(message)
        switch (state.role, next.messageIndex) {
        case (.responder, 1):
            // Message 1 is in clear and unauthenticated: it carries nothing.
            guard payload.isEmpty else { throw .malformedPayload }
            let reply = try next.writeMessage(payload: localPayload)
            state = next
            return .send(reply)
        case (.initiator, 2):
            let (identity, staticKey) = try Self.authenticate(payload, state: next)
            guard identity.peerID == expectedPeer else { throw .unexpectedPeer }
            let reply = try next.writeMessage(payload: localPayload)
            let outcome = finish(next, identity: identity, staticKey: staticKey)
            return .sendAndFinish(reply, outcome)
        case (.responder, 3):
            let (identity, staticKey) = try Self.authenticate(payload, state: next)
            return .finish(finish(next, identity: identity, staticKey: staticKey))
        default:
            preconditionFailure("XX has three messages, alternating from the initiator")
        }
    }

    /// Marks the handshake finished and splits it into the outcome.
    private mutating func finish(
        _ completed: NoiseHandshakeState, identity: IdentityPublicKey, staticKey: Curve25519.KeyAgreement.PublicKey
    ) -> Outcome {
        state = completed
        finished = true
        let (send, receive) = completed.split()
        return Outcome(
            transport: NoiseTransport(send: send, receive: receive, rekeyInterval: rekeyInterval),
            remotePeer: identity.peerID,
            remoteIdentity: identity,
            remoteStaticKey: staticKey,
            handshakeHash: completed.symmetric.hash
        )
    }

    /// Parses the peer's payload and checks its binding of the static key this handshake used.
    private static func authenticate(
        _ payload: Data, state: NoiseHandshakeState
    ) throws(NoiseError) -> (IdentityPublicKey, Curve25519.KeyAgreement.PublicKey) {
        guard let staticKey = state.remoteStatic else { preconditionFailure("XX reads the static key before") }
        let decoded = try HandshakePayload(decoding: payload)
        try decoded.verify(staticKey: staticKey)
        return (decoded.identityKey, staticKey)
    }
}
