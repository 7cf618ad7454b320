import Crypto
import Foundation
import PrivatusTesting
import Testing

@testable import PrivatusNet

/// Reproduces the cacophony test vectors for `Noise_XX_25519_AESGCM_SHA256`
/// (`Tests/TestVectors/noise-xx-cacophony.json`) byte for byte: every handshake message, the
/// handshake hash, and the transport messages after Split in both directions.
@Suite struct NoiseVectorTests {
    /// The vectors whose `protocol_name` is exactly ours; the file holds other suites too.
    static func vectors() throws -> [[String: Any]] {
        try TestVectors.load("noise-xx-cacophony.json").objects("vectors").filter {
            $0["protocol_name"] as? String == NoiseHandshake.protocolName
        }
    }

    func key(_ vector: [String: Any], _ field: String) throws -> Curve25519.KeyAgreement.PrivateKey {
        try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: vector.bytes(field))
    }

    @Test func fileNamesItsSourceAndHoldsOurProtocol() throws {
        let file = try TestVectors.load("noise-xx-cacophony.json")
        #expect((file["source"] as? String)?.contains("cacophony") == true)
        #expect(try Self.vectors().count >= 1)
    }

    @Test func cacophonyVectorsReproduceByteForByte() throws {
        let vectors = try Self.vectors()
        try #require(!vectors.isEmpty)
        for vector in vectors {
            var initiator = NoiseHandshake(
                role: .initiator, prologue: try vector.bytes("init_prologue"),
                staticKey: try key(vector, "init_static"), ephemeralKey: try key(vector, "init_ephemeral"))
            var responder = NoiseHandshake(
                role: .responder, prologue: try vector.bytes("resp_prologue"),
                staticKey: try key(vector, "resp_static"), ephemeralKey: try key(vector, "resp_ephemeral"))
            let messages = try vector.objects("messages")
            try #require(messages.count > 3)

            for (index, message) in messages.prefix(3).enumerated() {
                let payload = try message.bytes("payload")
                let written: Data
                let read: Data
                if index % 2 == 0 {
                    written = try initiator.writeMessage(payload: payload)
                    read = try responder.readMessage(written)
                } else {
                    written = try responder.writeMessage(payload: payload)
                    read = try initiator.readMessage(written)
                }
                #expect(Array(written) == (try message.bytes("ciphertext")), "handshake message \(index + 1)")
                #expect(Array(read) == payload, "handshake payload \(index + 1)")
            }
            #expect(initiator.isComplete && responder.isComplete)
            let hash = try vector.bytes("handshake_hash")
            #expect(Array(initiator.handshakeHash) == hash)
            #expect(Array(responder.handshakeHash) == hash)
            #expect(
                initiator.remoteStaticKey?.rawRepresentation
                    == (try key(vector, "resp_static")).publicKey.rawRepresentation)
            #expect(
                responder.remoteStaticKey?.rawRepresentation
                    == (try key(vector, "init_static")).publicKey.rawRepresentation)

            // After the handshake the vector's messages keep alternating: the responder sends the
            // fourth, the initiator the fifth, and so on.
            var initiatorTransport = try initiator.split()
            var responderTransport = try responder.split()
            for (index, message) in messages.enumerated().dropFirst(3) {
                let payload = try message.bytes("payload")
                let written: Data
                let read: Data
                if index % 2 == 0 {
                    written = try initiatorTransport.encrypt(payload)
                    read = try responderTransport.decrypt(written)
                } else {
                    written = try responderTransport.encrypt(payload)
                    read = try initiatorTransport.decrypt(written)
                }
                #expect(Array(written) == (try message.bytes("ciphertext")), "transport message \(index + 1)")
                #expect(Array(read) == payload, "transport payload \(index + 1)")
            }
        }
    }

    /// Noise's HKDF (§4.3) computed literally with HMAC, against the swift-crypto HKDF we use.
    @Test func hkdfMatchesNoisesHMACDefinition() {
        let chainingKey = SymmetricKey(data: Array(repeating: UInt8(7), count: 32))
        for input in [Data(), Data(repeating: 0xab, count: 32)] {
            let (first, second) = NoiseSymmetricState.hkdf(
                chainingKey: chainingKey, inputKeyMaterial: SymmetricKey(data: input))
            let temp = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: input, using: chainingKey))
            let output1 = Data(HMAC<SHA256>.authenticationCode(for: [UInt8(1)], using: temp))
            let output2 = Data(HMAC<SHA256>.authenticationCode(for: output1 + [UInt8(2)], using: temp))
            #expect(first.withUnsafeBytes { Data($0) } == output1)
            #expect(second.withUnsafeBytes { Data($0) } == output2)
        }
    }

    /// The AES-GCM nonce is 32 zero bits then the counter big-endian (§12.4).
    @Test func gcmNonceIsZeroPrefixedBigEndianCounter() {
        #expect(
            withUnsafeBytes(of: NoiseCipherState.gcmNonceWords(0x0102_0304_0506_0708)) { Array($0) } == [
                0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
            ])
        #expect(
            withUnsafeBytes(of: NoiseCipherState.gcmNonceWords(.max)) { Array($0) } == [0, 0, 0, 0]
                + Array(repeating: 0xff, count: 8))
    }
}
