import Foundation
import PrivatusCore
import PrivatusCrypto

/// How costly the keystore's scrypt derivation is to be.
public enum KeystoreCost: Sendable, Hashable {
    /// Calibrated on this machine to 250–750 ms, never below ``ScryptParameters/floor``.
    case calibrated
    /// Fixed parameters. Below the floor only for tests, through an option that warns.
    case fixed(ScryptParameters)
}

/// An unlocked profile: its keys, name and the public identity checked against them.
public struct UnlockedProfile: Sendable {
    public let layout: ProfileLayout
    public let contents: KeystoreContents
    public let publicIdentity: PublicIdentity
    public let parameters: ScryptParameters
    /// The keystore bytes this was unlocked from, to detect a concurrent change before re-sealing.
    let sealedKeystore: [UInt8]

    public var peerID: PeerID { publicIdentity.peerID }
    public var name: String { contents.name }
    /// The invite to give others: `privatus://<peerid>` (addresses are added once nodes run).
    public var invite: String { "privatus://" + peerID.hex }
}

/// Creating, unlocking and re-sealing a profile on disk.
public enum Profile {
    /// Creates a new profile in `layout.directory`, which may be missing, empty, or hold leftovers
    /// of an interrupted `init`. The keystore is written last: it is the commit point.
    /// - Throws: ``ProfileError/exists(path:)`` for an existing profile,
    ///   ``ProfileError/inUse(path:)`` when a concurrent `init` holds the lock.
    public static func create(
        at layout: ProfileLayout,
        name: String,
        password: String,
        cost: KeystoreCost = .calibrated
    ) throws(ProfileError) -> UnlockedProfile {
        // Validate everything before touching the disk.
        do throws(KeystoreError) {
            try Keystore.validateName(name)
        } catch {
            throw .keystore(error)
        }
        guard !password.isEmpty else { throw .keystore(.emptyPassword) }
        // Checked before the directory is created or its mode changed (a foreign directory is
        // left alone), and again under the lock, where a concurrent `init` cannot interleave.
        try checkCreatable(layout)
        try FileIO.makeDirectory(layout.directory)
        let lock = try ProfileLock(profile: layout)
        defer { withExtendedLifetime(lock) {} }
        try checkCreatable(layout)

        let contents = KeystoreContents(keys: IdentityKeys(), name: name)
        let (sealed, parameters) = try seal(contents, password: password, cost: cost)
        let identity = contents.keys.publicIdentity
        try FileIO.writeAtomically(encode(PublicIdentityFile(identity)), to: layout.identityFile)
        try FileIO.writeAtomically(encode(ProfileConfig.random()), to: layout.configFile)
        try FileIO.writeAtomically(sealed, to: layout.keystoreFile)
        return UnlockedProfile(
            layout: layout,
            contents: contents,
            publicIdentity: identity,
            parameters: parameters,
            sealedKeystore: sealed
        )
    }

    /// Unlocks the keystore and checks the public identity file against the sealed keys. Writes
    /// nothing.
    public static func unlock(_ layout: ProfileLayout, password: String) throws(ProfileError) -> UnlockedProfile {
        try unlock(layout, password: password, keystoreBytes: readKeystore(layout))
    }

    /// Changes the password of a profile unlocked with the old one: re-seals the same keys under
    /// the new password with a freshly calibrated cost and a new salt, replacing the file
    /// atomically.
    /// - Throws: ``ProfileError/inUse(path:)`` while another process (a running node) holds the
    ///   profile's lock; ``ProfileError/concurrentChange(path:)`` when the keystore changed since
    ///   it was unlocked.
    public static func changePassword(
        of unlocked: UnlockedProfile,
        to newPassword: String,
        cost: KeystoreCost = .calibrated
    ) throws(ProfileError) -> UnlockedProfile {
        guard !newPassword.isEmpty else { throw .keystore(.emptyPassword) }
        let layout = unlocked.layout
        let lock = try ProfileLock(profile: layout)
        defer { withExtendedLifetime(lock) {} }
        guard try readKeystore(layout) == unlocked.sealedKeystore else {
            throw .concurrentChange(path: layout.directory)
        }
        let (sealed, parameters) = try seal(unlocked.contents, password: newPassword, cost: cost)
        try FileIO.writeAtomically(sealed, to: layout.keystoreFile)
        return UnlockedProfile(
            layout: layout,
            contents: unlocked.contents,
            publicIdentity: unlocked.publicIdentity,
            parameters: parameters,
            sealedKeystore: sealed
        )
    }

    /// Reads `config.json`.
    public static func config(_ layout: ProfileLayout) throws(ProfileError) -> ProfileConfig {
        let bytes = try read(layout.configFile, maximumSize: ProfileConfig.maximumSize, layout: layout)
        guard let config = try? JSONDecoder().decode(ProfileConfig.self, from: Data(bytes)),
            config.version == ProfileConfig.currentVersion, config.isValid
        else {
            throw .damagedFile(path: layout.configFile)
        }
        return config
    }

    // MARK: - Internals

    /// Refuses a directory that holds a profile (``ProfileError/exists(path:)``) or anything but
    /// leftovers of an interrupted `init` (``ProfileError/notEmpty(path:)``).
    static func checkCreatable(_ layout: ProfileLayout) throws(ProfileError) {
        if FileIO.exists(layout.keystoreFile) { throw .exists(path: layout.directory) }
        guard FileIO.exists(layout.directory) else { return }
        guard FileIO.isDirectory(layout.directory) else { throw .notEmpty(path: layout.directory) }
        let entries = try FileIO.entries(of: layout.directory)
        // A keystore that appeared since the first check: a concurrent `init` just won.
        if entries.contains("keystore") { throw .exists(path: layout.directory) }
        guard entries.allSatisfy(ProfileLayout.isLeftoverOfInit) else { throw .notEmpty(path: layout.directory) }
    }

    static func unlock(
        _ layout: ProfileLayout, password: String, keystoreBytes: [UInt8]
    ) throws(ProfileError) -> UnlockedProfile {
        let contents: KeystoreContents
        let parameters: ScryptParameters
        do {
            parameters = try Keystore.parameters(of: keystoreBytes)
            contents = try Keystore.open(keystoreBytes, password: password)
        } catch {
            throw .keystore(error)
        }
        let file = try read(layout.identityFile, maximumSize: PublicIdentityFile.maximumSize, layout: layout)
        guard let decoded = try? JSONDecoder().decode(PublicIdentityFile.self, from: Data(file)),
            decoded.version == PublicIdentityFile.currentVersion
        else {
            throw .damagedFile(path: layout.identityFile)
        }
        guard let identity = try? decoded.verifiedIdentity(), identity.matches(contents.keys) else {
            throw .identityMismatch(path: layout.identityFile)
        }
        return UnlockedProfile(
            layout: layout,
            contents: contents,
            publicIdentity: identity,
            parameters: parameters,
            sealedKeystore: keystoreBytes
        )
    }

    static func readKeystore(_ layout: ProfileLayout) throws(ProfileError) -> [UInt8] {
        do {
            return try FileIO.readFile(layout.keystoreFile, maximumSize: Keystore.maximumFileSize)
        } catch .fileTooLarge {
            throw .keystore(.tooLarge)
        } catch .io(_, _, ENOENT) {
            throw .missing(path: layout.directory)
        }
    }

    static func read(_ path: String, maximumSize: Int, layout: ProfileLayout) throws(ProfileError) -> [UInt8] {
        do {
            return try FileIO.readFile(path, maximumSize: maximumSize)
        } catch .io(_, _, ENOENT) {
            throw .damagedFile(path: path)
        }
    }

    static func seal(
        _ contents: KeystoreContents, password: String, cost: KeystoreCost
    ) throws(ProfileError) -> ([UInt8], ScryptParameters) {
        do {
            switch cost {
            case .calibrated:
                return try Keystore.sealCalibrated(contents, password: password)
            case .fixed(let parameters):
                return (try Keystore.seal(contents, password: password, parameters: parameters), parameters)
            }
        } catch let error as KeystoreError {
            throw .keystore(error)
        } catch {
            throw .keystore(.sealFailed)
        }
    }

    static func encode(_ value: some Encodable) throws(ProfileError) -> [UInt8] {
        do {
            return Array(try JSONEncoder.profile.encode(value)) + [0x0a]
        } catch {
            preconditionFailure("encoding profile JSON cannot fail")
        }
    }
}
