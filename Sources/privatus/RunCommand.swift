import ArgumentParser
import Foundation
import Logging
import PrivatusCore
import PrivatusNode
import PrivatusProfile
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the node in the foreground (Ctrl-C or SIGTERM stops it gracefully)."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var password: PasswordOptions

    @Option(name: .long, help: "Address to listen on for links, host:port (repeatable; port 0: any free port).")
    var listen: [String] = []

    @Option(name: .long, help: "Loopback address of the control API, host:port (port 0: any free port).")
    var ui: String?

    @Option(name: .long, help: "A node to join the network through, host:port (repeatable; used by the DHT).")
    var bootstrap: [String] = []

    func run() async throws {
        let sink = global.bootstrapLogging()
        try await reportingFailures {
            let layout = global.layout
            let lock = try ProfileLock(profile: layout)
            let secret = try password.source.read()
            let profile = try Profile.unlock(layout, password: secret)
            try sink.attachFile(layout: layout)
            let config = try Profile.config(layout)
            let environment = ProcessInfo.processInfo.environment
            var settings = NodeSettings(
                listen: try Self.addresses(
                    listen, environment: environment["PRIVATUS_LISTEN"], default: ("0.0.0.0", config.listenPort),
                    flag: "--listen"),
                ui: try Self.addresses(
                    ui.map { [$0] } ?? [], environment: environment["PRIVATUS_UI"],
                    default: ("127.0.0.1", config.uiPort),
                    flag: "--ui")[0])
            settings.bootstrap = try Self.bootstrapPeers(
                bootstrap, environment: environment["PRIVATUS_BOOTSTRAP"], config: config.bootstrap ?? [])
            if let value = config.maxConnections { settings.connections.maximumConnections = value }
            if let value = config.maxMessageBytes { settings.connections.link.multiplex.maxMessageBytes = value }
            if let value = config.connectionBurst { settings.connections.rateLimits.burst = value }
            if let value = config.connectionsPerSecond { settings.connections.rateLimits.perSecond = value }
            if let value = config.retryInitialSeconds { settings.retryInitial = .seconds(value) }
            if let value = config.retryMaximumSeconds { settings.retryMaximum = .seconds(value) }
            if let value = config.readReceipts { settings.readReceipts = value }
            if let value = config.deliveryDeadlineSeconds { settings.deliveryDeadline = .seconds(value) }
            if let value = config.gapResendSeconds { settings.gapResend = .seconds(value) }
            if let value = config.gapReleaseSeconds { settings.gapRelease = .seconds(value) }
            if let value = config.discoverable { settings.discoverable = value }
            if let value = config.dhtExemptLoopback { settings.dhtExemptLoopback = value }
            settings.downloads = config.downloadsDirectory
            if let value = config.fileMaximumBytes { settings.fileMaximumBytes = value }
            if let value = config.fileAutoAcceptBytes { settings.fileAutoAcceptBytes = value }
            settings.fileBandwidth = config.fileBandwidthBytesPerSecond
            if let rules = try Self.alertRules(in: layout) { settings.alertRules = rules }
            guard ["127.0.0.1", "::1", "localhost"].contains(settings.ui.host) else {
                throw CLIFailure(status: 64, message: "--ui must be a loopback address")
            }
            let logger = Logger(label: "privatus.node")
            // Links, the database and transfers each hold descriptors: the soft limit (often
            // 1,024) goes up to the hard one, as far as an unprivileged process may
            // (docs/OPERATIONS.md); no system setting is changed.
            let descriptors = ProcessResources.raiseOpenFileLimit()
            logger.debug("open file limit", metadata: ["soft": "\(descriptors)"])
            let metrics = Node.bootstrapMetrics()
            let node = Node(profile: profile, settings: settings, metrics: metrics, logger: logger)
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: node)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            withExtendedLifetime(lock) {}
        }
    }

    /// `--bootstrap` flags, else `PRIVATUS_BOOTSTRAP` (comma-separated), else config.json's
    /// `bootstrap`; each must be host:port (exit 64 for a flag or the environment).
    static func bootstrapPeers(_ flags: [String], environment: String?, config: [String]) throws -> [String] {
        let given = flags.isEmpty ? (environment?.split(separator: ",").map(String.init) ?? []) : flags
        guard !given.isEmpty else { return config }
        guard given.count <= ProfileConfig.maximumBootstrapPeers else {
            throw CLIFailure(status: 64, message: "at most \(ProfileConfig.maximumBootstrapPeers) bootstrap peers")
        }
        for peer in given where HostPort(parsing: peer) == nil {
            throw CLIFailure(status: 64, message: "--bootstrap takes host:port")
        }
        return given
    }

    /// Flags, else the environment variable (comma-separated), else the default.
    static func addresses(
        _ flags: [String], environment: String?, default fallback: (String, Int), flag: String
    ) throws -> [(host: String, port: Int)] {
        let given = flags.isEmpty ? (environment?.split(separator: ",").map(String.init) ?? []) : flags
        guard !given.isEmpty else { return [fallback] }
        return try given.map { text in
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (0...65535).contains(port)
            else { throw CLIFailure(status: 64, message: "\(flag) takes host:port") }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return (host, port)
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running node's facts (through its control API)."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print {peerId, listenAddresses, ui, connectedPeers, queued, uptimeS, dbBytes}.")
    var json = false

    func run() async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            let client = try ControlClient(layout: global.layout)
            let (status, body) = try await client.get("/api/v1/status")
            guard status == 200 else { throw ControlClientError.refused(status: status) }
            let facts = try JSONDecoder().decode(NodeStatus.self, from: Data(body))
            if json {
                try Terminal.printJSON(facts)
            } else {
                print("peer id:         \(facts.peerId)")
                print("listening:       \(facts.listenAddresses.joined(separator: ", "))")
                print("ui:              \(facts.ui)")
                print("connected peers: \(facts.connectedPeers)")
                print("queued:          \(facts.queued)")
                print("uptime:          \(Int(facts.uptimeS)) s")
                print("database:        \(facts.dbBytes) bytes")
            }
        }
    }
}

extension RunCommand {
    /// config.json's `alerts` (docs/CONFIG.md), when given: at most 64 valid rules with distinct
    /// names, else the file is refused (exit 5, like any other value out of range).
    static func alertRules(in layout: ProfileLayout) throws -> [AlertRule]? {
        struct Alerts: Decodable { var alerts: [AlertRule]? }
        let bytes = try FileIO.readFile(layout.configFile, maximumSize: 1 << 20)
        guard let decoded = try? JSONDecoder().decode(Alerts.self, from: Data(bytes)) else {
            throw CLIFailure(status: 5, message: "config.json: alerts are malformed")
        }
        guard let rules = decoded.alerts else { return nil }
        guard rules.count <= 64, rules.allSatisfy(\.isValid), Set(rules.map(\.name)).count == rules.count else {
            throw CLIFailure(status: 5, message: "config.json: an alert rule is out of range")
        }
        return rules
    }
}
