import Crypto
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusNet
import PrivatusWire

/// `privatus bench transport`: links between two processes on loopback, through the real
/// ``ConnectionManager`` and ``Link`` API, beside plain NIO TCP between the same two processes in
/// the same run (``PlainTCP``).
///
/// The bench dials a second copy of the executable (``TransportPeer``), which echoes small
/// messages and drops bulk data. Figures:
///
/// - `handshake_ms` (p50): a whole dial from a node with a fresh identity — TCP connect, Noise XX,
///   both signatures — until ``ConnectionManager/connect(to:at:)`` returns; each link closed before
///   the next dial. `handshakes_per_s`: dials completed per second with 8 in flight (the dials
///   of the idle-link phase).
/// - `rtt_p50_us`, `rtt_p99_us`: a 64-byte envelope (a chat message) sent with
///   ``Link/send(_:on:)`` until the handler receives its echo; `plain_rtt_*_us`: 64 bytes written
///   and read back on a plain connection through `NIOAsyncChannel`, from a task (the reference
///   of the target); `plain_loop_rtt_*_us`: the same with both ends as handlers on their event
///   loops, no task (the floor, ``PlainTCP/LoopEcho``). Blocks of the three alternate, so the
///   machine's noise falls on all alike.
/// - `throughput_mb_s`: bulk messages that each fill one 64 KiB link frame, sent on the bulk
///   stream until the peer has read them all; `plain_tcp_mb_s`: the same bytes in writes of the
///   same size. The median of ``Options/bulkRounds`` alternating rounds each.
/// - `mem_per_conn_kb`: the listener's resident memory with ``Options/idleLinks`` idle links open
///   (each has carried one round trip) minus before, per link; `dialer_mem_per_conn_kb` the
///   same on the dialling side, where each link belongs to a node of its own.
/// - Where the time goes, from the scheduler's account of both processes over the same blocks
///   and rounds (`/proc/<pid>/task/*/schedstat`): `rtt_cpu_us`, `plain_rtt_cpu_us` and
///   `plain_loop_rtt_cpu_us`, CPU time per round trip; `rtt_thread_runs`, `plain_rtt_thread_runs`
///   and `plain_loop_rtt_thread_runs`, threads put on a CPU per round trip (each wake-up of a
///   sleeping thread counts); `rtt_over_loop_us`, the secured round trip above the floor; `bulk_cpu_us_per_message` and
///   `plain_bulk_cpu_us_per_message`, CPU time per 64 KiB message.
public struct TransportSuite: Sendable {
    public struct Options: Sendable {
        /// Dials timed for `handshake_ms` (after 10 untimed).
        public var handshakes = 300
        /// Round trips timed for each of `rtt_*` and `plain_rtt_*`.
        public var roundTrips = 20_000
        /// Bytes moved in each bulk round.
        public var bulkBytes = 256 << 20
        /// Bulk rounds per side, alternating.
        public var bulkRounds = 3
        /// Links held open for `mem_per_conn_kb`.
        public var idleLinks = 1000
        /// Threads of the event loop group, in each process.
        public var eventLoopThreads = 1
        /// An experiment: Swift concurrency's tasks run on the event loops (NIO's singleton group
        /// installed as the global executor, in each process), so no message crosses between a
        /// loop and the concurrency pool.
        public var tasksOnEventLoops = false

        public init() {}
    }

    public let options: Options
    /// The `privatus` executable to start as the peer (`privatus bench transport-peer`).
    public let peerExecutable: String

    public init(options: Options = Options(), peerExecutable: String) {
        self.options = options
        self.peerExecutable = peerExecutable
    }

    /// Dials in flight at once in the idle-link phase.
    static let dialConcurrency = 8
    /// Round trips per block; secured and plain blocks alternate.
    static let blockSize = 1000

    public func run() async throws -> [String: Double] {
        ProcessResources.raiseOpenFileLimit()
        if options.tasksOnEventLoops {
            let group = try Self.runTasksOnEventLoops(threads: options.eventLoopThreads)
            var figures = try await measureActiveLinks(group: group)
            figures.merge(try await measureIdleLinks(group: group)) { $1 }
            figures["event_loop_threads"] = Double(options.eventLoopThreads)
            figures["tasks_on_event_loops"] = 1
            return figures
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.eventLoopThreads)
        do {
            var figures = try await measureActiveLinks(group: group)
            figures.merge(try await measureIdleLinks(group: group)) { $1 }
            figures["event_loop_threads"] = Double(options.eventLoopThreads)
            try await group.shutdownGracefully()
            return figures
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Installs NIO's singleton group, of `threads` loops, as Swift concurrency's global executor
    /// and returns it (it is never shut down). Once per process.
    static func runTasksOnEventLoops(threads: Int) throws -> any EventLoopGroup {
        NIOSingletons.groupLoopCountSuggestion = threads
        guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else {
            throw TransportBenchError(description: "NIO could not take over the global executor here")
        }
        return MultiThreadedEventLoopGroup.singleton
    }

    // MARK: - Handshakes, round trips, throughput

    private func measureActiveLinks(group: any EventLoopGroup) async throws -> [String: Double] {
        let peer = try PeerProcess.start(
            executable: peerExecutable, eventLoopThreads: options.eventLoopThreads, maximumConnections: 64,
            tasksOnEventLoops: options.tasksOnEventLoops)
        defer { peer.stop() }
        var figures: [String: Double] = [:]

        var handshakes: [Double] = []
        for index in 0..<(10 + options.handshakes) {
            let dialer = ConnectionManager(local: Self.freshIdentity(), group: group) { _, _ in }
            let start = ContinuousClock.now
            _ = try await dialer.connect(to: peer.peerID, at: peer.linkAddress)
            let took = ContinuousClock.now - start
            await dialer.shutdown(grace: .seconds(1))
            if index >= 10 { handshakes.append(took.seconds * 1000) }
        }
        figures["handshake_ms"] = Self.percentile(handshakes, 50)
        figures["handshake_p99_ms"] = Self.percentile(handshakes, 99)

        let inbox = LinkInbox()
        let dialer = ConnectionManager(local: Self.freshIdentity(), group: group, handler: inbox.handler)
        let link = try await dialer.connect(to: peer.peerID, at: peer.linkAddress)
        figures.merge(try await measureRoundTrips(link: link, inbox: inbox, peer: peer, group: group)) { $1 }
        figures.merge(try await measureThroughput(link: link, inbox: inbox, peer: peer, group: group)) { $1 }
        await dialer.shutdown(grace: .seconds(1))
        return figures
    }

    private func measureRoundTrips(
        link: Link, inbox: LinkInbox, peer: PeerProcess, group: any EventLoopGroup
    ) async throws -> [String: Double] {
        let small = Self.chatBody(encodedBytes: 64)
        let ping = ByteBuffer(repeating: 0x61, count: 64)
        let blocks = max(1, options.roundTrips / Self.blockSize)
        let perBlock = max(1, options.roundTrips / blocks)
        var secured: [Double] = []
        var plain: [Double] = []
        var securedCost = ProcessResources.SchedulerStats()
        var plainCost = ProcessResources.SchedulerStats()
        var loop: [Double] = []
        var loopCost = ProcessResources.SchedulerStats()
        let loopClient = try await PlainTCP.LoopClient.connect(group: group, port: peer.loopEchoPort, ping: ping)
        defer { loopClient.channel.close(promise: nil) }
        let connection = try await PlainTCP.connect(group: group, host: "127.0.0.1", port: peer.plainPort, mode: .echo)
        try await connection.executeThenClose { inbound, outbound in
            var replies = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(integer: PlainTCP.Mode.echo.rawValue))
            _ = try await inbox.roundTrips(on: link, body: small, count: min(500, perBlock))
            _ = try await Self.plainRoundTrips(count: min(500, perBlock), ping: ping, replies: &replies, outbound)
            _ = try await loopClient.roundTrips(count: min(500, perBlock))
            for _ in 0..<blocks {
                var before = peer.schedulerStatsOfBoth
                secured += try await inbox.roundTrips(on: link, body: small, count: perBlock)
                var after = peer.schedulerStatsOfBoth
                securedCost = securedCost + (after - before)
                before = after
                plain += try await Self.plainRoundTrips(count: perBlock, ping: ping, replies: &replies, outbound)
                after = peer.schedulerStatsOfBoth
                plainCost = plainCost + (after - before)
                before = after
                loop += try await loopClient.roundTrips(count: perBlock)
                after = peer.schedulerStatsOfBoth
                loopCost = loopCost + (after - before)
            }
        }
        let figures = [
            "rtt_p50_us": Self.percentile(secured, 50), "rtt_p99_us": Self.percentile(secured, 99),
            "plain_rtt_p50_us": Self.percentile(plain, 50), "plain_rtt_p99_us": Self.percentile(plain, 99),
            "plain_loop_rtt_p50_us": Self.percentile(loop, 50), "plain_loop_rtt_p99_us": Self.percentile(loop, 99),
        ]
        return figures.merging([
            "rtt_overhead_us": figures["rtt_p50_us"]! - figures["plain_rtt_p50_us"]!,
            "rtt_of_plain_pct": 100 * figures["rtt_p50_us"]! / figures["plain_rtt_p50_us"]!,
            "rtt_over_loop_us": figures["rtt_p50_us"]! - figures["plain_loop_rtt_p50_us"]!,
            "plain_loop_rtt_cpu_us": loopCost.microseconds(per: loop.count),
            "plain_loop_rtt_thread_runs": loopCost.runs(per: loop.count),
            "rtt_cpu_us": securedCost.microseconds(per: secured.count),
            "plain_rtt_cpu_us": plainCost.microseconds(per: plain.count),
            "rtt_thread_runs": securedCost.runs(per: secured.count),
            "plain_rtt_thread_runs": plainCost.runs(per: plain.count),
        ]) { $1 }
    }

    private static func plainRoundTrips(
        count: Int, ping: ByteBuffer, replies: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws -> [Double] {
        var samples: [Double] = []
        samples.reserveCapacity(count)
        for _ in 0..<count {
            let start = ContinuousClock.now
            try await outbound.write(ping)
            var received = 0
            while received < ping.readableBytes {
                guard let reply = try await replies.next() else { throw TransportBenchError.connectionClosed }
                received += reply.readableBytes
            }
            samples.append((ContinuousClock.now - start).microseconds)
        }
        return samples
    }

    private func measureThroughput(
        link: Link, inbox: LinkInbox, peer: PeerProcess, group: any EventLoopGroup
    ) async throws -> [String: Double] {
        // Each message fills one link frame: 65,517 envelope bytes, 65,537 bytes on the wire.
        let bulk = Self.chatBody(encodedBytes: WireLimits.maxFragmentPayload)
        let messageBytes = try WireCodec.encode(Envelope(bulk)).count
        let sync = Self.chatBody(encodedBytes: 64)
        let count = max(1, options.bulkBytes / messageBytes)
        let payload = ByteBuffer(repeating: 0x62, count: messageBytes)
        let total = count * messageBytes
        var secured: [Double] = []
        var plain: [Double] = []
        var securedCost = ProcessResources.SchedulerStats()
        var plainCost = ProcessResources.SchedulerStats()
        let connection = try await PlainTCP.connect(group: group, host: "127.0.0.1", port: peer.plainPort, mode: .sink)
        try await connection.executeThenClose { inbound, outbound in
            var replies = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(integer: PlainTCP.Mode.sink.rawValue))
            for _ in 0..<options.bulkRounds {
                var before = peer.schedulerStatsOfBoth
                let start = ContinuousClock.now
                for _ in 0..<count { try await link.send(bulk, on: .bulk) }
                try await link.send(sync, on: .bulk)
                _ = try await inbox.next()
                secured.append(Double(total) / (ContinuousClock.now - start).seconds / 1_000_000)
                var after = peer.schedulerStatsOfBoth
                securedCost = securedCost + (after - before)
                before = after

                plain.append(try await PlainTCP.sinkRound(count: count, payload: payload, replies: &replies, outbound))
                after = peer.schedulerStatsOfBoth
                plainCost = plainCost + (after - before)
            }
        }
        let figures = ["throughput_mb_s": Self.percentile(secured, 50), "plain_tcp_mb_s": Self.percentile(plain, 50)]
        return figures.merging([
            "throughput_of_plain_pct": 100 * figures["throughput_mb_s"]! / figures["plain_tcp_mb_s"]!,
            "bulk_message_bytes": Double(messageBytes),
            "bulk_cpu_us_per_message": securedCost.microseconds(per: count * options.bulkRounds),
            "plain_bulk_cpu_us_per_message": plainCost.microseconds(per: count * options.bulkRounds),
        ]) { $1 }
    }

    // MARK: - Idle links

    /// A fresh peer (so that earlier phases' freed memory does not hide what the links take),
    /// warmed up by one link; then ``Options/idleLinks`` nodes of this process dial it.
    private func measureIdleLinks(group: any EventLoopGroup) async throws -> [String: Double] {
        let links = options.idleLinks
        let peer = try PeerProcess.start(
            executable: peerExecutable, eventLoopThreads: options.eventLoopThreads, maximumConnections: links + 64,
            tasksOnEventLoops: options.tasksOnEventLoops)
        defer { peer.stop() }
        let small = Self.chatBody(encodedBytes: 64)

        let warmInbox = LinkInbox()
        let warm = ConnectionManager(local: Self.freshIdentity(), group: group, handler: warmInbox.handler)
        try await warm.connect(to: peer.peerID, at: peer.linkAddress).send(small, on: .chat)
        _ = try await warmInbox.next()
        await warm.shutdown(grace: .seconds(1))
        try await Task.sleep(for: .milliseconds(300))

        guard let peerBefore = peer.residentKiB, let selfBefore = ProcessResources.residentKiB() else {
            throw TransportBenchError.peerFailed("no /proc/<pid>/status to read its memory from")
        }
        // The dialling nodes exist before the clock starts: a node has its keys already.
        let dialers = (0..<links).map { _ in
            let inbox = LinkInbox()
            return (ConnectionManager(local: Self.freshIdentity(), group: group, handler: inbox.handler), inbox)
        }
        var opened: [Link?] = Array(repeating: nil, count: links)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: (Int, Link).self) { tasks in
            var next = 0
            func dial() {
                let index = next
                let (manager, _) = dialers[index]
                tasks.addTask { (index, try await manager.connect(to: peer.peerID, at: peer.linkAddress)) }
                next += 1
            }
            while next < min(Self.dialConcurrency, links) { dial() }
            while let (index, link) = try await tasks.next() {
                opened[index] = link
                if next < links { dial() }
            }
        }
        let dialling = ContinuousClock.now - start
        // One round trip on each: the peer has registered every link (its handler answered).
        for (index, link) in opened.enumerated() {
            try await link!.send(small, on: .chat)
            _ = try await dialers[index].1.next()
        }
        try await Task.sleep(for: .milliseconds(500))
        guard let peerAfter = peer.residentKiB, let selfAfter = ProcessResources.residentKiB() else {
            throw TransportBenchError.peerFailed("no /proc/<pid>/status to read its memory from")
        }
        peer.stop()
        for (manager, _) in dialers { await manager.shutdown(grace: .zero) }
        return [
            "handshakes_per_s": Double(links) / dialling.seconds,
            "mem_per_conn_kb": Double(peerAfter - peerBefore) / Double(links),
            "dialer_mem_per_conn_kb": Double(selfAfter - selfBefore) / Double(links),
            "idle_links": Double(links),
        ]
    }

    // MARK: - Helpers

    static func freshIdentity() -> LinkIdentity {
        LinkIdentity(identity: IdentityKey(), noiseStatic: Curve25519.KeyAgreement.PrivateKey())
    }

    /// A chat message whose envelope encodes to at most `encodedBytes` bytes, as close as the
    /// protobuf length prefixes allow.
    static func chatBody(encodedBytes: Int) -> Envelope.Body {
        let id = [UInt8](repeating: 7, count: ChatMessage.messageIDBytes)
        for sealed in stride(from: encodedBytes, through: 0, by: -1) {
            let body = Envelope.Body.chatMessage(
                ChatMessage(messageID: id, sealed: [UInt8](repeating: 0x61, count: sealed)))
            if let bytes = try? WireCodec.encode(Envelope(body)), bytes.count <= encodedBytes { return body }
        }
        preconditionFailure("no chat message encodes to \(encodedBytes) bytes or fewer")
    }

    /// The nearest-rank percentile `p` (0–100) of `samples`; 0 for none.
    static func percentile(_ samples: [Double], _ p: Double) -> Double {
        guard !samples.isEmpty else { return 0 }
        let sorted = samples.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }
}

extension PeerProcess {
    /// The scheduler's account of the peer and of this process together.
    var schedulerStatsOfBoth: ProcessResources.SchedulerStats {
        ProcessResources.schedulerStats() + ProcessResources.schedulerStats(of: child.pid)
    }
}

extension ProcessResources.SchedulerStats {
    func microseconds(per operations: Int) -> Double { Double(cpuNanoseconds) / 1000 / Double(max(1, operations)) }
    func runs(per operations: Int) -> Double { Double(runs) / Double(max(1, operations)) }
}
