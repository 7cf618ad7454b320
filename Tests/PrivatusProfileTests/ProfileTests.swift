import Foundation
import Logging
import PrivatusCore
import PrivatusCrypto
import PrivatusProfile
import PrivatusTesting
import Testing

@Suite struct ProfileTests {
    static let cheap = KeystoreCost.fixed(try! ScryptParameters(log2N: 10))

    func withProfile(_ body: (TemporaryDirectory, ProfileLayout) throws -> Void) throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        try body(scratch, ProfileLayout(directory: scratch.child("profile")))
    }

    @Test func createThenUnlockGivesTheSameIdentity() throws {
        try withProfile { _, layout in
            let created = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            let unlocked = try Profile.unlock(layout, password: "pw")
            #expect(unlocked.peerID == created.peerID)
            #expect(unlocked.name == "alice")
            #expect(unlocked.invite == "privatus://" + created.peerID.hex)
            let config = try Profile.config(layout)
            #expect(config.listenPort != config.uiPort)
            #expect((20000...32767).contains(config.listenPort))
        }
    }

    @Test func profileIsPrivateToTheUser() throws {
        try withProfile { scratch, layout in
            _ = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            #expect(try FileIO.mode(layout.directory) == 0o700)
            for (name, entry) in try scratch.snapshot(of: layout.directory) {
                #expect(entry.mode & 0o077 == 0, "\(name) is readable by others")
            }
        }
    }

    @Test func secondCreateIsRefusedAndLeavesTheProfileAlone() throws {
        try withProfile { scratch, layout in
            let first = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            let before = try scratch.snapshot()
            #expect(throws: ProfileError.exists(path: layout.directory)) {
                try Profile.create(at: layout, name: "mallory", password: "pw2", cost: Self.cheap)
            }
            #expect(try scratch.snapshot() == before)
            #expect(try Profile.unlock(layout, password: "pw").peerID == first.peerID)
        }
    }

    @Test func createRefusesADirectoryHoldingOtherFiles() throws {
        try withProfile { _, layout in
            try FileIO.makeDirectory(layout.directory)
            try FileIO.writeAtomically(Array("notes".utf8), to: layout.directory + "/notes.txt")
            #expect(throws: ProfileError.notEmpty(path: layout.directory)) {
                try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            }
        }
    }

    @Test func createAcceptsAnEmptyDirectoryOrLeftoversOfAnInterruptedInit() throws {
        try withProfile { _, layout in
            try FileIO.makeDirectory(layout.directory, mode: 0o755)
            try FileIO.writeAtomically(Array("{}".utf8), to: layout.identityFile)
            _ = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            #expect(try FileIO.mode(layout.directory) == 0o700)
            _ = try Profile.unlock(layout, password: "pw")
        }
    }

    @Test func createWhileAnotherProcessHoldsTheLockIsRefused() throws {
        try withProfile { _, layout in
            try FileIO.makeDirectory(layout.directory)
            let held = try ProfileLock(profile: layout)
            #expect(throws: ProfileError.inUse(path: layout.directory)) {
                try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            }
            withExtendedLifetime(held) {}
        }
    }

    @Test func wrongPasswordChangesNothing() throws {
        try withProfile { scratch, layout in
            _ = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            let before = try scratch.snapshot()
            #expect(throws: ProfileError.keystore(.wrongPassword)) { try Profile.unlock(layout, password: "nope") }
            #expect(try scratch.snapshot() == before)
        }
    }

    @Test func missingProfileIsReportedAsMissing() throws {
        try withProfile { _, layout in
            #expect(throws: ProfileError.missing(path: layout.directory)) { try Profile.unlock(layout, password: "pw") }
        }
    }

    @Test func publicIdentityFileMustMatchTheSealedKeys() throws {
        try withProfile { _, layout in
            _ = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            // Replace identity.json with another profile's (valid, self-consistent) identity.
            let other = ProfileLayout(directory: layout.directory + "-other")
            defer { try? FileManager.default.removeItem(atPath: other.directory) }
            _ = try Profile.create(at: other, name: "bob", password: "pw", cost: Self.cheap)
            let foreign = try FileIO.readFile(other.identityFile, maximumSize: 1 << 16)
            try FileIO.writeAtomically(foreign, to: layout.identityFile)
            #expect(throws: ProfileError.identityMismatch(path: layout.identityFile)) {
                try Profile.unlock(layout, password: "pw")
            }
            try FileIO.writeAtomically(Array("not json".utf8), to: layout.identityFile)
            #expect(throws: ProfileError.damagedFile(path: layout.identityFile)) {
                try Profile.unlock(layout, password: "pw")
            }
        }
    }

    @Test func tamperedBindingSignatureInIdentityFileIsRefused() throws {
        try withProfile { _, layout in
            _ = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            var json =
                try JSONSerialization.jsonObject(with: Data(FileIO.readFile(layout.identityFile, maximumSize: 1 << 16)))
                as! [String: Any]
            // Present the identity-DH signature as the Noise static one: wrong purpose, must fail.
            json["noiseStaticSignature"] = json["identityDHSignature"]
            try FileIO.writeAtomically(Array(JSONSerialization.data(withJSONObject: json)), to: layout.identityFile)
            #expect(throws: ProfileError.identityMismatch(path: layout.identityFile)) {
                try Profile.unlock(layout, password: "pw")
            }
        }
    }

    @Test func passwordChangeKeepsTheIdentityAndRetiresTheOldPassword() throws {
        try withProfile { _, layout in
            let created = try Profile.create(at: layout, name: "alice", password: "old", cost: Self.cheap)
            let before = try FileIO.readFile(layout.keystoreFile, maximumSize: 1 << 16)
            let unlocked = try Profile.unlock(layout, password: "old")
            _ = try Profile.changePassword(of: unlocked, to: "new", cost: Self.cheap)
            let after = try FileIO.readFile(layout.keystoreFile, maximumSize: 1 << 16)
            #expect(before[14..<46] != after[14..<46], "a new salt")
            #expect(throws: ProfileError.keystore(.wrongPassword)) { try Profile.unlock(layout, password: "old") }
            let reopened = try Profile.unlock(layout, password: "new")
            #expect(reopened.peerID == created.peerID)
            #expect(try FileIO.mode(layout.keystoreFile) == 0o600)
            #expect(try FileIO.entries(of: layout.directory).allSatisfy { !$0.contains(".tmp-") })
        }
    }

    @Test func passwordChangeFromAStaleUnlockIsRefused() throws {
        try withProfile { _, layout in
            _ = try Profile.create(at: layout, name: "alice", password: "one", cost: Self.cheap)
            let stale = try Profile.unlock(layout, password: "one")
            let fresh = try Profile.unlock(layout, password: "one")
            _ = try Profile.changePassword(of: fresh, to: "two", cost: Self.cheap)
            #expect(throws: ProfileError.concurrentChange(path: layout.directory)) {
                try Profile.changePassword(of: stale, to: "three", cost: Self.cheap)
            }
            _ = try Profile.unlock(layout, password: "two")
        }
    }

    @Test func passwordChangeWhileTheProfileIsLockedIsRefused() throws {
        try withProfile { _, layout in
            _ = try Profile.create(at: layout, name: "alice", password: "one", cost: Self.cheap)
            let unlocked = try Profile.unlock(layout, password: "one")
            let held = try ProfileLock(profile: layout)
            #expect(throws: ProfileError.inUse(path: layout.directory)) {
                try Profile.changePassword(of: unlocked, to: "two", cost: Self.cheap)
            }
            withExtendedLifetime(held) {}
            _ = try Profile.unlock(layout, password: "one")
        }
    }

    @Test func keystoreThatIsAFifoOrASymlinkIsRefusedWithoutBlocking() throws {
        try withProfile { scratch, layout in
            _ = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            let moved = scratch.child("real-keystore")
            #expect(rename(layout.keystoreFile, moved) == 0)
            #expect(symlink(moved, layout.keystoreFile) == 0)
            #expect(throws: ProfileError.damagedFile(path: layout.keystoreFile)) {
                try Profile.unlock(layout, password: "pw")
            }
            unlink(layout.keystoreFile)
            #expect(mkfifo(layout.keystoreFile, 0o600) == 0)
            #expect(throws: ProfileError.damagedFile(path: layout.keystoreFile)) {
                try Profile.unlock(layout, password: "pw")
            }
        }
    }

    @Test func oversizedKeystoreIsRefusedBeforeReading() throws {
        try withProfile { _, layout in
            _ = try Profile.create(at: layout, name: "alice", password: "pw", cost: Self.cheap)
            try FileIO.writeAtomically(
                [UInt8](repeating: 0x41, count: Keystore.maximumFileSize + 1), to: layout.keystoreFile)
            #expect(throws: ProfileError.keystore(.tooLarge)) { try Profile.unlock(layout, password: "pw") }
        }
    }
}

@Suite struct ProfileLayoutTests {
    @Test func resolutionOrderIsFlagThenPrivatusHomeThenXDGThenHome() {
        let environment = ["PRIVATUS_HOME": "/p", "XDG_DATA_HOME": "/x", "HOME": "/h"]
        #expect(ProfileLayout.resolve(flag: "/f/", environment: environment).directory == "/f")
        #expect(ProfileLayout.resolve(flag: nil, environment: environment).directory == "/p")
        #expect(
            ProfileLayout.resolve(flag: nil, environment: ["XDG_DATA_HOME": "/x", "HOME": "/h"]).directory
                == "/x/privatus")
        #expect(ProfileLayout.resolve(flag: nil, environment: ["HOME": "/h"]).directory == "/h/.local/share/privatus")
    }

    @Test func readFileRefusesFilesOverTheLimit() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let path = scratch.child("f")
        try FileIO.writeAtomically([UInt8](repeating: 1, count: 100), to: path)
        #expect(try FileIO.readFile(path, maximumSize: 100).count == 100)
        #expect(throws: ProfileError.fileTooLarge(path: path)) { try FileIO.readFile(path, maximumSize: 99) }
    }

    @Test func streamsAreReadToTheirEndButNeverPastTheLimit() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let fifo = scratch.child("fifo")
        signal(SIGPIPE, SIG_IGN)  // the reader stops at the limit; the writer must not die of it
        for (size, limit) in [(0, 10), (10, 10), (11, 10), (200_000, 150_000), (200_000, 300_000)] {
            unlink(fifo)
            #expect(mkfifo(fifo, 0o600) == 0)
            Thread.detachNewThread {
                let writer = open(fifo, O_WRONLY)
                let bytes = [UInt8](repeating: 0x61, count: size)
                var done = 0
                while done < size {
                    let count = bytes.withUnsafeBytes { write(writer, $0.baseAddress! + done, size - done) }
                    if count <= 0 { break }
                    done += count
                }
                close(writer)
            }
            if size <= limit {
                #expect(try FileIO.readFile(fifo, maximumSize: limit, kind: .anyStream).count == size)
            } else {
                #expect(throws: ProfileError.fileTooLarge(path: fifo)) {
                    try FileIO.readFile(fifo, maximumSize: limit, kind: .anyStream)
                }
            }
        }
    }

    @Test func parentDirectoryOfPaths() {
        #expect(FileIO.parentDirectory(of: "/a/b/c") == "/a/b")
        #expect(FileIO.parentDirectory(of: "/a/b/") == "/a")
        #expect(FileIO.parentDirectory(of: "/a") == "/")
        #expect(FileIO.parentDirectory(of: "name") == ".")
    }
}

@Suite struct LogSinkTests {
    @Test func fileReceivesItsLevelAndAboveOnlyAfterAttach() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let layout = ProfileLayout(directory: scratch.child("profile"))
        try FileIO.makeDirectory(layout.directory)
        let sink = LogSink(fileLevel: .info, stderrLevel: .critical)
        let logger = Logger(label: "test") { PrivatusLogHandler(label: $0, sink: sink) }
        logger.notice("before attach")
        #expect(!FileIO.exists(layout.logsDirectory), "nothing is written into the profile before unlock")
        try sink.attachFile(layout: layout)
        logger.debug("too detailed")
        logger.info("after attach", metadata: ["k": "v"])
        let text = String(
            decoding: try FileIO.readFile(layout.logsDirectory + "/privatus.log", maximumSize: 1 << 20), as: UTF8.self)
        #expect(text.contains("info test: after attach k=v"))
        #expect(!text.contains("before attach"))
        #expect(!text.contains("too detailed"))
        #expect(try FileIO.mode(layout.logsDirectory + "/privatus.log") == 0o600)
        #expect(try FileIO.mode(layout.logsDirectory) == 0o700)
    }
}
