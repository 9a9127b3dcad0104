// MARK: - Profiles and the report they reproduce

/// A named simulation scenario. Today there is one: `april-2024`, the Ministry of
/// Information and Communications' digital-transformation report for April 2024
/// (`shared/reference/bao-cao-chuyen-doi-so-04-2024.vi.txt`).
///
/// ## How `april-2024` reproduces the report
/// - **Scale.** At scale `S` the large counts are `max(1, round(x × S))`: NDXP transactions
///   per day, portal accounts, portal dossiers, online payments and their VND total, IT
///   revenue and exports, Mobile Money customers and rural customers, welfare beneficiaries.
///   Every other printed figure (388 endpoints, 56 of 63, 2,365 of 3,418, 2,323 incidents,
///   every share, growth, multiple and change) is reproduced as printed at any scale in
///   ``scaleRange``. Populations the report does not print (communes, health facilities)
///   scale too, with a floor (630 communes, 120 facilities).
/// - **History.** Events start on 2023-01-01 so that year-ago values exist: Q1 2023 for the
///   last-quarter growths, 2023-04-30T23:59:59 for the Mobile Money multiple and the systems
///   share change, 2023-12-31T23:59:59 for the essential-services change.
/// - **Opening balances.** Long-running totals begin with a `tally.balance` control event,
///   emitted first: at 2022-12-31T23:59:59 for Mobile Money (its year-ago value needs 2023),
///   at 2023-12-31T23:59:59 for accounts, portal dossiers, payments, VND and welfare (only
///   2024 is replayed for them). No event of those indicators precedes its balance, so
///   "balance plus later events" and "balance plus all events" agree.
/// - **Exact shares from integers.** 6,401 procedures: 5,149 online → 80.44%, 3,059 fully
///   online → 47.79%. Dossiers per province are snapped to the nearest count whose online
///   share rounds to 38.3%, so every province's `by` value and the national share round to
///   38.3. Incidents: 2,323 against 3,447 in Q1 2023 → −32.61% → −32.6.
/// - **Known discrepancy.** The report prints 68.2% for 2,365 of 3,418 systems, which is
///   69.19%. The profile keeps the counts (2,365 of 3,418) and the +9 pp change relative to
///   the computed 69.19% (1,872 of 3,110 = 60.19% on 2023-04-30); ``Expected/note`` says so.
/// - **Rhythm.** NDXP traffic follows a machine-day rhythm (busy office hours, a non-zero
///   night, quieter weekends and the 27–30 April 2024 holiday) while the 30 April-days of the
///   30-day window sum to exactly 30 × the scaled daily average. It starts on 27 March so the
///   window's exclusive start is exercised. Times have millisecond precision and never pass
///   23:59:59.000 of their day; the last event is a transaction at exactly the end instant.
public struct SimulationProfile: Sendable, Equatable, CustomStringConvertible {
    /// The name used on the command line (`tally simulate --profile NAME`).
    public let name: String
    /// One line for `--help` and progress output.
    public let summary: String

    public static let april2024 = SimulationProfile(
        name: "april-2024",
        summary: "national digital-transformation mix, 2023-01-01 to 2024-04-30T23:59:59+07:00 (MIC report, April 2024)")

    public static let all: [SimulationProfile] = [.april2024]

    /// The profile called `name`, or nil.
    public static func named(_ name: String) -> SimulationProfile? { all.first { $0.name == name } }

    /// Scales at which every printed figure is reproduced. Below 0.0001 the scaled
    /// year-ago counts get too small for the growth and multiple to round as printed.
    public static let scaleRange: ClosedRange<Double> = 0.0001...1

    public var description: String { name }

    /// What the snapshot must show at the end of the stream (`2024-04-30T23:59:59+07:00`)
    /// for each indicator id of the catalog, at `scale`.
    ///
    /// Values are the exact values the stream is built to produce; ``Expected/decimals`` is
    /// the report's printed precision, and ``Expected/matches(_:)`` compares at it. Figures
    /// the report leaves blank (`ndxp.transactions_24h`, `ndxp.success_rate_24h`) are
    /// included with the exact value of the generated stream.
    /// - Complexity: O(transactions of the last day + 2024 payments), to recompute the
    ///   last day's failures and the VND split.
    public func expectedReport(scale: Double, seed: UInt64 = Simulator.defaultSeed) -> [String: Expected] {
        let p = April2024Plan(scale: scale, seed: seed)
        typealias P = April2024Plan
        func count(_ v: Int, of: Int? = nil, printed: String, note: String? = nil) -> Expected {
            Expected(value: Double(v), of: of.map(Double.init), decimals: 0, printed: printed, note: note)
        }
        func share(_ num: Int, _ den: Int, _ d: Int, printed: String, note: String? = nil) -> Expected {
            Expected(value: 100 * Double(num) / Double(den), decimals: d, printed: printed, note: note)
        }
        var r: [String: Expected] = [:]

        // NDXP
        r["ndxp.endpoints"] = count(P.liveEndpoints, printed: "388")
        r["ndxp.agencies"] = count(P.liveAgencies, printed: "95")
        let lastDay = p.transactionDayCounts.last!
        let firstOfLastDay = p.transactionDayCounts.dropLast().reduce(0, +)
        var failed = 0
        for j in firstOfLastDay..<(firstOfLastDay + lastDay) where Simulator.transactionFailed(seed: seed, j) { failed += 1 }
        r["ndxp.transactions_24h"] = count(lastDay, printed: "—", note: "not printed; the stream's 30 April count")
        r["ndxp.success_rate_24h"] = Expected(value: 100 * Double(lastDay - failed) / Double(lastDay), decimals: 2,
                                              printed: "—", note: "not printed; the stream's 30 April success rate")
        r["ndxp.transactions_daily_avg_30d"] = count(p.transactionsPerDay, printed: "≈ 2,800,000",
                                                     note: scale == 1 ? nil : "scaled by \(scale)")

        // Policy
        let g = P.governmentDocs2024
        r["policy.government_documents_ytd"] = Expected(
            value: Double(g.decree + g.decision + g.directive), decimals: 0,
            by: ["decree": Double(g.decree), "decision": Double(g.decision), "directive": Double(g.directive)],
            printed: "9 (decree 2, decision 5, directive 2)")
        r["policy.provinces_with_fee_support"] = count(P.provincesWithFeeSupport, of: 63, printed: "56 of 63")
        r["policy.ministries_with_dx_plan"] = count(P.ministriesWithPlan, of: 22, printed: "21 of 22")
        r["policy.provinces_with_dx_plan"] = count(P.provincesWithPlan, of: 63, printed: "62 of 63")

        // Infrastructure
        r["infra.fiber_household_share"] = Expected(value: fiberShare(), decimals: 1, printed: "80.2")
        r["infra.commune_fiber_share"] = Expected(value: 100, decimals: 0, printed: "100")

        // Online public services
        r["dvc.procedures_online_share"] = share(P.proceduresOnline, P.procedures, 2, printed: "80.44",
                                                 note: "5,149 of 6,401 procedures")
        r["dvc.procedures_full_share"] = share(P.proceduresFull, P.procedures, 2, printed: "47.79",
                                               note: "3,059 of 6,401 procedures")
        let online = p.dossiers.reduce(0) { $0 + $1.online }, total = p.dossiers.reduce(0) { $0 + $1.total }
        var byProvince: [String: Double] = [:]
        for (i, d) in p.dossiers.enumerated() { byProvince[Gazetteer.provinces[i].slug] = 100 * Double(d.online) / Double(d.total) }
        r["dvc.online_dossier_share_ytd"] = Expected(value: 100 * Double(online) / Double(total), decimals: 1,
                                                     by: byProvince, printed: "38.3")
        let scaledNote: String? = scale == 1 ? nil : "scaled by \(scale)"
        r["dvc.portal_accounts"] = count(p.portalAccounts, printed: "≈ 14,600,000", note: scaledNote)
        r["dvc.portal_dossiers"] = count(p.portalDossiers, printed: "≈ 46,200,000", note: scaledNote)
        r["dvc.online_payments"] = count(p.payments, printed: "≈ 26,800,000", note: scaledNote)
        r["dvc.online_payments_vnd"] = Expected(value: Double(p.paymentsVND), decimals: 0,
                                                printed: "≈ 12,900,000,000,000", note: scaledNote)
        r["dvc.essential_services_full"] = count(P.essentialFull, of: P.essential, printed: "41 of 53")
        r["dvc.essential_services_full_change_ytd"] = count(P.essentialFull - P.essentialFullStartOfYear, printed: "+5")
        r["dvc.de_an_06_services_provided"] = count(P.deAn06, of: P.deAn06, printed: "25 of 25")
        r["dvc.de_an_06_services_full"] = count(P.deAn06Full, of: P.deAn06, printed: "23 of 25")
        r["dvc.qd_422_services_provided"] = count(P.qd422Provided, of: P.qd422, printed: "16 of 28")

        // Economy and society
        let (r0, r1, x0, x1) = (p.itRevenue[0], p.itRevenue[4], p.itExport[0], p.itExport[4])
        r["economy.it_revenue_usd_last_quarter"] = Expected(value: Double(r1), decimals: 0, printed: "≈ 36,300,000,000", note: scaledNote)
        r["economy.it_revenue_growth_yoy"] = Expected(value: Double(r1 - r0) / Double(r0) * 100, decimals: 1, printed: "17.7")
        r["economy.it_export_usd_last_quarter"] = Expected(value: Double(x1), decimals: 0, printed: "≈ 31,000,000,000", note: scaledNote)
        r["economy.it_export_growth_yoy"] = Expected(value: Double(x1 - x0) / Double(x0) * 100, decimals: 0, printed: "17")
        r["society.mobile_money_customers"] = count(p.mobileMoney, printed: "≈ 8,200,000", note: scaledNote)
        r["society.mobile_money_rural_customers"] = count(p.mobileMoneyRural, printed: "≈ 5,800,000", note: scaledNote)
        r["society.mobile_money_growth_multiple"] = Expected(value: Double(p.mobileMoney) / Double(p.mobileMoneyYearAgo),
                                                            decimals: 1, printed: "2.2")
        r["society.health_facilities_cashless_share"] = Expected(value: 100, decimals: 0, printed: "100")
        let survey = P.adultSurveys.last!
        r["society.adults_with_account_share"] = Expected(value: 100 * Double(survey.withAccount) / Double(survey.adults),
                                                         decimals: 0, printed: "77")
        r["society.welfare_beneficiaries_via_account"] = count(p.welfare, printed: "> 1,000,000",
                                                               note: "the profile uses 1,013,000" + (scale == 1 ? "" : ", scaled by \(scale)"))

        // Security
        r["security.information_systems"] = count(P.systems, printed: "3,418")
        r["security.systems_level_approved"] = count(P.systemsApproved, of: P.systems, printed: "2,365 of 3,418")
        let shareNow = 100 * Double(P.systemsApproved) / Double(P.systems)
        let shareYearAgo = 100 * Double(P.systemsApprovedYearAgo) / Double(P.systemsYearAgo)
        r["security.systems_level_approved_share"] = Expected(
            value: shareNow, decimals: 1, printed: "68.2",
            note: "2,365 / 3,418 = 69.19%; the report's 68.2% is inconsistent with its own counts")
        r["security.systems_level_approved_share_change_yoy"] = Expected(
            value: shareNow - shareYearAgo, decimals: 0, printed: "+9",
            note: "69.19% now against 60.19% (1,872 of 3,110) on 2023-04-30")
        let q = P.incidentsByQuarter
        r["security.incidents_last_quarter"] = count(q[4], printed: "2,323")
        r["security.incidents_growth_yoy"] = Expected(value: Double(q[4] - q[0]) / Double(q[0]) * 100, decimals: 1,
                                                     printed: "-32.6", note: "2,323 against 3,447 in Q1 2023")
        return r

        func fiberShare() -> Double {
            let households = Gazetteer.provinces.map { Int((Double($0.population) * 1000 / 3.55).rounded()) }.reduce(0, +)
            let fiber = Int((Double(households) * P.fiberShare).rounded())
            return 100 * Double(fiber) / Double(households)
        }
    }
}

/// One expected figure of a snapshot.
public struct Expected: Sendable, Equatable, CustomStringConvertible {
    /// The exact value the stream produces.
    public let value: Double
    /// The denominator the snapshot's `of` must carry, if any.
    public let of: Double?
    /// The report's printed precision: compare after rounding to this many decimals.
    public let decimals: Int
    /// The breakdown the snapshot's `by` must carry (each compared at ``decimals``), if any.
    public let by: [String: Double]?
    /// The figure as the report prints it (may differ: see ``note``).
    public let printed: String
    public let note: String?

    public init(value: Double, of: Double? = nil, decimals: Int, by: [String: Double]? = nil, printed: String, note: String? = nil) {
        self.value = value
        self.of = of
        self.decimals = decimals
        self.by = by
        self.printed = printed
        self.note = note
    }

    /// `x` rounded half away from zero to ``decimals`` places.
    public func rounded(_ x: Double) -> Double {
        let f = April2024Plan.pow10(decimals)
        return (x * f).rounded() / f
    }

    /// Whether a live value equals the expected one at the printed precision.
    public func matches(_ live: Double?) -> Bool {
        guard let live else { return false }
        return rounded(live) == rounded(value)
    }

    public var description: String {
        let v = rounded(value)
        var s = decimals == 0 ? String(Int64(v)) : String(v)
        if let of { s += " of " + String(Int64(of)) }
        return s + " (report: " + printed + ")"
    }
}
