import Crypto
import Dispatch
import Foundation
import Metrics
import PrivatusCore
import PrivatusNode
import PrivatusStore
import Prometheus
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `privatus bench monitor` (issue 10): what the monitoring itself costs.
///
/// - `metric_update_ns`: one counter increment through the node's two metrics backends (the
///   Prometheus registry and the in-process sampler behind swift-metrics' multiplexer, as
///   `privatus run` bootstraps them), on one thread; beside it each backend alone, a gauge, a timer, two threads
///   incrementing one counter at once, and the hardware's floor (`atomic_add_ns`: one relaxed
///   atomic add, the least an update shared between threads can cost).
/// - `sampler_cpu_percent`: the CPU the node's once-a-second monitoring takes at rest, in percent
///   of one core: the process's figures from `/proc` and `statvfs`, the sampler's reading of
///   `metrics` metrics into the hour-long rings, the default alert rules (``Monitor/tick(now:)``),
///   timed as the process's CPU clock over `ticks` ticks.
/// - `readings_hour_ms` / `readings_since_us`: `GET /api/v1/metrics`'s work (readings and JSON)
///   for the whole hour, and for the one new reading a dashboard polling with `since` asks for.
/// - `node_idle_cpu_percent`: a real `privatus run` left alone for `idleSeconds`: everything a
///   node at rest spends (the monitor included), from `/proc/<pid>/stat`.
public struct MonitorSuite: Sendable {
    public let executable: String
    public var budget = Duration.milliseconds(500)
    public var ticks = 600
    public var metrics = 64
    public var idleSeconds = 20.0
    /// Messages waiting in the outbox for `outbox_counts_backlog_us`.
    public var backlog = 10_000

    public init(executable: String) {
        self.executable = executable
    }

    public func run() async throws -> [String: Double] {
        // The node's two backends, as `privatus run` bootstraps them, but passed explicitly: the
        // process-wide bootstrap is left alone (the suite also runs inside the test process).
        let backends = NodeMetrics(registry: PrometheusCollectorRegistry(), sampler: MetricsSampler())
        let factory = MultiplexMetricsHandler(
            factories: [PrometheusMetricsFactory(registry: backends.registry), backends.sampler])
        var figures = updateCosts(backends, factory: factory)
        figures.merge(try tickCosts(backends.sampler, factory: factory)) { $1 }
        figures.merge(try outboxCosts()) { $1 }
        figures["node_idle_cpu_percent"] = try await idleNode()
        return figures
    }

    /// Nanoseconds per update, timed in batches of 1,000.
    func nanoseconds(_ update: () -> Void) -> Double {
        let rate = Measure(budget: budget).perSecond {
            for _ in 0..<1_000 { update() }
        }
        return 1e9 / (rate * 1_000)
    }

    func updateCosts(_ backends: NodeMetrics, factory: any MetricsFactory) -> [String: Double] {
        let counter = Metrics.Counter(label: "bench_monitor_updates_total", factory: factory)
        let gauge = Metrics.Gauge(label: "bench_monitor_depth", factory: factory)
        let timer = Metrics.Timer(label: "bench_monitor_seconds", factory: factory)
        let samplerOnly = Metrics.Counter(label: "bench_monitor_sampler_total", factory: backends.sampler)
        let prometheus = backends.registry.makeCounter(name: "bench_monitor_prometheus_total")
        let atomic = Atomic<Int>(0)
        var value = 0.0
        let figures: [String: Double] = [
            "metric_update_ns": nanoseconds { counter.increment() },
            "gauge_update_ns": nanoseconds {
                value += 1
                gauge.record(value)
            },
            "timer_update_ns": nanoseconds { timer.recordNanoseconds(1_500) },
            "sampler_update_ns": nanoseconds { samplerOnly.increment() },
            "prometheus_update_ns": nanoseconds { prometheus.increment() },
            "atomic_add_ns": nanoseconds { atomic.wrappingAdd(1, ordering: .relaxed) },
            "metric_update_contended_ns": contended(counter),
        ]
        BlackHole.consume(UInt8(truncatingIfNeeded: atomic.load(ordering: .relaxed)))
        return figures
    }

    /// Two threads increment one counter at once: nanoseconds per increment on each thread.
    func contended(_ counter: Metrics.Counter) -> Double {
        let perThread = 2_000_000
        let elapsed = Mutex<[Double]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let took = ContinuousClock().measure {
                for _ in 0..<perThread { counter.increment() }
            }
            elapsed.withLock { $0.append(took.seconds) }
        }
        let slowest = elapsed.withLock { $0.max() ?? 0 }
        return slowest * 1e9 / Double(perThread)
    }

    func tickCosts(_ sampler: MetricsSampler, factory: any MetricsFactory) throws -> [String: Double] {
        // The file system of the temporary folder stands for the profile's (read by statvfs).
        let monitor = Monitor(
            sampler: sampler, rules: AlertRule.defaults, directory: FileManager.default.temporaryDirectory.path,
            factory: factory)
        // A node's worth of metrics, a third of each kind, all changing every second.
        let counters = (0..<metrics / 2).map { Metrics.Counter(label: "bench_monitor_c\($0)_total", factory: factory) }
        let gauges = (0..<metrics / 3).map { Metrics.Gauge(label: "bench_monitor_g\($0)", factory: factory) }
        let timers = (0..<max(1, metrics - metrics / 2 - metrics / 3)).map {
            Metrics.Timer(label: "bench_monitor_t\($0)_seconds", factory: factory)
        }
        func change(_ second: Int) {
            for counter in counters { counter.increment(by: second % 7) }
            for gauge in gauges { gauge.record(Double(second)) }
            for timer in timers { timer.recordNanoseconds(Int64(1_000 + second)) }
        }
        // The rings full (an hour of readings), then the timed ticks, one simulated second apart.
        var now = UInt64(Date().timeIntervalSince1970 * 1_000) - UInt64(sampler.capacity) * 1_000
        for second in 0..<sampler.capacity {
            change(second)
            _ = monitor.tick(now: now)
            now += 1_000
        }
        let before = Measure.processCPUSeconds()
        var alerts = 0
        for second in 0..<ticks {
            change(second)
            alerts += monitor.tick(now: now).count
            now += 1_000
        }
        let perTick = (Measure.processCPUSeconds() - before) / Double(ticks)
        var encoded = 0
        let hour = Measure.medianMilliseconds(runs: 9) { encoded = sampler.readingsJSON(since: nil).count }
        let since = now - 2_000
        let newest = Measure.medianMilliseconds(runs: 101) {
            BlackHole.consume(UInt8(truncatingIfNeeded: sampler.readingsJSON(since: since).count))
        }
        let series = Double(
            try JSONDecoder().decode(MetricsSampler.Readings.self, from: Data(sampler.readingsJSON(since: now)))
                .metrics.count)
        return [
            "sampler_tick_us": perTick * 1e6,
            "sampler_cpu_percent": perTick * 100,  // one tick per second
            "sampled_metrics": series,
            "ring_mb": Double(sampler.capacity) * (series * 4 + 8) / 1e6,
            "readings_hour_ms": hour,
            "readings_hour_mb": Double(encoded) / 1e6,
            "readings_since_us": newest * 1_000,
            "ticks": Double(ticks),
            "alerts_during_ticks": Double(alerts),
        ]
    }

    /// The node's other once-a-second read: the outbox counted per peer (waiting, and due), in
    /// a real store, empty and then with `backlog` messages waiting for 10 contacts.
    func outboxCosts() throws -> [String: Double] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "privatus-bench-monitor-store-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try Store(
            path: folder.appendingPathComponent(Store.fileName).path, databaseKey: SymmetricKey(size: .bits256))
        let me = PeerID(identityPublicKey: Array(repeating: 1, count: 32))
        let peers = (0..<10).map { PeerID(identityPublicKey: Array(repeating: UInt8(2 + $0), count: 32)) }
        for (index, peer) in peers.enumerated() {
            try store.saveContact(Contact(peerID: peer, identityKey: [], name: "p\(index)", state: .contact))
        }
        let empty = Measure.medianMilliseconds(runs: 101) {
            BlackHole.consume(UInt8((try? store.outboxCounts(dueBy: 1))?.count ?? 0))
        }
        var number: UInt64 = 0
        for chunk in stride(from: 0, to: backlog, by: 500) {
            let items = (chunk..<min(chunk + 500, backlog)).map { index in
                number += 1
                return (
                    message: NewMessage(
                        peer: peers[index % peers.count], direction: .sent, state: .queued, sender: me, sentAt: 1,
                        body: "waiting \(index)", number: number),
                    ciphertext: [UInt8](repeating: 7, count: 100)
                )
            }
            _ = try store.commitOutgoing(items, sessions: [:], nextTry: 1)
        }
        let waiting = Measure.medianMilliseconds(runs: 101) {
            BlackHole.consume(UInt8((try? store.outboxCounts(dueBy: 1))?.count ?? 0))
        }
        return [
            "outbox_counts_empty_us": empty * 1_000, "outbox_counts_backlog_us": waiting * 1_000,
            "backlog": Double(backlog),
        ]
    }

    /// A real node at rest: its CPU over `idleSeconds`, in percent of one core.
    func idleNode() async throws -> Double {
        let scratch = try LocalNodeDirectory(executable: executable, prefix: "privatus-bench-monitor")
        defer { scratch.remove() }
        let node = try scratch.start("idle", name: "me")
        defer { node.stop() }
        _ = try await node.status()
        try await Task.sleep(for: .seconds(3))  // past start-up
        guard let before = ProcessResources.cpuSeconds(of: node.process.pid) else {
            throw NodeBenchError.failed("reading the node's CPU time")
        }
        let started = ContinuousClock.now
        try await Task.sleep(for: .seconds(idleSeconds))
        guard let after = ProcessResources.cpuSeconds(of: node.process.pid) else {
            throw NodeBenchError.failed("reading the node's CPU time")
        }
        return (after - before) / (ContinuousClock.now - started).seconds * 100
    }
}
