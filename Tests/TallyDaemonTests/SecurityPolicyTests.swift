import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

@Suite("Security: bind policy, allow-list reloads, limits")
struct SecurityPolicyTests {
    @Test("loopback and local endpoints are recognised; wildcard, public and named hosts are not")
    func loopback() {
        for e in ["tcp://127.0.0.1:7701", "tcp://127.8.9.10:*", "tcp://localhost:1", "tcp://[::1]:7701",
                  "tcp://lo:7701", "ipc:///run/tally/ingest.sock", "inproc://x", "tcp://[::ffff:127.0.0.1]:5"] {
            #expect(SecurityOptions.isLoopback(endpoint: e), "\(e)")
        }
        for e in ["tcp://*:7701", "tcp://0.0.0.0:7701", "tcp://10.0.0.5:7701", "tcp://eth0:7701",
                  "tcp://[::]:7701", "tcp://example.gov.vn:7701", "tcp://128.0.0.1:1", "pgm://eth0;239.1.1.1:5555",
                  "tcp://127.0.0.1.evil:1", "nonsense", "tcp://1270.0.0.1:1"] {
            #expect(!SecurityOptions.isLoopback(endpoint: e), "\(e)")
        }
    }

    @Test("a non-loopback bind without CURVE is refused with exit code 2 and says how to enable CURVE")
    func openBindRefused() throws {
        let error = #expect(throws: SecurityConfigError.self) {
            try SecurityOptions.validateBinds(endpoints: ["tcp://127.0.0.1:1", "tcp://0.0.0.0:7701"],
                                              curve: false, insecure: false)
        }
        #expect(error?.exitCode == 2)
        #expect(error?.message.contains("tcp://0.0.0.0:7701") == true)
        #expect(error?.message.contains("tally keys generate server --dir /etc/tally/keys") == true)
        #expect(error?.message.contains("--curve-secret") == true)
        #expect(error?.message.contains("tcp://127.0.0.1:1") == false)
        // With CURVE, or with --insecure, the same binds are accepted.
        try SecurityOptions.validateBinds(endpoints: ["tcp://0.0.0.0:7701"], curve: true, insecure: false)
        try SecurityOptions.validateBinds(endpoints: ["tcp://0.0.0.0:7701"], curve: false, insecure: true)
        try SecurityOptions.validateBinds(endpoints: ["tcp://127.0.0.1:7701"], curve: false, insecure: false)
    }

    @Test("CURVE without an allow-list, or an allow-list without CURVE, is a configuration error")
    func flagCombinations() {
        #expect(throws: SecurityConfigError.self) { try SecurityOptions(curveSecret: "s").validate() }
        #expect(throws: SecurityConfigError.self) { try SecurityOptions(authorizedKeys: "d").validate() }
    }

    @Test("starting with a world-readable server secret fails like ssh, before any socket exists")
    func serverSecretTooOpen() throws {
        let dir = try SecuritySupport.tempDir()
        let p = try Certificate.generate(name: "server").write(toDirectory: dir)
        chmod(p.secretPath, 0o644)
        let context = try Context()
        defer { context.shutdown() }
        let error = #expect(throws: SecurityConfigError.self) {
            try Security.start(options: .init(curveSecret: p.secretPath, authorizedKeys: dir),
                               context: context, logger: .init(label: "t"))
        }
        #expect(error?.message.contains("are too open") == true)
    }

    @Test("origins: no User-Id is unrestricted, a known key gets its prefixes, a removed key gets nothing")
    func origins() throws {
        let dir = try SecuritySupport.tempDir()
        for (name, sources) in [("hanoi", ["/province/hanoi"]), ("ops", nil as [String]?)] {
            let p = try Certificate.generate(name: name, roles: .producer, sources: sources).write(toDirectory: dir + "/c")
            try FileManager.default.copyItem(atPath: p.publicPath, toPath: dir + "/\(name).key")
        }
        let access = try AccessControl(directory: dir)
        #expect(access.initialLoad.unrestrictedProducers == ["ops"])
        #expect(access.origin(forUserId: nil) == nil)
        #expect(access.origin(forUserId: "hanoi") == ["/province/hanoi"])
        #expect(access.origin(forUserId: "ops") == nil)
        #expect(access.origin(forUserId: "ghost") == [])
        try FileManager.default.removeItem(atPath: dir + "/hanoi.key")
        try access.reload()
        #expect(access.origin(forUserId: "hanoi") == [])
    }

    @Test("a reload skips a broken file, keeps that key's previous entry, and a gone directory keeps the whole set")
    func reloadRobust() throws {
        let dir = try SecuritySupport.tempDir()
        let a = try Certificate.generate(name: "a", roles: .subscriber)
        let b = try Certificate.generate(name: "b", roles: .producer, sources: ["/b"])
        try a.publicText().write(toFile: dir + "/a.key", atomically: true, encoding: .utf8)
        try b.publicText().write(toFile: dir + "/b.key", atomically: true, encoding: .utf8)
        try "not a certificate = \"".write(toFile: dir + "/new.key", atomically: true, encoding: .utf8)
        try "ignored".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        let access = try AccessControl(directory: dir)
        #expect(access.policy.count == 2)
        #expect(access.initialLoad.skipped.count == 1)
        #expect(access.initialLoad.skipped.first?.path.hasSuffix("new.key") == true)

        // b is being edited and is broken mid-way: still admitted with its previous entry.
        try "curve\n    public-key = \"short\"\n".write(toFile: dir + "/b.key", atomically: true, encoding: .utf8)
        let result = try access.reload()
        #expect(result.skipped.count == 2)
        #expect(access.policy.authorize(publicKey: b.publicKey, for: .ingest) == .allowed(access.policy.byName["b"]!))

        // A duplicate key under another name is skipped, not admitted twice.
        try a.publicText().write(toFile: dir + "/a-copy.key", atomically: true, encoding: .utf8)
        let dup = try access.reload()
        #expect(access.policy.byKey[a.publicKey] != nil)
        #expect((access.policy.byName["a"] == nil) != (access.policy.byName["a-copy"] == nil))
        #expect(dup.skipped.contains { "\($0)".contains("repeats the key of") })

        // The directory disappears: the reload fails and the current set stays.
        try FileManager.default.removeItem(atPath: dir)
        #expect(throws: SecureFileError.self) { try access.reload() }
        #expect(access.policy.count == 2)
    }

    @Test("roles gate endpoints: producers ingest, subscribers read")
    func roles() throws {
        let p = try Certificate.generate(name: "p", roles: .producer)
        let s = try Certificate.generate(name: "s", roles: .subscriber)
        func entry(_ c: Certificate) throws -> AccessPolicy.Entry {
            .init(name: c.name, publicKey: c.publicKey, roles: try c.roles(), sources: try c.sources(), path: "")
        }
        let policy = AccessPolicy(entries: [try entry(p), try entry(s)])
        #expect(policy.authorize(publicKey: p.publicKey, for: .ingest) == .allowed(try entry(p)))
        #expect(policy.authorize(publicKey: p.publicKey, for: .ingestAck) == .allowed(try entry(p)))
        #expect(policy.authorize(publicKey: p.publicKey, for: .publish) == .denied(.wrongRole("p")))
        #expect(policy.authorize(publicKey: s.publicKey, for: .snapshot) == .allowed(try entry(s)))
        #expect(policy.authorize(publicKey: s.publicKey, for: .ingest) == .denied(.wrongRole("s")))
        let stranger = try Certificate.generate(name: "x")
        #expect(policy.authorize(publicKey: stranger.publicKey, for: .publish) == .denied(.unknownKey))
    }

    @Test("the rate limiter allows the burst, refills at the rate, refuses oversize frames")
    func rateLimiter() {
        var limiter = RateLimiter(limit: RateLimit(eventsPerSecond: 100, burst: 200))
        let t0: UInt64 = 1_000_000_000
        func take(_ key: String, _ cost: Int, _ now: UInt64) -> Bool { limiter.admit(key, cost: cost, nowNanos: now) }
        #expect(take("a", 150, t0))
        #expect(!take("a", 100, t0))     // 50 left
        #expect(take("a", 50, t0))
        #expect(!take("a", 1, t0))
        #expect(take("a", 100, t0 + 1_000_000_000))   // +100 after 1 s
        #expect(!take("a", 1, t0 + 1_000_000_000))
        #expect(take("b", 200, t0))      // independent bucket
        #expect(!take("c", 201, t0))     // more than the burst: never
        #expect(take("a", 200, t0 + 60_000_000_000))  // capped at burst
    }

    @Test("the rate limiter's memory stays bounded under a flood of new producer ids")
    func rateLimiterBounded() {
        var limiter = RateLimiter(limit: RateLimit(eventsPerSecond: 10, burst: 10, maxProducers: 1000))
        var now: UInt64 = 0
        let steady = limiter.admit("steady", cost: 10, nowNanos: now)
        #expect(steady)
        for i in 0..<50_000 {
            now += 1_000
            _ = limiter.admit("p\(i)", cost: 5, nowNanos: now)
            if limiter.trackedProducers > 1000 { Issue.record("\(limiter.trackedProducers) buckets"); break }
        }
        #expect(limiter.trackedProducers <= 1000)
    }

    @Test("rate limits parse from the flag and nonsense is refused")
    func rateLimitParsing() throws {
        #expect(try RateLimit(parsing: "5000/s,20000") == RateLimit(eventsPerSecond: 5000, burst: 20000))
        #expect(try RateLimit(parsing: "10") == RateLimit(eventsPerSecond: 10, burst: 10))
        for bad in ["", "fast", "0", "-1", "5,0", "1,2,3"] {
            #expect(throws: SecurityConfigError.self, "\(bad)") { try RateLimit(parsing: bad) }
        }
        var limits = Limits()
        try limits.validate()
        limits.maxJSONDepth = 0
        #expect(throws: SecurityConfigError.self) { try limits.validate() }
    }

    @Test("the log throttle logs the budget per window and reports what it suppressed")
    func throttle() {
        var t = LogThrottle(budget: 2, windowNanos: 1_000)
        let verdicts = [0, 1, 2, 3, 1_000].map { t.admit(now: $0) }
        #expect(verdicts == [.log(suppressed: 0), .log(suppressed: 0), .suppress, .suppress, .log(suppressed: 2)])
    }
}
