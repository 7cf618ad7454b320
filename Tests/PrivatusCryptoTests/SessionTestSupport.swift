import Crypto
import Foundation
import PrivatusCore

@testable import PrivatusCrypto

/// Randomized tests replay exactly.
typealias SeededGenerator = SplitMix64

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
