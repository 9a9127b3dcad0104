#if canImport(Glibc)
import Glibc
#endif

// MARK: - CheckpointWriter

/// The checkpoint thread (`tally-checkpoint`): everything of a checkpoint after the capture,
/// off the engine thread, so a checkpoint pauses ingest only for the capture.
///
/// Why a thread: writing a checkpoint is O(state) of checksum and file write plus fsyncs, and
/// deleting the log segments behind it frees their page cache (`unlink` of 64 MiB segments
/// takes milliseconds each); on the engine thread that stalled ingest ~175 ms per 1 M tracked
/// keys. The engine thread keeps what must see the state at one log position (sync the log,
/// serialise the state) and the log's bookkeeping (the log is single-owner:
/// ``WriteAheadLog/detachSegments(through:)``); this thread does the rest.
///
/// One task at a time, owned by the engine thread like ``LogWriter``: ``submit(_:)`` a task,
/// then ``poll()`` each loop turn (never blocks) or ``wait()`` (reload, shutdown). A task is
/// either a checkpoint (finish the capture's bytes, then `CheckpointStore.write`: temp file →
/// write → fsync → rename → fsync the directory → prune to the newest two) or the deletion of
/// log segments already detached from the log (oldest first, stopping at the first failure,
/// then fsync the directory). So at most one checkpoint is in flight, and the log is truncated
/// only after the engine thread has seen the checkpoint durable.
final class CheckpointWriter: @unchecked Sendable {
    /// A captured checkpoint: the state as of log record `lsn` (every record ≤ `lsn` applied,
    /// none after, the log synced through it).
    struct Job: Sendable {
        var lsn: LSN
        var engineState: CapturedCheckpoint
        var producers: ProducerTable
        var snapshotSeq: UInt64
        /// When the capture began (monotonic ns): `tally_checkpoint_duration_seconds` runs from here.
        var began: UInt64
        /// How long the capture held the engine thread (ns), for the log line.
        var captureNanos: UInt64
        /// The part of it spent syncing the log (the fsync the 100 ms sync timer would otherwise
        /// have done a little later), ns.
        var syncNanos: UInt64
        /// How long returning free heap memory to the kernel took after the write
        /// (``MallocTuning/trimAfterCheckpoint()``), ns; 0 when not done. Set by this thread.
        var trimNanos: UInt64 = 0
    }

    enum Task: Sendable {
        case checkpoint(Job)
        /// Paths detached from the log (``WriteAheadLog/detachSegments(through:)``), oldest first.
        case removeSegments([String])
    }

    enum Outcome: Sendable {
        /// The checkpoint of `lsn` is durable (`result`), or failed and nothing changed on disk
        /// but a removed temp file.
        case checkpoint(Job, result: Result<CheckpointWriteResult, DurabilityError>)
        /// Segments deleted, and the error that stopped the deletion (the rest stay on disk).
        case segmentsRemoved(Int, error: DurabilityError?)
    }

    let store: CheckpointStore
    /// Runs on this thread before a checkpoint file is written, with its LSN: tests hold a
    /// checkpoint in flight here. May block.
    let beforeWrite: (@Sendable (LSN) -> Void)?
    /// A task submitted whose outcome the engine thread has not collected yet (engine thread).
    private(set) var busy = false

    private var task: Task?
    private var outcome: Outcome?
    private let handoff = HandoffThread()

    init(store: CheckpointStore, beforeWrite: (@Sendable (LSN) -> Void)? = nil) {
        self.store = store
        self.beforeWrite = beforeWrite
    }

    func start() {
        handoff.start(name: "tally-checkpoint") { [self] in runTask() }
    }

    // MARK: Engine thread

    /// Hands `task` to the thread. Only while not ``busy``.
    func submit(_ task: Task) {
        precondition(!busy, "CheckpointWriter.submit with a task in flight")
        precondition(handoff.started, "CheckpointWriter.submit before start")
        self.task = task
        busy = true
        handoff.post()
    }

    /// The outcome of the task in flight if it has finished; nil otherwise (or when idle).
    /// - Complexity: one `sem_trywait`: free to call every loop turn.
    func poll() -> Outcome? {
        guard busy, handoff.tryDone() else { return nil }
        return collect()
    }

    /// Blocks until the task in flight finishes and returns its outcome (nil when idle).
    func wait() -> Outcome? {
        guard busy else { return nil }
        handoff.waitDone()
        return collect()
    }

    private func collect() -> Outcome? {
        busy = false
        task = nil
        defer { outcome = nil }
        return outcome
    }

    /// Ends the thread (after the task in flight: collect it first).
    func stop() {
        precondition(!busy, "CheckpointWriter.stop with a task in flight")
        handoff.stop()
    }

    // MARK: Checkpoint thread

    /// Runs the submitted task and stores its outcome (one ``HandoffThread`` job).
    private func runTask() {
        switch task {
        case .checkpoint(let job)?:
            let result = write(job)
            var finished = job
            // The state's bytes (and a producer table the engine thread has since copied)
            // are freed here, not on the engine thread.
            finished.engineState = CapturedCheckpoint(bytes: [])
            finished.producers = ProducerTable(capacity: 1)
            finished.trimNanos = MallocTuning.trimAfterCheckpoint()
            outcome = .checkpoint(finished, result: result)
        case .removeSegments(let paths)?:
            outcome = Self.remove(paths, directory: store.directory)
        case nil:
            outcome = nil
        }
    }

    private func write(_ job: Job) -> Result<CheckpointWriteResult, DurabilityError> {
        beforeWrite?(job.lsn)
        do throws(DurabilityError) {
            return .success(try store.write(lsn: job.lsn, engineState: job.engineState, producers: job.producers, snapshotSeq: job.snapshotSeq))
        } catch {
            return .failure(error)
        }
    }

    /// Unlinks `paths` oldest first, stopping at the first failure (what is left stays a
    /// contiguous run of the log), then fsyncs the directory.
    static func remove(_ paths: [String], directory: String) -> Outcome {
        var removed = 0
        do throws(DurabilityError) {
            for path in paths {
                try FileIO.unlinkIfPresent(path)
                removed += 1
            }
            if removed > 0 { try FileIO.syncDirectory(directory) }
            return .segmentsRemoved(removed, error: nil)
        } catch {
            return .segmentsRemoved(removed, error: error)
        }
    }
}
