// MARK: - Dedup index

/// Remembers the (`source`, `id`) keys of applied events within a horizon of event time, so
/// a re-sent event is counted once.
///
/// Keys are filed by the hour of their event time; when the clock passes an hour's horizon
/// the whole hour's list is dropped from the index (expiry by time buckets, never by scanning
/// the index). Memory per remembered id: ~40 bytes in the dictionary (16-byte key + 8-byte
/// hour at load ≤ 0.75) + 16 bytes in its hour list ≈ 56-64 bytes.
struct DedupIndex {
    static let hour = ZoneCalendar.microsPerHour
    let horizon: Micros
    private(set) var seen: [EventKey: Int64] = [:]
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
    var entries: [(EventKey, Int64)] { seen.map { ($0.key, $0.value) } }

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
