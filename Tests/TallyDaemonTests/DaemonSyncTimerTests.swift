import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

// MARK: - The fire-and-forget sync timer

@Suite("Daemon sync timer: fire-and-forget records are synced every interval, with input flowing or not")
struct DaemonSyncTimerTests {
    typealias F = DaemonFixture

    private func fsyncCount(_ port: UInt16) throws -> Double {
        let text = try MetricsRawHTTP.get(port: port, "/metrics").body
        for line in text.split(separator: "\n") where line.hasPrefix("tally_wal_fsync_seconds_count ") {
            return Double(line.dropFirst("tally_wal_fsync_seconds_count ".count)) ?? 0
        }
        return 0
    }

    @Test("a continuous stream is synced by the drains that carry the timer, and a quiet one by the idle loop")
    func timerSyncsWhileFlowingAndWhenIdle() throws {
        let dir = F.temporaryDirectory("synctimer")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var s = F.settings(stateDir: dir)
        s.snapshotInterval = .milliseconds(200)
        let metrics = TallyMetrics(version: "test")
        let core = try EngineCore(settings: s, logger: F.quietLogger())
        let daemon = try Daemon(settings: s, core: core, logger: F.quietLogger())
        daemon.metrics = metrics
        daemon.syncInterval = .milliseconds(5)
        try daemon.start()
        defer { F.stop(daemon) }
        let server = try MetricsHTTPServer(endpoint: MetricsEndpoint(parsing: "127.0.0.1:0"), metrics: metrics, health: HealthState())
        server.start()
        defer { server.shutdown() }

        let context = try Context()
        let e = daemon.boundEndpoints
        let push = try Socket(context, .push)
        try push.connect(e.ingest[0])
        // Flowing: a frame every millisecond for ~0.4 s, so nearly every loop turn drains something.
        let before = try fsyncCount(server.boundPort)
        var sent = 0
        let until = ContinuousClock.now + .milliseconds(400)
        while ContinuousClock.now < until {
            try push.send(Array(F.payment(sent, "flow").utf8))
            sent += 1
            Thread.sleep(forTimeInterval: 0.001)
        }
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", Double(sent))
        let flowing = try fsyncCount(server.boundPort) - before
        #expect(flowing >= 5, "\(flowing) fdatasyncs for ~0.4 s of input with a 5 ms sync interval")

        // Quiet: one frame, then nothing: the loop itself must sync it.
        let quietBefore = try fsyncCount(server.boundPort)
        try push.send(Array(F.payment(sent, "flow").utf8))
        let deadline = ContinuousClock.now + .seconds(5)
        var quiet = 0.0
        repeat {
            Thread.sleep(forTimeInterval: 0.02)
            quiet = try fsyncCount(server.boundPort) - quietBefore
        } while quiet < 1 && ContinuousClock.now < deadline
        #expect(quiet >= 1, "a lone frame is synced within the interval once input stops")
        #expect(daemon.stats.withLock { $0.storageErrors } == 0)
    }
}
