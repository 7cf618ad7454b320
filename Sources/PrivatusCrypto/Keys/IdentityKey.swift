import Crypto
import Foundation
import PrivatusCore

/// The private half of a user's identity: one Ed25519 key.
///
/// It signs only through ``signature(over:purpose:)``, so every signature it makes is
/// domain-separated by a ``SignaturePurpose``.
public struct IdentityKey: Sendable {
    let privateKey: Curve25519.Signing.PrivateKey

    /// Generates a new random identity.
    public init() {
        self.privateKey = Curve25519.Signing.PrivateKey()
    }

    /// Restores an identity from its 32-byte seed.
    public init(seed: some ContiguousBytes) throws(KeyError) {
        do {
            self.privateKey = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        } catch {
            throw KeyError.invalidKeyEncoding
        }
    }

    /// The 32-byte seed, for sealing in the keystore only.
    public var seed: Data { privateKey.rawRepresentation }

    /// The public half.
    public var publicKey: IdentityPublicKey {
        IdentityPublicKey(privateKey.publicKey)
    }

    /// Signs `"Privatus-v1/" ‖ purpose ‖ 0x00 ‖ fields`.
    public func signature(over fields: some Sequence<UInt8>, purpose: SignaturePurpose) -> Data {
        do {
            return try privateKey.signature(for: purpose.signedMessage(over: fields))
        } catch {
            // BoringSSL's Ed25519 signing cannot fail for a valid key; a failure is a bug.
            preconditionFailure("Ed25519 signing failed")
        }
    }
}

/// The public half of an identity; its digest is the ``PeerID``.
public struct IdentityPublicKey: Sendable, Hashable {
    let key: Curve25519.Signing.PublicKey

    init(_ key: Curve25519.Signing.PublicKey) {
        self.key = key
    }

    /// Parses the 32-byte raw Ed25519 public key.
    public init(rawRepresentation: some ContiguousBytes) throws(KeyError) {
        do {
            self.key = try Curve25519.Signing.PublicKey(rawRepresentation: rawRepresentation)
        } catch {
            throw KeyError.invalidKeyEncoding
        }
    }

    /// The 32-byte raw public key.
    public var rawRepresentation: Data { key.rawRepresentation }

    /// SHA-256 of the raw public key.
    public var peerID: PeerID { PeerID(identityPublicKey: key.rawRepresentation) }

    /// Whether `signature` was made by this identity over `fields` for exactly `purpose`.
    public func isValidSignature(
        _ signature: some DataProtocol,
        over fields: some Sequence<UInt8>,
        purpose: SignaturePurpose
    ) -> Bool {
        key.isValidSignature(signature, for: purpose.signedMessage(over: fields))
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.key.rawRepresentation == rhs.key.rawRepresentation
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(key.rawRepresentation)
    }
}

/// Why key material was refused.
public enum KeyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bytes are not a key of the expected kind and length.
    case invalidKeyEncoding
    /// A signature does not verify for the purpose and identity it claims.
    case invalidSignature

    public var description: String {
        switch self {
        case .invalidKeyEncoding: "key material has the wrong encoding"
        case .invalidSignature: "a key binding signature does not verify"
        }
    }
}
