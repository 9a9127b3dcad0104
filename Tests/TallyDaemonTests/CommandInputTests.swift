import Foundation
import Testing
@testable import TallyDaemon

@Suite("tally send input, watch formatting, dead letters")
struct CommandInputTests {
    @Test("NDJSON lines, arrays on a line and one pretty-printed array all give their events")
    func input() {
        let ndjson = Array("{\"id\":\"1\"}\n[{\"id\":\"2\"}, {\"id\":\"3\",\"x\":[1,2]}]\n\n{\"id\":\"4\"}\n".utf8)
        let events = EventInput.events(in: ndjson).map { String(decoding: $0, as: UTF8.self) }
        #expect(events == [#"{"id":"1"}"#, #"{"id":"2"}"#, #"{"id":"3","x":[1,2]}"#, #"{"id":"4"}"#])
        let pretty = Array("[\n  {\"id\": \"a,]\"},\n  {\"id\": \"b\"}\n]\n".utf8)
        #expect(EventInput.events(in: pretty).map { String(decoding: $0, as: UTF8.self) } == [#"{"id": "a,]"}"#, #"{"id": "b"}"#])
    }

    @Test("--batch groups events into CloudEvents JSON batches")
    func batches() {
        let events = (1...5).map { Array("{\"id\":\"\($0)\"}".utf8) }
        let frames = EventInput.frames(events, batch: 2)
        #expect(frames.map(\.events) == [2, 2, 1])
        #expect(String(decoding: frames[0].payload, as: UTF8.self) == #"[{"id":"1"},{"id":"2"}]"#)
    }

    @Test("values get thousands separators and at most two decimals")
    func format() {
        #expect(SnapshotTable.format(12_900_000_000_000) == "12,900,000,000,000")
        #expect(SnapshotTable.format(80.4412) == "80.44")
        #expect(SnapshotTable.format(-32.6) == "-32.6")
        #expect(SnapshotTable.format(388) == "388")
        #expect(SnapshotTable.format(999.999) == "1,000")
    }

    @Test("the table groups indicators like the report and shows the change since the last snapshot")
    func table() {
        var t = SnapshotTable()
        let first: [String: Any] = ["seq": 1, "pipeline": "national-dx",
            "indicators": ["dvc.online_payments": ["value": 1000, "unit": "count"],
                           "policy.provinces_with_fee_support": ["value": 56, "unit": "count", "of": 63]]]
        _ = t.render(first, source: "x")
        let second: [String: Any] = ["seq": 2, "pipeline": "national-dx",
            "indicators": ["dvc.online_payments": ["value": 1500, "unit": "count"],
                           "policy.provinces_with_fee_support": ["value": 56, "unit": "count", "of": 63]]]
        let text = t.render(second, source: "x")
        #expect(text.contains("Online public services"))
        #expect(text.contains("Institutions"))
        #expect(text.contains("1,500"))
        #expect(text.contains("+500"))
        #expect(text.range(of: "Institutions")!.lowerBound < text.range(of: "Online public services")!.lowerBound)
    }

    @Test("the dead-letter file writes one JSON line per rejection and rotates at its size limit")
    func deadLetterRotation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tally-dl-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("dead.jsonl").path
        let file = try DeadLetterFile(path: path, maxBytes: 4096, keep: 2)
        let payload = Array(("{\"source\":\"/agency/x\",\"time\":\"yesterday\",\"pad\":\"" + String(repeating: "p", count: 300) + "\"}").utf8)
        for i in 0..<60 {
            payload.withUnsafeBytes {
                file.record(reason: "bad_time", message: "time is not RFC 3339", origin: "tcp://127.0.0.1:1",
                            source: "/agency/x", index: i, payload: $0, at: 1_714_496_399_000_000)
            }
            if i % 7 == 0 { file.flush() }
        }
        file.flush()
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(names == ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2"])
        for name in names {
            let text = try String(contentsOfFile: dir.appendingPathComponent(name).path, encoding: .utf8)
            #expect(text.utf8.count <= 4096)
            for line in text.split(separator: "\n") {
                let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(obj["reason"] as? String == "bad_time")
                #expect(obj["source"] as? String == "/agency/x")
                #expect((obj["payload"] as? String)?.hasPrefix("{\"source\"") == true)
            }
        }
    }

    @Test("rejected events of a batch are found by index and counted by reason and source")
    func ledger() {
        let ledger = RejectLedger(logger: .init(label: "test"), deadLetter: nil)
        let batch = Array(#"[{"source":"/a","id":"1"}, {"source":"/b","id":"2"}, {"source":"/c"}]"#.utf8)
        var outcome = FrameOutcome()
        outcome.accepted = 1
        outcome.rejected = [.init(index: 1, code: "bad_time", message: "m"), .init(index: 2, code: "missing_attribute", message: "id")]
        batch.withUnsafeBytes { ledger.record(outcome, payload: $0, origin: FrameOrigin(label: "t")) }
        let counts = ledger.counts()
        #expect(counts.total == 2)
        #expect(counts.byKey[RejectLedger.Key(reason: "bad_time", source: "/b")] == 1)
        #expect(counts.byKey[RejectLedger.Key(reason: "missing_attribute", source: "/c")] == 1)
    }

    @Test("rejected elements whose bytes the core gives are taken as given, not found again by splitting the frame")
    func ledgerTakesElementBytes() {
        let ledger = RejectLedger(logger: .init(label: "test"), deadLetter: nil)
        let text = #"[{"source":"/a","id":"1"}, {"source":"/b","id":"2"}, {"source":"/c"}]"#
        let batch = Array(text.utf8)
        let range = { (s: String) in
            let r = text.range(of: s)!
            return text.utf8.distance(from: text.startIndex, to: r.lowerBound)..<text.utf8.distance(from: text.startIndex, to: r.upperBound)
        }
        var outcome = FrameOutcome()
        // Element 1's bytes given as the third object's: the ledger must use them as they are.
        outcome.rejected = [.init(index: 1, code: "bad_time", message: "m", element: range(#"{"source":"/c"}"#)),
                            .init(index: 0, code: "missing_attribute", message: "id", element: range(#"{"source":"/a","id":"1"}"#))]
        batch.withUnsafeBytes { ledger.record(outcome, payload: $0, origin: FrameOrigin(label: "t")) }
        let counts = ledger.counts()
        #expect(counts.byKey[RejectLedger.Key(reason: "bad_time", source: "/c")] == 1)
        #expect(counts.byKey[RejectLedger.Key(reason: "missing_attribute", source: "/a")] == 1)
        // A range past the frame's end is not trusted: the frame is split as before.
        outcome.rejected = [.init(index: 1, code: "bad_time", message: "m", element: 0..<(batch.count + 1))]
        batch.withUnsafeBytes { ledger.record(outcome, payload: $0, origin: FrameOrigin(label: "t")) }
        #expect(ledger.counts().byKey[RejectLedger.Key(reason: "bad_time", source: "/b")] == 1)
    }

    @Test("batch elements are split correctly around escaped quotes, and the scan can stop at an element")
    func arrayElementsStopEarly() {
        let text = #"[ {"source":"/a\\\\","id":"x\"],{"}, "s\\\\\\\"", {"source":"/c","v":[1,{"k":"]"}]} , 7 ]"#
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            let all = JSONScan.arrayElements(raw).map { String(decoding: $0, as: UTF8.self) }
            #expect(all == [#"{"source":"/a\\\\","id":"x\"],{"}"#, #""s\\\\\\\"""#, #"{"source":"/c","v":[1,{"k":"]"}]}"#, "7"])
            let firstTwo = JSONScan.arrayElements(raw, through: 1).map { String(decoding: $0, as: UTF8.self) }
            #expect(firstTwo == Array(all.prefix(2)))
            #expect(JSONScan.sourceOf(JSONScan.arrayElements(raw, through: 2)[2]) == "/c")
        }
    }
}
