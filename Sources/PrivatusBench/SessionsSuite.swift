import Crypto
import Foundation
import PrivatusCrypto

/// `privatus bench sessions`: the end-to-end session operations on 1 KiB plaintexts, each beside
/// its ceiling — 1 ÷ the sum of the primitive costs the operation needs, every primitive timed
/// in the same run (BENCHMARKS.md gives the formulas).
public struct SessionsSuite: Sendable {
    public let measure: Measure
    /// The plaintext size of every message.
    public let plaintextSize: Int

    public init(budget: Duration = .milliseconds(500), plaintextSize: Int = 1024) {
        self.measure = Measure(budget: budget)
        self.plaintextSize = plaintextSize
    }

    public func run() throws -> [String: Double] {
        var figures: [String: Double] = [:]
        let plaintext = [UInt8](repeating: 0x61, count: plaintextSize)
        let now: UInt64 = 1_800_000_000
        var randomness = SystemRatchetKeys()

        // A real pair of users, started through the product's own path.
        let aliceKeys = IdentityKeys()
        let bobKeys = IdentityKeys()
        let bobPrekeys = try PrekeyStore(identity: bobKeys.identity, now: now)
        let bundle = bobPrekeys.bundle(keys: bobKeys, withOneTimePrekey: true)
        let (aliceStart, initial) = try SessionStart.initiate(
            keys: aliceKeys, bundle: bundle, firstPlaintext: plaintext, now: now, ratchetKeys: &randomness
        )
        let accepted = try bobPrekeys.acceptingInitialMessage(
            initial, keys: bobKeys, now: now, ratchetKeys: &randomness)

        // A short warm-up, so the first figure is not measured on a cold core.
        var warm = aliceStart
        _ = try Measure(budget: .milliseconds(200)).perSecond {
            let (next, message) = try warm.encrypting(plaintext)
            warm = next
            BlackHole.consume(message.ciphertext[0])
        }

        // Encrypt: one sending chain, each message from the state the previous one returned.
        var alice = aliceStart
        figures["encrypt_per_s"] = try measure.perSecond {
            let (next, message) = try alice.encrypting(plaintext)
            alice = next
            BlackHole.consume(message.ciphertext[0])
        }

        // Decrypt: messages of one chain, made beforehand (untimed), decrypted in order.
        var sender = aliceStart
        var receiver = accepted.session
        var batch: [RatchetMessage] = []
        figures["decrypt_per_s"] = try measure.perSecond(
            batchSize: 2048,
            prepare: {
                batch = try (0..<2048).map { _ in
                    let (next, message) = try sender.encrypting(plaintext)
                    sender = next
                    return message
                }
            },
            { index in
                let (next, text) = try receiver.decrypting(batch[index], now: now, keys: &randomness)
                receiver = next
                BlackHole.consume(text[0])
            }
        )

        // Ping-pong: every message answers the other side's, so each receive is a DH step.
        var left = aliceStart
        var right = accepted.session
        figures["pingpong_per_s"] = try measure.perSecond {
            let (leftNext, toRight) = try left.encrypting(plaintext)
            let (rightAfter, _) = try right.decrypting(toRight, now: now, keys: &randomness)
            let (rightNext, toLeft) = try rightAfter.encrypting(plaintext)
            let (leftAfter, text) = try leftNext.decrypting(toLeft, now: now, keys: &randomness)
            left = leftAfter
            right = rightNext
            BlackHole.consume(text[0])
        }

        // Session establishment, both sides: the initiator checks the bundle, runs PQXDH and
        // encrypts a first 1 KiB message; the responder runs PQXDH, checks the replay cache and
        // decrypts it (its first DH step). No one-time prekey, so the store is never used up.
        let plainBundle = bobPrekeys.bundle(keys: bobKeys, withOneTimePrekey: false)
        figures["pqxdh_per_s"] = try measure.perSecond {
            let (_, first) = try SessionStart.initiate(
                keys: aliceKeys, bundle: plainBundle, firstPlaintext: plaintext, now: now, ratchetKeys: &randomness
            )
            let accepted = try bobPrekeys.acceptingInitialMessage(
                first, keys: bobKeys, now: now, ratchetKeys: &randomness)
            BlackHole.consume(accepted.plaintext[0])
        }
        try figures.merge(ceilings(plaintext: plaintext)) { $1 }
        for name in ["encrypt", "decrypt", "pingpong"] {
            figures["\(name)_of_ceiling_pct"] = 100 * figures["\(name)_per_s"]! / figures["ceiling_\(name)_per_s"]!
        }
        return figures
    }

    /// Times each primitive as the ratchet uses it and sums them per operation.
    func ceilings(plaintext: [UInt8]) throws -> [String: Double] {
        let padded = try Padding.pad(plaintext)
        // The ratchet's AEAD as it calls it (``AESGCMSIV``, BoringSSL's AES-256-GCM-SIV).
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let nonce = [UInt8](repeating: 1, count: 12)
        let ad = [UInt8](repeating: 2, count: 129 + 41)
        func sealed() -> [UInt8] {
            key.withUnsafeBytes { key in
                nonce.withUnsafeBytes { AESGCMSIV.seal(padded, key: key, nonce: $0, authenticating: ad) }
            }
        }
        let box = sealed()
        // The ratchet's KDFs as it calls them (``SHA256KDF``, BoringSSL's HMAC and HKDF).
        let chainKey = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let ikm = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let salt = [UInt8](repeating: 0, count: 32)
        let local = Curve25519.KeyAgreement.PrivateKey()
        let remote = Curve25519.KeyAgreement.PrivateKey().publicKey

        let seconds = { (rate: Double) in 1 / rate }
        let hmac = seconds(measure.perSecond { BlackHole.consume(SHA256KDF.hmac(key: chainKey, data: [1])[0]) })
        let hkdf44 = seconds(
            measure.perSecond {
                BlackHole.consume(
                    SHA256KDF.hkdf(inputKeyMaterial: ikm, salt: salt, info: [3], outputByteCount: 44)[0])
            })
        let hkdf64 = seconds(
            measure.perSecond {
                BlackHole.consume(
                    SHA256KDF.hkdf(inputKeyMaterial: ikm, salt: salt, info: [4], outputByteCount: 64)[0])
            })
        let seal = seconds(measure.perSecond { BlackHole.consume(sealed().last!) })
        let open = seconds(
            try measure.perSecond {
                let opened = try key.withUnsafeBytes { key in
                    try nonce.withUnsafeBytes { try AESGCMSIV.open(box, key: key, nonce: $0, authenticating: ad) }
                }
                BlackHole.consume(opened.first!)
            })
        let agreement = seconds(
            try measure.perSecond {
                BlackHole.consume(try local.sharedSecretFromKeyAgreement(with: remote).withUnsafeBytes { $0[0] })
            })
        let keygen = seconds(
            measure.perSecond {
                BlackHole.consume(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation.first!)
            })
        let encrypt = 2 * hmac + hkdf44 + seal
        let decrypt = 2 * hmac + hkdf44 + open
        let step = 2 * agreement + keygen + 2 * hkdf64
        return [
            "primitive_hmac_sha256_us": hmac * 1e6,
            "primitive_hkdf_44_us": hkdf44 * 1e6,
            "primitive_hkdf_64_us": hkdf64 * 1e6,
            "primitive_gcm_siv_seal_padded_us": seal * 1e6,
            "primitive_gcm_siv_open_padded_us": open * 1e6,
            "primitive_x25519_us": agreement * 1e6,
            "primitive_x25519_keygen_us": keygen * 1e6,
            "ceiling_encrypt_per_s": 1 / encrypt,
            "ceiling_decrypt_per_s": 1 / decrypt,
            "ceiling_pingpong_per_s": 1 / (2 * (encrypt + decrypt + step)),
        ]
    }
}
