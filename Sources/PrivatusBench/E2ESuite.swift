import Foundation
import PrivatusCore
import PrivatusNode
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `privatus bench e2e`: two real nodes on loopback, contacts of each other with a session
/// already started, exchanging 100-byte messages over the whole path — the sender's control API,
/// the ratchet, its durable commit, the Noise link, the receiver's decryption and durable commit,
/// the receipt and its commit. A message counts as delivered when the sender's node publishes
/// its `delivered` state (read from its `watch` stream).
///
/// - `msgs_per_s`: `messages` sent as fast as `concurrency` API clients can, over the time from
///   the first send to the last delivery; `cpu_us_per_msg_sender` / `_receiver`: each node's CPU
///   time over that phase per message (`/proc/<pid>/task/*/schedstat`), and the bench's own
///   (`cpu_us_per_msg_client`: its API clients and event readers share the machine's cores;
///   the process's CPU clock, so threads that have ended count too).
/// - `latency_p50_ms` / `latency_p99_ms`: `paced` messages whose send requests start at `rate`
///   per second (without waiting for earlier answers), from that start to the delivery;
///   `paced_sent_per_s` is the rate the node accepted them at. Where that time goes:
///   `latency_answered_*` to the send request's answer (the sender's commit), `latency_received_*`
///   to the receiver's `message` event (its commit), each from the same start;
///   `paced_cpu_us_per_msg_sender` / `_receiver` and `paced_thread_runs_per_msg_sender` /
///   `_receiver`: each node's CPU time and thread wake-ups (a thread put on a CPU) over that
///   phase, per message (few messages share a commit at this rate, so each pays for more), and
///   `paced_cpu_us_per_msg_client` the bench's own CPU time;
///   `paced_written_kib_per_msg_sender` / `_receiver`: what each node wrote to storage over that
///   phase per message (`write_bytes` of `/proc/<pid>/io`: WAL frames, checkpoints, the log; -1
///   where the kernel does not count it); `paced_checkpoints_*` and `paced_limit_checkpoints_*`:
///   the WAL checkpoints each node ran over that phase off the write path (background and
///   catch-up) and at the 32 MiB limit, holding the writer (from its `/metrics`; -1 where they
///   could not be read); `paced_commits_per_msg_*`: each node's write transactions per message,
///   and `paced_writer_busy_*` the seconds they took per second of that phase, each from its
///   call to its commit (a durable one's sync included; from `privatus_store_write_seconds`):
///   how busy the node's one writer was, which every send and receipt waits for.
///
/// - `latency_floor_p50_ms` / `latency_floor_p99_ms`: the same path's shape at the same rate
///   with none of the product's work (``E2EFloor``: three processes, two `fdatasync`s on the
///   way), measured after the nodes have stopped; `latency_p50_over_floor` is `latency_p50_ms`
///   over it. Absent with `--no-reference`.
///
/// The API clients keep their HTTP/1.1 connections open between requests (as a browser does),
/// and one thread waiting in `poll` makes all the send requests (``PollingSends``: the bench's
/// CPU is taken from the nodes' cores); with `keepAlive` false each request opens a connection
/// of its own (as the CLI does), from a task per client.
public struct E2ESuite: Sendable {
    public let executable: String
    public var messages = 10_000
    public var concurrency = 256
    public var paced = 2_000
    public var rate = 1_000
    public var keepAlive = true
    /// The executable whose `bench e2e-floor-peer` measures the latency floor (``E2EFloor``) at
    /// the paced phase's rate, after the nodes have stopped; nil: not measured.
    public var floorExecutable: String? = nil
    /// At most this many records time the floor.
    public static let floorMessages = 2_000
    public static let messageBytes = 100

    public init(executable: String) {
        self.executable = executable
    }

    /// When each message was delivered, by id, as the sender's events say.
    final class Deliveries: Sendable {
        private let delivered = Mutex<[String: ContinuousClock.Instant]>([:])

        /// - Parameter kind: the event `type` and `state` counted (`state`/`delivered` for the
        ///   sender, `message`/`delivered` for the receiver).
        let kind: (type: String, state: String)
        /// What a counted line ends with, and holds.
        private let suffix: [UInt8]
        private let state: [UInt8]
        static let idKey = Array(#""id":""#.utf8)

        init(_ type: String = "state", _ state: String = "delivered") {
            kind = (type, state)
            suffix = Array(#""type":"\#(type)"}"#.utf8)
            self.state = Array(#""state":"\#(state)""#.utf8)
        }

        /// The node dropped events this reader did not take in time (`dropped`): the count can
        /// no longer be reached.
        private let lost = Mutex(0)
        /// How many events the node dropped (0: none).
        var eventsLost: Int { lost.withLock { $0 } }

        func record(_ line: String) {
            if line.hasSuffix(#""type":"dropped"}"#) {
                let count = line.split(separator: ",").first?.split(separator: ":").last.flatMap { Int($0) } ?? 1
                lost.withLock { $0 += count }
            }
            // The node writes its events with sorted keys ("id" first, "type" last): the id is
            // read from the bytes, without a JSON decoder (the bench shares the nodes' cores).
            var line = line
            let id: String? = line.withUTF8 { bytes in
                guard bytes.count >= suffix.count, bytes.suffix(suffix.count).elementsEqual(suffix),
                    Self.range(of: state, in: bytes) != nil
                else { return nil }
                return Self.string(after: Self.idKey, in: bytes)
            }
            guard let id else { return }
            let now = ContinuousClock.now
            delivered.withLock { $0[id] = $0[id] ?? now }
        }

        /// The string value that follows `key` (`"name":"`) up to its closing quote (the values
        /// read are hex ids: no escapes).
        static func string(after key: [UInt8], in bytes: UnsafeBufferPointer<UInt8>) -> String? {
            guard let start = range(of: key, in: bytes)?.upperBound,
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "\""))
            else { return nil }
            return String(decoding: bytes[start..<end], as: UTF8.self)
        }

        static func range(of needle: [UInt8], in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
            guard needle.count <= bytes.count else { return nil }
            for start in 0...(bytes.count - needle.count) where bytes[start] == needle[0] {
                if bytes[start..<start + needle.count].elementsEqual(needle) { return start..<start + needle.count }
            }
            return nil
        }

        var count: Int { delivered.withLock { $0.count } }
        func time(of id: String) -> ContinuousClock.Instant? { delivered.withLock { $0[id] } }
        var last: ContinuousClock.Instant? { delivered.withLock { $0.values.max() } }
    }

    public func run() async throws -> [String: Double] {
        // Up to 1,024 API connections, and the nodes' own descriptors.
        ProcessResources.raiseOpenFileLimit()
        var figures = try await runNodes()
        if let floorExecutable {
            let floor = try E2EFloor.measure(
                executable: floorExecutable, messages: min(paced, Self.floorMessages), rate: rate)
            let p50 = StorageSuite.percentile(floor, 0.5)
            figures["latency_floor_p50_ms"] = p50
            figures["latency_floor_p99_ms"] = StorageSuite.percentile(floor, 0.99)
            figures["latency_p50_over_floor"] = (figures["latency_p50_ms"] ?? 0) / p50
        }
        return figures
    }

    /// The figures of the two nodes (all but the floor's).
    func runNodes() async throws -> [String: Double] {
        let scratch = try LocalNodeDirectory(executable: executable, prefix: "privatus-bench-e2e")
        defer { scratch.remove() }
        let alice = try scratch.start("alice")
        defer { alice.stop() }
        let bob = try scratch.start("bob")
        defer { bob.stop() }
        let aliceStatus = try await alice.status()
        let bobStatus = try await bob.status()
        guard let aliceInvite = aliceStatus.invite, let bobInvite = bobStatus.invite else {
            throw LocalNodeError.failed("reading the invites")
        }
        try await alice.addContact(bobInvite, name: "bob")
        try await bob.addContact(aliceInvite, name: "alice")

        let deliveries = Deliveries()
        let receptions = Deliveries("message", "delivered")
        let watching = Mutex(false)
        let watcher = Task {
            try await alice.client.stream("/api/v1/events") { line in
                if line.hasSuffix(#""type":"watching"}"#) { watching.withLock { $0 = true } }
                deliveries.record(line)
            }
        }
        defer { watcher.cancel() }
        let receiverWatching = Mutex(false)
        let receiverWatcher = Task {
            try await bob.client.stream("/api/v1/events") { line in
                if line.hasSuffix(#""type":"watching"}"#) { receiverWatching.withLock { $0 = true } }
                receptions.record(line)
            }
        }
        defer { receiverWatcher.cancel() }
        for _ in 0..<3_000 where !watching.withLock({ $0 }) || !receiverWatching.withLock({ $0 }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        let api = keepAlive ? alice.client.keepingConnectionsAlive(maximumIdle: max(concurrency, 256)) : alice.client
        // Every request sends the same body, encoded once; the answer's id is read from its bytes
        // (a JSON encoder and decoder per request cost the bench ≈ 9 % of its CPU, on the
        // nodes' cores).
        let text = String(repeating: "x", count: Self.messageBytes)
        let body = Array(try JSONEncoder().encode(SendRequest(peer: "bob", text: text)))
        @Sendable func send() async throws -> String {
            let (status, answer) = try await api.request("POST", "/api/v1/messages", json: body)
            let id = answer.withUnsafeBufferPointer { Deliveries.string(after: Deliveries.idKey, in: $0) }
            guard status == 200, let id else {
                throw LocalNodeError.failed("sending (HTTP \(status): \(String(decoding: answer, as: UTF8.self)))")
            }
            return id
        }

        // With kept-alive connections, the requests are made by one thread in `poll`
        // (``PollingSends``): the bench's CPU is taken from the nodes' cores.
        let sends = keepAlive ? try PollingSends(profile: alice.profile, body: body) : nil

        // Warm-up: the session starts (bundle, PQXDH) and both sides have written once.
        let warm = try await send()
        try await waitFor(deliveries, count: 1, timeout: .seconds(30))
        _ = warm

        // Throughput.
        let senderBefore = ProcessResources.schedulerStats(of: alice.process.pid)
        let receiverBefore = ProcessResources.schedulerStats(of: bob.process.pid)
        // The bench's own CPU: every thread's, those that have ended included (the thread that
        // makes the requests ends with its phase; `schedstat` would miss it).
        let clientBefore = Measure.processCPUSeconds()
        let started = ContinuousClock.now
        if let sends {
            _ = try await sends.sendAll(messages, concurrency: concurrency)
        } else {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<concurrency {
                    let share = messages / concurrency + (worker < messages % concurrency ? 1 : 0)
                    group.addTask {
                        for _ in 0..<share { _ = try await send() }
                    }
                }
                try await group.waitForAll()
            }
        }
        try await waitFor(deliveries, count: 1 + messages, timeout: .seconds(600))
        let elapsed = (deliveries.last ?? .now) - started
        let senderCost = ProcessResources.schedulerStats(of: alice.process.pid) - senderBefore
        let receiverCost = ProcessResources.schedulerStats(of: bob.process.pid) - receiverBefore
        let clientCost = Measure.processCPUSeconds() - clientBefore

        // Latency at a fixed rate.
        // Each send starts on time whether or not the previous request has been answered (at
        // most 256 in flight).
        let senderWrittenBefore = ProcessResources.storageWriteBytes(of: alice.process.pid)
        let receiverWrittenBefore = ProcessResources.storageWriteBytes(of: bob.process.pid)
        let senderStoreBefore = await Self.storeMetrics(of: alice)
        let receiverStoreBefore = await Self.storeMetrics(of: bob)
        let metricsBefore = ContinuousClock.now
        let clientPacedBefore = Measure.processCPUSeconds()
        let senderPacedBefore = ProcessResources.schedulerStats(of: alice.process.pid)
        let receiverPacedBefore = ProcessResources.schedulerStats(of: bob.process.pid)
        let pacedStart = ContinuousClock.now
        let interval = Duration.seconds(1) / rate
        typealias Sent = (id: String, at: ContinuousClock.Instant, answered: ContinuousClock.Instant)
        let sendTimes: [Sent]
        if let sends {
            sendTimes = try await sends.sendPaced(paced, rate: rate)
        } else {
            sendTimes = try await withThrowingTaskGroup(of: Sent.self) { group in
                var results: [Sent] = []
                var inFlight = 0
                for index in 0..<paced {
                    let due = pacedStart + interval * index
                    if due > .now { try await Task.sleep(until: due, clock: .continuous) }
                    if inFlight >= 256, let done = try await group.next() {
                        results.append(done)
                        inFlight -= 1
                    }
                    group.addTask {
                        let at = ContinuousClock.now
                        let id = try await send()
                        return (id, at, ContinuousClock.now)
                    }
                    inFlight += 1
                }
                for try await done in group { results.append(done) }
                return results
            }
        }
        let sendsTook = ContinuousClock.now - pacedStart
        try await waitFor(deliveries, count: 1 + messages + paced, timeout: .seconds(600))
        let senderPaced = ProcessResources.schedulerStats(of: alice.process.pid) - senderPacedBefore
        let clientPaced = Measure.processCPUSeconds() - clientPacedBefore
        let receiverPaced = ProcessResources.schedulerStats(of: bob.process.pid) - receiverPacedBefore
        // What the paced messages wrote to storage, per message: the pages of their commits
        // (each one's WAL frames) and of the checkpoints that ran meanwhile.
        func writtenKiB(_ pid: Int32, since before: UInt64?) -> Double {
            guard let before, let after = ProcessResources.storageWriteBytes(of: pid) else { return -1 }
            return Double(after &- before) / 1_024 / Double(paced)
        }
        let senderWritten = writtenKiB(alice.process.pid, since: senderWrittenBefore)
        let receiverWritten = writtenKiB(bob.process.pid, since: receiverWrittenBefore)
        // Checkpoints the paced messages' commits ran into: one at the limit holds the writer
        // for a whole copy (a p99 outlier's likely cause); -1 when a node's metrics could not be
        // read.
        let senderStore = await Self.storeMetrics(of: alice)
        let receiverStore = await Self.storeMetrics(of: bob)
        let metricsSpan = (ContinuousClock.now - metricsBefore).seconds
        func ran(_ kind: String, _ after: [String: Double], _ before: [String: Double]) -> Double {
            guard let end = after[kind], let start = before[kind] else { return -1 }
            return end - start
        }
        /// `value` over `divisor`, or -1 where the value could not be read.
        func per(_ value: Double, _ divisor: Double) -> Double { value < 0 ? -1 : value / divisor }
        // The receiver's events time the middle of the path: none may be missing either.
        guard receptions.eventsLost == 0 else {
            throw LocalNodeError.failed(
                "reading bob's events: the bench fell behind and the node dropped \(receptions.eventsLost) of them")
        }
        let latencies = sendTimes.compactMap { sent in deliveries.time(of: sent.id).map { ($0 - sent.at).milliseconds }
        }
        let answered = sendTimes.map { ($0.answered - $0.at).milliseconds }
        let received = sendTimes.compactMap { sent in receptions.time(of: sent.id).map { ($0 - sent.at).milliseconds } }
        let achievedRate = Double(paced) / sendsTook.seconds

        return [
            "messages": Double(messages),
            "message_bytes": Double(Self.messageBytes),
            "concurrency": Double(concurrency),
            "msgs_per_s": Double(messages) / elapsed.seconds,
            "cpu_us_per_msg_sender": Double(senderCost.cpuNanoseconds) / 1_000 / Double(messages),
            "cpu_us_per_msg_receiver": Double(receiverCost.cpuNanoseconds) / 1_000 / Double(messages),
            "cpu_us_per_msg_client": clientCost * 1e6 / Double(messages),
            "paced_messages": Double(paced),
            "paced_rate_per_s": Double(rate),
            "paced_sent_per_s": achievedRate,
            "latency_p50_ms": StorageSuite.percentile(latencies, 0.5),
            "latency_p99_ms": StorageSuite.percentile(latencies, 0.99),
            "latency_answered_p50_ms": StorageSuite.percentile(answered, 0.5),
            "latency_answered_p99_ms": StorageSuite.percentile(answered, 0.99),
            "latency_received_p50_ms": StorageSuite.percentile(received, 0.5),
            "latency_received_p99_ms": StorageSuite.percentile(received, 0.99),
            "paced_cpu_us_per_msg_sender": Double(senderPaced.cpuNanoseconds) / 1_000 / Double(paced),
            "paced_cpu_us_per_msg_receiver": Double(receiverPaced.cpuNanoseconds) / 1_000 / Double(paced),
            "paced_cpu_us_per_msg_client": clientPaced * 1e6 / Double(paced),
            "paced_thread_runs_per_msg_sender": Double(senderPaced.runs) / Double(paced),
            "paced_thread_runs_per_msg_receiver": Double(receiverPaced.runs) / Double(paced),
            "paced_written_kib_per_msg_sender": senderWritten,
            "paced_written_kib_per_msg_receiver": receiverWritten,
            "paced_checkpoints_sender": ran("background", senderStore, senderStoreBefore)
                + ran("catch_up", senderStore, senderStoreBefore),
            "paced_checkpoints_receiver": ran("background", receiverStore, receiverStoreBefore)
                + ran("catch_up", receiverStore, receiverStoreBefore),
            "paced_limit_checkpoints_sender": ran("limit", senderStore, senderStoreBefore),
            "paced_limit_checkpoints_receiver": ran("limit", receiverStore, receiverStoreBefore),
            // The one writer's load: write transactions per message, and the time they took per
            // second (each from its call to its commit; the sync of a durable one included).
            "paced_commits_per_msg_sender": per(ran(Self.writesKey, senderStore, senderStoreBefore), Double(paced)),
            "paced_commits_per_msg_receiver": per(
                ran(Self.writesKey, receiverStore, receiverStoreBefore), Double(paced)),
            "paced_writer_busy_sender": per(ran(Self.writeSecondsKey, senderStore, senderStoreBefore), metricsSpan),
            "paced_writer_busy_receiver": per(
                ran(Self.writeSecondsKey, receiverStore, receiverStoreBefore), metricsSpan),
            "keep_alive": keepAlive ? 1 : 0,
        ]
    }

    /// The keys of ``storeMetrics(of:)``'s write transactions and their seconds.
    static let writesKey = "writes"
    static let writeSecondsKey = "write_seconds"

    /// A node's WAL checkpoints so far, by kind (`privatus_store_checkpoints_total` at
    /// `/metrics`), and its write transactions and their time (`privatus_store_write_seconds`'s
    /// count and sum, as ``writesKey`` and ``writeSecondsKey``); empty when they cannot be read.
    static func storeMetrics(of node: LocalNode) async -> [String: Double] {
        guard let (status, body) = try? await node.client.get("/metrics"), status == 200 else { return [:] }
        var values: [String: Double] = [:]
        for line in String(decoding: body, as: UTF8.self).split(separator: "\n") {
            guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            if line.hasPrefix("privatus_store_checkpoints_total{") {
                // privatus_store_checkpoints_total{kind="limit"} 3
                guard let label = line.range(of: #"kind=""#),
                    let end = line[label.upperBound...].firstIndex(of: "\"")
                else { continue }
                values[String(line[label.upperBound..<end])] = value
            } else if line.hasPrefix("privatus_store_write_seconds_count ") {
                values[writesKey] = value
            } else if line.hasPrefix("privatus_store_write_seconds_sum ") {
                values[writeSecondsKey] = value
            }
        }
        return values
    }

    func waitFor(_ deliveries: Deliveries, count: Int, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while deliveries.count < count {
            guard deliveries.eventsLost == 0 else {
                throw LocalNodeError.failed(
                    "reading the events: the bench fell behind and the node dropped \(deliveries.eventsLost) of them "
                        + "(\(deliveries.count) deliveries seen)")
            }
            guard ContinuousClock.now < deadline else {
                throw LocalNodeError.failed("delivering \(count) messages (\(deliveries.count) delivered)")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}
