/// Why a Noise handshake or transport operation was refused. No case carries key material,
/// plaintext or a peer's identity.
///
/// Every failed handshake operation leaves the handshake as it was before the call (see
/// ``NoiseHandshake`` and ``AuthenticatedHandshake``); Privatus abandons a handshake, and closes its
/// connection, on any of these errors.
public enum NoiseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Authenticated decryption failed: the message was altered, replayed, reordered, or made
    /// under other keys — including a handshake whose two sides used different prologues.
    case decryptionFailed
    /// The message is shorter than its handshake tokens or its authentication tag require, or
    /// carries data where none may be.
    case malformedMessage
    /// A Noise message (handshake or transport) would be, or is, longer than 65,535 bytes.
    case messageTooLarge
    /// A cipher state has used every nonce it may (2^64 − 1): the keys must not be used again.
    case nonceExhausted
    /// A Diffie-Hellman result was all zeros: the peer sent a low-order public key.
    case invalidPublicKey
    /// The call does not fit the handshake's progress: it is the other side's turn, the
    /// handshake is not finished yet, or it is finished already.
    case outOfTurn
    /// A handshake payload does not have the exact layout of its version.
    case malformedPayload
    /// A handshake payload names a format version this node does not know.
    case unsupportedPayloadVersion
    /// The identity's signature over the remote Noise static key does not verify for
    /// ``PrivatusCore/SignaturePurpose/noiseStatic``.
    case invalidSignature
    /// The responder authenticated as a different PeerID from the one the initiator dialled.
    case unexpectedPeer

    public var description: String {
        switch self {
        case .decryptionFailed: "a Noise message could not be decrypted"
        case .malformedMessage: "a Noise message is malformed"
        case .messageTooLarge: "a Noise message is larger than 65535 bytes"
        case .nonceExhausted: "a Noise cipher state has used all its nonces"
        case .invalidPublicKey: "a Noise public key gave a low-order key agreement"
        case .outOfTurn: "the Noise handshake is not at a step where this call is allowed"
        case .malformedPayload: "a handshake payload is malformed"
        case .unsupportedPayloadVersion: "a handshake payload has an unsupported version"
        case .invalidSignature: "the peer's Noise static key binding does not verify"
        case .unexpectedPeer: "the peer is not the one that was dialled"
        }
    }
}
