import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What the kernel says about a process's memory and limits (Linux's `/proc`).
public enum ProcessResources {
    /// The resident set size of process `pid` (this process when nil) in KiB: `VmRSS` of
    /// `/proc/<pid>/status`; nil where there is no such file.
    public static func residentKiB(of pid: Int32? = nil) -> Int? {
        let path = pid.map { "/proc/\($0)/status" } ?? "/proc/self/status"
        guard let status = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return residentKiB(status: status)
    }

    /// The `VmRSS` of a `/proc/<pid>/status` text, in KiB.
    public static func residentKiB(status: String) -> Int? {
        field("VmRSS", of: status)
    }

    /// A process's proportional set size (shared pages divided among the processes that map
    /// them) and its anonymous (private, not file-backed) memory, in KiB, from
    /// `/proc/<pid>/smaps_rollup`; nil where there is no such file.
    public static func proportionalKiB(of pid: Int32) -> (pss: Int, anonymous: Int)? {
        guard let rollup = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8),
            let pss = field("Pss", of: rollup), let anonymous = field("Anonymous", of: rollup)
        else { return nil }
        return (pss, anonymous)
    }

    /// The value in kB of the line `name:` of a `/proc` text.
    public static func field(_ name: String, of text: String) -> Int? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
        let fields = line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 2, fields[1] == "kB" else { return nil }
        return Int(fields[0])
    }

    /// The scheduler's account of a process (this one when nil), summed over its threads.
    public struct SchedulerStats: Sendable {
        /// Time on a CPU, in nanoseconds.
        public var cpuNanoseconds: UInt64 = 0
        /// How many times a thread was put on a CPU (each wake-up of a sleeping thread is one).
        public var runs: UInt64 = 0

        public init(cpuNanoseconds: UInt64 = 0, runs: UInt64 = 0) {
            self.cpuNanoseconds = cpuNanoseconds
            self.runs = runs
        }

        public static func - (lhs: Self, rhs: Self) -> Self {
            Self(cpuNanoseconds: lhs.cpuNanoseconds &- rhs.cpuNanoseconds, runs: lhs.runs &- rhs.runs)
        }

        public static func + (lhs: Self, rhs: Self) -> Self {
            Self(cpuNanoseconds: lhs.cpuNanoseconds &+ rhs.cpuNanoseconds, runs: lhs.runs &+ rhs.runs)
        }
    }

    /// `/proc/<pid>/task/*/schedstat` summed (threads that ended are not counted: the bench's
    /// threads live as long as it does). Zero where there is no such file.
    public static func schedulerStats(of pid: Int32? = nil) -> SchedulerStats {
        let directory = pid.map { "/proc/\($0)/task" } ?? "/proc/self/task"
        var total = SchedulerStats()
        for task in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard let line = try? String(contentsOfFile: "\(directory)/\(task)/schedstat", encoding: .utf8) else {
                continue
            }
            let fields = line.split(whereSeparator: \.isWhitespace).compactMap { UInt64($0) }
            guard fields.count == 3 else { continue }
            total = total + SchedulerStats(cpuNanoseconds: fields[0], runs: fields[2])
        }
        return total
    }

    /// The bytes process `pid` (this process when nil) caused to be written to storage: the
    /// `write_bytes` line of `/proc/<pid>/io`, which counts each page when it is dirtied (so a
    /// page written again after an `fsync` counts again), threads that ended included; nil where
    /// there is no such file.
    public static func storageWriteBytes(of pid: Int32? = nil) -> UInt64? {
        let path = pid.map { "/proc/\($0)/io" } ?? "/proc/self/io"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return ioCounter("write_bytes", of: text)
    }

    /// The value of the line `name: N` of a `/proc/<pid>/io` text.
    public static func ioCounter(_ name: String, of text: String) -> UInt64? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
        return UInt64(line.dropFirst(name.count + 1).trimmingPrefix(" "))
    }

    /// The CPU time of process `pid` (this process when nil) in seconds: user plus system time
    /// (`utime` + `stime`, the 14th and 15th fields of `/proc/<pid>/stat`, in clock ticks of
    /// `sysconf(_SC_CLK_TCK)`), threads that ended included; nil where there is no such file.
    public static func cpuSeconds(of pid: Int32? = nil) -> Double? {
        let path = pid.map { "/proc/\($0)/stat" } ?? "/proc/self/stat"
        guard let stat = try? String(contentsOfFile: path, encoding: .utf8), let ticks = cpuTicks(stat: stat) else {
            return nil
        }
        #if canImport(Glibc)
        let perSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        #else
        let perSecond = 100.0
        #endif
        return Double(ticks) / max(perSecond, 1)
    }

    /// `utime` + `stime` of a `/proc/<pid>/stat` line, in clock ticks. The command name (the
    /// 2nd field, in parentheses) may hold spaces and parentheses: fields are counted from the
    /// last `)`.
    public static func cpuTicks(stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        // After the name: state (3rd field), ppid, …, utime (14th), stime (15th).
        let fields = stat[stat.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// Raises this process's soft limit on open files to its hard limit (1,000 links need more
    /// than the usual 1,024 descriptors on each side); returns the soft limit now in force.
    @discardableResult
    public static func raiseOpenFileLimit() -> Int {
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return -1 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
        #else
        return -1
        #endif
    }
}
