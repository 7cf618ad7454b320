import Crypto
import Foundation
import PrivatusCore
import Testing

@testable import PrivatusCrypto

@Suite struct PeerSessionsTests {
    static let now = Pair.start

    struct User {
        var keys = IdentityKeys()
        var prekeys: PrekeyStore
        var sessions = PeerSessions()

        init() throws {
            prekeys = try PrekeyStore(identity: keys.identity, now: PeerSessionsTests.now)
        }

        var bundle: PrekeyBundle { prekeys.bundle(keys: keys, withOneTimePrekey: true) }

        mutating func initiate(to peer: User, text: String, randomness: inout SystemRatchetKeys) throws -> [UInt8] {
            let (session, message) = try SessionStart.initiate(
                keys: keys, bundle: peer.bundle, firstPlaintext: Array(text.utf8), now: PeerSessionsTests.now,
                ratchetKeys: &randomness
            )
            sessions = sessions.adding(session)
            return message
        }

        mutating func accept(_ initial: [UInt8], randomness: inout SystemRatchetKeys) throws -> String {
            let accepted = try prekeys.acceptingInitialMessage(
                initial, keys: keys, now: PeerSessionsTests.now, ratchetKeys: &randomness)
            prekeys = accepted.store
            sessions = sessions.adding(accepted.session)
            return String(decoding: accepted.plaintext, as: UTF8.self)
        }

        mutating func send(_ text: String) throws -> RatchetMessage {
            let (next, message) = try sessions.encrypting(Array(text.utf8))
            sessions = next
            return message
        }

        mutating func receive(_ message: RatchetMessage, randomness: inout SystemRatchetKeys) throws -> String {
            let (next, plaintext) = try sessions.decrypting(message, now: PeerSessionsTests.now, keys: &randomness)
            sessions = next
            return String(decoding: plaintext, as: UTF8.self)
        }
    }

    @Test func simultaneousInitiationConvergesOnOneSession() throws {
        var randomness = SystemRatchetKeys()
        var alice = try User()
        var bob = try User()
        let fromAlice = try alice.initiate(to: bob, text: "hi bob", randomness: &randomness)
        let fromBob = try bob.initiate(to: alice, text: "hi alice", randomness: &randomness)
        #expect(try alice.accept(fromBob, randomness: &randomness) == "hi alice")
        #expect(try bob.accept(fromAlice, randomness: &randomness) == "hi bob")
        #expect(alice.sessions.sessions.count == 2 && bob.sessions.sessions.count == 2)

        // Each now sends on the session the other initiated; the first one decrypted wins on both.
        #expect(try bob.receive(try alice.send("a1"), randomness: &randomness) == "a1")
        #expect(try alice.receive(try bob.send("b1"), randomness: &randomness) == "b1")
        #expect(try bob.receive(try alice.send("a2"), randomness: &randomness) == "a2")
        let aliceActive = alice.sessions.sessions[0].associatedData
        let bobActive = bob.sessions.sessions[0].associatedData
        #expect(aliceActive == bobActive, "both front sessions come from the same PQXDH")
        for round in 0..<5 {
            #expect(try alice.receive(try bob.send("b\(round)"), randomness: &randomness) == "b\(round)")
            #expect(try bob.receive(try alice.send("a\(round)"), randomness: &randomness) == "a\(round)")
            #expect(alice.sessions.sessions[0].associatedData == aliceActive)
            #expect(bob.sessions.sessions[0].associatedData == bobActive)
        }
    }

    @Test func newInitialMessageHealsALostSession() throws {
        var randomness = SystemRatchetKeys()
        var alice = try User()
        var bob = try User()
        #expect(
            try bob.accept(try alice.initiate(to: bob, text: "first", randomness: &randomness), randomness: &randomness)
                == "first")
        #expect(try alice.receive(try bob.send("reply"), randomness: &randomness) == "reply")

        // Alice loses every session (say, a restore from an old backup) and starts again.
        alice.sessions = PeerSessions()
        let stale = try bob.send("sent into the void")
        #expect(throws: SessionError.self) { try alice.receive(stale, randomness: &randomness) }
        #expect(
            try bob.accept(try alice.initiate(to: bob, text: "again", randomness: &randomness), randomness: &randomness)
                == "again")
        #expect(try alice.receive(try bob.send("healed"), randomness: &randomness) == "healed")
        #expect(try bob.receive(try alice.send("thanks"), randomness: &randomness) == "thanks")
    }

    @Test func onlyFiveSessionsAreKept() throws {
        var randomness = SystemRatchetKeys()
        var alice = try User()
        var bob = try User()
        for index in 0..<7 {
            _ = try bob.accept(
                try alice.initiate(to: bob, text: "\(index)", randomness: &randomness), randomness: &randomness)
        }
        #expect(bob.sessions.sessions.count == PeerSessions.maximumSessions)
        #expect(alice.sessions.sessions.count == PeerSessions.maximumSessions)
    }
}
