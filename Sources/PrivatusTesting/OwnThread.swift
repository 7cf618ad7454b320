import Foundation

/// Runs synchronous, CPU-bound work on a thread of its own and waits for it without holding a
/// thread of the cooperative pool.
///
/// Every suite of the test process shares one pool with a thread per core (two on the CI
/// machine); work that keeps pool threads busy for seconds stalls every test that waits on a
/// socket, a timer or a child process, until their guards against hangs fire. Record
/// expectations on what `work` returns, not inside it: a thread of its own is outside the test's
/// task.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
