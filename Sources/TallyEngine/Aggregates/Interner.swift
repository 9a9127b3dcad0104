#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Interner

/// Gives every distinct byte string (state-table keys, distinct values, group names, row
/// strings) a dense `Int32` id, and keeps one copy of its bytes for the engine's lifetime.
///
/// Why: a key seen a million times costs its bytes once; aggregates then hash and compare
/// 4-byte ids. The bytes live in fixed 64 KiB pages that are never moved, so a
/// ``StringView`` into the interner stays valid as long as the interner lives (rows keep
/// their string fields as such views).
///
/// Memory per string: its bytes + 16 bytes of entry (pointer, length, hash) + ~8 bytes of
/// open-addressing table at load ≤ 0.5.
/// - Complexity: `intern`/`lookup` O(length) expected, no allocation except when a page or
///   the table grows.
final class Interner {
    // Exclusivity checks off: one owner thread (the engine's); `intern` is on the per-event path.
    private static let pageSize = 64 * 1024
    @exclusivity(unchecked) private var pages: [UnsafeMutablePointer<UInt8>] = []
    @exclusivity(unchecked) private var pageUsed = Interner.pageSize
    @exclusivity(unchecked) private var starts: [UnsafePointer<UInt8>] = []
    @exclusivity(unchecked) private var lengths: [Int32] = []
    @exclusivity(unchecked) private var hashes: [UInt32] = []
    /// Open addressing, linear probing; -1 = empty.
    @exclusivity(unchecked) private var table: [Int32] = [Int32](repeating: -1, count: 1024)
    /// Total bytes held (pages), for the memory figures.
    private(set) var byteCount = 0

    init() {}

    deinit {
        for p in pages { p.deallocate() }
        for p in listStorage { p.deallocate() }
    }

    var count: Int { starts.count }

    /// A fast 64-bit hash of bytes (multiply-xorshift over 8-byte words).
    @inline(__always)
    static func hash(_ b: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(b.count)
        guard let base = b.baseAddress else { return h }
        let raw = UnsafeRawPointer(base)
        var i = 0
        let n = b.count
        while i + 8 <= n {
            let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(base[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        h ^= h >> 29
        return h
    }

    /// The id of these bytes, if already interned.
    @inline(__always)
    func lookup(_ b: UnsafeBufferPointer<UInt8>) -> Int32? {
        let h = UInt32(truncatingIfNeeded: Self.hash(b))
        let mask = table.count - 1
        var i = Int(h) & mask
        while true {
            let id = table[i]
            if id < 0 { return nil }
            if hashes[Int(id)] == h, Int(lengths[Int(id)]) == b.count,
               b.count == 0 || memcmp(starts[Int(id)], b.baseAddress!, b.count) == 0 {
                return id
            }
            i = (i + 1) & mask
        }
    }

    /// The id of these bytes, interning them if new.
    func intern(_ b: UnsafeBufferPointer<UInt8>) -> Int32 {
        let h = UInt32(truncatingIfNeeded: Self.hash(b))
        var mask = table.count - 1
        var i = Int(h) & mask
        while true {
            let id = table[i]
            if id < 0 { break }
            if hashes[Int(id)] == h, Int(lengths[Int(id)]) == b.count,
               b.count == 0 || memcmp(starts[Int(id)], b.baseAddress!, b.count) == 0 {
                return id
            }
            i = (i + 1) & mask
        }
        let id = Int32(starts.count)
        starts.append(store(b))
        lengths.append(Int32(b.count))
        hashes.append(h)
        if starts.count * 2 > table.count {
            grow()
            mask = table.count - 1
            i = Int(h) & mask
            while table[i] >= 0 { i = (i + 1) & mask }
        }
        table[i] = id
        return id
    }

    func intern(_ s: String) -> Int32 {
        var s = s
        return s.withUTF8 { intern($0) }
    }

    func intern(_ v: StringView) -> Int32 { intern(v.bytes) }

    /// A view of an interned string (valid for the interner's lifetime).
    @inline(__always)
    func view(_ id: Int32) -> StringView { StringView(start: starts[Int(id)], count: Int(lengths[Int(id)])) }

    func string(_ id: Int32) -> String { view(id).string }

    private func store(_ b: UnsafeBufferPointer<UInt8>) -> UnsafePointer<UInt8> {
        let n = b.count
        if n > Self.pageSize / 4 {
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(n, 1))
            if n > 0 { p.update(from: b.baseAddress!, count: n) }
            pages.append(p)
            byteCount += n
            return UnsafePointer(p)
        }
        if pageUsed + n > Self.pageSize || smallPage == nil {
            let page = UnsafeMutablePointer<UInt8>.allocate(capacity: Self.pageSize)
            pages.append(page)
            smallPage = page
            pageUsed = 0
            byteCount += Self.pageSize
        }
        let p = smallPage! + pageUsed
        if n > 0 { p.update(from: b.baseAddress!, count: n) }
        pageUsed += n
        return UnsafePointer(p)
    }

    /// The page small strings are appended to.
    private var smallPage: UnsafeMutablePointer<UInt8>?

    private func grow() {
        let newSize = table.count * 2
        var t = [Int32](repeating: -1, count: newSize)
        let mask = newSize - 1
        for id in 0..<starts.count - 1 {
            var i = Int(hashes[id]) & mask
            while t[i] >= 0 { i = (i + 1) & mask }
            t[i] = Int32(id)
        }
        table = t
    }

    /// Lists of interned strings (row fields of type `[str]`), shared by content and kept for
    /// the interner's lifetime: memory grows with distinct lists, never with events.
    private var listIDs: [[Int32]: Int32] = [:]
    private var listValues: [StringList] = []
    private var listStorage: [UnsafeMutablePointer<StringView>] = []

    /// The id of a list equal to `ids` (interned string ids), creating it if new.
    func listID(_ ids: [Int32]) -> Int32 {
        if let l = listIDs[ids] { return l }
        let p = UnsafeMutablePointer<StringView>.allocate(capacity: max(ids.count, 1))
        for (i, id) in ids.enumerated() { (p + i).initialize(to: view(id)) }
        listStorage.append(p)
        let id = Int32(listValues.count)
        listValues.append(StringList(base: UnsafePointer(p), count: ids.count))
        listIDs[ids] = id
        return id
    }

    /// The id of a stable list equal to `list`.
    func listID(_ list: StringList) -> Int32 { listID(list.map { intern($0.bytes) }) }

    /// The stable list with this id.
    @inline(__always)
    func list(_ id: Int32) -> StringList { listValues[Int(id)] }

    /// A stable ``StringList`` equal to `list`, its strings interned.
    func internList(_ list: StringList) -> StringList { self.list(listID(list)) }

    /// Approximate bytes used by the index structures (not counting the pages).
    var indexBytes: Int { starts.capacity * 8 + lengths.capacity * 4 + hashes.capacity * 4 + table.capacity * 4 }
}
