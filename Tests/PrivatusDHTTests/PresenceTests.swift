import Crypto
import PrivatusCore
import PrivatusDHT
import Testing

/// Presence records: stored by any node, found and read only with the secret.
@Suite struct PresenceTests {
    let secret = PresenceSecret()
    let now: UInt64 = 1_800_000_000
    var epoch: UInt64 { PresenceSecret.epoch(at: now) }
    let source = DHTAddress(ipv4: 198, 51, 100, 7, port: 4_000)
    let value = Array("198.51.100.7:4000".utf8)

    @Test func aContactWithTheSecretFindsAndReadsTheRecordWhichAnyNodeCanStore() throws {
        let record = try secret.record(value: value, epoch: epoch, sequence: now * 1_000)
        #expect(record.kind == .presence && record.key == secret.recordKey(epoch: epoch))
        // A storing node checks it like any record, and keeps it.
        var store = RecordStore()
        try store.put(record, from: source, now: now)
        let stored = try #require(store.get(secret.recordKey(epoch: epoch), now: now))
        // A contact holding the secret (its own copy of the bytes) opens it.
        let contactsCopy = try #require(PresenceSecret(bytes: secret.bytes))
        #expect(contactsCopy.open(stored, epoch: epoch) == value)
        #expect(record.expires > now && record.expires <= now + DHTRecordKind.presence.maximumLifetime)
    }

    @Test func withoutTheSecretTheRecordCanBeNeitherFoundNorRead() throws {
        let record = try secret.record(value: value, epoch: epoch, sequence: now * 1_000)
        let stranger = PresenceSecret()
        #expect(stranger.recordKey(epoch: epoch) != record.key, "another secret looks elsewhere")
        #expect(stranger.open(record, epoch: epoch) == nil)
        // What a storing node sees: no address, no identity.
        #expect(!record.body.containsSubsequence(value))
        #expect(!record.value.containsSubsequence(value))
        // Each day's record is at another key, signed by another key: two days cannot be linked.
        let tomorrow = try secret.record(value: value, epoch: epoch + 1, sequence: (now + 86_400) * 1_000)
        #expect(tomorrow.key != record.key && tomorrow.publisher != record.publisher)
        #expect(secret.open(tomorrow, epoch: epoch) == nil, "a record is read only as its own day's")
        #expect(secret.open(tomorrow, epoch: epoch + 1) == value)
    }

    @Test func aTamperedOrForeignRecordIsNotOpened() throws {
        let record = try secret.record(value: value, epoch: epoch, sequence: now * 1_000)
        // The sealed value changed: the signature no longer holds.
        var body = record.body
        body[body.count - 1] ^= 1
        let tampered = try DHTRecord(unverifiedBody: body, signature: record.signature)
        #expect(secret.open(tampered, epoch: epoch) == nil)
        // A valid record sealed under another secret, even with the same value.
        let other = try PresenceSecret().record(value: value, epoch: epoch, sequence: now * 1_000)
        #expect(secret.open(other, epoch: epoch) == nil)
        // A bundle record is not a presence record.
        let bundle = try DHTRecord.sign(
            kind: .bundle, sequence: now, expires: now + 60, value: value, with: secret.signingKey(epoch: epoch))
        #expect(secret.open(bundle, epoch: epoch) == nil)
        #expect(PresenceSecret(bytes: Array(secret.bytes.dropLast())) == nil)
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}
