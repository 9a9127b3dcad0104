import CTallyCRC

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Decoder

/// Decodes ZeroMQ frames of CloudEvents 1.0 JSON (structured mode) into validated
/// ``Event``s of the ``Catalog``: the hot path of the daemon.
///
/// A hand-written, zero-copy scanner specialised for CloudEvents rather than a general JSON
/// parser: one pass over the bytes, the envelope in the producers' attribute order matched a
/// whole member at a time with word compares (any other order or spacing: keys matched by
/// length and bytes), `data` fields matched against the compiled catalog type, strings
/// handed out as ``StringView``s into the payload (or, when they hold escapes, into a
/// per-frame scratch buffer), `time` parsed with a cached day number. No `String`,
/// `Dictionary` or `Array` is allocated per event (except the array of a non-empty `[str]`
/// field).
///
/// Rules beyond the catalog (contract v1, `shared/spec/events.md`):
/// - **Duplicate keys are rejected** (`bad_attribute` for an attribute, `bad_value` for a
///   `data` field): "last wins" would let two parsers of one frame see different events.
///   Duplicates of ignored keys (extensions, unknown `data` fields) are not checked.
/// - **`null`** for an optional `data` field means absent; for a required one it is
///   `missing_field`. `data: null` for a catalog type is `missing_attribute`.
/// - **Unknown `data` fields are ignored** (forward compatibility: a producer may add fields
///   before the catalog names them). `subject` and extension attributes are ignored.
/// - `datacontenttype`, when present, must be `application/json` (parameters after `;`
///   such as `; charset=utf-8` are accepted).
/// - Strings must be valid UTF-8 and may not hold unescaped control characters; `\u`
///   escapes must form valid scalars (a lone surrogate is `invalid_json`).
/// - Every string anywhere in an event counts against ``DecodeLimits/maxStringLength``.
/// - The first problem of an event is reported, envelope before `data`.
///
/// Frame-level rejections (nothing handed to `body`): not JSON or a syntax error anywhere,
/// invalid UTF-8, a scalar frame (`not_an_object`), more than
/// ``DecodeLimits/maxEventsPerBatch`` elements (`too_large`), nesting deeper than
/// ``DecodeLimits/maxDepth`` (`too_deep`, detected without recursion).
///
/// Value semantics: copies of a decoder share nothing observable (the scratch storage is
/// copied on write). One decoder must not be used from two threads at once.
public struct EventDecoder: @unchecked Sendable {
    var storage: Storage

    /// The limits this decoder enforces.
    public var limits: DecodeLimits { storage.limits }
    /// The catalog this decoder validates against.
    public var catalog: Catalog { storage.compiled.catalog }

    /// - Complexity: O(catalog size) to compile the catalog's tables.
    public init(catalog: Catalog = .v1, limits: DecodeLimits = .init()) {
        storage = Storage(compiled: CompiledCatalog(catalog), limits: limits)
    }

    /// Decodes one ZeroMQ frame: a CloudEvent JSON object, or a JSON array of them (batch).
    ///
    /// Returns a frame-level ``RejectReason`` (not JSON, not an object/array, syntax error
    /// anywhere in the frame, too many events, too deep) and then calls `body` for NO
    /// element; otherwise calls `body(index, outcome)` for each element in order and returns
    /// nil. All ``StringView``s handed to `body` stay valid until `decode` returns.
    ///
    /// - Complexity: O(payload bytes), one pass (two over a `data` that precedes `type`).
    ///   Memory: a scratch buffer of the largest frame seen, plus, for batches, the outcomes
    ///   of one batch (bounded by ``DecodeLimits/maxEventsPerBatch``).
    public mutating func decode(_ payload: UnsafeRawBufferPointer, _ body: (Int, DecodeOutcome) -> Void) -> RejectReason? {
        decode(payload, prefetch: DedupPrefetch(), event: { i, e in body(i, .event(e.pointee)) }, other: body)
    }

    /// ``decode(_:_:)`` handing each valid catalog event by address to `event` (valid until
    /// `decode` returns; read it in place: an `Event` is ~190 bytes) and every other outcome to
    /// `other`, in element order: what the engine uses. The closure form above wraps it and
    /// copies each event into a ``DecodeOutcome`` (measured ~5% slower per event).
    public mutating func decode(_ payload: UnsafeRawBufferPointer, event: (Int, UnsafePointer<Event>) -> Void,
                                other: (Int, DecodeOutcome) -> Void) -> RejectReason? {
        decode(payload, prefetch: DedupPrefetch(), event: event, other: other)
    }

    /// ``decode(_:_:)`` for the engine: each valid catalog event is handed to `event` by address
    /// (valid until `decode` returns; the decoder's own storage), every other outcome to `other`,
    /// in element order. It also prefetches, for each event, the dedup index's cache lines
    /// `prefetch` names as soon as `source` and `id` are hashed.
    @inline(__always)
    mutating func decode(_ payload: UnsafeRawBufferPointer, prefetch: DedupPrefetch, keyHint: FrameKeyHint? = nil,
                         event onEvent: (Int, UnsafePointer<Event>) -> Void,
                         other onOther: (Int, DecodeOutcome) -> Void) -> RejectReason? {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        let s = storage
        guard let raw = payload.baseAddress, payload.count > 0 else {
            return RejectReason(code: .invalidJSON, message: "empty frame: expected a JSON object or array")
        }
        let base = raw.assumingMemoryBound(to: UInt8.self)
        s.beginFrame(payload.count + 16)
        s.lastFrameBatched = false
        var sc = Scanner(base: base, count: payload.count, storage: s)
        sc.prefetch = prefetch
        sc.keyHint = keyHint
        defer { s.dayCache = sc.dayCache }
        do throws(FrameFailure) {
            sc.ws()
            switch sc.byte {
            case UInt8(ascii: "{"):
                let slot = s.events
                let outcome = try sc.event(depth: 1, into: slot)
                try sc.expectEnd()
                if let outcome { onOther(0, outcome.outcome) } else { onEvent(0, UnsafePointer(slot)) }
                return nil
            case UInt8(ascii: "["):
                s.lastFrameBatched = true
                var others = s.others
                s.others = []
                let n = try sc.batch(others: &others)
                let items = s.items, events = s.events
                for i in 0..<n {
                    let k = Int(items[i])
                    if k >= 0 { onEvent(i, UnsafePointer(events + k)) } else { onOther(i, others[-1 - k]) }
                }
                others.removeAll(keepingCapacity: true)
                s.others = others
                return nil
            default:
                let what = Scanner.describe(sc.byte)
                _ = try sc.skipValue(depth: 1)
                try sc.expectEnd()
                return RejectReason(code: .notAnObject,
                                    message: "the frame is \(what): expected an object or an array of objects")
            }
        } catch {
            return RejectReason(code: error.code, message: error.message)
        }
    }

    // MARK: Peek

    /// The scan of ``FrameKeyHint/init(frame:)``: where the `id` and `source` of the one event in
    /// `payload` lie (offsets), when the frame begins exactly as producers write it.
    /// - Complexity: O(length of `id` + `source`).
    static func peekIdAndSource(_ payload: UnsafeRawBufferPointer) -> (id: Range<Int>, source: Range<Int>)? {
        guard let raw = payload.baseAddress, payload.count > 40 else { return nil }
        let base = raw.assumingMemoryBound(to: UInt8.self)
        let end = base + payload.count
        guard base.pointee == UInt8(ascii: "{"), Scanner.isSpecversionMember(base + 1, end) else { return nil }
        var p = base + 20
        guard Scanner.isIdMember(p, end) else { return nil }
        p += 7
        guard let idEnd = plainStringEnd(p, end) else { return nil }
        let id = (p - base)..<(idEnd - base)
        p = idEnd + 1
        guard Scanner.isSourceMember(p, end) else { return nil }
        p += 11
        guard let sourceEnd = plainStringEnd(p, end) else { return nil }
        return (id, (p - base)..<(sourceEnd - base))
    }

    /// The closing quote of the string whose first byte is at `p`, when no byte before it is
    /// a backslash, a control character or non-ASCII; else nil.
    @inline(__always)
    private static func plainStringEnd(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> UnsafePointer<UInt8>? {
        let p = Scanner.firstSpecial(start, end)
        return p < end && p.pointee == Scanner.quote ? p : nil
    }

    // MARK: Storage

    final class Storage {
        let compiled: CompiledCatalog
        let limits: DecodeLimits
        /// Decoded strings with escapes; never reallocated during a frame (sized up front to
        /// the frame, which bounds the decoded bytes), so views into it stay valid.
        // Dynamic exclusivity checks are off for these: the storage is only ever touched by the
        // `decode` call that owns it (copy-on-write keeps it unshared), and the checks cost
        // ~2% of a per-event frame.
        @exclusivity(unchecked) var scratch: UnsafeMutablePointer<UInt8>
        @exclusivity(unchecked) var scratchCapacity: Int
        /// Container kinds of the iterative skipper, one per nesting level.
        let stack: UnsafeMutablePointer<UInt8>
        @exclusivity(unchecked) var dayCache = RFC3339.DayCache()
        /// Events whose dedup key was taken from a key read ahead (``FrameKeyHint``), for tests and
        /// diagnostics: one increment per such event.
        @exclusivity(unchecked) var keysTakenFromReadAhead = 0
        /// A batch's elements in order: `>= 0` indexes `events`, `< 0` is `-1 - k` for
        /// `others[k]` (unrouted, balance, rejected: rare). `itemCapacity` entries of each of
        /// `items` and `events`.
        @exclusivity(unchecked) var items: UnsafeMutablePointer<Int32>
        /// Decoded events, written in place by the scanner and handed to the caller by address:
        /// an `Event` is ~190 bytes, and passing it by value through `DecodeOutcome` and the
        /// callback cost five copies per event.
        @exclusivity(unchecked) var events: UnsafeMutablePointer<Event>
        /// A batch's elements' byte ranges in the frame, `[start, end)` as offsets: where a
        /// rejected element lies, so the reject ledger and the dead letters need not split
        /// the frame again (that rescan was ~1.5% of the engine thread at 100 events per frame).
        @exclusivity(unchecked) var spans: UnsafeMutablePointer<(Int32, Int32)>
        @exclusivity(unchecked) var itemCapacity = 16
        /// Whether the last frame decoded was a batch array (then ``spans`` hold its elements).
        @exclusivity(unchecked) var lastFrameBatched = false
        @exclusivity(unchecked) var others: [DecodeOutcome] = []
        /// Blocks holding the elements of `[str]` fields. A block never moves while a frame
        /// is decoded (lists point into it); all are reused from the first one per frame.
        @exclusivity(unchecked) var viewBlocks: [(base: UnsafeMutablePointer<StringView>, capacity: Int)] = []
        @exclusivity(unchecked) var viewBlock = 0
        @exclusivity(unchecked) var viewUsed = 0

        init(compiled: CompiledCatalog, limits: DecodeLimits) {
            self.compiled = compiled
            self.limits = limits
            scratchCapacity = 4096
            scratch = .allocate(capacity: scratchCapacity)
            stack = .allocate(capacity: Storage.effectiveDepth(limits) + 2)
            items = .allocate(capacity: itemCapacity)
            events = .allocate(capacity: itemCapacity)
            spans = .allocate(capacity: itemCapacity)
        }

        deinit {
            scratch.deallocate()
            stack.deallocate()
            items.deallocate()
            events.deallocate()
            spans.deallocate()
            for b in viewBlocks { b.base.deallocate() }
        }

        func copy() -> Storage { Storage(compiled: compiled, limits: limits) }

        /// The bytes of element `index` of the last frame decoded (`frameCount` bytes): its
        /// range in a batch, the whole frame for a single object; nil if unknown (a frame of
        /// 2 GiB or more, whose offsets the spans do not hold).
        /// - Precondition: `index` is an element of that frame.
        func elementRange(_ index: Int, frameCount: Int) -> Range<Int>? {
            guard lastFrameBatched else { return 0..<frameCount }
            guard frameCount < Int(Int32.max) else { return nil }
            let (a, b) = spans[index]
            return Int(a)..<Int(b)
        }

        /// `maxDepth` as enforced: at most 65 536 (the skipper's stack is allocated up front).
        static func effectiveDepth(_ limits: DecodeLimits) -> Int { min(max(limits.maxDepth, 0), 65_536) }

        /// Prepares for a frame of `n` bytes: the scratch buffer holds at least `n` bytes
        /// (decoded strings are never longer than their JSON text), and shrinks back after
        /// an outsized frame so memory follows the usual frame size, not the largest ever.
        @inline(__always)
        func beginFrame(_ n: Int) {
            if n > scratchCapacity || (scratchCapacity > 1 << 20 && n < scratchCapacity / 8) {
                scratch.deallocate()
                scratchCapacity = max(n, 4096)
                scratch = .allocate(capacity: scratchCapacity)
            }
            viewBlock = 0
            viewUsed = 0
            if viewBlocks.count > 1 {  // only after a frame with many or long `[str]` fields
                for b in viewBlocks.dropFirst() { b.base.deallocate() }
                viewBlocks.removeLast(viewBlocks.count - 1)
            }
        }

        /// Doubles the room for batch elements (`Event` is a trivial type, so moving is a memcpy).
        /// - Complexity: O(current room); amortised O(1) per element.
        @inline(never)
        func growItems() {
            let capacity = 2 * itemCapacity
            let newItems = UnsafeMutablePointer<Int32>.allocate(capacity: capacity)
            newItems.moveInitialize(from: items, count: itemCapacity)
            items.deallocate()
            items = newItems
            let newEvents = UnsafeMutablePointer<Event>.allocate(capacity: capacity)
            newEvents.moveInitialize(from: events, count: itemCapacity)
            events.deallocate()
            events = newEvents
            let newSpans = UnsafeMutablePointer<(Int32, Int32)>.allocate(capacity: capacity)
            newSpans.moveInitialize(from: spans, count: itemCapacity)
            spans.deallocate()
            spans = newSpans
            itemCapacity = capacity
        }

        /// Room for one more view after `list`, the list of `count` views being built at the
        /// end of the current block (nil when empty): returns the list's (possibly moved) start.
        /// - Complexity: amortised O(1) per element.
        func growList(_ list: UnsafeMutablePointer<StringView>?, count: Int) -> UnsafeMutablePointer<StringView> {
            if viewBlock < viewBlocks.count && viewUsed < viewBlocks[viewBlock].capacity {
                viewUsed += 1
                return list ?? viewBlocks[viewBlock].base + (viewUsed - 1)
            }
            // The current block is full (or there is none): continue in a block with room to
            // double the list; lists already handed out stay where they are.
            let need = 2 * (count + 1)
            var next = viewBlocks.isEmpty ? 0 : viewBlock + 1
            while next < viewBlocks.count && viewBlocks[next].capacity < need { next += 1 }
            if next == viewBlocks.count {
                let capacity = max(256, need)
                viewBlocks.append((.allocate(capacity: capacity), capacity))
            }
            let dst = viewBlocks[next].base
            if let list, count > 0 { dst.update(from: list, count: count) }
            viewBlock = next
            viewUsed = count + 1
            return dst
        }
    }
}

// MARK: - Scanner

/// A frame-level failure: the whole frame is rejected.
struct FrameFailure: Error {
    var code: RejectReason.Code
    var message: String
}

/// The byte scanner over one frame. A local value: its state lives in registers.
struct Scanner {
    var p: UnsafePointer<UInt8>
    let end: UnsafePointer<UInt8>
    let base: UnsafePointer<UInt8>
    let scratch: UnsafeMutablePointer<UInt8>
    var scratchUsed = 0
    let stack: UnsafeMutablePointer<UInt8>
    let maxDepth: Int
    let maxString: Int
    let maxEvents: Int
    let cat: CompiledCatalog.Tables
    unowned(unsafe) let storage: EventDecoder.Storage
    var dayCache: RFC3339.DayCache
    /// Cache lines of the engine's dedup index to prefetch per event (none by default).
    var prefetch = DedupPrefetch()
    /// The frame's key read ahead (nil: none): taken instead of hashing when `id` and `source`
    /// are the very bytes it was read from.
    var keyHint: FrameKeyHint?

    @inline(__always)  // built in place in the caller's frame (it was returned, then memcpy'd)
    init(base: UnsafePointer<UInt8>, count: Int, storage s: EventDecoder.Storage) {
        self.base = base
        p = base
        end = base + count
        scratch = s.scratch
        stack = s.stack
        maxDepth = EventDecoder.Storage.effectiveDepth(s.limits)
        maxString = s.limits.maxStringLength
        maxEvents = s.limits.maxEventsPerBatch
        cat = s.compiled.tables
        storage = s
        dayCache = s.dayCache
    }

    // MARK: Bytes

    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")

    /// The current byte, or 0 at the end (0 is never valid outside a string, so it fails
    /// every structural check and reports "unexpected end").
    var byte: UInt8 {
        @inline(__always) get { p < end ? p.pointee : 0 }
    }

    /// Skips JSON whitespace. Every whitespace byte is <= 0x20, so the usual case (none:
    /// producers write compact JSON) costs one compare.
    @inline(__always)
    mutating func ws() {
        if p < end && p.pointee > 0x20 { return }
        while p < end {
            let c = p.pointee
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            p += 1
        }
    }

    func syntax(_ what: String) -> FrameFailure {
        let at = p - base
        let found = p < end ? "byte 0x\(String(p.pointee, radix: 16))" : "end of frame"
        return FrameFailure(code: .invalidJSON, message: "at offset \(at) (\(found)): \(what)")
    }

    func tooDeep() -> FrameFailure {
        FrameFailure(code: .tooDeep, message: "at offset \(p - base): nesting deeper than \(maxDepth) levels")
    }

    mutating func expectEnd() throws(FrameFailure) {
        ws()
        guard p == end else { throw syntax("unexpected bytes after the JSON value") }
    }

    @inline(__always)
    mutating func expect(_ c: UInt8, _ what: StaticString) throws(FrameFailure) {
        guard byte == c else { throw syntax("expected \(what)") }
        p += 1
    }

    /// After a member or an element: `,` means another one follows (true, with the whitespace
    /// after it skipped); otherwise the container must close with `close` here (false).
    /// - Throws: `invalid_json` naming `what` when neither comes.
    @inline(__always)
    mutating func another(_ close: UInt8, _ what: StaticString) throws(FrameFailure) -> Bool {
        ws()
        if byte == UInt8(ascii: ",") {
            p += 1
            ws()
            return true
        }
        try expect(close, what)
        return false
    }

    static func describe(_ b: UInt8) -> String {
        switch b {
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return "a number"
        default: return "not a JSON value"
        }
    }

    /// A user-supplied string for a message: at most 64 bytes, quoted.
    static func quoted(_ v: StringView) -> String {
        let n = min(v.count, 64)
        let s = String(decoding: UnsafeBufferPointer(start: v.start, count: n), as: UTF8.self)
        return "\"" + s + (v.count > n ? "…\"" : "\"")
    }

    // MARK: Strings

    /// Bytes of `w` that are `"`, `\`, a control character or non-ASCII: the high bit of
    /// each such byte is set (bytes above the first match may be false positives).
    @inline(__always)
    static func specialMask(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let q = w ^ (0x22 &* ones)
        let b = w ^ (0x5C &* ones)
        let mq = (q &- ones) & ~q
        let mb = (b &- ones) & ~b
        let mc = (w &- 0x20 &* ones) & ~w
        return (mq | mb | mc | w) & 0x8080_8080_8080_8080
    }

    /// The first byte at or after `start` that is `"`, `\`, a control character or non-ASCII,
    /// or `end` when there is none: where a string scan must look closer.
    ///
    /// Why 16 bytes at a time: the catalog's strings are 2–40 bytes, and one SSE2 load and three
    /// compares (`tally_string_special16`) replace two or more rounds of the 8-byte word scan.
    /// The word scan and then a byte loop finish the last 15 bytes, and are the whole scan on
    /// targets without SSE2.
    /// - Complexity: O(bytes scanned).
    @inline(__always)
    static func firstSpecial(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
        var p = start
        if tally_string_special16_available() != 0 {
            while end - p >= 16 {
                let m = tally_string_special16(p)
                if m != 0 { return p + m.trailingZeroBitCount }
                p += 16
            }
        }
        while end - p >= 8 {
            let m = specialMask(UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self)))
            if m != 0 { return p + (m.trailingZeroBitCount >> 3) }
            p += 8
        }
        while p < end {
            let c = p.pointee
            if c == quote || c == backslash || c < 0x20 || c >= 0x80 { return p }
            p += 1
        }
        return p
    }

    /// The length of the valid UTF-8 sequence at `q` (its lead byte is >= 0x80).
    @inline(__always)
    func utf8Length(_ q: UnsafePointer<UInt8>) throws(FrameFailure) -> Int {
        let c = q.pointee
        let avail = end - q
        @inline(__always) func cont(_ i: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            i < avail && q[i] >= lo && q[i] <= hi
        }
        switch c {
        case 0xC2...0xDF:
            if cont(1) { return 2 }
        case 0xE0...0xEF:
            if cont(1, c == 0xE0 ? 0xA0 : 0x80, c == 0xED ? 0x9F : 0xBF), cont(2) { return 3 }
        case 0xF0...0xF4:
            if cont(1, c == 0xF0 ? 0x90 : 0x80, c == 0xF4 ? 0x8F : 0xBF), cont(2), cont(3) { return 4 }
        default:
            break
        }
        throw FrameFailure(code: .invalidJSON, message: "at offset \(q - base): invalid UTF-8")
    }

    /// Scans the string at `p` (its opening quote) and leaves `p` after the closing quote.
    /// With `decode`, the view holds the decoded string (in the scratch buffer if it had
    /// escapes); without, escapes are only validated and the view spans the raw bytes.
    @inline(__always)
    mutating func string(decode: Bool) throws(FrameFailure) -> StringView {
        p += 1
        let start = p
        while true {
            p = Scanner.firstSpecial(p, end)
            guard p < end else { throw syntax("unterminated string") }
            let c = p.pointee
            if c == Scanner.quote {
                let v = StringView(start: start, count: p - start)
                p += 1
                return v
            }
            if c == Scanner.backslash { return try escaped(start: start, decode: decode) }
            if c < 0x20 { throw syntax("control character in a string (escape it)") }
            p += try utf8Length(p)   // `firstSpecial` stops at no other ASCII byte: a UTF-8 lead byte
        }
    }

    @inline(__always)
    func hex4(_ q: UnsafePointer<UInt8>) -> UInt32? {
        var v: UInt32 = 0
        for i in 0..<4 {
            let c = q[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - 48
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - 87
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - 55
            default: return nil
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// The slow path of ``string(decode:)`` from the first backslash at `p`.
    mutating func escaped(start: UnsafePointer<UInt8>, decode: Bool) throws(FrameFailure) -> StringView {
        let out = scratch + scratchUsed
        var w = out
        if decode {
            w.update(from: start, count: p - start)
            w += p - start
        }
        while true {
            guard p < end else { throw syntax("unterminated string") }
            let c = p.pointee
            if c == Scanner.quote {
                p += 1
                break
            }
            if c == Scanner.backslash {
                guard end - p >= 2 else { throw syntax("unterminated escape") }
                var ch: UInt8 = 0
                switch p[1] {
                case UInt8(ascii: "\""): ch = 0x22
                case UInt8(ascii: "\\"): ch = 0x5C
                case UInt8(ascii: "/"): ch = 0x2F
                case UInt8(ascii: "b"): ch = 0x08
                case UInt8(ascii: "f"): ch = 0x0C
                case UInt8(ascii: "n"): ch = 0x0A
                case UInt8(ascii: "r"): ch = 0x0D
                case UInt8(ascii: "t"): ch = 0x09
                case UInt8(ascii: "u"):
                    guard end - p >= 6, let u = hex4(p + 2) else { throw syntax("invalid \\u escape") }
                    var scalar = u
                    if u >= 0xD800 && u <= 0xDBFF {
                        guard end - p >= 12, p[6] == Scanner.backslash, p[7] == UInt8(ascii: "u"),
                              let lo = hex4(p + 8), lo >= 0xDC00 && lo <= 0xDFFF
                        else { throw syntax("a high surrogate \\u escape not followed by a low surrogate") }
                        scalar = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                        p += 12
                    } else if u >= 0xDC00 && u <= 0xDFFF {
                        throw syntax("a lone low surrogate \\u escape")
                    } else {
                        p += 6
                    }
                    if decode {
                        if scalar < 0x80 {
                            w[0] = UInt8(scalar); w += 1
                        } else if scalar < 0x800 {
                            w[0] = UInt8(0xC0 | scalar >> 6); w[1] = UInt8(0x80 | scalar & 0x3F); w += 2
                        } else if scalar < 0x10000 {
                            w[0] = UInt8(0xE0 | scalar >> 12); w[1] = UInt8(0x80 | (scalar >> 6) & 0x3F)
                            w[2] = UInt8(0x80 | scalar & 0x3F); w += 3
                        } else {
                            w[0] = UInt8(0xF0 | scalar >> 18); w[1] = UInt8(0x80 | (scalar >> 12) & 0x3F)
                            w[2] = UInt8(0x80 | (scalar >> 6) & 0x3F); w[3] = UInt8(0x80 | scalar & 0x3F); w += 4
                        }
                    }
                    continue
                default:
                    throw syntax("invalid escape")
                }
                if decode { w.pointee = ch; w += 1 }
                p += 2
            } else if c < 0x20 {
                throw syntax("control character in a string (escape it)")
            } else if c < 0x80 {
                if decode { w.pointee = c; w += 1 }
                p += 1
            } else {
                let l = try utf8Length(p)
                if decode { w.update(from: p, count: l); w += l }
                p += l
            }
        }
        if !decode { return StringView(start: start, count: p - 1 - start) }
        let count = w - out
        scratchUsed += count
        return StringView(start: UnsafePointer(out), count: count)
    }

    // MARK: Numbers and literals

    /// A scanned JSON number: its significant digits (up to 19) and decimal exponent.
    struct Number {
        var start: UnsafePointer<UInt8>
        var negative = false
        var mantissa: UInt64 = 0
        var digits = 0
        /// More than 19 significant digits: the mantissa is incomplete.
        var truncated = false
        var hasFraction = false
        var hasExponent = false
        /// Value = mantissa × 10^exp10 (when not truncated).
        var exp10 = 0
    }

    @inline(__always)
    static func isDigit(_ c: UInt8) -> Bool { c &- 48 < 10 }

    /// Scans a number with the JSON grammar `-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`.
    mutating func number() throws(FrameFailure) -> Number {
        var n = Number(start: p)
        if byte == UInt8(ascii: "-") { n.negative = true; p += 1 }
        guard Scanner.isDigit(byte) else { throw syntax("expected a digit") }
        if p.pointee == UInt8(ascii: "0") {
            p += 1
        } else {
            while p < end, Scanner.isDigit(p.pointee) {
                if n.digits < 19 {
                    n.mantissa = n.mantissa &* 10 &+ UInt64(p.pointee &- 48)
                    n.digits += 1
                } else {
                    n.truncated = true
                }
                p += 1
            }
        }
        if byte == UInt8(ascii: ".") {
            n.hasFraction = true
            p += 1
            guard Scanner.isDigit(byte) else { throw syntax("expected a digit after the decimal point") }
            while p < end, Scanner.isDigit(p.pointee) {
                if n.digits < 19 {
                    n.mantissa = n.mantissa &* 10 &+ UInt64(p.pointee &- 48)
                    n.digits += 1
                    n.exp10 -= 1
                } else {
                    n.truncated = true
                }
                p += 1
            }
        }
        if byte | 0x20 == UInt8(ascii: "e") {
            n.hasExponent = true
            p += 1
            var neg = false
            if byte == UInt8(ascii: "-") { neg = true; p += 1 } else if byte == UInt8(ascii: "+") { p += 1 }
            guard Scanner.isDigit(byte) else { throw syntax("expected a digit in the exponent") }
            var e = 0
            while p < end, Scanner.isDigit(p.pointee) {
                if e < 1_000_000 { e = e * 10 + Int(p.pointee &- 48) }
                p += 1
            }
            n.exp10 += neg ? -e : e
        }
        return n
    }

    static let powersOf10: [Double] = (0...22).map { (k: Int) -> Double in
        var v = 1.0
        for _ in 0..<k { v *= 10 }
        return v
    }

    /// The value of a number as a Double (exact fast path for up to 15-16 digits and small
    /// exponents; the correctly rounded standard parser otherwise). May be infinite.
    func double(_ n: Number) -> Double {
        if !n.truncated {
            if n.mantissa == 0 { return n.negative ? -0.0 : 0.0 }
            if n.mantissa <= 1 << 53 && n.exp10 >= -22 && n.exp10 <= 22 {
                var v = Double(n.mantissa)
                if n.exp10 < 0 { v /= Scanner.powersOf10[-n.exp10] } else { v *= Scanner.powersOf10[n.exp10] }
                return n.negative ? -v : v
            }
        }
        let text = String(decoding: UnsafeBufferPointer(start: n.start, count: p - n.start), as: UTF8.self)
        return Double(text) ?? .nan
    }

    @inline(__always)
    mutating func literal(_ word: StaticString) throws(FrameFailure) {
        let n = word.utf8CodeUnitCount
        guard end - p >= n, memcmp(p, word.utf8Start, n) == 0 else { throw syntax("invalid literal") }
        p += n
    }

    // MARK: Skipping

    /// Validates and skips one value; true if it held a string longer than the limit.
    mutating func skipValue(depth: Int) throws(FrameFailure) -> Bool {
        switch byte {
        case Scanner.quote: return try string(decode: false).count > maxString
        case UInt8(ascii: "{"), UInt8(ascii: "["): return try skipContainer(depth: depth)
        default: try skipScalar(); return false
        }
    }

    @inline(__always)
    mutating func skipScalar() throws(FrameFailure) {
        switch byte {
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try number()
        default: throw syntax("expected a JSON value")
        }
    }

    /// Skips an array or object iteratively (an explicit stack of container kinds, so a
    /// 100k-deep bomb costs no native stack); `depth` is the depth of the container at `p`.
    /// - Complexity: O(bytes of the value).
    mutating func skipContainer(depth: Int) throws(FrameFailure) -> Bool {
        guard depth <= maxDepth else { throw tooDeep() }
        var oversize = false
        stack[0] = p.pointee
        var sp = 1
        p += 1
        var first = true
        while true {
            ws()
            var top = stack[sp - 1]
            var b = byte
            if first && b == top &+ 2 {  // "[" + 2 == "]", "{" + 2 == "}"
                p += 1
                sp -= 1
            } else {
                if top == UInt8(ascii: "{") {
                    guard b == Scanner.quote else { throw syntax("expected a key string") }
                    if try string(decode: false).count > maxString { oversize = true }
                    ws()
                    try expect(UInt8(ascii: ":"), "':' after a key")
                    ws()
                    b = byte
                }
                if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") {
                    guard depth + sp <= maxDepth else { throw tooDeep() }
                    stack[sp] = b
                    sp += 1
                    p += 1
                    first = true
                    continue
                }
                if b == Scanner.quote {
                    if try string(decode: false).count > maxString { oversize = true }
                } else {
                    try skipScalar()
                }
            }
            // After a value or a closed container: a separator or more closings.
            while true {
                if sp == 0 { return oversize }
                ws()
                top = stack[sp - 1]
                let c = byte
                if c == UInt8(ascii: ",") {
                    p += 1
                    first = false
                    break
                }
                guard c == top &+ 2 else {
                    throw syntax(top == UInt8(ascii: "{") ? "expected ',' or '}'" : "expected ',' or ']'")
                }
                p += 1
                sp -= 1
            }
        }
    }

    // MARK: Batches

    /// What ``event(depth:into:)`` returns for an element that is not a valid catalog event
    /// (nil: the event is in its slot): a ``DecodeOutcome`` without the `.event` case.
    ///
    /// Why not `DecodeOutcome?`: its `.event` payload makes it ~192 bytes, so returning one
    /// cost every valid event a 192-byte copy and two outlined enum-tag helpers (~60
    /// instructions) just to say "nil"; this one is a third of the size and holds no `Event`.
    enum NonEvent {
        case unrouted(type: StringView, source: StringView)
        case balance(indicator: StringView, value: Double, at: Micros, source: StringView, id: StringView)
        case rejected(RejectReason)

        /// The public form.
        var outcome: DecodeOutcome {
            switch self {
            case .unrouted(let type, let source): .unrouted(type: type, source: source)
            case .balance(let indicator, let value, let at, let source, let id):
                .balance(indicator: indicator, value: value, at: at, source: source, id: id)
            case .rejected(let r): .rejected(r)
            }
        }
    }

    /// Decodes a batch array at `p`: element `i` goes to `storage.items[i]` (and its event to
    /// `storage.events`, or its other outcome to `others`). Returns the element count.
    mutating func batch(others: inout [DecodeOutcome]) throws(FrameFailure) -> Int {
        guard 1 <= maxDepth else { throw tooDeep() }
        p += 1
        ws()
        if byte == UInt8(ascii: "]") {
            p += 1
            try expectEnd()
            return 0
        }
        var n = 0, nEvents = 0
        // The storage's buffers in locals, reloaded only when they grow: reading them through
        // the storage on every element cost a retain/release pair of it per event (`perf`, b100).
        var capacity = storage.itemCapacity
        var items = storage.items, events = storage.events, spans = storage.spans
        while true {
            guard n < maxEvents else {
                throw FrameFailure(code: .tooLarge, message: "a batch of more than \(maxEvents) events")
            }
            if n >= capacity {
                storage.growItems()
                capacity = storage.itemCapacity
                items = storage.items
                events = storage.events
                spans = storage.spans
            }
            let elementStart = p
            let outcome: NonEvent?
            if byte == UInt8(ascii: "{") {
                outcome = try event(depth: 2, into: events + nEvents)
            } else {
                let what = Scanner.describe(byte)
                _ = try skipValue(depth: 2)
                outcome = .rejected(RejectReason(
                    code: .notAnObject, message: "batch element is \(what): expected an event object"))
            }
            if let outcome {
                items[n] = Int32(-1 - others.count)
                others.append(outcome.outcome)
            } else {
                items[n] = Int32(nEvents)
                nEvents += 1
            }
            spans[n] = (Int32(truncatingIfNeeded: elementStart - base), Int32(truncatingIfNeeded: p - base))
            n += 1
            if try another(UInt8(ascii: "]"), "',' or ']' in the batch") { continue }
            break
        }
        try expectEnd()
        return n
    }

    // MARK: Events

    static let aSpecversion: UInt32 = 1, aId: UInt32 = 2, aSource: UInt32 = 4, aType: UInt32 = 8
    static let aTime: UInt32 = 16, aContentType: UInt32 = 32, aData: UInt32 = 64

    /// The attribute bit of a key, 0 for one the decoder ignores.
    @inline(__always)
    static func classify(_ k: StringView) -> UInt32 {
        let s = k.start
        let raw = UnsafeRawPointer(s)
        switch k.count {
        case 2:
            return s[0] == UInt8(ascii: "i") && s[1] == UInt8(ascii: "d") ? aId : 0
        case 4:
            switch UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)) {  // little-endian words
            case 0x6570_7974: return aType  // "type"
            case 0x656D_6974: return aTime  // "time"
            case 0x6174_6164: return aData  // "data"
            default: return 0
            }
        case 6:
            return UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)) == 0x7275_6F73  // "sour"
                && s[4] == UInt8(ascii: "c") && s[5] == UInt8(ascii: "e") ? aSource : 0
        case 11:  // "specvers" + "sion" (overlapping loads)
            return raw.loadUnaligned(as: UInt64.self) == UInt64(littleEndian: 0x7372_6576_6365_7073)
                && raw.loadUnaligned(fromByteOffset: 7, as: UInt32.self) == UInt32(littleEndian: 0x6E6F_6973) ? aSpecversion : 0
        case 15:  // "datacont" + "tenttype"
            return raw.loadUnaligned(as: UInt64.self) == UInt64(littleEndian: 0x746E_6F63_6174_6164)
                && raw.loadUnaligned(fromByteOffset: 7, as: UInt64.self) == UInt64(littleEndian: 0x6570_7974_746E_6574) ? aContentType : 0
        default:
            return 0
        }
    }

    @inline(__always)
    static func attributeLength(_ bit: UInt32) -> Int {
        switch bit {
        case aId: return 2
        case aSource: return 6
        case aType, aTime, aData: return 4
        case aSpecversion: return 11
        default: return 15
        }
    }

    /// The attribute bit of the key at `p` if it is spelled `"name":` with no escapes and no
    /// space before the colon (how every producer writes it), else 0 (use the general path).
    @inline(__always)
    func fastAttributeKey() -> UInt32 {
        guard end - p >= 20 else { return 0 }
        let n: Int
        switch p[1] {
        case UInt8(ascii: "i"): n = 2
        case UInt8(ascii: "t"): n = 4
        case UInt8(ascii: "s"): n = p[7] == Scanner.quote ? 6 : 11
        case UInt8(ascii: "d"): n = p[5] == Scanner.quote ? 4 : 15
        default: return 0
        }
        guard p[n + 1] == Scanner.quote, p[n + 2] == UInt8(ascii: ":") else { return 0 }
        return Scanner.classify(StringView(start: p + 1, count: n))
    }

    static func attributeName(_ bit: UInt32) -> String {
        switch bit {
        case aSpecversion: return "specversion"
        case aId: return "id"
        case aSource: return "source"
        case aType: return "type"
        case aTime: return "time"
        case aContentType: return "datacontenttype"
        default: return "data"
        }
    }

    /// True when the bytes at `p` are exactly `"1.0"` (the only valid specversion, unescaped).
    @inline(__always)
    static func isSpecversion10(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool {
        guard end - p >= 5 else { return false }
        return UnsafeRawPointer(p).loadUnaligned(as: UInt32.self) == UInt32(littleEndian: 0x302E_3122)  // "\"1.0"
            && p[4] == quote
    }

    // MARK: Envelope in producer order

    /// `,"type":`, `,"time":`, `,"data":` as little-endian words: the separator, key and colon
    /// before a member's value.
    static let kType: UInt64 = 0x3A22_6570_7974_222C
    static let kTime: UInt64 = 0x3A22_656D_6974_222C, kData: UInt64 = 0x3A22_6174_6164_222C

    /// The 8 bytes at `p` as a little-endian word (the caller checked they are in the frame).
    @inline(__always)
    static func word(_ p: UnsafePointer<UInt8>, _ offset: Int = 0) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// True when the 8 bytes at `p` are `key` and, when `then` is given, the 9th is `then`: one
    /// or two compares instead of a `,` check, three whitespace checks, a key scan and its
    /// classification.
    @inline(__always)
    static func isMember(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>, _ key: UInt64, then: UInt8? = nil) -> Bool {
        guard end - p >= 9 else { return false }
        return word(p) == key && (then == nil || p[8] == then!)
    }

    /// True when the bytes at `p` are `,"id":"` (7 bytes: one masked compare).
    @inline(__always)
    static func isIdMember(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool {
        guard end - p >= 9 else { return false }
        return word(p) & 0x00FF_FFFF_FFFF_FFFF == 0x0022_3A22_6469_222C
    }

    /// True when the bytes at `p` are exactly `"specversion":"1.0"` (19 bytes: three compares).
    @inline(__always)
    static func isSpecversionMember(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool {
        guard end - p >= 20 else { return false }
        return word(p) == 0x7265_7663_6570_7322  // `"specver`
            && word(p, 8) == 0x3122_3A22_6E6F_6973  // `sion":"1`
            && word(p, 11) == 0x2230_2E31_223A_226E  // `n":"1.0"`
    }

    /// True when the bytes at `p` are `,"source":"` (11 bytes, two overlapping compares).
    @inline(__always)
    static func isSourceMember(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool {
        guard end - p >= 12 else { return false }
        return word(p) == 0x6563_7275_6F73_222C  // `,"source`
            && word(p, 3) == 0x223A_2265_6372_756F  // `ource":"`
    }

    /// True when the bytes at `p` are exactly `,"datacontenttype":"application/json"` (37 bytes,
    /// five compares; the value closed, so no parameters).
    @inline(__always)
    static func isContentTypeMember(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool {
        guard end - p >= 38 else { return false }
        return word(p) == 0x6F63_6174_6164_222C  // `,"dataco`
            && word(p, 8) == 0x7079_7474_6E65_746E  // `ntenttyp`
            && word(p, 16) == 0x6C70_7061_223A_2265  // `e":"appl`
            && word(p, 24) == 0x2F6E_6F69_7461_6369  // `ication/`
            && word(p, 29) == 0x226E_6F73_6A2F_6E6F  // `on/json"`
    }

    /// True when the bytes at `p` are exactly `"application/json"` (no parameters, no escapes).
    @inline(__always)
    static func isApplicationJSON(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool {
        guard end - p >= 18 else { return false }
        let raw = UnsafeRawPointer(p)
        return raw.loadUnaligned(as: UInt64.self) == UInt64(littleEndian: 0x6163_696C_7070_6122)  // "\"applica"
            && raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self) == UInt64(littleEndian: 0x6F73_6A2F_6E6F_6974)  // "tion/jso"
            && p[16] == UInt8(ascii: "n") && p[17] == quote
    }

    /// The `time` string at `p` when it has one of the shapes producers write,
    /// `YYYY-MM-DDTHH:MM:SS.mmm+HH:MM` (29 bytes) or `YYYY-MM-DDTHH:MM:SS.mmmZ` (24), and is a
    /// valid date-time: its instant and the bytes to skip (quotes included). Nil sends it to the
    /// general path. A success is exactly what that path returns: every byte the parser accepts
    /// is a digit or a separator, so the quote after them closes the string.
    /// - Complexity: O(1), one parse; a failed guess costs a byte compare or a failed parse.
    @inline(__always)
    mutating func fastTime() -> (Micros, Int)? {
        let avail = end - p
        guard avail > 30, p.pointee == Scanner.quote else { return nil }
        if p[30] == Scanner.quote, let t = RFC3339.parse(p + 1, 29, cache: &dayCache) { return (t, 31) }
        if p[25] == Scanner.quote, let t = RFC3339.parse(p + 1, 24, cache: &dayCache) { return (t, 26) }
        return nil
    }

    /// Decodes one event object at `p` (its `{`) at nesting `depth`: a valid catalog event is
    /// written to `slot` (initialised; nil returned), any other outcome is returned.
    mutating func event(depth: Int, into slot: UnsafeMutablePointer<Event>) throws(FrameFailure) -> NonEvent? {
        guard depth <= maxDepth else { throw tooDeep() }
        p += 1
        var seen: UInt32 = 0
        var attrError: RejectReason? = nil
        var id = StringView(start: p, count: 0)
        var source = id
        var typeName = id
        var time: Micros = 0
        var typeIndex = -1
        var dataAt: UnsafePointer<UInt8>? = nil
        var dataOversize = false
        var fields = EventFields(count: 0)
        var dataError: RejectReason? = nil
        var dataDone = false
        // Hashed as soon as both `id` and `source` are read (before `time` and `data`), so the
        // prefetch of the dedup filter block overlaps the rest of the event's validation.
        var eventKey = EventKey(hi: 0, lo: 0)
        var keyed = false
        // The envelope as producers write it, `{"specversion":"1.0","id":"…","source":"…",
        // "type":"…"[,"datacontenttype":"application/json"],"time":"…"[,"datacontenttype":…],
        // "data":{…}}`, matched by whole members in a few word compares; at the first difference
        // (order, whitespace, another value, an attribute error) the general loop below takes
        // over where this stopped (`stage`: 0 nothing read, 1 after a member's value, 2 the
        // object closed). Each step sets the loop's state exactly as the loop would, and the
        // values are read by the same functions, so the outcome is the same either way.
        // Saves ~600 instructions per event (round 9a).
        var stage = 0
        fast: if Scanner.isSpecversionMember(p, end) {
            p += 19
            seen = Scanner.aSpecversion
            stage = 1
            guard Scanner.isIdMember(p, end) else { break fast }
            seen |= Scanner.aId
            p += 6
            // At its opening quote: `attributeString`'s string case, written out three times here
            // (a shared `@inline(__always)` helper with the error `inout` cost ~16 instructions
            // per event, callgrind).
            id = try string(decode: true)
            if id.count == 0 || id.count > maxString { attrError = attributeProblem(Scanner.aId, id) }
            guard attrError == nil, Scanner.isSourceMember(p, end) else { break fast }
            seen |= Scanner.aSource
            p += 10
            source = try string(decode: true)
            if source.count == 0 || source.count > maxString { attrError = attributeProblem(Scanner.aSource, source) }
            guard attrError == nil else { break fast }
            if let hint = keyHint, hint.matches(id: id, source: source, base: base) {
                eventKey = hint.key   // hashed, and its lines prefetched, frames ago
                storage.keysTakenFromReadAhead &+= 1
            } else {
                eventKey = EventKey(source: source.bytes, id: id.bytes)
                prefetch.touchFilter(eventKey)
            }
            keyed = true
            guard Scanner.isMember(p, end, Scanner.kType, then: Scanner.quote) else { break fast }
            seen |= Scanner.aType
            p += 8
            typeName = try string(decode: true)
            if typeName.count == 0 || typeName.count > maxString { attrError = attributeProblem(Scanner.aType, typeName) }
            guard attrError == nil else { break fast }
            typeIndex = cat.typeIndex(typeName.start, typeName.count)
            if Scanner.isContentTypeMember(p, end) {
                seen |= Scanner.aContentType
                p += 37
            }
            guard Scanner.isMember(p, end, Scanner.kTime) else { break fast }
            p += 8
            guard let (t, n) = fastTime() else {
                p -= 8  // the general path reads this member
                break fast
            }
            seen |= Scanner.aTime
            p += n
            time = t
            prefetch.touchHourSet(eventKey, time: t)
            if seen & Scanner.aContentType == 0 && Scanner.isContentTypeMember(p, end) {
                seen |= Scanner.aContentType
                p += 37
            }
            guard typeIndex >= 0, Scanner.isMember(p, end, Scanner.kData, then: UInt8(ascii: "{")) else { break fast }
            seen |= Scanner.aData
            p += 8
            dataError = try data(type: typeIndex, depth: depth + 1, into: &fields)
            dataDone = true
            if byte == UInt8(ascii: "}") {
                p += 1
                stage = 2
            }
        }
        var more: Bool
        switch stage {
        case 0:
            ws()
            if byte == UInt8(ascii: "}") {
                p += 1
                more = false
            } else {
                more = true
            }
        case 1:
            more = try another(UInt8(ascii: "}"), "',' or '}' after a member of the event")
        default:
            more = false
        }
        if more {
            while true {
                guard byte == Scanner.quote else { throw syntax("expected a key string") }
                let key: StringView
                var k = fastAttributeKey()
                if k != 0 {  // `"name":` spelled plainly: no string scan needed
                    let n = Scanner.attributeLength(k)
                    key = StringView(start: p + 1, count: n)
                    p += n + 3
                } else {
                    key = try string(decode: true)
                    ws()
                    try expect(UInt8(ascii: ":"), "':' after a key")
                    k = Scanner.classify(key)
                }
                ws()
                if attrError != nil || k == 0 {
                    let over = try skipValue(depth: depth + 1)
                    if attrError == nil && (over || key.count > maxString) {
                        attrError = RejectReason(code: .tooLarge, message: "\(Scanner.quoted(key)): a string longer than \(maxString) bytes")
                    }
                } else if seen & k != 0 {
                    attrError = RejectReason(code: .badAttribute, message: "\(Scanner.attributeName(k)): duplicate attribute")
                    _ = try skipValue(depth: depth + 1)
                } else {
                    seen |= k
                    switch k {
                    case Scanner.aId, Scanner.aSource:
                        let value = try attributeString(k, &attrError, depth: depth)
                        if k == Scanner.aId { id = value } else { source = value }
                        // Both read: hash now and prefetch the dedup filter while time and data are validated.
                        if seen & (Scanner.aId | Scanner.aSource) == (Scanner.aId | Scanner.aSource) && attrError == nil {
                            eventKey = EventKey(source: source.bytes, id: id.bytes)
                            keyed = true
                            prefetch.touchFilter(eventKey)
                        }
                    case Scanner.aType:
                        typeName = try attributeString(k, &attrError, depth: depth)
                        if attrError == nil { typeIndex = cat.typeIndex(typeName.start, typeName.count) }
                    case Scanner.aSpecversion:
                        if Scanner.isSpecversion10(p, end) {
                            p += 5  // `"1.0"`, as every producer writes it: no string scan
                        } else if byte == Scanner.quote {
                            let v = try string(decode: true)
                            if !(v.count == 3 && v.start[0] == UInt8(ascii: "1") && v.start[1] == UInt8(ascii: ".")
                                && v.start[2] == UInt8(ascii: "0")) {
                                attrError = RejectReason(code: .badSpecversion,
                                                         message: "specversion: expected \"1.0\", got \(Scanner.quoted(v))")
                            }
                        } else {
                            let what = Scanner.describe(byte)
                            _ = try skipValue(depth: depth + 1)
                            attrError = RejectReason(code: .badSpecversion, message: "specversion: expected the string \"1.0\", got \(what)")
                        }
                    case Scanner.aTime:
                        if let (t, n) = fastTime() {
                            p += n  // the common shapes parsed in place: no separate string scan
                            time = t
                            if keyed { prefetch.touchHourSet(eventKey, time: t) }
                        } else if byte == Scanner.quote {
                            let v = try string(decode: true)
                            if let t = RFC3339.parse(v.start, v.count, cache: &dayCache) {
                                time = t
                                if keyed { prefetch.touchHourSet(eventKey, time: t) }
                            } else {
                                attrError = RejectReason(code: .badTime, message:
                                    "time: expected an RFC 3339 date-time with an offset (e.g. 2024-04-30T23:59:59+07:00), got \(Scanner.quoted(v))")
                            }
                        } else {
                            let what = Scanner.describe(byte)
                            _ = try skipValue(depth: depth + 1)
                            attrError = RejectReason(code: .badTime, message: "time: expected an RFC 3339 string, got \(what)")
                        }
                    case Scanner.aContentType:
                        if Scanner.isApplicationJSON(p, end) {
                            p += 18  // `"application/json"` exactly: no string scan
                        } else if byte == Scanner.quote {
                            let v = try string(decode: true)
                            let ok = v.count >= 16 && memcmp(v.start, "application/json", 16) == 0
                                && (v.count == 16 || v.start[16] == UInt8(ascii: ";") || v.start[16] == UInt8(ascii: " "))
                            if !ok {
                                attrError = RejectReason(code: .badAttribute,
                                                         message: "datacontenttype: expected \"application/json\", got \(Scanner.quoted(v))")
                            }
                        } else {
                            let what = Scanner.describe(byte)
                            _ = try skipValue(depth: depth + 1)
                            attrError = RejectReason(code: .badAttribute, message: "datacontenttype: expected a string, got \(what)")
                        }
                    default:  // data
                        if typeIndex >= 0 {
                            dataError = try data(type: typeIndex, depth: depth + 1, into: &fields)
                            dataDone = true
                        } else {
                            dataAt = p
                            dataOversize = try skipValue(depth: depth + 1)
                        }
                    }
                }
                if try another(UInt8(ascii: "}"), "',' or '}' after a member of the event") { continue }
                break
            }
        }
        if let e = attrError { return .rejected(e) }
        let required = Scanner.aSpecversion | Scanner.aId | Scanner.aSource | Scanner.aType | Scanner.aTime
        if seen & required != required {
            let missing = required & ~seen
            let bit = missing & (0 &- missing)  // the first missing one, in the order of the bits
            return .rejected(RejectReason(code: .missingAttribute, message: "\(Scanner.attributeName(bit)): required attribute is missing"))
        }
        if typeIndex < 0 {
            if dataOversize {
                return .rejected(RejectReason(code: .tooLarge, message: "data: a string longer than \(maxString) bytes"))
            }
            return .unrouted(type: typeName, source: source)
        }
        if !dataDone {
            guard let at = dataAt else {
                return .rejected(RejectReason(code: .missingAttribute,
                                              message: "data: required for type \(Scanner.quoted(typeName))"))
            }
            let resume = p
            p = at
            dataError = try data(type: typeIndex, depth: depth + 1, into: &fields)
            p = resume
        }
        if let e = dataError { return .rejected(e) }
        if typeIndex == cat.balanceIndex {
            guard case .string(let indicator) = fields[0], case .number(let value) = fields[1] else {
                preconditionFailure("tally.balance fields are validated as required")
            }
            return .balance(indicator: indicator, value: value, at: time, source: source, id: id)
        }
        if !keyed { eventKey = EventKey(source: source.bytes, id: id.bytes) }
        slot.initialize(to: Event(typeIndex: typeIndex, time: time, source: source, id: id, fields: fields, dedupKey: eventKey))
        return nil
    }

    /// A required non-empty string attribute; on a problem records it and returns an empty view.
    @inline(__always)
    mutating func attributeString(_ k: UInt32, _ error: inout RejectReason?, depth: Int) throws(FrameFailure) -> StringView {
        if byte == Scanner.quote {
            let v = try string(decode: true)
            if v.count == 0 || v.count > maxString { error = attributeProblem(k, v) }
            return v
        }
        let what = Scanner.describe(byte)
        _ = try skipValue(depth: depth + 1)
        error = RejectReason(code: .badAttribute, message: "\(Scanner.attributeName(k)): expected a non-empty string, got \(what)")
        return StringView(start: p, count: 0)
    }

    /// The problem with string attribute `k`'s value `v`, empty or longer than the limit
    /// (out of line: the usual value has neither).
    @inline(never)
    func attributeProblem(_ k: UInt32, _ v: StringView) -> RejectReason {
        v.count == 0
            ? RejectReason(code: .badAttribute, message: "\(Scanner.attributeName(k)): expected a non-empty string")
            : RejectReason(code: .tooLarge, message: "\(Scanner.attributeName(k)): a string longer than \(maxString) bytes")
    }

    // MARK: Data

    /// Decodes `data` (at `p`) against compiled type `t`, `depth` being the depth of `data`.
    mutating func data(type t: Int, depth: Int, into fields: inout EventFields) throws(FrameFailure) -> RejectReason? {
        let desc = cat.types[t]
        let nf = Int(desc.fieldCount)
        let f0 = Int(desc.firstField)
        fields = EventFields(count: nf)
        switch byte {
        case UInt8(ascii: "{"):
            break
        case UInt8(ascii: "n"):
            try literal("null")
            return RejectReason(code: .missingAttribute, message: "data: required for type \(typeName(t)), got null")
        default:
            let what = Scanner.describe(byte)
            _ = try skipValue(depth: depth)
            return RejectReason(code: .badAttribute, message: "data: expected an object, got \(what)")
        }
        guard depth <= maxDepth else { throw tooDeep() }
        p += 1
        var seen: UInt32 = 0
        var present: UInt32 = 0  // slots holding a value (not absent, not null)
        var err: RejectReason? = nil
        var predicted = 0  // producers write fields in catalog order: try the next one first
        ws()
        if byte == UInt8(ascii: "}") {
            p += 1
        } else {
            while true {
                guard byte == Scanner.quote else { throw syntax("expected a key string") }
                var slot = -1
                let key: StringView
                if predicted < nf, err == nil, let n = plainKey(cat.fields[f0 + predicted]) {
                    slot = predicted
                    key = StringView(start: p + 1, count: n)
                    p += n + 3
                } else {
                    key = try string(decode: true)
                    ws()
                    try expect(UInt8(ascii: ":"), "':' after a key")
                    if err == nil {
                        for i in 0..<nf where cat.equals(cat.fields[f0 + i].name, key.start, key.count) {
                            slot = i
                            break
                        }
                    }
                }
                ws()
                if slot >= 0 { predicted = slot + 1 }
                if slot < 0 {
                    if try skipValue(depth: depth + 1) || key.count > maxString, err == nil {
                        err = RejectReason(code: .tooLarge, message: "data.\(Scanner.quoted(key)): a string longer than \(maxString) bytes")
                    }
                } else if seen & (1 << slot) != 0 {
                    err = RejectReason(code: .badValue, message: "data.\(cat.fieldName(f0 + slot)): duplicate field")
                    _ = try skipValue(depth: depth + 1)
                } else {
                    seen |= 1 << slot
                    let v = try value(field: f0 + slot, depth: depth + 1, &err)
                    if case .absent = v {} else { present |= 1 << slot }
                    fields[slot] = v
                }
                if try another(UInt8(ascii: "}"), "',' or '}' after a member of data") { continue }
                break
            }
        }
        let missing = desc.requiredMask & ~present
        if err == nil && missing != 0 {
            let i = missing.trailingZeroBitCount  // the first in catalog order
            let how = seen & (1 << i) != 0 ? "is null" : "is missing"
            err = RejectReason(code: .missingField, message: "data.\(cat.fieldName(f0 + i)): required field \(how)")
        }
        return err
    }

    /// The name's length if the key at `p` is exactly `"name":` for this field (a name
    /// without `"` or `\`, so the raw bytes are the decoded key), else nil.
    @inline(__always)
    func plainKey(_ d: CompiledCatalog.FieldDesc) -> Int? {
        let n = Int(d.name.length)
        guard d.plain, end - p > n + 2, p[n + 1] == Scanner.quote, p[n + 2] == UInt8(ascii: ":"),
              bytesEqual(cat.bytes + Int(d.name.offset), p + 1, n)
        else { return nil }
        return n
    }

    func typeName(_ t: Int) -> String {
        let n = cat.types[t].name
        return "\"" + String(decoding: UnsafeBufferPointer(start: cat.bytes + Int(n.offset), count: Int(n.length)), as: UTF8.self) + "\""
    }

    /// One `data` field's value (at `p`) checked against its catalog kind; a problem is
    /// recorded in `err` (the value is still scanned, so the frame's syntax is checked).
    mutating func value(field f: Int, depth: Int, _ err: inout RejectReason?) throws(FrameFailure) -> FieldValue {
        let d = cat.fields[f]
        let b = byte
        if b == UInt8(ascii: "n") {
            try literal("null")
            return .absent
        }
        func fail(_ code: RejectReason.Code, _ what: String) -> FieldValue {
            err = RejectReason(code: code, message: "data.\(cat.fieldName(f)): \(what)")
            return .absent
        }
        let isNumber = b == UInt8(ascii: "-") || Scanner.isDigit(b)
        switch d.kind {
        case .string:
            guard b == Scanner.quote else {
                let what = Scanner.describe(b)
                _ = try skipValue(depth: depth)
                return fail(.wrongType, "expected a string, got \(what)")
            }
            let v = try string(decode: true)
            if v.count == 0 { return fail(.badValue, "expected a non-empty string") }
            if v.count > maxString { return fail(.tooLarge, "a string longer than \(maxString) bytes") }
            if d.allowedCount > 0 {
                var ok = false
                for k in 0..<Int(d.allowedCount) where cat.equals(cat.allowed[Int(d.allowedStart) + k], v.start, v.count) {
                    ok = true
                    break
                }
                if !ok {
                    let list = cat.allowedNames(f).map { "\"\($0)\"" }.joined(separator: ", ")
                    return fail(.badValue, "expected one of \(list), got \(Scanner.quoted(v))")
                }
            }
            return .string(v)
        case .int:
            guard isNumber else {
                let what = Scanner.describe(b)
                _ = try skipValue(depth: depth)
                return fail(.wrongType, "expected an integer, got \(what)")
            }
            let n = try number()
            if n.hasFraction || n.hasExponent {
                return fail(.wrongType, "expected an integer, got a number with a fraction or exponent")
            }
            let limit: UInt64 = n.negative ? 1 << 63 : UInt64(Int64.max)
            if n.truncated || n.mantissa > limit { return fail(.badValue, "integer out of the 64-bit range") }
            return .int(n.negative ? Int64(bitPattern: 0 &- n.mantissa) : Int64(n.mantissa))
        case .number:
            guard isNumber else {
                let what = Scanner.describe(b)
                _ = try skipValue(depth: depth)
                return fail(.wrongType, "expected a number, got \(what)")
            }
            let n = try number()
            let v = double(n)
            guard v.isFinite else { return fail(.badValue, "number out of the finite double range") }
            return .number(v)
        case .bool:
            if b == UInt8(ascii: "t") { try literal("true"); return .bool(true) }
            if b == UInt8(ascii: "f") { try literal("false"); return .bool(false) }
            let what = Scanner.describe(b)
            _ = try skipValue(depth: depth)
            return fail(.wrongType, "expected a boolean, got \(what)")
        case .stringArray:
            guard b == UInt8(ascii: "[") else {
                let what = Scanner.describe(b)
                _ = try skipValue(depth: depth)
                return fail(.wrongType, "expected an array of strings, got \(what)")
            }
            guard depth <= maxDepth else { throw tooDeep() }
            p += 1
            ws()
            if byte == UInt8(ascii: "]") {
                p += 1
                return .strings(.empty)
            }
            var items: UnsafeMutablePointer<StringView>? = nil
            var itemCount = 0
            var problem: (RejectReason.Code, String)? = nil
            var index = 0
            while true {
                if byte == Scanner.quote && problem == nil {
                    let v = try string(decode: true)
                    if v.count == 0 {
                        problem = (.badValue, "[\(index)]: expected a non-empty string")
                    } else if v.count > maxString {
                        problem = (.tooLarge, "[\(index)]: a string longer than \(maxString) bytes")
                    } else {
                        let list = storage.growList(items, count: itemCount)
                        list[itemCount] = v
                        items = list
                        itemCount += 1
                    }
                } else {
                    let what = Scanner.describe(byte)
                    _ = try skipValue(depth: depth + 1)
                    if problem == nil { problem = (.wrongType, "[\(index)]: expected a string, got \(what)") }
                }
                index += 1
                if try another(UInt8(ascii: "]"), "',' or ']' in an array") { continue }
                break
            }
            if let (code, what) = problem {
                err = RejectReason(code: code, message: "data.\(cat.fieldName(f))\(what)")
                return .absent
            }
            return .strings(StringList(base: items.map { UnsafePointer($0) }, count: itemCount))
        }
    }
}
