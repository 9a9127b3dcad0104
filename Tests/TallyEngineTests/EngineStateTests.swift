import Foundation
import PropertyBased
import Testing
@testable import TallyEngine

@Suite("Engine checkpoints, reconfiguration and order independence")
struct EngineStateTests {
    /// A mixed stream over the national pipeline: tables, distincts, windows, by, balances.
    static func stream() -> [String] {
        var out: [String] = []
        out.append(CE.balance("dvc.portal_accounts", 14_000_000, at: "2023-01-01T00:00:00+07:00", id: "b1"))
        out.append(CE.balance("society.mobile_money_customers", 3_000_000, at: "2023-01-01T00:00:00+07:00", id: "b2"))
        for i in 0..<6 {
            out.append(CE.event("ndxp.endpoint.registered", "2024-04-0\(i + 1)T08:00:00+07:00", ["endpoint": "ep\(i)", "agency": "ag\(i % 3)"], id: "r\(i)"))
        }
        out.append(CE.event("ndxp.endpoint.retired", "2024-04-20T08:00:00+07:00", ["endpoint": "ep2"], id: "ret2"))
        for i in 0..<20 {
            out.append(CE.event("ndxp.transaction", "2024-04-30T\(10 + i % 10):00:0\(i % 10)+07:00", ["endpoint": "ep\(i % 6)", "consumer": "c", "provider": "p", "status": i % 4 == 0 ? "error" : "ok"], id: "t\(i)"))
        }
        for i in 0..<8 {
            out.append(CE.event("dvc.procedure.listed", "2024-0\(1 + i % 4)-1\(i)T09:00:00+07:00", ["procedure": "pr\(i % 5)", "authority": "a", "level": ["full", "partial", "none"][i % 3], "essential": i % 2 == 0, "programs": i % 3 == 0 ? ["de-an-06"] : ["qd-422"]], id: "pl\(i)"))
        }
        for i in 0..<10 {
            out.append(CE.event("dvc.dossier.submitted", "2024-03-0\(1 + i % 9)T09:00:00+07:00", ["dossier": "d\(i)", "procedure": "pr", "channel": i % 3 == 0 ? "online" : "offline", "via_national_portal": i % 2 == 0, "province": "P\(i % 3)"], id: "d\(i)"))
        }
        for i in 0..<6 {
            out.append(CE.event("security.incident", "\(2023 + i % 2)-02-1\(i)T09:00:00+07:00", ["incident": "in\(i)", "system": "s"], id: "in\(i)"))
            out.append(CE.event("mobilemoney.customer.activated", "\(2023 + i % 2)-03-1\(i)T09:00:00+07:00", ["customer": "cu\(i)", "area": i % 2 == 0 ? "rural" : "urban"], id: "mm\(i)"))
            out.append(CE.event("welfare.payment.disbursed", "2024-01-1\(i)T09:00:00+07:00", ["beneficiary": "be\(i % 4)", "via_account": true, "amount_vnd": 100], id: "w\(i)"))
            out.append(CE.event("security.system.classified", "\(2023 + i % 2)-01-1\(i)T09:00:00+07:00", ["system": "sy\(i % 4)", "owner": "o", "level_approved": i % 3 != 0], id: "sc\(i)"))
            out.append(CE.event("policy.document.issued", "2024-0\(1 + i % 3)-0\(i + 1)T09:00:00+07:00", ["document": "doc\(i)", "kind": ["decree", "plan", "fee-support"][i % 3], "issuer": "iss\(i % 4)", "issuer_level": ["government", "province", "province"][i % 3], "plan_year": 2024], id: "doc\(i)"))
        }
        return out
    }

    static func national() throws -> Pipeline { try Pipeline.load(path: nationalPath) }

    static func options() -> EngineOptions {
        var o = EngineOptions()
        o.historyStart = 1_640_995_200_000_000  // 2022-01-01
        return o
    }

    @Test("a restored checkpoint gives the same snapshot and keeps counting identically")
    func checkpointRoundTrip() throws {
        let p = try Self.national()
        let events = Self.stream()
        let a = Engine(pipeline: p, options: Self.options())
        for e in events.dropLast(5) { a.send(e) }
        let bytes = a.checkpoint()
        let b = try Engine.restore(pipeline: p, options: Self.options(), from: bytes)
        #expect(b.snapshot() == a.snapshot())
        #expect(b.stats == a.stats)
        for e in events.suffix(5) { a.send(e); b.send(e) }
        // A re-sent event is still a duplicate after restore (the dedup index is checkpointed).
        #expect(b.send(events[3]).duplicates == 1)
        #expect(b.snapshot() == a.snapshot())
        #expect(b.checkpoint().count > 32)
    }

    @Test("an id seen again with a time in another hour is a duplicate, before and after a checkpoint restore")
    func duplicateAcrossHoursSurvivesRestore() throws {
        let p = try Self.national()
        let a = Engine(pipeline: p, options: Self.options())
        let first = CE.event("security.incident", "2024-04-01T08:00:00+07:00", ["incident": "x1", "system": "s"], id: "same-id")
        let otherHour = CE.event("security.incident", "2024-04-01T13:30:00+07:00", ["incident": "x1", "system": "s"], id: "same-id")
        let nextDay = CE.event("security.incident", "2024-04-02T09:00:00+07:00", ["incident": "x1", "system": "s"], id: "same-id")
        #expect(a.send(first).accepted == 1)
        #expect(a.send(otherHour).duplicates == 1)
        let b = try Engine.restore(pipeline: p, options: Self.options(), from: a.checkpoint())
        #expect(b.send(nextDay).duplicates == 1)
        #expect(b.send(CE.event("security.incident", "2024-04-02T09:00:00+07:00", ["incident": "x1", "system": "s"], id: "same-id", source: "/other")).accepted == 1)
        #expect(b.stats.duplicates == 2 && b.stats.accepted == a.stats.accepted + 1)
    }

    @Test("a corrupt, truncated or foreign checkpoint is refused")
    func corruptCheckpoint() throws {
        let p = try Self.national()
        let a = Engine(pipeline: p)
        for e in Self.stream() { a.send(e) }
        var bytes = a.checkpoint()
        bytes[bytes.count / 2] ^= 0x40
        #expect(throws: CheckpointError.self) { _ = try Engine.restore(pipeline: p, from: bytes) }
        #expect(throws: CheckpointError.self) { _ = try Engine.restore(pipeline: p, from: Array(a.checkpoint().dropLast(3))) }
        #expect(throws: CheckpointError.self) { _ = try Engine.restore(pipeline: p, from: Array("hello world, not a checkpoint at all".utf8)) }
    }

    @Test("reconfigure keeps unchanged indicators' state and starts changed ones empty")
    func reconfigureKeepsState() throws {
        let yaml1 = pipelineYAML("""
          - { id: all, unit: count, events: security.incident, aggregate: count }
          - { id: day, unit: count, events: security.incident, aggregate: count, window: day }
          - { id: sys, unit: count, table: systems, aggregate: count }
        """, tables: "  systems: { events: security.system.classified, key: system }\n")
        let yaml2 = pipelineYAML("""
          - { id: all, unit: count, events: security.incident, aggregate: count }
          - { id: day, unit: count, events: security.incident, where: { system: s1 }, aggregate: count, window: day }
          - { id: approved, unit: count, table: systems, where: { level_approved: true }, aggregate: count }
          - { id: new, unit: count, events: mobilemoney.customer.activated, aggregate: count }
        """, tables: "  systems: { events: security.system.classified, key: system }\n")
        let e = Engine(pipeline: try pipeline(yaml1))
        e.send(CE.event("security.incident", "2024-04-30T10:00:00+07:00", ["incident": "a", "system": "s1"]))
        e.send(CE.event("security.incident", "2024-04-30T11:00:00+07:00", ["incident": "b", "system": "s2"]))
        e.send(CE.event("security.system.classified", "2024-04-30T11:00:00+07:00", ["system": "x", "owner": "o", "level_approved": true]))
        let r = e.reconfigure(to: try pipeline(yaml2))
        #expect(Set(r.kept) == ["all", "approved"])
        #expect(Set(r.fresh) == ["day", "new"])
        #expect(e.value("all") == .integer(2))
        #expect(e.value("approved") == .integer(1))
        #expect(e.value("day") == .integer(0))
        e.send(CE.event("security.incident", "2024-04-30T12:00:00+07:00", ["incident": "c", "system": "s1"]))
        #expect(e.value("all") == .integer(3))
        #expect(e.value("day") == .integer(1))
    }

    @Test("the national pipeline computes shares, breakdowns, of-denominators and derived values from a mixed stream")
    func nationalMixed() throws {
        let e = Engine(pipeline: try Self.national(), options: Self.options())
        for ev in Self.stream() { #expect(e.send(ev).rejected.isEmpty) }
        let s = e.snapshot()
        #expect(s["ndxp.endpoints"]?.value == .integer(5))
        #expect(s["ndxp.agencies"]?.value == .integer(3))
        #expect(s["ndxp.transactions_24h"]?.value == .integer(20))
        #expect(s["ndxp.success_rate_24h"]?.value == .decimal(75))
        #expect(s["dvc.portal_accounts"]?.value == .integer(14_000_000))
        #expect(s["policy.provinces_with_fee_support"]?.of == .integer(63))
        #expect(s["policy.government_documents_ytd"]?.by == [.init(key: "decree", value: .integer(2))])
        #expect(s["dvc.online_dossier_share_ytd"]?.by?.count == 3)
        #expect(s["society.welfare_beneficiaries_via_account"]?.value == .integer(4))
        #expect(s["security.information_systems"]?.value == .integer(4))
        #expect(s["security.incidents_last_quarter"]?.value == .integer(3))
        #expect(s["security.incidents_growth_yoy"]?.value == .decimal(0))
        let json = try JSONSerialization.jsonObject(with: Data(s.json(seq: 7, publishedAt: 1_714_500_000_000_000))) as? [String: Any]
        #expect(json?["pipeline"] as? String == "national-dx")
        #expect(json?["seq"] as? Int == 7)
        #expect(json?["as_of"] as? String == "2024-04-30T19:00:09+07:00")
        #expect((json?["indicators"] as? [String: Any])?.count == 39)
        let entry = try JSONSerialization.jsonObject(with: Data(try #require(s.indicatorJSON("security.systems_level_approved")))) as? [String: Any]
        #expect(entry?["of"] as? Int == 4)
    }

    @Test("any permutation of the same events gives the same snapshot", .timeLimit(.minutes(2)))
    func orderIndependence() async throws {
        let p = try Self.national()
        let events = Self.stream()
        let reference = Engine(pipeline: p, options: Self.options())
        for e in events { reference.send(e) }
        let expected = reference.snapshot()
        await propertyCheck(count: 40, input: Gen.shuffled(events)) { shuffled in
            let e = Engine(pipeline: p, options: Self.options())
            for ev in shuffled { e.send(ev) }
            #expect(e.snapshot() == expected)
        }
    }
}

