import Crypto
import Foundation
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusWire
import Testing

@testable import PrivatusNet

/// Real links between connection managers over loopback sockets.
@Suite(.serialized) struct LinkTests {
    let group = MultiThreadedEventLoopGroup.singleton

    @Test func twoListenersAuthenticateEachOtherAndReuseTheirLink() async throws {
        let alice = TestLinkNode(group: group)
        let bob = TestLinkNode(group: group)
        let bobAddress = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        _ = try await alice.manager.listen(host: "127.0.0.1", port: 0)
        #expect(bobAddress.port != 0, "port 0 reports the port bound")

        let link = try await alice.manager.connect(to: bob.peerID, at: bobAddress)
        #expect(link.peer.peerID == bob.peerID && link.isInitiator)
        try await link.send(chat: "hello bob")
        let (from, message) = try await bob.inbox.next()
        #expect(from.peerID == alice.peerID && from.identity == alice.keys.identity.publicKey)
        #expect(message == InboundMessage(stream: .chat, body: chat("hello bob")))
        #expect(from.handshakeHash == link.peer.handshakeHash)

        // Bob answers over the same connection, by PeerID.
        try await bob.manager.send(chat("hello alice"), on: .chat, to: alice.peerID)
        let (reply, answer) = try await alice.inbox.next()
        #expect(reply.peerID == bob.peerID && answer.body == chat("hello alice"))

        // Dialling a connected peer returns the link there is.
        let again = try await alice.manager.connect(to: bob.peerID, at: bobAddress)
        #expect(again === link)
        #expect(alice.manager.connectedPeers == [bob.peerID])
        #expect(bob.manager.connectedPeers == [alice.peerID])
        #expect(
            alice.metrics.counterTotal(label: "privatus_link_handshakes_total", dimensions: [("result", "ok")]) == 1)
        await alice.manager.shutdown()
        await bob.manager.shutdown()
    }

    @Test func linksWorkOverIPv6Loopback() async throws {
        let alice = TestLinkNode(group: group)
        let bob = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "::1", port: 0)
        guard case .v6 = address else {
            Issue.record("::1 is not an IPv6 address here")
            return
        }
        try await roundTrip(alice, bob, at: address, text: "over ipv6")
        await alice.manager.shutdown()
        await bob.manager.shutdown()
    }

    @Test func aResponderWithAnotherPeerIDIsRefusedBeforeMessageThree() async throws {
        let alice = TestLinkNode(group: group)
        let bob = TestLinkNode(group: group)
        let carol = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        await #expect(throws: LinkError.unexpectedPeer) {
            try await alice.manager.connect(to: carol.peerID, at: address)
        }
        #expect(alice.handshakeFailures(.unexpectedPeer) == 1)
        // Bob never learnt who dialled (no message 3), and still serves Carol.
        #expect(bob.manager.connectedPeers.isEmpty)
        try await roundTrip(carol, bob, at: address, text: "still here")
        await bob.manager.shutdown()
        await carol.manager.shutdown()
    }

    @Test func garbageTruncatedAndEmptyFramesCloseOnlyTheirConnection() async throws {
        var impatient = ConnectionManager.Configuration.fast
        impatient.link.handshakeTimeout = .seconds(1)
        let bob = TestLinkNode(group: group, configuration: impatient)
        let carol = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)

        // A first frame that is no Noise message 1.
        let garbage = try await RawConnection.open(to: address, group: group)
        try await garbage.send([0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])
        try await garbage.waitUntilClosed()
        #expect(bob.handshakeFailures(.protocolError) == 1)

        // Half of message 1, then silence: closed at the handshake timeout.
        let truncated = try await RawConnection.open(to: address, group: group)
        try await truncated.send([0x00, 0x20] + [UInt8](repeating: 7, count: 10))
        try await truncated.waitUntilClosed()
        #expect(bob.handshakeFailures(.timeout) == 1)

        // A zero-length link frame.
        let empty = try await RawConnection.open(to: address, group: group)
        try await empty.send([0x00, 0x00])
        try await empty.waitUntilClosed()
        #expect(bob.rejected(.malformed) == 1)

        try await roundTrip(carol, bob, at: address, text: "served throughout")
        await bob.manager.shutdown()
        await carol.manager.shutdown()
    }

    @Test func aDowngradedVersionListFailsTheHandshake() async throws {
        var downgraded = ConnectionManager.Configuration.fast
        downgraded.link.versions = [0]  // as if an attacker had stripped version 1 from the list
        let alice = TestLinkNode(group: group, configuration: downgraded)
        let bob = TestLinkNode(group: group)
        let carol = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        await #expect(throws: LinkError.handshakeFailed) {
            try await alice.manager.connect(to: bob.peerID, at: address)
        }
        #expect(bob.manager.connectedPeers.isEmpty)
        try await roundTrip(carol, bob, at: address, text: "no downgrade")
        await bob.manager.shutdown()
        await carol.manager.shutdown()
    }

    @Test func anOversizedMessageClosesThatLinkOnly() async throws {
        var generous = ConnectionManager.Configuration.fast
        generous.link.multiplex.maxMessageBytes = 4 << 20
        let mallory = TestLinkNode(group: group, configuration: generous)
        let bob = TestLinkNode(group: group)
        let carol = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let link = try await mallory.manager.connect(to: bob.peerID, at: address)
        try await link.send(
            .chatMessage(
                ChatMessage(messageID: [UInt8](repeating: 1, count: 16), sealed: [UInt8](repeating: 1, count: 1 << 20))),
            on: .bulk)
        try await within { while link.isActive { try await Task.sleep(for: .milliseconds(20)) } }
        #expect(bob.rejected(.messageTooLarge) == 1)
        #expect(await bob.inbox.count == 0)
        try await roundTrip(carol, bob, at: address, text: "after the oversized one")
        await bob.manager.shutdown()
        await carol.manager.shutdown()
        await mallory.manager.shutdown()
    }

    @Test func aConnectionFloodFromOneAddressIsRateLimited() async throws {
        var limited = ConnectionManager.Configuration.fast
        limited.rateLimits.limitsLoopback = true
        limited.rateLimits.burst = 5
        limited.rateLimits.perSecond = 0.001
        limited.link.handshakeTimeout = .seconds(60)  // the five allowed stay in their handshakes
        let bob = TestLinkNode(group: group, configuration: limited)
        let carol = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let source = try SocketAddress(ipAddress: "127.0.0.2", port: 0)
        var connections: [RawConnection] = []
        for _ in 0..<20 {
            connections.append(try await RawConnection.open(to: address, from: source, group: group))
        }
        // Which five win is a race between event loops; that fifteen are closed at once is not.
        let all = connections
        try await within {
            while all.filter({ !$0.channel.isActive }).count < 15 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(connections.filter { $0.channel.isActive }.count == 5, "the burst is waiting in its handshakes")
        #expect(bob.rejected(.rateLimited) == 15)
        // 127.0.0.1 has its own allowance.
        try await roundTrip(carol, bob, at: address, text: "not limited")
        for connection in connections { try? await connection.channel.close() }
        await bob.manager.shutdown()
        await carol.manager.shutdown()
    }

    @Test func aPeerThatDoesNotReadIsDroppedWithItsQueueBounded() async throws {
        var bounded = ConnectionManager.Configuration.fast
        bounded.link.multiplex.maxQueuedBytes = 2 << 20
        bounded.link.multiplex.stallTimeout = .milliseconds(500)
        let bob = TestLinkNode(group: group, configuration: bounded)
        // Sam's handler never returns: Sam stops reading, and TCP fills up towards Bob.
        let sam = TestLinkNode(group: group) { _, _ in
            try? await Task.sleep(for: .seconds(3600))
        }
        let carol = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let samLink = try await sam.manager.connect(to: bob.peerID, at: address)
        try await samLink.send(chat: "hi, now I stop reading")
        _ = try await bob.inbox.next()
        let bobToSam = try #require(bob.manager.link(to: sam.peerID))
        // Bob sends far more than sockets and queues hold; the link is dropped, not grown.
        let chunk = Envelope.Body.chatMessage(
            ChatMessage(messageID: [UInt8](repeating: 2, count: 16), sealed: [UInt8](repeating: 2, count: 256 << 10)))
        try await within {
            while bobToSam.isActive {
                try? await bobToSam.send(chunk, on: .bulk)
            }
        }
        #expect(bob.rejected(.slowReader) >= 1)
        // Bob's senders were held at the gate: the queue never went past the high watermark and
        // one message (without the gate it would fill to maxQueuedBytes and be dropped there).
        let queued = try bob.metrics.expectMeter("privatus_link_queued_bytes").values
        #expect(queued.max() ?? 0 <= Double(bounded.link.multiplex.sendHighWatermark + (256 << 10) + 64))
        try await roundTrip(carol, bob, at: address, text: "others unaffected")
        await bob.manager.shutdown()
        await carol.manager.shutdown()
        await sam.manager.shutdown(grace: .milliseconds(10))
    }

    @Test func aSenderFasterThanItsReaderWaitsInsteadOfBeingDropped() async throws {
        var bounded = ConnectionManager.Configuration.fast
        bounded.link.multiplex.maxQueuedBytes = 2 << 20
        let alice = TestLinkNode(group: group, configuration: bounded)
        // Dana reads, slowly: a little pause per message.
        let dana = TestLinkNode(group: group) { _, _ in try? await Task.sleep(for: .milliseconds(2)) }
        let address = try await dana.manager.listen(host: "127.0.0.1", port: 0)
        let link = try await alice.manager.connect(to: dana.peerID, at: address)
        let chunk = Envelope.Body.chatMessage(
            ChatMessage(messageID: [UInt8](repeating: 3, count: 16), sealed: [UInt8](repeating: 3, count: 512 << 10)))
        // 24 MiB through a 2 MiB queue bound: the writer is held back, the link stays.
        for _ in 0..<48 { try await link.send(chunk, on: .bulk) }
        #expect(link.isActive)
        #expect(alice.rejected(.slowReader) == 0)
        let queued = try alice.metrics.expectMeter("privatus_link_queued_bytes").values
        #expect(queued.max() ?? 0 <= Double(bounded.link.multiplex.maxQueuedBytes))
        await alice.manager.shutdown()
        await dana.manager.shutdown()
    }

    @Test func queuedMessagesArriveInOrderAndTheQueueIsBounded() async throws {
        var bounded = ConnectionManager.Configuration.fast
        bounded.link.multiplex.maxQueuedBytes = 2 << 20
        let alice = TestLinkNode(group: group, configuration: bounded)
        // Dana reads, slowly: the queue fills and the caller is asked to wait.
        let received = Inbox()
        let dana = TestLinkNode(group: group) { peer, message in
            try? await Task.sleep(for: .milliseconds(1))
            await received.handler(peer, message)
        }
        let address = try await dana.manager.listen(host: "127.0.0.1", port: 0)
        let link = try await alice.manager.connect(to: dana.peerID, at: address)
        var askedToWait = false
        for index in 0..<256 {
            let message = Envelope.Body.chatMessage(
                ChatMessage(
                    messageID: [UInt8](repeating: UInt8(index), count: 16),
                    sealed: [UInt8](repeating: 1, count: 16 << 10)))
            if try !link.enqueue(message, on: .chat) {
                askedToWait = true
                await link.waitForRoom()
            }
        }
        #expect(askedToWait, "4 MiB through a 1 MiB queue")
        var order: [UInt8] = []
        for _ in 0..<256 {
            if case .chatMessage(let chat) = try await received.next().1.body {
                order.append(chat.messageID.first ?? 0)
            }
        }
        #expect(order == (0..<256).map { UInt8($0) })
        #expect(link.isActive)
        let tooLarge = LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 0, count: (1 << 20) + 1))
        #expect(throws: LinkError.messageTooLarge) { try link.enqueue([tooLarge]) }
        link.close()
        for _ in 0..<100 where link.isActive { try await Task.sleep(for: .milliseconds(10)) }
        // On a closed link what is queued is dropped, and nobody waits for room forever.
        for _ in 0..<32 {
            _ = try link.enqueue(
                .chatMessage(
                    ChatMessage(
                        messageID: [UInt8](repeating: 9, count: 16), sealed: [UInt8](repeating: 1, count: 16 << 10))),
                on: .chat)
        }
        await link.waitForRoom()
        await alice.manager.shutdown()
        await dana.manager.shutdown()
    }

    @Test func unknownKindsOtherVersionsAndGarbageMessagesGetErrorRepliesOnAnOpenLink() async throws {
        let alice = TestLinkNode(group: group)
        let bob = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let link = try await alice.manager.connect(to: bob.peerID, at: address)
        // Version 1 with field 50 (a kind from a newer node), version 2 with a ping, no protobuf.
        let cases: [([UInt8], ErrorReply)] = [
            ([0x08, 0x01, 0x90, 0x03, 0x01], ErrorReply(code: .unknownKind, kind: 50)),
            ([0x08, 0x02, 0x12, 0x02, 0x08, 0x01], ErrorReply(code: .unsupportedVersion, kind: 2)),
            ([0xff, 0xff, 0xff], ErrorReply(code: .malformed, kind: 0)),
        ]
        for (bytes, expected) in cases {
            try await link.send(LinkMessage(stream: .chat, bytes: bytes))
            let (_, reply) = try await alice.inbox.next()
            #expect(reply == InboundMessage(stream: .chat, body: .errorReply(expected)))
        }
        #expect(await bob.inbox.count == 0, "none of them reached Bob's node")
        #expect(bob.rejected(.unknownKind) == 2 && bob.rejected(.malformed) == 1)
        try await roundTrip(alice, bob, at: address, text: "the link is still open")
        #expect(link.isActive)
        await alice.manager.shutdown()
        await bob.manager.shutdown()
    }

    @Test func anOversizedSendIsRefusedAndLaterSendsStillGo() async throws {
        let alice = TestLinkNode(group: group)
        let bob = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let link = try await alice.manager.connect(to: bob.peerID, at: address)
        let tooLarge = LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 0, count: (1 << 20) + 1))
        for _ in 0..<3 { await #expect(throws: LinkError.messageTooLarge) { try await link.send(tooLarge) } }
        try await roundTrip(alice, bob, at: address, text: "the gate is not left full")
        await alice.manager.shutdown()
        await bob.manager.shutdown()
    }

    @Test func handshakesInProgressAreCappedOverAllAddresses() async throws {
        var capped = ConnectionManager.Configuration.fast
        capped.maximumPendingHandshakes = 3
        capped.link.handshakeTimeout = .seconds(60)
        let bob = TestLinkNode(group: group, configuration: capped)
        let carol = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        var silent: [RawConnection] = []
        for _ in 0..<5 { silent.append(try await RawConnection.open(to: address, group: group)) }
        let all = silent
        try await within {
            while all.filter({ !$0.channel.isActive }).count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(silent.filter { $0.channel.isActive }.count == 3)
        #expect(bob.rejected(.connectionLimit) == 2)
        // Once the silent ones go, handshakes are admitted again.
        for connection in silent { try? await connection.channel.close() }
        try await within {
            while bob.manager.pendingHandshakes.value > 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        try await roundTrip(carol, bob, at: address, text: "admitted again")
        await bob.manager.shutdown()
        await carol.manager.shutdown()
    }

    @Test func atTheConnectionLimitTheLeastRecentlyUsedIdleLinkMakesRoom() async throws {
        var small = ConnectionManager.Configuration.fast
        small.maximumConnections = 2
        small.evictableAfter = .zero
        let bob = TestLinkNode(group: group, configuration: small)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let (first, second, third) = (
            TestLinkNode(group: group), TestLinkNode(group: group), TestLinkNode(group: group)
        )
        try await roundTrip(first, bob, at: address, text: "one")
        try await roundTrip(second, bob, at: address, text: "two")
        try await roundTrip(first, bob, at: address, text: "one again")  // second is now the least recent
        try await roundTrip(third, bob, at: address, text: "three")
        try await within {
            while bob.manager.connectedPeers != [first.peerID, third.peerID] {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        for node in [bob, first, second, third] { await node.manager.shutdown() }
    }

    @Test func twoNodesDiallingEachOtherAtOnceKeepOneLink() async throws {
        let alice = TestLinkNode(group: group)
        let bob = TestLinkNode(group: group)
        let aliceAddress = try await alice.manager.listen(host: "127.0.0.1", port: 0)
        let bobAddress = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        async let fromAlice = alice.manager.connect(to: bob.peerID, at: bobAddress)
        async let fromBob = bob.manager.connect(to: alice.peerID, at: aliceAddress)
        // Both dials succeed, whichever link is kept.
        let (aliceLink, bobLink) = try await (fromAlice, fromBob)
        #expect(aliceLink.peer.peerID == bob.peerID && bobLink.peer.peerID == alice.peerID)
        // Both sides settle on the same connection: the one dialled by the lower PeerID.
        let lower = alice.peerID.bytes.lexicographicallyPrecedes(bob.peerID.bytes) ? alice : bob
        try await within {
            while true {
                if let a = alice.manager.link(to: bob.peerID), let b = bob.manager.link(to: alice.peerID),
                    a.peer.handshakeHash == b.peer.handshakeHash
                {
                    #expect(a.initiatorPeer == lower.peerID && b.initiatorPeer == lower.peerID)
                    return
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        try await roundTrip(alice, bob, at: bobAddress, text: "one link")
        await alice.manager.shutdown()
        await bob.manager.shutdown()
    }

    @Test func aFailedDialBacksOffBeforeTheNextAttempt() async throws {
        var limited = ConnectionManager.Configuration.fast
        limited.rateLimits.limitsLoopback = true
        let alice = TestLinkNode(group: group, configuration: limited)
        // A port that was just free: nothing listens there.
        let probe = TestLinkNode(group: group)
        let closed = try await probe.manager.listen(host: "127.0.0.3", port: 0)
        await probe.manager.shutdown()
        await #expect(throws: (any Error).self) { try await alice.manager.connect(to: probe.peerID, at: closed) }
        await #expect(throws: LinkError.rateLimited) { try await alice.manager.connect(to: probe.peerID, at: closed) }
        #expect(alice.rejected(.rateLimited) == 1)
        await alice.manager.shutdown()
    }

    @Test func idleLinksCloseAndShutdownDeliversWhatWasQueued() async throws {
        let alice = TestLinkNode(group: group)
        let bob = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let link = try await alice.manager.connect(to: bob.peerID, at: address)
        #expect(await alice.manager.closeIdleLinks(now: .now) == 0)
        #expect(await alice.manager.closeIdleLinks(now: .now + alice.manager.configuration.idleTimeout) == 1)
        try await within { while link.isActive { try await Task.sleep(for: .milliseconds(10)) } }

        let second = try await alice.manager.connect(to: bob.peerID, at: address)
        #expect(second !== link)
        for index in 0..<50 { try await second.send(chat: "queued \(index)") }
        await alice.manager.shutdown()
        for index in 0..<50 {
            let (_, message) = try await bob.inbox.next()
            #expect(message.body == chat("queued \(index)"))
        }
        #expect(!second.isActive)
        await bob.manager.shutdown()
    }
}
