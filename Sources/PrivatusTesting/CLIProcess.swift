import Foundation

/// Runs the real `privatus` executable as a child process, as a user's shell would.
public struct CLIProcess: Sendable {
    /// What a finished run printed and how it exited.
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// The executable: `$PRIVATUS_BIN`, else `privatus` beside the running test binary.
    public let executable: String

    public init() throws {
        if let override = ProcessInfo.processInfo.environment["PRIVATUS_BIN"] {
            self.executable = override
            return
        }
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var directory = URL(fileURLWithPath: me).deletingLastPathComponent()
        // On Linux the test bundle is an executable in the build directory; on macOS a bundle.
        while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("privatus").path) {
            guard directory.path != "/" else { throw CLIProcessError.executableNotFound }
            directory.deleteLastPathComponent()
        }
        self.executable = directory.appendingPathComponent("privatus").path
    }

    /// Starts `privatus arguments…` with `environment` added to a minimal one (no `$HOME`
    /// profile is ever touched: `HOME` points at a scratch directory) and waits for it.
    public func run(
        _ arguments: [String],
        environment: [String: String] = [:],
        timeout: Duration = .seconds(120)
    ) async throws -> Result {
        let running = try start(arguments, environment: environment)
        return try await running.wait(timeout: timeout)
    }

    /// Starts a process without waiting for it.
    public func start(_ arguments: [String], environment: [String: String] = [:]) throws -> Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var base: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": FileManager.default.temporaryDirectory.appendingPathComponent("privatus-no-home").path,
        ]
        base.merge(environment) { $1 }
        process.environment = base
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Running(process: process, stdout: stdout, stderr: stderr)
    }

    /// A started process.
    public final class Running: @unchecked Sendable {
        let process: Process
        let stdout: Pipe
        let stderr: Pipe

        init(process: Process, stdout: Pipe, stderr: Pipe) {
            self.process = process
            self.stdout = stdout
            self.stderr = stderr
        }

        /// Waits for exit (killing the process after `timeout`) and collects its output.
        public func wait(timeout: Duration) async throws -> Result {
            let out = Task.detached { self.stdout.fileHandleForReading.readDataToEndOfFile() }
            let err = Task.detached { self.stderr.fileHandleForReading.readDataToEndOfFile() }
            let deadline = ContinuousClock.now + timeout
            while process.isRunning {
                if ContinuousClock.now > deadline {
                    process.terminate()
                    throw CLIProcessError.timedOut
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            return Result(
                status: process.terminationStatus,
                stdout: String(decoding: await out.value, as: UTF8.self),
                stderr: String(decoding: await err.value, as: UTF8.self)
            )
        }
    }
}

public enum CLIProcessError: Error {
    case executableNotFound
    case timedOut
}
