import Foundation
import Testing
@testable import TallyEngine

// MARK: - The key acceptance test of the national pipeline

/// The shipped pipeline, located from this file (Tests/TallyEngineTests/ → repo root).
private let nationalPipelinePath: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("Pipelines/national-dx.yaml").path
}()

private struct Totals {
    var accepted = 0, duplicates = 0, unrouted = 0, late = 0, rejected: [String] = []
    mutating func add(_ r: IngestReport) {
        accepted += r.accepted
        duplicates += r.duplicates
        unrouted += r.unrouted
        late += r.late
        if let e = r.payloadError { rejected.append("frame: \(e.code.rawValue) \(e.message)") }
        for x in r.rejected.prefix(3) { rejected.append("\(x.reason.code.rawValue): \(x.reason.message)") }
    }
}

/// The engine on the shipped pipeline. Retention is set explicitly: the stream's history
/// (balances at 2022-12-31, Q1 2023 for year-ago quarters) must stay within the horizon
/// even when the shuffled replay advances the clock to April 2024 first.
private func freshEngine() throws -> Engine {
    Engine(pipeline: try Pipeline.load(path: nationalPipelinePath), options: EngineOptions(retention: 550 * EngineOptions.day))
}

/// Checks every indicator of a snapshot against the profile's published expectations.
private func expectReport(_ snap: Snapshot, _ expected: [String: Expected], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(snap.asOf == SimTime.micros(2024, 4, 30, 23, 59, 59), sourceLocation: sourceLocation)
    #expect(Set(snap.indicators.map(\.id)) == Set(expected.keys), "pipeline ids vs the catalog", sourceLocation: sourceLocation)
    for (id, e) in expected.sorted(by: { $0.key < $1.key }) {
        guard let live = snap[id] else {
            Issue.record("\(id) is missing from the snapshot", sourceLocation: sourceLocation)
            continue
        }
        #expect(e.matches(live.value?.doubleValue), "\(id): live \(live.value?.description ?? "null"), expected \(e)",
                sourceLocation: sourceLocation)
        if let of = e.of {
            #expect(live.of?.doubleValue == of, "\(id): of \(live.of?.description ?? "null"), expected \(Int(of))",
                    sourceLocation: sourceLocation)
        }
        if let by = e.by {
            let liveBy = Dictionary(uniqueKeysWithValues: (live.by ?? []).map { ($0.key, $0.value?.doubleValue) })
            #expect(Set(liveBy.keys) == Set(by.keys), "\(id): by keys", sourceLocation: sourceLocation)
            for (key, v) in by {
                #expect(e.rounded(liveBy[key].flatMap { $0 } ?? .nan) == e.rounded(v),
                        "\(id) by \(key): live \(String(describing: liveBy[key])), expected \(v)", sourceLocation: sourceLocation)
            }
        }
    }
}

@Suite("Simulator replay through the engine and Pipelines/national-dx.yaml")
struct SimulatorReplayTests {
    static let scale = 0.0005

    @Test("replaying april-2024 reproduces every figure of the report column at scale", arguments: [0.0001, 0.001])
    func replayReproducesTheReport(scale: Double) throws {
        let engine = try freshEngine()
        var sim = try Simulator(profile: .april2024, scale: scale)
        var totals = Totals()
        while let frame = sim.nextBatch(max: 512) { totals.add(engine.ingest(frame)) }
        #expect(totals.rejected.isEmpty, "rejections: \(totals.rejected.prefix(5))")
        #expect(totals.accepted == sim.totalEvents)
        #expect(totals.duplicates == 0 && totals.unrouted == 0 && totals.late == 0)
        expectReport(engine.snapshot(), sim.expectedReport())
    }

    @Test("a shuffled order of the same events, one frame each or batched, gives the same snapshot")
    func shuffledReplayGivesTheSameSnapshot() throws {
        var sim = try Simulator(profile: .april2024, scale: Self.scale)
        var events: [[UInt8]] = []
        events.reserveCapacity(sim.totalEvents)
        while let e = sim.next() { events.append(e) }

        let inOrder = try freshEngine()
        for e in events { _ = inOrder.ingest(e) }
        let reference = inOrder.snapshot()

        var rng = SplitMix(state: 0x5EED_2024)
        events.shuffle(using: &rng)
        let shuffled = try freshEngine()
        var totals = Totals()
        var i = 0
        while i < events.count {
            // Frames of 1 to 64 events: single objects and batches both occur.
            let n = min(events.count - i, 1 + Int(rng.next() % 64))
            let frame = n == 1 ? events[i] : [UInt8(ascii: "[")] + events[i..<(i + n)].joined(separator: [UInt8(ascii: ",")]) + [UInt8(ascii: "]")]
            totals.add(shuffled.ingest(frame))
            i += n
        }
        #expect(totals.rejected.isEmpty, "rejections: \(totals.rejected.prefix(5))")
        #expect(totals.late == 0, "the whole history lies within the engine's retention horizon")
        #expect(totals.accepted == events.count)
        let snap = shuffled.snapshot()
        #expect(snap == reference)
        for (a, b) in zip(snap.indicators, reference.indicators) where a != b {
            Issue.record("\(a.id): shuffled \(a.value?.description ?? "null") in order \(b.value?.description ?? "null")")
        }
        expectReport(snap, SimulationProfile.april2024.expectedReport(scale: Self.scale))
    }
}
