import CoreMetrics
import Foundation
import Metrics
import PrivatusCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The process's own figures as gauges (issue 10): CPU (percent of one core since the last
/// reading), resident memory, open file descriptors, the system's memory in use (per
/// `MemAvailable`) and the free space of the profile's file system. Read from `/proc` and
/// `statvfs` by the node's monitoring task (never on an event loop), once a second.
struct ProcessMetrics: Sendable {
    let cpuPercent: Gauge
    let residentBytes: Gauge
    let openDescriptors: Gauge
    let descriptorLimit: Gauge
    let memoryUsedPercent: Gauge
    let diskUsedPercent: Gauge
    let diskFreeBytes: Gauge

    init(factory: any MetricsFactory) {
        cpuPercent = Gauge(label: "privatus_process_cpu_percent", factory: factory)
        residentBytes = Gauge(label: "privatus_process_resident_bytes", factory: factory)
        openDescriptors = Gauge(label: "privatus_process_open_fds", factory: factory)
        descriptorLimit = Gauge(label: "privatus_process_max_fds", factory: factory)
        memoryUsedPercent = Gauge(label: "privatus_system_memory_used_percent", factory: factory)
        diskUsedPercent = Gauge(label: "privatus_profile_disk_used_percent", factory: factory)
        diskFreeBytes = Gauge(label: "privatus_profile_disk_free_bytes", factory: factory)
    }

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
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            descriptorLimit.record(Double(limit.rlim_cur))
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

/// The node's monitoring, once a second (issue 10): reads the process's own figures, takes the
/// sampler's reading, and evaluates the alert rules on the current values. `privatus bench
/// monitor` times this (`sampler_cpu_percent`) and, apart, the outbox count the node adds to
/// each second.
public final class Monitor: Sendable {
    public let sampler: MetricsSampler
    let process: ProcessMetrics
    /// The folder whose file system's free space is read (the profile).
    let directory: String
    private let cpu = Mutex<ProcessMetrics.Reading?>(nil)
    private let engine: Mutex<AlertEngine>

    /// - Parameter factory: where the process's figures are recorded (the bootstrapped
    ///   backends, which include `sampler`).
    public init(
        sampler: MetricsSampler, rules: [AlertRule], directory: String,
        factory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.sampler = sampler
        process = ProcessMetrics(factory: factory)
        self.directory = directory
        engine = Mutex(AlertEngine(rules: rules))
    }

    /// One second's work at `now` (Unix ms); returns the alerts that fired or resolved.
    public func tick(now: UInt64) -> [AlertEvent] {
        let previous = cpu.withLock { $0 }
        let reading = process.sample(profile: directory, previous: previous)
        cpu.withLock { $0 = reading }
        sampler.tick(now: now)
        let values = sampler.current()
        return engine.withLock { $0.evaluate(values, at: now) }
    }

    /// `GET /api/v1/alerts`.
    var alerts: AlertsView {
        engine.withLock { AlertsView(rules: $0.rules, firing: $0.firing, history: $0.history) }
    }
}
