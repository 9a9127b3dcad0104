// MARK: - The April 2024 plan: every figure the stream is built to reproduce

/// The numbers behind the `april-2024` profile at one scale: the report's figures, the
/// scaled ones, and the split of each long-running total into an opening balance and the
/// events that are actually generated.
///
/// Why a separate value: the generator and ``SimulationProfile/expectedReport(scale:seed:)``
/// both read it, so "what the stream contains" and "what the snapshot must show" cannot
/// drift apart. Everything here is exact integer arithmetic except the report's shares,
/// which are reproduced by choosing integer counts that round to the printed value.
struct April2024Plan: Sendable {
    // MARK: Calendar anchors (+07:00)

    static let historyStartDay = SimTime.day(2023, 1, 1)
    static let endDay = SimTime.day(2024, 4, 30)
    /// `2024-04-30T23:59:59+07:00`: the instant of the report column and of the last event.
    static let endTime = SimTime.micros(2024, 4, 30, 23, 59, 59)
    /// `2023-04-30T23:59:59+07:00`: the year-ago instant.
    static let yearAgoTime = SimTime.micros(2023, 4, 30, 23, 59, 59)
    /// Opening balances of totals whose year-ago value matters hold at the end of 2022.
    static let balanceTime2022 = SimTime.micros(2022, 12, 31, 23, 59, 59)
    /// Opening balances of the other long-running totals hold at the end of 2023; only
    /// 2024 is replayed for them.
    static let balanceTime2023 = SimTime.micros(2023, 12, 31, 23, 59, 59)
    /// NDXP traffic starts a few days before the 30-day window so its boundary is exercised.
    static let trafficStartDay = SimTime.day(2024, 3, 27)
    static let windowStartDay = SimTime.day(2024, 4, 1)

    // MARK: Report figures (scale 1), as printed

    static let reportTransactionsPerDay = 2_800_000.0
    static let reportPortalAccounts = 14_600_000.0
    static let reportPortalDossiers = 46_200_000.0
    static let reportPayments = 26_800_000.0
    static let reportPaymentsVND = 12_900_000_000_000.0
    static let reportITRevenueUSD = 36_300_000_000.0
    static let reportITExportUSD = 31_000_000_000.0
    static let reportMobileMoney = 8_200_000.0
    static let reportMobileMoneyRural = 5_800_000.0
    /// The report says "trên 1 triệu" (over one million); the profile uses 1,013,000.
    static let reportWelfare = 1_013_000.0

    static let liveEndpoints = 388
    static let retiredOnlyEndpoints = 20
    static let liveAgencies = 95
    static let governmentDocs2024 = (decree: 2, decision: 5, directive: 2)
    static let provincesWithFeeSupport = 56
    static let ministriesWithPlan = 21
    static let provincesWithPlan = 62
    static let fiberShare = 0.802
    /// 6,401 procedures: 5,149 online (80.44%), 3,059 fully online (47.79%).
    static let procedures = 6_401
    static let proceduresOnline = 5_149
    static let proceduresFull = 3_059
    static let essential = 53, essentialFull = 41, essentialFullStartOfYear = 36
    static let deAn06 = 25, deAn06Full = 23
    static let qd422 = 28, qd422Provided = 16, qd422Full = 9
    static let onlineDossierShare = 0.383
    static let systems = 3_418, systemsApproved = 2_365
    /// Year-ago state: 1,872 of 3,110 approved = 60.19%, so the change is +9.00 pp against
    /// the computed 69.19% (the report's own 68.2% is inconsistent with 2,365/3,418).
    static let systemsYearAgo = 3_110, systemsApprovedYearAgo = 1_872
    static let systemsCensus = 2_950, systemsRevoked = 12
    static let incidentsByQuarter = [3_447, 3_102, 2_788, 2_541, 2_323]  // Q1 2023 ... Q1 2024
    static let incidentsApril2024 = 812
    static let itGrowth = 0.177, itExportGrowth = 0.17, mobileMoneyMultiple = 2.2
    static let adultSurveys: [(y: Int, m: Int, d: Int, adults: Int64, withAccount: Int64)] = [
        (2023, 3, 15, 72_900_000, 51_030_000), (2023, 9, 15, 73_100_000, 54_094_000),
        (2024, 4, 15, 73_218_000, 56_415_000),
    ]
    static let itEnterprises = 150

    // MARK: Scaled figures

    let scale: Double
    let seed: UInt64

    let transactionsPerDay: Int
    /// Per-day transaction counts from ``trafficStartDay`` to ``endDay``; the 30 April days
    /// sum to exactly `30 × transactionsPerDay`.
    let transactionDayCounts: [Int]

    let portalAccounts: Int, accounts2024: Int
    let portalDossiers: Int
    /// Per province: 2024 dossiers, of which online, of which via the national portal.
    let dossiers: [(total: Int, online: Int, viaPortal: Int)]
    let payments: Int, payments2024: Int
    let paymentsVND: Int64, payments2024VND: Int64

    let itRevenue: [Int64]  // Q1 2023 ... Q1 2024
    let itExport: [Int64]

    let mobileMoney: Int, mobileMoneyRural: Int, mobileMoneyYearAgo: Int
    let mobileMoneyBalance: Int, mobileMoneyRuralBalance: Int
    /// Activations Jan–Apr 2023 (phase 0) and May 2023–Apr 2024 (phase 1), and rural among them.
    let mobileMoneyPhase: [(total: Int, rural: Int)]

    let welfare: Int, welfareNew2024: Int, welfareCash: Int
    let welfareViaAccountByMonth: [Int]

    let communes: Int, facilities: Int

    /// `max(1, round(x × S))`: how every scaled figure is counted.
    static func scaled(_ x: Double, _ s: Double) -> Int { max(1, Int((x * s).rounded())) }

    init(scale s: Double, seed: UInt64) {
        scale = s
        self.seed = seed
        let sc = { (x: Double) in Self.scaled(x, s) }

        // NDXP traffic.
        transactionsPerDay = sc(Self.reportTransactionsPerDay)
        var counts: [Int] = []
        let windowDays = Array(Self.windowStartDay...Self.endDay)
        let windowCounts = Allocation.largestRemainder(
            30 * transactionsPerDay, weights: windowDays.map { Rhythm.machine.dayWeight($0) })
        let meanWeight = windowDays.map { Rhythm.machine.dayWeight($0) }.reduce(0, +) / 30
        for d in Self.trafficStartDay..<Self.windowStartDay {
            counts.append(max(1, Int((Double(transactionsPerDay) * Rhythm.machine.dayWeight(d) / meanWeight).rounded())))
        }
        transactionDayCounts = counts + windowCounts

        // Portal accounts, dossiers, payments.
        portalAccounts = sc(Self.reportPortalAccounts)
        accounts2024 = Int((Double(portalAccounts) * 0.10).rounded())
        portalDossiers = sc(Self.reportPortalDossiers)
        let totalPop = Double(Gazetteer.provinces.reduce(0) { $0 + $1.population })
        dossiers = Gazetteer.provinces.map { p in
            let target = 26_000_000 * s * Double(p.population) / totalPop
            let (n, k) = Self.snapShare(atLeast: max(47, Int(target.rounded())), share: Self.onlineDossierShare, decimals: 1)
            return (n, k, Int((Double(k) * 0.45).rounded()))
        }
        payments = sc(Self.reportPayments)
        payments2024 = Int((Double(payments) * 0.194).rounded())
        paymentsVND = Int64(sc(Self.reportPaymentsVND))
        var vnd: Int64 = 0
        for j in 0..<payments2024 { vnd += Self.paymentAmount(seed: seed, j) }
        payments2024VND = vnd

        // IT industry: Q1 2024 as printed, Q1 2023 from the growth, the quarters between.
        let r1 = Int64(sc(Self.reportITRevenueUSD)), x1 = Int64(sc(Self.reportITExportUSD))
        let r0 = Self.yearAgo(of: r1, growth: Self.itGrowth, decimals: 1)
        let x0 = Self.yearAgo(of: x1, growth: Self.itExportGrowth, decimals: 0)
        let steps = [1.0, 1.04, 1.09, 1.13]
        itRevenue = steps.map { Int64((Double(r0) * $0).rounded()) } + [r1]
        itExport = steps.map { Int64((Double(x0) * $0).rounded()) } + [x1]

        // Mobile Money: a balance at the end of 2022, activations since.
        mobileMoney = sc(Self.reportMobileMoney)
        mobileMoneyRural = sc(Self.reportMobileMoneyRural)
        mobileMoneyYearAgo = Int((Double(mobileMoney) / Self.mobileMoneyMultiple).rounded())
        mobileMoneyBalance = Int((Double(mobileMoneyYearAgo) * 0.6).rounded())
        let ruralRatio = Double(mobileMoneyRural) / Double(mobileMoney)
        mobileMoneyRuralBalance = Int((Double(mobileMoneyBalance) * ruralRatio).rounded())
        let a = mobileMoneyYearAgo - mobileMoneyBalance, b = mobileMoney - mobileMoneyYearAgo
        let ra = min(a, Int((Double(a) * ruralRatio).rounded()))
        let rb = max(0, min(b, mobileMoneyRural - mobileMoneyRuralBalance - ra))
        mobileMoneyPhase = [(a, ra), (b, rb)]

        // Welfare: beneficiaries paid via an account before 2024 are a balance.
        welfare = sc(Self.reportWelfare)
        welfareNew2024 = Int((Double(welfare) * 0.18).rounded())
        welfareCash = Int((Double(welfare) * 0.12).rounded())
        let newVia = welfareNew2024
        welfareViaAccountByMonth = [0.6, 0.75, 0.9, 1.0].map { Int((Double(newVia) * $0).rounded()) }

        // Reporting populations the report does not print: scaled, with a floor.
        communes = max(630, Int((10_598 * s).rounded()))
        facilities = max(120, Int((1_650 * s).rounded()))
    }

    // MARK: Derived helpers

    /// The amount of the `j`-th 2024 payment: 5,000 VND to about 2 million, most small.
    static func paymentAmount(seed: UInt64, _ j: Int) -> Int64 {
        let u = SimHash.unit(SimHash.hash(seed, 0x9A1, UInt64(j)))
        return Int64(5 + Int(2_000 * u * u * u * u)) * 1000
    }

    /// The smallest `n ≥ atLeast` with a `k` such that `100·k/n` rounds to `share·100` at
    /// `decimals`, and that `k`.
    static func snapShare(atLeast: Int, share: Double, decimals: Int) -> (Int, Int) {
        let target = (share * 100 * pow10(decimals)).rounded()
        var n = max(1, atLeast)
        while true {
            let k0 = Int((Double(n) * share).rounded())
            for k in [k0, k0 - 1, k0 + 1] where k >= 0 && k <= n {
                if (100 * Double(k) / Double(n) * pow10(decimals)).rounded() == target { return (n, k) }
            }
            n += 1
        }
    }

    /// A year-ago value whose growth to `now` rounds to `growth` at `decimals`.
    static func yearAgo(of now: Int64, growth: Double, decimals: Int) -> Int64 {
        let target = (growth * 100 * pow10(decimals)).rounded()
        let guess = Int64((Double(now) / (1 + growth)).rounded())
        for delta in [0, -1, 1, -2, 2, -3, 3] as [Int64] {
            let y = guess + delta
            if y > 0, (Double(now - y) / Double(y) * 100 * pow10(decimals)).rounded() == target { return y }
        }
        return guess
    }

    static func pow10(_ d: Int) -> Double {
        var x = 1.0
        for _ in 0..<max(0, d) { x *= 10 }
        return x
    }

    /// The quarter days (first, last) of index q: 0 = Q1 2023 ... 4 = Q1 2024, 5 = April 2024.
    static func quarterDays(_ q: Int) -> ClosedRange<Int> {
        switch q {
        case 0: return SimTime.day(2023, 1, 1)...SimTime.day(2023, 3, 31)
        case 1: return SimTime.day(2023, 4, 1)...SimTime.day(2023, 6, 30)
        case 2: return SimTime.day(2023, 7, 1)...SimTime.day(2023, 9, 30)
        case 3: return SimTime.day(2023, 10, 1)...SimTime.day(2023, 12, 31)
        case 4: return SimTime.day(2024, 1, 1)...SimTime.day(2024, 3, 31)
        default: return SimTime.day(2024, 4, 1)...SimTime.day(2024, 4, 30)
        }
    }
}

// MARK: - Daily and weekly rhythm

/// How event volume is spread over the week and the day.
enum Rhythm: Sendable {
    /// NDXP machine-to-machine traffic: office hours dominate but the night never stops.
    case machine
    /// Citizens and officials: office hours, quiet weekends and holidays.
    case office
    /// Consumers (payments, Mobile Money): an evening peak, busy weekends.
    case consumer
    /// Attacks and incidents: no rhythm to speak of.
    case flat

    func dayWeight(_ day: Int) -> Double {
        let wd = SimTime.weekday(day)
        let holiday = SimTime.holidays.contains(day)
        switch self {
        case .machine: return holiday ? 0.55 : wd == 6 ? 0.6 : wd == 5 ? 0.75 : 1.0
        case .office: return holiday ? 0.15 : wd == 6 ? 0.2 : wd == 5 ? 0.45 : 1.0
        case .consumer: return holiday ? 0.7 : wd >= 5 ? 0.9 : 1.0
        case .flat: return 1.0
        }
    }

    var hourWeights: [Double] {
        switch self {
        case .machine:
            return [2, 1.5, 1.2, 1.2, 1.5, 2.5, 4, 7, 10, 11, 11, 10, 7, 8, 10, 11, 10, 8, 6, 5, 4, 3.5, 3, 2.5]
        case .office:
            return [0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 1, 3, 8, 10, 10, 9, 4, 5, 9, 10, 9, 6, 3, 2, 1.5, 1, 0.6, 0.3]
        case .consumer:
            return [1, 0.5, 0.3, 0.2, 0.3, 1, 2, 4, 6, 7, 7, 6, 5, 5, 6, 6, 6, 6, 7, 8, 8, 7, 4, 2]
        case .flat:
            return [Double](repeating: 1, count: 24)
        }
    }
}
