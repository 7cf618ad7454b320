import Crypto
import Foundation
import Testing

@testable import PrivatusNet

@Suite struct NoiseTransportTests {
    @Test func messagesFlowBothWays() throws {
        var pair = try noiseTransports()
        for index in 0..<50 {
            let outbound = Data("to responder \(index)".utf8)
            #expect(try pair.responder.decrypt(try pair.initiator.encrypt(outbound)) == outbound)
            let inbound = Data(repeating: UInt8(index), count: index * 37)
            #expect(try pair.initiator.decrypt(try pair.responder.encrypt(inbound)) == inbound)
        }
        #expect(pair.initiator.messagesSent == 50 && pair.responder.messagesReceived == 50)
    }

    @Test func eachMessageIsCiphertextAndTag() throws {
        var pair = try noiseTransports()
        let plaintext = Data("hello".utf8)
        let message = try pair.initiator.encrypt(plaintext)
        #expect(message.count == plaintext.count + NoiseTransport.tagLength)
        #expect(!message.starts(with: plaintext))
    }

    @Test func reorderedMessagesFailAndChangeNothing() throws {
        var pair = try noiseTransports()
        let first = try pair.initiator.encrypt(Data("first".utf8))
        let second = try pair.initiator.encrypt(Data("second".utf8))
        #expect(throws: NoiseError.decryptionFailed) { try pair.responder.decrypt(second) }
        #expect(try pair.responder.decrypt(first) == Data("first".utf8))
        #expect(try pair.responder.decrypt(second) == Data("second".utf8))
    }

    @Test func replayedMessageFails() throws {
        var pair = try noiseTransports()
        let first = try pair.initiator.encrypt(Data("once".utf8))
        #expect(try pair.responder.decrypt(first) == Data("once".utf8))
        #expect(throws: NoiseError.decryptionFailed) { try pair.responder.decrypt(first) }
        // The failed replay did not advance the receiver: the next genuine message still opens.
        let next = try pair.initiator.encrypt(Data("next".utf8))
        #expect(try pair.responder.decrypt(next) == Data("next".utf8))
    }

    @Test func alteredOrForeignMessageFails() throws {
        var pair = try noiseTransports()
        var other = try noiseTransports()
        let message = try pair.initiator.encrypt(Data("payload".utf8))
        for index in 0..<message.count {
            #expect(throws: NoiseError.decryptionFailed) { try pair.responder.decrypt(flipping(message, at: index)) }
        }
        // The responder's own send direction has other keys than its receive direction.
        #expect(throws: NoiseError.decryptionFailed) { try pair.initiator.decrypt(message) }
        #expect(throws: NoiseError.decryptionFailed) { try other.responder.decrypt(message) }
        #expect(try pair.responder.decrypt(message) == Data("payload".utf8))
    }

    @Test func sizeLimitsAreEnforcedOnBothSides() throws {
        var pair = try noiseTransports()
        #expect(throws: NoiseError.messageTooLarge) {
            try pair.initiator.encrypt(Data(count: NoiseTransport.maximumPlaintextLength + 1))
        }
        #expect(pair.initiator.messagesSent == 0)
        let largest = try pair.initiator.encrypt(Data(count: NoiseTransport.maximumPlaintextLength))
        #expect(largest.count == 65_535)
        #expect(throws: NoiseError.messageTooLarge) { try pair.responder.decrypt(Data(count: 65_536)) }
        #expect(throws: NoiseError.malformedMessage) { try pair.responder.decrypt(Data(count: 15)) }
        #expect(try pair.responder.decrypt(largest).count == NoiseTransport.maximumPlaintextLength)
    }

    @Test func emptyPlaintextIsAMessage() throws {
        var pair = try noiseTransports()
        let message = try pair.initiator.encrypt(Data())
        #expect(message.count == NoiseTransport.tagLength)
        #expect(try pair.responder.decrypt(message).isEmpty)
    }

    @Test func rekeyKeepsBothSidesInStepAndChangesTheKey() throws {
        var pair = try noiseTransports(initiatorInterval: 3, responderInterval: 3)
        let initial = keyBytes(pair.initiator.sendCipher)
        #expect(initial == keyBytes(pair.responder.receiveCipher))

        var keys = [initial]
        for index in 0..<10 {
            let outbound = Data("message \(index)".utf8)
            #expect(try pair.responder.decrypt(try pair.initiator.encrypt(outbound)) == outbound)
            let inbound = Data("reply \(index)".utf8)
            #expect(try pair.initiator.decrypt(try pair.responder.encrypt(inbound)) == inbound)
            #expect(keyBytes(pair.initiator.sendCipher) == keyBytes(pair.responder.receiveCipher))
            #expect(keyBytes(pair.responder.sendCipher) == keyBytes(pair.initiator.receiveCipher))
            keys.append(keyBytes(pair.initiator.sendCipher))
        }
        // keys[n] is the key after n messages: it changes after messages 3, 6 and 9 only.
        #expect(keys[1] == initial && keys[2] == initial)
        #expect(keys[3] != initial && keys[4] == keys[3] && keys[5] == keys[3])
        #expect(keys[6] != keys[3] && keys[9] != keys[6] && Set(keys).count == 4)
        // Each new key is REKEY(k) = the first 32 bytes of AES-GCM(k, nonce 2^64 − 1, 32 zeros), computed
        // here from swift-crypto directly.
        for (old, new) in [(keys[0], keys[3]), (keys[3], keys[6]), (keys[6], keys[9])] {
            let nonce = try AES.GCM.Nonce(data: [0, 0, 0, 0] + Array(repeating: UInt8(0xff), count: 8))
            let sealed = try AES.GCM.seal(Data(count: 32), using: SymmetricKey(data: old), nonce: nonce)
            #expect(Array(sealed.ciphertext) == new)
        }
        // The nonce keeps counting across rekeys.
        #expect(pair.initiator.messagesSent == 10 && pair.responder.messagesReceived == 10)
    }

    @Test func aSideThatDoesNotRekeyCannotReadPastTheInterval() throws {
        var pair = try noiseTransports(initiatorInterval: 3)
        for index in 0..<3 {
            let message = Data([UInt8(index)])
            #expect(try pair.responder.decrypt(try pair.initiator.encrypt(message)) == message)
        }
        let fourth = try pair.initiator.encrypt(Data([3]))
        #expect(throws: NoiseError.decryptionFailed) { try pair.responder.decrypt(fourth) }
    }

    @Test func defaultRekeyIntervalIsTwoToTheTwenty() throws {
        let pair = try noiseTransports()
        #expect(pair.initiator.rekeyInterval == 1 << 20)
        #expect(pair.responder.rekeyInterval == 1 << 20)
    }

    @Test func lastNonceIsNeverUsed() throws {
        var pair = try noiseTransports()
        pair.initiator.sendCipher.nonce = .max - 1
        pair.responder.receiveCipher.nonce = .max - 1
        let last = try pair.initiator.encrypt(Data("last".utf8))
        #expect(try pair.responder.decrypt(last) == Data("last".utf8))
        #expect(pair.initiator.messagesSent == .max)
        #expect(throws: NoiseError.nonceExhausted) { try pair.initiator.encrypt(Data("again".utf8)) }
        #expect(throws: NoiseError.nonceExhausted) { try pair.responder.decrypt(last) }
    }
}
