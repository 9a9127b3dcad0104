// MARK: - Snapshot

/// A number as published: counts are exact integers, other values decimals rounded to the
/// indicator's `decimals`.
public enum SnapshotNumber: Sendable, Equatable, CustomStringConvertible {
    case integer(Int64)
    case decimal(Double)

    public var doubleValue: Double {
        switch self {
        case .integer(let i): Double(i)
        case .decimal(let d): d
        }
    }

    /// JSON text: integers exactly, decimals in the shortest form that round-trips (a whole
    /// decimal is written without a fraction).
    public var description: String {
        switch self {
        case .integer(let i): return String(i)
        case .decimal(let d):
            if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
            return "\(d)"
        }
    }

    static func make(_ v: Double?, integral: Bool, decimals: Int) -> SnapshotNumber? {
        guard let v, v.isFinite else { return nil }
        if integral, v == v.rounded(), abs(v) < 9.0e15 { return .integer(Int64(v)) }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let r = (v * scale).rounded() / scale
        return .decimal(r == 0 ? 0 : r)
    }
}

/// One indicator of a snapshot.
public struct SnapshotIndicator: Sendable, Equatable {
    public let id: String
    public let title: String
    public let unit: String
    /// nil = JSON null (undefined: a share of nothing, a year-ago before the history).
    public let value: SnapshotNumber?
    /// The denominator count ("56 of 63"), when the pipeline gives one.
    public let of: SnapshotNumber?
    public let hasOf: Bool
    /// The breakdown, sorted by group key, when the pipeline gives `by`.
    public let by: [ByEntry]?

    public struct ByEntry: Sendable, Equatable {
        public let key: String
        public let value: SnapshotNumber?
    }
}

/// The indicators as of the clock `T`, in pipeline order.
public struct Snapshot: Sendable, Equatable {
    public let pipeline: String
    /// `T`; nil before any event (event time) or `advance` (wall clock).
    public let asOf: Micros?
    public let indicators: [SnapshotIndicator]
    /// The pipeline zone's offset at `asOf` (seconds), for RFC 3339 rendering.
    let offsetSeconds: Int64
    let zoneFixed: ZoneCalendarBox

    /// Looks an indicator up by id.
    public subscript(id: String) -> SnapshotIndicator? { indicators.first { $0.id == id } }

    /// The protocol's snapshot object:
    /// `{"pipeline","seq","as_of","published_at","indicators":{id:{value,unit,title,of?,by?}}}`.
    /// - Parameters:
    ///   - pipeline: the name to publish (default: the pipeline's own name).
    ///   - publishedAt: the wall clock when publishing (rendered in the pipeline's zone).
    /// - Complexity: O(indicators + groups).
    public func json(pipeline name: String? = nil, seq: UInt64, publishedAt: Micros) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"pipeline\":")
        w.string(name ?? pipeline)
        w.raw(",\"seq\":\(seq),\"as_of\":")
        if let a = asOf { w.string(ZoneCalendar.format(a, offsetSeconds: offsetSeconds)) } else { w.raw("null") }
        w.raw(",\"published_at\":")
        w.string(zoneFixed.calendar.format(publishedAt))
        w.raw(",\"indicators\":{")
        for (k, ind) in indicators.enumerated() {
            if k > 0 { w.raw(",") }
            w.string(ind.id)
            w.raw(":")
            Self.entry(ind, &w)
        }
        w.raw("}}")
        return w.bytes
    }

    /// One indicator's entry object (`{"value":...,"unit":...,"title":...}`), for per-indicator
    /// topics; nil for an unknown id.
    public func indicatorJSON(_ id: String) -> [UInt8]? {
        guard let ind = self[id] else { return nil }
        var w = JSONWriter()
        Self.entry(ind, &w)
        return w.bytes
    }

    static func entry(_ ind: SnapshotIndicator, _ w: inout JSONWriter) {
        w.raw("{\"value\":")
        w.raw(ind.value?.description ?? "null")
        w.raw(",\"unit\":")
        w.string(ind.unit)
        w.raw(",\"title\":")
        w.string(ind.title)
        if ind.hasOf {
            w.raw(",\"of\":")
            w.raw(ind.of?.description ?? "null")
        }
        if let by = ind.by {
            w.raw(",\"by\":{")
            for (k, e) in by.enumerated() {
                if k > 0 { w.raw(",") }
                w.string(e.key)
                w.raw(":")
                w.raw(e.value?.description ?? "null")
            }
            w.raw("}")
        }
        w.raw("}")
    }
}

/// Wraps the calendar so ``Snapshot`` stays Equatable on its data only.
struct ZoneCalendarBox: Sendable, Equatable {
    let calendar: ZoneCalendar
    static func == (a: ZoneCalendarBox, b: ZoneCalendarBox) -> Bool { true }
}

/// A minimal JSON text builder (strings escaped per RFC 8259).
struct JSONWriter {
    var bytes: [UInt8] = []
    init() { bytes.reserveCapacity(4096) }
    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }
    mutating func string(_ s: String) {
        bytes.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])
            case 0x09: bytes.append(contentsOf: [0x5C, 0x74])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: bytes.append(b)
            }
        }
        bytes.append(0x22)
    }
}

extension Engine {
    /// Evaluates every indicator as of `T`.
    /// - Complexity: O(indicators + groups) in event-time mode for cumulative, calendar and
    ///   table indicators; trailing windows sum their ring (≤ 86,400 slots for 24h);
    ///   year-ago / start-of-year of a table scan its rows.
    public func snapshot() -> Snapshot {
        var memo: [Int: [Micros: Evaluation]] = [:]
        var out: [SnapshotIndicator] = []
        out.reserveCapacity(pipeline.indicators.count)
        let t = clock ?? (earliest ?? 0)
        for (i, ind) in pipeline.indicators.enumerated() {
            // Before any event the values are those of an empty history (counts 0, shares null).
            let e = evaluate(i, at: t, primary: true, memo: &memo)
            let hasOf = ind.of != nil
            out.append(SnapshotIndicator(
                id: ind.id, title: ind.title, unit: ind.unit,
                value: SnapshotNumber.make(e.value, integral: e.integral, decimals: ind.decimals),
                of: SnapshotNumber.make(e.of, integral: e.ofIntegral, decimals: ind.decimals),
                hasOf: hasOf,
                by: e.by.map { $0.map { SnapshotIndicator.ByEntry(key: $0.key, value: SnapshotNumber.make($0.value, integral: e.integral, decimals: ind.decimals)) } }))
        }
        return Snapshot(pipeline: pipeline.name, asOf: clock, indicators: out,
                        offsetSeconds: calendar.offset(at: t), zoneFixed: ZoneCalendarBox(calendar: calendar))
    }
}
