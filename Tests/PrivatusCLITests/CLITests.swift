import Foundation
import PrivatusTesting
import Testing

/// The `privatus` executable as a user runs it: real processes, temporary profiles.
@Suite(.serialized) struct CLITests {
    static let cheap = ["--insecure-scrypt-log2-n", "10"]

    let cli: CLIProcess
    let scratch: TemporaryDirectory
    var profile: String { scratch.child("profile") }

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-cli")
    }

    func run(
        _ arguments: [String], password: String? = "x", extra: [String: String] = [:]
    ) async throws -> CLIProcess.Result {
        var environment = extra
        if let password { environment["PRIVATUS_PASSWORD"] = password }
        return try await cli.run(["--profile", profile] + arguments, environment: environment)
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// The processes of this executable still running whose command line holds `marker` (those a
    /// bench started must be gone with it).
    func processes(of marker: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { entry in
            guard Int(entry) != nil,
                let command = try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8)
            else { return false }
            return command.contains(marker) && command.hasPrefix(cli.executable)
        }
    }

    @Test func initThenIdShowsTheSamePeerIDEveryTime() async throws {
        defer { scratch.remove() }
        let created = try await run(["init", "--name", "alice", "--json"] + Self.cheap)
        #expect(created.status == 0, "\(created.stderr)")
        let createdJSON = try json(created.stdout)
        let peerId = try #require(createdJSON["peerId"] as? String)
        #expect(peerId.count == 64 && peerId.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(createdJSON["name"] as? String == "alice")
        #expect(created.stderr.contains("warning"), "the cheap testing cost must warn")

        for _ in 0..<2 {
            let shown = try await run(["id", "--json"])
            #expect(shown.status == 0, "\(shown.stderr)")
            let shownJSON = try json(shown.stdout)
            #expect(shownJSON["peerId"] as? String == peerId)
            #expect(shownJSON["name"] as? String == "alice")
            #expect(shownJSON["invite"] as? String == "privatus://" + peerId)
            let fingerprint = try #require(shownJSON["fingerprint"] as? String)
            #expect(fingerprint.replacingOccurrences(of: " ", with: "") == peerId)
        }
        let human = try await run(["id"])
        #expect(human.stdout.contains(peerId))
    }

    @Test func defaultCostIsAtLeastTheFloor() async throws {
        defer { scratch.remove() }
        let created = try await run(["init", "--name", "carol"])
        #expect(created.status == 0, "\(created.stderr)")
        #expect(!created.stderr.contains("warning"))
        let keystore = try Data(contentsOf: URL(fileURLWithPath: profile + "/keystore"))
        #expect(keystore[11] >= 17, "log2 N of the keystore header")
        #expect(keystore[12] == 8 && keystore[13] == 1)
    }

    @Test func wrongPasswordExitsFourWithOneLineAndChangesNothing() async throws {
        defer { scratch.remove() }
        #expect(try await run(["init", "--name", "alice"] + Self.cheap).status == 0)
        #expect(try await run(["id"]).status == 0)
        let before = try scratch.snapshot()
        let wrong = try await run(["id", "--json"], password: "not it")
        #expect(wrong.status == 4)
        #expect(wrong.stdout.isEmpty)
        #expect(wrong.stderr == "privatus: wrong password\n")
        #expect(try scratch.snapshot() == before)
        let passwd = try await run(["passwd"], password: "not it", extra: ["PRIVATUS_NEW_PASSWORD": "y"])
        #expect(passwd.status == 4)
        #expect(try scratch.snapshot() == before)
    }

    @Test func noProfileFileIsReadableByGroupOrOthers() async throws {
        defer { scratch.remove() }
        #expect(try await run(["init"] + Self.cheap).status == 0)
        #expect(try await run(["id"]).status == 0)
        let entries = try scratch.snapshot(of: profile)
        #expect(entries.keys.contains("keystore") && entries.keys.contains("logs/privatus.log"))
        #expect(entries.keys.contains("privatus.sqlite"), "init creates the database")
        for (name, entry) in entries {
            #expect(entry.mode & 0o077 == 0, "\(name) has mode \(String(entry.mode, radix: 8))")
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: profile)
        #expect(attributes[.posixPermissions] as? Int == 0o700)
    }

    @Test func secondInitIsRefusedWithSix() async throws {
        defer { scratch.remove() }
        #expect(try await run(["init"] + Self.cheap).status == 0)
        let again = try await run(["init"] + Self.cheap)
        #expect(again.status == 6)
        #expect(again.stderr.contains("already exists"))
    }

    @Test func concurrentInitsLetExactlyOneWin() async throws {
        defer { scratch.remove() }
        for round in 0..<3 {
            let directory = scratch.child("race-\(round)")
            let racers = try (0..<2).map { index in
                try cli.start(
                    ["--profile", directory, "init", "--name", "racer\(index)", "--json"] + Self.cheap,
                    environment: ["PRIVATUS_PASSWORD": "pw\(index)"]
                )
            }
            var results: [CLIProcess.Result] = []
            for racer in racers { results.append(try await racer.wait(timeout: .seconds(60))) }
            #expect(results.map(\.status).sorted() == [0, 6], "\(results.map(\.stderr))")
            let winner = try #require(results.firstIndex { $0.status == 0 })
            let shown = try await cli.run(
                ["--profile", directory, "id", "--json"], environment: ["PRIVATUS_PASSWORD": "pw\(winner)"])
            #expect(shown.status == 0)
            #expect(try json(shown.stdout)["peerId"] as? String == json(results[winner].stdout)["peerId"] as? String)
        }
    }

    @Test func missingOrDamagedProfilesExitFiveWithTheirOwnMessages() async throws {
        defer { scratch.remove() }
        let missing = try await run(["id"])
        #expect(missing.status == 5)
        #expect(missing.stderr.contains("no profile"))

        #expect(try await run(["init"] + Self.cheap).status == 0)
        let keystorePath = profile + "/keystore"
        let original = try Data(contentsOf: URL(fileURLWithPath: keystorePath))

        try original.prefix(original.count - 10).write(to: URL(fileURLWithPath: keystorePath))
        let truncated = try await run(["id"])
        #expect(truncated.status == 5)
        #expect(truncated.stderr.contains("truncated"))

        var altered = original
        altered[100] ^= 0x01
        try altered.write(to: URL(fileURLWithPath: keystorePath))
        let damaged = try await run(["id"])
        #expect(damaged.status == 5)
        #expect(damaged.stderr.contains("damaged"))

        var future = original
        future[9] = 9
        try future.write(to: URL(fileURLWithPath: keystorePath))
        let unknown = try await run(["id"])
        #expect(unknown.status == 5)
        #expect(unknown.stderr.contains("version 9"))

        let messages = [truncated.stderr, damaged.stderr, unknown.stderr, missing.stderr]
        #expect(Set(messages).count == 4)
        #expect(messages.allSatisfy { $0.split(separator: "\n").count == 1 })
    }

    @Test func passwdChangesThePasswordAndKeepsTheIdentity() async throws {
        defer { scratch.remove() }
        let created = try await run(["init", "--json"] + Self.cheap, password: "old")
        let peerId = try json(created.stdout)["peerId"] as? String
        let changed = try await run(["passwd"] + Self.cheap, password: "old", extra: ["PRIVATUS_NEW_PASSWORD": "new"])
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(try await run(["id"], password: "old").status == 4)
        let shown = try await run(["id", "--json"], password: "new")
        #expect(shown.status == 0)
        #expect(try json(shown.stdout)["peerId"] as? String == peerId)
    }

    @Test func passwordFileLosesOneTrailingNewline() async throws {
        defer { scratch.remove() }
        let file = scratch.child("password")
        try Data("secret\n".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try await run(["init", "--password-file", file] + Self.cheap, password: nil).status == 0)
        #expect(try await run(["id"], password: "secret").status == 0)
        try Data("secret\n\n".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try await run(["id", "--password-file", file], password: nil).status == 4)
    }

    @Test func passwordFileMayBeAPipe() async throws {
        defer { scratch.remove() }
        // What `--password-file <(pass show privatus)` gives: a FIFO whose size reads as 0.
        let fifo = scratch.child("password.fifo")
        for (index, arguments) in [["init"] + Self.cheap, ["id"]].enumerated() {
            unlink(fifo)
            #expect(mkfifo(fifo, 0o600) == 0)
            Thread.detachNewThread {
                let writer = open(fifo, O_WRONLY)
                _ = "pipe secret\n".withCString { write(writer, $0, 12) }
                close(writer)
            }
            let result = try await run(arguments + ["--password-file", fifo], password: nil)
            #expect(result.status == 0, "step \(index): \(result.stderr)")
        }
        #expect(try await run(["id"], password: "pipe secret").status == 0)
    }

    @Test func noPasswordSourceAndNoTerminalExitsOneSayingHow() async throws {
        defer { scratch.remove() }
        let result = try await run(["init"] + Self.cheap, password: nil)
        #expect(result.status == 1)
        #expect(result.stderr.contains("--password-file") && result.stderr.contains("PRIVATUS_PASSWORD"))
        #expect(!FileManager.default.fileExists(atPath: profile + "/keystore"))
    }

    @Test func badUsageExitsSixtyFour() async throws {
        defer { scratch.remove() }
        #expect(try await run(["init", "--insecure-scrypt-log2-n", "30"]).status == 64)
        #expect(try await run(["bench", "nonexistent"]).status == 64)
        #expect(try await run(["bench", "crypto", "--unlock-log2-n", "40"]).status == 64)
        #expect(try await run(["bench", "transport", "--idle-links", "0"]).status == 64)
        #expect(try await run(["frobnicate"]).status == 64)
    }

    @Test func logsNeverShowThePeerIDAtTheDefaultLevel() async throws {
        defer { scratch.remove() }
        let created = try await run(["init", "--json"] + Self.cheap)
        let peerId = try #require(try json(created.stdout)["peerId"] as? String)
        let shown = try await run(["id"])
        let passwd = try await run(["passwd"] + Self.cheap, extra: ["PRIVATUS_NEW_PASSWORD": "x"])
        let log = try String(contentsOfFile: profile + "/logs/privatus.log", encoding: .utf8)
        #expect(log.contains("keystore unlocked"), "the default level does write the log")
        #expect(log.contains("password changed"))
        for text in [log, created.stderr, shown.stderr, passwd.stderr] {
            #expect(!text.contains(peerId))
            #expect(!text.contains(String(peerId.prefix(16))))
        }
        // The same check can fail: at debug level the PeerID is logged, by design.
        _ = try await run(["id", "--log-level", "debug"])
        let debugLog = try String(contentsOfFile: profile + "/logs/privatus.log", encoding: .utf8)
        #expect(debugLog.contains(peerId))
    }

    @Test func globalOptionsWorkAfterTheCommandToo() async throws {
        defer { scratch.remove() }
        let created = try await cli.run(
            ["init", "--profile", profile] + Self.cheap, environment: ["PRIVATUS_PASSWORD": "x"])
        #expect(created.status == 0, "\(created.stderr)")
        let viaHome = try await cli.run(
            ["id", "--json"], environment: ["PRIVATUS_PASSWORD": "x", "PRIVATUS_HOME": profile])
        #expect(viaHome.status == 0)
    }

    @Test func dbCommandsMaintainARealProfile() async throws {
        defer { scratch.remove() }
        #expect(try await run(["init"] + Self.cheap).status == 0)
        for command in ["check", "optimize", "vacuum"] {
            let result = try await run(["db", command, "--json"])
            #expect(result.status == 0, "db \(command): \(result.stderr)")
            let output = try json(result.stdout)
            #expect(output["ok"] as? Bool == true, "db \(command)")
            #expect(output["tookMs"] is Double || output["tookMs"] is Int, "db \(command)")
        }
        #expect(try await run(["db", "check"], password: "wrong").status == 4)

        // Damage the b-tree page headers of the database file: the check must say so (exit 1).
        let database = profile + "/privatus.sqlite"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: database))
        for page in 2..<min(bytes.count / 4096, 12) { bytes[page * 4096] = 0xff }
        try bytes.write(to: URL(fileURLWithPath: database))
        let damaged = try await run(["db", "check", "--json"])
        #expect(damaged.status == 1, "\(damaged.stdout) \(damaged.stderr)")
    }

    @Test func backupCreateAndRestoreOnRealProfiles() async throws {
        defer { scratch.remove() }
        let created = try await run(["init", "--name", "alice", "--json"] + Self.cheap)
        let peerId = try json(created.stdout)["peerId"] as? String
        let file = scratch.child("profile.backup")
        let backup = try await run(["backup", "create", file, "--json"] + Self.cheap)
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect((try json(backup.stdout)["bytes"] as? Int ?? 0) > 0)
        #expect(
            try await run(["backup", "create", file] + Self.cheap).status == 1, "an existing file is not overwritten")

        let elsewhere = scratch.child("restored")
        let wrong = try await cli.run(
            ["--profile", elsewhere, "backup", "restore", file], environment: ["PRIVATUS_PASSWORD": "no"])
        #expect(wrong.status == 4)
        let restored = try await cli.run(
            ["--profile", elsewhere, "backup", "restore", file, "--json"], environment: ["PRIVATUS_PASSWORD": "x"])
        #expect(restored.status == 0, "\(restored.stderr)")
        let shown = try await cli.run(
            ["--profile", elsewhere, "id", "--json"], environment: ["PRIVATUS_PASSWORD": "x"])
        #expect(try json(shown.stdout)["peerId"] as? String == peerId)
        #expect(
            try await cli.run(["--profile", elsewhere, "db", "check"], environment: ["PRIVATUS_PASSWORD": "x"]).status
                == 0)
        let again = try await cli.run(
            ["--profile", elsewhere, "backup", "restore", file], environment: ["PRIVATUS_PASSWORD": "x"])
        #expect(again.status == 6, "restoring over an existing profile is refused")
    }

    @Test func benchCryptoPrintsEveryFigure() async throws {
        defer { scratch.remove() }
        let result = try await cli.run([
            "bench", "crypto", "--json", "--seconds-per-figure", "0.01", "--unlock-runs", "1", "--no-reference",
            "--unlock-log2-n", "10",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let figures = try json(result.stdout)
        for key in [
            "aes_gcm_1k_mb_s", "aes_gcm_1m_mb_s", "aes_gcm_siv_1k_mb_s", "chachapoly_1m_mb_s", "x25519_per_s",
            "ed25519_sign_per_s", "ed25519_verify_per_s", "hmac_sha256_64_per_s", "hkdf_per_s",
            "mlkem768_encap_per_s", "keystore_unlock_ms", "file_chunk_seal_256k_mb_s", "file_chunk_seal_1m_mb_s",
            "file_chunk_open_256k_mb_s", "file_chunk_open_1m_mb_s",
        ] {
            let value = try #require(figures[key] as? Double, "\(key) missing")
            #expect(value > 0, "\(key)")
        }
    }

    @Test func benchTransportMeasuresEveryFigureBetweenTwoProcesses() async throws {
        defer { scratch.remove() }
        let result = try await cli.run([
            "bench", "transport", "--json", "--handshakes", "3", "--round-trips", "50", "--bulk-mib", "2",
            "--idle-links", "100",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let figures = try json(result.stdout)
        #expect(figures["suite"] as? String == "transport")
        #expect(figures["machine"] is String && figures["date"] is String)
        for key in [
            "handshake_ms", "handshake_p99_ms", "handshakes_per_s", "rtt_p50_us", "rtt_p99_us", "plain_rtt_p50_us",
            "plain_rtt_p99_us", "rtt_of_plain_pct", "throughput_mb_s", "plain_tcp_mb_s", "throughput_of_plain_pct",
            "bulk_message_bytes", "mem_per_conn_kb", "dialer_mem_per_conn_kb", "idle_links", "event_loop_threads",
            "rtt_cpu_us", "plain_rtt_cpu_us", "rtt_thread_runs", "plain_rtt_thread_runs", "bulk_cpu_us_per_message",
            "plain_bulk_cpu_us_per_message",
        ] {
            let value = try #require(figures[key] as? Double, "\(key) missing")
            #expect(value > 0, "\(key)")
        }
        // A difference of two timings: present, of either sign.
        #expect(figures["rtt_overhead_us"] is Double)
        #expect(figures["idle_links"] as? Double == 100)
        // The peer process is gone with the bench: no `transport-peer` outlives it.
        #expect(try processes(of: "transport-peer").isEmpty)
    }

    @Test func benchE2EDeliversEveryMessageBetweenTwoRealNodesAndReportsItsFigures() async throws {
        defer { scratch.remove() }
        let result = try await cli.run(["bench", "e2e", "--json", "--e2e-messages", "40", "--e2e-paced", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        let figures = try json(result.stdout)
        #expect(figures["suite"] as? String == "e2e")
        for key in [
            "msgs_per_s", "latency_p50_ms", "latency_p99_ms", "cpu_us_per_msg_sender", "cpu_us_per_msg_receiver",
            "paced_sent_per_s",
            // Both nodes commit every message durably: each wrote pages for the paced ones.
            "paced_written_kib_per_msg_sender", "paced_written_kib_per_msg_receiver",
            "paced_cpu_us_per_msg_sender", "paced_cpu_us_per_msg_receiver", "paced_thread_runs_per_msg_sender",
            "paced_thread_runs_per_msg_receiver",
            // Each node's writer committed the paced messages (from its metrics; -1 if unread).
            "paced_commits_per_msg_sender", "paced_commits_per_msg_receiver", "paced_writer_busy_sender",
            "paced_writer_busy_receiver",
            // The floor: 20 records through two more processes, each answered.
            "latency_floor_p50_ms", "latency_floor_p99_ms", "latency_p50_over_floor",
        ] {
            let value = try #require(figures[key] as? Double, "\(key) missing")
            #expect(value > 0, "\(key)")
        }
        #expect(figures["messages"] as? Double == 40)
        // Read from each node's metrics (-1 if not): 20 paced messages write far less than the
        // 16 MiB of WAL that starts a checkpoint.
        for key in [
            "paced_checkpoints_sender", "paced_checkpoints_receiver", "paced_limit_checkpoints_sender",
            "paced_limit_checkpoints_receiver",
        ] {
            #expect(figures[key] as? Double == 0, "\(key)")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter {
            $0.hasPrefix("privatus-bench-e2e-") || $0.hasPrefix("privatus-bench-floor-")
        }
        #expect(leftovers.isEmpty)
        #expect(try processes(of: "e2e-floor-peer").isEmpty)
    }

    @Test func benchE2EWithoutReferenceLeavesTheFloorOut() async throws {
        defer { scratch.remove() }
        let result = try await cli.run([
            "bench", "e2e", "--json", "--no-reference", "--e2e-messages", "10", "--e2e-paced", "10",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let figures = try json(result.stdout)
        #expect(figures["latency_p50_ms"] is Double)
        #expect(figures["latency_floor_p50_ms"] == nil)
    }

    @Test func theFloorPeerRefusesMissingOptions() async throws {
        let result = try await cli.run(["bench", "e2e-floor-peer", "--floor-role", "relay"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--floor-role sender|receiver"))
    }

    @Test func benchNodeStartsRealNodesAndReportsTheirStartupAndMemory() async throws {
        defer { scratch.remove() }
        let result = try await cli.run(["bench", "node", "--json", "--node-runs", "1", "--node-pairs", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let figures = try json(result.stdout)
        #expect(figures["suite"] as? String == "node")
        for key in [
            "startup_ms", "startup_max_ms", "idle_rss_mb", "idle_pss_mb", "idle_anon_mb", "first_message_ms", "runs",
            "pairs",
        ] {
            let value = try #require(figures[key] as? Double, "\(key) missing")
            #expect(value > 0, "\(key)")
        }
        // The nodes are gone with the bench.
        #expect(try processes(of: "privatus-bench-node").isEmpty)
    }
}
