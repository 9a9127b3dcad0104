/// Microseconds since 1970-01-01T00:00:00Z. Event time, the pipeline clock and every
/// window boundary use this unit, so comparisons are integer comparisons.
public typealias Micros = Int64

/// A borrowed view of UTF-8 bytes inside a payload being decoded (or inside the decoder's
/// scratch buffer when the JSON string had escapes).
///
/// Why borrowed: most events only bump counters, so the decoder hands out views instead
/// of allocating a `String` per field. A view is valid only during the call that hands it
/// out; whatever keeps a key beyond that (state tables, distinct sets, the dedup index)
/// copies or interns it.
public struct StringView: @unchecked Sendable {
    public let start: UnsafePointer<UInt8>
    public let count: Int

    @inlinable
    public init(start: UnsafePointer<UInt8>, count: Int) {
        self.start = start
        self.count = count
    }

    @inlinable
    public var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: start, count: count) }

    /// A copy as a Swift `String` (allocates).
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    /// Byte-wise equality with a static string, without allocating.
    public func equals(_ other: StaticString) -> Bool {
        guard other.utf8CodeUnitCount == count else { return false }
        return memcmp(start, other.utf8Start, count) == 0
    }

    /// Byte-wise equality with an array of UTF-8 bytes (e.g. a compiled filter constant).
    public func equals(_ other: [UInt8]) -> Bool {
        guard other.count == count else { return false }
        return other.withUnsafeBufferPointer { memcmp(start, $0.baseAddress!, count) == 0 }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The value of one `data` field after validation against the ``Catalog``.
public enum FieldValue {
    /// An optional field that is not present.
    case absent
    case string(StringView)
    case int(Int64)
    case number(Double)
    case bool(Bool)
    case strings([StringView])
}

/// One decoded, validated CloudEvent of a catalog type.
///
/// Produced by the decoder and consumed by the engine within one call; see ``StringView``
/// for the lifetime of its strings.
public struct Event {
    /// Position of the type in ``Catalog/types``.
    public var typeIndex: Int
    /// `time`, converted to UTC microseconds.
    public var time: Micros
    public var source: StringView
    public var id: StringView
    /// `data` fields in the order of the catalog type's `fields`.
    public var fields: [FieldValue]

    public init(typeIndex: Int, time: Micros, source: StringView, id: StringView, fields: [FieldValue]) {
        self.typeIndex = typeIndex
        self.time = time
        self.source = source
        self.id = id
        self.fields = fields
    }
}
