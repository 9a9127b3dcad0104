// libFuzzer target: the pipeline language (YAML → Pipeline.parse, the compiler and its diagnostics).
//
// Any input must end in a Pipeline or a PipelineError with diagnostics that point into the text;
// never a crash, a hang, or an out-of-bounds read (AddressSanitizer).
import TallyEngine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPipeline(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size <= 16_384 else { return 0 }     // pipelines are small; keep iterations fast
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    // YAML line breaks: LF, CR (CRLF counts once), and NEL/LS/PS, which libyaml also honours.
    var lines = 1
    var previous: Unicode.Scalar = " "
    for s in text.unicodeScalars {
        switch s {
        case "\n": if previous != "\r" { lines += 1 }
        case "\r", "\u{85}", "\u{2028}", "\u{2029}": lines += 1
        default: break
        }
        previous = s
    }
    do {
        let pipeline = try Pipeline.parse(yaml: text, file: "fuzz.yaml")
        for indicator in pipeline.indicators {
            precondition(pipeline.indicatorIndex(indicator.id) != nil, "an indicator is found by its id")
        }
    } catch {
        precondition(!error.diagnostics.isEmpty, "a PipelineError carries at least one diagnostic")
        for d in error.diagnostics {
            precondition(d.line >= 0 && d.line <= lines + 1, "diagnostic line \(d.line) outside the \(lines)-line text")
            precondition(!d.message.isEmpty, "a diagnostic says something")
        }
    }
    return 0
}

/// The deepest run of unclosed `{`/`[` (quotes ignored: an over-estimate, which is the safe side).
