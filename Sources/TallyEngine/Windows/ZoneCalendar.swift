import Foundation

// MARK: - Zone calendar

/// Calendar arithmetic in the pipeline's IANA zone, on ``Micros``.
///
/// Offsets come from Foundation's `TimeZone`; for a zone with no transitions (Asia/Ho_Chi_Minh
/// since 1975) the offset is cached and every computation is integer arithmetic (the hot path
/// computes a period index per event). Civil dates use Howard Hinnant's days-from-civil
/// algorithms (proleptic Gregorian), so leap years are exact.
///
/// A trivial type (no reference counting when copied): the `TimeZone` lives in a ``Zone``
/// interned for the process's lifetime, referenced unmanaged. Why: the engine hands the
/// calendar to every aggregator of every event, and copying a `TimeZone` cost a
/// retain/release pair per event. The interned zones are bounded by the IANA zone names a
/// process loads (a few per pipeline, ~600 at most).
struct ZoneCalendar: @unchecked Sendable {
    static let microsPerSecond: Micros = 1_000_000
    static let microsPerHour: Micros = 3_600_000_000
    static let microsPerDay: Micros = 86_400_000_000

    /// One loaded zone, never freed (see ``interned(_:)``).
    final class Zone: @unchecked Sendable {
        let zone: TimeZone
        /// Seconds east of UTC when the zone never changes offset.
        let fixedOffset: Int64?

        init(_ z: TimeZone) {
            zone = z
            // No transition from 1990 on: treat as fixed (Vietnam last changed in 1975).
            let probe = Date(timeIntervalSince1970: 631_152_000)
            fixedOffset = z.nextDaylightSavingTimeTransition(after: probe) == nil ? Int64(z.secondsFromGMT(for: probe)) : nil
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var zones: [String: Zone] = [:]

    /// The process-wide `Zone` of an identifier (an unknown one falls back to
    /// Asia/Ho_Chi_Minh, under the identifier asked for).
    /// - Complexity: O(1) after the first load of the identifier; takes a lock (not per event).
    static func interned(_ identifier: String) -> Unmanaged<Zone> {
        lock.lock()
        defer { lock.unlock() }
        if let z = zones[identifier] { return Unmanaged.passUnretained(z) }
        let z = Zone(TimeZone(identifier: identifier) ?? TimeZone(identifier: "Asia/Ho_Chi_Minh")!)
        zones[identifier] = z  // kept for the process's lifetime: the calendars point at it unretained
        return Unmanaged.passUnretained(z)
    }

    private let ref: Unmanaged<Zone>
    /// Seconds east of UTC when the zone never changes offset (copied here: no indirection on
    /// the hot path).
    let fixedOffset: Int64?

    var zone: TimeZone { ref._withUnsafeGuaranteedRef { $0.zone } }

    init(identifier: String) {
        ref = Self.interned(identifier)
        fixedOffset = ref._withUnsafeGuaranteedRef { $0.fixedOffset }
    }

    /// Seconds east of UTC at instant `t`.
    @inline(__always)
    func offset(at t: Micros) -> Int64 {
        if let f = fixedOffset { return f }
        return Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t) / 1e6)))
    }

    @inline(__always)
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Local civil day number (days since 1970-01-01 local) of `t`.
    @inline(__always)
    func localDay(_ t: Micros) -> Int64 { Self.floorDiv(t + offset(at: t) * Self.microsPerSecond, Self.microsPerDay) }

    /// (year, month 1-12, day 1-31) of a day number (the proleptic Gregorian arithmetic lives
    /// once, in ``RFC3339``).
    @inline(__always)
    static func civil(_ z0: Int64) -> (Int64, Int64, Int64) { RFC3339.civil(fromDays: z0) }

    /// Day number of a civil date.
    @inline(__always)
    static func days(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 { RFC3339.daysFromCivil(y0, m, d) }

    /// The index of the period containing `t`: day number, `year*12+month-1`,
    /// `year*4+quarter-1`, or the year.
    @inline(__always)
    func period(_ unit: CalendarUnit, _ t: Micros) -> Int64 { period(unit, localDay: localDay(t)) }

    /// ``period(_:_:)`` of an instant whose local day (``localDay(_:)``) is `day`.
    @inline(__always)
    func period(_ unit: CalendarUnit, localDay day: Int64) -> Int64 {
        if unit == .day { return day }
        let (y, m, _) = Self.civil(day)
        switch unit {
        case .day: return day
        case .month: return y * 12 + m - 1
        case .quarter: return y * 4 + (m - 1) / 3
        case .year: return y
        }
    }

    /// The local calendar year of `t`.
    func year(_ t: Micros) -> Int64 { Self.civil(localDay(t)).0 }

    /// The UTC instant of local midnight starting day `day`.
    func midnight(_ day: Int64) -> Micros {
        let local = day * Self.microsPerDay
        let guess = local - offset(at: local) * Self.microsPerSecond
        return local - offset(at: guess) * Self.microsPerSecond
    }

    /// The first instant of period `index`.
    func periodStart(_ unit: CalendarUnit, _ index: Int64) -> Micros {
        switch unit {
        case .day: return midnight(index)
        case .month: return midnight(Self.days(Self.floorDiv(index, 12), index - Self.floorDiv(index, 12) * 12 + 1, 1))
        case .quarter:
            let y = Self.floorDiv(index, 4)
            return midnight(Self.days(y, (index - y * 4) * 3 + 1, 1))
        case .year: return midnight(Self.days(index, 1, 1))
        }
    }

    /// The same local date and time one calendar year earlier (29 February → 28 February).
    func yearAgo(_ t: Micros) -> Micros {
        let off = offset(at: t) * Self.microsPerSecond
        let local = t + off
        let day = Self.floorDiv(local, Self.microsPerDay)
        let tod = local - day * Self.microsPerDay
        var (y, m, d) = Self.civil(day)
        y -= 1
        if m == 2 && d == 29 { d = 28 }
        let newLocal = Self.days(y, m, d) * Self.microsPerDay + tod
        let guess = newLocal - off
        return newLocal - offset(at: guess) * Self.microsPerSecond
    }

    /// The last instant (microsecond) of the calendar year before the one containing `t`.
    func endOfPreviousYear(_ t: Micros) -> Micros { periodStart(.year, year(t)) - 1 }

    /// RFC 3339 with the zone's offset at `t`, seconds precision unless `t` has a fraction
    /// (then microseconds), e.g. `2024-04-30T23:59:59+07:00`.
    func format(_ t: Micros) -> String { Self.format(t, offsetSeconds: offset(at: t)) }

    static func format(_ t: Micros, offsetSeconds: Int64) -> String {
        let local = t + offsetSeconds * microsPerSecond
        let day = floorDiv(local, microsPerDay)
        let tod = local - day * microsPerDay
        let (y, m, d) = civil(day)
        let secs = tod / microsPerSecond
        let frac = tod % microsPerSecond
        func p(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        var out = "\(p(y, 4))-\(p(m, 2))-\(p(d, 2))T\(p(secs / 3600, 2)):\(p(secs / 60 % 60, 2)):\(p(secs % 60, 2))"
        if frac != 0 { out += "." + p(frac, 6) }
        if offsetSeconds == 0 { return out + "Z" }
        let a = abs(offsetSeconds)
        out += (offsetSeconds < 0 ? "-" : "+") + p(a / 3600, 2) + ":" + p(a / 60 % 60, 2)
        return out
    }
}
