import TallyEngine
#if canImport(Glibc)
import Glibc
#endif

// MARK: - AppendBatch

/// The records of one `append` call, encoded straight into the log's reusable buffer.
///
/// Record layout on disk: `[length u32 LE][crc32c u32 LE][kind u8][body]`, where `length` is the
/// number of body bytes (the record occupies `9 + length` bytes) and the CRC-32C covers the kind
/// byte and the body. Encoding costs one copy of the payload and one CRC pass; no allocation
/// once the buffer has grown to the drain size.
public struct AppendBatch {
    /// Bytes of the whole call; reused across calls (capacity kept).
    var bytes: [UInt8] = []
    /// End offset in `bytes` of each record, so the writer can split the call across segments.
    var ends: [Int] = []
    let maxRecordSize: Int

    init(maxRecordSize: Int, capacity: Int) {
        self.maxRecordSize = maxRecordSize
        bytes.reserveCapacity(capacity)
        ends.reserveCapacity(4096)
    }

    /// Records encoded so far in this call.
    public var count: Int { ends.count }

    /// Encoded bytes so far in this call (headers included).
    public var byteCount: Int { bytes.count }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    private mutating func begin(_ kind: RecordKind, bodyLength: Int) throws(DurabilityError) -> Int {
        guard bodyLength <= maxRecordSize else { throw .recordTooLarge(size: bodyLength, limit: maxRecordSize) }
        let start = bytes.count
        ByteCoding.append(UInt32(bodyLength), to: &bytes)
        ByteCoding.append(UInt32(0), to: &bytes)
        bytes.append(kind.rawValue)
        return start
    }

    @inline(__always)
    private mutating func finish(_ start: Int) {
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + 8)...])) }
        ByteCoding.store(crc, into: &bytes, at: start + 4)
        ends.append(bytes.count)
    }

    /// Appends a fire-and-forget frame (the raw frame bytes and its receive time).
    /// - Parameter receivedAt: microseconds since the Unix epoch, wall clock.
    /// - Complexity: O(payload).
    public mutating func frame(receivedAt: Int64, payload: UnsafeRawBufferPointer) throws(DurabilityError) {
        let start = try begin(.frame, bodyLength: 8 + payload.count)
        ByteCoding.append(UInt64(bitPattern: receivedAt), to: &bytes)
        bytes.append(contentsOf: payload)
        finish(start)
    }

    public mutating func frame(receivedAt: Int64, payload: [UInt8]) throws(DurabilityError) {
        try payload.withUnsafeBytes { p in
            Result { () throws(DurabilityError) in try frame(receivedAt: receivedAt, payload: p) }
        }.get()
    }

    /// Appends an acknowledged batch `(producer, sequence, payload)`.
    /// - Throws: `invalidArgument` for a producer id over 65,535 bytes; `recordTooLarge`.
    /// - Complexity: O(producer + payload).
    public mutating func batch(producer: UnsafeRawBufferPointer, sequence: UInt64, payload: UnsafeRawBufferPointer) throws(DurabilityError) {
        guard producer.count <= Int(UInt16.max) else {
            throw .invalidArgument("producer id of \(producer.count) bytes exceeds 65535")
        }
        let start = try begin(.batch, bodyLength: 10 + producer.count + payload.count)
        ByteCoding.append(sequence, to: &bytes)
        ByteCoding.append(UInt16(producer.count), to: &bytes)
        bytes.append(contentsOf: producer)
        bytes.append(contentsOf: payload)
        finish(start)
    }

    public mutating func batch(producer: [UInt8], sequence: UInt64, payload: [UInt8]) throws(DurabilityError) {
        try producer.withUnsafeBytes { id in
            payload.withUnsafeBytes { p in
                Result { () throws(DurabilityError) in try batch(producer: id, sequence: sequence, payload: p) }
            }
        }.get()
    }

    /// Appends a metadata record with an opaque body.
    public mutating func meta(_ body: [UInt8]) throws(DurabilityError) {
        let start = try begin(.meta, bodyLength: body.count)
        bytes.append(contentsOf: body)
        finish(start)
    }

    /// Appends one `LogEntry`.
    public mutating func entry(_ entry: LogEntry) throws(DurabilityError) {
        switch entry {
        case .frame(let t, let payload): try frame(receivedAt: t, payload: payload)
        case .batch(let producer, let sequence, let payload): try batch(producer: producer, sequence: sequence, payload: payload)
        case .meta(let body): try meta(body)
        }
    }
}

// MARK: - RecoveryReport

/// What opening the log found and cut at the tail of the newest segment.
public struct TailRepair: Sendable, Equatable, CustomStringConvertible {
    /// The segment file that was cut.
    public var segment: String
    /// Byte offset where the first damaged record started (the new file length).
    public var offset: Int64
    /// Bytes removed from the end of the segment.
    public var bytesTruncated: Int64
    /// Record-shaped pieces in the removed region, the damaged one included.
    public var recordsDropped: Int
    /// Why the first dropped record was rejected.
    public var reason: String

    public var description: String {
        "truncated \(bytesTruncated) bytes (\(recordsDropped) record(s)) at byte \(offset) of \(segment): \(reason)"
    }
}

// MARK: - WriteAheadLog

/// The write-ahead log: segment files `wal-<first LSN, 20 digits>.log` in one directory.
///
/// Single owner, not thread-safe: the daemon's engine thread opens it, appends, syncs and
/// checkpoints. Every file descriptor it holds is closed in `deinit`.
///
/// ## Guarantees
/// - `append` writes the call's records with one `pwrite`/`pwritev` (more only when the call
///   crosses a segment boundary) and is all-or-nothing: when it throws (disk full, EFBIG, EIO), the tail
///   is cut back with `ftruncate` to where the call started, so no half-written record remains
///   and the log is usable again as soon as space returns.
/// - `sync` is one `fdatasync` covering everything appended so far (group commit). Records
///   become *durable* only then. When it throws, every record appended since the previous
///   successful sync is removed (after a failed fdatasync the page cache can no longer be
///   trusted), and `durableLSN` tells the caller where the log stands.
/// - What a crash can lose: after kill -9, nothing that `append` returned for (it is in the
///   kernel's page cache); after a power loss or kernel crash, the records appended since the last
///   successful `sync` — for fire-and-forget frames that is up to one sync interval (the daemon
///   syncs every 100 ms), for acknowledged batches nothing, because they are answered only after
///   `sync` returns.
/// - Direct writes: appends go to the device with `O_DIRECT` (``DirectWriter``,
///   ``Options/directIO``; those a sync follows at once only with
///   ``Options/directForSyncedAppends``), where the file system allows it; they are on the
///   device when `append` returns, but still durable only after `sync` (the device's cache, the
///   file's size). Each one ends on a 4 KiB boundary, so the newest segment may end in up to
///   4,095 zero bytes after its last record, read as the end like a preallocated tail.
/// - Writeback: for appends through the page cache, every ``Options/writebackAfterBytes``
///   appended, the kernel's writeback of those bytes is started without waiting
///   (`sync_file_range`), so a later `fdatasync` finds little left to write instead of stalling
///   the log's thread for all of it.
/// - Preallocation: after a segment that saw ``Options/preallocateAfterSyncs`` fdatasyncs, the
///   next one is created zero-filled to full size, so each later `fdatasync` writes data only
///   (no size change to journal). Only the newest segment keeps such a tail (a roll cuts it);
///   opening reads "zeros from here to the end of the file" as the end of the log, not damage.
/// - Only the newest segment can have a torn tail: a segment is fdatasync'd before the next one
///   is created. On open the newest segment is scanned, a torn or corrupt tail is cut and
///   reported in `tailRepair`. A bad record in any other segment stops `replay` with
///   `DurabilityError.corruptLog`, never yielding garbage.
public final class WriteAheadLog {
    // MARK: Options

    public struct Options: Sendable {
        /// A segment is closed and a new one started once it would exceed this size.
        public var maxSegmentSize: Int64 = 64 << 20
        /// The largest record body accepted; a length field above it marks a corrupt record.
        public var maxRecordSize: Int = 32 << 20
        /// Initial capacity of the append buffer (it grows to the largest drain and stays).
        public var appendBufferCapacity: Int = 1 << 20
        /// Size of replay's read buffer (grows for a larger record).
        public var readBufferSize: Int = 1 << 20
        /// A segment that saw at least this many `fdatasync`s starts its successor zero-filled
        /// to ``maxSegmentSize`` (written and synced once, at the roll); `Int.max` never does,
        /// 0 preallocates every segment, the first one included.
        ///
        /// Why: an `fdatasync` after an append that grows the file also commits the size change
        /// to the file system's journal; overwriting blocks already written does not. On the
        /// 2-vCPU ext4 VM a 27.7 KB append + `fdatasync` took 0.17–0.21 ms mean growing the file,
        /// 0.16 ms into `fallocate`d (unwritten) blocks and 0.09–0.10 ms overwriting zeros, while
        /// writing the zeros costs ~0.5 ms per MiB once (~33 ms per 64 MiB segment). So it pays
        /// when syncs are dense in bytes (acknowledged batches, or a slow stream synced every
        /// 100 ms), not for a fast fire-and-forget stream (a couple of timer syncs per segment),
        /// whose log bandwidth it would double. 512 ≈ twice the break-even for 64 MiB segments.
        public var preallocateAfterSyncs: Int = 512
        /// Once this many bytes are appended to a segment since the last time, their writeback
        /// to disk is started without waiting (``FileIO/startWriteback(_:offset:length:)``);
        /// `Int64.max` never does (the kernel then writes back at the next `fdatasync` or after
        /// `vm.dirty_expire_centisecs`).
        ///
        /// Why: an `fdatasync` waits for every dirty page it finds. At 1.5 M events/s (~420 MB/s
        /// of log) the 100 ms timer sync and each 64 MiB segment roll found 10–64 MB dirty and
        /// stalled the log's thread, and with it the engine, 10–30 ms each: ~100 ms of a 0.65 s
        /// run. 1 MiB is PostgreSQL's `wal_writer_flush_after` default.
        public var writebackAfterBytes: Int64 = 1 << 20
        /// Appends that no `fdatasync` follows at once (fire-and-forget drains) go to the disk with
        /// `O_DIRECT` (``DirectWriter``) instead of through the page cache, where the file system
        /// allows it; false writes everything through the cache.
        ///
        /// Why: copying every logged byte into the page cache was 37% of the log's thread, and the
        /// kernel then wrote it back, on the cores ingest needs; with direct writes the log's
        /// thread uses 28% less CPU (PERFORMANCE.md rounds 10–11).
        public var directIO: Bool = true
        /// With ``directIO``, appends a sync follows at once (acknowledged batches, appended on
        /// the engine thread) are written with `O_DIRECT` too; false sends them through the page
        /// cache, for the `fdatasync` on the log's thread to write.
        ///
        /// Why: a page-cache append needs new cache pages, and on a VM whose host takes free
        /// guest memory back (virtio-balloon free page reporting, common in clouds) each new page
        /// can cost a host fault: acknowledged ingest then ran at half speed, the engine thread
        /// spending twice the CPU in the kernel's copy (`copy_folio_from_iter_atomic`:
        /// 0.65–0.67 M events/s through the cache against 1.35–1.42 M direct, with memory held
        /// elsewhere so that new pages came from reclaimed memory; PERFORMANCE.md round 13). A
        /// direct write reuses the drain's own buffer and needs no new page. Its cost: the engine
        /// thread waits for the device's write (here ~0.1 ms per drain) before it applies the
        /// drain, where the cache copy returned at once: with warm cache pages, 1.18 against
        /// 1.23 M events/s (medians of 11 alternated runs), reply p99 4.4 against 4.9 ms, half
        /// the log thread's CPU. On a disk much slower to write than to flush, turn it off.
        public var directForSyncedAppends: Bool = true
        public init() {}
    }

    // MARK: State

    struct Segment {
        var firstLSN: LSN
        var path: String
    }

    public let directory: String
    public let options: Options
    var segments: [Segment] = []
    /// Descriptor of the newest segment (open for writing).
    var activeFD: Int32 = -1
    /// Bytes of the newest segment that hold complete records.
    var activeSize: Int64 = 0
    /// Offset in the newest segment from which appended bytes have not had their writeback
    /// started yet (see ``Options/writebackAfterBytes``).
    var writebackFrom: Int64 = 0
    /// The newest segment's file size: more than ``activeSize`` when it was preallocated, and
    /// then everything after ``activeSize`` is zeros (recovery reads a zero tail as the end).
    var activeFileSize: Int64 = 0
    /// `fdatasync`s of the newest segment so far (decides whether the next one is preallocated).
    var syncsInSegment = 0
    /// The LSN the next appended record gets.
    public private(set) var nextLSN: LSN = 1
    /// Where the last successful sync left the log (records up to `durableLSN` are on disk).
    var synced: (segment: Int, offset: Int64, lsn: LSN) = (0, 0, 0)
    var directoryNeedsSync = false
    /// A failed rollback left bytes we could not remove; retried before any further write.
    var pendingRepair: (segment: Int, offset: Int64, lsn: LSN)?
    var batch: AppendBatch
    /// Reused scratch of ``writeBatch()``: one buffer per record of the call.
    private var recordScratch: [UnsafeRawBufferPointer] = []
    /// Reused scratch of ``writeRecords(_:)``: the pieces of one `pwritev`.
    private var iovecs: [iovec] = []
    /// Writes fire-and-forget appends with `O_DIRECT` (nil: ``Options/directIO`` is off, or the
    /// file system refused it, as tmpfs before Linux 6.6 does).
    private(set) var direct: DirectWriter?
    /// What opening cut from the tail, or nil when the tail was clean.
    public let tailRepair: TailRepair?

    /// The last record known durable (synced); records after it may be lost by a power loss.
    public var durableLSN: LSN { synced.lsn }

    /// The last record appended (nextLSN − 1); 0 when the log has never held a record.
    public var lastLSN: LSN { nextLSN - 1 }

    /// The first LSN still present in the log (segments before it were truncated).
    public var firstLSN: LSN { segments.first?.firstLSN ?? nextLSN }

    /// Number of segment files.
    public var segmentCount: Int { segments.count }

    /// Whether appends that no sync follows go to the disk with `O_DIRECT` (``Options/directIO``,
    /// and a file system that allows it). For the daemon's start-up log line.
    public var usesDirectIO: Bool { direct != nil }

    // MARK: Opening

    /// Opens (or creates, mode 0700) the log in `directory`, scans the newest segment and cuts a
    /// torn or corrupt tail.
    /// - Parameter minimumNextLSN: the first LSN a new record may take; Recovery passes the newest
    ///   checkpoint's LSN + 1 so that numbering never goes backwards even if the log lost its tail.
    /// - Complexity: O(size of the newest segment) to scan it.
    public init(directory: String, options: Options = Options(), minimumNextLSN: LSN = 1) throws(DurabilityError) {
        self.directory = directory
        self.options = options
        self.batch = AppendBatch(maxRecordSize: options.maxRecordSize, capacity: 0)
        if options.directIO { direct = DirectWriter(capacity: Self.sealedWriteBytes + DirectWriter.block) }
        try FileIO.makeDirectory(directory, mode: 0o700)
        segments = try Self.listSegments(directory)

        var repair: TailRepair?
        if let last = segments.last {
            let fd = try FileIO.open(last.path, flags: O_RDWR)
            activeFD = fd
            let scan = try Self.scan(fd: fd, path: last.path, firstLSN: last.firstLSN, maxRecordSize: options.maxRecordSize)
            activeFileSize = scan.fileSize
            if let bad = scan.damage {
                try FileIO.ftruncate(fd, to: scan.validBytes, path: last.path)
                try FileIO.fdatasync(fd, path: last.path)
                activeFileSize = scan.validBytes
                repair = TailRepair(segment: last.path, offset: scan.validBytes,
                                    bytesTruncated: scan.fileSize - scan.validBytes,
                                    recordsDropped: bad.records, reason: bad.reason)
            }
            activeSize = scan.validBytes
            writebackFrom = activeSize
            nextLSN = last.firstLSN + LSN(scan.records)
        }
        tailRepair = repair
        if segments.isEmpty || nextLSN < minimumNextLSN {
            // No log yet, or a checkpoint covers more than the log holds: start a fresh segment
            // at the checkpoint's next LSN so numbering stays monotonic.
            nextLSN = max(nextLSN, minimumNextLSN)
            if activeFD >= 0 {
                // Only the newest segment may end in preallocated zeros.
                if activeFileSize > activeSize { try FileIO.ftruncate(activeFD, to: activeSize, path: segments[segments.count - 1].path) }
                try FileIO.fdatasync(activeFD, path: segments[segments.count - 1].path)
                try FileIO.close(activeFD, path: segments[segments.count - 1].path)
                activeFD = -1
            }
            try createSegment(firstLSN: nextLSN, preallocate: options.preallocateAfterSyncs == 0)
            try FileIO.syncDirectory(directory)
            directoryNeedsSync = false
        }
        if let d = direct, d.fd < 0 { try attachDirect() }
        synced = (segments.count - 1, activeSize, nextLSN - 1)
    }

    deinit {
        if activeFD >= 0 { Glibc.close(activeFD) }
    }

    /// Syncs and closes the active segment; the log is unusable afterwards.
    public func close() throws(DurabilityError) {
        guard activeFD >= 0 else { return }
        try sync()
        let fd = activeFD
        activeFD = -1
        direct?.detach()
        try FileIO.close(fd, path: segments[segments.count - 1].path)
    }

    /// Points the direct writer at the active segment (its tail block read back), or drops it
    /// when the file system has no direct I/O.
    private func attachDirect() throws(DurabilityError) {
        guard let d = direct else { return }
        if try !d.attach(path: segments[segments.count - 1].path, size: activeSize, bufferedFD: activeFD) { direct = nil }
    }

    static func segmentName(_ firstLSN: LSN) -> String {
        let digits = String(firstLSN)
        return "wal-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".log"
    }

    static func listSegments(_ directory: String) throws(DurabilityError) -> [Segment] {
        var result: [Segment] = []
        for name in try FileIO.listDirectory(directory) where name.hasPrefix("wal-") && name.hasSuffix(".log") {
            let digits = name.dropFirst(4).dropLast(4)
            guard digits.count == 20, let lsn = LSN(digits) else { continue }
            result.append(Segment(firstLSN: lsn, path: FileIO.join(directory, name)))
        }
        return result.sorted { $0.firstLSN < $1.firstLSN }
    }

    /// Creates the next segment; `preallocate` fills it with zeros to ``Options/maxSegmentSize``
    /// and syncs it, best effort: when that fails (a full disk) the file is cut back to empty and
    /// the log grows it as it appends, as without preallocation.
    /// - Complexity: O(1), or O(segment size) once when preallocating (~33 ms per 64 MiB here).
    private func createSegment(firstLSN: LSN, preallocate: Bool = false) throws(DurabilityError) {
        let path = FileIO.join(directory, Self.segmentName(firstLSN))
        activeFD = try FileIO.open(path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
        segments.append(Segment(firstLSN: firstLSN, path: path))
        activeSize = 0
        writebackFrom = 0
        activeFileSize = 0
        syncsInSegment = 0
        directoryNeedsSync = true
        if preallocate {
            do throws(DurabilityError) {
                try FileIO.writeZeros(activeFD, from: 0, to: options.maxSegmentSize, path: path)
                try FileIO.fdatasync(activeFD, path: path)
                activeFileSize = options.maxSegmentSize
            } catch {
                try FileIO.ftruncate(activeFD, to: 0, path: path)
            }
        }
        try attachDirect()
    }

    /// Bytes the log's records take in `directory`: every segment's size, less the newest
    /// segment's preallocated zero tail (what a reader of file sizes would overcount). A figure
    /// for reports (`tally bench`): trailing zero bytes of the last record itself are not
    /// counted either. Safe while the log is in use (it only reads).
    /// - Complexity: O(segments) plus, backwards in 1 MiB chunks, the newest segment's zero tail.
    public static func recordBytes(directory: String) throws(DurabilityError) -> Int64 {
        let segments = try listSegments(directory)
        var total: Int64 = 0
        for (i, segment) in segments.enumerated() {
            let fd = try FileIO.open(segment.path, flags: O_RDONLY)
            defer { Glibc.close(fd) }
            var size = try FileIO.fileSize(fd, path: segment.path)
            if i == segments.count - 1 {
                var chunk = [UInt8](repeating: 0, count: 1 << 20)
                scanning: while size > 0 {
                    let from = max(0, size - Int64(chunk.count))
                    let want = Int(size - from)
                    let n = try chunk.withUnsafeMutableBytes { b in
                        Result { () throws(DurabilityError) in try FileIO.preadFully(fd, into: b.baseAddress!, count: want, at: from, path: segment.path) }
                    }.get()
                    guard n == want else { break }
                    for k in stride(from: n - 1, through: 0, by: -1) where chunk[k] != 0 {
                        size = from + Int64(k) + 1
                        break scanning
                    }
                    size = from
                }
            }
            total += size
        }
        return total
    }

    /// Whether every byte of `[from, to)` is zero (a preallocated tail rather than a torn one).
    /// - Complexity: O(to − from), read in 1 MiB chunks.
    static func isZeroFilled(fd: Int32, path: String, from: Int64, to: Int64) throws(DurabilityError) -> Bool {
        guard from < to else { return true }
        var chunk = [UInt8](repeating: 0, count: Int(min(to - from, 1 << 20)))
        var position = from
        while position < to {
            let want = Int(min(Int64(chunk.count), to - position))
            let p = position
            let allZero = try chunk.withUnsafeMutableBytes { b in
                Result { () throws(DurabilityError) -> Bool in
                    let n = try FileIO.preadFully(fd, into: b.baseAddress!, count: want, at: p, path: path)
                    guard n == want else { return false }
                    // Eight bytes at a time, then the rest.
                    var i = 0
                    while i + 8 <= n {
                        if b.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
                        i += 8
                    }
                    while i < n { if b[i] != 0 { return false }; i += 1 }
                    return true
                }
            }.get()
            guard allZero else { return false }
            position += Int64(want)
        }
        return true
    }

    // MARK: Scanning

    struct ScanResult {
        var records: Int
        var validBytes: Int64
        var fileSize: Int64
        var damage: (reason: String, records: Int)?
    }

    /// Walks a segment's records checking lengths and checksums, reading headers and bodies in
    /// 1 MiB chunks. Stops at the first bad record: when everything from there to the end of the
    /// file is zeros, that is the end of a preallocated segment (no damage; `fileSize` says how
    /// far the zeros go); otherwise counts the record-shaped pieces after it.
    /// - Complexity: O(segment size).
    static func scan(fd: Int32, path: String, firstLSN: LSN, maxRecordSize: Int) throws(DurabilityError) -> ScanResult {
        let size = try FileIO.fileSize(fd, path: path)
        var reader = SegmentReader(fd: fd, path: path, end: size, bufferSize: 1 << 20)
        var records = 0
        while true {
            let start = reader.position
            switch try reader.next(maxRecordSize: maxRecordSize) {
            case .end:
                return ScanResult(records: records, validBytes: start, fileSize: size, damage: nil)
            case .record:
                records += 1
            case .damaged(let reason):
                if try isZeroFilled(fd: fd, path: path, from: start, to: size) {
                    // A preallocated segment: the records end where its zeros begin. Not damage.
                    return ScanResult(records: records, validBytes: start, fileSize: size, damage: nil)
                }
                let dropped = try countPieces(fd: fd, path: path, from: start, end: size, maxRecordSize: maxRecordSize)
                return ScanResult(records: records, validBytes: start, fileSize: size, damage: (reason, dropped))
            }
        }
    }

    /// Counts record headers in the damaged region by following length fields while they fit.
    static func countPieces(fd: Int32, path: String, from: Int64, end: Int64, maxRecordSize: Int) throws(DurabilityError) -> Int {
        var pos = from
        var count = 0
        var header = [UInt8](repeating: 0, count: 4)
        while pos < end {
            count += 1
            guard end - pos >= 9 else { break }
            let p = pos
            let n = try header.withUnsafeMutableBytes { b in
                Result { () throws(DurabilityError) in
                    try FileIO.preadFully(fd, into: b.baseAddress!, count: 4, at: p, path: path)
                }
            }.get()
            guard n == 4 else { break }
            let len = Int64(ByteCoding.loadUInt32(header[...], at: 0))
            guard len <= maxRecordSize, pos + 9 + len <= end else { break }
            pos += 9 + len
        }
        return count
    }

    // MARK: Appending

    /// Appends the records that `fill` encodes, all or nothing, with one write (per segment).
    ///
    /// `fill` must not call back into the log. Records are not durable until `sync()`.
    /// - Returns: the LSNs given to the records, or nil when `fill` added none.
    /// - Throws: `DurabilityError` from `fill` (nothing is appended) or from the write (the tail is
    ///   rolled back to where this call started; `isOutOfSpace` tells a full disk apart).
    /// - Complexity: O(bytes appended); one `pwrite`, plus an fdatasync + file creation for each
    ///   segment roll.
    @discardableResult
    public func append(_ fill: (inout AppendBatch) throws(DurabilityError) -> Void) throws(DurabilityError) -> ClosedRange<LSN>? {
        batch.reset()
        // Reserved on first use: a writer that appends in place (the daemon) never grows it.
        if batch.bytes.capacity == 0 { batch.bytes.reserveCapacity(options.appendBufferCapacity) }
        defer { if batch.bytes.capacity > options.appendBufferCapacity * 8 { batch = AppendBatch(maxRecordSize: options.maxRecordSize, capacity: options.appendBufferCapacity) } }
        try fill(&batch)
        guard batch.count > 0 else { return nil }
        return try writeBatch()
    }

    /// Appends owned entries (convenience over the closure form).
    @discardableResult
    public func append(_ entries: [LogEntry]) throws(DurabilityError) -> ClosedRange<LSN>? {
        try append { (b) throws(DurabilityError) in
            for e in entries { try b.entry(e) }
        }
    }

    /// Appends complete, sealed records that live in the caller's memory (laid out with
    /// ``RecordLayout`` and sealed with ``RecordLayout/seal(_:kind:)``), all or nothing, without
    /// copying them: records adjacent in memory go out as one piece of one `pwritev` per segment.
    ///
    /// Why: the daemon's drain buffer already holds its frames as log records, so the log
    /// thread only checksums them in place; copying a drain into ``AppendBatch`` first cost one
    /// more pass over every logged byte (memory bandwidth the engine thread competes for).
    /// - Parameters:
    ///   - records: one buffer per record, in LSN order; each is the whole record (header +
    ///     body). The memory is only read during the call (and written by `seal`).
    ///   - seal: when given, called with the indices of the next records right before they are
    ///     written (at most ``sealedWriteBytes`` per call, at least one record): the caller
    ///     completes them there (``RecordLayout/seal(_:kind:)``), so each piece is checksummed
    ///     and then copied out (to the direct writer's staging buffer, or the page cache) while it
    ///     is still in this core's cache.
    ///   - syncFollows: whether an `fdatasync` follows at once (acknowledged batches). Then the
    ///     records are written with `O_DIRECT` only with ``Options/directForSyncedAppends``, else
    ///     through the page cache with no writeback started (the sync writes them, and the
    ///     caller's thread does not wait for the device); otherwise they are written with
    ///     `O_DIRECT` where the log uses it (``Options/directIO``), else through the cache with
    ///     the writeback of every ``Options/writebackAfterBytes`` started.
    /// - Returns: the LSNs given to the records, or nil when there are none.
    /// - Throws: `recordTooLarge` (nothing appended) or the write's error (the tail is rolled back
    ///   to where this call started), as ``append(_:)-(inout AppendBatch)``.
    /// - Complexity: O(records) to plan the pieces, one `pwritev` per segment touched (per 1,024
    ///   pieces), plus an fdatasync + file creation per segment roll.
    @discardableResult
    public func append(records: UnsafeBufferPointer<UnsafeRawBufferPointer>,
                       seal: ((Range<Int>) -> Void)? = nil,
                       syncFollows: Bool = false) throws(DurabilityError) -> ClosedRange<LSN>? {
        guard !records.isEmpty else { return nil }
        for r in records {
            guard r.count >= RecordLayout.headerSize else {
                throw .invalidArgument("a record of \(r.count) bytes is shorter than its 9-byte header")
            }
            let body = r.count - RecordLayout.headerSize
            guard body <= options.maxRecordSize else { throw .recordTooLarge(size: body, limit: options.maxRecordSize) }
        }
        return try writeFallingBack(records, seal: seal, syncFollows: syncFollows)
    }

    /// ``writeRecords(_:seal:syncFollows:)``, once more through the page cache when a direct
    /// write is refused with EINVAL (a file system that opens files with `O_DIRECT` but does not
    /// take 4 KiB-aligned writes, as some FUSE and network file systems): direct I/O is then off
    /// for this log, and the append succeeds (the refused attempt was rolled back; `seal` only
    /// stamps the same bytes again).
    private func writeFallingBack(_ records: UnsafeBufferPointer<UnsafeRawBufferPointer>,
                                  seal: ((Range<Int>) -> Void)?, syncFollows: Bool) throws(DurabilityError) -> ClosedRange<LSN> {
        do {
            return try writeRecords(records, seal: seal, syncFollows: syncFollows)
        } catch {
            guard direct != nil, pendingRepair == nil, case .system(_, _, EINVAL) = error else { throw error }
            direct = nil
            return try writeRecords(records, seal: seal, syncFollows: syncFollows)
        }
    }

    /// Bytes per `pwritev` when the caller seals records as they are written: small enough to
    /// stay in a core's L2 between the checksum pass and the kernel's copy (a 4 MiB drain
    /// written by another core and copied in one piece was fetched from afar twice).
    public static let sealedWriteBytes = 256 << 10

    private func writeBatch() throws(DurabilityError) -> ClosedRange<LSN> {
        let ends = batch.ends
        return try batch.bytes.withUnsafeBytes { all in
            Result { () throws(DurabilityError) -> ClosedRange<LSN> in
                var pieces = recordScratch
                recordScratch = []
                defer { pieces.removeAll(keepingCapacity: true); recordScratch = pieces }
                var start = 0
                for end in ends {
                    pieces.append(UnsafeRawBufferPointer(rebasing: all[start..<end]))
                    start = end
                }
                return try pieces.withUnsafeBufferPointer { records in
                    Result { () throws(DurabilityError) in try writeFallingBack(records, seal: nil, syncFollows: false) }
                }.get()
            }
        }.get()
    }

    /// Writes `records` (already checked) from the active segment's end, rolling to a new
    /// segment when the next record would not fit (a record larger than a segment gets a
    /// segment of its own), and rolls back to where it started on any error.
    private func writeRecords(_ records: UnsafeBufferPointer<UnsafeRawBufferPointer>,
                              seal: ((Range<Int>) -> Void)?, syncFollows: Bool = false) throws(DurabilityError) -> ClosedRange<LSN> {
        let maxWrite = seal == nil ? Int64.max : Int64(Self.sealedWriteBytes)
        try ensureUsable()
        let start = (segment: segments.count - 1, offset: activeSize, lsn: nextLSN - 1)
        let firstLSN = nextLSN
        do throws(DurabilityError) {
            var i = 0
            let maxSegment = options.maxSegmentSize
            while i < records.count {
                // Take as many records as fit in the active segment (at least one when it is empty),
                // merging neighbours in memory into one piece. Locals, not the class's stored
                // properties, in this per-record loop: each property access was a dynamic
                // exclusivity check (~7% of the log thread at one event per frame, `perf`).
                var pieces = iovecs
                iovecs = []
                pieces.removeAll(keepingCapacity: true)
                let room = maxSegment - activeSize
                let segmentEmpty = activeSize == 0
                var j = i
                var bytes: Int64 = 0
                var pieceEnd: UnsafeMutableRawPointer? = nil
                while j < records.count {
                    let r = records[j]
                    let n = Int64(r.count)
                    if bytes + n > room, !segmentEmpty || j > i { break }
                    if bytes + n > maxWrite, j > i { break }
                    let base = UnsafeMutableRawPointer(mutating: r.baseAddress!)
                    if pieceEnd == base {
                        pieces[pieces.count - 1].iov_len += r.count
                    } else {
                        pieces.append(iovec(iov_base: base, iov_len: r.count))
                    }
                    pieceEnd = base + r.count
                    bytes += n
                    j += 1
                }
                iovecs = pieces
                if j == i {
                    try roll()
                    continue
                }
                seal?(i..<j)
                let path = segments[segments.count - 1].path
                let fd = activeFD
                let offset = activeSize
                if let direct, !syncFollows || options.directForSyncedAppends {
                    // Straight to the device, nothing left for a writeback (a sync that follows
                    // flushes the device's cache and the file's size).
                    let end = try iovecs.withUnsafeBufferPointer { v in
                        Result { () throws(DurabilityError) in try direct.write(v, at: offset, path: path) }
                    }.get()
                    activeSize += bytes
                    activeFileSize = max(activeFileSize, end)
                    writebackFrom = activeSize
                } else {
                    try iovecs.withUnsafeMutableBufferPointer { v in
                        Result { () throws(DurabilityError) in try FileIO.pwritevAll(fd, v, at: offset, path: path) }
                    }.get()
                    activeSize += bytes
                    activeFileSize = max(activeFileSize, activeSize)
                    // The next direct write rewrites the tail block: it must hold these bytes too.
                    try direct?.reloadTail(size: activeSize, bufferedFD: fd, path: path)
                    if !syncFollows {
                        FileIO.startWriteback(fd, from: &writebackFrom, to: activeSize, every: options.writebackAfterBytes)
                    }
                }
                nextLSN += LSN(j - i)
                i = j
            }
        } catch {
            rollBack(to: start)
            throw error
        }
        return firstLSN...(nextLSN - 1)
    }

    /// Closes the active segment after making it durable and starts the next one, so only the
    /// newest segment can ever have a torn tail.
    private func roll() throws(DurabilityError) {
        let old = segments[segments.count - 1].path
        // Only the newest segment may end in preallocated zeros: replay reads an older one to
        // its end. (A crash before this fdatasync leaves it the newest, where zeros are the end.)
        if activeFileSize > activeSize {
            try FileIO.ftruncate(activeFD, to: activeSize, path: old)
            activeFileSize = activeSize
        }
        try FileIO.fdatasync(activeFD, path: old)
        if synced.segment == segments.count - 1 { synced = (segments.count - 1, activeSize, nextLSN - 1) }
        direct?.detach()
        try FileIO.close(activeFD, path: old)
        activeFD = -1
        try createSegment(firstLSN: nextLSN, preallocate: syncsInSegment >= options.preallocateAfterSyncs)
    }

    // MARK: Syncing

    /// Makes everything appended so far durable with one `fdatasync` (plus a directory fsync
    /// after a segment roll). Cheap when nothing was appended since the last sync.
    /// - Throws: on failure the records appended since the last successful sync are removed
    ///   (see the type's guarantees) and the error is rethrown; the log stays usable.
    /// - Complexity: one fdatasync.
    public func sync() throws(DurabilityError) {
        try ensureUsable()
        if nextLSN - 1 == synced.lsn, activeSize == synced.offset, synced.segment == segments.count - 1, !directoryNeedsSync {
            return
        }
        do throws(DurabilityError) {
            try FileIO.fdatasync(activeFD, path: segments[segments.count - 1].path)
            syncsInSegment += 1
        } catch {
            rollBack(to: synced)
            throw error
        }
        if directoryNeedsSync {
            try FileIO.syncDirectory(directory)
            directoryNeedsSync = false
        }
        synced = (segments.count - 1, activeSize, nextLSN - 1)
    }

    // MARK: Rollback

    /// Cuts the log back to `point`: deletes segments created after it and truncates its segment.
    /// Never throws; a failure is remembered in `pendingRepair` and retried before the next write.
    private func rollBack(to point: (segment: Int, offset: Int64, lsn: LSN)) {
        do {
            while segments.count - 1 > point.segment {
                let doomed = segments.removeLast()
                if activeFD >= 0 { Glibc.close(activeFD); activeFD = -1 }
                try FileIO.unlinkIfPresent(doomed.path)
                directoryNeedsSync = true
            }
            let path = segments[point.segment].path
            if activeFD < 0 { activeFD = try FileIO.open(path, flags: O_RDWR) }
            try FileIO.ftruncate(activeFD, to: point.offset, path: path)
            try? FileIO.fdatasync(activeFD, path: path)
            activeSize = point.offset
            writebackFrom = min(writebackFrom, point.offset)
            activeFileSize = point.offset
            try attachDirect()   // the tail block as the file now holds it
            nextLSN = point.lsn + 1
            if synced.segment > point.segment || synced.lsn > point.lsn { synced = point }
            pendingRepair = nil
        } catch {
            pendingRepair = point
            nextLSN = point.lsn + 1
        }
    }

    private func ensureUsable() throws(DurabilityError) {
        if let point = pendingRepair {
            rollBack(to: point)
            if pendingRepair != nil {
                throw .system(call: "ftruncate", path: segments[min(point.segment, segments.count - 1)].path, errno: EIO)
            }
        }
        guard activeFD >= 0 else { throw .invalidArgument("the write-ahead log is closed") }
    }

    // MARK: Truncation

    /// Deletes the segments whose records are all ≤ `lsn` (covered by a checkpoint), oldest
    /// first; the active segment is never deleted. Pass the LSN of the *oldest kept* checkpoint
    /// so that a fallback to it still finds its log.
    /// - Returns: the number of segment files deleted.
    /// - Complexity: O(segments) plus one unlink each and one directory fsync.
    @discardableResult
    public func truncate(through lsn: LSN) throws(DurabilityError) -> Int {
        var deleted = 0
        while segments.count > 1, segments[1].firstLSN - 1 <= lsn {
            try FileIO.unlinkIfPresent(segments[0].path)
            dropOldestSegment()
            deleted += 1
        }
        if deleted > 0 { try FileIO.syncDirectory(directory) }
        return deleted
    }

    /// The bookkeeping half of ``truncate(through:)``: forgets the segments whose records are
    /// all ≤ `lsn` (never the active one) and returns their paths, oldest first, for another
    /// thread to unlink (then fsync the directory), so the owner pays no `unlink` (freeing a
    /// 64 MiB segment's page cache takes milliseconds). Until they are unlinked the files stay
    /// on disk; a restart lists them again and truncates them after its next checkpoint. Delete
    /// them oldest first and stop at the first failure, so what remains stays contiguous.
    /// - Complexity: O(segments), no system call.
    public func detachSegments(through lsn: LSN) -> [String] {
        var detached: [String] = []
        while segments.count > 1, segments[1].firstLSN - 1 <= lsn {
            detached.append(segments[0].path)
            dropOldestSegment()
        }
        return detached
    }

    private func dropOldestSegment() {
        segments.removeFirst()
        // A point at the end of the deleted segment is the same point as the start of the
        // next one (its first LSN is the point's LSN + 1).
        synced = synced.segment == 0 ? (0, 0, synced.lsn) : (synced.segment - 1, synced.offset, synced.lsn)
        if let r = pendingRepair { pendingRepair = r.segment == 0 ? (0, 0, r.lsn) : (r.segment - 1, r.offset, r.lsn) }
    }

    // MARK: Replay

    /// Streams every record with LSN > `lsn`, in append order, reading segments in chunks (never
    /// a whole segment in memory).
    /// - Throws: `corruptLog` at the first record that fails its checks or when records between
    ///   `lsn` and the log's start are missing; records before it have been delivered, none after.
    ///   Rethrows what `body` throws.
    /// - Complexity: O(bytes from the segment holding `lsn + 1` to the end).
    public func replay(after lsn: LSN, _ handle: (LogRecord) throws -> Void) throws {
        guard lsn + 1 < nextLSN else { return }
        guard let first = segments.first, first.firstLSN <= lsn + 1 else {
            throw DurabilityError.corruptLog(segment: segments.first?.path ?? directory, offset: 0,
                                             reason: "replay needs LSN \(lsn + 1) but the log starts at \(firstLSN)")
        }
        var index = segments.lastIndex { $0.firstLSN <= lsn + 1 }!
        var expected = segments[index].firstLSN
        while index < segments.count {
            let segment = segments[index]
            guard segment.firstLSN == expected else {
                throw DurabilityError.corruptLog(segment: segment.path, offset: 0,
                                                 reason: "segment starts at LSN \(segment.firstLSN), expected \(expected): records are missing")
            }
            let isActive = index == segments.count - 1
            let fd = try FileIO.open(segment.path, flags: O_RDONLY)
            defer { Glibc.close(fd) }
            let end = isActive ? activeSize : try FileIO.fileSize(fd, path: segment.path)
            var reader = SegmentReader(fd: fd, path: segment.path, end: end, bufferSize: options.readBufferSize)
            var current = segment.firstLSN
            while true {
                let offset = reader.position
                switch try reader.next(maxRecordSize: options.maxRecordSize) {
                case .end:
                    expected = current
                case .damaged(let reason):
                    throw DurabilityError.corruptLog(segment: segment.path, offset: offset, reason: reason)
                case .record(let kind, let body):
                    if current > lsn { try handle(LogRecord(lsn: current, kind: kind, body: body)) }
                    current += 1
                    continue
                }
                break
            }
            index += 1
        }
    }
}

// MARK: - SegmentReader

/// Sequential, chunked reader of one segment's records.
struct SegmentReader {
    enum Item {
        case record(RecordKind, ArraySlice<UInt8>)
        case damaged(String)
        case end
    }

    let fd: Int32
    let path: String
    let end: Int64
    var buffer: [UInt8]
    /// File offset of `buffer[0]`.
    var bufferFileOffset: Int64 = 0
    var bufferStart = 0
    var bufferEnd = 0

    init(fd: Int32, path: String, end: Int64, bufferSize: Int) {
        self.fd = fd
        self.path = path
        self.end = end
        self.buffer = [UInt8](repeating: 0, count: max(bufferSize, 64))
    }

    /// File offset of the next record.
    var position: Int64 { bufferFileOffset + Int64(bufferStart) }

    /// Makes at least `count` bytes available at `bufferStart` (fewer only at `end`).
    private mutating func fill(_ count: Int) throws(DurabilityError) {
        if bufferEnd - bufferStart >= count { return }
        // Move the remainder to the front, grow if a record is larger than the buffer.
        let remaining = bufferEnd - bufferStart
        if count > buffer.count { buffer.append(contentsOf: repeatElement(0, count: count - buffer.count)) }
        if bufferStart > 0 {
            let s = bufferStart
            buffer.withUnsafeMutableBytes { b in
                if remaining > 0 { b.baseAddress!.copyMemory(from: b.baseAddress! + s, byteCount: remaining) }
            }
            bufferFileOffset += Int64(s)
            bufferStart = 0
            bufferEnd = remaining
        }
        let fileOffset = bufferFileOffset + Int64(bufferEnd)
        let want = Int(min(Int64(buffer.count - bufferEnd), end - fileOffset))
        guard want > 0 else { return }
        let have = bufferEnd
        let fd = self.fd, path = self.path
        let n = try buffer.withUnsafeMutableBytes { b in
            Result { () throws(DurabilityError) in
                try FileIO.preadFully(fd, into: b.baseAddress! + have, count: want, at: fileOffset, path: path)
            }
        }.get()
        bufferEnd += n
    }

    mutating func next(maxRecordSize: Int) throws(DurabilityError) -> Item {
        try fill(9)
        let available = bufferEnd - bufferStart
        if available == 0 { return .end }
        if available < 9 { return .damaged("short record header (\(available) of 9 bytes)") }
        let len = Int(ByteCoding.loadUInt32(buffer[...], at: bufferStart))
        let storedCRC = ByteCoding.loadUInt32(buffer[...], at: bufferStart + 4)
        if len > maxRecordSize { return .damaged("length \(len) exceeds the record limit \(maxRecordSize)") }
        try fill(9 + len)
        if bufferEnd - bufferStart < 9 + len {
            return .damaged("short record (\(bufferEnd - bufferStart) of \(9 + len) bytes)")
        }
        let s = bufferStart
        let crc = buffer.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(s + 8)..<(s + 9 + len)])) }
        if crc != storedCRC {
            return .damaged("checksum mismatch (stored \(hex(storedCRC)), computed \(hex(crc)))")
        }
        let kind = RecordKind(rawValue: buffer[s + 8])
        bufferStart += 9 + len
        return .record(kind, buffer[(s + 9)..<(s + 9 + len)])
    }

    private func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }
}
