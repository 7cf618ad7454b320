/// Where each file of a profile lives.
///
/// ```
/// <profile>/            0700
///   keystore            0600  sealed private keys and database key (the commit point of `init`)
///   identity.json       0600  public identity: keys and binding signatures
///   config.json         0600  settings chosen at `init`
///   lock                0600  flock(2) target
///   privatus.sqlite     0600  the sealed database (and its -wal, -shm), created by `init`
///   logs/privatus.log   0600  written only after the keystore is unlocked
///   transfers/          0700  partial files of incoming transfers (`<id>.part`, 0600)
///   downloads/          0700  finished, verified received files (the default folder)
/// ```
public struct ProfileLayout: Sendable, Hashable {
    /// The profile directory.
    public let directory: String

    public init(directory: String) {
        var trimmed = directory
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.directory = trimmed
    }

    /// Resolves the profile directory: `--profile`, else `$PRIVATUS_HOME`, else
    /// `$XDG_DATA_HOME/privatus`, else `~/.local/share/privatus`.
    public static func resolve(flag: String?, environment: [String: String]) -> ProfileLayout {
        if let flag, !flag.isEmpty { return ProfileLayout(directory: flag) }
        if let home = environment["PRIVATUS_HOME"], !home.isEmpty { return ProfileLayout(directory: home) }
        if let data = environment["XDG_DATA_HOME"], !data.isEmpty {
            return ProfileLayout(directory: data + "/privatus")
        }
        return ProfileLayout(directory: (environment["HOME"] ?? ".") + "/.local/share/privatus")
    }

    public var keystoreFile: String { directory + "/keystore" }
    public var identityFile: String { directory + "/identity.json" }
    public var configFile: String { directory + "/config.json" }
    public var lockFile: String { directory + "/lock" }
    /// The SQLite database (with its `-wal` and `-shm` companions).
    public var databaseFile: String { directory + "/privatus.sqlite" }
    public var logsDirectory: String { directory + "/logs" }
    /// Partial files of incoming transfers.
    public var transfersDirectory: String { directory + "/transfers" }
    /// Where received files go by default.
    public var downloadsDirectory: String { directory + "/downloads" }

    /// Whether `name` may stand in a directory before `init`: a file an interrupted `init` leaves
    /// behind (everything but the keystore, which is written last), or a temporary file of an
    /// atomic write.
    static func isLeftoverOfInit(_ name: String) -> Bool {
        let base = name.split(separator: ".tmp-", maxSplits: 1).first.map(String.init) ?? name
        return ["identity.json", "config.json", "lock", "logs"].contains(base) || (base == "keystore" && base != name)
    }
}
