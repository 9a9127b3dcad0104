// swift-tools-version:6.0
//
// Tally: real-time national digital-transformation indicators over ZeroMQ.
//
// Layering (each target knows only the ones above it):
//   CZeroMQ      system library, libzmq through pkg-config
//   ZeroMQ       the safe Swift binding; the only code that touches the C API
//   TallyEngine  events, pipelines, windows, aggregates, snapshots; no sockets, no clocks
//   TallyDaemon  ingest, durability, publication, metrics, systemd, security
//   tally        the thin executable (swift-argument-parser commands)
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "tally",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tally", targets: ["tally"]),
        .library(name: "ZeroMQ", targets: ["ZeroMQ"]),
        .library(name: "TallyEngine", targets: ["TallyEngine"]),
        .library(name: "TallyDaemon", targets: ["TallyDaemon"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        // Hardware CRC-32C (SSE4.2 / ARMv8 CRC, run-time dispatch) and a prefetch hint.
        .target(name: "CTallyCRC"),
        .target(
            name: "ZeroMQ",
            dependencies: ["CZeroMQ"],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        .target(
            name: "TallyEngine",
            dependencies: ["CTallyCRC", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .target(
            name: "TallyDaemon",
            dependencies: [
                "ZeroMQ",
                "TallyEngine",
                "CTallyCRC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            exclude: ["Security/README.md", "Security/RESULTS.md"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tally",
            dependencies: [
                "TallyDaemon",
                "TallyEngine",
                "ZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "zmq-bench",
            dependencies: ["ZeroMQ"],
            path: "Benchmarks/zmq-bench",
            exclude: ["pair.sh", "compare.sh", "RESULTS.md"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "wal-bench",
            dependencies: ["TallyDaemon", "TallyEngine"],
            path: "Benchmarks/wal-bench",
            exclude: ["RESULTS.md"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "decode-bench",
            dependencies: ["TallyEngine"],
            path: "Benchmarks/decode-bench",
            exclude: ["RESULTS.md", "compare.sh"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "engine-bench",
            dependencies: ["TallyEngine"],
            path: "Benchmarks/engine-bench",
            exclude: ["RESULTS.md"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ZeroMQTests",
            dependencies: ["ZeroMQ"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TallyEngineTests",
            dependencies: [
                "TallyEngine",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Fixtures/decoder"],  // read in place by the decoder tests (and fuzzers)
            swiftSettings: strict
        ),
        .testTarget(
            name: "TallyDaemonTests",
            dependencies: ["TallyDaemon", "TallyEngine", "ZeroMQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
