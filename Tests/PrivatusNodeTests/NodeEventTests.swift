import Foundation
import Testing

@testable import PrivatusNode

@Suite struct NodeEventTests {
    static func encoded(_ event: NodeEvent) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(event)) + [UInt8(ascii: "\n")]
    }

    static let awkwardTexts: [String] = [
        "", "plain", "quote \" and backslash \\ and slash /", "tab\tnew\nline\rreturn\u{8}\u{C}",
        String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) }) + "\u{7F}",
        "ünïcødé 日本語 🙂 \u{2028}\u{2029} \u{200B}", "</script>",
    ]

    @Test(arguments: awkwardTexts)
    func anEventsLineIsWhatJSONEncoderWrites(_ text: String) throws {
        var message = NodeEvent(
            type: "message", id: "0a1b", peerId: "ff00", from: "ff00", text: text, sentAt: 1_733_000_000_123,
            state: "delivered", name: text)
        #expect(message.jsonLine == (try Self.encoded(message)))
        message.textTruncated = true
        #expect(message.jsonLine == (try Self.encoded(message)))
        message.textTruncated = false
        #expect(message.jsonLine == (try Self.encoded(message)))
        let state = NodeEvent(type: "state", id: "0a1b", peerId: "ff00", state: text)
        #expect(state.jsonLine == (try Self.encoded(state)))
        #expect(NodeEvent(type: "watching").jsonLine == (try Self.encoded(NodeEvent(type: "watching"))))
        #expect(Self.dropped(501).jsonLine == (try Self.encoded(Self.dropped(501))))
        #expect(
            String(decoding: Self.dropped(501).jsonLine, as: UTF8.self) == #"{"count":501,"type":"dropped"}"# + "\n")
        let decoded = try JSONDecoder().decode(NodeEvent.self, from: Data(message.jsonLine.dropLast()))
        #expect(decoded == message)
    }

    @Test func aSendAnswerIsTheObjectJSONEncoderWrites() throws {
        let id = "00ff" + String(repeating: "a", count: 28)
        #expect(
            String(decoding: SendResult(id: id, state: "queued").json, as: UTF8.self)
                == #"{"id":"\#(id)","state":"queued"}"#)
        for state in ["queued", "sent", "a \"quoted\" \\ state\n\u{1}"] {
            let answer = SendResult(id: id, state: state)
            #expect(try JSONDecoder().decode(SendResult.self, from: Data(answer.json)) == answer)
            // The same bytes as JSONEncoder's, keys sorted (its order otherwise varies by process).
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            #expect(answer.json == Array(try encoder.encode(answer)))
        }
    }

    static func state(_ number: Int) -> NodeEvent {
        NodeEvent(type: "state", id: String(number), state: "sent")
    }

    static func dropped(_ count: UInt64) -> NodeEvent {
        var event = NodeEvent(type: "dropped")
        event.count = count
        return event
    }

    @Test func aWatcherTakesWhatWaitsInOneBatchInOrder() async throws {
        let events = NodeEvents()
        let batches = try #require(events.subscribe(greeting: NodeEvent(type: "watching")))
        var iterator = batches.makeAsyncIterator()
        events.publish(Self.state(1))
        events.publish([Self.state(2), Self.state(3)])
        events.publish([NodeEvent]())
        #expect(await iterator.next() == [NodeEvent(type: "watching"), Self.state(1), Self.state(2), Self.state(3)])
        events.publish(Self.state(4))
        #expect(await iterator.next() == [Self.state(4)])
        // Stopping: what waits is still handed out, then the batches end.
        events.publish([Self.state(5), Self.state(6)])
        events.finish()
        #expect(await iterator.next() == [Self.state(5), Self.state(6)])
        #expect(await iterator.next() == nil)
        #expect(events.subscribe() == nil, "no watcher once the node stops")
    }

    @Test func aWatcherThatDoesNotReadKeepsOnlyTheNewestEventsAndIsToldHowManyItLost() async throws {
        let events = NodeEvents()
        let batches = try #require(events.subscribe(greeting: NodeEvent(type: "watching")))
        var iterator = batches.makeAsyncIterator()
        func readAll() async -> [NodeEvent] {
            var kept: [NodeEvent] = []
            while kept.count < NodeEvents.bufferedEvents + 1, let batch = await iterator.next() {
                #expect(batch.count <= NodeEvents.maximumBatch)
                kept += batch
            }
            return kept
        }
        // The greeting and the 500 oldest states are lost; the watcher reads that first.
        for number in 0..<(NodeEvents.bufferedEvents + 500) { events.publish(Self.state(number)) }
        #expect(await readAll() == [Self.dropped(501)] + (500..<(NodeEvents.bufferedEvents + 500)).map(Self.state))
        // Lost again later (in one publish): counted afresh.
        events.publish((0..<(NodeEvents.bufferedEvents + 7)).map(Self.state))
        events.finish()
        #expect(await readAll() == [Self.dropped(7)] + (7..<(NodeEvents.bufferedEvents + 7)).map(Self.state))
        #expect(await iterator.next() == nil)
    }

    @Test func aWatcherThatDoesNotReadKeepsAtMostItsBytesOfLongMessages() async throws {
        let events = NodeEvents()
        let batches = try #require(events.subscribe())
        var iterator = batches.makeAsyncIterator()
        let text = String(repeating: "x", count: NodeEvents.maximumTextBytes)
        func message(_ number: Int) -> NodeEvent { NodeEvent(type: "message", id: String(number), text: text) }
        let fit = NodeEvents.bufferedBytes / message(0).estimatedBytes
        #expect(fit < NodeEvents.bufferedEvents, "the bytes bound the long messages, not the count")
        for number in 0..<(fit + 30) { events.publish(message(number)) }
        events.finish()
        var kept: [NodeEvent] = []
        while let batch = await iterator.next() { kept += batch }
        #expect(kept == [Self.dropped(30)] + (30..<(fit + 30)).map(message))
    }

    @Test func aWatcherThatStopsReadingOrNeverReadsFreesItsPlace() async throws {
        let events = NodeEvents()
        // Never read: dropped at once.
        #expect(events.subscribe(greeting: NodeEvent(type: "watching")) != nil)
        #expect(events.watcherCount == 0)
        // Read, then left without being cancelled (a write to its client failed): the reader
        // alone holds the batches, as a response body does.
        func firstBatch() -> Task<[NodeEvent], Never>? {
            guard let batches = events.subscribe(greeting: NodeEvent(type: "watching")) else { return nil }
            return Task {
                for await batch in batches { return batch }
                return []
            }
        }
        let reader = try #require(firstBatch())
        #expect(await reader.value == [NodeEvent(type: "watching")])
        #expect(events.watcherCount == 0, "its place is free again")
        events.publish(Self.state(1))
    }

    @Test func aWatcherWhoseTaskIsCancelledFreesItsPlace() async throws {
        let events = NodeEvents()
        let readers = try (0..<NodeEvents.maximumWatchers).map { _ in
            let batches = try #require(events.subscribe())
            return Task {
                var count = 0
                for await batch in batches { count += batch.count }
                return count
            }
        }
        #expect(events.subscribe() == nil, "full")
        #expect(events.watcherCount == NodeEvents.maximumWatchers)
        for reader in readers { reader.cancel() }
        for reader in readers { _ = await reader.value }
        #expect(events.watcherCount == 0)
        #expect(events.subscribe() != nil)
    }
}
