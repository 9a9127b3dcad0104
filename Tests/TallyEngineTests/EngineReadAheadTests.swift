import Foundation
import Testing
@testable import TallyEngine

// MARK: - A frame's dedup key, read ahead

/// The daemon reads each frame's dedup key when it receives the frame (`FrameKeyHint`), asks
/// the engine to prefetch the dedup lines of the frame two ahead of the one it ingests, and
/// hands each frame its hint; the decoder then takes the key instead of hashing again. These
/// tests check that the outcome never depends on it, and that a hint is taken only for the
/// very `id` and `source` bytes it was read from.
@Suite("Engine: a frame's dedup key read ahead")
struct EngineReadAheadTests {
    /// Frames laid out one after another in one buffer, as the daemon's drain holds them.
    static func layout(_ frames: [String]) -> ([UInt8], [Range<Int>]) {
        var buffer: [UInt8] = []
        var ranges: [Range<Int>] = []
        for f in frames {
            let start = buffer.count
            buffer.append(contentsOf: f.utf8)
            ranges.append(start..<buffer.count)
        }
        return (buffer, ranges)
    }

    static func hint(_ text: String) -> FrameKeyHint? {
        Array(text.utf8).withUnsafeBytes { FrameKeyHint(frame: $0) }
    }

    /// Frames the hint must leave alone: escaped or non-ASCII `id`s, another member order,
    /// leading whitespace, a batch.
    static let otherLayouts: [String] = [
        CE.event("ndxp.transaction", "2024-04-30T11:00:00+07:00", ["endpoint": "ep1", "consumer": "c", "provider": "p", "status": "ok"], id: #"esc\"aped"#),
        CE.event("ndxp.transaction", "2024-04-30T11:00:01+07:00", ["endpoint": "ep1", "consumer": "c", "provider": "p", "status": "ok"], id: "đ-non-ascii"),
        #"{"id":"reordered-1","specversion":"1.0","source":"/test/producer","type":"ndxp.transaction","time":"2024-04-30T11:00:02+07:00","data":{"endpoint":"ep2","consumer":"c","provider":"p","status":"ok"}}"#,
        #" {"specversion":"1.0","id":"spaced-1","source":"/test/producer","type":"ndxp.transaction","time":"2024-04-30T11:00:03+07:00","data":{"endpoint":"ep2","consumer":"c","provider":"p","status":"ok"}}"#,
        CE.batch([CE.event("ndxp.transaction", "2024-04-30T11:00:04+07:00", ["endpoint": "ep3", "consumer": "c", "provider": "p", "status": "ok"], id: "in-batch-1")]),
    ]

    /// The shared national stream, the other layouts, an event in the producers' layout that
    /// is invalid after its `source` (its key is read; the decoder still rejects it), every
    /// frame again (all duplicates), and the stream's ids from another source (new events).
    static func frames() -> [String] {
        let stream = EngineStateTests.stream()
        var out = stream + otherLayouts
        out.append(#"{"specversion":"1.0","id":"bad-time-1","source":"/test/producer","type":"ndxp.transaction","time":"not a time","data":{"endpoint":"ep2","consumer":"c","provider":"p","status":"ok"}}"#)
        out += out
        out += stream.map { $0.replacingOccurrences(of: #""source":"/test/producer""#, with: #""source":"/test/other""#) }
        return out
    }

    struct Outcome: Equatable {
        var accepted: Int, duplicates: Int, unrouted: Int, late: Int, rejected: [Int], payloadError: Bool
        init(_ r: IngestReport) {
            accepted = r.accepted
            duplicates = r.duplicates
            unrouted = r.unrouted
            late = r.late
            rejected = r.rejected.map(\.index)
            payloadError = r.payloadError != nil
        }
    }

    /// Ingests every frame in order; with `readAhead`, as the daemon's engine loop does: each
    /// frame's hint read first, the lines of the frame two ahead prefetched, the hint passed.
    static func run(_ buffer: [UInt8], _ ranges: [Range<Int>], readAhead: Bool) throws -> (Engine, [Outcome]) {
        let e = Engine(pipeline: try EngineStateTests.national(), options: EngineStateTests.options())
        var outcomes: [Outcome] = []
        buffer.withUnsafeBytes { raw in
            let hints = ranges.map { readAhead ? FrameKeyHint(frame: UnsafeRawBufferPointer(rebasing: raw[$0])) : nil }
            for (i, r) in ranges.enumerated() {
                if i + 2 < hints.count, let h = hints[i + 2] { e.prefetch(h) }
                outcomes.append(Outcome(e.ingest(UnsafeRawBufferPointer(rebasing: raw[r]), keyHint: hints[i])))
            }
        }
        return (e, outcomes)
    }

    @Test("ingesting with the keys read ahead gives the same reports, counters and snapshot as without, duplicates included")
    func sameOutcomeWithAndWithout() throws {
        let frames = Self.frames()
        let (buffer, ranges) = Self.layout(frames)
        let (plain, plainOutcomes) = try Self.run(buffer, ranges, readAhead: false)
        let (ahead, aheadOutcomes) = try Self.run(buffer, ranges, readAhead: true)
        #expect(aheadOutcomes == plainOutcomes)
        #expect(ahead.stats == plain.stats)
        #expect(ahead.snapshot() == plain.snapshot())
        #expect(ahead.stats.duplicates > 0)
        // The decoder really took the keys: one per frame in the producers' layout.
        #expect(plain.decoder.storage.keysTakenFromReadAhead == 0)
        let hinted = frames.filter { Self.hint($0) != nil }.count
        #expect(hinted == frames.count - 2 * Self.otherLayouts.count)
        #expect(ahead.decoder.storage.keysTakenFromReadAhead == hinted)
    }

    @Test("the key read ahead is the decoder's own key for the frame, and there is none for other layouts")
    func hintIsTheDecodersKey() throws {
        for text in EngineStateTests.stream() {
            let hint = try #require(Self.hint(text))
            let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            let source = Array((json["source"] as! String).utf8), id = Array((json["id"] as! String).utf8)
            let key = source.withUnsafeBufferPointer { s in id.withUnsafeBufferPointer { EventKey(source: s, id: $0) } }
            #expect(hint.key == key)
        }
        for text in Self.otherLayouts {
            #expect(Self.hint(text) == nil, "\(text)")
        }
        // A source ending past 64 KiB into the frame (offsets are 16-bit): no hint.
        let huge = CE.event("ndxp.transaction", "2024-04-30T10:00:00+07:00", ["endpoint": "ep1"], id: String(repeating: "i", count: 70_000))
        #expect(Self.hint(huge) == nil)
        let large = CE.event("ndxp.transaction", "2024-04-30T10:00:00+07:00", ["endpoint": "ep1"], id: String(repeating: "i", count: 60_000))
        #expect(Self.hint(large) != nil)
    }

    @Test("a hint is taken only where the frame's id and source are where it says, wherever the frame lies")
    func hintTakenOnlyForItsBytes() throws {
        let a = CE.event("ndxp.transaction", "2024-04-30T10:00:00+07:00", ["endpoint": "ep1", "consumer": "c", "provider": "p", "status": "ok"], id: "id-a")
        let b = CE.event("ndxp.transaction", "2024-04-30T10:00:01+07:00", ["endpoint": "ep1", "consumer": "c", "provider": "p", "status": "ok"], id: "a-longer-id-b")
        let ha = try #require(Self.hint(a)), hb = try #require(Self.hint(b))
        let e = Engine(pipeline: try EngineStateTests.national(), options: EngineStateTests.options())
        // b's hint given with a (same id offset, another length): not taken, and a is
        // remembered under its own key.
        #expect(Array(a.utf8).withUnsafeBytes { e.ingest($0, keyHint: hb) }.accepted == 1)
        #expect(e.decoder.storage.keysTakenFromReadAhead == 0)
        #expect(Array(a.utf8).withUnsafeBytes { e.ingest($0) }.duplicates == 1)
        // a's own hint with a copy of its bytes elsewhere in memory: taken (offsets, not addresses).
        let copy = Array(a.utf8)
        #expect(copy.withUnsafeBytes { e.ingest($0, keyHint: ha) }.duplicates == 1)
        #expect(e.decoder.storage.keysTakenFromReadAhead == 1)
        #expect(Array(b.utf8).withUnsafeBytes { e.ingest($0, keyHint: hb) }.accepted == 1)
        #expect(Array(b.utf8).withUnsafeBytes { e.ingest($0) }.duplicates == 1, "b was remembered under its own key")
        #expect(e.decoder.storage.keysTakenFromReadAhead == 2)
    }
}
