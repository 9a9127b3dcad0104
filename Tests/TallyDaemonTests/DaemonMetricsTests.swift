import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

// MARK: - /metrics against what was sent

@Suite("Daemon metrics: a /metrics scrape matches the events sent, connections come from socket monitors")
struct DaemonMetricsTests {
    typealias F = DaemonFixture

    /// The value of one exposition line `name{labels} value` (nil when absent).
    private func sample(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test("accepted, rejected by reason and source, unrouted by type and source, connections and engine lag")
    func scrapeMatchesEventsSent() throws {
        let dir = F.temporaryDirectory("metrics")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = F.settings(stateDir: dir)
        let metrics = TallyMetrics(version: "test")
        let core = try EngineCore(settings: s, logger: F.quietLogger())
        let daemon = try Daemon(settings: s, core: core, logger: F.quietLogger())
        daemon.metrics = metrics
        try daemon.start()
        defer { F.stop(daemon) }
        let server = try MetricsHTTPServer(endpoint: MetricsEndpoint(parsing: "127.0.0.1:0"), metrics: metrics, health: HealthState())
        server.start()
        defer { server.shutdown() }

        let context = try Context()
        let e = daemon.boundEndpoints
        let sub = try Socket(context, .sub)
        try sub.set(.subscribe, Array("snapshot.".utf8))
        try sub.connect(e.publish)
        let push = try Socket(context, .push)
        try push.connect(e.ingest[0])
        var frames: [String] = (0..<12).map { F.payment($0, "m") }
        let badVersion = #"{"specversion":"0.3","id":"v1","source":"agency/x","type":"dvc.payment.completed","time":"2024-04-15T10:00:00+07:00","data":{"payment":"p","amount_vnd":1}}"#
        let badTime = #"{"specversion":"1.0","id":"t1","source":"agency/x","type":"dvc.payment.completed","time":"yesterday","data":{"payment":"p","amount_vnd":1}}"#
        let unknown = #"{"specversion":"1.0","id":"u1","source":"agency/y","type":"made.up.type","time":"2024-04-15T10:00:00+07:00","data":{}}"#
        frames += [badVersion, badVersion.replacingOccurrences(of: "v1", with: "v2"), badTime, unknown,
                   unknown.replacingOccurrences(of: "u1", with: "u2"), "{not json"]
        for f in frames { try push.send(Array(f.utf8)) }
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 12)

        var text = ""
        let deadline = ContinuousClock.now + .seconds(10)
        repeat {
            Thread.sleep(forTimeInterval: 0.05)
            text = try MetricsRawHTTP.get(port: server.boundPort, "/metrics").body
        } while ContinuousClock.now < deadline
            && (sample(text, #"tally_events_unrouted_total{type="made.up.type",source="agency/y"}"#) != 2
                || sample(text, "tally_subscribers_connected") != 1)
        #expect(sample(text, "tally_events_accepted_total") == 12)
        #expect(sample(text, #"tally_events_rejected_total{reason="bad_specversion",source="agency/x"}"#) == 2, "\(text)")
        #expect(sample(text, #"tally_events_rejected_total{reason="bad_time",source="agency/x"}"#) == 1)
        #expect(text.contains(#"tally_events_rejected_total{reason="invalid_json""#))
        #expect(sample(text, #"tally_events_unrouted_total{type="made.up.type",source="agency/y"}"#) == 2)
        #expect(sample(text, "tally_subscribers_connected") == 1)
        #expect((sample(text, "tally_producers_connected") ?? 0) >= 1)
        #expect(sample(text, "tally_engine_lag_seconds") != nil)
        #expect(daemon.connectedPeers.subscribers == 1)

        sub.close()
        let gone = ContinuousClock.now + .seconds(5)
        while daemon.connectedPeers.subscribers != 0 && ContinuousClock.now < gone { Thread.sleep(forTimeInterval: 0.02) }
        #expect(daemon.connectedPeers.subscribers == 0, "a subscriber that leaves is uncounted")
    }
}
