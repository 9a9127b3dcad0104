import Foundation
import Testing
@testable import TallyEngine

@Suite("Engine windows, clock and derived indicators")
struct EngineWindowTests {
    static let yaml = pipelineYAML("""
      - { id: day, unit: count, events: security.incident, aggregate: count, window: day }
      - { id: ytd, unit: count, events: security.incident, aggregate: count, window: year }
      - { id: lastq, unit: count, events: security.incident, aggregate: count, window: last quarter }
      - { id: h24, unit: count, events: security.incident, aggregate: count, window: 24h }
      - { id: d30, unit: count, events: security.incident, aggregate: count, window: 30d }
      - { id: all, unit: count, events: security.incident, aggregate: count }
      - { id: growth, unit: "%", derive: { growth_yoy: lastq }, decimals: 1 }
      - { id: multiple, unit: "×", derive: { multiple_yoy: all }, decimals: 1 }
      - { id: ytd_change, unit: count, derive: { change_ytd: all } }
    """)

    func incident(_ e: Engine, _ time: String) {
        let r = e.send(CE.event("security.incident", time, ["incident": CE.nextID(), "system": "s"]))
        #expect(r.accepted == 1, "\(r.rejected)")
    }

    @Test("the day window starts at local midnight (+07:00), not UTC midnight")
    func dayBoundary() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        incident(e, "2024-04-30T23:59:59+07:00")   // 16:59:59Z on the 30th
        incident(e, "2024-05-01T00:00:00+07:00")   // 17:00:00Z on the 30th: the new local day
        #expect(e.value("day") == .integer(1))
        incident(e, "2024-04-30T17:30:00Z")        // 00:30 local on 1 May
        #expect(e.value("day") == .integer(2))
    }

    @Test("the 24h window excludes an event exactly 24h before T and includes one a second later")
    func trailingExclusiveStart() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        incident(e, "2024-04-29T12:00:00+07:00")  // exactly T - 24h: excluded
        incident(e, "2024-04-29T12:00:01+07:00")  // included
        incident(e, "2024-04-30T12:00:00+07:00")  // T
        #expect(e.value("h24") == .integer(2))
        #expect(e.value("d30") == .integer(3))
    }

    @Test("last quarter is the previous complete quarter and year-to-date starts on 1 January local")
    func quarterBoundaries() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        incident(e, "2023-12-31T23:59:59+07:00")  // Q4 2023
        incident(e, "2024-01-01T00:00:00+07:00")  // Q1 2024, first instant
        incident(e, "2024-03-31T23:59:59+07:00")  // Q1 2024, last instant
        incident(e, "2024-04-01T00:00:00+07:00")  // Q2 2024
        #expect(e.value("lastq") == .integer(2))
        #expect(e.value("ytd") == .integer(3))
        #expect(e.value("all") == .integer(4))
    }

    @Test("growth over the year-ago quarter, and null when the history does not reach it")
    func growthYoY() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        for _ in 0..<4 { incident(e, "2023-02-10T10:00:00+07:00") }   // Q1 2023: 4
        for _ in 0..<3 { incident(e, "2024-02-10T10:00:00+07:00") }   // Q1 2024: 3
        // History starts 2023-02-10, after the start of Q1 2023: the year-ago quarter is incomplete.
        incident(e, "2024-04-30T23:59:59+07:00")
        #expect(e.value("growth") == nil)
        var o = EngineOptions()
        o.historyStart = try #require(Array("2023-01-01T00:00:00+07:00".utf8).withUnsafeBufferPointer { RFC3339.parse($0) })
        let e2 = Engine(pipeline: try pipeline(Self.yaml), options: o)
        for _ in 0..<4 { incident(e2, "2023-02-10T10:00:00+07:00") }
        for _ in 0..<3 { incident(e2, "2024-02-10T10:00:00+07:00") }
        incident(e2, "2024-04-30T23:59:59+07:00")
        #expect(e2.value("growth") == .decimal(-25))
    }

    @Test("a multiple over the year-ago cumulative value and a change since the start of the year")
    func multipleAndYTDChange() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        for _ in 0..<5 { incident(e, "2023-03-01T00:00:00+07:00") }
        for _ in 0..<2 { incident(e, "2023-04-30T12:00:00+07:00") }      // before T - 1y = 2023-04-30T23:00
        for _ in 0..<3 { incident(e, "2023-12-31T23:00:00+07:00") }      // by end of 2023: 10
        for _ in 0..<4 { incident(e, "2024-04-30T23:00:00+07:00") }      // T; year-ago value 7
        #expect(e.value("all") == .integer(14))
        #expect(e.value("multiple") == .decimal(2))
        #expect(e.value("ytd_change") == .integer(4))
    }

    @Test("year-ago of 29 February is 28 February of the previous year")
    func leapYear() throws {
        let cal = ZoneCalendar(identifier: "Asia/Ho_Chi_Minh")
        let t = try #require(Array("2024-02-29T12:00:00+07:00".utf8).withUnsafeBufferPointer { RFC3339.parse($0) })
        #expect(cal.format(cal.yearAgo(t)) == "2023-02-28T12:00:00+07:00")
        let t2 = try #require(Array("2025-03-01T00:00:00+07:00".utf8).withUnsafeBufferPointer { RFC3339.parse($0) })
        #expect(cal.format(cal.yearAgo(t2)) == "2024-03-01T00:00:00+07:00")
        // 2024 is a leap year: the day window of 29 February exists and is its own day.
        let e = Engine(pipeline: try pipeline(Self.yaml))
        incident(e, "2024-02-28T23:00:00+07:00")
        incident(e, "2024-02-29T01:00:00+07:00")
        #expect(e.value("day") == .integer(1))
        #expect(cal.period(.quarter, t) == 2024 * 4)
    }

    @Test("events older than the retention horizon are rejected late and counted")
    func late() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        incident(e, "2024-04-30T00:00:00+07:00")
        let r = e.send(CE.event("security.incident", "2022-01-01T00:00:00+07:00", ["incident": "old", "system": "s"]))
        #expect(r.late == 1)
        #expect(r.rejected.first?.reason.code == .late)
        #expect(e.stats.late == 1)
        // Within the horizon, out of order: lands in its own window.
        incident(e, "2024-01-15T00:00:00+07:00")
        #expect(e.value("lastq") == .integer(1))
    }

    @Test("duplicates by source and id are counted once")
    func dedup() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        let ev = CE.event("security.incident", "2024-04-30T00:00:00+07:00", ["incident": "i", "system": "s"], id: "same")
        #expect(e.send(ev).accepted == 1)
        let r = e.send(ev)
        #expect(r.duplicates == 1 && r.accepted == 0)
        // Same id from another source is another event.
        #expect(e.send(CE.event("security.incident", "2024-04-30T00:00:00+07:00", ["incident": "i", "system": "s"], id: "same", source: "/other")).accepted == 1)
        #expect(e.value("all") == .integer(2))
        #expect(e.stats.duplicates == 1)
    }

    @Test("the dedup index forgets ids once the clock passes the horizon")
    func dedupExpiry() throws {
        var o = EngineOptions()
        o.dedupHorizon = 3_600_000_000 * 2
        let e = Engine(pipeline: try pipeline(Self.yaml), options: o)
        e.send(CE.event("security.incident", "2024-04-30T00:00:00+07:00", ["incident": "i", "system": "s"], id: "x"))
        #expect(e.dedup.count == 1)
        incident(e, "2024-04-30T05:00:00+07:00")
        #expect(e.dedup.count == 1)  // only the new one
    }

    @Test("opening balances from control events and setBalance add to cumulative totals")
    func balances() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        #expect(e.send(CE.balance("all", 1000, at: "2024-01-01T00:00:00+07:00")).accepted == 1)
        incident(e, "2023-12-31T00:00:00+07:00")     // before the balance: included in it
        incident(e, "2024-02-01T00:00:00+07:00")
        #expect(e.value("all") == .integer(1001))
        // A later balance replaces; an earlier one does not.
        #expect(e.setBalance(indicator: "all", value: 2000, at: try #require(Array("2024-01-15T00:00:00+07:00".utf8).withUnsafeBufferPointer { RFC3339.parse($0) })) == nil)
        #expect(e.value("all") == .integer(2001))
        e.setBalance(indicator: "all", value: 5, at: 0)
        #expect(e.value("all") == .integer(2001))
        // Not a cumulative count: rejected bad_balance.
        let r = e.send(CE.balance("h24", 3, at: "2024-01-01T00:00:00+07:00"))
        #expect(r.rejected.first?.reason.code == .badBalance)
        #expect(e.setBalance(indicator: "nope", value: 1, at: 0)?.code == .badBalance)
    }

    @Test("wall-clock mode slides windows without events")
    func wallClock() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml), options: EngineOptions(clock: .wallClock))
        let t0 = try #require(Array("2024-04-30T12:00:00+07:00".utf8).withUnsafeBufferPointer { RFC3339.parse($0) })
        e.advance(wallClock: t0)
        incident(e, "2024-04-30T11:00:00+07:00")
        #expect(e.value("h24") == .integer(1))
        e.advance(wallClock: t0 + 24 * 3_600_000_000)
        #expect(e.value("h24") == .integer(0))
        #expect(e.value("all") == .integer(1))
    }

    @Test("a source outside the origin's prefixes is rejected source_not_allowed")
    func origins() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        let r = e.send(CE.event("security.incident", "2024-04-30T00:00:00+07:00", ["incident": "i", "system": "s"], source: "/evil"),
                       origin: Origin(sourcePrefixes: ["/vn/"]))
        #expect(r.rejected.first?.reason.code == .sourceNotAllowed)
        #expect(e.value("all") == .integer(0))
        #expect(e.stats.rejected[EngineStats.Label(first: "source_not_allowed", second: "/evil")] == 1)
        let ok = e.send(CE.event("security.incident", "2024-04-30T00:00:00+07:00", ["incident": "i", "system": "s"], source: "/vn/bca"),
                        origin: Origin(sourcePrefixes: ["/vn/"]))
        #expect(ok.accepted == 1)
    }

    @Test("unknown event types are accepted as unrouted and counted by type and source")
    func unrouted() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        let r = e.send(CE.event("vn.something.new", "2024-04-30T00:00:00+07:00", ["x": 1]))
        #expect(r.unrouted == 1 && r.rejected.isEmpty)
        #expect(e.stats.unrouted[EngineStats.Label(first: "vn.something.new", second: "/test/producer")] == 1)
    }

    @Test("a batch reports each rejected element by index")
    func batchReport() throws {
        let e = Engine(pipeline: try pipeline(Self.yaml))
        let r = e.send(CE.batch([
            CE.event("security.incident", "2024-04-30T00:00:00+07:00", ["incident": "i", "system": "s"]),
            CE.event("security.incident", "2024-04-30T00:00:00+07:00", ["incident": 5, "system": "s"]),
        ]))
        #expect(r.accepted == 1)
        #expect(r.rejected.map(\.index) == [1])
        #expect(e.send("{not json").payloadError?.code == .invalidJSON)
    }
}
