import Logging
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusWire
import Synchronization

/// The node's links: one per peer, reused; a listener for inbound ones; limits on how many,
/// how often and how idle; and a graceful shutdown (DESIGN.md, "Transport").
///
/// What peers send is passed to `handler`, one message at a time per link, in order: a link
/// reads its next message only after the handler has returned (back-pressure reaches the peer
/// through TCP). The handler is called on the link's event loop (the reading task prefers it as
/// its executor, ``EventLoopTaskExecutor``), and so is every nonisolated async function it calls and
/// every actor without an executor of its own while it runs: it must not block, and work that
/// may (the disk) belongs under `withTaskExecutorPreference(globalConcurrentExecutor)`. What it
/// sends back on a link from there is written without a thread hop. `established`, when given,
/// is called with each new link once it is registered (both directions; the node sends its
/// hello there).
public actor ConnectionManager {
    public struct Configuration: Sendable {
        /// Links at most; past it the least recently used idle link is closed, or the new one
        /// refused when none is idle.
        public var maximumConnections = 256
        /// A link unused (no message either way) for this long is closed.
        public var idleTimeout = Duration.seconds(300)
        /// A link unused for this long may be evicted for a new one at the limit.
        public var evictableAfter = Duration.seconds(10)
        /// How long a dial may take to connect.
        public var connectTimeout = TimeAmount.seconds(10)
        /// Handshake, keepalive, streams.
        public var link = LinkConfiguration()
        /// Connection attempts per address.
        public var rateLimits = AddressRateLimiter.Policy()
        /// Inbound handshakes in progress at once, over all addresses: past it new connections
        /// are closed at once (many addresses cannot hold the node's descriptors in handshakes).
        public var maximumPendingHandshakes = 128

        public init() {}
    }

    /// Called with each message a link receives, on that link's event loop.
    public typealias Handler = nonisolated(nonsending) @Sendable (LinkPeer, InboundMessage) async -> Void

    public nonisolated let local: LinkIdentity
    public nonisolated let configuration: Configuration
    nonisolated let counters: LinkCounters
    nonisolated let limiter: AddressRateLimiter
    nonisolated let pendingHandshakes = PendingHandshakes()
    private let group: any EventLoopGroup
    private let handler: Handler
    private let established: (@Sendable (Link) async -> Void)?
    private let logger: Logger

    /// The open links by peer. Kept in a lock, not only in the actor, so that sending to a peer
    /// and looking up its link (``send(_:on:to:)``, ``link(to:)``) never wait for the actor's turn
    /// or move the caller off its thread; changed only by the actor.
    private nonisolated let registry = Mutex<[PeerID: Link]>([:])
    private var dials: [PeerID: Task<Link, any Error>] = [:]
    private var listeners: [any Channel] = []
    private var acceptLoops: [Task<Void, Never>] = []
    private var sweeper: Task<Void, Never>?
    private var shuttingDown = false

    public init(
        local: LinkIdentity, group: any EventLoopGroup, configuration: Configuration = Configuration(),
        counters: LinkCounters = LinkCounters(), logger: Logger = Logger(label: "privatus.net"),
        established: (@Sendable (Link) async -> Void)? = nil,
        handler: @escaping Handler
    ) {
        self.established = established
        self.local = local
        self.group = group
        self.configuration = configuration
        self.counters = counters
        self.limiter = AddressRateLimiter(policy: configuration.rateLimits)
        self.logger = logger
        self.handler = handler
    }

    // MARK: - Listening

    /// Listens on `host`:`port` (port 0: an ephemeral one) and returns the address bound.
    public func listen(host: String, port: Int) async throws -> SocketAddress {
        let local = self.local
        let configuration = self.configuration
        let counters = self.counters
        let limiter = self.limiter
        let pending = self.pendingHandshakes
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptErrorHandler())
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { () -> Accepted in
                    // Refused before any handshake work; closing here (not throwing) keeps the
                    // listener's accept loop going.
                    if let address = channel.remoteAddress, !limiter.allow(address) {
                        counters.frameRejected(.rateLimited)
                        channel.close(promise: nil)
                        return .refused
                    }
                    guard pending.enter(limit: configuration.maximumPendingHandshakes) else {
                        counters.frameRejected(.connectionLimit)
                        channel.close(promise: nil)
                        return .refused
                    }
                    let connection = try LinkPipeline.configure(
                        channel, local: local, expectedPeer: nil, configuration: configuration.link,
                        counters: counters)
                    connection.established.whenComplete { _ in pending.leave() }
                    return .link(connection)
                }
            }
        guard let address = server.channel.localAddress else { throw LinkError.closed }
        listeners.append(server.channel)
        acceptLoops.append(
            Task { [weak self] in
                try? await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { inbound in
                        for try await accepted in inbound {
                            guard case .link(let connection) = accepted else { continue }
                            group.addTask { await self?.run(connection, isInitiator: false, dialled: nil) }
                        }
                    }
                }
            })
        startSweeper()
        return address
    }

    // MARK: - Dialling

    /// The link to `peer`: the open one if there is one, else a new connection to `address`
    /// whose responder must authenticate as `peer`. Concurrent calls for one peer share a dial.
    /// - Throws: ``LinkError/rateLimited`` while `address` is over its rate or backing off after
    ///   failures; ``LinkError/unexpectedPeer``; ``LinkError/handshakeFailed``,
    ///   ``LinkError/handshakeTimeout``; connection errors from the system.
    public func connect(to peer: PeerID, at address: SocketAddress) async throws -> Link {
        if let link = link(to: peer) { return link }
        if let dial = dials[peer] { return try await dial.value }
        guard !shuttingDown else { throw LinkError.closed }
        guard limiter.allow(address) else {
            counters.frameRejected(.rateLimited)
            throw LinkError.rateLimited
        }
        let dial = Task { try await self.dial(peer, at: address) }
        dials[peer] = dial
        defer { dials[peer] = nil }
        do {
            let link = try await dial.value
            limiter.recordSuccess(address)
            return link
        } catch {
            limiter.recordFailure(address)
            throw error
        }
    }

    private func dial(_ peer: PeerID, at address: SocketAddress) async throws -> Link {
        let local = self.local
        let configuration = self.configuration
        let counters = self.counters
        let connected = try await ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(to: address) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try LinkPipeline.configure(
                        channel, local: local, expectedPeer: peer, configuration: configuration.link,
                        counters: counters)
                }
            }
        return try await withCheckedThrowingContinuation { continuation in
            let runner = Task { await self.run(connected, isInitiator: true, dialled: continuation) }
            _ = runner
        }
    }

    // MARK: - Running a link

    /// Waits for the handshake, registers the link, and delivers its messages until it closes.
    private func run(
        _ connection: LinkPipeline.Connection, isInitiator: Bool,
        dialled: CheckedContinuation<Link, any Error>?
    ) async {
        let peer: LinkPeer
        do {
            peer = try await connection.established.get()
        } catch {
            try? await connection.channel.close()
            dialled?.resume(throwing: (error as? LinkError) ?? LinkError.handshakeFailed)
            return
        }
        let channel = connection.channel
        let link = Link(
            peer: peer, isInitiator: isInitiator, localPeer: local.peerID, channel: channel,
            maxMessageBytes: configuration.link.multiplex.maxMessageBytes, gate: connection.gate)
        switch register(link) {
        case .registered:
            break
        case .kept(let existing):
            // Our dial crossed the peer's and lost the tie-break: the peer's link serves.
            dialled?.resume(returning: existing)
            return
        case .refused:
            dialled?.resume(throwing: LinkError.connectionLimit)
            return
        }
        dialled?.resume(returning: link)
        if let established { Task { await established(link) } }
        do {
            let handler = self.handler
            try await withTaskExecutorPreference(EventLoopTaskExecutor(channel.eventLoop)) {
                try await Self.deliver(connection.inbound, from: peer, on: link, to: handler)
            }
        } catch {
            logger.debug("link closed", metadata: ["reason": "\(error)"])
        }
        unregister(link)
        try? await channel.close()
    }

    /// Passes every message of `inbound` to `handler`, one at a time, until the link closes. Runs
    /// on the task's preferred executor: the link's event loop.
    /// - Throws: the error that closed the link.
    private nonisolated static func deliver(
        _ inbound: LinkInbound, from peer: LinkPeer, on link: Link, to handler: Handler
    ) async throws {
        while let message = try await inbound.next() {
            link.touch()
            await handler(peer, message)
        }
    }

    enum Registration {
        case registered
        /// The new link lost to an open one, which serves instead.
        case kept(Link)
        /// The new link was closed (limit, or shutting down).
        case refused
    }

    /// Adds a new link, deciding between two links to the same peer and enforcing the limit.
    private func register(_ link: Link) -> Registration {
        let peer = link.peer.peerID
        guard !shuttingDown else {
            link.close()
            return .refused
        }
        if let existing = self.link(to: peer) {
            // Two links crossed (both sides dialled): both sides keep the one dialled by the
            // lower PeerID; a link dialled again by the same side replaces the old one.
            if existing.initiatorPeer != link.initiatorPeer,
                existing.initiatorPeer.bytes.lexicographicallyPrecedes(link.initiatorPeer.bytes)
            {
                link.close()
                return .kept(existing)
            }
            existing.close()
        } else if registry.withLock({ $0.count }) >= configuration.maximumConnections {
            let now = ContinuousClock.now
            let idle = registry.withLock { Array($0.values) }.filter {
                now - $0.lastUsed >= configuration.evictableAfter
            }
            guard let victim = idle.min(by: { $0.lastUsed < $1.lastUsed }) else {
                counters.frameRejected(.connectionLimit)
                link.close()
                return .refused
            }
            registry.withLock { $0[victim.peer.peerID] = nil }
            victim.close()
        }
        registry.withLock { $0[peer] = link }
        counters.connections.increment()
        return .registered
    }

    private func unregister(_ link: Link) {
        counters.connections.decrement()
        registry.withLock { links in
            if links[link.peer.peerID] === link { links[link.peer.peerID] = nil }
        }
    }

    // MARK: - Using links

    /// Sends a message to `peer` on `stream` over its open link.
    /// - Throws: ``LinkError/closed`` when there is no open link to `peer`;
    ///   ``LinkError/messageTooLarge``.
    public nonisolated(nonsending) func send(
        _ body: Envelope.Body, on stream: StreamID, to peer: PeerID
    ) async throws {
        guard let link = link(to: peer) else { throw LinkError.closed }
        try await link.send(body, on: stream)
    }

    /// The peers with an open link.
    public nonisolated var connectedPeers: Set<PeerID> {
        registry.withLock { Set($0.filter { $0.value.isActive }.keys) }
    }

    /// The open link to `peer`, if any.
    public nonisolated func link(to peer: PeerID) -> Link? {
        registry.withLock { $0[peer] }.flatMap { $0.isActive ? $0 : nil }
    }

    /// Closes links unused for longer than the idle timeout; returns how many.
    @discardableResult
    public func closeIdleLinks(now: ContinuousClock.Instant = .now) -> Int {
        let idle = registry.withLock { Array($0.values) }.filter { now - $0.lastUsed >= configuration.idleTimeout }
        for link in idle { link.close() }
        return idle.count
    }

    private func startSweeper() {
        guard sweeper == nil else { return }
        let interval = max(Duration.seconds(1), configuration.idleTimeout / 4)
        sweeper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.closeIdleLinks()
            }
        }
    }

    // MARK: - Shutting down

    /// Stops accepting, lets every link hand its queued messages to the socket (for at most
    /// `grace`), then closes everything.
    public func shutdown(grace: Duration = .seconds(5)) async {
        shuttingDown = true
        sweeper?.cancel()
        for listener in listeners { try? await listener.close() }
        listeners = []
        let open = registry.withLock { Array($0.values) }
        await withTaskGroup(of: Void.self) { group in
            for link in open {
                group.addTask {
                    await withTaskGroup(of: Void.self) { race in
                        race.addTask { await link.drain() }
                        race.addTask {
                            // The drain ignores cancellation: past the grace, closing the link
                            // is what ends it.
                            try? await Task.sleep(for: grace)
                            link.close()
                        }
                        await race.next()
                        race.cancelAll()
                    }
                    try? await link.channel.close()
                }
            }
        }
        for loop in acceptLoops { loop.cancel() }
        acceptLoops = []
    }
}

/// What the listener's initializer made of an accepted connection.
enum Accepted: Sendable {
    case link(LinkPipeline.Connection)
    /// Over the address's rate: closed at once.
    case refused
}

/// Keeps the listener alive through accept errors (a full file-descriptor table, a connection
/// reset before it was accepted): they are dropped here instead of ending the accept loop.
final class AcceptErrorHandler: ChannelInboundHandler {
    typealias InboundIn = Any

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

/// Counts inbound handshakes in progress.
final class PendingHandshakes: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts one in, unless `limit` are already in.
    func enter(limit: Int) -> Bool {
        while true {
            let current = count.load(ordering: .relaxed)
            guard current < limit else { return false }
            if count.compareExchange(expected: current, desired: current + 1, ordering: .relaxed).exchanged {
                return true
            }
        }
    }

    func leave() {
        count.subtract(1, ordering: .relaxed)
    }

    var value: Int { count.load(ordering: .relaxed) }
}
