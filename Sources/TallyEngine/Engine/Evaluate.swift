// MARK: - Evaluation

/// An indicator's value at one instant, before rounding.
struct Evaluation {
    var value: Double?
    var of: Double?
    var by: [(key: String, value: Double?)]?
    var integral: Bool
    var ofIntegral: Bool
}

extension Engine {
    /// The instant the engine's history is complete from.
    var historyStart: Micros? { options.historyStart ?? earliest }

    /// The first instant of an aggregate's window evaluated at `t`.
    func windowStart(_ a: AggregateDefinition, at t: Micros) -> Micros {
        switch a.window {
        case .cumulative: t
        case .toDate(let u): calendar.periodStart(u, calendar.period(u, t))
        case .last(let u): calendar.periodStart(u, calendar.period(u, t) - 1)
        case .trailing(let d): t - d + 1
        }
    }

    static func shape(_ a: AggregateDefinition, _ ch: [Double?]) -> Double? {
        switch a.shape {
        case .plain: return ch[0]
        case .share:
            guard let den = ch[0], den != 0, let num = ch[1] else { return nil }
            return num / den * 100
        case .over:
            guard let num = ch[0], let den = ch[1], den != 0 else { return nil }
            return num / den * 100
        }
    }

    /// Evaluates indicator `i` as of `t`. `primary` is false for past instants (year-ago,
    /// start of year), which are null when the history or the horizon does not reach them.
    func evaluate(_ i: Int, at t: Micros, primary: Bool, memo: inout [Int: [Micros: Evaluation]]) -> Evaluation {
        if let e = memo[i]?[t] { return e }
        let ind = pipeline.indicators[i]
        var result: Evaluation
        switch ind.kind {
        case .derived(let op, let r):
            result = evaluateDerived(op, r, at: t, primary: primary, memo: &memo)
        case .aggregate(let a):
            result = evaluateAggregate(i, a, at: t, primary: primary, memo: &memo)
        }
        if let d = ind.divideBy {
            result.value = result.value.map { $0 / d }
            result.by = result.by?.map { ($0.key, $0.value.map { $0 / d }) }
            result.integral = false
        }
        memo[i, default: [:]][t] = result
        return result
    }

    func evaluateDerived(_ op: DerivedOp, _ r: Int, at t: Micros, primary: Bool, memo: inout [Int: [Micros: Evaluation]]) -> Evaluation {
        let now = evaluate(r, at: t, primary: primary, memo: &memo)
        var out = Evaluation(value: nil, of: nil, by: nil, integral: false, ofIntegral: false)
        switch op {
        case .share:
            if let v = now.value, let of = now.of, of != 0 { out.value = v / of * 100 }
        case .growthYoY, .multipleYoY, .changeYoY:
            let ya = evaluate(r, at: calendar.yearAgo(t), primary: false, memo: &memo)
            guard let v = now.value, let y = ya.value else { break }
            switch op {
            case .growthYoY: out.value = y == 0 ? nil : (v - y) / y * 100
            case .multipleYoY: out.value = y == 0 ? nil : v / y
            default:
                out.value = v - y
                out.integral = now.integral && ya.integral
            }
        case .changeYTD:
            let sy = evaluate(r, at: calendar.endOfPreviousYear(t), primary: false, memo: &memo)
            if let v = now.value, let y = sy.value {
                out.value = v - y
                out.integral = now.integral && sy.integral
            }
        }
        return out
    }

    func evaluateAggregate(_ i: Int, _ a: AggregateDefinition, at t: Micros, primary: Bool, memo: inout [Int: [Micros: Evaluation]]) -> Evaluation {
        var out = Evaluation(value: nil, of: nil, by: nil, integral: a.integral, ofIntegral: true)
        let ind = pipeline.indicators[i]
        if !primary {
            let start = windowStart(a, at: t)
            guard let h = historyStart, start >= h, let c = clock, start >= c - options.retention else { return out }
        }
        switch a.source {
        case .events:
            let agg = aggregators[i]!
            let partition = a.yearPartition != nil ? calendar.year(t) : 0
            let allKey = EventAggregator.key(group: nil, partition: partition)
            func channels(_ cell: Int?) -> [Double?] {
                (0..<agg.channels.count).map { ch in
                    guard let cell else { return agg.channels[ch].kind == .sum ? 0 : nil }
                    return agg.channelValue(cell, ch, at: t, calendar: calendar)
                }
            }
            let allCell = agg.cellIndex[allKey].map(Int.init)
            if a.distinct != nil {
                var v = allCell.map { agg.distinctValue($0, at: t, calendar: calendar, firstAfter: balances[ind.id]?.at) } ?? 0
                if let b = balances[ind.id] {
                    if t >= b.at { v += b.value } else { v = b.value - (allCell.map { agg.distinctValue($0, at: b.at, calendar: calendar) - agg.distinctValue($0, at: t, calendar: calendar) } ?? 0) }
                }
                out.value = v
            } else {
                let ch = channels(allCell)
                out.value = Self.shape(a, ch)
                if let b = balances[ind.id], a.shape == .plain {
                    // value(t) = balance + cum(t) - cum(at)
                    let atValue: Double? = allCell == nil ? 0 : agg.channelValue(allCell!, 0, at: b.at, calendar: calendar)
                    if let v = out.value, let av = atValue { out.value = b.value + v - av } else { out.value = nil }
                }
                if let oc = a.ofChannel { out.of = ch[oc] }
            }
            if a.by != nil {
                var groups: [(key: String, value: Double?)] = []
                for (ci, key) in agg.cellKeys.enumerated() where key >> 32 != 0 && Int64(UInt32(truncatingIfNeeded: key)) == Int64(UInt32(truncatingIfNeeded: partition)) {
                    let name = interner.string(Int32(key >> 32) - 1)
                    if a.distinct != nil {
                        groups.append((name, agg.distinctValue(ci, at: t, calendar: calendar)))
                    } else {
                        groups.append((name, Self.shape(a, channels(ci))))
                    }
                }
                out.by = groups.sorted { $0.key < $1.key }
            }
        case .table(let ti):
            let tab = tables[ti]
            let (_, ai) = tableOf[i]!
            let state = (t >= tab.maxTime && !tab.aggregates[ai].hasMinMax) ? tab.aggregates[ai] : tab.scan(ai, at: t, interner: interner)
            var ch: [Double?] = state.totals.map { $0 }
            for (c, rc) in state.channels.enumerated() where rc.kind != .sum && !(ch[c]!.isFinite) { ch[c] = nil }
            if a.distinct != nil {
                out.value = Double(state.distinctRefs.count)
            } else {
                out.value = Self.shape(a, ch)
                if let oc = a.ofChannel { out.of = ch[oc] }
            }
            if a.by != nil {
                out.by = state.groups.map { (interner.string($0.key), Self.shape(a, $0.value.map { $0 })) }.sorted { $0.key < $1.key }
            }
        }
        switch ind.of {
        case .constant(let v)?: out.of = v; out.ofIntegral = v == v.rounded()
        case .indicator(let j)?:
            let e = evaluate(j, at: t, primary: primary, memo: &memo)
            out.of = e.value
            out.ofIntegral = e.integral
        default: break
        }
        return out
    }
}
