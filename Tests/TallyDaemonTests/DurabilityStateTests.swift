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

    @Test("a batch overtaken by a later one of the same producer is still applied when re-sent, once")
    func gapIsAppliedOnce() {
        var table = ProducerTable()
        table.record(producer: p1, sequence: 10, reply: Array("r10".utf8))
        // 11 was refused (rate_limited, storage_unavailable) or lost on a broken connection while
        // 12 and 13, in flight behind it, were made durable.
        table.record(producer: p1, sequence: 12, reply: Array("r12".utf8))
        table.record(producer: p1, sequence: 13, reply: Array("r13".utf8))
        #expect(table.check(producer: p1, sequence: 11) == .apply, "never durable: the re-send is new work")
        #expect(table.check(producer: p1, sequence: 12) == .alreadyApplied(lastSequence: 13))
        #expect(table.check(producer: p1, sequence: 10) == .alreadyApplied(lastSequence: 13))
        #expect(table.check(producer: p1, sequence: 9) == .apply, "below the window but never seen: a producer's first batches may arrive late too")
        table.record(producer: p1, sequence: 11, reply: Array("r11".utf8))
        #expect(table.check(producer: p1, sequence: 11) == .alreadyApplied(lastSequence: 13), "once durable, never applied again")
        #expect(table.check(producer: p1, sequence: 13) == .resend(reply: Array("r13".utf8)), "the newest reply stays the newest sequence's")
        #expect(table.window(of: p1)?.recent == [10, 11, 12, 13])
    }

    @Test("sequences that fall out of the window count as applied, so the window bounds memory")
    func windowIsBounded() {
        var table = ProducerTable()
        let n = UInt64(ProducerTable.windowLimit)
        for q in 1...(n + 5) where q != 3 { table.record(producer: p1, sequence: q * 2, reply: []) }
        let window = try! #require(table.window(of: p1))
        #expect(window.recent.count == ProducerTable.windowLimit)
        #expect(window.floor == window.recent.first! - 1, "the floor is just past the last sequence forgotten (sequences here are even)")
        #expect(table.check(producer: p1, sequence: 6) == .alreadyApplied(lastSequence: (n + 5) * 2), "a gap older than the window can no longer be told apart")
        #expect(table.check(producer: p1, sequence: window.recent[1] - 1) == .apply, "a gap inside the window is still new work")
        table.record(producer: p1, sequence: 1, reply: [])
        #expect(table.window(of: p1)!.recent.count == ProducerTable.windowLimit, "recording below the floor changes nothing")
    }

    @Test("a table written before windows reads back with every older sequence taken as applied")
    func versionOneTables() throws {
        var v1: [UInt8] = Array("TPRD".utf8)
        func u32(_ x: UInt32) { withUnsafeBytes(of: x.littleEndian) { v1.append(contentsOf: $0) } }
        func u64(_ x: UInt64) { withUnsafeBytes(of: x.littleEndian) { v1.append(contentsOf: $0) } }
        u32(1); u32(1)
        u32(UInt32(p1.count)); v1.append(contentsOf: p1); u64(50); u32(2); v1.append(contentsOf: [7, 8])
        let table = try ProducerTable(deserializing: v1[...])
        #expect(table.check(producer: p1, sequence: 50) == .resend(reply: [7, 8]))
        #expect(table.check(producer: p1, sequence: 49) == .alreadyApplied(lastSequence: 50))
        #expect(table.check(producer: p1, sequence: 51) == .apply)
        #expect(try ProducerTable(deserializing: table.serialized()[...]) == table)
    }

    @Test("serialization round-trips ids, sequences, replies and LRU order, and rejects damaged bytes")
    func serialization() throws {
        var table = ProducerTable(capacity: 10)
        for i in 0..<7 { table.record(producer: Array("p\(i)".utf8), sequence: UInt64(i * 3 + 1), reply: walSamplePayload(i)) }
        table.record(producer: Array("p2".utf8), sequence: 100, reply: [1, 2])
        table.record(producer: Array("p2".utf8), sequence: 98, reply: [3])   // a gap filled: part of the window
        for q in 200..<230 { table.record(producer: Array("p5".utf8), sequence: UInt64(q), reply: []) }   // a full window and a floor
        let bytes = table.serialized()
        let back = try ProducerTable(deserializing: bytes[...], capacity: 10)
        #expect(back == table)
        #expect(back.window(of: Array("p2".utf8))?.recent == [7, 98, 100])
        #expect(back.check(producer: Array("p5".utf8), sequence: 205) == .alreadyApplied(lastSequence: 229))
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
        let dir = WALTempDirectory("ckpt")
        defer { dir.remove() }
        let store = try CheckpointStore(directory: dir.path)
        var producers = ProducerTable()
        producers.record(producer: [1, 2], sequence: 9, reply: Array("{\"accepted\":3}".utf8))
        var last: CheckpointWriteResult?
        for lsn in [10, 20, 30] as [LSN] {
            last = try store.write(lsn: lsn, engineState: walSamplePayload(Int(lsn)), producers: producers, snapshotSeq: lsn / 10)
        }
        #expect(last?.truncatableThrough == 20)
        #expect(try store.list().map(\.lsn) == [30, 20])
        let loaded = try store.loadNewest()
        #expect(loaded.rejected.isEmpty)
        let ckpt = try #require(loaded.checkpoint)
        #expect(ckpt.lsn == 30)
        #expect(ckpt.snapshotSeq == 3)
        #expect(ckpt.engineState == walSamplePayload(30))
        #expect(ckpt.producers == producers)
    }

    @Test("a state handed over in pieces writes the same file as the same bytes handed over whole; a short one is refused")
    func piecesWriteTheSameFile() throws {
        let a = WALTempDirectory("ckpt-whole"), b = WALTempDirectory("ckpt-pieces")
        defer { a.remove(); b.remove() }
        let size = CheckpointStore.writePiece * 5 / 2 + 7
        let state = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 9) }
        var producers = ProducerTable()
        producers.record(producer: [3], sequence: 8, reply: Array("{}".utf8))
        let whole = try CheckpointStore(directory: a.path).write(lsn: 7, engineState: state, producers: producers, snapshotSeq: 2)
        // Pieces of odd sizes, across the store's MiB pieces.
        let pieces = CapturedCheckpoint(byteCount: size) { sink in
            try state.withUnsafeBytes { all in
                var at = 0, n = 1
                while at < size {
                    let end = min(size, at + n)
                    try sink(UnsafeRawBufferPointer(rebasing: all[at..<end]))
                    at = end
                    n = n * 3 + 1
                }
            }
        }
        let piecewise = try CheckpointStore(directory: b.path).write(lsn: 7, engineState: pieces, producers: producers, snapshotSeq: 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: whole.path)) == Data(contentsOf: URL(fileURLWithPath: piecewise.path)))
        #expect(try CheckpointStore(directory: b.path).loadNewest().checkpoint?.engineState == state)
        // A capture that delivers fewer bytes than it announced leaves no checkpoint.
        let short = CapturedCheckpoint(byteCount: 10) { sink in try [UInt8](repeating: 1, count: 9).withUnsafeBytes(sink) }
        #expect(throws: DurabilityError.self) { try CheckpointStore(directory: b.path).write(lsn: 9, engineState: short, producers: producers, snapshotSeq: 3) }
        #expect(try CheckpointStore(directory: b.path).list().map(\.lsn) == [7])
    }

    @Test("a checkpoint several write pieces long (written a MiB at a time) reads back byte for byte")
    func multiPieceCheckpoint() throws {
        let dir = WALTempDirectory("ckpt")
        defer { dir.remove() }
        let store = try CheckpointStore(directory: dir.path)
        // 3.5 pieces plus a few bytes, with a pattern that shows any misplaced piece.
        let size = CheckpointStore.writePiece * 7 / 2 + 13
        let state = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        var producers = ProducerTable()
        producers.record(producer: [7], sequence: 3, reply: Array("{}".utf8))
        try store.write(lsn: 42, engineState: state, producers: producers, snapshotSeq: 4)
        let ckpt = try #require(try store.loadNewest().checkpoint)
        #expect(ckpt.engineState.count == size)
        #expect(ckpt.engineState == state)
        #expect(ckpt.producers == producers)
        #expect(ckpt.lsn == 42 && ckpt.snapshotSeq == 4)
    }

    @Test("a newest checkpoint with a flipped byte or cut short is rejected with a reason and the older one loads")
    func fallbackToOlder() throws {
        for damage in ["flip-header", "flip-body", "truncate", "empty"] {
            let dir = WALTempDirectory("ckpt")
            defer { dir.remove() }
            let store = try CheckpointStore(directory: dir.path)
            try store.write(lsn: 5, engineState: [1, 2, 3], producers: ProducerTable(), snapshotSeq: 1)
            let newest = try store.write(lsn: 9, engineState: [UInt8](repeating: 4, count: 1000), producers: ProducerTable(), snapshotSeq: 2)
            var bytes = try walReadFile(newest.path)
            switch damage {
            case "flip-header": bytes[17] ^= 0x10
            case "flip-body": bytes[500] ^= 0x01
            case "truncate": bytes.removeLast(3)
            default: bytes = []
            }
            try walWriteFile(newest.path, bytes)
            let loaded = try store.loadNewest()
            #expect(loaded.checkpoint?.lsn == 5, "\(damage)")
            #expect(loaded.checkpoint?.engineState == [1, 2, 3])
            #expect(loaded.rejected.map(\.path) == [newest.path], "\(damage)")
        }
    }

    @Test("a temp file left by a crash during a checkpoint write is removed and ignored")
    func staleTempRemoved() throws {
        let dir = WALTempDirectory("ckpt")
        defer { dir.remove() }
        try walWriteFile(dir.file("checkpoint-00000000000000000042.bin.tmp"), [1, 2, 3])
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
        let dir = WALTempDirectory("seq")
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
        let dir = WALTempDirectory("seq")
        defer { dir.remove() }
        _ = try SequenceStore(directory: dir.path)
        var bytes = try walReadFile(dir.file("seq.lease"))
        bytes[9] ^= 0xFF
        try walWriteFile(dir.file("seq.lease"), bytes)
        #expect(throws: DurabilityError.self) { try SequenceStore(directory: dir.path) }
    }
}

// MARK: - Recovery

/// A stand-in state machine with the daemon's replay rules: frames are counted, batches go through
/// the producer table. Its "checkpoint" is its sorted counts serialized.
struct WALCountingState: Equatable {
    var counts: [String: Int] = [:]
    var producers = ProducerTable()
    /// The last LSN applied (bookkeeping, not part of equality).
    var appliedThrough: LSN = 0

    static func == (a: WALCountingState, b: WALCountingState) -> Bool { a.counts == b.counts && a.producers == b.producers }

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

    static func restore(_ bytes: [UInt8], producers: ProducerTable) -> WALCountingState {
        var s = WALCountingState(producers: producers)
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
            let batch = LogEntry.batch(producer: Array("p\(p)".utf8), sequence: seq, payload: walSamplePayload(round * 3 + p))
            entries.append(batch)
            if (round + p) % 4 == 0 { entries.append(batch) }  // a retry logged twice
        }
        entries.append(.frame(receivedAt: Int64(round), payload: walSamplePayload(round)))
        return entries
    }

    static func recover(_ dir: String) throws -> (DurableState, WALCountingState) {
        let state = try Recovery.open(stateDirectory: dir, options: options())
        var counting = state.checkpoint.map { WALCountingState.restore($0.engineState, producers: $0.producers) } ?? WALCountingState()
        try state.replay { try counting.apply($0) }
        counting.appliedThrough = state.log.lastLSN
        return (state, counting)
    }

    /// The same workload applied with no crash, no checkpoint: the reference result.
    static func reference(rounds: Int) throws -> WALCountingState {
        var s = WALCountingState()
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
        let dir = WALTempDirectory("recovery")
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
        let dir = WALTempDirectory("recovery")
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
        var bytes = try walReadFile(newestPath)
        bytes[bytes.count / 2] ^= 0x40
        try walWriteFile(newestPath, bytes)
        let (state, counting) = try Self.recover(dir.path)
        #expect(state.report.rejectedCheckpoints.map(\.path) == [newestPath])
        #expect(state.checkpoint.map { $0.lsn } ?? 0 < state.log.lastLSN)
        #expect(counting == (try Self.reference(rounds: 40)))
    }

    @Test("a torn log tail is cut during recovery and reported; the records before it are replayed")
    func tornTailThroughRecovery() throws {
        let dir = WALTempDirectory("recovery")
        defer { dir.remove() }
        var end: Int64 = 0
        do {
            let state = try Recovery.open(stateDirectory: dir.path, options: Self.options())
            try state.log.append([.meta([1]), .meta([2, 2]), .meta([3, 3, 3])])
            try state.log.sync()
            end = state.log.activeSize
        }
        let segment = try #require(try walSegmentFiles(dir.path).last)
        // The records without the zeros a direct write pads them with, less 2 bytes.
        var bytes = Array(try walReadFile(dir.file(segment)).prefix(Int(end)))
        bytes.removeLast(2)
        try walWriteFile(dir.file(segment), bytes)
        let state = try Recovery.open(stateDirectory: dir.path, options: Self.options())
        #expect(state.report.tailRepair?.bytesTruncated == 10)
        #expect(state.report.recordsToReplay == 2)
        var seen: [LSN] = []
        try state.replay { seen.append($0.lsn) }
        #expect(seen == [1, 2])
    }

    @Test("a second opener of a state directory in use is refused")
    func directoryLock() throws {
        let dir = WALTempDirectory("recovery")
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
        let dir = WALTempDirectory("perm")
        defer { dir.remove() }
        let stateDir = dir.file("state")
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        let old = umask(0)
        defer { umask(old) }
        let state = try Recovery.open(stateDirectory: stateDir)
        try state.log.append([.meta([1])])
        try state.checkpoint(engineState: [1], producers: ProducerTable(), snapshotSeq: 1)
        _ = try state.sequences.next()
        #expect(walFileMode(stateDir) == 0o700)
        let files = try FileManager.default.contentsOfDirectory(atPath: stateDir)
        #expect(files.contains { $0.hasPrefix("checkpoint-") } && files.contains { $0.hasPrefix("wal-") } && files.contains("seq.lease"))
        for name in files { #expect(walFileMode(stateDir + "/" + name) == 0o600, "\(name)") }
        let fresh = dir.file("fresh/nested")
        _ = try CheckpointStore(directory: fresh)
        #expect(walFileMode(fresh) == 0o700)
    }
}

extension DurableState {
    /// Applies the records appended since `counting` last saw the log (test helper mirroring the
    /// daemon, which applies what it just appended).
    func replayTail(into counting: inout WALCountingState) throws {
        let from = counting.appliedThrough
        var c = counting
        try log.replay(after: from) { try c.apply($0); c.appliedThrough = $0.lsn }
        counting = c
    }
}

