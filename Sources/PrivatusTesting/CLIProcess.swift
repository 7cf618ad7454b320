import Foundation
import PrivatusCore
import Synchronization

/// Runs the real `privatus` executable as a child process, as a user's shell would.
///
/// Children are started through ``ChildProcess`` so that they see the signals (SIGTERM, SIGINT)
/// a user's shell would deliver.
public struct CLIProcess: Sendable {
    /// What a finished run printed and how it exited.
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// The executable: `$PRIVATUS_BIN` for `privatus`, else the product of that name beside the
    /// running test binary.
    public let executable: String

    public init(product: String = "privatus") throws {
        if product == "privatus", let override = ProcessInfo.processInfo.environment["PRIVATUS_BIN"] {
            self.executable = override
            return
        }
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var directory = URL(fileURLWithPath: me).deletingLastPathComponent()
        // On Linux the test bundle is an executable in the build directory; on macOS a bundle.
        while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent(product).path) {
            guard directory.path != "/" else { throw CLIProcessError.executableNotFound }
            directory.deleteLastPathComponent()
        }
        self.executable = directory.appendingPathComponent(product).path
    }

    /// Starts `privatus arguments…` and waits for it.
    public func run(
        _ arguments: [String],
        environment: [String: String] = [:],
        timeout: Duration = .seconds(120)
    ) async throws -> Result {
        try await start(arguments, environment: environment).wait(timeout: timeout)
    }

    /// Starts a process without waiting for it. Its environment is `PATH`, a scratch `HOME` (so
    /// no real profile is ever touched) and `environment`.
    public func start(_ arguments: [String], environment: [String: String] = [:]) throws -> Running {
        var base: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": FileManager.default.temporaryDirectory.appendingPathComponent("privatus-no-home").path,
        ]
        base.merge(environment) { $1 }
        return Running(child: try ChildProcess.spawn(executable, arguments: arguments, environment: base))
    }

    /// A started process.
    public struct Running: Sendable {
        public let child: ChildProcess

        /// Waits for exit, killing the process after `timeout`, and collects its output.
        /// - Throws: ``CLIProcessError/timedOut`` when it had to be killed.
        public func wait(timeout: Duration) async throws -> Result {
            let child = self.child
            let state = WaitState()
            let watchdog = Task {
                try await Task.sleep(for: timeout)
                state.value.withLock { state in
                    if !state.reaped {
                        state.killed = true
                        child.send(SIGKILL)
                    }
                }
            }
            // Reading and reaping block, so they run on a thread of their own, not the pool's.
            let (status, output, error) = await withCheckedContinuation { continuation in
                Thread.detachNewThread {
                    let (output, error) = child.collectOutput()
                    child.waitUntilExited()
                    state.value.withLock { $0.reaped = true }
                    let status = child.wait()
                    continuation.resume(returning: (status, output, error))
                }
            }
            watchdog.cancel()
            if state.value.withLock({ $0.killed }) { throw CLIProcessError.timedOut }
            return Result(
                status: status,
                stdout: String(decoding: output, as: UTF8.self),
                stderr: String(decoding: error, as: UTF8.self)
            )
        }
    }
}

private final class WaitState: Sendable {
    struct Flags {
        var reaped = false
        var killed = false
    }
    let value = Mutex(Flags())
}

public enum CLIProcessError: Error {
    case executableNotFound
    case timedOut
}
