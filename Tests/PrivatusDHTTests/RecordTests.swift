import Crypto
import PrivatusCore
import PrivatusCrypto
import PrivatusDHT
import Testing

/// What a DHT node accepts to store for others, and what it refuses.
@Suite struct RecordTests {
    let identity = IdentityKey()
    let now: UInt64 = 1_800_000_000
    let source = DHTAddress(ipv4: 198, 51, 100, 7, port: 4_000)

    func bundle(sequence: UInt64 = 1, lifetime: UInt64 = 86_400, value: [UInt8] = [1, 2, 3]) throws -> DHTRecord {
        try DHTRecord.sign(kind: .bundle, sequence: sequence, expires: now + lifetime, value: value, with: identity)
    }

    @Test func aSignedBundleIsStoredAtItsPeersKeyAndReadBack() throws {
        let record = try bundle()
        #expect(record.key == DHTRecord.bundleKey(of: identity.publicKey.peerID))
        let again = try DHTRecord(body: record.body, signature: record.signature)
        #expect(again == record, "parsed back from the exact bytes signed")
        var store = RecordStore()
        try store.put(record, from: source, now: now)
        #expect(store.get(record.key, now: now) == record)
        #expect(store.get(record.key, now: record.expires) == nil, "not served once expired")
        #expect(store.expire(now: record.expires) == 1 && store.count == 0)
    }

    @Test func aBadOrWrongPurposeSignatureOrAForeignKeyIsRefused() throws {
        let record = try bundle()
        var flipped = record.signature
        flipped[5] ^= 1
        #expect(throws: DHTRecordError.badSignature) { try DHTRecord(body: record.body, signature: flipped) }
        var body = record.body
        body[body.count - 1] ^= 1
        #expect(throws: DHTRecordError.badSignature) { try DHTRecord(body: body, signature: record.signature) }
        // The same body signed by the same identity, but for the presence purpose.
        let wrongPurpose = identity.signature(over: record.body, purpose: .presence)
        #expect(throws: DHTRecordError.badSignature) {
            try DHTRecord(body: record.body, signature: Array(wrongPurpose))
        }
        // A valid signature over a body whose key is someone else's bundle key.
        var foreign = record.body
        let other = DHTRecord.bundleKey(of: IdentityKey().publicKey.peerID).bytes
        foreign.replaceSubrange(2..<34, with: other)
        let signed = identity.signature(over: foreign, purpose: .dhtRecord)
        #expect(throws: DHTRecordError.wrongKey) { try DHTRecord(body: foreign, signature: Array(signed)) }
        #expect(throws: DHTRecordError.malformed) {
            try DHTRecord(body: Array(record.body.dropLast()), signature: record.signature)
        }
        #expect(throws: DHTRecordError.malformed) { try DHTRecord(body: [], signature: record.signature) }
    }

    @Test func expiredOverLongOversizedAndOlderRecordsAreRefused() throws {
        var store = RecordStore()
        let expired = try bundle(lifetime: 0)
        #expect(throws: DHTRecordError.expired) { try store.put(expired, from: source, now: now) }
        let tooLong = try bundle(lifetime: DHTRecordKind.bundle.maximumLifetime + 1)
        #expect(throws: DHTRecordError.lifetimeTooLong) { try store.put(tooLong, from: source, now: now) }
        #expect(throws: DHTRecordError.tooLarge) {
            try bundle(value: [UInt8](repeating: 0, count: DHTRecord.maximumValueBytes + 1))
        }
        let big = try bundle(value: [UInt8](repeating: 0, count: DHTRecord.maximumValueBytes))
        #expect(throws: DHTRecordError.tooLarge) { try DHTRecord(body: big.body + [0], signature: big.signature) }

        try store.put(try bundle(sequence: 5), from: source, now: now)
        #expect(throws: DHTRecordError.notNewer) { try store.put(try bundle(sequence: 5), from: source, now: now) }
        #expect(throws: DHTRecordError.notNewer) { try store.put(try bundle(sequence: 4), from: source, now: now) }
        let newer = try bundle(sequence: 6, value: [9])
        try store.put(newer, from: DHTAddress(ipv4: 203, 0, 113, 1, port: 1), now: now)
        #expect(store.get(newer.key, now: now)?.value == [9] && store.count == 1)
        // A sequence (signing time, ms) far ahead of the clock would lock out every later record.
        let ahead = (now + RecordStore.maximumClockAhead) * 1_000
        #expect(throws: DHTRecordError.fromTheFuture) {
            try store.put(try bundle(sequence: ahead + 1, value: [7]), from: source, now: now)
        }
        #expect(throws: DHTRecordError.fromTheFuture) {
            try store.put(try bundle(sequence: .max, value: [7]), from: source, now: now)
        }
        try store.put(try bundle(sequence: ahead, value: [8]), from: source, now: now)
        #expect(store.get(newer.key, now: now)?.value == [8])
    }

    @Test func quotasPerPublisherPerNetworkAndInAllHold() throws {
        var configuration = RecordStore.Configuration()
        configuration.perSubnet = 3
        configuration.capacity = 5
        var store = RecordStore(configuration: configuration)
        // Three publishers from one /24 fill its share; a fourth from there is refused.
        for index in 1...3 {
            let record = try DHTRecord.sign(
                kind: .bundle, sequence: 1, expires: now + 60, value: [], with: IdentityKey())
            try store.put(record, from: DHTAddress(ipv4: 198, 51, 100, UInt8(index), port: 1), now: now)
        }
        let fourth = try DHTRecord.sign(kind: .bundle, sequence: 1, expires: now + 60, value: [], with: IdentityKey())
        #expect(throws: DHTRecordError.overQuota) {
            try store.put(fourth, from: DHTAddress(ipv4: 198, 51, 100, 200, port: 1), now: now)
        }
        // From another network it is taken; then the store is full.
        try store.put(fourth, from: DHTAddress(ipv4: 192, 0, 2, 1, port: 1), now: now)
        try store.put(try bundle(), from: DHTAddress(ipv4: 192, 0, 2, 2, port: 1), now: now)
        let sixth = try DHTRecord.sign(kind: .bundle, sequence: 1, expires: now + 60, value: [], with: IdentityKey())
        #expect(throws: DHTRecordError.full) {
            try store.put(sixth, from: DHTAddress(ipv4: 10, 0, 0, 1, port: 1), now: now)
        }
        // A newer version of a stored record still replaces it when full.
        try store.put(try bundle(sequence: 2), from: DHTAddress(ipv4: 192, 0, 2, 2, port: 1), now: now)
        // Expiry frees room.
        #expect(store.expire(now: now + 60) == 4)
        try store.put(sixth, from: DHTAddress(ipv4: 10, 0, 0, 1, port: 1), now: now + 1)

        // A presence key (derived, not the identity) has its own key and purpose; one publisher
        // may hold at most perPublisher records.
        let presenceKey = Curve25519.Signing.PrivateKey()
        let presence = try DHTRecord.sign(
            kind: .presence, sequence: 1, expires: now + 3_600, value: [7], with: presenceKey)
        #expect(
            presence.key == DHTRecord.key(kind: .presence, publisher: Array(presenceKey.publicKey.rawRepresentation)))
        #expect(presence.key != DHTRecord.key(kind: .bundle, publisher: presence.publisher))
        var publisherLimit = RecordStore.Configuration()
        publisherLimit.perPublisher = 1
        var strict = RecordStore(configuration: publisherLimit)
        try strict.put(presence, from: source, now: now)
        let bundleBySamePublisher = try DHTRecord.sign(
            kind: .bundle, sequence: 1, expires: now + 60, value: [], with: presenceKey)
        #expect(throws: DHTRecordError.overQuota) { try strict.put(bundleBySamePublisher, from: source, now: now) }
    }
}
