import Testing
@testable import TallyEngine

// MARK: - Dedup index (per-hour key sets)

@Suite("Dedup index: one key set per hour of event time")
struct DedupIndexTests {
    static let hour = ZoneCalendar.microsPerHour
    static let t0: Micros = 1_713_000_000_000_000   // 2024-04-13, an exact second

    static func key(_ i: UInt64) -> EventKey {
        // Keys are uniform 128-bit hashes in production; a simple mix keeps the test independent of Murmur3.
        EventKey(hi: i &* 0x9E37_79B9_7F4A_7C15 | 1, lo: (i &+ 1) &* 0xBF58_476D_1CE4_E5B9)
    }

    /// `checkAndInsert` outside `#expect` (the macro cannot call a mutating member).
    static func seen(_ d: inout DedupIndex, _ key: EventKey, time: Micros, clock: Micros?) -> Bool {
        d.checkAndInsert(key, time: time, clock: clock)
    }

    @Test("a re-sent event (same key, same hour) is a duplicate; the first sight is not")
    func duplicateWithinHour() {
        var d = DedupIndex(horizon: 7 * 24 * Self.hour)
        #expect(!Self.seen(&d, Self.key(1), time: Self.t0, clock: nil))
        #expect(Self.seen(&d, Self.key(1), time: Self.t0 + 1_000, clock: Self.t0))
        #expect(!Self.seen(&d, Self.key(2), time: Self.t0, clock: Self.t0))
        #expect(d.count == 2)
    }

    @Test("the same key with a time in another hour is another event (documented contract)")
    func otherHourIsNew() {
        var d = DedupIndex(horizon: 7 * 24 * Self.hour)
        #expect(!Self.seen(&d, Self.key(7), time: Self.t0, clock: nil))
        #expect(!Self.seen(&d, Self.key(7), time: Self.t0 + 2 * Self.hour, clock: Self.t0))
        #expect(d.count == 2)
    }

    @Test("many keys in one hour grow its set and every one stays remembered")
    func growthKeepsEveryKey() {
        var d = DedupIndex(horizon: 24 * Self.hour)
        for i in 0..<50_000 as Range<UInt64> { #expect(!Self.seen(&d, Self.key(i), time: Self.t0, clock: Self.t0)) }
        var duplicates = 0
        for i in 0..<50_000 as Range<UInt64> where Self.seen(&d, Self.key(i), time: Self.t0, clock: Self.t0) { duplicates += 1 }
        #expect(duplicates == 50_000)
        #expect(d.count == 50_000)
    }

    @Test("expiry drops whole hours; an expired hour's key is accepted again only while inside the horizon")
    func expiryDropsHours() {
        var d = DedupIndex(horizon: 2 * Self.hour)
        _ = Self.seen(&d, Self.key(1), time: Self.t0, clock: nil)
        _ = Self.seen(&d, Self.key(2), time: Self.t0 + Self.hour, clock: Self.t0)
        d.expire(clock: Self.t0 + 5 * Self.hour)
        #expect(d.count == 0)
        // Older than the horizon: not remembered, and not a duplicate of anything known.
        #expect(!Self.seen(&d, Self.key(1), time: Self.t0, clock: Self.t0 + 5 * Self.hour))
        #expect(d.count == 0)
    }

    @Test("entries and restore round-trip every key with its hour")
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
        }
    }
}
