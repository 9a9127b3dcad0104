import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

// MARK: - SIGHUP reload at daemon level

@Suite("Daemon reload: validated first, unchanged indicators keep state, added ones rebuilt from the log")
struct DaemonReloadTests {
    typealias F = DaemonFixture

    private static let addedIndicator = """

      - id: test.distinct_payments
        title: Distinct payments (added by a reload)
        unit: count
        events: dvc.payment.completed
        aggregate: distinct(payment)

    """

    private func waitForReloads(_ daemon: Daemon, failures: Int = 0, metrics: TallyMetrics, result: String) throws -> String {
        let deadline = ContinuousClock.now + .seconds(10)
        var text = ""
        while ContinuousClock.now < deadline {
            text = String(decoding: metrics.exposition(), as: UTF8.self)
            if text.contains(#"tally_reloads_total{result="\#(result)"} 1"#) { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return text
    }

    @Test("a reload with an added indicator publishes it at once with the retained log's events, and keeps the others' state")
    func addedIndicatorStartsFromTheLog() throws {
        let root = F.temporaryDirectory("reload-add")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pipeline = root + "/p.yaml"
        try FileManager.default.copyItem(atPath: F.nationalPipeline, toPath: pipeline)
        var s = F.settings(pipeline: pipeline, stateDir: root + "/state")
        s.checkpointInterval = .milliseconds(100)   // checkpoints before the reload: the state is not only the log
        let daemon = try F.start(s)
        defer { F.stop(daemon) }
        let metrics = TallyMetrics(version: "test")
        daemon.metrics = metrics
        let context = try Context()
        let e = daemon.boundEndpoints
        try F.push(context, e.ingest[0], prefix: "before", range: 0..<40)
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 40)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try F.value(F.ask(context, e.snapshotService), "test.distinct_payments") == nil)

        let text = try String(contentsOfFile: pipeline, encoding: .utf8)
        try (text + Self.addedIndicator).write(toFile: pipeline, atomically: true, encoding: .utf8)
        daemon.requestReload()
        let exposition = try waitForReloads(daemon, metrics: metrics, result: "success")
        #expect(exposition.contains(#"tally_reloads_total{result="success"} 1"#), "\(exposition.split(separator: "\n").filter { $0.contains("reload") })")
        let snap = try F.waitFor(context, e.snapshotService, "test.distinct_payments", 40)
        #expect(try F.value(snap, "test.distinct_payments") == 40, "rebuilt from the retained log")
        #expect(try F.value(snap, "dvc.online_payments") == 40, "kept, not counted twice")
        #expect(try F.value(snap, "dvc.online_payments_vnd") == 40 * 500)

        // New events count in both, and the old ids stay duplicates for the new indicator too.
        try F.push(context, e.ingest[0], prefix: "before", range: 0..<40)
        try F.push(context, e.ingest[0], prefix: "after", range: 0..<10)
        let after = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 50)
        Thread.sleep(forTimeInterval: 0.1)
        let last = try F.ask(context, e.snapshotService)
        #expect(try F.value(after, "dvc.online_payments") == 50)
        // The "after" events reuse payment values p0...p9: the backfilled distinct set knows them
        // (their interned ids were carried over), so the distinct count stays 40.
        #expect(try F.value(last, "test.distinct_payments") == 40)
        try F.push(context, e.ingest[0], prefix: "new", range: 100..<105)
        let five = try F.waitFor(context, e.snapshotService, "test.distinct_payments", 45)
        #expect(try F.value(five, "test.distinct_payments") == 45)
        #expect(daemon.stats.withLock { $0.reloadFailures } == 0)
    }

    @Test("a reload with a broken pipeline keeps the old one running and counts tally_reloads_total{result=\"failure\"}")
    func brokenReloadKeepsPipelineAndCounts() throws {
        let root = F.temporaryDirectory("reload-broken")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pipeline = root + "/p.yaml"
        try FileManager.default.copyItem(atPath: F.nationalPipeline, toPath: pipeline)
        let daemon = try F.start(F.settings(pipeline: pipeline, stateDir: root + "/state"))
        defer { F.stop(daemon) }
        let metrics = TallyMetrics(version: "test")
        daemon.metrics = metrics
        let context = try Context()
        let e = daemon.boundEndpoints
        try F.push(context, e.ingest[0], prefix: "x", range: 0..<5)
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 5)
        try "pipeline: broken\nindicators: [".write(toFile: pipeline, atomically: true, encoding: .utf8)
        daemon.requestReload()
        let exposition = try waitForReloads(daemon, metrics: metrics, result: "failure")
        #expect(exposition.contains(#"tally_reloads_total{result="failure"} 1"#))
        #expect(daemon.stats.withLock { $0.reloadFailures } == 1)
        try F.push(context, e.ingest[0], prefix: "x", range: 5..<8)
        let snap = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 8)
        #expect(try F.value(snap, "dvc.online_payments") == 8, "the old pipeline keeps counting")
    }

    @Test("settings a reload cannot apply are named")
    func restartOnlySettingsAreNamed() {
        let a = F.settings(stateDir: "/tmp/a")
        var b = a
        b.publish = "tcp://127.0.0.1:9999"
        b.pipelinePath = "/elsewhere.yaml"
        b.checkpointBytes = 1 << 30
        #expect(Daemon.restartOnlyChanges(from: a, to: b) == ["publish", "checkpoint-bytes"])
        #expect(Daemon.restartOnlyChanges(from: a, to: a).isEmpty)
    }
}
