import Foundation
@testable import TallyEngine

/// Builds CloudEvents JSON for tests (the engine is exercised through its real decoder).
enum CE {
    nonisolated(unsafe) static var counter = 0
    static let lock = NSLock()

    static func nextID() -> String {
        lock.lock()
        defer { lock.unlock() }
        counter += 1
        return "e\(counter)"
    }

    /// One event object as JSON text.
    static func event(_ type: String, _ time: String, _ data: [String: Any], id: String? = nil, source: String = "/test/producer") -> String {
        let d = try! JSONSerialization.data(withJSONObject: data, options: [.sortedKeys])
        return #"{"specversion":"1.0","id":"\#(id ?? nextID())","source":"\#(source)","type":"\#(type)","time":"\#(time)","data":\#(String(decoding: d, as: UTF8.self))}"#
    }

    static func balance(_ indicator: String, _ value: Double, at time: String, id: String? = nil) -> String {
        event("tally.balance", time, ["indicator": indicator, "value": value], id: id, source: "/tally/balances")
    }

    static func batch(_ events: [String]) -> String { "[" + events.joined(separator: ",") + "]" }
}

extension Engine {
    /// Ingests JSON text; returns the report.
    @discardableResult
    func send(_ json: String, origin: Origin = .any) -> IngestReport { ingest(Array(json.utf8), origin: origin) }

    func value(_ id: String) -> SnapshotNumber? { snapshot()[id]?.value }
    func double(_ id: String) -> Double? { value(id)?.doubleValue }
}

/// A pipeline from YAML text (fails the test on diagnostics).
func pipeline(_ yaml: String) throws -> Pipeline { try Pipeline.parse(yaml: yaml, file: "test.yaml") }

/// A minimal pipeline header with a body of indicators.
func pipelineYAML(_ indicators: String, tables: String = "", constants: String = "") -> String {
    """
    pipeline: test
    timezone: Asia/Ho_Chi_Minh
    \(constants.isEmpty ? "" : "constants:\n" + constants)
    \(tables.isEmpty ? "" : "tables:\n" + tables)
    indicators:
    \(indicators)
    """
}

let nationalPath: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("Pipelines/national-dx.yaml").path
}()
