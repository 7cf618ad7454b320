import Testing

@testable import PrivatusBench

@Suite struct DHTSuiteTests {
    @Test func aSmallSimulatedNetworkReportsEveryFigure() {
        var suite = DHTSuite()
        suite.nodes = 200
        suite.lookups = 100
        let figures = suite.run()
        #expect(figures["success_rate"] == 1)
        #expect((figures["hops_p50"] ?? 0) >= 1)
        #expect((figures["churn_success_rate"] ?? 0) >= 0.95)
        for key in ["hops_p99", "lookup_ms_p50", "lookup_ms_p99", "requests_per_lookup", "lookups_per_s", "build_s"] {
            #expect((figures[key] ?? 0) > 0, "\(key)")
        }
        // The same seed gives the same figures, but for wall-clock time.
        let wallClock: Set<String> = ["lookups_per_s", "build_s"]
        let again = suite.run()
        #expect(again.filter { !wallClock.contains($0.key) } == figures.filter { !wallClock.contains($0.key) })
    }
}
