import TallyEngine
import ZeroMQ

// MARK: - FrameBatch

/// The frames of one engine-loop drain, copied into one reused buffer laid out as log records.
///
/// Why a copy: the write-ahead log appends the whole drain before anything is applied, and the
/// acknowledged path must hold its payloads until the group `fsync`. One `memcpy` per frame
/// into a buffer that keeps its capacity costs far less than a syscall per frame, and nothing
/// is allocated per frame once the buffer has grown.
///
/// Why log records: each payload is preceded by the room for its record header (and the
/// record's own fields: a frame's receive time, a batch's sequence and producer id), exactly as
/// the log stores it (``RecordLayout``). The log's thread then only stamps the receive time and
/// the CRC in place and hands the buffer to `pwritev`; the engine reads each payload as a
/// slice that excludes the header. Before, the log thread copied every drain once more into
/// the log's own buffer (a second pass over every logged byte).
///
/// Ownership: the buffer must stay uniquely referenced while the log thread writes into it
/// (a shared array would be copied on write): hand it over with `swap` (``LogWriter/submit(_:receivedAt:)``,
/// ``LogWriter/wait(into:)``), never by assignment while another copy is live.
struct FrameBatch {
    struct Frame {
        /// Offset of the payload in ``buffer``; its record starts ``header`` bytes earlier.
        var offset: Int
        var count: Int
        /// Index of the PULL socket it came from, or -1 for the acknowledged path.
        var origin: Int32
        /// Index into ``pendingAcks`` for an acknowledged payload, else -1.
        var ack: Int32
        /// Index into ``restrictions`` (the CURVE producer's allowed `source` prefixes), or -1
        /// for the socket's default origin.
        var restriction: Int32 = -1
        /// Bytes in front of the payload: the record header and the body's fields (17 for a
        /// frame record, 19 + producer id for a batch record).
        var header: Int32
        /// The frame's dedup key, read by the core when the frame was received (nil: none).
        var keyHint: FrameKeyHint? = nil

        /// The whole log record (header + body) in ``buffer``.
        @inline(__always)
        var record: Range<Int> { (offset - Int(header))..<(offset + count) }
    }

    /// The records; only the first ``byteCount`` bytes are in use (the rest is room: bytes of
    /// no meaning, never read, see ``init(room:)``), so appending a frame is one bounds check
    /// and one `memcpy`, never an `Array.append` per header and per payload.
    var buffer: [UInt8] = []
    /// Bytes of ``buffer`` in use.
    private(set) var byteCount = 0
    var frames: [Frame] = []
    var pendingAcks: [PendingAck] = []
    /// Allowed-source lists of CURVE producers seen in this drain (empty with CURVE off).
    var restrictions: [[String]] = []
    /// Per (producer, sequence), the pending (not yet durable) ack of this drain that applies it:
    /// a batch re-sent within the same drain is answered with that one's reply instead of being
    /// applied twice. Keyed by sequence, not only producer: with several batches in flight, an
    /// older sequence of the same producer may be new work (a gap being filled).
    var pendingBySequence: [PendingKey: Int] = [:]
    /// Whether any acknowledged batch of this drain needs the group `fsync`.
    var needsSync = false

    /// A batch with room for a whole drain (`Daemon.drainBytes` and one frame of 64 KiB), whose
    /// pages the kernel maps only as the drains first reach them.
    ///
    /// Why not grow from 1 MiB: each doubling (1 → 2 → 4 → 8 MiB at 100 events per frame)
    /// allocated fresh pages, copied the old bytes and zeroed the rest; the first drains of a
    /// burst faulted ~3,500 pages per batch buffer (~40% of the engine thread's page faults of
    /// a 1 M-event run at b100, `perf record -e page-faults`). The bytes are never read before
    /// they are written (a frame's header and payload are stored first), so the room needs no
    /// zeroing: a block this size is its own mapping (`MallocTuning`), and untouched pages cost
    /// no resident memory.
    init() {
        self.init(room: Self.standardRoom)
    }

    /// Bytes of room a new batch starts with.
    static let standardRoom = Daemon.drainBytes + (64 << 10)

    /// A batch with `room` bytes of uninitialised (untouched) room.
    init(room: Int) {
        buffer = [UInt8](unsafeUninitializedCapacity: room) { _, n in n = room }
        frames.reserveCapacity(4096)
    }

    /// An empty batch holding no storage: what a `swap` leaves behind.
    init(placeholder: Void) {}

    /// Takes `count` bytes at the end of the used part. - Returns: where they start.
    /// - Complexity: O(1) amortised (the buffer doubles when full, and keeps its size).
    @inline(__always)
    private mutating func take(_ count: Int) -> Int {
        let start = byteCount
        if start + count > buffer.count { grow(to: start + count) }
        byteCount = start + count
        return start
    }

    /// Doubles the room (or more, for one huge frame); the new room is not zeroed (see `init(room:)`).
    @inline(never)
    private mutating func grow(to needed: Int) {
        let room = Swift.max(needed, buffer.count * 2, 1 << 16)
        let used = byteCount
        let old = buffer
        buffer = [UInt8](unsafeUninitializedCapacity: room) { b, n in
            old.withUnsafeBytes { UnsafeMutableRawBufferPointer(b).copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<used])) }
            n = room
        }
    }

    /// Appends a fire-and-forget frame as a `frame` record whose header and receive time the
    /// log's thread fills.
    /// - Complexity: O(n) copy; amortised allocation-free.
    @inline(__always)
    mutating func appendFrame(_ bytes: UnsafeRawBufferPointer, origin: Int32, keyHint: FrameKeyHint? = nil) {
        let header = RecordLayout.headerSize + RecordLayout.frameFieldsSize
        let start = take(header + bytes.count)
        buffer.withUnsafeMutableBytes { b in
            let p = b.baseAddress! + start
            p.initializeMemory(as: UInt8.self, repeating: 0, count: header)
            if let src = bytes.baseAddress, bytes.count > 0 { (p + header).copyMemory(from: src, byteCount: bytes.count) }
        }
        frames.append(Frame(offset: start + header, count: bytes.count, origin: origin, ack: -1, header: Int32(header), keyHint: keyHint))
    }

    /// Appends an acknowledged payload as a `batch` record: its sequence and producer id are
    /// stored now, the record header by the log's thread.
    /// - Precondition: `producer` is at most 65,535 bytes (``AckRequest`` allows 256).
    /// - Complexity: O(producer + n) copy; amortised allocation-free.
    mutating func appendBatch(_ bytes: UnsafeRawBufferPointer, producer: [UInt8], sequence: UInt64, ack: Int32) {
        precondition(producer.count <= Int(UInt16.max), "producer id longer than 65535 bytes")
        let fields = RecordLayout.batchFieldsSize(producerCount: producer.count)
        let header = RecordLayout.headerSize + fields
        let start = take(header + bytes.count)
        buffer.withUnsafeMutableBytes { b in
            let p = b.baseAddress! + start
            p.initializeMemory(as: UInt8.self, repeating: 0, count: RecordLayout.headerSize)
            producer.withUnsafeBytes { id in
                RecordLayout.storeBatchFields(p + RecordLayout.headerSize, sequence: sequence, producer: id)
            }
            if let src = bytes.baseAddress, bytes.count > 0 { (p + header).copyMemory(from: src, byteCount: bytes.count) }
        }
        frames.append(Frame(offset: start + header, count: bytes.count, origin: -1, ack: ack, header: Int32(header)))
    }

    /// Attaches a CURVE producer's allowed prefixes to the frame just appended.
    mutating func restrictLast(to prefixes: [String]) {
        if let i = restrictions.lastIndex(of: prefixes) {
            frames[frames.count - 1].restriction = Int32(i)
        } else {
            restrictions.append(prefixes)
            frames[frames.count - 1].restriction = Int32(restrictions.count - 1)
        }
    }

    mutating func reset() {
        byteCount = 0
        frames.removeAll(keepingCapacity: true)
        pendingAcks.removeAll(keepingCapacity: true)
        if !restrictions.isEmpty { restrictions.removeAll(keepingCapacity: true) }
        if !pendingBySequence.isEmpty { pendingBySequence.removeAll(keepingCapacity: true) }
        needsSync = false
        // A one-off huge drain (e.g. 16 MiB frames) must not pin its memory forever.
        if buffer.count > 64 << 20 { buffer = FrameBatch(room: Self.standardRoom).buffer }
    }
}

// MARK: - Acknowledged ingest

/// A batch of one producer: the key of ``FrameBatch/pendingBySequence``.
struct PendingKey: Hashable {
    var producer: [UInt8]
    var sequence: UInt64
}

/// An acknowledged batch waiting for its reply.
struct PendingAck {
    /// The routing id and, for REQ peers, the empty delimiter.
    var envelope: [Message]
    var sequenceText: [UInt8]
    var producer: [UInt8]
    var sequence: UInt64
    /// Index of its payload in the batch's frames, or -1 when answered from `cachedReply`.
    var frame: Int
    /// The reply when it is known without applying (a re-sent sequence, an oversized payload).
    var cachedReply: [UInt8]?
    /// Index of an earlier pending ack of the same drain whose reply this one repeats, or -1.
    var sameAs: Int = -1
    /// Filled after the apply: what is answered.
    var reply: [UInt8]? = nil
}

/// `[routing-id, (empty delimiter)?, producer-id, sequence, payload]` as received by the ROUTER.
struct AckRequest {
    var envelope: [Message]
    var producer: [UInt8]
    var sequence: UInt64
    var sequenceText: [UInt8]
    var payload: Message

    /// - Returns: `nil` when the frames do not have that shape (answered with an error object).
    init?(_ frames: [Message]) {
        guard frames.count >= 4 else { return nil }
        var body = frames[1...]
        envelope = [frames[0]]
        if body.first!.count == 0 {
            envelope.append(Message())
            body = body.dropFirst()
        }
        guard body.count == 3 else { return nil }
        let p = body[body.startIndex], s = body[body.startIndex + 1]
        producer = p.bytes
        sequenceText = s.bytes
        guard !producer.isEmpty, producer.count <= 256,
              sequenceText.count <= 20, !sequenceText.isEmpty,
              sequenceText.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let seq = UInt64(String(decoding: sequenceText, as: UTF8.self)) else { return nil }
        sequence = seq
        payload = body[body.startIndex + 2]
    }
}

/// The status object answered for an acknowledged batch:
/// `{"accepted":98,"duplicates":0,"unrouted":1,"late":0,"rejected":[{"index":7,"reason":"bad_time","message":"..."}]}`,
/// with `"payload_error":{"reason":...,"message":...}` instead when the payload as a whole was unusable.
enum AckStatus {
    static func json(_ o: FrameOutcome) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96 + o.rejected.count * 64)
        out.append(contentsOf: #"{"accepted":"#.utf8); JSONText.appendInt(o.accepted, to: &out)
        out.append(contentsOf: #","duplicates":"#.utf8); JSONText.appendInt(o.duplicates, to: &out)
        out.append(contentsOf: #","unrouted":"#.utf8); JSONText.appendInt(o.unrouted, to: &out)
        out.append(contentsOf: #","late":"#.utf8); JSONText.appendInt(o.late, to: &out)
        out.append(contentsOf: #","rejected":["#.utf8)
        for (i, r) in o.rejected.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"index":"#.utf8); JSONText.appendInt(r.index, to: &out)
            out.append(contentsOf: #","reason":"#.utf8); JSONText.appendString(r.code, to: &out)
            out.append(contentsOf: #","message":"#.utf8); JSONText.appendString(r.message, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        if let e = o.payloadError {
            out.append(contentsOf: #","payload_error":{"reason":"#.utf8); JSONText.appendString(e.code, to: &out)
            out.append(contentsOf: #","message":"#.utf8); JSONText.appendString(e.message, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

extension AckStatus {
    /// The answer to a batch older than the producer's newest durable one: only the newest reply
    /// is kept, so the original counts are not repeated; nothing is applied.
    static func alreadyApplied(lastSequence: UInt64) -> [UInt8] {
        var out = Array(#"{"accepted":0,"duplicates":0,"unrouted":0,"late":0,"rejected":[],"already_applied":true,"last_sequence":"#.utf8)
        JSONText.appendInt(lastSequence, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The answer when the batch could not be made durable (disk full, I/O error): nothing was
    /// recorded, so the producer must re-send the same sequence later. When the append failed
    /// nothing was applied either; when the group-commit `fdatasync` failed after the drain was
    /// applied (they overlap), the events are counted in memory but not durable, and the re-send
    /// is logged and applied again, its events counted once by the engine's dedup by `source` + `id`
    /// (its reply then reports them as duplicates); `message` says which case it was.
    static func storageError(_ message: String) -> [UInt8] {
        var out = Array(#"{"accepted":0,"duplicates":0,"unrouted":0,"late":0,"rejected":[],"error":{"reason":"storage_unavailable","message":"#.utf8)
        JSONText.appendString(message, to: &out)
        out.append(contentsOf: #","retry":true}}"#.utf8)
        return out
    }
}
