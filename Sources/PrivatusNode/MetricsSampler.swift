import CoreMetrics
import Synchronization

/// The in-process side of the node's metrics: a swift-metrics backend that keeps each metric's
/// current value in memory, and a bounded history of snapshots taken by the scheduler. The
/// dashboard (issue 10) reads it; Prometheus scrapes the other backend.
///
/// A metric is named by its label and dimensions (`privatus_link_bytes_total{direction=in}`).
/// Counters hold their total, gauges and recorders their last value, timers their last duration
/// in nanoseconds.
public final class MetricsSampler: MetricsFactory, Sendable {
    /// One reading of every metric.
    public struct Snapshot: Sendable, Equatable, Codable {
        /// Unix milliseconds.
        public var at: UInt64
        public var values: [String: Double]
    }

    /// Snapshots kept (at one per 10 s: an hour).
    public let capacity: Int
    private let metrics = Mutex<[String: Double]>([:])
    private let history: Mutex<[Snapshot]>

    public init(capacity: Int = 360) {
        self.capacity = max(1, capacity)
        self.history = Mutex([])
    }

    /// The current value of every metric.
    public func current() -> [String: Double] { metrics.withLock { $0 } }

    /// Records the current values as a snapshot taken at `now` (Unix ms), dropping the oldest
    /// past ``capacity``.
    public func sample(now: UInt64) {
        let snapshot = Snapshot(at: now, values: current())
        history.withLock { history in
            history.append(snapshot)
            if history.count > capacity { history.removeFirst(history.count - capacity) }
        }
    }

    /// The snapshots held, oldest first.
    public func snapshots() -> [Snapshot] { history.withLock { $0 } }

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        guard !dimensions.isEmpty else { return label }
        return label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.sorted().joined(separator: ",") + "}"
    }

    func add(_ key: String, _ delta: Double) { metrics.withLock { $0[key, default: 0] += delta } }
    func set(_ key: String, _ value: Double) { metrics.withLock { $0[key] = value } }
    func remove(_ key: String) { metrics.withLock { _ = $0.removeValue(forKey: key) } }

    // MARK: - MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(sampler: self, key: Self.key(label, dimensions))
    }

    public func makeFloatingPointCounter(
        label: String, dimensions: [(String, String)]
    ) -> any FloatingPointCounterHandler {
        Handler(sampler: self, key: Self.key(label, dimensions))
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        Handler(sampler: self, key: Self.key(label, dimensions))
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(sampler: self, key: Self.key(label, dimensions))
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(sampler: self, key: Self.key(label, dimensions))
    }

    public func destroyCounter(_ handler: any CounterHandler) { (handler as? Handler).map { remove($0.key) } }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        (handler as? Handler).map { remove($0.key) }
    }
    public func destroyMeter(_ handler: any MeterHandler) { (handler as? Handler).map { remove($0.key) } }
    public func destroyRecorder(_ handler: any RecorderHandler) { (handler as? Handler).map { remove($0.key) } }
    public func destroyTimer(_ handler: any TimerHandler) { (handler as? Handler).map { remove($0.key) } }

    /// One metric's handle: every kind writes into the sampler's table under its key.
    final class Handler: CounterHandler, FloatingPointCounterHandler, MeterHandler, RecorderHandler, TimerHandler,
        Sendable
    {
        let sampler: MetricsSampler
        let key: String

        init(sampler: MetricsSampler, key: String) {
            self.sampler = sampler
            self.key = key
        }

        func increment(by amount: Int64) { sampler.add(key, Double(amount)) }
        func increment(by amount: Double) { sampler.add(key, amount) }
        func reset() { sampler.set(key, 0) }
        func set(_ value: Int64) { sampler.set(key, Double(value)) }
        func set(_ value: Double) { sampler.set(key, value) }
        func decrement(by amount: Double) { sampler.add(key, -amount) }
        func record(_ value: Int64) { sampler.set(key, Double(value)) }
        func record(_ value: Double) { sampler.set(key, value) }
        func recordNanoseconds(_ duration: Int64) { sampler.set(key, Double(duration)) }
    }
}
