import ArgumentParser
import TallyDaemon

// MARK: - tally send

struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send events (NDJSON lines or JSON arrays) to a daemon.",
        discussion: """
            Reads the files in order ('-' or no file = stdin). Without --ack, frames go over PUSH to the \
            fire-and-forget endpoint and the daemon counts any rejections itself. With --ack, each batch goes \
            over DEALER to the acknowledged endpoint as [producer-id, sequence, payload] and is re-sent (same \
            sequence) until the daemon answers; the report lists what was rejected and why.
            Exit status: 0 when everything was accepted (or sent, without --ack), 1 when anything was rejected \
            or a batch was never acknowledged, 2 for a usage error.
            """
    )

    @Option(name: .long, help: "The daemon's endpoint: ingest (default \(DefaultEndpoints.ingest)) or, with --ack, ingest-ack (\(DefaultEndpoints.ingestAck)).")
    var to: String?
    @Option(name: .long, help: "Events per frame: group lines into CloudEvents JSON batches (default 1).")
    var batch: Int = 1
    @Flag(name: .long, help: "Use the acknowledged path and wait for every batch's status.")
    var ack = false
    @Option(name: .long, help: "Producer id on the acknowledged path (default tally-send-<host>-<pid>).")
    var producerId: String?
    @Option(name: .long, help: "Reply timeout per attempt with --ack (default 2500ms).")
    var timeout: String = "2500ms"
    @Option(name: .long, help: "Attempts per batch with --ack before giving up (default 10).")
    var retries: Int = 10
    @Option(name: .long, help: "With --ack: batches in flight, 1 to 16 (default 4; 1 = wait for each reply before the next).")
    var window: Int = 4
    @Argument(help: "NDJSON or JSON-array files; '-' or none reads stdin.")
    var files: [String] = []

    func validate() throws {
        guard batch >= 1 && batch <= 100_000 else { throw ValidationError("--batch must be between 1 and 100000") }
        guard retries >= 1 else { throw ValidationError("--retries must be at least 1") }
        try validateWindow(window)
    }

    func run() throws {
        var options = Sender.Options(endpoint: to ?? (ack ? DefaultEndpoints.ingestAck : DefaultEndpoints.ingest))
        options.batch = batch
        options.acknowledged = ack
        options.producerID = producerId
        options.timeout = try DurationText.parse(timeout, setting: "--timeout")
        options.retries = retries
        options.window = window
        let events = try Sender.readEvents(files: files)
        let frames = EventInput.frames(events, batch: batch)
        let report = try Sender(options: options).send(frames)
        print(report.summary)
        if report.rejected > 0 { throw CommandFailure(code: 1, "") }
    }
}

// MARK: - tally watch

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Subscribe to snapshots and show the live indicators as a table that updates in place.",
        discussion: """
            Late joiners: with --service (default: the default snapshot service when --from is the default \
            publish endpoint) the current snapshot is fetched first and older published ones are discarded \
            (the ZeroMQ guide's Clone pattern). With --json, or when stdout is not a terminal, prints one JSON \
            snapshot per line instead of the table.
            """
    )

    @Option(name: .long, help: "The daemon's publish endpoint (default \(DefaultEndpoints.publish)).")
    var from: String = DefaultEndpoints.publish
    @Option(name: .long, help: "The daemon's snapshot service, asked once at start ('none' to skip).")
    var service: String?
    @Flag(name: .long, help: "One JSON snapshot per line.")
    var json = false
    @Option(name: .long, help: "Exit after this many snapshots.")
    var count: Int?
    @Option(name: .long, help: "Exit after this long (e.g. 10s).")
    var duration: String?

    func run() throws {
        var options = Watcher.Options(from: from)
        if let service {
            options.service = service == "none" ? nil : service
        } else if from == DefaultEndpoints.publish {
            options.service = DefaultEndpoints.snapshotService
        }
        options.json = json
        options.count = count
        options.duration = try duration.map { d throws(ConfigError) in try DurationText.parse(d, setting: "--duration") }
        try Watcher(options: options).run()
    }
}
