import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import Testing

@testable import PrivatusNet

/// A node's long-term keys for handshake tests.
struct TestNode: Sendable {
    let identity = IdentityKey()
    let noiseStatic = Curve25519.KeyAgreement.PrivateKey()
    var peerID: PeerID { identity.publicKey.peerID }

    func initiator(
        expecting peer: PeerID, versions: [UInt8] = AuthenticatedHandshake.supportedVersions,
        rekeyInterval: UInt64 = NoiseTransport.defaultRekeyInterval
    ) -> AuthenticatedHandshake {
        AuthenticatedHandshake(
            initiator: identity, noiseStatic: noiseStatic, expectedPeer: peer, versions: versions,
            rekeyInterval: rekeyInterval)
    }

    func responder(versions: [UInt8] = AuthenticatedHandshake.supportedVersions) -> AuthenticatedHandshake {
        AuthenticatedHandshake(responder: identity, noiseStatic: noiseStatic, versions: versions)
    }

    /// A raw Noise handshake with the Privatus prologue, for playing a peer that misbehaves.
    func rawNoise(_ role: NoiseHandshake.Role, versions: [UInt8] = [1]) -> NoiseHandshake {
        NoiseHandshake(
            role: role, prologue: AuthenticatedHandshake.prologue(versions: versions), staticKey: noiseStatic)
    }

    /// This node's genuine handshake payload.
    var payload: Data { HandshakePayload(identity: identity, noiseStatic: noiseStatic.publicKey).encoded }
}

/// An action that was not the one a test expected.
struct UnexpectedAction: Error {}

/// The message of a `.send` action.
func sentMessage(_ action: consuming AuthenticatedHandshake.Action) throws -> Data {
    switch consume action {
    case .send(let message): return message
    default: throw UnexpectedAction()
    }
}

/// The initiator's last handshake message and its outcome.
struct LastMessage: ~Copyable {
    let message: Data
    var outcome: AuthenticatedHandshake.Outcome
}

/// The message and outcome of a `.sendAndFinish` action.
func lastMessage(_ action: consuming AuthenticatedHandshake.Action) throws -> LastMessage {
    switch consume action {
    case .sendAndFinish(let message, let outcome): return LastMessage(message: message, outcome: outcome)
    default: throw UnexpectedAction()
    }
}

/// The outcome of a `.finish` action.
func finished(_ action: consuming AuthenticatedHandshake.Action) throws -> AuthenticatedHandshake.Outcome {
    switch consume action {
    case .finish(let outcome): return outcome
    default: throw UnexpectedAction()
    }
}

/// Both ends of an established session.
struct TransportPair: ~Copyable {
    var initiator: NoiseTransport
    var responder: NoiseTransport
}

/// A plain Noise XX handshake between two fresh static keys, split into transports.
func noiseTransports(
    initiatorInterval: UInt64 = NoiseTransport.defaultRekeyInterval,
    responderInterval: UInt64 = NoiseTransport.defaultRekeyInterval
) throws -> TransportPair {
    var initiator = NoiseHandshake(role: .initiator, prologue: Data("test".utf8), staticKey: .init())
    var responder = NoiseHandshake(role: .responder, prologue: Data("test".utf8), staticKey: .init())
    _ = try responder.readMessage(try initiator.writeMessage())
    _ = try initiator.readMessage(try responder.writeMessage())
    _ = try responder.readMessage(try initiator.writeMessage())
    return TransportPair(
        initiator: try initiator.split(rekeyInterval: initiatorInterval),
        responder: try responder.split(rekeyInterval: responderInterval)
    )
}

/// `message` with the bits of byte `index` inverted.
func flipping(_ message: Data, at index: Int) -> Data {
    var copy = Data(message)
    copy[copy.startIndex + index] ^= 0xff
    return copy
}

/// The raw bytes of a cipher state's key.
func keyBytes(_ cipher: NoiseCipherState) -> [UInt8] {
    cipher.key?.withUnsafeBytes { Array($0) } ?? []
}
