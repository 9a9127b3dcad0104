// The handles of every Tally metric, created once, so the hot path touches pre-created collectors
// (one atomic add each) instead of building label dictionaries per event. The engine thread
// accumulates a drain's outcome in an `IngestTally` (plain integers) and calls `record(_:)` once per
// drain.
public import Prometheus
import Synchronization

// MARK: - Per-drain accumulator

/// The outcome of one drain of the ingest sockets, accumulated in plain integers by the engine thread
/// and handed to `TallyMetrics.record(_:)` once.
///
/// - Complexity: adding to it is O(1) (a local dictionary add for rejected/unrouted keys); memory is
///   O(distinct reason×source and type×source pairs within one drain).
public struct IngestTally: Sendable {
    /// A pair of label values (reason×source, or type×source).
    public struct Key: Hashable, Sendable {
        public let first: String
        public let second: String
        public init(_ first: String, _ second: String) {
            self.first = first
            self.second = second
        }
    }

    public var received = 0
    public var accepted = 0
    public var duplicates = 0
    public var late = 0
    public var bytes = 0
    /// Rejections by (reason code, source). Use source `""` when the payload had none (not JSON at all).
    public var rejected: [Key: Int] = [:]
    /// Unrouted events by (type, source).
    public var unrouted: [Key: Int] = [:]
    /// Events per frame, one entry per frame of the drain.
    public var batchSizes: [Int] = []
    /// `tally_engine_lag_seconds` for this drain (see `MetricCatalog.engineLag`), if measured.
    public var lagSeconds: Double?

    public init() {}

    /// Counts one rejected event (or payload) with its reason code and source.
    public mutating func reject(reason: String, source: String, count: Int = 1) {
        rejected[Key(reason, source), default: 0] += count
    }

    /// Counts one unrouted event.
    public mutating func unrouted(type: String, source: String, count: Int = 1) {
        unrouted[Key(type, source), default: 0] += count
    }

    /// Notes one frame of `events` events and `bytes` bytes.
    public mutating func frame(events: Int, bytes: Int) {
        self.bytes += bytes
        batchSizes.append(events)
    }

    /// Empties the tally, keeping its storage for the next drain.
    public mutating func reset() {
        received = 0; accepted = 0; duplicates = 0; late = 0; bytes = 0
        rejected.removeAll(keepingCapacity: true)
        unrouted.removeAll(keepingCapacity: true)
        batchSizes.removeAll(keepingCapacity: true)
        lagSeconds = nil
    }
}

// MARK: - Handles

/// Every Tally metric, registered in one `PrometheusCollectorRegistry`.
///
/// Create one per process (`MetricsBootstrap.bootstrap(version:)`) or one per test with a fresh
/// registry. All members are thread-safe: counters and gauges are atomics; labeled families keep a
/// small cache of their series behind a mutex, touched once per distinct label pair per drain.
///
/// Label cardinality: `source` (in `tally_events_rejected_total` and `tally_events_unrouted_total`)
/// and `type` are capped by `LabelCap` (the first `labelLimit` distinct values, 1,000 by default,
/// then `other`); `reason` is the engine's closed set of codes; `endpoint` is the daemon's own
/// configuration; `result` is `success`/`failure`.
public final class TallyMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    public let eventsReceived: Counter
    public let eventsAccepted: Counter
    public let eventsDuplicate: Counter
    public let eventsLate: Counter
    public let ingestBytes: Counter
    public let ingestBatchEvents: ValueHistogram
    public let engineLag: Gauge
    public let walFsync: DurationHistogram
    public let checkpointDuration: DurationHistogram
    /// Engine-thread part of each checkpoint (`tally_checkpoint_capture_seconds`).
    public let checkpointCapture: DurationHistogram
    public let checkpointBytes: Gauge
    public let snapshotsPublished: Counter
    public let snapshotSeq: Gauge
    public let subscribersConnected: Gauge
    public let producersConnected: Gauge
    public let buildInfo: Gauge

    /// Caps the `source` label (shared by rejected and unrouted, so one agency is one value).
    public let sources: LabelCap
    /// Caps the `type` label of unrouted events.
    public let types: LabelCap
    private let rejectedSeries = Mutex<[IngestTally.Key: Counter]>([:])
    private let unroutedSeries = Mutex<[IngestTally.Key: Counter]>([:])
    private let handshakeSeries = Mutex<[String: Counter]>([:])
    private let reloadSuccess: Counter
    private let reloadFailure: Counter

    /// Bucket bounds of `tally_ingest_batch_events`.
    public static let batchBuckets: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000]
    /// Bucket bounds of `tally_wal_fsync_seconds` (50 µs .. 1 s: SSDs fsync in 0.1–5 ms).
    public static let fsyncBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .microseconds(2_500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .seconds(1),
    ]
    /// Bucket bounds of `tally_checkpoint_duration_seconds` (10 ms .. 2 min).
    public static let checkpointBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30),
        .seconds(60), .seconds(120),
    ]

    /// Bucket bounds of `tally_checkpoint_capture_seconds` (1 ms .. 10 s): ~25 ms per million
    /// remembered ids.
    public static let captureBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(10),
    ]

    /// Registers every metric of `MetricCatalog` in `registry`.
    /// - Parameters:
    ///   - version: the `version` label of `tally_build_info`.
    ///   - labelLimit: distinct `source` (and `type`) values admitted before `other`.
    public init(registry: PrometheusCollectorRegistry, version: String, labelLimit: Int = 1_000) {
        self.registry = registry
        self.sources = LabelCap(limit: labelLimit)
        self.types = LabelCap(limit: labelLimit)
        func counter(_ definition: MetricDefinition, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(descriptor: Self.descriptor(definition), labels: labels)
        }
        func gauge(_ definition: MetricDefinition, _ labels: [(String, String)] = []) -> Gauge {
            registry.makeGauge(descriptor: Self.descriptor(definition), labels: labels)
        }
        eventsReceived = counter(MetricCatalog.eventsReceived)
        eventsAccepted = counter(MetricCatalog.eventsAccepted)
        eventsDuplicate = counter(MetricCatalog.eventsDuplicate)
        eventsLate = counter(MetricCatalog.eventsLate)
        ingestBytes = counter(MetricCatalog.ingestBytes)
        ingestBatchEvents = registry.makeValueHistogram(
            descriptor: Self.descriptor(MetricCatalog.ingestBatchEvents), buckets: Self.batchBuckets)
        engineLag = gauge(MetricCatalog.engineLag)
        walFsync = registry.makeDurationHistogram(
            descriptor: Self.descriptor(MetricCatalog.walFsync), buckets: Self.fsyncBuckets)
        checkpointDuration = registry.makeDurationHistogram(
            descriptor: Self.descriptor(MetricCatalog.checkpointDuration), buckets: Self.checkpointBuckets)
        checkpointCapture = registry.makeDurationHistogram(
            descriptor: Self.descriptor(MetricCatalog.checkpointCapture), buckets: Self.captureBuckets)
        checkpointBytes = gauge(MetricCatalog.checkpointBytes)
        snapshotsPublished = counter(MetricCatalog.snapshotsPublished)
        snapshotSeq = gauge(MetricCatalog.snapshotSeq)
        subscribersConnected = gauge(MetricCatalog.subscribersConnected)
        producersConnected = gauge(MetricCatalog.producersConnected)
        reloadSuccess = counter(MetricCatalog.reloads, [("result", "success")])
        reloadFailure = counter(MetricCatalog.reloads, [("result", "failure")])
        buildInfo = gauge(MetricCatalog.buildInfo, [("version", version)])
        buildInfo.set(Double(1))
    }

    /// Metrics in a registry of their own (tests, or a daemon that does not bootstrap swift-metrics).
    public convenience init(version: String, labelLimit: Int = 1_000) {
        self.init(registry: PrometheusCollectorRegistry(), version: version, labelLimit: labelLimit)
    }

    static func descriptor(_ definition: MetricDefinition) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: definition.name, unitName: "", helpText: definition.help)
    }

    // MARK: Recording

    /// Adds one drain's outcome: one atomic add per non-zero counter, one series lookup per distinct
    /// label pair, one histogram observation per frame.
    /// - Complexity: O(frames + distinct label pairs in the drain); never O(events).
    public func record(_ tally: IngestTally) {
        if tally.received > 0 { eventsReceived.increment(by: Int64(tally.received)) }
        if tally.accepted > 0 { eventsAccepted.increment(by: Int64(tally.accepted)) }
        if tally.duplicates > 0 { eventsDuplicate.increment(by: Int64(tally.duplicates)) }
        if tally.late > 0 { eventsLate.increment(by: Int64(tally.late)) }
        if tally.bytes > 0 { ingestBytes.increment(by: Int64(tally.bytes)) }
        for size in tally.batchSizes { ingestBatchEvents.record(Double(size)) }
        for (key, count) in tally.rejected { recordRejected(reason: key.first, source: key.second, count: count) }
        for (key, count) in tally.unrouted { recordUnrouted(type: key.first, source: key.second, count: count) }
        if let lag = tally.lagSeconds { engineLag.set(lag) }
    }

    /// Adds `count` to `tally_events_rejected_total{reason,source}` (source capped).
    public func recordRejected(reason: String, source: String, count: Int = 1) {
        let key = IngestTally.Key(reason, sources.admit(source))
        series(rejectedSeries, key, MetricCatalog.eventsRejected).increment(by: Int64(count))
    }

    /// Adds `count` to `tally_events_unrouted_total{type,source}` (type and source capped).
    public func recordUnrouted(type: String, source: String, count: Int = 1) {
        let key = IngestTally.Key(types.admit(type), sources.admit(source))
        series(unroutedSeries, key, MetricCatalog.eventsUnrouted).increment(by: Int64(count))
    }

    /// Counts a failed handshake (ZMTP error, CURVE failure, ZAP refusal) on `endpoint`.
    public func recordHandshakeFailure(endpoint: String) {
        let counter = handshakeSeries.withLock { cache in
            if let existing = cache[endpoint] { return existing }
            let made = registry.makeCounter(
                descriptor: Self.descriptor(MetricCatalog.handshakeFailures), labels: [("endpoint", endpoint)])
            cache[endpoint] = made
            return made
        }
        counter.increment()
    }

    /// Counts a SIGHUP reload by its outcome.
    public func recordReload(succeeded: Bool) {
        (succeeded ? reloadSuccess : reloadFailure).increment()
    }

    /// Records one published snapshot: the counter and the current `seq`.
    public func recordSnapshotPublished(seq: UInt64) {
        snapshotsPublished.increment()
        snapshotSeq.set(Double(seq))
    }

    private func series(
        _ cache: borrowing Mutex<[IngestTally.Key: Counter]>, _ key: IngestTally.Key, _ definition: MetricDefinition
    ) -> Counter {
        cache.withLock { cache in
            if let existing = cache[key] { return existing }
            let made = registry.makeCounter(
                descriptor: Self.descriptor(definition),
                labels: [(definition.labels[0], key.first), (definition.labels[1], key.second)])
            cache[key] = made
            return made
        }
    }

    // MARK: Exposition

    /// The text exposition (format 0.0.4) of every metric in the registry.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
