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
        guard count > 0 else { return true }  // an empty array may have no base address
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
///
/// A plain value (no reference counting): copying an ``Event`` is a memcpy, which keeps
/// the decoder → engine hand-off free of retain/release traffic.
public enum FieldValue: Sendable {
    /// An optional field that is not present (or `null`).
    case absent
    case string(StringView)
    case int(Int64)
    case number(Double)
    case bool(Bool)
    case strings(StringList)
}

/// A borrowed list of ``StringView``s (the value of a `[str]` field), with the lifetime of
/// the views it holds: valid only during the call that hands it out.
public struct StringList: RandomAccessCollection, @unchecked Sendable {
    public let base: UnsafePointer<StringView>?
    public let count: Int

    @inlinable
    public init(base: UnsafePointer<StringView>?, count: Int) {
        self.base = base
        self.count = count
    }

    /// The empty list.
    public static var empty: StringList { StringList(base: nil, count: 0) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    @inlinable
    public subscript(i: Int) -> StringView {
        precondition(i >= 0 && i < count, "StringList index out of range")
        return base.unsafelyUnwrapped[i]
    }

    /// True if some element equals `bytes` (e.g. a compiled filter constant). - Complexity: O(count).
    public func contains(_ bytes: [UInt8]) -> Bool { contains { $0.equals(bytes) } }
}

// MARK: - Inline field storage

/// The `data` fields of one event, stored inline (no heap allocation per event).
///
/// Why inline: the decoder produces millions of events per second and most of them are
/// consumed (counters bumped) and forgotten at once; an `Array` per event would cost a
/// malloc/free pair and reference counting on the hot path. The catalog's widest type has
/// five fields, so five slots suffice; ``Catalog/init(types:)`` enforces that bound.
///
/// The contract is `fields[i]` (slot `i` = the field's position in the catalog type's
/// `fields`) and `fields.count`; it is a `RandomAccessCollection`, so `for f in fields`,
/// `map` and friends work too.
public struct EventFields: RandomAccessCollection, Sendable {
    /// The largest number of `data` fields an event type may declare.
    public static let capacity = 5

    /// The slots as a homogeneous tuple: laid out contiguously (as a C array), so storing slot
    /// `i` is one indexed store instead of a five-way switch. Reads keep the switch over the
    /// tuple's elements (an indexed load through `withUnsafeBytes(of:)` measured slower: it
    /// copied the tuple).
    @usableFromInline var slots: (FieldValue, FieldValue, FieldValue, FieldValue, FieldValue) =
        (.absent, .absent, .absent, .absent, .absent)
    public let count: Int

    /// `count` fields, all `.absent`.
    @inlinable
    public init(count: Int) {
        precondition(count >= 0 && count <= EventFields.capacity, "an event has at most \(EventFields.capacity) fields")
        self.count = count
    }

    /// The fields of an array (at most ``capacity`` of them).
    public init(_ values: [FieldValue]) {
        self.init(count: values.count)
        for (i, v) in values.enumerated() { self[i] = v }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// The field in slot `i`. - Complexity: O(1).
    @inlinable
    public subscript(i: Int) -> FieldValue {
        get {
            precondition(i >= 0 && i < count, "field slot out of range")
            switch i {
            case 0: return slots.0
            case 1: return slots.1
            case 2: return slots.2
            case 3: return slots.3
            default: return slots.4
            }
        }
        set {
            precondition(i >= 0 && i < count, "field slot out of range")
            withUnsafeMutableBytes(of: &slots) {
                $0.baseAddress.unsafelyUnwrapped.advanced(by: i &* MemoryLayout<FieldValue>.stride)
                    .assumingMemoryBound(to: FieldValue.self).pointee = newValue
            }
        }
    }
}

// MARK: - Event

/// One decoded, validated CloudEvent of a catalog type.
///
/// Produced by the decoder and consumed by the engine within one call; see ``StringView``
/// for the lifetime of its strings.
public struct Event: Sendable {
    /// Position of the type in ``Catalog/types``.
    public var typeIndex: Int
    /// `time`, converted to UTC microseconds.
    public var time: Micros
    public var source: StringView { didSet { dedupKey = EventKey(source: source.bytes, id: id.bytes) } }
    public var id: StringView { didSet { dedupKey = EventKey(source: source.bytes, id: id.bytes) } }
    /// `data` fields in the order of the catalog type's `fields` (`fields[i]`, `fields.count`).
    public var fields: EventFields
    /// The dedup identity of this event: a 128-bit hash of (`source`, `id`), kept in step with
    /// them. Stored, not computed on use, so the decoder can hash it (and prefetch the dedup
    /// filter's block for it) while it still has `data` to validate.
    public private(set) var dedupKey: EventKey

    public init(typeIndex: Int, time: Micros, source: StringView, id: StringView, fields: EventFields) {
        self.init(typeIndex: typeIndex, time: time, source: source, id: id, fields: fields,
                  dedupKey: EventKey(source: source.bytes, id: id.bytes))
    }

    /// `dedupKey` must be `EventKey(source: source.bytes, id: id.bytes)` (the decoder computed it).
    @inline(__always)
    init(typeIndex: Int, time: Micros, source: StringView, id: StringView, fields: EventFields, dedupKey: EventKey) {
        self.typeIndex = typeIndex
        self.time = time
        self.source = source
        self.id = id
        self.fields = fields
        self.dedupKey = dedupKey
    }

    /// Convenience for tests and simulators: fields from an array (at most ``EventFields/capacity``).
    public init(typeIndex: Int, time: Micros, source: StringView, id: StringView, fields: [FieldValue]) {
        self.init(typeIndex: typeIndex, time: time, source: source, id: id, fields: EventFields(fields))
    }
}
