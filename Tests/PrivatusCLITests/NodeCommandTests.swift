import Foundation
import PrivatusNode
import PrivatusProfile
import PrivatusTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `privatus run` and the client commands, as real processes on temporary profiles.
@Suite(.serialized) struct NodeCommandTests {
    let cli: CLIProcess
    let scratch: TemporaryDirectory
    var profile: String { scratch.child("profile") }
    var layout: ProfileLayout { ProfileLayout(directory: profile) }

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-node")
    }

    func run(_ arguments: [String]) async throws -> CLIProcess.Result {
        try await cli.run(["--profile", profile] + arguments, environment: ["PRIVATUS_PASSWORD": "x"])
    }

    /// Starts a node on ephemeral ports and waits until its node.json is written.
    func startNode(ui: String = "127.0.0.1:0") async throws -> CLIProcess.Running {
        let created = try await run(["init", "--name", "alice"] + CLITests.cheap)
        #expect(created.status == 0, "\(created.stderr)")
        let node = try cli.start(
            ["--profile", profile, "run", "--listen", "127.0.0.1:0", "--ui", ui],
            environment: ["PRIVATUS_PASSWORD": "x"])
        for _ in 0..<400 where NodeFile.read(in: layout) == nil {
            try await Task.sleep(for: .milliseconds(25))
        }
        _ = try #require(NodeFile.read(in: layout), "the node wrote node.json")
        return node
    }

    @Test func statusAnswersWithTheContractKeysAndSigtermStopsTheNodeCleanly() async throws {
        defer { scratch.remove() }
        let node = try await startNode()
        let status = try await run(["status", "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let facts = try #require(JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        for key in ["peerId", "listenAddresses", "ui", "connectedPeers", "queued", "uptimeS", "dbBytes"] {
            #expect(facts[key] != nil, "status --json has \(key)")
        }
        let file = try #require(NodeFile.read(in: layout))
        #expect(facts["ui"] as? String == file.ui)
        #expect((facts["listenAddresses"] as? [String])?.first?.hasPrefix("127.0.0.1:") == true)
        for path in [NodeFile.path(in: layout), NodeFile.tokenPath(in: layout)] {
            #expect(try FileIO.mode(path) & 0o777 == 0o600)
        }

        node.child.send(SIGTERM)
        let ended = try await node.wait(timeout: .seconds(30))
        #expect(ended.status == 0, "\(ended.stderr)")
        #expect(ended.stdout.contains("ui: \(file.ui)"), "run prints the UI URL on start")
        #expect(!FileIO.exists(NodeFile.path(in: layout)), "node.json goes with the node")
        let after = try await run(["status", "--json"])
        #expect(after.status == 3)
        #expect(after.stderr.contains("no node is running for this profile"))
    }

    @Test func aSecondRunOnTheSameProfileExitsSix() async throws {
        defer { scratch.remove() }
        let node = try await startNode()
        let second = try await run(["run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"])
        #expect(second.status == 6, "\(second.stderr)")
        node.child.send(SIGTERM)
        _ = try await node.wait(timeout: .seconds(30))
    }

    @Test func theControlAPIRefusesRequestsWithoutTheTokenOrWithAForeignHost() async throws {
        defer { scratch.remove() }
        let node = try await startNode()
        let client = try ControlClient(layout: layout)
        let port = try #require(URLComponents(string: client.baseURL)?.port)
        #expect(try await client.get("/api/v1/status").status == 200)
        #expect(try await client.get("/api/v1/status", authorized: false).status == 401)
        let forged = ControlClient(
            baseURL: client.baseURL, token: String(repeating: "0", count: 64), host: "127.0.0.1", port: port)
        #expect(try await forged.get("/api/v1/status").status == 401)
        #expect(try await client.get("/api/v1/status", hostHeader: "attacker.example:\(port)").status == 403)
        #expect(try await client.get("/api/v1/status", hostHeader: "localhost:\(port)").status == 200)
        // The process's metrics, in Prometheus text, behind the same token.
        let metrics = try await client.get("/metrics")
        #expect(metrics.status == 200)
        #expect(String(decoding: metrics.body, as: UTF8.self).contains("privatus_link_connections"))
        #expect(try await client.get("/metrics", authorized: false).status == 401)
        // The in-process sampler holds the same metrics, for the dashboard.
        let samples = try await client.get("/api/v1/metrics")
        #expect(samples.status == 200)
        let sampled = try JSONDecoder().decode(MetricsSampler.Readings.self, from: Data(samples.body))
        let prekeys = sampled.metrics["privatus_prekeys_one_time"]
        #expect(prekeys?.kind == .gauge && prekeys?.value == 100, "the node's fresh prekeys, as a gauge")
        #expect(try await client.get("/api/v1/metrics", authorized: false).status == 401)
        // Every endpoint is behind the token, the contacts and chat ones included.
        for (method, path) in [
            ("GET", "/api/v1/contacts"), ("GET", "/api/v1/contacts/requests"), ("POST", "/api/v1/contacts"),
            ("POST", "/api/v1/contacts/alice/block"), ("POST", "/api/v1/messages"), ("GET", "/api/v1/messages?peer=a"),
            ("POST", "/api/v1/messages/read"), ("GET", "/api/v1/events"),
        ] {
            #expect(try await client.request(method, path, authorized: false).status == 401, "\(method) \(path)")
        }
        node.child.send(SIGTERM)
        _ = try await node.wait(timeout: .seconds(30))
    }

    /// Whether a watch's first line (`watching`) came, or how it failed.
    final class Watching: Sendable {
        let seen = Mutex(false)
        let failure = Mutex<String?>(nil)
    }

    @Test func watchersThatLeaveFreeTheirPlacesWithNoEventInBetween() async throws {
        defer { scratch.remove() }
        let node = try await startNode()
        let client = try ControlClient(layout: layout)
        // Twice as many watchers as the node keeps, one after the other, each leaving (closing its
        // connection) once it watches. No event is published meanwhile: only the closed
        // connection tells the node that a place is free again.
        for round in 1...(2 * NodeEvents.maximumWatchers) {
            let watching = Watching()
            let watcher = Task {
                do {
                    try await client.stream("/api/v1/events") { line in
                        if line.hasSuffix(#""type":"watching"}"#) { watching.seen.withLock { $0 = true } }
                    }
                } catch {
                    watching.failure.withLock { $0 = "\(error)" }
                }
            }
            for _ in 0..<1_000 where !watching.seen.withLock({ $0 }) && watching.failure.withLock({ $0 }) == nil {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(watching.failure.withLock { $0 } == nil, "watch \(round) was refused")
            #expect(watching.seen.withLock { $0 }, "watch \(round) watches")
            watcher.cancel()
            await watcher.value
        }
        node.child.send(SIGTERM)
        let ended = try await node.wait(timeout: .seconds(30))
        #expect(ended.status == 0, "\(ended.stderr)")
    }

    @Test func aClientKeepingItsConnectionsAliveGetsTheSameAnswers() async throws {
        defer { scratch.remove() }
        let node = try await startNode()
        let client = try ControlClient(layout: layout).keepingConnectionsAlive()
        let port = try #require(URLComponents(string: client.baseURL)?.port)
        // Refusals and answers alternate on the same connections.
        for _ in 0..<3 {
            #expect(try await client.get("/api/v1/status").status == 200)
            #expect(try await client.get("/api/v1/status", authorized: false).status == 401)
            #expect(try await client.get("/api/v1/status", hostHeader: "attacker.example:\(port)").status == 403)
            #expect(try await client.request("POST", "/api/v1/messages", json: Array("{}".utf8)).status == 400)
        }
        let status = try await client.call("GET", "/api/v1/status", as: NodeStatus.self)
        #expect(status.ui == client.baseURL)
        // Concurrent requests each get their own connection and their own answer.
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<20 {
                group.addTask {
                    try await client.get(index % 2 == 0 ? "/api/v1/contacts" : "/api/v1/nowhere").status
                }
            }
            var statuses: [Int] = []
            for try await status in group { statuses.append(status) }
            #expect(statuses.sorted() == Array(repeating: 200, count: 10) + Array(repeating: 404, count: 10))
        }
        node.child.send(SIGTERM)
        let ended = try await node.wait(timeout: .seconds(30))
        #expect(ended.status == 0, "a node with kept-alive connections still stops cleanly: \(ended.stderr)")
    }

    @Test func aControlAPIOnIPv6LoopbackServesTheClient() async throws {
        defer { scratch.remove() }
        let node = try await startNode(ui: "[::1]:0")
        let status = try await run(["status", "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("http://[::1]:"))
        node.child.send(SIGTERM)
        _ = try await node.wait(timeout: .seconds(30))
    }

    @Test func anAddressInUseExitsOneNamingTheFlagToChange() async throws {
        defer { scratch.remove() }
        let node = try await startNode()
        let file = try #require(NodeFile.read(in: layout))
        let busyUI = try #require(file.ui.split(separator: "/").last.map(String.init))
        let busyListen = try #require(file.listenAddresses.first)
        let other = scratch.child("other")
        let environment = ["PRIVATUS_PASSWORD": "x"]
        #expect(try await cli.run(["--profile", other, "init"] + CLITests.cheap, environment: environment).status == 0)
        let uiTaken = try await cli.run(
            ["--profile", other, "run", "--listen", "127.0.0.1:0", "--ui", busyUI], environment: environment)
        #expect(uiTaken.status == 1)
        #expect(uiTaken.stderr.contains("--ui"), "\(uiTaken.stderr)")
        let listenTaken = try await cli.run(
            ["--profile", other, "run", "--listen", busyListen, "--ui", "127.0.0.1:0"], environment: environment)
        #expect(listenTaken.status == 1)
        #expect(listenTaken.stderr.contains("--listen"), "\(listenTaken.stderr)")
        #expect(!FileIO.exists(NodeFile.path(in: ProfileLayout(directory: other))))
        node.child.send(SIGTERM)
        _ = try await node.wait(timeout: .seconds(30))
    }

    @Test func aConfigWithASettingOutOfRangeIsRefusedNotHalfUnderstood() async throws {
        defer { scratch.remove() }
        #expect(try await run(["init", "--name", "carol"] + CLITests.cheap).status == 0)
        let path = layout.configFile
        var config = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        config["maxConnections"] = 0
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        let refused = try await run(["run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"])
        #expect(refused.status == 5, "\(refused.stderr)")
        #expect(refused.stderr.contains("config.json"), "\(refused.stderr)")
        // Each value in range, but the wait before a gap is given up shorter than before it is
        // asked about.
        config["maxConnections"] = 16
        config["gapResendSeconds"] = 10
        config["gapReleaseSeconds"] = 5
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        let inconsistent = try await run(["run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"])
        #expect(inconsistent.status == 5, "\(inconsistent.stderr)")
        // In range, with every optional setting, the node starts.
        config["gapReleaseSeconds"] = 30
        config["maxConnections"] = 16
        config["maxMessageBytes"] = 1 << 20
        config["connectionBurst"] = 5
        config["connectionsPerSecond"] = 0.5
        config["retryInitialSeconds"] = 5
        config["retryMaximumSeconds"] = 60
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        let node = try cli.start(
            ["--profile", profile, "run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"],
            environment: ["PRIVATUS_PASSWORD": "x"])
        for _ in 0..<400 where NodeFile.read(in: layout) == nil {
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(NodeFile.read(in: layout) != nil, "the node started with the settings")
        node.child.send(SIGTERM)
        let ended = try await node.wait(timeout: .seconds(30))
        #expect(ended.status == 0, "\(ended.stderr)")
    }

    @Test func bootstrapPeersComeFromFlagsThenEnvironmentThenConfig() async throws {
        defer { scratch.remove() }
        #expect(try await run(["init", "--name", "dave"] + CLITests.cheap).status == 0)
        let url = URL(fileURLWithPath: layout.configFile)
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        config["bootstrap"] = ["192.0.2.1:4000"]
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        func bootstrap(_ flags: [String], environment: [String: String]) async throws -> [String]? {
            let node = try cli.start(
                ["--profile", profile, "run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"] + flags,
                environment: ["PRIVATUS_PASSWORD": "x"].merging(environment) { $1 })
            for _ in 0..<400 where NodeFile.read(in: layout) == nil {
                try await Task.sleep(for: .milliseconds(25))
            }
            let status = try await run(["status", "--json"])
            node.child.send(SIGTERM)
            _ = try await node.wait(timeout: .seconds(30))
            let facts = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            return facts?["bootstrap"] as? [String]
        }
        #expect(try await bootstrap([], environment: [:]) == ["192.0.2.1:4000"])
        #expect(
            try await bootstrap([], environment: ["PRIVATUS_BOOTSTRAP": "192.0.2.2:5000,[2001:db8::1]:5001"])
                == ["192.0.2.2:5000", "[2001:db8::1]:5001"])
        #expect(
            try await bootstrap(
                ["--bootstrap", "192.0.2.3:6000"], environment: ["PRIVATUS_BOOTSTRAP": "192.0.2.2:5000"])
                == ["192.0.2.3:6000"])
        let bad = try await run(["run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0", "--bootstrap", "nowhere"])
        #expect(bad.status == 64, "\(bad.stderr)")
    }

    @Test func clientCommandsWithNoNodeExitThree() async throws {
        defer { scratch.remove() }
        #expect(try await run(["init", "--name", "bob"] + CLITests.cheap).status == 0)
        for command in [
            ["status"], ["contacts", "list"], ["contacts", "requests"],
            ["contacts", "add", String(repeating: "a", count: 64)],
            ["send", "alice", "hi"], ["messages", "alice"],
        ] {
            let result = try await run(command)
            #expect(result.status == 3, "\(command)")
            #expect(result.stderr.contains("no node is running for this profile"), "\(command)")
        }
    }
}
