#if canImport(Glibc)
import Glibc
#endif

// MARK: - RecoveryReport

/// What recovery found: for the startup log line and the metrics.
public struct RecoveryReport: Sendable, Equatable, CustomStringConvertible {
    /// The torn or corrupt tail cut from the newest log segment, if any.
    public var tailRepair: TailRepair?
    /// Checkpoints that failed verification (newest first) before one loaded.
    public var rejectedCheckpoints: [RejectedCheckpoint]
    /// LSN of the loaded checkpoint (0 when starting without one).
    public var checkpointLSN: LSN
    /// Records in the log after the checkpoint, to be replayed.
    public var recordsToReplay: UInt64
    /// The first snapshot seq this run will publish.
    public var firstSnapshotSeq: UInt64

    public var description: String {
        var parts = ["checkpoint at LSN \(checkpointLSN)", "\(recordsToReplay) record(s) to replay", "next snapshot seq \(firstSnapshotSeq)"]
        for r in rejectedCheckpoints { parts.append("rejected checkpoint \(r)") }
        if let t = tailRepair { parts.append("log tail: \(t)") }
        return parts.joined(separator: "; ")
    }
}

// MARK: - RecoveryOptions

public struct RecoveryOptions: Sendable {
    public var log = WriteAheadLog.Options()
    /// Producers tracked for idempotent acknowledged ingest (LRU beyond it).
    public var producerCapacity = 100_000
    /// Snapshot seqs leased per fsync of `seq.lease`.
    public var seqLeaseSize: UInt64 = 10_000
    public init() {}
}

// MARK: - DurableState

/// Everything durable the daemon owns, opened and recovered from one state directory:
/// `LOCK` (flock held while open), `wal-*.log`, `checkpoint-*.bin`, `seq.lease`.
///
/// Usage on the engine thread:
/// ```swift
/// let state = try Recovery.open(stateDirectory: dir)
/// log(state.report)
/// let engine = state.checkpoint.map { Engine.restore(..., from: $0.engineState) } ?? Engine(...)
/// var producers = state.producers
/// try state.replay { record in ... apply frames; for batches: producers.check / engine.ingest / producers.record }
/// // loop: state.log.append { ... }; state.log.sync(); apply; answer
/// // periodically, with every appended record applied:
/// try state.checkpoint(engineState: engine.checkpoint(), producers: producers, snapshotSeq: lastSeq)
/// ```
public final class DurableState {
    public let directory: String
    public let log: WriteAheadLog
    public let checkpoints: CheckpointStore
    public let sequences: SequenceStore
    /// The checkpoint recovery started from (nil on a fresh or checkpoint-less directory).
    public let checkpoint: Checkpoint?
    /// The producer table as of the checkpoint; replay of `batch` records brings it forward.
    public let producers: ProducerTable
    public let report: RecoveryReport
    private var lockFD: Int32

    init(directory: String, log: WriteAheadLog, checkpoints: CheckpointStore, sequences: SequenceStore,
         checkpoint: Checkpoint?, producers: ProducerTable, report: RecoveryReport, lockFD: Int32) {
        self.directory = directory
        self.log = log
        self.checkpoints = checkpoints
        self.sequences = sequences
        self.checkpoint = checkpoint
        self.producers = producers
        self.report = report
        self.lockFD = lockFD
    }

    deinit {
        if lockFD >= 0 { Glibc.close(lockFD) }
    }

    /// Streams the records after the checkpoint, in the exact order they were appended.
    /// - Returns: the number of records delivered.
    /// - Throws: `corruptLog` at a corrupt record before the newest segment's tail (records
    ///   before it were delivered); whatever `body` throws.
    /// - Complexity: O(log bytes after the checkpoint); memory O(read buffer).
    @discardableResult
    public func replay(_ body: (LogRecord) throws -> Void) throws -> UInt64 {
        var delivered: UInt64 = 0
        try log.replay(after: checkpoint?.lsn ?? 0) { record in
            try body(record)
            delivered += 1
        }
        return delivered
    }

    /// Syncs the log, writes a checkpoint at its last LSN, then deletes the segments covered by
    /// the oldest kept checkpoint.
    ///
    /// Call it only when every appended record has been applied to the engine (and nothing after),
    /// e.g. at the end of an ingest-loop iteration, so the state matches the LSN.
    /// - Complexity: O(state size) + one fdatasync + two fsyncs + unlinks.
    @discardableResult
    public func checkpoint(engineState: [UInt8], producers: ProducerTable, snapshotSeq: UInt64) throws(DurabilityError) -> CheckpointWriteResult {
        try log.sync()
        let result = try checkpoints.write(lsn: log.lastLSN, engineState: engineState, producers: producers, snapshotSeq: snapshotSeq)
        try log.truncate(through: result.truncatableThrough)
        return result
    }

    /// Clean shutdown: syncs and closes the log, shrinks the seq lease, releases the lock.
    public func close() throws(DurabilityError) {
        try log.close()
        try sequences.close()
        if lockFD >= 0 {
            Glibc.close(lockFD)
            lockFD = -1
        }
    }
}

// MARK: - Recovery

public enum Recovery {
    /// Opens the state directory (created 0700), locks it, loads the newest valid checkpoint
    /// (falling back to the older one), opens the log (cutting a torn tail) and the seq lease.
    /// - Throws: `stateDirectoryLocked` when another process has it open; `corruptLog` when the
    ///   log no longer holds the records after the only valid checkpoint; I/O errors.
    /// - Complexity: O(checkpoint size + newest segment size); replay is separate.
    public static func open(stateDirectory: String, options: RecoveryOptions = RecoveryOptions()) throws(DurabilityError) -> DurableState {
        try FileIO.makeDirectory(stateDirectory, mode: 0o700)
        let lockFD = try FileIO.lockFile(FileIO.join(stateDirectory, "LOCK"))
        do throws(DurabilityError) {
            let store = try CheckpointStore(directory: stateDirectory, producerCapacity: options.producerCapacity)
            let loaded = try store.loadNewest()
            let checkpointLSN = loaded.checkpoint?.lsn ?? 0
            let log = try WriteAheadLog(directory: stateDirectory, options: options.log, minimumNextLSN: checkpointLSN + 1)
            if log.lastLSN > checkpointLSN, log.firstLSN > checkpointLSN + 1 {
                throw DurabilityError.corruptLog(segment: stateDirectory, offset: 0,
                    reason: "the log starts at LSN \(log.firstLSN) but the checkpoint covers only through \(checkpointLSN): records \(checkpointLSN + 1)..<\(log.firstLSN) are missing")
            }
            let sequences = try SequenceStore(directory: stateDirectory, leaseSize: options.seqLeaseSize,
                                              atLeast: (loaded.checkpoint?.snapshotSeq ?? 0) + 1)
            let report = RecoveryReport(
                tailRepair: log.tailRepair, rejectedCheckpoints: loaded.rejected, checkpointLSN: checkpointLSN,
                recordsToReplay: log.lastLSN > checkpointLSN ? log.lastLSN - checkpointLSN : 0,
                firstSnapshotSeq: sequences.upcoming)
            return DurableState(directory: stateDirectory, log: log, checkpoints: store, sequences: sequences,
                                checkpoint: loaded.checkpoint,
                                producers: loaded.checkpoint?.producers ?? ProducerTable(capacity: options.producerCapacity),
                                report: report, lockFD: lockFD)
        } catch {
            Glibc.close(lockFD)
            throw error
        }
    }
}
