import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Defaults

/// The endpoints `tally run` binds when none is given: loopback only, ports 7701–7704.
public enum DefaultEndpoints {
    /// Fire-and-forget ingest (PULL).
    public static let ingest = "tcp://127.0.0.1:7701"
    /// Acknowledged ingest (ROUTER).
    public static let ingestAck = "tcp://127.0.0.1:7702"
    /// Snapshot publication (PUB).
    public static let publish = "tcp://127.0.0.1:7703"
    /// Snapshot service for late joiners (ROUTER).
    public static let snapshotService = "tcp://127.0.0.1:7704"
}

/// Which clock drives the windows: event time (default, replayable) or the wall clock.
public enum ClockMode: String, Sendable, CaseIterable {
    case event
    case wall
}

// MARK: - RunSettings

/// Everything `tally run` needs, after the config file and the flags are merged (flags win).
///
/// Why a plain value: the daemon, the demo and the tests all start the same daemon from one of
/// these, so there is exactly one place that knows the defaults.
public struct RunSettings: Sendable, Equatable {
    public var pipelinePath: String
    /// The state directory (WAL, checkpoints, producer table). `nil`: state is kept in memory only.
    public var stateDirectory: String?
    public var ingest: [String] = [DefaultEndpoints.ingest]
    /// `nil` disables the acknowledged path.
    public var ingestAck: String? = DefaultEndpoints.ingestAck
    public var publish: String = DefaultEndpoints.publish
    public var snapshotService: String = DefaultEndpoints.snapshotService
    public var snapshotInterval: Duration = .seconds(1)
    /// How often the engine state is checkpointed to the state directory.
    public var checkpointInterval: Duration = .seconds(60)
    /// A checkpoint is also written once this many bytes were logged since the last one, so a
    /// burst cannot make recovery replay an unbounded log (the time interval alone would).
    public var checkpointBytes: Int = 256 << 20
    public var metrics: String?
    public var deadLetter: String?
    /// A dead-letter file is rotated when it would exceed this size.
    public var deadLetterMaxBytes: Int = 64 << 20
    /// Rotated dead-letter files kept (`FILE.1` ... `FILE.N`).
    public var deadLetterKeep: Int = 4
    /// `ZMQ_MAXMSGSIZE` on every ingest socket: a peer sending a larger frame is disconnected by libzmq.
    public var maxMessageSize: Int = 16 << 20
    /// `ZMQ_RCVHWM` of the ingest sockets (messages per peer): the back-pressure point for floods.
    public var ingestHighWaterMark: Int32 = 10_000
    /// `ZMQ_SNDHWM` of the PUB socket (messages per subscriber): past it a slow subscriber loses messages.
    public var publishHighWaterMark: Int32 = 1_000
    /// Nesting of JSON arrays/objects in a frame (outer container = 1); deeper: frame rejected `too_deep`.
    public var maxJSONDepth: Int = 32
    /// Bytes of one JSON string; longer: event rejected `too_large`.
    public var maxStringLength: Int = 65_536
    /// Events in one batch frame; more: frame rejected `too_large`.
    public var maxEventsPerBatch: Int = 10_000
    /// Per-producer event rate (token bucket); `nil` = unlimited. Over it: frame rejected `rate_limited`.
    public var rateLimit: RateLimit?
    /// Frames drained per engine-loop turn before publication gets a chance to run.
    public var drainLimit: Int = 4_096
    /// The time allowed for a graceful shutdown (drain, final snapshot, checkpoint).
    public var shutdownTimeout: Duration = .seconds(20)
    public var clock: ClockMode = .event
    public var balances: String?
    /// CURVE and allow-list settings are carried for the security layer; the daemon passes them on.
    public var curveSecret: String?
    public var authorizedKeys: String?
    public var insecure: Bool = false

    public init(pipelinePath: String, stateDirectory: String? = nil) {
        self.pipelinePath = pipelinePath
        self.stateDirectory = stateDirectory
    }

    /// Every input bound in one value (the security layer's view; ``Limits/decodeLimits`` is what
    /// the engine's decoder gets).
    public var limits: Limits {
        var l = Limits()
        l.maxMessageSize = maxMessageSize
        l.maxEventsPerBatch = maxEventsPerBatch
        l.maxJSONDepth = maxJSONDepth
        l.maxStringLength = maxStringLength
        l.receiveHighWaterMark = ingestHighWaterMark
        l.sendHighWaterMark = publishHighWaterMark
        l.rateLimit = rateLimit
        return l
    }

    /// Merges a config file (if any) under the flags, then validates.
    /// - Throws: ``ConfigError`` for an unreadable or invalid file, an unknown key, a bad value or a
    ///   missing pipeline.
    public static func resolve(configFile: String?, flags: Partial) throws(ConfigError) -> RunSettings {
        var merged = Partial()
        if let configFile {
            merged = try Partial(yamlFile: configFile)
        }
        merged.overlay(flags)
        return try merged.settings()
    }
}

// MARK: - Partial settings (one layer: flags or a file)

extension RunSettings {
    /// One layer of settings where every field may be missing: the flags, or the config file.
    /// Values are still text here so that both layers share the parsing and its error messages.
    public struct Partial: Sendable, Equatable {
        public var pipeline: String?
        public var stateDir: String?
        public var ingest: [String]?
        public var ingestAck: String?
        public var publish: String?
        public var snapshotService: String?
        public var snapshotInterval: String?
        public var checkpointInterval: String?
        public var checkpointBytes: String?
        public var metrics: String?
        public var deadLetter: String?
        public var deadLetterMaxBytes: String?
        public var deadLetterKeep: Int?
        public var maxMessageSize: String?
        public var ingestHighWaterMark: Int?
        public var publishHighWaterMark: Int?
        public var maxJSONDepth: Int?
        public var maxStringLength: String?
        public var maxEventsPerBatch: Int?
        /// `RATE[/s][,BURST]`, or `off`.
        public var rateLimit: String?
        public var shutdownTimeout: String?
        public var clock: String?
        public var balances: String?
        public var curveSecret: String?
        public var authorizedKeys: String?
        public var insecure: Bool?

        public init() {}

        /// The config-file keys, exactly the long flag names without `--`.
        public static let keys: Set<String> = [
            "pipeline", "state-dir", "ingest", "ingest-ack", "publish", "snapshot-service",
            "snapshot-interval", "checkpoint-interval", "checkpoint-bytes", "metrics", "dead-letter", "dead-letter-max-bytes",
            "dead-letter-keep", "max-message-size", "ingest-hwm", "publish-hwm", "max-json-depth", "max-string-length",
            "max-events-per-batch", "rate-limit", "shutdown-timeout",
            "clock", "balances", "curve-secret", "authorized-keys", "insecure",
        ]

        /// Reads a YAML config file whose keys mirror the long flags (`state-dir: /var/lib/tally`).
        /// Relative paths in it are taken from the file's directory, as an operator expects of
        /// `/etc/tally/tally.yaml` naming `pipelines/national-dx.yaml`.
        /// - Throws: ``ConfigError`` naming the file and the key.
        public init(yamlFile path: String) throws(ConfigError) {
            let text: String
            do { text = try readTextFile(path) } catch {
                throw ConfigError(setting: "--config", value: path, problem: "cannot be read (\(error))",
                                  fix: "give the path of a readable YAML file")
            }
            let node: Node?
            do { node = try Yams.compose(yaml: text) } catch {
                throw ConfigError(setting: "--config", value: path, problem: "is not valid YAML (\(error))",
                                  fix: "fix the YAML syntax at the position shown")
            }
            self.init()
            guard let node else { return }  // an empty file sets nothing
            guard let mapping = node.mapping else {
                throw ConfigError(setting: "--config", value: path, problem: "is not a mapping of settings",
                                  fix: "write one 'key: value' per line, keys as the long flags (e.g. 'publish: tcp://127.0.0.1:7703')")
            }
            let base = directoryOf(path)
            for (keyNode, value) in mapping {
                guard let key = keyNode.string else { continue }
                let setting = "\(path): \(key)"
                guard Self.keys.contains(key) else {
                    throw ConfigError(setting: setting, value: "", problem: "is not a known setting",
                                      fix: "use one of: \(Self.keys.sorted().joined(separator: ", "))")
                }
                func scalar() throws(ConfigError) -> String {
                    guard let s = value.scalar?.string else {
                        throw ConfigError(setting: setting, value: "", problem: "must be a single value",
                                          fix: "write it as 'key: value'")
                    }
                    return s
                }
                func int() throws(ConfigError) -> Int {
                    let s = try scalar()
                    guard let i = Int(s) else {
                        throw ConfigError(setting: setting, value: s, problem: "is not a whole number", fix: "write e.g. 1000")
                    }
                    return i
                }
                func pathValue() throws(ConfigError) -> String { resolvePath(try scalar(), relativeTo: base) }
                switch key {
                case "pipeline": pipeline = try pathValue()
                case "state-dir": stateDir = try pathValue()
                case "ingest":
                    if let seq = value.sequence {
                        ingest = seq.compactMap { $0.scalar?.string }
                    } else {
                        ingest = [try scalar()]
                    }
                case "ingest-ack": ingestAck = try scalar()
                case "publish": publish = try scalar()
                case "snapshot-service": snapshotService = try scalar()
                case "snapshot-interval": snapshotInterval = try scalar()
                case "checkpoint-interval": checkpointInterval = try scalar()
                case "checkpoint-bytes": checkpointBytes = try scalar()
                case "metrics": metrics = try scalar()
                case "dead-letter": deadLetter = try pathValue()
                case "dead-letter-max-bytes": deadLetterMaxBytes = try scalar()
                case "dead-letter-keep": deadLetterKeep = try int()
                case "max-message-size": maxMessageSize = try scalar()
                case "ingest-hwm": ingestHighWaterMark = try int()
                case "publish-hwm": publishHighWaterMark = try int()
                case "max-json-depth": maxJSONDepth = try int()
                case "max-string-length": maxStringLength = try scalar()
                case "max-events-per-batch": maxEventsPerBatch = try int()
                case "rate-limit": rateLimit = try scalar()
                case "shutdown-timeout": shutdownTimeout = try scalar()
                case "clock": clock = try scalar()
                case "balances": balances = try pathValue()
                case "curve-secret": curveSecret = try pathValue()
                case "authorized-keys": authorizedKeys = try pathValue()
                case "insecure":
                    let s = try scalar()
                    guard let b = Bool(s.lowercased()) else {
                        throw ConfigError(setting: setting, value: s, problem: "is not true or false", fix: "write true or false")
                    }
                    insecure = b
                default: break
                }
            }
        }

        /// Puts `top` over `self`: every field `top` sets wins.
        public mutating func overlay(_ top: Partial) {
            pipeline = top.pipeline ?? pipeline
            stateDir = top.stateDir ?? stateDir
            ingest = top.ingest ?? ingest
            ingestAck = top.ingestAck ?? ingestAck
            publish = top.publish ?? publish
            snapshotService = top.snapshotService ?? snapshotService
            snapshotInterval = top.snapshotInterval ?? snapshotInterval
            checkpointInterval = top.checkpointInterval ?? checkpointInterval
            checkpointBytes = top.checkpointBytes ?? checkpointBytes
            metrics = top.metrics ?? metrics
            deadLetter = top.deadLetter ?? deadLetter
            deadLetterMaxBytes = top.deadLetterMaxBytes ?? deadLetterMaxBytes
            deadLetterKeep = top.deadLetterKeep ?? deadLetterKeep
            maxMessageSize = top.maxMessageSize ?? maxMessageSize
            ingestHighWaterMark = top.ingestHighWaterMark ?? ingestHighWaterMark
            publishHighWaterMark = top.publishHighWaterMark ?? publishHighWaterMark
            maxJSONDepth = top.maxJSONDepth ?? maxJSONDepth
            maxStringLength = top.maxStringLength ?? maxStringLength
            maxEventsPerBatch = top.maxEventsPerBatch ?? maxEventsPerBatch
            rateLimit = top.rateLimit ?? rateLimit
            shutdownTimeout = top.shutdownTimeout ?? shutdownTimeout
            clock = top.clock ?? clock
            balances = top.balances ?? balances
            curveSecret = top.curveSecret ?? curveSecret
            authorizedKeys = top.authorizedKeys ?? authorizedKeys
            insecure = top.insecure ?? insecure
        }

        /// Validates and fills the defaults.
        public func settings() throws(ConfigError) -> RunSettings {
            guard let pipeline, !pipeline.isEmpty else {
                throw ConfigError(setting: "--pipeline", value: "", problem: "is missing",
                                  fix: "give the pipeline file, e.g. --pipeline Pipelines/national-dx.yaml (or 'pipeline:' in --config)")
            }
            var s = RunSettings(pipelinePath: pipeline, stateDirectory: stateDir)
            if let ingest {
                guard !ingest.isEmpty else {
                    throw ConfigError(setting: "--ingest", value: "", problem: "is empty", fix: "give at least one endpoint")
                }
                s.ingest = try ingest.map { e throws(ConfigError) in try Self.endpoint(e, "--ingest") }
            }
            if let ingestAck {
                s.ingestAck = ingestAck == "none" || ingestAck.isEmpty ? nil : try Self.endpoint(ingestAck, "--ingest-ack")
            }
            if let publish { s.publish = try Self.endpoint(publish, "--publish") }
            if let snapshotService { s.snapshotService = try Self.endpoint(snapshotService, "--snapshot-service") }
            if let snapshotInterval {
                s.snapshotInterval = try DurationText.parse(snapshotInterval, setting: "--snapshot-interval")
                guard s.snapshotInterval >= .milliseconds(1) else {
                    throw ConfigError(setting: "--snapshot-interval", value: snapshotInterval, problem: "is shorter than 1ms",
                                      fix: "use at least 1ms (e.g. 100ms)")
                }
            }
            if let checkpointInterval {
                s.checkpointInterval = try DurationText.parse(checkpointInterval, setting: "--checkpoint-interval")
                guard s.checkpointInterval >= .milliseconds(100) else {
                    throw ConfigError(setting: "--checkpoint-interval", value: checkpointInterval, problem: "is below 100ms",
                                      fix: "use e.g. 60s (a checkpoint costs O(state size) and three fsyncs)")
                }
            }
            if let checkpointBytes {
                s.checkpointBytes = try ByteSizeText.parse(checkpointBytes, setting: "--checkpoint-bytes")
                guard s.checkpointBytes >= 1 << 20 else {
                    throw ConfigError(setting: "--checkpoint-bytes", value: checkpointBytes, problem: "is below 1MiB",
                                      fix: "use at least 1MiB, e.g. 256MiB")
                }
            }
            if let metrics {
                guard metrics.contains(":") else {
                    throw ConfigError(setting: "--metrics", value: metrics, problem: "is not HOST:PORT",
                                      fix: "write e.g. 127.0.0.1:9464")
                }
                s.metrics = metrics
            }
            s.deadLetter = deadLetter
            if let deadLetterMaxBytes {
                s.deadLetterMaxBytes = try ByteSizeText.parse(deadLetterMaxBytes, setting: "--dead-letter-max-bytes")
                guard s.deadLetterMaxBytes >= 4096 else {
                    throw ConfigError(setting: "--dead-letter-max-bytes", value: deadLetterMaxBytes, problem: "is below 4096 bytes",
                                      fix: "use at least 4k so that one rejected payload fits")
                }
            }
            if let deadLetterKeep {
                guard deadLetterKeep >= 1 && deadLetterKeep <= 1000 else {
                    throw ConfigError(setting: "--dead-letter-keep", value: "\(deadLetterKeep)", problem: "is out of range",
                                      fix: "keep between 1 and 1000 rotated files")
                }
                s.deadLetterKeep = deadLetterKeep
            }
            if let maxMessageSize {
                s.maxMessageSize = try ByteSizeText.parse(maxMessageSize, setting: "--max-message-size")
                guard s.maxMessageSize >= 1024 else {
                    throw ConfigError(setting: "--max-message-size", value: maxMessageSize, problem: "is below 1 KiB",
                                      fix: "use at least 1k; one CloudEvent is usually 200–1000 bytes")
                }
            }
            if let h = ingestHighWaterMark {
                guard h >= 0 && h <= Int(Int32.max) else {
                    throw ConfigError(setting: "--ingest-hwm", value: "\(h)", problem: "is out of range", fix: "use 1...1000000 (0 = unlimited, not advised)")
                }
                s.ingestHighWaterMark = Int32(h)
            }
            if let h = publishHighWaterMark {
                guard h >= 1 && h <= Int(Int32.max) else {
                    throw ConfigError(setting: "--publish-hwm", value: "\(h)", problem: "is out of range", fix: "use 1...1000000; a bounded queue is what drops a slow subscriber")
                }
                s.publishHighWaterMark = Int32(h)
            }
            if let d = maxJSONDepth {
                guard d >= 2 && d <= 1_000 else {
                    throw ConfigError(setting: "--max-json-depth", value: "\(d)", problem: "is out of range",
                                      fix: "use 2...1000 (a CloudEvents batch needs 3: array, event, data); default 32")
                }
                s.maxJSONDepth = d
            }
            if let maxStringLength {
                s.maxStringLength = try ByteSizeText.parse(maxStringLength, setting: "--max-string-length")
                guard s.maxStringLength >= 64 && s.maxStringLength <= s.maxMessageSize else {
                    throw ConfigError(setting: "--max-string-length", value: maxStringLength, problem: "is out of range",
                                      fix: "use at least 64 bytes and at most --max-message-size; default 64KiB")
                }
            }
            if let n = maxEventsPerBatch {
                guard n >= 1 && n <= 10_000_000 else {
                    throw ConfigError(setting: "--max-events-per-batch", value: "\(n)", problem: "is out of range",
                                      fix: "use 1...10000000; default 10000")
                }
                s.maxEventsPerBatch = n
            }
            if let rateLimit, rateLimit != "off", rateLimit != "none" {
                do { s.rateLimit = try RateLimit(parsing: rateLimit) } catch {
                    throw ConfigError(setting: "--rate-limit", value: rateLimit, problem: "is not a rate limit (\(error.message))",
                                      fix: "write EVENTS/s,BURST, e.g. 5000/s,20000 (BURST at least the largest batch a producer sends), or off")
                }
            }
            if let shutdownTimeout {
                s.shutdownTimeout = try DurationText.parse(shutdownTimeout, setting: "--shutdown-timeout")
            }
            if let clock {
                guard let mode = ClockMode(rawValue: clock) else {
                    throw ConfigError(setting: "--clock", value: clock, problem: "is not a clock",
                                      fix: "use 'event' (default: replayable event time) or 'wall'")
                }
                s.clock = mode
            }
            s.balances = balances
            s.curveSecret = curveSecret
            s.authorizedKeys = authorizedKeys
            s.insecure = insecure ?? false
            // One endpoint bound twice would fail deep inside libzmq with EADDRINUSE; say it here.
            var seen: [String: String] = [:]
            let named = s.ingest.map { ($0, "--ingest") } + [(s.publish, "--publish"), (s.snapshotService, "--snapshot-service")]
                + (s.ingestAck.map { [($0, "--ingest-ack")] } ?? [])
            for (endpoint, flag) in named where !endpoint.hasSuffix(":*") && !endpoint.hasSuffix(":0") {
                if let other = seen[endpoint] {
                    throw ConfigError(setting: flag, value: endpoint, problem: "is also given to \(other)",
                                      fix: "give every endpoint its own address or port")
                }
                seen[endpoint] = flag
            }
            return s
        }

        /// Checks the shape of a ZeroMQ endpoint (`transport://address`); libzmq checks the rest at bind.
        static func endpoint(_ text: String, _ flag: String) throws(ConfigError) -> String {
            let transports = ["tcp://", "ipc://", "inproc://"]
            guard transports.contains(where: { text.hasPrefix($0) }), text.count > 7 else {
                throw ConfigError(setting: flag, value: text, problem: "is not a ZeroMQ endpoint",
                                  fix: "write e.g. tcp://127.0.0.1:7701 or ipc:///run/tally/ingest.sock")
            }
            return text
        }
    }
}

// MARK: - Files

/// Reads a whole text file with POSIX calls (the daemon does not otherwise need Foundation).
/// - Throws: ``FileError`` with the errno text.
public func readTextFile(_ path: String) throws(FileError) -> String {
    let bytes = try readFileBytes(path)
    return String(decoding: bytes, as: UTF8.self)
}

/// Reads a whole file into memory.
/// - Complexity: O(size); one allocation of the file's size (grown as needed).
public func readFileBytes(_ path: String) throws(FileError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileError(path: path, operation: "read", errno: errno)
        }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

/// A failed file operation, with the path and the system's reason.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let operation: String
    public let errno: Int32
    public init(path: String, operation: String, errno: Int32) {
        self.path = path
        self.operation = operation
        self.errno = errno
    }
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

func resolvePath(_ path: String, relativeTo base: String) -> String {
    path.hasPrefix("/") || base == "." ? path : base + "/" + path
}
