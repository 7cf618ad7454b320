import Foundation

/// One run of a suite: its figures and the machine they were measured on.
public struct BenchReport: Encodable, Sendable {
    public var suite: String
    public var figures: [String: Double]
    public var machine: String
    public var date: String

    public init(suite: String, figures: [String: Double]) {
        self.suite = suite
        self.figures = figures
        self.machine = Self.describeMachine()
        self.date = Date.now.formatted(.iso8601)
    }

    /// Figures as top-level snake_case keys, beside `suite`, `machine` and `date`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in figures { try container.encode(Self.rounded(value), forKey: Key(name)) }
        try container.encode(suite, forKey: Key("suite"))
        try container.encode(machine, forKey: Key("machine"))
        try container.encode(date, forKey: Key("date"))
    }

    /// One line per figure, sorted by name.
    public var text: String {
        var lines = ["suite \(suite) on \(machine), \(date)"]
        for (name, value) in figures.sorted(by: { $0.key < $1.key }) {
            lines.append(name.padding(toLength: 36, withPad: " ", startingAt: 0) + String(Self.rounded(value)))
        }
        return lines.joined(separator: "\n")
    }

    static func rounded(_ value: Double) -> Double {
        value >= 100 ? value.rounded() : (value * 1000).rounded() / 1000
    }

    /// CPU model and core count from /proc/cpuinfo, where there is one.
    static func describeMachine() -> String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memory = ProcessInfo.processInfo.physicalMemory / (1 << 30)
        var model = "unknown CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
            let colon = line.firstIndex(of: ":")
        {
            model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return "\(model), \(cores) cores, \(memory) GiB"
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { self.stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
