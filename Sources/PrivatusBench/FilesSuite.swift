import Crypto
import Foundation
import NIOPosix
import PrivatusCore
import PrivatusNode
import PrivatusWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `privatus bench files`: a file sent between two real nodes on loopback (contacts of each
/// other), through the whole path — the offer in the end-to-end session, the receiver's wants,
/// chunks read, sealed, sent on the link's bulk stream, opened, written, synced and recorded, the
/// SHA-256 checked, the file linked into the downloads folder — beside the ceilings measured in
/// the same run.
///
/// - `throughput_mb_s`: the file's size over the time from the receiver's accept call until its
///   control API lists the transfer `complete` (polled every 10 ms); `transfer_s` that time.
/// - `aes_gcm_ceiling_mb_s`: AES-256-GCM seal of 256 KiB chunks on one core, in this process
///   (swift-crypto, as `bench crypto`); `plain_tcp_mb_s`: plain TCP between this process and a
///   `bench transport-peer` process, as `bench transport` measures it.
/// - `cpu_s_per_gib_sender` / `_receiver`: each node's CPU time (`utime` + `stime`) over the
///   transfer, per GiB; `peak_rss_mb_sender` / `_receiver` (and `peak_rss_mb`, the larger): the
///   largest resident set sampled every 50 ms during both transfers, in MiB as `bench node`'s
///   `idle_rss_mb`.
/// - `chat_latency_during_transfer_ms` / `_p99_ms`: up to ``chatMessages`` chat messages sent one
///   after another while the first transfer runs, each from its send request to the sender's
///   `delivered` event; `chat_samples` how many fitted.
/// - `resume_s`: a second transfer of the same file; once the receiver has half of the chunks it
///   is killed (SIGKILL) and started again on its profile; from that start until the restarted
///   receiver has a chunk it did not have when it came up. `resume_total_s`: from that start
///   until complete. `resume_chunks_resent`: chunks the sender sent for that transfer beyond one
///   each.
public struct FilesSuite: Sendable {
    public let executable: String
    /// The file's size in bytes.
    public var size = 1 << 30
    /// Chat messages sent during the first transfer, at most.
    public var chatMessages = 20
    /// How long the AES-GCM ceiling is measured.
    public var ceilingBudget = Duration.milliseconds(500)
    /// Bytes per plain TCP round (`bench transport`'s default) and rounds (the median is kept).
    public var plainTCPBytes = 256 << 20
    public var plainTCPRounds = 3
    /// A bandwidth limit for the sender (`fileBandwidthBytesPerSecond`), for tests with a small
    /// file: paced, the receiver can be killed in the middle of it on a loaded machine. Nil (the
    /// benchmark): no limit.
    public var senderBandwidth: Int?
    /// The chunk size of a transfer (docs/PROTOCOL.md, "Files").
    public static let chunkBytes = Int(FileTransfers.chunkSize)

    public init(executable: String) {
        self.executable = executable
    }

    public func run() async throws -> [String: Double] {
        var figures: [String: Double] = ["size_bytes": Double(size), "chunk_bytes": Double(Self.chunkBytes)]
        figures["aes_gcm_ceiling_mb_s"] = try aesGCMCeiling()
        figures["plain_tcp_mb_s"] = try await step("measuring plain TCP") { try await plainTCP() }

        let scratch = try step("creating the temporary directory") {
            try LocalNodeDirectory(executable: executable, prefix: "privatus-bench-files")
        }
        defer { scratch.remove() }
        let path = scratch.url.appendingPathComponent("random.bin").path
        try step("writing the \(size)-byte random file") { try Self.writeRandomFile(at: path, bytes: size) }
        let sender = try step("starting the sending node") {
            try scratch.start("alice", config: senderBandwidth.map { ["fileBandwidthBytesPerSecond": $0] } ?? [:])
        }
        defer { sender.stop() }
        var receiver = try step("starting the receiving node") { try scratch.start("bob") }
        var receiverRunning = true
        defer { if receiverRunning { receiver.stop() } }
        try await step("making the nodes contacts of each other") {
            guard let senderInvite = try await sender.status().invite,
                let receiverInvite = try await receiver.status().invite
            else { throw FilesBenchError(description: "a node has no invite") }
            try await sender.addContact(receiverInvite, name: "bob")
            try await receiver.addContact(senderInvite, name: "alice")
        }

        let deliveries = E2ESuite.Deliveries()
        let watching = Mutex(false)
        let watcher = Task {
            try await sender.client.stream("/api/v1/events") { line in
                if line.hasSuffix(#""type":"watching"}"#) { watching.withLock { $0 = true } }
                deliveries.record(line)
            }
        }
        defer { watcher.cancel() }
        let senderAPI = sender.client.keepingConnectionsAlive()
        try await step("sending a first chat message (the session starts)") {
            for _ in 0..<3_000 where !watching.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
            let id = try await senderAPI.call(
                "POST", "/api/v1/messages", body: SendRequest(peer: "bob", text: "hello"), as: SendResult.self
            ).id
            try await Self.waitUntilDelivered(id, deliveries, timeout: .seconds(60))
        }

        let peaks = ResidentPeaks()
        figures.merge(
            try await transfer(path, from: sender, to: receiver, senderAPI: senderAPI, deliveries: deliveries, peaks)
        ) { $1 }

        // The second transfer, interrupted in the middle.
        let receiverAPI = receiver.client.keepingConnectionsAlive()
        let offered = try await offer(path, from: sender, to: receiverAPI, step: "offering the file a second time")
        var sampler = peaks.sample(["sender": sender.process.pid, "receiver": receiver.process.pid])
        defer { sampler.cancel() }
        try await step("accepting the second offer") {
            _ = try await receiverAPI.call(
                "POST", "/api/v1/files/\(offered.id)/accept", body: AcceptFileRequest(to: nil), as: FileView.self)
        }
        try await step("waiting for half of the second transfer") {
            _ = try await poll(offered.id, of: receiverAPI, every: .milliseconds(5)) { view in
                guard view.state == "transferring" else {
                    throw FilesBenchError(
                        description: "the transfer ended (\(view.state)) before half of it had arrived")
                }
                return view.chunksDone >= (view.chunks + 1) / 2
            }
        }
        sampler.cancel()
        receiver.kill()
        receiverRunning = false
        let spawned = ContinuousClock.now
        do {
            try receiver.startAgain()
        } catch {
            throw FilesBenchError(step: "restarting the receiving node after SIGKILL", error)
        }
        receiverRunning = true
        sampler = peaks.sample(["sender": sender.process.pid, "receiver": receiver.process.pid])
        let restartedAPI = receiver.client.keepingConnectionsAlive()
        var baseline: Int?
        var resumed: ContinuousClock.Instant?
        let complete = try await step("resuming the second transfer") {
            try await poll(offered.id, of: restartedAPI, every: .milliseconds(5)) { view in
                let now = ContinuousClock.now
                if baseline == nil { baseline = view.chunksDone }
                if resumed == nil, (view.chunksReceived ?? 0) > 0 || view.chunksDone > baseline! {
                    resumed = now
                }
                return try Self.isComplete(view)
            }
        }
        let finished = ContinuousClock.now
        sampler.cancel()
        let sent = try await step("waiting for the sender to see the second transfer complete") {
            try await poll(offered.id, of: senderAPI, every: .milliseconds(10), timeout: .seconds(60)) {
                try Self.isComplete($0)
            }
        }
        figures["resume_s"] = ((resumed ?? finished) - spawned).seconds
        figures["resume_total_s"] = (finished - spawned).seconds
        figures["resume_chunks_resent"] = Double((sent.chunksSent ?? 0) - sent.chunks)
        figures["resume_chunks_before_kill"] = Double(baseline ?? 0)
        if let landed = complete.path { unlink(landed) }

        let senderPeak = peaks.peakMiB("sender")
        let receiverPeak = peaks.peakMiB("receiver")
        figures["peak_rss_mb_sender"] = senderPeak
        figures["peak_rss_mb_receiver"] = receiverPeak
        figures["peak_rss_mb"] = max(senderPeak, receiverPeak)
        if let throughput = figures["throughput_mb_s"] {
            figures["throughput_of_aes_gcm_pct"] = 100 * throughput / figures["aes_gcm_ceiling_mb_s"]!
            figures["throughput_of_plain_pct"] = 100 * throughput / figures["plain_tcp_mb_s"]!
        }
        return figures
    }

    /// The first transfer: throughput, CPU, and chat sent meanwhile.
    private func transfer(
        _ path: String, from sender: LocalNode, to receiver: LocalNode, senderAPI: ControlClient,
        deliveries: E2ESuite.Deliveries, _ peaks: ResidentPeaks
    ) async throws -> [String: Double] {
        let receiverAPI = receiver.client.keepingConnectionsAlive()
        let offered = try await offer(path, from: sender, to: receiverAPI, step: "offering the file")
        let sampler = peaks.sample(["sender": sender.process.pid, "receiver": receiver.process.pid])
        defer { sampler.cancel() }
        let senderCPU = ProcessResources.cpuSeconds(of: sender.process.pid)
        let receiverCPU = ProcessResources.cpuSeconds(of: receiver.process.pid)
        let started = ContinuousClock.now
        try await step("accepting the offer") {
            _ = try await receiverAPI.call(
                "POST", "/api/v1/files/\(offered.id)/accept", body: AcceptFileRequest(to: nil), as: FileView.self)
        }
        let done = TransferDone()
        let messages = chatMessages
        let chat = Task {
            var latencies: [Double] = []
            while latencies.count < messages, latencies.isEmpty || !done.value.load(ordering: .relaxed) {
                let start = ContinuousClock.now
                let id = try await senderAPI.call(
                    "POST", "/api/v1/messages", body: SendRequest(peer: "bob", text: "during the transfer"),
                    as: SendResult.self
                ).id
                try await Self.waitUntilDelivered(id, deliveries, timeout: .seconds(60))
                latencies.append((deliveries.time(of: id)! - start).milliseconds)
            }
            return latencies
        }
        defer { chat.cancel() }
        let complete = try await step("transferring the file") {
            try await poll(offered.id, of: receiverAPI, every: .milliseconds(10)) { try Self.isComplete($0) }
        }
        let elapsed = ContinuousClock.now - started
        let senderCost = ProcessResources.cpuSeconds(of: sender.process.pid).flatMap { now in senderCPU.map { now - $0 }
        }
        let receiverCost = ProcessResources.cpuSeconds(of: receiver.process.pid).flatMap { now in
            receiverCPU.map { now - $0 }
        }
        done.value.store(true, ordering: .relaxed)
        sampler.cancel()
        let latencies = try await step("sending chat messages during the transfer") { try await chat.value }
        guard let senderCost, let receiverCost else {
            throw FilesBenchError(description: "no /proc/<pid>/stat to read the nodes' CPU time from")
        }
        // The received copy is not needed any more (the next transfer needs the room).
        if let landed = complete.path { unlink(landed) }
        let gibibytes = Double(size) / Double(1 << 30)
        return [
            "throughput_mb_s": Double(size) / elapsed.seconds / 1_000_000,
            "transfer_s": elapsed.seconds,
            "cpu_s_per_gib_sender": senderCost / gibibytes,
            "cpu_s_per_gib_receiver": receiverCost / gibibytes,
            "chat_latency_during_transfer_ms": TransportSuite.percentile(latencies, 50),
            "chat_latency_during_transfer_p99_ms": TransportSuite.percentile(latencies, 99),
            "chat_samples": Double(latencies.count),
        ]
    }

    /// Offers the file at `path` from `sender` to its contact bob and waits until bob's node
    /// lists the offer; returns bob's view of it.
    private func offer(
        _ path: String, from sender: LocalNode, to receiver: ControlClient, step name: String
    ) async throws -> FileView {
        try await step(name) {
            let sent = try await sender.client.call(
                "POST", "/api/v1/files", body: SendFileRequest(peer: "bob", path: path), as: FileView.self)
            return try await poll(sent.id, of: receiver, every: .milliseconds(10), timeout: .seconds(60)) {
                $0.state == "offered"
            }
        }
    }

    /// Polls a node's transfer `id` until `done` says so; a transfer not listed yet is waited
    /// for. Throws after `timeout` (default: 60 s plus 5 MB/s of the file).
    private func poll(
        _ id: String, of node: ControlClient, every interval: Duration, timeout: Duration? = nil,
        until done: (FileView) throws -> Bool
    ) async throws -> FileView {
        let deadline = ContinuousClock.now + (timeout ?? .seconds(60 + size / 5_000_000))
        var last: FileView?
        while true {
            let listed = try await node.call("GET", "/api/v1/files", as: [FileView].self)
            last = listed.first(where: { $0.id == id }) ?? last
            if let last, try done(last) { return last }
            guard ContinuousClock.now < deadline else {
                let progress = last.map { "\($0.state), \($0.chunksDone) of \($0.chunks) chunks" } ?? "not listed"
                throw FilesBenchError(description: "timed out (the transfer is \(progress))")
            }
            try await Task.sleep(for: interval)
        }
    }

    /// Whether a transfer is complete; throws if it ended otherwise.
    static func isComplete(_ view: FileView) throws -> Bool {
        switch view.state {
        case "complete": return true
        case "offered", "transferring": return false
        default:
            throw FilesBenchError(description: "the transfer ended \(view.state): \(view.reason ?? "no reason given")")
        }
    }

    static func waitUntilDelivered(_ id: String, _ deliveries: E2ESuite.Deliveries, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while deliveries.time(of: id) == nil {
            guard ContinuousClock.now < deadline else {
                throw FilesBenchError(description: "a chat message was not delivered within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// AES-256-GCM seal of 256 KiB chunks, one core, MB/s (the bare cipher, as `bench crypto`).
    func aesGCMCeiling() throws -> Double {
        let chunk = [UInt8](repeating: 0x5a, count: Self.chunkBytes)
        let key = SymmetricKey(size: .bits256)
        return try Measure(budget: ceilingBudget).megabytesPerSecond(bytes: chunk.count) {
            BlackHole.consume(try AES.GCM.seal(chunk, using: key).tag.first!)
        }
    }

    /// `plain_tcp_mb_s` of `bench transport` (one event loop thread in each process, writes of a
    /// full link frame) against a `bench transport-peer` process started for it.
    func plainTCP() async throws -> Double {
        let peer = try PeerProcess.start(
            executable: executable, eventLoopThreads: 1, maximumConnections: 4, tasksOnEventLoops: false)
        defer { peer.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let writeBytes = try WireCodec.encode(
                Envelope(TransportSuite.chatBody(encodedBytes: WireLimits.maxFragmentPayload))
            ).count
            let throughput = try await PlainTCP.sinkThroughput(
                group: group, port: peer.plainPort, writeBytes: writeBytes, bytes: plainTCPBytes,
                rounds: plainTCPRounds)
            try await group.shutdownGracefully()
            return throughput
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Writes `bytes` pseudo-random bytes (SplitMix64: incompressible, faster than
    /// `/dev/urandom`) to a new file at `path`, in blocks of 4 MiB, and syncs it.
    static func writeRandomFile(at path: String, bytes: Int) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw FilesBenchError(description: "cannot create \(path) (errno \(errno))") }
        defer { close(descriptor) }
        var generator = SplitMix64(seed: UInt64(UInt32(truncatingIfNeeded: getpid())) << 32 | 0x9e37)
        var block = [UInt64](repeating: 0, count: (4 << 20) / 8)
        var left = bytes
        while left > 0 {
            for index in block.indices { block[index] = generator.next() }
            let count = min(left, block.count * 8)
            let written = block.withUnsafeBytes { buffer in
                var done = 0
                while done < count {
                    let wrote = write(descriptor, buffer.baseAddress! + done, count - done)
                    if wrote < 0, errno == EINTR { continue }
                    guard wrote > 0 else { break }
                    done += wrote
                }
                return done
            }
            guard written == count else {
                throw FilesBenchError(description: "writing \(path) failed (errno \(errno))")
            }
            left -= count
        }
        // On the disk before anything is measured: its writeback would compete with the transfer.
        guard fsync(descriptor) == 0 else {
            throw FilesBenchError(description: "syncing \(path) failed (errno \(errno))")
        }
    }

    /// Runs one step of the bench; an error says which step failed.
    func step<T>(_ name: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as FilesBenchError {
            throw error.step == nil ? FilesBenchError(step: name, error) : error
        } catch {
            throw FilesBenchError(step: name, error)
        }
    }

    func step<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as FilesBenchError {
            throw error.step == nil ? FilesBenchError(step: name, error) : error
        } catch {
            throw FilesBenchError(step: name, error)
        }
    }
}

/// Set once the first transfer is complete: the chat stops sending.
final class TransferDone: Sendable {
    let value = Atomic<Bool>(false)
}

/// The largest resident set of each process (by role), sampled every 50 ms.
final class ResidentPeaks: Sendable {
    private let peaks = Mutex<[String: Int]>([:])

    /// Samples `processes` (role: pid) every 50 ms until the task is cancelled.
    func sample(_ processes: [String: Int32]) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                for (role, pid) in processes {
                    guard let resident = ProcessResources.residentKiB(of: pid) else { continue }
                    peaks.withLock { $0[role] = max($0[role] ?? 0, resident) }
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The peak of `role` in MiB (0 when never sampled).
    func peakMiB(_ role: String) -> Double { Double(peaks.withLock { $0[role] ?? 0 }) / 1024 }
}

/// Why `bench files` could not measure: the step, and what went wrong.
public struct FilesBenchError: Error, CustomStringConvertible {
    let step: String?
    let reason: String

    init(description: String) {
        step = nil
        reason = description
    }

    init(step: String, _ error: any Error) {
        self.step = step
        reason = (error as? FilesBenchError)?.reason ?? "\(error)"
    }

    public var description: String {
        step.map { "bench files: \($0) failed: \(reason)" } ?? "bench files: \(reason)"
    }
}
