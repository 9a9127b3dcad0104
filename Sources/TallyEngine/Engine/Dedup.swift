// MARK: - Dedup index

/// Remembers the (`source`, `id`) keys of applied events within a horizon of event time, so
/// an event seen again is counted once, whatever its `time` (CloudEvents: `source` + `id`
/// identify an event).
///
/// Two layers. Why: one global exact table of 1 M live ids (48 MB) cost a cache miss per event,
/// ~75% of `Engine.apply(event:)` in `perf annotate`.
/// - **Exact membership**: one small hash set per hour of event time (a ring of
///   `horizon / 1 h + 3` sets). New ids go to their event hour's set, which for a stream in
///   rough time order is the current hour's: a few hundred KiB that stay in cache. Expiry drops
///   a whole hour's set at once (no per-key deletion).
/// - **Global filter in front**: a ``BlockedBloomFilter`` over every live id (one 64-byte block
///   per probe, 16 bits per id at capacity, k = 8). Its negative answer, the common case, is one
///   cache line (2 MiB per million ids: in L2/L3). Only a "maybe" (a real duplicate, or a false
///   positive, ~0.1% at capacity) searches the hour sets: the event's own hour first (a retry
///   re-sends the identical event), then newest first.
///
/// Expired ids stay in the filter as stale bits (they can only cause false positives, which
/// the exact sets resolve), until the filter is rebuilt from the live sets: when its inserts
/// reach its capacity (then sized for 4 × the live ids) or when the live ids fall below 1/8 of
/// its capacity (memory given back). Each rebuild costs O(live ids) after at least 3 × as many
/// inserts since the last one, so it is amortised O(1) per insert, and never per hour.
/// Why 4 × and not 2 ×: while the ids grow, each rebuild re-inserts every live id into a fresh
/// table larger than L2 (one miss each); at 2 × that happened about once per id, 3–4% of the
/// engine thread (`perf`); at 4 × a third as often, for 2–4 more bytes per id.
///
/// Memory per remembered id: one 16-byte slot at load 0.35–0.7 (23–46 bytes) plus 2–8 bytes of
/// filter (16 bits per id at capacity, capacity 1–4 × the live ids after a rebuild, up to 8 ×
/// after a large expiry): ~25–55 bytes, ~30–35 typical.
struct DedupIndex {
    static let hour = ZoneCalendar.microsPerHour
    /// Filter capacity never sized below this (8 KiB).
    static let minFilterCapacity = 4_096
    let horizon: Micros
    /// Ring of per-hour sets: `sets[slot(h)]` holds hour `setHour[slot(h)]`.
    private(set) var sets: [HourKeySet]
    private(set) var setHour: [Int64]
    /// Every hour up to and including this one has been expired.
    private(set) var expiredThrough: Int64 = .min {
        didSet { expireFrom = Self.expireFrom(expiredThrough: expiredThrough, horizon: horizon) }
    }
    /// The first clock at which ``expire(clock:)`` has work (its cutoff passes
    /// `expiredThrough`); `.min` while nothing has expired. Why: the engine calls `expire` on
    /// every event that moves the clock (nearly every event of a time-ordered stream), and the
    /// answer is "nothing to do" until the next hour: one compare instead of a division.
    private var expireFrom: Micros = .min
    /// The newest hour ever filed (start of the newest-first search).
    private(set) var newestHour: Int64 = .min
    /// `slot(newestHour)`, kept with it: a stream in time order probes the newest hour, and
    /// the slot's `%` (an integer division) per event and per frame's prefetch hint is skipped.
    private var newestSlot = 0
    /// Ids remembered over all hours.
    private(set) var count = 0
    /// Every live id, plus stale expired ones until the next rebuild.
    private(set) var filter = BlockedBloomFilter(capacity: DedupIndex.minFilterCapacity)
    /// ``prefetchHint`` as last computed, and whether something it names has changed since
    /// (the filter rebuilt, the newest hour's set created, grown or expired). Why: the engine
    /// asks for the hint once per frame, and recomputing it cost ~45 instructions per frame,
    /// i.e. per event at one event per frame; it changes about once per hour or rebuild.
    private var hint = DedupPrefetch()
    private var hintStale = true

    init(horizon: Micros) {
        self.horizon = horizon
        let n = Int(horizon / Self.hour) + 3
        sets = [HourKeySet](repeating: HourKeySet(), count: n)
        setHour = [Int64](repeating: .min, count: n)
    }

    @inline(__always)
    private func slot(_ h: Int64) -> Int {
        let n = Int64(sets.count)
        let r = h % n
        return Int(r < 0 ? r + n : r)
    }

    /// True when `key` was applied within the horizon, whatever the hour it was filed under;
    /// otherwise remembers it under `time`'s hour (when that hour is still inside the horizon)
    /// and returns false.
    /// - Complexity: O(1) expected: one filter block; on a "maybe", one probe per live hour
    ///   (its own hour first).
    @inline(__always)
    mutating func checkAndInsert(_ key: EventKey, time: Micros, clock: Micros?) -> Bool {
        let h = ZoneCalendar.floorDiv(time, Self.hour)
        if filter.mayContain(key) && contains(key, preferring: h) { return true }
        if (clock.map { time < $0 - horizon } ?? false) || h <= expiredThrough {
            return false   // too old to be remembered, and not a duplicate of anything known
        }
        let s = h == newestHour ? newestSlot : slot(h)
        if setHour[s] != h {
            // The slot holds another hour (the clock jumped). A newer one is kept (this event
            // is then not remembered); an older one is outside the horizon and dropped.
            if setHour[s] != .min && setHour[s] > h { return false }
            count -= sets[s].count
            // A new newest hour is sized for as many ids as the hour before it got (the usual
            // steady stream), so it does not rehash its way up from 64 slots.
            let expected = h > newestHour && newestHour != .min && setHour[newestSlot] == newestHour ? sets[newestSlot].count : 0
            sets[s] = HourKeySet(expected: expected)
            setHour[s] = h
            if h > newestHour { newestHour = h; newestSlot = s }
            hintStale = true
        }
        // Absent from every set (the filter or the search said so): a new id.
        switch sets[s].insertIfAbsent(key) {
        case .present: break
        case .inserted: count += 1
        case .insertedAndMoved:
            count += 1
            hintStale = true
        }
        filter.insert(key)
        if filter.inserted > filter.capacity { rebuildFilter() }
        return false
    }

    /// Exact membership over every live hour: `h`'s set first, then newest first.
    /// - Complexity: O(live hours) set probes.
    func contains(_ key: EventKey, preferring h: Int64) -> Bool {
        let s = slot(h)
        if setHour[s] == h && sets[s].contains(key) { return true }
        guard newestHour != .min else { return false }
        var hour = newestHour
        let last = newestHour - Int64(sets.count) + 1
        while hour >= last {
            let t = slot(hour)
            if hour != h && setHour[t] == hour && sets[t].contains(key) { return true }
            hour -= 1
        }
        return false
    }

    /// Forgets hours entirely older than `clock - horizon`.
    /// - Complexity: O(hours expired), each O(1) (its set is freed whole), plus a filter
    ///   rebuild (O(live ids)) when the live ids fell below 1/8 of the filter's capacity.
    @inline(__always)
    mutating func expire(clock: Micros) {
        if clock < expireFrom { return }
        expireHours(clock: clock)
    }

    /// `floorDiv(clock - horizon, 1 h) - 1 > e` exactly when `clock >= (e + 2) h + horizon`
    /// (`floor(x / h) >= n` ⟺ `x >= n h`); `.min` (always look) for `.min` or on overflow.
    static func expireFrom(expiredThrough e: Int64, horizon: Micros) -> Micros {
        guard e != .min else { return .min }
        let (n, o1) = e.addingReportingOverflow(2)
        let (a, o2) = n.multipliedReportingOverflow(by: hour)
        let (b, o3) = a.addingReportingOverflow(horizon)
        return o1 || o2 || o3 ? .min : b
    }

    /// The work of ``expire(clock:)``.
    private mutating func expireHours(clock: Micros) {
        let cutoff = ZoneCalendar.floorDiv(clock - horizon, Self.hour) - 1
        guard cutoff > expiredThrough else { return }
        let from = expiredThrough == .min ? cutoff - Int64(sets.count) + 1 : expiredThrough + 1
        var h = max(from, cutoff - Int64(sets.count) + 1)
        while h <= cutoff {
            let s = slot(h)
            if setHour[s] == h {
                count -= sets[s].count
                sets[s] = HourKeySet()
                setHour[s] = .min
            }
            h += 1
        }
        expiredThrough = cutoff
        hintStale = true
        if filter.capacity > Self.minFilterCapacity && count * 8 < filter.capacity { rebuildFilter() }
    }

    /// Rebuilds the filter from the live hour sets, sized for 4 × the live ids.
    /// - Complexity: O(live ids + slots of the live sets).
    mutating func rebuildFilter() {
        var f = BlockedBloomFilter(capacity: max(Self.minFilterCapacity, 4 * count))
        for s in sets.indices where setHour[s] != .min { sets[s].forEach { f.insert($0) } }
        filter = f
        hintStale = true
    }

    /// All remembered keys with their hours (checkpoint), hour by hour.
    var entries: [(EventKey, Int64)] {
        var out: [(EventKey, Int64)] = []
        out.reserveCapacity(count)
        for s in sets.indices where setHour[s] != .min {
            let h = setHour[s]
            sets[s].forEach { out.append(($0, h)) }
        }
        return out
    }

    /// Bytes per id in a checkpoint: `[hi u64][lo u64][hour i64]`, little-endian.
    static let serializedEntrySize = 24

    /// Ids held by the live hours: exactly what ``snapshot`` serialises.
    /// - Complexity: O(hours in the ring).
    var liveCount: Int {
        var n = 0
        for s in sets.indices where setHour[s] != .min { n += sets[s].count }
        return n
    }

    /// The remembered ids as of now, to serialise later on another thread: the hour sets are
    /// shared copy-on-write, so taking this costs O(hours) retains, and while it lives the
    /// index's next insert into a shared set copies that set once (about an hour of ids) and
    /// the ring of sets (171 entries). The filter is not part of it (a restore rebuilds it).
    var snapshot: DedupSnapshot { DedupSnapshot(sets: sets, setHour: setHour, count: liveCount) }

    /// Restores from a checkpoint (entries as written by ``entries``), then builds the filter.
    /// - Complexity: O(entries).
    mutating func restore(_ entries: [(EventKey, Int64)], expiredThrough: Int64) {
        self.expiredThrough = expiredThrough
        for (k, h) in entries {
            let s = slot(h)
            if setHour[s] != h {
                count -= sets[s].count
                sets[s] = HourKeySet()
                setHour[s] = h
            }
            if h > newestHour { newestHour = h; newestSlot = s }
            if sets[s].insertIfAbsent(k) != .present { count += 1 }
        }
        rebuildFilter()
    }

    /// ``prefetchHint``, recomputed only after a change to what it names (see `hintStale`).
    /// A copy of the index that then copies the filter or a set on write leaves the hint on
    /// the other copy's buffers until the next change: a wasted prefetch, never a wrong answer.
    /// - Complexity: O(1); one compare when nothing changed.
    @inline(__always)
    mutating func currentPrefetchHint() -> DedupPrefetch {
        if hintStale {
            hint = prefetchHint
            hintStale = false
        }
        return hint
    }

    /// Bytes held by the sets' slots and the filter.
    var byteCount: Int { sets.reduce(0) { $0 + $1.byteCount } + filter.byteCount }

    /// Where the next probes will land: the filter, and the newest hour's set (where a stream
    /// in time order inserts). Valid until the next insert or expiry; a stale hint only wastes
    /// a prefetch (see ``DedupPrefetch``).
    /// - Complexity: O(1).
    var prefetchHint: DedupPrefetch {
        var hint = filter.prefetchHint
        if newestHour != .min {
            let s = newestSlot
            if setHour[s] == newestHour, let (base, mask) = sets[s].slotsHint {
                hint.hourSlots = base
                hint.hourMask = mask
                hint.hour = newestHour
            }
        }
        return hint
    }
}

// MARK: - Blocked Bloom filter

/// A split-block Bloom filter over ``EventKey``s: each key sets one bit in each of the eight
/// 64-bit words of one 64-byte block (k = 8), so a probe or an insert touches one cache line.
///
/// Why this shape: the dedup index asks "seen before?" once per event, and the answer is
/// almost always "no"; a filter that answers that from one cache line in a table of 2 bytes per
/// id (L2/L3-resident for millions of ids) replaces a cache miss into a 16-byte-per-id table.
/// The key already is a uniform 128-bit hash: `hi` picks the block (multiply-shift), the low 48
/// bits of `lo` give the eight bit positions (6 bits each).
///
/// False positives: at capacity (16 bits per key: ~32 keys per 512-bit block) each word is
/// ~40% set, so ~0.1% of absent keys answer "maybe" (block-load variance included). No false
/// negatives. No deletion: the owner rebuilds it.
/// - Complexity: O(1) per probe or insert, no allocation.
struct BlockedBloomFilter {
    /// The blocks: `blockCount * 8` words from the first 64-byte boundary in the array
    /// (``skip(_:)`` words in), plus 7 words of slack so that boundary is always inside it.
    ///
    /// Why aligned: Swift puts an array's elements 32 bytes after its heap object, which
    /// malloc places 16 bytes into a page for a mapped block, so the elements began 48 bytes
    /// into a cache line and every 64-byte block straddled two lines: each probe touched
    /// two, and the decoder's prefetch fetched only the first. `perf annotate` put 66% of
    /// `Engine.apply`'s samples (b100) on the load of the block's third word, the first
    /// one in the second line. The offset is recomputed from the base on each access (one
    /// `and`), so a copy-on-write copy at another address stays correct.
    private var words: [UInt64]
    let blockCount: Int
    /// Keys inserted since it was built (stale ones included).
    private(set) var inserted = 0

    /// Keys it holds at 16 bits per key.
    var capacity: Int { blockCount * 32 }
    var byteCount: Int { words.count * 8 }

    init(capacity: Int) {
        blockCount = max(1, (capacity + 31) / 32)
        words = [UInt64](repeating: 0, count: blockCount * 8 + 7)
    }

    /// Words from `base` to the first 64-byte boundary (0–7: elements are 8-byte aligned).
    @inline(__always)
    static func skip(_ base: UnsafeRawPointer) -> Int {
        ((64 &- (Int(bitPattern: base) & 63)) & 63) &>> 3
    }

    /// The first block's address (64-byte aligned) and the block count, for ``DedupPrefetch``
    /// (valid until the next insert: only ever used as a prefetch address, which cannot fault).
    var prefetchHint: DedupPrefetch {
        DedupPrefetch(filter: words.withUnsafeBytes { b in UnsafeRawPointer(b.baseAddress!) + Self.skip(b.baseAddress!) * 8 },
                      filterBlocks: UInt64(blockCount))
    }

    /// Whether block `i` starts on a cache line (for tests).
    func blockIsAligned(_ i: Int) -> Bool {
        words.withUnsafeBytes { b in Int(bitPattern: b.baseAddress! + (Self.skip(b.baseAddress!) + i * 8) * 8) & 63 == 0 }
    }

    @inline(__always)
    private func base(_ key: EventKey) -> Int {
        Int(truncatingIfNeeded: key.hi.multipliedFullWidth(by: UInt64(blockCount)).high) &* 8
    }

    /// False: certainly never inserted. True: maybe.
    @inline(__always)
    func mayContain(_ key: EventKey) -> Bool {
        let b = base(key)
        return words.withUnsafeBufferPointer { w -> Bool in
            let o = b &+ Self.skip(UnsafeRawPointer(w.baseAddress!))
            var lo = key.lo
            var missing: UInt64 = 0
            for i in 0..<8 {
                missing |= ~w[o &+ i] & (1 &<< (lo & 63))
                lo &>>= 6
            }
            return missing == 0
        }
    }

    @inline(__always)
    mutating func insert(_ key: EventKey) {
        let b = base(key)
        words.withUnsafeMutableBufferPointer { w in
            let o = b &+ Self.skip(UnsafeRawPointer(w.baseAddress!))
            var lo = key.lo
            for i in 0..<8 {
                w[o &+ i] |= 1 &<< (lo & 63)
                lo &>>= 6
            }
        }
        inserted &+= 1
    }
}

// MARK: - Dedup snapshot

/// The ids a ``DedupIndex`` remembered at one moment (``DedupIndex/snapshot``), for the
/// checkpoint's bulk written off the engine thread (``CheckpointCapture/write(to:)``).
struct DedupSnapshot: Sendable {
    let sets: [HourKeySet]
    let setHour: [Int64]
    /// Ids held by the live hours: what ``serialize(into:maxEntries:)`` writes.
    let count: Int

    /// Writes every id as ``DedupIndex/entries`` lists them (hour by hour, slot order), each
    /// `[hi u64][lo u64][hour i64]` little-endian, straight from the hour sets' slots into `out`:
    /// the checkpoint's bulk, with no intermediate array and no per-key allocation.
    /// - Parameter maxEntries: room at `out`, in entries (``count``); never written past.
    /// - Returns: entries written.
    /// - Complexity: O(slots of the live hours), a few ns per id (sequential reads and writes).
    func serialize(into out: UnsafeMutableRawPointer, maxEntries: Int) -> Int {
        var cursor = Cursor()
        return serialize(from: &cursor, into: out, maxEntries: maxEntries)
    }

    /// Where a serialisation in pieces stopped: the hour set, and the slot in it.
    struct Cursor {
        var set = 0
        var slot = 0
    }

    /// ``serialize(into:maxEntries:)`` resumed at `cursor` (a fresh cursor: from the first id),
    /// which is left where the next piece starts: the pieces joined are the whole serialisation.
    /// - Returns: entries written (0 once every id is).
    /// - Complexity: O(slots read).
    func serialize(from cursor: inout Cursor, into out: UnsafeMutableRawPointer, maxEntries: Int) -> Int {
        var written = 0
        while cursor.set < sets.count && written < maxEntries {
            let s = cursor.set
            if setHour[s] != .min {
                written += sets[s].serialize(hour: setHour[s], from: &cursor.slot,
                                             into: out.advanced(by: written * DedupIndex.serializedEntrySize),
                                             maxEntries: maxEntries - written)
                if cursor.slot < sets[s].slotCount { break }   // the piece is full
            }
            cursor.set += 1
            cursor.slot = 0
        }
        return written
    }
}

// MARK: - Hour key set

/// An open-addressing set of ``EventKey`` with linear probing, 16-byte slots, no deletion
/// (a set is dropped whole when its hour expires).
///
/// Why not `Set`: an ``EventKey`` already is a uniform 128-bit hash, so its low bits index the
/// table directly; `Set` would re-hash it with SipHash on every lookup.
/// - Complexity: O(1) expected per operation; grows by doubling at load 0.7.
struct HourKeySet {
    struct Slot {
        var hi: UInt64
        var lo: UInt64
    }
    /// Empty until the first insert (most of the ring's 171 hours are empty or expired).
    private var slots: [Slot] = []
    private(set) var count = 0

    init() {}

    /// A set with room for `expected` ids at a load of at most 0.7 (the growth threshold):
    /// the power of two growth would reach, allocated once. 0: empty until the first insert.
    init(expected: Int) {
        guard expected > 0 else { return }
        var n = 64
        while expected * 10 > n * 7 { n *= 2 }
        slots = [Slot](repeating: Slot(hi: 0, lo: 0), count: n)
    }

    /// (0, 0) marks an empty slot; the one key equal to it is stored as (0, 1).
    @inline(__always)
    private static func norm(_ k: EventKey) -> (UInt64, UInt64) {
        (k.hi == 0 && k.lo == 0) ? (0, 1) : (k.hi, k.lo)
    }

    /// The slot holding (hi, lo) or the empty slot where it would go.
    @inline(__always)
    private static func find(_ buf: UnsafeBufferPointer<Slot>, _ hi: UInt64, _ lo: UInt64) -> (Int, Bool) {
        let mask = buf.count - 1
        var i = Int(truncatingIfNeeded: lo) & mask
        while true {
            let s = buf[i]
            if s.hi == hi && s.lo == lo { return (i, true) }
            if s.hi == 0 && s.lo == 0 { return (i, false) }
            i = (i + 1) & mask
        }
    }

    func contains(_ key: EventKey) -> Bool {
        guard !slots.isEmpty else { return false }
        let (hi, lo) = Self.norm(key)
        return slots.withUnsafeBufferPointer { Self.find($0, hi, lo).1 }
    }

    /// What ``insertIfAbsent(_:)`` did; `insertedAndMoved`: the slots were allocated (first
    /// insert) or grown, so their address changed.
    enum Insert { case present, inserted, insertedAndMoved }

    /// Inserts `key` unless present.
    /// - Complexity: one probe sequence; amortised O(1) growth.
    @inline(__always)
    mutating func insertIfAbsent(_ key: EventKey) -> Insert {
        var moved = false
        if slots.isEmpty {
            slots = [Slot](repeating: Slot(hi: 0, lo: 0), count: 64)
            moved = true
        }
        let (hi, lo) = Self.norm(key)
        let inserted = slots.withUnsafeMutableBufferPointer { buf -> Bool in
            let (i, found) = Self.find(UnsafeBufferPointer(buf), hi, lo)
            if found { return false }
            buf[i] = Slot(hi: hi, lo: lo)
            return true
        }
        guard inserted else { return .present }
        count += 1
        if count * 10 > slots.count * 7 {
            grow()
            return .insertedAndMoved
        }
        return moved ? .insertedAndMoved : .inserted
    }

    private mutating func grow() {
        let old = slots
        let n = slots.count * 2
        slots = [Slot](repeating: Slot(hi: 0, lo: 0), count: n)
        slots.withUnsafeMutableBufferPointer { buf in
            let mask = n - 1
            for s in old where !(s.hi == 0 && s.lo == 0) {
                var i = Int(truncatingIfNeeded: s.lo) & mask
                while !(buf[i].hi == 0 && buf[i].lo == 0) { i = (i + 1) & mask }
                buf[i] = s
            }
        }
    }

    /// Calls `body` with every key (slot order).
    func forEach(_ body: (EventKey) -> Void) {
        for s in slots where !(s.hi == 0 && s.lo == 0) { body(EventKey(hi: s.hi, lo: s.lo)) }
    }

    /// Writes each key from slot `slot` on as `[hi][lo][hour]` (u64, u64, i64, little-endian),
    /// slot order, at most `maxEntries`; `slot` is left after the last slot read (the slots'
    /// count once all are). - Returns: keys written. - Complexity: O(slots read).
    func serialize(hour: Int64, from slot: inout Int, into out: UnsafeMutableRawPointer, maxEntries: Int) -> Int {
        slots.withUnsafeBufferPointer { buf in
            var n = 0
            var p = out
            var i = slot
            while i < buf.count && n < maxEntries {
                let s = buf[i]
                i += 1
                if s.hi == 0 && s.lo == 0 { continue }
                p.storeBytes(of: s.hi.littleEndian, toByteOffset: 0, as: UInt64.self)
                p.storeBytes(of: s.lo.littleEndian, toByteOffset: 8, as: UInt64.self)
                p.storeBytes(of: UInt64(bitPattern: hour).littleEndian, toByteOffset: 16, as: UInt64.self)
                p += 24
                n += 1
            }
            slot = i
            return n
        }
    }

    /// Slots (empty ones included).
    var slotCount: Int { slots.count }

    /// Bytes held by the slots.
    var byteCount: Int { slots.count * MemoryLayout<Slot>.stride }

    /// The slots' address and index mask, for ``DedupPrefetch`` (valid until the next insert;
    /// only ever used as a prefetch address). Nil while empty.
    var slotsHint: (UnsafeRawPointer, Int)? {
        slots.isEmpty ? nil : (slots.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) }, slots.count - 1)
    }
}
