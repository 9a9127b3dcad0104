import ArgumentParser
import TallyDaemon

// MARK: - tally run

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon in the foreground (systemd runs exactly this).",
        discussion: """
            Defaults bind loopback only: ingest \(DefaultEndpoints.ingest) (PULL), acknowledged ingest \
            \(DefaultEndpoints.ingestAck) (ROUTER), publication \(DefaultEndpoints.publish) (PUB), snapshot service \
            \(DefaultEndpoints.snapshotService) (ROUTER). Every flag can also be set in --config FILE (YAML, keys = \
            the long flag names, e.g. 'snapshot-interval: 250ms'); flags win over the file.
            A frame larger than --max-message-size makes libzmq disconnect the peer that sent it (ZMQ_MAXMSGSIZE).
            Limits (--max-json-depth, --max-string-length, --max-events-per-batch, --rate-limit) reject the \
            input with a counted reason (too_deep, too_large, rate_limited); see the README's limits table.
            SIGTERM/SIGINT: stop input, drain, publish a final snapshot, exit 0. SIGHUP: reload the pipeline.
            """
    )

    @Option(name: .long, help: "The pipeline file (e.g. Pipelines/national-dx.yaml).")
    var pipeline: String?
    @Option(name: .long, help: "State directory: write-ahead log, checkpoints, producers, seq.")
    var stateDir: String?
    @Option(name: .long, help: "Fire-and-forget ingest endpoint (PULL); repeatable. Default \(DefaultEndpoints.ingest).")
    var ingest: [String] = []
    @Option(name: .long, help: "Acknowledged ingest endpoint (ROUTER), or 'none'. Default \(DefaultEndpoints.ingestAck).")
    var ingestAck: String?
    @Option(name: .long, help: "Snapshot publication endpoint (PUB). Default \(DefaultEndpoints.publish).")
    var publish: String?
    @Option(name: .long, help: "Snapshot service endpoint (ROUTER) for late joiners. Default \(DefaultEndpoints.snapshotService).")
    var snapshotService: String?
    @Option(name: .long, help: "Time between snapshots: 1s (default), 250ms, 5s, 1m.")
    var snapshotInterval: String?
    @Option(name: .long, help: "Time between checkpoints of the engine state (default 60s).")
    var checkpointInterval: String?
    @Option(name: .long, help: "Also checkpoint after this many logged bytes (default 256MiB).")
    var checkpointBytes: String?
    @Option(name: .long, help: "YAML config file; its keys are these flags' long names.")
    var config: String?
    @Option(name: .long, help: "Serve Prometheus metrics on HOST:PORT (/metrics, /healthz, /readyz).")
    var metrics: String?
    @Option(name: .long, help: "Write every rejected payload or event, with its reason, to this JSON-lines file.")
    var deadLetter: String?
    @Option(name: .long, help: "Rotate the dead-letter file at this size (default 64MiB).")
    var deadLetterMaxBytes: String?
    @Option(name: .long, help: "Rotated dead-letter files to keep (default 4).")
    var deadLetterKeep: Int?
    @Option(name: .long, help: "Largest accepted frame (default 16MiB); a larger one disconnects its sender.")
    var maxMessageSize: String?
    @Option(name: .customLong("ingest-hwm"), help: "Receive high-water mark of the ingest sockets, messages per peer (default 10000).")
    var ingestHighWaterMark: Int?
    @Option(name: .customLong("publish-hwm"), help: "Send high-water mark per subscriber (default 1000): past it a slow subscriber loses snapshots.")
    var publishHighWaterMark: Int?
    @Option(name: .customLong("max-json-depth"), help: "Deepest JSON nesting of a frame (default 32; outer container = 1); deeper: frame rejected too_deep.")
    var maxJSONDepth: Int?
    @Option(name: .long, help: "Longest JSON string, bytes (default 64KiB); longer: event rejected too_large.")
    var maxStringLength: String?
    @Option(name: .long, help: "Most events in one batch frame (default 10000); more: frame rejected too_large.")
    var maxEventsPerBatch: Int?
    @Option(name: .long, help: "Per-producer limit EVENTS/s,BURST, e.g. 5000/s,20000 (default off): over it a frame is rejected rate_limited.")
    var rateLimit: String?
    @Option(name: .long, help: "Time allowed for a graceful shutdown (default 20s).")
    var shutdownTimeout: String?
    @Option(name: .long, help: "Pipeline clock: 'event' (default, replayable) or 'wall'.")
    var clock: String?
    @Option(name: .long, help: "Opening balances file (JSON lines of tally.balance events).")
    var balances: String?
    @Option(name: .long, help: "CURVE secret key file: every endpoint becomes a CURVE server.")
    var curveSecret: String?
    @Option(name: .long, help: "Directory of authorized client public keys (*.key).")
    var authorizedKeys: String?
    @Flag(name: .long, help: "Allow binding a non-loopback address without CURVE (logged loudly).")
    var insecure: Bool = false

    func run() async throws {
        var flags = RunSettings.Partial()
        flags.pipeline = pipeline
        flags.stateDir = stateDir
        flags.ingest = ingest.isEmpty ? nil : ingest
        flags.ingestAck = ingestAck
        flags.publish = publish
        flags.snapshotService = snapshotService
        flags.snapshotInterval = snapshotInterval
        flags.checkpointInterval = checkpointInterval
        flags.checkpointBytes = checkpointBytes
        flags.metrics = metrics
        flags.deadLetter = deadLetter
        flags.deadLetterMaxBytes = deadLetterMaxBytes
        flags.deadLetterKeep = deadLetterKeep
        flags.maxMessageSize = maxMessageSize
        flags.ingestHighWaterMark = ingestHighWaterMark
        flags.publishHighWaterMark = publishHighWaterMark
        flags.maxJSONDepth = maxJSONDepth
        flags.maxStringLength = maxStringLength
        flags.maxEventsPerBatch = maxEventsPerBatch
        flags.rateLimit = rateLimit
        flags.shutdownTimeout = shutdownTimeout
        flags.clock = clock
        flags.balances = balances
        flags.curveSecret = curveSecret
        flags.authorizedKeys = authorizedKeys
        flags.insecure = insecure ? true : nil
        let settings = try RunSettings.resolve(configFile: config, flags: flags)
        let configFile = config
        let flagsNow = flags
        let reread: (@Sendable () throws -> RunSettings)? = configFile.map { path in
            { @Sendable () throws -> RunSettings in try RunSettings.resolve(configFile: path, flags: flagsNow) }
        }
        try await DaemonRunner.run(settings: settings, configPath: config, reread: reread)
    }
}

