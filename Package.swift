// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Privatus",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "privatus", targets: ["privatus"]),
        .library(name: "PrivatusCore", targets: ["PrivatusCore"]),
        .library(name: "PrivatusCrypto", targets: ["PrivatusCrypto"]),
        .library(name: "PrivatusProfile", targets: ["PrivatusProfile"]),
        .library(name: "PrivatusStore", targets: ["PrivatusStore"]),
        .library(name: "PrivatusWire", targets: ["PrivatusWire"]),
        .library(name: "PrivatusNet", targets: ["PrivatusNet"]),
        .library(name: "PrivatusDHT", targets: ["PrivatusDHT"]),
        .library(name: "PrivatusNode", targets: ["PrivatusNode"]),
        .library(name: "PrivatusBench", targets: ["PrivatusBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        // Runtime for the committed generated code of PrivatusWire, and the source of the
        // protoc-gen-swift that scripts/generate-protos.sh builds. Never its build plugin.
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // zlib for file chunks marked compressible (links Debian's zlib1g).
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CPrivatusSystem"),
        // SQLite's WAL writes gathered per transaction (a VFS shim over the system SQLite's
        // default VFS).
        .target(name: "CPrivatusSQLite", linkerSettings: [.linkedLibrary("sqlite3")]),
        .target(
            name: "PrivatusCore",
            dependencies: ["CPrivatusSystem", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusCrypto",
            dependencies: [
                "PrivatusCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusProfile",
            dependencies: [
                "PrivatusCore",
                "PrivatusCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusStore",
            dependencies: [
                "CPrivatusSQLite",
                "PrivatusCore",
                "PrivatusCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                // The SQLite C API GRDB is built on: the WAL hook (Checkpointer).
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusWire",
            dependencies: ["PrivatusCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Protos"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusNet",
            dependencies: [
                "PrivatusCore",
                "PrivatusCrypto",
                "PrivatusWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusDHT",
            dependencies: [
                "PrivatusCore", "PrivatusCrypto", "PrivatusWire", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusNode",
            dependencies: [
                "PrivatusDHT",
                "PrivatusCore", "PrivatusCrypto", "PrivatusProfile", "PrivatusStore", "PrivatusWire", "PrivatusNet",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusBench",
            dependencies: [
                "CPrivatusSQLite",
                "CPrivatusSystem",
                "PrivatusCore",
                "PrivatusDHT",
                "PrivatusNode",
                "PrivatusProfile",
                "PrivatusCrypto",
                "PrivatusStore",
                "PrivatusNet",
                "PrivatusWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "privatus",
            dependencies: [
                "CPrivatusSystem",
                "PrivatusCore",
                "PrivatusCrypto",
                "PrivatusProfile",
                "PrivatusStore",
                "PrivatusNode",
                "PrivatusBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PrivatusTesting",
            dependencies: ["PrivatusCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusDHTTests",
            dependencies: [
                "PrivatusDHT", "PrivatusCore", "PrivatusCrypto", "PrivatusWire", "PrivatusTesting",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusCoreTests",
            dependencies: ["PrivatusCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusCryptoTests",
            dependencies: ["PrivatusCrypto", "PrivatusTesting", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusNetTests",
            dependencies: [
                "PrivatusNet", "PrivatusWire", "PrivatusTesting", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusProfileTests",
            dependencies: ["PrivatusProfile", "PrivatusTesting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "StoreWriter",
            dependencies: [
                "CPrivatusSQLite", "PrivatusCore", "PrivatusStore", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Tests/StoreWriter",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "LinkEcho",
            dependencies: [
                "PrivatusCore", "PrivatusCrypto", "PrivatusNet", "PrivatusWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/LinkEcho",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusWireTests",
            dependencies: ["PrivatusWire", "PrivatusCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusStoreTests",
            dependencies: [
                "PrivatusStore", "PrivatusProfile", "PrivatusTesting", "StoreWriter",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusNodeTests",
            dependencies: [
                "PrivatusNode", "PrivatusStore", "PrivatusCrypto", "PrivatusDHT", "PrivatusCore", "PrivatusTesting",
                "PrivatusWire",
                "PrivatusNet",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusBenchTests",
            dependencies: ["PrivatusBench", "PrivatusCore", "PrivatusWire", "PrivatusTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PrivatusCLITests",
            dependencies: [
                "privatus", "CPrivatusSystem", "PrivatusCore", "PrivatusTesting", "PrivatusNode", "PrivatusProfile",
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
