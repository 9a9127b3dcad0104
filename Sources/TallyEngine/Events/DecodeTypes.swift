import CTallyCRC

// MARK: - Limits

/// Bounds the decoder enforces on every frame, so hostile input costs bounded time and memory.
///
/// - `maxDepth`: nesting of arrays/objects; the frame's outer container is depth 1, an event
///   inside a batch is depth 2, its `data` depth 3. Deeper → frame rejected `too_deep`.
///   Values above 65 536 act as 65 536.
/// - `maxStringLength`: bytes of one string (decoded UTF-8 for strings the decoder reads,
///   bytes as sent for strings it skips). Longer → the event is rejected `too_large`.
/// - `maxEventsPerBatch`: elements of a batch array. More → frame rejected `too_large`.
public struct DecodeLimits: Sendable {
    public var maxDepth = 32
    public var maxStringLength = 65_536
    public var maxEventsPerBatch = 10_000
    public init() {}
}

// MARK: - Reject reasons

/// Why a frame or one event was rejected: a stable `code` (a metric label) and a message
/// that names the attribute or field, e.g. `data.amount_vnd: expected an integer, got a string`.
public struct RejectReason: Sendable, Hashable, CustomStringConvertible {
    /// A stable machine-readable reason, used as a metric label. Never rename a value.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The frame is not well-formed JSON (syntax error anywhere, invalid UTF-8, lone surrogate).
        public static let invalidJSON = Code(rawValue: "invalid_json")
        /// Nesting deeper than ``DecodeLimits/maxDepth``.
        public static let tooDeep = Code(rawValue: "too_deep")
        /// A string longer than ``DecodeLimits/maxStringLength`` or a batch larger than ``DecodeLimits/maxEventsPerBatch``.
        public static let tooLarge = Code(rawValue: "too_large")
        /// Valid JSON, but the frame (or a batch element) is not an object.
        public static let notAnObject = Code(rawValue: "not_an_object")
        /// A required context attribute (`specversion`, `id`, `source`, `type`, `time`, or `data` for a catalog type) is absent.
        public static let missingAttribute = Code(rawValue: "missing_attribute")
        /// A context attribute has the wrong JSON type or value (empty `id`, duplicate attribute, bad `datacontenttype`, non-object `data`).
        public static let badAttribute = Code(rawValue: "bad_attribute")
        /// `specversion` is not `"1.0"`.
        public static let badSpecversion = Code(rawValue: "bad_specversion")
        /// `time` is not an RFC 3339 date-time with an offset, or not a valid date/time.
        public static let badTime = Code(rawValue: "bad_time")
        /// A required `data` field of the catalog type is absent or null.
        public static let missingField = Code(rawValue: "missing_field")
        /// A `data` field has the wrong JSON type.
        public static let wrongType = Code(rawValue: "wrong_type")
        /// A `data` field has the right JSON type but an unacceptable value (empty string, not an allowed value, out of Int64 range, not finite, duplicate).
        public static let badValue = Code(rawValue: "bad_value")
        /// Added by the engine: older than the retention horizon.
        public static let late = Code(rawValue: "late")
        /// Added by the engine: `source` outside the producer's allowed prefixes.
        public static let sourceNotAllowed = Code(rawValue: "source_not_allowed")
        /// Added by the engine: a `tally.balance` control event names an unknown indicator.
        public static let badBalance = Code(rawValue: "bad_balance")
    }

    public let code: Code
    public let message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

// MARK: - Outcomes

/// What one element of a frame decoded to. Strings are views valid until `decode` returns.
public enum DecodeOutcome: Sendable {
    /// A valid event of a catalog type.
    case event(Event)
    /// A valid envelope whose type is not in the catalog: accepted, counted as unrouted.
    case unrouted(type: StringView, source: StringView)
    /// The control event `tally.balance` with `data: {indicator: str, value: num}`.
    case balance(indicator: StringView, value: Double, at: Micros, source: StringView, id: StringView)
    /// The element is invalid; the reason names the attribute or field.
    case rejected(RejectReason)
}

// MARK: - Dedup key

/// A 128-bit hash of an event's (`source`, `id`): the identity the engine deduplicates on.
///
/// 128 bits make an accidental collision (which would drop a genuine event) negligible:
/// ~2^-64 even after 2^32 events.
public struct EventKey: Hashable, Sendable {
    public var hi: UInt64
    public var lo: UInt64
    public init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    /// The key of a (`source`, `id`) pair; equal pairs give equal keys, and the split between
    /// the two strings matters (`("ab","c")` ≠ `("a","bc")`).
    /// - Complexity: O(source.count + id.count), no allocation.
    public init(source: UnsafeBufferPointer<UInt8>, id: UnsafeBufferPointer<UInt8>) {
        var h1: UInt64 = 0x9E37_79B9_7F4A_7C15
        var h2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        Murmur3.hash128(source, &h1, &h2)
        Murmur3.hash128(id, &h1, &h2)
        self.init(hi: h1, lo: h2)
    }
}

// MARK: - Dedup prefetch hint

/// Where the engine's dedup index will look for a key, so the decoder can start those cache
/// line loads as soon as it has hashed `source` + `id`, while it still validates `time` and
/// `data` (~150 ns of independent work).
///
/// Why: the filter block load was 38% of `Engine.apply(event:)` (an L2 miss into a 2–4 MiB
/// table), and the insert into the current hour's set another random access into a few
/// hundred KiB. A prefetch never faults, so a stale hint (the filter or the set was rebuilt
/// since it was taken) costs one useless hint, never a wrong answer.
/// - Complexity: O(1), no allocation; a trivial type.
struct DedupPrefetch {
    /// The Bloom filter's words (``BlockedBloomFilter``: 64-byte blocks) and its block count.
    var filter: UnsafeRawPointer? = nil
    var filterBlocks: UInt64 = 0
    /// The slots (16 bytes each) of the set of hour `hour` and their mask (count - 1).
    var hourSlots: UnsafeRawPointer? = nil
    var hourMask: Int = 0
    var hour: Int64 = .min

    /// Prefetches the filter block `key` maps to (the same multiply-shift as the filter).
    @inline(__always)
    func touchFilter(_ key: EventKey) {
        guard let f = filter else { return }
        let block = Int(truncatingIfNeeded: key.hi.multipliedFullWidth(by: filterBlocks).high)
        tally_prefetch(f + block &* 64)
    }

    /// Prefetches the first slot `key` would probe in the newest hour's set (where a stream in
    /// time order inserts), the event's time being unknown yet.
    @inline(__always)
    func touchNewestHourSet(_ key: EventKey) {
        guard let s = hourSlots else { return }
        tally_prefetch(s + (Int(truncatingIfNeeded: key.lo) & hourMask) &* 16)
    }

    /// Prefetches the first slot `key` probes in the set of `time`'s hour, when that hour is
    /// the one the hint describes (the newest: where a stream in time order inserts).
    @inline(__always)
    func touchHourSet(_ key: EventKey, time: Micros) {
        guard ZoneCalendar.floorDiv(time, ZoneCalendar.microsPerHour) == hour else { return }
        touchNewestHourSet(key)
    }
}

// MARK: - Key read ahead

/// A frame's dedup key, read from its bytes before it is decoded, with where its `id` and
/// `source` lie (offsets from the frame's first byte).
///
/// Why: the daemon reads it when it receives the frame (the bytes are in cache then, having
/// just been copied), so the engine can prefetch the dedup lines for the frame a frame or two
/// ahead (``Engine/prefetch(_:)``) and the decoder need not hash again. It carries offsets, not
/// addresses, so it stays valid when the frame's buffer moves.
/// - Complexity: a trivial 24-byte type (an optional one is returned in registers).
public struct FrameKeyHint: Sendable, Equatable {
    public let key: EventKey
    let idOffset: UInt16
    let idCount: UInt16
    let sourceOffset: UInt16
    let sourceCount: UInt16

    /// Reads the key of the one event in `frame` when the frame begins exactly as producers
    /// write it (`{"specversion":"1.0","id":"…","source":"…"`, neither string escaped nor
    /// non-ASCII); nil otherwise (a batch, another member order, whitespace, escapes), and
    /// the decoder hashes as usual. Nothing is validated here: the decoder still reads and
    /// checks every byte, and takes the key only for the very `id` and `source` it reads.
    /// - Complexity: O(length of `id` + `source`), a few word compares, and one hash.
    public init?(frame: UnsafeRawBufferPointer) {
        guard let (id, source) = EventDecoder.peekIdAndSource(frame) else { return nil }
        // Past 64 KiB into the frame (a huge `id`): no hint, the decoder hashes.
        guard source.upperBound <= Int(UInt16.max), let base = frame.baseAddress else { return nil }
        let b = base.assumingMemoryBound(to: UInt8.self)
        key = EventKey(source: UnsafeBufferPointer(start: b + source.lowerBound, count: source.count),
                       id: UnsafeBufferPointer(start: b + id.lowerBound, count: id.count))
        idOffset = UInt16(id.lowerBound)
        idCount = UInt16(id.count)
        sourceOffset = UInt16(source.lowerBound)
        sourceCount = UInt16(source.count)
    }

    /// True when `id` and `source`, decoded from the frame starting at `base`, are the very
    /// bytes the key was read from (same offsets, same lengths).
    @inline(__always)
    func matches(id: StringView, source: StringView, base: UnsafePointer<UInt8>) -> Bool {
        id.start - base == Int(idOffset) && id.count == Int(idCount)
            && source.start - base == Int(sourceOffset) && source.count == Int(sourceCount)
    }
}

/// MurmurHash3 x64 128 (Austin Appleby, public domain), seeded with a full 128-bit state so
/// that two calls chain: the first string's digest seeds the second's.
enum Murmur3 {
    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) static func fmix(_ k0: UInt64) -> UInt64 {
        var k = k0
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }

    static func hash128(_ data: UnsafeBufferPointer<UInt8>, _ h1: inout UInt64, _ h2: inout UInt64) {
        let c1: UInt64 = 0x87C3_7B91_1142_53D5
        let c2: UInt64 = 0x4CF5_AD43_2745_937F
        let n = data.count
        var i = 0
        var k1: UInt64 = 0
        var k2: UInt64 = 0
        if let base = data.baseAddress, n > 0 {
            let raw = UnsafeRawPointer(base)
            while i + 16 <= n {
                var b1 = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                var b2 = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
                b1 &*= c1; b1 = rotl(b1, 31); b1 &*= c2; h1 ^= b1
                h1 = rotl(h1, 27); h1 &+= h2; h1 = h1 &* 5 &+ 0x52DC_E729
                b2 &*= c2; b2 = rotl(b2, 33); b2 &*= c1; h2 ^= b2
                h2 = rotl(h2, 31); h2 &+= h1; h2 = h2 &* 5 &+ 0x3849_5AB5
                i += 16
            }
            // The tail (0-15 bytes) as two little-endian words: k1 = bytes i..<i+8, k2 = the
            // rest. With n >= 8 the loads are whole words inside the buffer (ending at n where
            // the tail is shorter), shifted down: no byte loop (ids and sources are 10-40 bytes).
            let rem = n - i
            if rem > 0 && n >= 8 {
                @inline(__always) func word(_ at: Int) -> UInt64 {
                    UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                }
                if rem >= 8 {
                    k1 = word(i)
                    if rem > 8 { k2 = word(n - 8) >> UInt64(8 * (16 - rem)) }
                } else {
                    k1 = word(n - 8) >> UInt64(8 * (8 - rem))
                }
            } else {
                var j = n - 1
                while j >= i {
                    let b = UInt64(base[j])
                    if j - i >= 8 { k2 = (k2 << 8) | b } else { k1 = (k1 << 8) | b }
                    j -= 1
                }
            }
        }
        if n - i > 8 { k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2 }
        if n - i > 0 { k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1 }
        h1 ^= UInt64(n); h2 ^= UInt64(n)
        h1 &+= h2; h2 &+= h1
        h1 = fmix(h1); h2 = fmix(h2)
        h1 &+= h2; h2 &+= h1
    }
}
