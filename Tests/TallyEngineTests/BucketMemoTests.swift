import Foundation
import Testing
@testable import TallyEngine

/// `EventAggregator.bucket` answers from its memo (same bucket, next fine bucket, same local
/// day) without dividing; these tests walk every ring of every aggregator of the national
/// pipeline through times that hit each path and compare with the general computation
/// (`ceil(t / res)`, `ZoneCalendar.period`).
@Suite("Bucket memo of the aggregators")
struct BucketMemoTests {
    /// A deterministic walk over ~9 months from 2024-03-01: repeats, small and large steps
    /// forward, steps back, exact multiples of the resolution and local midnights ±1 µs
    /// (Europe/Paris changes offset on 2024-03-31 and 2024-10-27).
    static func walk(res: Micros, offsetHint: Micros) -> [Micros] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: UInt64) -> Int64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int64((state >> 33) % n)
        }
        let day = ZoneCalendar.microsPerDay
        var t: Micros = 1_709_251_200_000_000  // 2024-03-01T00:00:00Z
        var out: [Micros] = []
        for _ in 0..<12_000 {
            switch next(9) {
            case 0: break                                              // same instant again
            case 1: t += next(UInt64(max(res, 2)))                     // within or just past a bucket
            case 2: t += res                                           // exactly one bucket on
            case 3: t += next(2_000_000)                               // up to 2 s
            case 4: t += next(UInt64(ZoneCalendar.microsPerHour * 3))  // up to 3 h
            case 5: t -= next(UInt64(ZoneCalendar.microsPerHour))      // back up to 1 h
            case 6: t = (t / res + next(3)) * res + next(3) - 1        // a multiple of res, ±1 µs
            case 7:                                                    // near a local midnight
                t = ((t + offsetHint) / day + next(2)) * day - offsetHint + next(3) - 1
            default: t += next(UInt64(day * 2))                        // up to 2 days
            }
            out.append(t)
        }
        return out
    }

    func check(zone: String) throws {
        let text = try String(contentsOfFile: nationalPath, encoding: .utf8)
            .replacingOccurrences(of: "timezone: Asia/Ho_Chi_Minh", with: "timezone: \(zone)")
        let engine = Engine(pipeline: try Pipeline.parse(yaml: text, file: "national-dx.yaml"))
        let calendar = ZoneCalendar(identifier: zone)
        let aggregators = engine.aggregators.compactMap { $0 }
        var rings = 0, calendarRings = 0
        for a in aggregators {
            for (k, spec) in a.allSpecs.enumerated() {
                rings += 1
                let res: Micros
                switch spec.kind {
                case .fine(let r): res = r
                case .period: res = ZoneCalendar.microsPerHour; calendarRings += 1
                }
                for t in Self.walk(res: res, offsetHint: (calendar.fixedOffset ?? 3600) * ZoneCalendar.microsPerSecond) {
                    let expected: Int64
                    switch spec.kind {
                    case .fine(let r): expected = EventAggregator.ceilDiv(t, r)
                    case .period(let u): expected = calendar.period(u, t)
                    }
                    let got = a.bucket(k, t, calendar)
                    #expect(got == expected, "\(a.canonical) ring \(k) at \(t) (\(calendar.format(t)))")
                    if got != expected { return }
                }
            }
        }
        // The walk must have exercised both kinds of ring.
        #expect(rings > calendarRings && calendarRings > 0)
    }

    @Test("every ring's bucket equals the division in a fixed-offset zone")
    func fixedOffsetZone() throws {
        #expect(ZoneCalendar(identifier: "Asia/Ho_Chi_Minh").fixedOffset != nil)
        try check(zone: "Asia/Ho_Chi_Minh")
    }

    @Test("every ring's bucket equals the division in a zone with daylight saving time")
    func zoneWithTransitions() throws {
        #expect(ZoneCalendar(identifier: "Europe/Paris").fixedOffset == nil)
        try check(zone: "Europe/Paris")
    }

    @Test("a fixed-offset zone other than UTC+7 and UTC itself give the general answers")
    func otherFixedZones() throws {
        try check(zone: "Asia/Kolkata")
        try check(zone: "UTC")
    }
}
