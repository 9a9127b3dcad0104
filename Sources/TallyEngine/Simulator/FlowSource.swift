// MARK: - High-volume flows, generated lazily hour by hour

/// What a flow's events are; the simulator turns (kind, sequence number, time) into JSON.
enum FlowKind: Sendable {
    case transactions
    case accounts
    /// The 2024 dossiers of one province: `online` of them online, `viaPortal` of those
    /// through the national portal (both spread evenly over the flow, exactly).
    case dossiers(province: Int, online: Int, viaPortal: Int)
    case payments
    /// Mobile Money activations of phase 0 (Jan–Apr 2023) or 1 (May 2023–Apr 2024).
    case mobileMoney(phase: Int, rural: Int)
    /// One monthly welfare disbursement round: beneficiary ids `0..<viaAccount` are paid
    /// into an account, the others in cash; ids are scattered over time by an affine map.
    case welfare(month: Int, viaAccount: Int, permA: Int, permB: Int)
    /// The incidents of quarter `q` (0 = Q1 2023 ... 4 = Q1 2024, 5 = April 2024).
    case incidents(quarter: Int)
}

/// A stream of `total` events over a run of days, in time order, produced lazily.
///
/// Per-day counts are fixed up front (exact totals); each day is split over its 24 hours by
/// the flow's ``Rhythm`` (jittered per day), and each hour's instants are drawn and sorted
/// only when the flow reaches that hour. Times have millisecond precision and never pass
/// 23:59:59.000 of their day, so a day's events fall in `(previous day 23:59:59, 23:59:59]`
/// exactly like the engine's trailing windows ending at 23:59:59.
/// - Complexity: O(1) amortised per event plus O(h log h) per hour of h events; memory is
///   O(days + the largest hour), about 2 MB for NDXP traffic at scale 1.
struct FlowSource: Sendable {
    let kind: FlowKind
    let stream: UInt64
    let seed: UInt64
    let firstDay: Int
    let dayCounts: [Int]
    let hourWeights: [Double]
    /// Put the flow's last event at exactly 23:59:59.000 of its last day.
    let pinLast: Bool
    let total: Int

    /// Sequence number of the next event (0-based), i.e. how many were emitted.
    private(set) var seq = 0
    /// The time of the next event, or nil when the flow is exhausted.
    private(set) var nextTime: Micros?
    private var dayIndex = -1
    private var hour = 23
    private var hourCounts: [Int] = []
    private var offsets: [Int64] = []  // milliseconds within the day, sorted
    private var pos = 0

    init(kind: FlowKind, stream: UInt64, seed: UInt64, firstDay: Int, dayCounts: [Int], rhythm: Rhythm, pinLast: Bool = false) {
        self.kind = kind
        self.stream = stream
        self.seed = seed
        self.firstDay = firstDay
        self.dayCounts = dayCounts
        hourWeights = rhythm.hourWeights
        self.pinLast = pinLast && !dayCounts.isEmpty && dayCounts.last! > 0
        total = dayCounts.reduce(0, +)
        fill()
    }

    /// A flow of `total` events over `days`, spread by the rhythm's day weights.
    init(kind: FlowKind, stream: UInt64, seed: UInt64, days: ClosedRange<Int>, total: Int, rhythm: Rhythm) {
        let counts = Allocation.largestRemainder(total, weights: days.map { rhythm.dayWeight($0) })
        self.init(kind: kind, stream: stream, seed: seed, firstDay: days.lowerBound, dayCounts: counts, rhythm: rhythm)
    }

    /// The local day of the next event (valid while ``nextTime`` is non-nil).
    var currentDay: Int { firstDay + dayIndex }

    /// Moves past the current event.
    mutating func advance() {
        seq += 1
        pos += 1
        fill()
    }

    private mutating func fill() {
        while pos >= offsets.count {
            hour += 1
            if hour >= 24 {
                dayIndex += 1
                guard dayIndex < dayCounts.count else {
                    nextTime = nil
                    offsets = []
                    return
                }
                hour = 0
                let pinned = pinLast && dayIndex == dayCounts.count - 1 ? 1 : 0
                let day = UInt64(firstDay + dayIndex)
                let weights = hourWeights.enumerated().map { h, w in
                    w * (0.85 + 0.3 * SimHash.unit(SimHash.hash(seed, stream, day, UInt64(h))))
                }
                hourCounts = Allocation.largestRemainder(dayCounts[dayIndex] - pinned, weights: weights)
            }
            offsets.removeAll(keepingCapacity: true)
            let c = hourCounts[hour]
            let base = Int64(hour) * 3_600_000
            // The last hour stops at 23:59:59.000 (inclusive), other hours span 3,600,000 ms.
            let span = hour == 23 ? 3_599_001 : 3_600_000
            let day = UInt64(firstDay + dayIndex)
            for k in 0..<c {
                let h = SimHash.hash(seed, stream &+ 0x5151, day &* 24 &+ UInt64(hour), UInt64(k))
                offsets.append(base + Int64(SimHash.below(h, span)))
            }
            offsets.sort()
            if hour == 23 && pinLast && dayIndex == dayCounts.count - 1 { offsets.append(86_399_000) }
            pos = 0
        }
        nextTime = SimTime.micros(day: firstDay + dayIndex, millis: offsets[pos])
    }
}

// MARK: - Merging sources in time order

/// A binary min-heap of (time, source index): the next event of the whole stream is the
/// earliest head among all sources, ties to the lower index (deterministic).
/// - Complexity: O(log s) per event for s sources (about 80).
struct SourceHeap: Sendable {
    private var items: [(time: Micros, source: Int)] = []

    var isEmpty: Bool { items.isEmpty }
    var top: (time: Micros, source: Int)? { items.first }

    private static func less(_ a: (time: Micros, source: Int), _ b: (time: Micros, source: Int)) -> Bool {
        a.time != b.time ? a.time < b.time : a.source < b.source
    }

    mutating func push(_ e: (time: Micros, source: Int)) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard Self.less(items[i], items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    /// Removes the top and pushes `replacement` (or nothing) in one sift.
    mutating func replaceTop(with replacement: (time: Micros, source: Int)?) {
        if let r = replacement { items[0] = r } else {
            let last = items.removeLast()
            guard !items.isEmpty else { return }
            items[0] = last
        }
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && Self.less(items[l], items[m]) { m = l }
            if r < items.count && Self.less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
    }
}
