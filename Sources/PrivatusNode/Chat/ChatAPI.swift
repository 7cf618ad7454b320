import Foundation
import Hummingbird
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusNet
import PrivatusStore

/// A contact or message request as the control API and `contacts --json` show it.
public struct ContactView: Codable, Sendable, Equatable, ResponseEncodable {
    public var peerId: String
    public var name: String
    public var verified: Bool
    /// Unix milliseconds of the last authenticated link; nil before the first.
    public var lastSeen: UInt64?
    /// `contact`, `request` or `blocked` (an addition to CLI.md's keys).
    public var state: String
    /// The 60-digit safety number, once the contact's identity key is known (an addition).
    public var safetyNumber: String?
    /// For a request: its name equals an existing contact's (an addition).
    public var possibleImpersonation: Bool?
    /// Known addresses of the contact's node (an addition).
    public var addresses: [String]
}

/// A message as `messages --json` shows it.
public struct MessageView: Codable, Sendable, Equatable, ResponseEncodable {
    /// 32 hex digits.
    public var id: String
    /// The sender's PeerID.
    public var from: String
    public var text: String
    /// Unix milliseconds (the sender's clock).
    public var sentAt: UInt64
    /// One of CLI.md's message states.
    public var state: String
}

/// What `send` answers.
public struct SendResult: Codable, Sendable, Equatable, ResponseEncodable {
    public var id: String
    public var state: String

    /// The answer's JSON, written directly (the most frequent answer of the API; a
    /// `JSONEncoder` took ≈ 2 % of a sending node's CPU): the object `JSONEncoder` writes, keys
    /// in declaration order (`JSONEncoder`'s own order varies from process to process), strings
    /// escaped as it escapes them (it would also escape a `/`, which neither a hex id nor a
    /// state's name holds).
    var json: [UInt8] {
        var out: [UInt8] = Array(#"{"id":"#.utf8)
        NodeEvent.appendJSONString(id, to: &out)
        out += Array(#","state":"#.utf8)
        NodeEvent.appendJSONString(state, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The answer to a send or retry request.
    var response: Response {
        let json = json
        return Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(json.count)],
            body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }
}

/// `POST /api/v1/contacts`.
public struct AddContactRequest: Codable, Sendable {
    public var invite: String
    public var name: String?
    public init(invite: String, name: String?) {
        self.invite = invite
        self.name = name
    }
}

/// `POST /api/v1/contacts/{peer}/verify`.
public struct VerifyRequest: Codable, Sendable {
    public var safetyNumber: String
    public init(safetyNumber: String) { self.safetyNumber = safetyNumber }
}

/// `POST /api/v1/messages/read`.
public struct MarkReadRequest: Codable, Sendable {
    public var peer: String
    public init(peer: String) { self.peer = peer }
}

/// What marking messages read answers: how many changed.
public struct MarkReadResult: Codable, Sendable, Equatable, ResponseEncodable {
    public var read: Int
}

/// `POST /api/v1/messages`.
public struct SendRequest: Codable, Sendable {
    public var peer: String
    public var text: String
    public init(peer: String, text: String) {
        self.peer = peer
        self.text = text
    }

    /// The body of a send request, read from `request`. The shape every client writes (an object
    /// of the two keys, each once, in either order, their strings without escapes) is read
    /// directly: `JSONDecoder` took ≈ 3 % of a sending node's CPU (BENCHMARKS.md, session 15).
    /// Anything else (escapes, other keys, another type, bytes that are not JSON) goes to
    /// `JSONDecoder`, so what is accepted, and how a refusal reads, stays the decoder's.
    static func decode(_ request: Request, context: some RequestContext) async throws -> SendRequest {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        if let plain = buffer.withUnsafeReadableBytes(SendRequest.init(plainJSON:)) { return plain }
        var request = request
        request.body = RequestBody(buffer: buffer)
        return try await request.decode(as: SendRequest.self, context: context)
    }

    /// Reads `{"peer":"…","text":"…"}` (JSON whitespace between the tokens, the keys in either
    /// order) whose strings hold no escape and are valid UTF-8; nil for anything else.
    init?(plainJSON bytes: UnsafeRawBufferPointer) {
        var index = 0
        func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }
        func take(_ byte: UInt8) -> Bool {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }
        /// A string without escapes or control characters, as its bytes.
        func string() -> UnsafeRawBufferPointer? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return UnsafeRawBufferPointer(rebasing: bytes[start..<index - 1])
                }
                guard byte != UInt8(ascii: "\\"), byte >= 0x20 else { return nil }
                index += 1
            }
            return nil
        }
        var peer: String?
        var text: String?
        guard take(UInt8(ascii: "{")) else { return nil }
        repeat {
            guard let key = string(), take(UInt8(ascii: ":")), let raw = string(),
                let value = String(validating: raw, as: UTF8.self)
            else { return nil }
            if key.elementsEqual("peer".utf8), peer == nil {
                peer = value
            } else if key.elementsEqual("text".utf8), text == nil {
                text = value
            } else {
                return nil
            }
        } while take(UInt8(ascii: ","))
        guard take(UInt8(ascii: "}")), let peer, let text else { return nil }
        skipWhitespace()
        guard index == bytes.count else { return nil }
        self.init(peer: peer, text: text)
    }
}

extension Messenger {
    /// The contacts and chat endpoints of the control API (docs/API.md).
    nonisolated func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        let api = router.group("/api/v1")
        api.get("/contacts") { _, _ in try await self.mapping { try await self.views(of: .contact) } }
        api.get("/contacts/requests") { _, _ in try await self.mapping { try await self.views(of: .request) } }
        api.post("/contacts") { request, context in
            let body = try await request.decode(as: AddContactRequest.self, context: context)
            return try await self.mapping {
                let invite = try Invite(parsing: body.invite)
                return try await self.view(of: self.addContact(invite, name: body.name))
            }
        }
        api.post("/contacts/{peer}/{action}") { request, context in
            // Path parameters arrive percent-encoded (a name may hold spaces or slashes).
            let raw = try context.parameters.require("peer")
            let peer = raw.removingPercentEncoding ?? raw
            let action = try context.parameters.require("action")
            switch action {
            case "accept": return try await self.mapping { try await self.view(of: self.setState(.contact, of: peer)) }
            case "block": return try await self.mapping { try await self.view(of: self.setState(.blocked, of: peer)) }
            case "remove": return try await self.mapping { try await self.view(of: self.remove(peer)) }
            case "verify":
                let body = try await request.decode(as: VerifyRequest.self, context: context)
                return try await self.mapping {
                    try await self.view(of: self.verify(peer, safetyNumber: body.safetyNumber))
                }
            default: throw HTTPError(.notFound, message: "no such contact action")
            }
        }
        api.post("/messages") { request, context in
            let body = try await SendRequest.decode(request, context: context)
            return try await self.mapping {
                let stored = try await self.send(body.text, to: body.peer)
                return SendResult(id: Hex.encode(stored.id), state: stored.state.name).response
            }
        }
        api.post("/messages/read") { request, context in
            let body = try await request.decode(as: MarkReadRequest.self, context: context)
            return try await self.mapping { MarkReadResult(read: try await self.markRead(body.peer)) }
        }
        api.post("/messages/{id}/retry") { _, context in
            let text = try context.parameters.require("id")
            guard text.utf8.count == 32, let id = Hex.decodeLowercase(text) else {
                throw HTTPError(.badRequest, message: "a message id is 32 hex digits")
            }
            return try await self.mapping {
                let stored = try await self.retry(id)
                return SendResult(id: Hex.encode(stored.id), state: stored.state.name).response
            }
        }
        api.get("/events") { _, context in
            let connection = context as? ControlContext
            return try self.watchResponse(on: connection?.eventLoop, closed: connection?.closed)
        }
        api.get("/messages") { request, _ in
            let query = request.uri.queryParameters
            guard let peer = query.get("peer") else { throw HTTPError(.badRequest, message: "peer is required") }
            let limit = query.get("limit").flatMap { Int($0) } ?? 50
            // At most 1,000 messages of at most 64 KiB each in one answer.
            guard (1...1_000).contains(limit) else { throw HTTPError(.badRequest, message: "limit is 1 to 1000") }
            var before: [UInt8]?
            if let text = query.get("before") {
                guard text.utf8.count == 32, let id = Hex.decodeLowercase(text) else {
                    throw HTTPError(.badRequest, message: "before is a message id (32 hex digits)")
                }
                before = id
            }
            return try await self.mapping {
                try await self.messages(with: peer, limit: limit, before: before).map(Self.view(of:))
            }
        }
    }

    /// `GET /api/v1/events`: one JSON line per event, from a `watching` line on (which tells the
    /// client that every later event will reach it) until the node stops.
    /// - Parameters:
    ///   - connectionLoop: the event loop of the watcher's connection (nil: one of the shared
    ///     group's).
    ///   - closed: completes when that connection closes: the watch ends and frees its place
    ///     among the ``NodeEvents/maximumWatchers`` at once (without it, at the next event it
    ///     fails to write).
    nonisolated func watchResponse(
        on connectionLoop: (any EventLoop)? = nil, closed: EventLoopFuture<Void>? = nil
    ) throws -> Response {
        guard let stream = events.subscribe(greeting: NodeEvent(type: "watching")) else {
            throw HTTPError(.serviceUnavailable, message: "too many watchers, or the node is stopping")
        }
        closed?.whenComplete { _ in stream.end() }
        // The batches are taken, written out and waited for on an event loop, not in the
        // cooperative pool: there a watcher would queue behind every request in progress, fall
        // behind under load and lose events (a batch is at most 64 events: short work). On the
        // connection's own loop each write goes to the socket at once; from another loop it
        // would wake the connection's thread as well.
        let loop = connectionLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        let body = ResponseBody { writer in
            try await withTaskExecutorPreference(EventLoopTaskExecutor(loop)) {
                for await batch in stream { try await writer.write(Self.lines(for: batch)) }
                try await writer.finish(nil)
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: body)
    }

    /// A batch of events as one write: a JSON line each.
    @Sendable static func lines(for events: [NodeEvent]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for event in events { buffer.writeBytes(event.jsonLine) }
        return buffer
    }

    /// Runs `body`, turning the chat layer's typed errors into HTTP errors with their message.
    nonisolated func mapping<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw Self.httpError(for: error) ?? error
        }
    }

    /// The control API's refusal of a chat or invite error; nil for any other error.
    static func httpError(for error: any Error) -> HTTPError? {
        if let error = error as? ChatError {
            switch error {
            case .unknownPeer, .unknownMessage, .notRetryable: return HTTPError(.notFound, message: error.description)
            case .stopping, .busy: return HTTPError(.serviceUnavailable, message: error.description)
            case .identityNotYetKnown, .safetyNumberMismatch, .notAContact, .ambiguousName:
                return HTTPError(.conflict, message: error.description)
            default: return HTTPError(.badRequest, message: error.description)
            }
        }
        if let error = error as? InviteError { return HTTPError(.badRequest, message: error.description) }
        return nil
    }

    func views(of state: ContactState) throws -> [ContactView] {
        let impersonates = try impersonationCheck()
        return try contacts(state).map { try view(of: $0, impersonates: impersonates) }
    }

    func view(of contact: Contact) throws -> ContactView {
        try view(of: contact, impersonates: try impersonationCheck())
    }

    func view(of contact: Contact, impersonates: (Contact) -> Bool) throws -> ContactView {
        ContactView(
            peerId: contact.peerID.hex, name: contact.name, verified: contact.verified, lastSeen: contact.lastSeen,
            state: Self.stateName(contact.state), safetyNumber: try safetyNumber(of: contact)?.digits,
            possibleImpersonation: contact.state == .request ? impersonates(contact) : nil,
            addresses: contact.addresses)
    }

    static func stateName(_ state: ContactState) -> String {
        switch state {
        case .contact: "contact"
        case .request: "request"
        case .blocked: "blocked"
        }
    }

    static func view(of message: StoredMessage) -> MessageView {
        MessageView(
            id: Hex.encode(message.id), from: message.sender.hex, text: message.body, sentAt: message.sentAt,
            state: message.state.name)
    }
}
