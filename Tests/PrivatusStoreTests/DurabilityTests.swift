import Crypto
import Foundation
import PrivatusCore
import PrivatusStore
import PrivatusTesting
import Testing

/// Process-crash safety: a writer killed with SIGKILL at random moments loses nothing it had
/// reported committed, and the database stays sound. (Power-loss safety rests on
/// synchronous=FULL, asserted in StoreTests.)
@Suite(.serialized) struct DurabilityTests {
    @Test func killedWriterLosesNothingItReportedCommitted() async throws {
        let scratch = try TemporaryDirectory("privatus-durability")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let key = SymmetricKey(size: .bits256)
        let keyHex = key.withUnsafeBytes { Hex.encode($0) }
        let writer = try CLIProcess(product: "StoreWriter")
        var generator = SystemRandomNumberGenerator()
        var reported = Set<String>()
        var next = 0
        var kills = 0
        while kills < 20 {
            let running = try writer.start([path, keyHex, String(next)])
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...250, using: &generator)))
            running.child.send(SIGKILL)
            let result = try await running.wait(timeout: .seconds(60))
            let committed = result.stdout.split(separator: "\n").filter { $0.hasPrefix("committed ") }
                .flatMap { $0.dropFirst("committed ".count).split(separator: " ").map(String.init) }
            if result.status == 128 + SIGKILL { kills += 1 }
            reported.formUnion(committed)
            next += 10_000  // each run writes its own numbers
            let store = try Store(path: path, databaseKey: key)
            #expect(try store.check().isEmpty, "integrity after kill \(kills)")
        }
        let store = try Store(path: path, databaseKey: key)
        let peer = PeerID(identityPublicKey: [UInt8](repeating: 5, count: 32))
        let stored = Set(try store.latestMessages(with: peer, limit: Int.max).map(\.body))
        #expect(reported.count > 100, "the writer did commit: \(reported.count) messages")
        #expect(
            reported.subtracting(stored).isEmpty,
            "reported committed but missing: \(reported.subtracting(stored).count)")
    }
}
