import TallyEngine
// MARK: - Log sequence numbers and record kinds

/// A log sequence number: the ordinal of a record in the write-ahead log, starting at 1 and
/// increasing by one per record across segments and restarts. `0` means "before the first
/// record" (a checkpoint at LSN 0 covers nothing). Record numbers (not byte offsets) are used so
/// a checkpoint's "covered through LSN n" is meaningful independently of segment sizes; the
/// segment holding LSN n is found from the segment names (`wal-<first LSN>.log`).
public typealias LSN = UInt64

/// The one-byte kind of a record, covered by the record's checksum. Extensible: a reader that
/// meets an unknown kind hands it over as `LogRecord.Entry.unknown` instead of failing.
public struct RecordKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A fire-and-forget frame: `[receivedAt i64 LE µs since epoch][frame bytes]`.
    public static let frame = RecordKind(rawValue: 1)
    /// An acknowledged batch: `[sequence u64 LE][producer length u16 LE][producer id][payload]`.
    public static let batch = RecordKind(rawValue: 2)
    /// Free-form metadata (pipeline changes, markers); the body is opaque to the log.
    public static let meta = RecordKind(rawValue: 3)

    public var description: String {
        switch self {
        case .frame: "frame"
        case .batch: "batch"
        case .meta: "meta"
        default: "kind-\(rawValue)"
        }
    }
}

// MARK: - Record layout (records encoded in the caller's buffer)

/// The on-disk record layout for writers that lay records out in their own memory and hand
/// them to ``WriteAheadLog/append(records:)`` without a copy (the daemon's drain buffer).
///
/// A record is `[length u32 LE][crc32c u32 LE][kind u8][body]`: `length` counts the body bytes,
/// the CRC covers the kind byte and the body. A writer reserves ``headerSize`` (plus the body's
/// own fields: ``frameFieldsSize`` for a frame, ``batchFieldsSize(producerCount:)`` for a batch)
/// in front of the payload, fills the fields, and calls ``seal(_:kind:)`` once the body is final.
/// The bytes are identical to what `AppendBatch` encodes (tested).
public enum RecordLayout {
    /// `[length u32][crc32c u32][kind u8]`.
    public static let headerSize = 9
    /// A frame body's fields before the payload: `[receivedAt i64]`.
    public static let frameFieldsSize = 8
    /// A batch body's fields before the payload: `[sequence u64][producer length u16][producer id]`.
    @inline(__always)
    public static func batchFieldsSize(producerCount: Int) -> Int { 10 + producerCount }

    /// Writes a batch body's fields at `at` (the producer id must be at most 65,535 bytes).
    /// - Complexity: O(producer id).
    @inline(__always)
    public static func storeBatchFields(_ base: UnsafeMutableRawPointer, sequence: UInt64, producer: UnsafeRawBufferPointer) {
        base.storeBytes(of: sequence.littleEndian, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: UInt16(truncatingIfNeeded: producer.count).littleEndian, toByteOffset: 8, as: UInt16.self)
        if let p = producer.baseAddress, producer.count > 0 { (base + 10).copyMemory(from: p, byteCount: producer.count) }
    }

    /// Completes the record occupying all of `record` (header + body): stores its length and
    /// kind, then the CRC-32C of kind + body. The body must already be in place.
    /// - Complexity: O(body): one CRC pass over bytes the caller just wrote (still in cache).
    @inline(__always)
    public static func seal(_ record: UnsafeMutableRawBufferPointer, kind: RecordKind) {
        let base = record.baseAddress!
        base.storeBytes(of: UInt32(truncatingIfNeeded: record.count - headerSize).littleEndian, toByteOffset: 0, as: UInt32.self)
        base.storeBytes(of: kind.rawValue, toByteOffset: 8, as: UInt8.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base + 8, count: record.count - 8))
        base.storeBytes(of: crc.littleEndian, toByteOffset: 4, as: UInt32.self)
    }
}

// MARK: - LogEntry (what is appended)

/// One record to append, in owned arrays. For the hot path prefer
/// `WriteAheadLog.append(_:)` with an `AppendBatch` closure, which copies straight from the
/// frame's bytes into the log buffer.
public enum LogEntry: Sendable, Equatable {
    case frame(receivedAt: Int64, payload: [UInt8])
    case batch(producer: [UInt8], sequence: UInt64, payload: [UInt8])
    case meta([UInt8])
}

// MARK: - LogRecord (what replay hands back)

/// A record read back from the log. `body` is a slice of replay's read buffer: keeping it is
/// safe (copy-on-write gives replay a fresh buffer), but copying what you need is cheaper.
public struct LogRecord: Sendable {
    public let lsn: LSN
    public let kind: RecordKind
    /// The bytes after the kind byte.
    public let body: ArraySlice<UInt8>

    public init(lsn: LSN, kind: RecordKind, body: ArraySlice<UInt8>) {
        self.lsn = lsn
        self.kind = kind
        self.body = body
    }

    /// A record's body split into its fields.
    public enum Entry: Sendable, Equatable {
        case frame(receivedAt: Int64, payload: ArraySlice<UInt8>)
        case batch(producer: ArraySlice<UInt8>, sequence: UInt64, payload: ArraySlice<UInt8>)
        case meta(ArraySlice<UInt8>)
        case unknown(kind: UInt8, body: ArraySlice<UInt8>)
    }

    /// Splits the body by kind.
    /// - Throws: `DurabilityError.malformedRecord` when the body is too short for its kind
    ///   (impossible for a record that passed its checksum unless written by a buggy writer).
    /// - Complexity: O(1); the returned slices share the body's storage.
    public func decoded() throws(DurabilityError) -> Entry {
        let b = body.startIndex
        switch kind {
        case .frame:
            guard body.count >= 8 else { throw .malformedRecord(lsn: lsn, reason: "frame body shorter than 8 bytes") }
            let t = Int64(bitPattern: ByteCoding.loadUInt64(body, at: b))
            return .frame(receivedAt: t, payload: body[(b + 8)...])
        case .batch:
            guard body.count >= 10 else { throw .malformedRecord(lsn: lsn, reason: "batch body shorter than 10 bytes") }
            let sequence = ByteCoding.loadUInt64(body, at: b)
            let plen = Int(ByteCoding.loadUInt16(body, at: b + 8))
            guard body.count >= 10 + plen else { throw .malformedRecord(lsn: lsn, reason: "producer id runs past the body") }
            return .batch(producer: body[(b + 10)..<(b + 10 + plen)], sequence: sequence, payload: body[(b + 10 + plen)...])
        case .meta:
            return .meta(body)
        default:
            return .unknown(kind: kind.rawValue, body: body)
        }
    }
}

// MARK: - Little-endian helpers

enum ByteCoding {
    @inline(__always)
    static func loadUInt64(_ bytes: ArraySlice<UInt8>, at index: Int) -> UInt64 {
        bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: index - bytes.startIndex, as: UInt64.self)) }
    }

    @inline(__always)
    static func loadUInt32(_ bytes: ArraySlice<UInt8>, at index: Int) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: index - bytes.startIndex, as: UInt32.self)) }
    }

    @inline(__always)
    static func loadUInt16(_ bytes: ArraySlice<UInt8>, at index: Int) -> UInt16 {
        bytes.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: index - bytes.startIndex, as: UInt16.self)) }
    }

    @inline(__always)
    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    static func append(_ value: UInt16, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    static func store(_ value: UInt32, into bytes: inout [UInt8], at index: Int) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: index, as: UInt32.self) }
    }
}
