#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Runtime filters

/// A literal ready for byte comparison (strings as UTF-8 bytes, computed once).
enum RLiteral: Sendable {
    case bytes([UInt8])
    case int(Int64)
    case number(Double)
    case bool(Bool)

    init(_ l: Literal) {
        switch l {
        case .string(let s): self = .bytes(Array(s.utf8))
        case .int(let i): self = .int(i)
        case .number(let d): self = .number(d)
        case .bool(let b): self = .bool(b)
        }
    }

    @inline(__always)
    func matches(_ v: FieldValue) -> Bool {
        switch (self, v) {
        case (.bytes(let b), .string(let s)): return s.equals(b)
        case (.int(let a), .int(let b)): return a == b
        case (.int(let a), .number(let b)): return Double(a) == b
        case (.number(let a), .number(let b)): return a == b
        case (.number(let a), .int(let b)): return a == Double(b)
        case (.bool(let a), .bool(let b)): return a == b
        default: return false
        }
    }
}

/// One condition specialised for one type of the source: field slots resolved, string
/// constants as bytes. Evaluated on an event's or a row's fields without allocating.
enum RCondition: Sendable {
    case always
    case never
    case equals(Int, RLiteral, negate: Bool)
    case oneOf(Int, [RLiteral])
    case compare(Int, CompareOp, Double)
    case present(Int, Bool)
    case contains(Int, [UInt8])

    /// Specialises `c` for the type at `pos` in the source's types.
    init(_ c: Condition, pos: Int) {
        func slot(_ f: FieldSlots) -> Int { f.slots[pos] }
        switch c {
        case .typeIn(let ps): self = ps.contains(pos) ? .always : .never
        case .equals(let f, let l): self = slot(f) < 0 ? .never : .equals(slot(f), RLiteral(l), negate: false)
        case .notEquals(let f, let l): self = slot(f) < 0 ? .always : .equals(slot(f), RLiteral(l), negate: true)
        case .oneOf(let f, let ls): self = slot(f) < 0 ? .never : .oneOf(slot(f), ls.map(RLiteral.init))
        case .compare(let f, let op, let v): self = slot(f) < 0 ? .never : .compare(slot(f), op, v)
        case .present(let f, let b): self = slot(f) < 0 ? (b ? .never : .always) : .present(slot(f), b)
        case .contains(let f, let s): self = slot(f) < 0 ? .never : .contains(slot(f), Array(s.utf8))
        }
    }

    @inline(__always)
    func holds(_ field: (Int) -> FieldValue) -> Bool {
        switch self {
        case .always: return true
        case .never: return false
        case .equals(let s, let l, let negate): return l.matches(field(s)) != negate
        case .oneOf(let s, let ls):
            let v = field(s)
            for l in ls where l.matches(v) { return true }
            return false
        case .compare(let s, let op, let c):
            let x: Double
            switch field(s) {
            case .int(let i): x = Double(i)
            case .number(let d): x = d
            default: return false
            }
            switch op {
            case .gt: return x > c
            case .gte: return x >= c
            case .lt: return x < c
            case .lte: return x <= c
            }
        case .present(let s, let want):
            if case .absent = field(s) { return !want }
            return want
        case .contains(let s, let b):
            guard case .strings(let list) = field(s) else { return false }
            for v in list where v.equals(b) { return true }
            return false
        }
    }
}

/// A channel specialised per source type: its conditions and the slot its measure reads.
struct RChannel: Sendable {
    /// `conditions[pos]`: the conjunction for the type at `pos`; nil = never matches.
    let conditions: [[RCondition]?]
    /// `measureSlot[pos]`: the slot summed (count: -1).
    let measureSlot: [Int]
    let kind: BucketRing.Combine
    let isCount: Bool

    init(_ ch: Channel, typeCount: Int) {
        var conds: [[RCondition]?] = []
        var slots: [Int] = []
        for pos in 0..<typeCount {
            var list: [RCondition] = []
            var never = false
            for c in ch.filter {
                let r = RCondition(c, pos: pos)
                switch r {
                case .always: continue
                case .never: never = true
                default: list.append(r)
                }
            }
            conds.append(never ? nil : list)
            switch ch.measure {
            case .count: slots.append(-1)
            case .sum(let f), .min(let f), .max(let f): slots.append(f.slots[pos])
            }
        }
        conditions = conds
        measureSlot = slots
        switch ch.measure {
        case .count, .sum: kind = .sum
        case .min: kind = .min
        case .max: kind = .max
        }
        isCount = { if case .count = ch.measure { return true } else { return false } }()
    }

    /// The value this event/row adds, or nil when it does not match.
    @inline(__always)
    func contribution(pos: Int, _ field: (Int) -> FieldValue) -> Double? {
        guard let conds = conditions[pos] else { return nil }
        for c in conds where !c.holds(field) { return nil }
        if isCount { return 1 }
        let s = measureSlot[pos]
        guard s >= 0 else { return nil }
        switch field(s) {
        case .int(let i): return Double(i)
        case .number(let d): return d
        default: return nil
        }
    }
}
