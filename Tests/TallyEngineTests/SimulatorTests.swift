import Foundation
import Testing
@testable import TallyEngine

// MARK: - An independent reading of the simulated stream

/// Recomputes the catalog's indicators from the simulator's JSON with Foundation and plain
/// dictionaries, straight from the definitions in `shared/spec/indicators.md`, without the
/// engine. It checks the generator against its own published expectations, so the replay
/// through the real engine (`SimulatorReplayTests`) tests the engine, not the generator.
private struct ReferenceReading {
    struct Ev {
        let type: String
        let time: Int64  // micros
        let data: [String: Any]
    }

    var balances: [String: (value: Double, time: Int64)] = [:]
    var events: [Ev] = []
    var lastTime: Int64 = .min
    var outOfOrder = 0
    var ids = Set<String>()
    var duplicateIds = 0
    var invalid: [String] = []
    private var dayCache: [Substring: Int64] = [:]

    /// `YYYY-MM-DDTHH:MM:SS.mmm+07:00` → micros, with Foundation's calendar for the date part.
    mutating func parseTime(_ s: String) -> Int64 {
        let date = s.prefix(10)
        let dayStart: Int64
        if let cached = dayCache[date] { dayStart = cached } else {
            var cal = Calendar(identifier: .gregorian)
            cal.timeZone = TimeZone(secondsFromGMT: 7 * 3600)!
            let parts = date.split(separator: "-").map { Int($0)! }
            let d = cal.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2]))!
            dayStart = Int64((d.timeIntervalSince1970 * 1_000_000).rounded())
            dayCache[date] = dayStart
        }
        #expect(s.hasSuffix("+07:00"), "time \(s) is not at +07:00")
        let clock = s.dropFirst(11).prefix(12)  // HH:MM:SS.mmm
        let h = Int64(clock.prefix(2))!, m = Int64(clock.dropFirst(3).prefix(2))!
        let sec = Int64(clock.dropFirst(6).prefix(2))!, ms = Int64(clock.dropFirst(9).prefix(3))!
        return dayStart + ((h * 3600 + m * 60 + sec) * 1000 + ms) * 1000
    }

    mutating func add(_ object: [String: Any]) {
        let type = object["type"] as! String
        let key = (object["source"] as! String) + " " + (object["id"] as! String)
        if !ids.insert(key).inserted { duplicateIds += 1 }
        #expect(object["specversion"] as? String == "1.0")
        let t = parseTime(object["time"] as! String)
        let data = object["data"] as! [String: Any]
        if type == "tally.balance" {
            #expect(events.isEmpty, "balances come first")
            balances[data["indicator"] as! String] = ((data["value"] as! NSNumber).doubleValue, t)
            return
        }
        if t < lastTime { outOfOrder += 1 }
        lastTime = max(lastTime, t)
        validate(type, data)
        events.append(Ev(type: type, time: t, data: data))
    }

    /// Checks `data` against the catalog: required fields, kinds, enumerations.
    mutating func validate(_ type: String, _ data: [String: Any]) {
        guard let i = Catalog.v1.typeIndex(type) else { invalid.append("unknown type \(type)"); return }
        for field in Catalog.v1.types[i].fields {
            guard let v = data[field.name] else {
                if field.required { invalid.append("\(type): missing \(field.name)") }
                continue
            }
            switch field.kind {
            case .string(let allowed):
                guard let s = v as? String, !s.isEmpty else { invalid.append("\(type).\(field.name) not a string"); continue }
                if let allowed, !allowed.contains(s) { invalid.append("\(type).\(field.name) = \(s)") }
            case .int, .number:
                guard let n = v as? NSNumber, !(v is Bool) else { invalid.append("\(type).\(field.name) not a number"); continue }
                if field.kind == .int, n.doubleValue != n.doubleValue.rounded() { invalid.append("\(type).\(field.name) not an int") }
            case .bool:
                if !(v is Bool) { invalid.append("\(type).\(field.name) not a bool") }
            case .stringArray:
                if !(v is [String]) { invalid.append("\(type).\(field.name) not [str]") }
            }
        }
    }

    // MARK: Indicators, from the definitions

    func of(_ type: String) -> [Ev] { events.filter { $0.type == type } }

    /// Latest event per key with time <= at (ties by arrival).
    func state(_ type: String, key: String, at: Int64) -> [String: [String: Any]] {
        var latest: [String: (Int64, [String: Any])] = [:]
        for e in events where e.type == type && e.time <= at {
            let k = e.data[key] as! String
            if let cur = latest[k], cur.0 > e.time { continue }
            latest[k] = (e.time, e.data)
        }
        return latest.mapValues(\.1)
    }

    func cumulativeCount(_ indicator: String, _ type: String, at: Int64, where pred: ([String: Any]) -> Bool = { _ in true }) -> Double {
        let b = balances[indicator].map { $0.time <= at ? $0.value : 0 } ?? 0
        return b + Double(events.filter { $0.type == type && $0.time <= at && pred($0.data) }.count)
    }
}

private func micros(_ y: Int, _ m: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0) -> Int64 {
    var cal = Calendar(identifier: .gregorian)
    cal.timeZone = TimeZone(secondsFromGMT: 7 * 3600)!
    let date = cal.date(from: DateComponents(year: y, month: m, day: d, hour: h, minute: mi, second: s))!
    return Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
}

private func read(scale: Double) throws -> (ReferenceReading, Simulator) {
    var sim = try Simulator(profile: .april2024, scale: scale)
    let initial = sim
    var reading = ReferenceReading()
    var frames = 0
    while let batch = sim.nextBatch(max: 2_000) {
        let array = try JSONSerialization.jsonObject(with: Data(batch)) as! [[String: Any]]
        for object in array { reading.add(object) }
        frames += 1
    }
    #expect(frames > 0)
    return (reading, initial)
}

// MARK: - Tests

@Suite("Simulator: the april-2024 profile")
struct SimulatorTests {
    @Test("the stream at scale 0.0005 reproduces every indicator of the report column, read independently")
    func streamReproducesTheReport() throws {
        let scale = 0.0005
        let (r, sim) = try read(scale: scale)
        let expected = SimulationProfile.april2024.expectedReport(scale: scale)
        let T = micros(2024, 4, 30, 23, 59, 59)
        let yearAgo = micros(2023, 4, 30, 23, 59, 59)
        let startOfYear = micros(2023, 12, 31, 23, 59, 59)

        #expect(r.invalid.isEmpty, "invalid events: \(r.invalid.prefix(5))")
        #expect(r.duplicateIds == 0)
        #expect(r.outOfOrder == 0)
        #expect(r.lastTime == T)
        #expect(sim.endTime == T)
        #expect(r.events.count + r.balances.count == sim.totalEvents)
        #expect(r.events.first!.time >= micros(2023, 1, 1))

        var live: [String: Double?] = [:]
        var of: [String: Double] = [:]
        // NDXP
        let endpoints = r.state("ndxp.endpoint.registered", key: "endpoint", at: T)
        var retiredAt: [String: Int64] = [:]
        var registeredAt: [String: Int64] = [:]
        for e in r.events where e.type == "ndxp.endpoint.retired" { retiredAt[e.data["endpoint"] as! String] = max(retiredAt[e.data["endpoint"] as! String] ?? .min, e.time) }
        for e in r.events where e.type == "ndxp.endpoint.registered" { registeredAt[e.data["endpoint"] as! String] = max(registeredAt[e.data["endpoint"] as! String] ?? .min, e.time) }
        let liveEndpoints = endpoints.filter { (retiredAt[$0.key] ?? .min) < registeredAt[$0.key]! }
        live["ndxp.endpoints"] = Double(liveEndpoints.count)
        live["ndxp.agencies"] = Double(Set(liveEndpoints.values.map { $0["agency"] as! String }).count)
        let tx = r.of("ndxp.transaction")
        let tx24 = tx.filter { $0.time > T - 86_400_000_000 }
        live["ndxp.transactions_24h"] = Double(tx24.count)
        live["ndxp.success_rate_24h"] = 100 * Double(tx24.filter { $0.data["status"] as! String == "ok" }.count) / Double(tx24.count)
        live["ndxp.transactions_daily_avg_30d"] = Double(tx.filter { $0.time > T - 30 * 86_400_000_000 }.count) / 30
        // A daily rhythm: office hours carry several times the night's traffic.
        var byHour = [Int](repeating: 0, count: 24)
        for e in tx { byHour[Int(((e.time + 7 * 3_600_000_000) / 3_600_000_000) % 24)] += 1 }
        let day = Double(byHour[8..<17].reduce(0, +)) / 9, night = Double(byHour[0..<5].reduce(0, +)) / 5
        #expect(day > 3 * night && night > 0, "hourly profile \(byHour)")
        #expect(tx.first!.time >= micros(2024, 3, 27) && tx.first!.time < micros(2024, 4, 1), "traffic starts before the 30-day window")

        // Policy
        let ytdStart = micros(2024, 1, 1)
        let docs = r.of("policy.document.issued")
        let gov = docs.filter { $0.time >= ytdStart && $0.data["issuer_level"] as! String == "government" }
        live["policy.government_documents_ytd"] = Double(gov.count)
        let byKind = Dictionary(grouping: gov, by: { $0.data["kind"] as! String }).mapValues { Double($0.count) }
        #expect(byKind == expected["policy.government_documents_ytd"]!.by!)
        func distinctIssuers(_ kind: String, _ level: String, planYear: Int? = nil) -> Double {
            Double(Set(docs.filter {
                $0.data["kind"] as! String == kind && $0.data["issuer_level"] as! String == level
                    && (planYear == nil || ($0.data["plan_year"] as? Int) == planYear)
            }.map { $0.data["issuer"] as! String }).count)
        }
        live["policy.provinces_with_fee_support"] = distinctIssuers("fee-support", "province"); of["policy.provinces_with_fee_support"] = 63
        live["policy.ministries_with_dx_plan"] = distinctIssuers("plan", "ministry", planYear: 2024); of["policy.ministries_with_dx_plan"] = 22
        live["policy.provinces_with_dx_plan"] = distinctIssuers("plan", "province", planYear: 2024); of["policy.provinces_with_dx_plan"] = 63

        // Infrastructure
        let fiber = r.state("infra.fiber.reported", key: "province", at: T).values
        live["infra.fiber_household_share"] = 100 * fiber.reduce(0.0) { $0 + ($1["fiber_households"] as! Double) }
            / fiber.reduce(0.0) { $0 + ($1["households"] as! Double) }
        let communes = r.state("infra.commune.reported", key: "commune", at: T).values
        live["infra.commune_fiber_share"] = 100 * Double(communes.filter { $0["fiber"] as! Bool }.count) / Double(communes.count)

        // Online public services
        func procedures(at t: Int64) -> [[String: Any]] { Array(r.state("dvc.procedure.listed", key: "procedure", at: t).values) }
        let procs = procedures(at: T)
        func level(_ p: [String: Any]) -> String { p["level"] as! String }
        func programs(_ p: [String: Any]) -> [String] { p["programs"] as! [String] }
        live["dvc.procedures_online_share"] = 100 * Double(procs.filter { level($0) != "none" }.count) / Double(procs.count)
        live["dvc.procedures_full_share"] = 100 * Double(procs.filter { level($0) == "full" }.count) / Double(procs.count)
        let essentialFull = { (ps: [[String: Any]]) in Double(ps.filter { $0["essential"] as! Bool && level($0) == "full" }.count) }
        live["dvc.essential_services_full"] = essentialFull(procs); of["dvc.essential_services_full"] = Double(procs.filter { $0["essential"] as! Bool }.count)
        live["dvc.essential_services_full_change_ytd"] = essentialFull(procs) - essentialFull(procedures(at: startOfYear))
        let deAn = procs.filter { programs($0).contains("de-an-06") }, qd = procs.filter { programs($0).contains("qd-422") }
        live["dvc.de_an_06_services_provided"] = Double(deAn.filter { level($0) != "none" }.count); of["dvc.de_an_06_services_provided"] = Double(deAn.count)
        live["dvc.de_an_06_services_full"] = Double(deAn.filter { level($0) == "full" }.count); of["dvc.de_an_06_services_full"] = Double(deAn.count)
        live["dvc.qd_422_services_provided"] = Double(qd.filter { level($0) != "none" }.count); of["dvc.qd_422_services_provided"] = Double(qd.count)
        let dossiers = r.of("dvc.dossier.submitted").filter { $0.time >= ytdStart }
        live["dvc.online_dossier_share_ytd"] = 100 * Double(dossiers.filter { $0.data["channel"] as! String == "online" }.count) / Double(dossiers.count)
        let byProvince = Dictionary(grouping: dossiers, by: { $0.data["province"] as! String }).mapValues {
            100 * Double($0.filter { $0.data["channel"] as! String == "online" }.count) / Double($0.count)
        }
        let dossierExpected = expected["dvc.online_dossier_share_ytd"]!
        #expect(byProvince.count == 63)
        for (p, share) in byProvince {
            #expect(dossierExpected.rounded(share) == 38.3, "province \(p): \(share)")
            #expect(dossierExpected.by?[p].map { abs($0 - share) < 1e-9 } == true)
        }
        live["dvc.portal_accounts"] = r.cumulativeCount("dvc.portal_accounts", "dvc.account.registered", at: T)
        live["dvc.portal_dossiers"] = r.cumulativeCount("dvc.portal_dossiers", "dvc.dossier.submitted", at: T) { $0["via_national_portal"] as! Bool }
        live["dvc.online_payments"] = r.cumulativeCount("dvc.online_payments", "dvc.payment.completed", at: T)
        live["dvc.online_payments_vnd"] = r.balances["dvc.online_payments_vnd"]!.value
            + r.of("dvc.payment.completed").reduce(0.0) { $0 + ($1.data["amount_vnd"] as! Double) }

        // Economy and society
        func quarterSum(_ field: String, _ from: Int64, _ to: Int64) -> Double {
            r.of("economy.it.reported").filter { $0.time >= from && $0.time < to }.reduce(0.0) { $0 + ($1.data[field] as! Double) }
        }
        let q1_24 = (micros(2024, 1, 1), micros(2024, 4, 1)), q1_23 = (micros(2023, 1, 1), micros(2023, 4, 1))
        let rev = quarterSum("revenue_usd", q1_24.0, q1_24.1), rev0 = quarterSum("revenue_usd", q1_23.0, q1_23.1)
        let exp = quarterSum("export_usd", q1_24.0, q1_24.1), exp0 = quarterSum("export_usd", q1_23.0, q1_23.1)
        live["economy.it_revenue_usd_last_quarter"] = rev
        live["economy.it_revenue_growth_yoy"] = (rev - rev0) / rev0 * 100
        live["economy.it_export_usd_last_quarter"] = exp
        live["economy.it_export_growth_yoy"] = (exp - exp0) / exp0 * 100
        let mm = r.cumulativeCount("society.mobile_money_customers", "mobilemoney.customer.activated", at: T)
        live["society.mobile_money_customers"] = mm
        live["society.mobile_money_rural_customers"] = r.cumulativeCount("society.mobile_money_rural_customers", "mobilemoney.customer.activated", at: T) { $0["area"] as! String == "rural" }
        live["society.mobile_money_growth_multiple"] = mm / r.cumulativeCount("society.mobile_money_customers", "mobilemoney.customer.activated", at: yearAgo)
        let facilities = r.state("health.facility.reported", key: "facility", at: T).values
        live["society.health_facilities_cashless_share"] = 100 * Double(facilities.filter { $0["cashless"] as! Bool }.count) / Double(facilities.count)
        let survey = r.of("finance.adult_accounts.reported").max { $0.time < $1.time }!.data
        live["society.adults_with_account_share"] = 100 * (survey["adults_with_account"] as! Double) / (survey["adults"] as! Double)
        live["society.welfare_beneficiaries_via_account"] = r.balances["society.welfare_beneficiaries_via_account"]!.value
            + Double(Set(r.of("welfare.payment.disbursed").filter { $0.data["via_account"] as! Bool }.map { $0.data["beneficiary"] as! String }).count)

        // Security
        func systems(at t: Int64) -> (Double, Double) {
            let s = r.state("security.system.classified", key: "system", at: t).values
            return (Double(s.count), Double(s.filter { $0["level_approved"] as! Bool }.count))
        }
        let (n, approved) = systems(at: T), (n0, approved0) = systems(at: yearAgo)
        live["security.information_systems"] = n
        live["security.systems_level_approved"] = approved; of["security.systems_level_approved"] = n
        live["security.systems_level_approved_share"] = 100 * approved / n
        live["security.systems_level_approved_share_change_yoy"] = 100 * approved / n - 100 * approved0 / n0
        let incidents = r.of("security.incident")
        let inc = Double(incidents.filter { $0.time >= q1_24.0 && $0.time < q1_24.1 }.count)
        let inc0 = Double(incidents.filter { $0.time >= q1_23.0 && $0.time < q1_23.1 }.count)
        live["security.incidents_last_quarter"] = inc
        live["security.incidents_growth_yoy"] = (inc - inc0) / inc0 * 100

        #expect(Set(live.keys) == Set(expected.keys), "indicators recomputed vs published")
        for (id, e) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(e.matches(live[id] ?? nil), "\(id): live \(String(describing: live[id] ?? nil)) expected \(e)")
            if let o = e.of { #expect(of[id] == o, "\(id): of \(String(describing: of[id])) expected \(o)") }
        }
    }

    @Test("published expectations round to the report's printed figures at every supported scale")
    func expectationsMatchThePrintedReport() {
        let printedAsIs: [String: Double] = [
            "ndxp.endpoints": 388, "ndxp.agencies": 95, "policy.government_documents_ytd": 9,
            "policy.provinces_with_fee_support": 56, "policy.ministries_with_dx_plan": 21, "policy.provinces_with_dx_plan": 62,
            "infra.fiber_household_share": 80.2, "infra.commune_fiber_share": 100, "dvc.procedures_online_share": 80.44,
            "dvc.procedures_full_share": 47.79, "dvc.online_dossier_share_ytd": 38.3, "dvc.essential_services_full": 41,
            "dvc.essential_services_full_change_ytd": 5, "dvc.de_an_06_services_provided": 25, "dvc.de_an_06_services_full": 23,
            "dvc.qd_422_services_provided": 16, "economy.it_revenue_growth_yoy": 17.7, "economy.it_export_growth_yoy": 17,
            "society.mobile_money_growth_multiple": 2.2, "society.health_facilities_cashless_share": 100,
            "society.adults_with_account_share": 77, "security.information_systems": 3418, "security.systems_level_approved": 2365,
            "security.systems_level_approved_share": 69.2, "security.systems_level_approved_share_change_yoy": 9,
            "security.incidents_last_quarter": 2323, "security.incidents_growth_yoy": -32.6,
        ]
        let scaledAtOne: [String: Double] = [
            "ndxp.transactions_daily_avg_30d": 2_800_000, "dvc.portal_accounts": 14_600_000, "dvc.portal_dossiers": 46_200_000,
            "dvc.online_payments": 26_800_000, "dvc.online_payments_vnd": 12_900_000_000_000,
            "economy.it_revenue_usd_last_quarter": 36_300_000_000, "economy.it_export_usd_last_quarter": 31_000_000_000,
            "society.mobile_money_customers": 8_200_000, "society.mobile_money_rural_customers": 5_800_000,
            "society.welfare_beneficiaries_via_account": 1_013_000,
        ]
        for scale in [0.0001, 0.0005, 0.001, 0.01, 0.1] {
            let e = SimulationProfile.april2024.expectedReport(scale: scale)
            let all = Set(printedAsIs.keys).union(scaledAtOne.keys).union(["ndxp.transactions_24h", "ndxp.success_rate_24h"])
            #expect(all.count == 39 && Set(e.keys) == all, "every indicator of the catalog at \(scale)")
            for (id, v) in printedAsIs { #expect(e[id]!.rounded(e[id]!.value) == v, "\(id) at \(scale): \(e[id]!)") }
            for (id, v) in scaledAtOne {
                #expect(e[id]!.value == Double(max(1, Int((v * scale).rounded()))), "\(id) at \(scale): \(e[id]!)")
            }
        }
        let e = SimulationProfile.april2024.expectedReport(scale: 0.001)
        #expect(e["policy.provinces_with_fee_support"]!.of == 63)
        #expect(e["security.systems_level_approved"]!.of == 3418)
        #expect(e["dvc.essential_services_full"]!.of == 53)
        #expect(e["dvc.qd_422_services_provided"]!.of == 28)
    }

    @Test("the same seed gives the same bytes and another seed a different stream with the same report")
    func deterministic() throws {
        var a = try Simulator(profile: .april2024, scale: 0.0001)
        var b = try Simulator(profile: .april2024, scale: 0.0001)
        var c = try Simulator(profile: .april2024, scale: 0.0001, seed: 7)
        var same = true, differs = false, n = 0
        while let x = a.next() {
            let y = b.next(), z = c.next()
            same = same && x == y
            differs = differs || x != z
            n += 1
        }
        #expect(b.next() == nil)
        #expect(same)
        #expect(differs)
        #expect(n == a.totalEvents && a.emitted == n)
        let ea = SimulationProfile.april2024.expectedReport(scale: 0.0001)
        let ec = SimulationProfile.april2024.expectedReport(scale: 0.0001, seed: 7)
        #expect(ea["ndxp.endpoints"] == ec["ndxp.endpoints"])
        #expect(ea["dvc.online_payments_vnd"] == ec["dvc.online_payments_vnd"])
    }

    @Test("a batch is a JSON array of single events, and the stream ends with nil")
    func batches() throws {
        var sim = try Simulator(profile: .april2024, scale: 0.0001)
        let first = sim.nextBatch(max: 10)
        let batch = try #require(first)
        let array = try #require(JSONSerialization.jsonObject(with: Data(batch)) as? [[String: Any]])
        #expect(array.count == 10)
        #expect(array.first?["type"] as? String == "tally.balance")
        var total = 10
        while let b = sim.nextBatch(max: 50_000) {
            total += (try JSONSerialization.jsonObject(with: Data(b)) as! [Any]).count
        }
        #expect(total == sim.totalEvents)
        #expect(sim.nextBatch(max: 1) == nil)
        #expect(sim.next() == nil)
    }

    @Test("profiles are found by name, and a scale outside the supported range is a typed error")
    func profilesAndScales() {
        #expect(SimulationProfile.named("april-2024") == .april2024)
        #expect(SimulationProfile.named("may-2024") == nil)
        #expect(throws: SimulatorError.scaleOutOfRange(0.00001, allowed: SimulationProfile.scaleRange)) {
            _ = try Simulator(profile: .april2024, scale: 0.00001)
        }
        #expect(throws: SimulatorError.self) { _ = try Simulator(profile: .april2024, scale: 2) }
        #expect("\(SimulatorError.scaleOutOfRange(2, allowed: 0.0001...1))".contains("--scale"))
    }

    @Test("RFC 3339 formatting at +07:00 and the civil calendar agree with Foundation across leap days and year ends")
    func calendar() {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(secondsFromGMT: 7 * 3600)!
        for (y, m, d) in [(2023, 1, 1), (2024, 2, 29), (2024, 3, 1), (2023, 12, 31), (2024, 4, 30), (2000, 2, 29)] {
            let day = SimTime.day(y, m, d)
            #expect(SimTime.civil(day) == (y, m, d))
            let date = cal.date(from: DateComponents(year: y, month: m, day: d))!
            #expect(SimTime.micros(day: day, millis: 0) == Int64(date.timeIntervalSince1970) * 1_000_000)
            #expect(SimTime.weekday(day) == (cal.component(.weekday, from: date) + 5) % 7)
        }
        var out: [UInt8] = []
        SimTime.appendRFC3339(SimTime.micros(2024, 4, 30, 23, 59, 59), to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "2024-04-30T23:59:59.000+07:00")
        out = []
        SimTime.appendRFC3339(SimTime.micros(day: SimTime.day(2024, 1, 1), millis: 7), to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "2024-01-01T00:00:00.007+07:00")
    }
}
