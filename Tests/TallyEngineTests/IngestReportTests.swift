import TallyEngine
import Testing

// MARK: - IngestReport's boxed rejections

/// `rejected` and `payloadError` live in one box that a clean frame's report does not have:
/// these tests check that the two properties still behave as independent stored values.
@Suite("IngestReport: rejections and the frame error")
struct IngestReportTests {
    static let bad = RejectReason(code: .badTime, message: "time: nope")
    static let frame = RejectReason(code: .invalidJSON, message: "at offset 0: nope")

    @Test("a new report has no rejections and no frame error")
    func empty() {
        let r = IngestReport()
        #expect(r.rejected.isEmpty)
        #expect(r.payloadError == nil)
    }

    @Test("setting one of rejected and payloadError keeps the other")
    func independent() {
        var r = IngestReport()
        r.rejected = [(index: 3, reason: Self.bad)]
        r.payloadError = Self.frame
        #expect(r.rejected.count == 1 && r.rejected[0].index == 3 && r.rejected[0].reason == Self.bad)
        #expect(r.payloadError == Self.frame)
        r.rejected.append((index: 4, reason: Self.bad))
        #expect(r.rejected.map(\.index) == [3, 4] && r.payloadError == Self.frame)
        r.payloadError = nil
        #expect(r.rejected.map(\.index) == [3, 4] && r.payloadError == nil)
        r.rejected = []
        #expect(r.rejected.isEmpty && r.payloadError == nil)
        r.payloadError = Self.frame
        #expect(r.rejected.isEmpty && r.payloadError == Self.frame)
    }

    @Test("a copy does not see later changes to the original")
    func copies() {
        var a = IngestReport()
        a.rejected = [(index: 0, reason: Self.bad)]
        let b = a
        a.rejected.append((index: 1, reason: Self.bad))
        a.payloadError = Self.frame
        #expect(b.rejected.map(\.index) == [0] && b.payloadError == nil)
        #expect(a.rejected.map(\.index) == [0, 1] && a.payloadError == Self.frame)
    }

    @Test("the engine reports each rejected element of a batch and a frame's syntax error")
    func fromEngine() throws {
        let engine = Engine(pipeline: try Pipeline.load(path: nationalPath))
        var e = DecoderEventText()
        let good = e.json
        e["time"] = "\"yesterday\""
        let report = engine.ingest(Array(("[" + good + "," + e.json + ",7]").utf8))
        #expect(report.accepted == 1)
        #expect(report.rejected.map(\.index) == [1, 2])
        #expect(report.rejected.map(\.reason.code) == [.badTime, .notAnObject])
        #expect(report.payloadError == nil)
        let broken = engine.ingest(Array("{\"specversion\":".utf8))
        #expect(broken.rejected.isEmpty && broken.payloadError?.code == .invalidJSON && broken.accepted == 0)
        var clean = DecoderEventText()
        clean["id"] = "\"e-2\""
        let ok = engine.ingest(Array(clean.json.utf8))
        #expect(ok.accepted == 1 && ok.rejected.isEmpty && ok.payloadError == nil)
    }
}
