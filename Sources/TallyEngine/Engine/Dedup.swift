// MARK: - Dedup index

/// Remembers the (`source`, `id`) keys of applied events within a horizon of event time, so
/// a re-sent event is counted once.
///
/// Keys are filed by the hour of their event time; when the clock passes an hour's horizon
/// the whole hour's list is dropped from the index (expiry by time buckets, never by scanning
/// the index). Memory per remembered id: 24 bytes per slot of an open-addressing table (16-byte
/// key + 8-byte hour) at load 0.35-0.7 (≈ 34-69 bytes) + 16 bytes in its hour list.
struct DedupIndex {
    static let hour = ZoneCalendar.microsPerHour
    let horizon: Micros
    private(set) var seen = KeyTable()
    private(set) var lists: [[EventKey]]
    private(set) var listHour: [Int64]
    /// Every hour up to and including this one has been expired.
    private(set) var expiredThrough: Int64 = .min

    init(horizon: Micros) {
        self.horizon = horizon
        let n = Int(horizon / Self.hour) + 3
        lists = [[EventKey]](repeating: [], count: n)
        listHour = [Int64](repeating: .min, count: n)
    }

    var count: Int { seen.count }

    @inline(__always)
    private func slot(_ h: Int64) -> Int {
        let n = Int64(lists.count)
        let r = h % n
        return Int(r < 0 ? r + n : r)
    }

    /// True when `key` was applied within the horizon; otherwise remembers it (when its time
    /// is still inside the horizon) and returns false.
    /// - Complexity: O(1) expected.
    @inline(__always)
    mutating func checkAndInsert(_ key: EventKey, time: Micros, clock: Micros?) -> Bool {
        if seen[key] != nil { return true }
        let h = ZoneCalendar.floorDiv(time, Self.hour)
        if let c = clock, time < c - horizon { return false }  // too old to be remembered: accepted
        if h <= expiredThrough { return false }
        let s = slot(h)
        if listHour[s] != h {
            // A stale hour still in the slot (clock jumped): drop its keys first.
            for k in lists[s] where seen[k] == listHour[s] { seen[k] = nil }
            lists[s].removeAll(keepingCapacity: true)
            listHour[s] = h
        }
        lists[s].append(key)
        seen[key] = h
        return false
    }

    /// Forgets hours entirely older than `clock - horizon`.
    /// - Complexity: O(keys expired), amortised O(1) per remembered key.
    mutating func expire(clock: Micros) {
        let cutoff = ZoneCalendar.floorDiv(clock - horizon, Self.hour) - 1
        guard cutoff > expiredThrough else { return }
        let from = expiredThrough == .min ? cutoff - Int64(lists.count) + 1 : expiredThrough + 1
        var h = max(from, cutoff - Int64(lists.count) + 1)
        while h <= cutoff {
            let s = slot(h)
            if listHour[s] == h {
                for k in lists[s] where seen[k] == h { seen[k] = nil }
                lists[s].removeAll(keepingCapacity: false)
                listHour[s] = .min
            }
            h += 1
        }
        expiredThrough = cutoff
    }

    /// All remembered keys with their hours (checkpoint).
    var entries: [(EventKey, Int64)] { seen.entries }

    /// Restores from a checkpoint.
    mutating func restore(_ entries: [(EventKey, Int64)], expiredThrough: Int64) {
        self.expiredThrough = expiredThrough
        for (k, h) in entries {
            let s = slot(h)
            if listHour[s] != h {
                lists[s].removeAll()
                listHour[s] = h
            }
            lists[s].append(k)
            seen[k] = h
        }
    }
}

// MARK: - Key table

/// An open-addressing hash map from ``EventKey`` to an hour, with linear probing and
/// backward-shift deletion (no tombstones).
///
/// Why not `Dictionary`: an ``EventKey`` already is a uniform 128-bit hash, so its low bits
/// index the table directly; `Dictionary` would re-hash it with SipHash on every lookup, which
/// profiling showed to be the single largest cost of the ingest path.
/// - Complexity: O(1) expected per operation; grows by doubling at load 0.7.
struct KeyTable {
    /// One slot: key and hour together, so a probe touches one cache line.
    struct Slot {
        var hi: UInt64
        var lo: UInt64
        var hour: Int64
        @inline(__always) var isEmpty: Bool { hi == 0 && lo == 0 }
    }
    private var slots = [Slot](repeating: Slot(hi: 0, lo: 0, hour: 0), count: 1024)
    private(set) var count = 0

    /// (0, 0) marks an empty slot; the one key equal to it is stored as (0, 1).
    @inline(__always)
    private static func norm(_ k: EventKey) -> (UInt64, UInt64) {
        (k.hi == 0 && k.lo == 0) ? (0, 1) : (k.hi, k.lo)
    }

    @inline(__always)
    private func find(_ hi: UInt64, _ lo: UInt64) -> (Int, Bool) {
        slots.withUnsafeBufferPointer { buf in
            let mask = buf.count - 1
            var i = Int(truncatingIfNeeded: lo) & mask
            while true {
                let s = buf[i]
                if s.isEmpty { return (i, false) }
                if s.hi == hi && s.lo == lo { return (i, true) }
                i = (i + 1) & mask
            }
        }
    }

    subscript(key: EventKey) -> Int64? {
        get {
            let (hi, lo) = Self.norm(key)
            let (i, found) = find(hi, lo)
            return found ? slots[i].hour : nil
        }
        set {
            let (hi, lo) = Self.norm(key)
            let (i, found) = find(hi, lo)
            if let v = newValue {
                if found {
                    slots[i].hour = v
                    return
                }
                slots[i] = Slot(hi: hi, lo: lo, hour: v)
                count += 1
                if count * 10 > slots.count * 7 { grow() }
            } else if found {
                remove(at: i)
            }
        }
    }

    private mutating func remove(at start: Int) {
        let mask = slots.count - 1
        var hole = start
        var j = start
        while true {
            j = (j + 1) & mask
            if slots[j].isEmpty { break }
            let home = Int(truncatingIfNeeded: slots[j].lo) & mask
            // Move j back into the hole when its home is not cyclically in (hole, j].
            let inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
            if !inRange {
                slots[hole] = slots[j]
                hole = j
            }
        }
        slots[hole] = Slot(hi: 0, lo: 0, hour: 0)
        count -= 1
    }

    private mutating func grow() {
        let old = slots
        let n = slots.count * 2
        slots = [Slot](repeating: Slot(hi: 0, lo: 0, hour: 0), count: n)
        let mask = n - 1
        for s in old where !s.isEmpty {
            var i = Int(truncatingIfNeeded: s.lo) & mask
            while !slots[i].isEmpty { i = (i + 1) & mask }
            slots[i] = s
        }
    }

    var entries: [(EventKey, Int64)] {
        var out: [(EventKey, Int64)] = []
        out.reserveCapacity(count)
        for s in slots where !s.isEmpty { out.append((EventKey(hi: s.hi, lo: s.lo), s.hour)) }
        return out
    }

    /// Bytes held by the table.
    var byteCount: Int { slots.count * MemoryLayout<Slot>.stride }
}
