import Foundation
import NIOCore
import PrivatusCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A running `privatus bench transport-peer`: the process, and where it listens.
final class PeerProcess: Sendable {
    let child: ChildProcess
    let peerID: PeerID
    let linkAddress: SocketAddress
    let plainPort: Int
    let loopEchoPort: Int
    private let stopped = Mutex(false)

    private init(child: ChildProcess, peerID: PeerID, linkAddress: SocketAddress, plainPort: Int, loopEchoPort: Int) {
        self.child = child
        self.peerID = peerID
        self.linkAddress = linkAddress
        self.plainPort = plainPort
        self.loopEchoPort = loopEchoPort
    }

    /// Starts the peer and waits (at most 30 s) for the line saying where it listens.
    static func start(
        executable: String, eventLoopThreads: Int, maximumConnections: Int, tasksOnEventLoops: Bool
    ) throws -> PeerProcess {
        let arguments =
            [
                "bench", "transport-peer", "--event-loop-threads", String(eventLoopThreads), "--idle-links",
                String(maximumConnections),
            ] + (tasksOnEventLoops ? ["--tasks-on-event-loops"] : [])
        let child = try ChildProcess.spawn(executable, arguments: arguments)
        do {
            let line = try readLine(child, timeout: .seconds(30))
            let ready = try JSONDecoder().decode(TransportPeer.Ready.self, from: Data(line.utf8))
            return PeerProcess(
                child: child, peerID: try PeerID(parsing: ready.peerId),
                linkAddress: try SocketAddress(ipAddress: "127.0.0.1", port: ready.linkPort),
                plainPort: ready.plainPort, loopEchoPort: ready.loopEchoPort)
        } catch {
            child.send(SIGKILL)
            let (_, stderr) = child.collectOutput(limit: 4096)
            _ = child.wait()
            throw TransportBenchError.peerFailed("\(error); stderr: \(String(decoding: stderr, as: UTF8.self))")
        }
    }

    /// The peer's resident set size, in KiB.
    var residentKiB: Int? { ProcessResources.residentKiB(of: child.pid) }

    /// Terminates the peer and reaps it (once: a second call does nothing, so a reused pid or
    /// descriptor is never touched).
    func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        child.send(SIGTERM)
        _ = child.collectOutput(limit: 4096)
        _ = child.wait()
    }

    /// Reads one line of the child's output, as the bench's errors.
    static func readLine(_ child: ChildProcess, timeout: Duration) throws -> String {
        do {
            return try child.readLine(timeout: timeout)
        } catch .timedOut {
            throw TransportBenchError.timedOut
        } catch {
            throw TransportBenchError.peerFailed("it exited before listening")
        }
    }
}
