import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

private typealias F = DaemonFixture

// MARK: - Limits: settings

@Suite("Limits: flags and config keys")
struct DaemonLimitsSettingsTests {
    @Test("the limits default to depth 32, strings 64 KiB, 10000 events per batch and no rate limit")
    func defaults() throws {
        var flags = RunSettings.Partial()
        flags.pipeline = "p.yaml"
        let s = try flags.settings()
        #expect(s.maxJSONDepth == 32)
        #expect(s.maxStringLength == 64 << 10)
        #expect(s.maxEventsPerBatch == 10_000)
        #expect(s.rateLimit == nil)
        #expect(s.limits == Limits(), "RunSettings' defaults are the security layer's")
        let d = s.limits.decodeLimits
        #expect(d.maxDepth == 32 && d.maxStringLength == 65_536 && d.maxEventsPerBatch == 10_000)
    }

    @Test("every limit is a config key, the flags win, and the decoder gets them")
    func fileAndFlags() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tally-limits-\(UUID()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try """
        pipeline: p.yaml
        max-json-depth: 8
        max-string-length: 4k
        max-events-per-batch: 500
        rate-limit: 5000/s,20000
        ingest-hwm: 2000
        publish-hwm: 50
        max-message-size: 1MiB
        """.write(toFile: file, atomically: true, encoding: .utf8)
        var flags = RunSettings.Partial()
        flags.maxEventsPerBatch = 100
        let s = try RunSettings.resolve(configFile: file, flags: flags)
        #expect(s.maxJSONDepth == 8)
        #expect(s.maxStringLength == 4096)
        #expect(s.maxEventsPerBatch == 100)
        #expect(s.rateLimit == RateLimit(eventsPerSecond: 5000, burst: 20000))
        #expect(s.ingestHighWaterMark == 2000)
        #expect(s.publishHighWaterMark == 50)
        let options = EngineCore.options(s)
        #expect(options.decodeLimits.maxDepth == 8)
        #expect(options.decodeLimits.maxStringLength == 4096)
        #expect(options.decodeLimits.maxEventsPerBatch == 100)

        flags.rateLimit = "off"
        #expect(try RunSettings.resolve(configFile: file, flags: flags).rateLimit == nil, "off on the command line overrides the file")
    }

    @Test("nonsensical limits are usage errors naming the flag and what to write")
    func badValues() {
        var flags = RunSettings.Partial()
        flags.pipeline = "p.yaml"
        flags.maxJSONDepth = 1
        #expect { try flags.settings() } throws: { "\($0)".contains("--max-json-depth") && "\($0)".contains("2...1000") }
        flags.maxJSONDepth = nil
        flags.maxStringLength = "huge"
        #expect { try flags.settings() } throws: { "\($0)".contains("--max-string-length 'huge' is not a byte size") }
        flags.maxStringLength = "64MiB"
        #expect { try flags.settings() } throws: { "\($0)".contains("at most --max-message-size") }
        flags.maxStringLength = nil
        flags.maxEventsPerBatch = 0
        #expect { try flags.settings() } throws: { "\($0)".contains("--max-events-per-batch") }
        flags.maxEventsPerBatch = nil
        flags.rateLimit = "fast"
        #expect { try flags.settings() } throws: { "\($0)".contains("--rate-limit") && "\($0)".contains("5000/s,20000") }
        flags.rateLimit = "100/s,0"
        #expect { try flags.settings() } throws: { "\($0)".contains("burst of at least 1") }
    }

    @Test("tally run refuses a bad limit with exit 2")
    func commandLine() throws {
        let r = try runTally(["run", "--pipeline", "p.yaml", "--rate-limit", "lots"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--rate-limit"))
    }

    @Test("a refund gives back what one bucket paid for a frame another bucket refused, capped at the burst")
    func refund() {
        var limiter = RateLimiter(limit: RateLimit(eventsPerSecond: 0.001, burst: 100))
        let first = limiter.admit("user:a", cost: 80, nowNanos: 1)
        let second = limiter.admit("user:a", cost: 80, nowNanos: 2)
        limiter.refund("user:a", cost: 80)
        let whole = limiter.admit("user:a", cost: 100, nowNanos: 3)
        limiter.refund("user:a", cost: 500)
        let again = limiter.admit("user:a", cost: 100, nowNanos: 4)
        let beyond = limiter.admit("user:a", cost: 1, nowNanos: 5)
        #expect(first && !second && whole && again)
        #expect(!beyond, "a refund never banks more than the burst")
        #expect(limiter.secondsUntil("user:a", cost: 1, nowNanos: 6) > 100, "at 0.001/s one token takes ~1000 s")
    }

    @Test("a frame's event count for the rate limit is its top-level array length, strings and nesting skipped")
    func eventCount() {
        func count(_ s: String) -> Int { Array(s.utf8).withUnsafeBytes { IngestRateLimiter.eventCount($0) } }
        #expect(count(#"{"a":[1,2,3]}"#) == 1)
        #expect(count(#" [ {"a":"x,y]"} , {"b":[1,2]}, {"c":{"d":","}} ] "#) == 3)
        #expect(count("[]") == 1)
        #expect(count(#"[{"a":"\"],"}]"#) == 1)
        #expect(count("[1,2") == 2, "a truncated frame still costs what it holds")
    }
}

// MARK: - Limits: the running daemon

@Suite("Limits: exceeding one rejects with its reason while valid input keeps counting")
struct DaemonLimitsTests {
    static func start(_ configure: (inout RunSettings) -> Void) throws -> (Daemon, Context) {
        var s = F.settings(stateDir: nil)
        configure(&s)
        return (try F.start(s), try Context())
    }

    /// Waits until the ledger has `count` rejections for `reason` (or 10 s).
    static func waitForRejections(_ daemon: Daemon, _ reason: String, _ count: Int) -> Int {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let n = daemon.ledger.countsByReason()[reason] ?? 0
            if n >= count { return n }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return daemon.ledger.countsByReason()[reason] ?? 0
    }

    static func send(_ context: Context, _ endpoint: String, _ frames: [String]) throws {
        let push = try Socket(context, .push)
        try push.set(.linger, 5000)
        try push.connect(endpoint)
        for f in frames { try push.send(Array(f.utf8)) }
        push.close()
    }

    static func batch(_ range: Range<Int>, _ prefix: String) -> String {
        "[" + range.map { F.payment($0, prefix) }.joined(separator: ",") + "]"
    }

    @Test("--max-json-depth: a deeper frame is rejected too_deep, the frames around it count")
    func depth() throws {
        let (daemon, context) = try Self.start { $0.maxJSONDepth = 4 }
        defer { F.stop(daemon); context.shutdown() }
        let e = daemon.boundEndpoints
        // outer object 1, data 2, x 3, y 4, z 5 > 4; unknown data fields are otherwise ignored.
        let deep = #"{"specversion":"1.0","id":"deep-1","source":"dvc/portal","type":"dvc.payment.completed","time":"2024-04-15T10:00:00+07:00","data":{"payment":"p","amount_vnd":1,"x":{"y":{"z":{}}}}}"#
        let fits = #"{"specversion":"1.0","id":"fits-1","source":"dvc/portal","type":"dvc.payment.completed","time":"2024-04-15T10:00:00+07:00","data":{"payment":"p","amount_vnd":1,"x":{"y":{}}}}"#
        try Self.send(context, e.ingest[0], [F.payment(1, "a"), deep, fits, F.payment(2, "a")])
        let snap = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 3)
        #expect(try F.value(snap, "dvc.online_payments") == 3)
        #expect(Self.waitForRejections(daemon, "too_deep", 1) == 1)
    }

    @Test("--max-string-length: an event with a longer string is rejected too_large, the rest of its batch counts")
    func stringLength() throws {
        let (daemon, context) = try Self.start { $0.maxStringLength = 64 }
        defer { F.stop(daemon); context.shutdown() }
        let e = daemon.boundEndpoints
        let long = F.payment(99, "long-" + String(repeating: "x", count: 80))
        try Self.send(context, e.ingest[0], ["[" + F.payment(1, "s") + "," + long + "," + F.payment(2, "s") + "]"])
        let snap = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 2)
        #expect(try F.value(snap, "dvc.online_payments") == 2)
        #expect(Self.waitForRejections(daemon, "too_large", 1) == 1)
    }

    @Test("--max-events-per-batch: a larger batch is rejected too_large whole, one at the limit counts")
    func eventsPerBatch() throws {
        let (daemon, context) = try Self.start { $0.maxEventsPerBatch = 10 }
        defer { F.stop(daemon); context.shutdown() }
        let e = daemon.boundEndpoints
        try Self.send(context, e.ingest[0], [Self.batch(0..<11, "over"), Self.batch(0..<10, "at")])
        let snap = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 10)
        #expect(try F.value(snap, "dvc.online_payments") == 10)
        #expect(Self.waitForRejections(daemon, "too_large", 1) == 1)

        // The acknowledged path answers the same reason in the status.
        let dealer = try Socket(context, .dealer)
        try dealer.set(.receiveTimeout, 5000)
        try dealer.connect(try #require(e.ingestAck))
        defer { dealer.close() }
        try dealer.sendMultipart([[], Array("p".utf8), Array("1".utf8), Array(Self.batch(20..<31, "ack").utf8)])
        let reply = try #require(try dealer.receiveMultipart()).last!.string
        #expect(reply.contains(#""payload_error":{"reason":"too_large""#), "\(reply)")
    }

    @Test("--rate-limit on the acknowledged path: over the limit is answered rate_limited with retry, re-sent later it is applied once; other producers count")
    func rateLimitAcknowledged() throws {
        let (daemon, context) = try Self.start { $0.rateLimit = RateLimit(eventsPerSecond: 20, burst: 50) }
        defer { F.stop(daemon); context.shutdown() }
        let e = daemon.boundEndpoints
        let dealer = try Socket(context, .dealer)
        try dealer.set(.receiveTimeout, 5000)
        try dealer.connect(try #require(e.ingestAck))
        defer { dealer.close() }
        func send(_ producer: String, _ seq: Int, _ batch: String) throws -> String {
            try dealer.sendMultipart([[], Array(producer.utf8), Array(String(seq).utf8), Array(batch.utf8)])
            let parts = try #require(try dealer.receiveMultipart(), "no answer")
            #expect(parts[parts.count - 2].string == String(seq))
            return parts.last!.string
        }
        #expect(try send("agency-a", 1, Self.batch(0..<50, "a1")).contains(#""accepted":50"#))
        let refused = try send("agency-a", 2, Self.batch(0..<50, "a2"))
        #expect(refused.contains(#""error":{"reason":"rate_limited""#), "\(refused)")
        #expect(refused.contains(#""retry":true"#))
        #expect(refused.contains(#""accepted":0"#))
        // Another producer has its own bucket.
        #expect(try send("agency-b", 1, Self.batch(0..<50, "b1")).contains(#""accepted":50"#))
        #expect(daemon.ledger.countsByReason()["rate_limited"] == 1)

        // 50 tokens come back in 2.5 s at 20/s: the same sequence re-sent is now applied, once.
        Thread.sleep(forTimeInterval: 2.7)
        #expect(try send("agency-a", 2, Self.batch(0..<50, "a2")).contains(#""accepted":50"#))
        #expect(try send("agency-a", 2, Self.batch(0..<50, "a2")).contains(#""accepted":50"#), "a re-send is answered from the producer table")
        let snap = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 150)
        #expect(try F.value(snap, "dvc.online_payments") == 150)
    }

    @Test("--rate-limit on fire-and-forget without CURVE: the peer over its burst is refused rate_limited and counted")
    func rateLimitPull() throws {
        let (daemon, context) = try Self.start { $0.rateLimit = RateLimit(eventsPerSecond: 0.01, burst: 60) }
        defer { F.stop(daemon); context.shutdown() }
        let e = daemon.boundEndpoints
        // 50 pass, the next 50 do not fit the 10 tokens left, 10 do.
        try Self.send(context, e.ingest[0], [Self.batch(0..<50, "p1"), Self.batch(0..<50, "p2"), Self.batch(0..<10, "p3")])
        let snap = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 60)
        #expect(try F.value(snap, "dvc.online_payments") == 60)
        #expect(Self.waitForRejections(daemon, "rate_limited", 1) == 1)
        // The acknowledged path charges the producer id, not the peer: it still counts.
        let dealer = try Socket(context, .dealer)
        try dealer.set(.receiveTimeout, 5000)
        try dealer.connect(try #require(e.ingestAck))
        defer { dealer.close() }
        try dealer.sendMultipart([[], Array("other".utf8), Array("1".utf8), Array(Self.batch(0..<20, "o").utf8)])
        #expect(try #require(try dealer.receiveMultipart()).last!.string.contains(#""accepted":20"#))
    }

    @Test("--rate-limit with CURVE charges each key (User-Id): one key over its limit is refused, another key keeps counting")
    func rateLimitCurve() throws {
        let base = try SecuritySupport.tempDir("ratelimit")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let server = try Certificate.generate(name: "server")
        let serverPaths = try server.write(toDirectory: base + "/server")
        try FileManager.default.createDirectory(atPath: base + "/authorized", withIntermediateDirectories: true)
        var certs: [Certificate] = []
        for name in ["hanoi", "hue"] {
            let cert = try Certificate.generate(name: name, roles: .producer)
            let p = try cert.write(toDirectory: base + "/clients")
            try FileManager.default.copyItem(atPath: p.publicPath, toPath: base + "/authorized/\(name).key")
            certs.append(cert)
        }
        let (daemon, context) = try Self.start {
            $0.curveSecret = serverPaths.secretPath
            $0.authorizedKeys = base + "/authorized"
            $0.rateLimit = RateLimit(eventsPerSecond: 0.01, burst: 30)
        }
        defer { F.stop(daemon); context.shutdown() }
        let e = daemon.boundEndpoints
        func push(_ cert: Certificate, _ frames: [String]) throws {
            let s = try SecuritySupport.client(context, .push, serverKey: server.publicKey, cert: cert)
            try s.set(.linger, 5000)
            try s.connect(e.ingest[0])
            for f in frames { try s.send(Array(f.utf8)) }
            s.close()
        }
        try push(certs[0], [Self.batch(0..<20, "hn1"), Self.batch(0..<20, "hn2")])   // 20 pass, 20 > 10 left
        try push(certs[1], [Self.batch(0..<20, "hue1")])                               // its own bucket
        // A new connection of the same key shares its bucket: still refused.
        try push(certs[0], [Self.batch(0..<20, "hn3")])
        #expect(Self.waitForRejections(daemon, "rate_limited", 2) == 2)
        let deadline = ContinuousClock.now + .seconds(10)
        while daemon.stats.withLock({ $0.accepted }) < 40 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        Thread.sleep(forTimeInterval: 0.1)
        #expect(daemon.stats.withLock { $0.accepted } == 40)
    }
}
