import Foundation
import PrivatusTesting
import Testing

@testable import PrivatusBench

/// `bench monitor` with short budgets: every figure is there and in range, and the real node it
/// starts is gone afterwards.
@Suite(.serialized) struct MonitorSuiteTests {
    @Test func everyFigureIsReportedAndInRange() async throws {
        var suite = MonitorSuite(executable: try CLIProcess().executable)
        suite.budget = .milliseconds(20)
        suite.ticks = 20
        suite.idleSeconds = 1
        suite.backlog = 600
        let figures = try await suite.run()
        for key in [
            "metric_update_ns", "gauge_update_ns", "timer_update_ns", "sampler_update_ns", "prometheus_update_ns",
            "atomic_add_ns", "metric_update_contended_ns", "sampler_tick_us", "readings_hour_ms",
            "readings_hour_mb", "readings_since_us", "ring_mb", "outbox_counts_empty_us", "outbox_counts_backlog_us",
        ] {
            let value = try #require(figures[key], "\(key) missing")
            #expect(value > 0, "\(key)")
        }
        let cpu = try #require(figures["sampler_cpu_percent"])
        #expect(cpu >= 0 && cpu < 100)
        let idle = try #require(figures["node_idle_cpu_percent"])
        #expect(idle >= 0 && idle < 200)
        // The suite's 64 metrics, the process's 7 and those it times updates of, each in a ring
        // of an hour: within the bound the sampler states (3.7 MB for 256).
        #expect((figures["sampled_metrics"] ?? 0) >= 64 + 7)
        #expect((figures["ring_mb"] ?? 0) <= 3.7)
        #expect(figures["backlog"] == 600)
        #expect(figures["ticks"] == 20)
        // An hour of readings in JSON is far more than the newest one.
        #expect((figures["readings_hour_ms"] ?? 0) * 1_000 > (figures["readings_since_us"] ?? 0))
    }
}
