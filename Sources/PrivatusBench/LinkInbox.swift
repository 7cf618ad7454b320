import PrivatusNet
import PrivatusWire
import Synchronization

/// What the bench's side of a link receives, as a ``ConnectionManager`` handler.
///
/// During ``roundTrips(on:body:count:timeout:)`` every message received is the echo of the one
/// sent last: the handler times it and sends the next message itself, as a node that answers
/// what it receives would, so a round trip is measured from ``Link/send(_:on:)`` to the handler
/// call with the echo, with no hop to another task in between. Otherwise messages wait for
/// ``next(timeout:)``.
final class LinkInbox: Sendable {
    private struct Round {
        var link: Link
        var body: Envelope.Body
        var remaining: Int
        var sentAt: ContinuousClock.Instant
        var samples: [Double]
        var done: CheckedContinuation<[Double], any Error>
    }

    private struct Queue {
        var messages: [InboundMessage] = []
        var waiter: CheckedContinuation<InboundMessage, any Error>?
    }

    private let round = Mutex<Round?>(nil)
    private let queue = Mutex(Queue())

    /// The handler to give the connection manager.
    var handler: ConnectionManager.Handler {
        { [self] _, message in await self.receive(message) }
    }

    private nonisolated(nonsending) func receive(_ message: InboundMessage) async {
        let now = ContinuousClock.now
        enum Next {
            case deliver
            case send(Link, Envelope.Body)
            case finish(CheckedContinuation<[Double], any Error>, [Double])
        }
        let next: Next = round.withLock { round in
            guard round != nil else { return .deliver }
            round!.samples.append((now - round!.sentAt).microseconds)
            round!.remaining -= 1
            if round!.remaining == 0 {
                let finished = round.take()!
                return .finish(finished.done, finished.samples)
            }
            round!.sentAt = .now
            return .send(round!.link, round!.body)
        }
        switch next {
        case .deliver:
            let waiter: CheckedContinuation<InboundMessage, any Error>? = queue.withLock { queue in
                guard let waiter = queue.waiter.take() else {
                    queue.messages.append(message)
                    return nil
                }
                return waiter
            }
            waiter?.resume(returning: message)
        case .send(let link, let body):
            do {
                try await link.send(body, on: .chat)
            } catch {
                failRound(error)
            }
        case .finish(let done, let samples):
            done.resume(returning: samples)
        }
    }

    /// Sends `body` on the chat stream of `link` `count` times, each after the echo of the one
    /// before has arrived; returns each round trip in microseconds.
    func roundTrips(
        on link: Link, body: Envelope.Body, count: Int, timeout: Duration = .seconds(120)
    ) async throws -> [Double] {
        precondition(count > 0, "at least one round trip")
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            self.failRound(TransportBenchError.timedOut)
        }
        defer { watchdog.cancel() }
        return try await withCheckedThrowingContinuation { done in
            var samples: [Double] = []
            samples.reserveCapacity(count)
            round.withLock {
                $0 = Round(link: link, body: body, remaining: count, sentAt: .now, samples: samples, done: done)
            }
            Task {
                round.withLock { $0?.sentAt = .now }
                do {
                    try await link.send(body, on: .chat)
                } catch {
                    failRound(error)
                }
            }
        }
    }

    /// The next message received outside a round of round trips.
    func next(timeout: Duration = .seconds(120)) async throws -> InboundMessage {
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            self.queue.withLock { $0.waiter.take() }?.resume(throwing: TransportBenchError.timedOut)
        }
        defer { watchdog.cancel() }
        return try await withCheckedThrowingContinuation { waiter in
            let ready: InboundMessage? = queue.withLock { queue in
                guard queue.messages.isEmpty else { return queue.messages.removeFirst() }
                queue.waiter = waiter
                return nil
            }
            if let ready { waiter.resume(returning: ready) }
        }
    }

    private func failRound(_ error: any Error) {
        round.withLock { $0.take() }?.done.resume(throwing: error)
    }
}

extension Duration {
    /// The duration in microseconds as a floating-point number.
    var microseconds: Double { seconds * 1_000_000 }
}
