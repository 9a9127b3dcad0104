import ArgumentParser
import TallyDaemon

// MARK: - tally simulate

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Generate the national event mix and send it over ZeroMQ, with a progress line.",
        discussion: """
            Profiles: april-2024. --scale multiplies the national volumes (1 = the whole country's month). \
            --rate paces the sending (events/s); --max sends as fast as the daemon takes them.
            """
    )

    @Option(name: .long, help: "The event mix to generate (april-2024).")
    var profile: String = "april-2024"
    @Option(name: .long, help: "Volume multiplier (default 0.001).")
    var scale: Double = 0.001
    @Option(name: .long, help: "Events per second (default 10000).")
    var rate: Int?
    @Flag(name: .long, help: "Send as fast as possible.")
    var max = false
    @Option(name: .long, help: "The daemon's ingest endpoint (default \(DefaultEndpoints.ingest)).")
    var to: String = DefaultEndpoints.ingest

    func validate() throws {
        guard profile == "april-2024" else { throw ValidationError("--profile \(profile) is unknown: use april-2024") }
        guard scale > 0 else { throw ValidationError("--scale must be positive, e.g. 0.01") }
        if let rate { guard rate > 0 else { throw ValidationError("--rate must be positive, e.g. 10000") } }
        guard !(max && rate != nil) else { throw ValidationError("give --rate N or --max, not both") }
    }

    func run() throws {
        throw CommandFailure(code: 1, """
            this build has no event simulator yet (TallyEngine's Simulator has not landed): \
            generate a stream with shared/bench/gen_events.py -n N and send it with \
            'tally send --to \(to) --batch 100 data/events_N.ndjson'
            """)
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

    @Option(name: .long, help: "The pipeline (default Pipelines/national-dx.yaml).")
    var pipeline: String = "Pipelines/national-dx.yaml"
    @Option(name: .long, help: "An events file (NDJSON or JSON arrays) to feed, e.g. the bench's data/events_20000.ndjson.")
    var events: String?
    @Option(name: .long, help: "Events per frame when feeding (default 100).")
    var batch: Int = 100
    @Option(name: .long, help: "Stop after this long (e.g. 10s); default: until Ctrl-C.")
    var duration: String?
    @Flag(name: .long, help: "One JSON snapshot per line instead of the table.")
    var json = false

    func validate() throws {
        guard batch >= 1 && batch <= 100_000 else { throw ValidationError("--batch must be between 1 and 100000") }
    }

    func run() async throws {
        var options = Demo.Options(pipeline: pipeline)
        options.events = events
        options.batch = batch
        options.json = json
        options.duration = try duration.map { d throws(ConfigError) in try DurationText.parse(d, setting: "--duration") }
        try await Demo.run(options)
    }
}
