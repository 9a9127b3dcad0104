import Foundation
import ZeroMQ

// MARK: - Watcher (`tally watch`)

/// Subscribes to snapshots and shows them: a live table redrawn in place on a terminal, or one
/// JSON snapshot per line (`--json`, or when stdout is not a terminal).
///
/// Late joiners follow the ZeroMQ guide's Clone pattern: subscribe first, then ask the snapshot
/// service, then discard every published snapshot whose `seq` is not newer than the answer's.
public struct Watcher {
    public struct Options: Sendable {
        public var from: String
        public var service: String?
        public var json = false
        /// Stop after this many snapshots shown (tests, scripts); `nil` = until interrupted.
        public var count: Int?
        /// Stop after this long; `nil` = until interrupted.
        public var duration: Duration?
        public init(from: String) { self.from = from }
    }

    public let options: Options
    /// Expected values to show next to the live ones (the demo's `expectedReport`), by indicator id.
    public var expected: [String: Double] = [:]
    public var title = "Tally"
    /// Set by another thread to stop (Ctrl-C in the demo).
    public var shouldStop: @Sendable () -> Bool = { false }

    public init(options: Options) { self.options = options }

    /// Runs until `count`, `duration` or `shouldStop`. Blocking: call from a dedicated thread.
    /// - Returns: the snapshots shown.
    @discardableResult
    public func run() throws -> Int {
        let context = try Context()
        let sub = try Socket(context, .sub)
        try sub.set(.subscribe, Array("snapshot.".utf8))
        do { try sub.connect(options.from) } catch {
            throw CommandFailure(code: 2, "--from \(options.from) is not a usable endpoint (\(error)): write e.g. \(DefaultEndpoints.publish)")
        }
        let asJSON = options.json || isatty(STDOUT_FILENO) == 0
        var table = SnapshotTable()
        table.expected = expected
        table.title = title
        var lastSeq: Int64 = -1
        var shown = 0
        let deadline = options.duration.map { ContinuousClock.now + $0 }

        func show(_ bytes: [UInt8]) {
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else { return }
            let seq = (obj["seq"] as? NSNumber)?.int64Value ?? 0
            guard seq > lastSeq else { return }   // Clone: older than what we have
            lastSeq = seq
            shown += 1
            if asJSON {
                FileHandle.standardOutput.write(Data(bytes + [0x0A]))
            } else {
                FileHandle.standardOutput.write(Data(table.render(obj, source: options.from).utf8))
            }
        }

        // Clone pattern step 2: the current state from the snapshot service.
        if let service = options.service {
            let dealer = try Socket(context, .dealer)
            try dealer.connect(service)
            try dealer.sendMultipart([[], Array("snapshot".utf8)])
            var poller = Poller()
            poller.add(dealer, .pollIn)
            if try poller.poll(timeoutMilliseconds: 3000) > 0, let parts = try dealer.receiveMultipart(flags: .dontWait),
               let last = parts.last(where: { $0.count > 0 }) {
                show(last.bytes)
            }
            dealer.close()
        }

        var poller = Poller()
        poller.add(sub, .pollIn)
        let topic = Message()
        let body = Message()
        while !shouldStop() {
            if let c = options.count, shown >= c { break }
            if let deadline, ContinuousClock.now >= deadline { break }
            guard try poller.poll(timeoutMilliseconds: 100) > 0 else { continue }
            while try sub.receive(into: topic, flags: .dontWait) {
                guard topic.more, try sub.receive(into: body, flags: .dontWait) else { continue }
                while body.more { _ = try sub.receive(into: body, flags: .dontWait) }
                show(body.bytes)
            }
        }
        if !asJSON { FileHandle.standardOutput.write(Data("\n".utf8)) }
        return shown
    }
}

// MARK: - SnapshotTable

/// The terminal table: indicators grouped like the report, value with thousands separators and
/// unit, `of`, and the change since the previous snapshot; redrawn in place with ANSI codes.
public struct SnapshotTable {
    /// The report's sections, in its order, by id prefix.
    public static let groups: [(title: String, prefixes: [String])] = [
        ("National data exchange platform (NDXP)", ["ndxp."]),
        ("Institutions", ["policy."]),
        ("Infrastructure", ["infra."]),
        ("Online public services", ["dvc."]),
        ("Digital economy & society", ["economy.", "society."]),
        ("Cybersecurity", ["security."]),
    ]

    /// Short English titles of the catalog's indicators (indicators.md), which fit the table; other
    /// indicators show the title their pipeline gives them (snapshot `title`), else their id.
    public static let titles: [String: String] = [
        "ndxp.endpoints": "Connected endpoints", "ndxp.agencies": "Agencies connected",
        "ndxp.transactions_24h": "Transactions, last 24h", "ndxp.transactions_daily_avg_30d": "Transactions per day (30d avg)",
        "ndxp.success_rate_24h": "Success rate, last 24h",
        "policy.government_documents_ytd": "Government documents this year",
        "policy.provinces_with_fee_support": "Provinces with fee support",
        "policy.ministries_with_dx_plan": "Ministries with a DX plan", "policy.provinces_with_dx_plan": "Provinces with a DX plan",
        "infra.fiber_household_share": "Households with fiber", "infra.commune_fiber_share": "Communes with fiber",
        "dvc.procedures_online_share": "Procedures online", "dvc.procedures_full_share": "Procedures fully online",
        "dvc.online_dossier_share_ytd": "Dossiers filed online (ytd)", "dvc.portal_accounts": "National portal accounts",
        "dvc.portal_dossiers": "Dossiers via national portal", "dvc.online_payments": "Online payments",
        "dvc.online_payments_vnd": "Online payments, value", "dvc.essential_services_full": "Essential services fully online",
        "dvc.essential_services_full_change_ytd": "… change this year",
        "dvc.de_an_06_services_provided": "Project 06 services provided", "dvc.de_an_06_services_full": "Project 06 services fully online",
        "dvc.qd_422_services_provided": "Decision 422 services provided",
        "economy.it_revenue_usd_last_quarter": "IT revenue, last quarter", "economy.it_revenue_growth_yoy": "IT revenue growth (yoy)",
        "economy.it_export_usd_last_quarter": "IT exports, last quarter", "economy.it_export_growth_yoy": "IT export growth (yoy)",
        "society.mobile_money_customers": "Mobile-money customers", "society.mobile_money_rural_customers": "… in rural areas",
        "society.mobile_money_growth_multiple": "Mobile-money growth (× year ago)",
        "society.health_facilities_cashless_share": "Health facilities cashless", "society.adults_with_account_share": "Adults with an account",
        "society.welfare_beneficiaries_via_account": "Welfare paid to accounts",
        "security.information_systems": "Information systems", "security.systems_level_approved": "Systems with approved level",
        "security.systems_level_approved_share": "… share", "security.systems_level_approved_share_change_yoy": "… change (yoy)",
        "security.incidents_last_quarter": "Incidents, last quarter", "security.incidents_growth_yoy": "Incident growth (yoy)",
    ]

    public var title = "Tally"
    public var expected: [String: Double] = [:]
    private var previous: [String: Double] = [:]
    private var drawn = false

    public init() {}

    /// The ANSI text that redraws the whole table in place.
    public mutating func render(_ snapshot: [String: Any], source: String) -> String {
        let indicators = snapshot["indicators"] as? [String: Any] ?? [:]
        var lines: [String] = []
        let seq = (snapshot["seq"] as? NSNumber)?.int64Value ?? 0
        lines.append("\u{1B}[1m\(title)\u{1B}[0m  \(snapshot["pipeline"] as? String ?? "")  seq \(seq)  as of \(snapshot["as_of"] as? String ?? "—")  (\(source); Ctrl-C to stop)")
        let showExpected = !expected.isEmpty
        var header = pad("indicator", 40) + lpad("value", 26) + lpad("of", 8) + lpad("change", 14)
        if showExpected { header += lpad("expected", 20) }
        var seen = Set<String>()
        for group in Self.groups {
            let ids = indicators.keys.filter { id in group.prefixes.contains { id.hasPrefix($0) } }.sorted()
            guard !ids.isEmpty else { continue }
            lines.append("")
            lines.append("\u{1B}[1m\(group.title)\u{1B}[0m")
            lines.append("\u{1B}[2m" + header + "\u{1B}[0m")
            for id in ids {
                seen.insert(id)
                lines.append(row(id, indicators[id] as? [String: Any] ?? [:], showExpected))
            }
        }
        let others = indicators.keys.filter { !seen.contains($0) }.sorted()
        if !others.isEmpty {
            lines.append("")
            lines.append("\u{1B}[1mOther\u{1B}[0m")
            for id in others { lines.append(row(id, indicators[id] as? [String: Any] ?? [:], showExpected)) }
        }
        let prefix = drawn ? "\u{1B}[H" : "\u{1B}[H\u{1B}[2J"
        drawn = true
        return prefix + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\n") + "\n\u{1B}[J"
    }

    private mutating func row(_ id: String, _ entry: [String: Any], _ showExpected: Bool) -> String {
        let unit = entry["unit"] as? String ?? ""
        let value = (entry["value"] as? NSNumber)?.doubleValue
        let of = (entry["of"] as? NSNumber).map { Self.format($0.doubleValue) } ?? ""
        var change = ""
        if let value, let before = previous[id], value != before {
            let d = value - before
            change = (d > 0 ? "+" : "") + Self.format(d)
        }
        if let value { previous[id] = value }
        let shown = value.map { Self.format($0) + Self.unitSuffix(unit) } ?? "—"
        var line = pad(Self.titles[id] ?? (entry["title"] as? String) ?? id, 40) + lpad(shown, 26) + lpad(of, 8) + lpad(change, 14)
        if showExpected { line += lpad(expected[id].map { Self.format($0) + Self.unitSuffix(unit) } ?? "", 20) }
        return line
    }

    /// `12900000000000` → `12,900,000,000,000`; `80.4412` → `80.44`.
    public static func format(_ v: Double) -> String {
        guard v.isFinite else { return "—" }
        let negative = v < 0
        let a = abs(v)
        let whole = a.rounded(.towardZero)
        var frac = a - whole
        var digits = String(Int64(whole))
        var grouped = ""
        while digits.count > 3 {
            grouped = "," + digits.suffix(3) + grouped
            digits = String(digits.dropLast(3))
        }
        grouped = digits + grouped
        var text = grouped
        if frac > 0.0049 {
            frac = (frac * 100).rounded() / 100
            if frac >= 1 { return format(negative ? -(whole + 1) : whole + 1) }
            var f = String(Int((frac * 100).rounded()))
            if f.count < 2 { f = "0" + f }
            if f.hasSuffix("0") { f.removeLast() }
            text += "." + f
        }
        return (negative ? "-" : "") + text
    }

    static func unitSuffix(_ unit: String) -> String {
        switch unit {
        case "count", "": ""
        case "%": "%"
        case "percentage points": " pp"
        case "×", "x": "×"
        default: " " + unit
        }
    }

    private func pad(_ s: String, _ w: Int) -> String { s.count >= w ? String(s.prefix(w - 1)) + " " : s + String(repeating: " ", count: w - s.count) }
    private func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? " " + s : String(repeating: " ", count: w - s.count) + s }
}
