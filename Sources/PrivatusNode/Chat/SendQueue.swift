import PrivatusStore
import Synchronization

/// Messages users asked to send, waiting for the messenger to encrypt and commit them in batches
/// (one transaction and one fsync for every request that arrived while the previous batch was
/// being committed). Each request's caller is answered with its own result.
final class SendQueue: Sendable {
    /// Takes a request's result (called once, from the messenger).
    typealias Answer = @Sendable (Result<StoredMessage, any Error>) -> Void

    struct Request: Sendable {
        /// What the conversation shows (a file message's description).
        let text: String
        /// A file offer or update: sent instead of the text.
        var file: FileMessage? = nil
        let reference: String
        let answer: Answer
    }

    /// Requests waiting at most; more are refused (``ChatError/busy``).
    static let capacity = 4_096

    private let pending = Mutex<[Request]?>([])
    /// Told of every arrival, and of the end: wakes the messenger's loop (``Messenger/runQueues()``).
    private let wake: AsyncStream<Void>.Continuation

    init(wake: AsyncStream<Void>.Continuation) {
        self.wake = wake
    }

    /// Queues a request and waits for its result.
    /// - Throws: ``ChatError/stopping`` once the node stops, ``ChatError/busy`` past
    ///   ``capacity`` waiting requests.
    func submit(_ text: String, file: FileMessage? = nil, to reference: String) async throws -> StoredMessage {
        try await withCheckedThrowingContinuation { continuation in
            submit(text, file: file, to: reference) { continuation.resume(with: $0) }
        }
    }

    /// Queues a request; `answer` takes its result (the refusals of the other `submit` at once).
    func submit(_ text: String, file: FileMessage? = nil, to reference: String, answer: @escaping Answer) {
        let refusal = pending.withLock { pending -> ChatError? in
            guard let waiting = pending else { return .stopping }
            guard waiting.count < Self.capacity else { return .busy }
            pending?.append(Request(text: text, file: file, reference: reference, answer: answer))
            return nil
        }
        if let refusal {
            answer(.failure(refusal))
            return
        }
        wake.yield()
    }

    /// Takes up to `limit` requests, oldest first.
    func take(_ limit: Int) -> [Request] {
        pending.withLock { pending in
            guard let all = pending else { return [] }
            let batch = Array(all.prefix(limit))
            pending = Array(all.dropFirst(batch.count))
            return batch
        }
    }

    /// Whether ``finish()`` has been called.
    var isFinished: Bool { pending.withLock { $0 == nil } }

    /// Whether requests wait to be taken.
    var hasWaiting: Bool { pending.withLock { !($0?.isEmpty ?? true) } }

    /// Refuses every waiting and later request.
    func finish() {
        let waiting = pending.withLock { pending -> [Request] in
            defer { pending = nil }
            return pending ?? []
        }
        for request in waiting { request.answer(.failure(ChatError.stopping)) }
        wake.yield()
    }
}
