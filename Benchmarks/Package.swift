// swift-tools-version: 6.1
import PackageDescription

// The ordo-one/benchmark suites of Privatus: a package of its own, so that the main package does
// not depend on the benchmark package. Run from this directory:
//   swift package --allow-writing-to-package-directory benchmark
// ordo-one/benchmark was renamed from package-benchmark (same repository, same 1.38.1 commit);
// the plugin warns about the old identifier. MallocInterposer backs the malloc metrics.
let package = Package(
    name: "PrivatusBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named: a path dependency's identity is otherwise its folder's name, which differs
        // between checkouts.
        .package(name: "Privatus", path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        .executableTarget(
            name: "CryptoBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PrivatusCrypto", package: "Privatus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            path: "Benchmarks/CryptoBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SessionBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PrivatusCrypto", package: "Privatus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/SessionBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SealProbe",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            path: "Sources/SealProbe"
        ),
    ],
    swiftLanguageModes: [.v6]
)
