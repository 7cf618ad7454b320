import Crypto
import Foundation
import PrivatusCore
import PrivatusWire
import SwiftProtobuf

/// A node's DHT key: an Ed25519 key of its own (never the identity), drawn at random. Its node
/// ID is SHA-256 of the public key, so the ID is random, says nothing of the user, and a reply
/// signed by the key is known to come from the node with that ID.
public struct DHTKey: Sendable {
    let privateKey: Curve25519.Signing.PrivateKey

    public init() {
        privateKey = Curve25519.Signing.PrivateKey()
    }

    /// Restores a key from its 32-byte seed.
    public init?(seed: [UInt8]) {
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else { return nil }
        privateKey = key
    }

    /// The 32-byte seed, for keeping in the profile's database.
    public var seed: [UInt8] { Array(privateKey.rawRepresentation) }
    public var publicKey: [UInt8] { Array(privateKey.publicKey.rawRepresentation) }
    public var nodeID: DHTNodeID { DHTKey.nodeID(of: publicKey) }

    public static func nodeID(of publicKey: [UInt8]) -> DHTNodeID {
        DHTNodeID(bytes: Array(SHA256.hash(data: publicKey)))!
    }

    func sign(_ packet: [UInt8]) -> [UInt8] {
        guard let signature = try? privateKey.signature(for: SignaturePurpose.dhtPacket.signedMessage(over: packet))
        else { preconditionFailure("Ed25519 signing failed") }
        return Array(signature)
    }
}

/// One DHT request or reply as the node handles it.
public enum DHTMessage: Sendable, Hashable {
    case ping
    /// The address the request came from, as the answering node saw it.
    case pong(observed: DHTAddress?)
    case findNode(target: DHTNodeID)
    case nodes([DHTPeer])
    case findValue(key: DHTNodeID)
    /// The record (when held) and the closest nodes known.
    case value(DHTRecord?, closer: [DHTPeer])
    case store(DHTRecord)
    case stored(StoreOutcome)
    case cookie([UInt8])
    case error(DHTFailure)

    public enum StoreOutcome: Sendable, Hashable {
        case stored, invalid, notNewer, overQuota
    }

    public enum DHTFailure: Sendable, Hashable {
        case malformed, rateLimited, unsupportedVersion
    }

    /// Whether this is a request (it expects a reply).
    public var isRequest: Bool {
        switch self {
        case .ping, .findNode, .findValue, .store: true
        default: false
        }
    }
}

/// A packet: the request id, the cookie echoed (requests), the message.
public struct DHTPacket: Sendable, Hashable {
    public var requestID: UInt64
    public var cookie: [UInt8]
    public var message: DHTMessage

    public init(requestID: UInt64, cookie: [UInt8] = [], message: DHTMessage) {
        self.requestID = requestID
        self.cookie = cookie
        self.message = message
    }
}

/// A datagram as received: the packet, and the key that claims to have signed it. The
/// signature is checked only when asked (``verifiedSender()``): a node checks no signature for
/// a source that has not echoed its cookie.
public struct ReceivedDatagram: Sendable {
    public let packet: DHTPacket
    let packetBytes: [UInt8]
    public let senderKey: [UInt8]?
    let signature: [UInt8]

    /// The sender's node ID if the datagram carries a valid signature by its key; nil otherwise.
    public func verifiedSender() -> DHTNodeID? {
        guard let senderKey, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: senderKey),
            key.isValidSignature(signature, for: SignaturePurpose.dhtPacket.signedMessage(over: packetBytes))
        else { return nil }
        return DHTKey.nodeID(of: senderKey)
    }
}

/// Why a datagram was dropped. Names no address, identifier or content.
public enum DHTWireError: Error, Sendable, Hashable, CustomStringConvertible {
    case tooLarge
    case malformed
    case unsupportedVersion

    public var description: String {
        switch self {
        case .tooLarge: "DHT datagram too large"
        case .malformed: "DHT datagram malformed"
        case .unsupportedVersion: "DHT datagram of another version"
        }
    }
}

/// Encodes and decodes the DHT's datagrams (`privatus.dht.v1`, docs/PROTOCOL.md "DHT"), with
/// every size checked before anything is parsed or allocated for it.
public enum DHTCodec {
    public static let version: UInt32 = 1
    /// The largest datagram sent or accepted (a value reply: a full record and 20 nodes).
    public static let maximumDatagramBytes = 8_192
    /// A request without a cookie is padded to at least this many bytes.
    public static let minimumUnverifiedRequestBytes = 64
    /// The most nodes a reply lists.
    public static let maximumNodes = 20

    /// The datagram for `packet`, signed by `key` (nil: unsigned, for a request without a
    /// cookie, padded, or a cookie reply).
    public static func encode(_ packet: DHTPacket, signedBy key: DHTKey?) throws(DHTWireError) -> [UInt8] {
        var wire = Privatus_Dht_V1_Packet()
        wire.requestID = packet.requestID
        wire.cookie = Data(packet.cookie)
        switch packet.message {
        case .ping: wire.ping = .init()
        case .pong(let observed):
            wire.pong = .with { pong in if let observed { pong.observed = address(observed) } }
        case .findNode(let target): wire.findNode = .with { $0.target = Data(target.bytes) }
        case .nodes(let peers): wire.nodes = .with { $0.nodes = peers.prefix(maximumNodes).map(info) }
        case .findValue(let key): wire.findValue = .with { $0.key = Data(key.bytes) }
        case .value(let record, let closer):
            wire.value = .with {
                if let record {
                    $0.recordBody = Data(record.body)
                    $0.recordSignature = Data(record.signature)
                }
                $0.closer = closer.prefix(maximumNodes).map(info)
            }
        case .store(let record):
            wire.store = .with {
                $0.recordBody = Data(record.body)
                $0.recordSignature = Data(record.signature)
            }
        case .stored(let outcome):
            wire.stored = .with {
                $0.code =
                    switch outcome {
                    case .stored: .stored
                    case .invalid: .invalid
                    case .notNewer: .notNewer
                    case .overQuota: .overQuota
                    }
            }
        case .cookie(let cookie): wire.cookieReply = .with { $0.cookie = Data(cookie) }
        case .error(let failure):
            wire.error = .with {
                $0.code =
                    switch failure {
                    case .malformed: .malformed
                    case .rateLimited: .rateLimited
                    case .unsupportedVersion: .unsupportedVersion
                    }
            }
        }
        guard var packetBytes = try? Array(wire.serializedBytes() as [UInt8]) else { throw .malformed }
        if key == nil, packet.message.isRequest, packet.cookie.isEmpty,
            packetBytes.count < minimumUnverifiedRequestBytes
        {
            wire.padding = Data(count: minimumUnverifiedRequestBytes - packetBytes.count)
            guard let padded = try? Array(wire.serializedBytes() as [UInt8]) else { throw .malformed }
            packetBytes = padded
        }
        var datagram = Privatus_Dht_V1_Datagram()
        datagram.version = version
        datagram.packet = Data(packetBytes)
        if let key {
            datagram.senderKey = Data(key.publicKey)
            datagram.signature = Data(key.sign(packetBytes))
        }
        guard let bytes = try? Array(datagram.serializedBytes() as [UInt8]) else { throw .malformed }
        guard bytes.count <= maximumDatagramBytes else { throw .tooLarge }
        return bytes
    }

    /// Parses a received datagram (no signature checked yet).
    public static func decode(_ bytes: some Collection<UInt8>) throws(DHTWireError) -> ReceivedDatagram {
        guard bytes.count <= maximumDatagramBytes else { throw .tooLarge }
        guard let datagram = try? Privatus_Dht_V1_Datagram(serializedBytes: Array(bytes)) else { throw .malformed }
        guard datagram.version == version else { throw .unsupportedVersion }
        guard
            datagram.senderKey.isEmpty
                ? datagram.signature.isEmpty : (datagram.senderKey.count == 32 && datagram.signature.count == 64)
        else { throw .malformed }
        let packetBytes = Array(datagram.packet)
        guard let wire = try? Privatus_Dht_V1_Packet(serializedBytes: packetBytes) else { throw .malformed }
        guard wire.cookie.isEmpty || wire.cookie.count == CookieJar.cookieBytes else { throw .malformed }
        let message: DHTMessage
        switch wire.body {
        case .ping: message = .ping
        case .pong(let pong): message = .pong(observed: pong.hasObserved ? try address(pong.observed) : nil)
        case .findNode(let find): message = .findNode(target: try id(find.target))
        case .nodes(let nodes): message = .nodes(try peers(nodes.nodes))
        case .findValue(let find): message = .findValue(key: try id(find.key))
        case .value(let value):
            let record: DHTRecord?
            if value.recordBody.isEmpty && value.recordSignature.isEmpty {
                record = nil
            } else {
                record = try? DHTRecord(
                    unverifiedBody: Array(value.recordBody), signature: Array(value.recordSignature))
                guard record != nil else { throw .malformed }
            }
            message = .value(record, closer: try peers(value.closer))
        case .store(let store):
            guard
                let record = try? DHTRecord(
                    unverifiedBody: Array(store.recordBody), signature: Array(store.recordSignature))
            else { throw .malformed }
            message = .store(record)
        case .stored(let reply):
            switch reply.code {
            case .stored: message = .stored(.stored)
            case .invalid: message = .stored(.invalid)
            case .notNewer: message = .stored(.notNewer)
            case .overQuota: message = .stored(.overQuota)
            default: throw .malformed
            }
        case .cookieReply(let reply):
            guard reply.cookie.count == CookieJar.cookieBytes else { throw .malformed }
            message = .cookie(Array(reply.cookie))
        case .error(let error):
            switch error.code {
            case .malformed: message = .error(.malformed)
            case .rateLimited: message = .error(.rateLimited)
            case .unsupportedVersion: message = .error(.unsupportedVersion)
            default: throw .malformed
            }
        case nil:
            throw .malformed
        }
        return ReceivedDatagram(
            packet: DHTPacket(requestID: wire.requestID, cookie: Array(wire.cookie), message: message),
            packetBytes: packetBytes, senderKey: datagram.senderKey.isEmpty ? nil : Array(datagram.senderKey),
            signature: Array(datagram.signature))
    }

    static func id(_ bytes: Data) throws(DHTWireError) -> DHTNodeID {
        guard let id = DHTNodeID(bytes: bytes) else { throw .malformed }
        return id
    }

    static func address(_ address: DHTAddress) -> Privatus_Dht_V1_NodeAddress {
        .with {
            $0.ip = Data(address.ip)
            $0.port = UInt32(address.port)
        }
    }

    static func address(_ wire: Privatus_Dht_V1_NodeAddress) throws(DHTWireError) -> DHTAddress {
        guard wire.port > 0, wire.port <= UInt32(UInt16.max),
            let address = DHTAddress(ip: Array(wire.ip), port: UInt16(wire.port))
        else { throw .malformed }
        return address
    }

    static func info(_ peer: DHTPeer) -> Privatus_Dht_V1_NodeInfo {
        .with {
            $0.id = Data(peer.id.bytes)
            $0.address = address(peer.address)
        }
    }

    static func peers(_ infos: [Privatus_Dht_V1_NodeInfo]) throws(DHTWireError) -> [DHTPeer] {
        guard infos.count <= maximumNodes else { throw .malformed }
        var peers: [DHTPeer] = []
        for info in infos {
            guard info.hasAddress else { throw .malformed }
            let address = try address(info.address)
            guard address.isUnicast else { throw .malformed }
            peers.append(DHTPeer(id: try id(info.id), address: address))
        }
        return peers
    }
}
