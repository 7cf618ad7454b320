// SealProbe: why a 1 MiB AES-GCM/ChaChaPoly/GCM-SIV seal can run ~8x slower than the cipher.
//
//   cd Benchmarks && swift build -c release --product SealProbe
//   .build/release/SealProbe [mode] [iterations] [chunk KiB]
//
// Each mode runs `iterations` operations (default 2000) after a warm-up, in a process that has
// done nothing else first (glibc malloc adapts its thresholds to the first large frees, so history
// matters), and prints MB/s of plaintext, µs per operation and minor page faults per operation.
//
// Finding (2026-11-29): a seal keeps two 1 MiB buffers alive at once (swift-crypto's malloc'd
// ciphertext, then the SealedBox's combined copy; ChaChaPoly and GCM-SIV build three through
// `Data(nonce) + ciphertext + tag`). On the main thread's malloc arena, freeing them leaves a heap
// top above M_TRIM_THRESHOLD, so every seal ends with a brk() shrink and the next one faults ~2 MiB
// of fresh zeroed pages back in (~480 faults, ~1 ms). open keeps one buffer and never trims.
//
// Modes:
//   seal-array    AES.GCM.seal([UInt8] 1 MiB)                 (what CryptoSuite measures)
//   seal-data     AES.GCM.seal(Data 1 MiB)
//   open          AES.GCM.open(sealedBox)
//   open-combined AES.GCM.open(SealedBox(combined:))           (the box rebuilt from bytes each time)
//   box           AES.GCM.SealedBox(nonce:ciphertext:tag:)     (seal's last step, alone)
//   copy          Data() + reserveCapacity + append(contentsOf: Data) of 1 MiB (no crypto)
//   malloc-touch  malloc(1 MiB), write one byte a page, free    (no crypto)
//   seal-64k-x16  AES.GCM.seal of 1 MiB as 16 boxes of 64 KiB
//   seal-chunked  AES.GCM.seal of 1 MiB in boxes of [chunk KiB] (default 64)
//   siv           AES.GCM._SIV.seal([UInt8] 1 MiB)
//   chacha        ChaChaPoly.seal([UInt8] 1 MiB)
//   all           `check`, then every mode above in one process
//   check         open returns the plaintext and refuses a tampered box
//   suite         CryptoSuite's AEAD figures, in its order and with its timing loop
//
// Environment:
//   PROBE_MALLOPT=<MiB>  mallopt(M_MMAP_THRESHOLD, MiB) and mallopt(M_TRIM_THRESHOLD, 4 × MiB) first
//   PROBE_THREAD=1       run on a second thread (a non-main malloc arena, as package-benchmark does)
//   GLIBC_TUNABLES=glibc.malloc.mmap_threshold=8388608:glibc.malloc.trim_threshold=67108864
//                        the same malloc setting as PROBE_MALLOPT, from outside
import Crypto
import CryptoExtras
import Foundation

#if canImport(Glibc)
import Glibc
#endif

@inline(never)
func consume<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

func minorFaults() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_minflt)
}

let size = 1 << 20

/// Built on first use, so a mode's process does only that mode's allocations before it runs
/// (glibc's malloc adapts its mmap threshold to the first large frees, so history matters).
enum Fixture {
    static let key = SymmetricKey(size: .bits256)
    static let array = [UInt8](repeating: 0x5a, count: size)
    static let data = Data(array)
    static let chunk = [UInt8](repeating: 0x5a, count: 64 * 1024)
    static let sealed = try! AES.GCM.seal(Fixture.array, using: key)
    static let combined = sealed.combined!
    static let ciphertext = sealed.ciphertext
    static let tag = sealed.tag
    static let nonce = sealed.nonce
}

func run(_ name: String, iterations: Int, _ body: () throws -> Void) rethrows {
    for _ in 0..<max(iterations / 10, 10) { try body() }  // warm-up
    let faults0 = minorFaults()
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<iterations { try body() }
    let elapsed = clock.now - start
    let faults = minorFaults() - faults0
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let perOp = seconds / Double(iterations)
    let padded = name.padding(toLength: 14, withPad: " ", startingAt: 0)
    print(
        String(
            format: "%@ %8.0f MB/s  %8.1f µs/op  %7.1f faults/op",
            padded as NSString, Double(size) / perOp / 1e6, perOp * 1e6, Double(faults) / Double(iterations)
        )
    )
}

let arguments = CommandLine.arguments
let mode = arguments.count > 1 ? arguments[1] : "all"
let iterations = arguments.count > 2 ? Int(arguments[2])! : 2000
/// Chunk size of `seal-chunked`, in KiB.
let chunkKiB = arguments.count > 3 ? Int(arguments[3])! : 64

// PROBE_MALLOPT=<MiB> sets from inside the process what GLIBC_TUNABLES sets from outside: a fixed
// mmap threshold (which also turns off glibc's dynamic adjustment) and a trim threshold above it.
// <malloc.h> is not in the Glibc module: declare mallopt and its two parameters here.
@_silgen_name("mallopt") func mallopt(_ parameter: Int32, _ value: Int32) -> Int32
let mTrimThreshold: Int32 = -1
let mMmapThreshold: Int32 = -3
if let setting = ProcessInfo.processInfo.environment["PROBE_MALLOPT"] {
    let mmapThreshold = (Int32(setting) ?? 4) << 20  // MiB
    precondition(mallopt(mMmapThreshold, mmapThreshold) == 1)
    precondition(mallopt(mTrimThreshold, 4 * mmapThreshold) == 1)
    print("mallopt        M_MMAP_THRESHOLD \(mmapThreshold >> 20) MiB, M_TRIM_THRESHOLD \(4 * mmapThreshold >> 20) MiB")
}

/// open must really decrypt: it gives back the plaintext, and a flipped ciphertext bit is refused.
func check() throws {
    let key = Fixture.key
    let opened = try AES.GCM.open(Fixture.sealed, using: key)
    precondition(opened.elementsEqual(Fixture.array), "open returned the wrong plaintext")
    precondition(!Fixture.ciphertext.elementsEqual(Fixture.array), "ciphertext equals plaintext")
    var tampered = Fixture.combined
    tampered[100] ^= 1
    precondition((try? AES.GCM.open(AES.GCM.SealedBox(combined: tampered), using: key)) == nil, "tampered box opened")
    print("check          open returns the plaintext; a tampered box is refused")
}

let key = Fixture.key
nonisolated(unsafe) let modes: [(String, () throws -> Void)] = [
    ("seal-array", { consume(try AES.GCM.seal(Fixture.array, using: key)) }),
    ("seal-data", { consume(try AES.GCM.seal(Fixture.data, using: key)) }),
    ("open", { consume(try AES.GCM.open(Fixture.sealed, using: key)) }),
    ("open-combined", { consume(try AES.GCM.open(AES.GCM.SealedBox(combined: Fixture.combined), using: key)) }),
    ("box", { consume(try AES.GCM.SealedBox(nonce: Fixture.nonce, ciphertext: Fixture.ciphertext, tag: Fixture.tag)) }),
    (
        "copy",
        {
            var out = Data()
            out.reserveCapacity(12 + Fixture.ciphertext.count + 16)
            out.append(contentsOf: Fixture.ciphertext)
            consume(out)
        }
    ),
    (
        "malloc-touch",
        {
            let p = malloc(size)!.assumingMemoryBound(to: UInt8.self)
            var i = 0
            while i < size { p[i] = 1; i += 4096 }
            consume(p)
            free(p)
        }
    ),
    (
        "seal-64k-x16",
        {
            for _ in 0..<16 { consume(try AES.GCM.seal(Fixture.chunk, using: key)) }
        }
    ),
    (
        "seal-chunked",
        {
            var offset = 0
            let chunk = chunkKiB << 10
            try Fixture.array.withUnsafeBytes { all in
                while offset < size {
                    let piece = UnsafeRawBufferPointer(rebasing: all[offset..<min(offset + chunk, size)])
                    consume(try AES.GCM.seal(piece, using: key))
                    offset += chunk
                }
            }
        }
    ),
    ("siv", { consume(try AES.GCM._SIV.seal(Fixture.array, using: key)) }),
    ("chacha", { consume(try ChaChaPoly.seal(Fixture.array, using: key)) }),
]

/// CryptoSuite's AEAD loop, in its order and with its timing (doubling batches for 0.5 s).
func suite() throws {
    func megabytesPerSecond(_ name: String, bytes: Int, _ operation: () throws -> Void) rethrows {
        let clock = ContinuousClock()
        let faults0 = minorFaults()
        for _ in 0..<3 { try operation() }
        var count = 0
        var batch = 1
        var elapsed = Duration.zero
        while elapsed < .milliseconds(500) {
            elapsed += try clock.measure { for _ in 0..<batch { try operation() } }
            count += batch
            if batch < 1 << 16 { batch *= 2 }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let faults = Double(minorFaults() - faults0) / Double(count + 3)
        let padded = name.padding(toLength: 14, withPad: " ", startingAt: 0)
        print(
            String(
                format: "%@ %8.0f MB/s  %7.1f faults/op", padded as NSString, Double(count * bytes) / seconds / 1e6,
                faults))
    }
    let small = [UInt8](repeating: 0x5a, count: 1024)
    let large = [UInt8](repeating: 0x5a, count: 1 << 20)
    for (name, message) in [("1k", small), ("1m", large)] {
        try megabytesPerSecond("seal-\(name)", bytes: message.count) {
            consume(try AES.GCM.seal(message, using: key).tag.first!)
        }
        let sealed = try AES.GCM.seal(message, using: key)
        try megabytesPerSecond("open-\(name)", bytes: message.count) {
            consume(try AES.GCM.open(sealed, using: key).first!)
        }
        try megabytesPerSecond("siv-\(name)", bytes: message.count) {
            consume(try AES.GCM._SIV.seal(message, using: key).tag.first!)
        }
    }
    try megabytesPerSecond("chacha-1m", bytes: large.count) {
        consume(try ChaChaPoly.seal(large, using: key).tag.first!)
    }
}

func main() throws {
    if mode == "suite" { try suite() }
    if mode == "check" || mode == "all" { try check() }
    for (name, body) in modes where mode == "all" || mode == name {
        try run(name, iterations: iterations, body)
    }
}

// PROBE_THREAD=1 runs everything on a second thread, whose allocations glibc serves from a
// separate (non-main) arena.
if ProcessInfo.processInfo.environment["PROBE_THREAD"] != nil {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        try! main()
        done.signal()
    }
    thread.start()
    done.wait()
} else {
    try main()
}
