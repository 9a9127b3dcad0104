// MARK: - Event aggregates

/// Which rings a cell keeps, one per resolution its windows and derivations need.
struct RingSpec: Sendable, Hashable {
    enum Kind: Sendable, Hashable {
        /// Right-closed buckets of `res` microseconds (trailing windows, instants).
        case fine(Micros)
        /// One bucket per calendar period (left-closed, exact).
        case period(CalendarUnit)
    }
    let kind: Kind
    let capacity: Int
    var canonical: String {
        switch kind {
        case .fine(let r): "f\(r)x\(capacity)"
        case .period(let u): "p\(u.name)x\(capacity)"
        }
    }
}

/// The state of one aggregate for one group (or for all events): per channel a grand total
/// and the rings of ``RingSpec``s (channel-major).
struct Cell: Sendable, Equatable {
    var totals: [Double]
    var rings: [BucketRing]
    var minTime: Micros = .max
    var maxTime: Micros = .min
}

/// First and last event time of one distinct value.
struct FirstLast: Sendable, Equatable {
    var first: Micros
    var last: Micros
}

/// The state of a `distinct(field)` aggregate for one group: per interned value its first and
/// last time. Memory per value: ~40 bytes of dictionary entry (plus the interned bytes).
struct DistinctCell: Sendable, Equatable {
    var values: [Int32: FirstLast] = [:]
    var maxFirst: Micros = .min
}

/// One `events:` indicator's aggregate: routing data, compiled channels and its cells.
///
/// Memory: cells are created per group actually seen (and per `$year` partition), each with
/// only the rings its window needs; never per event.
final class EventAggregator {
    let def: AggregateDefinition
    let canonical: String
    let channels: [RChannel]
    /// Catalog type index → position in the source's types, or -1.
    let posOfType: [Int]
    let allSpecs: [RingSpec]
    let groupSpecs: [RingSpec]
    let bySlots: [Int]?
    let partitionSlots: [Int]?
    let distinctSlots: [Int]?

    // Exclusivity checks off on the per-event state: one owner thread (the engine's).
    @exclusivity(unchecked) var cells: [Cell] = []
    @exclusivity(unchecked) var cellKeys: [Int64] = []
    @exclusivity(unchecked) var cellIndex: [Int64: Int32] = [:]
    @exclusivity(unchecked) var distinctCells: [DistinctCell] = []

    static let hour = ZoneCalendar.microsPerHour

    /// Per ring spec (of `allSpecs`; `groupSpecs` is its prefix): the bucket of the last event
    /// and the span of time that maps to it, so the next event in the same bucket (most of a
    /// time-ordered stream) reuses it instead of dividing (fine rings) or converting to a civil
    /// date (calendar rings).
    struct BucketMemo {
        /// Fine rings: the resolution; 0 for a calendar ring.
        let res: Int64
        let unit: CalendarUnit
        /// Fine: bucket `b` holds times in `(lo, hi]`. Calendar: `lo` is the local day of `b`.
        var lo: Int64 = .max
        var hi: Int64 = .min
        var b: Int64 = 0
    }
    /// `allSpecs.count` memos (at least one), owned here.
    let memo: UnsafeMutablePointer<BucketMemo>
    let memoCount: Int

    init(def: AggregateDefinition, catalogCount: Int, needsShift: Bool, retention: Micros, zone: String) {
        self.def = def
        channels = def.channels.map { RChannel($0, typeCount: def.types.count) }
        var pos = [Int](repeating: -1, count: catalogCount)
        for (i, t) in def.types.enumerated() { pos[t] = i }
        posOfType = pos
        bySlots = def.by?.slots
        partitionSlots = def.yearPartition?.slots
        distinctSlots = def.distinct?.slots

        let retentionHours = Int(retention / Self.hour) + 2
        var window: [RingSpec] = []
        switch def.window {
        case .cumulative: break
        case .trailing(let d):
            let res: Micros = d <= 48 * Self.hour ? 1_000_000 : (d <= 32 * 24 * Self.hour ? 60_000_000 : Self.hour)
            window.append(RingSpec(kind: .fine(res), capacity: Int((d + res - 1) / res) + 2))
        case .toDate(let u), .last(let u):
            let len: Micros = [CalendarUnit.day: 24, .month: 28 * 24, .quarter: 90 * 24, .year: 365 * 24][u]! * Self.hour
            window.append(RingSpec(kind: .period(u), capacity: Int(retention / len) + 3))
        }
        var all = window
        let trailingOrToDate: Bool = {
            switch def.window {
            case .trailing, .toDate: true
            default: false
            }
        }()
        // Cumulative totals always keep an hourly ring over the horizon (opening balances at
        // any instant, year-ago, wall-clock mode with future events); trailing and to-date
        // windows need it when evaluated in the past.
        if def.distinct == nil, def.window == .cumulative || (needsShift && trailingOrToDate) {
            if !all.contains(where: { $0.kind == .fine(Self.hour) }) {
                all.append(RingSpec(kind: .fine(Self.hour), capacity: retentionHours))
            }
        }
        if def.distinct != nil { all = []; window = [] }
        allSpecs = all
        groupSpecs = window
        precondition(Array(all.prefix(window.count)) == window, "group rings must be a prefix of the all-events cell's rings")
        memoCount = max(all.count, 1)
        memo = .allocate(capacity: memoCount)
        for k in 0..<memoCount {
            switch k < all.count ? all[k].kind : .fine(1) {
            case .fine(let r): (memo + k).initialize(to: BucketMemo(res: r, unit: .day))
            case .period(let u): (memo + k).initialize(to: BucketMemo(res: 0, unit: u))
            }
        }
        let zoneTag: String = {
            switch def.window {
            case .toDate, .last: "@\(zone)"
            default: ""
            }
        }()
        canonical = "events\(def.types)|\(def.window.canonical)\(zoneTag)|by:\(def.by?.name ?? "-")|year:\(def.yearPartition?.name ?? "-")|distinct:\(def.distinct?.name ?? "-")|\(def.channels.map(\.canonical).joined(separator: ";"))|rings:\(all.map(\.canonical))/\(window.map(\.canonical))"
    }

    deinit {
        memo.deinitialize(count: memoCount)
        memo.deallocate()
    }

    /// The bucket of `t` in ring spec `k` (`ceil(t / res)` or the calendar period index).
    /// - Complexity: O(1); no division when `t` falls in the same bucket as the last call.
    @inline(__always)
    func bucket(_ k: Int, _ t: Micros, _ calendar: ZoneCalendar) -> Int64 {
        let m = memo + k
        let res = m.pointee.res
        if res > 0 {
            if t > m.pointee.lo && t <= m.pointee.hi { return m.pointee.b }
            let b = Self.ceilDiv(t, res)
            m.pointee.lo = (b &- 1) &* res
            m.pointee.hi = b &* res
            m.pointee.b = b
            return b
        }
        let day = calendar.localDay(t)
        if day == m.pointee.lo { return m.pointee.b }
        let b = calendar.period(m.pointee.unit, t)
        m.pointee.lo = day
        m.pointee.b = b
        return b
    }

    // MARK: Cells

    @inline(__always)
    static func key(group: Int32?, partition: Int64) -> Int64 {
        (Int64((group ?? -1) &+ 1) << 32) | Int64(UInt32(truncatingIfNeeded: partition))
    }

    func newCell(isAll: Bool) -> Cell {
        let specs = isAll ? allSpecs : groupSpecs
        var rings: [BucketRing] = []
        for ch in channels {
            for s in specs { rings.append(BucketRing(capacity: s.capacity, combine: ch.kind)) }
        }
        return Cell(totals: channels.map { BucketRing.identity($0.kind) }, rings: rings)
    }

    /// One-entry cache of the last key looked up (most aggregates have one cell, and
    /// `$year` partitions are mostly the current year): skips the dictionary's hashing.
    @exclusivity(unchecked) private var lastKey: Int64 = .min
    /// Interned group id → cell index (-1: none yet), for `by` without `$year`.
    @exclusivity(unchecked) private var groupCell: [Int32] = []
    @exclusivity(unchecked) private var lastIndex = 0

    @inline(__always)
    func cellIndex(for key: Int64, isAll: Bool) -> Int {
        if key == lastKey { return lastIndex }
        if let i = cellIndex[key] {
            if isAll { lastKey = key; lastIndex = Int(i) }
            return Int(i)
        }
        let i = cells.count
        cells.append(newCell(isAll: isAll))
        cellKeys.append(key)
        if def.distinct != nil { distinctCells.append(DistinctCell()) }
        cellIndex[key] = Int32(i)
        if isAll { lastKey = key; lastIndex = i }
        return i
    }

    /// Replaces the cells (restore, reconfigure) and resets the lookup cache.
    func adopt(cells: [Cell], keys: [Int64], distinct: [DistinctCell]) {
        self.cells = cells
        cellKeys = keys
        distinctCells = distinct
        cellIndex = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, Int32($0)) })
        lastKey = .min
        groupCell = []
    }

    func isAllCell(_ i: Int) -> Bool { cellKeys[i] >> 32 == 0 }

    // MARK: Hot path

    /// Applies one event of a routed type.
    /// - Complexity: O(channels × (conditions + rings)), no allocation once the cell exists.
    @inline(__always)
    func apply(_ e: Event, pos: Int, calendar: ZoneCalendar, interner: Interner) {
        var partition: Int64 = 0
        if let ps = partitionSlots {
            guard ps[pos] >= 0, case .int(let y) = e.fields[ps[pos]] else { return }
            partition = y
        }
        let fields = e.fields
        let n = channels.count
        var c0: Double? = nil, c1: Double? = nil, c2: Double? = nil
        c0 = channels[0].contribution(pos: pos) { fields[$0] }
        if n > 1 { c1 = channels[1].contribution(pos: pos) { fields[$0] } }
        if n > 2 { c2 = channels[2].contribution(pos: pos) { fields[$0] } }
        if c0 == nil && c1 == nil && c2 == nil { return }

        var distinctID: Int32 = -1
        if let ds = distinctSlots {
            guard c0 != nil, ds[pos] >= 0, let id = Self.internValue(fields[ds[pos]], interner) else { return }
            distinctID = id
        }
        let all = cellIndex(for: Self.key(group: nil, partition: partition), isAll: true)
        update(all, e.time, c0, c1, c2, distinctID, calendar)
        if let bs = bySlots, bs[pos] >= 0, let g = Self.internValue(fields[bs[pos]], interner) {
            let gi: Int
            if partitionSlots == nil {
                // Dense lookup by interned id: no hashing of the group key.
                let gid = Int(g)
                if gid < groupCell.count, groupCell[gid] >= 0 {
                    gi = Int(groupCell[gid])
                } else {
                    gi = cellIndex(for: Self.key(group: g, partition: partition), isAll: false)
                    if gid >= groupCell.count { groupCell.append(contentsOf: repeatElement(-1, count: gid - groupCell.count + 1)) }
                    groupCell[gid] = Int32(gi)
                }
            } else {
                gi = cellIndex(for: Self.key(group: g, partition: partition), isAll: false)
            }
            update(gi, e.time, c0, c1, c2, distinctID, calendar)
        }
    }

    /// Interns a `str`, `int` or `bool` value as its text.
    static func internValue(_ v: FieldValue, _ interner: Interner) -> Int32? {
        switch v {
        case .string(let s): return interner.intern(s.bytes)
        case .int(let i): return interner.intern(String(i))
        case .bool(let b): return interner.intern(b ? "true" : "false")
        default: return nil
        }
    }

    @inline(__always)
    private func update(_ i: Int, _ t: Micros, _ c0: Double?, _ c1: Double?, _ c2: Double?, _ distinctID: Int32, _ calendar: ZoneCalendar) {
        if distinctID >= 0 {
            distinctCells.withUnsafeMutableBufferPointer { d in
                if let fl = d[i].values[distinctID] {
                    d[i].values[distinctID] = FirstLast(first: min(fl.first, t), last: max(fl.last, t))
                } else {
                    d[i].values[distinctID] = FirstLast(first: t, last: t)
                }
                if t > d[i].maxFirst { d[i].maxFirst = t }
            }
            cells.withUnsafeMutableBufferPointer { c in
                if t < c[i].minTime { c[i].minTime = t }
                if t > c[i].maxTime { c[i].maxTime = t }
            }
            return
        }
        let isAll = isAllCell(i)
        let nch = channels.count
        // Bucket indices once per event (at most a few rings), reading the specs in place
        // (no array copy: no retain/release per update).
        var b0: Int64 = 0, b1: Int64 = 0, b2: Int64 = 0
        let ns = isAll ? allSpecs.count : groupSpecs.count
        for k in 0..<min(ns, 3) {
            let b = bucket(k, t, calendar)
            if k == 0 { b0 = b } else if k == 1 { b1 = b } else { b2 = b }
        }
        // One uniqueness check per array (cells, the cell's totals, its rings, each ring's
        // slots) instead of one per element access.
        channels.withUnsafeBufferPointer { chans in
            cells.withUnsafeMutableBufferPointer { c in
                if t < c[i].minTime { c[i].minTime = t }
                if t > c[i].maxTime { c[i].maxTime = t }
                c[i].totals.withUnsafeMutableBufferPointer { tot in
                    for ch in 0..<nch {
                        guard let v = ch == 0 ? c0 : (ch == 1 ? c1 : c2) else { continue }
                        switch chans[ch].kind {
                        case .sum: tot[ch] += v
                        case .min: tot[ch] = min(tot[ch], v)
                        case .max: tot[ch] = max(tot[ch], v)
                        }
                    }
                }
                guard ns > 0 else { return }
                c[i].rings.withUnsafeMutableBufferPointer { rings in
                    for ch in 0..<nch {
                        guard let v = ch == 0 ? c0 : (ch == 1 ? c1 : c2) else { continue }
                        for k in 0..<ns {
                            rings[ch * ns + k].add(k == 0 ? b0 : (k == 1 ? b1 : b2), v)
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    static func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 { -ZoneCalendar.floorDiv(-a, b) }

    // MARK: Evaluation

    /// The value of channel `ch` of cell `i` over the window as of `t`; nil when the rings
    /// cannot answer (older than they reach) or a min/max of nothing.
    func channelValue(_ i: Int, _ ch: Int, at t: Micros, calendar: ZoneCalendar) -> Double? {
        let cell = cells[i]
        let specs = isAllCell(i) ? allSpecs : groupSpecs
        let kind = channels[ch].kind
        func finite(_ v: Double) -> Double? { v.isFinite ? v : (kind == .sum ? 0 : nil) }
        func ring(_ k: Int) -> BucketRing { cell.rings[ch * specs.count + k] }
        /// Σ of events with time in (a, b], through the finest fine ring covering a.
        func fineRange(after a: Micros, through b: Micros) -> Double? {
            var best: (Int, Micros)?
            for (k, s) in specs.enumerated() {
                guard case .fine(let res) = s.kind else { continue }
                if ring(k).covers(after: Self.ceilDiv(a, res)), best == nil || res < best!.1 { best = (k, res) }
            }
            guard let (k, res) = best else { return nil }
            return ring(k).range(after: Self.ceilDiv(a, res), through: Self.ceilDiv(b, res))
        }
        switch def.window {
        case .cumulative:
            if t >= cell.maxTime { return finite(cell.totals[ch]) }
            guard kind == .sum else { return nil }
            if t < cell.minTime { return 0 }
            guard let after = fineRange(after: t, through: cell.maxTime) else { return nil }
            return cell.totals[ch] - after
        case .trailing(let d):
            guard let v = fineRange(after: t - d, through: t) else { return nil }
            return finite(v)
        case .toDate(let u):
            guard let k = specs.firstIndex(where: { $0.kind == .period(u) }) else { return nil }
            let p = calendar.period(u, t)
            let whole = ring(k).value(p)
            if t >= cell.maxTime { return finite(whole) }
            guard kind == .sum else { return nil }
            let end = calendar.periodStart(u, p + 1) - 1
            guard let after = fineRange(after: t, through: end) else { return nil }
            return whole - after
        case .last(let u):
            guard let k = specs.firstIndex(where: { $0.kind == .period(u) }) else { return nil }
            let p = calendar.period(u, t) - 1
            if ring(k).head != .min, p < ring(k).oldest { return nil }
            return finite(ring(k).value(p))
        }
    }

    /// The number of distinct values of cell `i` in the window as of `t`.
    /// - Complexity: O(1) for a cumulative count as of the newest event, else O(values).
    func distinctValue(_ i: Int, at t: Micros, calendar: ZoneCalendar, firstAfter: Micros? = nil) -> Double {
        let d = distinctCells[i]
        let lo: Micros
        switch def.window {
        case .cumulative, .last:
            if t >= d.maxFirst && firstAfter == nil { return Double(d.values.count) }
            lo = .min
        case .trailing(let w): lo = t - w + 1
        case .toDate(let u): lo = calendar.periodStart(u, calendar.period(u, t))
        }
        var n = 0
        let after = firstAfter ?? .min
        for (_, fl) in d.values where fl.first <= t && fl.last >= lo && (firstAfter == nil || fl.first > after) { n += 1 }
        return Double(n)
    }
}
