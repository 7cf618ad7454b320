#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive advisory lock on `<profile>/lock`: held while a profile is created, while its
/// password changes and, later, while a node runs. The kernel drops it when the process exits.
public final class ProfileLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock without waiting.
    /// - Throws: ``ProfileError/inUse(path:)`` when another process holds it.
    public init(profile: ProfileLayout) throws(ProfileError) {
        let path = profile.lockFile
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK { throw .inUse(path: profile.directory) }
            throw .io(operation: "lock", path: path, errno: code)
        }
        self.descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
