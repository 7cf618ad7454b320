import Hummingbird

/// A condition on one metric that raises an alert once it has held for a while (issue 10; the
/// seed's alerting): `metric` above or below `threshold` for `durationSeconds` (and, when the
/// rule has one, while a second condition holds too); once resolved, the rule stays quiet for
/// `cooldownSeconds`.
public struct AlertRule: Codable, Sendable, Equatable {
    public enum Comparison: String, Codable, Sendable {
        case above
        case below
    }

    /// A metric compared with a threshold.
    public struct Condition: Codable, Sendable, Equatable {
        public var metric: String
        public var comparison: Comparison
        public var threshold: Double

        public init(metric: String, comparison: Comparison, threshold: Double) {
            self.metric = metric
            self.comparison = comparison
            self.threshold = threshold
        }

        /// Whether the metric's value meets it (a missing metric never does).
        func holds(in values: [String: Double]) -> Bool {
            guard let value = values[metric], value.isFinite else { return false }
            switch comparison {
            case .above: return value > threshold
            case .below: return value < threshold
            }
        }

        var isValid: Bool { !metric.isEmpty && metric.utf8.count <= 256 && threshold.isFinite }
    }

    public enum Severity: String, Codable, Sendable {
        case warning
        case critical
    }

    /// The rule's name (unique among the rules; shown in alerts).
    public var name: String
    /// The sampler's key of the metric (`label` or `label{dimension=value,…}`).
    public var metric: String
    public var comparison: Comparison
    public var threshold: Double
    /// How long the condition must hold before the alert fires (0: at the first reading).
    public var durationSeconds: Double
    public var severity: Severity
    /// After an alert resolves, how long the rule cannot fire again.
    public var cooldownSeconds: Double
    /// A second condition that must hold at the same readings (config.json: `while`), such as
    /// "messages wait for connected peers" beside "few deliveries per second".
    public var onlyWhile: Condition?

    enum CodingKeys: String, CodingKey {
        case name, metric, comparison, threshold, durationSeconds, severity, cooldownSeconds
        case onlyWhile = "while"
    }

    public init(
        name: String, metric: String, comparison: Comparison, threshold: Double, durationSeconds: Double,
        severity: Severity, cooldownSeconds: Double, onlyWhile: Condition? = nil
    ) {
        self.onlyWhile = onlyWhile
        self.name = name
        self.metric = metric
        self.comparison = comparison
        self.threshold = threshold
        self.durationSeconds = durationSeconds
        self.severity = severity
        self.cooldownSeconds = cooldownSeconds
    }

    /// Whether the readings meet the rule's condition, and its second condition when it has one
    /// (a missing metric never does).
    func holds(in values: [String: Double]) -> Bool {
        Condition(metric: metric, comparison: comparison, threshold: threshold).holds(in: values)
            && onlyWhile?.holds(in: values) ?? true
    }

    /// Whether the numbers are usable: a name and metric, finite threshold, non-negative times.
    public var isValid: Bool {
        !name.isEmpty && name.utf8.count <= 64 && !metric.isEmpty && metric.utf8.count <= 256 && threshold.isFinite
            && durationSeconds.isFinite && durationSeconds >= 0 && durationSeconds <= 86_400
            && cooldownSeconds.isFinite && cooldownSeconds >= 0 && cooldownSeconds <= 86_400
            && onlyWhile?.isValid ?? true
    }
}

/// An alert firing or resolving.
public struct AlertEvent: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case firing
        case resolved
    }

    public var rule: String
    public var metric: String
    public var state: State
    public var severity: AlertRule.Severity
    /// The metric's value at that reading (absent when the metric disappeared).
    public var value: Double?
    public var threshold: Double
    /// Unix milliseconds of the reading.
    public var at: UInt64
}

/// Evaluates alert rules against readings of the metrics, given with their time (so tests
/// drive it with a manual clock), and keeps a bounded history of firings and resolutions.
public struct AlertEngine: Sendable {
    public let rules: [AlertRule]
    /// Events kept at most (the oldest go first).
    public let historyCapacity: Int
    public private(set) var history: [AlertEvent] = []

    struct RuleState: Sendable {
        /// Since when (ms) the condition has held without a break.
        var holdingSince: UInt64?
        var firing = false
        /// Until when (ms) the rule may not fire (after a resolution).
        var quietUntil: UInt64 = 0
    }

    var states: [RuleState]

    public init(rules: [AlertRule], historyCapacity: Int = 200) {
        self.rules = rules
        self.historyCapacity = max(1, historyCapacity)
        states = Array(repeating: RuleState(), count: rules.count)
    }

    /// The rules firing now, by name.
    public var firing: [String] { zip(rules, states).filter { $0.1.firing }.map(\.0.name) }

    /// Reads `values` taken at `now` (Unix ms; readings come in time order): returns the alerts
    /// that fire or resolve at this reading, in rule order, and keeps them in the history.
    public mutating func evaluate(_ values: [String: Double], at now: UInt64) -> [AlertEvent] {
        var events: [AlertEvent] = []
        for index in rules.indices {
            let rule = rules[index]
            let value = values[rule.metric]
            var state = states[index]
            if rule.holds(in: values) {
                let since = state.holdingSince ?? now
                state.holdingSince = since
                let held = Double(now >= since ? now - since : 0) / 1_000
                if !state.firing, held >= rule.durationSeconds, now >= state.quietUntil {
                    state.firing = true
                    events.append(event(rule, .firing, value: value, at: now))
                }
            } else {
                state.holdingSince = nil
                if state.firing {
                    state.firing = false
                    state.quietUntil = now + UInt64(rule.cooldownSeconds * 1_000)
                    events.append(event(rule, .resolved, value: value, at: now))
                }
            }
            states[index] = state
        }
        history.append(contentsOf: events)
        if history.count > historyCapacity { history.removeFirst(history.count - historyCapacity) }
        return events
    }

    func event(_ rule: AlertRule, _ state: AlertEvent.State, value: Double?, at now: UInt64) -> AlertEvent {
        AlertEvent(
            rule: rule.name, metric: rule.metric, state: state, severity: rule.severity, value: value,
            threshold: rule.threshold, at: now)
    }
}

extension AlertRule {
    /// The seed's defaults (docs/OPERATIONS.md): process CPU over 80 % of one core, system
    /// memory in use over 85 % (per `MemAvailable`), the profile's disk over 90 % full, and more
    /// than 1,000 links; each for a minute (links: 10 s), quiet 5 minutes after resolving; and
    /// fewer than 10 deliveries per second for a minute while messages wait in the outbox for
    /// peers that have an open link.
    public static let defaults: [AlertRule] = [
        AlertRule(
            name: "process-cpu", metric: "privatus_process_cpu_percent", comparison: .above, threshold: 80,
            durationSeconds: 60, severity: .warning, cooldownSeconds: 300),
        AlertRule(
            name: "system-memory", metric: "privatus_system_memory_used_percent", comparison: .above, threshold: 85,
            durationSeconds: 60, severity: .warning, cooldownSeconds: 300),
        AlertRule(
            name: "disk-full", metric: "privatus_profile_disk_used_percent", comparison: .above, threshold: 90,
            durationSeconds: 60, severity: .critical, cooldownSeconds: 300),
        AlertRule(
            name: "connections", metric: "privatus_link_connections", comparison: .above, threshold: 1_000,
            durationSeconds: 10, severity: .warning, cooldownSeconds: 300),
        AlertRule(
            name: "slow-delivery", metric: "rate(privatus_chat_delivered_total)", comparison: .below, threshold: 10,
            durationSeconds: 60, severity: .warning, cooldownSeconds: 300,
            onlyWhile: Condition(metric: "privatus_chat_outbox_connected", comparison: .above, threshold: 0)),
    ]
}

/// `GET /api/v1/alerts`: the rules, those firing now, and the recent firings and resolutions.
struct AlertsView: Codable, Sendable, ResponseEncodable {
    var rules: [AlertRule]
    var firing: [String]
    var history: [AlertEvent]
}
