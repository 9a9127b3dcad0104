/// A bound on YAML nesting, checked before the text reaches Yams.
///
/// Why: Yams (libyaml's composer) recurses once per nesting level, so a pipeline file with
/// thousands of nested `{`/`[` or block levels overflows the stack and kills `tally check`,
/// `tally run` or a SIGHUP reload with SIGSEGV (found by the pipeline fuzzer). A pipeline needs
/// about six levels; anything past ``limit`` is refused with a diagnostic instead.
///
/// The estimate is conservative: it counts flow brackets outside quoted scalars and comments,
/// plus block levels (deeper indentation and `- ` sequence markers). It may overestimate
/// exotic layouts, never underestimate.
///
/// - Complexity: O(n) in the bytes of the file, no allocation beyond a stack of indent widths
///   (itself bounded by ``limit``).
enum NestingGuard {
    static let limit = 64

    /// The first position where nesting exceeds ``limit``, as a 1-based line and column.
    static func firstTooDeep(_ text: String) -> (line: Int, column: Int)? {
        var line = 1, column = 0
        var flow = 0
        var indents: [Int] = []  // block indentation widths currently open
        var atLineStart = true, indent = 0, sequenceMarkers = 0
        var quote: UInt8? = nil
        var inComment = false
        var previous: UInt8 = 0
        for byte in text.utf8 {
            column += 1
            if byte == UInt8(ascii: "\n") {
                line += 1; column = 0
                atLineStart = true; indent = 0; sequenceMarkers = 0
                inComment = false
                if quote != nil && flow == 0 { quote = nil }  // block scalars and broken quotes end here
                previous = byte
                continue
            }
            if inComment { continue }
            if let q = quote {
                if byte == q && !(q == UInt8(ascii: "\"") && previous == UInt8(ascii: "\\")) { quote = nil }
                previous = byte
                continue
            }
            if atLineStart {
                if byte == UInt8(ascii: " ") { indent += 1; previous = byte; continue }
                if byte == UInt8(ascii: "-") { sequenceMarkers += 1; indent += 1; previous = byte; continue }
                if byte == UInt8(ascii: "#") { inComment = true; continue }
                atLineStart = false
                while let top = indents.last, top >= indent { indents.removeLast() }
                indents.append(indent)
                if indents.count + sequenceMarkers > limit { return (line, column) }
            }
            switch byte {
            case UInt8(ascii: "#") where previous == UInt8(ascii: " ") || previous == UInt8(ascii: "\t"):
                inComment = true
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                quote = byte
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                flow += 1
                if flow + indents.count + sequenceMarkers > limit { return (line, column) }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                flow = max(0, flow - 1)
            default:
                break
            }
            previous = byte
        }
        return nil
    }
}
