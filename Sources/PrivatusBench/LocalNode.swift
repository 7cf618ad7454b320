import Foundation
import PrivatusCore
import PrivatusNode
import PrivatusProfile

#if canImport(Glibc)
import Glibc
#endif

/// A real `privatus run` on a new temporary profile (made at the cheapest testing scrypt cost),
/// listening on ephemeral loopback ports, driven through its control API: what `bench node` and
/// `demo` start.
public struct LocalNode: Sendable {
    public let profile: String
    let executable: String
    let home: String
    public private(set) var process: ChildProcess
    public private(set) var client: ControlClient

    /// Creates the profile (named `name`), adds `config` to its config.json (docs/CONFIG.md),
    /// and starts its node.
    public static func start(
        executable: String, profile: String, home: String, name: String? = nil, config: [String: any Sendable] = [:]
    ) throws
        -> LocalNode
    {
        let created = try ChildProcess.spawn(
            executable,
            arguments: ["--profile", profile, "init", "--insecure-scrypt-log2-n", "10"]
                + (name.map { ["--name", $0] } ?? []),
            environment: environment(home: home))
        _ = created.collectOutput(limit: 1 << 16)
        guard created.wait() == 0 else { throw LocalNodeError.failed("init") }
        if !config.isEmpty {
            let url = URL(fileURLWithPath: ProfileLayout(directory: profile).configFile)
            guard var current = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
                throw LocalNodeError.failed("reading config.json")
            }
            for (key, value) in config { current[key] = value }
            try JSONSerialization.data(withJSONObject: current).write(to: url)
        }
        let (process, client) = try run(executable: executable, profile: profile, home: home)
        return LocalNode(profile: profile, executable: executable, home: home, process: process, client: client)
    }

    static func environment(home: String) -> [String: String] {
        ["PRIVATUS_PASSWORD": "local-node", "PATH": "/usr/bin:/bin", "HOME": home]
    }

    static func run(executable: String, profile: String, home: String) throws -> (ChildProcess, ControlClient) {
        let node = try ChildProcess.spawn(
            executable,
            arguments: ["--profile", profile, "run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"],
            environment: environment(home: home))
        do {
            let first = try PeerProcess.readLine(node, timeout: .seconds(30))
            guard first.hasPrefix("ui: ") else { throw LocalNodeError.failed("run printed no UI address") }
            return (node, try ControlClient(layout: ProfileLayout(directory: profile)))
        } catch {
            node.send(SIGTERM)
            _ = node.collectOutput(limit: 1 << 16)
            _ = node.wait()
            throw error
        }
    }

    public func status() async throws -> NodeStatus {
        try await client.call("GET", "/api/v1/status", as: NodeStatus.self)
    }

    /// Adds a contact from its invite.
    @discardableResult
    public func addContact(_ invite: String, name: String) async throws -> ContactView {
        try await client.call(
            "POST", "/api/v1/contacts", body: AddContactRequest(invite: invite, name: name), as: ContactView.self)
    }

    /// Sends a message; returns its id.
    public func send(_ text: String, to peer: String) async throws -> String {
        try await client.call(
            "POST", "/api/v1/messages", body: SendRequest(peer: peer, text: text), as: SendResult.self
        ).id
    }

    /// Stops the node gracefully (SIGTERM) and waits for it.
    public func stop() {
        process.send(SIGTERM)
        _ = process.collectOutput(limit: 1 << 16)
        _ = process.wait()
    }

    /// Ends the node at once with SIGKILL (as a crash or a power cut would: nothing is synced or
    /// closed by the node) and reaps it. Then ``startAgain()``, never ``stop()``: the process and
    /// its pipes are gone.
    public func kill() {
        process.send(SIGKILL)
        _ = process.collectOutput(limit: 1 << 16)
        _ = process.wait()
    }

    /// Starts the stopped (or killed) node again on the same profile (new ephemeral ports).
    public mutating func startAgain() throws {
        (process, client) = try Self.run(executable: executable, profile: profile, home: home)
    }
}

/// A temporary directory for local nodes' profiles, removed with ``remove()``.
public struct LocalNodeDirectory: Sendable {
    public let url: URL
    let executable: String

    /// Creates `<tmp>/<prefix>-<pid>`.
    public init(executable: String, prefix: String) throws {
        self.executable = executable
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(getpid())")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Creates the profile `directory` (its user named `name`, by default the directory's
    /// name) and starts its node.
    public func start(
        _ directory: String, name: String? = nil, config: [String: any Sendable] = [:]
    ) throws
        -> LocalNode
    {
        try LocalNode.start(
            executable: executable, profile: url.appendingPathComponent(directory).path, home: url.path,
            name: name ?? directory, config: config)
    }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}

public enum LocalNodeError: Error, CustomStringConvertible {
    case failed(String)

    public var description: String {
        switch self {
        case .failed(let what): "local node: \(what) failed"
        }
    }
}
