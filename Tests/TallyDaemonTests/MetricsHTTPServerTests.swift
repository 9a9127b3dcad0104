import Glibc
import Testing
@testable import TallyDaemon

// MARK: - A raw TCP client

/// Minimal HTTP/1.1 client over a plain TCP socket: the server is tested the way Prometheus and curl
/// reach it, bytes on a real connection.
struct RawHTTPResponse {
    let status: Int
    let headers: [String: String]
    let body: String
}

enum RawHTTP {
    /// Connects to 127.0.0.1:`port`; the socket has a 5 s receive timeout.
    static func connect(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            let code = errno
            close(fd)
            throw SystemCallError(call: "connect", errno: code)
        }
        return fd
    }

    static func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until the server closes (or the timeout), returning everything.
    static func readAll(_ fd: Int32) -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return all }
            all.append(contentsOf: buffer[0..<count])
        }
    }

    static func parse(_ bytes: [UInt8]) throws -> RawHTTPResponse {
        let terminator: [UInt8] = [13, 10, 13, 10]
        let end = try #require(
            bytes.indices.first { bytes[$0...].starts(with: terminator) },
            "no end of head in \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        let head = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\r\n").map(String.init)
        let statusParts = try #require(head.first).split(separator: " ")
        let status = try #require(Int(statusParts[1]))
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingSpaces()
            }
        }
        return RawHTTPResponse(status: status, headers: headers, body: String(decoding: bytes[(end + 4)...], as: UTF8.self))
    }

    static func request(port: UInt16, _ raw: String) throws -> RawHTTPResponse {
        let fd = try connect(port: port)
        defer { close(fd) }
        send(fd, raw)
        return try parse(readAll(fd))
    }

    static func get(port: UInt16, _ path: String) throws -> RawHTTPResponse {
        try request(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: tally-test\r\n\r\n")
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

/// A started server on an ephemeral loopback port with its own registry, shut down by `stop()`.
struct ServerFixture {
    let metrics: TallyMetrics
    let health: HealthState
    let server: MetricsHTTPServer

    init(limits: MetricsHTTPServer.Limits = .init(), labelLimit: Int = 1_000, health: HealthState = HealthState()) throws {
        metrics = TallyMetrics(version: "1.2.3-test", labelLimit: labelLimit)
        self.health = health
        server = try MetricsHTTPServer(endpoint: MetricsEndpoint(parsing: "127.0.0.1:0"), metrics: metrics,
                                       health: health, limits: limits)
        server.start()
    }

    var port: UInt16 { server.boundPort }
}

/// The value of an unlabeled or exactly-labeled sample line in an exposition.
func sample(_ exposition: String, _ series: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

// MARK: - Endpoints

@Suite("Metrics HTTP server on a real TCP socket")
struct MetricsHTTPServerTests {
    @Test("A drain's tally shows up in /metrics as counters matching what was recorded")
    func countersVisibleInScrape() throws {
        let fixture = try ServerFixture()
        defer { fixture.server.shutdown() }
        var tally = IngestTally()
        tally.received = 7
        tally.accepted = 4
        tally.duplicates = 1
        tally.reject(reason: "bad_time", source: "/agency/moh")
        tally.unrouted(type: "vn.gov.unknown", source: "/agency/moh")
        tally.frame(events: 5, bytes: 900)
        tally.frame(events: 2, bytes: 300)
        tally.lagSeconds = 0.004
        fixture.metrics.record(tally)
        fixture.metrics.recordSnapshotPublished(seq: 42)
        fixture.metrics.walFsync.record(.microseconds(700))

        let response = try RawHTTP.get(port: fixture.port, "/metrics")
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(Int(response.headers["content-length"] ?? "") == response.body.utf8.count)
        let text = response.body
        #expect(sample(text, "tally_events_received_total") == 7)
        #expect(sample(text, "tally_events_accepted_total") == 4)
        #expect(sample(text, "tally_events_duplicate_total") == 1)
        #expect(sample(text, "tally_ingest_bytes_total") == 1_200)
        #expect(sample(text, #"tally_events_rejected_total{reason="bad_time",source="/agency/moh"}"#) == 1)
        #expect(sample(text, #"tally_events_unrouted_total{type="vn.gov.unknown",source="/agency/moh"}"#) == 1)
        #expect(sample(text, "tally_ingest_batch_events_count") == 2)
        #expect(sample(text, "tally_ingest_batch_events_sum") == 7)
        #expect(sample(text, "tally_engine_lag_seconds") == 0.004)
        #expect(sample(text, "tally_snapshot_seq") == 42)
        #expect(sample(text, "tally_snapshots_published_total") == 1)
        #expect(sample(text, "tally_wal_fsync_seconds_count") == 1)
        #expect(sample(text, #"tally_build_info{version="1.2.3-test"}"#) == 1)

        // A second drain adds to the same series.
        fixture.metrics.record(tally)
        let again = try RawHTTP.get(port: fixture.port, "/metrics").body
        #expect(sample(again, "tally_events_received_total") == 14)
        #expect(sample(again, #"tally_events_rejected_total{reason="bad_time",source="/agency/moh"}"#) == 2)
    }

    @Test("Every metric of the catalog is exported with its HELP and TYPE")
    func catalogIsExported() throws {
        let metrics = TallyMetrics(version: "test")
        metrics.recordRejected(reason: "invalid_json", source: "")
        metrics.recordUnrouted(type: "t", source: "s")
        metrics.recordHandshakeFailure(endpoint: "tcp://0.0.0.0:7701")
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        for definition in MetricCatalog.all {
            #expect(text.contains("# TYPE \(definition.name) \(definition.kind.rawValue)\n"), "\(definition.name)")
            #expect(text.contains("# HELP \(definition.name) "), "\(definition.name)")
        }
        #expect(sample(text, #"tally_events_rejected_total{reason="invalid_json",source="unknown"}"#) == 1)
        #expect(sample(text, #"tally_handshake_failures_total{endpoint="tcp://0.0.0.0:7701"}"#) == 1)
        #expect(sample(text, #"tally_reloads_total{result="success"}"#) == 0)
        metrics.recordReload(succeeded: false)
        #expect(sample(String(decoding: metrics.exposition(), as: UTF8.self), #"tally_reloads_total{result="failure"}"#) == 1)
    }

    @Test("The source label admits the first N distinct values, then reports other")
    func sourceLabelIsCapped() throws {
        let metrics = TallyMetrics(version: "test", labelLimit: 2)
        for index in 0..<50 { metrics.recordRejected(reason: "bad_time", source: "/forged/\(index)") }
        metrics.recordRejected(reason: "bad_time", source: "/forged/0")
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(sample(text, #"tally_events_rejected_total{reason="bad_time",source="/forged/0"}"#) == 2)
        #expect(sample(text, #"tally_events_rejected_total{reason="bad_time",source="/forged/1"}"#) == 1)
        #expect(sample(text, #"tally_events_rejected_total{reason="bad_time",source="other"}"#) == 48)
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("tally_events_rejected_total{") }.count == 3)
        #expect(metrics.sources.admittedCount == 2)
        #expect(LabelCap.truncate("ñññ", toBytes: 5) == "ññ")
    }

    @Test("/readyz is 503 while starting, 200 once ready, 503 again once stopping")
    func readinessFlips() throws {
        let fixture = try ServerFixture()
        defer { fixture.server.shutdown() }
        let starting = try RawHTTP.get(port: fixture.port, "/readyz")
        #expect(starting.status == 503)
        #expect(starting.body == "starting\n")
        fixture.health.markReady()
        #expect(try RawHTTP.get(port: fixture.port, "/readyz").status == 200)
        #expect(try RawHTTP.get(port: fixture.port, "/readyz?verbose=1").status == 200)
        fixture.health.markStopping()
        let stopping = try RawHTTP.get(port: fixture.port, "/readyz")
        #expect(stopping.status == 503)
        #expect(stopping.body == "stopping\n")
        fixture.health.markReady()  // a stopping daemon never becomes ready again
        #expect(try RawHTTP.get(port: fixture.port, "/readyz").status == 503)
    }

    @Test("/healthz is 200 while the engine loop beats and 503 once its heartbeat is stale")
    func liveness() throws {
        let fixture = try ServerFixture(health: HealthState(staleAfterMicroseconds: 1_000_000))
        defer { fixture.server.shutdown() }
        #expect(try RawHTTP.get(port: fixture.port, "/healthz").status == 200)  // no heartbeat yet: starting
        fixture.health.heartbeat(nowMonotonic: MonotonicClock.microseconds())
        #expect(try RawHTTP.get(port: fixture.port, "/healthz").status == 200)
        fixture.health.heartbeat(nowMonotonic: MonotonicClock.microseconds() - 5_000_000)
        let stale = try RawHTTP.get(port: fixture.port, "/healthz")
        #expect(stale.status == 503)
        #expect(stale.body == "engine loop stalled\n")
    }

    @Test("Unknown paths get 404, other methods 405, garbage 400, HEAD a body-less answer")
    func errorsAndHead() throws {
        let fixture = try ServerFixture()
        defer { fixture.server.shutdown() }
        #expect(try RawHTTP.get(port: fixture.port, "/").status == 404)
        #expect(try RawHTTP.get(port: fixture.port, "/metrics/../etc/passwd").status == 404)
        let post = try RawHTTP.request(port: fixture.port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET, HEAD")
        #expect(try RawHTTP.request(port: fixture.port, "hello there\r\n\r\n").status == 400)
        #expect(try RawHTTP.request(port: fixture.port, "GET /metrics SPDY/9\r\n\r\n").status == 400)
        let head = try RawHTTP.request(port: fixture.port, "HEAD /metrics HTTP/1.1\r\n\r\n")
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect((Int(head.headers["content-length"] ?? "0") ?? 0) > 0)
    }

    @Test("A request head over the size limit is answered 431 without reading the rest")
    func oversizedRequest() throws {
        var limits = MetricsHTTPServer.Limits()
        limits.maxRequestBytes = 1_024
        let fixture = try ServerFixture(limits: limits)
        defer { fixture.server.shutdown() }
        let huge = "GET /metrics HTTP/1.1\r\nX-Junk: " + String(repeating: "a", count: 3_000) + "\r\n\r\n"
        #expect(try RawHTTP.request(port: fixture.port, huge).status == 431)
    }

    @Test("A slow client is cut off at its deadline while other clients are served meanwhile")
    func slowClientDoesNotBlockOthers() throws {
        var limits = MetricsHTTPServer.Limits()
        limits.connectionTimeoutMicroseconds = 300_000
        let fixture = try ServerFixture(limits: limits)
        defer { fixture.server.shutdown() }
        let slow = try RawHTTP.connect(port: fixture.port)
        defer { close(slow) }
        RawHTTP.send(slow, "GET /metr")  // and never finishes
        let started = MonotonicClock.microseconds()
        #expect(try RawHTTP.get(port: fixture.port, "/healthz").status == 200)
        #expect(MonotonicClock.microseconds() - started < 300_000, "the healthy client waited for the slow one")
        // The slow one is closed by the server (EOF) after about its deadline, well before our 5 s timeout.
        #expect(RawHTTP.readAll(slow).isEmpty)
        let elapsed = MonotonicClock.microseconds() - started
        #expect(elapsed < 4_000_000)
    }

    @Test("More clients than the connection cap are all served, the extra ones from the backlog")
    func connectionCap() throws {
        var limits = MetricsHTTPServer.Limits()
        limits.maxConnections = 2
        limits.connectionTimeoutMicroseconds = 300_000
        let fixture = try ServerFixture(limits: limits)
        defer { fixture.server.shutdown() }
        let idle = try (0..<2).map { _ in try RawHTTP.connect(port: fixture.port) }
        defer { idle.forEach { close($0) } }
        // Both slots are held by idle clients; this one waits in the backlog until they time out.
        #expect(try RawHTTP.get(port: fixture.port, "/healthz").status == 200)
    }

    @Test("shutdown wakes the server thread, which stops accepting")
    func shutdownWakes() throws {
        let fixture = try ServerFixture()
        let port = fixture.port
        #expect(try RawHTTP.get(port: port, "/healthz").status == 200)
        fixture.server.shutdown()
        fixture.server.shutdown()  // idempotent
        // The listening socket is closed with the server object; until then the kernel may still
        // complete handshakes, but nobody answers: the read sees EOF or a reset, never a response.
        if let fd = try? RawHTTP.connect(port: port) {
            RawHTTP.send(fd, "GET /healthz HTTP/1.1\r\n\r\n")
            var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            #expect(RawHTTP.readAll(fd).isEmpty)
            close(fd)
        }
    }

    @Test("--metrics endpoints parse IPv4, names and bracketed IPv6, and reject the rest")
    func endpointParsing() throws {
        #expect(try MetricsEndpoint(parsing: "127.0.0.1:9464") == MetricsEndpoint(host: "127.0.0.1", port: 9464))
        #expect(try MetricsEndpoint(parsing: "[::1]:9464") == MetricsEndpoint(host: "::1", port: 9464))
        #expect(try MetricsEndpoint(parsing: "localhost:0").port == 0)
        #expect(MetricsEndpoint(host: "::1", port: 1).description == "[::1]:1")
        for bad in ["9464", "::1:9464", ":9464", "host:port", "host:70000", "[::1]9464"] {
            #expect(throws: MetricsServerError.invalidEndpoint(bad)) { try MetricsEndpoint(parsing: bad) }
        }
    }

    @Test("Binding a port already in use fails with the bind error, before serving")
    func bindConflict() throws {
        let fixture = try ServerFixture()
        defer { fixture.server.shutdown() }
        do {
            _ = try MetricsHTTPServer(endpoint: MetricsEndpoint(host: "127.0.0.1", port: fixture.port),
                                      health: HealthState()) { [] }
            Issue.record("a second bind on the same port must fail")
        } catch let error {
            guard case .systemCall(_, let failure) = error else { Issue.record("unexpected \(error)"); return }
            #expect(failure.call == "bind")
            #expect(failure.errno == EADDRINUSE)
        }
    }
}
