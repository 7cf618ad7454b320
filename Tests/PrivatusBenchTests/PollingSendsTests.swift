import Testing

@testable import PrivatusBench

/// How ``PollingSends`` reads an answer's head: its status, its body's length, where its body
/// starts, and nothing until the head is whole.
@Suite struct PollingSendsTests {
    @Test func aWholeHeadGivesItsStatusLengthAndBodyStart() throws {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 42\r\nDate: x\r\n\r\n"
        let answer = Array((head + "{").utf8)
        let parsed = try #require(PollingSends.head(of: answer))
        #expect(parsed.status == 200)
        #expect(parsed.length == 42)
        #expect(parsed.bodyStart == head.utf8.count)
    }

    @Test func aHeadNotYetWholeGivesNothing() {
        #expect(PollingSends.head(of: Array("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n".utf8)) == nil)
        #expect(PollingSends.head(of: []) == nil)
    }

    @Test func aRefusalOrSomethingElseIsNotTakenForAnAnswer() throws {
        let refused = try #require(
            PollingSends.head(of: Array("HTTP/1.1 429 Too Many\r\nContent-Length: 2\r\n\r\n".utf8)))
        #expect(refused.status == 429 && refused.length == 2)
        let other = try #require(PollingSends.head(of: Array("SSH-2.0-x\r\n\r\n".utf8)))
        #expect(other.status == 0, "not HTTP/1.1: the run ends with an error")
    }

    @Test func anAnswerWithoutAReadableLengthEndsTheRun() throws {
        for head in [
            "HTTP/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
        ] {
            let parsed = try #require(PollingSends.head(of: Array(head.utf8)))
            #expect(parsed.status == 0, "\(head)")
        }
    }
}
