// MARK: - Latest-state tables

/// One version of a row: the fields of one event, packed into 64 bytes with no heap
/// allocation (strings and string lists as interned ids).
struct RowVersion {
    var time: Micros
    /// Arrival order (ties on `time` go to the later arrival).
    var seq: UInt64
    /// Byte 0: type position among the table's types; byte 1: field count; bytes 2-6: tags.
    private var meta: UInt64
    private var p0: UInt64 = 0, p1: UInt64 = 0, p2: UInt64 = 0, p3: UInt64 = 0, p4: UInt64 = 0

    enum Tag: UInt64 { case absent = 0, string, int, number, boolFalse, boolTrue, strings }

    init(time: Micros, seq: UInt64, pos: Int, count: Int) {
        self.time = time
        self.seq = seq
        meta = UInt64(pos & 0xFF) | UInt64(count & 0xFF) << 8
    }

    var pos: Int { Int(meta & 0xFF) }
    var count: Int { Int((meta >> 8) & 0xFF) }

    @inline(__always)
    func isAfter(_ o: RowVersion) -> Bool { time != o.time ? time > o.time : seq > o.seq }

    @inline(__always)
    private func payload(_ i: Int) -> UInt64 {
        switch i {
        case 0: p0
        case 1: p1
        case 2: p2
        case 3: p3
        default: p4
        }
    }

    private mutating func setPayload(_ i: Int, _ v: UInt64) {
        switch i {
        case 0: p0 = v
        case 1: p1 = v
        case 2: p2 = v
        case 3: p3 = v
        default: p4 = v
        }
    }

    /// Stores field `i`, interning its strings.
    mutating func set(_ i: Int, _ v: FieldValue, _ interner: Interner) {
        let tag: Tag
        var bits: UInt64 = 0
        switch v {
        case .absent: tag = .absent
        case .string(let s): tag = .string; bits = UInt64(UInt32(bitPattern: interner.intern(s.bytes)))
        case .int(let x): tag = .int; bits = UInt64(bitPattern: x)
        case .number(let d): tag = .number; bits = d.bitPattern
        case .bool(let b): tag = b ? .boolTrue : .boolFalse
        case .strings(let l): tag = .strings; bits = UInt64(UInt32(bitPattern: interner.listID(l)))
        }
        let shift = UInt64(16 + 8 * i)
        meta = (meta & ~(0xFF << shift)) | (tag.rawValue << shift)
        setPayload(i, bits)
    }

    /// Field `i` as a ``FieldValue`` whose views point into the interner.
    @inline(__always)
    func field(_ i: Int, _ interner: Interner) -> FieldValue {
        let bits = payload(i)
        switch (meta >> UInt64(16 + 8 * i)) & 0xFF {
        case Tag.string.rawValue: return .string(interner.view(Int32(bitPattern: UInt32(truncatingIfNeeded: bits))))
        case Tag.int.rawValue: return .int(Int64(bitPattern: bits))
        case Tag.number.rawValue: return .number(Double(bitPattern: bits))
        case Tag.boolFalse.rawValue: return .bool(false)
        case Tag.boolTrue.rawValue: return .bool(true)
        case Tag.strings.rawValue: return .strings(interner.list(Int32(bitPattern: UInt32(truncatingIfNeeded: bits))))
        default: return .absent
        }
    }
}

/// Per key: the latest version exactly, plus at most one older version per hour bucket within
/// the retention horizon (for as-of-the-past queries: year-ago, start of year), sorted by
/// (time, seq). The latest is stored inline: a key with one version allocates nothing.
struct Row {
    var key: Int32
    var latest: RowVersion
    var older: [RowVersion] = []

    var versions: [RowVersion] { older + [latest] }

    /// The version in effect at `t`: the latest with `time <= t`.
    func version(at t: Micros) -> RowVersion? {
        if latest.time <= t { return latest }
        var i = older.count - 1
        while i >= 0 {
            if older[i].time <= t { return older[i] }
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

    /// Adds (`sign` 1) or removes (-1) one row version's contribution.
    /// - Complexity: O(channels); allocates only for a group seen for the first time (the
    ///   contributions of up to four channels live in locals, the group's totals are updated
    ///   in place).
    mutating func apply(_ v: RowVersion, sign: Double, interner: Interner) {
        let nch = channels.count
        guard nch <= 4 else { return applyMany(v, sign: sign, interner: interner) }
        let f = { (i: Int) -> FieldValue in v.field(i, interner) }
        let pos = v.pos
        var x0: Double? = nil, x1: Double? = nil, x2: Double? = nil, x3: Double? = nil
        for c in 0..<nch {
            guard let x = channels[c].contribution(pos: pos, f) else { continue }
            totals[c] += sign * x
            switch c {
            case 0: x0 = x
            case 1: x1 = x
            case 2: x2 = x
            default: x3 = x
            }
        }
        if let ds = distinctSlots, x0 != nil, ds[pos] >= 0,
           let id = EventAggregator.internValue(f(ds[pos]), interner) {
            let n = (distinctRefs[id] ?? 0) + (sign > 0 ? 1 : -1)
            distinctRefs[id] = n > 0 ? n : nil
        }
        if let bs = bySlots, bs[pos] >= 0, let g = EventAggregator.internValue(f(bs[pos]), interner) {
            // In place through the dictionary's `default:` accessor (no copy of the array); a
            // group is listed once seen, even with nothing to add.
            Self.add(&groups[g, default: [Double](repeating: 0, count: nch)], sign, x0, x1, x2, x3)
        }
    }

    @inline(__always)
    private static func add(_ arr: inout [Double], _ sign: Double, _ x0: Double?, _ x1: Double?, _ x2: Double?, _ x3: Double?) {
        if let x = x0 { arr[0] += sign * x }
        if let x = x1 { arr[1] += sign * x }
        if let x = x2 { arr[2] += sign * x }
        if let x = x3 { arr[3] += sign * x }
    }

    /// ``apply(_:sign:interner:)`` for more than four channels (a pipeline may define them;
    /// the national one does not): the contributions in an array.
    private mutating func applyMany(_ v: RowVersion, sign: Double, interner: Interner) {
        let f = { (i: Int) -> FieldValue in v.field(i, interner) }
        var contributions = [Double?](repeating: nil, count: channels.count)
        for (c, ch) in channels.enumerated() {
            contributions[c] = ch.contribution(pos: v.pos, f)
            if let x = contributions[c] { totals[c] += sign * x }
        }
        if let ds = distinctSlots, contributions[0] != nil, ds[v.pos] >= 0,
           let id = EventAggregator.internValue(f(ds[v.pos]), interner) {
            let n = (distinctRefs[id] ?? 0) + (sign > 0 ? 1 : -1)
            distinctRefs[id] = n > 0 ? n : nil
        }
        if let bs = bySlots, bs[v.pos] >= 0, let g = EventAggregator.internValue(f(bs[v.pos]), interner) {
            var arr = groups[g] ?? [Double](repeating: 0, count: channels.count)
            for c in 0..<channels.count { if let x = contributions[c] { arr[c] += sign * x } }
            groups[g] = arr
        }
    }
}

/// A latest-state table and the running aggregates of the indicators over it.
///
/// Memory per key: the row (~80 bytes: key, the latest version packed in 64 bytes, an empty
/// history array) + the index entry (~12-24 bytes) + the interned key string; older versions
/// (at most one per hour within the horizon) cost 64 bytes each.
final class StateTable {
    let def: TableDefinition
    let canonical: String
    let posOfType: [Int]
    // Exclusivity checks off on the per-event state: one owner thread (the engine's).
    @exclusivity(unchecked) var rows: [Row] = []
    @exclusivity(unchecked) var index: [Int32: Int32] = [:]
    @exclusivity(unchecked) var maxTime: Micros = .min
    @exclusivity(unchecked) var aggregates: [TableAggregate] = []

    init(def: TableDefinition, catalogCount: Int) {
        self.def = def
        canonical = def.canonical
        var pos = [Int](repeating: -1, count: catalogCount)
        for (i, t) in def.types.enumerated() { pos[t] = i }
        posOfType = pos
    }

    /// Applies one event: a new version of its key's row.
    /// - Complexity: O(versions of the key + aggregates over the table).
    /// `e` is read in place (the decoder's slot): no copy of the ~190-byte event.
    func apply(_ e: UnsafePointer<Event>, pos: Int, seq: UInt64, horizon: Micros, interner: Interner) {
        let key: Int32
        if let k = def.key {
            guard let id = EventAggregator.internValue(e.pointee.fields[k.slots[pos]], interner) else { return }
            key = id
        } else {
            key = -1
        }
        let n = e.pointee.fields.count
        var v = RowVersion(time: e.pointee.time, seq: seq, pos: pos, count: n)
        for i in 0..<n { v.set(i, e.pointee.fields[i], interner) }
        insert(key: key, v, horizon: horizon, interner: interner)
    }

    func insert(key: Int32, _ v: RowVersion, horizon: Micros, interner: Interner) {
        maxTime = max(maxTime, v.time)
        guard let i = index[key] else {
            index[key] = Int32(rows.count)
            rows.append(Row(key: key, latest: v))
            for a in aggregates.indices { aggregates[a].apply(v, sign: 1, interner: interner) }
            return
        }
        let ri = Int(i)
        let old = rows[ri].latest
        if v.isAfter(old) && rows[ri].older.isEmpty && Self.hour(old.time) == Self.hour(v.time) {
            rows[ri].latest = v  // the common case: a newer version in the same hour replaces
        } else {
            var versions = rows[ri].versions
            var at = versions.count
            while at > 0 && versions[at - 1].isAfter(v) { at -= 1 }
            versions.insert(v, at: at)
            Self.compact(&versions, horizon: horizon)
            rows[ri].latest = versions.removeLast()
            rows[ri].older = versions
        }
        let new = rows[ri].latest
        if new.seq != old.seq || new.time != old.time {
            let old: RowVersion? = old
            for a in aggregates.indices {
                if let old { aggregates[a].apply(old, sign: -1, interner: interner) }
                aggregates[a].apply(new, sign: 1, interner: interner)
            }
        }
    }

    @inline(__always)
    static func hour(_ t: Micros) -> Int64 { ZoneCalendar.floorDiv(t, ZoneCalendar.microsPerHour) }

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
            for r in rows { fresh.apply(r.latest, sign: 1, interner: interner) }
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
                    if let x = ch.contribution(pos: v.pos, { v.field($0, interner) }) {
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
