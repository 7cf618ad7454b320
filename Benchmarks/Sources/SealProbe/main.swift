// SealProbe: takes AES-256-GCM seal of 1 MiB apart, one step at a time.
//
//   swift build -c release --product SealProbe
//   .build/release/SealProbe [mode] [iterations]
//
// Each mode runs `iterations` operations after a warm-up and prints MB/s (of plaintext), µs per
// operation and minor page faults per operation (getrusage). Modes:
//   seal-array    AES.GCM.seal([UInt8] 1 MiB)              (what CryptoSuite measures)
//   seal-data     AES.GCM.seal(Data 1 MiB)
//   open          AES.GCM.open(sealedBox)                    (checks the plaintext first)
//   open-combined AES.GCM.open(SealedBox(combined:))          (the box rebuilt from bytes each time)
//   box           AES.GCM.SealedBox(nonce:ciphertext:tag:)    (seal's last step, alone)
//   copy          Data() + reserveCapacity + append(contentsOf: Data) of 1 MiB (no crypto)
//   malloc-touch  malloc(1 MiB), write every page, free       (no crypto)
//   siv           AES.GCM._SIV.seal([UInt8] 1 MiB)
//   chacha        ChaChaPoly.seal([UInt8] 1 MiB)
//   all           every mode above, in turn
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
let array = [UInt8](repeating: 0x5a, count: size)
let data = Data(array)
let key = SymmetricKey(size: .bits256)
let sealed = try AES.GCM.seal(array, using: key)
let combined = sealed.combined!
let ciphertext = sealed.ciphertext
let tag = sealed.tag
let nonce = sealed.nonce

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
    print(
        String(
            format: "%-14@ %8.0f MB/s  %8.1f µs/op  %7.1f faults/op",
            name as NSString, Double(size) / perOp / 1e6, perOp * 1e6, Double(faults) / Double(iterations)
        )
    )
}

let arguments = CommandLine.arguments
let mode = arguments.count > 1 ? arguments[1] : "all"
let iterations = arguments.count > 2 ? Int(arguments[2])! : 2000

// open must really decrypt: check once that it gives back the plaintext, and that a flipped
// ciphertext bit is refused.
let opened = try AES.GCM.open(sealed, using: key)
precondition(opened.elementsEqual(array), "open returned the wrong plaintext")
var tampered = combined
tampered[100] ^= 1
precondition((try? AES.GCM.open(AES.GCM.SealedBox(combined: tampered), using: key)) == nil, "tampered box opened")

let modes: [(String, () throws -> Void)] = [
    ("seal-array", { consume(try AES.GCM.seal(array, using: key)) }),
    ("seal-data", { consume(try AES.GCM.seal(data, using: key)) }),
    ("open", { consume(try AES.GCM.open(sealed, using: key)) }),
    ("open-combined", { consume(try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: key)) }),
    ("box", { consume(try AES.GCM.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag)) }),
    ("copy", {
        var out = Data()
        out.reserveCapacity(12 + ciphertext.count + 16)
        out.append(contentsOf: ciphertext)
        consume(out)
    }),
    ("malloc-touch", {
        let p = malloc(size)!.assumingMemoryBound(to: UInt8.self)
        var i = 0
        while i < size { p[i] = 1; i += 4096 }
        consume(p)
        free(p)
    }),
    ("siv", { consume(try AES.GCM._SIV.seal(array, using: key)) }),
    ("chacha", { consume(try ChaChaPoly.seal(array, using: key)) }),
]

for (name, body) in modes where mode == "all" || mode == name {
    try run(name, iterations: iterations, body)
}
