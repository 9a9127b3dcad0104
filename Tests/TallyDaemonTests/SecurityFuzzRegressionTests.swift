import Foundation
import Testing
import TallyEngine

/// Every input in the committed fuzz corpus (`Fuzz/corpus/`), including every input the fuzzer ever
/// reported (added there when found, see `Fuzz/run.sh`), replayed through the decoder and the
/// pipeline parser on every `swift test`, with the harnesses' contracts. The fuzzer runs under
/// AddressSanitizer in CI; this keeps its findings fixed in the normal test run too.
@Suite("Security: fuzz corpus regressions")
struct SecurityFuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

    static func inputs(_ target: String) -> [String] {
        let dir = corpus.appendingPathComponent(target).path
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().map { dir + "/" + $0 }
    }

    @Test("the corpus is committed and non-empty for both targets")
    func corpusPresent() {
        #expect(Self.inputs("decoder").count >= 5)
        #expect(Self.inputs("pipeline").count >= 3)
    }

    @Test("every decoder corpus input decodes within its contract", arguments: inputs("decoder"))
    func decoder(path: String) throws {
        let bytes = try #require(FileManager.default.contents(atPath: path))
        var limits = DecodeLimits()
        limits.maxDepth = 8
        limits.maxStringLength = 64
        limits.maxEventsPerBatch = 16
        var decoder = EventDecoder(limits: limits)
        var indices: [Int] = []
        let frameError = bytes.withUnsafeBytes { raw in
            decoder.decode(raw) { index, outcome in
                indices.append(index)
                if case .rejected(let reason) = outcome { #expect(!reason.message.isEmpty) }
            }
        }
        #expect(indices == Array(0..<indices.count))
        if frameError != nil { #expect(indices.isEmpty) } else { #expect(indices.count <= 16) }
    }

    @Test("the empty batch found by the fuzzer is a valid frame with no events")
    func emptyBatch() {
        var decoder = EventDecoder()
        var calls = 0
        let error = Array("[]".utf8).withUnsafeBytes { decoder.decode($0) { _, _ in calls += 1 } }
        #expect(error == nil)
        #expect(calls == 0)
    }

    @Test("every pipeline corpus input compiles or yields diagnostics inside the text", arguments: inputs("pipeline"))
    func pipeline(path: String) throws {
        let data = try #require(FileManager.default.contents(atPath: path))
        let text = String(decoding: data, as: UTF8.self)
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
            _ = try Pipeline.parse(yaml: text, file: "corpus.yaml")
        } catch {
            #expect(!error.diagnostics.isEmpty)
            for d in error.diagnostics {
                #expect(d.line >= 0 && d.line <= lines + 1, "\(d)")
                #expect(!d.message.isEmpty)
            }
        }
    }
}

/// Fuzzer findings, fixed, replayed in a child process (a Swift Testing exit test) so that a
/// regression is a failed test rather than a crashed test run.
@Suite("Security: fixed fuzz findings")
struct SecurityFixedFuzzFindingsTests {
    /// Found by `Fuzz/run.sh 60` (pipeline target): deeply nested YAML flow mappings (~5 000 under
    /// ASan, ~200 000 without) overflowed the stack in Yams' recursive `Parser.loadNode`, so
    /// `Pipeline.parse` (and `tally check`, `tally run --pipeline`, a SIGHUP reload) died by SIGSEGV.
    /// Fixed by `NestingGuard` in `Pipeline.parse`, which refuses more than 64 levels first.
    @Test("a pipeline with thousands of nested flow mappings is refused with a diagnostic, not a stack overflow")
    func deepNestingDoesNotCrash() async {
        await #expect(processExitsWith: .success) {
            let text = "pipeline: x\nderive:\n " + String(repeating: "{", count: 200_000) + "\n"
            do {
                _ = try Pipeline.parse(yaml: text, file: "deep.yaml")
                exit(1)   // not a valid pipeline: it must be refused
            } catch {
                exit((error as? PipelineError)?.diagnostics.first?.message.contains("nests deeper") == true ? 0 : 1)
            }
        }
    }

    @Test("deep block nesting and deep sequences are refused the same way")
    func deepBlockNesting() throws {
        var text = "pipeline: x\nindicators:\n"
        for level in 0..<80 { text += String(repeating: "  ", count: level + 1) + "k\(level):\n" }
        let blocks = #expect(throws: PipelineError.self) { try Pipeline.parse(yaml: text, file: "blocks.yaml") }
        #expect(blocks?.diagnostics.first?.message.contains("nests deeper") == true)
        let dashes = "pipeline: x\nindicators:\n" + String(repeating: "- ", count: 100) + "x\n"
        let sequences = #expect(throws: PipelineError.self) { try Pipeline.parse(yaml: dashes, file: "dashes.yaml") }
        #expect(sequences?.diagnostics.first?.message.contains("nests deeper") == true)
    }

    /// Found by CI's fuzz run against the first `NestingGuard`: a `"` inside a plain scalar made
    /// the guard believe a quote was open and skip the brackets after it, so the nesting passed
    /// unseen and Yams overflowed the stack again. Openings now always count.
    @Test("a stray quote in plain text does not hide the brackets after it")
    func strayQuoteDoesNotHideNesting() async {
        await #expect(processExitsWith: .success) {
            let text = "pa.melrs: {a:! bi!n\"}\nderive:\n " + String(repeating: "{", count: 200_000) + "r:\n"
            do {
                _ = try Pipeline.parse(yaml: text, file: "stray.yaml")
                exit(1)
            } catch {
                exit((error as? PipelineError)?.diagnostics.first?.message.contains("nests deeper") == true ? 0 : 1)
            }
        }
    }

    @Test("the shipped national pipeline is well within the nesting bound")
    func shippedPipelineIsShallow() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Pipelines/national-dx.yaml").standardized
        let text = try String(contentsOf: url, encoding: .utf8)
        _ = try Pipeline.parse(yaml: text, file: url.path)
    }
}
