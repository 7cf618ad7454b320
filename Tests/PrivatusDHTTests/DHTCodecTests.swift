import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusDHT
import PrivatusWire
import Testing

/// The DHT's datagrams: every message round-trips, signatures bind the sender's node ID, and
/// what a forged source or a malformed datagram can make a node do is bounded.
@Suite struct DHTCodecTests {
    let key = DHTKey()
    var random = SplitMix64(seed: 3)

    mutating func peer(_ index: Int) -> DHTPeer {
        DHTPeer(
            id: DHTNodeID.random(using: &random),
            address: index % 2 == 0
                ? DHTAddress(ipv4: 192, 0, 2, UInt8(index), port: 4_000)
                : DHTAddress(
                    ip: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [UInt8(index)], port: 4_001)!)
    }

    @Test mutating func everyMessageRoundTripsSignedByItsSender() throws {
        let record = try DHTRecord.sign(
            kind: .bundle, sequence: 3, expires: 1_900_000_000, value: [1, 2, 3], with: IdentityKey())
        let nodes = (0..<20).map { peer($0) }
        let messages: [DHTMessage] = [
            .ping, .pong(observed: DHTAddress(ipv4: 198, 51, 100, 4, port: 999)), .pong(observed: nil),
            .findNode(target: DHTNodeID.random(using: &random)), .nodes(nodes), .nodes([]),
            .findValue(key: record.key), .value(record, closer: []), .value(nil, closer: nodes), .store(record),
            .stored(.stored), .stored(.notNewer), .stored(.invalid), .stored(.overQuota),
            .cookie([UInt8](repeating: 7, count: 16)), .error(.rateLimited), .error(.malformed),
        ]
        for message in messages {
            let packet = DHTPacket(requestID: random.next(), cookie: [UInt8](repeating: 1, count: 16), message: message)
            let bytes = try DHTCodec.encode(packet, signedBy: key)
            #expect(bytes.count <= DHTCodec.maximumDatagramBytes)
            let received = try DHTCodec.decode(bytes)
            #expect(received.packet == packet, "\(message)")
            #expect(received.verifiedSender() == key.nodeID)
        }
    }

    @Test func aChangedPacketOrAnotherKeyDoesNotVerify() throws {
        let packet = DHTPacket(requestID: 9, message: .findNode(target: key.nodeID))
        var datagram = try Privatus_Dht_V1_Datagram(serializedBytes: try DHTCodec.encode(packet, signedBy: key))
        // Another node's key claimed for this signature.
        var claimed = datagram
        claimed.senderKey = Data(DHTKey().publicKey)
        #expect(try DHTCodec.decode(try claimed.serializedBytes() as [UInt8]).verifiedSender() == nil)
        // A changed packet under the original signature.
        var wire = try Privatus_Dht_V1_Packet(serializedBytes: datagram.packet)
        wire.requestID = 10
        datagram.packet = try wire.serializedData()
        #expect(try DHTCodec.decode(try datagram.serializedBytes() as [UInt8]).verifiedSender() == nil)
        // Unsigned: nobody verified.
        let unsigned = try DHTCodec.decode(try DHTCodec.encode(packet, signedBy: nil))
        #expect(unsigned.senderKey == nil && unsigned.verifiedSender() == nil)
    }

    /// A record's signature is not checked while the datagram is parsed (its source may be
    /// forged); the store checks it before keeping the record.
    @Test func aRecordIsParsedUncheckedAndCheckedByTheStore() throws {
        let record = try DHTRecord.sign(
            kind: .bundle, sequence: 1, expires: 1_900_000_000, value: [5], with: IdentityKey())
        var forged = record.signature
        forged[0] ^= 1
        let wire = Privatus_Dht_V1_Packet.with {
            $0.store = .with {
                $0.recordBody = Data(record.body)
                $0.recordSignature = Data(forged)
            }
        }
        var datagram = Privatus_Dht_V1_Datagram()
        datagram.version = 1
        datagram.packet = try wire.serializedData()
        let received = try DHTCodec.decode(try datagram.serializedBytes() as [UInt8])
        guard case .store(let parsed) = received.packet.message else {
            Issue.record("expected a store request")
            return
        }
        #expect(throws: DHTRecordError.badSignature) { try parsed.verify() }
        var store = RecordStore()
        #expect(throws: DHTRecordError.badSignature) {
            try store.put(parsed, from: DHTAddress(ipv4: 192, 0, 2, 1, port: 1), now: 1_800_000_000)
        }
        #expect(store.count == 0)
    }

    @Test func anUnsignedRequestIsPaddedSoItsCookieReplyIsNoLarger() throws {
        for message in [DHTMessage.ping, .findNode(target: key.nodeID)] {
            let request = try DHTCodec.encode(DHTPacket(requestID: .max, message: message), signedBy: nil)
            let reply = try DHTCodec.encode(
                DHTPacket(requestID: .max, message: .cookie([UInt8](repeating: 0xff, count: 16))), signedBy: nil)
            #expect(reply.count <= request.count, "\(reply.count) > \(request.count)")
            #expect(try DHTCodec.decode(request).packet.message == message, "padding ignored")
        }
    }

    @Test mutating func malformedOversizedAndOtherVersionDatagramsAreRefusedWithTheirReason() throws {
        #expect(throws: DHTWireError.tooLarge) {
            try DHTCodec.decode([UInt8](repeating: 0, count: DHTCodec.maximumDatagramBytes + 1))
        }
        #expect(throws: DHTWireError.malformed) { try DHTCodec.decode([0xff, 0xff, 0xff]) }
        var datagram = Privatus_Dht_V1_Datagram()
        datagram.version = 2
        #expect(throws: DHTWireError.unsupportedVersion) {
            try DHTCodec.decode(try datagram.serializedBytes() as [UInt8])
        }

        func decode(_ packet: Privatus_Dht_V1_Packet) throws -> ReceivedDatagram {
            var datagram = Privatus_Dht_V1_Datagram()
            datagram.version = 1
            datagram.packet = try packet.serializedData()
            return try DHTCodec.decode(try datagram.serializedBytes() as [UInt8])
        }
        let shortTarget = Privatus_Dht_V1_Packet.with { $0.findNode = .with { $0.target = Data([1, 2, 3]) } }
        let noBody = Privatus_Dht_V1_Packet.with { $0.requestID = 1 }
        let badCookie = Privatus_Dht_V1_Packet.with {
            $0.ping = .init()
            $0.cookie = Data([1, 2, 3])
        }
        let tooManyNodes = Privatus_Dht_V1_Packet.with { packet in
            packet.nodes = .with { nodes in
                nodes.nodes = (0..<21).map { index in
                    .with {
                        $0.id = Data(repeating: UInt8(index), count: 32)
                        $0.address = .with {
                            $0.ip = Data([10, 0, 0, 1])
                            $0.port = 1
                        }
                    }
                }
            }
        }
        let portZero = Privatus_Dht_V1_Packet.with {
            $0.pong = .with { $0.observed = .with { $0.ip = Data([10, 0, 0, 1]) } }
        }
        let badAddress = Privatus_Dht_V1_Packet.with {
            $0.pong = .with {
                $0.observed = .with {
                    $0.ip = Data([10, 0, 0])
                    $0.port = 4
                }
            }
        }
        let badRecord = Privatus_Dht_V1_Packet.with { $0.store = .with { $0.recordBody = Data([1, 1]) } }
        let broadcast = Privatus_Dht_V1_Packet.with { packet in
            packet.nodes = .with {
                $0.nodes = [
                    .with {
                        $0.id = Data(repeating: 1, count: 32)
                        $0.address = .with {
                            $0.ip = Data([255, 255, 255, 255])
                            $0.port = 9
                        }
                    }
                ]
            }
        }
        for packet in [shortTarget, noBody, badCookie, tooManyNodes, portZero, badAddress, badRecord, broadcast] {
            #expect(throws: DHTWireError.malformed) { try decode(packet) }
        }
        // A key without a signature, or a signature of the wrong length.
        var halfSigned = try Privatus_Dht_V1_Datagram(
            serializedBytes: try DHTCodec.encode(DHTPacket(requestID: 1, message: .ping), signedBy: key))
        halfSigned.signature = Data()
        #expect(throws: DHTWireError.malformed) { try DHTCodec.decode(try halfSigned.serializedBytes() as [UInt8]) }

        // Random and mutated datagrams never crash the decoder.
        let valid = try DHTCodec.encode(
            DHTPacket(requestID: 5, message: .nodes((0..<5).map { peer($0) })), signedBy: key)
        for round in 0..<2_000 {
            var bytes = valid
            if round % 2 == 0 {
                bytes = (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                for _ in 0..<(1 + Int(random.next() % 4)) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            _ = try? DHTCodec.decode(bytes)
        }
    }
}
