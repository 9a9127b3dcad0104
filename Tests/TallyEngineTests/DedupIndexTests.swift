import Testing
@testable import TallyEngine

// MARK: - Dedup index (global filter + per-hour key sets)

@Suite("Dedup index: source + id counted once within the horizon, whatever the event time")
struct DedupIndexTests {
    static let hour = ZoneCalendar.microsPerHour
    static let t0: Micros = 1_713_000_000_000_000   // 2024-04-13, an exact second

    static func key(_ i: UInt64) -> EventKey {
        // Keys are uniform 128-bit hashes in production; a simple mix keeps the test independent of Murmur3.
        EventKey(hi: (i &+ 3) &* 0x9E37_79B9_7F4A_7C15 ^ (i &* 0xD6E8_FEB8_6659_FD93) >> 29,
                 lo: (i &+ 1) &* 0xBF58_476D_1CE4_E5B9 ^ (i &* 0x94D0_49BB_1331_11EB) >> 31)
    }

    /// `checkAndInsert` outside `#expect` (the macro cannot call a mutating member).
    /// An index (7-day horizon) holding ids `key(0)` ..< `key(count)`, id `i` filed under hour
    /// `i % hours` from `t0`.
    static func filled(_ count: UInt64, hours: UInt64) -> DedupIndex {
        var d = DedupIndex(horizon: 7 * 24 * hour)
        for i in 0..<count { _ = seen(&d, key(i), time: t0 + Int64(i % hours) * hour, clock: t0) }
        return d
    }

    static func seen(_ d: inout DedupIndex, _ key: EventKey, time: Micros, clock: Micros?) -> Bool {
        d.checkAndInsert(key, time: time, clock: clock)
    }

    /// The hint's fields, comparable.
    static func fields(_ h: DedupPrefetch) -> [Int] {
        [Int(bitPattern: h.filter), Int(h.filterBlocks), Int(bitPattern: h.hourSlots), h.hourMask, Int(h.hour)]
    }

    @Test("the cached prefetch hint equals the one computed afresh after every insert, expiry, rebuild and restore")
    func cachedPrefetchHintFollowsEveryChange() {
        var d = DedupIndex(horizon: 3 * Self.hour + 7)
        #expect(Self.fields(d.currentPrefetchHint()) == Self.fields(d.prefetchHint))
        var clock = Self.t0
        var state: UInt64 = 7
        for i in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let r = Int64((state >> 33) % 1_000)
            // Mostly a steady stream (sets grow, the filter is rebuilt), sometimes a new hour,
            // a jump of hours (sets expire), an older hour, or a re-sent id.
            switch r % 50 {
            case 0: clock += Self.hour
            case 1: clock += 5 * Self.hour
            default: clock += r * 500
            }
            let time = r % 17 == 0 ? clock - 2 * Self.hour : clock
            let key = Self.key(r % 31 == 0 ? UInt64(i / 2) : UInt64(i))
            _ = Self.seen(&d, key, time: time, clock: clock)
            #expect(Self.fields(d.currentPrefetchHint()) == Self.fields(d.prefetchHint), "after insert \(i)")
            d.expire(clock: clock)
            let ok = Self.fields(d.currentPrefetchHint()) == Self.fields(d.prefetchHint)
            #expect(ok, "after expiry \(i)")
            if !ok { return }
        }
        var restored = DedupIndex(horizon: 3 * Self.hour + 7)
        _ = restored.currentPrefetchHint()
        restored.restore(d.entries, expiredThrough: d.expiredThrough)
        #expect(Self.fields(restored.currentPrefetchHint()) == Self.fields(restored.prefetchHint))
        #expect(restored.currentPrefetchHint().hourSlots != nil)
    }

    @Test("expire's early exit skips exactly the clocks whose cutoff does not pass the expired hour")
    func expireEarlyExitMatchesTheCutoff() {
        let horizon = 5 * Self.hour + 123
        var d = DedupIndex(horizon: horizon)
        var clock = Self.t0
        var filedHours: [Int64] = []
        var state: UInt64 = 42
        for i in 0..<6_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let r = Int64((state >> 33) % 1_000)
            // Near the instants where the cutoff moves ((e + 2) h + horizon, ±1 µs), small
            // steps, and the occasional jump of hours (forwards and, as a no-op, backwards).
            switch r % 5 {
            case 0: clock = (ZoneCalendar.floorDiv(clock - horizon, Self.hour) + 1) * Self.hour + horizon + r % 3 - 1
            case 1: clock += r * 1_000_000
            case 2: clock += r
            case 3: clock += (r % 9) * Self.hour
            default: clock -= r * 10_000_000
            }
            let before = d.expiredThrough
            d.expire(clock: clock)
            let cutoff = ZoneCalendar.floorDiv(clock - horizon, Self.hour) - 1
            #expect(d.expiredThrough == max(before, cutoff), "clock \(clock)")
            if d.expiredThrough != max(before, cutoff) { return }
            let t = clock + r % 7
            #expect(!Self.seen(&d, Self.key(UInt64(i)), time: t, clock: clock))
            filedHours.append(ZoneCalendar.floorDiv(t, Self.hour))
            #expect(d.count == filedHours.filter { $0 > d.expiredThrough }.count)
        }
    }

    @Test("a re-sent event (same key, same hour) is a duplicate; the first sight is not")
    func duplicateWithinHour() {
        var d = DedupIndex(horizon: 7 * 24 * Self.hour)
        #expect(!Self.seen(&d, Self.key(1), time: Self.t0, clock: nil))
        #expect(Self.seen(&d, Self.key(1), time: Self.t0 + 1_000, clock: Self.t0))
        #expect(!Self.seen(&d, Self.key(2), time: Self.t0, clock: Self.t0))
        #expect(d.count == 2)
    }

    @Test("the same key with a time in another hour, earlier or later, is a duplicate")
    func otherHourIsDuplicate() {
        var d = DedupIndex(horizon: 7 * 24 * Self.hour)
        #expect(!Self.seen(&d, Self.key(7), time: Self.t0, clock: nil))
        #expect(Self.seen(&d, Self.key(7), time: Self.t0 + 2 * Self.hour, clock: Self.t0))
        #expect(Self.seen(&d, Self.key(7), time: Self.t0 + 6 * 24 * Self.hour, clock: Self.t0 + 3 * Self.hour))
        #expect(Self.seen(&d, Self.key(7), time: Self.t0 - 5 * Self.hour, clock: Self.t0 + 3 * Self.hour))
        #expect(d.count == 1)
    }

    @Test("many keys over many hours: each counted once whichever hour it is seen again in")
    func manyKeysAcrossHours() {
        var d = DedupIndex(horizon: 7 * 24 * Self.hour)
        let n: UInt64 = 60_000
        for i in 0..<n { #expect(!Self.seen(&d, Self.key(i), time: Self.t0 + Int64(i % 100) * Self.hour, clock: Self.t0)) }
        var duplicates = 0
        for i in 0..<n where Self.seen(&d, Self.key(i), time: Self.t0 + Int64((i * 7) % 100) * Self.hour, clock: Self.t0) { duplicates += 1 }
        #expect(duplicates == Int(n))
        #expect(d.count == Int(n))
        // Keys never inserted are new (the filter's false positives are resolved by the sets).
        var fresh = 0
        for i in n..<(2 * n) where !Self.seen(&d, Self.key(i), time: Self.t0, clock: Self.t0) { fresh += 1 }
        #expect(fresh == Int(n))
        #expect(d.filter.capacity >= d.count)
    }

    @Test("after the horizon an id is forgotten: seen again later it counts as new")
    func expiryAfterHorizon() {
        var d = DedupIndex(horizon: 2 * Self.hour)
        #expect(!Self.seen(&d, Self.key(1), time: Self.t0, clock: nil))
        #expect(!Self.seen(&d, Self.key(2), time: Self.t0 + Self.hour, clock: Self.t0))
        d.expire(clock: Self.t0 + 5 * Self.hour)
        #expect(d.count == 0)
        // Older than the horizon: not remembered, and not a duplicate of anything known.
        #expect(!Self.seen(&d, Self.key(1), time: Self.t0, clock: Self.t0 + 5 * Self.hour))
        #expect(d.count == 0)
        // The same id with a current time is a new event (its first sight has expired) ...
        #expect(!Self.seen(&d, Self.key(2), time: Self.t0 + 5 * Self.hour, clock: Self.t0 + 5 * Self.hour))
        // ... and from then on remembered again.
        #expect(Self.seen(&d, Self.key(2), time: Self.t0 + 5 * Self.hour + 1, clock: Self.t0 + 5 * Self.hour))
        #expect(d.count == 1)
    }

    @Test("an id is still a duplicate just inside the horizon, from another hour")
    func insideHorizonFromAnotherHour() {
        var d = DedupIndex(horizon: 24 * Self.hour)
        _ = Self.seen(&d, Self.key(9), time: Self.t0, clock: nil)
        let later = Self.t0 + 23 * Self.hour
        d.expire(clock: later)
        #expect(Self.seen(&d, Self.key(9), time: later, clock: later))
    }

    @Test("the filter is rebuilt as hours expire: memory stays bounded by the live ids")
    func filterBoundedBySlidingHorizon() {
        var d = DedupIndex(horizon: 24 * Self.hour)
        var clock = Self.t0
        var i: UInt64 = 0
        for hour in 0..<(24 * 10) as Range<Int64> {   // 10 days of 500 ids per hour
            clock = Self.t0 + hour * Self.hour
            d.expire(clock: clock)
            for _ in 0..<500 {
                #expect(!Self.seen(&d, Self.key(i), time: clock, clock: clock))
                i += 1
            }
        }
        #expect(d.count <= 27 * 500)
        #expect(d.filter.capacity <= 4 * max(d.count, DedupIndex.minFilterCapacity))
        // The last day's ids are still duplicates from any hour; the first day's are not.
        #expect(Self.seen(&d, Self.key(i - 1), time: clock - 3 * Self.hour, clock: clock))
        #expect(!Self.seen(&d, Self.key(0), time: clock, clock: clock))
    }

    @Test("entries and restore round-trip every key with its hour, and the restored index dedups across hours")
    func roundTrip() {
        var d = DedupIndex(horizon: 7 * 24 * Self.hour)
        for i in 0..<3_000 as Range<UInt64> {
            _ = Self.seen(&d, Self.key(i), time: Self.t0 + Int64(i % 30) * Self.hour, clock: Self.t0)
        }
        var r = DedupIndex(horizon: 7 * 24 * Self.hour)
        r.restore(d.entries, expiredThrough: d.expiredThrough)
        #expect(r.count == 3_000)
        for i in 0..<3_000 as Range<UInt64> {
            #expect(Self.seen(&r, Self.key(i), time: Self.t0 + Int64(i % 30) * Self.hour, clock: Self.t0))
            #expect(Self.seen(&r, Self.key(i), time: Self.t0 + Int64((i + 11) % 30) * Self.hour, clock: Self.t0))
        }
        #expect(!Self.seen(&r, Self.key(3_000), time: Self.t0, clock: Self.t0))
    }

    @Test("the blocked Bloom filter has no false negatives and few false positives at capacity")
    func bloomFalsePositives() {
        var f = BlockedBloomFilter(capacity: 32_768)
        for i in 0..<UInt64(f.capacity) { f.insert(Self.key(i)) }
        var missing = 0
        for i in 0..<UInt64(f.capacity) where !f.mayContain(Self.key(i)) { missing += 1 }
        #expect(missing == 0)
        var maybe = 0
        let probes: UInt64 = 200_000
        for i in 1_000_000..<(1_000_000 + probes) where f.mayContain(Self.key(i)) { maybe += 1 }
        #expect(Double(maybe) / Double(probes) < 0.005)
    }

    @Test("every filter block starts on a cache line, also in a copy made on write")
    func bloomBlocksAreCacheLineAligned() {
        for capacity in [1, 4_096, 100_000, 70_000 * 32 + 5] {
            var f = BlockedBloomFilter(capacity: capacity)
            #expect((0..<f.blockCount).allSatisfy(f.blockIsAligned), "capacity \(capacity)")
            let before = f
            for i in 0..<UInt64(2_000) { f.insert(Self.key(i)) }   // the copy now owns new words
            #expect((0..<f.blockCount).allSatisfy(f.blockIsAligned), "copy, capacity \(capacity)")
            #expect((0..<UInt64(2_000)).allSatisfy { f.mayContain(Self.key($0)) })
            #expect(before.inserted == 0 && !before.mayContain(Self.key(1)))   // the original is untouched
        }
    }
}
