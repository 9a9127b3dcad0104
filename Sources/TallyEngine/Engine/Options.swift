// MARK: - Options, origins, reports, stats

/// How an ``Engine`` keeps time and how much history it keeps.
public struct EngineOptions: Sendable {
    public enum Clock: Sendable, Equatable {
        /// `T` = the latest accepted event time (replays give identical snapshots).
        case eventTime
        /// `T` = the instant given to ``Engine/advance(wallClock:)`` (windows slide with no events).
        case wallClock
    }

    public static let day: Micros = 86_400_000_000

    public var clock: Clock = .eventTime
    /// Events older than `T - retention` are rejected `late`. Default 550 days: the year-ago of
    /// `last quarter` reaches back ~549 days (400 days is not enough for it).
    public var retention: Micros = 550 * EngineOptions.day
    /// Duplicates (`source` + `id`) are recognised within this much event time. Default 7 days.
    public var dedupHorizon: Micros = 7 * EngineOptions.day
    /// The instant from which the engine's history is complete. nil: the earliest accepted
    /// event or balance. Year-ago / start-of-year values whose window starts earlier are null.
    public var historyStart: Micros?
    /// Events later than the last wall clock given to ``Engine/advance(wallClock:)`` plus this
    /// skew are rejected `bad_time` (in either clock mode), so one bogus far-future time cannot
    /// move `T` ahead and make every genuine event "late". Not applied before the first
    /// `advance` (replays and tests without a wall clock are unaffected). Default 1 day.
    public var maxFutureSkew: Micros = EngineOptions.day
    /// Limits of the CloudEvents decoder.
    public var decodeLimits = DecodeLimits()
    /// Distinct label values kept per stats counter; the rest fold into `other`.
    public var maxLabelValues = 100

    public init(clock: Clock = .eventTime, retention: Micros = 550 * EngineOptions.day, dedupHorizon: Micros = 7 * EngineOptions.day) {
        self.clock = clock
        self.retention = retention
        self.dedupHorizon = dedupHorizon
    }
}

/// Who sent a frame: the `source` prefixes the producer may use (nil = any).
///
/// Why: a producer authenticated for one province must not be able to inject events that
/// claim to come from another system; events outside its prefixes are rejected
/// `source_not_allowed`.
public struct Origin: Sendable {
    public var sourcePrefixes: [String]?
    let prefixBytes: [[UInt8]]?

    public init(sourcePrefixes: [String]?) {
        self.sourcePrefixes = sourcePrefixes
        prefixBytes = sourcePrefixes?.map { Array($0.utf8) }
    }

    public static let any = Origin(sourcePrefixes: nil)

    @inline(__always)
    func allows(_ source: StringView) -> Bool {
        guard let prefixes = prefixBytes else { return true }
        for p in prefixes where p.count <= source.count {
            var ok = true
            for (i, b) in p.enumerated() where source.start[i] != b { ok = false; break }
            if ok { return true }
        }
        return false
    }
}

/// How many of a frame's events were accepted, duplicates, unrouted or late: 32 bits each (a
/// frame holds at most `DecodeLimits.maxEventsPerBatch` events), so a report of these and one
/// reference is three words, which a function returns in registers (five words with `Int`s:
/// returned through memory and copied per frame).
public struct EventCounts: Sendable, Equatable {
    @usableFromInline var a: Int32 = 0, d: Int32 = 0, u: Int32 = 0, l: Int32 = 0

    @inlinable public init() {}

    @inlinable public init(accepted: Int, duplicates: Int, unrouted: Int, late: Int) {
        (a, d, u, l) = (Int32(accepted), Int32(duplicates), Int32(unrouted), Int32(late))
    }

    /// Events applied (including balances).
    @inlinable public var accepted: Int {
        get { Int(a) }
        set { a = Int32(newValue) }
    }
    /// Events already applied (same `source` + `id` within the dedup horizon): counted once.
    @inlinable public var duplicates: Int {
        get { Int(d) }
        set { d = Int32(newValue) }
    }
    /// Valid events of a type no indicator uses: counted, not aggregated.
    @inlinable public var unrouted: Int {
        get { Int(u) }
        set { u = Int32(newValue) }
    }
    /// Events older than the retention horizon (also listed among the rejected, code `late`).
    @inlinable public var late: Int {
        get { Int(l) }
        set { l = Int32(newValue) }
    }
}

/// A frame's outcome with ``EventCounts``, read and set as its own properties:
/// `report.accepted` is `report.counts.accepted` (with `@dynamicMemberLookup` on the type).
public protocol HasEventCounts {
    var counts: EventCounts { get set }
}

extension HasEventCounts {
    @inlinable public subscript(dynamicMember count: WritableKeyPath<EventCounts, Int>) -> Int {
        get { counts[keyPath: count] }
        set { counts[keyPath: count] = newValue }
    }
}

/// What one ``Engine/ingest(_:origin:)`` call did with one frame: its ``EventCounts``
/// (`report.accepted`, `.duplicates`, `.unrouted`, `.late`) and the rejections.
@dynamicMemberLookup
public struct IngestReport: Sendable, HasEventCounts {
    public var counts = EventCounts()
    /// Per rejected element: its index in the batch (0 for a single object) and the reason.
    public var rejected: [(index: Int, reason: RejectReason)] {
        get { problems?.rejected ?? [] }
        set { problems = Problems.unlessEmpty(newValue, payloadError) }
    }
    /// The frame as a whole is not a JSON object/array (nothing in it was applied).
    public var payloadError: RejectReason? {
        get { problems?.payloadError }
        set { problems = Problems.unlessEmpty(rejected, newValue) }
    }
    /// Per entry of ``rejected``, in the same order: the element's bytes in the frame (a batch
    /// element's `[start, end)`, the whole frame for a single object), as the engine's decoder
    /// delimited them; empty when not known (a report built by hand, or setting ``rejected``).
    public var rejectedElements: [Range<Int>] { problems?.elements ?? [] }
    /// `rejected` and `payloadError` together, nil when there are none (the usual frame): the
    /// report of a clean frame is four integers and a nil reference, so returning and dropping
    /// one per frame costs no reference counting of an array and two strings (it was ~150
    /// instructions per frame; round 9a).
    @usableFromInline var problems: Problems?

    /// No event rejected and no payload error: what a caller checks per frame before reading
    /// ``rejected`` or ``payloadError``. Inlinable, so a caller in another module pays no getter
    /// calls for the two (each returned a value to release; round 11).
    @inlinable public var isClean: Bool { problems == nil }

    public init() {}

    /// The rare part of a report, immutable (a setter replaces it, so copies share nothing
    /// observable).
    @usableFromInline final class Problems: Sendable {
        let rejected: [(index: Int, reason: RejectReason)]
        let payloadError: RejectReason?
        /// Empty, or one range per `rejected` entry.
        let elements: [Range<Int>]

        init(rejected: [(index: Int, reason: RejectReason)], payloadError: RejectReason?, elements: [Range<Int>] = []) {
            self.rejected = rejected
            self.payloadError = payloadError
            self.elements = elements.count == rejected.count ? elements : []
        }

        static func unlessEmpty(_ rejected: [(index: Int, reason: RejectReason)], _ payloadError: RejectReason?) -> Problems? {
            rejected.isEmpty && payloadError == nil ? nil : Problems(rejected: rejected, payloadError: payloadError)
        }
    }
}

/// Cumulative counters for metrics, with bounded label cardinality.
public struct EngineStats: Sendable, Equatable {
    public struct Label: Sendable, Hashable {
        public let first: String
        public let second: String
    }
    public internal(set) var accepted: Int = 0
    public internal(set) var duplicates: Int = 0
    public internal(set) var late: Int = 0
    public internal(set) var balances: Int = 0
    /// Unrouted by (type, source).
    public internal(set) var unrouted: [Label: Int] = [:]
    /// Rejected by (code, source); source is `unknown` when the event was unreadable.
    public internal(set) var rejected: [Label: Int] = [:]
    var maxLabels = 100

    static func count(_ dict: inout [Label: Int], _ a: String, _ b: String, cap: Int) {
        var label = Label(first: a, second: b)
        if dict[label] == nil, dict.count >= cap {
            label = Label(first: dict.keys.contains { $0.first == a } ? a : "other", second: "other")
        }
        dict[label, default: 0] += 1
    }
    mutating func countRejected(_ code: String, _ source: String) { Self.count(&rejected, code, source, cap: maxLabels) }
    mutating func countUnrouted(_ type: String, _ source: String) { Self.count(&unrouted, type, source, cap: maxLabels) }
}
