import Crypto
import Foundation
import PrivatusCore
import Testing

@testable import PrivatusCrypto

@Suite struct RatchetTests {
    static let now = Pair.start

    @Test func alternatingConversationDecryptsInBothDirections() throws {
        var pair = try Pair()
        for round in 0..<5 {
            let (alice, toBob) = try pair.alice.encrypting("a\(round)")
            pair.alice = alice
            let (bob, text) = try pair.bob.decrypting(toBob, now: Self.now, keys: &pair.keys)
            pair.bob = bob
            #expect(text == Array("a\(round)".utf8))
            let (bob2, toAlice) = try pair.bob.encrypting("b\(round)")
            pair.bob = bob2
            let (alice2, reply) = try pair.alice.decrypting(toAlice, now: Self.now, keys: &pair.keys)
            pair.alice = alice2
            #expect(reply == Array("b\(round)".utf8))
        }
        // Each reply after a received message is a DH step: five on each side.
        #expect(pair.alice.step == 5 && pair.bob.step == 5)
    }

    @Test func responderCannotSendBeforeItHasReceived() throws {
        let bob = IdentityKeys()
        let session = RatchetSession.responder(
            sharedSecret: [UInt8](repeating: 1, count: 32), associatedData: [1], signedPrekey: bob.identityDH
        )
        #expect(throws: SessionError.cannotSendYet) { try session.encrypting("x") }
    }

    @Test func outOfOrderMessagesDecryptThroughSkippedKeys() throws {
        var pair = try Pair()
        var messages: [RatchetMessage] = []
        for index in 0..<5 {
            let (next, message) = try pair.alice.encrypting("m\(index)")
            pair.alice = next
            messages.append(message)
        }
        for index in [3, 0, 4, 2, 1] {
            let (bob, text) = try pair.bob.decrypting(messages[index], now: Self.now, keys: &pair.keys)
            pair.bob = bob
            #expect(text == Array("m\(index)".utf8))
        }
        #expect(pair.bob.skipped.isEmpty)
    }

    @Test func replayedAndAlteredMessagesAreRefusedWithStateUnchanged() throws {
        var pair = try Pair()
        let (alice, first) = try pair.alice.encrypting("one")
        let (alice2, second) = try alice.encrypting("two")
        pair.alice = alice2
        let (bob, _) = try pair.bob.decrypting(second, now: Self.now, keys: &pair.keys)  // "one" is now skipped
        pair.bob = bob
        let before = pair.bob.serialized
        #expect(throws: SessionError.decryptionFailed) {
            try pair.bob.decrypting(second, now: Self.now, keys: &pair.keys)
        }
        #expect(pair.bob.serialized == before)
        var tampered = first
        tampered = RatchetMessage(
            header: first.header,
            ciphertext: first.ciphertext.enumerated().map { $0.offset == 3 ? $0.element ^ 1 : $0.element })
        #expect(throws: SessionError.decryptionFailed) {
            try pair.bob.decrypting(tampered, now: Self.now, keys: &pair.keys)
        }
        let alteredHeader = RatchetMessage(
            header: RatchetHeader(ratchetKey: first.header.ratchetKey, previousChainLength: 1, messageNumber: 0),
            ciphertext: first.ciphertext
        )
        #expect(throws: SessionError.decryptionFailed) {
            try pair.bob.decrypting(alteredHeader, now: Self.now, keys: &pair.keys)
        }
        #expect(pair.bob.serialized == before)
        // The genuine skipped message still decrypts, once.
        let (bob2, text) = try pair.bob.decrypting(first, now: Self.now, keys: &pair.keys)
        #expect(text == Array("one".utf8))
        #expect(throws: SessionError.decryptionFailed) { try bob2.decrypting(first, now: Self.now, keys: &pair.keys) }
    }

    @Test func messagesFromAnotherSessionAreRefused() throws {
        var pair = try Pair()
        var other = try Pair()
        let (_, foreign) = try other.alice.encrypting("not for you")
        let before = pair.bob.serialized
        #expect(throws: SessionError.decryptionFailed) {
            try pair.bob.decrypting(foreign, now: Self.now, keys: &pair.keys)
        }
        #expect(pair.bob.serialized == before)
        _ = other.keys.nextKeyPair()
    }

    @Test func skippingMoreThanMaxSkipIsRefusedBeforeDerivingKeys() throws {
        var pair = try Pair()
        var alice = pair.alice
        var last: RatchetMessage?
        for _ in 0...(Int(RatchetSession.maximumSkip) + 1) {
            let (next, message) = try alice.encrypting("x")
            alice = next
            last = message
        }
        let before = pair.bob.serialized
        #expect(throws: SessionError.tooManySkippedMessages) {
            try pair.bob.decrypting(last!, now: Self.now, keys: &pair.keys)
        }
        #expect(pair.bob.serialized == before)
        #expect(pair.bob.skipped.isEmpty)
    }

    @Test func exactlyMaxSkipIsAccepted() throws {
        var pair = try Pair()
        var alice = pair.alice
        var last: RatchetMessage?
        for _ in 0...Int(RatchetSession.maximumSkip) {
            let (next, message) = try alice.encrypting("x")
            alice = next
            last = message
        }
        let (bob, _) = try pair.bob.decrypting(last!, now: Self.now, keys: &pair.keys)
        #expect(bob.skipped.count == Int(RatchetSession.maximumSkip))
    }

    @Test func skippedKeysExpireAfterSevenDays() throws {
        var pair = try Pair()
        let (alice, late) = try pair.alice.encrypting("late")
        let (alice2, onTime) = try alice.encrypting("on time")
        pair.alice = alice2
        let (bob, _) = try pair.bob.decrypting(onTime, now: Self.now, keys: &pair.keys)
        #expect(bob.skipped.count == 1)
        #expect(throws: Never.self) {
            try bob.decrypting(late, now: Self.now + RatchetSession.skippedKeyLifetime - 1, keys: &pair.keys)
        }
        #expect(throws: SessionError.decryptionFailed) {
            try bob.decrypting(late, now: Self.now + RatchetSession.skippedKeyLifetime, keys: &pair.keys)
        }
    }

    @Test func skippedKeysExpireAfterFiveRatchetSteps() throws {
        var pair = try Pair()
        let (aliceAfterLate, late) = try pair.alice.encrypting("late")
        pair.alice = aliceAfterLate
        var delivered = 0
        for round in 0..<6 {
            let (alice, message) = try pair.alice.encrypting("a\(round)")
            pair.alice = alice
            pair.bob = try pair.bob.decrypting(message, now: Self.now, keys: &pair.keys).session
            let (bob, reply) = try pair.bob.encrypting("b\(round)")
            pair.bob = bob
            pair.alice = try pair.alice.decrypting(reply, now: Self.now, keys: &pair.keys).session
            delivered += 1
            let stepsSince = pair.bob.step - 1
            if stepsSince < RatchetSession.skippedKeyMaximumSteps {
                #expect(throws: Never.self, "round \(round)") {
                    try pair.bob.decrypting(late, now: Self.now, keys: &pair.keys)
                }
            } else {
                #expect(throws: SessionError.decryptionFailed, "round \(round)") {
                    try pair.bob.decrypting(late, now: Self.now, keys: &pair.keys)
                }
            }
        }
        #expect(delivered == 6)
    }

    @Test func storedSkippedKeysAreCapped() throws {
        var pair = try Pair()
        // Three chains of 1,000 skipped keys each: only the newest 2,000 keys are kept.
        for _ in 0..<3 {
            var alice = pair.alice
            var last: RatchetMessage?
            for _ in 0...Int(RatchetSession.maximumSkip) {
                let (next, message) = try alice.encrypting("x")
                alice = next
                last = message
            }
            pair.alice = alice
            pair.bob = try pair.bob.decrypting(last!, now: Self.now, keys: &pair.keys).session
            let (bob, reply) = try pair.bob.encrypting("r")
            pair.bob = bob
            pair.alice = try pair.alice.decrypting(reply, now: Self.now, keys: &pair.keys).session
        }
        #expect(pair.bob.skipped.count == RatchetSession.maximumStoredSkippedKeys)
    }

    @Test func serializedStateContinuesExactly() throws {
        var pair = try Pair()
        let (alice, m1) = try pair.alice.encrypting("1")
        let (alice2, m2) = try alice.encrypting("2")
        pair.alice = alice2
        pair.bob = try pair.bob.decrypting(m2, now: Self.now, keys: &pair.keys).session
        let restored = try RatchetSession(serialized: pair.bob.serialized)
        #expect(restored.serialized == pair.bob.serialized)
        #expect(try restored.decrypting(m1, now: Self.now, keys: &pair.keys).plaintext == Array("1".utf8))
        let (bob, reply) = try restored.encrypting("back")
        _ = bob
        #expect(try pair.alice.decrypting(reply, now: Self.now, keys: &pair.keys).plaintext == Array("back".utf8))
    }

    @Test func damagedStateIsRefused() throws {
        let pair = try Pair()
        let bytes = pair.bob.serialized
        #expect(throws: SessionError.malformedState) { try RatchetSession(serialized: Array(bytes.dropLast())) }
        #expect(throws: SessionError.malformedState) { try RatchetSession(serialized: bytes + [0]) }
        var version = bytes
        version[0] = 9
        #expect(throws: SessionError.malformedState) { try RatchetSession(serialized: version) }
        #expect(throws: SessionError.malformedState) {
            try RatchetSession(serialized: [UInt8](repeating: 1, count: RatchetSession.maximumSerializedSize + 1))
        }
    }

    /// 1,000 messages, each side sending at random, delivered in random order with some dropped
    /// and some duplicated: every first delivery decrypts to its text, every duplicate is refused
    /// and leaves the state unchanged. Delays stay within the skipped-key rules (fewer than five
    /// DH steps, under 7 days), so the spec says every delivered message must decrypt.
    @Test func thousandRandomlyInterleavedReorderedAndDroppedMessages() throws {
        var pair = try Pair()
        var generator = SeededGenerator(seed: 20261129)
        struct InFlight {
            var message: RatchetMessage
            var text: [UInt8]
            /// The receiver's DH step count when this was sent.
            var receiverStep: UInt64
        }
        var toBob: [InFlight] = []
        var toAlice: [InFlight] = []
        var decrypted = 0
        var refusedDuplicates = 0
        var dropped = 0

        func deliver(
            _ queue: inout [InFlight], to session: inout RatchetSession, keys: inout SystemRatchetKeys, flushAll: Bool
        ) throws {
            while !queue.isEmpty, flushAll || queue.count > Int.random(in: 0...3, using: &generator) {
                // A message held back while its receiver ratchets four times is delivered now: past
                // five steps its skipped key is gone by design (tested on its own above).
                let overdue = queue.firstIndex { session.step >= $0.receiverStep + 4 }
                let index = overdue ?? Int.random(in: 0..<queue.count, using: &generator)
                if !flushAll, overdue == nil, Int.random(in: 0..<20, using: &generator) == 0 {
                    queue.remove(at: index)  // lost in transit
                    dropped += 1
                    continue
                }
                let item = queue[index]
                let (next, plaintext) = try session.decrypting(item.message, now: Self.now, keys: &keys)
                #expect(plaintext == item.text)
                session = next
                decrypted += 1
                if Int.random(in: 0..<10, using: &generator) == 0 {
                    let before = session.serialized
                    #expect(throws: SessionError.decryptionFailed) {
                        try session.decrypting(item.message, now: Self.now, keys: &keys)
                    }
                    #expect(session.serialized == before)
                    refusedDuplicates += 1
                }
                queue.remove(at: index)
            }
        }

        for index in 0..<1000 {
            let text = Array("message \(index)".utf8)
            if Bool.random(using: &generator) {
                let (next, message) = try pair.alice.encrypting(text)
                pair.alice = next
                toBob.append(InFlight(message: message, text: text, receiverStep: pair.bob.step))
                try deliver(&toBob, to: &pair.bob, keys: &pair.keys, flushAll: false)
            } else if pair.bob.canSend {
                let (next, message) = try pair.bob.encrypting(text)
                pair.bob = next
                toAlice.append(InFlight(message: message, text: text, receiverStep: pair.alice.step))
                try deliver(&toAlice, to: &pair.alice, keys: &pair.keys, flushAll: false)
            }
        }
        try deliver(&toBob, to: &pair.bob, keys: &pair.keys, flushAll: true)
        try deliver(&toAlice, to: &pair.alice, keys: &pair.keys, flushAll: true)
        #expect(decrypted + dropped > 900)
        #expect(dropped > 0 && refusedDuplicates > 0)
    }
}

@Suite struct RatchetPingPongTests {
    /// What `bench sessions` calls ping-pong: every message answers the other side's, so every
    /// receive after the first is a DH ratchet step on the receiving side.
    @Test func everyAnsweredMessageIsADHStep() throws {
        var pair = try Pair()
        let (aliceStart, bobStart) = (pair.alice.step, pair.bob.step)
        for _ in 0..<100 {
            let (leftNext, toRight) = try pair.alice.encrypting("ping")
            let (rightAfter, _) = try pair.bob.decrypting(toRight, now: Pair.start, keys: &pair.keys)
            let (rightNext, toLeft) = try rightAfter.encrypting("pong")
            pair.alice = try leftNext.decrypting(toLeft, now: Pair.start, keys: &pair.keys).session
            pair.bob = rightNext
        }
        #expect(pair.alice.step - aliceStart == 100)
        #expect(pair.bob.step - bobStart == 99, "the first ping continues the initial message's chain")
    }
}
