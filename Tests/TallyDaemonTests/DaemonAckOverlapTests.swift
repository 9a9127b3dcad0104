import Foundation
import Synchronization
import Testing
import ZeroMQ
@testable import TallyDaemon

// MARK: - Acknowledged drains applied while their fdatasync runs

/// A drain with acknowledged batches is appended by the log thread, applied by the engine thread
/// while the log thread runs its `fdatasync`, and answered only after the sync succeeded. These
/// tests hold that sync with ``Daemon/beforeLogSync`` (or make it fail for real) and look at the
/// replies, the counts and the log meanwhile and afterwards.
@Suite("Acknowledged drains applied while their fdatasync runs")
struct DaemonAckOverlapTests {
    typealias F = DaemonFixture

    /// Makes the next group-commit `fdatasync` of a daemon's write-ahead log fail for real: on
    /// the log thread, right before the sync, the descriptor of the newest segment is replaced
    /// (`dup2`) by a pipe, so `fdatasync` fails with EINVAL and the log's own rollback (ftruncate)
    /// fails too and is left pending; ``repair()`` puts the file back, and the log's next append
    /// finishes the rollback (cutting the unsynced records) exactly as after a transient I/O error.
    final class SyncFault: @unchecked Sendable {
        let stateDir: String
        private let lock = NSLock()
        private var armed = false
        private var target: Int32 = -1
        private var saved: Int32 = -1
        private var pipeEnds: [Int32] = [-1, -1]
        private(set) var fired = 0

        init(stateDir: String) { self.stateDir = stateDir }

        func arm() { lock.withLock { armed = true } }

        /// The hook: breaks the segment once when armed.
        func beforeSync() {
            lock.lock()
            defer { lock.unlock() }
            guard armed, let fd = Self.newestSegmentDescriptor(in: stateDir) else { return }
            armed = false
            guard pipe(&pipeEnds) == 0 else { return }
            target = fd
            saved = dup(fd)
            _ = dup2(pipeEnds[1], fd)
            fired += 1
        }

        /// Puts the segment's file back under its descriptor (call with the log thread idle).
        func repair() {
            lock.lock()
            defer { lock.unlock() }
            guard saved >= 0 else { return }
            _ = dup2(saved, target)
            close(saved)
            close(pipeEnds[0])
            close(pipeEnds[1])
            saved = -1
        }

        /// The open descriptor of this process whose path is the newest `wal-*.log` of `dir`.
        static func newestSegmentDescriptor(in dir: String) -> Int32? {
            let real = URL(fileURLWithPath: dir).resolvingSymlinksInPath().path
            var best: (name: String, fd: Int32)?
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
                guard let fd = Int32(entry),
                      let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                      link.hasPrefix(real + "/wal-"), link.hasSuffix(".log") else { continue }
                if best == nil || link > best!.name { best = (link, fd) }
            }
            return best?.fd
        }
    }

    static func start(_ s: RunSettings, beforeLogSync: (@Sendable () -> Void)? = nil,
                      ready: (@Sendable () -> Void)? = nil) throws -> Daemon {
        let core = try EngineCore(settings: s, logger: F.quietLogger())
        let daemon = try Daemon(settings: s, core: core, logger: F.quietLogger())
        daemon.beforeLogSync = beforeLogSync
        daemon.hooks.ready = ready
        try daemon.start()
        return daemon
    }

    static func batch(_ tag: String, _ count: Int = 20) -> [UInt8] {
        Array("[\((0..<count).map { F.payment($0, tag) }.joined(separator: ","))]".utf8)
    }

    static func dealer(_ context: Context, _ endpoint: String?, timeout: Int32 = 5000) throws -> Socket {
        let d = try Socket(context, .dealer)
        try d.set(.receiveTimeout, timeout)
        try d.set(.linger, 0)
        try d.connect(try #require(endpoint))
        return d
    }

    /// Sends `[producer, sequence, payload]` without waiting.
    static func send(_ d: Socket, _ producer: String, _ sequence: Int, _ payload: [UInt8]) throws {
        try d.sendMultipart([[], Array(producer.utf8), Array(String(sequence).utf8), payload])
    }

    /// The next reply's status for `sequence` (nil on the socket's receive timeout).
    static func reply(_ d: Socket, _ sequence: Int) throws -> String? {
        guard let r = try d.receiveMultipart() else { return nil }
        #expect(r.filter { $0.count > 0 }.first?.string == String(sequence))
        return try #require(r.last).string
    }

    /// Polls `condition` every 5 ms for up to `seconds`.
    static func eventually(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return condition()
    }

    // MARK: - Replies wait for durability

    @Test("no reply goes out before the batch's fdatasync has finished, and the batch is applied while the sync runs")
    func replyWaitsForTheSync() throws {
        let dir = F.temporaryDirectory("ack-hold")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gate = DaemonGate()
        let daemon = try Self.start(F.settings(stateDir: dir), beforeLogSync: { gate.pass(0) })
        defer { gate.open(); F.stop(daemon) }
        let context = try Context()
        let d = try Self.dealer(context, daemon.boundEndpoints.ingestAck, timeout: 300)
        try Self.send(d, "hold-producer", 1, Self.batch("held"))

        #expect(gate.waitForArrival() != nil, "the log thread never reached the group-commit fdatasync")
        // The engine thread applies the drain while the log thread is held in front of its sync.
        #expect(Self.eventually { daemon.stats.withLock { $0.accepted } == 20 }, "the drain is applied during the sync")
        #expect(try Self.reply(d, 1) == nil, "a reply before the fdatasync finished")
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try Self.reply(d, 1) == nil, "a reply before the fdatasync finished")
        #expect(daemon.stats.withLock { $0.producers } == 0, "the producer table records the batch only once it is durable")

        gate.open()
        try d.set(.receiveTimeout, 5000)
        let status = try #require(try Self.reply(d, 1), "no reply after the sync")
        #expect(status.contains(#""accepted":20"#), "\(status)")
        #expect(!status.contains("error"), "\(status)")
        // The stats are updated just after the replies go out.
        #expect(Self.eventually { daemon.stats.withLock { $0.producers } == 1 })
    }

    // MARK: - A failing fdatasync after the overlapped apply

    @Test("an fdatasync that fails after the overlapped apply answers storage_unavailable, the re-send is logged and counts once, also when only the log is replayed")
    func failedSyncThenResend() throws {
        let dir = F.temporaryDirectory("ack-fail")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var s = F.settings(stateDir: dir)
        s.checkpointInterval = .seconds(3600)
        let fault = SyncFault(stateDir: dir)
        let daemon = try Self.start(s, beforeLogSync: { fault.beforeSync() })
        var stopped = false
        defer { if !stopped { F.stop(daemon) } }
        let context = try Context()
        let e = daemon.boundEndpoints
        let d = try Self.dealer(context, e.ingestAck)

        try Self.send(d, "fail-producer", 1, Self.batch("first"))
        #expect(try #require(try Self.reply(d, 1)).contains(#""accepted":20"#))

        fault.arm()
        try Self.send(d, "fail-producer", 2, Self.batch("second"))
        let failed = try #require(try Self.reply(d, 2))
        #expect(fault.fired == 1, "the fault never fired")
        #expect(failed.contains("storage_unavailable"), "\(failed)")
        #expect(failed.contains(#""retry":true"#), "\(failed)")
        #expect(failed.contains("after the batch was applied"), "\(failed)")
        #expect(daemon.stats.withLock { $0.appliedNotDurable } == 1)
        #expect(daemon.stats.withLock { $0.storageErrors } >= 1)
        // Applied in memory (the state is ahead of the log until the re-send is logged).
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 40)
        #expect(try F.value(F.ask(context, e.snapshotService), "dvc.online_payments") == 40)

        fault.repair()
        try Self.send(d, "fail-producer", 2, Self.batch("second"))
        let resent = try #require(try Self.reply(d, 2))
        #expect(!resent.contains("error"), "the failed batch is not in the producer table: its re-send is applied and logged: \(resent)")
        #expect(resent.contains(#""accepted":0"#) && resent.contains(#""duplicates":20"#),
                "dedup by source + id counts the re-sent events once: \(resent)")
        try Self.send(d, "fail-producer", 2, Self.batch("second"))
        #expect(try Self.reply(d, 2) == resent, "now durable: a re-send is answered from the producer table")
        try Self.send(d, "fail-producer", 3, Self.batch("third"))
        #expect(try #require(try Self.reply(d, 3)).contains(#""accepted":20"#))
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 60)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try F.value(F.ask(context, e.snapshotService), "dvc.online_payments") == 60)
        #expect(try F.value(F.ask(context, e.snapshotService), "dvc.online_payments_vnd") == 60 * 500)

        // The log alone (checkpoints removed) holds every batch once: the failed record was cut,
        // the re-send's record is what made "second" durable.
        F.stop(daemon)
        stopped = true
        for name in F.checkpointFiles(dir) { try FileManager.default.removeItem(atPath: dir + "/" + name) }
        let again = try Self.start(s)
        defer { F.stop(again) }
        #expect(again.stats.withLock { $0.recoveredRecords } >= 4)
        let snap = try F.ask(context, again.boundEndpoints.snapshotService)
        #expect(try F.value(snap, "dvc.online_payments") == 60)
        #expect(try F.value(snap, "dvc.online_payments_vnd") == 60 * 500)
    }

    // MARK: - Mixed drains

    @Test("fire-and-forget frames and acknowledged batches in the same drains count every event once and answer every batch")
    func mixedDrains() throws {
        let dir = F.temporaryDirectory("ack-mixed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = F.settings(stateDir: dir)
        let daemon = try Self.start(s)
        var stopped = false
        defer { if !stopped { F.stop(daemon) } }
        let context = try Context()
        let e = daemon.boundEndpoints
        let pushes = 2_000
        let pusher = Thread {
            try? F.push(context, e.ingest[0], prefix: "ff", range: 0..<pushes)
        }
        pusher.start()
        // Two producers, two batches in flight each, interleaved with the pushes.
        let producers = try (0..<2).map { _ in try Self.dealer(context, e.ingestAck) }
        var answered = 0
        for round in 0..<25 {
            for (k, d) in producers.enumerated() {
                try Self.send(d, "mixed-\(k)", round + 1, Self.batch("ack-\(k)-\(round)", 10))
            }
            for (_, d) in producers.enumerated() {
                let status = try #require(try Self.reply(d, round + 1))
                #expect(status.contains(#""accepted":10"#), "\(status)")
                answered += 1
            }
        }
        #expect(answered == 50)
        let total = Double(pushes + 50 * 10)
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", total)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try F.value(F.ask(context, e.snapshotService), "dvc.online_payments") == total)
        #expect(daemon.stats.withLock { $0.storageErrors } == 0)
        F.stop(daemon)
        stopped = true
        let again = try Self.start(s)
        defer { F.stop(again) }
        #expect(try F.value(F.ask(context, again.boundEndpoints.snapshotService), "dvc.online_payments") == total)
    }

    // MARK: - Shutdown and reload with a sync in flight

    @Test("a shutdown requested while an acknowledged drain's fdatasync is in flight answers the batch first and keeps it")
    func shutdownDuringSync() throws {
        let dir = F.temporaryDirectory("ack-stop")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = F.settings(stateDir: dir)
        let gate = DaemonGate()
        let daemon = try Self.start(s, beforeLogSync: { gate.pass(0) })
        let context = try Context()
        let d = try Self.dealer(context, daemon.boundEndpoints.ingestAck, timeout: 200)
        try Self.send(d, "stop-producer", 5, Self.batch("stopping"))
        #expect(gate.waitForArrival() != nil)
        daemon.requestStop()
        #expect(try Self.reply(d, 5) == nil, "a reply before the fdatasync finished")
        #expect(!daemon.stopped.waitBlocking(timeout: .milliseconds(100)), "the daemon stopped with a sync in flight")
        gate.open()
        try d.set(.receiveTimeout, 5000)
        let status = try #require(try Self.reply(d, 5), "the batch in flight was not answered")
        #expect(status.contains(#""accepted":20"#), "\(status)")
        #expect(daemon.stopped.waitBlocking(timeout: .seconds(15)))

        let again = try Self.start(s)
        defer { F.stop(again) }
        #expect(try F.value(F.ask(context, again.boundEndpoints.snapshotService), "dvc.online_payments") == 20)
        let d2 = try Self.dealer(context, again.boundEndpoints.ingestAck)
        try Self.send(d2, "stop-producer", 5, Self.batch("stopping"))
        #expect(try Self.reply(d2, 5) == status, "after the restart the batch is answered from the producer table")
    }

    @Test("a reload requested while an acknowledged drain's fdatasync is in flight runs after the batch is answered, which counts once")
    func reloadDuringSync() throws {
        let dir = F.temporaryDirectory("ack-reload")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gate = DaemonGate()
        let readies = Atomic<Int>(0)
        let daemon = try Self.start(F.settings(stateDir: dir), beforeLogSync: { gate.pass(0) },
                                    ready: { readies.add(1, ordering: .relaxed) })
        defer { gate.open(); F.stop(daemon) }
        let context = try Context()
        let e = daemon.boundEndpoints
        let d = try Self.dealer(context, e.ingestAck, timeout: 200)
        try Self.send(d, "reload-producer", 1, Self.batch("reloading"))
        #expect(gate.waitForArrival() != nil)
        daemon.requestReload()
        #expect(try Self.reply(d, 1) == nil, "a reply before the fdatasync finished")
        gate.open()
        try d.set(.receiveTimeout, 5000)
        #expect(try #require(try Self.reply(d, 1)).contains(#""accepted":20"#))
        #expect(Self.eventually { readies.load(ordering: .relaxed) >= 2 }, "the reload never finished")
        #expect(daemon.stats.withLock { $0.reloadFailures } == 0)
        try Self.send(d, "reload-producer", 2, Self.batch("after"))
        #expect(try #require(try Self.reply(d, 2)).contains(#""accepted":20"#))
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 40)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try F.value(F.ask(context, e.snapshotService), "dvc.online_payments") == 40)
    }
}

// MARK: - The log writer's overlapped job

@Suite("Log writer: append on the engine thread, fdatasync on the log thread")
struct LogWriterOverlapTests {
    @Test("appendHere logs the drain on the calling thread and keeps it readable while submitSync's fdatasync runs on the writer's thread")
    func appendHereThenSync() throws {
        let dir = WALTempDirectory("overlap-here")
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path)
        let gate = DaemonGate()
        let syncs = Atomic<Int>(0)
        let writer = LogWriter(log: log, beforeSync: { gate.pass(0); syncs.add(1, ordering: .relaxed) })
        writer.start()
        defer { writer.stop() }

        var batch = FrameBatch()
        let payload = Array(#"{"b":2}"#.utf8)
        payload.withUnsafeBytes { batch.appendFrame($0, origin: 0) }
        payload.withUnsafeBytes { batch.appendBatch($0, producer: Array("q".utf8), sequence: 3, ack: 0) }
        batch.needsSync = true
        #expect(writer.appendHere(&batch, receivedAt: 1) == nil)
        #expect(log.lastLSN == 3, "origin + frame + batch appended before any sync")
        writer.submitSync()
        #expect(gate.waitForArrival() != nil)
        #expect(writer.busy && syncs.load(ordering: .relaxed) == 0, "the sync is held")
        batch.buffer.withUnsafeBytes { raw in
            let f = batch.frames[1]
            #expect(Array(raw[f.offset..<(f.offset + f.count)]) == payload, "the batch stayed here, readable during the sync")
        }
        gate.open()
        let outcome = writer.waitSynced()
        #expect(outcome.error == nil && outcome.synced)
        #expect(!writer.busy)
        #expect(syncs.load(ordering: .relaxed) == 1)
        let entries = try walReplayAll(log).map { $0.1 }
        #expect(entries.count == 3)
        if case .batch(let p, let s, let body)? = entries.last {
            #expect(p == Array("q".utf8) && s == 3 && body == payload)
        } else {
            Issue.record("the last record is not the batch")
        }
        // The writer is reusable afterwards, for a plain job.
        batch.reset()
        payload.withUnsafeBytes { batch.appendFrame($0, origin: 0) }
        writer.submit(&batch, receivedAt: 2)
        var back = FrameBatch(placeholder: ())
        #expect(writer.wait(into: &back).error == nil)
        #expect(try walReplayAll(log).count == 4)
    }
}
