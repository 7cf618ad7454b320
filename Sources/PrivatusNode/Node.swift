import Crypto
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusNet
import PrivatusProfile
import PrivatusStore
import PrivatusWire
import Prometheus
import ServiceLifecycle
import Synchronization

/// Where a node listens (flags > environment > config.json > defaults, resolved by the caller).
public struct NodeSettings: Sendable {
    /// Link listen addresses.
    public var listen: [(host: String, port: Int)]
    /// The control API's loopback address.
    public var ui: (host: String, port: Int)
    public var connections = ConnectionManager.Configuration()
    /// Retries of unacknowledged messages: the first after `retryInitial`, each further one
    /// twice as late, at most `retryMaximum` apart.
    public var retryInitial = Duration.seconds(30)
    public var retryMaximum = Duration.seconds(15 * 60)
    /// Whether marking messages read sends read receipts.
    public var readReceipts = true
    /// How long a message may wait for its receipt before it is `failed`.
    public var deliveryDeadline = Duration.seconds(7 * 24 * 3600)
    /// A gap in a sender's message numbers: asked for again after `gapResend`, given up (what
    /// waited behind it shown) after `gapRelease`.
    public var gapResend = Duration.seconds(2)
    public var gapRelease = Duration.seconds(60)
    /// Whether the node's bundle record in the DHT carries its addresses (strangers who know
    /// the PeerID can then reach it).
    public var discoverable = true
    /// Exempts loopback addresses from the DHT's subnet caps and rate limits (local networks,
    /// tests).
    public var dhtExemptLoopback = false
    /// Nodes to join the network through ("host:port"): the DHT endpoint pings them at start
    /// (and again while its routing table is empty); `status` shows them.
    public var bootstrap: [String] = []
    /// Received files: the folder they go to (nil: `<profile>/downloads`), the largest accepted,
    /// and the size up to which verified contacts' offers are accepted without asking.
    public var downloads: String?
    public var fileMaximumBytes: UInt64 = 64 << 30
    public var fileAutoAcceptBytes: UInt64 = 0
    /// The most bytes per second of files sent to one peer (nil: no limit).
    public var fileBandwidth: UInt64?
    /// Alert rules (docs/OPERATIONS.md; config.json `alerts` replaces them).
    public var alertRules = AlertRule.defaults
    /// The free-space probe of received files (tests inject one; nil: statvfs).
    public var freeSpace: (@Sendable (String) -> UInt64?)?

    public init(listen: [(host: String, port: Int)], ui: (host: String, port: Int)) {
        self.listen = listen
        self.ui = ui
    }
}

/// A running Privatus node: the profile's database, its links and its control API, as a
/// swift-service-lifecycle `Service` (DESIGN.md, "Node runtime").
///
/// `run()` opens the database, starts listening for links, then serves the control API on
/// loopback; once that listens it writes `<profile>/api-token` (a fresh token each run) and
/// `<profile>/node.json`. On graceful shutdown it stops accepting, lets links flush, and removes
/// `node.json`.
public final class Node: Service, Sendable {
    public let profile: UnlockedProfile
    public let settings: NodeSettings
    let logger: Logger
    let started = ContinuousClock.now
    /// The node's one background scheduler.
    public let scheduler: Scheduler
    private let state = Mutex<Running?>(nil)
    /// The process's figures, the sampler's readings and the alert rules, once a second.
    let monitor: Monitor

    struct Running: Sendable {
        let store: Store
        let links: ConnectionManager
        let messenger: Messenger
        let listenAddresses: [String]
        let invite: String
        var ui: String?
        var startupMs: Double?
    }

    /// Where the process's metrics are collected (``bootstrapMetrics()``): the registry served at
    /// `/metrics`, and the in-process sampler served at `/api/v1/metrics`.
    let metrics: NodeMetrics

    public init(
        profile: UnlockedProfile, settings: NodeSettings, metrics: NodeMetrics, logger: Logger
    ) {
        self.metrics = metrics
        self.profile = profile
        self.settings = settings
        self.logger = logger
        self.scheduler = Scheduler(logger: logger)
        self.monitor = Monitor(
            sampler: metrics.sampler, rules: settings.alertRules, directory: profile.layout.directory)
    }

    public func run() async throws {
        let layout = profile.layout
        let writeLatency = Timer(label: "privatus_store_write_seconds")
        let checkpoints = Dictionary(
            uniqueKeysWithValues: [Checkpointer.Kind.background, .catchUp, .limit].map {
                ($0, Counter(label: "privatus_store_checkpoints_total", dimensions: [("kind", $0.rawValue)]))
            })
        let store = try Store(
            path: layout.databaseFile, databaseKey: profile.contents.keys.databaseKey,
            observingWrites: { took in writeLatency.recordNanoseconds(took.nanoseconds) },
            observingCheckpoints: { kind in checkpoints[kind]?.increment() })
        let keys = profile.contents.keys
        let messenger = try Messenger(
            store: store, keys: keys, name: profile.name,
            retry: (UInt64(settings.retryInitial.milliseconds), UInt64(settings.retryMaximum.milliseconds)),
            readReceipts: settings.readReceipts, deliveryDeadline: UInt64(settings.deliveryDeadline.milliseconds),
            gaps: (UInt64(settings.gapResend.milliseconds), UInt64(settings.gapRelease.milliseconds)), logger: logger)
        var fileSettings = FileTransfers.Settings(
            downloads: settings.downloads ?? layout.downloadsDirectory, partials: layout.transfersDirectory)
        fileSettings.maximumBytes = settings.fileMaximumBytes
        fileSettings.autoAcceptBytes = settings.fileAutoAcceptBytes
        fileSettings.bandwidth = settings.fileBandwidth
        if let freeSpace = settings.freeSpace { fileSettings.freeSpace = freeSpace }
        let files = FileTransfers(store: store, messenger: messenger, settings: fileSettings, logger: logger)
        await files.start()
        await messenger.attachFiles(files)
        let linkBox = LinkManagerBox()
        let links = ConnectionManager(
            local: LinkIdentity(identity: keys.identity, noiseStatic: keys.noiseStatic),
            group: MultiThreadedEventLoopGroup.singleton, configuration: settings.connections, logger: logger,
            established: { link in await messenger.linkEstablished(link) }
        ) { peer, message in
            // Pings and unknown kinds are answered by the link itself; file chunks and requests
            // are the transfers'; the rest is chat's. Called on the link's event loop: chat
            // messages and receipts only enter the messenger's inbox there; work that touches
            // the disk runs on the global executor.
            let link = linkBox.manager?.link(to: peer.peerID)
            switch message.body {
            case .fileChunk(let chunk):
                await withTaskExecutorPreference(globalConcurrentExecutor) {
                    await files.receiveChunk(chunk, from: peer.peerID, on: link)
                }
            case .fileWant(let want):
                await withTaskExecutorPreference(globalConcurrentExecutor) {
                    await files.receiveWant(want, from: peer.peerID, on: link)
                }
            default:
                await messenger.receive(message, from: peer, on: link)
            }
        }
        linkBox.manager = links
        var listening: [String] = []
        var bound: [SocketAddress] = []
        for address in settings.listen {
            do {
                let address = try await links.listen(host: address.host, port: address.port)
                bound.append(address)
                listening.append(Self.describe(address))
            } catch {
                throw NodeError.listenFailed(address: "\(address.host):\(address.port)", flag: "--listen")
            }
        }
        let listenAddresses = listening
        let advertised = Self.advertisedAddresses(for: bound)
        await messenger.attach(links, advertising: advertised)
        // The DHT's UDP endpoint, on the port number of the first listen address. Without it
        // (the port is taken) the node still chats with contacts it knows.
        var dht: NodeDHT?
        if let first = settings.listen.first, let port = bound.first?.port {
            do {
                dht = try await NodeDHT.start(
                    store: store, host: first.host, port: port, exemptLoopback: settings.dhtExemptLoopback,
                    logger: logger)
            } catch {
                logger.warning("DHT endpoint not started", metadata: ["error": "\(error)"])
            }
        }
        if let dht {
            await messenger.attachAddressFinder { contact in await dht.addresses(of: contact) }
        }
        state.withLock {
            $0 = Running(
                store: store, links: links, messenger: messenger, listenAddresses: listenAddresses,
                invite: Invite(peerID: profile.peerID, addresses: advertised).description)
        }

        let token = SymmetricKey(size: .bits256).withUnsafeBytes { Hex.encode(Array($0)) }
        try FileIO.writeAtomically(Array(token.utf8), to: NodeFile.tokenPath(in: layout))
        let router = Router(context: ControlContext.self)
        let uiPort = PortBox(settings.ui.port)
        let access = ControlAccessRule(token: token, port: { uiPort.value })
        router.add(middleware: ControlAccess(rule: access))
        router.get("/api/v1/status") { _, _ in try await self.status() }
        router.get("/api/v1/dht") { [dht] _, _ in
            guard let dht else { throw HTTPError(.serviceUnavailable, message: "the DHT endpoint is not running") }
            return await dht.status()
        }
        router.get("/api/v1/dht/lookup/{peer}") { [dht] _, context in
            guard let dht else { throw HTTPError(.serviceUnavailable, message: "the DHT endpoint is not running") }
            let text = context.parameters.get("peer")?.removingPercentEncoding ?? ""
            guard let peer = try? PeerID(parsing: text) else {
                throw HTTPError(.badRequest, message: "not a PeerID (64 hex digits)")
            }
            return await dht.lookup(peer)
        }
        messenger.addRoutes(to: router)
        files.addRoutes(to: router)
        router.get("/api/v1/alerts") { _, _ in self.monitor.alerts }
        router.get("/api/v1/metrics") { request, _ in
            var since: UInt64?
            if let text = request.uri.queryParameters.get("since") {
                guard let value = UInt64(text) else {
                    throw HTTPError(.badRequest, message: "since: Unix milliseconds")
                }
                since = value
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.sampler.readingsJSON(since: since))))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.registry.emitToBuffer())))
        }
        let application = Application(
            router: router,
            server: ControlChannel.builder(
                sends: SendRoute.Target(access: access) { text, peer, answer in
                    messenger.send(text, to: peer, answer: answer)
                }),
            configuration: .init(address: .hostname(settings.ui.host, port: settings.ui.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                uiPort.value = port
                let host = self.settings.ui.host.contains(":") ? "[\(self.settings.ui.host)]" : self.settings.ui.host
                let ui = "http://\(host):\(port)"
                self.state.withLock { $0?.ui = ui }
                do {
                    let file = NodeFile(pid: getpid(), ui: ui, listenAddresses: listenAddresses)
                    try FileIO.writeAtomically(
                        Array(try JSONEncoder().encode(file)), to: NodeFile.path(in: layout))
                } catch {
                    self.logger.error("could not write node.json", metadata: ["error": "\(error)"])
                }
                let startup = ContinuousClock.now - self.started
                self.state.withLock { $0?.startupMs = startup.milliseconds }
                self.logger.notice(
                    "listening", metadata: ["startupMs": "\(startup.milliseconds)", "ui": "\(ui)"])
                var banner = "ui: \(ui)\n"
                for address in listenAddresses { banner += "listening: \(address)\n" }
                FileHandle.standardOutput.write(Data(banner.utf8))
            },
            logger: logger)
        // Background work: the store's upkeep (disappearing messages on time, vacuum and
        // planner statistics when idle) on the one scheduler.
        let maintenance = StoreMaintenance(store: store)
        await scheduler.every(.seconds(15), name: "store maintenance", priority: .low) {
            try maintenance.tick(at: .now, now: UInt64(Date().timeIntervalSince1970 * 1000))
        }
        // Chat: retries of what the outbox holds, prekey rotation and refill.
        await scheduler.every(.seconds(5), name: "outbox", priority: .high) { await messenger.deliverDue() }
        await scheduler.every(.seconds(1), name: "gaps", priority: .high) { await messenger.checkGaps() }
        await scheduler.every(.seconds(1), name: "file transfers", priority: .high) { await files.tick() }
        await scheduler.every(.seconds(3600), name: "prekeys", priority: .low) { try await messenger.maintainPrekeys() }
        // From here on nothing throws before the service runs: the tasks below are always
        // stopped at the end. (Chat messages that arrived earlier wait in the inbox.)
        let queues = Task { await messenger.runQueues() }
        let background = Task { await scheduler.run() }
        // The process's own figures, the sampler's reading and the alert rules on them, every
        // second, on a task of its own (the scheduler's two slots can be held by long upkeep
        // jobs; the series would have holes).
        let monitoring = Task { await self.runMonitor(store: store, links: links, messenger: messenger) }
        let joining = Task { [dht, settings, logger] in
            guard let dht else { return }
            let bundle = NodeDHT.bundleRecord(
                bundle: await messenger.publicBundle(), addresses: advertised, discoverable: settings.discoverable,
                identity: keys.identity)
            // The configured nodes, then those seen last time (so a restarted node rejoins
            // without a bootstrap node).
            await dht.join(
                bootstrap: settings.bootstrap + NodeDHT.savedPeers(in: store), bundle: bundle, logger: logger)
            // Presence: once per epoch, and again under a renewed secret.
            let publishPresence: @Sendable () async throws -> Void = {
                await dht.publishPresence(
                    secret: try await messenger.presenceSecret(), addresses: advertised,
                    noiseStatic: Array(keys.noiseStatic.publicKey.rawRepresentation), identity: keys.identity,
                    logger: logger)
            }
            try? await publishPresence()
            // Until stored (the first node of a network has no one to store it at), then daily.
            await scheduler.every(.seconds(5), name: "dht publish", priority: .low) { [settings, logger] in
                let bundle = NodeDHT.bundleRecord(
                    bundle: await messenger.publicBundle(), addresses: advertised,
                    discoverable: settings.discoverable, identity: keys.identity)
                if let bundle, await dht.needsPublishing(bundle) { await dht.publish(bundle, logger: logger) }
                try await publishPresence()
            }
            await scheduler.every(.seconds(60), name: "dht upkeep", priority: .low) {
                await dht.maintain()
                try await dht.savePeers(in: store)
            }
        }
        // Contacts learn where this node is now (its hello), and the outbox drains.
        do {
            try await messenger.dialContacts()
        } catch {
            logger.warning("could not read the contacts to dial", metadata: ["error": "\(error)"])
        }
        var failure: (any Error)?
        do {
            try await withGracefulShutdownHandler {
                try await application.runService(gracefulShutdownSignals: [])
            } onGracefulShutdown: {
                try? FileManager.default.removeItem(atPath: NodeFile.path(in: layout))
                // Watchers' streams end, so their connections can close.
                messenger.events.finish()
            }
        } catch {
            // Failing before it listened means the address could not be bound.
            let listened = state.withLock { $0?.ui != nil }
            failure =
                listened
                ? error : NodeError.listenFailed(address: "\(settings.ui.host):\(settings.ui.port)", flag: "--ui")
        }
        monitoring.cancel()
        await monitoring.value
        background.cancel()
        await background.value
        joining.cancel()
        await joining.value
        if let dht {
            do {
                try await dht.savePeers(in: store)
            } catch {
                logger.warning("could not save the DHT's known nodes", metadata: ["error": "\(error)"])
            }
            await dht.service.stop()
        }
        messenger.stopOutgoing()
        _ = await messenger.outgoingSettled()
        await links.shutdown()
        // Links are closed: what they delivered is committed, then the inbox stops.
        messenger.stopInbox()
        await queues.value
        await files.stop()
        try? FileManager.default.removeItem(atPath: NodeFile.path(in: layout))
        if let failure { throw failure }
    }

    /// The facts `status` shows.
    func status() async throws -> NodeStatus {
        guard let running = state.withLock({ $0 }) else { throw HTTPError(.serviceUnavailable) }
        return NodeStatus(
            peerId: profile.peerID.hex,
            listenAddresses: running.listenAddresses,
            ui: running.ui ?? "",
            connectedPeers: running.links.connectedPeers.count,
            queued: try running.store.outboxCount(),
            uptimeS: (ContinuousClock.now - started).seconds,
            dbBytes: running.store.fileBytes(path: profile.layout.databaseFile),
            startupMs: running.startupMs,
            invite: running.invite,
            bootstrap: settings.bootstrap)
    }

    /// The addresses to tell peers (invite, hello): each bound address, a wildcard one replaced
    /// by this machine's interface addresses of that family (dual-stack `::` takes both), loopback
    /// last, at most eight.
    static func advertisedAddresses(for bound: [SocketAddress]) -> [String] {
        let devices = (try? System.enumerateDevices()) ?? []
        var result: [String] = []
        for address in bound {
            guard let port = address.port else { continue }
            let wildcard = address.ipAddress == "0.0.0.0" || address.ipAddress == "::"
            guard wildcard else {
                result.append(describe(address))
                continue
            }
            let candidates = devices.compactMap(\.address).filter { candidate in
                switch candidate {
                case .v4: true
                case .v6: address.protocol == .inet6 && !(candidate.ipAddress ?? "").hasPrefix("fe80")
                default: false
                }
            }
            let isLoopback = { (candidate: SocketAddress) in
                let ip = candidate.ipAddress ?? ""
                return ip.hasPrefix("127.") || ip == "::1"
            }
            for candidate in candidates.filter({ !isLoopback($0) }) + candidates.filter(isLoopback) {
                guard let withPort = try? SocketAddress(ipAddress: candidate.ipAddress ?? "", port: port) else {
                    continue
                }
                result.append(describe(withPort))
            }
        }
        var seen = Set<String>()
        return Array(result.filter { seen.insert($0).inserted }.prefix(8))
    }

    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v6: "[\(address.ipAddress ?? "")]:\(address.port ?? 0)"
        default: "\(address.ipAddress ?? ""):\(address.port ?? 0)"
        }
    }
}

extension Node {
    /// Once a second until cancelled: the messages waiting (and those due for peers with an
    /// open link: the slow-delivery rule), then the monitor's tick, its alerts logged and
    /// published. Reading times come from the monotonic clock anchored at the wall clock once,
    /// so the series stay in order and evenly spaced when the system clock is set.
    func runMonitor(store: Store, links: ConnectionManager, messenger: Messenger) async {
        let outbox = Gauge(label: "privatus_chat_outbox")
        let outboxConnected = Gauge(label: "privatus_chat_outbox_connected")
        let startedAt = ContinuousClock.now
        let startedUnix = UInt64(Date().timeIntervalSince1970 * 1_000)
        var next = startedAt
        while !Task.isCancelled {
            let now = UInt64(Date().timeIntervalSince1970 * 1_000)
            if let waiting = try? store.outboxCounts(dueBy: now) {
                let connected = waiting.isEmpty ? [] : links.connectedPeers
                outbox.record(waiting.values.reduce(0) { $0 + $1.waiting })
                outboxConnected.record(
                    waiting.filter { connected.contains($0.key) }.values.reduce(0) { $0 + $1.due })
            }
            let events = monitor.tick(now: startedUnix + UInt64((ContinuousClock.now - startedAt).milliseconds))
            for event in events {
                logger.notice(
                    "alert \(event.state.rawValue)",
                    metadata: ["rule": "\(event.rule)", "metric": "\(event.metric)", "value": "\(event.value ?? .nan)"])
                let value = event.value.map { "\($0)" } ?? "missing"
                messenger.events.publish(
                    NodeEvent(
                        type: "alert", id: event.rule,
                        text: "\(event.metric) \(value) (threshold \(event.threshold))", state: event.state.rawValue,
                        name: event.severity.rawValue))
            }
            next += .seconds(1)
            if next < .now { next = .now }  // fell behind: no burst of readings to catch up
            try? await Task.sleep(until: next)
        }
    }

    /// Bootstraps swift-metrics for the process, once, with a Prometheus registry (which the
    /// node serves at `/metrics`) and the in-process sampler; returns both.
    public static func bootstrapMetrics() -> NodeMetrics {
        let metrics = NodeMetrics(registry: PrometheusCollectorRegistry(), sampler: MetricsSampler())
        MetricsSystem.bootstrap(
            MultiplexMetricsHandler(factories: [PrometheusMetricsFactory(registry: metrics.registry), metrics.sampler]))
        return metrics
    }
}

/// The process's two metrics backends.
public struct NodeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let sampler: MetricsSampler

    public init(registry: PrometheusCollectorRegistry, sampler: MetricsSampler) {
        self.registry = registry
        self.sampler = sampler
    }
}

/// The connection manager, for the link handler that is created before it.
final class LinkManagerBox: Sendable {
    private let value = Mutex<ConnectionManager?>(nil)
    var manager: ConnectionManager? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// The control API's port, set once the server listens.
final class PortBox: Sendable {
    private let port: Mutex<Int>
    init(_ port: Int) { self.port = Mutex(port) }
    var value: Int {
        get { port.withLock { $0 } }
        set { port.withLock { $0 = newValue } }
    }
}

/// Why a node could not start.
public enum NodeError: Error, Sendable, CustomStringConvertible {
    case listenFailed(address: String, flag: String)

    public var description: String {
        switch self {
        case .listenFailed(let address, let flag): "cannot listen on \(address); choose another with \(flag)"
        }
    }
}
