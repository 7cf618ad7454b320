import Logging
import Metrics

/// The node's one background scheduler (DESIGN.md, "Node runtime"): periodic jobs —
/// maintenance, republishing, retries, cleanup — started when due, most urgent first, with at
/// most ``maximumConcurrent`` running at once. A job is never started again while it still
/// runs; a job that throws is logged (without its error's details above debug) and runs again
/// at its next time.
///
/// ``runDue(at:)`` is one step of the policy, which tests drive with explicit instants;
/// ``run()`` is the loop the node runs.
public actor Scheduler {
    public enum Priority: Int, Comparable, Sendable {
        case high = 0
        case normal = 1
        case low = 2

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public typealias Body = @Sendable () async throws -> Void

    struct Job {
        let name: String
        let priority: Priority
        let interval: Duration
        var next: ContinuousClock.Instant
        let body: Body
        var running = false
    }

    public let maximumConcurrent: Int
    private var jobs: [Job] = []
    private var running: [String: Task<Void, Never>] = [:]
    private let logger: Logger
    /// Jobs due but not started (all slots busy), and jobs running.
    private let waitingGauge = Gauge(label: "privatus_scheduler_jobs_waiting")
    private let runningGauge = Gauge(label: "privatus_scheduler_jobs_running")

    public init(maximumConcurrent: Int = 2, logger: Logger = Logger(label: "privatus.scheduler")) {
        precondition(maximumConcurrent > 0, "at least one job at a time")
        self.maximumConcurrent = maximumConcurrent
        self.logger = logger
    }

    /// Runs `body` every `interval`, first `after` from `start`.
    public func every(
        _ interval: Duration, name: String, priority: Priority = .normal, after: Duration = .zero,
        from start: ContinuousClock.Instant = .now, _ body: @escaping Body
    ) {
        precondition(!jobs.contains { $0.name == name }, "job names are unique")
        jobs.append(Job(name: name, priority: priority, interval: interval, next: start + after, body: body))
    }

    /// Starts the jobs due at `now`, most urgent (then earliest due) first, while fewer than
    /// ``maximumConcurrent`` run; returns the names started. A started job's next time is
    /// `now + interval`.
    @discardableResult
    public func runDue(at now: ContinuousClock.Instant) -> [String] {
        let due = jobs.indices
            .filter { !jobs[$0].running && jobs[$0].next <= now }
            .sorted { (jobs[$0].priority, jobs[$0].next) < (jobs[$1].priority, jobs[$1].next) }
        var started: [String] = []
        for index in due where running.count < maximumConcurrent {
            jobs[index].running = true
            jobs[index].next = now + jobs[index].interval
            let job = jobs[index]
            started.append(job.name)
            running[job.name] = Task {
                do {
                    try await job.body()
                } catch {
                    self.logger.warning("background job failed", metadata: ["job": "\(job.name)"])
                    self.logger.debug("background job error", metadata: ["error": "\(error)"])
                }
                self.finished(job.name)
            }
        }
        waitingGauge.record(due.count - started.count)
        runningGauge.record(running.count)
        return started
    }

    private func finished(_ name: String) {
        running[name] = nil
        if let index = jobs.firstIndex(where: { $0.name == name }) { jobs[index].running = false }
        runningGauge.record(running.count)
    }

    /// Waits until every job started so far has finished (tests; shutdown).
    public func idle() async {
        while let (_, task) = running.first {
            await task.value
        }
    }

    /// The names of the jobs running now.
    public var runningJobs: Set<String> { Set(running.keys) }

    /// The loop: sleeps until the next job is due (at most a second, so jobs added meanwhile
    /// start on time), starts what is due, until cancelled; then waits for running jobs.
    public func run() async {
        while !Task.isCancelled {
            runDue(at: .now)
            let next = jobs.filter { !$0.running }.map(\.next).min() ?? .now + .seconds(1)
            let wait = min(max(next - .now, .milliseconds(10)), .seconds(1))
            try? await Task.sleep(for: wait)
        }
        await idle()
    }
}
