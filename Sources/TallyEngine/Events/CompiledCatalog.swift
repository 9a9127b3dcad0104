#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Compiled catalog

/// The catalog flattened into raw memory for the decoder's hot path: names as bytes,
/// fixed-size descriptors, and a by-length index of type names.
///
/// Why: reading Swift arrays of structs that hold arrays and `String`s costs reference
/// counting and bounds checks per access; these tables are read with plain pointer loads.
/// Built once per decoder. - Complexity: O(total name bytes) to build.
final class CompiledCatalog: @unchecked Sendable {
    struct Name {
        var offset: Int32
        var length: Int32
    }

    enum Kind: UInt8 {
        case string, int, number, bool, stringArray
    }

    struct FieldDesc {
        var name: Name
        var kind: Kind
        var required: Bool
        var allowedStart: Int32
        var allowedCount: Int32
        /// The name has no `"`, `\` or control byte, so its JSON spelling is its bytes.
        var plain: Bool
    }

    struct TypeDesc {
        var name: Name
        var firstField: Int32
        var fieldCount: Int32
        /// Bit `i` set when field slot `i` is required: the decoder checks all of them with
        /// one mask test instead of reading every slot back.
        var requiredMask: UInt32
    }

    let catalog: Catalog
    /// Every name's bytes, concatenated.
    let bytes: UnsafeMutablePointer<UInt8>
    let types: UnsafeMutablePointer<TypeDesc>
    /// Catalog types, then the control type `tally.balance` at index ``balanceIndex``.
    let typeCount: Int
    let balanceIndex: Int
    let fields: UnsafeMutablePointer<FieldDesc>
    let allowed: UnsafeMutablePointer<Name>
    /// For each name length `L` < ``maxTypeLength``+1, the first type with that length in
    /// ``chain`` order (-1 when none); ``chain``[t] is the next type of the same length.
    let byLength: UnsafeMutablePointer<Int32>
    let chain: UnsafeMutablePointer<Int32>
    let maxTypeLength: Int

    static let balanceTypeName = "tally.balance"

    init(_ catalog: Catalog) {
        self.catalog = catalog
        var all: [Catalog.EventType] = catalog.types
        all.append(Catalog.EventType(name: Self.balanceTypeName, fields: [
            Catalog.Field("indicator", .string(allowed: nil)), Catalog.Field("value", .number),
        ]))
        balanceIndex = all.count - 1
        typeCount = all.count

        var byteList: [UInt8] = []
        var typeList: [TypeDesc] = []
        var fieldList: [FieldDesc] = []
        var allowedList: [Name] = []
        func intern(_ s: String) -> Name {
            let n = Name(offset: Int32(byteList.count), length: Int32(s.utf8.count))
            byteList.append(contentsOf: s.utf8)
            return n
        }
        for t in all {
            let first = Int32(fieldList.count)
            for f in t.fields {
                let kind: Kind
                let start = Int32(allowedList.count)
                var count: Int32 = 0
                switch f.kind {
                case .string(let values):
                    kind = .string
                    for v in values ?? [] { allowedList.append(intern(v)); count += 1 }
                case .int: kind = .int
                case .number: kind = .number
                case .bool: kind = .bool
                case .stringArray: kind = .stringArray
                }
                let plain = !f.name.utf8.contains { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 }
                fieldList.append(FieldDesc(name: intern(f.name), kind: kind, required: f.required,
                                           allowedStart: start, allowedCount: count, plain: plain))
            }
            var requiredMask: UInt32 = 0
            for (i, f) in t.fields.enumerated() where f.required { requiredMask |= 1 << UInt32(i) }
            typeList.append(TypeDesc(name: intern(t.name), firstField: first, fieldCount: Int32(t.fields.count),
                                     requiredMask: requiredMask))
        }
        func copy<T>(_ a: [T]) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: max(a.count, 1))
            a.withUnsafeBufferPointer { if let b = $0.baseAddress { p.initialize(from: b, count: a.count) } }
            return p
        }
        bytes = copy(byteList)
        types = copy(typeList)
        fields = copy(fieldList)
        allowed = copy(allowedList)
        let maxLen = typeList.map { Int($0.name.length) }.max() ?? 0
        maxTypeLength = maxLen
        var heads = [Int32](repeating: -1, count: maxLen + 1)
        var next = [Int32](repeating: -1, count: typeList.count)
        // Insert in reverse so that each chain lists types in catalog order (the catalog
        // cannot define `tally.balance`: `Catalog.init` reserves that name).
        for (i, t) in typeList.enumerated().reversed() {
            next[i] = heads[Int(t.name.length)]
            heads[Int(t.name.length)] = Int32(i)
        }
        byLength = copy(heads)
        chain = copy(next)
    }

    deinit {
        bytes.deallocate()
        types.deallocate()
        fields.deallocate()
        allowed.deallocate()
        byLength.deallocate()
        chain.deallocate()
    }

    /// The tables as a plain value (no reference counting on the hot path).
    var tables: Tables {
        Tables(bytes: bytes, types: types, fields: fields, allowed: allowed, byLength: byLength, chain: chain,
               maxTypeLength: maxTypeLength, balanceIndex: balanceIndex)
    }

    /// Raw views of the tables, valid while the ``CompiledCatalog`` lives.
    struct Tables {
        let bytes: UnsafeMutablePointer<UInt8>
        let types: UnsafeMutablePointer<TypeDesc>
        let fields: UnsafeMutablePointer<FieldDesc>
        let allowed: UnsafeMutablePointer<Name>
        let byLength: UnsafeMutablePointer<Int32>
        let chain: UnsafeMutablePointer<Int32>
        let maxTypeLength: Int
        let balanceIndex: Int

        @inline(__always)
        func equals(_ name: Name, _ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
            Int(name.length) == n && bytesEqual(bytes + Int(name.offset), p, n)
        }

        /// The index of the type named by `p[0..<n]`, or -1. Catalog types first; the control
        /// type `tally.balance` is found too (at ``balanceIndex``).
        /// - Complexity: O(types of the same length × n).
        @inline(__always)
        func typeIndex(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
            guard n <= maxTypeLength else { return -1 }
            var i = Int(byLength[n])
            while i >= 0 {
                if bytesEqual(bytes + Int(types[i].name.offset), p, n) { return i }
                i = Int(chain[i])
            }
            return -1
        }

        func fieldName(_ f: Int) -> String {
            String(decoding: UnsafeBufferPointer(start: bytes + Int(fields[f].name.offset), count: Int(fields[f].name.length)), as: UTF8.self)
        }

        func allowedNames(_ f: Int) -> [String] {
            let d = fields[f]
            return (0..<Int(d.allowedCount)).map { k in
                let n = allowed[Int(d.allowedStart) + k]
                return String(decoding: UnsafeBufferPointer(start: bytes + Int(n.offset), count: Int(n.length)), as: UTF8.self)
            }
        }
    }
}

/// Equality of two short byte ranges with word loads (overlapping at the tail) instead of a
/// `memcmp` call: names and keys are 2–40 bytes, where the call overhead dominates.
/// - Complexity: O(n / 8).
@inline(__always)
func bytesEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    if n >= 8 {
        var i = 0
        while i + 8 < n {
            if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        return ra.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) == rb.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
    }
    if n >= 4 {
        return ra.loadUnaligned(as: UInt32.self) == rb.loadUnaligned(as: UInt32.self)
            && ra.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self) == rb.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
    }
    var i = 0
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}
