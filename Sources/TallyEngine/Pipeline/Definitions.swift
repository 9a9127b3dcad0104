// MARK: - Compiled pipeline definitions
//
// What `Pipeline.parse` produces: field names resolved to catalog slots, windows and filters
// as enums, so the engine's hot path never looks at a string from the YAML again.

/// A calendar period in the pipeline's time zone.
public enum CalendarUnit: UInt8, Sendable, Hashable, CaseIterable {
    case day, month, quarter, year
    var name: String {
        switch self {
        case .day: "day"
        case .month: "month"
        case .quarter: "quarter"
        case .year: "year"
        }
    }
}

/// Which events of an aggregate count at the evaluation instant `t`.
public enum WindowSpec: Sendable, Hashable {
    /// Every event with `time <= t` (plus the opening balance).
    case cumulative
    /// The calendar period containing `t`, up to `t`.
    case toDate(CalendarUnit)
    /// The previous complete calendar period before the one containing `t`.
    case last(CalendarUnit)
    /// `(t - duration, t]`, duration in microseconds.
    case trailing(Micros)

    var canonical: String {
        switch self {
        case .cumulative: "cumulative"
        case .toDate(let u): u.name
        case .last(let u): "last \(u.name)"
        case .trailing(let d): "\(d)us"
        }
    }
}

/// A `data` field resolved for each type of a source: `slots[i]` is the field's slot in the
/// source's i-th type, or -1 when that type has no such field (the value is then absent).
struct FieldSlots: Sendable, Hashable {
    let name: String
    let slots: [Int]
    let kind: Catalog.FieldKind

    // `Catalog.FieldKind` is only Equatable: hash what identifies the field.
    func hash(into h: inout Hasher) {
        h.combine(name)
        h.combine(slots)
    }
    static func == (a: FieldSlots, b: FieldSlots) -> Bool { a.name == b.name && a.slots == b.slots && a.kind == b.kind }
}

/// A literal of a filter.
enum Literal: Sendable, Hashable {
    case string(String)
    case int(Int64)
    case number(Double)
    case bool(Bool)

    var canonical: String {
        switch self {
        case .string(let s): "s:\(s)"
        case .int(let i): "i:\(i)"
        case .number(let d): "n:\(d)"
        case .bool(let b): "b:\(b)"
        }
    }
}

enum CompareOp: UInt8, Sendable, Hashable { case gt, gte, lt, lte }

/// One condition of a filter (a filter is their conjunction).
enum Condition: Sendable, Hashable {
    /// The event's type is one of these source positions (indices into the source's `types`).
    case typeIn([Int])
    case equals(FieldSlots, Literal)
    case notEquals(FieldSlots, Literal)
    case oneOf(FieldSlots, [Literal])
    case compare(FieldSlots, CompareOp, Double)
    case present(FieldSlots, Bool)
    case contains(FieldSlots, String)

    var canonical: String {
        switch self {
        case .typeIn(let t): "type in \(t)"
        case .equals(let f, let l): "\(f.name)==\(l.canonical)"
        case .notEquals(let f, let l): "\(f.name)!=\(l.canonical)"
        case .oneOf(let f, let ls): "\(f.name) in [\(ls.map(\.canonical).joined(separator: ","))]"
        case .compare(let f, let op, let v): "\(f.name) \(op) \(v)"
        case .present(let f, let b): "\(f.name) present \(b)"
        case .contains(let f, let s): "\(f.name) contains \(s)"
        }
    }
}

/// What one channel adds per matching event (or row).
enum Measure: Sendable, Hashable {
    case count
    case sum(FieldSlots)
    case min(FieldSlots)
    case max(FieldSlots)

    var canonical: String {
        switch self {
        case .count: "count"
        case .sum(let f): "sum(\(f.name))"
        case .min(let f): "min(\(f.name))"
        case .max(let f): "max(\(f.name))"
        }
    }
    var isMinMax: Bool {
        switch self {
        case .min, .max: true
        default: false
        }
    }
}

/// A filter and a measure: the unit of incremental aggregation. An indicator with `share:`
/// has two channels (denominator = `where`, numerator = `where ∧ share`), one with `over:`
/// two (numerator, denominator), `of: {where:}` adds one.
struct Channel: Sendable, Hashable {
    let filter: [Condition]
    let measure: Measure
    var canonical: String { "[\(filter.map(\.canonical).joined(separator: "&"))]\(measure.canonical)" }
}

/// How an aggregate indicator's value is formed from its channels.
enum Shape: Sendable, Hashable {
    /// channel 0.
    case plain
    /// channel 1 / channel 0 × 100.
    case share
    /// channel 0 / channel 1 × 100.
    case over
}

/// Where an aggregate's events come from.
enum SourceSpec: Sendable, Hashable {
    /// Catalog type indices.
    case events([Int])
    /// Index into ``Pipeline/tables``.
    case table(Int)
}

/// A latest-state table: per key (or a single row), the latest event of the listed types.
struct TableDefinition: Sendable, Hashable {
    let name: String
    /// Catalog type indices.
    let types: [Int]
    /// The key field per type, or nil for a single-row table.
    let key: FieldSlots?
    var canonical: String { "table(\(types) key \(key.map { "\($0.name)\($0.slots)" } ?? "-"))" }
}

/// An aggregate indicator, compiled.
struct AggregateDefinition: Sendable, Hashable {
    let source: SourceSpec
    /// The source's catalog types, in the order ``FieldSlots/slots`` uses.
    let types: [Int]
    let window: WindowSpec
    let by: FieldSlots?
    /// The field compared with `$year` (the year of the evaluation instant), if any.
    let yearPartition: FieldSlots?
    /// For `distinct(field)`: the field; its filter is channel 0's.
    let distinct: FieldSlots?
    let channels: [Channel]
    let shape: Shape
    /// The channel counted for `of: {where: ...}`.
    let ofChannel: Int?
    /// The result is an exact integer (count, distinct, sum of an int field, no division).
    let integral: Bool
}

/// What a derived indicator computes from its reference.
public enum DerivedOp: String, Sendable, Hashable, CaseIterable {
    case growthYoY = "growth_yoy"
    case multipleYoY = "multiple_yoy"
    case changeYoY = "change_yoy"
    case changeYTD = "change_ytd"
    case share = "share"
}

/// The `of` denominator of an indicator.
enum OfSpec: Sendable, Hashable {
    case constant(Double)
    /// Another indicator's value (index into ``Pipeline/indicators``).
    case indicator(Int)
    /// A channel of this indicator's aggregate.
    case channel(Int)
}

enum IndicatorKind: Sendable, Hashable {
    case aggregate(AggregateDefinition)
    /// The op and the referenced indicator's index.
    case derived(DerivedOp, Int)
}

/// One indicator of a pipeline, compiled.
public struct IndicatorDefinition: Sendable {
    public let id: String
    public let title: String
    public let unit: String
    /// Decimal places of non-integer values.
    public let decimals: Int
    let kind: IndicatorKind
    let of: OfSpec?
    let divideBy: Double?

    /// True when `setBalance` is allowed: a cumulative count/sum/distinct aggregate over
    /// events without share/over.
    var acceptsBalance: Bool {
        guard case .aggregate(let a) = kind, case .events = a.source, a.window == .cumulative,
              a.shape == .plain, a.yearPartition == nil else { return false }
        return a.distinct != nil || !a.channels[0].measure.isMinMax
    }
}
