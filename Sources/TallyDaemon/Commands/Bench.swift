import Foundation
public import Logging
public import TallyEngine
import Synchronization
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Bench (`tally bench`)

/// `tally bench`: the daemon in-process on loopback (temp state dir, write-ahead log on, the
/// national pipeline) fed by the simulator's national mix from `producers` threads, measured:
///
/// - events/s: the first send → the first published snapshot that includes every event
///   (received by a subscriber on the PUB socket);
/// - event → subscriber latency p50/p99: for each frame, its send instant → the receipt of the
///   first published snapshot whose engine had applied it (the daemon's `published` hook notes
///   how many events each `seq` includes);
/// - peak RSS (`VmHWM`, the whole process: daemon + producers), and log bytes per event.
///
/// With `curve`, every endpoint is a CURVE server (keys generated in a temporary directory) and
/// every client authenticates, so the figures include the encryption and the ZAP allow-list.
///
/// Producers generate frames while sending (the simulator is a generator), so their CPU shares
/// the machine with the daemon, as a same-box producer would. Not a test: figures only.
public enum Bench {
    public struct Options: Sendable {
        public var pipeline: String?
        public var events = 200_000
        public var batch = 100
        public var acknowledged = false
        /// Acknowledged batches in flight per producer (``AckProducer``).
        public var window = 4
        public var producers = 1
        /// Total events/s over all producers; nil = as fast as possible.
        public var rate: Int?
        public var snapshotInterval: Duration = .milliseconds(100)
        /// CURVE on every endpoint: a fresh server key pair and one producer/subscriber key in
        /// `--authorized-keys`, the ZAP handler admitting it, producers and the subscriber as clients.
        public var curve = false
        public init() {}
    }

    public struct Result: Sendable, Codable {
        public var events: Int
        public var batch: Int
        public var acknowledged: Bool
        /// Acknowledged batches in flight per producer (nil for fire-and-forget).
        public var window: Int?
        public var curve: Bool
        public var producers: Int
        public var rate: Int?
        public var snapshotIntervalMs: Int
        public var eventsPerSecond: Double
        public var seconds: Double
        public var latencyP50Ms: Double
        public var latencyP99Ms: Double
        public var latencyMaxMs: Double
        public var peakRSSBytes: Int
        public var walBytes: Int
        public var walBytesPerEvent: Double
        public var accepted: Int
        public var rejected: Int

        enum CodingKeys: String, CodingKey {
            case events, batch, acknowledged, window, curve, producers, rate, seconds, accepted, rejected
            case snapshotIntervalMs = "snapshot_interval_ms"
            case eventsPerSecond = "events_per_second"
            case latencyP50Ms = "latency_p50_ms"
            case latencyP99Ms = "latency_p99_ms"
            case latencyMaxMs = "latency_max_ms"
            case peakRSSBytes = "peak_rss_bytes"
            case walBytes = "wal_bytes"
            case walBytesPerEvent = "wal_bytes_per_event"
        }

        /// The table printed for operators.
        public var table: String {
            func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
            let rows: [(String, String)] = [
                ("events", NumberText.grouped(events)),
                ("path", acknowledged ? "acknowledged (ROUTER), \(producers) producer(s), \(window ?? 1) batch(es) in flight each" : "fire-and-forget (PUSH/PULL), \(producers) producer(s)"),
                ("events per frame", "\(batch)"),
                ("transport", curve ? "tcp loopback, CURVE on every endpoint (ZAP allow-list)" : "tcp loopback, plain"),
                ("offered rate", rate.map { "\(NumberText.grouped($0)) events/s" } ?? "as fast as possible"),
                ("throughput", "\(NumberText.grouped(Int(eventsPerSecond))) events/s (\(f(seconds, 2)) s)"),
                ("latency p50 / p99 / max", "\(f(latencyP50Ms)) / \(f(latencyP99Ms)) / \(f(latencyMaxMs)) ms (snapshot interval \(snapshotIntervalMs) ms)"),
                ("peak RSS (VmHWM)", "\(f(Double(peakRSSBytes) / 1_048_576)) MiB"),
                ("write-ahead log", "\(f(Double(walBytes) / 1_048_576)) MiB, \(f(walBytesPerEvent)) bytes/event"),
                ("accepted / rejected", "\(NumberText.grouped(accepted)) / \(NumberText.grouped(rejected))"),
            ]
            let w = rows.map(\.0.count).max() ?? 0
            return rows.map { $0.0.padding(toLength: w, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
        }
    }

    /// Frames sent: cumulative event count at the end of the frame and its send instant (µs).
    private final class Ledger: @unchecked Sendable {
        let lock = Mutex<Void>(())
        var sent: [[(upTo: Int, at: Int64)]]
        /// seq → events applied when it was built.
        var included: [UInt64: Int] = [:]
        init(producers: Int) { sent = Array(repeating: [], count: producers) }
    }

    /// Runs one measurement. Blocking (threads inside); call from a thread or a plain `run()`.
    /// - Throws: ``ConfigError``/``DaemonError`` (daemon), ``CommandFailure`` (feeding, or the
    ///   stream not complete within 10 minutes).
    public static func run(_ options: Options) throws -> Result {
        MallocTuning.apply()   // as `tally run` does
        var quiet = Logger(label: "tally-bench")
        quiet.logLevel = .error
        let pipeline = try Demo.findPipeline(options.pipeline)
        let probe = try Simulator(profile: .april2024, scale: 1).totalEvents
        let scale = min(1, max(SimulationProfile.scaleRange.lowerBound, Double(options.events) * 1.02 / Double(probe)))
        let dir = try Demo.makeTemporaryDirectory()
        defer { Demo.removeFlatDirectory(dir) }
        var s = Demo.loopbackSettings(pipeline: pipeline, stateDirectory: dir, snapshotInterval: options.snapshotInterval)
        s.checkpointInterval = .seconds(3600)   // the log is measured whole
        s.checkpointBytes = Int.max
        var clientKeys: CurveClientKeys?
        var keysDir: String?
        defer { if let keysDir { try? FileManager.default.removeItem(atPath: keysDir) } }
        if options.curve {
            let keys = try Demo.makeTemporaryDirectory()
            keysDir = keys
            let server = try Certificate.generate(name: "tally-bench-server")
            let serverPaths = try server.write(toDirectory: keys + "/server")
            let client = try Certificate.generate(name: "tally-bench", roles: .all)
            let clientPaths = try client.write(toDirectory: keys + "/client")
            try SecureFiles.createPrivateDirectory(keys + "/authorized")
            try FileManager.default.copyItem(atPath: clientPaths.publicPath, toPath: keys + "/authorized/tally-bench.key")
            s.curveSecret = serverPaths.secretPath
            s.authorizedKeys = keys + "/authorized"
            clientKeys = CurveClientKeys(serverKey: server.publicKey, publicKey: client.publicKey, secretKey: client.secretKey!)
        }
        let core = try EngineCore(settings: s, logger: quiet)
        let daemon = try Daemon(settings: s, core: core, logger: quiet)
        let ledger = Ledger(producers: options.producers)
        daemon.hooks.published = { [weak daemon] seq in
            guard let daemon else { return }
            let applied = daemon.stats.withLock { $0.events }
            ledger.lock.withLock { _ in ledger.included[seq] = applied }
        }
        try daemon.start()
        defer {
            daemon.requestStop()
            _ = daemon.stopped.waitBlocking(timeout: .seconds(60))
        }
        let e = daemon.boundEndpoints

        // Subscriber: receipt instant of every snapshot seq.
        let context = try Context()
        let sub = try Socket(context, .sub)
        try clientKeys?.configure(sub)
        try sub.set(.subscribe, Array("snapshot.".utf8))
        try sub.set(.receiveHighWaterMark, 0)
        try sub.connect(e.publish)
        Thread.sleep(forTimeInterval: 0.3)   // the subscription reaches the PUB socket
        let base = daemon.stats.withLock { $0.events }

        // Producers.
        let total = Mutex<Int>(0)
        let failures = Mutex<[String]>([])
        var producers: [Completion] = []
        let perRate = options.rate.map { max(1, $0 / options.producers) }
        for k in 0..<options.producers {
            var fo = SimulationFeeder.Options(profile: .april2024, scale: scale,
                                              endpoint: options.acknowledged ? (e.ingestAck ?? "") : e.ingest[0])
            fo.batch = options.batch
            fo.acknowledged = options.acknowledged
            fo.window = options.window
            fo.progress = false
            fo.limit = options.events
            fo.share = (k, options.producers)
            fo.rate = perRate
            fo.producerID = "tally-bench-\(getpid())-\(k)"
            fo.curve = clientKeys
            let feeder = SimulationFeeder(options: fo)
            producers.append(spawnThread(name: "tally-bench-producer-\(k)") {
                do {
                    let report = try feeder.run(onFrame: { upTo, at in
                        ledger.lock.withLock { _ in ledger.sent[k].append((upTo, at)) }
                    })
                    total.withLock { $0 += report.events }
                } catch {
                    failures.withLock { $0.append("producer \(k): \(error)") }
                }
            })
        }

        // Receive snapshots until one includes every event.
        var received: [(seq: UInt64, at: Int64)] = []
        var completeAt: Int64?
        let deadline = ContinuousClock.now + .seconds(600)
        let message = Message(), topic = Message()
        try sub.set(.receiveTimeout, 200)
        while completeAt == nil && ContinuousClock.now < deadline {
            guard try sub.receive(into: topic) else {
                if !failures.withLock({ $0.isEmpty }) { break }
                continue
            }
            guard try sub.receive(into: message) else { continue }
            let now = Int64(MonotonicClock.microseconds())
            guard let seq = Self.seq(of: message) else { continue }
            received.append((seq, now))
            if producers.allSatisfy(\.isFired) {
                let want = total.withLock { $0 }
                let applied = ledger.lock.withLock { _ in ledger.included[seq] ?? 0 }
                if applied - base >= want { completeAt = now }
            }
        }
        for p in producers { _ = p.waitBlocking(timeout: .seconds(5)) }
        if let f = failures.withLock({ $0.first }) { throw CommandFailure(code: 1, "tally bench: \(f)") }
        guard let completeAt else {
            throw CommandFailure(code: 1, "tally bench: the daemon did not publish a snapshot with all \(total.withLock { $0 }) events within 10 minutes")
        }
        let sentEvents = total.withLock { $0 }
        let firstSend = ledger.sent.compactMap { $0.first?.at }.min() ?? completeAt

        // Latency: each frame → the first received snapshot that includes it. Producers' cumulative
        // counts are per producer; the daemon applies frames of several producers interleaved, so
        // a frame is "included" once the applied count reaches the sum of frames sent up to it.
        var frames: [(at: Int64, events: Int)] = []
        for p in ledger.sent {
            var prev = 0
            for f in p { frames.append((f.at, f.upTo - prev)); prev = f.upTo }
        }
        frames.sort { $0.at < $1.at }
        let included = ledger.lock.withLock { _ in ledger.included }
        var latencies: [(ms: Double, weight: Int)] = []
        latencies.reserveCapacity(frames.count)
        var r = 0
        var cumulative = 0
        for f in frames {
            cumulative += f.events
            while r < received.count, (included[received[r].seq] ?? 0) - base < cumulative || received[r].at < f.at { r += 1 }
            guard r < received.count else { break }
            latencies.append((Double(received[r].at - f.at) / 1000, f.events))
        }
        latencies.sort { $0.ms < $1.ms }
        func percentile(_ q: Double) -> Double {
            let all = latencies.reduce(0) { $0 + $1.weight }
            var acc = 0
            for l in latencies {
                acc += l.weight
                if Double(acc) >= q * Double(all) { return l.ms }
            }
            return latencies.last?.ms ?? 0
        }
        let seconds = Double(completeAt - firstSend) / 1e6
        let wal = Self.walBytes(dir)
        let stats = daemon.stats.withLock { $0 }
        return Result(
            events: sentEvents, batch: options.batch, acknowledged: options.acknowledged,
            window: options.acknowledged ? options.window : nil, curve: options.curve, producers: options.producers,
            rate: options.rate, snapshotIntervalMs: Int(options.snapshotInterval.microseconds / 1000),
            eventsPerSecond: seconds > 0 ? Double(sentEvents) / seconds : 0, seconds: seconds,
            latencyP50Ms: percentile(0.5), latencyP99Ms: percentile(0.99), latencyMaxMs: latencies.last?.ms ?? 0,
            peakRSSBytes: Self.peakRSS(), walBytes: wal, walBytesPerEvent: sentEvents > 0 ? Double(wal) / Double(sentEvents) : 0,
            accepted: stats.accepted, rejected: stats.rejected)
    }

    static func seq(of message: Message) -> UInt64? {
        message.withUnsafeBytes { b -> UInt64? in
            let key = Array(#""seq":"#.utf8)
            guard b.count > key.count else { return nil }
            var i = 0
            while i + key.count < b.count {
                if b[i] == key[0], (0..<key.count).allSatisfy({ b[i + $0] == key[$0] }) {
                    var v: UInt64 = 0
                    var j = i + key.count
                    while j < b.count, b[j] >= 0x30, b[j] <= 0x39 { v = v * 10 + UInt64(b[j] - 0x30); j += 1 }
                    return v
                }
                i += 1
            }
            return nil
        }
    }

    /// `VmHWM` of this process, bytes (0 where /proc is missing).
    static func peakRSS() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    /// Bytes of log records (a preallocated segment's zero tail is not counted).
    static func walBytes(_ dir: String) -> Int {
        Int((try? WriteAheadLog.recordBytes(directory: dir)) ?? 0)
    }
}
