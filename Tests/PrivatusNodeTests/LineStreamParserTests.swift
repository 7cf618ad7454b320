import Testing

@testable import PrivatusNode

/// What `privatus watch` and the benches read a node's event stream with: whole lines however
/// the bytes arrive, nothing over the line limit, a refusal as a refusal.
@Suite struct LineStreamParserTests {
    static let chunkedHead = Array(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)

    static func chunk(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        Array(String(bytes.count, radix: 16).utf8) + [13, 10] + bytes + [13, 10]
    }

    /// The whole answer, its body cut into chunks of `chunkBytes`.
    static func chunked(_ body: [UInt8], chunkBytes: Int) -> [UInt8] {
        var stream = chunkedHead
        for start in stride(from: 0, to: body.count, by: chunkBytes) {
            stream += chunk(body[start..<min(start + chunkBytes, body.count)])
        }
        return stream + Array("0\r\n\r\n".utf8)
    }

    /// Feeds `stream` in pieces of `step` bytes.
    static func read(_ stream: [UInt8], step: Int) throws -> (lines: [String], finished: Bool) {
        var parser = LineStreamParser()
        var lines: [String] = []
        for start in stride(from: 0, to: stream.count, by: step) {
            lines += try parser.feed(Array(stream[start..<min(start + step, stream.count)]))
        }
        return (lines, parser.isFinished)
    }

    static let lines = [#"{"type":"watching"}"#, "", "ünïcødé 🙂 日本語", String(repeating: "x", count: 5_000), "end"]

    @Test(arguments: [1, 2, 7, 100, 6_000])
    func linesCutAnywhereComeOutWhole(chunkBytes: Int) throws {
        let body = Array((Self.lines.joined(separator: "\n") + "\n").utf8)
        let stream = Self.chunked(body, chunkBytes: chunkBytes)
        for step in [1, 3, 64, 4_096, stream.count] {
            let (lines, finished) = try Self.read(stream, step: step)
            #expect(lines == Self.lines)
            #expect(finished)
        }
    }

    @Test func anUnchunkedBodyIsReadToItsLines() throws {
        var stream = Array("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n".utf8)
        stream += Array((Self.lines.joined(separator: "\n") + "\n").utf8)
        for step in [1, 5, stream.count] {
            let (lines, finished) = try Self.read(stream, step: step)
            #expect(lines == Self.lines)
            #expect(!finished, "it ends when the connection does")
        }
    }

    @Test func aLineUpToTheLimitIsReadAndOneByteMoreIsRefused() throws {
        let longest = [UInt8](repeating: UInt8(ascii: "a"), count: ControlClient.maximumLineBytes)
        let fits = Self.chunked(longest + [10], chunkBytes: 300_000)
        #expect(try Self.read(fits, step: 65_536).lines == [String(decoding: longest, as: UTF8.self)])
        let over = Self.chunked(longest + [UInt8(ascii: "a"), 10], chunkBytes: 300_000)
        #expect(throws: ControlClientError.self) { try Self.read(over, step: 65_536) }
    }

    @Test func aRefusalIsARefusal() throws {
        let stream = Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".utf8)
        do {
            _ = try Self.read(stream, step: stream.count)
            Issue.record("a 503 was read as a stream")
        } catch ControlClientError.refused(let status, _) {
            #expect(status == 503)
        }
    }
}
