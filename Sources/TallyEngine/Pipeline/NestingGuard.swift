/// A bound on YAML nesting, checked before the text reaches Yams.
///
/// Why: Yams (libyaml's composer) recurses once per nesting level, so a pipeline file with
/// thousands of nested `{`/`[` or block levels overflows the stack and kills `tally check`,
/// `tally run` or a SIGHUP reload with SIGSEGV (found by the pipeline fuzzer). A pipeline needs
/// about six levels; anything past ``limit`` is refused with a diagnostic instead.
///
/// The estimate must never be lower than the nesting libyaml will see, or the guard is useless
/// (the fuzzer found a first version that followed quotes too trustingly). So it errs one way:
/// - every `{` and `[` counts as an opening, wherever it stands (quoted, in a comment, in plain
///   text): a real opening can never be missed;
/// - a `}` or `]` counts as a closing only outside anything that might be a quoted scalar or a
///   comment. A quote is assumed to start at every `"`/`'` that follows whitespace, a flow
///   indicator, `:` or a line start (a superset of where YAML starts one), and ends where YAML ends
///   it (`\"` escapes, `''` in single quotes), so a closing YAML would ignore is ignored too;
/// - block nesting is bounded by twice the stack of increasing indentations (a sequence may sit
///   at its parent key's indentation) plus the `- ` markers on a line.
/// Legitimate pipelines are far from the bound even with braces in titles.
///
/// - Complexity: O(n) in the bytes of the file; memory is a stack of indentation widths bounded
///   by ``limit``.
enum NestingGuard {
    static let limit = 64

    private enum State { case plain, doubleQuoted, singleQuoted, singleQuoteEnding, comment }

    /// Where nesting may exceed ``limit``: a 1-based line and column, and, when a quote opened
    /// earlier is still open there, where it opened (an unbalanced `"` in plain text counts as a
    /// quote, so the message can point the author at it).
    struct Finding: Equatable {
        let line: Int
        let column: Int
        let openQuote: (line: Int, column: Int)?
        static func == (a: Finding, b: Finding) -> Bool {
            a.line == b.line && a.column == b.column && a.openQuote?.line == b.openQuote?.line && a.openQuote?.column == b.openQuote?.column
        }
    }

    /// The first position where nesting may exceed ``limit``.
    static func firstTooDeep(_ text: String) -> Finding? {
        var line = 1, column = 0
        var flow = 0
        var indents: [Int] = []
        var atLineStart = true, indent = 0, sequenceMarkers = 0
        var state = State.plain
        var previous: UInt8 = UInt8(ascii: "\n")
        var quoteStart = (line: 0, column: 0)
        func finding() -> Finding {
            let quoted = state == .doubleQuoted || state == .singleQuoted || state == .singleQuoteEnding
            return Finding(line: line, column: column, openQuote: quoted ? quoteStart : nil)
        }
        func blockDepth() -> Int { 2 * indents.count + sequenceMarkers }
        for byte in text.utf8 {
            column += 1
            let isOpening = byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[")
            if isOpening {
                flow += 1
                if flow + blockDepth() > limit { return finding() }
            }
            if byte == UInt8(ascii: "\n") {
                line += 1; column = 0
                atLineStart = true; indent = 0; sequenceMarkers = 0
                if state == .comment || state == .singleQuoteEnding { state = .plain }
                previous = byte
                continue
            }
            switch state {
            case .comment:
                previous = byte
                continue
            case .doubleQuoted:
                if byte == UInt8(ascii: "\"") && previous != UInt8(ascii: "\\") { state = .plain }
                // `\\` before a quote: treat the quote as escaped (stays quoted: the safe side).
                previous = (previous == UInt8(ascii: "\\") && byte == UInt8(ascii: "\\")) ? 0 : byte
                continue
            case .singleQuoted:
                if byte == UInt8(ascii: "'") { state = .singleQuoteEnding }
                previous = byte
                continue
            case .singleQuoteEnding:
                if byte == UInt8(ascii: "'") { state = .singleQuoted; previous = byte; continue }  // `''`
                state = .plain
            case .plain:
                break
            }
            if atLineStart {
                if byte == UInt8(ascii: " ") { indent += 1; previous = byte; continue }
                if byte == UInt8(ascii: "-") || byte == UInt8(ascii: "?") {
                    sequenceMarkers += 1; indent += 1; previous = byte; continue
                }
                atLineStart = false
                while let top = indents.last, top >= indent { indents.removeLast() }
                indents.append(indent)
                if flow + blockDepth() > limit { return finding() }
            }
            let afterSeparator = previous == UInt8(ascii: " ") || previous == UInt8(ascii: "\t")
                || previous == UInt8(ascii: "\n") || previous == UInt8(ascii: "{") || previous == UInt8(ascii: "[")
                || previous == UInt8(ascii: ",") || previous == UInt8(ascii: ":") || previous == UInt8(ascii: "-")
                || previous == UInt8(ascii: "?")
            switch byte {
            case UInt8(ascii: "#") where afterSeparator:
                state = .comment
            case UInt8(ascii: "\"") where afterSeparator:
                state = .doubleQuoted
                quoteStart = (line, column)
            case UInt8(ascii: "'") where afterSeparator:
                state = .singleQuoted
                quoteStart = (line, column)
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
