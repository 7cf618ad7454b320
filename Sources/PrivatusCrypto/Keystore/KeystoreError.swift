/// Why a keystore could not be opened or written. Descriptions name no key, password or peer.
public enum KeystoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The password does not match the keystore's key-check value.
    case wrongPassword
    /// The bytes do not start like a Privatus keystore.
    case notAKeystore
    /// The file is shorter than its own header says.
    case truncated
    /// The integrity digest, the authenticated decryption or the sealed contents do not check out.
    case damaged
    /// The keystore was written in a format this program does not know.
    case unsupportedVersion(UInt16)
    /// The scrypt parameters are outside the accepted bounds.
    case parametersOutOfRange
    /// The file is larger than any keystore can be.
    case tooLarge
    /// A display name is empty, too long or contains control characters.
    case invalidName
    /// An empty password was given for a new keystore.
    case emptyPassword
    /// scrypt failed, for instance for lack of memory at a large cost.
    case derivationFailed
    /// Sealing failed (a fault of the cryptographic library, not of the input).
    case sealFailed

    public var description: String {
        switch self {
        case .wrongPassword: "wrong password"
        case .notAKeystore: "the keystore file is not a Privatus keystore"
        case .truncated: "the keystore file is truncated"
        case .damaged: "the keystore file is damaged (integrity check failed)"
        case .unsupportedVersion(let version):
            "the keystore is of format version \(version), which this privatus does not support"
        case .parametersOutOfRange: "the keystore's key-derivation parameters are out of the accepted range"
        case .tooLarge: "the keystore file is too large to be a Privatus keystore"
        case .invalidName: "a name must be 1 to 64 characters without control characters"
        case .emptyPassword: "the password must not be empty"
        case .derivationFailed: "the key derivation failed (not enough memory for the keystore's cost?)"
        case .sealFailed: "sealing the keystore failed"
        }
    }
}
