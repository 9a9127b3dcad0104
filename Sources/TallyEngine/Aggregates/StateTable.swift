// MARK: - Latest-state tables

/// One version of a row: the fields of one event (strings interned, so the views stay valid).
struct RowVersion {
    var time: Micros
    /// Arrival order (ties on `time` go to the later arrival).
    var seq: UInt64
    /// Position of the event's type among the table's types.
    var pos: Int
    var fields: [FieldValue]

    @inline(__always)
    func isAfter(_ o: RowVersion) -> Bool { time != o.time ? time > o.time : seq > o.seq }
}

/// Per key: the latest version exactly, plus at most one older version per hour bucket within
/// the retention horizon (for as-of-the-past queries: year-ago, start of year). Versions are
/// sorted by (time, seq).
struct Row {
    var key: Int32
    var versions: [RowVersion]

    /// The version in effect at `t`: the latest with `time <= t`.
    func version(at t: Micros) -> RowVersion? {
        var i = versions.count - 1
        while i >= 0 {
            if versions[i].time <= t { return versions[i] }
            i -= 1
        }
        return nil
    }
}

/// The running aggregate of one `table:` indicator over the current rows, maintained on every
/// row change (remove the old version's contribution, add the new one's): O(channels) per
/// event, so a snapshot reads it in O(1).
struct TableAggregate {
    let indicator: Int
    let def: AggregateDefinition
    let channels: [RChannel]
    let bySlots: [Int]?
    let distinctSlots: [Int]?
    let hasMinMax: Bool
    var totals: [Double]
    var groups: [Int32: [Double]] = [:]
    var distinctRefs: [Int32: Int32] = [:]

    init(indicator: Int, def: AggregateDefinition) {
        self.indicator = indicator
        self.def = def
        channels = def.channels.map { RChannel($0, typeCount: def.types.count) }
        bySlots = def.by?.slots
        distinctSlots = def.distinct?.slots
        hasMinMax = def.channels.contains { $0.measure.isMinMax }
        totals = [Double](repeating: 0, count: def.channels.count)
    }

    mutating func apply(_ v: RowVersion, sign: Double, interner: Interner) {
        let f = v.fields
        var contributions = [Double?](repeating: nil, count: channels.count)
        for (c, ch) in channels.enumerated() {
            contributions[c] = ch.contribution(pos: v.pos) { f[$0] }
            if let x = contributions[c] { totals[c] += sign * x }
        }
        if let ds = distinctSlots, contributions[0] != nil, ds[v.pos] >= 0,
           let id = EventAggregator.internValue(f[ds[v.pos]], interner) {
            let n = (distinctRefs[id] ?? 0) + (sign > 0 ? 1 : -1)
            distinctRefs[id] = n > 0 ? n : nil
        }
        if let bs = bySlots, bs[v.pos] >= 0, let g = EventAggregator.internValue(f[bs[v.pos]], interner) {
            var arr = groups[g] ?? [Double](repeating: 0, count: channels.count)
            for c in 0..<channels.count { if let x = contributions[c] { arr[c] += sign * x } }
            groups[g] = arr
        }
    }
}

/// A latest-state table and the running aggregates of the indicators over it.
///
/// Memory per key: the row (key id, versions array header ~40 bytes) + per version
/// ~32 bytes + 24 bytes per field (the interned strings' bytes are shared) + the index entry
/// (~16 bytes).
final class StateTable {
    let def: TableDefinition
    let canonical: String
    let posOfType: [Int]
    var rows: [Row] = []
    var index: [Int32: Int32] = [:]
    var maxTime: Micros = .min
    var aggregates: [TableAggregate] = []

    init(def: TableDefinition, catalogCount: Int) {
        self.def = def
        canonical = def.canonical
        var pos = [Int](repeating: -1, count: catalogCount)
        for (i, t) in def.types.enumerated() { pos[t] = i }
        posOfType = pos
    }

    /// Copies a field with its strings interned (so it outlives the payload).
    static func persist(_ v: FieldValue, _ interner: Interner) -> FieldValue {
        switch v {
        case .string(let s): return .string(interner.view(interner.intern(s.bytes)))
        case .strings(let list): return .strings(interner.internList(list))
        default: return v
        }
    }

    /// Applies one event: a new version of its key's row.
    /// - Complexity: O(versions of the key + aggregates over the table).
    func apply(_ e: Event, pos: Int, seq: UInt64, horizon: Micros, interner: Interner) {
        let key: Int32
        if let k = def.key {
            guard let id = EventAggregator.internValue(e.fields[k.slots[pos]], interner) else { return }
            key = id
        } else {
            key = -1
        }
        var fields: [FieldValue] = []
        fields.reserveCapacity(e.fields.count)
        for i in 0..<e.fields.count { fields.append(Self.persist(e.fields[i], interner)) }
        insert(key: key, RowVersion(time: e.time, seq: seq, pos: pos, fields: fields), horizon: horizon, interner: interner)
    }

    func insert(key: Int32, _ v: RowVersion, horizon: Micros, interner: Interner) {
        maxTime = max(maxTime, v.time)
        let ri: Int
        if let i = index[key] {
            ri = Int(i)
        } else {
            ri = rows.count
            rows.append(Row(key: key, versions: []))
            index[key] = Int32(ri)
        }
        let old = rows[ri].versions.last
        var versions = rows[ri].versions
        rows[ri].versions = []
        var at = versions.count
        while at > 0 && versions[at - 1].isAfter(v) { at -= 1 }
        versions.insert(v, at: at)
        Self.compact(&versions, horizon: horizon)
        rows[ri].versions = versions
        let new = versions.last!
        if old == nil || new.seq != old!.seq || new.time != old!.time {
            for a in aggregates.indices {
                if let old { aggregates[a].apply(old, sign: -1, interner: interner) }
                aggregates[a].apply(new, sign: 1, interner: interner)
            }
        }
    }

    /// Keeps the latest version, at most one per hour bucket before it, and of the versions
    /// older than the horizon only the newest.
    static func compact(_ v: inout [RowVersion], horizon: Micros) {
        guard v.count > 1 else { return }
        var out: [RowVersion] = []
        out.reserveCapacity(v.count)
        for i in 0..<v.count {
            let isLast = i == v.count - 1
            if !isLast {
                let next = v[i + 1]
                if next.time < horizon { continue }  // an older version is superseded before the horizon
                if ZoneCalendar.floorDiv(v[i].time, ZoneCalendar.microsPerHour) == ZoneCalendar.floorDiv(next.time, ZoneCalendar.microsPerHour) { continue }
            }
            out.append(v[i])
        }
        v = out
    }

    /// Rebuilds every running aggregate from the current rows (after restore or reconfigure).
    func rebuildAggregates(interner: Interner) {
        for a in aggregates.indices {
            var fresh = TableAggregate(indicator: aggregates[a].indicator, def: aggregates[a].def)
            for r in rows { if let v = r.versions.last { fresh.apply(v, sign: 1, interner: interner) } }
            aggregates[a] = fresh
        }
    }

    /// Evaluates aggregate `a` over the rows as of `t` by scanning (past instants, min/max).
    /// - Complexity: O(rows × versions per row).
    func scan(_ a: Int, at t: Micros, interner: Interner) -> TableAggregate {
        var fresh = TableAggregate(indicator: aggregates[a].indicator, def: aggregates[a].def)
        var mins = [Double](repeating: .infinity, count: fresh.channels.count)
        var maxs = [Double](repeating: -.infinity, count: fresh.channels.count)
        for r in rows {
            guard let v = r.version(at: t) else { continue }
            fresh.apply(v, sign: 1, interner: interner)
            if fresh.hasMinMax {
                for (c, ch) in fresh.channels.enumerated() {
                    if let x = ch.contribution(pos: v.pos, { v.fields[$0] }) {
                        mins[c] = min(mins[c], x)
                        maxs[c] = max(maxs[c], x)
                    }
                }
            }
        }
        if fresh.hasMinMax {
            for (c, ch) in fresh.channels.enumerated() where ch.kind != .sum {
                fresh.totals[c] = ch.kind == .min ? mins[c] : maxs[c]
            }
        }
        return fresh
    }
}
