// A test-only node for the interop test Tests/System/noise_interop.py: a real ConnectionManager
// listening on loopback, with a fresh identity and Noise static key, that echoes chat messages.
//
// It prints one line of JSON to standard output,
//     {"port":N,"peerId":"<64 hex>","identityKey":"<64 hex: raw Ed25519 public key>"}
// then answers every ChatMessage it receives with a ChatMessage of the same id whose sealed
// bytes are reversed, on the stream it came on (the link layer itself answers pings). It exits 0
// when its standard input closes, so the harness stops it by closing the pipe, or 1 after 60 s.
//
// usage: LinkEcho
import Crypto
import Foundation
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusNet
import PrivatusWire

enum Ending: Sendable {
    case standardInputClosed
    case timedOut
}

/// Blocks a thread of its own (not one of the concurrency pool's) until standard input reaches
/// its end, then reports it.
func watchStandardInput(_ ended: AsyncStream<Ending>.Continuation) {
    Thread.detachNewThread {
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count > 0 || (count < 0 && errno == EINTR) { continue }
            break
        }
        ended.yield(.standardInputClosed)
    }
}

let local = LinkIdentity(identity: IdentityKey(), noiseStatic: Curve25519.KeyAgreement.PrivateKey())
let (received, delivery) = AsyncStream.makeStream(of: (LinkPeer, InboundMessage).self)
let manager = ConnectionManager(local: local, group: MultiThreadedEventLoopGroup.singleton) { peer, message in
    delivery.yield((peer, message))
}
let address = try await manager.listen(host: "127.0.0.1", port: 0)
guard let port = address.port else {
    FileHandle.standardError.write(Data("LinkEcho: the listener has no port\n".utf8))
    exit(1)
}

let (endings, ended) = AsyncStream.makeStream(of: Ending.self)
watchStandardInput(ended)
Task {
    try? await Task.sleep(for: .seconds(60))
    ended.yield(.timedOut)
}
let echo = Task {
    for await (peer, message) in received {
        guard case .chatMessage(let chat) = message.body else { continue }
        let answer = ChatMessage(messageID: Array(chat.messageID), sealed: chat.sealed.reversed())
        try? await manager.send(.chatMessage(answer), on: message.stream, to: peer.peerID)
    }
}

// Written straight to the pipe (no buffering), after the listener is up and the echo runs.
let identityKey = Hex.encode(local.identity.publicKey.rawRepresentation)
let line = #"{"port":\#(port),"peerId":"\#(local.peerID.hex)","identityKey":"\#(identityKey)"}"#
FileHandle.standardOutput.write(Data((line + "\n").utf8))

let ending = await endings.first { _ in true } ?? .timedOut
delivery.finish()
echo.cancel()
await manager.shutdown(grace: .seconds(1))
if ending == .timedOut {
    FileHandle.standardError.write(Data("LinkEcho: standard input still open after 60 s\n".utf8))
    exit(1)
}
exit(0)
