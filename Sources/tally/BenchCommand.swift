import ArgumentParser
import Foundation
import TallyDaemon

// MARK: - tally bench

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure this machine: events/s, event-to-subscriber latency, peak RSS and log bytes per event.",
        discussion: """
            Runs the daemon in-process on loopback (temporary state dir, write-ahead log on, the national \
            pipeline) and feeds it the simulator's national mix. Throughput = first send → the first published \
            snapshot that includes every event. Latency = each frame's send → the first snapshot received by a \
            subscriber that includes it (p50/p99 weighted by events). RSS is the whole process (daemon and \
            producers). Figures vary with the machine's load: run it on an otherwise idle box.
            """
    )

    @Option(name: .long, help: "Events to send (default 200000).")
    var events: Int = 200_000
    @Option(name: .long, help: "Events per frame (default 100).")
    var batch: Int = 100
    @Flag(name: .long, help: "Use the acknowledged path (group commit).")
    var ack = false
    @Option(name: .long, help: "With --ack: batches in flight per producer, 1 to 16 (default 4; 1 = wait for each reply).")
    var window: Int = 4
    @Option(name: .long, help: "Producer threads (default 1).")
    var producers: Int = 1
    @Option(name: .long, help: "Offered load in events/s over all producers (default: as fast as possible).")
    var rate: Int?
    @Option(name: .long, help: "Snapshot interval (default 100ms).")
    var snapshotInterval: String = "100ms"
    @Option(name: .long, help: "The pipeline (default Pipelines/national-dx.yaml).")
    var pipeline: String?
    @Flag(name: .long, help: "CURVE on every endpoint (temporary server and client keys, ZAP allow-list): the encryption's cost.")
    var curve = false
    @Flag(name: .long, help: "Print the result as one JSON object.")
    var json = false

    func validate() throws {
        guard events >= 100 && events <= 100_000_000 else { throw ValidationError("--events must be between 100 and 100000000") }
        guard batch >= 1 && batch <= 10_000 else { throw ValidationError("--batch must be between 1 and 10000") }
        try validateWindow(window)
        guard producers >= 1 && producers <= 64 else { throw ValidationError("--producers must be between 1 and 64") }
        if let rate { guard rate > 0 else { throw ValidationError("--rate must be positive, e.g. 100000") } }
    }

    func run() throws {
        var o = Bench.Options()
        o.events = events
        o.batch = batch
        o.acknowledged = ack
        o.window = window
        o.curve = curve
        o.producers = producers
        o.rate = rate
        o.pipeline = pipeline
        o.snapshotInterval = try DurationText.parse(snapshotInterval, setting: "--snapshot-interval")
        let result = try Bench.run(o)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(result.table)
        }
    }
}
