import Foundation
import PrivatusNode
import PrivatusProfile
import PrivatusTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Contacts and 1:1 chat between real `privatus run` processes on loopback, driven through the
/// CLI's client commands as a user would.
@Suite(.serialized) struct ChatTests {
    let cli: CLIProcess
    let scratch: TemporaryDirectory

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-chat")
    }

    /// One user's profile and, while it runs, its node.
    final class User: @unchecked Sendable {
        let profile: String
        let cli: CLIProcess
        var node: CLIProcess.Running?

        init(_ directory: String, name: String? = nil, in scratch: TemporaryDirectory, cli: CLIProcess) async throws {
            profile = scratch.child(directory)
            self.cli = cli
            let created = try await run(["init", "--name", name ?? directory] + CLITests.cheap)
            #expect(created.status == 0, "\(created.stderr)")
        }

        var layout: ProfileLayout { ProfileLayout(directory: profile) }

        func run(_ arguments: [String]) async throws -> CLIProcess.Result {
            try await cli.run(["--profile", profile] + arguments, environment: ["PRIVATUS_PASSWORD": "x"])
        }

        /// `arguments --json`, which must succeed, decoded.
        func json<T: Decodable>(_ arguments: [String], as type: T.Type = T.self) async throws -> T {
            let result = try await run(arguments + ["--json"])
            #expect(result.status == 0, "\(arguments.first ?? ""): \(result.stderr)")
            return try JSONDecoder().decode(T.self, from: Data(result.stdout.utf8))
        }

        func start() async throws {
            try? FileManager.default.removeItem(atPath: NodeFile.path(in: layout))
            node = try cli.start(
                ["--profile", profile, "run", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"],
                environment: ["PRIVATUS_PASSWORD": "x"])
            for _ in 0..<400 where NodeFile.read(in: layout) == nil {
                try await Task.sleep(for: .milliseconds(25))
            }
            _ = try #require(NodeFile.read(in: layout), "the node wrote node.json")
        }

        func stop() async throws {
            guard let node else { return }
            node.child.send(SIGTERM)
            let ended = try await node.wait(timeout: .seconds(30))
            #expect(ended.status == 0, "\(ended.stderr)")
            self.node = nil
        }

        func status() async throws -> NodeStatus { try await json(["status"]) }

        /// Sets optional keys of the profile's config.json (before `start`).
        func configure(_ settings: [String: Any]) throws {
            let url = URL(fileURLWithPath: layout.configFile)
            var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            config.merge(settings) { $1 }
            try JSONSerialization.data(withJSONObject: config).write(to: url)
        }

        /// A metric's current value in the node's in-process sampler.
        func metric(_ name: String) async throws -> Double {
            let (status, body) = try await ControlClient(layout: layout).get("/api/v1/metrics?since=\(UInt64.max)")
            #expect(status == 200)
            let readings = try JSONDecoder().decode(MetricsSampler.Readings.self, from: Data(body))
            return try #require(readings.metrics[name]?.value, "\(name) is not a metric of the node")
        }

        /// Polls `messages peer` until `done` holds for the list (at most ≈ 20 s).
        func messages(
            with peer: String, limit: Int = 50, until done: ([MessageView]) -> Bool
        ) async throws -> [MessageView] {
            var messages: [MessageView] = []
            for _ in 0..<200 {
                messages = try await json(["messages", peer, "--limit", String(limit)])
                if done(messages) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            return messages
        }
    }

    @Test func twoNodesChatBothWaysAcrossARestartOnANewPort() async throws {
        defer { scratch.remove() }
        let alice = try await User("alice", in: scratch, cli: cli)
        let bob = try await User("bob", in: scratch, cli: cli)
        try await alice.start()
        try await bob.start()
        let aliceID = try await alice.status().peerId
        let bobStatus = try await bob.status()
        let invite = try #require(bobStatus.invite)
        #expect(invite == "privatus://\(bobStatus.peerId)?a=\(bobStatus.listenAddresses[0])")

        // Alice adds Bob by invite and writes first: Bob does not know her yet.
        let added: ContactView = try await alice.json(["contacts", "add", invite, "--name", "bob"])
        #expect(added.peerId == bobStatus.peerId && added.name == "bob" && !added.verified)
        let sent: SendResult = try await alice.json(["send", "bob", "hello bob"])
        #expect(["queued", "sent", "delivered"].contains(sent.state))
        let aliceView = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        #expect(aliceView.map(\.text) == ["hello bob"])
        #expect(aliceView.map(\.state) == ["delivered"])
        #expect(aliceView.first?.id == sent.id && aliceView.first?.from == aliceID)

        // To Bob, Alice is a message request until he accepts her.
        let requests: [ContactView] = try await bob.json(["contacts", "requests"])
        #expect(requests.map(\.peerId) == [aliceID])
        #expect(requests.first?.name == "alice" && requests.first?.possibleImpersonation == false)
        let bobContacts: [ContactView] = try await bob.json(["contacts", "list"])
        #expect(bobContacts.isEmpty)
        let bobView: [MessageView] = try await bob.json(["messages", aliceID])
        #expect(bobView.map(\.text) == ["hello bob"] && bobView.map(\.from) == [aliceID])
        let refused = try await bob.run(["send", aliceID, "not yet"])
        #expect(refused.status == 1, "a request must be accepted before replying")
        let accepted: ContactView = try await bob.json(["contacts", "accept", aliceID])
        #expect(accepted.state == "contact")

        // Bob answers; both see both messages, in order, delivered.
        _ = try await bob.json(["send", "alice", "hi alice"], as: SendResult.self)
        let bobThread = try await bob.messages(with: "alice") { $0.last?.state == "delivered" }
        #expect(bobThread.map(\.text) == ["hello bob", "hi alice"])
        #expect(bobThread.map(\.state) == ["delivered", "delivered"])
        let aliceThread = try await alice.messages(with: "bob") { $0.count == 2 }
        #expect(aliceThread.map(\.text) == ["hello bob", "hi alice"])
        #expect(aliceThread.map(\.from) == [aliceID, bobStatus.peerId])

        // Bob reads the conversation: his node marks Alice's message read and tells hers; his
        // own message stays as it was.
        let read: [MessageView] = try await bob.json(["messages", "alice", "--mark-read"])
        #expect(read.map(\.state) == ["read", "delivered"])
        let seen = try await alice.messages(with: "bob") { $0.first?.state == "read" }
        #expect(seen.map(\.state) == ["read", "delivered"])

        // The safety number is the same on both sides; a wrong one is refused.
        let aliceSide: [ContactView] = try await alice.json(["contacts", "list"])
        let number = try #require(aliceSide.first?.safetyNumber)
        #expect(number.count == 60)
        let bobSide: [ContactView] = try await bob.json(["contacts", "list"])
        #expect(bobSide.first?.safetyNumber == number)
        let wrong = String(number.reversed())
        let mismatch = try await alice.run(["contacts", "verify", "bob", wrong])
        #expect(mismatch.status == 1)
        #expect(mismatch.stderr.contains("does not match"), "\(mismatch.stderr)")
        let verified: ContactView = try await alice.json(["contacts", "verify", "bob", number])
        #expect(verified.verified)

        // Bob restarts on a new port; he dials Alice, whose node learns the new address, and the
        // conversation goes on both ways.
        let oldAddress = bobStatus.listenAddresses[0]
        try await bob.stop()
        try await bob.start()
        let newAddress = try await bob.status().listenAddresses[0]
        try #require(newAddress != oldAddress, "the restarted node listens on another port")
        _ = try await alice.json(["send", "bob", "after the restart"], as: SendResult.self)
        let afterRestart = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        #expect(afterRestart.map(\.text) == ["hello bob", "hi alice", "after the restart"])
        #expect(afterRestart.last?.state == "delivered")
        let bobAddresses: [ContactView] = try await alice.json(["contacts", "list"])
        #expect(bobAddresses.first?.addresses.first == newAddress)
        _ = try await bob.json(["send", "alice", "still here"], as: SendResult.self)
        let final = try await alice.messages(with: "bob") { $0.count == 4 }
        #expect(final.map(\.text) == ["hello bob", "hi alice", "after the restart", "still here"])
        // Paging back: the one message before the last two.
        let page: [MessageView] = try await alice.json(["messages", "bob", "--limit", "1", "--before", final[2].id])
        #expect(page.map(\.text) == ["hi alice"])

        try await alice.stop()
        try await bob.stop()
    }

    @Test func aStrangerWithAContactsNameIsFlaggedAndABlockedPeerIsNotAnswered() async throws {
        defer { scratch.remove() }
        let bob = try await User("bob", in: scratch, cli: cli)
        let alice = try await User("alice", in: scratch, cli: cli)
        // Mallory calls herself "alice" too.
        let mallory = try await User("mallory", name: "alice", in: scratch, cli: cli)
        try mallory.configure(["retryInitialSeconds": 1, "retryMaximumSeconds": 1])
        try await bob.start()
        try await alice.start()
        try await mallory.start()
        let aliceID = try await alice.status().peerId
        let bobInvite = try #require(try await bob.status().invite)
        let aliceInvite = try #require(try await alice.status().invite)
        _ = try await bob.json(["contacts", "add", aliceInvite, "--name", "alice"], as: ContactView.self)

        // Mallory, a stranger to Bob, writes to him: a request, flagged because the name she
        // gives ("alice") is the name of one of Bob's contacts.
        _ = try await mallory.json(["contacts", "add", bobInvite, "--name", "bob"], as: ContactView.self)
        let disguised = "it is me\u{1B}]52;c;cHduZWQ=\u{07}\u{1B}[2J"
        _ = try await mallory.json(["send", "bob", disguised], as: SendResult.self)
        _ = try await mallory.messages(with: "bob") { $0.last?.state == "delivered" }
        let requests: [ContactView] = try await bob.json(["contacts", "requests"])
        #expect(requests.count == 1)
        #expect(requests.first?.name == "alice")
        #expect(requests.first?.possibleImpersonation == true)
        #expect(requests.first?.peerId != aliceID)

        // Bob blocks her: her next message is dropped unanswered and stays undelivered.
        let malloryID = try #require(requests.first?.peerId)
        let blocked: ContactView = try await bob.json(["contacts", "block", malloryID])
        #expect(blocked.state == "blocked")
        _ = try await mallory.json(["send", "bob", "let me in"], as: SendResult.self)
        // Her node tries again (once a second here) and is never answered: three attempts
        // are her first message, this one, and a retry of it.
        for _ in 0..<200 where try await mallory.metric("privatus_chat_send_attempts_total") < 3 {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await mallory.metric("privatus_chat_send_attempts_total") >= 3)
        // Alice's message, sent after Mallory's went out, arrives: Bob's node is not stuck.
        _ = try await alice.json(["contacts", "add", bobInvite, "--name", "bob"], as: ContactView.self)
        _ = try await alice.json(["send", "bob", "hello from alice"], as: SendResult.self)
        _ = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        let fromMallory: [MessageView] = try await bob.json(["messages", malloryID])
        #expect(fromMallory.map(\.text) == [disguised], "stored and shown to scripts exactly")
        // On a terminal, her escape sequences are defused.
        let human = try await bob.run(["messages", malloryID])
        #expect(human.status == 0)
        #expect(!human.stdout.contains("\u{1B}") && !human.stdout.contains("\u{07}"))
        #expect(human.stdout.contains("it is me\u{FFFD}]52;c;cHduZWQ=\u{FFFD}\u{FFFD}[2J"))
        let malloryView: [MessageView] = try await mallory.json(["messages", "bob"])
        #expect(malloryView.map(\.state) == ["delivered", "sent"])

        try await mallory.stop()
        try await alice.stop()
        try await bob.stop()
    }

    @Test func theDemoRunsThreeNodesThroughTheirConversationsAndLeavesNothingBehind() async throws {
        defer { scratch.remove() }
        let result = try await cli.run(["demo"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("alice → bob while bob is away: "), "\(result.stdout)")
        #expect(result.stdout.contains("after bob came back"), "\(result.stdout)")
        // The transcript: every message of the three conversations ended delivered.
        let transcript = result.stdout.split(separator: "\n").filter { $0.hasPrefix("  [") }
        #expect(transcript.count == 6, "\(result.stdout)")
        #expect(transcript.allSatisfy { $0.hasPrefix("  [delivered, delivered in ") }, "\(result.stdout)")
        #expect(transcript.contains { $0.hasSuffix("alice: Bob, are you there? (sent while your node is off)") })
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter {
            $0.hasPrefix("privatus-demo-")
        }
        #expect(leftovers.isEmpty, "the demo's profiles are deleted")
    }

    @Test func watchShowsAReceivedMessageAndTheSendersStateChangesAsTheyHappen() async throws {
        defer { scratch.remove() }
        let alice = try await User("alice", in: scratch, cli: cli)
        let bob = try await User("bob", in: scratch, cli: cli)
        try await alice.start()
        try await bob.start()
        let aliceID = try await alice.status().peerId
        let invite = try #require(try await bob.status().invite)
        _ = try await alice.json(["contacts", "add", invite, "--name", "bob"], as: ContactView.self)

        func watch(_ user: User) throws -> CLIProcess.Running {
            let watcher = try cli.start(
                ["--profile", user.profile, "watch", "--json"], environment: ["PRIVATUS_PASSWORD": "x"])
            // The first line says the node will pass on every event from now on.
            #expect(try watcher.child.readLine(timeout: .seconds(30)) == #"{"type":"watching"}"#)
            return watcher
        }
        let aliceWatch = try watch(alice)
        let bobWatch = try watch(bob)
        let sent: SendResult = try await alice.json(["send", "bob", "are you watching?"])
        _ = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }

        // Bob's node stops: his watch ends by itself (exit 0); Alice's is interrupted.
        try await bob.stop()
        let bobEvents = try await bobWatch.wait(timeout: .seconds(30))
        #expect(bobEvents.status == 0, "\(bobEvents.stderr)")
        aliceWatch.child.send(SIGTERM)
        let aliceEvents = try await aliceWatch.wait(timeout: .seconds(30))
        try await alice.stop()

        func events(_ output: String) throws -> [NodeEvent] {
            try output.split(separator: "\n").map { try JSONDecoder().decode(NodeEvent.self, from: Data($0.utf8)) }
        }
        let received = try events(bobEvents.stdout)
        #expect(received.map(\.type) == ["request", "message"], "\(bobEvents.stdout)")
        #expect(received.last?.text == "are you watching?" && received.last?.from == aliceID)
        #expect(received.last?.id == sent.id)
        let states = try events(aliceEvents.stdout).filter { $0.id == sent.id }
        #expect(states.map(\.state) == ["sent", "delivered"], "\(aliceEvents.stdout)")
    }

    @Test func aRemovedContactsNextMessageArrivesAsARequestAndBlockingFailsWhatWaitsForThePeer() async throws {
        defer { scratch.remove() }
        let alice = try await User("alice", in: scratch, cli: cli)
        let bob = try await User("bob", in: scratch, cli: cli)
        try await alice.start()
        try await bob.start()
        let aliceID = try await alice.status().peerId
        let bobInvite = try #require(try await bob.status().invite)
        let aliceInvite = try #require(try await alice.status().invite)
        _ = try await alice.json(["contacts", "add", bobInvite, "--name", "bob"], as: ContactView.self)
        _ = try await bob.json(["contacts", "add", aliceInvite, "--name", "alice"], as: ContactView.self)
        _ = try await alice.json(["send", "bob", "one"], as: SendResult.self)
        _ = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        _ = try await bob.json(["send", "alice", "two"], as: SendResult.self)
        _ = try await bob.messages(with: "alice") { $0.last?.state == "delivered" }

        // Bob removes Alice: his sessions with her go. Her next message, on her old session,
        // cannot be decrypted; his node says so, hers starts a new session and sends it again,
        // and it arrives as a request.
        _ = try await bob.json(["contacts", "remove", "alice"], as: ContactView.self)
        let contacts: [ContactView] = try await bob.json(["contacts", "list"])
        #expect(contacts.isEmpty)
        let three: SendResult = try await alice.json(["send", "bob", "three"])
        let after = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        #expect(after.last?.id == three.id && after.last?.state == "delivered")
        #expect(try await alice.metric("privatus_chat_session_restarts_total") == 1)
        let requests: [ContactView] = try await bob.json(["contacts", "requests"])
        #expect(requests.map(\.peerId) == [aliceID])
        let kept: [MessageView] = try await bob.json(["messages", aliceID])
        #expect(kept.map(\.text) == ["one", "two", "three"], "the conversation stayed; the new message joined it")

        // Bob accepts her again and writes while her node is down: queued. Blocking her then
        // fails it, and it is never sent.
        _ = try await bob.json(["contacts", "accept", aliceID], as: ContactView.self)
        try await alice.stop()
        let four: SendResult = try await bob.json(["send", aliceID, "four"])
        let blocked: ContactView = try await bob.json(["contacts", "block", aliceID])
        #expect(blocked.state == "blocked")
        let bobView: [MessageView] = try await bob.json(["messages", aliceID])
        #expect(bobView.last?.id == four.id && bobView.last?.state == "failed")
        #expect(try await bob.status().queued == 0)
        try await bob.stop()
    }

    @Test func aMessageToAContactWhoDoesNotReturnFailsAfterItsDeadlineAndRetryDeliversIt() async throws {
        defer { scratch.remove() }
        let alice = try await User("alice", in: scratch, cli: cli)
        let bob = try await User("bob", in: scratch, cli: cli)
        try alice.configure(["deliveryDeadlineSeconds": 2, "retryInitialSeconds": 1, "retryMaximumSeconds": 1])
        try await alice.start()
        try await bob.start()
        let aliceInvite = try #require(try await alice.status().invite)
        let bobInvite = try #require(try await bob.status().invite)
        _ = try await bob.json(["contacts", "add", aliceInvite, "--name", "alice"], as: ContactView.self)
        _ = try await alice.json(["contacts", "add", bobInvite, "--name", "bob"], as: ContactView.self)
        try await bob.stop()

        // Bob is away past the deadline: the user sees the message failed, not stuck.
        let sent: SendResult = try await alice.json(["send", "bob", "are you there?"])
        let failed = try await alice.messages(with: "bob") { $0.last?.state == "failed" }
        #expect(failed.map(\.state) == ["failed"])
        #expect(try await alice.status().queued == 0)
        // Bob comes back (and dials Alice): a failed message is not sent by itself…
        try await bob.start()
        for _ in 0..<200 where try await alice.status().connectedPeers == 0 {
            try await Task.sleep(for: .milliseconds(25))
        }
        let stillFailed: [MessageView] = try await alice.json(["messages", "bob"])
        #expect(stillFailed.map(\.state) == ["failed"])
        // …until Alice retries it.
        let retried: SendResult = try await alice.json(["retry", sent.id])
        #expect(retried.id == sent.id && retried.state == "queued")
        let delivered = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        #expect(delivered.map(\.state) == ["delivered"])
        let bobView: [MessageView] = try await bob.json(["messages", "alice"])
        #expect(bobView.map(\.text) == ["are you there?"], "delivered once")
        // A delivered message cannot be retried.
        let again = try await alice.run(["retry", sent.id])
        #expect(again.status == 1)
        try await alice.stop()
        try await bob.stop()
    }

    /// Alice's second message fails while Bob is away, her third reaches him: Bob's node holds
    /// the third until the second arrives (across a restart of his node), so he sees them in
    /// Alice's order; with a short wait it gives the gap up and the late one is still shown.
    @Test func aSendersMessagesAreShownInItsOrderAcrossAGapAndNothingIsLostWhenAGapIsGivenUp() async throws {
        defer { scratch.remove() }
        let alice = try await User("alice", in: scratch, cli: cli)
        let bob = try await User("bob", in: scratch, cli: cli)
        try alice.configure(["deliveryDeadlineSeconds": 2, "retryInitialSeconds": 1, "retryMaximumSeconds": 1])
        try bob.configure(["gapResendSeconds": 1, "gapReleaseSeconds": 3_600])
        try await alice.start()
        try await bob.start()
        let aliceInvite = try #require(try await alice.status().invite)
        let bobInvite = try #require(try await bob.status().invite)
        _ = try await bob.json(["contacts", "add", aliceInvite, "--name", "alice"], as: ContactView.self)
        _ = try await alice.json(["contacts", "add", bobInvite, "--name", "bob"], as: ContactView.self)

        func send(_ text: String) async throws -> SendResult { try await alice.json(["send", "bob", text]) }
        func aliceStates() async throws -> [String] {
            try await alice.json(["messages", "bob"], as: [MessageView].self).map(\.state)
        }
        func bobTexts() async throws -> [String] {
            try await bob.json(["messages", "alice"], as: [MessageView].self).map(\.text)
        }
        /// Sends `text` while Bob is stopped and waits until it has failed.
        func sendWhileBobIsAway(_ text: String) async throws -> SendResult {
            try await bob.stop()
            let sent = try await send(text)
            let failed = try await alice.messages(with: "bob") { $0.last?.state == "failed" }
            #expect(failed.last?.text == text && failed.last?.state == "failed")
            try await bob.start()
            return sent
        }

        _ = try await send("one")
        _ = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        let two = try await sendWhileBobIsAway("two")
        _ = try await send("three")
        let delivered = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        #expect(delivered.map(\.state) == ["delivered", "failed", "delivered"])
        // "three" is on Bob's node (acknowledged) but waits behind the gap Alice's failed "two" left.
        #expect(try await bobTexts() == ["one"])
        // Held messages survive a restart of Bob's node.
        try await bob.stop()
        try await bob.start()
        #expect(try await bobTexts() == ["one"])
        // Bob's node asks Alice's for the missing number (every second); a failed message is not
        // sent for that: after three requests, still nothing.
        for _ in 0..<200 where try await bob.metric("privatus_chat_resend_requests_total") < 3 {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await bob.metric("privatus_chat_resend_requests_total") >= 3)
        #expect(try await bobTexts() == ["one"])
        // …only when Alice retries "two" (its user decides): then the gap fills.
        _ = try await alice.json(["retry", two.id], as: SendResult.self)
        let inOrder = try await bob.messages(with: "alice") { $0.count == 3 }
        #expect(inOrder.map(\.text) == ["one", "two", "three"], "shown in Alice's order, not in arrival order")
        #expect(try await aliceStates() == ["delivered", "delivered", "delivered"])

        // With a short wait, Bob gives the next gap up: what waited is shown, and the message that
        // was missing is still shown when it comes.
        try await bob.stop()
        try bob.configure(["gapResendSeconds": 1, "gapReleaseSeconds": 1])
        try await bob.start()
        let four = try await sendWhileBobIsAway("four")
        _ = try await send("five")
        let givenUp = try await bob.messages(with: "alice") { $0.count == 4 }
        #expect(givenUp.map(\.text) == ["one", "two", "three", "five"])
        _ = try await alice.json(["retry", four.id], as: SendResult.self)
        let late = try await bob.messages(with: "alice") { $0.count == 5 }
        #expect(late.map(\.text) == ["one", "two", "three", "five", "four"], "late, shown once, not lost")
        #expect(try await bob.metric("privatus_chat_gaps_given_up_total") >= 1)
        try await alice.stop()
        try await bob.stop()
    }

    @Test func twoStrangersStartingSessionsAtOnceBothGetThrough() async throws {
        defer { scratch.remove() }
        let bob = try await User("bob", in: scratch, cli: cli)
        let carol = try await User("carol", in: scratch, cli: cli)
        let dave = try await User("dave", in: scratch, cli: cli)
        for user in [bob, carol, dave] { try await user.start() }
        let invite = try #require(try await bob.status().invite)
        // Both fetch a bundle from bob and start a session at the same time: each must get its
        // own one-time prekey, or the second first message would be refused.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for user in [carol, dave] {
                group.addTask {
                    _ = try await user.json(["contacts", "add", invite, "--name", "bob"], as: ContactView.self)
                    _ = try await user.json(
                        ["send", "bob", "hello from \(user.profile.suffix(5))"], as: SendResult.self)
                }
            }
            try await group.waitForAll()
        }
        for user in [carol, dave] {
            let sent = try await user.messages(with: "bob") { $0.last?.state == "delivered" }
            #expect(sent.map(\.state) == ["delivered"])
        }
        #expect(try await carol.metric("privatus_chat_session_restarts_total") == 0)
        #expect(try await dave.metric("privatus_chat_session_restarts_total") == 0)
        let requests: [ContactView] = try await bob.json(["contacts", "requests"])
        #expect(Set(requests.map(\.name)) == ["carol", "dave"])
        // A name with a space and a slash works wherever a peer is named, paths included.
        _ = try await carol.json(["contacts", "add", invite, "--name", "Bob / Builder"], as: ContactView.self)
        let renamed: [MessageView] = try await carol.json(["messages", "Bob / Builder"])
        #expect(renamed.count == 1)
        let blocked: ContactView = try await carol.json(["contacts", "block", "Bob / Builder"])
        #expect(blocked.state == "blocked" && blocked.name == "Bob / Builder")
        for user in [bob, carol, dave] { try await user.stop() }
    }

    @Test func aStrangerCanLeaveAHundredMessagesUntilAcceptedThenTheRestArrive() async throws {
        defer { scratch.remove() }
        let bob = try await User("bob", in: scratch, cli: cli)
        let mallory = try await User("mallory", in: scratch, cli: cli)
        try mallory.configure(["retryInitialSeconds": 1, "retryMaximumSeconds": 1])
        try await bob.start()
        try await mallory.start()
        let malloryID = try await mallory.status().peerId
        _ = try await mallory.json(
            ["contacts", "add", try #require(try await bob.status().invite), "--name", "bob"], as: ContactView.self)
        let client = try ControlClient(layout: mallory.layout)
        for index in 1...101 {
            _ = try await client.call(
                "POST", "/api/v1/messages", body: SendRequest(peer: "bob", text: "spam \(index)"), as: SendResult.self)
        }
        // Bob's node keeps the first hundred of a request and leaves the rest unanswered (the
        // last is recorded `sent` once its receipt has not come within a moment).
        let kept = try await mallory.messages(with: "bob", limit: 1_000) {
            $0.count == 101 && $0.prefix(100).allSatisfy { $0.state == "delivered" } && $0.last?.state == "sent"
        }
        #expect(kept.count == 101)
        #expect(kept.prefix(100).allSatisfy { $0.state == "delivered" })
        #expect(kept.last?.state == "sent")
        let stored: [MessageView] = try await bob.json(["messages", malloryID, "--limit", "1000"])
        #expect(stored.count == 100)
        // Accepted, the rest arrives with the next retry.
        _ = try await bob.json(["contacts", "accept", malloryID], as: ContactView.self)
        let all = try await mallory.messages(with: "bob", limit: 1_000) { $0.last?.state == "delivered" }
        #expect(all.last?.state == "delivered")
        let after: [MessageView] = try await bob.json(["messages", malloryID, "--limit", "1000"])
        #expect(after.map(\.text) == (1...101).map { "spam \($0)" })
        try await mallory.stop()
        try await bob.stop()
    }
}
