// swift-tools-version: 6.1
import PackageDescription

// The package-benchmark (ordo-one) suites of Privatus. A package of its own so that the main
// package does not depend on package-benchmark. Run from this directory:
//   swift package --allow-writing-to-package-directory benchmark
let package = Package(
    name: "PrivatusBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Privatus", path: "../"),
        .package(url: "https://github.com/ordo-one/package-benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        .executableTarget(
            name: "CryptoBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "PrivatusCore", package: "Privatus"),
                .product(name: "PrivatusCrypto", package: "Privatus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            path: "Benchmarks/CryptoBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
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
