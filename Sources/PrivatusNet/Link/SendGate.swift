import Synchronization

/// Holds a link's senders back while its outbound queue is full: the async side's half of the
/// multiplexer's back-pressure.
///
/// A sender enters with its message's size before handing it to the event loop; the
/// multiplexer lets the size out when the message's last frame has gone to the socket. While
/// more than `high` bytes are in, senders wait; they go on once the queue has fallen to `low`.
/// (NIO's own writability follows the socket, below the multiplexer's queues, so it cannot
/// tell the async writer when those queues are full.) A closed link fails every waiting sender.
final class SendGate: Sendable {
    private struct State {
        var queued = 0
        var closed = false
        var waiters: [(bytes: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    let high: Int
    let low: Int
    private let state = Mutex(State())

    init(high: Int, low: Int) {
        precondition(low <= high, "the low watermark is at most the high one")
        self.high = high
        self.low = low
    }

    /// Waits until the queue has room, then counts `bytes` in.
    /// - Throws: ``LinkError/closed`` once the link is closed.
    nonisolated(nonsending) func enter(_ bytes: Int) async throws {
        if try admitNow(bytes) { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let now: Result<Void, any Error>? = state.withLock { state in
                if state.closed { return .failure(LinkError.closed) }
                if state.queued < high {
                    state.queued += bytes
                    return .success(())
                }
                state.waiters.append((bytes, continuation))
                return nil
            }
            if let now { continuation.resume(with: now) }
        }
    }

    /// Counts `bytes` in if the queue has room and no sender waits; false otherwise (and once the
    /// link is closed), with nothing counted.
    func tryEnter(_ bytes: Int) -> Bool {
        (try? admitNow(bytes)) ?? false
    }

    private func admitNow(_ bytes: Int) throws -> Bool {
        try state.withLock { state in
            if state.closed { throw LinkError.closed }
            guard state.queued < high, state.waiters.isEmpty else { return false }
            state.queued += bytes
            return true
        }
    }

    /// Counts `bytes` out (their message has been written); lets waiting senders in once the
    /// queue is down to the low watermark.
    func leave(_ bytes: Int) {
        let admitted = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.queued = max(0, state.queued - bytes)
            guard state.queued <= low else { return [] }
            var admitted: [CheckedContinuation<Void, any Error>] = []
            while let first = state.waiters.first, state.queued < high {
                state.waiters.removeFirst()
                state.queued += first.bytes
                admitted.append(first.continuation)
            }
            return admitted
        }
        for continuation in admitted { continuation.resume() }
    }

    /// The link is gone: every waiting and later sender fails.
    func close() {
        let waiting = state.withLock { state in
            state.closed = true
            let waiting = state.waiters
            state.waiters = []
            return waiting
        }
        for waiter in waiting { waiter.continuation.resume(throwing: LinkError.closed) }
    }

    /// Bytes counted in and not yet written.
    var queuedBytes: Int { state.withLock { $0.queued } }

    /// Senders waiting for room.
    var waitingSenders: Int { state.withLock { $0.waiters.count } }
}
