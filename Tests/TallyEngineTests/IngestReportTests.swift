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

// MARK: - Where the rejected elements lie

@Suite("IngestReport: the bytes of each rejected element")
struct IngestReportElementTests {
    static func transaction(_ id: String, _ time: String, source: String = "/test/producer") -> String {
        CE.event("ndxp.transaction", time, ["endpoint": "ep1", "consumer": "c", "provider": "p", "status": "ok"], id: id, source: source)
    }

    @Test("each rejection of a batch comes with its element's exact bytes, whatever rejected it")
    func batchElements() throws {
        let elements = [
            Self.transaction("ok-1", "2024-04-30T10:00:00+07:00"),
            Self.transaction("bad-time", "not a time"),                              // the decoder
            "7",                                                                     // not an object
            Self.transaction("ok-2", "2024-04-30T10:00:01+07:00"),
            Self.transaction("late-1", "2021-01-01T10:00:00+07:00"),                 // the engine: late
            Self.transaction("outsider", "2024-04-30T10:00:02+07:00", source: "/elsewhere"),  // the origin
            #"{"specversion":"1.0","id":"x\"y","source":"/test/producer","type":"ndxp.transaction","time":"2024-04-30T10:00:03+07:00","data":{"endpoint":"ep1","consumer":"c","provider":"p","status":"maybe"}}"#,
        ]
        let frame = "[ " + elements.joined(separator: " ,\n ") + " ]"
        let bytes = Array(frame.utf8)
        let e = Engine(pipeline: try EngineStateTests.national(), options: EngineStateTests.options())
        let report = bytes.withUnsafeBytes { e.ingest($0, origin: Origin(sourcePrefixes: ["/test/"])) }
        #expect(report.accepted == 2)
        #expect(report.rejected.map(\.index) == [1, 2, 4, 5, 6])
        #expect(report.rejectedElements.count == report.rejected.count)
        for (r, range) in zip(report.rejected, report.rejectedElements) {
            #expect(String(decoding: bytes[range], as: UTF8.self) == elements[r.index], "element \(r.index)")
        }
    }

    @Test("a rejected single event's bytes are the whole frame, and a clean frame has none")
    func singleObject() throws {
        let e = Engine(pipeline: try EngineStateTests.national(), options: EngineStateTests.options())
        let bad = Array(Self.transaction("bad-time-2", "yesterday").utf8)
        let report = bad.withUnsafeBytes { e.ingest($0) }
        #expect(report.rejected.count == 1)
        #expect(report.rejectedElements == [0..<bad.count])
        let good = Array(Self.transaction("fine", "2024-04-30T10:00:00+07:00").utf8)
        #expect(good.withUnsafeBytes { e.ingest($0) }.rejectedElements.isEmpty)
    }

    @Test("rejections set by hand carry no element bytes")
    func byHand() {
        var r = IngestReport()
        r.rejected = [(index: 0, reason: IngestReportTests.bad)]
        #expect(r.rejectedElements.isEmpty)
    }
}
