// MARK: - RFC 3339

/// RFC 3339 date-times with a mandatory offset, as CloudEvents `time` carries them.
///
/// Accepted: `YYYY-MM-DD(T|t| )HH:MM:SS[.F{1,9}](Z|z|+HH:MM|-HH:MM)`. Fractions beyond
/// microseconds are truncated (toward the past). Month, day (with leap years), hour
/// (0–23), minute (0–59) and second (0–60) are validated; second 60 (a leap second) is
/// clamped to `:59.999999` because the Unix time line has no room for it. A time without an
/// offset (local time) is rejected: it would mean different instants on different machines.
public enum RFC3339 {
    /// Parses a date-time; nil if it is not one (or not a valid calendar date/time).
    /// - Complexity: O(n), no allocation.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Micros? {
        guard let base = bytes.baseAddress else { return nil }
        var cache = DayCache()
        return parse(base, bytes.count, cache: &cache)
    }

    /// Formats an instant as RFC 3339 in the given UTC offset (`Z` for 0, else `±HH:MM`;
    /// an offset that is not whole minutes is truncated to minutes). The fraction is omitted
    /// when zero, 3 digits when whole milliseconds, else 6.
    /// - Complexity: O(1); allocates the result.
    public static func format(_ t: Micros, offsetSeconds: Int) -> String {
        let offMin = offsetSeconds / 60
        let local = t &+ Int64(offMin) * 60_000_000
        let day = floorDiv(local, 86_400_000_000)
        let rem = local - day * 86_400_000_000
        let (y, m, d) = civil(fromDays: day)
        let secs = rem / 1_000_000
        let micros = rem % 1_000_000
        var out = ""
        out.reserveCapacity(32)
        func pad(_ v: Int64, _ width: Int) {
            let s = String(v)
            if s.count < width { out += String(repeating: "0", count: width - s.count) }
            out += s
        }
        if y < 0 { out += "-"; pad(-y, 4) } else { pad(y, 4) }
        out += "-"; pad(m, 2); out += "-"; pad(d, 2)
        out += "T"; pad(secs / 3600, 2); out += ":"; pad(secs / 60 % 60, 2); out += ":"; pad(secs % 60, 2)
        if micros != 0 {
            out += "."
            if micros % 1000 == 0 { pad(micros / 1000, 3) } else { pad(micros, 6) }
        }
        if offMin == 0 {
            out += "Z"
        } else {
            let a = abs(offMin)
            out += offMin < 0 ? "-" : "+"
            pad(Int64(a / 60), 2); out += ":"; pad(Int64(a % 60), 2)
        }
        return out
    }

    // MARK: Internals shared with the decoder

    /// The last `YYYY-MM-DD` seen and its day number: consecutive events share their date,
    /// so the decoder skips the calendar arithmetic and its validation for them.
    struct DayCache {
        var key: UInt64 = 0
        var key2: UInt16 = 0
        var days: Int64 = 0
        var valid = false
        /// The last validated `YYYY-MM-DDTHH:MM` (bytes 0..<8 in `key`, 8..<16 here) and its
        /// instant in seconds (offset not applied): events of one minute skip the date and the
        /// hour and minute checks (a time-ordered stream has thousands per minute).
        var minuteKey: UInt64 = 0
        var minuteSeconds: Int64 = 0
        var minuteValid = false
    }

    @inline(__always)
    static func digit(_ p: UnsafePointer<UInt8>, _ i: Int) -> Int64? {
        let d = p[i] &- 48
        return d < 10 ? Int64(d) : nil
    }

    @inline(__always)
    static func two(_ p: UnsafePointer<UInt8>, _ i: Int) -> Int64? {
        let a = p[i] &- 48, b = p[i + 1] &- 48
        return a < 10 && b < 10 ? Int64(a) * 10 + Int64(b) : nil
    }

    static func parse(_ p: UnsafePointer<UInt8>, _ n: Int, cache: inout DayCache) -> Micros? {
        // Shortest: "YYYY-MM-DDTHH:MM:SSZ" (20 bytes).
        guard n >= 20 else { return nil }
        let raw = UnsafeRawPointer(p)
        let k1 = raw.loadUnaligned(as: UInt64.self)
        let kt = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        let minuteSeconds: Int64
        if cache.minuteValid && cache.key == k1 && cache.minuteKey == kt {
            minuteSeconds = cache.minuteSeconds
        } else {
            let k2 = raw.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
            let days: Int64
            if cache.valid && cache.key == k1 && cache.key2 == k2 {
                days = cache.days
            } else {
                guard p[4] == UInt8(ascii: "-"), p[7] == UInt8(ascii: "-"),
                      let y1 = two(p, 0), let y2 = two(p, 2), let mo = two(p, 5), let d = two(p, 8)
                else { return nil }
                let y = y1 * 100 + y2
                guard mo >= 1, mo <= 12, d >= 1, d <= daysIn(month: mo, year: y) else { return nil }
                days = daysFromCivil(y, mo, d)
                cache.key = k1
                cache.key2 = k2
                cache.days = days
                cache.valid = true
                cache.minuteValid = false
            }
            let sep = p[10]
            guard sep == UInt8(ascii: "T") || sep == UInt8(ascii: "t") || sep == UInt8(ascii: " "),
                  p[13] == UInt8(ascii: ":"), let hh = two(p, 11), let mm = two(p, 14), hh <= 23, mm <= 59
            else { return nil }
            minuteSeconds = days * 86_400 + hh * 3600 + mm * 60
            cache.minuteKey = kt
            cache.minuteSeconds = minuteSeconds
            cache.minuteValid = true
        }
        guard p[16] == UInt8(ascii: ":"), var ss = two(p, 17), ss <= 60 else { return nil }
        var i = 19
        var frac: Int64 = 0
        if p[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < n, let dgt = digit(p, i) {
                if i - start < 6 { frac = frac * 10 + dgt }
                i += 1
            }
            let count = i - start
            guard count >= 1, count <= 9 else { return nil }
            var c = count
            while c < 6 { frac *= 10; c += 1 }
        }
        guard i < n else { return nil }
        var offset: Int64 = 0
        let z = p[i]
        if z == UInt8(ascii: "Z") || z == UInt8(ascii: "z") {
            guard i + 1 == n else { return nil }
        } else if z == UInt8(ascii: "+") || z == UInt8(ascii: "-") {
            guard i + 6 == n, p[i + 3] == UInt8(ascii: ":"),
                  let oh = two(p, i + 1), let om = two(p, i + 4), oh <= 23, om <= 59
            else { return nil }
            offset = (oh * 60 + om) * 60
            if z == UInt8(ascii: "-") { offset = -offset }
        } else {
            return nil
        }
        if ss == 60 {  // leap second: the last representable instant of the minute
            ss = 59
            frac = 999_999
        }
        let secs = minuteSeconds + ss - offset
        return secs * 1_000_000 + frac
    }

    static func isLeap(_ y: Int64) -> Bool { y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) }

    static func daysIn(month m: Int64, year y: Int64) -> Int64 {
        switch m {
        case 2: return isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    @inline(__always)
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The proleptic Gregorian date of a day number (inverse of ``daysFromCivil``).
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
