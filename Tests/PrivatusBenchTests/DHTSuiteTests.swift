import PrivatusTesting
import Testing

@testable import PrivatusBench

@Suite struct DHTSuiteTests {
    /// Seconds of CPU in a debug build: on a thread of its own, off the shared pool.
    @Test func aSmallSimulatedNetworkReportsEveryFigure() async {
        let (figures, again) = await onOwnThread {
            var suite = DHTSuite()
            suite.nodes = 200
            suite.lookups = 100
            return (suite.run(), suite.run())
        }
        #expect(figures["success_rate"] == 1)
        #expect((figures["hops_p50"] ?? 0) >= 1)
        #expect((figures["churn_success_rate"] ?? 0) >= 0.95)
        for key in ["hops_p99", "lookup_ms_p50", "lookup_ms_p99", "requests_per_lookup", "lookups_per_s", "build_s"] {
            #expect((figures[key] ?? 0) > 0, "\(key)")
        }
        // The same seed gives the same figures, but for wall-clock time.
        let wallClock: Set<String> = ["lookups_per_s", "build_s"]
        #expect(again.filter { !wallClock.contains($0.key) } == figures.filter { !wallClock.contains($0.key) })
    }
}
