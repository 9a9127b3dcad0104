import Foundation
import Testing
@testable import TallyEngine

@Suite("Pipeline language and tally check diagnostics")
struct PipelineDiagnosticsTests {
    func diagnostics(_ yaml: String) -> [Diagnostic] {
        do {
            _ = try Pipeline.parse(yaml: yaml, file: "bad.yaml")
            return []
        } catch {
            return error.diagnostics
        }
    }

    @Test("the national pipeline compiles with every catalog indicator id")
    func national() throws {
        let p = try Pipeline.load(path: nationalPath)
        #expect(p.name == "national-dx")
        #expect(p.timeZoneIdentifier == "Asia/Ho_Chi_Minh")
        let spec = try String(contentsOfFile: URL(fileURLWithPath: nationalPath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/spec/indicators.md").path, encoding: .utf8)
        let ids = spec.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `") else { return nil }
            return String(line.dropFirst(3).prefix { $0 != "`" })
        }
        #expect(ids.count == 39)
        #expect(p.indicators.map(\.id) == ids)
        #expect(Pipeline.check(path: nationalPath).isEmpty)
    }

    @Test("an unknown aggregate lists the valid ones, at its line and column")
    func unknownAggregate() {
        let d = diagnostics("""
        pipeline: t
        indicators:
          - id: a
            unit: count
            events: security.incident
            aggregate: cnt
        """)
        #expect(d.count == 1)
        #expect(d.first?.line == 6 && d.first?.column == 16)
        #expect(d.first?.message.contains("did you mean 'count'") == true)
        #expect(d.first?.message.contains("sum(FIELD)") == true)
        #expect(d.first?.description.hasPrefix("bad.yaml:6:16: error: ") == true)
    }

    @Test("an unknown field names the type's fields")
    func unknownField() {
        let d = diagnostics("""
        pipeline: t
        indicators:
          - { id: a, unit: VND, events: dvc.payment.completed, aggregate: sum(amount) }
        """)
        #expect(d.first?.message.contains("did you mean 'amount_vnd'") == true)
        #expect(d.first?.message.contains("payment, amount_vnd") == true)
        #expect(d.first?.line == 3)
    }

    @Test("an unknown event type suggests the nearest catalog name")
    func unknownType() {
        let d = diagnostics("""
        pipeline: t
        indicators:
          - id: a
            unit: count
            events: ndxp.transactions
            aggregate: count
        """)
        #expect(d.first?.message.contains("did you mean 'ndxp.transaction'") == true)
        #expect(d.first?.line == 5 && d.first?.column == 13)
    }

    @Test("a window unit typo suggests the right unit")
    func windowTypo() {
        let d = diagnostics("""
        pipeline: t
        indicators:
          - id: a
            unit: count
            events: ndxp.transaction
            aggregate: count
            window: 24hr
        """)
        #expect(d.first?.message.contains("did you mean 24h?") == true)
        #expect(d.first?.line == 7 && d.first?.column == 13)
        #expect(diagnostics("pipeline: t\nindicators:\n  - { id: a, unit: c, events: ndxp.transaction, aggregate: count, window: ytd }").first?.message.contains("did you mean 'year'") == true)
    }

    @Test("a cycle between derived indicators is reported")
    func cycle() {
        let d = diagnostics("""
        pipeline: t
        indicators:
          - { id: a, unit: "%", derive: { growth_yoy: b } }
          - { id: b, unit: "%", derive: { change_yoy: a } }
        """)
        #expect(d.contains { $0.message.contains("cycle between indicators: a → b → a") })
    }

    @Test("duplicate ids, bad enum values, unknown keys and missing units are all reported at once")
    func many() {
        let d = diagnostics("""
        pipeline: t
        indicators:
          - { id: a, unit: count, events: ndxp.transaction, aggregate: count }
          - { id: a, unit: count, events: ndxp.transaction, aggregate: count, where: { status: success } }
          - { id: c, events: ndxp.transaction, aggregate: count, windw: 24h }
        """)
        #expect(d.contains { $0.message.contains("duplicate indicator id 'a'") && $0.line == 4 })
        #expect(d.contains { $0.message.contains("valid values: ok, error") })
        #expect(d.contains { $0.message.contains("unknown key 'windw'") && $0.message.contains("did you mean 'window'") })
        #expect(d.contains { $0.message.contains("needs `unit:") })
        #expect(d.count == 4)
    }

    @Test("YAML syntax errors, unknown zones, tables and constants are diagnosed with positions")
    func syntaxAndReferences() {
        let syntax = diagnostics("pipeline: t\nindicators: [\n")
        #expect(syntax.count == 1 && syntax[0].line >= 2)
        let d = diagnostics("""
        pipeline: t
        timezone: Asia/Ho_Chi_Minhh
        indicators:
          - { id: a, unit: count, table: nope, aggregate: count }
          - { id: b, unit: count, events: ndxp.transaction, aggregate: count, of: { constant: provinces } }
        """)
        #expect(d.contains { $0.message.contains("did you mean 'Asia/Ho_Chi_Minh'") && $0.line == 2 })
        #expect(d.contains { $0.message.contains("unknown table 'nope'") })
        #expect(d.contains { $0.message.contains("unknown constant 'provinces'") })
    }

    @Test("check() returns the diagnostics of a file on disk")
    func checkFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tally-check-\(UUID().uuidString).yaml").path
        try "pipeline: t\nindicators:\n  - { id: a, unit: count, events: ndxp.transaction, aggregate: avg(x) }\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let d = Pipeline.check(path: path)
        #expect(d.count == 1 && d[0].file == path && d[0].line == 3)
        #expect(Pipeline.check(path: "/nonexistent/x.yaml").first?.message.contains("cannot read") == true)
    }
}
