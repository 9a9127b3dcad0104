// MARK: - EventInput

/// Reads events for `tally send`: NDJSON (one event object or one JSON array of events per line)
/// or a whole file that is one JSON array, from files or stdin (`-`).
public enum EventInput {
    /// The events of `bytes`, each as its own JSON bytes (arrays are flattened).
    /// - Complexity: O(n), one scan; one small array per event.
    public static func events(in bytes: [UInt8]) -> [[UInt8]] {
        bytes.withUnsafeBytes { raw -> [[UInt8]] in
            let all = raw.trimmed()
            guard !all.isEmpty else { return [] }
            // One JSON value spanning the whole input (e.g. a pretty-printed array)?
            if let end = endOfFirstValue(all), UnsafeRawBufferPointer(rebasing: all[end...]).trimmed().isEmpty {
                return flatten(all)
            }
            var out: [[UInt8]] = []
            var start = 0
            for i in 0...all.count {
                if i == all.count || all[i] == 0x0A {
                    let line = UnsafeRawBufferPointer(rebasing: all[start..<i]).trimmed()
                    if !line.isEmpty { out.append(contentsOf: flatten(line)) }
                    start = i + 1
                }
            }
            return out
        }
    }

    /// Events as frames: one event per frame when `batch` is 1, else CloudEvents JSON batches.
    public static func frames(_ events: [[UInt8]], batch: Int) -> [(payload: [UInt8], events: Int)] {
        guard batch > 1 else { return events.map { ($0, 1) } }
        var out: [(payload: [UInt8], events: Int)] = []
        var i = 0
        while i < events.count {
            let chunk = events[i..<min(i + batch, events.count)]
            var payload: [UInt8] = [UInt8(ascii: "[")]
            for (k, e) in chunk.enumerated() {
                if k > 0 { payload.append(UInt8(ascii: ",")) }
                payload.append(contentsOf: e)
            }
            payload.append(UInt8(ascii: "]"))
            out.append((payload, chunk.count))
            i += batch
        }
        return out
    }

    private static func flatten(_ value: UnsafeRawBufferPointer) -> [[UInt8]] {
        if JSONScan.isArray(value) {
            return JSONScan.arrayElements(value).map { Array($0) }
        }
        return [Array(value)]
    }

    /// The index just past the first complete JSON object or array, or `nil`.
    static func endOfFirstValue(_ b: UnsafeRawBufferPointer) -> Int? {
        var depth = 0, inString = false, escaped = false
        for i in 0..<b.count {
            let c = b[i]
            if inString {
                if escaped { escaped = false } else if c == 0x5C { escaped = true } else if c == 0x22 { inString = false }
                continue
            }
            switch c {
            case 0x22: inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return i + 1 }
            default: break
            }
        }
        return nil
    }
}

/// A command's failure with its exit code (1 runtime, 2 usage); an empty message prints nothing
/// more (the command already printed its report).
public struct CommandFailure: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public init(code: Int32, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}
