import Foundation
import Synchronization

/// Something `watch` shows (docs/API.md, "Events"): one JSON object per line, with a `type`.
public struct NodeEvent: Codable, Sendable, Equatable {
    /// `message` (received), `state` (one of the user's messages changed state), `request` (a
    /// stranger's first message), `file` (a transfer's progress or state: `id` is the
    /// transfer's, `name` the file's, `state` the transfer's, `bytes` of `size` done),
    /// `dropped` (this watcher fell behind and lost the `count` events before this one).
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
    /// A file transfer's bytes so far and its size (`file`).
    public var bytes: UInt64?
    public var size: UInt64?
    /// How many events were lost (`dropped`).
    public var count: UInt64?

    public init(
        type: String, id: String? = nil, peerId: String? = nil, from: String? = nil, text: String? = nil,
        sentAt: UInt64? = nil, state: String? = nil, name: String? = nil, bytes: UInt64? = nil, size: UInt64? = nil
    ) {
        self.bytes = bytes
        self.size = size
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

extension NodeEvent {
    /// About what the event takes in memory: its strings' bytes and a fixed part for the rest.
    var estimatedBytes: Int {
        256 + type.utf8.count + (id?.utf8.count ?? 0) + (peerId?.utf8.count ?? 0) + (from?.utf8.count ?? 0)
            + (text?.utf8.count ?? 0) + (state?.utf8.count ?? 0) + (name?.utf8.count ?? 0)
    }

    /// The event as one line of JSON (keys sorted, slashes not escaped, newline-terminated):
    /// byte for byte what `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes, at a
    /// fraction of its cost (two or three events per message go to every watcher).
    public var jsonLine: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + (text?.utf8.count ?? 0))
        out.append(UInt8(ascii: "{"))
        var first = true
        func key(_ name: StaticString) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        func string(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            key(name)
            Self.appendJSONString(value, to: &out)
        }
        func number(_ name: StaticString, _ value: UInt64?) {
            guard let value else { return }
            key(name)
            out.append(contentsOf: String(value).utf8)
        }
        number("bytes", bytes)
        number("count", count)
        string("from", from)
        string("id", id)
        string("name", name)
        string("peerId", peerId)
        number("sentAt", sentAt)
        number("size", size)
        string("state", state)
        string("text", text)
        if let textTruncated {
            key("textTruncated")
            out.append(contentsOf: (textTruncated ? "true" : "false").utf8)
        }
        string("type", type)
        out.append(UInt8(ascii: "}"))
        out.append(UInt8(ascii: "\n"))
        return out
    }

    static func appendJSONString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in
            // Runs of bytes that need no escape are copied whole.
            var start = 0
            for index in bytes.indices {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                start = index + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                default:
                    out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    out.append(byte < 0x10 ? UInt8(ascii: "0") : UInt8(ascii: "1"))
                    let low = byte & 0x0F
                    out.append(low < 10 ? UInt8(ascii: "0") + low : UInt8(ascii: "a") - 10 + low)
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Fans the node's events out to every `watch` connected. Each watcher has a bounded buffer:
/// for one that does not read, only the newest ``bufferedEvents`` events, of at most
/// ``bufferedBytes`` between them, wait (older ones are dropped), so a stuck client never grows
/// the node's memory; what it reads next starts with a
/// `dropped` event counting what it lost, so it knows to read the state again (`messages`,
/// `files`) instead of missing a change without a word. A watcher takes what waits in one
/// batch (``EventBatches``): events published together or while it was writing the last batch
/// reach its client in one write.
public final class NodeEvents: Sendable {
    /// Events waiting for one watcher at most: more than a second of the node's busiest
    /// stream (≈ 7,000 `delivered` states a second at full speed, BENCHMARKS.md), so a client
    /// that reads keeps up through a burst.
    public static let bufferedEvents = 10_000
    /// The bytes the events waiting for one watcher may take at most
    /// (``NodeEvent/estimatedBytes``): 4 MiB, some 10,000 states or 1,000 messages of the longest
    /// text.
    public static let bufferedBytes = 4 << 20
    /// At most this many watchers at once; more are refused.
    public static let maximumWatchers = 8
    /// The longest text an event carries (a longer message's text is cut, `textTruncated` set:
    /// `messages` has it whole). With the buffer, batch and watcher bounds, what stalled watchers
    /// can hold stays ≈ 40 MB at the very worst (the waiting events, and a batch or two on their
    /// way to each client).
    public static let maximumTextBytes = 4_096

    /// The most events one batch takes (the rest wait for the next): what is on its way to a
    /// client that does not read stays small next to what waits.
    public static let maximumBatch = 64

    /// One watcher's waiting events, and the signal that wakes it (at most one signal waits:
    /// however many events come before it wakes, it wakes once and takes them). Only the
    /// signal's continuation is kept here: the stream belongs to the watcher's ``EventBatches``,
    /// so a watcher that drops it (its client went away and a write failed) ends the stream and
    /// frees its place, as one whose task is cancelled does.
    final class Watcher: Sendable {
        private struct Waiting {
            var events: [NodeEvent] = []
            /// What `events` take (``NodeEvent/estimatedBytes``).
            var bytes = 0
            /// Events lost since the last batch, older than all of `events`.
            var dropped: UInt64 = 0
        }
        private let waiting = Mutex(Waiting())
        let signal: AsyncStream<Void>.Continuation

        init(signal: AsyncStream<Void>.Continuation) {
            self.signal = signal
        }

        func add(_ new: some Collection<NodeEvent>) {
            waiting.withLock { waiting in
                waiting.events.append(contentsOf: new)
                for event in new { waiting.bytes += event.estimatedBytes }
                // The oldest go until both bounds hold.
                var excess = 0
                while waiting.events.count - excess > NodeEvents.bufferedEvents
                    || waiting.bytes > NodeEvents.bufferedBytes
                {
                    waiting.bytes -= waiting.events[excess].estimatedBytes
                    excess += 1
                }
                if excess > 0 {
                    waiting.events.removeFirst(excess)
                    waiting.dropped += UInt64(excess)
                }
            }
            signal.yield()
        }

        /// Up to ``maximumBatch`` waiting events, oldest first (signalling again when more wait),
        /// after a `dropped` event when some were lost since the last batch.
        func take() -> [NodeEvent] {
            let (batch, more) = waiting.withLock { waiting -> ([NodeEvent], Bool) in
                var taken: [NodeEvent] = []
                if waiting.dropped > 0 {
                    var lost = NodeEvent(type: "dropped")
                    lost.count = waiting.dropped
                    taken.append(lost)
                    waiting.dropped = 0
                }
                let count = min(waiting.events.count, NodeEvents.maximumBatch - taken.count)
                if count == waiting.events.count, taken.isEmpty {
                    swap(&taken, &waiting.events)
                    waiting.bytes = 0
                } else {
                    for event in waiting.events.prefix(count) { waiting.bytes -= event.estimatedBytes }
                    taken += waiting.events.prefix(count)
                    waiting.events.removeFirst(count)
                }
                return (taken, !waiting.events.isEmpty)
            }
            if more { signal.yield() }
            return batch
        }
    }

    private struct Watchers {
        var finished = false
        var next = 0
        var watchers: [Int: Watcher] = [:]
    }

    private let watchers = Mutex(Watchers())

    public init() {}

    /// Every event from now on (after `greeting`, when given), in batches, or nil when too many
    /// watch already.
    public func subscribe(greeting: NodeEvent? = nil) -> EventBatches? {
        let (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let watcher = Watcher(signal: signal)
        if let greeting { watcher.add(CollectionOfOne(greeting)) }
        let id: Int? = watchers.withLock { state in
            guard !state.finished, state.watchers.count < Self.maximumWatchers else { return nil }
            let id = state.next
            state.next += 1
            state.watchers[id] = watcher
            return id
        }
        guard let id else { return nil }
        // The watcher stopped reading (its batches dropped, its task cancelled): its slot frees.
        watcher.signal.onTermination = { [weak self] _ in
            self?.watchers.withLock { _ = $0.watchers.removeValue(forKey: id) }
        }
        return EventBatches(watcher: watcher, signals: signals)
    }

    /// Sends an event to every watcher (never waits).
    public func publish(_ event: NodeEvent) {
        publish(CollectionOfOne(event))
    }

    /// Sends events to every watcher, in order, as one batch (never waits).
    public func publish(_ events: some Collection<NodeEvent>) {
        guard !events.isEmpty else { return }
        let cut = events.map { event in
            var event = event
            if let text = event.text, text.utf8.count > Self.maximumTextBytes {
                var cut = text.utf8.prefix(Self.maximumTextBytes)
                while String(cut) == nil { cut = cut.dropLast() }
                event.text = String(cut)
                event.textTruncated = true
            }
            return event
        }
        let watchers = watchers.withLock { Array($0.watchers.values) }
        for watcher in watchers { watcher.add(cut) }
    }

    /// Ends every watcher's stream once it has taken what waits (the node is stopping).
    public func finish() {
        let watchers = watchers.withLock { state in
            state.finished = true
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.signal.finish() }
    }

    public var watcherCount: Int { watchers.withLock { $0.watchers.count } }
}

/// A watcher's events in batches: each element is the events published since the previous one
/// was taken (oldest first, at most ``NodeEvents/maximumBatch``, never empty), until the node
/// stops.
public struct EventBatches: AsyncSequence, Sendable {
    public typealias Element = [NodeEvent]
    let watcher: NodeEvents.Watcher
    let signals: AsyncStream<Void>

    public struct AsyncIterator: AsyncIteratorProtocol {
        let watcher: NodeEvents.Watcher
        var signals: AsyncStream<Void>.AsyncIterator
        var stopped = false
        var done = false

        public mutating func next() async -> [NodeEvent]? {
            if !stopped {
                while await signals.next() != nil {
                    let batch = watcher.take()
                    if !batch.isEmpty { return batch }
                }
                stopped = true
            }
            // Stopped: what was published before is still handed out, then nothing more.
            guard !done else { return nil }
            let rest = watcher.take()
            if rest.isEmpty { done = true }
            return rest.isEmpty ? nil : rest
        }
    }

    /// Ends the batches (the watcher is gone): what waits is still handed out, then nothing; the
    /// watcher's place is free at once.
    public func end() { watcher.signal.finish() }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(watcher: watcher, signals: signals.makeAsyncIterator())
    }
}
