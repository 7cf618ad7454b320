import Foundation
import Synchronization

/// Runs an operation repeatedly for a time budget and reports its rate.
public struct Measure: Sendable {
    /// How long each figure is measured (after a short warm-up).
    public let budget: Duration

    public init(budget: Duration) {
        self.budget = budget
    }

    /// Operations per second of `operation`, timed over batches until the budget is spent.
    public func perSecond(_ operation: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        for _ in 0..<3 { try operation() }
        var count = 0
        var batch = 1
        var elapsed = Duration.zero
        while elapsed < budget {
            elapsed += try clock.measure {
                for _ in 0..<batch { try operation() }
            }
            count += batch
            if batch < 1 << 16 { batch *= 2 }
        }
        return Double(count) / elapsed.seconds
    }

    /// Operations per second of `operation` over batches whose inputs `prepare` makes untimed
    /// before each batch; `operation` receives the index within the batch.
    public func perSecond(
        batchSize: Int,
        prepare: () throws -> Void,
        _ operation: (Int) throws -> Void
    ) rethrows -> Double {
        let clock = ContinuousClock()
        var count = 0
        var elapsed = Duration.zero
        repeat {
            try prepare()
            elapsed += try clock.measure {
                for index in 0..<batchSize { try operation(index) }
            }
            count += batchSize
        } while elapsed < budget
        return Double(count) / elapsed.seconds
    }

    /// Megabytes (10^6 bytes) per second of an operation over `bytes` bytes.
    public func megabytesPerSecond(bytes: Int, _ operation: () throws -> Void) rethrows -> Double {
        try perSecond(operation) * Double(bytes) / 1_000_000
    }

    /// The median of `runs` timings of `operation`, in milliseconds.
    public static func medianMilliseconds(runs: Int, _ operation: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        var times: [Double] = []
        for _ in 0..<runs { times.append(try clock.measure(operation).seconds * 1000) }
        return times.sorted()[times.count / 2]
    }

    /// This process's CPU time in seconds, every thread's, on the kernel's CPU clock (nanoseconds,
    /// where `/proc`'s figures count 10 ms ticks).
    public static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

/// Keeps the optimizer from discarding results that a benchmark computes.
public enum BlackHole {
    private static let sink = Atomic<UInt8>(0)

    /// Consumes one byte of a result.
    @inline(never)
    public static func consume(_ byte: UInt8) {
        sink.wrappingAdd(byte, ordering: .relaxed)
    }
}
