import ArgumentParser
import TallyDaemon
import TallyEngine

// MARK: - tally simulate

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Generate the national event mix and send it over ZeroMQ, with a progress line.",
        discussion: """
            Profiles: april-2024 (the national mix from 2023-01-01 to 2024-04-30 23:59:59 +07:00, opening \
            balances first). --scale multiplies the national volumes (1 = the whole country, ~138 M events; \
            0.001 = ~138 k). --rate paces the sending with a token bucket (events/s, default 10000); --max sends \
            as fast as the daemon takes them (blocked by its high-water mark, never dropped). The progress line \
            (events sent, rate, ETA) goes to stderr: in place on a terminal, a line every 5 s otherwise. \
            Exit 0 when every event was sent (with --ack: acknowledged).
            """
    )

    @Option(name: .long, help: "The event mix to generate (april-2024).")
    var profile: String = "april-2024"
    @Option(name: .long, help: "Volume multiplier, \(SimulationProfile.scaleRange.lowerBound)...\(SimulationProfile.scaleRange.upperBound) (default 0.001).")
    var scale: Double = 0.001
    @Option(name: .long, help: "Events per second (default 10000).")
    var rate: Int?
    @Flag(name: .long, help: "Send as fast as the daemon takes them (PUSH back-pressure).")
    var max = false
    @Option(name: .long, help: "Events per frame (default 100; 1 = one event per frame).")
    var batch: Int = 100
    @Flag(name: .long, help: "Use the acknowledged path (--to is then the --ingest-ack endpoint); re-send until acknowledged.")
    var ack = false
    @Option(name: .long, help: "With --ack: batches in flight, 1 to 16 (default 4; 1 = wait for each reply before the next).")
    var window: Int = 4
    @Option(name: .long, help: "The daemon's ingest endpoint (default \(DefaultEndpoints.ingest); with --ack \(DefaultEndpoints.ingestAck)).")
    var to: String?
    @Option(name: .long, help: "Simulator seed (default \(Simulator.defaultSeed)); the expected report assumes the default.")
    var seed: UInt64 = Simulator.defaultSeed
    @Flag(name: .long, help: "No progress line.")
    var quiet = false

    func validate() throws {
        guard SimulationProfile.named(profile) != nil else { throw ValidationError("--profile \(profile) is unknown: use april-2024") }
        try validateFeed(scale: scale, rate: rate, max: max, batch: batch)
        try validateWindow(window)
    }

    func run() throws {
        var o = SimulationFeeder.Options(profile: SimulationProfile.named(profile)!, scale: scale,
                                         endpoint: to ?? (ack ? DefaultEndpoints.ingestAck : DefaultEndpoints.ingest))
        o.rate = max ? nil : (rate ?? 10_000)
        o.batch = batch
        o.acknowledged = ack
        o.window = window
        o.seed = seed
        o.progress = !quiet
        let report = try SimulationFeeder(options: o).run()
        if report.rejected > 0 {
            throw CommandFailure(code: 1, "\(report.rejected) of \(report.events) events were rejected by the daemon")
        }
    }
}

// MARK: - tally demo

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Everything together on loopback: the daemon on the national pipeline, a feeder and the live table.",
        discussion: """
            Uses a temporary state directory (removed at exit) and free loopback ports. Ctrl-C stops everything.
            """
    )

    @Option(name: .long, help: "The pipeline (default: Pipelines/national-dx.yaml, found from the current directory or the executable).")
    var pipeline: String?
    @Option(name: .long, help: "An events file (NDJSON or JSON arrays) to feed instead of the simulator.")
    var events: String?
    @Option(name: .long, help: "Simulator scale (default 0.001, ~138k events).")
    var scale: Double = 0.001
    @Option(name: .long, help: "Events per second (default: the stream spread over ~12 s).")
    var rate: Int?
    @Flag(name: .long, help: "Feed as fast as the daemon takes them.")
    var max = false
    @Option(name: .long, help: "Events per frame when feeding (default 100).")
    var batch: Int = 100
    @Option(name: .long, help: "Time between snapshots (default 500ms).")
    var snapshotInterval: String = "500ms"
    @Option(name: .long, help: "Stop after this long (e.g. 10s); default: until Ctrl-C.")
    var duration: String?
    @Flag(name: .long, help: "Stop once a snapshot with the whole stream was shown.")
    var untilComplete = false
    @Flag(name: .long, help: "One JSON snapshot per line instead of the table.")
    var json = false

    func validate() throws {
        try validateFeed(scale: scale, rate: rate, max: max, batch: batch)
    }

    func run() async throws {
        var options = Demo.Options(pipeline: pipeline)
        options.events = events
        options.scale = scale
        options.rate = rate
        options.max = max
        options.batch = batch
        options.json = json
        options.untilComplete = untilComplete
        options.snapshotInterval = try DurationText.parse(snapshotInterval, setting: "--snapshot-interval")
        options.duration = try duration.map { d throws(ConfigError) in try DurationText.parse(d, setting: "--duration") }
        try await Demo.run(options)
    }
}

/// `--window` of the acknowledged commands: 1 to the daemon's ``ProducerTable/windowLimit``.
func validateWindow(_ window: Int) throws {
    guard (1...ProducerTable.windowLimit).contains(window) else {
        throw ValidationError("--window must be between 1 and \(ProducerTable.windowLimit)")
    }
}

/// The feeding options `simulate` and `demo` share: scale, `--rate` or `--max`, events per frame.
func validateFeed(scale: Double, rate: Int?, max: Bool, batch: Int) throws {
    guard SimulationProfile.scaleRange.contains(scale) else {
        throw ValidationError("--scale \(scale) is out of range: use \(SimulationProfile.scaleRange.lowerBound)...\(SimulationProfile.scaleRange.upperBound), e.g. 0.001")
    }
    if let rate { guard rate > 0 else { throw ValidationError("--rate must be positive, e.g. 10000") } }
    guard !(max && rate != nil) else { throw ValidationError("give --rate N or --max, not both") }
    guard batch >= 1 && batch <= 100_000 else { throw ValidationError("--batch must be between 1 and 100000") }
}
