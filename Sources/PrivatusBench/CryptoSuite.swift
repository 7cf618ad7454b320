import Crypto
import CryptoExtras
import Foundation
import PrivatusCrypto

/// `privatus bench crypto`: the primitives Privatus relies on and the keystore unlock, measured
/// through the same swift-crypto API paths the product uses. These are the ceilings later
/// figures are held against.
public struct CryptoSuite: Sendable {
    public let measure: Measure
    /// How many unlocks to time for `keystore_unlock_ms` (each ≈ 0.3–0.7 s at the floor).
    public let unlockRuns: Int
    /// The scrypt parameters of the unlock measurement; the floor unless a test asks for less.
    public let unlockParameters: ScryptParameters

    public init(budget: Duration = .milliseconds(500), unlockRuns: Int = 3, unlockParameters: ScryptParameters = .floor)
    {
        self.measure = Measure(budget: budget)
        self.unlockRuns = unlockRuns
        self.unlockParameters = unlockParameters
    }

    /// Runs every measurement; keys are snake_case with the unit last.
    public func run() throws -> [String: Double] {
        var figures: [String: Double] = [:]
        let small = [UInt8](repeating: 0x5a, count: 1024)
        let large = [UInt8](repeating: 0x5a, count: 1 << 20)
        let key = SymmetricKey(size: .bits256)

        for (name, message) in [("1k", small), ("1m", large)] {
            figures["aes_gcm_\(name)_mb_s"] = try measure.megabytesPerSecond(bytes: message.count) {
                BlackHole.consume(try AES.GCM.seal(message, using: key).tag.first!)
            }
            let sealed = try AES.GCM.seal(message, using: key)
            figures["aes_gcm_open_\(name)_mb_s"] = try measure.megabytesPerSecond(bytes: message.count) {
                BlackHole.consume(try AES.GCM.open(sealed, using: key).first!)
            }
            figures["aes_gcm_siv_\(name)_mb_s"] = try measure.megabytesPerSecond(bytes: message.count) {
                BlackHole.consume(try AES.GCM._SIV.seal(message, using: key).tag.first!)
            }
        }
        // A file transfer's chunks as FileChunkCipher seals them (copies included), at the two
        // ends of the chunk sizes issue 9 chooses between.
        let chunks = try FileChunkCipher(
            key: FileChunkCipher.newKey(), transferID: [UInt8](repeating: 1, count: 16), chunkCount: 4)
        for (name, size) in [("256k", 256 << 10), ("1m", 1 << 20)] {
            let chunk = [UInt8](repeating: 0x5a, count: size)
            figures["file_chunk_seal_\(name)_mb_s"] = try measure.megabytesPerSecond(bytes: size) {
                BlackHole.consume(try chunks.seal(chunk, index: 1).last!)
            }
            let sealed = try chunks.seal(chunk, index: 1)
            figures["file_chunk_open_\(name)_mb_s"] = try measure.megabytesPerSecond(bytes: size) {
                BlackHole.consume(try chunks.open(sealed, index: 1).last!)
            }
        }
        figures["chachapoly_1m_mb_s"] = try measure.megabytesPerSecond(bytes: large.count) {
            BlackHole.consume(try ChaChaPoly.seal(large, using: key).tag.first!)
        }
        figures["sha256_1m_mb_s"] = measure.megabytesPerSecond(bytes: large.count) {
            BlackHole.consume(SHA256.hash(data: large).withUnsafeBytes { $0[0] })
        }

        let alice = Curve25519.KeyAgreement.PrivateKey()
        let bob = Curve25519.KeyAgreement.PrivateKey().publicKey
        figures["x25519_per_s"] = try measure.perSecond {
            BlackHole.consume(try alice.sharedSecretFromKeyAgreement(with: bob).withUnsafeBytes { $0[0] })
        }
        figures["x25519_keygen_per_s"] = measure.perSecond {
            BlackHole.consume(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation.first!)
        }

        let signer = Curve25519.Signing.PrivateKey()
        let message64 = [UInt8](repeating: 7, count: 64)
        let verifier = signer.publicKey
        let signature = try signer.signature(for: message64)
        figures["ed25519_sign_per_s"] = try measure.perSecond {
            BlackHole.consume(try signer.signature(for: message64).first!)
        }
        figures["ed25519_verify_per_s"] = measure.perSecond {
            BlackHole.consume(verifier.isValidSignature(signature, for: message64) ? 1 : 0)
        }

        figures["hmac_sha256_64_per_s"] = measure.perSecond {
            BlackHole.consume(HMAC<SHA256>.authenticationCode(for: message64, using: key).withUnsafeBytes { $0[0] })
        }
        let info = Array("Privatus-v1/bench".utf8)
        figures["hkdf_per_s"] = measure.perSecond {
            let derived = HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: info, outputByteCount: 32)
            BlackHole.consume(derived.withUnsafeBytes { $0[0] })
        }

        let kem = try MLKEM768.PrivateKey()
        let kemPublicKey = kem.publicKey
        let encapsulated = try kemPublicKey.encapsulate()
        figures["mlkem768_encap_per_s"] = try measure.perSecond {
            BlackHole.consume(try kemPublicKey.encapsulate().encapsulated.first!)
        }
        figures["mlkem768_decap_per_s"] = try measure.perSecond {
            BlackHole.consume(try kem.decapsulate(encapsulated.encapsulated).withUnsafeBytes { $0[0] })
        }
        figures["mlkem768_keygen_per_s"] = try measure.perSecond {
            BlackHole.consume(try MLKEM768.PrivateKey().publicKey.rawRepresentation.first!)
        }

        let contents = KeystoreContents(keys: IdentityKeys(), name: "bench")
        let sealedKeystore = try Keystore.seal(contents, password: "bench password", parameters: unlockParameters)
        figures["keystore_unlock_ms"] = try Measure.medianMilliseconds(runs: unlockRuns) {
            _ = try Keystore.open(sealedKeystore, password: "bench password")
        }
        figures["keystore_scrypt_log2_n"] = Double(unlockParameters.log2N)
        return figures
    }
}
