import Testing

@testable import PrivatusNet

/// The send gate's admission without waiting (what ``Link/enqueue(_:)-([LinkMessage])`` hands
/// straight to the event loop with): only while the queue is under its high mark, no sender
/// waits before it, and the link is open; a refusal counts nothing in.
@Suite struct SendGateTests {
    @Test func admitsUnderTheHighMarkAndRefusesFromItOn() {
        let gate = SendGate(high: 100, low: 50)
        #expect(gate.tryEnter(60))
        #expect(gate.tryEnter(60), "under the mark when it entered, as `enter` admits")
        #expect(gate.queuedBytes == 120)
        #expect(!gate.tryEnter(1))
        #expect(gate.queuedBytes == 120, "a refusal counts nothing in")
        gate.leave(120)
        #expect(gate.tryEnter(1))
    }

    @Test func refusesWhileAnotherSenderWaits() async throws {
        let gate = SendGate(high: 100, low: 50)
        #expect(gate.tryEnter(100))
        let waiter = Task { try await gate.enter(10) }
        for _ in 0..<1_000 where gate.waitingSenders == 0 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(gate.waitingSenders == 1)
        gate.leave(20)
        #expect(gate.waitingSenders == 1, "under the high mark but over the low one: it still waits")
        #expect(!gate.tryEnter(1), "and nobody passes it")
        gate.leave(80)
        try await waiter.value
        #expect(gate.queuedBytes == 10)
        #expect(gate.tryEnter(1))
    }

    @Test func refusesOnceClosed() {
        let gate = SendGate(high: 100, low: 50)
        gate.close()
        #expect(!gate.tryEnter(1))
        #expect(gate.queuedBytes == 0)
    }
}
