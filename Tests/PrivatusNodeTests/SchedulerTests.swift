import Synchronization
import Testing

@testable import PrivatusNode

/// A job body that waits until released, and records that it started.
final class HeldJob: Sendable {
    private let state = Mutex<(starts: Int, waiters: [CheckedContinuation<Void, Never>], open: Bool)>((0, [], false))

    var starts: Int { state.withLock { $0.starts } }

    var body: Scheduler.Body {
        {
            await withCheckedContinuation { continuation in
                let resumeNow = self.state.withLock { state -> Bool in
                    state.starts += 1
                    if state.open { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// Lets the waiting runs finish, and later ones run straight through.
    func release() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

struct Failure: Error {}

@Suite struct SchedulerTests {
    let start = ContinuousClock.now

    @Test func dueJobsStartMostUrgentFirstWithinTheConcurrencyLimit() async throws {
        let scheduler = Scheduler(maximumConcurrent: 2)
        let (low, high, normal) = (HeldJob(), HeldJob(), HeldJob())
        await scheduler.every(.seconds(60), name: "low", priority: .low, from: start, low.body)
        await scheduler.every(.seconds(60), name: "high", priority: .high, from: start, high.body)
        await scheduler.every(.seconds(60), name: "normal", priority: .normal, from: start, normal.body)

        #expect(await scheduler.runDue(at: start) == ["high", "normal"])
        #expect(await scheduler.runDue(at: start + .seconds(1)) == [], "two already run")
        high.release()
        normal.release()
        await scheduler.idle()
        #expect(await scheduler.runDue(at: start + .seconds(2)) == ["low"])
        low.release()
        await scheduler.idle()
        #expect(high.starts == 1 && normal.starts == 1 && low.starts == 1)
    }

    @Test func aJobRunsAgainOnlyAfterItsIntervalAndNeverTwiceAtOnce() async throws {
        let scheduler = Scheduler(maximumConcurrent: 4)
        let job = HeldJob()
        await scheduler.every(.seconds(10), name: "sweep", after: .seconds(5), from: start, job.body)
        #expect(await scheduler.runDue(at: start + .seconds(4)) == [], "not due before its first time")
        #expect(await scheduler.runDue(at: start + .seconds(5)) == ["sweep"])
        // Still running when its next time comes: not started a second time.
        #expect(await scheduler.runDue(at: start + .seconds(30)) == [])
        #expect(await scheduler.runningJobs == ["sweep"])
        job.release()
        await scheduler.idle()
        // Its next time was set when it started (5 s + 10 s).
        #expect(await scheduler.runDue(at: start + .seconds(30)) == ["sweep"])
        await scheduler.idle()
        #expect(await scheduler.runDue(at: start + .seconds(39)) == [])
        #expect(await scheduler.runDue(at: start + .seconds(40)) == ["sweep"])
        await scheduler.idle()
        #expect(job.starts == 3)
    }

    @Test func aFailingJobIsRunAgainAtItsNextTime() async throws {
        let scheduler = Scheduler()
        let attempts = Mutex(0)
        await scheduler.every(.seconds(1), name: "flaky", from: start) {
            attempts.withLock { $0 += 1 }
            throw Failure()
        }
        #expect(await scheduler.runDue(at: start) == ["flaky"])
        await scheduler.idle()
        #expect(await scheduler.runDue(at: start + .seconds(1)) == ["flaky"])
        await scheduler.idle()
        #expect(attempts.withLock { $0 } == 2)
    }
}
