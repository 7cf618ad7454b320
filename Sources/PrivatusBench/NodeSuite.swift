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
/// `first_message_ms`: two fresh nodes on loopback; from alice's `contacts add` of bob's invite
/// through `send` (bundle fetch, PQXDH, the first message, bob's commit and receipt) until
/// alice's API lists the message `delivered` (polled every millisecond), over `pairs` pairs.
public struct NodeSuite: Sendable {
    public let executable: String
    public var runs = 7
    public var pairs = 5
    /// How long the node is left alone before its memory is read.
    public var settle = Duration.seconds(2)

    public init(executable: String) {
        self.executable = executable
    }

    public func run() async throws -> [String: Double] {
        let scratch = try LocalNodeDirectory(executable: executable, prefix: "privatus-bench-node")
        defer { scratch.remove() }
        var startups: [Double] = []
        var residents: [Double] = []
        var proportional: [Double] = []
        var anonymous: [Double] = []
        for index in 0..<runs {
            let node = try scratch.start("p\(index)", name: "me")
            defer { node.stop() }
            let facts = try await node.status()
            guard let startup = facts.startupMs else { throw NodeBenchError.failed("status") }
            startups.append(startup)
            try await Task.sleep(for: settle)
            guard let resident = ProcessResources.residentKiB(of: node.process.pid) else {
                throw NodeBenchError.failed("no RSS for the node")
            }
            residents.append(Double(resident) / 1024)
            if let memory = ProcessResources.proportionalKiB(of: node.process.pid) {
                proportional.append(Double(memory.pss) / 1024)
                anonymous.append(Double(memory.anonymous) / 1024)
            }
        }
        var firstMessages: [Double] = []
        for index in 0..<pairs {
            let alice = try scratch.start("a\(index)", name: "me")
            defer { alice.stop() }
            let bob = try scratch.start("b\(index)", name: "me")
            defer { bob.stop() }
            guard let invite = try await bob.status().invite else { throw NodeBenchError.failed("bob's invite") }
            let started = ContinuousClock.now
            try await alice.addContact(invite, name: "bob")
            let sent = try await alice.send("hello", to: "bob")
            var delivered = false
            for _ in 0..<30_000 {
                let messages = try await alice.client.call(
                    "GET", "/api/v1/messages?peer=bob&limit=1", as: [MessageView].self)
                if messages.first?.id == sent, messages.first?.state == "delivered" {
                    delivered = true
                    break
                }
                try await Task.sleep(for: .milliseconds(1))
            }
            guard delivered else { throw NodeBenchError.failed("the first message was not delivered") }
            firstMessages.append((ContinuousClock.now - started).milliseconds)
        }
        return [
            "startup_ms": StorageSuite.percentile(startups, 0.5),
            "startup_max_ms": startups.max() ?? 0,
            "idle_rss_mb": StorageSuite.percentile(residents, 0.5),
            "idle_pss_mb": StorageSuite.percentile(proportional, 0.5),
            "idle_anon_mb": StorageSuite.percentile(anonymous, 0.5),
            "first_message_ms": StorageSuite.percentile(firstMessages, 0.5),
            "first_message_max_ms": firstMessages.max() ?? 0,
            "runs": Double(runs),
            "pairs": Double(pairs),
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
