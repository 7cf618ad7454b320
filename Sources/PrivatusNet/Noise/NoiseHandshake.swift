import Crypto
import Foundation

/// A `Noise_XX_25519_AESGCM_SHA256` handshake (Noise Protocol Framework, revision 34) as a pure
/// state machine: the caller moves the bytes, this type only computes.
///
/// The initiator writes message 1, reads message 2, writes message 3; the responder does the
/// opposite. When ``isComplete`` is true, ``split(rekeyInterval:)`` gives the
/// ``NoiseTransport`` for this side.
///
/// A step that throws leaves the handshake exactly as it was before the call (the state does not
/// advance on failure); a caller that gives up simply drops the value. The type is not copyable,
/// so the keys it derives can reach one ``NoiseTransport`` only: two copies of one cipher state
/// would encrypt two messages under the same AES-GCM nonce.
///
/// The handshake payloads are opaque here; ``AuthenticatedHandshake`` gives them their Privatus
/// meaning.
public struct NoiseHandshake: ~Copyable, Sendable {
    /// Which side of the handshake this is.
    public enum Role: Hashable, Sendable {
        /// The side that dials and writes the first message.
        case initiator
        /// The side that accepts and writes the second message.
        case responder
    }

    /// The Noise protocol name, which seeds the handshake hash.
    public static let protocolName = NoiseHandshakeState.protocolName
    /// The largest Noise message, handshake or transport (§3).
    public static let maximumMessageLength = NoiseHandshakeState.maximumMessageLength

    private var state: NoiseHandshakeState
    private var didSplit = false

    /// Starts a handshake; each ephemeral key is generated fresh when its message is written.
    /// - Parameters:
    ///   - role: initiator or responder.
    ///   - prologue: data both sides must agree on; any difference makes the handshake fail.
    ///   - staticKey: this node's Noise static key.
    public init(role: Role, prologue: some DataProtocol, staticKey: Curve25519.KeyAgreement.PrivateKey) {
        self.init(role: role, prologue: prologue, staticKey: staticKey, ephemeralKey: nil)
    }

    /// Starts a handshake with a fixed ephemeral key — for published test vectors only. Production
    /// code uses ``init(role:prologue:staticKey:)``, which generates a fresh ephemeral key per
    /// handshake; reusing an ephemeral key across handshakes destroys their forward secrecy.
    init(
        role: Role,
        prologue: some DataProtocol,
        staticKey: Curve25519.KeyAgreement.PrivateKey,
        ephemeralKey: Curve25519.KeyAgreement.PrivateKey?
    ) {
        state = NoiseHandshakeState(role: role, prologue: prologue, staticKey: staticKey, ephemeralKey: ephemeralKey)
    }

    /// This side's role.
    public var role: Role { state.role }

    /// Whether the next step is this side's ``writeMessage(payload:)``.
    public var isMyTurn: Bool { state.isMyTurn }

    /// Whether all three messages have been exchanged.
    public var isComplete: Bool { state.isComplete }

    /// The handshake hash `h`; final once ``isComplete`` is true. Both sides hold the same value,
    /// so it identifies this session (channel binding).
    public var handshakeHash: Data { state.symmetric.hash }

    /// The remote static key once the handshake has read it (message 2 for the initiator, message 3
    /// for the responder). It is authenticated only in the Noise sense — the remote side holds its
    /// private half — not as anyone's identity.
    public var remoteStaticKey: Curve25519.KeyAgreement.PublicKey? { state.remoteStatic }

    /// Writes the next handshake message carrying `payload`.
    ///
    /// The payload is in clear in message 1 and encrypted in messages 2 and 3.
    /// - Throws: ``NoiseError/outOfTurn`` when it is not this side's turn;
    ///   ``NoiseError/messageTooLarge`` when the message would exceed 65,535 bytes.
    public mutating func writeMessage(payload: some DataProtocol = Data()) throws(NoiseError) -> Data {
        var next = state
        let message = try next.writeMessage(payload: payload)
        state = next
        return message
    }

    /// Reads the peer's next handshake message and returns its payload.
    /// - Throws: ``NoiseError/outOfTurn``; ``NoiseError/messageTooLarge`` (checked before anything
    ///   else); ``NoiseError/malformedMessage`` when it is too short;
    ///   ``NoiseError/decryptionFailed`` when it was altered or the prologues differ;
    ///   ``NoiseError/invalidPublicKey`` for a low-order key. The handshake does not advance.
    public mutating func readMessage(_ message: some DataProtocol) throws(NoiseError) -> Data {
        var next = state
        let payload = try next.readMessage(message)
        state = next
        return payload
    }

    /// `Split()`: the transport cipher states for this side, once the handshake is complete. It
    /// succeeds once per handshake.
    /// - Parameter rekeyInterval: each direction rekeys after this many messages (default 2^20).
    /// - Throws: ``NoiseError/outOfTurn`` before the handshake is complete or after a first split.
    public mutating func split(
        rekeyInterval: UInt64 = NoiseTransport.defaultRekeyInterval
    ) throws(NoiseError) -> NoiseTransport {
        guard state.isComplete, !didSplit else { throw .outOfTurn }
        didSplit = true
        let (send, receive) = state.split()
        return NoiseTransport(send: send, receive: receive, rekeyInterval: rekeyInterval)
    }
}
