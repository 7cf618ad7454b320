import Crypto
import Foundation
import Testing

@testable import PrivatusNet

/// ``NoiseTransport/decrypt(contiguous:)``, the link's path: the same outcomes as ``NoiseTransport/decrypt(_:)``.
@Suite struct NoiseTransportInPlaceTests {
    static func inPlace(_ transport: inout NoiseTransport, _ message: Data) throws -> Data {
        try message.withUnsafeBytes { try transport.decrypt(contiguous: $0) }
    }

    @Test func messagesReadInPlaceDecryptAcrossARekey() throws {
        var pair = try noiseTransports(initiatorInterval: 4, responderInterval: 4)
        for index in 0..<10 {
            let plaintext = Data(repeating: UInt8(index), count: index * 1_000)
            let message = try pair.initiator.encrypt(plaintext)
            #expect(try Self.inPlace(&pair.responder, message) == plaintext)
        }
        #expect(pair.responder.messagesReceived == 10)
    }

    @Test func alteredReplayedOrShortMessagesFailAndChangeNothing() throws {
        var pair = try noiseTransports()
        let message = try pair.initiator.encrypt(Data("payload".utf8))
        for index in 0..<message.count {
            #expect(throws: NoiseError.decryptionFailed) {
                try Self.inPlace(&pair.responder, flipping(message, at: index))
            }
        }
        #expect(throws: NoiseError.malformedMessage) { try Self.inPlace(&pair.responder, Data(count: 15)) }
        #expect(throws: NoiseError.messageTooLarge) { try Self.inPlace(&pair.responder, Data(count: 65_536)) }
        #expect(pair.responder.messagesReceived == 0)
        #expect(try Self.inPlace(&pair.responder, message) == Data("payload".utf8))
        #expect(throws: NoiseError.decryptionFailed) { try Self.inPlace(&pair.responder, message) }
    }

    @Test func theLastNonceIsNeverUsedInPlace() throws {
        var pair = try noiseTransports()
        pair.initiator.sendCipher.nonce = .max - 1
        pair.responder.receiveCipher.nonce = .max - 1
        let last = try pair.initiator.encrypt(Data("last".utf8))
        #expect(try Self.inPlace(&pair.responder, last) == Data("last".utf8))
        #expect(throws: NoiseError.nonceExhausted) { try Self.inPlace(&pair.responder, last) }
    }
}
