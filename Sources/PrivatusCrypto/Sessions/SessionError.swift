/// Why a session operation was refused. No case carries key material or plaintext.
public enum SessionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A signature in a bundle or initial message does not verify for its purpose and identity.
    case badSignature
    /// A signed prekey is past its expiry, or claims an expiry further away than allowed.
    case prekeyExpired
    /// A key has the wrong length or encoding.
    case malformedKey
    /// A Diffie-Hellman output was all zeros (a low-order point).
    case lowOrderPoint
    /// The responder no longer holds the prekey the initial message names.
    case unknownPrekey
    /// This (signed prekey, ephemeral key) pair was seen before.
    case replayedInitialMessage
    /// The signed prekey has accepted all the first messages it may; fetch the current bundle.
    case replayCacheFull
    /// A message is shorter than its header or otherwise not of the format.
    case malformedMessage
    /// The message's protocol version is not supported.
    case unsupportedVersion
    /// Decryption failed: altered, replayed, or for another session.
    case decryptionFailed
    /// Accepting the message would skip more message keys than allowed.
    case tooManySkippedMessages
    /// The session cannot send yet (a responder before its first received message).
    case cannotSendYet
    /// A sending chain reached 2^32 − 1 messages: start a new session.
    case sessionExhausted
    /// The plaintext is larger than a message may carry.
    case plaintextTooLarge
    /// The padding of a decrypted plaintext is not well formed.
    case badPadding
    /// A serialized session state is damaged or of an unknown version.
    case malformedState

    public var description: String {
        switch self {
        case .badSignature: "a signature does not verify"
        case .prekeyExpired: "the signed prekey has expired"
        case .malformedKey: "a key has the wrong encoding"
        case .lowOrderPoint: "a key agreement produced a low-order result"
        case .unknownPrekey: "the prekey named by the message is not held"
        case .replayedInitialMessage: "the initial message was seen before"
        case .replayCacheFull: "the signed prekey accepts no more first messages; a newer bundle is needed"
        case .malformedMessage: "the message is malformed"
        case .unsupportedVersion: "the message's protocol version is not supported"
        case .decryptionFailed: "the message could not be decrypted"
        case .tooManySkippedMessages: "the message would skip too many message keys"
        case .cannotSendYet: "the session cannot send before it has received"
        case .sessionExhausted: "the session has sent all the messages it can; a new one is needed"
        case .plaintextTooLarge: "the plaintext is too large"
        case .badPadding: "the plaintext padding is malformed"
        case .malformedState: "the session state is damaged or of an unknown version"
        }
    }
}
