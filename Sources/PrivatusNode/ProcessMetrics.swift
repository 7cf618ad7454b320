import Foundation
import Metrics
import PrivatusCore

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
        if let cpu = ProcessResources.cpuSeconds() {
            reading = Reading(cpuSeconds: cpu, at: now)
            if let previous, now > previous.at {
                cpuPercent.record(100 * (cpu - previous.cpuSeconds) / (now - previous.at).seconds)
            }
        }
        if let kibibytes = ProcessResources.residentKiB() { residentBytes.record(kibibytes * 1024) }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openDescriptors.record(entries.count)
        }
        if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let total = ProcessResources.field("MemTotal", of: info),
            let available = ProcessResources.field("MemAvailable", of: info), total > 0
        {
            memoryUsedPercent.record(100 * Double(total - available) / Double(total))
        }
        var stats = statvfs()
        if statvfs(profile, &stats) == 0, stats.f_blocks > 0 {
            let free = Double(stats.f_bavail) * Double(stats.f_frsize)
            diskFreeBytes.record(free)
            diskUsedPercent.record(100 * (1 - Double(stats.f_bfree) / Double(stats.f_blocks)))
        }
        return reading
    }
}
