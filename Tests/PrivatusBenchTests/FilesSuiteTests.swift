import Foundation
import PrivatusCore
import PrivatusTesting
import Testing

@testable import PrivatusBench

/// `bench files` between two real node processes (the `privatus` executable built beside the
/// tests), with a small file.
@Suite(.serialized) struct FilesSuiteTests {
    @Test func aSmallFileReportsEveryFigureAndLeavesNothingBehind() async throws {
        var suite = FilesSuite(executable: try CLIProcess().executable)
        suite.size = 8 << 20
        suite.ceilingBudget = .milliseconds(50)
        suite.plainTCPBytes = 8 << 20
        // 2 MiB/s: each transfer takes ≈ 4 s, so the kill lands in the middle even under load.
        suite.senderBandwidth = 2 << 20
        let figures = try await suite.run()
        for key in [
            "throughput_mb_s", "transfer_s", "aes_gcm_ceiling_mb_s", "plain_tcp_mb_s", "cpu_s_per_gib_sender",
            "cpu_s_per_gib_receiver", "peak_rss_mb", "peak_rss_mb_sender", "peak_rss_mb_receiver", "resume_s",
            "resume_total_s", "resume_chunks_resent", "chat_latency_during_transfer_ms",
            "chat_latency_during_transfer_p99_ms", "chat_samples", "throughput_of_aes_gcm_pct",
            "throughput_of_plain_pct",
        ] {
            let value = try #require(figures[key], "\(key) missing")
            #expect(value > 0, "\(key)")
        }
        #expect(figures["size_bytes"] == Double(8 << 20))
        #expect(figures["chunk_bytes"] == 262_144)
        #expect(figures["resume_chunks_before_kill"] != nil)
        #expect((figures["resume_s"] ?? 0) <= (figures["resume_total_s"] ?? 0))
        #expect((figures["chat_samples"] ?? 0) <= 20)
        #expect(
            (figures["peak_rss_mb"] ?? 0)
                == max(figures["peak_rss_mb_sender"] ?? 0, figures["peak_rss_mb_receiver"] ?? 0))
        // The nodes and the temporary profiles are gone with the run.
        let scratch = "privatus-bench-files-\(getpid())"
        #expect(!FileManager.default.fileExists(atPath: NSTemporaryDirectory() + "/" + scratch))
        let nodes = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { entry in
            guard Int(entry) != nil,
                let command = try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8)
            else { return false }
            return command.contains(scratch)
        }
        #expect(nodes.isEmpty)
    }

    @Test func cpuTimeIsReadFromProcStat() {
        // The command name may hold spaces and parentheses; utime is the 14th field, stime the 15th.
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 3 0 100 0 0\n"
        #expect(ProcessResources.cpuTicks(stat: stat) == 267)
        #expect(ProcessResources.cpuTicks(stat: "4242 (x) S 1") == nil)
        #if os(Linux)
        #expect((ProcessResources.cpuSeconds() ?? -1) >= 0)
        #endif
    }

    @Test func storageWritesAreReadFromProcIO() {
        let io =
            "rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 1\nread_bytes: 0\nwrite_bytes: 40960\ncancelled_write_bytes: 0\n"
        #expect(ProcessResources.ioCounter("write_bytes", of: io) == 40_960)
        #expect(ProcessResources.ioCounter("cancelled_write_bytes", of: io) == 0)
        #expect(ProcessResources.ioCounter("bytes", of: io) == nil)
    }
}
