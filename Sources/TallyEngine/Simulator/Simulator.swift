// MARK: - The simulator: a deterministic national event stream

/// Why a simulator could not start.
public enum SimulatorError: Error, Equatable, CustomStringConvertible {
    /// The scale is outside the range where the profile still reproduces every printed
    /// figure (below it, scaled counts get too small for the growth and multiple figures).
    case scaleOutOfRange(Double, allowed: ClosedRange<Double>)

    public var description: String {
        switch self {
        case .scaleOutOfRange(let s, let allowed):
            return "scale \(s) is outside \(allowed.lowerBound)...\(allowed.upperBound); pass --scale between them (1 = the real national volume, 0.001 = one thousandth)"
        }
    }
}

/// A deterministic generator of the national event mix of a ``SimulationProfile``: one
/// CloudEvents JSON object (or batch) at a time, in event-time order, ending exactly at
/// the profile's ``endTime``.
///
/// The stream starts with the `tally.balance` control events (opening balances of the
/// long-running totals), then every event from 2023-01-01 to `2024-04-30T23:59:59+07:00`
/// in time order. Replayed into the engine with `Pipelines/national-dx.yaml`, its snapshot
/// reproduces ``SimulationProfile/expectedReport(scale:seed:)``.
///
/// It has no clock and no socket: pacing and transport belong to the caller
/// (`tally simulate`, `tally demo`). The same `(profile, scale, seed)` always yields the
/// same bytes.
/// - Complexity: O(log s) per event (s ≈ 80 sources merged) plus the JSON formatting.
///   Memory is flat: the registries (≈ 32,000 items at scale 1) and one hour of the
///   busiest flow (≈ 2 MB at scale 1); never proportional to the number of events.
public struct Simulator: IteratorProtocol, Sequence, Sendable {
    public let profile: SimulationProfile
    public let scale: Double
    public let seed: UInt64
    /// Events in the whole stream, balances included: known up front for progress and ETA.
    public let totalEvents: Int
    /// Events produced so far.
    public private(set) var emitted = 0
    /// The time of the last event: `2024-04-30T23:59:59+07:00` for `april-2024`.
    public var endTime: Micros { April2024Plan.endTime }

    private let world: World
    private let balances: [(indicator: String, value: Int64, time: Micros)]
    private var listPos = 0
    private var flows: [FlowSource]
    private var heap = SourceHeap()
    private var writer = EventWriter()

    public static let defaultSeed: UInt64 = 20_240_430

    /// - Throws: ``SimulatorError/scaleOutOfRange(_:allowed:)`` outside ``SimulationProfile/scaleRange``.
    /// - Complexity: O(registries + days), plus one pass over the 2024 payment amounts
    ///   (≈ 5 million hashes at scale 1) to know their VND total before the first event.
    public init(profile: SimulationProfile, scale: Double, seed: UInt64 = Simulator.defaultSeed) throws(SimulatorError) {
        guard SimulationProfile.scaleRange.contains(scale) else {
            throw .scaleOutOfRange(scale, allowed: SimulationProfile.scaleRange)
        }
        self.profile = profile
        self.scale = scale
        self.seed = seed
        let plan = April2024Plan(scale: scale, seed: seed)
        world = World(plan: plan)
        balances = Self.openingBalances(plan)

        var flows: [FlowSource] = []
        let y2024 = SimTime.day(2024, 1, 1)...April2024Plan.endDay
        flows.append(FlowSource(kind: .transactions, stream: 1, seed: seed, firstDay: April2024Plan.trafficStartDay,
                                dayCounts: plan.transactionDayCounts, rhythm: .machine, pinLast: true))
        flows.append(FlowSource(kind: .accounts, stream: 2, seed: seed, days: y2024, total: plan.accounts2024, rhythm: .consumer))
        flows.append(FlowSource(kind: .payments, stream: 3, seed: seed, days: y2024, total: plan.payments2024, rhythm: .consumer))
        for (p, d) in plan.dossiers.enumerated() {
            flows.append(FlowSource(kind: .dossiers(province: p, online: d.online, viaPortal: d.viaPortal),
                                    stream: 100 + UInt64(p), seed: seed, days: y2024, total: d.total, rhythm: .office))
        }
        let mmDays = [SimTime.day(2023, 1, 1)...SimTime.day(2023, 4, 30), SimTime.day(2023, 5, 1)...April2024Plan.endDay]
        for (phase, m) in plan.mobileMoneyPhase.enumerated() {
            flows.append(FlowSource(kind: .mobileMoney(phase: phase, rural: m.rural), stream: 200 + UInt64(phase), seed: seed,
                                    days: mmDays[phase], total: m.total, rhythm: .consumer))
        }
        let perMonth = plan.welfareNew2024 + plan.welfareCash
        for (m, via) in plan.welfareViaAccountByMonth.enumerated() {
            let (a, b) = Allocation.affine(seed: seed ^ (0x3E1F + UInt64(m)), n: perMonth)
            flows.append(FlowSource(kind: .welfare(month: m + 1, viaAccount: via, permA: a, permB: b), stream: 300 + UInt64(m),
                                    seed: seed, days: SimTime.day(2024, m + 1, 5)...SimTime.day(2024, m + 1, 15),
                                    total: perMonth, rhythm: .office))
        }
        for q in 0..<6 {
            let n = q < 5 ? April2024Plan.incidentsByQuarter[q] : April2024Plan.incidentsApril2024
            flows.append(FlowSource(kind: .incidents(quarter: q), stream: 400 + UInt64(q), seed: seed,
                                    days: April2024Plan.quarterDays(q), total: n, rhythm: .flat))
        }
        self.flows = flows
        totalEvents = balances.count + world.items.count + flows.reduce(0) { $0 + $1.total }
        if let first = world.items.first { heap.push((first.time, 0)) }
        for (i, f) in flows.enumerated() { if let t = f.nextTime { heap.push((t, i + 1)) } }
    }

    /// What the snapshot must show after this stream: ``SimulationProfile/expectedReport(scale:seed:)``
    /// for this simulator's profile, scale and seed (for "expected vs live" displays).
    public func expectedReport() -> [String: Expected] { profile.expectedReport(scale: scale, seed: seed) }

    /// The opening balances: total minus what the stream replays, at the instant they hold.
    static func openingBalances(_ plan: April2024Plan) -> [(indicator: String, value: Int64, time: Micros)] {
        let dossiers2024 = plan.dossiers.reduce(0) { $0 + $1.viaPortal }
        return [
            ("dvc.portal_accounts", Int64(plan.portalAccounts - plan.accounts2024), April2024Plan.balanceTime2023),
            ("dvc.portal_dossiers", Int64(plan.portalDossiers - dossiers2024), April2024Plan.balanceTime2023),
            ("dvc.online_payments", Int64(plan.payments - plan.payments2024), April2024Plan.balanceTime2023),
            ("dvc.online_payments_vnd", plan.paymentsVND - plan.payments2024VND, April2024Plan.balanceTime2023),
            ("society.mobile_money_customers", Int64(plan.mobileMoneyBalance), April2024Plan.balanceTime2022),
            ("society.mobile_money_rural_customers", Int64(plan.mobileMoneyRuralBalance), April2024Plan.balanceTime2022),
            ("society.welfare_beneficiaries_via_account", Int64(plan.welfare - plan.welfareNew2024), April2024Plan.balanceTime2023),
        ]
    }

    // MARK: Producing events

    /// The next event as one CloudEvents JSON object, or nil at the end of the stream.
    public mutating func next() -> [UInt8]? {
        writer.reset()
        guard writeNext() else { return nil }
        return writer.bytes
    }

    /// Up to `max` next events as one CloudEvents JSON batch (an array), or nil at the end.
    /// - Complexity: O(max) events.
    public mutating func nextBatch(max: Int) -> [UInt8]? {
        precondition(max > 0, "a batch holds at least one event")
        var batch: [UInt8] = [UInt8(ascii: "[")]
        var n = 0
        while n < max {
            writer.reset()
            guard writeNext() else { break }
            if n > 0 { batch.append(UInt8(ascii: ",")) }
            batch.append(contentsOf: writer.bytes)
            n += 1
        }
        guard n > 0 else { return nil }
        batch.append(UInt8(ascii: "]"))
        return batch
    }

    /// Writes the next event into `writer`; false at the end.
    private mutating func writeNext() -> Bool {
        if emitted < balances.count {
            let b = balances[emitted]
            writer.begin(type: "tally.balance", source: { EventWriter.appendASCII("/tally/opening-balances", to: &$0) },
                         id: { EventWriter.appendASCII("balance-", to: &$0); EventWriter.appendEscaped(b.indicator, to: &$0) },
                         time: b.time)
            writer.field("indicator", b.indicator)
            writer.field("value", b.value)
            writer.end()
            emitted += 1
            return true
        }
        guard let top = heap.top else { return false }
        if top.source == 0 {
            writeListItem(world.items[listPos], index: listPos)
            listPos += 1
            heap.replaceTop(with: listPos < world.items.count ? (world.items[listPos].time, 0) : nil)
        } else {
            let i = top.source - 1
            writeFlowEvent(flows[i], time: top.time)
            flows[i].advance()
            heap.replaceTop(with: flows[i].nextTime.map { ($0, top.source) })
        }
        emitted += 1
        return true
    }

    // MARK: Event bodies

    private mutating func writeListItem(_ item: ListItem, index: Int) {
        let w = world
        func id(_ prefix: StaticString) -> (inout [UInt8]) -> Void {
            { EventWriter.appendASCII(prefix, to: &$0); EventWriter.appendInt(Int64(index), to: &$0) }
        }
        func src(_ s: StaticString) -> (inout [UInt8]) -> Void { { EventWriter.appendASCII(s, to: &$0) } }
        func src(_ prefix: StaticString, _ rest: String) -> (inout [UInt8]) -> Void {
            { EventWriter.appendASCII(prefix, to: &$0); EventWriter.appendEscaped(rest, to: &$0) }
        }
        switch item.body {
        case .endpointRegistered(let e):
            writer.begin(type: "ndxp.endpoint.registered", source: src("/ndxp/registry"), id: id("ep-reg-"), time: item.time)
            writer.field("endpoint", w.endpoints[e].id)
            writer.field("agency", Gazetteer.agencies[w.endpoints[e].agency])
        case .endpointRetired(let e):
            writer.begin(type: "ndxp.endpoint.retired", source: src("/ndxp/registry"), id: id("ep-ret-"), time: item.time)
            writer.field("endpoint", w.endpoints[e].id)
        case .document(let d):
            let doc = w.documents[d]
            let source: (inout [UInt8]) -> Void = switch doc.level {
            case .government: src("/gov/vbpl")
            case .ministry: src("/ministry/", doc.issuer)
            case .province: src("/province/", doc.issuer)
            }
            writer.begin(type: "policy.document.issued", source: source, id: id("doc-"), time: item.time)
            writer.field("document", doc.number)
            writer.field("kind", doc.kind.rawValue)
            writer.field("issuer", doc.issuer)
            writer.field("issuer_level", doc.level.rawValue)
            if let y = doc.planYear { writer.field("plan_year", y) }
        case .procedure(let p, let level):
            let proc = w.procedures[p]
            writer.begin(type: "dvc.procedure.listed", source: src("/dvc/csdl-tthc"), id: id("tthc-"), time: item.time)
            writer.field("procedure", proc.id)
            writer.field("authority", proc.authority)
            writer.field("level", static: level == .full ? "full" : level == .partial ? "partial" : "none")
            writer.field("essential", proc.essential)
            writer.field("programs", strings: proc.programs)
        case .fiber(let p, let households, let fiber):
            writer.begin(type: "infra.fiber.reported", source: src("/province/", Gazetteer.provinces[p].slug + "/stttt"),
                         id: id("fiber-"), time: item.time)
            writer.field("province", Gazetteer.provinces[p].slug)
            writer.field("households", households)
            writer.field("fiber_households", fiber)
        case .commune(let c, let fiber):
            writer.begin(type: "infra.commune.reported", source: src("/province/", Gazetteer.provinces[w.communes[c].province].slug),
                         id: id("commune-"), time: item.time)
            writer.field("commune", w.communes[c].id)
            writer.field("fiber", fiber)
        case .itReport(let e, let revenue, let export):
            writer.begin(type: "economy.it.reported", source: src("/mic/it-statistics"), id: id("it-"), time: item.time)
            writer.field("enterprise", w.enterprises[e])
            writer.field("revenue_usd", revenue)
            writer.field("export_usd", export)
        case .facility(let f, let cashless):
            writer.begin(type: "health.facility.reported", source: src("/moh/facilities"), id: id("csyt-"), time: item.time)
            writer.field("facility", w.facilities[f])
            writer.field("cashless", cashless)
        case .adults(let adults, let withAccount):
            writer.begin(type: "finance.adult_accounts.reported", source: src("/sbv/financial-inclusion"), id: id("survey-"), time: item.time)
            writer.field("adults", adults)
            writer.field("adults_with_account", withAccount)
        case .system(let s, let approved):
            writer.begin(type: "security.system.classified", source: src("/mic/ais/registry"), id: id("httt-"), time: item.time)
            writer.field("system", w.systems[s].id)
            writer.field("owner", w.systems[s].owner)
            writer.field("level_approved", approved)
        }
        writer.end()
    }

    private mutating func writeFlowEvent(_ f: FlowSource, time: Micros) {
        let j = f.seq
        let w = world
        let h = SimHash.hash(seed, f.stream &+ 0xBEEF, UInt64(j))
        switch f.kind {
        case .transactions:
            let endpoint = w.trafficEndpoints[Int(Double(w.trafficEndpoints.count) * SimMath.pow(SimHash.unit(h), 1.8))]
            let provider = w.endpoints[endpoint].agency
            var consumer = SimHash.below(SimHash.mix(h), April2024Plan.liveAgencies)
            if consumer == provider { consumer = (consumer + 1) % April2024Plan.liveAgencies }
            writer.begin(type: "ndxp.transaction", source: { EventWriter.appendASCII("/ndxp/gateway", to: &$0) },
                         id: { EventWriter.appendASCII("tx-", to: &$0); EventWriter.appendInt(Int64(j), to: &$0) }, time: time)
            writer.field("endpoint", w.endpoints[endpoint].id)
            writer.field("consumer", Gazetteer.agencies[consumer])
            writer.field("provider", Gazetteer.agencies[provider])
            writer.field("status", static: Self.transactionFailed(seed: seed, j) ? "error" : "ok")
        case .accounts:
            writer.begin(type: "dvc.account.registered", source: { EventWriter.appendASCII("/dvc/portal", to: &$0) },
                         id: { EventWriter.appendASCII("acc-", to: &$0); EventWriter.appendInt(Int64(j), to: &$0) }, time: time)
            writer.field("account", parts: { EventWriter.appendASCII("vneid-2024-", to: &$0); EventWriter.appendPadded(j, width: 8, to: &$0) })
        case .dossiers(let p, let online, let via):
            let isOnline = Allocation.chosen(j, online, f.total)
            let isVia = isOnline && Allocation.chosen(Allocation.chosenBefore(j, online, f.total), via, online)
            let province = Gazetteer.provinces[p]
            let procedure = isOnline ? w.onlineProcedures[SimHash.below(h, w.onlineProcedures.count)]
                : SimHash.below(h, w.procedures.count)
            let (_, month, day) = SimTime.civil(f.currentDay)
            let number: (inout [UInt8]) -> Void = {
                EventWriter.appendEscaped(province.code, to: &$0)
                EventWriter.appendASCII("-24", to: &$0)
                EventWriter.appendPadded(month, width: 2, to: &$0)
                EventWriter.appendPadded(day, width: 2, to: &$0)
                EventWriter.appendASCII("-", to: &$0)
                EventWriter.appendPadded(j, width: 7, to: &$0)
            }
            writer.begin(type: "dvc.dossier.submitted",
                         source: isVia ? { EventWriter.appendASCII("/dvc/portal", to: &$0) }
                             : { EventWriter.appendASCII("/province/", to: &$0); EventWriter.appendEscaped(province.slug, to: &$0); EventWriter.appendASCII("/dvc", to: &$0) },
                         id: { EventWriter.appendASCII("hs-", to: &$0); number(&$0) }, time: time)
            writer.field("dossier", parts: number)
            writer.field("procedure", w.procedures[procedure].id)
            writer.field("channel", static: isOnline ? "online" : "offline")
            writer.field("via_national_portal", isVia)
            writer.field("province", province.slug)
        case .payments:
            writer.begin(type: "dvc.payment.completed", source: { EventWriter.appendASCII("/dvc/payment-platform", to: &$0) },
                         id: { EventWriter.appendASCII("pay-", to: &$0); EventWriter.appendInt(Int64(j), to: &$0) }, time: time)
            writer.field("payment", parts: { EventWriter.appendASCII("TT2024", to: &$0); EventWriter.appendPadded(j, width: 9, to: &$0) })
            writer.field("amount_vnd", April2024Plan.paymentAmount(seed: seed, j))
        case .mobileMoney(let phase, let rural):
            let operatorPick = SimHash.unit(h)
            let source: StaticString = operatorPick < 0.6 ? "/mno/viettel" : operatorPick < 0.85 ? "/mno/vnpt" : "/mno/mobifone"
            writer.begin(type: "mobilemoney.customer.activated", source: { EventWriter.appendASCII(source, to: &$0) },
                         id: { EventWriter.appendASCII("mm-", to: &$0); EventWriter.appendInt(Int64(phase), to: &$0)
                             EventWriter.appendASCII("-", to: &$0); EventWriter.appendInt(Int64(j), to: &$0) }, time: time)
            writer.field("customer", parts: { EventWriter.appendASCII("mm-kh-", to: &$0); EventWriter.appendInt(Int64(phase), to: &$0)
                EventWriter.appendPadded(j, width: 8, to: &$0) })
            writer.field("area", static: Allocation.chosen(j, rural, f.total) ? "rural" : "urban")
        case .welfare(let month, let viaAccount, let a, let b):
            let beneficiary = (a * j + b) % f.total
            writer.begin(type: "welfare.payment.disbursed", source: { EventWriter.appendASCII("/molisa/welfare", to: &$0) },
                         id: { EventWriter.appendASCII("wf-", to: &$0); EventWriter.appendInt(Int64(month), to: &$0)
                             EventWriter.appendASCII("-", to: &$0); EventWriter.appendInt(Int64(j), to: &$0) }, time: time)
            writer.field("beneficiary", parts: { EventWriter.appendASCII("bt-2024-", to: &$0); EventWriter.appendPadded(beneficiary, width: 8, to: &$0) })
            writer.field("via_account", beneficiary < viaAccount)
            writer.field("amount_vnd", Int64(360 + SimHash.below(h, 4) * 180) * 1000)
        case .incidents(let q):
            writer.begin(type: "security.incident", source: { EventWriter.appendASCII("/mic/ncsc", to: &$0) },
                         id: { EventWriter.appendASCII("sc-", to: &$0); EventWriter.appendInt(Int64(q), to: &$0)
                             EventWriter.appendASCII("-", to: &$0); EventWriter.appendInt(Int64(j), to: &$0) }, time: time)
            writer.field("incident", parts: { EventWriter.appendASCII("SC-", to: &$0); EventWriter.appendInt(Int64(q), to: &$0)
                EventWriter.appendPadded(j, width: 5, to: &$0) })
            writer.field("system", w.systems[SimHash.below(h, April2024Plan.systemsCensus)].id)
        }
        writer.end()
    }

    /// Whether transaction `j` of the NDXP flow failed (about 0.6%).
    static func transactionFailed(seed: UInt64, _ j: Int) -> Bool {
        SimHash.below(SimHash.hash(seed, 0x7E55, UInt64(j)), 1000) < 6
    }
}
