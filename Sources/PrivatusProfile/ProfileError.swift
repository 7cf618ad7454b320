import PrivatusCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a profile operation failed. Descriptions name paths, never keys, passwords or peers.
public enum ProfileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No profile exists at the path.
    case missing(path: String)
    /// A profile already exists at the path.
    case exists(path: String)
    /// Another process holds the profile's lock.
    case inUse(path: String)
    /// The directory holds files that are not part of a profile.
    case notEmpty(path: String)
    /// The keystore could not be opened or sealed.
    case keystore(KeystoreError)
    /// The public identity file does not match the sealed keys or its signatures fail.
    case identityMismatch(path: String)
    /// A profile file is not what it should be (unreadable JSON, unknown version).
    case damagedFile(path: String)
    /// A profile file is larger than it can be.
    case fileTooLarge(path: String)
    /// The keystore changed while this process was working with it.
    case concurrentChange(path: String)
    /// A system call failed.
    case io(operation: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case .missing(let path): "no profile at \(path) (create one with `privatus init`)"
        case .exists(let path): "a profile already exists at \(path)"
        case .inUse(let path): "the profile at \(path) is in use by another privatus process"
        case .notEmpty(let path): "\(path) is not empty and holds no profile; choose an empty or new directory"
        case .keystore(let error): error.description
        case .identityMismatch(let path): "the public identity file \(path) does not match the keystore"
        case .damagedFile(let path): "the profile file \(path) is damaged or of an unknown version"
        case .fileTooLarge(let path): "the file \(path) is too large"
        case .concurrentChange(let path): "the keystore at \(path) changed meanwhile; try again"
        case .io(let operation, let path, let code): "\(operation) \(path): \(String(cString: strerror(code)))"
        }
    }
}
