#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - LogWriter

/// The write-ahead log's own thread: appends (CRC in place + one `pwritev`) and, for acknowledged
/// batches, `fdatasync`s one drain while the engine thread applies the previous drain and
/// receives the next one.
///
/// Why: with the log on, the engine thread spent ~25% of its time in the log append (the
/// kernel's page-cache copy of every byte, and the CRC), while the second core idled
/// (perf: `swapper` ~40% of samples during `bench.py tally`). Two drains in flight keep the
/// rule "a frame is in the log before it is applied": the engine applies drain N only after
/// the writer has finished N (and synced it when acknowledged batches wait on it).
///
/// Ownership protocol (single producer, single consumer, at most one job):
/// ``submit(_:receivedAt:)`` swaps a batch into the writer; the engine thread does
/// not touch it (nor the log, nor ``loggedOrigin``) until ``wait(into:)`` swaps it back. Swaps,
/// not copies: the writer stamps headers into the batch's buffer, which must not be shared.
/// The POSIX semaphores order the accesses (release on post, acquire on wait).
///
/// Acknowledged drains overlap their apply with the `fdatasync`: the engine thread appends the
/// drain itself with the writer idle (``appendHere(_:receivedAt:)``: no thread hand-off on the
/// round trip's critical path, and every frame is still in the log before it is applied), hands
/// only the `fdatasync` to this thread (``submitSync()``), applies the drain meanwhile, and
/// answers a producer only after ``waitSynced()`` reported success: a reply is never sent
/// before its record is durable. Per group of acknowledged batches that hides the `fdatasync`
/// (~0.12 ms on a quiet disk) behind the engine's work (~0.08 ms per 100-event batch) instead of
/// adding them up. (Appending on this thread and handing the batch back was tried first: two more
/// thread wake-ups per round trip, slower in most alternated runs; PERFORMANCE.md round 7.)
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

    /// The batch in the writer's hands (a storage-less placeholder when idle): exchanged with
    /// `swap` so its buffer is never shared, which would make the in-place stamping copy it.
    private var job = FrameBatch(placeholder: ())
    /// Reused scratch of ``append(_:to:receivedAt:origin:)``.
    private var scratch = Scratch()
    private var receivedAt: Int64 = 0
    private var result = Outcome()
    /// The job in flight is only an `fdatasync` (``submitSync()``).
    private var syncOnly = false
    private let handoff = HandoffThread()
    /// Runs on the log thread right before each `fdatasync` it makes (tests: hold a sync in
    /// flight, or make it fail). Set before ``start()``.
    let beforeSync: (@Sendable () -> Void)?

    init(log: WriteAheadLog, beforeSync: (@Sendable () -> Void)? = nil) {
        self.log = log
        self.beforeSync = beforeSync
    }

    /// Starts the thread (once).
    func start() {
        handoff.start(name: "tally-wal") { [self] in runJob() }
    }

    /// Hands `batch` to the writer, leaving a storage-less placeholder in its place (assign the
    /// next receive buffer to it). Precondition: not ``busy``.
    func submit(_ batch: inout FrameBatch, receivedAt: Int64) {
        precondition(!busy, "LogWriter.submit with a job in flight")
        swap(&job, &batch)
        self.receivedAt = receivedAt
        syncOnly = false
        busy = true
        handoff.post()
    }

    /// Waits for the job in flight and swaps its batch into `batch` (whose old value the writer
    /// keeps as its placeholder: pass a placeholder or a batch you are done with).
    func wait(into batch: inout FrameBatch) -> Outcome {
        precondition(busy && !syncOnly, "LogWriter.wait without a batch job")
        handoff.waitDone()
        busy = false
        swap(&job, &batch)
        job = FrameBatch(placeholder: ())
        return result
    }

    /// Waits for the `fdatasync` handed over by ``submitSync()``. Only after an outcome without
    /// error are the records appended before it durable (and may their producers be answered).
    func waitSynced() -> Outcome {
        precondition(busy && syncOnly, "LogWriter.waitSynced without submitSync")
        handoff.waitDone()
        busy = false
        syncOnly = false
        return result
    }

    /// Appends `batch` on the calling thread (the engine's), with the writer idle: the same
    /// in-place append the writer's thread does, so the batch stays here for the apply.
    /// - Returns: the error (nothing of the batch is in the log).
    /// - Complexity: O(batch bytes): one CRC pass and the direct write (waiting for the device),
    ///   or the kernel's page-cache copy where the log does not write directly
    ///   (``WriteAheadLog/Options/directForSyncedAppends``).
    func appendHere(_ batch: inout FrameBatch, receivedAt: Int64) -> DurabilityError? {
        precondition(!busy, "LogWriter.appendHere with a job in flight")
        if batch.frames.isEmpty { return nil }
        // Acknowledged batches: written with O_DIRECT (or through the cache, for the fdatasync
        // that follows to write: no writeback to start here).
        return Self.append(&batch, to: log, receivedAt: receivedAt, origin: &loggedOrigin, scratch: &scratch, syncFollows: true)
    }

    /// Hands the writer one `fdatasync` of everything appended (after ``appendHere(_:receivedAt:)``);
    /// collect it with ``waitSynced()``. The engine thread must not touch the
    /// log (nor ``loggedOrigin``) until then.
    func submitSync() {
        precondition(!busy, "LogWriter.submitSync with a job in flight")
        syncOnly = true
        busy = true
        handoff.post()
    }

    /// Stops the thread and waits until it has (the caller must `wait` for a job in flight first).
    func stop() {
        precondition(!busy, "LogWriter.stop with a job in flight")
        handoff.stop()
    }

    /// Appends and/or syncs the job in flight and stores its outcome (one ``HandoffThread`` job).
    private func runJob() {
        var r = Outcome()
        let needsSync = job.needsSync || syncOnly
        if !syncOnly, !job.frames.isEmpty || needsSync {
            r.error = Self.append(&job, to: log, receivedAt: receivedAt, origin: &loggedOrigin, scratch: &scratch, syncFollows: needsSync)
        }
        if r.error == nil, needsSync {
            beforeSync?()
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
        result = r
    }

    /// Buffers reused across jobs (capacity kept).
    struct Scratch {
        /// Encoded `meta` (origin) records of one job.
        var meta: [UInt8] = []
        /// Per `meta` record: the frame it precedes and its range in ``meta``.
        var metaAt: [(frame: Int, range: Range<Int>)] = []
        /// One buffer per record, in log order, for ``WriteAheadLog/append(records:seal:)``.
        var records: [UnsafeRawBufferPointer] = []
        /// Per record: the frame it holds, or -1 for a `meta` record (sealed already).
        var frameOf: [Int32] = []
    }

    /// Logs every frame of `batch` in place (a `meta` origin record first when the origin
    /// changes): stamps each record's header, receive time and CRC inside the drain buffer, a
    /// 256 KiB piece at a time right before the `pwritev` that writes the piece (plus the few
    /// `meta` records).
    /// - Returns: the error, nothing appended.
    /// - Complexity: O(batch bytes): one CRC pass; the kernel's page-cache copy is the only copy.
    static func append(_ batch: inout FrameBatch, to log: WriteAheadLog, receivedAt: Int64,
                       origin loggedOrigin: inout [String]??, scratch: inout Scratch,
                       syncFollows: Bool = false) -> DurabilityError? {
        var origin = loggedOrigin
        scratch.meta.removeAll(keepingCapacity: true)
        scratch.metaAt.removeAll(keepingCapacity: true)
        scratch.records.removeAll(keepingCapacity: true)
        scratch.frameOf.removeAll(keepingCapacity: true)
        // Pass 1: where the origin changes (rare: after a checkpoint, or CURVE producers with
        // different allowed sources), encode a meta record in the side buffer.
        var previousRestriction: Int32 = -2
        for (i, f) in batch.frames.enumerated() where f.restriction != previousRestriction || origin == .none {
            previousRestriction = f.restriction
            let wanted: [String]? = f.restriction >= 0 ? batch.restrictions[Int(f.restriction)] : nil
            if origin == .none || origin! != wanted {
                let body = OriginRecord.encode(wanted)
                let start = scratch.meta.count
                scratch.meta.append(contentsOf: repeatElement(0, count: RecordLayout.headerSize))
                scratch.meta.append(contentsOf: body)
                scratch.meta.withUnsafeMutableBytes { m in
                    RecordLayout.seal(UnsafeMutableRawBufferPointer(rebasing: m[start...]), kind: .meta)
                }
                scratch.metaAt.append((i, start..<scratch.meta.count))
                origin = .some(wanted)
            }
        }
        // Pass 2: list the records in log order; the log calls back to stamp and checksum each
        // piece in place right before writing it (so it is still in this core's cache).
        let frames = batch.frames
        let metaAt = scratch.metaAt
        let result = batch.buffer.withUnsafeMutableBytes { raw -> DurabilityError? in
            scratch.meta.withUnsafeBytes { meta -> DurabilityError? in
                var nextMeta = 0
                for (i, f) in frames.enumerated() {
                    while nextMeta < metaAt.count, metaAt[nextMeta].frame == i {
                        scratch.records.append(UnsafeRawBufferPointer(rebasing: meta[metaAt[nextMeta].range]))
                        scratch.frameOf.append(-1)
                        nextMeta += 1
                    }
                    scratch.records.append(UnsafeRawBufferPointer(rebasing: raw[f.record]))
                    scratch.frameOf.append(Int32(i))
                }
                let frameOf = scratch.frameOf
                let stamp = UInt64(bitPattern: receivedAt).littleEndian
                func seal(_ range: Range<Int>) {
                    for r in range where frameOf[r] >= 0 {
                        let f = frames[Int(frameOf[r])]
                        let record = UnsafeMutableRawBufferPointer(rebasing: raw[f.record])
                        if f.ack >= 0 {
                            RecordLayout.seal(record, kind: .batch)
                        } else {
                            record.storeBytes(of: stamp, toByteOffset: RecordLayout.headerSize, as: UInt64.self)
                            RecordLayout.seal(record, kind: .frame)
                        }
                    }
                }
                do throws(DurabilityError) {
                    _ = try scratch.records.withUnsafeBufferPointer { records in
                        Result { () throws(DurabilityError) in try log.append(records: records, seal: seal, syncFollows: syncFollows) }
                    }.get()
                    return nil
                } catch {
                    return error
                }
            }
        }
        scratch.records.removeAll(keepingCapacity: true)
        loggedOrigin = result == nil ? origin : .none
        return result
    }
}
