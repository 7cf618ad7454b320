import Foundation
import PrivatusNode
import PrivatusProfile
import PrivatusTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// File transfer between real node processes on loopback (issue 9).
@Suite(.serialized) struct FileTransferTests {
    let cli: CLIProcess
    let scratch: TemporaryDirectory

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-files")
    }

    typealias User = ChatTests.User

    /// Alice and Bob, contacts of each other, with extra config keys for each.
    func pair(
        alice aliceConfig: [String: Any] = [:], bob bobConfig: [String: Any] = [:]
    ) async throws -> (
        alice: User, bob: User
    ) {
        let alice = try await User("alice", in: scratch, cli: cli)
        let bob = try await User("bob", in: scratch, cli: cli)
        try alice.configure(["retryInitialSeconds": 1, "retryMaximumSeconds": 1].merging(aliceConfig) { $1 })
        try bob.configure(["retryInitialSeconds": 1, "retryMaximumSeconds": 1].merging(bobConfig) { $1 })
        try await alice.start()
        try await bob.start()
        let aliceStatus = try await alice.status()
        let bobStatus = try await bob.status()
        _ = try await alice.json(
            ["contacts", "add", try #require(bobStatus.invite), "--name", "bob"], as: ContactView.self)
        _ = try await bob.json(
            ["contacts", "add", try #require(aliceStatus.invite), "--name", "alice"], as: ContactView.self)
        return (alice, bob)
    }

    /// A file of `bytes` random bytes.
    func randomFile(_ name: String, bytes: Int) throws -> String {
        let path = scratch.child(name)
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        let input = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        var left = bytes
        while left > 0 {
            let block = input.readData(ofLength: min(left, 4 << 20))
            output.write(block)
            left -= block.count
        }
        try output.close()
        try input.close()
        return path
    }

    /// The SHA-256 of a file, as `sha256sum` prints it.
    func sha256(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        // On standard input: with a name holding a newline, sha256sum would escape its output.
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    func transfers(of user: User) async throws -> [FileView] {
        try await ControlClient(layout: user.layout).call("GET", "/api/v1/files", as: [FileView].self)
    }

    /// Polls `user`'s transfer `id` (every 20 ms, at most `seconds`) until `done` holds.
    func transfer(
        _ id: String, of user: User, within seconds: Int = 120, until done: (FileView) -> Bool
    ) async throws -> FileView? {
        var last: FileView?
        for _ in 0..<(seconds * 50) {
            last = try await transfers(of: user).first { $0.id == id }
            if let last, done(last) { return last }
            try await Task.sleep(for: .milliseconds(20))
        }
        return last
    }

    /// Alice offers `path`; Bob waits for the offer and returns it.
    func offer(_ path: String, from alice: User, to bob: User) async throws -> FileView {
        let sent: FileView = try await alice.json(["files", "send", "bob", path])
        #expect(sent.direction == "sent" && sent.state == "offered")
        let offered = try await transfer(sent.id, of: bob, within: 30) { $0.state == "offered" }
        return try #require(offered, "bob sees the offer")
    }

    @Test func a256MiBFileArrivesWithItsSHA256() async throws {
        defer { scratch.remove() }
        let (alice, bob) = try await pair()
        let path = try randomFile("big.bin", bytes: 256 << 20)
        let offered = try await offer(path, from: alice, to: bob)
        #expect(offered.name == "big.bin" && offered.size == 256 << 20 && offered.bytesDone == 0)
        #expect(offered.chunks == 1024)
        let accepted: FileView = try await bob.json(["files", "accept", offered.id])
        #expect(accepted.state == "transferring")
        let done = try #require(try await transfer(offered.id, of: bob) { $0.state != "transferring" })
        #expect(done.state == "complete", "\(done.reason ?? "")")
        let landed = try #require(done.path)
        #expect(landed == bob.layout.downloadsDirectory + "/big.bin")
        #expect(try sha256(landed) == (try sha256(path)))
        #expect(done.sha256 == (try sha256(path)))
        // Nothing is left behind in the partial folder, and the sender sees it complete.
        #expect(try FileManager.default.contentsOfDirectory(atPath: bob.layout.transfersDirectory).isEmpty)
        let sent = try await transfer(offered.id, of: alice, within: 30) { $0.state == "complete" }
        #expect(sent?.state == "complete")
        #expect(sent?.chunksSent == 1024, "each chunk sent once")
        // The conversation shows the offer on both sides.
        let messages: [MessageView] = try await bob.json(["messages", "alice"])
        #expect(messages.first?.text == "File: big.bin (268435456 bytes)")
        try await alice.stop()
        try await bob.stop()
    }

    @Test func aReceiverKilledInTheMiddleResumesWithoutTheChunksItHad() async throws {
        defer { scratch.remove() }
        // 32 MiB/s: the 128 MiB file takes ≈ 4 s, long enough to kill Bob in the middle.
        let (alice, bob) = try await pair(alice: ["fileBandwidthBytesPerSecond": 32 << 20])
        let path = try randomFile("resume.bin", bytes: 128 << 20)
        let offered = try await offer(path, from: alice, to: bob)
        _ = try await bob.json(["files", "accept", offered.id], as: FileView.self)
        let half = try #require(try await transfer(offered.id, of: bob) { $0.chunksDone >= 256 })
        #expect(half.state == "transferring")
        try await kill(bob)
        try await bob.start()
        let done = try #require(try await transfer(offered.id, of: bob) { $0.state != "transferring" })
        #expect(done.state == "complete", "\(done.reason ?? "")")
        #expect(try sha256(try #require(done.path)) == (try sha256(path)))
        // Bob's second run received only what it had not recorded: at most the 256 missing at
        // the kill and those written but not yet recorded (at most a flush batch of 64), and
        // Alice sent each chunk at most once more than needed (those, and a window in flight).
        let received = try #require(done.chunksReceived)
        #expect(received <= 512 - 256 + 64, "received \(received) chunks after the restart")
        let sent = try #require(try await transfer(offered.id, of: alice, within: 30) { $0.state == "complete" })
        let sentChunks = try #require(sent.chunksSent)
        #expect(sentChunks >= 512 && sentChunks <= 512 + 16 + 64, "sent \(sentChunks) chunks")
        try await alice.stop()
        try await bob.stop()
    }

    @Test func aSenderKilledInTheMiddleResumesAndAChangedFileIsOfferedAgain() async throws {
        defer { scratch.remove() }
        let (alice, bob) = try await pair(alice: ["fileBandwidthBytesPerSecond": 16 << 20])
        let path = try randomFile("report.bin", bytes: 48 << 20)
        let first = try await offer(path, from: alice, to: bob)
        _ = try await bob.json(["files", "accept", first.id], as: FileView.self)
        _ = try #require(try await transfer(first.id, of: bob) { $0.chunksDone >= 32 })
        // Alice's node dies and comes back with the file unchanged: the transfer goes on.
        try await kill(alice)
        try await alice.start()
        let done = try #require(try await transfer(first.id, of: bob) { $0.state != "transferring" })
        #expect(done.state == "complete", "\(done.reason ?? "")")
        #expect(try sha256(try #require(done.path)) == (try sha256(path)))

        // A second offer of the file; Alice's node dies in the middle and the file changes
        // while it is down: Bob's transfer fails, and the file as it is now is offered again.
        let second = try await offer(path, from: alice, to: bob)
        _ = try await bob.json(["files", "accept", second.id], as: FileView.self)
        _ = try #require(try await transfer(second.id, of: bob) { $0.chunksDone >= 32 })
        try await kill(alice)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 1 << 20)
        handle.write(Data(repeating: 0x5A, count: 4096))
        try handle.close()
        try await alice.start()
        let failed = try #require(try await transfer(second.id, of: bob) { $0.state != "transferring" })
        #expect(failed.state == "failed" && failed.reason == "the file changed: it is offered again")
        var again: FileView?
        for _ in 0..<1_500 {
            again = try await transfers(of: bob).first { ![first.id, second.id].contains($0.id) }
            if again != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let renewed = try #require(again, "the changed file is offered anew")
        let newHash = try sha256(path)
        #expect(renewed.state == "offered" && renewed.sha256 == newHash)
        #expect(try FileManager.default.contentsOfDirectory(atPath: bob.layout.transfersDirectory).isEmpty)
        try await alice.stop()
        try await bob.stop()
    }

    func kill(_ user: User) async throws {
        let node = try #require(user.node)
        node.child.send(SIGKILL)
        _ = try await node.wait(timeout: .seconds(30))
        user.node = nil
    }

    @Test func aTextFileTravelsDeflatedAndArrivesAsItWas() async throws {
        defer { scratch.remove() }
        let (alice, bob) = try await pair()
        let path = scratch.child("notes.txt")
        var text = ""
        for line in 0..<100_000 { text += "line \(line): the quick brown fox jumps over the lazy dog\n" }
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let watcher = try cli.start(
            ["--profile", bob.profile, "watch", "--json"], environment: ["PRIVATUS_PASSWORD": "x"])
        #expect(try watcher.child.readLine(timeout: .seconds(30)) == #"{"type":"watching"}"#)
        let offered = try await offer(path, from: alice, to: bob)
        #expect(offered.mediaType == "text/plain")
        _ = try await bob.json(["files", "accept", offered.id], as: FileView.self)
        let done = try #require(try await transfer(offered.id, of: bob) { $0.state != "transferring" })
        #expect(done.state == "complete", "\(done.reason ?? "")")
        #expect(try sha256(try #require(done.path)) == (try sha256(path)))
        // Every chunk went deflated, and took a fraction of the file's size on the link.
        #expect(try await alice.metric("privatus_files_chunks_deflated_total") == Double(done.chunks))
        let onTheLink = try await alice.metric("privatus_files_sealed_bytes_sent_total")
        #expect(onTheLink > 0 && onTheLink < Double(done.size) / 4, "\(onTheLink) bytes for \(done.size)")
        try await alice.stop()
        try await bob.stop()
        // Bob's watch showed the transfer from the offer to the end, in order.
        let output = try await watcher.wait(timeout: .seconds(30)).stdout
        let events = try output.split(separator: "\n").map {
            try JSONDecoder().decode(NodeEvent.self, from: Data($0.utf8))
        }
        let states = events.filter { $0.type == "file" && $0.id == offered.id }.map(\.state)
        #expect(states.first == "offered" && states.last == "complete", "\(output)")
        #expect(states.filter { $0 != "transferring" } == ["offered", "complete"], "\(output)")
        let last = events.last { $0.type == "file" && $0.id == offered.id }
        #expect(last?.bytes == done.size && last?.size == done.size && last?.name == "notes.txt")
    }

    @Test func aDeclinedOfferACancelledTransferAndAnotherFolder() async throws {
        defer { scratch.remove() }
        let (alice, bob) = try await pair(alice: ["fileBandwidthBytesPerSecond": 8 << 20])
        // Declined: Alice sees it.
        let declined = try await offer(try randomFile("a.bin", bytes: 1_000), from: alice, to: bob)
        let rejected: FileView = try await bob.json(["files", "reject", declined.id])
        #expect(rejected.state == "rejected")
        #expect(try await transfer(declined.id, of: alice, within: 30) { $0.state == "rejected" }?.state == "rejected")

        // Cancelled by the sender in the middle: Bob stops and keeps nothing.
        let cancelled = try await offer(try randomFile("b.bin", bytes: 64 << 20), from: alice, to: bob)
        _ = try await bob.json(["files", "accept", cancelled.id], as: FileView.self)
        _ = try #require(try await transfer(cancelled.id, of: bob) { $0.chunksDone >= 8 })
        let gone: FileView = try await alice.json(["files", "cancel", cancelled.id])
        #expect(gone.state == "cancelled")
        let seen = try await transfer(cancelled.id, of: bob, within: 30) { $0.state != "transferring" }
        #expect(seen?.state == "cancelled")
        #expect(try FileManager.default.contentsOfDirectory(atPath: bob.layout.transfersDirectory).isEmpty)
        let again = try await bob.run(["files", "cancel", cancelled.id])
        #expect(again.status == 1 && again.stderr.contains("already over"), "\(again.stderr)")

        // Accepted into a folder of the user's: the file lands there, the folder's mode is kept.
        let folder = scratch.child("shared")
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        let path = try randomFile("c.bin", bytes: 300_000)
        let elsewhere = try await offer(path, from: alice, to: bob)
        _ = try await bob.json(["files", "accept", elsewhere.id, "--to", folder], as: FileView.self)
        let done = try #require(try await transfer(elsewhere.id, of: bob) { $0.state != "transferring" })
        #expect(done.state == "complete" && done.path == folder + "/c.bin", "\(done.reason ?? "")")
        #expect(try sha256(folder + "/c.bin") == (try sha256(path)))
        let mode = try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? Int
        #expect(mode == 0o755)
        try await alice.stop()
        try await bob.stop()
    }

    @Test func aHostileNameLandsInsideTheDownloadsFolder() async throws {
        defer { scratch.remove() }
        let (alice, bob) = try await pair()
        // Leading dots, a bell, a right-to-left override and a newline in the name.
        let hostile = "..\u{7}evil\u{202E}txt.exe\nx.sh"
        let path = try randomFile(hostile, bytes: 1000)
        let offered = try await offer(path, from: alice, to: bob)
        #expect(offered.name == "eviltxt.exex.sh")
        // A file of that name is already there: the new one gets a number.
        try FileManager.default.createDirectory(
            atPath: bob.layout.downloadsDirectory, withIntermediateDirectories: true)
        #expect(
            FileManager.default.createFile(
                atPath: bob.layout.downloadsDirectory + "/" + offered.name, contents: Data("old".utf8)))
        _ = try await bob.json(["files", "accept", offered.id], as: FileView.self)
        let done = try #require(try await transfer(offered.id, of: bob) { $0.state != "transferring" })
        #expect(done.state == "complete")
        let landed = try #require(done.path)
        #expect((landed as NSString).deletingLastPathComponent == bob.layout.downloadsDirectory)
        #expect(landed != bob.layout.downloadsDirectory + "/" + offered.name, "the old file is kept")
        #expect(
            try String(contentsOfFile: bob.layout.downloadsDirectory + "/" + offered.name, encoding: .utf8) == "old")
        #expect(try sha256(landed) == (try sha256(path)))
        try await alice.stop()
        try await bob.stop()
    }

    @Test func anOfferOverTheMaximumIsDeclinedAndTheSenderTold() async throws {
        defer { scratch.remove() }
        let (alice, bob) = try await pair(bob: ["fileMaximumBytes": 10_000])
        let path = try randomFile("large.bin", bytes: 20_000)
        let sent: FileView = try await alice.json(["files", "send", "bob", path])
        let declined = try await transfer(sent.id, of: bob, within: 30) { $0.state == "rejected" }
        #expect(declined?.reason == "larger than the maximum of 10000 bytes")
        let result = try await bob.run(["files", "accept", sent.id])
        #expect(result.status == 1 && result.stderr.contains("already over"), "\(result.stderr)")
        let told = try await transfer(sent.id, of: alice, within: 30) { $0.state == "rejected" }
        #expect(told?.reason == "larger than the maximum of 10000 bytes")
        #expect(!FileManager.default.fileExists(atPath: bob.layout.downloadsDirectory + "/large.bin"))
        try await alice.stop()
        try await bob.stop()
    }

    @Test func twoTransfersShareTheLinkAndChatIsNotHeldBehindThem() async throws {
        defer { scratch.remove() }
        // 16 MiB/s for both together: the two 32 MiB files take ≈ 4 s.
        let (alice, bob) = try await pair(alice: ["fileBandwidthBytesPerSecond": 16 << 20])
        let first = try await offer(try randomFile("one.bin", bytes: 32 << 20), from: alice, to: bob)
        let second = try await offer(try randomFile("two.bin", bytes: 32 << 20), from: alice, to: bob)
        _ = try await bob.json(["files", "accept", first.id], as: FileView.self)
        _ = try await bob.json(["files", "accept", second.id], as: FileView.self)
        // Sampled while both run: each has chunks before either is done.
        var sample: [FileView] = []
        for _ in 0..<1_500 {
            sample = try await transfers(of: bob).filter { [first.id, second.id].contains($0.id) }
            if sample.allSatisfy({ $0.chunksDone >= 8 }) || sample.contains(where: { $0.state == "complete" }) { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(sample.count == 2 && sample.allSatisfy { $0.chunksDone >= 8 && $0.state == "transferring" })
        // A message sent now arrives while the transfers still run.
        let message: SendResult = try await alice.json(["send", "bob", "during the transfer"])
        var seen = false
        for _ in 0..<1_500 {
            let messages: [MessageView] = try await bob.json(["messages", "alice"])
            if messages.contains(where: { $0.id == message.id }) {
                seen = true
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let states = try await transfers(of: bob).map(\.state)
        #expect(seen && states.contains("transferring"), "the message came before the transfers ended: \(states)")
        for id in [first.id, second.id] {
            let done = try await transfer(id, of: bob) { $0.state != "transferring" }
            #expect(done?.state == "complete")
        }
        try await alice.stop()
        try await bob.stop()
    }
}
