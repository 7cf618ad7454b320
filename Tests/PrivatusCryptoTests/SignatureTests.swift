import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import Testing

@Suite struct SignatureTests {
    static let purposes = SignaturePurpose.all
    static let pairs: [(SignaturePurpose, SignaturePurpose)] = purposes.flatMap { signed in
        purposes.filter { $0 != signed }.map { (signed, $0) }
    }

    @Test(arguments: purposes)
    func signatureVerifiesForItsOwnPurpose(_ purpose: SignaturePurpose) {
        let identity = IdentityKey()
        let fields: [UInt8] = Array("fields".utf8)
        let signature = identity.signature(over: fields, purpose: purpose)
        #expect(identity.publicKey.isValidSignature(signature, over: fields, purpose: purpose))
    }

    @Test(arguments: pairs)
    func signatureForOnePurposeFailsForEveryOther(_ signed: SignaturePurpose, _ checked: SignaturePurpose) {
        let identity = IdentityKey()
        let fields: [UInt8] = Array(repeating: 0x42, count: 32)
        let signature = identity.signature(over: fields, purpose: signed)
        #expect(!identity.publicKey.isValidSignature(signature, over: fields, purpose: checked))
    }

    @Test func signatureFailsForOtherFieldsOrAnotherIdentity() {
        let identity = IdentityKey()
        let signature = identity.signature(over: [1, 2, 3], purpose: .dhtRecord)
        #expect(!identity.publicKey.isValidSignature(signature, over: [1, 2, 4], purpose: .dhtRecord))
        #expect(!IdentityKey().publicKey.isValidSignature(signature, over: [1, 2, 3], purpose: .dhtRecord))
    }

    @Test func signatureIsPlainEd25519OverTheTaggedMessage() throws {
        // RFC 8032 §7.1 test 1 key: the seed gives the published public key, and our signature is a
        // standard Ed25519 signature over "Privatus-v1/" ‖ purpose ‖ 0x00 ‖ fields.
        let seed = Hex.decodeLowercase("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")!
        let identity = try IdentityKey(seed: seed)
        #expect(
            Hex.encode(identity.publicKey.rawRepresentation)
                == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        #expect(identity.publicKey.peerID.hex == "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9")
        let signature = identity.signature(over: [7], purpose: .presence)
        let raw = try Curve25519.Signing.PublicKey(rawRepresentation: identity.publicKey.rawRepresentation)
        #expect(raw.isValidSignature(signature, for: Array("Privatus-v1/presence".utf8) + [0, 7]))
        #expect(!raw.isValidSignature(signature, for: [7]))
    }
}

@Suite struct KeyBindingTests {
    @Test func bindingReturnsTheVeryKeyItSigned() throws {
        let identity = IdentityKey()
        let key = Curve25519.KeyAgreement.PrivateKey().publicKey
        let binding = KeyBinding(key: key, purpose: .noiseStatic, identity: identity)
        let verified = try binding.verifiedKey(signedBy: identity.publicKey)
        #expect(verified.rawRepresentation == key.rawRepresentation)
    }

    @Test func bindingRefusesAnotherKeyPurposeOrSigner() {
        let identity = IdentityKey()
        let binding = KeyBinding(
            key: Curve25519.KeyAgreement.PrivateKey().publicKey, purpose: .noiseStatic, identity: identity)
        let swappedKey = KeyBinding(
            purpose: .noiseStatic,
            publicKey: Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation,
            signature: binding.signature
        )
        let relabelled = KeyBinding(purpose: .identityDH, publicKey: binding.publicKey, signature: binding.signature)
        #expect(throws: KeyError.invalidSignature) { try swappedKey.verifiedKey(signedBy: identity.publicKey) }
        #expect(throws: KeyError.invalidSignature) { try relabelled.verifiedKey(signedBy: identity.publicKey) }
        #expect(throws: KeyError.invalidSignature) { try binding.verifiedKey(signedBy: IdentityKey().publicKey) }
    }

    @Test func publicIdentityValidatesAndMatchesOnlyItsOwnKeys() throws {
        let keys = IdentityKeys()
        let identity = keys.publicIdentity
        try identity.validate()
        #expect(identity.matches(keys))
        #expect(!identity.matches(IdentityKeys()))
        // The identity-DH binding presented as the Noise static one must fail: purposes differ.
        let crossed = PublicIdentity(
            identityKey: identity.identityKey,
            identityDH: identity.identityDH,
            noiseStatic: KeyBinding(
                purpose: .noiseStatic, publicKey: identity.identityDH.publicKey,
                signature: identity.identityDH.signature)
        )
        #expect(throws: KeyError.invalidSignature) { try crossed.validate() }
    }
}
