import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

// MARK: - Checkpoints at daemon level

@Suite("Daemon checkpoints: periodic, on shutdown, recovery from the newest valid one plus the log")
struct DaemonCheckpointTests {
    typealias F = DaemonFixture

    @Test("a restart recovers from the checkpoint written at shutdown and replays only the log after it")
    func restartFromCheckpoint() throws {
        let dir = F.temporaryDirectory("ckp")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .milliseconds(200)
        let first = try F.start(s)
        try F.push(context, first.boundEndpoints.ingest[0], prefix: "a", range: 0..<300)
        _ = try F.waitFor(context, first.boundEndpoints.snapshotService, "dvc.online_payments", 300)
        Thread.sleep(forTimeInterval: 0.4)   // at least one periodic checkpoint
        F.stop(first)
        #expect(!F.checkpointFiles(dir).isEmpty)

        let second = try F.start(s)
        defer { F.stop(second) }
        let report = try #require(second.recovery)
        #expect(report.checkpointLSN > 0, "\(report)")
        #expect(report.recordsToReplay == 0, "the shutdown checkpoint covers every record: \(report)")
        let snap = try F.ask(context, second.boundEndpoints.snapshotService)
        #expect(try F.value(snap, "dvc.online_payments") == 300)
        #expect(try F.value(snap, "dvc.online_payments_vnd") == 300 * 500)
        // Dedup state came back with the checkpoint: the same ids count zero more times.
        try F.push(context, second.boundEndpoints.ingest[0], prefix: "a", range: 0..<300)
        try F.push(context, second.boundEndpoints.ingest[0], prefix: "b", range: 0..<10)
        let after = try F.waitFor(context, second.boundEndpoints.snapshotService, "dvc.online_payments", 310)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try F.value(after, "dvc.online_payments") == 310)
        #expect(try F.value(F.ask(context, second.boundEndpoints.snapshotService), "dvc.online_payments") == 310)
    }

    @Test("checkpoints are also written by logged bytes, and only the newest two are kept")
    func checkpointByBytesTruncatesLog() throws {
        let dir = F.temporaryDirectory("ckp-bytes")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .seconds(3600)
        s.checkpointBytes = 1 << 20
        let daemon = try F.start(s)
        defer { F.stop(daemon) }
        // ~200 bytes per event: 24,000 events are ~4.8 MB, so three checkpoints or more.
        for round in 0..<8 {
            try F.push(context, daemon.boundEndpoints.ingest[0], prefix: "r\(round)", range: 0..<3_000)
            _ = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", Double((round + 1) * 3_000))
        }
        Thread.sleep(forTimeInterval: 0.1)
        let files = F.checkpointFiles(dir)
        #expect(files.count == 2, "the newest two are kept: \(files)")
        let lsns = files.compactMap { UInt64($0.dropFirst(11).prefix(20)) }
        #expect(lsns.count == 2 && lsns[0] > 100, "the older kept one is not the first (~60 records per MiB): \(files)")
    }

    @Test("a corrupt newest checkpoint falls back to the previous one plus the log, with the same figures")
    func corruptNewestCheckpointFallsBack() throws {
        let dir = F.temporaryDirectory("ckp-corrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try Context()
        let s = F.settings(stateDir: dir)
        // Two runs, each ending with a checkpoint: the second run's is the newest.
        for (run, prefix) in ["x", "y"].enumerated() {
            let d = try F.start(s)
            try F.push(context, d.boundEndpoints.ingest[0], prefix: prefix, range: 0..<200)
            _ = try F.waitFor(context, d.boundEndpoints.snapshotService, "dvc.online_payments", Double((run + 1) * 200))
            F.stop(d)
        }
        let files = F.checkpointFiles(dir)
        try #require(files.count == 2, "\(files)")
        let newest = URL(fileURLWithPath: dir).appendingPathComponent(files[1])
        var bytes = try Data(contentsOf: newest)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: newest)

        let d = try F.start(s)
        defer { F.stop(d) }
        let report = try #require(d.recovery)
        #expect(report.rejectedCheckpoints.count == 1, "\(report)")
        #expect(report.recordsToReplay > 0, "the older checkpoint needs the log after it: \(report)")
        let snap = try F.ask(context, d.boundEndpoints.snapshotService)
        #expect(try F.value(snap, "dvc.online_payments") == 400)
        #expect(try F.value(snap, "dvc.online_payments_vnd") == 400 * 500)
    }
}
