// MARK: - JSONText

/// Minimal JSON writing into a byte buffer: what the daemon needs for dead letters, ack statuses
/// and error replies, without Foundation and without an intermediate `String` per field.
///
/// - Complexity: O(n) in the bytes written; appends into a caller-owned buffer that is reused.
public enum JSONText {
    /// Appends `s` as a JSON string literal (quotes included), escaping what RFC 8259 requires.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { appendString(bytes: UnsafeRawBufferPointer($0), to: &out) }
    }

    /// Appends raw bytes as a JSON string. Invalid UTF-8 is replaced (U+FFFD) so that the line is
    /// always valid JSON even for a binary payload.
    public static func appendString(bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        // Validate UTF-8 by decoding; escapes control characters, quote and backslash.
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                let v = scalar.value
                switch v {
                case 0x22: out.append(contentsOf: [0x5C, 0x22])
                case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                case 0..<0x20:
                    out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(v >> 4)], hex[Int(v & 0xF)]])
                default:
                    UTF8.encode(scalar) { out.append($0) }
                }
            case .emptyInput:
                break loop
            case .error:
                out.append(contentsOf: [0xEF, 0xBF, 0xBD])
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends a decimal integer.
    @inline(__always)
    public static func appendInt<I: BinaryInteger>(_ v: I, to out: inout [UInt8]) {
        out.append(contentsOf: String(v).utf8)
    }

    /// `{"error": message}` as bytes: the snapshot service's and the ack path's error reply.
    public static func errorObject(_ message: String, code: String? = nil) -> [UInt8] {
        var out: [UInt8] = Array(#"{"error":"#.utf8)
        appendString(message, to: &out)
        if let code {
            out.append(contentsOf: #","code":"#.utf8)
            appendString(code, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

// MARK: - Wall clock

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall clock and monotonic clock readings, and RFC 3339 formatting without Foundation.
public enum Clocks {
    /// Microseconds since the Unix epoch (`CLOCK_REALTIME`).
    public static func wallMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000
    }

    /// Nanoseconds of `CLOCK_MONOTONIC` (the clock Python's `time.monotonic()` reads).
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// `2024-04-30T16:59:59.123Z` (UTC, milliseconds).
    /// - Complexity: O(1); one small string.
    public static func rfc3339(micros: Int64) -> String {
        var t = time_t(micros / 1_000_000)
        var tm = tm()
        gmtime_r(&t, &tm)
        let ms = Int((micros % 1_000_000) / 1_000)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }
}
