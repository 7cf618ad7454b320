// End-to-end session operations on 1 KiB plaintexts, mirroring `privatus bench sessions`
// (Sources/PrivatusBench/SessionsSuite.swift), with ordo-one/benchmark's malloc counts: the
// allocations per encrypt and decrypt are the thresholds later changes are held to.
//
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark --target SessionBenchmarks
import Benchmark
import Crypto
import Foundation
import PrivatusCrypto

/// A pair of users with an established session, built once.
enum Pair {
    static let now: UInt64 = 1_800_000_000
    static let plaintext = [UInt8](repeating: 0x61, count: 1024)
    static let aliceKeys = IdentityKeys()
    static let bobKeys = IdentityKeys()
    static let bobPrekeys = try! PrekeyStore(identity: bobKeys.identity, now: now)
    static let established: (alice: RatchetSession, bob: RatchetSession) = {
        var randomness = SystemRatchetKeys()
        let bundle = bobPrekeys.bundle(keys: bobKeys, withOneTimePrekey: false)
        let (alice, initial) = try! SessionStart.initiate(
            keys: aliceKeys, bundle: bundle, firstPlaintext: plaintext, now: now, ratchetKeys: &randomness
        )
        let accepted = try! bobPrekeys.acceptingInitialMessage(initial, keys: bobKeys, now: now, ratchetKeys: &randomness)
        return (alice, accepted.session)
    }()
}

/// Session states that persist from one sample to the next (benchmarks run one at a time).
final class Conversation: @unchecked Sendable {
    var left = Pair.established.alice
    var right = Pair.established.bob
}

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
    let fast = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: 2,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 200
    )
    let slow = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: 2,
        scalingFactor: .one,
        maxDuration: .seconds(2),
        maxIterations: 2_000
    )

    Benchmark("Ratchet encrypt 1 KiB", configuration: fast) { benchmark in
        var session = Pair.established.alice
        for _ in benchmark.scaledIterations {
            let (next, message) = try session.encrypting(Pair.plaintext)
            session = next
            blackHole(message.ciphertext[0])
        }
    }

    Benchmark("Ratchet decrypt 1 KiB", configuration: fast) { benchmark in
        var sender = Pair.established.alice
        var receiver = Pair.established.bob
        var randomness = SystemRatchetKeys()
        let messages = try benchmark.scaledIterations.map { _ in
            let (next, message) = try sender.encrypting(Pair.plaintext)
            sender = next
            return message
        }
        benchmark.startMeasurement()
        for message in messages {
            let (next, text) = try receiver.decrypting(message, now: Pair.now, keys: &randomness)
            receiver = next
            blackHole(text[0])
        }
        benchmark.stopMeasurement()
    }

    // The two sessions live across samples: restarting from the established pair each sample
    // would make the first receive of every sample a message on the initial chain, with no DH step.
    let conversation = Conversation()
    Benchmark("Ratchet ping-pong round trip 1 KiB", configuration: slow) { benchmark in
        var randomness = SystemRatchetKeys()
        for _ in benchmark.scaledIterations {
            let (leftNext, toRight) = try conversation.left.encrypting(Pair.plaintext)
            let (rightAfter, _) = try conversation.right.decrypting(toRight, now: Pair.now, keys: &randomness)
            let (rightNext, toLeft) = try rightAfter.encrypting(Pair.plaintext)
            let (leftAfter, text) = try leftNext.decrypting(toLeft, now: Pair.now, keys: &randomness)
            conversation.left = leftAfter
            conversation.right = rightNext
            blackHole(text[0])
        }
    }

    Benchmark("Session start, both sides (PQXDH + first 1 KiB message)", configuration: slow) { benchmark in
        var randomness = SystemRatchetKeys()
        let bundle = Pair.bobPrekeys.bundle(keys: Pair.bobKeys, withOneTimePrekey: false)
        for _ in benchmark.scaledIterations {
            let (_, first) = try SessionStart.initiate(
                keys: Pair.aliceKeys, bundle: bundle, firstPlaintext: Pair.plaintext, now: Pair.now, ratchetKeys: &randomness
            )
            let accepted = try Pair.bobPrekeys.acceptingInitialMessage(
                first, keys: Pair.bobKeys, now: Pair.now, ratchetKeys: &randomness
            )
            blackHole(accepted.plaintext[0])
        }
    }
}
