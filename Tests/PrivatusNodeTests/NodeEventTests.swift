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
        let decoded = try JSONDecoder().decode(NodeEvent.self, from: Data(message.jsonLine.dropLast()))
        #expect(decoded == message)
    }
}
