import Crypto
import Foundation
import Testing

@testable import PrivatusNet

/// ``NoiseTransport/seal(_:into:)`` and ``NoiseTransport/open(_:into:)``, the link's paths: the
/// same messages and outcomes as ``NoiseTransport/encrypt(_:)`` and ``NoiseTransport/decrypt(_:)``.
@Suite struct NoiseTransportInPlaceTests {
    /// Opens `message` into a buffer of its own.
    static func open(_ transport: inout NoiseTransport, _ message: Data) throws -> Data {
        var output = [UInt8](repeating: 0, count: max(0, message.count - 16))
        let length = try message.withUnsafeBytes { message in
            try output.withUnsafeMutableBytes { try transport.open(message, into: $0) }
        }
        return Data(output[..<length])
    }

    /// Seals `plaintext` where it lies: the buffer holds the plaintext, then room for the tag.
    static func sealInPlace(_ transport: inout NoiseTransport, _ plaintext: Data) throws -> Data {
        var buffer = [UInt8](plaintext) + [UInt8](repeating: 0, count: 16)
        try buffer.withUnsafeMutableBytes { raw in
            try transport.seal(UnsafeRawBufferPointer(rebasing: raw[..<plaintext.count]), into: raw)
        }
        return Data(buffer)
    }

    @Test func messagesSealedAndOpenedByTheLinkMatchAcrossARekey() throws {
        var pair = try noiseTransports(initiatorInterval: 4, responderInterval: 4)
        for index in 0..<10 {
            let plaintext = Data(repeating: UInt8(index), count: index * 1_000)
            let message = try Self.sealInPlace(&pair.initiator, plaintext)
            #expect(try Self.open(&pair.responder, message) == plaintext)
        }
        #expect(pair.initiator.messagesSent == 10)
        #expect(pair.responder.messagesReceived == 10)
    }

    @Test func sealingInPlaceGivesTheBytesEncryptGives() throws {
        var pair = try noiseTransports(initiatorInterval: 3, responderInterval: 3)
        var copy = try noiseTransports(initiatorInterval: 3, responderInterval: 3)
        // Two sessions with the same keys: one encrypts, the other seals in place.
        copy.initiator.sendCipher = pair.initiator.sendCipher
        for index in 0..<7 {
            let plaintext = Data(repeating: UInt8(index), count: 100 + index)
            #expect(try Self.sealInPlace(&copy.initiator, plaintext) == (try pair.initiator.encrypt(plaintext)))
        }
    }

    @Test func alteredReplayedOrShortMessagesFailAndChangeNothing() throws {
        var pair = try noiseTransports()
        let message = try pair.initiator.encrypt(Data("payload".utf8))
        for index in 0..<message.count {
            #expect(throws: NoiseError.decryptionFailed) {
                try Self.open(&pair.responder, flipping(message, at: index))
            }
        }
        #expect(throws: NoiseError.malformedMessage) { try Self.open(&pair.responder, Data(count: 15)) }
        #expect(throws: NoiseError.messageTooLarge) { try Self.open(&pair.responder, Data(count: 65_536)) }
        #expect(pair.responder.messagesReceived == 0)
        #expect(try Self.open(&pair.responder, message) == Data("payload".utf8))
        #expect(throws: NoiseError.decryptionFailed) { try Self.open(&pair.responder, message) }
    }

    @Test func aPlaintextTooLargeForOneMessageIsRefusedUnsealed() throws {
        var pair = try noiseTransports()
        #expect(throws: NoiseError.messageTooLarge) {
            try Self.sealInPlace(&pair.initiator, Data(count: NoiseTransport.maximumPlaintextLength + 1))
        }
        #expect(pair.initiator.messagesSent == 0)
    }

    @Test func theLastNonceIsNeverUsedByTheLinksPaths() throws {
        var pair = try noiseTransports()
        pair.initiator.sendCipher.nonce = .max - 1
        pair.responder.receiveCipher.nonce = .max - 1
        let last = try Self.sealInPlace(&pair.initiator, Data("last".utf8))
        #expect(throws: NoiseError.nonceExhausted) { try Self.sealInPlace(&pair.initiator, Data("more".utf8)) }
        #expect(try Self.open(&pair.responder, last) == Data("last".utf8))
        #expect(throws: NoiseError.nonceExhausted) { try Self.open(&pair.responder, last) }
    }
}
