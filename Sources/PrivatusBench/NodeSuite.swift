import Foundation
import PrivatusCore
import PrivatusNode
import PrivatusProfile

#if canImport(Glibc)
import Glibc
#endif

/// `privatus bench node`: a real `privatus run` on a temporary profile, started `runs` times:
/// time from the unlocked keystore to a listening control API (`startup_ms`, reported by the
/// node itself), and resident memory once it has settled (`idle_rss_mb`). The profiles are
/// created at the cheapest testing scrypt cost, so the password's transient scrypt buffer
/// (128 MiB at the real cost) is not in the RSS, as the issue asks.
/// `first_message_ms` comes with 1:1 messaging.
public struct NodeSuite: Sendable {
    public let executable: String
    public var runs = 7
    /// How long the node is left alone before its memory is read.
    public var settle = Duration.seconds(2)

    public init(executable: String) {
        self.executable = executable
    }

    public func run() async throws -> [String: Double] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("privatus-bench-node-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var startups: [Double] = []
        var residents: [Double] = []
        for index in 0..<runs {
            let profile = scratch.appendingPathComponent("p\(index)").path
            let environment = ["PRIVATUS_PASSWORD": "bench", "PATH": "/usr/bin:/bin", "HOME": scratch.path]
            let created = try ChildProcess.spawn(
                executable, arguments: ["--profile", profile, "init", "--insecure-scrypt-log2-n", "10"],
                environment: environment)
            _ = created.collectOutput(limit: 1 << 16)
            guard created.wait() == 0 else { throw NodeBenchError.failed("init") }

            let node = try ChildProcess.spawn(
                executable,
                arguments: ["--profile", profile, "run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"],
                environment: environment)
            defer {
                node.send(SIGTERM)
                _ = node.collectOutput(limit: 1 << 16)
                _ = node.wait()
            }
            let first = try PeerProcess.readLine(node.stdout, timeout: .seconds(30))
            guard first.hasPrefix("ui: ") else { throw NodeBenchError.failed("run printed no UI address") }
            let client = try ControlClient(layout: ProfileLayout(directory: profile))
            let (status, body) = try await client.get("/api/v1/status")
            guard status == 200, let facts = try? JSONDecoder().decode(NodeStatus.self, from: Data(body)),
                let startup = facts.startupMs
            else { throw NodeBenchError.failed("status") }
            startups.append(startup)
            try await Task.sleep(for: settle)
            guard let resident = ProcessResources.residentKiB(of: node.pid) else {
                throw NodeBenchError.failed("no RSS for the node")
            }
            residents.append(Double(resident) / 1024)
        }
        return [
            "startup_ms": StorageSuite.percentile(startups, 0.5),
            "startup_max_ms": startups.max() ?? 0,
            "idle_rss_mb": StorageSuite.percentile(residents, 0.5),
            "runs": Double(runs),
        ]
    }
}

enum NodeBenchError: Error, CustomStringConvertible {
    case failed(String)

    var description: String {
        switch self {
        case .failed(let what): "bench node: \(what) failed"
        }
    }
}
