import Foundation
import Testing
@testable import TallyEngine

// MARK: - Engine.reconfigure(to:backfillFrom:)

/// The SIGHUP reload at engine level: the running engine switches pipelines, keeps what did not
/// change and takes new or changed indicators from a donor engine that replayed the history.
@Suite("Engine reload with backfill from a donor")
struct EngineReloadTests {
    /// Old pipeline: transactions by consumer (interns consumer names first), endpoints table.
    static let before = pipelineYAML("""
      - { id: tx, unit: count, events: ndxp.transaction, aggregate: count }
      - { id: by_consumer, unit: count, events: ndxp.transaction, aggregate: count, by: consumer }
      - { id: failures, unit: count, events: ndxp.transaction, where: { status: ok }, aggregate: count }
      - { id: live, unit: count, table: ep, aggregate: count }
    """, tables: "  ep: { events: [ndxp.endpoint.registered, ndxp.endpoint.retired], key: endpoint }\n")

    /// New pipeline: `tx` and `live` unchanged; `failures` changed (now really the errors);
    /// new: a breakdown by provider (cumulative and per day), a distinct count, and a new table
    /// with a distinct count and a breakdown over its rows.
    static let after = pipelineYAML("""
      - { id: tx, unit: count, events: ndxp.transaction, aggregate: count }
      - { id: failures, unit: count, events: ndxp.transaction, where: { status: error }, aggregate: count }
      - { id: by_provider, unit: count, events: ndxp.transaction, aggregate: count, by: provider }
      - { id: by_provider_day, unit: count, events: ndxp.transaction, aggregate: count, by: provider, window: day }
      - { id: consumers, unit: count, events: ndxp.transaction, aggregate: distinct(consumer) }
      - { id: live, unit: count, table: ep, aggregate: count }
      - { id: owners, unit: count, table: systems, aggregate: distinct(owner) }
      - { id: approved_by_owner, unit: count, table: systems, where: { level_approved: true }, aggregate: count, by: owner }
    """, tables: """
      ep: { events: [ndxp.endpoint.registered, ndxp.endpoint.retired], key: endpoint }
      systems: { events: security.system.classified, key: system }

    """)

    static func tx(_ id: String, _ hour: Int, consumer: String, provider: String, status: String = "ok", day: Int = 29) -> String {
        CE.event("ndxp.transaction", String(format: "2024-04-%02dT%02d:00:00+07:00", day, hour),
                 ["endpoint": "e-\(provider)", "consumer": consumer, "provider": provider, "status": status], id: id)
    }

    static func system(_ id: String, _ hour: Int, system: String, owner: String, approved: Bool) -> String {
        CE.event("security.system.classified", String(format: "2024-04-29T%02d:00:00+07:00", hour),
                 ["system": system, "owner": owner, "level_approved": approved], id: id)
    }

    static func endpoint(_ id: String, _ hour: Int, _ endpoint: String, retired: Bool = false) -> String {
        CE.event(retired ? "ndxp.endpoint.retired" : "ndxp.endpoint.registered", String(format: "2024-04-29T%02d:00:00+07:00", hour),
                 retired ? ["endpoint": endpoint] : ["endpoint": endpoint, "agency": "A"], id: id)
    }

    /// Events only the running engine saw (older than the retained log), with their own strings.
    static let early: [String] = [
        tx("early-1", 1, consumer: "c-early", provider: "p-early", status: "error"),
        tx("early-2", 1, consumer: "c-early-2", provider: "p-early"),
        endpoint("early-3", 1, "e-early"),
    ]

    /// The retained history (what the donor replays).
    static let history: [String] = [
        tx("h-1", 2, consumer: "c-1", provider: "p-1"),
        tx("h-2", 3, consumer: "c-2", provider: "p-2", status: "error"),
        tx("h-3", 4, consumer: "c-1", provider: "p-2"),
        CE.batch([tx("h-4", 5, consumer: "c-3", provider: "p-1", status: "error"),
                  tx("h-5", 5, consumer: "c-2", provider: "p-3")]),
        endpoint("h-6", 5, "e-1"),
        endpoint("h-7", 6, "e-2"),
        system("h-8", 6, system: "s-1", owner: "o-1", approved: true),
        system("h-9", 7, system: "s-2", owner: "o-2", approved: false),
        system("h-10", 7, system: "s-3", owner: "o-1", approved: true),
    ]

    /// After the reload: known and new strings, updates of backfilled table rows, a duplicate.
    static let later: [String] = [
        tx("l-1", 8, consumer: "c-1", provider: "p-1"),
        tx("l-2", 9, consumer: "c-4", provider: "p-4", status: "error"),
        tx("l-3", 10, consumer: "c-early", provider: "p-2", day: 30),
        tx("h-3", 4, consumer: "c-1", provider: "p-2"),                          // duplicate id: counted once
        system("l-4", 11, system: "s-2", owner: "o-2", approved: true),         // update of a backfilled row
        system("l-5", 11, system: "s-1", owner: "o-3", approved: true),         // row moves to a new owner
        system("l-6", 12, system: "s-4", owner: "o-1", approved: false),
        endpoint("l-7", 12, "e-1", retired: true),
    ]

    static func feed(_ engine: Engine, _ events: [String]) {
        for e in events {
            let r = engine.send(e)
            precondition(r.rejected.isEmpty && r.payloadError == nil, "test event rejected: \(r.rejected) \(String(describing: r.payloadError))")
        }
    }

    @Test("with the whole history in the donor, the reloaded engine then equals a fresh engine fed everything on the new pipeline")
    func equalsFreshEngine() throws {
        let old = try pipeline(Self.before), new = try pipeline(Self.after)
        let all = Self.early + Self.history

        let running = Engine(pipeline: old)
        Self.feed(running, all)
        let donor = Engine(pipeline: new)
        Self.feed(donor, all)
        let report = running.reconfigure(to: new, backfillFrom: donor)
        #expect(Set(report.kept) == ["tx", "live"])
        #expect(Set(report.fresh) == ["failures", "by_provider", "by_provider_day", "consumers", "owners", "approved_by_owner"])

        let fresh = Engine(pipeline: new)
        Self.feed(fresh, all)
        #expect(running.snapshot() == fresh.snapshot(), "right after the reload")

        Self.feed(running, Self.later)
        Self.feed(fresh, Self.later)
        let a = running.snapshot(), b = fresh.snapshot()
        #expect(a == b, "after more events: \(Self.diff(a, b))")
        #expect(a.json(seq: 7, publishedAt: 0) == b.json(seq: 7, publishedAt: 0))
        // Spot checks that the comparison is about real values.
        #expect(a["tx"]?.value == .integer(10))
        #expect(a["consumers"]?.value == .integer(6))
        #expect(a["owners"]?.value == .integer(3))
        #expect(a["by_provider"]?.by?.map(\.key) == ["p-1", "p-2", "p-3", "p-4", "p-early"])
        #expect(a["approved_by_owner"]?.by?.first { $0.key == "o-3" }?.value == .integer(1))
    }

    @Test("table rows and group keys are re-interned into the running engine's strings: later events update them, not duplicate them")
    func reinternedKeys() throws {
        let old = try pipeline(Self.before), new = try pipeline(Self.after)
        // The running engine interned other strings first (consumer names, early endpoints), so
        // the donor's string ids mean other strings in the running engine.
        let running = Engine(pipeline: old)
        Self.feed(running, Self.early + Self.history)
        let donor = Engine(pipeline: new)
        Self.feed(donor, Self.history)
        running.reconfigure(to: new, backfillFrom: donor)

        #expect(running.value("owners") == .integer(2))
        #expect(running.snapshot()["by_provider"]?.by?.map(\.key) == ["p-1", "p-2", "p-3"])
        // Update of row s-2 (backfilled, not approved) to approved: the same row changes.
        Self.feed(running, [Self.system("x-1", 11, system: "s-2", owner: "o-2", approved: true)])
        let owners = running.snapshot()["approved_by_owner"]?.by
        #expect(owners?.map(\.key) == ["o-1", "o-2"])
        #expect(owners?.map(\.value) == [.integer(2), .integer(1)])
        #expect(running.value("owners") == .integer(2), "s-2 is one row, not a second one")
        // A known provider joins its backfilled group.
        Self.feed(running, [Self.tx("x-2", 12, consumer: "c-1", provider: "p-3")])
        #expect(running.snapshot()["by_provider"]?.by?.first { $0.key == "p-3" }?.value == .integer(2))
    }

    @Test("distinct values carry over: a value the donor saw is not counted again, one it did not see is")
    func distinctValues() throws {
        let running = Engine(pipeline: try pipeline(Self.before))
        Self.feed(running, Self.early + Self.history)
        let donor = Engine(pipeline: try pipeline(Self.after))
        Self.feed(donor, Self.history)   // the log no longer holds `early`
        running.reconfigure(to: try pipeline(Self.after), backfillFrom: donor)
        #expect(running.value("consumers") == .integer(3))
        Self.feed(running, [Self.tx("d-1", 12, consumer: "c-2", provider: "p-1")])
        #expect(running.value("consumers") == .integer(3))
        Self.feed(running, [Self.tx("d-2", 12, consumer: "c-early", provider: "p-1")])
        #expect(running.value("consumers") == .integer(4), "c-early was only in the truncated part of the history")
    }

    @Test("unchanged indicators keep the running state; changed and new ones take exactly the donor's")
    func keptVersusBackfilled() throws {
        let running = Engine(pipeline: try pipeline(Self.before))
        Self.feed(running, Self.early + Self.history)
        #expect(running.value("failures") == .integer(4), "old definition: the ok transactions of early + history")
        let donor = Engine(pipeline: try pipeline(Self.after))
        Self.feed(donor, Self.history)
        let report = running.reconfigure(to: try pipeline(Self.after), backfillFrom: donor)
        #expect(Set(report.kept) == ["tx", "live"])
        // Kept: includes what only the running engine saw.
        #expect(running.value("tx") == .integer(7))
        #expect(running.value("live") == .integer(3))
        // Changed: the donor's state under the new definition (errors of the retained history),
        // not the old definition's count and not the early error.
        #expect(running.value("failures") == .integer(2))
        #expect(running.value("failures") == donor.value("failures"))
        for id in ["by_provider", "by_provider_day", "consumers", "owners", "approved_by_owner"] {
            #expect(running.snapshot()[id] == donor.snapshot()[id], "\(id) is the donor's")
        }
        // Both go on counting.
        Self.feed(running, [Self.tx("k-1", 12, consumer: "c-9", provider: "p-9", status: "error")])
        #expect(running.value("tx") == .integer(8))
        #expect(running.value("failures") == .integer(3))
    }

    @Test("an empty donor (no retained log) leaves new indicators empty and kept ones intact")
    func emptyDonor() throws {
        let running = Engine(pipeline: try pipeline(Self.before))
        Self.feed(running, Self.history)
        running.reconfigure(to: try pipeline(Self.after), backfillFrom: Engine(pipeline: try pipeline(Self.after)))
        #expect(running.value("tx") == .integer(5))
        #expect(running.value("failures") == .integer(0))
        #expect(running.value("owners") == .integer(0))
        #expect(running.snapshot()["by_provider"]?.by?.isEmpty ?? true)
    }

    static func diff(_ a: Snapshot, _ b: Snapshot) -> String {
        zip(a.indicators, b.indicators).filter { $0 != $1 }.map { "\($0.id): \($0) vs \($1)" }.joined(separator: "; ")
    }
}
