// MARK: - The simulated country: registries and reports that are small enough to hold

/// One event of the bounded part of the stream: registries and periodic reports whose
/// size depends on the country (endpoints, procedures, systems, provinces, communes...),
/// not on the number of transactions.
struct ListItem: Sendable {
    enum Body: Sendable {
        case endpointRegistered(endpoint: Int)
        case endpointRetired(endpoint: Int)
        case document(Int)
        case procedure(Int, level: ProcedureLevel)
        case fiber(province: Int, households: Int, fiberHouseholds: Int)
        case commune(Int, fiber: Bool)
        case itReport(enterprise: Int, revenue: Int64, export: Int64)
        case facility(Int, cashless: Bool)
        case adults(adults: Int64, withAccount: Int64)
        case system(Int, approved: Bool)
    }
    let time: Micros
    let body: Body
}

enum ProcedureLevel: UInt8, Sendable { case none, partial, full }

/// A policy document of the simulated period.
struct Document: Sendable {
    enum Kind: String, Sendable { case decree, decision, directive, plan, feeSupport = "fee-support", other }
    enum Level: String, Sendable { case government, ministry, province }
    let number: String
    let kind: Kind
    let issuer: String
    let level: Level
    let planYear: Int?
    let day: Int
}

/// The registries of the simulated country and the bounded list of their events, built
/// once per simulator.
///
/// - Complexity: O(p log p) to build, p ≈ 15,000 items at test scales and ≈ 32,000 at
///   scale 1 (procedures, systems, communes dominate); independent of the traffic volume.
final class World: Sendable {
    let plan: April2024Plan
    let endpoints: [(id: String, agency: Int)]
    /// Live endpoints registered before March 2024: what NDXP traffic goes through.
    let trafficEndpoints: [Int]
    let documents: [Document]
    let procedures: [(id: String, authority: String, essential: Bool, programs: [String])]
    let onlineProcedures: [Int]
    let communes: [(id: String, province: Int)]
    let facilities: [String]
    let enterprises: [String]
    let systems: [(id: String, owner: String)]
    /// Sorted by time (stable: generation order breaks ties).
    let items: [ListItem]

    init(plan: April2024Plan) {
        self.plan = plan
        let seed = plan.seed
        var items: [ListItem] = []
        func h(_ stream: UInt64, _ a: Int, _ b: Int = 0) -> UInt64 { SimHash.hash(seed, stream, UInt64(a), UInt64(b)) }
        /// A working-hours instant on `day`, 07:30–17:30, from a hash.
        func officeTime(_ day: Int, _ hash: UInt64) -> Micros {
            SimTime.micros(day: day, millis: 27_000_000 + Int64(SimHash.below(hash, 36_000_000)))
        }
        func dayIn(_ range: ClosedRange<Int>, _ hash: UInt64) -> Int {
            range.lowerBound + SimHash.below(hash, range.count)
        }
        let start = April2024Plan.historyStartDay, end = April2024Plan.endDay
        let agencies = Gazetteer.agencies
        let authorities = Gazetteer.ministries + Gazetteer.provinces.map { "ubnd-" + $0.slug }

        // MARK: NDXP endpoints
        // 388 live endpoints over 95 agencies; 20 retired ones, 4 of them the only
        // endpoints of 2 agencies (which therefore no longer count); 2 live endpoints were
        // retired and registered again.
        let live = April2024Plan.liveEndpoints, total = live + April2024Plan.retiredOnlyEndpoints
        var endpointAgency = [Int](repeating: 0, count: total)
        for e in 0..<total {
            if e < April2024Plan.liveAgencies { endpointAgency[e] = e }
            else if e < live { endpointAgency[e] = Int(Double(April2024Plan.liveAgencies) * SimMath.pow(SimHash.unit(h(0xE1, e)), 1.6)) }
            else if e < live + 4 { endpointAgency[e] = April2024Plan.liveAgencies + (e - live) / 2 }
            else { endpointAgency[e] = SimHash.below(h(0xE2, e), April2024Plan.liveAgencies) }
        }
        var perAgency = [Int](repeating: 0, count: agencies.count)
        var endpoints: [(id: String, agency: Int)] = []
        for e in 0..<total {
            let a = endpointAgency[e]
            perAgency[a] += 1
            endpoints.append(("ep-" + agencies[a] + "-" + (perAgency[a] < 10 ? "0" : "") + String(perAgency[a]), a))
        }
        var traffic: [Int] = []
        let marchFirst = SimTime.day(2024, 3, 1)
        for e in 0..<total {
            let reg = e < 300 || e >= live ? dayIn(SimTime.day(2023, 1, 2)...SimTime.day(2023, 1, 31), h(0xE3, e))
                : dayIn(SimTime.day(2023, 2, 1)...SimTime.day(2024, 4, 25), h(0xE3, e))
            items.append(ListItem(time: officeTime(reg, h(0xE4, e)), body: .endpointRegistered(endpoint: e)))
            if e >= live {
                let retire = dayIn((reg + 30)...SimTime.day(2024, 4, 28), h(0xE5, e))
                items.append(ListItem(time: officeTime(retire, h(0xE6, e)), body: .endpointRetired(endpoint: e)))
            } else if e == 10 || e == 20 {
                items.append(ListItem(time: officeTime(SimTime.day(2023, 8, 14 + e / 10), h(0xE6, e)), body: .endpointRetired(endpoint: e)))
                items.append(ListItem(time: officeTime(SimTime.day(2023, 9, 18 + e / 10), h(0xE7, e)), body: .endpointRegistered(endpoint: e)))
            }
            if e < live && reg < marchFirst { traffic.append(e) }
        }
        self.endpoints = endpoints
        trafficEndpoints = traffic

        // MARK: Policy documents
        var docs: [Document] = []
        var numbers: [String: Int] = [:]
        func number(_ suffix: String, year: Int) -> String {
            let key = suffix + String(year)
            numbers[key, default: 0] += 1
            return String(numbers[key]!) + "/" + String(year) + "/" + suffix
        }
        func add(_ kind: Document.Kind, _ issuer: String, _ level: Document.Level, _ suffix: String,
                 _ days: ClosedRange<Int>, _ salt: Int, planYear: Int? = nil) {
            let day = dayIn(days, h(0xD0, salt, docs.count))
            docs.append(Document(number: number(suffix, year: SimTime.civil(day).year), kind: kind, issuer: issuer,
                                 level: level, planYear: planYear, day: day))
        }
        let y2023 = SimTime.day(2023, 1, 3)...SimTime.day(2023, 12, 29)
        let y2024 = SimTime.day(2024, 1, 5)...SimTime.day(2024, 4, 26)
        for _ in 0..<7 { add(.decree, "chinh-phu", .government, "ND-CP", y2023, 1) }
        for _ in 0..<16 { add(.decision, "thu-tuong-chinh-phu", .government, "QD-TTg", y2023, 2) }
        for _ in 0..<3 { add(.directive, "thu-tuong-chinh-phu", .government, "CT-TTg", y2023, 3) }
        for _ in 0..<2 { add(.other, "chinh-phu", .government, "NQ-CP", y2023, 4) }
        let g = April2024Plan.governmentDocs2024
        for _ in 0..<g.decree { add(.decree, "chinh-phu", .government, "ND-CP", y2024, 5) }
        for _ in 0..<g.decision { add(.decision, "thu-tuong-chinh-phu", .government, "QD-TTg", y2024, 6) }
        for _ in 0..<g.directive { add(.directive, "thu-tuong-chinh-phu", .government, "CT-TTg", y2024, 7) }
        let plans2023 = SimTime.day(2023, 1, 5)...SimTime.day(2023, 3, 31)
        let plans2024 = SimTime.day(2023, 11, 15)...SimTime.day(2024, 4, 20)
        let missingMinistry = 18, missingProvince = 33  // uy-ban-dan-toc, kon-tum
        for (i, m) in Gazetteer.ministries.enumerated() {
            add(.plan, m, .ministry, "KH-" + String(i), plans2023, 8, planYear: 2023)
            if i != missingMinistry { add(.plan, m, .ministry, "KH-" + String(i), plans2024, 9, planYear: 2024) }
        }
        for (i, p) in Gazetteer.provinces.enumerated() {
            add(.plan, p.slug, .province, "KH-UBND-" + p.code, plans2023, 10, planYear: 2023)
            if i != missingProvince { add(.plan, p.slug, .province, "KH-UBND-" + p.code, plans2024, 11, planYear: 2024) }
            if i % 16 == 3 { add(.plan, p.slug, .province, "KH-UBND-" + p.code, SimTime.day(2024, 3, 1)...SimTime.day(2024, 4, 25), 12, planYear: 2024) }
        }
        // Fee support: 56 of 63 provinces, some twice; two ministries issue their own (not counted).
        let (fa, fb) = Allocation.affine(seed: seed ^ 0xFEE, n: 63)
        for r in 0..<April2024Plan.provincesWithFeeSupport {
            let p = Gazetteer.provinces[(fa * r + fb) % 63]
            add(.feeSupport, p.slug, .province, "NQ-HDND-" + p.code, SimTime.day(2023, 2, 1)...SimTime.day(2024, 4, 26), 13)
            if r % 6 == 0 { add(.feeSupport, p.slug, .province, "NQ-HDND-" + p.code, SimTime.day(2023, 9, 1)...SimTime.day(2024, 4, 26), 14) }
        }
        add(.feeSupport, "bo-tai-chinh", .ministry, "TT-BTC", y2023, 15)
        add(.feeSupport, "bo-cong-an", .ministry, "TT-BCA", y2023, 15)
        for i in 0..<30 {
            let m = Gazetteer.ministries[SimHash.below(h(0xD1, i), 22)]
            add(.other, m, .ministry, "TT", start...SimTime.day(2024, 4, 26), 16)
        }
        self.documents = docs
        for (i, d) in docs.enumerated() { items.append(ListItem(time: officeTime(d.day, h(0xD2, i)), body: .document(i))) }

        // MARK: Administrative procedures
        // Fixed categories at the front (de-an-06 ⊂ essential, qd-422), then the generic
        // ones whose final level comes from an affine permutation so the totals are exact.
        let n = April2024Plan.procedures
        let genericFull = April2024Plan.proceduresFull - April2024Plan.essentialFull - April2024Plan.qd422Full
        let genericPartial = (April2024Plan.proceduresOnline - April2024Plan.proceduresFull) - (2 + 8 + 7)
        let (pa, pb) = Allocation.affine(seed: seed ^ 0x7711, n: n - 81)
        var procedures: [(id: String, authority: String, essential: Bool, programs: [String])] = []
        var online: [Int] = []
        let catalogImport = SimTime.day(2023, 1, 3)...SimTime.day(2023, 3, 31)
        let in2023 = SimTime.day(2023, 4, 3)...SimTime.day(2023, 12, 29)
        let in2024 = SimTime.day(2024, 1, 2)...SimTime.day(2024, 4, 29)
        let anyTime = SimTime.day(2023, 4, 3)...SimTime.day(2024, 4, 29)
        for i in 0..<n {
            let final: ProcedureLevel
            var initial: ProcedureLevel
            var changeDays = anyTime
            var programs: [String] = []
            let essential = i < April2024Plan.essential
            switch i {
            case 0..<25:  // de-an-06: 23 full (8 of them upgraded during 2023), 2 partial
                programs = ["de-an-06"]
                final = i < 23 ? .full : .partial
                initial = i >= 15 && i < 23 ? .partial : final
                changeDays = in2023
            case 25..<53:  // other essential: 18 full (5 of them upgraded in 2024), 8 partial, 2 none
                final = i < 43 ? .full : i < 51 ? .partial : .none
                initial = i >= 38 && i < 43 ? .partial : final
                changeDays = i >= 38 && i < 43 ? in2024 : in2023
            case 53..<81:  // qd-422: 9 full, 7 partial, 12 none
                programs = ["qd-422"]
                final = i < 62 ? .full : i < 69 ? .partial : .none
                initial = i < 58 ? .partial : final
            default:
                let pos = (pa * (i - 81) + pb) % (n - 81)
                final = pos < genericFull ? .full : pos < genericFull + genericPartial ? .partial : .none
                let u = SimHash.unit(h(0x91, i))
                initial = final == .full && u < 0.25 ? .partial : final == .partial && u < 0.15 ? .none
                    : final == .none && u < 0.04 ? .partial : final
            }
            let authority = authorities[i < 81 ? SimHash.below(h(0x92, i), 22) : SimHash.below(h(0x92, i), authorities.count)]
            procedures.append(("1.0" + String(10_000 + i), authority, essential, programs))
            if final != .none { online.append(i) }
            let first = dayIn(catalogImport, h(0x93, i))
            items.append(ListItem(time: officeTime(first, h(0x94, i)), body: .procedure(i, level: initial)))
            if initial != final {
                items.append(ListItem(time: officeTime(dayIn(changeDays, h(0x95, i)), h(0x96, i)), body: .procedure(i, level: final)))
            } else if SimHash.unit(h(0x97, i)) < 0.03 {
                // A re-listing that changes nothing (e.g. a new authority contact).
                items.append(ListItem(time: officeTime(dayIn(anyTime, h(0x95, i)), h(0x96, i)), body: .procedure(i, level: final)))
            }
        }
        self.procedures = procedures
        onlineProcedures = online

        // MARK: Fibre by province (quarterly), communes, health facilities
        let households = Gazetteer.provinces.map { Double($0.population) * 1000 / 3.55 }
        let shareWeights = (0..<63).map { i in households[i] * (0.66 + 0.27 * SimHash.unit(h(0xF1, i))) }
        let finalHouseholds = households.map { Int($0.rounded()) }
        let totalHouseholds = finalHouseholds.reduce(0, +)
        let fiberTotal = Int((Double(totalHouseholds) * April2024Plan.fiberShare).rounded())
        let finalFiber = Allocation.largestRemainder(fiberTotal, weights: shareWeights)
        let reportDays = [(2023, 4), (2023, 7), (2023, 10), (2024, 1), (2024, 4)]
        for (q, (y, m)) in reportDays.enumerated() {
            let back = Double(reportDays.count - 1 - q)
            for p in 0..<63 {
                let day = SimTime.day(y, m, 5 + SimHash.below(h(0xF2, p, q), 10))
                let hh = Int(Double(finalHouseholds[p]) * (1 - 0.004 * back))
                let fiber = q == reportDays.count - 1 ? finalFiber[p]
                    : min(hh, Int(Double(finalFiber[p]) * (1 - 0.012 * back)))
                items.append(ListItem(time: officeTime(day, h(0xF3, p, q)), body: .fiber(province: p, households: hh, fiberHouseholds: fiber)))
            }
        }
        let communeCounts = Allocation.largestRemainder(plan.communes - 63, weights: Gazetteer.provinces.map { Double($0.population) }).map { $0 + 1 }
        var communes: [(id: String, province: Int)] = []
        for (p, c) in communeCounts.enumerated() {
            for k in 0..<c { communes.append((Gazetteer.provinces[p].slug + "-x" + String(10_000 + k), p)) }
        }
        let survey2023 = SimTime.day(2023, 2, 1)...SimTime.day(2023, 3, 31)
        let survey2024 = SimTime.day(2024, 3, 1)...SimTime.day(2024, 4, 25)
        for c in 0..<communes.count {
            let connected2023 = SimHash.unit(h(0xC1, c)) >= 0.006
            items.append(ListItem(time: officeTime(dayIn(survey2023, h(0xC2, c)), h(0xC3, c)), body: .commune(c, fiber: connected2023)))
            if !connected2023 || SimHash.unit(h(0xC4, c)) < 0.5 {
                items.append(ListItem(time: officeTime(dayIn(survey2024, h(0xC5, c)), h(0xC6, c)), body: .commune(c, fiber: true)))
            }
        }
        self.communes = communes
        facilities = (0..<plan.facilities).map { "csyt-" + Gazetteer.provinces[$0 % 63].code + "-" + String(1000 + $0 / 63) }
        for f in 0..<plan.facilities {
            let cashless2023 = SimHash.unit(h(0xA1, f)) >= 0.07
            items.append(ListItem(time: officeTime(dayIn(SimTime.day(2023, 6, 1)...SimTime.day(2023, 6, 30), h(0xA2, f)), h(0xA3, f)),
                                  body: .facility(f, cashless: cashless2023)))
            if !cashless2023 || SimHash.unit(h(0xA4, f)) < 0.4 {
                items.append(ListItem(time: officeTime(dayIn(SimTime.day(2024, 2, 15)...SimTime.day(2024, 4, 25), h(0xA5, f)), h(0xA6, f)),
                                      body: .facility(f, cashless: true)))
            }
        }
        for s in April2024Plan.adultSurveys {
            items.append(ListItem(time: SimTime.micros(s.y, s.m, s.d, 10), body: .adults(adults: s.adults, withAccount: s.withAccount)))
        }

        // MARK: IT industry quarterly reports
        let itWeights = (0..<April2024Plan.itEnterprises).map { (i: Int) -> Double in
            let rank: Double = 1 / SimMath.pow(Double(i + 1), 0.9)
            let jitter: Double = 0.8 + 0.4 * SimHash.unit(h(0x1A, i))
            return rank * jitter
        }
        enterprises = (0..<April2024Plan.itEnterprises).map { "dn-cntt-" + String(1000 + $0) }
        for q in 0..<5 {
            let revenue = Allocation.largestRemainder(Int(plan.itRevenue[q]), weights: itWeights)
            let export = Allocation.largestRemainder(Int(plan.itExport[q]), weights: itWeights)
            let days = April2024Plan.quarterDays(q)
            for e in 0..<April2024Plan.itEnterprises {
                let day = days.upperBound - 14 + SimHash.below(h(0x1B, e, q), 14)
                items.append(ListItem(time: officeTime(day, h(0x1C, e, q)),
                                      body: .itReport(enterprise: e, revenue: Int64(revenue[e]), export: Int64(export[e]))))
            }
        }

        // MARK: Information systems and their security-level approval
        // 2,950 systems in the January 2023 census, 3,110 by the year-ago instant (1,872
        // approved), 3,418 by April 2024 (2,365 approved; 12 approvals revoked in between).
        let nSys = April2024Plan.systems, nYA = April2024Plan.systemsYearAgo
        let (sa, sb) = Allocation.affine(seed: seed ^ 0x5E5, n: nYA)
        var rankYA = [Int](repeating: 0, count: nYA)  // position in the year-ago permutation
        for i in 0..<nYA { rankYA[(sa * i + sb) % nYA] = i }
        let laterCandidates = (nYA - April2024Plan.systemsApprovedYearAgo) + (nSys - nYA)
        let extra = April2024Plan.systemsApproved - (April2024Plan.systemsApprovedYearAgo - April2024Plan.systemsRevoked)
        let (la, lb) = Allocation.affine(seed: seed ^ 0x1A7E, n: laterCandidates)
        let yearAgoDay = SimTime.day(2023, 4, 30), afterYA = SimTime.day(2023, 5, 1)...SimTime.day(2024, 4, 29)
        var systems: [(id: String, owner: String)] = []
        for i in 0..<nSys {
            systems.append(("httt-" + String(100_000 + i), authorities[SimHash.below(h(0x5A, i), authorities.count)]))
            let reg = i < April2024Plan.systemsCensus ? dayIn(SimTime.day(2023, 1, 3)...SimTime.day(2023, 1, 31), h(0x5B, i))
                : i < nYA ? dayIn(SimTime.day(2023, 2, 1)...yearAgoDay, h(0x5B, i))
                : dayIn(afterYA, h(0x5B, i))
            let approvedYA = i < nYA && rankYA[i] < April2024Plan.systemsApprovedYearAgo
            let revoked = approvedYA && rankYA[i] < April2024Plan.systemsRevoked
            var laterApproved = false
            if !approvedYA {
                let c = i < nYA ? rankYA[i] - April2024Plan.systemsApprovedYearAgo : (nYA - April2024Plan.systemsApprovedYearAgo) + (i - nYA)
                laterApproved = (la * c + lb) % laterCandidates < extra
            }
            let u = SimHash.unit(h(0x5C, i))
            let regTime = officeTime(reg, h(0x5D, i))
            if approvedYA {
                let atRegistration = (i < April2024Plan.systemsCensus && u < 0.75) || reg >= yearAgoDay
                items.append(ListItem(time: regTime, body: .system(i, approved: atRegistration)))
                if !atRegistration {
                    let day = dayIn((reg + 1)...yearAgoDay, h(0x5E, i))
                    items.append(ListItem(time: officeTime(day, h(0x5F, i)), body: .system(i, approved: true)))
                }
                if revoked {
                    items.append(ListItem(time: officeTime(dayIn(afterYA, h(0x60, i)), h(0x61, i)), body: .system(i, approved: false)))
                }
            } else if laterApproved {
                let atRegistration = i >= nYA && u < 0.5
                items.append(ListItem(time: regTime, body: .system(i, approved: atRegistration)))
                if !atRegistration {
                    let from = max(reg + 1, afterYA.lowerBound)
                    let day = dayIn(from...max(from, SimTime.day(2024, 4, 29)), h(0x5E, i))
                    items.append(ListItem(time: officeTime(day, h(0x5F, i)), body: .system(i, approved: true)))
                }
            } else {
                items.append(ListItem(time: regTime, body: .system(i, approved: false)))
            }
        }
        self.systems = systems
        precondition(items.allSatisfy { $0.time <= April2024Plan.endTime && $0.time >= SimTime.micros(day: start, millis: 0) },
                     "the april-2024 registries must lie within 2023-01-01 ... \(end)")

        // Stable sort by time: generation order breaks ties, so the stream is deterministic.
        self.items = items.enumerated().sorted { $0.element.time != $1.element.time ? $0.element.time < $1.element.time : $0.offset < $1.offset }.map(\.element)
    }
}
