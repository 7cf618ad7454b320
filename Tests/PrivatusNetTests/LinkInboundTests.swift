import NIOCore
import NIOEmbedded
import NIOPosix
import PrivatusCore
import PrivatusWire
import Synchronization
import Testing

@testable import PrivatusNet

/// The hand-over from a link's event loop to its reader: order, back-pressure, the end, and
/// where the handler runs.
@Suite(.serialized) struct LinkInboundTests {
    /// Counts the reads that reach the socket's side of the pipeline.
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = Any
        let reads = Atomic<Int>(0)

        func read(context: ChannelHandlerContext) {
            reads.add(1, ordering: .relaxed)
            context.read()
        }
    }

    struct Broken: Error, Equatable {}

    private func message(_ index: Int) -> InboundMessage {
        InboundMessage(
            stream: .chat,
            body: .chatMessage(ChatMessage(messageID: [UInt8](repeating: UInt8(index), count: 16), sealed: [1, 2, 3])))
    }

    private func bridged() async throws -> (NIOAsyncTestingChannel, LinkInbound, ReadCounter) {
        let channel = NIOAsyncTestingChannel()
        let inbound = LinkInbound(channel: channel)
        let counter = ReadCounter()
        try await channel.pipeline.addHandler(counter)
        try await channel.pipeline.addHandler(LinkInboundBridge(inbound: inbound))
        return (channel, inbound, counter)
    }

    /// Lets every task queued on the channel's loop run.
    private func settle(_ channel: NIOAsyncTestingChannel) async throws {
        try await channel.testingEventLoop.executeInContext {}
    }

    @Test func readsAreHeldWhileFourMessagesWaitAndResumeOnceTheReaderIsDownToTwo() async throws {
        let (channel, inbound, counter) = try await bridged()
        channel.read()
        try await settle(channel)
        #expect(counter.reads.load(ordering: .relaxed) == 1, "an empty queue lets reads through")
        for index in 0..<4 { try await channel.writeInbound(message(index)) }
        channel.read()
        try await settle(channel)
        #expect(counter.reads.load(ordering: .relaxed) == 1, "four waiting: the read is held")

        #expect(try await inbound.next() == message(0))
        try await settle(channel)
        #expect(counter.reads.load(ordering: .relaxed) == 1, "three waiting: still held")
        #expect(try await inbound.next() == message(1))
        try await settle(channel)
        #expect(counter.reads.load(ordering: .relaxed) == 2, "two waiting: the held read goes on")

        #expect(try await inbound.next() == message(2))
        #expect(try await inbound.next() == message(3))
        _ = try await channel.finish()
    }

    @Test func theReaderGetsEveryMessageBeforeTheErrorThatClosedTheLink() async throws {
        let (channel, inbound, _) = try await bridged()
        try await channel.writeInbound(message(7))
        channel.pipeline.fireErrorCaught(Broken())
        try await settle(channel)
        #expect(try await inbound.next() == message(7))
        await #expect(throws: Broken.self) { try await inbound.next() }
        _ = try? await channel.finish()
    }

    @Test func aReaderWaitingWhenTheLinkClosesCleanlyGetsTheEnd() async throws {
        let (channel, inbound, _) = try await bridged()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        let reader = Task { try await inbound.next() }
        try await channel.writeInbound(message(1))
        #expect(try await reader.value == message(1))
        let end = Task { try await inbound.next() }
        try await channel.close()
        #expect(try await end.value == nil)
    }

    @Test func aHandlerRunsOnItsLinksEventLoopAndAnswersFromThere() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let bobManager = Mutex<ConnectionManager?>(nil)
        let onLoop = Mutex<[Bool]>([])
        let alice = TestLinkNode(group: group)
        let bob = TestLinkNode(group: group) { peer, message in
            let manager = bobManager.withLock { $0 }
            let link = manager?.link(to: peer.peerID)
            onLoop.withLock { $0.append(link?.channel.eventLoop.inEventLoop ?? false) }
            try? await manager?.send(message.body, on: message.stream, to: peer.peerID)
        }
        bobManager.withLock { $0 = bob.manager }
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let link = try await alice.manager.connect(to: bob.peerID, at: address)
        for index in 0..<20 {
            try await link.send(chat("echo \(index)"), on: .chat)
            let (from, echo) = try await alice.inbox.next()
            #expect(from.peerID == bob.peerID && echo.body == chat("echo \(index)"))
        }
        #expect(onLoop.withLock { $0 } == Array(repeating: true, count: 20))
        await alice.manager.shutdown()
        await bob.manager.shutdown()
    }
}
