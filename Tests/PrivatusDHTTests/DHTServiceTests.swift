import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusDHT
import Testing

/// Real DHT endpoints on loopback UDP sockets, in this process.
@Suite(.serialized) struct DHTServiceTests {
    static func configuration() -> DHTService.Configuration {
        var configuration = DHTService.Configuration()
        configuration.exemptLoopback = true
        return configuration
    }

    static func network(_ count: Int) async throws -> [DHTService] {
        var services: [DHTService] = []
        for _ in 0..<count {
            services.append(
                try await DHTService.start(key: DHTKey(), host: "127.0.0.1", port: 0, configuration: configuration()))
        }
        // Each joins through the first.
        for service in services.dropFirst() { await service.bootstrap(from: [services[0].localAddress]) }
        return services
    }

    @Test func twentyNodesOnLoopbackFindEachOtherAndARecordPublishedByOneIsFoundByAnother() async throws {
        let services = try await Self.network(20)
        defer { Task { for service in services { await service.stop() } } }
        var found = 0
        for (index, service) in services.enumerated() {
            let target = services[(index * 7 + 3) % services.count]
            guard target.nodeID != service.nodeID else {
                found += 1
                continue
            }
            let result = await service.findNode(target.nodeID)
            if result.closest.first?.id == target.nodeID { found += 1 }
        }
        #expect(found == services.count, "every node found by a lookup")

        let identity = IdentityKey()
        let record = try DHTRecord.sign(
            kind: .bundle, sequence: 1, expires: UInt64(Date.now.timeIntervalSince1970) + 3_600, value: [1, 2, 3],
            with: identity)
        let stored = await services[3].publish(record)
        #expect(stored >= 10, "stored at the closest nodes (\(stored))")
        let fetched = await services[17].findValue(record.key)
        #expect(fetched == record)
        // A newer version replaces it; a lookup keeps the highest sequence number.
        let newer = try DHTRecord.sign(
            kind: .bundle, sequence: 2, expires: UInt64(Date.now.timeIntervalSince1970) + 3_600, value: [4],
            with: identity)
        #expect(await services[5].publish(newer) >= 10)
        #expect(await services[11].findValue(record.key)?.sequence == 2)
        #expect(await services[11].findValue(DHTRecord.bundleKey(of: IdentityKey().publicKey.peerID)) == nil)
        // The caller's own check decides too: a record it refuses is not found.
        #expect(await services[11].findValue(record.key, accepting: { $0.sequence == 2 })?.sequence == 2)
        #expect(await services[11].findValue(record.key, accepting: { _ in false }) == nil)
        // A sequence number (signing time, ms) far ahead of the clock is stored nowhere.
        let future = try DHTRecord.sign(
            kind: .bundle, sequence: .max, expires: UInt64(Date.now.timeIntervalSince1970) + 3_600, value: [5],
            with: identity)
        #expect(await services[5].publish(future) == 0)
        #expect(await services[11].findValue(record.key)?.sequence == 2)
    }

    /// A node stopping cancels its lookups: one waiting on a node that left ends at once, without
    /// waiting out its timeouts or sending the retries (it did both, and a node took 18 s to stop
    /// in the middle of joining).
    @Test func aCancelledLookupEndsWithoutRetryingTheNodesThatDoNotAnswer() async throws {
        let services = try await Self.network(2)
        for _ in 0..<500 where await services[0].tableSize == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await services[0].tableSize == 1)
        // The second node leaves without a word; the first still has it in its table.
        await services[1].stop()
        let lookup = Task { await services[0].findNode(DHTNodeID.random()) }
        lookup.cancel()
        let result = await lookup.value
        #expect(result.closest.isEmpty)
        #expect(result.requests <= 1, "no retries after the cancel (\(result.requests) requests)")
        await services[0].stop()
    }

    @Test func inATwoNodeNetworkTheNodeHoldingARecordFindsItInItsOwnStore() async throws {
        let services = try await Self.network(2)
        let identity = IdentityKey()
        let record = try DHTRecord.sign(
            kind: .bundle, sequence: 1, expires: UInt64(Date.now.timeIntervalSince1970) + 3_600, value: [9],
            with: identity)
        // The first takes the second into its table once it has answered the first's ping (sent
        // when the second's first verified request came in).
        for _ in 0..<500 where await services[0].tableSize == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await services[0].tableSize == 1)
        // Published by the first, stored by the second only (a node never stores at itself).
        #expect(await services[0].publish(record) == 1)
        #expect(await services[1].recordCount == 1)
        #expect(await services[1].findValue(record.key) == record)
        #expect(await services[0].findValue(record.key) == record)
        for service in services { await service.stop() }
    }

    /// A client that speaks raw UDP to a node, as an attacker with a forged source would.
    final class RawSocket: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        var received: [[UInt8]] = []
        let lock = NIOLock()
        var channel: (any Channel)?

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).data.readableBytesView)
            lock.withLock { received.append(bytes) }
        }

        func start() async throws {
            channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { $0.pipeline.addHandler(self) }
                .bind(host: "127.0.0.1", port: 0).get()
        }

        func send(_ bytes: [UInt8], to address: DHTAddress) async throws {
            guard let channel, let socket = address.socketAddress else { return }
            try await channel.writeAndFlush(
                AddressedEnvelope(remoteAddress: socket, data: channel.allocator.buffer(bytes: bytes)))
        }

        /// The first datagram received that answers request `id` (the node also sends requests of
        /// its own: it pings a new client before taking it into its table).
        func reply(to id: UInt64) async throws -> [UInt8]? {
            for _ in 0..<200 {
                let match = lock.withLock {
                    received.first { (try? DHTCodec.decode($0))?.packet.requestID == id }
                }
                if let match { return match }
                try await Task.sleep(for: .milliseconds(10))
            }
            return nil
        }

        var count: Int { lock.withLock { received.count } }
    }

    @Test func aSourceWithoutACookieGetsNoMoreThanItSentAndGarbageChangesNothing() async throws {
        let node = try await DHTService.start(
            key: DHTKey(), host: "127.0.0.1", port: 0, configuration: Self.configuration())
        defer { Task { await node.stop() } }
        let raw = RawSocket()
        try await raw.start()
        defer { _ = raw.channel?.close() }

        // An unsigned FindNode without a cookie: the answer is a cookie, unsigned, no larger.
        let request = try DHTCodec.encode(
            DHTPacket(requestID: 42, message: .findNode(target: node.nodeID)), signedBy: nil)
        try await raw.send(request, to: node.localAddress)
        let reply = try #require(try await raw.reply(to: 42))
        #expect(reply.count <= request.count)
        let decoded = try DHTCodec.decode(reply)
        guard case .cookie(let cookie) = decoded.packet.message else {
            Issue.record("expected a cookie reply, got \(decoded.packet.message)")
            return
        }
        #expect(decoded.packet.requestID == 42 && decoded.senderKey == nil)

        // Echoing the cookie unsigned gets nothing: a verified source must sign.
        try await raw.send(
            try DHTCodec.encode(DHTPacket(requestID: 43, cookie: cookie, message: .ping), signedBy: nil),
            to: node.localAddress)
        // Signed with the cookie: a signed Pong naming the address it came from.
        let clientKey = DHTKey()
        try await raw.send(
            try DHTCodec.encode(DHTPacket(requestID: 44, cookie: cookie, message: .ping), signedBy: clientKey),
            to: node.localAddress)
        let pong = try DHTCodec.decode(try #require(try await raw.reply(to: 44)))
        #expect(try await raw.reply(to: 43) == nil, "the unsigned request with a cookie got no answer")
        #expect(pong.verifiedSender() == node.nodeID)
        guard case .pong(let observed) = pong.packet.message, let rawLocal = raw.channel?.localAddress else {
            Issue.record("expected a pong")
            return
        }
        #expect(observed == DHTAddress(rawLocal))

        // Garbage, an oversized datagram, a reply nobody asked for: refused, the node goes on.
        let refusedBefore = await node.refused
        try await raw.send([0xff, 0x00, 0x13], to: node.localAddress)
        try await raw.send([UInt8](repeating: 0x0a, count: 9_000), to: node.localAddress)
        try await raw.send(
            try DHTCodec.encode(DHTPacket(requestID: 99, message: .nodes([])), signedBy: clientKey),
            to: node.localAddress)
        for _ in 0..<200 where await node.refused < refusedBefore + 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await node.refused == refusedBefore + 3)
        try await raw.send(
            try DHTCodec.encode(DHTPacket(requestID: 45, cookie: cookie, message: .ping), signedBy: clientKey),
            to: node.localAddress)
        let again = try DHTCodec.decode(try #require(try await raw.reply(to: 45)))
        #expect(again.verifiedSender() == node.nodeID)
    }
}
