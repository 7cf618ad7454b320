import Metrics
import PrivatusNode
import Testing

@Suite struct MetricsSamplerTests {
    @Test func metricsAreReadByLabelAndDimensionsAndTheHistoryIsBounded() {
        let sampler = MetricsSampler(capacity: 3)
        let bytesIn = Counter(label: "bytes_total", dimensions: [("direction", "in")], factory: sampler)
        let bytesOut = Counter(label: "bytes_total", dimensions: [("direction", "out")], factory: sampler)
        let queued = Gauge(label: "queued", factory: sampler)
        bytesIn.increment(by: 5)
        bytesIn.increment(by: 2)
        bytesOut.increment()
        queued.record(9)
        queued.record(4)
        #expect(
            sampler.current() == ["bytes_total{direction=in}": 7, "bytes_total{direction=out}": 1, "queued": 4])
        for at in 1...5 {
            bytesOut.increment()
            sampler.sample(now: UInt64(at))
        }
        let history = sampler.snapshots()
        #expect(history.map(\.at) == [3, 4, 5], "the oldest go first")
        #expect(history.map { $0.values["bytes_total{direction=out}"] } == [4, 5, 6])
    }
}
