import Crypto
import Foundation
import PrivatusCore
import PrivatusTesting
import Testing

@testable import PrivatusCrypto

/// Ratchet keys taken in order from a vector.
struct FixedRatchetKeys: RatchetKeySource {
    var keys: [Curve25519.KeyAgreement.PrivateKey]
    mutating func nextKeyPair() -> Curve25519.KeyAgreement.PrivateKey { keys.removeFirst() }
}

/// Reproduces `Tests/TestVectors/ratchet.json`, written by an independent Python implementation
/// (`Tests/Vectors/generate.py`), byte for byte.
@Suite struct RatchetVectorTests {
    let vector: [String: Any]
    let keys: [String: Any]
    let bundle: [String: Any]
    let pqxdh: [String: Any]

    init() throws {
        vector = try TestVectors.load("ratchet.json")
        keys = try vector.object("keys")
        bundle = try vector.object("bundle")
        pqxdh = try vector.object("pqxdh")
    }

    func x25519(_ bytes: [UInt8]) throws -> Curve25519.KeyAgreement.PrivateKey {
        try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: bytes)
    }

    func identityKeys(_ who: String) throws -> IdentityKeys {
        IdentityKeys(
            identity: try IdentityKey(seed: keys.bytes("\(who)IdentitySeed")),
            identityDH: try x25519(keys.bytes("\(who)IdentityDH")),
            noiseStatic: .init(),
            databaseKey: SymmetricKey(size: .bits256)
        )
    }

    func ratchetKeys(_ who: String) throws -> FixedRatchetKeys {
        let list = try #require(keys["\(who)RatchetKeys"] as? [String])
        return FixedRatchetKeys(keys: try list.map { try x25519(Hex.decodeLowercase($0)!) })
    }

    func prekeyBundle() throws -> PrekeyBundle {
        let expires = UInt64(try bundle.integer("expiresAt"))
        func record(_ purpose: SignaturePurpose, _ name: String) throws -> SignedPrekey {
            SignedPrekey(
                purpose: purpose,
                id: UInt32(try bundle.integer("\(name)ID")),
                expiresAt: expires,
                publicKey: try bundle.bytes(name),
                signature: try bundle.bytes("\(name)Signature")
            )
        }
        return PrekeyBundle(
            identityKey: try IdentityPublicKey(rawRepresentation: bundle.bytes("identityKey")),
            identityDH: KeyBinding(
                purpose: .identityDH,
                publicKey: Data(try bundle.bytes("identityDHKey")),
                signature: Data(try bundle.bytes("identityDHSignature"))
            ),
            signedPrekey: try record(.signedPrekey, "signedPrekey"),
            pqPrekey: try record(.pqPrekey, "pqPrekey"),
            envelopeKey: try record(.envelopeKey, "envelopeKey"),
            oneTimePrekey: OneTimePrekey(
                id: UInt32(try bundle.integer("oneTimePrekeyID")), publicKey: try bundle.bytes("oneTimePrekey"))
        )
    }

    @Test func bundleKeysAndSignaturesMatchOurs() throws {
        let bob = try identityKeys("bob")
        let now = UInt64(try vector.integer("now"))
        let parsed = try prekeyBundle()
        _ = try parsed.verified(now: now)
        #expect(Array(bob.identity.publicKey.rawRepresentation) == (try bundle.bytes("identityKey")))
        // Our signatures over the same fields are byte-identical (Ed25519 is deterministic).
        let expires = UInt64(try bundle.integer("expiresAt"))
        let ours = SignedPrekey(
            purpose: .signedPrekey, id: 11, expiresAt: expires,
            publicKey: Array(try x25519(keys.bytes("bobSignedPrekey")).publicKey.rawRepresentation),
            identity: bob.identity
        )
        #expect(ours.signature == (try bundle.bytes("signedPrekeySignature")))
        #expect(Array(bob.publicIdentity.identityDH.signature) == (try bundle.bytes("identityDHSignature")))
    }

    @Test func mlkemAndXWingKeysFromTheirSeedsMatchKyberPy() throws {
        let pq = try MLKEM768.PrivateKey(seedRepresentation: keys.bytes("bobPQPrekeySeed"), publicKey: nil)
        #expect(Array(pq.publicKey.rawRepresentation) == (try bundle.bytes("pqPrekey")))
        let secret = try pq.decapsulate(pqxdh.bytes("kemCiphertext"))
        #expect(secret.withUnsafeBytes { Array($0) } == (try pqxdh.bytes("kemSharedSecret")))
        let xwing = try XWingMLKEM768X25519.PrivateKey(
            seedRepresentation: keys.bytes("bobEnvelopeKeySeed"), publicKey: nil)
        #expect(Array(xwing.publicKey.rawRepresentation) == (try bundle.bytes("envelopeKey")))
    }

    @Test func pqxdhSecretAssociatedDataAndHeaderMatch() throws {
        let alice = try identityKeys("alice")
        let bob = try identityKeys("bob")
        let now = UInt64(try vector.integer("now"))
        let kem = FixedKEM(ciphertext: try pqxdh.bytes("kemCiphertext"), secret: try pqxdh.bytes("kemSharedSecret"))
        let initiation = try PQXDH.initiate(
            from: alice, to: try prekeyBundle(), now: now, ephemeral: try x25519(keys.bytes("aliceEphemeral")), kem: kem
        )
        #expect(initiation.sharedSecret == (try pqxdh.bytes("sharedSecret")))
        #expect(initiation.associatedData == (try pqxdh.bytes("associatedData")))
        #expect(initiation.header.encoded == (try pqxdh.bytes("initialHeader")))
        let response = try PQXDH.respond(
            as: bob,
            to: initiation.header,
            signedPrekey: try x25519(keys.bytes("bobSignedPrekey")),
            pqPrekey: try MLKEM768.PrivateKey(seedRepresentation: keys.bytes("bobPQPrekeySeed"), publicKey: nil),
            oneTimePrekey: try x25519(keys.bytes("bobOneTimePrekey"))
        )
        #expect(response.sharedSecret == initiation.sharedSecret)
    }

    @Test func handshakeWithoutOneTimePrekeyMatches() throws {
        let alice = try identityKeys("alice")
        let now = UInt64(try vector.integer("now"))
        let expected = try vector.object("pqxdhWithoutOneTimePrekey")
        let kem = FixedKEM(ciphertext: try pqxdh.bytes("kemCiphertext"), secret: try pqxdh.bytes("kemSharedSecret"))
        var parts = PrekeyBundleParts(try prekeyBundle())
        parts.oneTimePrekey = nil
        let initiation = try PQXDH.initiate(
            from: alice, to: parts.bundle, now: now, ephemeral: try x25519(keys.bytes("aliceEphemeral")), kem: kem
        )
        #expect(initiation.sharedSecret == (try expected.bytes("sharedSecret")))
        #expect(initiation.header.encoded == (try expected.bytes("initialHeader")))
    }

    @Test func responderAcceptsTheVectorsFirstMessageFromTheWire() throws {
        // Bob's real receiving path: the wire bytes through InitialHeader.decode, the replay
        // cache and the prekey lookup of a store holding the vector's private keys.
        let bob = try identityKeys("bob")
        let now = UInt64(try vector.integer("now"))
        let identity = bob.identity
        let expires = UInt64(try bundle.integer("expiresAt"))
        let spk = try x25519(keys.bytes("bobSignedPrekey"))
        let pq = try MLKEM768.PrivateKey(seedRepresentation: keys.bytes("bobPQPrekeySeed"), publicKey: nil)
        let envelope = try XWingMLKEM768X25519.PrivateKey(
            seedRepresentation: keys.bytes("bobEnvelopeKeySeed"), publicKey: nil)
        let generation = PrekeyStore.Generation(
            createdAt: now,
            retiredAt: nil,
            signedPrekey: spk,
            signedPrekeyRecord: SignedPrekey(
                purpose: .signedPrekey, id: 11, expiresAt: expires, publicKey: Array(spk.publicKey.rawRepresentation),
                identity: identity),
            pqPrekey: pq,
            pqPrekeyRecord: SignedPrekey(
                purpose: .pqPrekey, id: 12, expiresAt: expires, publicKey: Array(pq.publicKey.rawRepresentation),
                identity: identity),
            envelopeKey: envelope,
            envelopeKeyRecord: SignedPrekey(
                purpose: .envelopeKey, id: 14, expiresAt: expires,
                publicKey: Array(envelope.publicKey.rawRepresentation),
                identity: identity)
        )
        let store = PrekeyStore(
            generations: [generation], oneTime: [13: try x25519(keys.bytes("bobOneTimePrekey"))], nextID: 100)
        var bobKeys = try ratchetKeys("bob")
        let first = try vector.objects("messages")[0]
        let accepted = try store.acceptingInitialMessage(
            try first.bytes("wire"), keys: bob, now: now, ratchetKeys: &bobKeys)
        #expect(accepted.plaintext == (try first.bytes("plaintext")))
        #expect(accepted.initiator == (try identityKeys("alice")).identity.publicKey)
        #expect(accepted.store.oneTimeCount == 0)
        let bobFirstReceive = try vector.objects("steps").first {
            $0["party"] as? String == "bob" && $0["action"] as? String == "receive"
        }
        try expectState(
            accepted.session, equals: try #require(bobFirstReceive).object("state"),
            step: "bob receives m0 from the wire")
    }

    @Test func conversationMatchesEveryMessageAndState() throws {
        let alice = try identityKeys("alice")
        let bob = try identityKeys("bob")
        let now = UInt64(try vector.integer("now"))
        let messages = try vector.objects("messages")
        let steps = try vector.objects("steps")
        var aliceKeys = try ratchetKeys("alice")
        var bobKeys = try ratchetKeys("bob")
        let kem = FixedKEM(ciphertext: try pqxdh.bytes("kemCiphertext"), secret: try pqxdh.bytes("kemSharedSecret"))

        let initiation = try PQXDH.initiate(
            from: alice, to: try prekeyBundle(), now: now, ephemeral: try x25519(keys.bytes("aliceEphemeral")), kem: kem
        )
        var sessions: [String: RatchetSession] = [
            "alice": try RatchetSession.initiator(
                sharedSecret: initiation.sharedSecret,
                associatedData: initiation.associatedData,
                responderRatchetKey: initiation.responderRatchetKey,
                keys: &aliceKeys
            ),
            "bob": RatchetSession.responder(
                sharedSecret: try pqxdh.bytes("sharedSecret"),
                associatedData: try pqxdh.bytes("associatedData"),
                signedPrekey: try x25519(keys.bytes("bobSignedPrekey"))
            ),
        ]
        var sent: [Int: RatchetMessage] = [:]
        for step in steps {
            let party = try #require(step["party"] as? String)
            let index = try step.integer("message")
            let expected = messages[index]
            var session = try #require(sessions[party])
            if step["action"] as? String == "send" {
                let (next, message) = try session.encrypting(try expected.bytes("plaintext"))
                #expect(message.encoded == (try expected.bytes("ratchetMessage")), "m\(index)")
                if index == 0 {
                    #expect(initiation.header.encoded + message.encoded == (try expected.bytes("wire")))
                }
                sent[index] = message
                session = next
            } else {
                let message = try RatchetMessage(decoding: try expected.bytes("ratchetMessage"))
                var source = party == "alice" ? aliceKeys : bobKeys
                let (next, plaintext) = try session.decrypting(message, now: now, keys: &source)
                if party == "alice" { aliceKeys = source } else { bobKeys = source }
                #expect(plaintext == (try expected.bytes("plaintext")), "m\(index)")
                session = next
            }
            sessions[party] = session
            try expectState(session, equals: try step.object("state"), step: "\(step["action"]!) m\(index) by \(party)")
        }
        #expect(sent.count == messages.count)
    }

    func expectState(_ session: RatchetSession, equals state: [String: Any], step: String) throws {
        #expect(session.rootKey == (try state.bytes("rootKey")), "\(step): root key")
        #expect(
            Array(session.sendingKey.publicKey.rawRepresentation) == (try state.bytes("sendingRatchetKey")), "\(step)")
        #expect(session.receivingKey == (try? state.bytes("receivingRatchetKey")), "\(step): receiving ratchet key")
        #expect(session.sending?.key == (try? state.bytes("sendingChainKey")), "\(step): sending chain key")
        #expect(Int(session.sending?.count ?? 0) == (try state.integer("sendingCount")), "\(step)")
        #expect(session.receiving?.key == (try? state.bytes("receivingChainKey")), "\(step): receiving chain key")
        #expect(Int(session.receiving?.count ?? 0) == (try state.integer("receivingCount")), "\(step)")
        #expect(Int(session.previousChainLength) == (try state.integer("previousChainLength")), "\(step)")
        #expect(session.skipped.count == (try state.integer("skippedKeys")), "\(step)")
    }
}

/// The published vectors of the primitives PQXDH and the ratchet compose.
@Suite struct PrimitiveVectorTests {
    let vector: [String: Any]

    init() throws {
        vector = try TestVectors.load("primitives.json")
    }

    @Test func x25519MatchesRFC7748() throws {
        for item in try vector.objects("x25519") {
            let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: item.bytes("scalar"))
            let peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: item.bytes("u"))
            let shared = try key.sharedSecretFromKeyAgreement(with: peer).withUnsafeBytes { Array($0) }
            #expect(shared == (try item.bytes("output")), "\(item["source"]!)")
        }
    }

    @Test func ed25519MatchesRFC8032() throws {
        for item in try vector.objects("ed25519") {
            let key = try Curve25519.Signing.PrivateKey(rawRepresentation: item.bytes("secret"))
            #expect(Array(key.publicKey.rawRepresentation) == (try item.bytes("public")))
            let message = try item.bytes("message")
            #expect(key.publicKey.isValidSignature(try item.bytes("signature"), for: message), "\(item["source"]!)")
            #expect(Array(try key.signature(for: message)) == (try item.bytes("signature")), "\(item["source"]!)")
        }
    }

    @Test func hkdfMatchesRFC5869() throws {
        for item in try vector.objects("hkdfSha256") {
            let okm = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: try item.bytes("ikm")),
                salt: try item.bytes("salt"),
                info: try item.bytes("info"),
                outputByteCount: try item.integer("length")
            )
            #expect(okm.withUnsafeBytes { Array($0) } == (try item.bytes("okm")), "\(item["source"]!)")
        }
    }
    /// AES-256-GCM, through swift-crypto's `AES.GCM` and through the kept context the link and the
    /// store use (``AESGCMContext``): both give the published ciphertext and tag, and the context
    /// opens them.
    @Test func aes256GCMMatchesTheGCMSpecification() throws {
        for item in try vector.objects("aes256gcm") {
            let key = SymmetricKey(data: try item.bytes("key"))
            let (nonce, plaintext, aad) = (try item.bytes("nonce"), try item.bytes("plaintext"), try item.bytes("aad"))
            let (ciphertext, tag) = (try item.bytes("ciphertext"), try item.bytes("tag"))
            let box = try AES.GCM.seal(plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce), authenticating: aad)
            #expect(Array(box.ciphertext) == ciphertext, "\(item["source"]!)")
            #expect(Array(box.tag) == tag, "\(item["source"]!)")
            let context = AESGCMContext(key: key)
            let sealed = nonce.withUnsafeBytes { context.seal(plaintext, nonce: $0, authenticating: aad) }
            #expect(Array(sealed.ciphertext) == ciphertext, "\(item["source"]!)")
            #expect(Array(sealed.tag) == tag, "\(item["source"]!)")
            let opened = try context.open(combined: nonce + ciphertext + tag, authenticating: aad)
            #expect(Array(opened) == plaintext, "\(item["source"]!)")
        }
    }
}
