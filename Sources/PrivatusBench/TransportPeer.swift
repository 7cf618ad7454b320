import Crypto
import Foundation
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusNet
import PrivatusWire
import Synchronization

/// The other process of `bench transport` (`privatus bench transport-peer`, internal): a node
/// with a fresh identity listening for links on loopback, and the plain TCP reference servers
/// (``PlainTCP``, ``PlainTCP/LoopEcho``) beside it, on the same event loop group.
///
/// On its links it answers every message of at most ``echoLimit`` encoded bytes with the same
/// body on the same stream, through ``ConnectionManager/send(_:on:to:)``, as a node's handler
/// would; bigger messages (bulk data) are read and dropped. It prints one line of JSON,
/// ``Ready``, once it listens, then runs until it is terminated, or until its parent is gone.
public enum TransportPeer {
    /// What the peer prints on its standard output once it listens.
    struct Ready: Codable {
        var peerId: String
        var linkPort: Int
        var plainPort: Int
        var loopEchoPort: Int
    }

    /// Messages up to this size are echoed.
    static let echoLimit = 1024

    /// Runs the peer; returns only on failure.
    /// - Parameters:
    ///   - eventLoopThreads: The event loop group's size.
    ///   - maximumConnections: The connection manager's limit on links.
    ///   - tasksOnEventLoops: Whether tasks run on the event loops (``TransportSuite/Options``).
    public static func run(eventLoopThreads: Int, maximumConnections: Int, tasksOnEventLoops: Bool) async throws {
        ProcessResources.raiseOpenFileLimit()
        let parent = getppid()
        let group =
            tasksOnEventLoops
            ? try TransportSuite.runTasksOnEventLoops(threads: eventLoopThreads)
            : MultiThreadedEventLoopGroup(numberOfThreads: eventLoopThreads)
        let keys = LinkIdentity(identity: IdentityKey(), noiseStatic: Curve25519.KeyAgreement.PrivateKey())
        var configuration = ConnectionManager.Configuration()
        configuration.maximumConnections = maximumConnections
        let manager = Mutex<ConnectionManager?>(nil)
        let node = ConnectionManager(local: keys, group: group, configuration: configuration) { peer, message in
            guard isEcho(message.body) else { return }
            try? await manager.withLock { $0 }?.send(message.body, on: message.stream, to: peer.peerID)
        }
        manager.withLock { $0 = node }
        let linkAddress = try await node.listen(host: "127.0.0.1", port: 0)
        let plainPort = try await PlainTCP.listen(group: group, host: "127.0.0.1")
        let loopEchoPort = try await PlainTCP.listenLoopEcho(group: group, host: "127.0.0.1")
        guard let linkPort = linkAddress.port else { throw TransportBenchError.peerFailed("no port") }
        let ready = Ready(
            peerId: keys.peerID.hex, linkPort: linkPort, plainPort: plainPort, loopEchoPort: loopEchoPort)
        let line = String(decoding: try JSONEncoder().encode(ready), as: UTF8.self) + "\n"
        FileHandle.standardOutput.write(Data(line.utf8))
        // Never outlive the bench that started this process.
        while getppid() == parent {
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Whether the peer answers a message with this body: everything but bulk data.
    static func isEcho(_ body: Envelope.Body) -> Bool {
        guard case .chatMessage(let message) = body else { return true }
        return message.sealed.count <= echoLimit
    }
}
