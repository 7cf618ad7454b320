import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PrivatusProfile

/// The client side of the control API, for the CLI's client commands: finds the node through
/// `<profile>/node.json`, authenticates with `<profile>/api-token`, speaks plain HTTP/1.1 on
/// loopback. Never touches the keystore.
public struct ControlClient: Sendable {
    /// The largest response read (the rest is refused).
    public static let maximumResponseBytes = 8 << 20

    public let baseURL: String
    let token: String
    let host: String
    let port: Int
    /// Persistent connections, when the client keeps them (``keepingConnectionsAlive()``).
    let connections: ControlConnections?

    /// The client of the node running for `layout`.
    /// - Throws: ``ControlClientError/noNode`` when none runs.
    public init(layout: ProfileLayout) throws {
        guard let file = NodeFile.read(in: layout), let token = NodeFile.token(in: layout),
            let url = URLComponents(string: file.ui), let host = url.host, let port = url.port
        else { throw ControlClientError.noNode }
        // URLComponents keeps an IPv6 host's brackets.
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.init(baseURL: file.ui, token: token, host: bare, port: port)
    }

    /// A client of the API at `host`:`port` with `token` (tests use it with a wrong token).
    public init(baseURL: String, token: String, host: String, port: Int) {
        self.baseURL = baseURL
        self.token = token
        self.host = host
        self.port = port
        self.connections = nil
    }

    private init(_ client: ControlClient, connections: ControlConnections) {
        self.baseURL = client.baseURL
        self.token = client.token
        self.host = client.host
        self.port = client.port
        self.connections = connections
    }

    /// The same client, keeping its connections open between requests (HTTP/1.1 keep-alive, as a
    /// browser does) instead of one connection per request: for a client that makes many.
    /// Streams (``stream(_:line:)``) still take a connection of their own.
    /// - Parameter maximumIdle: connections kept open while idle, at most: a client that makes up
    ///   to this many requests at once keeps one connection for each.
    public func keepingConnectionsAlive(maximumIdle: Int = ControlConnections.defaultMaximumIdle) -> ControlClient {
        ControlClient(self, connections: ControlConnections(host: host, port: port, maximumIdle: maximumIdle))
    }

    /// `GET path` with the token; the status code and body.
    public func get(
        _ path: String, hostHeader: String? = nil, authorized: Bool = true
    ) async throws -> (
        status: Int, body: [UInt8]
    ) {
        try await request("GET", path, hostHeader: hostHeader, authorized: authorized)
    }

    /// `method path` with the token and, when given, a JSON body; the status code and body.
    public func request(
        _ method: String, _ path: String, json: [UInt8]? = nil, hostHeader: String? = nil, authorized: Bool = true
    ) async throws -> (status: Int, body: [UInt8]) {
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        if let connections {
            var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
            head.headers.add(name: "Host", value: hostHeader ?? authority)
            if authorized { head.headers.add(name: "Authorization", value: "Bearer \(token)") }
            if let json { head.headers.add(name: "Content-Type", value: "application/json") }
            if json != nil || method != "GET" { head.headers.add(name: "Content-Length", value: "\(json?.count ?? 0)") }
            return try await connections.exchange(head, body: json ?? [])
        }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(hostHeader ?? authority)\r\nConnection: close\r\n"
        if authorized { request += "Authorization: Bearer \(token)\r\n" }
        if let json {
            request += "Content-Type: application/json\r\nContent-Length: \(json.count)\r\n"
        } else if method != "GET" {
            request += "Content-Length: 0\r\n"
        }
        request += "\r\n"
        let response = try await Self.exchange(Array(request.utf8) + (json ?? []), host: host, port: port)
        return try Self.parse(response)
    }

    /// Calls the API and decodes its JSON answer; a refusal becomes ``ControlClientError/refused(status:message:)``
    /// with the node's message.
    public func call<Answer: Decodable>(
        _ method: String, _ path: String, body: (some Encodable)? = Optional<String>.none, as: Answer.Type
    ) async throws -> Answer {
        let json = try body.map { Array(try JSONEncoder().encode($0)) }
        let (status, answer) = try await request(method, path, json: json)
        guard status == 200 else {
            let message = (try? JSONDecoder().decode(Refusal.self, from: Data(answer)))?.error.message
            throw ControlClientError.refused(status: status, message: message)
        }
        do {
            return try JSONDecoder().decode(Answer.self, from: Data(answer))
        } catch {
            throw ControlClientError.badResponse
        }
    }

    /// The longest line a stream may send.
    public static let maximumLineBytes = 1 << 20

    /// `GET path` as a stream of lines (`application/x-ndjson`, chunked): calls `line` for each
    /// until the node ends the stream (returns) or the connection fails (throws).
    /// - Throws: ``ControlClientError/refused(status:message:)`` when the answer is not 200,
    ///   ``ControlClientError/badResponse`` for HTTP this client does not understand or a line
    ///   over ``maximumLineBytes``.
    public func stream(_ path: String, line: @escaping @Sendable (String) -> Void) async throws {
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let request =
            "GET \(path) HTTP/1.1\r\nHost: \(authority)\r\nConnection: close\r\nAuthorization: Bearer \(token)\r\n\r\n"
        // Lines are read and handed to `line` on the connection's event loop, not by a task: a
        // reader that shares the cooperative pool with many busy tasks (the bench's API clients)
        // would fall behind the node and lose events.
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port).get()
        // The handler joins the one channel that connected (not each one the bootstrap tries),
        // before the request goes: nothing can arrive ahead of it.
        let done = channel.eventLoop.makePromise(of: Void.self)
        channel.eventLoop.execute {
            do {
                try channel.pipeline.syncOperations.addHandler(LineStreamHandler(line: line, done: done))
            } catch {
                done.fail(error)
                channel.close(promise: nil)
                return
            }
            // A request that cannot be written fails the stream (NIO closes the channel without
            // an error in the pipeline).
            let written = channel.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { error in
                done.fail(error)
                channel.close(promise: nil)
            }
            channel.writeAndFlush(ByteBuffer(bytes: Array(request.utf8)), promise: written)
        }
        try await withTaskCancellationHandler {
            try await done.futureResult.get()
        } onCancel: {
            channel.close(promise: nil)
        }
        channel.close(promise: nil)
    }

    /// A path segment or query value, percent-encoded.
    public static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))
            ?? ""
    }

    static func exchange(_ request: [UInt8], host: String, port: Int) async throws -> [UInt8] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: request))
            var response: [UInt8] = []
            for try await chunk in inbound {
                guard response.count + chunk.readableBytes <= maximumResponseBytes else {
                    throw ControlClientError.badResponse
                }
                response += chunk.readableBytesView
            }
            return response
        }
    }

    /// Status line and body of a `Connection: close` response (`Content-Length` or to the end).
    static func parse(_ response: [UInt8]) throws -> (status: Int, body: [UInt8]) {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = response.indices.first(where: { response[$0...].starts(with: separator) }),
            let head = String(validating: response[..<end], as: UTF8.self)
        else { throw ControlClientError.badResponse }
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw ControlClientError.badResponse
        }
        var body = Array(response[(end + 4)...])
        if let length = lines.dropFirst().compactMap({ line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }).first {
            guard length <= body.count else { throw ControlClientError.badResponse }
            body = Array(body.prefix(length))
        }
        return (status, body)
    }
}

/// Reads a streamed HTTP/1.1 answer: the head (status 200 required), then a chunked or
/// unframed body split into lines, every part bounded.
struct LineStreamParser {
    private var buffer: [UInt8] = []
    private var headDone = false
    private var chunked = false
    /// Bytes left in the current chunk; nil while reading a chunk-size line.
    private var chunkLeft: Int?
    private var line: [UInt8] = []
    private(set) var isFinished = false

    mutating func feed(_ bytes: [UInt8]) throws -> [String] {
        buffer += bytes
        var lines: [String] = []
        if !headDone {
            let separator: [UInt8] = [13, 10, 13, 10]
            guard let end = buffer.indices.first(where: { buffer[$0...].starts(with: separator) }) else {
                guard buffer.count <= 64 * 1024 else { throw ControlClientError.badResponse }
                return []
            }
            let head = String(decoding: buffer[..<end], as: UTF8.self)
            buffer.removeFirst(end + 4)
            let lines = head.components(separatedBy: "\r\n")
            let parts = lines[0].split(separator: " ")
            guard parts.count >= 2, let status = Int(parts[1]) else { throw ControlClientError.badResponse }
            guard status == 200 else { throw ControlClientError.refused(status: status) }
            chunked = lines.dropFirst().contains {
                $0.lowercased().hasPrefix("transfer-encoding:") && $0.lowercased().contains("chunked")
            }
            headDone = true
        }
        // Read from `start` on, and drop what was read once at the end: one read may hold many
        // chunks, and removing each from the front would move the rest every time.
        var start = buffer.startIndex
        defer { buffer.removeFirst(start - buffer.startIndex) }
        while start < buffer.endIndex, !isFinished {
            if !chunked {
                try take(buffer[start...], into: &lines)
                start = buffer.endIndex
                break
            }
            if let left = chunkLeft {
                if left == 0 {
                    // The CRLF after a chunk's data.
                    guard buffer.endIndex - start >= 2 else { break }
                    start += 2
                    chunkLeft = nil
                    continue
                }
                let count = min(left, buffer.endIndex - start)
                try take(buffer[start..<start + count], into: &lines)
                start += count
                chunkLeft = left - count
            } else {
                guard let end = buffer[start...].firstIndex(of: 10) else {
                    guard buffer.endIndex - start <= 64 else { throw ControlClientError.badResponse }
                    break
                }
                let sizeText =
                    String(decoding: buffer[start..<end], as: UTF8.self)
                    .split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
                guard let size = Int(sizeText, radix: 16), size >= 0, size <= ControlClient.maximumLineBytes else {
                    throw ControlClientError.badResponse
                }
                start = end + 1
                if size == 0 {
                    isFinished = true
                } else {
                    chunkLeft = size
                }
            }
        }
        return lines
    }

    private mutating func take(_ bytes: ArraySlice<UInt8>, into lines: inout [String]) throws {
        var rest = bytes[...]
        while !rest.isEmpty {
            let end = rest.firstIndex(of: 10) ?? rest.endIndex
            guard line.count + (end - rest.startIndex) <= ControlClient.maximumLineBytes else {
                throw ControlClientError.badResponse
            }
            if end == rest.endIndex {
                line += rest
                return
            }
            if line.isEmpty {
                lines.append(String(decoding: rest[..<end], as: UTF8.self))
            } else {
                line += rest[..<end]
                lines.append(String(decoding: line, as: UTF8.self))
                line.removeAll(keepingCapacity: true)
            }
            rest = rest[(end + 1)...]
        }
    }
}

/// Feeds a streamed answer to a ``LineStreamParser`` as it arrives and hands each line to
/// `line`; completes `done` when the stream ends (the last chunk, or the node closed the
/// connection) or fails it (the answer cannot be read, the connection failed), and closes.
final class LineStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var parser = LineStreamParser()
    private let line: @Sendable (String) -> Void
    private var done: EventLoopPromise<Void>?

    init(line: @escaping @Sendable (String) -> Void, done: EventLoopPromise<Void>) {
        self.line = line
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard done != nil else { return }
        do {
            for text in try parser.feed(Array(unwrapInboundIn(data).readableBytesView)) { line(text) }
            if parser.isFinished {
                done.take()?.succeed(())
                context.close(promise: nil)
            }
        } catch {
            fail(error, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.take()?.succeed(())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        done.take()?.fail(error)
        context.close(promise: nil)
    }
}

/// Hummingbird's error body: `{"error": {"message": …}}`.
struct Refusal: Decodable {
    struct Detail: Decodable { var message: String }
    var error: Detail
}

/// Why a client command could not talk to the node.
public enum ControlClientError: Error, Sendable, CustomStringConvertible {
    /// No node runs for this profile.
    case noNode
    /// The node's answer is not HTTP this client understands.
    case badResponse
    /// The node refused the request, saying why when it did.
    case refused(status: Int, message: String? = nil)

    public var description: String {
        switch self {
        case .noNode: "no node is running for this profile"
        case .badResponse: "the node's answer could not be read"
        case .refused(let status, let message): message ?? "the node refused the request (HTTP \(status))"
        }
    }
}
