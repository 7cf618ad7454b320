import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import Testing

@testable import PrivatusNet

/// The Privatus handshake: Noise XX whose payloads bind each static key to an identity.
@Suite struct AuthenticatedHandshakeTests {
    let alice = TestNode()
    let bob = TestNode()

    @Test func twoIdentitiesAuthenticateEachOtherAndTalk() throws {
        var initiator = alice.initiator(expecting: bob.peerID)
        var responder = bob.responder()
        let message1 = try initiator.start()
        #expect(message1.count == 32)
        let message2 = try sentMessage(try responder.receive(message1))
        #expect(message2.count == 32 + 48 + HandshakePayload.encodedLength + 16)
        let last = try lastMessage(try initiator.receive(message2))
        let message3 = last.message
        var aliceSide = last.outcome
        #expect(message3.count == 48 + HandshakePayload.encodedLength + 16)
        var bobSide = try finished(try responder.receive(message3))

        #expect(aliceSide.remotePeer == bob.peerID)
        #expect(aliceSide.remoteIdentity == bob.identity.publicKey)
        #expect(aliceSide.remoteStaticKey.rawRepresentation == bob.noiseStatic.publicKey.rawRepresentation)
        #expect(bobSide.remotePeer == alice.peerID)
        #expect(bobSide.remoteIdentity == alice.identity.publicKey)
        #expect(bobSide.remoteStaticKey.rawRepresentation == alice.noiseStatic.publicKey.rawRepresentation)
        #expect(aliceSide.handshakeHash == bobSide.handshakeHash)
        #expect(aliceSide.handshakeHash.count == 32)

        for index in 0..<20 {
            let question = Data("alice \(index)".utf8)
            #expect(try bobSide.transport.decrypt(try aliceSide.transport.encrypt(question)) == question)
            let answer = Data("bob \(index)".utf8)
            #expect(try aliceSide.transport.decrypt(try bobSide.transport.encrypt(answer)) == answer)
        }
        // A finished handshake takes no more messages.
        #expect(throws: NoiseError.outOfTurn) { _ = try initiator.receive(message2) }
        #expect(throws: NoiseError.outOfTurn) { _ = try responder.receive(message3) }
    }

    @Test func rekeyIntervalReachesTheTransport() throws {
        var initiator = alice.initiator(expecting: bob.peerID, rekeyInterval: 5)
        var responder = bob.responder()
        let message2 = try sentMessage(try responder.receive(try initiator.start()))
        let last = try lastMessage(try initiator.receive(message2))
        #expect(last.outcome.transport.rekeyInterval == 5)
    }

    @Test func unexpectedResponderStopsTheInitiatorBeforeMessageThree() throws {
        let carol = TestNode()
        var initiator = alice.initiator(expecting: carol.peerID)
        var responder = bob.responder()
        let message2 = try sentMessage(try responder.receive(try initiator.start()))
        #expect(throws: NoiseError.unexpectedPeer) { _ = try initiator.receive(message2) }
        // Nothing was produced and nothing advanced: asking again gives the same refusal, and the
        // initiator has no message 3 to give.
        #expect(throws: NoiseError.unexpectedPeer) { _ = try initiator.receive(message2) }
        #expect(throws: NoiseError.outOfTurn) { try initiator.start() }
    }

    @Test func alteredMessageTwoIsRefused() throws {
        var responder = bob.responder()
        var initiator = alice.initiator(expecting: bob.peerID)
        let message2 = try sentMessage(try responder.receive(try initiator.start()))
        for index in 0..<message2.count {
            #expect(throws: NoiseError.decryptionFailed) { _ = try initiator.receive(flipping(message2, at: index)) }
        }
        _ = try lastMessage(try initiator.receive(message2))
    }

    @Test func alteredMessageThreeIsRefused() throws {
        var responder = bob.responder()
        var initiator = alice.initiator(expecting: bob.peerID)
        let message2 = try sentMessage(try responder.receive(try initiator.start()))
        let message3 = try lastMessage(try initiator.receive(message2)).message
        for index in 0..<message3.count {
            #expect(throws: NoiseError.decryptionFailed) { _ = try responder.receive(flipping(message3, at: index)) }
        }
        _ = try finished(try responder.receive(message3))
    }

    @Test func truncatedHandshakeMessagesAreRefused() throws {
        var responder = bob.responder()
        var initiator = alice.initiator(expecting: bob.peerID)
        let message1 = try initiator.start()
        #expect(throws: NoiseError.malformedMessage) { _ = try responder.receive(message1.prefix(31)) }
        let message2 = try sentMessage(try responder.receive(message1))
        for length in [0, 31, 32, 79, 80, 95, message2.count - 1] {
            #expect(throws: NoiseError.self) { _ = try initiator.receive(message2.prefix(length)) }
        }
        let message3 = try lastMessage(try initiator.receive(message2)).message
        for length in [0, 47, 48, 63, message3.count - 1] {
            #expect(throws: NoiseError.self) { _ = try responder.receive(message3.prefix(length)) }
        }
        _ = try finished(try responder.receive(message3))
    }

    @Test func oversizedHandshakeMessageIsRefused() throws {
        var responder = bob.responder()
        #expect(throws: NoiseError.messageTooLarge) { _ = try responder.receive(Data(count: 65_536)) }
    }

    @Test func differentVersionListsFailTheHandshake() throws {
        // A man in the middle that strips version 2 from one side's list (a downgrade), or two
        // nodes configured differently: the prologues differ and message 2 does not decrypt.
        for (initiatorVersions, responderVersions): ([UInt8], [UInt8]) in [
            ([1], [1, 2]), ([1, 2], [2, 1]), ([2], [1]),
        ] {
            var initiator = alice.initiator(expecting: bob.peerID, versions: initiatorVersions)
            var responder = bob.responder(versions: responderVersions)
            let message2 = try sentMessage(try responder.receive(try initiator.start()))
            #expect(throws: NoiseError.decryptionFailed) { _ = try initiator.receive(message2) }
        }
    }

    @Test func prologueIsLabelCountAndVersions() {
        #expect(Array(AuthenticatedHandshake.prologue(versions: [1])) == Array("privatus/1".utf8) + [1, 1])
        #expect(Array(AuthenticatedHandshake.prologue(versions: [1, 2])) == Array("privatus/1".utf8) + [2, 1, 2])
    }

    // MARK: - A responder that misbehaves (played with the raw Noise handshake)

    /// Runs messages 1 and 2 with a raw Noise responder sending `payload`, and returns what the
    /// honest initiator makes of message 2.
    func initiatorReceives(payload: Data, responderNode: TestNode? = nil) throws {
        let node = responderNode ?? bob
        var initiator = alice.initiator(expecting: node.peerID)
        var responder = node.rawNoise(.responder)
        _ = try responder.readMessage(try initiator.start())
        let message2 = try responder.writeMessage(payload: payload)
        _ = try initiator.receive(message2)
    }

    @Test func signatureOverAnotherStaticKeyIsRefused() throws {
        // Bob's identity signs some other key, not the static key Bob uses in the handshake.
        let other = Curve25519.KeyAgreement.PrivateKey()
        let payload = HandshakePayload(identity: bob.identity, noiseStatic: other.publicKey).encoded
        #expect(throws: NoiseError.invalidSignature) { try initiatorReceives(payload: payload) }
    }

    @Test func bindingOfAnotherIdentityIsRefused() throws {
        // Mallory presents Bob's identity key with her own genuine binding signature.
        let mallory = TestNode()
        let signature = HandshakePayload(identity: mallory.identity, noiseStatic: mallory.noiseStatic.publicKey)
            .signature
        let payload = HandshakePayload(identityKey: bob.identity.publicKey, signature: signature).encoded
        #expect(throws: NoiseError.invalidSignature) { try initiatorReceives(payload: payload, responderNode: mallory) }
    }

    @Test func signatureForAnotherPurposeIsRefused() throws {
        for purpose in SignaturePurpose.all where purpose != .noiseStatic {
            let signature = bob.identity.signature(over: bob.noiseStatic.publicKey.rawRepresentation, purpose: purpose)
            let payload = HandshakePayload(identityKey: bob.identity.publicKey, signature: signature).encoded
            #expect(throws: NoiseError.invalidSignature, "purpose \(purpose)") {
                try initiatorReceives(payload: payload)
            }
        }
        // The same key signed for noise-static is accepted, so the refusals above are about the purpose.
        let genuine = bob.identity.signature(over: bob.noiseStatic.publicKey.rawRepresentation, purpose: .noiseStatic)
        try initiatorReceives(
            payload: HandshakePayload(identityKey: bob.identity.publicKey, signature: genuine).encoded)
    }

    @Test func malformedPayloadsAreRefused() throws {
        let genuine = bob.payload
        #expect(throws: NoiseError.malformedPayload) { try initiatorReceives(payload: Data()) }
        #expect(throws: NoiseError.malformedPayload) { try initiatorReceives(payload: genuine.dropLast()) }
        #expect(throws: NoiseError.malformedPayload) { try initiatorReceives(payload: genuine + [0]) }
        #expect(throws: NoiseError.malformedPayload) { try initiatorReceives(payload: Data([1])) }
        var otherVersion = Data(genuine)
        otherVersion[0] = 2
        #expect(throws: NoiseError.unsupportedPayloadVersion) { try initiatorReceives(payload: otherVersion) }
        #expect(throws: NoiseError.unsupportedPayloadVersion) { try initiatorReceives(payload: Data([0])) }
        try initiatorReceives(payload: genuine)
    }

    // MARK: - An initiator that misbehaves

    /// Runs a handshake with a raw Noise initiator whose message 1 and 3 payloads are given, and
    /// returns what the honest responder makes of message 3.
    func responderReceives(message1Payload: Data = Data(), payload: Data) throws {
        var initiator = alice.rawNoise(.initiator)
        var responder = bob.responder()
        let message2 = try sentMessage(try responder.receive(try initiator.writeMessage(payload: message1Payload)))
        _ = try initiator.readMessage(message2)
        _ = try responder.receive(try initiator.writeMessage(payload: payload))
    }

    @Test func responderChecksTheInitiatorsBindingToo() throws {
        let other = Curve25519.KeyAgreement.PrivateKey()
        let wrongKey = HandshakePayload(identity: alice.identity, noiseStatic: other.publicKey).encoded
        #expect(throws: NoiseError.invalidSignature) { try responderReceives(payload: wrongKey) }
        let wrongPurpose = HandshakePayload(
            identityKey: alice.identity.publicKey,
            signature: alice.identity.signature(over: alice.noiseStatic.publicKey.rawRepresentation, purpose: .presence)
        ).encoded
        #expect(throws: NoiseError.invalidSignature) { try responderReceives(payload: wrongPurpose) }
        #expect(throws: NoiseError.malformedPayload) { try responderReceives(payload: alice.payload.prefix(96)) }
        try responderReceives(payload: alice.payload)
    }

    @Test func messageOneMustBeEmpty() throws {
        #expect(throws: NoiseError.malformedPayload) {
            try responderReceives(message1Payload: Data("hello".utf8), payload: alice.payload)
        }
    }

    @Test func turnsAreEnforced() throws {
        var responder = bob.responder()
        var initiator = alice.initiator(expecting: bob.peerID)
        #expect(throws: NoiseError.outOfTurn) { try responder.start() }
        #expect(throws: NoiseError.outOfTurn) { _ = try initiator.receive(Data(count: 32)) }
        _ = try initiator.start()
        #expect(throws: NoiseError.outOfTurn) { try initiator.start() }
    }
}
