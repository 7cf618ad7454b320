import Foundation
import PrivatusNode
import PrivatusProfile
import PrivatusTesting
import Testing

/// `/metrics` of real nodes, read by a strict parser of the Prometheus text format (0.0.4):
/// after two nodes exchange messages, it parses and carries the message counters (issue 10);
/// `/api/v1/metrics` carries them too, with their series.
@Suite(.serialized) struct PrometheusTextTests {
    let cli: CLIProcess
    let scratch: TemporaryDirectory

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-prometheus")
    }

    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    enum ParseError: Error, CustomStringConvertible {
        case bad(line: Int, String)
        var description: String {
            switch self {
            case .bad(let line, let why): "line \(line): \(why)"
            }
        }
    }

    static func isName(_ text: Substring, colons: Bool) -> Bool {
        guard let first = text.unicodeScalars.first else { return false }
        func letter(_ c: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || c == "_" || (colons && c == ":")
        }
        return letter(first) && text.unicodeScalars.allSatisfy { letter($0) || ("0"..."9").contains($0) }
    }

    static func number(_ text: Substring) -> Double? {
        switch text {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(text)
        }
    }

    /// Parses the text format strictly: every line a comment (`# HELP`, `# TYPE` with a known
    /// type, once per family and before its samples) or a sample `name{labels} value [timestamp]`
    /// with valid names, quoted and escaped label values and no repeated label.
    static func parse(_ text: String) throws -> [Sample] {
        var samples: [Sample] = []
        var types: [String: String] = [:]
        var seenSamples = Set<String>()
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            if raw.isEmpty { continue }
            if raw.hasPrefix("#") {
                let parts = raw.split(separator: " ", maxSplits: 3)
                guard parts.count >= 3, parts[0] == "#" else { continue }  // a plain comment
                guard isName(parts[2], colons: true) else { throw ParseError.bad(line: line, "bad metric name") }
                if parts[1] == "TYPE" {
                    let family = String(parts[2])
                    guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                    else { throw ParseError.bad(line: line, "bad type") }
                    guard types[family] == nil, !seenSamples.contains(family) else {
                        throw ParseError.bad(line: line, "TYPE repeated or after samples")
                    }
                    types[family] = String(parts[3])
                }
                continue
            }
            var rest = raw[...]
            let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " } ?? rest.endIndex
            let name = rest[..<nameEnd]
            guard isName(name, colons: true) else { throw ParseError.bad(line: line, "bad sample name") }
            rest = rest[nameEnd...]
            var labels: [String: String] = [:]
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    guard let equals = rest.firstIndex(of: "=") else { throw ParseError.bad(line: line, "no =") }
                    let label = rest[..<equals]
                    guard isName(label, colons: false), labels[String(label)] == nil else {
                        throw ParseError.bad(line: line, "bad or repeated label")
                    }
                    rest = rest[rest.index(after: equals)...]
                    guard rest.first == "\"" else { throw ParseError.bad(line: line, "unquoted value") }
                    rest = rest.dropFirst()
                    var value = ""
                    while true {
                        guard let c = rest.first else { throw ParseError.bad(line: line, "unterminated value") }
                        rest = rest.dropFirst()
                        if c == "\"" { break }
                        if c == "\\" {
                            guard let escaped = rest.first, ["\\", "\"", "n"].contains(escaped) else {
                                throw ParseError.bad(line: line, "bad escape")
                            }
                            rest = rest.dropFirst()
                            value.append(escaped == "n" ? "\n" : escaped)
                        } else {
                            value.append(c)
                        }
                    }
                    labels[String(label)] = value
                    if rest.first == "," {
                        rest = rest.dropFirst()
                    } else if rest.first != "}" {
                        throw ParseError.bad(line: line, "expected , or }")
                    }
                }
                rest = rest.dropFirst()
            }
            guard rest.first == " " else { throw ParseError.bad(line: line, "no space before the value") }
            let fields = rest.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
            guard (1...2).contains(fields.count), let value = number(fields[0]),
                fields.count == 1 || Int64(fields[1]) != nil
            else { throw ParseError.bad(line: line, "bad value or timestamp") }
            var family = String(name)
            for suffix in ["_bucket", "_sum", "_count"] where family.hasSuffix(suffix) && types[family] == nil {
                let base = String(family.dropLast(suffix.count))
                if types[base] != nil { family = base }
            }
            seenSamples.insert(family)
            samples.append(Sample(name: String(name), labels: labels, value: value))
        }
        return samples
    }

    @Test func theParserRefusesMalformedText() {
        defer { scratch.remove() }  // made by init, not used here
        for bad in [
            "1metric 1", "m{a=\"1\",a=\"2\"} 1", "m{a=1} 1", "m{a=\"x} 1", "m 1 2 3", "m one", "m{a=\"\\q\"} 1",
            "m 1\n# TYPE m counter", "# TYPE m counter\n# TYPE m gauge", "# TYPE m whatever",
        ] {
            #expect(throws: ParseError.self, "\(bad)") { try Self.parse(bad) }
        }
        let good = try? Self.parse(
            "# HELP m a metric\n# TYPE m counter\nm{a=\"x\\\"y\",b=\"\"} 3 1700000000000\nn +Inf\n")
        #expect(
            good == [
                Sample(name: "m", labels: ["a": "x\"y", "b": ""], value: 3),
                Sample(name: "n", labels: [:], value: .infinity),
            ])
    }

    @Test func metricsParseAndCountTheMessagesTwoNodesExchanged() async throws {
        defer { scratch.remove() }
        let alice = try await ChatTests.User("alice", in: scratch, cli: cli)
        let bob = try await ChatTests.User("bob", in: scratch, cli: cli)
        try await alice.start()
        try await bob.start()
        let bobInvite = try #require(try await bob.status().invite)
        _ = try await alice.json(["contacts", "add", bobInvite, "--name", "bob"], as: ContactView.self)
        for text in ["one", "two", "three"] { _ = try await alice.json(["send", "bob", text], as: SendResult.self) }
        let delivered = try await alice.messages(with: "bob") {
            $0.count == 3 && $0.allSatisfy { $0.state == "delivered" }
        }
        #expect(delivered.count == 3)
        func metrics(_ user: ChatTests.User) async throws -> [Sample] {
            let (status, body) = try await ControlClient(layout: user.layout).get("/metrics")
            #expect(status == 200)
            return try Self.parse(String(decoding: body, as: UTF8.self))
        }
        let received = try await metrics(bob).filter { $0.name == "privatus_chat_received_total" }
        #expect(received.map(\.value) == [3], "\(received)")
        let attempts = try await metrics(alice).first { $0.name == "privatus_chat_send_attempts_total" }
        #expect((attempts?.value ?? 0) >= 3)
        #expect(try await metrics(alice).contains { $0.name == "privatus_process_resident_bytes" && $0.value > 0 })
        let sent = try await metrics(alice).first { $0.name == "privatus_chat_sent_total" }
        let acknowledged = try await metrics(alice).first { $0.name == "privatus_chat_delivered_total" }
        #expect(sent?.value == 3 && acknowledged?.value == 3)
        #expect(try await metrics(alice).contains { $0.name == "privatus_store_write_seconds_count" && $0.value > 0 })
        // Checkpoints start at 16 MiB of WAL: none yet, but each kind is there to be watched.
        let checkpoints = try await metrics(alice).filter { $0.name == "privatus_store_checkpoints_total" }
        #expect(Set(checkpoints.compactMap { $0.labels["kind"] }) == ["background", "catch_up", "limit"])

        // The dashboard's readings: the same counters, a series per metric with one entry per
        // reading, and `since` for what is new.
        let client = try ControlClient(layout: alice.layout)
        func readings(_ query: String) async throws -> MetricsSampler.Readings {
            let (status, body) = try await client.get("/api/v1/metrics\(query)")
            #expect(status == 200)
            return try JSONDecoder().decode(MetricsSampler.Readings.self, from: Data(body))
        }
        let all = try await readings("")
        #expect(all.intervalMs == 1_000 && all.capacity == 3_600)
        #expect(!all.times.isEmpty && all.times == all.times.sorted())
        #expect(all.metrics.values.allSatisfy { $0.series.count == all.times.count })
        #expect(all.metrics["privatus_chat_delivered_total"]?.kind == .counter)
        #expect(all.metrics["privatus_chat_delivered_total"]?.value == 3)
        #expect((all.metrics["privatus_chat_encrypted_bytes_total"]?.value ?? 0) > 0)
        #expect(all.metrics["privatus_process_resident_bytes"]?.kind == .gauge)
        #expect(all.metrics["privatus_store_write_seconds"]?.kind == .timer)
        let bobs = try JSONDecoder().decode(
            MetricsSampler.Readings.self,
            from: Data(try await ControlClient(layout: bob.layout).get("/api/v1/metrics?since=\(UInt64.max)").body))
        #expect((bobs.metrics["privatus_chat_decrypted_bytes_total"]?.value ?? 0) > 0)
        #expect(bobs.times.isEmpty, "nothing is newer than the end of time")
        let last = try #require(all.times.last)
        var newer = try await readings("?since=\(last)")
        for _ in 0..<100 where newer.times.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            newer = try await readings("?since=\(last)")
        }
        #expect(!newer.times.isEmpty && newer.times.allSatisfy { $0 > last }, "only readings after `since`")
        #expect(newer.metrics.values.allSatisfy { $0.series.count == newer.times.count })
        #expect(try await client.get("/api/v1/metrics?since=yesterday").status == 400)
        #expect(try await client.get("/api/v1/metrics", authorized: false).status == 401)
        try await alice.stop()
        try await bob.stop()
    }
}
