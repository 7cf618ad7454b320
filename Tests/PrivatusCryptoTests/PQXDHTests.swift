import Crypto
import Foundation
import PrivatusCore
import Testing

@testable import PrivatusCrypto

/// A fixed (ciphertext, secret), as the vectors inject.
struct FixedKEM: KEMEncapsulating {
    let ciphertext: [UInt8]
    let secret: [UInt8]
    func encapsulate(to key: MLKEM768.PublicKey) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8]) {
        (ciphertext, secret)
    }
}

@Suite struct PQXDHTests {
    static let now = Pair.start

    func setUp(oneTime: Bool) throws -> (IdentityKeys, IdentityKeys, PrekeyStore, PrekeyBundle) {
        let alice = IdentityKeys()
        let bob = IdentityKeys()
        let store = try PrekeyStore(identity: bob.identity, now: Self.now)
        return (alice, bob, store, store.bundle(keys: bob, withOneTimePrekey: oneTime))
    }

    @Test(arguments: [true, false])
    func bothRolesDeriveTheSameSecretAndAssociatedData(oneTime: Bool) throws {
        let (alice, bob, store, bundle) = try setUp(oneTime: oneTime)
        let initiation = try PQXDH.initiate(from: alice, to: bundle, now: Self.now)
        #expect(initiation.header.oneTimePrekeyID == (oneTime ? bundle.oneTimePrekey?.id : nil))
        let generation = store.generations.last!
        let response = try PQXDH.respond(
            as: bob,
            to: initiation.header,
            signedPrekey: generation.signedPrekey,
            pqPrekey: generation.pqPrekey,
            oneTimePrekey: initiation.header.oneTimePrekeyID.map { store.oneTime[$0]! }
        )
        #expect(response.sharedSecret == initiation.sharedSecret)
        #expect(response.associatedData == initiation.associatedData)
        #expect(response.initiator == alice.identity.publicKey)
        let expectedAD =
            [UInt8(1)] + Array(alice.identity.publicKey.rawRepresentation)
            + Array(alice.identityDH.publicKey.rawRepresentation)
            + Array(bob.identity.publicKey.rawRepresentation) + Array(bob.identityDH.publicKey.rawRepresentation)
        #expect(initiation.associatedData == expectedAD)
        let (decoded, rest) = try InitialHeader.decode(initiation.header.encoded)
        #expect(decoded == initiation.header && rest.isEmpty)
    }

    @Test func secretIsTheHKDFOfTheConcatenatedAgreements() throws {
        // Recompute SK from the definition with fixed ephemeral and KEM outputs.
        let (alice, bob, store, bundle) = try setUp(oneTime: true)
        let ephemeral = Curve25519.KeyAgreement.PrivateKey()
        let kem = FixedKEM(ciphertext: [UInt8](repeating: 7, count: 1088), secret: [UInt8](repeating: 9, count: 32))
        let initiation = try PQXDH.initiate(from: alice, to: bundle, now: Self.now, ephemeral: ephemeral, kem: kem)
        let spk = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: bundle.signedPrekey.publicKey)
        let otpk = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: bundle.oneTimePrekey!.publicKey)
        func dh(_ a: Curve25519.KeyAgreement.PrivateKey, _ b: Curve25519.KeyAgreement.PublicKey) throws -> [UInt8] {
            try a.sharedSecretFromKeyAgreement(with: b).withUnsafeBytes { Array($0) }
        }
        let ikm =
            [UInt8](repeating: 0xff, count: 32) + (try dh(alice.identityDH, spk))
            + (try dh(ephemeral, bob.identityDH.publicKey))
            + (try dh(ephemeral, spk)) + (try dh(ephemeral, otpk)) + [UInt8](repeating: 9, count: 32)
        let expected = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: ikm), salt: [UInt8](repeating: 0, count: 32),
            info: Array("Privatus-v1_X25519_SHA-256_ML-KEM-768".utf8), outputByteCount: 32
        ).withUnsafeBytes { Array($0) }
        #expect(initiation.sharedSecret == expected)
        _ = store
    }

    @Test func lowOrderPrekeyIsRefused() throws {
        let (alice, bob, store, bundle) = try setUp(oneTime: false)
        // A validly signed all-zero X25519 key: the DH output is all zeros.
        let zero = SignedPrekey(
            purpose: .signedPrekey, id: bundle.signedPrekey.id, expiresAt: bundle.signedPrekey.expiresAt,
            publicKey: [UInt8](repeating: 0, count: 32), identity: bob.identity
        )
        var parts = PrekeyBundleParts(bundle)
        parts.signedPrekey = zero
        #expect(throws: SessionError.lowOrderPoint) { try PQXDH.initiate(from: alice, to: parts.bundle, now: Self.now) }
        _ = store
    }

    @Test func initiatorWithAnUnboundIdentityDHKeyIsRefused() throws {
        let (alice, bob, store, bundle) = try setUp(oneTime: false)
        var keys = SystemRatchetKeys()
        let (_, message) = try SessionStart.initiate(
            keys: alice, bundle: bundle, firstPlaintext: [1], now: Self.now, ratchetKeys: &keys)
        // Replace the initiator's identity-DH signature (offset 65) with a signature for another purpose.
        var forged = message
        let wrongPurpose = alice.identity.signature(
            over: alice.identityDH.publicKey.rawRepresentation, purpose: .noiseStatic)
        forged.replaceSubrange(65..<129, with: wrongPurpose)
        #expect(throws: SessionError.badSignature) {
            try store.acceptingInitialMessage(forged, keys: bob, now: Self.now, ratchetKeys: &keys)
        }
    }

    @Test func repeatedInitialMessageIsRefusedAndOneTimePrekeysAreUsedOnce() throws {
        let (alice, bob, store, bundle) = try setUp(oneTime: true)
        var keys = SystemRatchetKeys()
        let (_, message) = try SessionStart.initiate(
            keys: alice, bundle: bundle, firstPlaintext: Array("hi".utf8), now: Self.now, ratchetKeys: &keys)
        let accepted = try store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys)
        #expect(accepted.plaintext == Array("hi".utf8))
        #expect(accepted.store.oneTimeCount == store.oneTimeCount - 1)
        #expect(throws: SessionError.replayedInitialMessage) {
            try accepted.store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys)
        }
        // A second sender given the same (now consumed) one-time prekey is refused, not silently
        // downgraded.
        let (_, second) = try SessionStart.initiate(
            keys: IdentityKeys(), bundle: bundle, firstPlaintext: [1], now: Self.now, ratchetKeys: &keys)
        #expect(throws: SessionError.unknownPrekey) {
            try accepted.store.acceptingInitialMessage(second, keys: bob, now: Self.now, ratchetKeys: &keys)
        }
    }

    @Test func firstMessageWithoutOneTimePrekeyIsAcceptedOnce() throws {
        let (alice, bob, store, bundle) = try setUp(oneTime: false)
        var keys = SystemRatchetKeys()
        let (_, message) = try SessionStart.initiate(
            keys: alice, bundle: bundle, firstPlaintext: [42], now: Self.now, ratchetKeys: &keys)
        let accepted = try store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys)
        #expect(accepted.plaintext == [42])
        #expect(throws: SessionError.replayedInitialMessage) {
            try accepted.store.acceptingInitialMessage(message, keys: bob, now: Self.now + 60, ratchetKeys: &keys)
        }
    }

    @Test func failedInitialMessageLeavesNoTrace() throws {
        let (alice, bob, store, bundle) = try setUp(oneTime: true)
        var keys = SystemRatchetKeys()
        let (_, message) = try SessionStart.initiate(
            keys: alice, bundle: bundle, firstPlaintext: [1, 2], now: Self.now, ratchetKeys: &keys)
        var altered = message
        altered[altered.count - 1] ^= 1
        #expect(throws: SessionError.decryptionFailed) {
            try store.acceptingInitialMessage(altered, keys: bob, now: Self.now, ratchetKeys: &keys)
        }
        // The genuine message is still accepted: nothing was recorded for the forgery.
        let accepted = try store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys)
        #expect(accepted.plaintext == [1, 2])
    }

    @Test func prekeysRotateWeeklyAndAreKeptThirtyDaysAfter() throws {
        let bob = IdentityKeys()
        var store = try PrekeyStore(identity: bob.identity, now: Self.now)
        let first = store.bundle(keys: bob, withOneTimePrekey: false).signedPrekey.id
        #expect(try !store.maintain(identity: bob.identity, now: Self.now + 6 * 24 * 3600))
        #expect(try store.maintain(identity: bob.identity, now: Self.now + 7 * 24 * 3600))
        let second = store.bundle(keys: bob, withOneTimePrekey: false).signedPrekey.id
        #expect(second != first)
        #expect(store.generations.map(\.signedPrekeyRecord.id).contains(first))
        try store.maintain(identity: bob.identity, now: Self.now + 7 * 24 * 3600 + PrekeyStore.retentionAfterRotation)
        #expect(!store.generations.map(\.signedPrekeyRecord.id).contains(first))
    }

    @Test func oneTimePoolIsReplenishedBelowTheLowMark() throws {
        let bob = IdentityKeys()
        var store = try PrekeyStore(identity: bob.identity, now: Self.now)
        #expect(store.oneTimeCount == PrekeyStore.oneTimeTarget)
        store.oneTime = store.oneTime.filter { $0.key % 10 == 0 }
        #expect(store.oneTimeCount < PrekeyStore.oneTimeLowMark)
        #expect(try store.maintain(identity: bob.identity, now: Self.now + 1))
        #expect(store.oneTimeCount == PrekeyStore.oneTimeTarget)
    }
}
