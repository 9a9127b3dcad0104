// MARK: - Civil time at +07:00

/// Calendar arithmetic for the simulator, fixed at UTC+07:00 (Vietnam has no daylight
/// saving). A "day" is a local day number: days since 1970-01-01 in +07:00.
///
/// Why not Foundation's `Calendar`: the generator formats millions of timestamps and must
/// stay allocation-free and identical on every platform; the civil-from-days algorithm
/// (H. Hinnant) is exact for the proleptic Gregorian calendar.
enum SimTime {
    static let offsetSeconds: Int64 = 7 * 3600
    static let microsPerSecond: Int64 = 1_000_000
    static let microsPerDay: Int64 = 86_400_000_000

    /// Local day number of a civil date.
    /// - Complexity: O(1).
    static func day(_ y: Int, _ m: Int, _ d: Int) -> Int {
        let y2 = m <= 2 ? y - 1 : y
        let era = (y2 >= 0 ? y2 : y2 - 399) / 400
        let yoe = y2 - era * 400
        let mp = (m + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Civil date of a local day number.
    static func civil(_ day: Int) -> (year: Int, month: Int, day: Int) {
        let z = day + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// 0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday).
    static func weekday(_ day: Int) -> Int { ((day + 3) % 7 + 7) % 7 }

    /// The UTC instant of a local day plus an offset in milliseconds.
    @inline(__always)
    static func micros(day: Int, millis: Int64) -> Micros {
        (Int64(day) * 86_400 - offsetSeconds) * microsPerSecond + millis * 1000
    }

    /// The instant of a civil date-time at +07:00.
    static func micros(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0) -> Micros {
        micros(day: day(y, mo, d), millis: Int64((h * 3600 + mi * 60 + s) * 1000))
    }

    /// The local day that contains an instant.
    static func localDay(of t: Micros) -> Int {
        let local = t + offsetSeconds * microsPerSecond
        return Int(local >= 0 ? local / microsPerDay : (local - microsPerDay + 1) / microsPerDay)
    }

    /// Appends `t` as RFC 3339 with milliseconds at +07:00, e.g. `2024-04-30T23:59:59.000+07:00`.
    /// - Complexity: O(1), no allocation beyond the buffer's growth.
    static func appendRFC3339(_ t: Micros, to out: inout [UInt8]) {
        let local = t + offsetSeconds * microsPerSecond
        let day = localDay(of: t)
        let inDay = local - Int64(day) * microsPerDay
        let (y, m, d) = civil(day)
        let ms = Int(inDay / 1000)
        let hh = ms / 3_600_000, mi = (ms / 60_000) % 60, ss = (ms / 1000) % 60, frac = ms % 1000
        appendDigits(y, 4, &out); out.append(UInt8(ascii: "-"))
        appendDigits(m, 2, &out); out.append(UInt8(ascii: "-"))
        appendDigits(d, 2, &out); out.append(UInt8(ascii: "T"))
        appendDigits(hh, 2, &out); out.append(UInt8(ascii: ":"))
        appendDigits(mi, 2, &out); out.append(UInt8(ascii: ":"))
        appendDigits(ss, 2, &out); out.append(UInt8(ascii: "."))
        appendDigits(frac, 3, &out)
        out.append(contentsOf: [UInt8(ascii: "+"), 0x30, 0x37, UInt8(ascii: ":"), 0x30, 0x30])
    }

    @inline(__always)
    static func appendDigits(_ v: Int, _ width: Int, _ out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(UInt8(48), count: width))
        var x = v
        var i = out.count - 1
        while x > 0 && i >= start {
            out[i] = UInt8(48 + x % 10)
            x /= 10
            i -= 1
        }
    }

    /// Vietnamese public holidays of the simulated period (Tết, Hùng Kings, 30/4–1/5, 2/9,
    /// New Year), which damp office traffic like a Sunday.
    static let holidays: Set<Int> = {
        var s = Set<Int>()
        func range(_ y: Int, _ m: Int, _ d0: Int, _ d1: Int) { for d in d0...d1 { s.insert(day(y, m, d)) } }
        range(2023, 1, 1, 2); range(2023, 1, 20, 26); range(2023, 4, 29, 30); range(2023, 5, 1, 3)
        range(2023, 9, 1, 4); range(2024, 1, 1, 1); range(2024, 2, 8, 14); range(2024, 4, 18, 18)
        range(2024, 4, 27, 30)
        return s
    }()
}
