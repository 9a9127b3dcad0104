// MARK: - Checkpoint and restore

/// Why a checkpoint could not be restored.
public struct CheckpointError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case notACheckpoint, unsupportedVersion, checksumMismatch, truncated, corrupt }
    public let kind: Kind
    public let message: String
    public var description: String { "checkpoint: \(message)" }
}

/// Little-endian binary writer.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    /// LEB128 unsigned varint.
    mutating func varint(_ v0: UInt64) {
        var v = v0
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
    mutating func count(_ n: Int) { varint(UInt64(n)) }
    mutating func i32(_ v: Int32) { varint(UInt64(UInt32(bitPattern: v))) }
    mutating func string(_ s: String) {
        count(s.utf8.count)
        bytes.append(contentsOf: s.utf8)
    }
    mutating func raw(_ b: UnsafeBufferPointer<UInt8>) {
        count(b.count)
        bytes.append(contentsOf: b)
    }
}

/// Little-endian binary reader over a checkpoint body.
struct ByteReader {
    let bytes: [UInt8]
    var at: Int

    mutating func need(_ n: Int) throws(CheckpointError) {
        guard n >= 0, at + n <= bytes.count else { throw CheckpointError(kind: .truncated, message: "ends early at byte \(at)") }
    }
    mutating func u8() throws(CheckpointError) -> UInt8 {
        try need(1)
        defer { at += 1 }
        return bytes[at]
    }
    mutating func u64() throws(CheckpointError) -> UInt64 {
        try need(8)
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
        at += 8
        return v
    }
    mutating func i64() throws(CheckpointError) -> Int64 { Int64(bitPattern: try u64()) }
    mutating func f64() throws(CheckpointError) -> Double { Double(bitPattern: try u64()) }
    mutating func varint() throws(CheckpointError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try u8()
            guard shift < 64 else { throw CheckpointError(kind: .corrupt, message: "varint too long at byte \(at)") }
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }
    /// A count; unless `sparse`, at most what the remaining bytes could hold (so a corrupt
    /// count cannot make the reader allocate gigabytes).
    mutating func count(max: Int = 1 << 32, sparse: Bool = false) throws(CheckpointError) -> Int {
        let n = try varint()
        guard n <= UInt64(max), sparse || n <= UInt64(bytes.count - at) + 1 else { throw CheckpointError(kind: .corrupt, message: "implausible count \(n) at byte \(at)") }
        return Int(n)
    }
    mutating func i32() throws(CheckpointError) -> Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: try varint())) }
    mutating func string() throws(CheckpointError) -> String {
        let n = try count()
        try need(n)
        defer { at += n }
        return String(decoding: bytes[at..<at + n], as: UTF8.self)
    }
    mutating func bytesSlice() throws(CheckpointError) -> ArraySlice<UInt8> {
        let n = try count()
        try need(n)
        defer { at += n }
        return bytes[at..<at + n]
    }
}

/// FNV-1a 64 over bytes: the checkpoint's checksum (detects torn or flipped bytes).
func fnv1a64(_ b: ArraySlice<UInt8>) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for x in b { h = (h ^ UInt64(x)) &* 0x0000_0100_0000_01B3 }
    return h
}

extension Engine {
    static let checkpointMagic: [UInt8] = Array("TALLYCK\u{0}".utf8)
    static let checkpointVersion: UInt64 = 1

    /// The whole engine state as a versioned binary: magic, version, body length, FNV-1a
    /// checksum, body. Aggregates are keyed by their canonical definition, so a checkpoint
    /// restores into a changed pipeline (unchanged aggregates keep their state).
    ///
    /// Compactness: ring slots are written sparsely (non-zero slots only), strings once
    /// (interned), counts as varints.
    /// - Complexity: O(state size).
    public func checkpoint() -> [UInt8] {
        var w = ByteWriter()
        func opt(_ v: Micros?) { w.u8(v == nil ? 0 : 1); w.i64(v ?? 0) }
        opt(clock)
        opt(earliest)
        w.u64(arrival)
        // Stats.
        w.u64(UInt64(stats.accepted)); w.u64(UInt64(stats.duplicates)); w.u64(UInt64(stats.late)); w.u64(UInt64(stats.balances))
        for dict in [stats.unrouted, stats.rejected] {
            w.count(dict.count)
            for (k, v) in dict.sorted(by: { ($0.key.first, $0.key.second) < ($1.key.first, $1.key.second) }) {
                w.string(k.first); w.string(k.second); w.u64(UInt64(v))
            }
        }
        // Interned strings, in id order.
        w.count(interner.count)
        for id in 0..<interner.count { w.raw(interner.view(Int32(id)).bytes) }
        // Dedup.
        w.i64(dedup.expiredThrough)
        let entries = dedup.entries
        w.count(entries.count)
        for (k, h) in entries { w.u64(k.hi); w.u64(k.lo); w.i64(h) }
        // Balances.
        w.count(balances.count)
        for (id, b) in balances.sorted(by: { $0.key < $1.key }) { w.string(id); w.f64(b.value); w.i64(b.at); w.u64(b.seq) }
        // Event aggregators.
        let aggs = aggregators.compactMap { $0 }
        w.count(aggs.count)
        for a in aggs {
            w.string(a.canonical)
            w.count(a.cells.count)
            for (ci, cell) in a.cells.enumerated() {
                w.i64(a.cellKeys[ci]); w.i64(cell.minTime); w.i64(cell.maxTime)
                w.count(cell.totals.count)
                for t in cell.totals { w.f64(t) }
                w.count(cell.rings.count)
                for r in cell.rings {
                    w.u8(r.combine.rawValue); w.i64(r.head); w.count(r.slots.count)
                    let id = BucketRing.identity(r.combine)
                    let nz = r.slots.indices.filter { r.slots[$0] != id }
                    w.count(nz.count)
                    for i in nz { w.count(i); w.f64(r.slots[i]) }
                }
                if a.def.distinct != nil {
                    let d = a.distinctCells[ci]
                    w.i64(d.maxFirst)
                    w.count(d.values.count)
                    for (v, fl) in d.values { w.i32(v); w.i64(fl.first); w.i64(fl.last) }
                }
            }
        }
        // Tables.
        w.count(tables.count)
        for t in tables {
            w.string(t.canonical)
            w.i64(t.maxTime)
            w.count(t.rows.count)
            for r in t.rows {
                w.i32(r.key)
                w.count(r.versions.count)
                for v in r.versions {
                    w.i64(v.time); w.u64(v.seq); w.count(v.pos)
                    w.count(v.fields.count)
                    for f in v.fields {
                        switch f {
                        case .absent: w.u8(0)
                        case .string(let s): w.u8(1); w.i32(interner.lookup(s.bytes) ?? interner.intern(s.bytes))
                        case .int(let i): w.u8(2); w.i64(i)
                        case .number(let d): w.u8(3); w.f64(d)
                        case .bool(let b): w.u8(b ? 5 : 4)
                        case .strings(let l):
                            w.u8(6); w.count(l.count)
                            for s in l { w.i32(interner.lookup(s.bytes) ?? interner.intern(s.bytes)) }
                        }
                    }
                }
            }
        }
        var out = Self.checkpointMagic
        var head = ByteWriter()
        head.u64(Self.checkpointVersion)
        head.u64(UInt64(w.bytes.count))
        head.u64(fnv1a64(w.bytes[...]))
        out += head.bytes
        out += w.bytes
        return out
    }

    /// An engine for `pipeline` with the state of a checkpoint. Aggregates whose canonical
    /// definition is not in the checkpoint start empty.
    /// - Throws: ``CheckpointError`` for a wrong magic, an unknown version, a checksum
    ///   mismatch or a truncated/corrupt body (nothing is half-restored: a new engine is built).
    public static func restore(pipeline: Pipeline, options: EngineOptions = EngineOptions(), from bytes: [UInt8]) throws(CheckpointError) -> Engine {
        guard bytes.count >= 32, Array(bytes[0..<8]) == checkpointMagic else {
            throw CheckpointError(kind: .notACheckpoint, message: "not a Tally checkpoint (bad magic)")
        }
        var h = ByteReader(bytes: bytes, at: 8)
        let version = try h.u64()
        guard version == checkpointVersion else {
            throw CheckpointError(kind: .unsupportedVersion, message: "version \(version); this build reads version \(checkpointVersion)")
        }
        let length = try h.u64()
        let sum = try h.u64()
        guard UInt64(bytes.count - 32) == length else {
            throw CheckpointError(kind: .truncated, message: "body is \(bytes.count - 32) bytes, header says \(length)")
        }
        guard fnv1a64(bytes[32...]) == sum else {
            throw CheckpointError(kind: .checksumMismatch, message: "checksum mismatch: the file is corrupt")
        }
        let e = Engine(pipeline: pipeline, options: options)
        var r = ByteReader(bytes: bytes, at: 32)
        func opt() throws(CheckpointError) -> Micros? {
            let has = try r.u8()
            let v = try r.i64()
            return has == 1 ? v : nil
        }
        e.clock = try opt()
        e.earliest = try opt()
        e.arrival = try r.u64()
        e.stats.accepted = Int(try r.u64()); e.stats.duplicates = Int(try r.u64())
        e.stats.late = Int(try r.u64()); e.stats.balances = Int(try r.u64())
        for k in 0..<2 {
            let n = try r.count()
            var d: [EngineStats.Label: Int] = [:]
            for _ in 0..<n { d[EngineStats.Label(first: try r.string(), second: try r.string())] = Int(try r.u64()) }
            if k == 0 { e.stats.unrouted = d } else { e.stats.rejected = d }
        }
        let strings = try r.count()
        for i in 0..<strings {
            let s = try r.bytesSlice()
            let id = s.withUnsafeBufferPointer { e.interner.intern($0) }
            guard id == Int32(i) else { throw CheckpointError(kind: .corrupt, message: "duplicate interned string") }
        }
        func str(_ id: Int32) throws(CheckpointError) -> StringView {
            guard id >= 0, Int(id) < e.interner.count else { throw CheckpointError(kind: .corrupt, message: "string id \(id) out of range") }
            return e.interner.view(id)
        }
        let expired = try r.i64()
        let dn = try r.count()
        var entries: [(EventKey, Int64)] = []
        entries.reserveCapacity(dn)
        for _ in 0..<dn { entries.append((EventKey(hi: try r.u64(), lo: try r.u64()), try r.i64())) }
        e.dedup.restore(entries, expiredThrough: expired)
        let bn = try r.count()
        for _ in 0..<bn {
            let id = try r.string()
            let b = Balance(value: try r.f64(), at: try r.i64(), seq: try r.u64())
            if let i = pipeline.indicatorIndex(id), pipeline.indicators[i].acceptsBalance { e.balances[id] = b }
        }
        // Aggregators by canonical definition.
        var byCanonical: [String: [EventAggregator]] = [:]
        for a in e.aggregators.compactMap({ $0 }) { byCanonical[a.canonical, default: []].append(a) }
        let an = try r.count()
        for _ in 0..<an {
            let canonical = try r.string()
            let target = byCanonical[canonical]?.first
            if target != nil { byCanonical[canonical]!.removeFirst() }
            let hasDistinct = !canonical.contains("|distinct:-|")
            let cn = try r.count()
            var cells: [Cell] = [], keys: [Int64] = [], distinct: [DistinctCell] = []
            for _ in 0..<cn {
                let key = try r.i64()
                var cell = Cell(totals: [], rings: [], minTime: try r.i64(), maxTime: try r.i64())
                let tn = try r.count()
                for _ in 0..<tn { cell.totals.append(try r.f64()) }
                let rn = try r.count()
                for _ in 0..<rn {
                    guard let combine = BucketRing.Combine(rawValue: try r.u8()) else { throw CheckpointError(kind: .corrupt, message: "bad ring kind") }
                    let head = try r.i64()
                    let cap = try r.count(max: 1 << 26, sparse: true)
                    var slots = [Double](repeating: BucketRing.identity(combine), count: cap)
                    let nz = try r.count()
                    for _ in 0..<nz {
                        let i = try r.count(max: cap, sparse: true)
                        guard i < cap else { throw CheckpointError(kind: .corrupt, message: "ring slot out of range") }
                        slots[i] = try r.f64()
                    }
                    cell.rings.append(BucketRing(combine: combine, head: head, slots: slots))
                }
                if hasDistinct {
                    var d = DistinctCell()
                    d.maxFirst = try r.i64()
                    let vn = try r.count()
                    d.values.reserveCapacity(vn)
                    for _ in 0..<vn { d.values[try r.i32()] = FirstLast(first: try r.i64(), last: try r.i64()) }
                    distinct.append(d)
                }
                cells.append(cell)
                keys.append(key)
            }
            if let t = target {
                t.adopt(cells: cells, keys: keys, distinct: distinct)
            }
        }
        // Tables.
        let tn = try r.count()
        for _ in 0..<tn {
            let canonical = try r.string()
            let target = e.tables.first { $0.canonical == canonical && $0.rows.isEmpty }
            let maxTime = try r.i64()
            let rn = try r.count()
            var rows: [Row] = []
            rows.reserveCapacity(rn)
            for _ in 0..<rn {
                var row = Row(key: try r.i32(), versions: [])
                let vn = try r.count()
                for _ in 0..<vn {
                    var v = RowVersion(time: try r.i64(), seq: try r.u64(), pos: try r.count(max: 64), fields: [])
                    let fn = try r.count(max: EventFields.capacity)
                    for _ in 0..<fn {
                        switch try r.u8() {
                        case 0: v.fields.append(.absent)
                        case 1: v.fields.append(.string(try str(try r.i32())))
                        case 2: v.fields.append(.int(try r.i64()))
                        case 3: v.fields.append(.number(try r.f64()))
                        case 4: v.fields.append(.bool(false))
                        case 5: v.fields.append(.bool(true))
                        case 6:
                            let n = try r.count()
                            var names: [String] = []
                            for _ in 0..<n { names.append(try str(try r.i32()).string) }
                            v.fields.append(.strings(e.interner.internList(names)))
                        default: throw CheckpointError(kind: .corrupt, message: "bad field tag")
                        }
                    }
                    if let t = target, v.pos >= t.def.types.count { throw CheckpointError(kind: .corrupt, message: "row type out of range") }
                    row.versions.append(v)
                }
                rows.append(row)
            }
            if let t = target {
                t.rows = rows
                t.maxTime = maxTime
                t.index = Dictionary(uniqueKeysWithValues: rows.enumerated().map { ($1.key, Int32($0)) })
                t.rebuildAggregates(interner: e.interner)
            }
        }
        guard r.at == bytes.count else { throw CheckpointError(kind: .corrupt, message: "\(bytes.count - r.at) trailing bytes") }
        return e
    }

    // MARK: Reconfigure

    /// What ``reconfigure(to:)`` kept.
    public struct ReconfigureReport: Sendable {
        /// Indicators whose state carried over (definition unchanged).
        public var kept: [String] = []
        /// Indicators that start from empty state (new or changed).
        public var fresh: [String] = []
    }

    /// Switches to a new pipeline (hot reload): aggregates and tables whose canonical
    /// definition is unchanged keep their state; new or changed ones start empty. The clock,
    /// dedup index, balances of indicators that still take them, and stats carry over.
    /// - Complexity: O(indicators + rows of kept tables).
    @discardableResult
    public func reconfigure(to newPipeline: Pipeline) -> ReconfigureReport {
        var report = ReconfigureReport()
        var oldAggs: [String: [EventAggregator]] = [:]
        for a in aggregators.compactMap({ $0 }) { oldAggs[a.canonical, default: []].append(a) }
        var oldTables: [String: [StateTable]] = [:]
        for t in tables { oldTables[t.canonical, default: []].append(t) }
        pipeline = newPipeline
        calendar = ZoneCalendar(identifier: newPipeline.timeZoneIdentifier)
        build(newPipeline)
        for (i, a) in aggregators.enumerated() {
            guard let a else { continue }
            if let old = oldAggs[a.canonical]?.first {
                oldAggs[a.canonical]!.removeFirst()
                a.adopt(cells: old.cells, keys: old.cellKeys, distinct: old.distinctCells)
                report.kept.append(newPipeline.indicators[i].id)
            } else {
                report.fresh.append(newPipeline.indicators[i].id)
            }
        }
        for t in tables {
            if let old = oldTables[t.canonical]?.first {
                oldTables[t.canonical]!.removeFirst()
                t.rows = old.rows
                t.index = old.index
                t.maxTime = old.maxTime
                t.rebuildAggregates(interner: interner)
                report.kept += t.aggregates.map { newPipeline.indicators[$0.indicator].id }
            } else {
                report.fresh += t.aggregates.map { newPipeline.indicators[$0.indicator].id }
            }
        }
        for (i, ind) in newPipeline.indicators.enumerated() where aggregators[i] == nil && tableOf[i] == nil {
            report.kept.append(ind.id)  // derived: computed from the others
        }
        balances = balances.filter { id, _ in newPipeline.indicatorIndex(id).map { newPipeline.indicators[$0].acceptsBalance } ?? false }
        return report
    }
}
