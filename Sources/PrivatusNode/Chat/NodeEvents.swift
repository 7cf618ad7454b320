import Foundation
import Synchronization

/// Something `watch` shows (docs/API.md, "Events"): one JSON object per line, with a `type`.
public struct NodeEvent: Codable, Sendable, Equatable {
    /// `message` (received), `state` (one of the user's messages changed state), `request` (a
    /// stranger's first message).
    public var type: String
    /// The message's id (`message`, `state`).
    public var id: String?
    /// The other party's PeerID.
    public var peerId: String?
    /// The sender's PeerID (`message`).
    public var from: String?
    public var text: String?
    /// Unix ms of the sender's clock (`message`).
    public var sentAt: UInt64?
    /// The new state (`state`), or the state of a received message.
    public var state: String?
    /// The requester's name (`request`).
    public var name: String?
    /// Set when `text` was cut to ``NodeEvents/maximumTextBytes``.
    public var textTruncated: Bool?

    public init(
        type: String, id: String? = nil, peerId: String? = nil, from: String? = nil, text: String? = nil,
        sentAt: UInt64? = nil, state: String? = nil, name: String? = nil
    ) {
        self.type = type
        self.id = id
        self.peerId = peerId
        self.from = from
        self.text = text
        self.sentAt = sentAt
        self.state = state
        self.name = name
    }
}

/// Fans the node's events out to every `watch` connected. Each watcher has a bounded buffer:
/// for one that does not read, only the newest ``bufferedEvents`` events wait (older ones are
/// dropped), so a stuck client never grows the node's memory.
public final class NodeEvents: Sendable {
    public static let bufferedEvents = 1_000
    /// At most this many watchers at once; more are refused.
    public static let maximumWatchers = 8
    /// The longest text an event carries (a longer message's text is cut, `textTruncated` set:
    /// `messages` has it whole). With the buffer and watcher bounds, what stalled watchers can
    /// hold stays ≈ 40 MB at the very worst.
    public static let maximumTextBytes = 4_096

    private struct Watchers {
        var finished = false
        var next = 0
        var continuations: [Int: AsyncStream<NodeEvent>.Continuation] = [:]
    }

    private let watchers = Mutex(Watchers())

    public init() {}

    /// A new stream of every event from now on (after `greeting`, when given), or nil when too
    /// many watch already.
    public func subscribe(greeting: NodeEvent? = nil) -> AsyncStream<NodeEvent>? {
        let (stream, continuation) = AsyncStream.makeStream(
            of: NodeEvent.self, bufferingPolicy: .bufferingNewest(Self.bufferedEvents))
        if let greeting { continuation.yield(greeting) }
        let id: Int? = watchers.withLock { state in
            guard !state.finished, state.continuations.count < Self.maximumWatchers else { return nil }
            let id = state.next
            state.next += 1
            state.continuations[id] = continuation
            return id
        }
        guard let id else { return nil }
        continuation.onTermination = { [weak self] _ in
            self?.watchers.withLock { _ = $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    /// Sends an event to every watcher (never waits).
    public func publish(_ event: NodeEvent) {
        var event = event
        if let text = event.text, text.utf8.count > Self.maximumTextBytes {
            var cut = text.utf8.prefix(Self.maximumTextBytes)
            while String(cut) == nil { cut = cut.dropLast() }
            event.text = String(cut)
            event.textTruncated = true
        }
        let continuations = watchers.withLock { Array($0.continuations.values) }
        for continuation in continuations { continuation.yield(event) }
    }

    /// Ends every watcher's stream (the node is stopping).
    public func finish() {
        let continuations = watchers.withLock { state in
            state.finished = true
            defer { state.continuations.removeAll() }
            return Array(state.continuations.values)
        }
        for continuation in continuations { continuation.finish() }
    }

    public var watcherCount: Int { watchers.withLock { $0.continuations.count } }
}
