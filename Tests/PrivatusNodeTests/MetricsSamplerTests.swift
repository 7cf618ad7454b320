import Foundation
import Metrics
import PrivatusNode
import Testing

extension MetricsSampler {
    /// What `GET /api/v1/metrics?since=` answers, decoded.
    func readings(since: UInt64?) throws -> Readings {
        try JSONDecoder().decode(Readings.self, from: Data(readingsJSON(since: since)))
    }
}

@Suite struct MetricsSamplerTests {
    @Test func metricsAreReadByLabelAndDimensions() {
        let sampler = MetricsSampler(capacity: 3)
        let bytesIn = Counter(label: "bytes_total", dimensions: [("direction", "in")], factory: sampler)
        let bytesOut = Counter(label: "bytes_total", dimensions: [("direction", "out")], factory: sampler)
        let queued = Gauge(label: "queued", factory: sampler)
        let share = FloatingPointCounter(label: "share_total", factory: sampler)
        let links = Meter(label: "links", factory: sampler)
        bytesIn.increment(by: 5)
        bytesIn.increment(by: 2)
        bytesOut.increment()
        queued.record(9)
        queued.record(4)
        share.increment(by: 0.25)
        share.increment(by: 0.5)
        links.increment(by: 3)
        links.decrement(by: 1)
        // A second handle of the same metric adds to the same value.
        Counter(label: "bytes_total", dimensions: [("direction", "in")], factory: sampler).increment(by: 10)
        #expect(
            sampler.current() == [
                "bytes_total{direction=in}": 17, "bytes_total{direction=out}": 1, "queued": 4, "share_total": 0.75,
                "links": 2,
            ])
    }

    @Test func countersBecomeRatesPerSecondAndGaugesTheirValue() throws {
        let sampler = MetricsSampler(capacity: 10)
        let sent = Counter(label: "sent_total", factory: sampler)
        let depth = Gauge(label: "depth", factory: sampler)
        sent.increment(by: 100)
        depth.record(7)
        sampler.tick(now: 10_000)
        #expect(sampler.current()["rate(sent_total)"] == nil, "no rate before a second reading")
        sent.increment(by: 30)
        depth.record(2)
        sampler.tick(now: 11_000)
        sent.increment(by: 40)
        sampler.tick(now: 13_000)  // two seconds later: 20 per second
        #expect(sampler.current()["rate(sent_total)"] == 20)
        #expect(sampler.current()["sent_total"] == 170)
        let readings = try sampler.readings(since: nil)
        #expect(readings.times == [10_000, 11_000, 13_000])
        #expect(readings.metrics["sent_total"] == .init(kind: .counter, value: 170, series: [nil, 30, 20]))
        #expect(readings.metrics["depth"] == .init(kind: .gauge, value: 2, series: [7, 2, 2]))
    }

    @Test func timersReadTheMeanOfEachInterval() throws {
        let sampler = MetricsSampler(capacity: 10)
        let write = Timer(label: "write_seconds", factory: sampler)
        sampler.tick(now: 1_000)
        write.recordNanoseconds(1_000_000)
        write.recordNanoseconds(3_000_000)
        sampler.tick(now: 2_000)
        sampler.tick(now: 3_000)  // nothing recorded: no reading
        write.recordNanoseconds(500_000)
        sampler.tick(now: 4_000)
        let timer = try sampler.readings(since: nil).metrics["write_seconds"]
        #expect(timer?.kind == .timer)
        #expect(timer?.value == 0.0005, "the last duration, in seconds")
        #expect(timer?.series == [nil, 0.002, nil, 0.0005])
    }

    @Test func theRingKeepsTheLastReadingsAndSinceReturnsOnlyNewerOnes() throws {
        let sampler = MetricsSampler(capacity: 4)
        let depth = Gauge(label: "depth", factory: sampler)
        for second in 1...10 {
            depth.record(Double(second))
            sampler.tick(now: UInt64(second) * 1_000)
        }
        let all = try sampler.readings(since: nil)
        #expect(all.times == [7_000, 8_000, 9_000, 10_000], "the oldest go first; never more than the capacity")
        #expect(all.metrics["depth"]?.series == [7, 8, 9, 10])
        let newer = try sampler.readings(since: 8_000)
        #expect(newer.times == [9_000, 10_000])
        #expect(newer.metrics["depth"]?.series == [9, 10])
        #expect(try sampler.readings(since: 10_000).times.isEmpty)
        // A metric made later has no reading before it existed.
        let late = Gauge(label: "late", factory: sampler)
        late.record(1)
        sampler.tick(now: 11_000)
        #expect(try sampler.readings(since: nil).metrics["late"]?.series == [nil, nil, nil, 1])
    }

    @Test func seriesBeyondTheLimitAreNotKeptAndDestroyedMetricsGo() throws {
        let sampler = MetricsSampler(capacity: 4, maximumSeries: 2)
        let gauges = (0..<3).map { Gauge(label: "g\($0)", factory: sampler) }
        for gauge in gauges { gauge.record(1) }
        sampler.tick(now: 1_000)
        let readings = try sampler.readings(since: nil)
        #expect(readings.metrics.count == 3, "every metric has its value")
        #expect(readings.metrics.values.filter { $0.series == [1] }.count == 2, "two have series")
        #expect(readings.unsampled.count == 1)
        #expect(sampler.current().count == 3, "still counted")
        let kept = try #require(readings.metrics.first { $0.value.series == [1] }?.key)
        // The handle a gauge of that name has (the same cell), destroyed as swift-metrics would.
        sampler.destroyRecorder(sampler.makeRecorder(label: kept, dimensions: [], aggregate: false))
        sampler.tick(now: 2_000)
        let after = try sampler.readings(since: nil)
        #expect(after.metrics[kept] == nil, "a destroyed metric's series goes")
        #expect(after.metrics.count == 2)
        #expect(after.metrics.values.allSatisfy { $0.series.last == 1 }, "the unsampled metric takes the free place")
        #expect(after.unsampled.isEmpty)
    }

    @Test func aMetricMadeAgainAsAnotherKindStartsAFreshSeries() throws {
        let sampler = MetricsSampler(capacity: 4)
        Counter(label: "x", factory: sampler).increment(by: 5)
        sampler.tick(now: 1_000)
        sampler.tick(now: 2_000)
        Gauge(label: "x", factory: sampler).record(3)
        sampler.tick(now: 3_000)
        let x = try sampler.readings(since: nil).metrics["x"]
        #expect(x == .init(kind: .gauge, value: 3, series: [nil, nil, 3]))
    }

    @Test func theJSONEscapesKeysAndWritesNullWhereThereIsNoReading() throws {
        let sampler = MetricsSampler(capacity: 4)
        let odd = Gauge(label: "odd", dimensions: [("why", "a\"b\\c\n")], factory: sampler)
        odd.record(Double.infinity)
        sampler.tick(now: 1_000)
        let readings = try sampler.readings(since: nil)
        #expect(readings.metrics["odd{why=a\"b\\c\n}"] == .init(kind: .gauge, value: nil, series: [nil]))
        let text = String(decoding: sampler.readingsJSON(since: nil), as: UTF8.self)
        #expect(text.contains(#""value":null,"series":[null]"#))
    }

    @Test func aClockSetBackNeitherReordersNorHidesReadings() throws {
        let sampler = MetricsSampler(capacity: 10)
        let depth = Gauge(label: "depth", factory: sampler)
        for (value, now) in [(1, 10_000), (2, 11_000), (3, 12_000), (4, 7_000), (5, 8_000)] as [(Double, UInt64)] {
            depth.record(value)
            sampler.tick(now: now)
        }
        let all = try sampler.readings(since: nil)
        #expect(all.times == [10_000, 11_000, 12_000, 12_001, 12_002])
        #expect(try sampler.readings(since: 12_000).metrics["depth"]?.series == [4, 5])
    }

    @Test func aResetOrRemadeCounterCountsFromZero() throws {
        let sampler = MetricsSampler(capacity: 10)
        let sent = Counter(label: "sent_total", factory: sampler)
        sent.increment(by: 100)
        sampler.tick(now: 1_000)
        sent.reset()
        sent.increment(by: 7)
        sampler.tick(now: 2_000)
        // Destroyed and made again: a new cell, counting 50 since.
        sampler.destroyCounter(sampler.makeCounter(label: "sent_total", dimensions: []))
        Counter(label: "sent_total", factory: sampler).increment(by: 50)
        sampler.tick(now: 3_000)
        #expect(try sampler.readings(since: nil).metrics["sent_total"]?.series == [nil, 7, 50])
    }
}
