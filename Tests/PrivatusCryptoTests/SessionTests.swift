import Crypto
import Foundation
import PrivatusCore
import Testing

@testable import PrivatusCrypto

@Suite struct PaddingTests {
    @Test(arguments: [
        0, 1, 158, 159, 160, 255, 256, 1000, 4095, 65534, 65535, 65536, 200_000, Padding.maximumPlaintext,
    ])
    func paddingRoundTripsAndHitsABucket(_ count: Int) throws {
        var generator = SeededGenerator(seed: UInt64(count))
        // Content ending in 0x80 and zeros must survive: the marker is the last non-zero byte.
        var plaintext = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        if count >= 2 {
            plaintext[count - 2] = 0x80
            plaintext[count - 1] = 0
        }
        let padded = try Padding.pad(plaintext)
        #expect(padded.count == Padding.bucket(for: count))
        #expect(padded.count > count)
        #expect(try Padding.unpad(padded) == plaintext)
    }

    @Test func bucketsAre160ThenPowersOfTwoThenMultiplesOf64KiB() {
        #expect(Padding.bucket(for: 0) == 160)
        #expect(Padding.bucket(for: 159) == 160)
        #expect(Padding.bucket(for: 160) == 256)
        #expect(Padding.bucket(for: 1000) == 1024)
        #expect(Padding.bucket(for: 65535) == 65536)
        #expect(Padding.bucket(for: 65536) == 131072)
    }

    @Test func malformedPaddingAndOversizeAreRefused() {
        #expect(throws: SessionError.badPadding) { try Padding.unpad([1, 2, 3, 0, 0]) }
        #expect(throws: SessionError.badPadding) { try Padding.unpad([0, 0, 0]) }
        #expect(throws: SessionError.plaintextTooLarge) {
            try Padding.pad([UInt8](repeating: 0, count: Padding.maximumPlaintext + 1))
        }
    }
}

@Suite struct SafetyNumberTests {
    @Test func bothSidesSeeTheSameSixtyDigits() {
        let alice = IdentityKey().publicKey
        let bob = IdentityKey().publicKey
        let seenByAlice = SafetyNumber(local: alice, remote: bob)
        let seenByBob = SafetyNumber(local: bob, remote: alice)
        #expect(seenByAlice.digits == seenByBob.digits)
        #expect(seenByAlice.digits.count == 60 && seenByAlice.digits.allSatisfy(\.isNumber))
        #expect(seenByAlice.description.split(separator: " ").count == 12)
        #expect(SafetyNumber(local: alice, remote: IdentityKey().publicKey).digits != seenByAlice.digits)
    }

    @Test func scannedCodeMatchesOnlyTheOtherSidesScreen() {
        let alice = IdentityKey().publicKey
        let bob = IdentityKey().publicKey
        let seenByAlice = SafetyNumber(local: alice, remote: bob)
        let seenByBob = SafetyNumber(local: bob, remote: alice)
        #expect(seenByAlice.matches(scanned: seenByBob.scannable))
        #expect(seenByBob.matches(scanned: seenByAlice.scannable))
        #expect(!seenByAlice.matches(scanned: seenByAlice.scannable))
        let mallory = SafetyNumber(local: IdentityKey().publicKey, remote: alice)
        #expect(!seenByAlice.matches(scanned: mallory.scannable))
        #expect(!seenByAlice.matches(scanned: "garbage"))
    }

    @Test func digitsFollowSignalsConstruction() throws {
        // Recomputed here step by step from the definition, for the RFC 8032 test key.
        let key = try IdentityKey(
            seed: Hex.decodeLowercase("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")!)
        let raw = Array(key.publicKey.rawRepresentation)
        var hash = [0, 0] + raw + key.publicKey.peerID.bytes
        for _ in 0..<5200 { hash = Array(SHA512.hash(data: hash + raw)) }
        let groups = (0..<6).map { chunk in
            hash[(chunk * 5)..<(chunk * 5 + 5)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } % 100_000
        }
        let expected = groups.map { String(format: "%05llu", $0) }.joined()
        #expect(SafetyNumber.displayDigits(SafetyNumber.fingerprint(key.publicKey)) == expected)
    }
}

@Suite struct BundleTests {
    static let now = Pair.start

    func bundle(_ mutate: (inout PrekeyBundleParts) -> Void = { _ in }) throws -> (IdentityKeys, PrekeyBundle) {
        let keys = IdentityKeys()
        let store = try PrekeyStore(identity: keys.identity, now: Self.now)
        var parts = PrekeyBundleParts(store.bundle(keys: keys, withOneTimePrekey: true))
        mutate(&parts)
        return (keys, parts.bundle)
    }

    @Test func freshBundleVerifies() throws {
        let (_, bundle) = try bundle()
        #expect(throws: Never.self) { try bundle.verified(now: Self.now) }
        #expect(throws: Never.self) { try bundle.verified(now: Self.now + SignedPrekey.acceptedFor - 1) }
    }

    @Test func expiredSignedPrekeyIsRefused() throws {
        let (_, bundle) = try bundle()
        #expect(throws: SessionError.prekeyExpired) { try bundle.verified(now: Self.now + SignedPrekey.acceptedFor) }
    }

    @Test func expiryTooFarAheadIsRefused() throws {
        let identity = IdentityKey()
        let key = Curve25519.KeyAgreement.PrivateKey().publicKey
        let record = SignedPrekey(
            purpose: .signedPrekey, id: 1, expiresAt: Self.now + 90 * 24 * 3600,
            publicKey: Array(key.rawRepresentation), identity: identity
        )
        #expect(throws: SessionError.prekeyExpired) {
            try record.verify(purpose: .signedPrekey, signedBy: identity.publicKey, now: Self.now)
        }
    }

    @Test func wrongPurposeOrForgedSignaturesAreRefused() throws {
        // The PQ prekey record presented as the signed prekey: right signer, wrong purpose.
        let (_, swapped) = try bundle { $0.signedPrekey = $0.pqPrekey }
        #expect(throws: SessionError.badSignature) { try swapped.verified(now: Self.now) }
        // A signed prekey re-signed for the pq-prekey purpose but labelled signed-prekey.
        let (_, relabelled) = try bundle { parts in
            let record = parts.signedPrekey
            parts.signedPrekey = SignedPrekey(
                purpose: .signedPrekey, id: record.id, expiresAt: record.expiresAt,
                publicKey: record.publicKey, signature: parts.pqPrekey.signature
            )
        }
        #expect(throws: SessionError.badSignature) { try relabelled.verified(now: Self.now) }
        // Another identity's signed prekey.
        let (_, foreign) = try bundle { parts in
            let other = try! PrekeyStore(identity: IdentityKey(), now: Self.now)
            parts.signedPrekey = other.bundle(keys: IdentityKeys(), withOneTimePrekey: false).signedPrekey
        }
        #expect(throws: SessionError.badSignature) { try foreign.verified(now: Self.now) }
        // The identity-DH binding of someone else.
        let (_, wrongDH) = try bundle { $0.identityDH = IdentityKeys().publicIdentity.identityDH }
        #expect(throws: SessionError.badSignature) { try wrongDH.verified(now: Self.now) }
        // The envelope key's record in the envelope slot with a flipped key byte.
        let (_, tampered) = try bundle { parts in
            var key = parts.envelopeKey.publicKey
            key[0] ^= 1
            parts.envelopeKey = SignedPrekey(
                purpose: .envelopeKey, id: parts.envelopeKey.id, expiresAt: parts.envelopeKey.expiresAt,
                publicKey: key, signature: parts.envelopeKey.signature
            )
        }
        #expect(throws: SessionError.badSignature) { try tampered.verified(now: Self.now) }
    }
}

/// A bundle taken apart, to build altered ones in tests.
struct PrekeyBundleParts {
    var identityKey: IdentityPublicKey
    var identityDH: KeyBinding
    var signedPrekey: SignedPrekey
    var pqPrekey: SignedPrekey
    var envelopeKey: SignedPrekey
    var oneTimePrekey: OneTimePrekey?

    init(_ bundle: PrekeyBundle) {
        identityKey = bundle.identityKey
        identityDH = bundle.identityDH
        signedPrekey = bundle.signedPrekey
        pqPrekey = bundle.pqPrekey
        envelopeKey = bundle.envelopeKey
        oneTimePrekey = bundle.oneTimePrekey
    }

    var bundle: PrekeyBundle {
        PrekeyBundle(
            identityKey: identityKey, identityDH: identityDH, signedPrekey: signedPrekey, pqPrekey: pqPrekey,
            envelopeKey: envelopeKey, oneTimePrekey: oneTimePrekey
        )
    }
}
