#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - LogWriter

/// The write-ahead log's own thread: appends (CRC + one `pwrite`) and, for acknowledged
/// batches, `fdatasync`s one drain while the engine thread applies the previous drain and
/// receives the next one.
///
/// Why: with the log on, the engine thread spent ~25% of its time in the log append (the
/// kernel's page-cache copy of every byte, and the CRC), while the second core idled
/// (perf: `swapper` ~40% of samples during `bench.py tally`). Two drains in flight keep the
/// rule "a frame is in the log before it is applied": the engine applies drain N only after
/// the writer has finished N (and synced it when acknowledged batches wait on it).
///
/// Ownership protocol (single producer, single consumer, at most one job): ``submit(_:)``
/// hands a batch to the writer; the engine thread does not touch it (nor the log, nor
/// ``loggedOrigin``) until ``wait()`` returns it. The two POSIX semaphores order the
/// accesses (release on post, acquire on wait).
final class LogWriter: @unchecked Sendable {
    /// What the writer did with one batch.
    struct Outcome {
        /// The append or sync failed: nothing of the batch is in the log (do not apply it).
        var error: DurabilityError?
        /// Whether the batch was synced (it had acknowledged payloads).
        var synced = false
        /// Time spent in `fdatasync`, nanoseconds (0 when not synced).
        var syncNanos: UInt64 = 0
    }

    let log: WriteAheadLog
    /// The origin the log's replay state machine holds (`nil` = unknown: write one first).
    /// Writer-owned while a job is in flight; the engine thread may reset it when idle.
    var loggedOrigin: [String]?? = .none
    /// A job is in flight (engine-thread view).
    private(set) var busy = false

    private var job: FrameBatch?
    private var receivedAt: Int64 = 0
    private var result = Outcome()
    private var stopping = false
    private let work: UnsafeMutablePointer<sem_t>
    private let done: UnsafeMutablePointer<sem_t>
    private var started = false

    init(log: WriteAheadLog) {
        self.log = log
        work = .allocate(capacity: 1)
        done = .allocate(capacity: 1)
        sem_init(work, 0, 0)
        sem_init(done, 0, 0)
    }

    deinit {
        sem_destroy(work)
        sem_destroy(done)
        work.deallocate()
        done.deallocate()
    }

    /// Starts the thread (once).
    func start() {
        started = true
        _ = spawnThread(name: "tally-wal") { [self] in run() }
    }

    /// Hands `batch` to the writer. Precondition: not ``busy``.
    func submit(_ batch: FrameBatch, receivedAt: Int64) {
        precondition(!busy, "LogWriter.submit with a job in flight")
        job = batch
        self.receivedAt = receivedAt
        busy = true
        sem_post(work)
    }

    /// Waits for the job in flight and takes its batch back with the result.
    func wait() -> (FrameBatch, Outcome) {
        precondition(busy, "LogWriter.wait without a job")
        while sem_wait(done) != 0 {}   // EINTR
        busy = false
        let b = job!
        job = nil
        return (b, result)
    }

    /// Stops the thread and waits until it has (the caller must `wait` for a job in flight first).
    func stop() {
        precondition(!busy, "LogWriter.stop with a job in flight")
        guard started else { return }
        started = false
        stopping = true
        sem_post(work)
        while sem_wait(done) != 0 {}
    }

    private func run() {
        while true {
            while sem_wait(work) != 0 {}
            if stopping {
                sem_post(done)
                return
            }
            var r = Outcome()
            if let b = job {
                r.error = Self.append(b, to: log, receivedAt: receivedAt, origin: &loggedOrigin)
                if r.error == nil, b.needsSync {
                    let t0 = Clocks.monotonicNanos()
                    do {
                        try log.sync()
                        r.synced = true
                        r.syncNanos = Clocks.monotonicNanos() - t0
                    } catch {
                        r.error = error
                        loggedOrigin = .none
                    }
                }
            }
            result = r
            sem_post(done)
        }
    }

    /// Appends every frame of `batch` with one write (a `meta` origin record first when the
    /// origin changes). - Returns: the error, nothing appended.
    /// - Complexity: O(batch bytes): one CRC pass and one copy into the log's buffer.
    static func append(_ batch: FrameBatch, to log: WriteAheadLog, receivedAt: Int64,
                       origin loggedOrigin: inout [String]??) -> DurabilityError? {
        var origin = loggedOrigin
        let frames = batch.frames
        let acks = batch.pendingAcks
        let restrictions = batch.restrictions
        let result = batch.buffer.withUnsafeBytes { raw -> DurabilityError? in
            do throws(DurabilityError) {
                try log.append { (b: inout AppendBatch) throws(DurabilityError) in
                    for f in frames {
                        let wanted: [String]? = f.restriction >= 0 ? restrictions[Int(f.restriction)] : nil
                        if origin == .none || origin! != wanted {
                            try b.meta(OriginRecord.encode(wanted))
                            origin = .some(wanted)
                        }
                        let payload = UnsafeRawBufferPointer(rebasing: raw[f.offset..<(f.offset + f.count)])
                        if f.ack >= 0 {
                            let p = acks[Int(f.ack)]
                            try p.producer.withUnsafeBytes { id in
                                Result { () throws(DurabilityError) in
                                    try b.batch(producer: id, sequence: p.sequence, payload: payload)
                                }
                            }.get()
                        } else {
                            try b.frame(receivedAt: receivedAt, payload: payload)
                        }
                    }
                }
                return nil
            } catch {
                return error
            }
        }
        loggedOrigin = result == nil ? origin : .none
        return result
    }
}
