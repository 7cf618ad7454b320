// The primitives Privatus relies on and the keystore unlock, through the same swift-crypto API
// paths the product uses; mirrors `privatus bench crypto` (Sources/PrivatusBench/CryptoSuite.swift)
// with ordo-one/benchmark's wall clock, throughput and malloc counts.
//
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
//
// Throughput is operations per second; for the 1 MiB benchmarks that is MiB/s.
//
// The benchmark runner is an async command, so these bodies run off the main thread and allocate
// from a non-main glibc malloc arena, without the allocator tuning that the `privatus` executable
// applies at startup: the 1 MiB GCM-SIV and ChaChaPoly seals here pay ~480 page faults each and
// show swift-crypto's raw cost under glibc's defaults (BENCHMARKS.md; Sources/SealProbe).
import Benchmark
import Crypto
import CryptoExtras
import Foundation
import PrivatusCrypto

/// Inputs built once per process, outside the measured loops.
enum Fixtures {
    static let small = [UInt8](repeating: 0x5a, count: 1024)
    static let large = [UInt8](repeating: 0x5a, count: 1 << 20)
    static let message64 = [UInt8](repeating: 7, count: 64)
    static let info = Array("Privatus-v1/bench".utf8)
    static let key = SymmetricKey(size: .bits256)
    static let sealedLarge = try! AES.GCM.seal(large, using: key)

    static let alice = Curve25519.KeyAgreement.PrivateKey()
    static let bob = Curve25519.KeyAgreement.PrivateKey().publicKey
    static let signer = Curve25519.Signing.PrivateKey()
    static let signature = try! signer.signature(for: message64)

    static let kem = try! MLKEM768.PrivateKey()
    static let encapsulated = try! kem.publicKey.encapsulate()

    static let password = "bench password"
    /// Sealed at the scrypt floor (N = 2^17, r = 8): ≈ 0.4 s to build, so only the unlock
    /// benchmark touches it (during its warm-up).
    static let sealedKeystore = try! Keystore.seal(
        KeystoreContents(keys: IdentityKeys(), name: "bench"),
        password: password,
        parameters: .floor
    )
}

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

    /// Microsecond-scale operations: 1,000 per sample.
    let fast = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: 2,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000
    )

    /// 1 MiB operations (≈ 0.1–1.5 ms each): one per sample.
    let bulk = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: 20,
        scalingFactor: .one,
        maxDuration: .seconds(1),
        maxIterations: 2_000
    )

    /// The keystore unlock (scrypt at the floor, ≈ 0.4 s each): a handful of runs.
    let unlock = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(5),
        maxIterations: 5
    )

    // MARK: AEADs

    Benchmark("AES-256-GCM seal 1 KiB", configuration: fast) { benchmark in
        let message = Fixtures.small
        let key = Fixtures.key
        for _ in benchmark.scaledIterations {
            blackHole(try AES.GCM.seal(message, using: key).tag.first!)
        }
    }
    Benchmark("AES-256-GCM seal 1 MiB", configuration: bulk) { benchmark in
        let message = Fixtures.large
        let key = Fixtures.key
        for _ in benchmark.scaledIterations {
            blackHole(try AES.GCM.seal(message, using: key).tag.first!)
        }
    }
    Benchmark("AES-256-GCM open 1 MiB", configuration: bulk) { benchmark in
        let sealed = Fixtures.sealedLarge
        let key = Fixtures.key
        for _ in benchmark.scaledIterations {
            blackHole(try AES.GCM.open(sealed, using: key).first!)
        }
    }
    Benchmark("AES-256-GCM-SIV seal 1 KiB", configuration: fast) { benchmark in
        let message = Fixtures.small
        let key = Fixtures.key
        for _ in benchmark.scaledIterations {
            blackHole(try AES.GCM._SIV.seal(message, using: key).tag.first!)
        }
    }
    Benchmark("AES-256-GCM-SIV seal 1 MiB", configuration: bulk) { benchmark in
        let message = Fixtures.large
        let key = Fixtures.key
        for _ in benchmark.scaledIterations {
            blackHole(try AES.GCM._SIV.seal(message, using: key).tag.first!)
        }
    }
    Benchmark("ChaChaPoly seal 1 MiB", configuration: bulk) { benchmark in
        let message = Fixtures.large
        let key = Fixtures.key
        for _ in benchmark.scaledIterations {
            blackHole(try ChaChaPoly.seal(message, using: key).tag.first!)
        }
    }

    // MARK: Curve25519

    Benchmark("X25519 agreement", configuration: fast) { benchmark in
        let alice = Fixtures.alice
        let bob = Fixtures.bob
        for _ in benchmark.scaledIterations {
            blackHole(try alice.sharedSecretFromKeyAgreement(with: bob).withUnsafeBytes { $0[0] })
        }
    }
    Benchmark("X25519 key generation", configuration: fast) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation.first!)
        }
    }
    Benchmark("Ed25519 sign 64 B", configuration: fast) { benchmark in
        let signer = Fixtures.signer
        let message = Fixtures.message64
        for _ in benchmark.scaledIterations {
            blackHole(try signer.signature(for: message).first!)
        }
    }
    Benchmark("Ed25519 verify 64 B", configuration: fast) { benchmark in
        let publicKey = Fixtures.signer.publicKey
        let signature = Fixtures.signature
        let message = Fixtures.message64
        for _ in benchmark.scaledIterations {
            blackHole(publicKey.isValidSignature(signature, for: message))
        }
    }

    // MARK: MAC and KDF

    Benchmark("HMAC-SHA256 64 B", configuration: fast) { benchmark in
        let key = Fixtures.key
        let message = Fixtures.message64
        for _ in benchmark.scaledIterations {
            blackHole(HMAC<SHA256>.authenticationCode(for: message, using: key).withUnsafeBytes { $0[0] })
        }
    }
    Benchmark("HKDF-SHA256 32 B", configuration: fast) { benchmark in
        let key = Fixtures.key
        let info = Fixtures.info
        for _ in benchmark.scaledIterations {
            let derived = HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: info, outputByteCount: 32)
            blackHole(derived.withUnsafeBytes { $0[0] })
        }
    }

    // MARK: ML-KEM-768

    Benchmark("ML-KEM-768 encapsulate", configuration: fast) { benchmark in
        let publicKey = Fixtures.kem.publicKey
        for _ in benchmark.scaledIterations {
            blackHole(try publicKey.encapsulate().encapsulated.first!)
        }
    }
    Benchmark("ML-KEM-768 decapsulate", configuration: fast) { benchmark in
        let kem = Fixtures.kem
        let encapsulated = Fixtures.encapsulated.encapsulated
        for _ in benchmark.scaledIterations {
            blackHole(try kem.decapsulate(encapsulated).withUnsafeBytes { $0[0] })
        }
    }

    // MARK: Keystore

    Benchmark("Keystore unlock (scrypt floor)", configuration: unlock) { benchmark in
        let sealed = Fixtures.sealedKeystore
        let password = Fixtures.password
        for _ in benchmark.scaledIterations {
            blackHole(try Keystore.open(sealed, password: password))
        }
    }
}
