import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import PrivatusCore
import Synchronization
import Testing

@testable import PrivatusNode
@testable import PrivatusStore

/// `SendRoute` in a pipeline of its own: what it answers itself, what reaches the router behind
/// it, and in which order the answers leave.
@Suite struct SendRouteTests {
    /// Everything that passed the route towards the router.
    final class Router: ChannelInboundHandler {
        typealias InboundIn = HTTPRequestPart
        var parts: [HTTPRequestPart] = []
        var events: [String] = []

        /// How many parts had arrived at the last end of a read (when the router's channel hands
        /// them to its loop).
        var delivered = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) { parts.append(unwrapInboundIn(data)) }
        func channelReadComplete(context: ChannelHandlerContext) { delivered = parts.count }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) { events.append("\(event)") }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { events.append("error") }

        /// The heads' paths and a marker for each body and end, in order.
        var shape: [String] {
            parts.map { part in
                switch part {
                case .head(let head): "\(head.method.rawValue) \(head.path ?? "")"
                case .body(let body): "body \(body.readableBytes)"
                case .end: "end"
                }
            }
        }
    }

    /// Counts the reads that reach the socket's side of the pipeline.
    final class Reads: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var count = 0
        func read(context: ChannelHandlerContext) {
            count += 1
            context.read()
        }
    }

    /// A pipeline with the route (token "t", API on port 8080) and the sends it queued, waiting
    /// for the test to answer them.
    final class Fixture {
        let channel = EmbeddedChannel()
        let router = Router()
        let reads = Reads()
        /// The sends the route queued, in order.
        final class Queued: Sendable {
            let list = Mutex<[(text: String, peer: String, answer: SendQueue.Answer)]>([])
        }
        let queued = Queued()

        init() throws {
            let queued = queued
            let route = SendRoute(
                .init(access: ControlAccessRule(token: "t", port: { 8080 })) { text, peer, answer in
                    queued.list.withLock { $0.append((text, peer, answer)) }
                }, eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.addHandlers([reads, route, router])
        }

        var sends: [String] { queued.list.withLock { $0.map { "\($0.peer): \($0.text)" } } }

        func write(_ part: HTTPRequestPart) throws { try channel.writeInbound(part) }

        func request(
            _ method: HTTPRequest.Method = .post, _ path: String = "/api/v1/messages", body: [String] = [],
            fields: HTTPFields = [.authorization: "Bearer t"], authority: String = "127.0.0.1:8080"
        ) throws {
            try write(
                .head(HTTPRequest(method: method, scheme: nil, authority: authority, path: path, headerFields: fields)))
            for chunk in body { try write(.body(ByteBuffer(string: chunk))) }
            try write(.end(nil))
        }

        /// Answers the `index`th queued send and lets the event loop write the answer.
        func answer(_ index: Int, with result: Result<StoredMessage, any Error>) {
            let answer = queued.list.withLock { $0[index].answer }
            answer(result)
            channel.embeddedEventLoop.run()
        }

        /// The answers written so far: status and body of each, checking that every one is a
        /// head, at most one body and an end.
        func answers() throws -> [(status: Int, fields: HTTPFields, body: String)] {
            var answers: [(status: Int, fields: HTTPFields, body: String)] = []
            while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
                switch part {
                case .head(let head): answers.append((head.status.code, head.headerFields, ""))
                case .body(let body): answers[answers.count - 1].body += String(buffer: body)
                case .end: break
                }
            }
            return answers
        }
    }

    static func message(_ id: [UInt8], state: MessageState = .queued) throws -> StoredMessage {
        StoredMessage(
            id: id, sequence: 0, direction: .sent, state: state,
            sender: try PeerID(bytes: Array(repeating: 7, count: 32)),
            sentAt: 0, receivedAt: nil, body: "hi", replyTo: nil, expiresAt: nil)
    }

    @Test func aPlainSendInPartsIsAnsweredHereAndNothingReachesTheRouter() throws {
        let fixture = try Fixture()
        try fixture.request(body: [#"{"peer":"bob","#, #""text":"hi"}"#])
        #expect(fixture.sends == ["bob: hi"])
        #expect(fixture.router.parts.isEmpty)
        #expect(try fixture.answers().isEmpty, "no answer before the messenger's")
        fixture.answer(0, with: .success(try Self.message(Array(repeating: 0xAB, count: 16))))
        let answers = try fixture.answers()
        try #require(answers.count == 1)
        #expect(answers[0].status == 200)
        #expect(answers[0].body == #"{"id":"\#(String(repeating: "ab", count: 16))","state":"queued"}"#)
        #expect(answers[0].fields[.contentType] == "application/json; charset=utf-8")
        #expect(answers[0].fields[.contentLength] == String(answers[0].body.utf8.count))
        #expect(answers[0].fields[.date]?.hasSuffix(" GMT") == true)
        #expect(fixture.router.parts.isEmpty)
    }

    @Test func refusalsAreTheRoutersErrorsAndAnythingElseIsA500() throws {
        let fixture = try Fixture()
        try fixture.request(body: [#"{"peer":"nobody","text":"x"}"#])
        fixture.answer(0, with: .failure(ChatError.unknownPeer))
        try fixture.request(body: [#"{"peer":"bob","text":"x"}"#])
        fixture.answer(1, with: .failure(ChatError.busy))
        try fixture.request(body: [#"{"peer":"bob","text":"x"}"#])
        fixture.answer(2, with: .failure(CancellationError()))
        let answers = try fixture.answers()
        #expect(answers.map(\.status) == [404, 503, 500])
        let expected = try JSONEncoder().encode(["error": ["message": ChatError.unknownPeer.description]])
        #expect(answers[0].body == String(decoding: expected, as: UTF8.self))
        #expect(answers[1].body.hasPrefix(#"{"error":{"message":""#))
        #expect(answers[2].body.isEmpty && answers[2].fields[.contentLength] == "0")
        #expect(answers[2].fields[.contentType] == nil)
    }

    @Test func requestsTheRouteDoesNotTakeReachTheRouterWhole() throws {
        let fixture = try Fixture()
        let long = #"{"peer":"bob","text":""# + String(repeating: "y", count: 5_000) + #""}"#
        let requests: [(HTTPRequest.Method, String, [String], HTTPFields, String)] = [
            (.post, "/api/v1/messages", [#"{"peer":"bob","text":"x"}"#], [:], "127.0.0.1:8080"),  // no token
            (
                .post, "/api/v1/messages", [#"{"peer":"bob","text":"x"}"#], [.authorization: "Bearer u"],
                "127.0.0.1:8080"
            ),
            (.post, "/api/v1/messages", [#"{"peer":"bob","text":"x"}"#], [.authorization: "Bearer t"], "evil:8080"),
            (
                .post, "/api/v1/messages", [#"{"peer":"bob","text":"x"}"#],
                [.authorization: "Bearer t", .connection: "close"], "127.0.0.1:8080"
            ),
            (
                .post, "/api/v1/messages", [#"{"peer":"b\u006fb","text":"x"}"#], [.authorization: "Bearer t"],
                "127.0.0.1:8080"
            ),
            (.post, "/api/v1/messages", [], [.authorization: "Bearer t"], "127.0.0.1:8080"),
            (
                .post, "/api/v1/messages", [String(long.prefix(3_000)), String(long.dropFirst(3_000))],
                [.authorization: "Bearer t"], "127.0.0.1:8080"
            ),
            (.get, "/api/v1/messages", [], [.authorization: "Bearer t"], "127.0.0.1:8080"),
            (.post, "/api/v1/messages/read", [#"{"peer":"bob"}"#], [.authorization: "Bearer t"], "127.0.0.1:8080"),
        ]
        for (index, (method, path, body, fields, authority)) in requests.enumerated() {
            try fixture.request(method, path, body: body, fields: fields, authority: authority)
            // The router answers each before the next is written (as a client without
            // pipelining waits for it).
            try fixture.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .unauthorized)))
            try fixture.channel.writeOutbound(HTTPResponsePart.end(nil))
            #expect(fixture.router.parts.filter { if case .head = $0 { true } else { false } }.count == index + 1)
        }
        #expect(fixture.sends.isEmpty)
        let bodies = fixture.router.shape.filter { $0.hasPrefix("body") }
        #expect(bodies == ["body 25", "body 25", "body 25", "body 25", "body 30", "body 3000", "body 2024", "body 14"])
        #expect(fixture.router.shape.filter { $0 == "end" }.count == requests.count)
    }

    @Test func whatArrivesBehindAnOwedAnswerWaitsAndGoesOnInOrder() throws {
        let fixture = try Fixture()
        try fixture.request(body: [#"{"peer":"bob","text":"one"}"#])
        // Pipelined behind it: a request for the router, another plain send, the end of input.
        try fixture.request(.get, "/api/v1/status")
        try fixture.request(body: [#"{"peer":"bob","text":"two"}"#])
        fixture.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        fixture.channel.embeddedEventLoop.run()
        #expect(fixture.router.parts.isEmpty && fixture.router.events.isEmpty, "all wait for the first answer")
        #expect(fixture.sends == ["bob: one"])

        fixture.answer(0, with: .success(try Self.message(Array(repeating: 1, count: 16))))
        #expect(try fixture.answers().map(\.status) == [200])
        // The status request went on, and the second send behind it, since the router owes an
        // answer; the end of input after them.
        #expect(fixture.router.shape == ["GET /api/v1/status", "end", "POST /api/v1/messages", "body 27", "end"])
        #expect(fixture.router.events == ["\(ChannelEvent.inputClosed)"])
        #expect(fixture.router.delivered == fixture.router.parts.count, "the router's loop is handed what went on")
        #expect(fixture.sends == ["bob: one"])
    }

    @Test func bytesTheDecoderRefusesBehindAnOwedAnswerReachTheRouterAfterIt() throws {
        struct Unreadable: Error {}
        let fixture = try Fixture()
        try fixture.request(body: [#"{"peer":"bob","text":"one"}"#])
        fixture.channel.pipeline.fireErrorCaught(Unreadable())
        fixture.channel.embeddedEventLoop.run()
        #expect(fixture.router.events.isEmpty, "the router would answer 400 and close before the send's answer")
        fixture.answer(0, with: .success(try Self.message(Array(repeating: 1, count: 16))))
        #expect(try fixture.answers().map(\.status) == [200])
        #expect(fixture.router.events == ["error"])
    }

    @Test func aPlainSendIsTheRoutersWhileTheRouterOwesAnAnswerAndTheRoutesOnceItHasAnswered() throws {
        let fixture = try Fixture()
        try fixture.request(.get, "/api/v1/events")  // a stream: the router owes its answer
        try fixture.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try fixture.request(body: [#"{"peer":"bob","text":"behind"}"#])
        #expect(fixture.sends.isEmpty)
        #expect(fixture.router.shape == ["GET /api/v1/events", "end", "POST /api/v1/messages", "body 30", "end"])
        try fixture.channel.writeOutbound(HTTPResponsePart.end(nil))  // the stream ends
        try fixture.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try fixture.channel.writeOutbound(HTTPResponsePart.end(nil))  // the send behind it answered
        try fixture.request(body: [#"{"peer":"bob","text":"now"}"#])
        #expect(fixture.sends == ["bob: now"])
        #expect(fixture.router.shape.count == 5)
    }

    @Test func theConnectionIsNotReadWhileTooMuchWaitsBehindAnAnswer() throws {
        let fixture = try Fixture()
        try fixture.request(body: [#"{"peer":"bob","text":"one"}"#])
        fixture.channel.read()
        let before = fixture.reads.count
        #expect(before >= 1)
        for _ in 0..<(SendRoute.maximumHeld / 2) { try fixture.request(.get, "/api/v1/status") }
        fixture.channel.read()
        #expect(fixture.reads.count == before, "\(SendRoute.maximumHeld) parts wait: the read waits too")
        fixture.answer(0, with: .success(try Self.message(Array(repeating: 1, count: 16))))
        #expect(fixture.reads.count == before + 1, "the waiting read goes once they have gone on")
        #expect(fixture.router.parts.count == SendRoute.maximumHeld)
    }

    @Test func aWatchWhoseClientEndsItsInputClosesTheConnectionAndOtherRequestsDoNot() throws {
        /// A fixture whose channel is active, as a connection is.
        func connected() throws -> Fixture {
            let fixture = try Fixture()
            try fixture.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            return fixture
        }
        // An ordinary request's client may end its input and still wait for the answer.
        let plain = try connected()
        try plain.request(.get, "/api/v1/status")
        plain.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(plain.channel.isActive)
        #expect(plain.router.events == ["inputClosed"], "the router sees the end of the input")

        // A watch's never does while it watches: its client has gone.
        let watch = try connected()
        #expect(watch.channel.isActive)
        try watch.request(.get, "/api/v1/events?since=0")
        #expect(watch.router.shape == ["GET /api/v1/events?since=0", "end"])
        try watch.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        watch.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(!watch.channel.isActive, "closed: the watch ends and frees its place")

        // A refused watch is an ordinary answer: not begun, the end of the input waits for it.
        let refused = try connected()
        try refused.request(.get, "/api/v1/events", fields: [:])
        try refused.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .unauthorized)))
        refused.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(refused.channel.isActive)
        #expect(refused.router.events == ["inputClosed"])

        // The router skips empty segments: these are the stream too.
        for path in ["/api/v1/events/", "//api/v1//events", "/api/v1/events?x=/y"] {
            #expect(SendRoute.isEvents(path), "\(path)")
        }
        for path in ["/api/v1/event", "/api/v1/events/x", "/api/v1/eventsx", "/api/v2/events", "", nil] {
            #expect(!SendRoute.isEvents(path), "\(path ?? "nil")")
        }

        // Once the stream's answer has ended (the node stopping), the end of the input is the
        // router's again.
        let ended = try connected()
        try ended.request(.get, "/api/v1/events")
        try ended.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try ended.channel.writeOutbound(HTTPResponsePart.end(nil))
        ended.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(ended.channel.isActive)
    }
}
