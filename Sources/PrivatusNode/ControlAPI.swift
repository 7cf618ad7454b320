import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PrivatusCore

/// The control API's request context: Hummingbird's basic one, and the event loop of the
/// connection the request came on (a `watch` writes its events from that loop, with no hop to
/// another thread per write) and when that connection closes (a `watch` whose client left ends
/// then, not at the next event it fails to write).
struct ControlContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let eventLoop: any EventLoop
    let closed: EventLoopFuture<Void>

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        eventLoop = source.channel.eventLoop
        closed = source.channel.closeFuture
    }
}

/// What `status` answers (CLI.md).
public struct NodeStatus: Codable, Sendable, Equatable, ResponseEncodable {
    public var peerId: String
    public var listenAddresses: [String]
    public var ui: String
    public var connectedPeers: Int
    public var queued: Int
    public var uptimeS: Double
    public var dbBytes: Int
    /// Milliseconds from the unlocked keystore to the control API listening (an addition to
    /// CLI.md's keys).
    public var startupMs: Double?
    /// The invite to give others: this node's PeerID and the addresses it tells peers (an
    /// addition to CLI.md's keys).
    public var invite: String?
    /// The bootstrap peers configured (flags > environment > config.json; an addition).
    public var bootstrap: [String]?
}

/// The control API's access rule: a request must carry the node's bearer token and name as its
/// host the loopback address and port the API is bound to (a web page's DNS-rebinding request
/// carries its own host name).
struct ControlAccessRule: Sendable {
    let token: String
    /// The port the API is bound to (known once it listens: it may be asked for as 0).
    let port: @Sendable () -> Int

    /// Why `head` is refused; nil when it is allowed.
    func refusal(of head: HTTPRequest) -> HTTPError? {
        guard let host = head.authority, Self.hosts(port: port()).contains(host.lowercased()) else {
            return HTTPError(.forbidden, message: "host not allowed")
        }
        guard let authorization = head.headerFields[.authorization],
            Self.constantTimeEquals(authorization, "Bearer " + token)
        else {
            return HTTPError(.unauthorized, message: "a valid bearer token is required")
        }
        return nil
    }

    /// Compares without an early exit, so timing does not reveal how much of a guess matched.
    static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// The Host values a local client may send for a server on `port`.
    static func hosts(port: Int) -> Set<String> {
        ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)"]
    }
}

/// Refuses every request that ``ControlAccessRule`` does not allow.
struct ControlAccess<Context: RequestContext>: RouterMiddleware {
    let rule: ControlAccessRule

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        if let refusal = rule.refusal(of: request.head) { throw refusal }
        return try await next(request, context)
    }
}
