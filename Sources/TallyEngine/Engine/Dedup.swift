// MARK: - Dedup index

/// Remembers the (`source`, `id`) keys of applied events within a horizon of event time, so
/// a re-sent event is counted once.
///
/// Keys are filed in one small hash set per hour of event time (a ring of
/// `horizon / 1 h + 3` sets). Why: a re-sent event is the same event, with the same `time`,
/// so only its hour's set is probed; streams arrive roughly in time order, so the set being
/// probed is the current hour's, a few hundred KiB that stay in cache. One global table of
/// 1 M live ids (48 MB) cost a cache miss per event, ~75% of `Engine.apply(event:)` in
/// `perf annotate`. Expiry drops a whole hour's set at once (no per-key deletion).
///
/// Consequence (documented contract): an event that reuses a (`source`, `id`) with a time in
/// another hour is a different event, not a duplicate. CloudEvents requires `source` + `id` to
/// be unique per distinct event, and a retry re-sends the identical event.
///
/// Memory per remembered id: one 16-byte slot at load 0.35–0.7, i.e. 23–46 bytes (was ~54
/// with the global table and its per-hour deletion lists).
struct DedupIndex {
    static let hour = ZoneCalendar.microsPerHour
    let horizon: Micros
    /// Ring of per-hour sets: `sets[slot(h)]` holds hour `setHour[slot(h)]`.
    private(set) var sets: [HourKeySet]
    private(set) var setHour: [Int64]
    /// Every hour up to and including this one has been expired.
    private(set) var expiredThrough: Int64 = .min
    /// Ids remembered over all hours.
    private(set) var count = 0

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

    /// True when `key` was applied within the horizon; otherwise remembers it (when its time
    /// is still inside the horizon) and returns false.
    /// - Complexity: O(1) expected; one probe of the event hour's set.
    @inline(__always)
    mutating func checkAndInsert(_ key: EventKey, time: Micros, clock: Micros?) -> Bool {
        let h = ZoneCalendar.floorDiv(time, Self.hour)
        let s = slot(h)
        if (clock.map { time < $0 - horizon } ?? false) || h <= expiredThrough {
            // Too old to be remembered: a duplicate only if its hour is still known.
            return setHour[s] == h && sets[s].contains(key)
        }
        if setHour[s] != h {
            // A stale hour still in the slot (the clock jumped): drop it first.
            count -= sets[s].count
            sets[s] = HourKeySet()
            setHour[s] = h
        }
        if sets[s].insertIfAbsent(key) {
            count += 1
            return false
        }
        return true
    }

    /// Forgets hours entirely older than `clock - horizon`.
    /// - Complexity: O(hours expired), each O(1) (its set is freed whole).
    mutating func expire(clock: Micros) {
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

    /// Restores from a checkpoint.
    mutating func restore(_ entries: [(EventKey, Int64)], expiredThrough: Int64) {
        self.expiredThrough = expiredThrough
        for (k, h) in entries {
            let s = slot(h)
            if setHour[s] != h {
                count -= sets[s].count
                sets[s] = HourKeySet()
                setHour[s] = h
            }
            if sets[s].insertIfAbsent(k) { count += 1 }
        }
    }

    /// Bytes held by the sets' slots.
    var byteCount: Int { sets.reduce(0) { $0 + $1.byteCount } }
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

    /// Inserts `key` unless present. Returns false when it was already there.
    /// - Complexity: one probe sequence; amortised O(1) growth.
    @inline(__always)
    mutating func insertIfAbsent(_ key: EventKey) -> Bool {
        if slots.isEmpty { slots = [Slot](repeating: Slot(hi: 0, lo: 0), count: 64) }
        let (hi, lo) = Self.norm(key)
        let inserted = slots.withUnsafeMutableBufferPointer { buf -> Bool in
            let (i, found) = Self.find(UnsafeBufferPointer(buf), hi, lo)
            if found { return false }
            buf[i] = Slot(hi: hi, lo: lo)
            return true
        }
        guard inserted else { return false }
        count += 1
        if count * 10 > slots.count * 7 { grow() }
        return true
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

    /// Bytes held by the slots.
    var byteCount: Int { slots.count * MemoryLayout<Slot>.stride }
}
