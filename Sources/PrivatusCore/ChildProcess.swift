import CPrivatusSystem

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with a clean signal state, its standard output and error on pipes.
///
/// Foundation's `Process` passes on the signal mask of the thread that starts it, and the
/// threads of Swift's concurrency pool block almost every signal: a child started from an
/// `async` function then ignores SIGTERM and SIGALRM (`openssl speed` never finishes a
/// measurement; a node would not stop on `terminate()`). This type starts children with an
/// empty mask and default handlers, through `posix_spawn`.
public struct ChildProcess: Sendable {
    /// The child's process ID.
    public let pid: pid_t
    /// The read end of the child's standard output.
    public let stdout: Int32
    /// The read end of the child's standard error.
    public let stderr: Int32

    /// Starts `executable` (a path) with `arguments`; standard input is `/dev/null`.
    /// - Parameter environment: the whole environment of the child, or `nil` for this process's.
    public static func spawn(
        _ executable: String,
        arguments: [String],
        environment: [String: String]? = nil
    ) throws(ChildProcessError) -> ChildProcess {
        var out: [Int32] = [0, 0]
        var err: [Int32] = [0, 0]
        guard privatus_pipe_cloexec(&out) == 0 else { throw .spawnFailed(errno) }
        guard privatus_pipe_cloexec(&err) == 0 else {
            close(out[0])
            close(out[1])
            throw .spawnFailed(errno)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        var all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var envp: [UnsafeMutablePointer<CChar>?]? = environment.map {
            $0.map { strdup("\($0.key)=\($0.value)") } + [nil]
        }
        defer { envp?.forEach { free($0) } }

        var pid = pid_t()
        let result: Int32 =
            if envp != nil {
                posix_spawn(&pid, executable, &actions, &attributes, argv, &envp!)
            } else {
                posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
            }
        close(out[1])
        close(err[1])
        guard result == 0 else {
            close(out[0])
            close(err[0])
            throw .spawnFailed(result)
        }
        return ChildProcess(pid: pid, stdout: out[0], stderr: err[0])
    }

    /// Reads the child's standard output and error to their ends, keeping at most `limit` bytes
    /// of each (the rest is read and dropped so the child never blocks on a full pipe), then
    /// closes both.
    public func collectOutput(limit: Int = 16 << 20) -> (stdout: [UInt8], stderr: [UInt8]) {
        var open = [stdout, stderr]
        var collected: [[UInt8]] = [[], []]
        var buffer = [UInt8](repeating: 0, count: 16384)
        while open.contains(where: { $0 >= 0 }) {
            var polled = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&polled, nfds_t(polled.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for index in polled.indices where open[index] >= 0 && polled[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(open[index], $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    close(open[index])
                    open[index] = -1
                } else if collected[index].count < limit {
                    collected[index] += buffer[0..<min(count, limit - collected[index].count)]
                }
            }
        }
        for descriptor in open where descriptor >= 0 { close(descriptor) }
        return (collected[0], collected[1])
    }

    /// Waits for the child to exit; returns its exit status, or 128 + the signal that ended it.
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Blocks until the child has exited without reaping it: its pid stays reserved (a zombie)
    /// until ``wait()``, so a concurrent ``send(_:)`` can never reach a reused pid.
    public func waitUntilExited() {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
    }

    /// Sends `signal` to the child.
    /// Reads one line of standard output (without its newline), a byte at a time so that nothing
    /// after it is consumed: what is left stays for ``collectOutput(limit:)``.
    /// - Throws: ``ChildProcessError/timedOut`` after `timeout`, ``ChildProcessError/outputClosed``
    ///   when the output ends first.
    public func readLine(timeout: Duration) throws(ChildProcessError) -> String {
        let deadline = ContinuousClock.now + timeout
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            var polled = pollfd(fd: stdout, events: Int16(POLLIN), revents: 0)
            let left = deadline - .now
            let waitMs = max(
                0, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&polled, 1, Int32(clamping: waitMs))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { throw .timedOut }
            let count = read(stdout, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            guard count == 1 else { throw .outputClosed }
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
    }

    public func send(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Runs a command to completion and returns its exit status, standard output and error.
    public static func run(
        _ executable: String,
        arguments: [String],
        environment: [String: String]? = nil
    ) throws(ChildProcessError) -> (status: Int32, stdout: [UInt8], stderr: [UInt8]) {
        let child = try spawn(executable, arguments: arguments, environment: environment)
        let (output, error) = child.collectOutput()
        return (child.wait(), output, error)
    }
}

/// Why a child process could not be started.
public enum ChildProcessError: Error, Hashable, Sendable {
    case spawnFailed(Int32)
    /// No whole line came within the time allowed.
    case timedOut
    /// The output ended (the process exited) before a whole line.
    case outputClosed
}
