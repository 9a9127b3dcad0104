import Foundation
public import TallyEngine
public import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

// MARK: - SimulationFeeder (`tally simulate`, the demo's and the bench's producer)

/// Streams the national simulator's events to a daemon over ZeroMQ, paced by a token bucket
/// (`rate`) or as fast as the daemon takes them (PUSH back-pressure: `send` blocks at the
/// high-water mark), with a progress line on stderr.
///
/// Memory: one batch at a time (the simulator is a generator); never the whole stream.
public struct SimulationFeeder: Sendable {
    public struct Options: @unchecked Sendable {
        public var profile: SimulationProfile
        public var scale: Double
        public var seed: UInt64 = Simulator.defaultSeed
        /// Events per second; nil = as fast as possible.
        public var rate: Int?
        /// Events per frame (a CloudEvents JSON batch when > 1).
        public var batch = 100
        /// The acknowledged path (DEALER, `[producer-id, sequence, payload]`, retried until answered).
        public var acknowledged = false
        /// Acknowledged batches in flight (``AckProducer``), 1...``ProducerTable/windowLimit``.
        public var window = 4
        public var endpoint: String
        /// Print the progress line on stderr.
        public var progress = true
        /// Producer id on the acknowledged path (default: `tally-simulate-<host>-<pid>`).
        public var producerID: String?
        /// Stop after this many events of the stream (the bench's `--events`); nil = all of it.
        public var limit: Int?
        /// Send only frames `i` with `i % share.of == share.index` (several producers, one stream).
        public var share: (index: Int, of: Int) = (0, 1)
        /// CURVE client keys (the daemon runs with `--curve-secret`); nil = plain TCP.
        public var curve: CurveClientKeys?
        public init(profile: SimulationProfile, scale: Double, endpoint: String) {
            self.profile = profile
            self.scale = scale
            self.endpoint = endpoint
        }
    }

    public struct Report: Sendable {
        public var events = 0
        public var frames = 0
        public var seconds = 0.0
        /// Acknowledged path: events the daemon rejected, and re-sends after a silence.
        public var rejected = 0
        public var retries = 0
        /// Monotonic instant (µs) of the first send (benchmarks measure from it).
        public var firstSendMicros: Int64 = 0
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    /// The events the stream holds (for ETAs and for checks).
    /// - Throws: ``CommandFailure`` (exit 2) when the scale is out of the profile's range.
    public func totalEvents() throws -> Int { try makeSimulator().totalEvents }

    func makeSimulator() throws -> Simulator {
        do { return try Simulator(profile: options.profile, scale: options.scale, seed: options.seed) } catch {
            throw CommandFailure(code: 2, "--scale \(options.scale): \(error): use a scale in \(SimulationProfile.scaleRange)")
        }
    }

    /// Sends the whole stream. Blocking: call from a thread, never from the cooperative pool.
    /// - Parameters:
    ///   - shouldStop: polled between frames (Ctrl-C); the report then covers what was sent.
    ///   - onFrame: called after each frame with (events sent so far, send instant µs): the bench's latency probe.
    /// - Throws: ``CommandFailure``: an unusable endpoint (2), nobody taking frames or a batch never acknowledged (1).
    @discardableResult
    public func run(shouldStop: () -> Bool = { false }, onFrame: ((Int, Int64) -> Void)? = nil) throws -> Report {
        var sim = try makeSimulator()
        let stream = min(sim.totalEvents, options.limit ?? .max)
        let total = options.share.of == 1 ? stream : stream / options.share.of
        let context = try Context(defaultLinger: -1)
        var report = Report()
        var progress = ProgressLine(total: total, enabled: options.progress)
        let start = MonotonicClock.microseconds()
        var bucket = SendPacer(rate: options.rate, burst: max(options.batch, (options.rate ?? 0) / 20))
        let sender: any FrameSink = options.acknowledged
            ? try AckSink(context: context, endpoint: options.endpoint, producer: options.producerID ?? AckProducer.defaultProducerID(command: "simulate"),
                          window: options.window, curve: options.curve)
            : try PushSink(context: context, endpoint: options.endpoint, curve: options.curve)
        defer { sender.close() }
        var frameIndex = -1
        var before = 0
        while !shouldStop() {
            let want = min(options.batch, stream - sim.emitted)
            guard want > 0, let frame = want == 1 ? sim.next() : sim.nextBatch(max: want) else { break }
            frameIndex += 1
            let n = sim.emitted - before
            before = sim.emitted
            guard frameIndex % options.share.of == options.share.index else { continue }
            bucket.take(n)
            let now = MonotonicClock.microseconds()
            if report.frames == 0 { report.firstSendMicros = Int64(now) }
            try sender.send(frame, events: n, report: &report)
            report.events += n
            report.frames += 1
            onFrame?(report.events, Int64(now))
            progress.update(sent: report.events, elapsedMicros: MonotonicClock.microseconds() &- start)
        }
        try sender.finish(report: &report)
        report.seconds = Double(MonotonicClock.microseconds() &- start) / 1e6
        progress.finish(sent: report.events, elapsedMicros: MonotonicClock.microseconds() &- start)
        return report
    }
}

// MARK: - Pacing

/// A token bucket: `rate` tokens per second, at most `burst` banked. `take(n)` sleeps until n
/// tokens are there; with no rate it never waits.
/// - Complexity: O(1) per call; sleeps, never spins.
struct SendPacer {
    let rate: Double?
    let burst: Double
    var tokens: Double
    var last: UInt64

    init(rate: Int?, burst: Int) {
        self.rate = rate.map(Double.init)
        self.burst = Double(Swift.max(1, burst))
        tokens = self.burst
        last = MonotonicClock.microseconds()
    }

    mutating func take(_ n: Int) {
        guard let rate else { return }
        while true {
            let now = MonotonicClock.microseconds()
            tokens = Swift.min(Swift.max(burst, Double(n)), tokens + Double(now &- last) * rate / 1e6)
            last = now
            if tokens >= Double(n) {
                tokens -= Double(n)
                return
            }
            let waitMicros = (Double(n) - tokens) * 1e6 / rate
            usleep(UInt32(Swift.min(Swift.max(waitMicros, 50), 200_000)))
        }
    }
}

// MARK: - Progress line

/// "sent 12,345 / 138,215 events (8%), 10,010 events/s, ETA 12s" on stderr: redrawn in place
/// (`\r`) at most 5 times a second on a terminal, one line every 5 s otherwise (logs stay short).
struct ProgressLine {
    let total: Int
    let enabled: Bool
    let tty: Bool
    var lastPrint: UInt64 = 0

    init(total: Int, enabled: Bool) {
        self.total = total
        self.enabled = enabled
        tty = isatty(STDERR_FILENO) != 0
    }

    mutating func update(sent: Int, elapsedMicros: UInt64) {
        guard enabled else { return }
        let every: UInt64 = tty ? 200_000 : 5_000_000
        guard elapsedMicros &- lastPrint >= every else { return }
        lastPrint = elapsedMicros
        emit(Self.text(sent: sent, total: total, elapsedMicros: elapsedMicros), final: false)
    }

    mutating func finish(sent: Int, elapsedMicros: UInt64) {
        guard enabled else { return }
        emit(Self.text(sent: sent, total: total, elapsedMicros: elapsedMicros) + " - done", final: true)
    }

    private func emit(_ line: String, final: Bool) {
        if tty {
            printStandardError("\r\u{1B}[K" + line + (final ? "\n" : ""), newline: false)
        } else {
            printStandardError(line)
        }
    }

    static func text(sent: Int, total: Int, elapsedMicros: UInt64) -> String {
        let secs = Double(elapsedMicros) / 1e6
        let rate = secs > 0 ? Double(sent) / secs : 0
        let pct = total > 0 ? 100 * sent / total : 100
        var s = "sent \(NumberText.grouped(sent)) / \(NumberText.grouped(total)) events (\(pct)%), \(NumberText.grouped(Int(rate))) events/s"
        if sent < total, rate > 0 { s += ", ETA \(Int((Double(total - sent) / rate).rounded(.up)))s" }
        return s
    }
}

/// Thousands separators for the progress line and tables.
enum NumberText {
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }
}

// MARK: - Sinks

protocol FrameSink {
    func send(_ frame: [UInt8], events: Int, report: inout SimulationFeeder.Report) throws
    /// Waits until what was sent is delivered (PUSH linger) or answered.
    func finish(report: inout SimulationFeeder.Report) throws
    func close()
}

/// Fire-and-forget: PUSH, blocking `send` = back-pressure at the high-water mark.
final class PushSink: FrameSink {
    let socket: Socket
    let endpoint: String

    init(context: Context, endpoint: String, curve: CurveClientKeys? = nil) throws {
        self.endpoint = endpoint
        socket = try Socket(context, .push)
        try curve?.configure(socket)
        try socket.set(.linger, 30_000)
        try socket.set(.sendTimeout, 30_000)
        try socket.set(.immediate, true)
        do { try socket.connect(endpoint) } catch {
            throw CommandFailure(code: 2, "--to \(endpoint) is not a usable endpoint (\(error)): write e.g. \(DefaultEndpoints.ingest)")
        }
    }

    func send(_ frame: [UInt8], events: Int, report: inout SimulationFeeder.Report) throws {
        guard try socket.send(frame) else {
            throw CommandFailure(code: 1, "nothing took frames at \(endpoint) for 30 s after \(report.frames) frames: is the daemon running with --ingest \(endpoint)?")
        }
    }

    func finish(report: inout SimulationFeeder.Report) throws {}
    func close() { socket.close() }
}

/// Acknowledged: DEALER, `window` batches in flight, Lazy Pirate re-send on 2.5 s of silence
/// (``AckProducer``). A batch still refused after ``attempts`` attempts stops the feeder.
final class AckSink: FrameSink {
    static let attempts = 20
    let producer: AckProducer

    init(context: Context, endpoint: String, producer: String, window: Int = 1, curve: CurveClientKeys? = nil) throws {
        self.producer = try AckProducer(context: context, endpoint: endpoint, producer: producer, window: window,
                                        timeout: .milliseconds(2500), retries: Self.attempts, curve: curve)
    }

    func send(_ frame: [UInt8], events: Int, report: inout SimulationFeeder.Report) throws {
        try account(producer.send(frame, tag: report.frames), &report)
    }

    func finish(report: inout SimulationFeeder.Report) throws {
        try account(producer.finish(), &report)
    }

    private func account(_ done: [AckProducer.Completion], _ report: inout SimulationFeeder.Report) throws {
        report.retries = producer.resends
        for d in done {
            if let error = d.status["error"] {
                throw CommandFailure(code: 1, "batch \(d.tag) (sequence \(d.sequence)) was not applied after \(Self.attempts) attempts: \(error)")
            }
            report.rejected += (d.status["rejected"] as? [Any])?.count ?? 0
        }
    }

    func close() { producer.close() }
}

// MARK: - CURVE client

/// A CURVE client's keys: the daemon's public key and the client's own pair (a certificate from
/// `tally keys generate` or pyzmq's `zmq.auth`). Set on a socket before it connects.
public struct CurveClientKeys: Sendable {
    public var serverKey: CurveKey
    public var publicKey: CurveKey
    public var secretKey: CurveKey

    public init(serverKey: CurveKey, publicKey: CurveKey, secretKey: CurveKey) {
        self.serverKey = serverKey
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Makes `socket` a CURVE client of the server.
    public func configure(_ socket: Socket) throws {
        try socket.set(.curveServerKey, serverKey)
        try socket.set(.curvePublicKey, publicKey)
        try socket.set(.curveSecretKey, secretKey)
    }
}
