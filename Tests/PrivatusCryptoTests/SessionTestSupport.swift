import Crypto
import Foundation

@testable import PrivatusCrypto

/// A seeded generator (SplitMix64) so randomized tests replay exactly.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Two users with keys, prekeys and an established session, for session tests.
struct Pair {
    static let start: UInt64 = 1_800_000_000

    var aliceKeys = IdentityKeys()
    var bobKeys = IdentityKeys()
    var bobPrekeys: PrekeyStore
    var alice: RatchetSession
    var bob: RatchetSession
    var keys = SystemRatchetKeys()

    init(firstMessage: String = "hello", oneTime: Bool = true) throws {
        bobPrekeys = try PrekeyStore(identity: bobKeys.identity, now: Self.start)
        let bundle = bobPrekeys.bundle(keys: bobKeys, withOneTimePrekey: oneTime)
        let (alice, initial) = try SessionStart.initiate(
            keys: aliceKeys,
            bundle: bundle,
            firstPlaintext: Array(firstMessage.utf8),
            now: Self.start,
            ratchetKeys: &keys
        )
        let accepted = try bobPrekeys.acceptingInitialMessage(
            initial, keys: bobKeys, now: Self.start, ratchetKeys: &keys)
        guard accepted.plaintext == Array(firstMessage.utf8) else { throw SessionError.decryptionFailed }
        self.alice = alice
        self.bob = accepted.session
        self.bobPrekeys = accepted.store
    }
}

extension RatchetSession {
    func encrypting(_ text: String) throws -> (session: RatchetSession, message: RatchetMessage) {
        try encrypting(Array(text.utf8))
    }
}
