import Foundation
import PrivatusCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The floor of `bench e2e`'s latency: the same path's shape with none of the product's work, so
/// that `latency_p50_ms` can be read against what this machine allows in the same run.
///
/// Three processes on loopback, as in the real measurement: the bench (the client), a sender and
/// a receiver (`privatus bench e2e-floor-peer`, internal). A 100-byte record goes from the client
/// to the sender, which writes one 4 KiB page for it into a file and `fdatasync`s it before
/// passing it on (the sender's durable commit); the receiver does the same before it answers
/// with an acknowledgement (its commit and receipt); the sender writes a page for the
/// acknowledgement without a sync (the receipt's commit at `synchronous=NORMAL`) and passes it
/// to the client, which times the record from its send. Each peer is one thread waiting in
/// `poll`, and handles everything that arrived together with one write and one sync (the nodes'
/// group commit). The files are written once before the run, so every page overwrites blocks
/// already on the disk (a WAL that has wrapped around): the cheapest sync this disk gives.
public enum E2EFloor {
    /// The hidden `bench` suite that runs a peer.
    public static let peerSuite = "e2e-floor-peer"
    /// A record's size (as `bench e2e`'s messages) and an acknowledgement's.
    static let recordBytes = E2ESuite.messageBytes
    static let ackBytes = 8
    static let pageBytes = 4096
    /// The size of each peer's file; pages go round it.
    static let fileBytes = 16 << 20

    public enum Role: String, Sendable {
        case sender, receiver
    }

    /// The peer's ready line: the port it accepts its one connection on.
    struct Ready: Codable {
        let port: Int
    }

    public struct FloorError: Error, CustomStringConvertible {
        public let description: String
    }

    // MARK: - The client (in the bench)

    /// Sends `messages` records at `rate` per second through a sender and a receiver started
    /// from `executable`, and returns each one's time from its send to its acknowledgement, in
    /// milliseconds (in sending order).
    public static func measure(executable: String, messages: Int, rate: Int) throws -> [Double] {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("privatus-bench-floor-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let receiver = try startPeer(executable, role: .receiver, directory: directory, next: nil)
        defer { stop(receiver.child) }
        let sender = try startPeer(executable, role: .sender, directory: directory, next: receiver.port)
        defer { stop(sender.child) }
        let socket = try connect(port: sender.port)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let sent = SendTimes(count: messages)
        let writerDone = DispatchSemaphore(value: 0)
        defer {
            // The writer stops at its next send, before the descriptor is closed.
            shutdown(socket, Int32(SHUT_RDWR))
            writerDone.wait()
            close(socket)
        }
        let writer = Thread {
            defer { writerDone.signal() }
            let start = ContinuousClock.now
            var record = [UInt8](repeating: UInt8(ascii: "x"), count: recordBytes)
            for index in 0..<messages {
                let wait = start + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate)) - ContinuousClock.now
                if wait > .microseconds(1) { usleep(UInt32(wait / .microseconds(1))) }
                withUnsafeBytes(of: UInt64(index).littleEndian) { record.replaceSubrange(0..<ackBytes, with: $0) }
                sent.times.withLock { $0[index] = .now }
                guard writeAll(socket, record) else { return }
            }
        }
        writer.start()
        var latencies = [Double?](repeating: nil, count: messages)
        var buffer = [UInt8](repeating: 0, count: ackBytes)
        for _ in 0..<messages {
            guard readExactly(socket, into: &buffer) else {
                throw FloorError(description: "the floor's sender stopped answering")
            }
            let now = ContinuousClock.now
            let number = buffer.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            guard let index = Int(exactly: number), index < messages, latencies[index] == nil,
                let at = sent.times.withLock({ $0[index] })
            else {
                throw FloorError(description: "the floor's sender answered a record never sent, or one twice")
            }
            latencies[index] = (now - at).milliseconds
        }
        return latencies.compactMap { $0 }
    }

    /// When each record was sent (nil: not yet).
    final class SendTimes: Sendable {
        let times: Mutex<[ContinuousClock.Instant?]>
        init(count: Int) { times = Mutex([ContinuousClock.Instant?](repeating: nil, count: count)) }
    }

    private static func startPeer(
        _ executable: String, role: Role, directory: String, next: Int?
    ) throws -> (child: ChildProcess, port: Int) {
        var arguments = ["bench", peerSuite, "--floor-role", role.rawValue, "--floor-directory", directory]
        if let next { arguments += ["--floor-next", String(next)] }
        let child = try ChildProcess.spawn(executable, arguments: arguments)
        do {
            let line = try child.readLine(timeout: .seconds(30))
            return (child, try JSONDecoder().decode(Ready.self, from: Data(line.utf8)).port)
        } catch {
            stop(child)
            throw FloorError(description: "the floor's \(role.rawValue) did not start: \(error)")
        }
    }

    private static func stop(_ child: ChildProcess) {
        child.send(SIGKILL)
        _ = child.collectOutput(limit: 4096)
        _ = child.wait()
    }

    // MARK: - A peer (its own process)

    /// Runs a peer: accepts one connection (the client's, or the sender's), connects to `next`
    /// (the sender, to the receiver), prints its ready line, and relays until a connection ends.
    /// Never outlives the bench that started it: it waits at most half a second at a time and
    /// ends once its parent has gone.
    public static func runPeer(role: Role, directory: String, next: Int?) throws {
        let parent = getppid()
        let file = open("\(directory)/\(role.rawValue).data", O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard file >= 0 else { throw FloorError(description: "opening the floor's file failed") }
        defer { close(file) }
        // Written once: every later page overwrites blocks already on the disk.
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        for offset in stride(from: 0, to: fileBytes, by: zeros.count) {
            guard pwrite(file, zeros, zeros.count, off_t(offset)) == zeros.count else {
                throw FloorError(description: "writing the floor's file failed")
            }
        }
        fsync(file)
        let listener = try listen()
        defer { close(listener) }
        var upstream: Int32 = -1
        if role == .sender {
            guard let next else { throw FloorError(description: "a sender needs --floor-next") }
            upstream = try connect(port: next)
        }
        let ready = try JSONEncoder().encode(Ready(port: try port(of: listener)))
        FileHandle.standardOutput.write(ready + Data("\n".utf8))
        var waiting = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
        while poll(&waiting, 1, 500) <= 0 {
            guard getppid() == parent else { return }
        }
        let client = accept(listener, nil, nil)
        guard client >= 0 else { throw FloorError(description: "accepting the floor's client failed") }
        defer { close(client) }
        noDelay(client)
        var pages = Pages(file: file)
        var fromClient = Reassembly(unit: recordBytes)
        var fromUpstream = Reassembly(unit: ackBytes)
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0)]
        if upstream >= 0 { fds.append(pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)) }
        while getppid() == parent {
            let ready = poll(&fds, nfds_t(fds.count), 500)
            guard ready >= 0 else {
                if errno == EINTR { continue }
                return
            }
            if fds[0].revents != 0 {
                guard let records = fromClient.read(from: client) else { return }
                if !records.isEmpty {
                    // A failed write or sync ends the peer: the bench reports that it stopped
                    // answering rather than a floor too low.
                    guard pages.write(count: records.count / recordBytes, sync: true) else { return }
                    if role == .sender {
                        guard writeAll(upstream, records) else { return }
                    } else {
                        var acks: [UInt8] = []
                        for start in stride(from: 0, to: records.count, by: recordBytes) {
                            acks += records[start..<start + ackBytes]
                        }
                        guard writeAll(client, acks) else { return }
                    }
                }
            }
            if fds.count > 1, fds[1].revents != 0 {
                guard let acks = fromUpstream.read(from: upstream) else { return }
                if !acks.isEmpty {
                    guard pages.write(count: acks.count / ackBytes, sync: false) else { return }
                    guard writeAll(client, acks) else { return }
                }
            }
        }
    }

    /// Pages written round the peer's file, one `pwrite` for all of a batch's.
    struct Pages {
        let file: Int32
        var offset = 0
        var buffer: [UInt8] = []

        init(file: Int32) { self.file = file }

        /// One page per item (at most the file's worth); false when the write or the sync failed.
        mutating func write(count: Int, sync: Bool) -> Bool {
            let bytes = min(count, fileBytes / pageBytes) * pageBytes
            if buffer.count < bytes { buffer = [UInt8](repeating: 0x5a, count: bytes) }
            if offset + bytes > fileBytes { offset = 0 }
            let written = buffer.withUnsafeBytes { pwrite(file, $0.baseAddress, bytes, off_t(offset)) }
            guard written == bytes else { return false }
            offset += bytes
            return !sync || fdatasync(file) == 0
        }
    }

    /// Whole units out of what a socket gives: nil once it has ended or failed.
    struct Reassembly {
        let unit: Int
        var partial: [UInt8] = []
        var scratch = [UInt8](repeating: 0, count: 64 << 10)

        init(unit: Int) { self.unit = unit }

        mutating func read(from socket: Int32) -> [UInt8]? {
            let count = scratch.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR || errno == EAGAIN { return [] }
            guard count > 0 else { return nil }
            partial += scratch[0..<count]
            let whole = partial.count - partial.count % unit
            defer { partial.removeFirst(whole) }
            return Array(partial[0..<whole])
        }
    }

    // MARK: - Sockets

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        return address
    }

    private static func listen() throws -> Int32 {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard listener >= 0, bound == 0, Glibc.listen(listener, 1) == 0 else {
            if listener >= 0 { close(listener) }
            throw FloorError(description: "listening on loopback failed")
        }
        return listener
    }

    private static func port(of listener: Int32) throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let got = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        guard got == 0 else { throw FloorError(description: "reading the listening port failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A TCP connection to `port` on 127.0.0.1, without Nagle's delay (also `PollingSends`'s).
    static func connect(port: Int) throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard socket >= 0, connected == 0 else {
            if socket >= 0 { close(socket) }
            throw FloorError(description: "connecting on loopback failed")
        }
        noDelay(socket)
        return socket
    }

    private static func noDelay(_ socket: Int32) {
        var on: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Writes all of `bytes` (no SIGPIPE); false when the connection failed.
    static func writeAll(_ socket: Int32, _ bytes: [UInt8]) -> Bool {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes {
                send(socket, $0.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
            }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return false }
            written += count
        }
        return true
    }

    private static func readExactly(_ socket: Int32, into buffer: inout [UInt8]) -> Bool {
        var read = 0
        let total = buffer.count
        while read < total {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress! + read, total - read, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return false }
            read += count
        }
        return true
    }
}
