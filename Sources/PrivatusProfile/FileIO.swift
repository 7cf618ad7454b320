#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX file operations with the modes and durability the profile needs.
public enum FileIO {
    /// Sets the process umask so every file and directory created is private to the user.
    public static func restrictUmask() {
        umask(0o077)
    }

    /// Whether something exists at `path` (without following a final symbolic link).
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Whether `path` is a directory.
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The permission bits of `path`.
    public static func mode(_ path: String) throws(ProfileError) -> mode_t {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw .io(operation: "stat", path: path, errno: errno) }
        return info.st_mode & 0o7777
    }

    /// The names in a directory, without `.` and `..`.
    public static func entries(of directory: String) throws(ProfileError) -> [String] {
        guard let handle = opendir(directory) else { throw .io(operation: "opendir", path: directory, errno: errno) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Creates `path` and any missing parents, each with `mode`; sets `mode` on `path` itself.
    public static func makeDirectory(_ path: String, mode: mode_t = 0o700) throws(ProfileError) {
        if isDirectory(path) {
            guard chmod(path, mode) == 0 else { throw .io(operation: "chmod", path: path, errno: errno) }
            return
        }
        let parent = parentDirectory(of: path)
        if parent != path, !parent.isEmpty, !isDirectory(parent) {
            try makeDirectory(parent, mode: mode)
        }
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw .io(operation: "mkdir", path: path, errno: errno)
        }
        guard chmod(path, mode) == 0 else { throw .io(operation: "chmod", path: path, errno: errno) }
    }

    /// What ``readFile(_:maximumSize:kind:)`` accepts at a path.
    public enum ReadableKind: Sendable {
        /// A regular file, not through a symbolic link: the files of a profile.
        case profileFile
        /// Anything readable, pipes included: a password file may be `<(…)` or `/dev/stdin`.
        case anyStream
    }

    /// Reads a whole file, refusing one larger than `maximumSize`: a regular file's size is
    /// checked before reading, and no more than `maximumSize + 1` bytes are ever read from a
    /// stream.
    /// - Throws: ``ProfileError/fileTooLarge(path:)``, ``ProfileError/damagedFile(path:)`` for a
    ///   profile file that is not a regular file, or an I/O error (`ENOENT` when missing).
    public static func readFile(
        _ path: String,
        maximumSize: Int,
        kind: ReadableKind = .profileFile
    ) throws(ProfileError) -> [UInt8] {
        let flags = kind == .profileFile ? O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK : O_RDONLY | O_CLOEXEC
        let fd = open(path, flags)
        guard fd >= 0 else {
            if errno == ELOOP { throw .damagedFile(path: path) }
            throw .io(operation: "open", path: path, errno: errno)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(operation: "stat", path: path, errno: errno) }
        let isRegular = (info.st_mode & S_IFMT) == S_IFREG
        if kind == .profileFile && !isRegular { throw .damagedFile(path: path) }
        guard !isRegular || Int(info.st_size) <= maximumSize else { throw .fileTooLarge(path: path) }
        var bytes = [UInt8](repeating: 0, count: isRegular ? Int(info.st_size) : min(maximumSize + 1, 64 * 1024))
        var done = 0
        while true {
            if done == bytes.count {
                guard bytes.count <= maximumSize else { throw .fileTooLarge(path: path) }
                bytes += [UInt8](repeating: 0, count: min(bytes.count + 1, maximumSize + 1 - bytes.count))
            }
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw .io(operation: "read", path: path, errno: errno) }
            if count == 0 { break }
            done += count
        }
        guard done <= maximumSize else { throw .fileTooLarge(path: path) }
        return Array(bytes[0..<done])
    }

    /// Replaces `path` atomically: writes a temporary file beside it with `mode`, fsyncs it,
    /// renames it over `path` and fsyncs the directory. A reader sees the old or the new content,
    /// never a mix, and a crash leaves one of them.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(ProfileError) {
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io(operation: "create", path: temporary, errno: errno) }
        var failure: ProfileError?
        var done = 0
        while failure == nil && done < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { failure = .io(operation: "write", path: temporary, errno: errno) } else { done += count }
        }
        if failure == nil && fchmod(fd, mode) != 0 { failure = .io(operation: "chmod", path: temporary, errno: errno) }
        if failure == nil && fsync(fd) != 0 { failure = .io(operation: "fsync", path: temporary, errno: errno) }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 {
            failure = .io(operation: "rename", path: path, errno: errno)
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
        try syncDirectory(parentDirectory(of: path))
    }

    /// fsyncs a directory so that a rename in it is durable.
    public static func syncDirectory(_ path: String) throws(ProfileError) {
        let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .io(operation: "fsync", path: path, errno: errno) }
    }

    /// The directory part of a path (`"."` for a bare name).
    public static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    /// Writes a file of any size in pieces to a temporary name beside `path`, then, on
    /// ``commit()``, fsyncs and renames it into place (0600). ``abandon()`` removes it.
    public final class StreamWriter: @unchecked Sendable {
        let path: String
        let temporary: String
        private var descriptor: Int32
        private var written = 0

        public init(path: String) throws(ProfileError) {
            self.path = path
            self.temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw .io(operation: "create", path: temporary, errno: errno) }
        }

        public func write(_ bytes: [UInt8]) throws(ProfileError) {
            var done = 0
            while done < bytes.count {
                let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, $0.count - done) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw .io(operation: "write", path: temporary, errno: errno) }
                done += count
            }
            written += done
        }

        /// Makes the file durable under its final name; returns its size.
        public func commit() throws(ProfileError) -> Int {
            guard descriptor >= 0 else { return written }
            defer { descriptor = -1 }
            guard fsync(descriptor) == 0 else {
                close(descriptor)
                throw .io(operation: "fsync", path: temporary, errno: errno)
            }
            close(descriptor)
            guard rename(temporary, path) == 0 else { throw .io(operation: "rename", path: path, errno: errno) }
            try FileIO.syncDirectory(FileIO.parentDirectory(of: path))
            return written
        }

        /// Removes the temporary file if it was not committed.
        public func abandon() {
            guard descriptor >= 0 else { return }
            close(descriptor)
            descriptor = -1
            unlink(temporary)
        }

        deinit { abandon() }
    }

    /// Reads a regular file in pieces, never past its size as it was at open.
    public final class StreamReader: @unchecked Sendable {
        private let descriptor: Int32
        let path: String
        /// The file's size at open.
        public let size: Int
        private var position = 0

        public init(path: String, maximumSize: Int = Int.max) throws(ProfileError) {
            self.path = path
            descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard descriptor >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
            var info = stat()
            guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                close(descriptor)
                throw .damagedFile(path: path)
            }
            guard Int(info.st_size) <= maximumSize else {
                close(descriptor)
                throw .fileTooLarge(path: path)
            }
            size = Int(info.st_size)
        }

        /// The bytes not yet read.
        public var remaining: Int { size - position }

        /// Reads up to `count` bytes (fewer only at the end of the file).
        public func read(_ count: Int) throws(ProfileError) -> [UInt8] {
            let wanted = min(count, remaining)
            var bytes = [UInt8](repeating: 0, count: wanted)
            var done = 0
            while done < wanted {
                let got = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + done, wanted - done) }
                if got < 0 && errno == EINTR { continue }
                guard got > 0 else {
                    if got == 0 { break }
                    throw .io(operation: "read", path: path, errno: errno)
                }
                done += got
            }
            position += done
            return Array(bytes[0..<done])
        }

        /// Reads exactly `count` bytes, or throws `failure` when the file ends first. `count` is
        /// checked against what remains before anything is allocated.
        public func readExactly(_ count: Int, or failure: some Error) throws -> [UInt8] {
            guard count <= remaining else { throw failure }
            let bytes = try read(count)
            guard bytes.count == count else { throw failure }
            return bytes
        }

        deinit { close(descriptor) }
    }
}
