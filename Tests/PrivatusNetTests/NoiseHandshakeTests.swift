import Crypto
import Foundation
import Testing

@testable import PrivatusNet

/// The plain Noise XX state machine: turns, limits, and that a failed step changes nothing.
@Suite struct NoiseHandshakeTests {
    let prologue = Data("prologue".utf8)

    func initiator() -> NoiseHandshake {
        NoiseHandshake(role: .initiator, prologue: prologue, staticKey: .init())
    }

    func responder() -> NoiseHandshake {
        NoiseHandshake(role: .responder, prologue: prologue, staticKey: .init())
    }

    @Test func handshakeCompletesWithEqualHashesAndMatchingKeys() throws {
        let initiatorStatic = Curve25519.KeyAgreement.PrivateKey()
        let responderStatic = Curve25519.KeyAgreement.PrivateKey()
        var initiator = NoiseHandshake(role: .initiator, prologue: prologue, staticKey: initiatorStatic)
        var responder = NoiseHandshake(role: .responder, prologue: prologue, staticKey: responderStatic)
        #expect(initiator.isMyTurn && !responder.isMyTurn)
        let message1 = try initiator.writeMessage(payload: Data("one".utf8))
        #expect(message1.count == 32 + 3)
        #expect(try responder.readMessage(message1) == Data("one".utf8))
        let message2 = try responder.writeMessage(payload: Data("two".utf8))
        #expect(message2.count == 32 + 48 + 3 + 16)
        #expect(try initiator.readMessage(message2) == Data("two".utf8))
        let message3 = try initiator.writeMessage(payload: Data("three".utf8))
        #expect(message3.count == 48 + 5 + 16)
        #expect(try responder.readMessage(message3) == Data("three".utf8))
        #expect(initiator.isComplete && responder.isComplete)
        #expect(initiator.handshakeHash == responder.handshakeHash)
        #expect(initiator.remoteStaticKey?.rawRepresentation == responderStatic.publicKey.rawRepresentation)
        #expect(responder.remoteStaticKey?.rawRepresentation == initiatorStatic.publicKey.rawRepresentation)
    }

    @Test func callsOutOfTurnAreRefused() throws {
        var initiator = NoiseHandshake(role: .initiator, prologue: prologue, staticKey: .init())
        var responder = NoiseHandshake(role: .responder, prologue: prologue, staticKey: .init())
        #expect(throws: NoiseError.outOfTurn) { try responder.writeMessage() }
        #expect(throws: NoiseError.outOfTurn) { try initiator.readMessage(Data(count: 32)) }
        #expect(throws: NoiseError.outOfTurn) { _ = try initiator.split() }
        _ = try responder.readMessage(try initiator.writeMessage())
        _ = try initiator.readMessage(try responder.writeMessage())
        _ = try responder.readMessage(try initiator.writeMessage())
        #expect(throws: NoiseError.outOfTurn) { try initiator.writeMessage() }
        #expect(throws: NoiseError.outOfTurn) { try responder.readMessage(Data(count: 64)) }
        _ = try initiator.split()
        // A second split would hand out the same keys (and nonces) again.
        #expect(throws: NoiseError.outOfTurn) { _ = try initiator.split() }
    }

    @Test func oversizedHandshakeMessagesAreRefused() throws {
        var initiator = initiator()
        var responder = responder()
        // Message 1 is e (32 bytes) ‖ payload in clear.
        #expect(throws: NoiseError.messageTooLarge) { try initiator.writeMessage(payload: Data(count: 65_535 - 31)) }
        #expect(throws: NoiseError.messageTooLarge) { try responder.readMessage(Data(count: 65_536)) }
        let largest = try initiator.writeMessage(payload: Data(count: 65_535 - 32))
        #expect(largest.count == 65_535)
        _ = try responder.readMessage(largest)
        // Message 2 is e ‖ encrypted s ‖ encrypted payload: 32 + 48 + payload + 16.
        #expect(throws: NoiseError.messageTooLarge) { try responder.writeMessage(payload: Data(count: 65_535 - 95)) }
        #expect(try responder.writeMessage(payload: Data(count: 65_535 - 96)).count == 65_535)
    }

    @Test func truncatedMessagesAreRefusedAndChangeNothing() throws {
        var initiator = initiator()
        var responder = responder()
        let message1 = try initiator.writeMessage(payload: Data())
        for length in 0..<32 {
            #expect(throws: NoiseError.malformedMessage) { try responder.readMessage(message1.prefix(length)) }
        }
        _ = try responder.readMessage(message1)
        let message2 = try responder.writeMessage(payload: Data("payload".utf8))
        for length in 0..<message2.count {
            let before = initiator.handshakeHash
            do {
                _ = try initiator.readMessage(message2.prefix(length))
                Issue.record("a message 2 cut to \(length) bytes was accepted")
            } catch {
                // Too short for its tokens or its tag, or the tag does not match what is left.
                #expect(error == .malformedMessage || error == .decryptionFailed)
            }
            #expect(initiator.handshakeHash == before && !initiator.isMyTurn && initiator.remoteStaticKey == nil)
        }
        _ = try initiator.readMessage(message2)
        let message3 = try initiator.writeMessage(payload: Data())
        for length in 0..<message3.count {
            #expect(throws: NoiseError.self) { try responder.readMessage(message3.prefix(length)) }
        }
        _ = try responder.readMessage(message3)
        #expect(responder.isComplete == true)
    }

    @Test func everyAlteredByteOfMessagesTwoAndThreeIsRefused() throws {
        var initiator = initiator()
        var responder = responder()
        _ = try responder.readMessage(try initiator.writeMessage(payload: Data()))
        let message2 = try responder.writeMessage(payload: Data("payload".utf8))
        for index in 0..<message2.count {
            #expect(throws: NoiseError.decryptionFailed) { try initiator.readMessage(flipping(message2, at: index)) }
        }
        // None of the failures advanced the handshake: the genuine message is still read.
        #expect(try initiator.readMessage(message2) == Data("payload".utf8))
        let message3 = try initiator.writeMessage(payload: Data("payload".utf8))
        for index in 0..<message3.count {
            #expect(throws: NoiseError.decryptionFailed) { try responder.readMessage(flipping(message3, at: index)) }
        }
        #expect(try responder.readMessage(message3) == Data("payload".utf8))
        #expect(initiator.handshakeHash == responder.handshakeHash)
    }

    @Test func differentProloguesFailAtMessageTwo() throws {
        var initiator = NoiseHandshake(role: .initiator, prologue: Data("a".utf8), staticKey: .init())
        var responder = NoiseHandshake(role: .responder, prologue: Data("b".utf8), staticKey: .init())
        _ = try responder.readMessage(try initiator.writeMessage())
        let message2 = try responder.writeMessage()
        #expect(throws: NoiseError.decryptionFailed) { try initiator.readMessage(message2) }
    }

    @Test func lowOrderEphemeralKeyIsRefused() throws {
        var responder = responder()
        // The all-zero u-coordinate is a point of small order: every X25519 result with it is zero.
        _ = try responder.readMessage(Data(count: 32))
        #expect(throws: NoiseError.invalidPublicKey) { try responder.writeMessage(payload: Data()) }
    }
}
