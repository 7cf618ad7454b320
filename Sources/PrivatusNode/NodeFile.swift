import Foundation
import PrivatusProfile

/// `<profile>/node.json` (0600): where a running node can be reached, written once its control
/// API listens and removed when it stops. Client commands read it to find the node.
public struct NodeFile: Codable, Sendable, Equatable {
    public static let maximumSize = 64 * 1024

    /// The node's process id.
    public var pid: Int32
    /// The control API's base URL, e.g. `http://127.0.0.1:24017`.
    public var ui: String
    /// The link listen addresses, `host:port`.
    public var listenAddresses: [String]

    public init(pid: Int32, ui: String, listenAddresses: [String]) {
        self.pid = pid
        self.ui = ui
        self.listenAddresses = listenAddresses
    }

    public static func path(in layout: ProfileLayout) -> String { layout.directory + "/node.json" }
    public static func tokenPath(in layout: ProfileLayout) -> String { layout.directory + "/api-token" }

    /// The node file of a running node, or nil when none is written or its process is gone.
    public static func read(in layout: ProfileLayout) -> NodeFile? {
        guard FileIO.exists(path(in: layout)),
            let bytes = try? FileIO.readFile(path(in: layout), maximumSize: maximumSize, kind: .profileFile),
            let file = try? JSONDecoder().decode(NodeFile.self, from: Data(bytes))
        else { return nil }
        // A node killed without cleaning up leaves its file: the lock tells whether it runs.
        guard (try? ProfileLock(profile: layout)) == nil else { return nil }
        return file
    }

    /// The bearer token of the control API (64 hex digits), or nil.
    public static func token(in layout: ProfileLayout) -> String? {
        guard let bytes = try? FileIO.readFile(tokenPath(in: layout), maximumSize: 1024, kind: .profileFile),
            let token = String(validating: bytes, as: UTF8.self)?.trimmingCharacters(in: .whitespacesAndNewlines),
            token.count == 64
        else { return nil }
        return token
    }
}
