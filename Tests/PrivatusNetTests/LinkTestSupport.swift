import Crypto
import Foundation
import Metrics
import MetricsTestKit
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusWire
import Synchronization
import Testing

@testable import PrivatusNet

/// Waits for `body`, or fails after `seconds` (a guard against hangs, not a timing assertion).
/// The wait ends at the deadline even when `body` is stuck in something that ignores
/// cancellation (a future's `get()`). The default leaves room for a loaded machine: the whole
/// test process shares two pool threads, and CPU-bound tests of other suites can hold both for
/// seconds (a 10 s guard fired in CI while the DHT simulator tests ran on the pool).
func within<T: Sendable>(_ seconds: Double = 30, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = Once<T>()
    return try await withCheckedThrowingContinuation { continuation in
        once.set(continuation)
        let work = Task {
            do {
                once.resume(with: .success(try await body()))
            } catch {
                once.resume(with: .failure(error))
            }
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            work.cancel()
            once.resume(with: .failure(TimedOut()))
        }
    }
}

/// A continuation resumed by whichever comes first.
final class Once<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation.withLock { $0 = continuation }
    }

    func resume(with result: Result<T, any Error>) {
        continuation.withLock { $0.take() }?.resume(with: result)
    }
}

struct TimedOut: Error {}

/// The messages a node's handler received, in order.
actor Inbox {
    private var messages: [(LinkPeer, InboundMessage)] = []
    private var waiters: [CheckedContinuation<(LinkPeer, InboundMessage), Never>] = []

    nonisolated var handler: ConnectionManager.Handler {
        { peer, message in await self.deliver(peer, message) }
    }

    private func deliver(_ peer: LinkPeer, _ message: InboundMessage) {
        if waiters.isEmpty {
            messages.append((peer, message))
        } else {
            waiters.removeFirst().resume(returning: (peer, message))
        }
    }

    private func wait() async -> (LinkPeer, InboundMessage) {
        if !messages.isEmpty { return messages.removeFirst() }
        return await withCheckedContinuation { waiters.append($0) }
    }

    /// The next message (fails after 30 s).
    nonisolated func next() async throws -> (LinkPeer, InboundMessage) {
        try await within { await self.wait() }
    }

    /// How many messages wait to be taken.
    var count: Int { messages.count }
}

/// One node for link tests: its keys, a connection manager, its inbox and metrics.
struct TestLinkNode {
    let keys: LinkIdentity
    let manager: ConnectionManager
    let inbox: Inbox
    let metrics: TestMetrics

    init(
        group: any EventLoopGroup, configuration: ConnectionManager.Configuration = .fast,
        handler: ConnectionManager.Handler? = nil
    ) {
        keys = LinkIdentity(identity: IdentityKey(), noiseStatic: Curve25519.KeyAgreement.PrivateKey())
        inbox = Inbox()
        metrics = TestMetrics()
        manager = ConnectionManager(
            local: keys, group: group, configuration: configuration, counters: LinkCounters(factory: metrics),
            handler: handler ?? inbox.handler)
    }

    var peerID: PeerID { keys.peerID }

    func rejected(_ reason: LinkCounters.Rejection) -> Int64 {
        metrics.counterTotal(label: "privatus_link_rejected_total", dimensions: [("reason", reason.rawValue)])
    }

    func handshakeFailures(_ reason: LinkCounters.HandshakeFailure) -> Int64 {
        metrics.counterTotal(
            label: "privatus_link_handshakes_total", dimensions: [("result", "failed"), ("reason", reason.rawValue)])
    }
}

extension ConnectionManager.Configuration {
    /// Short timeouts so that tests of failures finish quickly.
    /// Shorter timeouts than a node's, yet long enough for a loaded machine: with 500 ms, links
    /// in tests about order and back-pressure were dropped as stalled while node processes of
    /// other suites held both cores. Tests of the timeouts themselves set theirs.
    static var fast: Self {
        var configuration = Self()
        configuration.link.handshakeTimeout = .seconds(5)
        configuration.link.multiplex.stallTimeout = .seconds(5)
        return configuration
    }
}

/// A chat message whose sealed bytes are `text` (the link does not look inside).
func chat(_ text: String) -> Envelope.Body {
    .chatMessage(ChatMessage(messageID: [UInt8](repeating: 7, count: 16), sealed: Array(text.utf8)))
}

extension Link {
    func send(chat text: String) async throws { try await send(chat(text), on: .chat) }
}

/// A well-behaved exchange between `client` and `server` listening at `address`: proves the
/// listener still serves.
func roundTrip(_ client: TestLinkNode, _ server: TestLinkNode, at address: SocketAddress, text: String) async throws {
    let link = try await client.manager.connect(to: server.peerID, at: address)
    try await link.send(chat: text)
    let (from, message) = try await server.inbox.next()
    #expect(from.peerID == client.peerID)
    #expect(message == InboundMessage(stream: .chat, body: chat(text)))
}

/// A raw TCP connection that records whether the other end closed it.
final class RawConnection: Sendable {
    let channel: any Channel

    static func open(
        to address: SocketAddress, from source: SocketAddress? = nil, group: any EventLoopGroup
    ) async throws -> RawConnection {
        var bootstrap = ClientBootstrap(group: group)
        if let source { bootstrap = bootstrap.bind(to: source) }
        return RawConnection(channel: try await bootstrap.connect(to: address).get())
    }

    init(channel: any Channel) {
        self.channel = channel
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Waits until the other side closes the connection (fails after 30 s).
    func waitUntilClosed() async throws {
        let channel = self.channel
        try await within { try await channel.closeFuture.get() }
    }
}
