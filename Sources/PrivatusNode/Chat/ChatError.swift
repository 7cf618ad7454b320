/// Why a contacts or chat request was refused (the control API answers 400, 404 or 409).
public enum ChatError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownPeer
    case ambiguousName
    case notAContact
    case cannotAddSelf
    case badName
    case emptyMessage
    case messageTooLong
    case unknownMessage
    case identityNotYetKnown
    case safetyNumberMismatch
    case noSession
    case wrongBundle
    case wrongInitiator
    case bundleTimeout
    case malformedContent
    case notRetryable
    case stopping
    case busy

    public var description: String {
        switch self {
        case .unknownPeer: "no such contact"
        case .ambiguousName: "more than one contact has that name: use the PeerID"
        case .notAContact: "that peer is not a contact (accept the request first)"
        case .cannotAddSelf: "that is this profile's own PeerID"
        case .badName: "a name is 1 to 64 bytes of UTF-8 without control characters"
        case .emptyMessage: "the message is empty"
        case .messageTooLong: "the message is longer than 64 KiB"
        case .unknownMessage: "no such message in this conversation"
        case .identityNotYetKnown: "the contact's identity key is not known yet: connect to it once first"
        case .safetyNumberMismatch: "the safety number does not match: do not mark this contact verified"
        case .noSession: "no session with the peer"
        case .wrongBundle: "the bundle is not the peer's"
        case .wrongInitiator: "the session's initiator is not the link's peer"
        case .bundleTimeout: "the peer did not answer the bundle request"
        case .malformedContent: "the message content is malformed"
        case .stopping: "the node is stopping"
        case .busy: "too many messages are waiting to be sent: try again"
        case .notRetryable:
            "no failed message with that id can be retried (delivered, or its peer was blocked or removed)"
        }
    }
}
