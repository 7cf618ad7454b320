import Foundation
import PrivatusNode
import PrivatusProfile
import PrivatusTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Alerts of a running node (issue 10): a rule with a tiny threshold fires, and `watch --json`
/// and `GET /api/v1/alerts` show it.
@Suite(.serialized) struct AlertTests {
    let cli: CLIProcess
    let scratch: TemporaryDirectory

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-alerts")
    }

    @Test func aForcedAlertIsSeenInWatchAndTheAlertsEndpoint() async throws {
        defer { scratch.remove() }
        let alice = try await ChatTests.User("alice", in: scratch, cli: cli)
        // Anything waiting in the outbox: true once a message waits for a contact who is not there
        // (the gauge is read every second).
        // And a counter's rate: any message committed in the last second (fires with the send,
        // resolves a second or two later).
        try alice.configure([
            "alerts": [
                [
                    "name": "waiting", "metric": "privatus_chat_outbox", "comparison": "above", "threshold": 0,
                    "durationSeconds": 0, "severity": "critical", "cooldownSeconds": 0,
                ],
                [
                    "name": "sending", "metric": "rate(privatus_chat_sent_total)", "comparison": "above",
                    "threshold": 0, "durationSeconds": 0, "severity": "warning", "cooldownSeconds": 0,
                ],
            ]
        ])
        try await alice.start()
        let watcher = try cli.start(
            ["--profile", alice.profile, "watch", "--json"], environment: ["PRIVATUS_PASSWORD": "x"])
        #expect(try watcher.child.readLine(timeout: .seconds(30)) == #"{"type":"watching"}"#)
        let client = try ControlClient(layout: alice.layout)
        let (_, before) = try await client.get("/api/v1/alerts")
        let quiet = try #require(try JSONSerialization.jsonObject(with: Data(before)) as? [String: Any])
        #expect((quiet["firing"] as? [String]) == [], "nothing waits yet")
        let nobody = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        _ = try await alice.json(["contacts", "add", nobody, "--name", "nobody"], as: ContactView.self)
        _ = try await alice.json(["send", "nobody", "are you there?"], as: SendResult.self)
        var firing: [String] = []
        var body: [String: Any] = [:]
        var history: [[String: Any]] = []
        func seen(_ rule: String, _ state: String) -> Bool {
            history.contains { $0["rule"] as? String == rule && $0["state"] as? String == state }
        }
        for _ in 0..<400 {
            let (status, bytes) = try await client.get("/api/v1/alerts")
            #expect(status == 200)
            body = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
            firing = body["firing"] as? [String] ?? []
            history = body["history"] as? [[String: Any]] ?? []
            if seen("waiting", "firing"), seen("sending", "resolved") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(firing == ["waiting"], "the message still waits; nothing was sent in the last second")
        let waiting = try #require(history.first { $0["rule"] as? String == "waiting" })
        #expect(waiting["state"] as? String == "firing" && waiting["severity"] as? String == "critical")
        #expect(waiting["value"] as? Double == 1, "one message waits")
        let sending = history.filter { $0["rule"] as? String == "sending" }.compactMap { $0["state"] as? String }
        #expect(sending == ["firing", "resolved"], "the send's rate fired, and resolved once it fell to 0")
        #expect((body["rules"] as? [[String: Any]])?.count == 2, "the configured rules replace the defaults")
        // It waits for a contact who is not connected: not what the slow-delivery rule watches.
        #expect(try await alice.metric("privatus_chat_outbox") == 1)
        #expect(try await alice.metric("privatus_chat_outbox_connected") == 0)
        #expect(try await client.get("/api/v1/alerts", authorized: false).status == 401)
        // The process's own figures are sampled too.
        #expect(try await alice.metric("privatus_process_resident_bytes") > Double(1 << 20))
        #expect(try await alice.metric("privatus_process_open_fds") > 3)
        let memory = try await alice.metric("privatus_system_memory_used_percent")
        #expect(memory > 0 && memory < 100)
        let disk = try await alice.metric("privatus_profile_disk_used_percent")
        #expect(disk > 0 && disk < 100)
        // The watcher saw it fire.
        try await alice.stop()
        let output = try await watcher.wait(timeout: .seconds(30)).stdout
        let events = try output.split(separator: "\n").map {
            try JSONDecoder().decode(NodeEvent.self, from: Data($0.utf8))
        }
        let alerts = events.filter { $0.type == "alert" }
        let alert = try #require(alerts.first { $0.id == "waiting" }, "\(output)")
        #expect(alert.state == "firing" && alert.name == "critical")
        #expect(alerts.filter { $0.id == "sending" }.map(\.state) == ["firing", "resolved"])
    }

    @Test func anAlertRuleOutOfRangeMakesRunRefuseTheConfig() async throws {
        defer { scratch.remove() }
        let alice = try await ChatTests.User("alice", in: scratch, cli: cli)
        try alice.configure([
            "alerts": [
                [
                    "name": "", "metric": "x", "comparison": "above", "threshold": 1, "durationSeconds": 0,
                    "severity": "warning", "cooldownSeconds": 0,
                ]
            ]
        ])
        let result = try await alice.run(["run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"])
        #expect(result.status == 5 && result.stderr.contains("alert rule"), "\(result.stderr)")
    }
}
