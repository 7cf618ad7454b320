import Foundation
import Testing

@testable import PrivatusNode

/// Alert rules driven by a manual clock: threshold, duration, cooldown, resolution, bounds.
@Suite struct AlertEngineTests {
    let cpu = AlertRule(
        name: "cpu", metric: "cpu_percent", comparison: .above, threshold: 80, durationSeconds: 10,
        severity: .warning, cooldownSeconds: 30)
    let deliveries = AlertRule(
        name: "slow", metric: "deliveries_per_s", comparison: .below, threshold: 10, durationSeconds: 0,
        severity: .critical, cooldownSeconds: 0)

    /// Readings of `metric` once a second from `start` (ms), one value each; the events of each.
    func run(
        _ engine: inout AlertEngine, _ metric: String, _ values: [Double], from start: UInt64 = 0
    )
        -> [[AlertEvent.State]]
    {
        values.enumerated().map { second, value in
            engine.evaluate([metric: value], at: start + UInt64(second) * 1_000).map(\.state)
        }
    }

    @Test func anAlertFiresOnlyOnceTheConditionHeldForItsDuration() {
        var engine = AlertEngine(rules: [cpu])
        // Above for 9 s, a dip, then above again: the count starts over at the dip.
        let first = run(
            &engine, "cpu_percent", Array(repeating: 95, count: 10) + [50] + Array(repeating: 95, count: 11))
        #expect(first.firstIndex { !$0.isEmpty } == 21, "fires 10 s after the condition began again (second 11)")
        #expect(engine.firing == ["cpu"])
        // Exactly at the threshold does not hold ("above").
        var exact = AlertEngine(rules: [cpu])
        let atThreshold = run(&exact, "cpu_percent", Array(repeating: 80, count: 30))
        #expect(atThreshold.allSatisfy { $0.isEmpty })
    }

    @Test func anAlertResolvesWhenTheConditionEndsAndCoolsDownBeforeFiringAgain() {
        var engine = AlertEngine(rules: [cpu])
        _ = run(&engine, "cpu_percent", Array(repeating: 95, count: 11))  // fires at 10 s
        let resolved = engine.evaluate(["cpu_percent": 20], at: 11_000)
        #expect(resolved.map(\.state) == [.resolved] && resolved.first?.value == 20)
        #expect(engine.firing.isEmpty)
        // Above again at once: held 10 s by 21 s, but quiet until 41 s (30 s cooldown).
        let again = run(&engine, "cpu_percent", Array(repeating: 95, count: 40), from: 12_000)
        let firedAt = again.firstIndex { $0 == [.firing] }.map { 12_000 + UInt64($0) * 1_000 }
        #expect(firedAt == 41_000)
        #expect(engine.history.map(\.state) == [.firing, .resolved, .firing])
        #expect(engine.history.map(\.at) == [10_000, 11_000, 41_000])
    }

    @Test func aMissingMetricNeverHoldsAndResolvesAFiringAlert() {
        var engine = AlertEngine(rules: [deliveries])
        #expect(engine.evaluate([:], at: 0).isEmpty, "no reading: nothing fires")
        #expect(engine.evaluate(["deliveries_per_s": 3], at: 1_000).map(\.state) == [.firing])
        let gone = engine.evaluate([:], at: 2_000)
        #expect(gone.map(\.state) == [.resolved] && gone.first?.value == nil)
        #expect(engine.evaluate(["deliveries_per_s": .nan], at: 3_000).isEmpty, "not a number: does not hold")
    }

    @Test func rulesAreIndependentAndTheHistoryIsBounded() {
        var engine = AlertEngine(rules: [cpu, deliveries], historyCapacity: 5)
        var at: UInt64 = 0
        for _ in 0..<20 {
            _ = engine.evaluate(["cpu_percent": 99, "deliveries_per_s": 1], at: at)
            _ = engine.evaluate(["cpu_percent": 99, "deliveries_per_s": 50], at: at + 500)
            at += 1_000
        }
        // "cpu" fired once (at 10 s) and still fires; "slow" fired and resolved every second: the
        // history keeps only the last 5 events, all of "slow".
        #expect(engine.firing == ["cpu"])
        #expect(engine.history.map(\.at) == [17_500, 18_000, 18_500, 19_000, 19_500])
        #expect(engine.history.map(\.state) == [.resolved, .firing, .resolved, .firing, .resolved])
        #expect(engine.history.allSatisfy { $0.rule == "slow" && $0.severity == .critical })
    }

    @Test func rulesOutOfRangeAreInvalid() {
        #expect(cpu.isValid && deliveries.isValid)
        var bad = cpu
        bad.threshold = .infinity
        #expect(!bad.isValid)
        bad = cpu
        bad.durationSeconds = -1
        #expect(!bad.isValid)
        bad = cpu
        bad.name = ""
        #expect(!bad.isValid)
    }

    @Test func aRuleWithASecondConditionFiresOnlyWhileBothHold() {
        var slow = deliveries
        slow.durationSeconds = 3
        slow.onlyWhile = .init(metric: "queued_connected", comparison: .above, threshold: 0)
        var engine = AlertEngine(rules: [slow])
        var states: [[AlertEvent.State]] = []
        // Few deliveries but nothing waiting for a connected peer: quiet. Then messages wait for
        // 4 s (fires after 3 s), then the queue empties (resolves) though deliveries stay low.
        let queued: [Double] = [0, 0, 0, 0, 0, 5, 5, 5, 5, 0, 0]
        for (second, waiting) in queued.enumerated() {
            states.append(
                engine.evaluate(
                    ["deliveries_per_s": 1, "queued_connected": waiting], at: UInt64(second) * 1_000
                ).map(\.state))
        }
        #expect(states == [[], [], [], [], [], [], [], [], [.firing], [.resolved], []])
        // The second condition's metric missing: never holds.
        var missing = AlertEngine(rules: [slow])
        let quiet = (0..<10).flatMap { missing.evaluate(["deliveries_per_s": 0], at: UInt64($0) * 1_000) }
        #expect(quiet.isEmpty)
    }

    @Test func theSeedsDefaultsAreValidAndReadFromConfigJSON() throws {
        let valid = AlertRule.defaults.allSatisfy(\.isValid)
        let names = Set(AlertRule.defaults.map(\.name))
        #expect(valid)
        #expect(names.count == AlertRule.defaults.count)
        let json = """
            {"name": "slow", "metric": "rate(privatus_chat_delivered_total)", "comparison": "below",
             "threshold": 10, "durationSeconds": 60, "severity": "warning", "cooldownSeconds": 300,
             "while": {"metric": "privatus_chat_outbox_connected", "comparison": "above", "threshold": 0}}
            """
        let rule = try JSONDecoder().decode(AlertRule.self, from: Data(json.utf8))
        var expected = try #require(AlertRule.defaults.first { $0.name == "slow-delivery" })
        expected.name = "slow"
        #expect(rule == expected)
        var bad = rule
        bad.onlyWhile?.threshold = .nan
        #expect(!bad.isValid)
    }
}
