import Foundation
import PrivatusNode
import PrivatusProfile
import PrivatusTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The control API's send route, answered where the request is read (`SendRoute`), against the
/// router that answers every other request: a real node, raw HTTP/1.1 over loopback.
@Suite(.serialized) struct ControlSendTests {
    let cli: CLIProcess
    let scratch: TemporaryDirectory

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-send-route")
    }

    func run(_ profile: String, _ arguments: [String]) async throws -> CLIProcess.Result {
        try await cli.run(["--profile", profile] + arguments, environment: ["PRIVATUS_PASSWORD": "x"])
    }

    func start(_ profile: String) async throws -> CLIProcess.Running {
        let layout = ProfileLayout(directory: profile)
        try? FileManager.default.removeItem(atPath: NodeFile.path(in: layout))
        let node = try cli.start(
            ["--profile", profile, "run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"],
            environment: ["PRIVATUS_PASSWORD": "x"])
        for _ in 0..<400 where NodeFile.read(in: layout) == nil {
            try await Task.sleep(for: .milliseconds(25))
        }
        _ = try #require(NodeFile.read(in: layout), "the node wrote node.json")
        return node
    }

    func stop(_ node: CLIProcess.Running) async throws {
        node.child.send(SIGTERM)
        let ended = try await node.wait(timeout: .seconds(30))
        #expect(ended.status == 0, "\(ended.stderr)")
    }

    /// Alice's running node with Bob (stopped) as a contact; her API's port and token.
    func aliceWithBob() async throws -> (node: CLIProcess.Running, port: Int, token: String, profile: String) {
        let alice = scratch.child("alice")
        let bob = scratch.child("bob")
        for (profile, name) in [(alice, "alice"), (bob, "bob")] {
            let created = try await run(profile, ["init", "--name", name] + CLITests.cheap)
            #expect(created.status == 0, "\(created.stderr)")
        }
        let bobNode = try await start(bob)
        let bobStatus = try JSONDecoder().decode(
            NodeStatus.self, from: Data(try await run(bob, ["status", "--json"]).stdout.utf8))
        try await stop(bobNode)
        let node = try await start(alice)
        let added = try await run(alice, ["contacts", "add", try #require(bobStatus.invite), "--name", "bob"])
        #expect(added.status == 0, "\(added.stderr)")
        let layout = ProfileLayout(directory: alice)
        let file = try #require(NodeFile.read(in: layout))
        let port = try #require(URLComponents(string: file.ui)?.port)
        return (node, port, try #require(NodeFile.token(in: layout)), alice)
    }

    /// A request as a client writes it, with the node's host and token unless told otherwise.
    static func request(
        _ method: String, _ path: String, body: String? = nil, port: Int, token: String?, close: Bool = false
    ) -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        if let token { text += "Authorization: Bearer \(token)\r\n" }
        if close { text += "Connection: close\r\n" }
        if let body { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        return text + "\r\n" + (body ?? "")
    }

    @Test func aPlainSendIsAnsweredAsTheRouterAnswersTheSameRequestWrittenOtherwise() async throws {
        defer { scratch.remove() }
        let (node, port, token, alice) = try await aliceWithBob()
        func send(_ body: String) -> String {
            Self.request("POST", "/api/v1/messages", body: body, port: port, token: token)
        }
        // Each pair: the plain body this route reads, then the same request with an escape in
        // it (`\u006f` is "o"), which only the router reads. All on one connection, written at
        // once (pipelined), with a request for the router in between.
        let long = String(repeating: "y", count: 5_000)  // past the route's 4 KiB: read, then passed on
        let requests = [
            send(#"{"peer":"bob","text":"hello"}"#), send(#"{"peer":"bob","text":"hell\u006f"}"#),
            Self.request("GET", "/api/v1/status", port: port, token: token),
            send(#"{"peer":"nobody","text":"x"}"#), send(#"{"peer":"n\u006fbody","text":"x"}"#),
            send(#"{"peer":"bob","text":""}"#), send(#"{"peer":"b\u006fb","text":""}"#),
            send(#"{"text":"second","peer":"bob"}"#), send(#"{"peer":"bob","text":"\#(long)"}"#),
        ]
        let answers = try RawHTTP.exchange(requests, port: port)
        try #require(answers.count == requests.count)

        // A sent message: the same status, headers and kind of body.
        let plain = answers[0]
        let routed = answers[1]
        #expect(plain.status == 200 && routed.status == 200)
        #expect(plain.headerNames == routed.headerNames)
        #expect(plain.headers["content-type"] == routed.headers["content-type"])
        let first = try JSONDecoder().decode(SendResult.self, from: Data(plain.body.utf8))
        let second = try JSONDecoder().decode(SendResult.self, from: Data(routed.body.utf8))
        #expect(first.state == "queued" && second.state == "queued", "bob is away")
        #expect(first.id.count == 32 && second.id.count == 32 && first.id != second.id)
        #expect(plain.body == #"{"id":"\#(first.id)","state":"queued"}"#)
        // The router's request in between got its own answer, in its place.
        #expect(answers[2].status == 200)
        #expect(try JSONDecoder().decode(NodeStatus.self, from: Data(answers[2].body.utf8)).queued >= 2)
        // Refusals: byte for byte the router's (an unknown contact, an empty message).
        for (index, status) in [(3, 404), (5, 400)] {
            #expect(answers[index].status == status)
            #expect(answers[index].status == answers[index + 1].status)
            #expect(answers[index].headerNames == answers[index + 1].headerNames)
            #expect(answers[index].headers["content-type"] == answers[index + 1].headers["content-type"])
            #expect(answers[index].body == answers[index + 1].body, "\(answers[index].body)")
            #expect(answers[index].body.hasPrefix(#"{"error":{"message":""#))
        }
        #expect(answers[7].status == 200 && answers[8].status == 200)

        // Alice's conversation holds the accepted messages once each, in the order sent.
        let listed = try await run(alice, ["messages", "bob", "--json"])
        let texts = try JSONDecoder().decode([MessageView].self, from: Data(listed.stdout.utf8)).map(\.text)
        #expect(texts == ["hello", "hello", "second", long])
        try await stop(node)
    }

    @Test func aSendWithoutTheTokenOrAskingToCloseIsTheRoutersToAnswer() async throws {
        defer { scratch.remove() }
        let (node, port, token, alice) = try await aliceWithBob()
        let body = #"{"peer":"bob","text":"hi"}"#
        // Refused by the access rule: 401 and 403 as for every route, on a connection that stays
        // usable, then a plain send on the same connection.
        let answers = try RawHTTP.exchange(
            [
                Self.request("POST", "/api/v1/messages", body: body, port: port, token: nil),
                Self.request(
                    "POST", "/api/v1/messages", body: body, port: port, token: String(repeating: "0", count: 64)),
                Self.request("POST", "/api/v1/messages", body: body, port: port + 1, token: token),
                Self.request("POST", "/api/v1/messages", body: body, port: port, token: token),
            ], port: port)
        #expect(answers.map(\.status) == [401, 401, 403, 200])
        // `Connection: close`: answered, then the connection ends.
        let closing = try RawHTTP.exchange(
            [Self.request("POST", "/api/v1/messages", body: body, port: port, token: token, close: true)], port: port,
            readToEnd: true)
        #expect(closing.map(\.status) == [200])
        // A client that stops writing after its request (half-closes) still gets its answer.
        let halfClosed = try RawHTTP.exchange(
            [Self.request("POST", "/api/v1/messages", body: body, port: port, token: token)], port: port,
            halfClose: true, readToEnd: true)
        #expect(halfClosed.map(\.status) == [200])
        // A body in chunks is read whole.
        let chunked =
            "POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(token)\r\n"
            + "Transfer-Encoding: chunked\r\n\r\n" + "e\r\n{\"peer\":\"bob\",\r\n" + "10\r\n\"text\":\"chunks\"}\r\n"
            + "0\r\n\r\n"
        #expect(try RawHTTP.exchange([chunked], port: port).map(\.status) == [200])
        let listed = try await run(alice, ["messages", "bob", "--json"])
        #expect(
            try JSONDecoder().decode([MessageView].self, from: Data(listed.stdout.utf8)).map(\.text) == [
                "hi", "hi", "hi", "chunks",
            ])
        try await stop(node)
    }
}

/// HTTP/1.1 over one loopback TCP connection, written whole and read back answer by answer (each
/// with a `Content-Length`), with a 20-s receive timeout.
enum RawHTTP {
    struct Answer {
        var status: Int
        /// Lowercased names, and the last value of each.
        var headers: [String: String]
        var headerNames: [String] { headers.keys.sorted() }
        var body: String
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Writes every request at once (then, with `halfClose`, ends its output), then reads as
    /// many answers; with `readToEnd`, also expects the server to close the connection after them.
    static func exchange(
        _ requests: [String], port: Int, halfClose: Bool = false, readToEnd: Bool = false
    ) throws
        -> [Answer]
    {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect: \(errno)") }
        let bytes = Array(requests.joined().utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { throw Failure(description: "write: \(errno)") }
            written += count
        }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var received: [UInt8] = []
        var ended = false
        func fill() throws {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count >= 0 else { throw Failure(description: "read: \(errno)") }
            if count == 0 { ended = true }
            received += chunk[0..<count]
            guard received.count < 16 << 20 else { throw Failure(description: "answer too long") }
        }
        var answers: [Answer] = []
        let separator = Array("\r\n\r\n".utf8)
        while answers.count < requests.count {
            guard let headEnd = received.firstRange(of: separator) else {
                if ended { throw Failure(description: "closed after \(answers.count) answers") }
                try fill()
                continue
            }
            let lines = String(decoding: received[..<headEnd.lowerBound], as: UTF8.self)
                .components(separatedBy: "\r\n")
            let statusLine = lines[0].split(separator: " ")
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
                throw Failure(description: "bad status line: \(lines[0])")
            }
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                    .trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            while received.count < headEnd.upperBound + length {
                if ended { throw Failure(description: "closed inside an answer") }
                try fill()
            }
            let body = String(decoding: received[headEnd.upperBound..<headEnd.upperBound + length], as: UTF8.self)
            answers.append(Answer(status: status, headers: headers, body: body))
            received.removeFirst(headEnd.upperBound + length)
        }
        if readToEnd {
            while !ended { try fill() }
            guard received.isEmpty else { throw Failure(description: "bytes after the last answer") }
        }
        return answers
    }
}
