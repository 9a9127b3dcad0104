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

/// A view of one cell's block in an ``EventAggregator`` (see ``EventAggregator/CellLayout``):
/// the state of ``Cell`` without its arrays.
struct FlatCell {
    let base: UnsafeMutableRawPointer
    let layout: EventAggregator.CellLayout
    unowned(unsafe) let aggregator: EventAggregator
    let specCount: Int

    var minTime: Micros {
        @inline(__always) get { base.load(as: Int64.self) }
        @inline(__always) nonmutating set { base.storeBytes(of: newValue, as: Int64.self) }
    }
    var maxTime: Micros {
        @inline(__always) get { base.load(fromByteOffset: 8, as: Int64.self) }
        @inline(__always) nonmutating set { base.storeBytes(of: newValue, toByteOffset: 8, as: Int64.self) }
    }
    var totalCount: Int { aggregator.channels.count }
    func total(_ ch: Int) -> Double { base.load(fromByteOffset: 16 + 8 * ch, as: Double.self) }
    var ringCount: Int { layout.rings }
    /// Ring `r` (channel `r / specCount`, spec `r % specCount`).
    func ring(_ r: Int) -> FlatRing {
        FlatRing(base: base + 8 * layout.ringOffset[r], capacity: aggregator.allSpecs[r % specCount].capacity,
                 combine: aggregator.channels[r / specCount].kind)
    }

    /// Writes an empty cell.
    func initialize() {
        minTime = .max
        maxTime = .min
        for ch in 0..<totalCount {
            base.storeBytes(of: BucketRing.identity(aggregator.channels[ch].kind), toByteOffset: 16 + 8 * ch, as: Double.self)
        }
        for r in 0..<ringCount { ring(r).initialize() }
    }

    /// Writes `c`'s state (its shape checked by the caller).
    func initialize(from c: Cell) {
        minTime = c.minTime
        maxTime = c.maxTime
        for (ch, t) in c.totals.enumerated() { base.storeBytes(of: t, toByteOffset: 16 + 8 * ch, as: Double.self) }
        for (r, ring) in c.rings.enumerated() { self.ring(r).initialize(from: ring) }
    }

    /// The value form. - Complexity: O(slots), allocates.
    var cell: Cell {
        Cell(totals: (0..<totalCount).map(total), rings: (0..<ringCount).map { ring($0).ring }, minTime: minTime, maxTime: maxTime)
    }
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
    /// Per cell, one block of 8-byte words owned here (see ``CellLayout``); `cellCount` of
    /// `cellCapacity` used.
    private(set) var cellBlocks: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private var cellCapacity = 0
    /// Number of cells (the all-events cells and the group cells).
    @exclusivity(unchecked) private(set) var cellCount = 0
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
        /// The spec's ring capacity (slots of a ``FlatRing``).
        let capacity: Int
        /// Every time in `(lo, hi]` is in bucket `b`: a fine bucket's span, or for a calendar
        /// ring in a fixed-offset zone the instants of the last event's local day. Empty
        /// (`lo = .max`) until the first event, and always for a calendar ring in a zone with
        /// transitions (which remembers `day` instead).
        var lo: Int64 = .max
        var hi: Int64 = .min
        var b: Int64 = 0
        /// Calendar ring in a zone with transitions: the local day of `b` (`.max`: none).
        var day: Int64 = .max
    }
    /// `allSpecs.count` memos (at least one), owned here.
    let memo: UnsafeMutablePointer<BucketMemo>
    let memoCount: Int

    /// Where a cell's state lives in its block of 8-byte words: `minTime`, `maxTime`, one total
    /// per channel, then its rings channel-major (ring `ch * specs + k` has spec `k`), each
    /// ``FlatRing/words(capacity:)`` long. All-events cells have `allSpecs`, group cells
    /// `groupSpecs` (a prefix).
    ///
    /// Why flat: `[Cell]` of `[Double]` totals and `[BucketRing]` of `[Double]` slots cost a
    /// uniqueness check and a bounds check per level on every update; a block is plain loads and
    /// stores. Memory: the same 8 bytes per slot, plus 16 per ring.
    struct CellLayout {
        /// Words per cell.
        let words: Int
        /// Ring count (channels × specs).
        let rings: Int
        /// `rings` word offsets into the block, owned by the aggregator.
        let ringOffset: UnsafeMutablePointer<Int>
    }
    let allLayout: CellLayout
    let groupLayout: CellLayout
    /// `channels.count`, `allSpecs.count`, `groupSpecs.count` and each channel's kind, read per
    /// update without touching the arrays.
    let channelCount: Int
    let allSpecCount: Int
    let groupSpecCount: Int
    let channelKinds: UnsafeMutablePointer<BucketRing.Combine>

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
            let cap = k < all.count ? max(all[k].capacity, 1) : 1
            switch k < all.count ? all[k].kind : .fine(1) {
            case .fine(let r): (memo + k).initialize(to: BucketMemo(res: r, unit: .day, capacity: cap))
            case .period(let u): (memo + k).initialize(to: BucketMemo(res: 0, unit: u, capacity: cap))
            }
        }
        let nch = channels.count
        func makeLayout(_ specs: [RingSpec]) -> CellLayout {
            let n = nch * specs.count
            let off = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
            var w = 2 + nch
            for r in 0..<n {
                off[r] = w
                w += FlatRing.words(capacity: specs[r % specs.count].capacity)
            }
            return CellLayout(words: w, rings: n, ringOffset: off)
        }
        allLayout = makeLayout(all)
        groupLayout = makeLayout(window)
        channelCount = nch
        allSpecCount = all.count
        groupSpecCount = window.count
        channelKinds = .allocate(capacity: max(nch, 1))
        for (ch, c) in channels.enumerated() { (channelKinds + ch).initialize(to: c.kind) }
        cellBlocks = .allocate(capacity: 1)
        cellCapacity = 1
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
        freeCells()
        cellBlocks.deallocate()
        allLayout.ringOffset.deallocate()
        groupLayout.ringOffset.deallocate()
        channelKinds.deallocate()
    }

    /// The bucket of `t` in ring spec `k` (`ceil(t / res)` or the calendar period index).
    ///
    /// The common case, `t` in the memo's range, is two compares inlined into the caller; the
    /// rest is out of line (``bucketMiss(_:_:_:)``), so the caller does not set up the
    /// calendar arithmetic on every event.
    /// - Complexity: O(1); no division when `t` falls in the same bucket as the last call.
    @inline(__always)
    func bucket(_ k: Int, _ t: Micros, _ calendar: ZoneCalendar) -> Int64 {
        let m = memo + k
        if t > m.pointee.lo && t <= m.pointee.hi { return m.pointee.b }
        return Self.bucketMiss(m, t, calendar)
    }

    /// ``bucket(_:_:_:)`` when `t` is outside the memo's range. Fine rings: `t` in the next
    /// bucket (a time-ordered stream moving on by one resolution step) advances the memo by
    /// one step; only a jump divides. Calendar rings in a fixed-offset zone: a new local day
    /// becomes the range `(midnight - 1, next midnight - 1]`; in a zone with transitions the
    /// local day is computed and compared.
    @inline(never)
    static func bucketMiss(_ m: UnsafeMutablePointer<BucketMemo>, _ t: Micros, _ calendar: ZoneCalendar) -> Int64 {
        let res = m.pointee.res
        if res > 0 {
            if m.pointee.lo != .max && t > m.pointee.hi {
                // The next bucket: (hi, hi + res].
                let next = m.pointee.hi &+ res
                if t <= next {
                    m.pointee.lo = m.pointee.hi
                    m.pointee.hi = next
                    m.pointee.b &+= 1
                    return m.pointee.b
                }
            }
            let b = ceilDiv(t, res)
            m.pointee.lo = (b &- 1) &* res
            m.pointee.hi = b &* res
            m.pointee.b = b
            return b
        }
        let day = calendar.localDay(t)
        if let off = calendar.fixedOffset {
            // No transition: the local day is exactly the instants [midnight, midnight + 1 day).
            let start = day &* ZoneCalendar.microsPerDay &- off &* ZoneCalendar.microsPerSecond
            let b = calendar.period(m.pointee.unit, localDay: day)
            m.pointee.lo = start &- 1
            m.pointee.hi = start &+ ZoneCalendar.microsPerDay &- 1
            m.pointee.b = b
            m.pointee.day = .max
            return b
        }
        if day == m.pointee.day { return m.pointee.b }
        let b = calendar.period(m.pointee.unit, localDay: day)
        m.pointee.lo = .max
        m.pointee.hi = .min
        m.pointee.day = day
        m.pointee.b = b
        return b
    }

    // MARK: Cells

    @inline(__always)
    static func key(group: Int32?, partition: Int64) -> Int64 {
        (Int64((group ?? -1) &+ 1) << 32) | Int64(UInt32(truncatingIfNeeded: partition))
    }

    @inline(__always)
    func layout(isAll: Bool) -> CellLayout { isAll ? allLayout : groupLayout }

    /// The specs of cell `i`'s rings.
    func specs(ofCell i: Int) -> [RingSpec] { isAllCell(i) ? allSpecs : groupSpecs }

    /// A read/write view of cell `i` (valid until the cells are replaced or the aggregator dies).
    @inline(__always)
    func flatCell(_ i: Int) -> FlatCell {
        let isAll = isAllCell(i)
        return FlatCell(base: cellBlocks[i], layout: isAll ? allLayout : groupLayout, aggregator: self,
                        specCount: isAll ? allSpecs.count : groupSpecs.count)
    }

    /// Appends an empty cell's block.
    private func appendCell(isAll: Bool, key: Int64) {
        let l = layout(isAll: isAll)
        let block = UnsafeMutableRawPointer.allocate(byteCount: 8 * l.words, alignment: 8)
        if cellCount == cellCapacity {
            let bigger = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 2 * cellCapacity)
            bigger.moveInitialize(from: cellBlocks, count: cellCount)
            cellBlocks.deallocate()
            cellBlocks = bigger
            cellCapacity *= 2
        }
        (cellBlocks + cellCount).initialize(to: block)
        cellCount += 1
        cellKeys.append(key)
        flatCell(cellCount - 1).initialize()
    }

    private func freeCells() {
        for i in 0..<cellCount { cellBlocks[i].deallocate() }
        cellCount = 0
    }

    /// The cells in value form (checkpoint restore's shape, reload donors, tests).
    /// - Complexity: O(cells × ring slots), allocates.
    var cells: [Cell] { (0..<cellCount).map { flatCell($0).cell } }

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
        let i = cellCount
        appendCell(isAll: isAll, key: key)
        if def.distinct != nil { distinctCells.append(DistinctCell()) }
        cellIndex[key] = Int32(i)
        if isAll { lastKey = key; lastIndex = i }
        return i
    }

    /// Replaces the cells (restore, reconfigure) and resets the lookup cache.
    /// - Returns: false (and no cells) when a cell's shape (totals, ring count, capacities,
    ///   kinds) does not match this aggregate's definition: a corrupt checkpoint.
    @discardableResult
    func adopt(cells: [Cell], keys: [Int64], distinct: [DistinctCell]) -> Bool {
        freeCells()
        cellKeys = []
        for (c, key) in zip(cells, keys) {
            let isAll = key >> 32 == 0
            let specs = isAll ? allSpecs : groupSpecs
            let l = layout(isAll: isAll)
            guard c.totals.count == channels.count, c.rings.count == l.rings,
                  c.rings.indices.allSatisfy({ r in
                      c.rings[r].slots.count == max(specs[r % specs.count].capacity, 1)
                          && c.rings[r].combine == channels[r / specs.count].kind
                  })
            else {
                freeCells()
                cellKeys = []
                distinctCells = []
                cellIndex = [:]
                lastKey = .min
                groupCell = []
                return false
            }
            appendCell(isAll: isAll, key: key)
            flatCell(cellCount - 1).initialize(from: c)
        }
        distinctCells = distinct
        cellIndex = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, Int32($0)) })
        lastKey = .min
        groupCell = []
        return cells.count == keys.count
    }

    func isAllCell(_ i: Int) -> Bool { cellKeys[i] >> 32 == 0 }

    // MARK: Hot path

    /// Applies one event of a routed type.
    /// - Complexity: O(channels × (conditions + rings)), no allocation once the cell exists.
    @inline(__always)
    /// `e` is read in place (the decoder's slot): no copy of the ~190-byte event.
    func apply(_ e: UnsafePointer<Event>, pos: Int, calendar: ZoneCalendar, interner: Interner) {
        var partition: Int64 = 0
        if let ps = partitionSlots {
            guard ps[pos] >= 0, case .int(let y) = e.pointee.fields[ps[pos]] else { return }
            partition = y
        }
        let n = channels.count
        var c0: Double? = nil, c1: Double? = nil, c2: Double? = nil
        c0 = channels[0].contribution(pos: pos) { e.pointee.fields[$0] }
        if n > 1 { c1 = channels[1].contribution(pos: pos) { e.pointee.fields[$0] } }
        if n > 2 { c2 = channels[2].contribution(pos: pos) { e.pointee.fields[$0] } }
        if c0 == nil && c1 == nil && c2 == nil { return }

        var distinctID: Int32 = -1
        if let ds = distinctSlots {
            guard c0 != nil, ds[pos] >= 0, let id = Self.internValue(e.pointee.fields[ds[pos]], interner) else { return }
            distinctID = id
        }
        let all = cellIndex(for: Self.key(group: nil, partition: partition), isAll: true)
        update(all, isAll: true, e.pointee.time, c0, c1, c2, distinctID, calendar)
        if let bs = bySlots, bs[pos] >= 0, let g = Self.internValue(e.pointee.fields[bs[pos]], interner) {
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
            update(gi, isAll: false, e.pointee.time, c0, c1, c2, distinctID, calendar)
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
    private func update(_ i: Int, isAll: Bool, _ t: Micros, _ c0: Double?, _ c1: Double?, _ c2: Double?, _ distinctID: Int32, _ calendar: ZoneCalendar) {
        if distinctID >= 0 {
            distinctCells.withUnsafeMutableBufferPointer { d in
                if let fl = d[i].values[distinctID] {
                    d[i].values[distinctID] = FirstLast(first: min(fl.first, t), last: max(fl.last, t))
                } else {
                    d[i].values[distinctID] = FirstLast(first: t, last: t)
                }
                if t > d[i].maxFirst { d[i].maxFirst = t }
            }
            let c = flatCell(i)
            if t < c.minTime { c.minTime = t }
            if t > c.maxTime { c.maxTime = t }
            return
        }
        let nch = channelCount
        // Bucket indices once per event (at most a few rings), reading the specs in place
        // (no array copy: no retain/release per update).
        var b0: Int64 = 0, b1: Int64 = 0, b2: Int64 = 0
        let ns = isAll ? allSpecCount : groupSpecCount
        for k in 0..<min(ns, 3) {
            let b = bucket(k, t, calendar)
            if k == 0 { b0 = b } else if k == 1 { b1 = b } else { b2 = b }
        }
        // Plain loads and stores into the cell's block: no uniqueness or bounds checks.
        let base = cellBlocks[i]
        let l = isAll ? allLayout : groupLayout
        if t < base.load(as: Int64.self) { base.storeBytes(of: t, as: Int64.self) }
        if t > base.load(fromByteOffset: 8, as: Int64.self) { base.storeBytes(of: t, toByteOffset: 8, as: Int64.self) }
        for ch in 0..<nch {
            guard let v = ch == 0 ? c0 : (ch == 1 ? c1 : c2) else { continue }
            let kind = channelKinds[ch]
            let at = 16 &+ 8 &* ch
            let old = base.load(fromByteOffset: at, as: Double.self)
            switch kind {
            case .sum: base.storeBytes(of: old + v, toByteOffset: at, as: Double.self)
            case .min: base.storeBytes(of: min(old, v), toByteOffset: at, as: Double.self)
            case .max: base.storeBytes(of: max(old, v), toByteOffset: at, as: Double.self)
            }
            for k in 0..<ns {
                FlatRing(base: base + 8 &* l.ringOffset[ch &* ns &+ k], capacity: memo[k].capacity, combine: kind)
                    .add(k == 0 ? b0 : (k == 1 ? b1 : b2), v)
            }
        }
    }

    @inline(__always)
    static func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 { -ZoneCalendar.floorDiv(-a, b) }

    // MARK: Evaluation

    /// The value of channel `ch` of cell `i` over the window as of `t`; nil when the rings
    /// cannot answer (older than they reach) or a min/max of nothing.
    func channelValue(_ i: Int, _ ch: Int, at t: Micros, calendar: ZoneCalendar) -> Double? {
        let cell = flatCell(i)
        let specs = isAllCell(i) ? allSpecs : groupSpecs
        let kind = channels[ch].kind
        func finite(_ v: Double) -> Double? { v.isFinite ? v : (kind == .sum ? 0 : nil) }
        func ring(_ k: Int) -> FlatRing { cell.ring(ch * specs.count + k) }
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
            if t >= cell.maxTime { return finite(cell.total(ch)) }
            guard kind == .sum else { return nil }
            if t < cell.minTime { return 0 }
            guard let after = fineRange(after: t, through: cell.maxTime) else { return nil }
            return cell.total(ch) - after
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
