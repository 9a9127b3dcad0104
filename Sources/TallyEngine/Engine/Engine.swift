// MARK: - Engine

/// The synchronous aggregation core: events in, snapshots out. No sockets, no clocks, one owner.
///
/// ```swift
/// let engine = Engine(pipeline: try Pipeline.load(path: "Pipelines/national-dx.yaml"))
/// let report = engine.ingest(frameBytes, origin: .any)
/// let snap = engine.snapshot()
/// ```
///
/// Thread-safety: not thread-safe; the daemon's engine thread owns it (hence `@unchecked
/// Sendable`, so it can be handed to that thread once).
///
/// Memory grows with keys (table rows, distinct values, groups, dedup ids) and with time
/// buckets, never with the number of events.
public final class Engine: @unchecked Sendable {
    public internal(set) var pipeline: Pipeline
    public let options: EngineOptions
    /// The pipeline's zone (replaced on reconfigure; calendar aggregates name their zone in
    /// their canonical definition, so a zone change starts them afresh).
    // Dynamic exclusivity checks are off for the properties the per-event path touches
    // (`swift_beginAccess` + its TLS access set were ~9% of the engine thread): the engine has
    // one owner thread and no member hands out overlapping accesses to them.
    @exclusivity(unchecked) var calendar: ZoneCalendar
    let interner: Interner

    /// Per indicator: its event aggregator (nil for table and derived indicators).
    var aggregators: [EventAggregator?] = []
    @exclusivity(unchecked) var tables: [StateTable] = []
    /// Per catalog type: indicator indices of event aggregators fed by it.
    var routes: [[Int]] = []
    /// The same routes (and `tableRoutes`) flattened for the per-event path: no nested array
    /// to retain per event, no reference counting of the aggregators and tables (kept alive by
    /// `aggregators` and `tables`).
    var hotStorage: HotRoutes.Storage
    @exclusivity(unchecked) var hot: HotRoutes
    /// Per catalog type: indices of tables fed by it.
    @exclusivity(unchecked) var tableRoutes: [[Int]] = []
    /// Per indicator: (table index, aggregate index in the table) for table indicators.
    var tableOf: [(Int, Int)?] = []

    /// `T`, the pipeline clock; nil until the first event (event time) or `advance` (wall clock).
    @exclusivity(unchecked) public internal(set) var clock: Micros?
    /// The earliest accepted event time or balance instant.
    @exclusivity(unchecked) var earliest: Micros?
    /// The latest wall clock seen by `advance` (bounds event times from the future).
    @exclusivity(unchecked) var wallClockHint: Micros?
    /// Arrival counter (ties between equal event times in state tables).
    @exclusivity(unchecked) var arrival: UInt64 = 0
    @exclusivity(unchecked) var dedup: DedupIndex
    /// Opening balances by indicator id.
    var balances: [String: Balance] = [:]
    @exclusivity(unchecked) var decoder: EventDecoder
    @exclusivity(unchecked) public internal(set) var stats = EngineStats()

    struct Balance: Sendable, Equatable {
        var value: Double
        var at: Micros
        var seq: UInt64
    }

    public init(pipeline: Pipeline, options: EngineOptions = EngineOptions()) {
        self.pipeline = pipeline
        self.options = options
        calendar = ZoneCalendar(identifier: pipeline.timeZoneIdentifier)
        interner = Interner()
        dedup = DedupIndex(horizon: options.dedupHorizon)
        decoder = EventDecoder(catalog: pipeline.catalog, limits: options.decodeLimits)
        stats.maxLabels = options.maxLabelValues
        hotStorage = HotRoutes.Storage(aggregators: [], tables: [])
        hot = hotStorage.routes
        build(pipeline)
    }

    /// Instantiates the pipeline's aggregators and tables (empty) and the routing tables.
    func build(_ p: Pipeline) {
        let n = p.catalog.types.count
        let shift = Self.shiftNeeds(p)
        aggregators = []
        tableOf = []
        tables = p.tables.map { StateTable(def: $0, catalogCount: n) }
        routes = [[Int]](repeating: [], count: n)
        tableRoutes = [[Int]](repeating: [], count: n)
        for (ti, t) in p.tables.enumerated() { for ty in t.types { tableRoutes[ty].append(ti) } }
        for (i, ind) in p.indicators.enumerated() {
            guard case .aggregate(let a) = ind.kind else {
                aggregators.append(nil)
                tableOf.append(nil)
                continue
            }
            switch a.source {
            case .events(let types):
                aggregators.append(EventAggregator(def: a, catalogCount: n, needsShift: shift[i], retention: options.retention, zone: p.timeZoneIdentifier))
                tableOf.append(nil)
                for ty in types { routes[ty].append(i) }
            case .table(let ti):
                aggregators.append(nil)
                tableOf.append((ti, tables[ti].aggregates.count))
                tables[ti].aggregates.append(TableAggregate(indicator: i, def: a))
            }
        }
        hotStorage = HotRoutes.Storage(aggregators: routes.map { $0.map { aggregators[$0]! } },
                                       tables: tableRoutes.map { $0.map { tables[$0] } })
        hot = hotStorage.routes
    }

    /// Which indicators are evaluated at past instants (year-ago, start of year).
    static func shiftNeeds(_ p: Pipeline) -> [Bool] {
        var need = [Bool](repeating: false, count: p.indicators.count)
        func mark(_ i: Int) {
            if need[i] { return }
            need[i] = true
            if case .derived(_, let r) = p.indicators[i].kind { mark(r) }
            if case .indicator(let r) = p.indicators[i].of { mark(r) }
        }
        for ind in p.indicators {
            if case .derived(let op, let r) = ind.kind, op != .share { mark(r) }
        }
        return need
    }

    // MARK: Applying events

    /// What ``apply(event:)`` did.
    public enum ApplyOutcome: Sendable, Equatable {
        case accepted
        /// Same `source` + `id` already applied within the dedup horizon.
        case duplicate
        /// Older than `T - retention`.
        case late
        /// Later than the wall clock plus ``EngineOptions/maxFutureSkew``.
        case future
    }

    /// Applies one decoded event (deduplicated, checked against the retention horizon).
    /// - Complexity: O(aggregates fed by its type); no allocation on the common path.
    @discardableResult
    public func apply(event e: Event) -> ApplyOutcome {
        withUnsafePointer(to: e) { apply(eventAt: $0) }
    }

    /// ``apply(event:)`` reading the event where it lies (the decoder's slot): passing a
    /// ~190-byte `Event` by value cost a copy per call, since the callee may write memory.
    func apply(eventAt e: UnsafePointer<Event>) -> ApplyOutcome {
        let t = e.pointee.time
        if let c = clock, t < c - options.retention {
            stats.late += 1
            return .late
        }
        if let w = wallClockHint, t > w + options.maxFutureSkew {
            stats.countRejected(RejectReason.Code.badTime.rawValue, e.pointee.source.string)
            return .future
        }
        if dedup.checkAndInsert(e.pointee.dedupKey, time: t, clock: clock) {
            stats.duplicates += 1
            return .duplicate
        }
        arrival &+= 1
        if options.clock == .eventTime, clock == nil || t > clock! {
            clock = t
            dedup.expire(clock: t)
        }
        if earliest == nil || t < earliest! { earliest = t }
        let cal = calendar
        let int = interner
        let ty = e.pointee.typeIndex
        let routes = hot
        for k in routes.aggregatorRange(ty) {
            routes.aggregators[k]._withUnsafeGuaranteedRef { a in
                a.apply(e, pos: a.posOfType[ty], calendar: cal, interner: int)
            }
        }
        let tabs = routes.tableRange(ty)
        if !tabs.isEmpty {
            let horizon = (clock ?? t) - options.retention
            let seq = arrival
            for k in tabs {
                routes.tables[k]._withUnsafeGuaranteedRef { tab in
                    tab.apply(e, pos: tab.posOfType[ty], seq: seq, horizon: horizon, interner: int)
                }
            }
        }
        stats.accepted += 1
        return .accepted
    }

    /// Wall-clock mode: moves `T` to `now` (never backwards) so windows slide without events.
    /// In both modes it records `now` to reject events from the future (see
    /// ``EngineOptions/maxFutureSkew``); in event-time mode `T` does not move.
    public func advance(wallClock now: Micros) {
        if wallClockHint == nil || now > wallClockHint! { wallClockHint = now }
        guard options.clock == .wallClock else { return }
        if clock == nil || now > clock! {
            clock = now
            dedup.expire(clock: now)
        }
    }

    /// Sets the opening balance of an indicator: its value at instant `at`, which then grows
    /// with the events after `at`. The balance with the latest `at` wins (ties: the later call).
    /// - Returns: nil, or a `bad_balance` reason (unknown indicator, or one that is not a
    ///   cumulative count/sum/distinct over events).
    @discardableResult
    public func setBalance(indicator: String, value: Double, at: Micros) -> RejectReason? {
        guard let i = pipeline.indicatorIndex(indicator) else {
            return RejectReason(code: .badBalance, message: "unknown indicator '\(indicator)'\(Suggest.didYouMean(indicator, in: pipeline.indicators.map(\.id)))")
        }
        guard pipeline.indicators[i].acceptsBalance else {
            return RejectReason(code: .badBalance, message: "'\(indicator)' does not take an opening balance: only cumulative count/sum/distinct indicators over events do")
        }
        guard value.isFinite else {
            return RejectReason(code: .badBalance, message: "the balance of '\(indicator)' must be a finite number")
        }
        arrival &+= 1
        if let b = balances[indicator], b.at > at { return nil }
        balances[indicator] = Balance(value: value, at: at, seq: arrival)
        if earliest == nil || at < earliest! { earliest = at }
        stats.balances += 1
        return nil
    }

    // MARK: Ingest

    /// Decodes one frame (a CloudEvent object or a batch array) and applies every valid event.
    ///
    /// The per-event closure counts into locals and the report is built once at the end: no
    /// `IngestReport` is copied per event, and `rejected` allocates only when something is
    /// rejected. Events are read where the decoder wrote them (no `Event` copy per hand-off).
    /// - Complexity: O(bytes + events × aggregates per type).
    /// - Parameter keyHint: the frame's dedup key as ``FrameKeyHint/init(frame:)`` read it from
    ///   these very bytes (nil: none); the decoder takes it instead of hashing `source` + `id`
    ///   when it reads them exactly where the hint says.
    public func ingest(_ payload: UnsafeRawBufferPointer, origin: Origin = .any, keyHint: FrameKeyHint? = nil) -> IngestReport {
        var accepted = 0, duplicates = 0, unrouted = 0, late = 0
        var rejected: [(index: Int, reason: RejectReason)] = []
        let frameError = decoder.decode(payload, prefetch: dedup.currentPrefetchHint(), keyHint: keyHint, event: { index, e in
            // `e` points into the decoder's storage: read in place, never copied.
            guard origin.allows(e.pointee.source) else {
                rejected.append((index, notAllowed(e.pointee.source)))
                stats.countRejected(RejectReason.Code.sourceNotAllowed.rawValue, e.pointee.source.string)
                return
            }
            switch apply(eventAt: e) {
            case .accepted: accepted += 1
            case .duplicate: duplicates += 1
            case .future:
                rejected.append((index, RejectReason(code: .badTime, message: "time \(calendar.format(e.pointee.time)) is more than \(options.maxFutureSkew / 3_600_000_000) h after the wall clock \(calendar.format(wallClockHint ?? 0)); check the producer's clock")))
            case .late:
                late += 1
                let r = RejectReason(code: .late, message: "time \(calendar.format(e.pointee.time)) is older than the retention horizon (\(options.retention / EngineOptions.day) days before \(calendar.format(clock ?? e.pointee.time)))")
                rejected.append((index, r))
                stats.countRejected(RejectReason.Code.late.rawValue, e.pointee.source.string)
            }
        }, other: { index, outcome in
            switch outcome {
            case .event:
                preconditionFailure("the decoder hands valid events to `event:`, by address")
            case .unrouted(let type, let source):
                guard origin.allows(source) else {
                    rejected.append((index, notAllowed(source)))
                    stats.countRejected(RejectReason.Code.sourceNotAllowed.rawValue, source.string)
                    return
                }
                unrouted += 1
                stats.countUnrouted(type.string, source.string)
            case .balance(let indicator, let value, let at, let source, _):
                guard origin.allows(source) else {
                    rejected.append((index, notAllowed(source)))
                    stats.countRejected(RejectReason.Code.sourceNotAllowed.rawValue, source.string)
                    return
                }
                if let r = setBalance(indicator: indicator.string, value: value, at: at) {
                    rejected.append((index, r))
                    stats.countRejected(r.code.rawValue, source.string)
                } else {
                    accepted += 1
                }
            case .rejected(let r):
                rejected.append((index, r))
                stats.countRejected(r.code.rawValue, "unknown")
            }
        })
        if let frameError { stats.countRejected(frameError.code.rawValue, "unknown") }
        var report = IngestReport()
        report.counts = EventCounts(accepted: accepted, duplicates: duplicates, unrouted: unrouted, late: late)
        // A clean frame stores nothing (`report.problems = .unlessEmpty(...)`, which also stores
        // the nil, measured ~45 instructions more per frame: callgrind).
        if !rejected.isEmpty || frameError != nil {
            report.problems = IngestReport.Problems(rejected: rejected, payloadError: frameError,
                                                    elements: rejectedElements(rejected, frameCount: payload.count))
        }
        return report
    }

    /// Starts loading the dedup index's cache lines for the frame `hint` was read from, to be
    /// ingested a frame or two later.
    ///
    /// Why: at one event per frame the decoder's own prefetch, issued when it has hashed
    /// `source` + `id`, comes ~150 ns before the probe: too late for a miss to memory (the
    /// filter's line was ~6% of the engine thread in the daemon, `perf`, b1). The daemon reads
    /// each frame's key when it receives it (``FrameKeyHint``) and calls this for the frame
    /// two ahead of the one it ingests.
    /// - Complexity: O(1): two prefetch instructions; never faults, whatever the hint.
    public func prefetch(_ hint: FrameKeyHint) {
        let lines = dedup.currentPrefetchHint()
        lines.touchFilter(hint.key)
        lines.touchNewestHourSet(hint.key)
    }

    /// Convenience over ``ingest(_:origin:)`` for a byte array.
    public func ingest(_ payload: [UInt8], origin: Origin = .any) -> IngestReport {
        payload.withUnsafeBytes { ingest($0, origin: origin) }
    }

    /// The bytes of each rejected element of the frame just decoded, from the decoder's spans
    /// (empty if any is unknown).
    private func rejectedElements(_ rejected: [(index: Int, reason: RejectReason)], frameCount: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(rejected.count)
        for r in rejected {
            guard let range = decoder.storage.elementRange(r.index, frameCount: frameCount) else { return [] }
            out.append(range)
        }
        return out
    }

    private func notAllowed(_ source: StringView) -> RejectReason {
        RejectReason(code: .sourceNotAllowed, message: "source '\(source.string)' is outside this producer's allowed prefixes")
    }
}

extension IngestReport {
    /// The whole report at once (``Engine/ingest(_:origin:)`` builds it after the frame, so it
    /// is neither copied nor mutated per event).
    init(accepted: Int, duplicates: Int, unrouted: Int, late: Int,
         rejected: [(index: Int, reason: RejectReason)], payloadError: RejectReason?) {
        self.accepted = accepted
        self.duplicates = duplicates
        self.unrouted = unrouted
        self.late = late
        self.problems = .unlessEmpty(rejected, payloadError)
    }
}

// MARK: - Hot routes

/// Per catalog type, the aggregators and state tables its events feed, as plain pointers into
/// flat buffers (a trivial type: copying it once per event costs no reference counting).
///
/// Why: `[[Unmanaged<EventAggregator>]]` cost a retain/release of the inner array per event,
/// and `tables[ti]` one of each table. The buffers are owned by a ``Storage`` the engine holds
/// (`hotStorage`), replaced together with `hot`; the referenced objects are kept alive by the
/// engine's `aggregators` and `tables`, rebuilt at the same time.
/// - Complexity: O(types + routes) to build; O(1) per lookup.
struct HotRoutes {
    /// `aggregatorStart[type] ..< aggregatorStart[type + 1]` indexes `aggregators`.
    let aggregatorStart: UnsafePointer<Int32>
    let aggregators: UnsafePointer<Unmanaged<EventAggregator>>
    let tableStart: UnsafePointer<Int32>
    let tables: UnsafePointer<Unmanaged<StateTable>>

    /// Owns the buffers.
    final class Storage {
        let ints: UnsafeMutableBufferPointer<Int32>
        let aggs: UnsafeMutableBufferPointer<Unmanaged<EventAggregator>>
        let tabs: UnsafeMutableBufferPointer<Unmanaged<StateTable>>
        let routes: HotRoutes

        init(aggregators byType: [[EventAggregator]], tables tablesByType: [[StateTable]]) {
            let n = byType.count
            ints = .allocate(capacity: 2 * (n + 1))
            aggs = .allocate(capacity: max(byType.reduce(0) { $0 + $1.count }, 1))
            tabs = .allocate(capacity: max(tablesByType.reduce(0) { $0 + $1.count }, 1))
            var k = 0
            for ty in 0..<n {
                ints[ty] = Int32(k)
                for a in byType[ty] { aggs[k] = Unmanaged.passUnretained(a); k += 1 }
            }
            ints[n] = Int32(k)
            k = 0
            for ty in 0..<n {
                ints[n + 1 + ty] = Int32(k)
                for t in tablesByType[ty] { tabs[k] = Unmanaged.passUnretained(t); k += 1 }
            }
            ints[2 * n + 1] = Int32(k)
            routes = HotRoutes(aggregatorStart: UnsafePointer(ints.baseAddress!), aggregators: UnsafePointer(aggs.baseAddress!),
                               tableStart: UnsafePointer(ints.baseAddress! + n + 1), tables: UnsafePointer(tabs.baseAddress!))
        }

        deinit {
            ints.deallocate()
            aggs.deallocate()
            tabs.deallocate()
        }
    }

    @inline(__always)
    func aggregatorRange(_ type: Int) -> Range<Int> { Int(aggregatorStart[type])..<Int(aggregatorStart[type + 1]) }

    @inline(__always)
    func tableRange(_ type: Int) -> Range<Int> { Int(tableStart[type])..<Int(tableStart[type + 1]) }
}
