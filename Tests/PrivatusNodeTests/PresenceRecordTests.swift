import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusDHT
import PrivatusWire
import Testing

@testable import PrivatusNode

/// What a contact accepts from a presence record it found with the user's secret.
@Suite struct PresenceRecordTests {
    let alice = IdentityKey()
    let secret = PresenceSecret()
    let epoch: UInt64 = 20_833

    /// A presence record under `secret` saying `addresses`, its contents signed by `signer`.
    func record(
        _ addresses: [String], signedBy signer: IdentityKey, forKeyOf keyEpoch: UInt64? = nil
    ) throws
        -> DHTRecord
    {
        var value = Privatus_Dht_V1_PresenceValue()
        value.addresses = addresses
        let body = try Array(value.serializedBytes() as [UInt8])
        let key = secret.recordKey(epoch: keyEpoch ?? epoch)
        var signed = Privatus_Dht_V1_SignedPresence()
        signed.body = Data(body)
        signed.identitySignature = signer.signature(over: key.bytes + body, purpose: .presenceValue)
        return try secret.record(value: try Array(signed.serializedBytes() as [UInt8]), epoch: epoch, sequence: 1)
    }

    @Test func onlyContentsSignedByTheUsersIdentityForThatRecordAreFollowed() throws {
        let identity = alice.publicKey
        let genuine = try record(["198.51.100.7:4000"], signedBy: alice)
        let opened = NodeDHT.presence(in: genuine, secret: secret, epoch: epoch, identity: identity)
        #expect(opened?.addresses == ["198.51.100.7:4000"])
        // Another contact holds the same secret: its record opens, but its contents are not
        // signed by Alice, so nobody follows them.
        let mallory = IdentityKey()
        let forged = try record(["203.0.113.66:4000"], signedBy: mallory)
        #expect(secret.open(forged, epoch: epoch) != nil, "the secret opens it")
        #expect(NodeDHT.presence(in: forged, secret: secret, epoch: epoch, identity: identity) == nil)
        // Alice's signed contents of another day replayed into today's record: refused too.
        let replayed = try record(["198.51.100.7:4000"], signedBy: alice, forKeyOf: epoch - 1)
        #expect(NodeDHT.presence(in: replayed, secret: secret, epoch: epoch, identity: identity) == nil)
    }

    @Test func addressesFromTheDHTAreIPLiteralsOnlyAndAtMostEight() {
        let mixed = ["evil.example:4000", "198.51.100.7:4000", "[2001:db8::1]:4001", "localhost:1", "junk"]
        #expect(NodeDHT.literals(mixed) == ["198.51.100.7:4000", "[2001:db8::1]:4001"])
        let many = (1...12).map { "198.51.100.\($0):4000" }
        #expect(NodeDHT.literals(many) == Array(many.prefix(8)))
    }
}
