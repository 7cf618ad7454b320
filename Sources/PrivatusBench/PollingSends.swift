import CPrivatusSystem
import Foundation
import PrivatusNode
import PrivatusProfile

#if canImport(Glibc)
import Glibc
#endif

/// `bench e2e`'s send requests, made by one thread waiting in `poll` over kept-alive HTTP/1.1
/// connections to the sending node's control API, instead of the async client with a task per
/// request. The bench shares the machine's two cores with both nodes: at 1,000 requests a second
/// it spent about 320 µs of CPU per message with the async client and about 210 with this one
/// (most of the rest reads the event streams; BENCHMARKS.md, session 21).
///
/// The requests are the ones a browser or `privatus send` makes: `POST /api/v1/messages` with
/// the node's token, answered with the stored message's id. Answers are read by their
/// `Content-Length`; anything else (a refusal, a closed connection, an answer over
/// ``maximumAnswerBytes``) ends the run with an error.
final class PollingSends: Sendable {
    /// The largest answer read on a connection.
    static let maximumAnswerBytes = 64 * 1024

    let port: Int
    /// The whole request, written as is for every message.
    let request: [UInt8]

    struct SendsError: Error, CustomStringConvertible {
        let description: String
    }

    /// When a request was written and answered, and the id it was answered with.
    typealias Sent = (id: String, at: ContinuousClock.Instant, answered: ContinuousClock.Instant)

    /// The client of the node running on `profile` (its `node.json` and token), sending `body`.
    init(profile: String, body: [UInt8]) throws {
        let layout = ProfileLayout(directory: profile)
        guard let file = NodeFile.read(in: layout), let token = NodeFile.token(in: layout),
            let url = URLComponents(string: file.ui), url.host == "127.0.0.1", let port = url.port
        else { throw SendsError(description: "the node's API is not on 127.0.0.1") }
        self.port = port
        let head =
            "POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(token)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        request = Array(head.utf8) + body
    }

    /// One kept-alive connection and what it has read of its answer.
    struct Connection {
        let socket: Int32
        var buffer: [UInt8] = []
        /// When its request was written (nil: idle).
        var sentAt: ContinuousClock.Instant?
    }

    /// Sends `total` requests over `concurrency` connections, each sending its next as soon as
    /// its last is answered; returns each one's times and id, in the order answered.
    func sendAll(_ total: Int, concurrency: Int) async throws -> [Sent] {
        try await onThread { try self.run(total: total, concurrency: concurrency, rate: nil) }
    }

    /// Sends `total` requests, the `i`th at `i / rate` seconds from now, whether or not earlier
    /// ones are answered (at most 256 at once: a request due while all are out waits for the first
    /// answer); returns each one's times and id, in the order answered.
    func sendPaced(_ total: Int, rate: Int) async throws -> [Sent] {
        try await onThread { try self.run(total: total, concurrency: 256, rate: rate) }
    }

    /// Runs `work` on a thread of its own (it blocks in `poll`), not on the cooperative pool.
    private func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try work() }) }
            thread.name = "bench-sends"
            thread.start()
        }
    }

    private func run(total: Int, concurrency: Int, rate: Int?) throws -> [Sent] {
        var connections: [Connection] = []
        defer { for connection in connections { close(connection.socket) } }
        // Paced: connections are opened as they are needed; otherwise all at once.
        if rate == nil {
            for _ in 0..<min(concurrency, total) {
                connections.append(Connection(socket: try E2EFloor.connect(port: port)))
            }
        }
        var results: [Sent] = []
        results.reserveCapacity(total)
        var sent = 0
        let start = ContinuousClock.now
        let deadline = start + .seconds(600)
        let interval = rate.map { Duration.seconds(1) / $0 }
        var descriptors: [pollfd] = []
        while results.count < total {
            let now = ContinuousClock.now
            guard now < deadline else { throw SendsError(description: "the node stopped answering") }
            // Everything due goes out now, each on an idle connection.
            while sent < total {
                if let interval, start + interval * sent > now { break }
                var index = connections.firstIndex { $0.sentAt == nil }
                if index == nil, rate != nil, connections.count < concurrency {
                    connections.append(Connection(socket: try E2EFloor.connect(port: port)))
                    index = connections.count - 1
                }
                guard let index else { break }
                connections[index].sentAt = .now
                guard E2EFloor.writeAll(connections[index].socket, request) else {
                    throw SendsError(description: "writing a send request failed")
                }
                sent += 1
            }
            // Wait for answers, or until the next request is due (to the microsecond: `ppoll`).
            // A request already due with every connection out waits for an answer (no spin).
            var wait = Duration.seconds(1)
            if let interval, sent < total {
                let due = start + interval * sent - ContinuousClock.now
                let canSend =
                    connections.count < concurrency || connections.contains { $0.sentAt == nil }
                if due > .zero || canSend { wait = max(.zero, due) }
            }
            let (seconds, attoseconds) = wait.components
            let timeout = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
            descriptors.removeAll(keepingCapacity: true)
            var polled: [Int] = []
            for (index, connection) in connections.enumerated() where connection.sentAt != nil {
                descriptors.append(pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0))
                polled.append(index)
            }
            let ready = privatus_ppoll(&descriptors, UInt(descriptors.count), timeout)
            guard ready >= 0 || errno == EINTR else { throw SendsError(description: "poll failed") }
            guard ready > 0 else { continue }
            for (slot, index) in polled.enumerated() where descriptors[slot].revents != 0 {
                if let answer = try read(&connections[index]) {
                    results.append(answer)
                }
            }
        }
        return results
    }

    /// Reads what `connection` has; returns its answer once whole (and makes it idle).
    private func read(_ connection: inout Connection) throws -> Sent? {
        var chunk = [UInt8](repeating: 0, count: 4_096)
        let count = chunk.withUnsafeMutableBytes { recv(connection.socket, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw SendsError(description: "the node closed an API connection") }
        connection.buffer += chunk[0..<count]
        guard connection.buffer.count <= Self.maximumAnswerBytes else {
            throw SendsError(description: "an answer over \(Self.maximumAnswerBytes) bytes")
        }
        guard let (status, length, bodyStart) = Self.head(of: connection.buffer) else { return nil }
        guard connection.buffer.count >= bodyStart + length else { return nil }
        let body = Array(connection.buffer[bodyStart..<bodyStart + length])
        connection.buffer.removeFirst(bodyStart + length)
        guard status == 200,
            let id = body.withUnsafeBufferPointer({
                E2ESuite.Deliveries.string(after: E2ESuite.Deliveries.idKey, in: $0)
            }),
            let at = connection.sentAt
        else {
            throw SendsError(
                description: "sending (HTTP \(status): \(String(decoding: body.prefix(200), as: UTF8.self)))")
        }
        connection.sentAt = nil
        return (id, at, .now)
    }

    /// An answer's status, body length and where its body starts, once its head is whole.
    static func head(of bytes: [UInt8]) -> (status: Int, length: Int, bodyStart: Int)? {
        let end = Array("\r\n\r\n".utf8)
        guard bytes.count >= end.count,
            let at = (0...(bytes.count - end.count)).first(where: { bytes[$0..<$0 + end.count].elementsEqual(end) })
        else { return nil }
        let head = String(decoding: bytes[0..<at], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let first = lines.first, first.hasPrefix("HTTP/1.1 "),
            let status = Int(first.dropFirst(9).prefix(3))
        else { return (0, 0, at + end.count) }
        // Only a body of a stated length, within the limit: anything else (no length, a chunked
        // body) is not an answer this client reads, and ends the run (status 0).
        var length: Int?
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = parts[0].lowercased()
            if name == "transfer-encoding" { return (0, 0, at + end.count) }
            if name == "content-length" {
                length = Int(parts[1].trimmingCharacters(in: .whitespaces))
            }
        }
        guard let length, (0...maximumAnswerBytes).contains(length) else { return (0, 0, at + end.count) }
        return (status, length, at + end.count)
    }
}
