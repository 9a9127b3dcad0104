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

/// Fuzzer findings that still crash, each replayed in a child process (a Swift Testing exit test),
/// so the finding is pinned without taking the test run down with it.
@Suite("Security: open fuzz findings")
struct SecurityOpenFuzzFindingsTests {
    /// Found by `Fuzz/run.sh 60` (pipeline target): deeply nested YAML flow mappings (~5 000 under
    /// ASan, ~200 000 without) overflow the stack in Yams' recursive `Parser.loadNode`/`loadMapping`, so `Pipeline.parse` (and thus
    /// `tally check` / `tally run --pipeline`, SIGHUP reload) dies by SIGSEGV instead of reporting a
    /// diagnostic. Fix belongs in `Pipeline.parse`: refuse nesting deeper than a bound before Yams.
    /// Marked a known issue until then; when fixed, the known issue stops occurring and this test
    /// fails, prompting removal of `withKnownIssue`.
    @Test("a pipeline with thousands of nested flow mappings is refused with a diagnostic, not a stack overflow")
    func deepNestingDoesNotCrash() async {
        await withKnownIssue("Pipeline.parse has no nesting bound: Yams recurses per level (open finding)") {
            await #expect(processExitsWith: .success) {
                // The finding (Fuzz/findings/pipeline-stack-overflow-deep-nesting.yaml) overflows under
                // ASan's larger frames; without ASan the same shape needs more levels: 200 000 (200 KB).
                let text = "pipeline: x\nderive:\n " + String(repeating: "{", count: 200_000) + "\n"
                do {
                    _ = try Pipeline.parse(yaml: text, file: "deep.yaml")
                    exit(1)   // not a valid pipeline: it must be refused
                } catch {
                    exit((error as? PipelineError)?.diagnostics.isEmpty == false ? 0 : 1)
                }
            }
        }
    }
}
