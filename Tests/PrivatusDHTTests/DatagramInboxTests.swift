import NIOConcurrencyHelpers
import Testing

@testable import PrivatusDHT

/// The hand-over from the socket's event loop to the service.
@Suite struct DatagramInboxTests {
    /// Every datagram reads the receiver out of its lock. A bare closure stored there came back
    /// wrapped in two more reabstraction thunks after each read (the inout write-back): after n
    /// datagrams a delivery ran through 2n thunks, and a long-running node overflowed its stack.
    @Test func readingTheReceiverForEveryDatagramNeverWrapsItAgain() {
        let inbox = DatagramInbox()
        let delivered = NIOLockedValueBox<[DHTAddress]>([])
        inbox.receiver.withLockedValue {
            $0 = DatagramInbox.Receiver { _, source in delivered.withLockedValue { $0.append(source) } }
        }
        // As many reads as a busy node serves in minutes; with the old form this deep a chain
        // overflows the stack of the call below.
        for _ in 0..<300_000 { _ = inbox.receiver.withLockedValue { $0 } }
        let source = DHTAddress(ipv4: 127, 0, 0, 1, port: 4_000)
        inbox.receiver.withLockedValue { $0 }?.deliver([1, 2, 3], source)
        #expect(delivered.withLockedValue { $0 } == [source])
    }
}
