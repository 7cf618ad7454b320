import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where log lines go: standard error from the start, and `<profile>/logs/privatus.log` (0600)
/// once the profile is unlocked (``attachFile(layout:)``). Before that nothing is written into
/// the profile.
///
/// The rule of DESIGN.md holds for every caller: no keys, passwords, plaintext or content at
/// any level; PeerIDs and addresses only at `debug` and below.
public final class LogSink: Sendable {
    /// The log file is moved to `privatus.log.1` when it has grown past this at attach time.
    public static let rotationSize = 8 * 1024 * 1024

    private struct State {
        var fileDescriptor: Int32?
    }

    private let state = Mutex(State())
    /// The lowest level written to the log file.
    public let fileLevel: Logger.Level
    /// The lowest level written to standard error.
    public let stderrLevel: Logger.Level

    public init(fileLevel: Logger.Level, stderrLevel: Logger.Level) {
        self.fileLevel = fileLevel
        self.stderrLevel = stderrLevel
    }

    /// The lowest level any destination wants; loggers filter below it.
    public var level: Logger.Level { min(fileLevel, stderrLevel) }

    /// Starts writing to `<profile>/logs/privatus.log`. Call only after the keystore is unlocked.
    public func attachFile(layout: ProfileLayout) throws(ProfileError) {
        try FileIO.makeDirectory(layout.logsDirectory)
        var directory = stat()
        guard lstat(layout.logsDirectory, &directory) == 0, (directory.st_mode & S_IFMT) == S_IFDIR else {
            throw .damagedFile(path: layout.logsDirectory)
        }
        let path = layout.logsDirectory + "/privatus.log"
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) > Self.rotationSize {
            rename(path, path + ".1")
        }
        // Never through a symbolic link, and only onto a regular file: a planted link must not
        // redirect log lines or the chmod elsewhere.
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        var opened = stat()
        guard fstat(fd, &opened) == 0, (opened.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .damagedFile(path: path)
        }
        fchmod(fd, 0o600)
        let previous = state.withLock { state in
            defer { state.fileDescriptor = fd }
            return state.fileDescriptor
        }
        if let previous { close(previous) }
    }

    /// Writes one formatted line to each destination whose level admits it.
    func write(level: Logger.Level, line: String) {
        let bytes = Array(line.utf8) + [0x0a]
        if level >= stderrLevel {
            bytes.withUnsafeBytes { _ = Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
        if level >= fileLevel {
            state.withLock { state in
                guard let fd = state.fileDescriptor else { return }
                bytes.withUnsafeBytes { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
            }
        }
    }
}

/// A swift-log handler writing `time level label: message key=value` lines to a ``LogSink``.
public struct PrivatusLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let sink: LogSink

    public init(label: String, sink: LogSink) {
        self.label = label
        self.sink = sink
        self.logLevel = sink.level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var line = "\(Date.now.formatted(.iso8601)) \(event.level) \(label): \(event.message)"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        sink.write(level: event.level, line: line)
    }
}
