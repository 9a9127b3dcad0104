import Foundation
import Synchronization
import Testing
import ZeroMQ
@testable import TallyDaemon

// MARK: - Checkpoints written on the checkpoint thread

/// Checkpoints are captured on the engine thread and written on `tally-checkpoint`: these tests
/// hold a checkpoint in flight with ``DaemonHooks/checkpointWriting`` and look at ingest, the
/// log files and recovery meanwhile and afterwards.
@Suite("Daemon checkpoints written in the background")
struct DaemonBackgroundCheckpointTests {
    typealias F = DaemonFixture

    static func start(_ s: RunSettings, segmentSize: Int64? = nil, ready: (@Sendable () -> Void)? = nil,
                      hook: (@Sendable (UInt64) -> Void)?) throws -> Daemon {
        let core = try EngineCore(settings: s, logger: F.quietLogger())
        let daemon = try Daemon(settings: s, core: core, logger: F.quietLogger())
        daemon.hooks.checkpointWriting = hook
        daemon.hooks.ready = ready
        daemon.logSegmentSize = segmentSize
        try daemon.start()
        return daemon
    }

    static func files(_ dir: String, prefix: String, suffix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(prefix) && $0.hasSuffix(suffix) }.sorted()
    }

    static func walFiles(_ dir: String) -> [String] { files(dir, prefix: "wal-", suffix: ".log") }

    static func firstLSN(_ name: String, prefix: String) -> UInt64? { UInt64(name.dropFirst(prefix.count).prefix(20)) }

    /// Polls `condition` every 10 ms for up to `seconds`.
    static func eventually(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition()
    }

    @Test("ingest continues and frames are applied while a checkpoint is being written")
    func ingestContinuesDuringCheckpoint() throws {
        let dir = F.temporaryDirectory("bg-ingest")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .milliseconds(100)
        let gate = DaemonGate()
        let daemon = try Self.start(s, hook: { gate.pass($0) })
        defer {
            gate.open()
            F.stop(daemon)
        }
        try F.push(context, daemon.boundEndpoints.ingest[0], prefix: "a", range: 0..<300)
        _ = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 300)
        let lsn = try #require(gate.waitForArrival(), "a periodic checkpoint reaches the checkpoint thread")
        #expect(lsn > 0)

        // The checkpoint thread is held: the engine thread goes on ingesting and publishing.
        try F.push(context, daemon.boundEndpoints.ingest[0], prefix: "b", range: 0..<500)
        let snap = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 800)
        #expect(try F.value(snap, "dvc.online_payments") == 800, "frames after the capture are applied while the write waits")
        #expect(daemon.stats.withLock { $0.checkpoints } == 0, "nothing was written yet")
        #expect(F.checkpointFiles(dir).isEmpty)
        let published = daemon.stats.withLock { $0.snapshots }
        Thread.sleep(forTimeInterval: 0.2)
        #expect(daemon.stats.withLock { $0.snapshots } > published, "snapshots keep coming (20 ms interval)")

        gate.open()
        #expect(Self.eventually { daemon.stats.withLock { $0.checkpoints } >= 1 })
        #expect(daemon.stats.withLock { $0.lastCheckpointLSN } >= lsn)
        #expect(!F.checkpointFiles(dir).isEmpty)
        #expect(daemon.stats.withLock { $0.checkpointFailures } == 0)
    }

    @Test("the log is truncated only after the checkpoint behind it is durable")
    func truncatedOnlyAfterDurable() throws {
        let dir = F.temporaryDirectory("bg-trunc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .seconds(3600)
        s.checkpointBytes = 256 << 10
        let gate = DaemonGate()
        // 64 KiB segments: ~230 records of ~280 bytes each... here 50-event frames of ~14 KB.
        let daemon = try Self.start(s, segmentSize: 64 << 10, hook: { gate.pass($0) })
        defer {
            gate.open()
            F.stop(daemon)
        }
        try F.push(context, daemon.boundEndpoints.ingest[0], prefix: "t", range: 0..<2_000)
        _ = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 2_000)
        let lsn = try #require(gate.waitForArrival(), "the bytes mark (256 KiB) made a checkpoint due")
        let held = Self.walFiles(dir)
        #expect(held.count > 2, "several segments: \(held)")
        #expect(held.first.flatMap { Self.firstLSN($0, prefix: "wal-") } == 1, "the first segment is still there: \(held)")
        Thread.sleep(forTimeInterval: 0.2)
        #expect(Self.walFiles(dir).first == held.first, "nothing is deleted while the checkpoint is not durable")
        #expect(F.checkpointFiles(dir).isEmpty)

        gate.open()
        #expect(Self.eventually { daemon.stats.withLock { $0.checkpoints } >= 1 })
        #expect(Self.eventually { Self.walFiles(dir).first != held.first }, "then the segments behind it go: \(Self.walFiles(dir))")
        // What remains starts at or before the record after the oldest kept checkpoint.
        let kept = F.checkpointFiles(dir).compactMap { Self.firstLSN($0, prefix: "checkpoint-") }
        let oldestKept = try #require(kept.min())
        let remaining = Self.walFiles(dir).compactMap { Self.firstLSN($0, prefix: "wal-") }
        #expect(try #require(remaining.first) <= oldestKept + 1, "kept \(kept), segments \(remaining)")
        #expect(oldestKept >= lsn)
    }

    @Test("a failing background write keeps the whole log, and a restart recovers every event from it")
    func failingWriteKeepsLog() throws {
        let dir = F.temporaryDirectory("bg-fail")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .milliseconds(100)
        // Each checkpoint finds a directory where its temp file goes: open(2) fails with EISDIR,
        // a real failure of the real store.
        let obstacles = DaemonGate()
        obstacles.open()
        let daemon = try Self.start(s, segmentSize: 64 << 10) { lsn in
            let name = "checkpoint-" + String(repeating: "0", count: 20 - String(lsn).count) + String(lsn) + ".bin.tmp"
            try? FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: false)
            obstacles.pass(lsn)
        }
        try F.push(context, daemon.boundEndpoints.ingest[0], prefix: "f", range: 0..<1_500)
        _ = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 1_500)
        #expect(Self.eventually { daemon.stats.withLock { $0.checkpointFailures } >= 1 })
        F.stop(daemon)   // the final checkpoint fails the same way
        #expect(daemon.stats.withLock { $0.checkpoints } == 0)
        #expect(daemon.stats.withLock { $0.checkpointFailures } >= 2, "periodic and final failures are counted")
        #expect(F.checkpointFiles(dir).isEmpty)
        let wal = Self.walFiles(dir)
        #expect(wal.first.flatMap { Self.firstLSN($0, prefix: "wal-") } == 1, "the log is whole: \(wal)")
        #expect(wal.count > 2, "\(wal)")

        for name in Self.files(dir, prefix: "checkpoint-", suffix: ".tmp") { try FileManager.default.removeItem(atPath: dir + "/" + name) }
        let again = try F.start(s)
        defer { F.stop(again) }
        let report = try #require(again.recovery)
        #expect(report.checkpointLSN == 0, "\(report)")
        let snap = try F.ask(context, again.boundEndpoints.snapshotService)
        #expect(try F.value(snap, "dvc.online_payments") == 1_500)
        #expect(try F.value(snap, "dvc.online_payments_vnd") == 1_500 * 500)
    }

    @Test("a restart after a checkpoint written in the background restores the same snapshot")
    func restartRestoresSameSnapshot() throws {
        let dir = F.temporaryDirectory("bg-restart")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .milliseconds(100)
        let first = try F.start(s)
        try F.push(context, first.boundEndpoints.ingest[0], prefix: "r", range: 0..<700)
        _ = try F.waitFor(context, first.boundEndpoints.snapshotService, "dvc.online_payments", 700)
        // A periodic checkpoint covering everything: the LSN of the last record is reached.
        #expect(Self.eventually {
            first.stats.withLock { $0.checkpoints >= 1 && $0.lastCheckpointLSN >= UInt64($0.frames) }
        })
        let before = try #require(try F.object(F.ask(context, first.boundEndpoints.snapshotService))["indicators"] as? NSDictionary)
        F.stop(first)

        let second = try F.start(s)
        defer { F.stop(second) }
        let report = try #require(second.recovery)
        #expect(report.checkpointLSN > 0 && report.recordsToReplay == 0, "\(report)")
        let after = try #require(try F.object(F.ask(context, second.boundEndpoints.snapshotService))["indicators"] as? NSDictionary)
        #expect(after == before, "every indicator is back as it was")
        // The dedup index came back too: the same ids count zero more times.
        try F.push(context, second.boundEndpoints.ingest[0], prefix: "r", range: 0..<700)
        try F.push(context, second.boundEndpoints.ingest[0], prefix: "s", range: 0..<5)
        _ = try F.waitFor(context, second.boundEndpoints.snapshotService, "dvc.online_payments", 705)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try F.value(F.ask(context, second.boundEndpoints.snapshotService), "dvc.online_payments") == 705)
    }

    @Test("a reload waits for the checkpoint in flight, then replays the retained log and goes on")
    func reloadWaitsForCheckpoint() throws {
        let dir = F.temporaryDirectory("bg-reload")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .milliseconds(100)
        let gate = DaemonGate()
        let readies = Mutex(0)
        let daemon = try Self.start(s, ready: { readies.withLock { $0 += 1 } }, hook: { gate.pass($0) })
        defer {
            gate.open()
            F.stop(daemon)
        }
        try F.push(context, daemon.boundEndpoints.ingest[0], prefix: "h", range: 0..<200)
        _ = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 200)
        _ = try #require(gate.waitForArrival())
        #expect(readies.withLock { $0 } == 1)
        daemon.requestReload()
        Thread.sleep(forTimeInterval: 0.3)
        #expect(readies.withLock { $0 } == 1, "the reload has not run while the checkpoint is in flight")
        gate.open()
        #expect(Self.eventually { readies.withLock { $0 } == 2 }, "then it runs (READY=1 again)")
        #expect(daemon.stats.withLock { $0.checkpoints } >= 1)
        #expect(daemon.stats.withLock { $0.reloadFailures } == 0)
        try F.push(context, daemon.boundEndpoints.ingest[0], prefix: "i", range: 0..<10)
        let snap = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 210)
        #expect(try F.value(snap, "dvc.online_payments") == 210)
    }

    @Test("shutdown waits for the checkpoint in flight and still writes the final one")
    func shutdownWaitsForCheckpoint() throws {
        let dir = F.temporaryDirectory("bg-stop")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .milliseconds(100)
        let gate = DaemonGate()
        let daemon = try Self.start(s, hook: { gate.pass($0) })
        try F.push(context, daemon.boundEndpoints.ingest[0], prefix: "z", range: 0..<400)
        _ = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 400)
        _ = try #require(gate.waitForArrival())
        daemon.requestStop()
        Thread.sleep(forTimeInterval: 0.3)
        #expect(!daemon.stopped.isFired, "the engine thread waits for the checkpoint thread")
        gate.open()
        #expect(daemon.stopped.waitBlocking(timeout: .seconds(15)))
        #expect(daemon.stats.withLock { $0.checkpoints } == 2, "the one in flight and the final one")
        #expect(daemon.stats.withLock { $0.checkpointFailures } == 0)

        let again = try F.start(F.settings(stateDir: dir))
        defer { F.stop(again) }
        let report = try #require(again.recovery)
        #expect(report.checkpointLSN == daemon.stats.withLock { $0.lastCheckpointLSN }, "\(report)")
        #expect(report.recordsToReplay == 0, "\(report)")
        #expect(try F.value(F.ask(context, again.boundEndpoints.snapshotService), "dvc.online_payments") == 400)
    }
}
