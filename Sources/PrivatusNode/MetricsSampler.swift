import CoreMetrics
import PrivatusCore
import Synchronization

/// The in-process side of the node's metrics (issue 10): a swift-metrics backend that keeps
/// each metric's current value in memory, and the last hour of one reading per second in
/// fixed-size ring buffers, which the dashboard polls (`GET /api/v1/metrics`) and the alert
/// rules read. Prometheus scrapes the other backend.
///
/// A metric is named by its label and dimensions (`privatus_link_bytes_total{direction=in}`).
/// Counters hold their total, and their series is the rate per second; gauges (swift-metrics
/// gauges, recorders and meters) hold their last value, which is their series; timers hold
/// their last duration in seconds, and their series is the mean of the durations recorded in
/// each interval.
///
/// An update on the hot path is one atomic operation on the metric's own cell: no lock, no
/// lookup by name. The lock is taken when a metric is made and once per ``tick(now:)``.
///
/// Memory is bounded by ``capacity`` × (4 × ``maximumSeries`` + 8) bytes (readings are kept as
/// 32-bit floats, times as 64-bit integers): 3,600 readings of at most 256 metrics are 3.7 MB.
public final class MetricsSampler: MetricsFactory, Sendable {
    public enum Kind: String, Codable, Sendable {
        case counter
        case gauge
        case timer
    }

    /// Readings kept per metric (at one per second: an hour).
    public let capacity: Int
    /// Metrics kept in series at most; metrics made past it still count (and reach Prometheus)
    /// but have no series here.
    public let maximumSeries: Int
    private let cells = Mutex<[String: Cell]>([:])
    private let series: Mutex<Series>

    public init(capacity: Int = 3_600, maximumSeries: Int = 256) {
        self.capacity = max(2, capacity)
        self.maximumSeries = max(1, maximumSeries)
        self.series = Mutex(Series(capacity: max(2, capacity)))
    }

    /// The current value of every metric, and for each counter `rate(key)`, its rate per second
    /// at the last tick (what the alert rules read).
    public func current() -> [String: Double] {
        var values: [String: Double] = [:]
        for (key, cell) in cells.withLock({ $0 }) { values[key] = cell.value }
        series.withLock { series in
            for (key, rate) in series.rates { values["rate(\(key))"] = rate }
        }
        return values
    }

    /// Takes the reading of every metric at `now` (Unix ms; the node calls it once a second):
    /// counters become rates since the previous tick, timers the mean of what was recorded since.
    /// The oldest reading goes once ``capacity`` are held.
    ///
    /// Readings are kept in time order: a `now` not after the previous reading's (a clock set
    /// back) is taken as 1 ms after it, so `since` never skips a reading.
    public func tick(now: UInt64) {
        let cells = self.cells.withLock { $0 }
        series.withLock { series in
            let now = series.lastTick.map { max(now, $0 + 1) } ?? now
            let seconds = series.lastTick.map { Double(now - $0) / 1_000 }
            // A destroyed metric's series goes with it.
            if series.columns.contains(where: { cells[$0.key] == nil }) {
                series.columns.removeAll { cells[$0.key] == nil }
                series.reindex()
            }
            series.unsampled = series.unsampled.filter { cells[$0] != nil }
            let slot = series.append(now)
            series.rates.removeAll(keepingCapacity: true)
            for (key, cell) in cells {
                var position = series.index[key]
                if position == nil {
                    guard series.columns.count < maximumSeries else {
                        series.unsampled.insert(key)
                        continue
                    }
                    series.unsampled.remove(key)
                    position = series.columns.count
                    series.index[key] = series.columns.count
                    series.columns.append(Column(key: key, kind: cell.kind, capacity: capacity))
                }
                if series.columns[position!].kind != cell.kind {
                    // Made again as another kind: its readings so far mean something else.
                    series.columns[position!] = Column(key: key, kind: cell.kind, capacity: capacity)
                }
                if let rate = series.columns[position!].read(cell, into: slot, after: seconds) {
                    series.rates[key] = rate
                }
            }
            series.lastTick = now
        }
    }

    /// The readings taken after `since` (Unix ms; all when nil), oldest first, as the JSON
    /// `GET /api/v1/metrics` answers (``Readings``): every metric's kind, current value and
    /// series over those readings (`null` where there was no reading: a counter's first tick, a
    /// timer with nothing recorded, a metric made later). Written directly: an hour of ~75
    /// metrics is 270,000 numbers, and Foundation's encoder took 0.2 s of a cooperative thread
    /// for it. Readings print as the 32-bit floats they are kept as (shortest form).
    public func readingsJSON(since: UInt64?) -> [UInt8] {
        let capture = capture(since: since)
        var out: [UInt8] = []
        out.reserveCapacity(256 + capture.times.count * 16 + capture.metrics.count * (96 + capture.times.count * 6))
        out.append(contentsOf: #"{"intervalMs":1000,"capacity":"#.utf8)
        out.append(contentsOf: String(capacity).utf8)
        out.append(contentsOf: #","times":["#.utf8)
        for (index, time) in capture.times.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: String(time).utf8)
        }
        out.append(contentsOf: #"],"metrics":{"#.utf8)
        for (index, metric) in capture.metrics.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            Self.appendString(metric.key, to: &out)
            out.append(contentsOf: #":{"kind":""#.utf8)
            out.append(contentsOf: metric.kind.rawValue.utf8)
            out.append(contentsOf: #"","value":"#.utf8)
            if metric.value.isFinite {
                out.append(contentsOf: metric.value.description.utf8)
            } else {
                out.append(contentsOf: "null".utf8)
            }
            out.append(contentsOf: #","series":["#.utf8)
            for (position, reading) in metric.series.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                if reading.isFinite {
                    out.append(contentsOf: reading.description.utf8)
                } else {
                    out.append(contentsOf: "null".utf8)
                }
            }
            out.append(contentsOf: "]}".utf8)
        }
        out.append(contentsOf: #"},"unsampled":["#.utf8)
        for (index, key) in capture.unsampled.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            Self.appendString(key, to: &out)
        }
        out.append(contentsOf: "]}".utf8)
        return out
    }

    /// `text` as a JSON string.
    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(contentsOf: Hex.encode([byte]).utf8)
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The readings after `since`, copied out of the rings under the lock.
    struct Capture {
        struct Metric {
            var key: String
            var kind: Kind
            var value: Double
            /// NaN where there was no reading.
            var series: [Float]
        }

        var times: [UInt64]
        var metrics: [Metric]
        var unsampled: [String]
    }

    func capture(since: UInt64?) -> Capture {
        let cells = self.cells.withLock { $0 }
        return series.withLock { series in
            let slots = series.slots(after: since)
            var metrics: [Capture.Metric] = []
            metrics.reserveCapacity(cells.count)
            for (key, cell) in cells.sorted(by: { $0.key < $1.key }) {
                let readings: [Float]
                if let position = series.index[key] {
                    let column = series.columns[position]
                    readings = slots.map { column.readings[$0] }
                } else {
                    readings = Array(repeating: .nan, count: slots.count)
                }
                metrics.append(Capture.Metric(key: key, kind: cell.kind, value: cell.value, series: readings))
            }
            return Capture(
                times: slots.map { series.times[$0] }, metrics: metrics, unsampled: series.unsampled.sorted())
        }
    }

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        guard !dimensions.isEmpty else { return label }
        return label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.sorted().joined(separator: ",") + "}"
    }

    /// The cell of `key`, made on first use (every handle of one metric shares it).
    private func cell(_ label: String, _ dimensions: [(String, String)], _ kind: Kind) -> Cell {
        let key = Self.key(label, dimensions)
        return cells.withLock { cells in
            if let existing = cells[key], existing.kind == kind { return existing }
            let made = Cell(key: key, kind: kind)
            cells[key] = made
            return made
        }
    }

    private func destroy(_ handler: Any) {
        guard let cell = handler as? Cell else { return }
        cells.withLock { cells in
            if cells[cell.key] === cell { cells[cell.key] = nil }
        }
    }

    // MARK: - MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        cell(label, dimensions, .counter)
    }

    public func makeFloatingPointCounter(
        label: String, dimensions: [(String, String)]
    ) -> any FloatingPointCounterHandler {
        cell(label, dimensions, .counter)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        cell(label, dimensions, .gauge)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        cell(label, dimensions, .gauge)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        cell(label, dimensions, .timer)
    }

    public func destroyCounter(_ handler: any CounterHandler) { destroy(handler) }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { destroy(handler) }
    public func destroyMeter(_ handler: any MeterHandler) { destroy(handler) }
    public func destroyRecorder(_ handler: any RecorderHandler) { destroy(handler) }
    public func destroyTimer(_ handler: any TimerHandler) { destroy(handler) }

    /// One metric's value, updated by atomic operations: a counter's integer increments add to
    /// `integer` and its fractional ones to `bits` (a `Double`); a gauge's value is `bits`; a
    /// timer counts and sums its durations under a lock (timers are not per-frame metrics) and
    /// keeps the last in `bits` (seconds).
    final class Cell: CounterHandler, FloatingPointCounterHandler, MeterHandler, RecorderHandler, TimerHandler,
        Sendable
    {
        let key: String
        let kind: Kind
        private let integer = Atomic<Int64>(0)
        private let bits = Atomic<UInt64>(0)
        /// A timer's count and sum, taken together (a reading between the two would see a
        /// count without its duration).
        private let durations = Mutex<(count: Int64, nanoseconds: Int64)>((0, 0))

        init(key: String, kind: Kind) {
            self.key = key
            self.kind = kind
        }

        var value: Double {
            let double = Double(bitPattern: bits.load(ordering: .relaxed))
            return kind == .counter ? Double(integer.load(ordering: .relaxed)) + double : double
        }

        /// A timer's number of durations and their sum.
        var timerTotals: (count: Int64, nanoseconds: Int64) { durations.withLock { $0 } }

        private func add(_ delta: Double) {
            var old = bits.load(ordering: .relaxed)
            while true {
                let new = (Double(bitPattern: old) + delta).bitPattern
                let (exchanged, original) = bits.weakCompareExchange(
                    expected: old, desired: new, ordering: .relaxed)
                if exchanged { return }
                old = original
            }
        }

        private func store(_ value: Double) { bits.store(value.bitPattern, ordering: .relaxed) }

        func increment(by amount: Int64) { integer.wrappingAdd(amount, ordering: .relaxed) }
        func increment(by amount: Double) { add(amount) }
        func decrement(by amount: Double) { add(-amount) }
        func reset() {
            integer.store(0, ordering: .relaxed)
            store(0)
            durations.withLock { $0 = (0, 0) }
        }
        func set(_ value: Int64) { store(Double(value)) }
        func set(_ value: Double) { store(value) }
        func record(_ value: Int64) { store(Double(value)) }
        func record(_ value: Double) { store(value) }
        func recordNanoseconds(_ duration: Int64) {
            durations.withLock {
                $0.count &+= 1
                $0.nanoseconds &+= duration
            }
            store(Double(duration) / 1e9)
        }
    }

    /// One metric's readings in the ring (slots shared with ``Series/times``).
    struct Column: Sendable {
        let key: String
        let kind: Kind
        var readings: [Float]
        var previousTotal: Double?
        var previousTimer: (count: Int64, nanoseconds: Int64)?
        /// The cell read last: a metric destroyed and made again counts from 0.
        var previousCell: ObjectIdentifier?

        init(key: String, kind: Kind, capacity: Int) {
            self.key = key
            self.kind = kind
            readings = Array(repeating: .nan, count: capacity)
        }

        /// Stores the reading of `cell` in `slot`, `seconds` after the previous tick (nil: the
        /// first); returns a counter's rate per second.
        mutating func read(_ cell: Cell, into slot: Int, after seconds: Double?) -> Double? {
            let identity = ObjectIdentifier(cell)
            if previousCell != identity, previousCell != nil {
                previousTotal = previousTotal.map { _ in 0 }
                previousTimer = previousTimer.map { _ in (0, 0) }
            }
            previousCell = identity
            switch kind {
            case .counter:
                let total = cell.value
                defer { previousTotal = total }
                guard let previous = previousTotal, let seconds, seconds > 0 else { return nil }
                // A total that went down was reset: what it holds now came since.
                let rate = (total >= previous ? total - previous : total) / seconds
                readings[slot] = Float(rate)
                return rate
            case .gauge:
                readings[slot] = Float(cell.value)
            case .timer:
                let totals = cell.timerTotals
                if let previous = previousTimer, previous.count > totals.count {
                    previousTimer = (0, 0)  // reset
                }
                if let previous = previousTimer, totals.count > previous.count {
                    let mean =
                        Double(totals.nanoseconds &- previous.nanoseconds) / Double(totals.count - previous.count)
                    readings[slot] = Float(mean / 1e9)
                }
                previousTimer = totals
            }
            return nil
        }
    }

    /// The ring: the time of each slot, and a column per metric.
    struct Series: Sendable {
        let capacity: Int
        var times: [UInt64]
        /// The slot of the oldest reading, and how many are held.
        var first = 0
        var count = 0
        var columns: [Column] = []
        /// Each metric's position in ``columns``.
        var index: [String: Int] = [:]
        var lastTick: UInt64?
        var rates: [String: Double] = [:]
        var unsampled = Set<String>()

        init(capacity: Int) {
            self.capacity = capacity
            times = Array(repeating: 0, count: capacity)
        }

        mutating func reindex() {
            index = Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1.key, $0) })
        }

        /// Takes the next slot for a reading at `time` (the oldest when full), empty (NaN) in
        /// every column until read.
        mutating func append(_ time: UInt64) -> Int {
            let slot: Int
            if count < capacity {
                slot = (first + count) % capacity
                count += 1
            } else {
                slot = first
                first = (first + 1) % capacity
            }
            times[slot] = time
            for position in columns.indices { columns[position].readings[slot] = .nan }
            return slot
        }

        /// The slots of the readings after `since`, oldest first.
        func slots(after since: UInt64?) -> [Int] {
            (0..<count).map { (first + $0) % capacity }.filter { slot in since.map { times[slot] > $0 } ?? true }
        }
    }

    /// `GET /api/v1/metrics`: the readings after `since` (what ``readingsJSON(since:)`` writes).
    public struct Readings: Sendable, Codable, Equatable {
        public struct Metric: Sendable, Codable, Equatable {
            public var kind: Kind
            /// The current value: a counter's total, a gauge's value, a timer's last duration in
            /// seconds (absent when not finite).
            public var value: Double?
            /// One entry per time: a counter's rate per second, a gauge's value, a timer's mean
            /// duration in seconds; `nil` where there was no reading.
            public var series: [Double?]

            public init(kind: Kind, value: Double?, series: [Double?]) {
                self.kind = kind
                self.value = value
                self.series = series
            }
        }

        public var intervalMs: Int
        public var capacity: Int
        /// Unix ms of each reading, oldest first.
        public var times: [UInt64]
        public var metrics: [String: Metric]
        /// Metrics past the series limit (no series kept).
        public var unsampled: [String]
    }
}
