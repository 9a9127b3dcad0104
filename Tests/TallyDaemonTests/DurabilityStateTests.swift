import Foundation
import Testing
@testable import TallyDaemon

// MARK: - Producer table

@Suite("Producer table")
struct DurabilityProducerTableTests {
    let p1 = Array("producer-1".utf8)
    let p2 = Array("producer-2".utf8)

    @Test("a new sequence is applied, the last one is answered again, an older one is reported as already applied")
    func resendSemantics() {
        var table = ProducerTable()
        #expect(table.check(producer: p1, sequence: 1) == .apply)
        table.record(producer: p1, sequence: 1, reply: Array("r1".utf8))
        table.record(producer: p1, sequence: 2, reply: Array("r2".utf8))
        #expect(table.check(producer: p1, sequence: 3) == .apply)
        #expect(table.check(producer: p1, sequence: 2) == .resend(reply: Array("r2".utf8)))
        #expect(table.check(producer: p1, sequence: 1) == .alreadyApplied(lastSequence: 2))
        #expect(table.check(producer: p2, sequence: 1) == .apply)
        table.record(producer: p1, sequence: 1, reply: Array("stale".utf8))
        #expect(table.lastSequence(of: p1) == 2, "records never move a producer backwards")
    }

    @Test("at capacity the least recently used producer is evicted, and recency follows use")
    func lruEviction() {
        var table = ProducerTable(capacity: 3)
        for (i, p) in ["a", "b", "c"].enumerated() { table.record(producer: Array(p.utf8), sequence: UInt64(i + 1), reply: []) }
        table.record(producer: Array("a".utf8), sequence: 10, reply: [])  // a becomes most recent
        table.record(producer: Array("d".utf8), sequence: 1, reply: [])   // evicts b
        #expect(table.count == 3)
        #expect(table.evictions == 1)
        #expect(table.lastSequence(of: Array("b".utf8)) == nil)
        #expect(table.entries.map { String(decoding: $0.producer, as: UTF8.self) } == ["c", "a", "d"])
    }

    @Test("serialization round-trips ids, sequences, replies and LRU order, and rejects damaged bytes")
    func serialization() throws {
        var table = ProducerTable(capacity: 10)
        for i in 0..<7 { table.record(producer: Array("p\(i)".utf8), sequence: UInt64(i * 3 + 1), reply: samplePayload(i)) }
        table.record(producer: Array("p2".utf8), sequence: 100, reply: [1, 2])
        let bytes = table.serialized()
        let back = try ProducerTable(deserializing: bytes[...], capacity: 10)
        #expect(back == table)
        #expect(throws: DurabilityError.self) { try ProducerTable(deserializing: bytes.dropLast(), capacity: 10) }
        var bad = bytes
        bad[0] ^= 1
        #expect(throws: DurabilityError.self) { try ProducerTable(deserializing: bad[...], capacity: 10) }
    }
}

// MARK: - Checkpoints

@Suite("Checkpoint store")
struct DurabilityCheckpointTests {
    @Test("a checkpoint round-trips its state, producers and seq, and only the newest two are kept")
    func roundTripAndPruning() throws {
        let dir = TempDirectory("ckpt")
        defer { dir.remove() }
        let store = try CheckpointStore(directory: dir.path)
        var producers = ProducerTable()
        producers.record(producer: [1, 2], sequence: 9, reply: Array("{\"accepted\":3}".utf8))
        var last: CheckpointWriteResult?
        for lsn in [10, 20, 30] as [LSN] {
            last = try store.write(lsn: lsn, engineState: samplePayload(Int(lsn)), producers: producers, snapshotSeq: lsn / 10)
        }
        #expect(last?.truncatableThrough == 20)
        #expect(try store.list().map(\.lsn) == [30, 20])
        let loaded = try store.loadNewest()
        #expect(loaded.rejected.isEmpty)
        let ckpt = try #require(loaded.checkpoint)
        #expect(ckpt.lsn == 30)
        #expect(ckpt.snapshotSeq == 3)
        #expect(ckpt.engineState == samplePayload(30))
        #expect(ckpt.producers == producers)
    }

    @Test("a newest checkpoint with a flipped byte or cut short is rejected with a reason and the older one loads")
    func fallbackToOlder() throws {
        for damage in ["flip-header", "flip-body", "truncate", "empty"] {
            let dir = TempDirectory("ckpt")
            defer { dir.remove() }
            let store = try CheckpointStore(directory: dir.path)
            try store.write(lsn: 5, engineState: [1, 2, 3], producers: ProducerTable(), snapshotSeq: 1)
            let newest = try store.write(lsn: 9, engineState: [UInt8](repeating: 4, count: 1000), producers: ProducerTable(), snapshotSeq: 2)
            var bytes = try readFile(newest.path)
            switch damage {
            case "flip-header": bytes[17] ^= 0x10
            case "flip-body": bytes[500] ^= 0x01
            case "truncate": bytes.removeLast(3)
            default: bytes = []
            }
            try writeFile(newest.path, bytes)
            let loaded = try store.loadNewest()
            #expect(loaded.checkpoint?.lsn == 5, "\(damage)")
            #expect(loaded.checkpoint?.engineState == [1, 2, 3])
            #expect(loaded.rejected.map(\.path) == [newest.path], "\(damage)")
        }
    }

    @Test("a temp file left by a crash during a checkpoint write is removed and ignored")
    func staleTempRemoved() throws {
        let dir = TempDirectory("ckpt")
        defer { dir.remove() }
        try writeFile(dir.file("checkpoint-00000000000000000042.bin.tmp"), [1, 2, 3])
        let store = try CheckpointStore(directory: dir.path)
        #expect(!FileManager.default.fileExists(atPath: dir.file("checkpoint-00000000000000000042.bin.tmp")))
        #expect(try store.loadNewest().checkpoint == nil)
    }
}

// MARK: - Snapshot sequence

@Suite("Snapshot sequence store")
struct DurabilitySequenceTests {
    @Test("seq never repeats across many simulated crashes and continues without a gap after a clean close")
    func neverRepeats() throws {
        let dir = TempDirectory("seq")
        defer { dir.remove() }
        var seen: [UInt64] = []
        for round in 0..<20 {
            let store = try SequenceStore(directory: dir.path, leaseSize: 3)
            for _ in 0..<(round % 5 + 1) { seen.append(try store.next()) }
            // dropped without close(): a kill -9
        }
        #expect(Set(seen).count == seen.count)
        #expect(seen == seen.sorted())
        let clean = try SequenceStore(directory: dir.path, leaseSize: 3)
        let a = try clean.next()
        #expect(a > seen.last!)
        try clean.close()
        let again = try SequenceStore(directory: dir.path, leaseSize: 3)
        #expect(try again.next() == a + 1)
    }

    @Test("a damaged lease file is refused instead of risking a repeated seq")
    func damagedLease() throws {
        let dir = TempDirectory("seq")
        defer { dir.remove() }
        _ = try SequenceStore(directory: dir.path)
        var bytes = try readFile(dir.file("seq.lease"))
        bytes[9] ^= 0xFF
        try writeFile(dir.file("seq.lease"), bytes)
        #expect(throws: DurabilityError.self) { try SequenceStore(directory: dir.path) }
    }
}

// MARK: - Recovery

/// A stand-in state machine with the daemon's replay rules: frames are counted, batches go through
/// the producer table. Its "checkpoint" is its sorted counts serialized.
struct CountingState: Equatable {
    var counts: [String: Int] = [:]
    var producers = ProducerTable()
    /// The last LSN applied (bookkeeping, not part of equality).
    var appliedThrough: LSN = 0

    static func == (a: CountingState, b: CountingState) -> Bool { a.counts == b.counts && a.producers == b.producers }

    mutating func apply(_ record: LogRecord) throws {
        switch try record.decoded() {
        case .frame(_, let payload):
            counts["frame", default: 0] += payload.count
        case .batch(let producer, let sequence, let payload):
            let id = Array(producer)
            guard producers.check(producer: id, sequence: sequence) == .apply else { return }
            counts[String(decoding: id, as: UTF8.self), default: 0] += payload.count
            producers.record(producer: id, sequence: sequence, reply: Array("ok \(sequence)".utf8))
        default:
            break
        }
    }

    func serialized() -> [UInt8] {
        Array(counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";").utf8)
    }

    static func restore(_ bytes: [UInt8], producers: ProducerTable) -> CountingState {
        var s = CountingState(producers: producers)
        for part in String(decoding: bytes, as: UTF8.self).split(separator: ";") {
            let kv = part.split(separator: "=")
            s.counts[String(kv[0])] = Int(kv[1])!
        }
        return s
    }
}

@Suite("Recovery")
struct DurabilityRecoveryTests {
    static func options() -> RecoveryOptions {
        var o = RecoveryOptions()
        o.log.maxSegmentSize = 2048
        o.seqLeaseSize = 100
        return o
    }

    /// Appends batches from three producers (with retries of the last sequence) and frames.
    static func workload(_ round: Int) -> [LogEntry] {
        var entries: [LogEntry] = []
        for p in 0..<3 {
            let seq = UInt64(round + 1)
            let batch = LogEntry.batch(producer: Array("p\(p)".utf8), sequence: seq, payload: samplePayload(round * 3 + p))
            entries.append(batch)
            if (round + p) % 4 == 0 { entries.append(batch) }  // a retry logged twice
        }
        entries.append(.frame(receivedAt: Int64(round), payload: samplePayload(round)))
        return entries
    }

    static func recover(_ dir: String) throws -> (DurableState, CountingState) {
        let state = try Recovery.open(stateDirectory: dir, options: options())
        var counting = state.checkpoint.map { CountingState.restore($0.engineState, producers: $0.producers) } ?? CountingState()
        try state.replay { try counting.apply($0) }
        counting.appliedThrough = state.log.lastLSN
        return (state, counting)
    }

    /// The same workload applied with no crash, no checkpoint: the reference result.
    static func reference(rounds: Int) throws -> CountingState {
        var s = CountingState()
        var lsn: LSN = 0
        for round in 0..<rounds {
            for e in workload(round) {
                lsn += 1
                var body: [UInt8] = []
                var kind = RecordKind.meta
                switch e {
                case .frame(let t, let p): kind = .frame; ByteCoding.append(UInt64(bitPattern: t), to: &body); body += p
                case .batch(let id, let seq, let p): kind = .batch; ByteCoding.append(seq, to: &body); ByteCoding.append(UInt16(id.count), to: &body); body += id + p
                case .meta(let b): body = b
                }
                try s.apply(LogRecord(lsn: lsn, kind: kind, body: body[...]))
            }
        }
        return s
    }

    @Test("state and producer table survive checkpoint + replay after a crash: every batch counted exactly once")
    func crashAfterCheckpoint() throws {
        let dir = TempDirectory("recovery")
        defer { dir.remove() }
        do {
            var (state, counting) = try Self.recover(dir.path)
            for round in 0..<30 {
                try state.log.append(Self.workload(round))
                try state.log.sync()
                try state.replayTail(into: &counting)
                if round == 12 || round == 20 {
                    try state.checkpoint(engineState: counting.serialized(), producers: counting.producers, snapshotSeq: UInt64(round))
                }
            }
            _ = state  // dropped without close(): a crash
        }
        let (state, counting) = try Self.recover(dir.path)
        #expect(state.checkpoint != nil)
        #expect(state.report.rejectedCheckpoints.isEmpty)
        #expect(counting == (try Self.reference(rounds: 30)))
        #expect(counting.producers.check(producer: Array("p1".utf8), sequence: 30) == .resend(reply: Array("ok 30".utf8)))
        #expect(counting.producers.check(producer: Array("p1".utf8), sequence: 3) == .alreadyApplied(lastSequence: 30))
        #expect(counting.producers.check(producer: Array("p1".utf8), sequence: 31) == .apply)
        #expect(state.report.firstSnapshotSeq > 20)
    }

    @Test("a corrupt newest checkpoint falls back to the older one plus the retained log, with the same result")
    func checkpointFallbackWithLog() throws {
        let dir = TempDirectory("recovery")
        defer { dir.remove() }
        var newestPath = ""
        do {
            var (state, counting) = try Self.recover(dir.path)
            for round in 0..<40 {
                try state.log.append(Self.workload(round))
                try state.log.sync()
                try state.replayTail(into: &counting)
                if round % 10 == 9 {
                    newestPath = try state.checkpoint(engineState: counting.serialized(), producers: counting.producers, snapshotSeq: 0).path
                }
            }
            #expect(state.log.firstLSN > 1, "covered segments were deleted")
            try state.close()
        }
        var bytes = try readFile(newestPath)
        bytes[bytes.count / 2] ^= 0x40
        try writeFile(newestPath, bytes)
        let (state, counting) = try Self.recover(dir.path)
        #expect(state.report.rejectedCheckpoints.map(\.path) == [newestPath])
        #expect(state.checkpoint.map { $0.lsn } ?? 0 < state.log.lastLSN)
        #expect(counting == (try Self.reference(rounds: 40)))
    }

    @Test("a torn log tail is cut during recovery and reported; the records before it are replayed")
    func tornTailThroughRecovery() throws {
        let dir = TempDirectory("recovery")
        defer { dir.remove() }
        do {
            let state = try Recovery.open(stateDirectory: dir.path, options: Self.options())
            try state.log.append([.meta([1]), .meta([2, 2]), .meta([3, 3, 3])])
            try state.log.sync()
        }
        let segment = try #require(try segmentFiles(dir.path).last)
        var bytes = try readFile(dir.file(segment))
        bytes.removeLast(2)
        try writeFile(dir.file(segment), bytes)
        let state = try Recovery.open(stateDirectory: dir.path, options: Self.options())
        #expect(state.report.tailRepair?.bytesTruncated == 10)
        #expect(state.report.recordsToReplay == 2)
        var seen: [LSN] = []
        try state.replay { seen.append($0.lsn) }
        #expect(seen == [1, 2])
    }

    @Test("a second opener of a state directory in use is refused")
    func directoryLock() throws {
        let dir = TempDirectory("recovery")
        defer { dir.remove() }
        let first = try Recovery.open(stateDirectory: dir.path)
        #expect(throws: DurabilityError.stateDirectoryLocked(path: dir.file("LOCK"))) {
            try Recovery.open(stateDirectory: dir.path)
        }
        try first.close()
        _ = try Recovery.open(stateDirectory: dir.path)
    }

    @Test("the state directory is 0700 and every file 0600, whatever the umask")
    func permissions() throws {
        let dir = TempDirectory("perm")
        defer { dir.remove() }
        let stateDir = dir.file("state")
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        let old = umask(0)
        defer { umask(old) }
        let state = try Recovery.open(stateDirectory: stateDir)
        try state.log.append([.meta([1])])
        try state.checkpoint(engineState: [1], producers: ProducerTable(), snapshotSeq: 1)
        _ = try state.sequences.next()
        #expect(fileMode(stateDir) == 0o700)
        let files = try FileManager.default.contentsOfDirectory(atPath: stateDir)
        #expect(files.contains { $0.hasPrefix("checkpoint-") } && files.contains { $0.hasPrefix("wal-") } && files.contains("seq.lease"))
        for name in files { #expect(fileMode(stateDir + "/" + name) == 0o600, "\(name)") }
        let fresh = dir.file("fresh/nested")
        _ = try CheckpointStore(directory: fresh)
        #expect(fileMode(fresh) == 0o700)
    }
}

extension DurableState {
    /// Applies the records appended since `counting` last saw the log (test helper mirroring the
    /// daemon, which applies what it just appended).
    func replayTail(into counting: inout CountingState) throws {
        let from = counting.appliedThrough
        var c = counting
        try log.replay(after: from) { try c.apply($0); c.appliedThrough = $0.lsn }
        counting = c
    }
}

