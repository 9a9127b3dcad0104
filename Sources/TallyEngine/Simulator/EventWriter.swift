// MARK: - CloudEvents JSON writer

/// Writes CloudEvents 1.0 structured-mode JSON straight into a byte buffer.
///
/// Why hand-written: the simulator produces up to ~100 million events at scale 1, and a
/// `JSONEncoder` round trip per event would dominate the cost of the whole replay. Field
/// order is fixed (`specversion`, `id`, `source`, `type`, `time`, `datacontenttype`, `data`);
/// strings are escaped per RFC 8259, so any identifier is safe.
/// - Complexity: O(bytes written) per event; the buffer is reused between events.
struct EventWriter {
    var bytes: [UInt8] = []
    private var needsComma = false

    init(capacity: Int = 512) { bytes.reserveCapacity(capacity) }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        needsComma = false
    }

    /// Opens an event and its `data` object; `source` and `id` append their (JSON-safe) bytes.
    mutating func begin(type: StaticString, source: (inout [UInt8]) -> Void, id: (inout [UInt8]) -> Void, time: Micros) {
        raw("{\"specversion\":\"1.0\",\"id\":\"")
        id(&bytes)
        raw("\",\"source\":\"")
        source(&bytes)
        raw("\",\"type\":\"")
        raw(type)
        raw("\",\"time\":\"")
        SimTime.appendRFC3339(time, to: &bytes)
        raw("\",\"datacontenttype\":\"application/json\",\"data\":{")
        needsComma = false
    }

    /// Closes the `data` object and the event.
    mutating func end() { raw("}}") }

    mutating func field(_ key: StaticString, _ value: String) {
        key_(key)
        bytes.append(UInt8(ascii: "\""))
        Self.appendEscaped(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func field(_ key: StaticString, static value: StaticString) {
        key_(key)
        bytes.append(UInt8(ascii: "\""))
        raw(value)
        bytes.append(UInt8(ascii: "\""))
    }

    /// A string field whose value is written by `parts` (already JSON-safe ASCII).
    mutating func field(_ key: StaticString, parts: (inout [UInt8]) -> Void) {
        key_(key)
        bytes.append(UInt8(ascii: "\""))
        parts(&bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func field(_ key: StaticString, _ value: Int64) {
        key_(key)
        Self.appendInt(value, to: &bytes)
    }

    mutating func field(_ key: StaticString, _ value: Int) { field(key, Int64(value)) }

    mutating func field(_ key: StaticString, _ value: Bool) {
        key_(key)
        raw(value ? "true" : "false")
    }

    mutating func field(_ key: StaticString, strings: [String]) {
        key_(key)
        bytes.append(UInt8(ascii: "["))
        for (i, s) in strings.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(UInt8(ascii: "\""))
            Self.appendEscaped(s, to: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "]"))
    }

    // MARK: Primitives

    private mutating func key_(_ key: StaticString) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
        bytes.append(UInt8(ascii: "\""))
        raw(key)
        raw("\":")
    }

    mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    static func appendInt(_ value: Int64, to out: inout [UInt8]) {
        if value == 0 { out.append(48); return }
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var x = value.magnitude
        var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                  UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { buf in
            while x > 0 {
                buf[n] = UInt8(48 + x % 10)
                x /= 10
                n += 1
            }
            for i in stride(from: n - 1, through: 0, by: -1) { out.append(buf[i]) }
        }
    }

    /// Appends `n` zero-padded to `width` digits.
    static func appendPadded(_ n: Int, width: Int, to out: inout [UInt8]) {
        SimTime.appendDigits(n, width, &out)
    }

    static func appendASCII(_ s: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Appends a string escaped for a JSON string literal (RFC 8259 §7).
    static func appendEscaped(_ s: String, to out: inout [UInt8]) {
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
    }
}
