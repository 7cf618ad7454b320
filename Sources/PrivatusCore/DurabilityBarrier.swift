/// Holds back what must not leave the node before the commits it follows are on the disk.
///
/// A store whose commits do not wait for the disk (their sync runs later, for many commits at
/// once) counts them; a ``mark()`` taken after a commit covers it and every commit before it.
/// Whoever is about to send bytes that depend on committed state (a link, the answer to an API
/// request) takes a mark and goes on only once it is durable (DESIGN.md, "Storage": a
/// transaction that acknowledges a message or records a ratchet advance is durable before
/// anything leaves the node).
public protocol DurabilityBarrier: Sendable {
    /// A mark that covers every commit made so far.
    func mark() -> UInt64

    /// Whether every commit up to `mark` is durable.
    func isDurable(_ mark: UInt64) -> Bool

    /// Runs `action` once every commit up to `mark` is durable. Actions run in the order they
    /// were asked for: at once, on the caller's thread, when `mark` is durable and none is
    /// waiting; otherwise on the barrier's own thread after the sync that covers `mark`. An
    /// action must be short and must not block (it resumes a task, hands bytes to an event loop).
    func whenDurable(_ mark: UInt64, _ action: @escaping @Sendable () -> Void)
}

extension DurabilityBarrier {
    /// Returns once every commit up to `mark` is durable (without suspending when it is already).
    public func durable(_ mark: UInt64) async {
        guard !isDurable(mark) else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            whenDurable(mark) { continuation.resume() }
        }
    }
}
