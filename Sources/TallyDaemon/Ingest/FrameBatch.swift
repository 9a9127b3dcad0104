import ZeroMQ

// MARK: - FrameBatch

/// The frames of one engine-loop drain, copied into one reused buffer.
///
/// Why a copy: the write-ahead log appends the whole drain with one `write` before anything is
/// applied, and the acknowledged path must hold its payloads until the group `fsync`. One
/// `memcpy` per frame into a buffer that keeps its capacity costs far less than a syscall per
/// frame, and nothing is allocated per frame once the buffer has grown.
struct FrameBatch {
    struct Frame {
        var offset: Int
        var count: Int
        /// Index of the PULL socket it came from, or -1 for the acknowledged path.
        var origin: Int32
        /// Index into ``pendingAcks`` for an acknowledged payload, else -1.
        var ack: Int32
    }

    var buffer: [UInt8] = []
    var frames: [Frame] = []
    var pendingAcks: [PendingAck] = []

    init() {
        buffer.reserveCapacity(1 << 20)
        frames.reserveCapacity(4096)
    }

    /// - Complexity: O(n) copy; amortised allocation-free.
    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer, origin: Int32, ack: Int32) {
        frames.append(Frame(offset: buffer.count, count: bytes.count, origin: origin, ack: ack))
        buffer.append(contentsOf: bytes)
    }

    mutating func reset() {
        buffer.removeAll(keepingCapacity: true)
        frames.removeAll(keepingCapacity: true)
        pendingAcks.removeAll(keepingCapacity: true)
        // A one-off huge drain (e.g. 16 MiB frames) must not pin its memory forever.
        if buffer.capacity > 64 << 20 { buffer = []; buffer.reserveCapacity(1 << 20) }
    }
}

// MARK: - Acknowledged ingest

/// An acknowledged batch waiting for its reply.
struct PendingAck {
    /// The routing id and, for REQ peers, the empty delimiter.
    var envelope: [Message]
    var sequenceText: [UInt8]
    var producer: String
    var sequence: UInt64
    /// Index of its payload in the batch's frames, or -1 when answered from `cachedReply`.
    var frame: Int
    /// The reply when it is known without applying (a re-sent sequence, an oversized payload).
    var cachedReply: [UInt8]?
}

/// `[routing-id, (empty delimiter)?, producer-id, sequence, payload]` as received by the ROUTER.
struct AckRequest {
    var envelope: [Message]
    var producer: String
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
        producer = p.string
        sequenceText = s.bytes
        guard !producer.isEmpty, producer.utf8.count <= 256,
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

/// Per producer, the last answered sequence and its reply: a re-sent batch is answered again and
/// applied zero more times. In memory here; the durability layer's `ProducerTable` makes it
/// survive restarts.
/// - Complexity: O(1) per lookup; memory O(producers × reply size).
struct ProducerReplies {
    private var table: [String: (sequence: UInt64, reply: [UInt8])] = [:]

    /// The reply for a sequence already applied, or `nil` when it is new.
    func reply(for producer: String, sequence: UInt64) -> [UInt8]? {
        guard let last = table[producer], sequence <= last.sequence else { return nil }
        if sequence == last.sequence { return last.reply }
        return Array(#"{"accepted":0,"duplicates":0,"unrouted":0,"late":0,"rejected":[],"already_applied":true}"#.utf8)
    }

    mutating func record(producer: String, sequence: UInt64, reply: [UInt8]) {
        table[producer] = (sequence, reply)
    }
}
