// MARK: - Checkpoint and restore

/// Why a checkpoint could not be restored.
public struct CheckpointError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case notACheckpoint, unsupportedVersion, checksumMismatch, truncated, corrupt }
    public let kind: Kind
    public let message: String
    public var description: String { "checkpoint: \(message)" }
}

/// Little-endian binary writer into a buffer it owns (grown by doubling, freed on `deinit`).
///
/// Why not `[UInt8]`: appending 8 bytes through `Array.append(contentsOf:)` is a generic call
/// with a capacity and uniqueness check each time, and the checkpoint appends millions of
/// fields; here a field is one capacity check and one unaligned store.
/// - Complexity: O(1) amortised per field.
final class ByteWriter {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 4_096) {
        self.capacity = max(64, capacity)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// The bytes written so far (valid until the next write).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    @inline(__always)
    private func reserve(_ n: Int) {
        if count &+ n > capacity { grow(count + n) }
    }

    private func grow(_ needed: Int) {
        let newCapacity = max(needed, capacity * 2)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        fresh.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = fresh
        capacity = newCapacity
    }

    @inline(__always)
    func u8(_ v: UInt8) {
        reserve(1)
        base.storeBytes(of: v, toByteOffset: count, as: UInt8.self)
        count &+= 1
    }
    @inline(__always)
    func u64(_ v: UInt64) {
        reserve(8)
        base.storeBytes(of: v.littleEndian, toByteOffset: count, as: UInt64.self)
        count &+= 8
    }
    @inline(__always) func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    @inline(__always) func f64(_ v: Double) { u64(v.bitPattern) }
    /// LEB128 unsigned varint.
    @inline(__always)
    func varint(_ v0: UInt64) {
        reserve(10)
        var v = v0
        while v >= 0x80 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: count, as: UInt8.self)
            count &+= 1
            v >>= 7
        }
        base.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: count, as: UInt8.self)
        count &+= 1
    }
    @inline(__always) func count(_ n: Int) { varint(UInt64(n)) }
    @inline(__always) func i32(_ v: Int32) { varint(UInt64(UInt32(bitPattern: v))) }
    func string(_ s: String) {
        var s = s
        s.withUTF8 { raw(UnsafeRawBufferPointer($0)) }
    }
    /// Length (varint) then the bytes, one memcpy.
    func raw(_ b: UnsafeRawBufferPointer) {
        count(b.count)
        reserve(b.count)
        if let src = b.baseAddress, b.count > 0 { (base + count).copyMemory(from: src, byteCount: b.count) }
        count &+= b.count
    }
    func raw(_ b: UnsafeBufferPointer<UInt8>) { raw(UnsafeRawBufferPointer(b)) }
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
        let v = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
        at += 8
        return UInt64(littleEndian: v)
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

/// FNV-1a 64 over bytes: the checksum of version-1 checkpoints (detects torn or flipped bytes).
/// - Complexity: O(n), one xor and one multiply per byte (~1.3 ns/byte: the multiply's latency
///   chains); over a raw buffer, never a per-element call.
func fnv1a64(_ b: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for x in b { h = (h ^ UInt64(x)) &* 0x0000_0100_0000_01B3 }
    return h
}

/// An engine checkpoint captured on the engine's thread (``Engine/captureCheckpoint()``) whose
/// remembered ids and checksum are not written yet: hand it to another thread and call
/// ``write(to:)`` (or ``sealed()``) there, so the O(state) passes do not stall ingest.
///
/// It holds the parts before and after the ids, and the ids as copy-on-write hour sets; the
/// ids (24 bytes each, most of a large checkpoint) are serialised only as they are written.
/// Why: a capture that held the whole checkpoint doubled resident memory by its size at every
/// checkpoint (28 MB per million remembered ids), and the fresh buffer's page faults were most
/// of the checkpoint thread's CPU (`perf`).
public struct CheckpointCapture: Sendable {
    /// The 32-byte header (its checksum still zero) and everything before the ids.
    private let head: [UInt8]
    /// The remembered ids as of the capture.
    private let dedup: DedupSnapshot
    /// Everything after the ids.
    private let tail: [UInt8]

    init(head: [UInt8], dedup: DedupSnapshot, tail: [UInt8]) {
        self.head = head
        self.dedup = dedup
        self.tail = tail
    }

    /// Size of the checkpoint in bytes (header included).
    public var byteCount: Int { head.count + dedup.count * DedupIndex.serializedEntrySize + tail.count }

    /// Ids serialised per piece handed to a sink (64 KiB).
    static let idsPerPiece = (64 << 10) / DedupIndex.serializedEntrySize

    /// Hands the finished checkpoint to `sink` in pieces, in order (the header with its
    /// checksum first; pieces of at most 64 KiB for the ids). The concatenation is
    /// ``sealed()``'s bytes.
    /// - Complexity: O(state size), two passes over the ids (the first for the checksum, which
    ///   the header holds), a few ns per id each; memory: one 64 KiB buffer.
    public func write(to sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let h = Engine.checkpointHeaderLength
        var crc = head.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[h...])) }
        forEachIDPiece { crc = CRC32C.update(crc, $0) }
        crc = tail.withUnsafeBytes { CRC32C.update(crc, $0) }
        var header = Array(head[0..<h])
        header.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(crc).littleEndian, toByteOffset: 24, as: UInt64.self) }
        try header.withUnsafeBytes(sink)
        try head.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[h...])) }
        try forEachIDPiece(sink)
        try tail.withUnsafeBytes(sink)
    }

    /// Calls `body` with the ids serialised, ``idsPerPiece`` at a time.
    private func forEachIDPiece(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let size = DedupIndex.serializedEntrySize
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.idsPerPiece * size, alignment: 16)
        defer { scratch.deallocate() }
        var cursor = DedupSnapshot.Cursor()
        var done = 0
        while done < dedup.count {
            let n = dedup.serialize(from: &cursor, into: scratch, maxEntries: min(Self.idsPerPiece, dedup.count - done))
            precondition(n > 0, "dedup index: \(done) ids serialised, \(dedup.count) counted")
            try body(UnsafeRawBufferPointer(start: scratch, count: n * size))
            done += n
        }
    }

    /// The finished checkpoint as one array (``write(to:)``'s pieces joined).
    /// - Complexity: O(state size); memory: the whole checkpoint.
    public func sealed() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(byteCount)
        write { out.append(contentsOf: $0) }
        return out
    }
}

extension Engine {
    static let checkpointMagic: [UInt8] = Array("TALLYCK\u{0}".utf8)
    /// The version written. 2: the header's checksum is the CRC-32C of the body (zero-extended
    /// to 64 bits); 1: FNV-1a 64. The bodies are identical, and both are read.
    static let checkpointVersion: UInt64 = 2
    /// Bytes of the header: magic, version, body length, checksum (8 each).
    static let checkpointHeaderLength = 32
    /// Versions ``restore(pipeline:options:from:)`` reads.
    static let readableCheckpointVersions: ClosedRange<UInt64> = 1...2

    /// The header's checksum of `body` for a checkpoint of `version` (1 or 2).
    /// - Complexity: O(n): ~0.1 ns per byte for version 2 (CRC-32C instruction), ~1.3 ns for 1.
    static func checkpointChecksum(_ body: UnsafeRawBufferPointer, version: UInt64) -> UInt64 {
        version == 1 ? fnv1a64(body) : UInt64(CRC32C.checksum(body))
    }

    /// The whole engine state as a versioned binary: magic, version, body length, checksum
    /// (``checkpointChecksum(_:version:)``), body. Aggregates are keyed by their canonical definition, so a checkpoint
    /// restores into a changed pipeline (unchanged aggregates keep their state).
    ///
    /// Compactness: ring slots are written sparsely (non-zero slots only), strings once
    /// (interned), counts as varints.
    /// - Complexity: O(state size): ``captureCheckpoint()`` then ``CheckpointCapture/sealed()``.
    public func checkpoint() -> [UInt8] {
        captureCheckpoint().sealed()
    }

    /// The state as of now, serialised but not yet checksummed: the part of a checkpoint that
    /// must run on the engine's thread (the bytes must match the log position), kept as cheap
    /// as possible so ingest stalls only this long. The remembered ids, the checksum, the file
    /// write and the fsyncs belong to whoever takes the capture (``CheckpointCapture/write(to:)``,
    /// any thread).
    ///
    /// Cost: the parts before and after the dedup index, each written once by a small writer.
    /// The dedup index, most of the bytes (24 per remembered id), is not written here: the
    /// capture keeps its hour sets, shared copy-on-write (``DedupIndex/snapshot``), and
    /// serialises them as it is written (this took ~19 of the 27.5 ms a capture of 1 M ids held
    /// the engine thread; round 11). The file format is the one ``checkpoint()`` writes (version 2).
    /// - Complexity: O(state size) without the remembered ids: the aggregates, tables and
    ///   interned strings; O(hours) for the ids.
    public func captureCheckpoint() -> CheckpointCapture {
        // After the dedup index: balances, aggregators, tables. Written first (their size is
        // not known in advance) so the output can be allocated exactly once; a string they
        // intern is then also in the string table written below.
        let post = ByteWriter(capacity: 64 << 10)
        writeBalancesAggregatorsTables(post)
        // Before the dedup index: clock, stats, interned strings, the index's header.
        let pre = ByteWriter(capacity: 256 + interner.byteCount + 5 * interner.count)
        func opt(_ v: Micros?) { pre.u8(v == nil ? 0 : 1); pre.i64(v ?? 0) }
        opt(clock)
        opt(earliest)
        pre.u64(arrival)
        pre.u64(UInt64(stats.accepted)); pre.u64(UInt64(stats.duplicates)); pre.u64(UInt64(stats.late)); pre.u64(UInt64(stats.balances))
        for dict in [stats.unrouted, stats.rejected] {
            pre.count(dict.count)
            for (k, v) in dict.sorted(by: { ($0.key.first, $0.key.second) < ($1.key.first, $1.key.second) }) {
                pre.string(k.first); pre.string(k.second); pre.u64(UInt64(v))
            }
        }
        pre.count(interner.count)
        for id in 0..<interner.count { pre.raw(interner.view(Int32(id)).bytes) }
        pre.i64(dedup.expiredThrough)
        let ids = dedup.snapshot   // the remembered ids, serialised as the capture is written
        pre.count(ids.count)

        let header = Self.checkpointHeaderLength
        let dedupBytes = ids.count * DedupIndex.serializedEntrySize
        let bodyLength = UInt64(pre.count + dedupBytes + post.count)
        let head = [UInt8](unsafeUninitializedCapacity: header + pre.count) { buffer, initialized in
            let out = UnsafeMutableRawPointer(buffer.baseAddress!)
            Self.checkpointMagic.withUnsafeBytes { out.copyMemory(from: $0.baseAddress!, byteCount: 8) }
            out.storeBytes(of: Self.checkpointVersion.littleEndian, toByteOffset: 8, as: UInt64.self)
            out.storeBytes(of: bodyLength.littleEndian, toByteOffset: 16, as: UInt64.self)
            out.storeBytes(of: UInt64(0), toByteOffset: 24, as: UInt64.self)   // checksum: written with the ids
            out.advanced(by: header).copyMemory(from: pre.base, byteCount: pre.count)
            initialized = header + pre.count
        }
        return CheckpointCapture(head: head, dedup: ids, tail: Array(post.bytes))
    }

    /// Balances, event aggregators and tables, in checkpoint order.
    /// - Complexity: O(their state); no allocation per ring or row.
    private func writeBalancesAggregatorsTables(_ w: ByteWriter) {
        // Balances.
        w.count(balances.count)
        for (id, b) in balances.sorted(by: { $0.key < $1.key }) { w.string(id); w.f64(b.value); w.i64(b.at); w.u64(b.seq) }
        // Event aggregators.
        let aggs = aggregators.compactMap { $0 }
        w.count(aggs.count)
        for a in aggs {
            w.string(a.canonical)
            w.count(a.cellCount)
            for ci in 0..<a.cellCount {
                let cell = a.flatCell(ci)
                w.i64(a.cellKeys[ci]); w.i64(cell.minTime); w.i64(cell.maxTime)
                w.count(cell.totalCount)
                for t in 0..<cell.totalCount { w.f64(cell.total(t)) }
                w.count(cell.ringCount)
                for ri in 0..<cell.ringCount {
                    let r = cell.ring(ri)
                    w.u8(r.combine.rawValue); w.i64(r.head); w.count(r.capacity)
                    let id = BucketRing.identity(r.combine)
                    var nonIdentity = 0
                    for i in 0..<r.capacity where r.slot(at: i) != id { nonIdentity += 1 }
                    w.count(nonIdentity)
                    for i in 0..<r.capacity where r.slot(at: i) != id { w.count(i); w.f64(r.slot(at: i)) }
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
                    w.count(v.count)
                    for fi in 0..<v.count {
                        switch v.field(fi, interner) {
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
        guard readableCheckpointVersions.contains(version) else {
            throw CheckpointError(kind: .unsupportedVersion, message: "version \(version); this build reads versions \(readableCheckpointVersions.lowerBound) to \(readableCheckpointVersions.upperBound)")
        }
        let length = try h.u64()
        let sum = try h.u64()
        guard UInt64(bytes.count - 32) == length else {
            throw CheckpointError(kind: .truncated, message: "body is \(bytes.count - 32) bytes, header says \(length)")
        }
        guard (bytes.withUnsafeBytes { checkpointChecksum(UnsafeRawBufferPointer(rebasing: $0[32...]), version: version) }) == sum else {
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
            if let t = target, !t.adopt(cells: cells, keys: keys, distinct: distinct) {
                throw CheckpointError(kind: .corrupt, message: "aggregate state does not match its definition")
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
                let key = try r.i32()
                let vn = try r.count()
                guard vn >= 1 else { throw CheckpointError(kind: .corrupt, message: "row without versions") }
                var versions: [RowVersion] = []
                for _ in 0..<vn {
                    let time = try r.i64(), seq = try r.u64(), pos = try r.count(max: 64)
                    let fn = try r.count(max: EventFields.capacity)
                    var v = RowVersion(time: time, seq: seq, pos: pos, count: fn)
                    for fi in 0..<fn {
                        switch try r.u8() {
                        case 0: v.set(fi, .absent, e.interner)
                        case 1: v.set(fi, .string(try str(try r.i32())), e.interner)
                        case 2: v.set(fi, .int(try r.i64()), e.interner)
                        case 3: v.set(fi, .number(try r.f64()), e.interner)
                        case 4: v.set(fi, .bool(false), e.interner)
                        case 5: v.set(fi, .bool(true), e.interner)
                        case 6:
                            let n = try r.count()
                            var ids: [Int32] = []
                            for _ in 0..<n { ids.append(try r.i32()) }
                            for id in ids { _ = try str(id) }
                            v.set(fi, .strings(e.interner.list(e.interner.listID(ids))), e.interner)
                        default: throw CheckpointError(kind: .corrupt, message: "bad field tag")
                        }
                    }
                    if let t = target, v.pos >= t.def.types.count { throw CheckpointError(kind: .corrupt, message: "row type out of range") }
                    versions.append(v)
                }
                let latest = versions.removeLast()
                rows.append(Row(key: key, latest: latest, older: versions))
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
