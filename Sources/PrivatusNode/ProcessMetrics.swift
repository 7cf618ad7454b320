import Foundation
import Metrics

#if canImport(Glibc)
import Glibc
#endif

/// The process's own figures as gauges (issue 10): CPU (percent of one core since the last
/// reading), resident memory, open file descriptors, the system's memory in use (per
/// `MemAvailable`) and the free space of the profile's file system. Read from `/proc` and
/// `statvfs` by the scheduler (never on an event loop), once a second.
struct ProcessMetrics: Sendable {
    let cpuPercent = Gauge(label: "privatus_process_cpu_percent")
    let residentBytes = Gauge(label: "privatus_process_resident_bytes")
    let openDescriptors = Gauge(label: "privatus_process_open_fds")
    let memoryUsedPercent = Gauge(label: "privatus_system_memory_used_percent")
    let diskUsedPercent = Gauge(label: "privatus_profile_disk_used_percent")
    let diskFreeBytes = Gauge(label: "privatus_profile_disk_free_bytes")

    /// CPU seconds of the process and when they were read, for the next percentage.
    struct Reading: Sendable {
        var cpuSeconds: Double
        var at: ContinuousClock.Instant
    }

    /// Reads everything; returns the CPU reading for the next call.
    func sample(profile: String, previous: Reading?) -> Reading? {
        let now = ContinuousClock.now
        var reading: Reading?
        if let cpu = Self.cpuSeconds() {
            reading = Reading(cpuSeconds: cpu, at: now)
            if let previous, now > previous.at {
                cpuPercent.record(100 * (cpu - previous.cpuSeconds) / (now - previous.at).seconds)
            }
        }
        if let pages = Self.field(1, of: "/proc/self/statm") {
            residentBytes.record(pages * Double(sysconf(Int32(_SC_PAGESIZE))))
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openDescriptors.record(entries.count)
        }
        if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let total = Self.meminfo("MemTotal", in: info), let available = Self.meminfo("MemAvailable", in: info),
            total > 0
        {
            memoryUsedPercent.record(100 * (total - available) / total)
        }
        var stats = statvfs()
        if statvfs(profile, &stats) == 0, stats.f_blocks > 0 {
            let free = Double(stats.f_bavail) * Double(stats.f_frsize)
            diskFreeBytes.record(free)
            diskUsedPercent.record(100 * (1 - Double(stats.f_bfree) / Double(stats.f_blocks)))
        }
        return reading
    }

    /// utime + stime of this process, in seconds (`/proc/self/stat` fields 14 and 15).
    static func cpuSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let end = text.lastIndex(of: ")")
        else { return nil }
        // After the command name (which may hold spaces): state is field 3.
        let fields = text[text.index(after: end)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Field `index` (0-based) of a one-line file of numbers.
    static func field(_ index: Int, of path: String) -> Double? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        return fields.count > index ? Double(fields[index]) : nil
    }

    /// A `/proc/meminfo` value in kB.
    static func meminfo(_ key: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return line.split(separator: " ").dropFirst().first.flatMap { Double($0) }
        }
        return nil
    }
}
