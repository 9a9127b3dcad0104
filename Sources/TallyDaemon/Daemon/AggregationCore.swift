public import TallyEngine

// MARK: - AggregationCore

/// What the engine thread needs from the aggregation core: apply a frame, build a snapshot,
/// checkpoint. `TallyEngine.Engine` is adapted to it in `EngineCore.swift`; keeping the seam
/// this narrow is what lets the run loop stay ignorant of windows, pipelines and decoding.
///
/// Every method is called from the engine thread only (single owner, no locks).
public protocol AggregationCore: AnyObject {
    /// The pipeline's name (`national-dx`): the snapshot topic is `snapshot.<name>`.
    var pipelineName: String { get }

    /// Applies one payload (a CloudEvent JSON object or a JSON array of them).
    /// - Parameter allowedSources: the CloudEvents `source` prefixes its sender may use (its
    ///   ``FrameOrigin/sourcePrefixes``), nil for any. Only this part of the origin: the caller
    ///   keeps the label for the reject ledger, and passing nil per frame costs no reference counting.
    /// - Complexity: O(payload bytes); allocation-free on the all-valid path.
    func ingest(_ payload: UnsafeRawBufferPointer, allowedSources: [String]?) -> FrameOutcome

    /// ``ingest(_:allowedSources:)`` with what ``keyHint(for:)`` read from these very bytes
    /// when they were received. Default: the hint is ignored.
    func ingest(_ payload: UnsafeRawBufferPointer, allowedSources: [String]?, keyHint: FrameKeyHint?) -> FrameOutcome

    /// What the core can read from a frame cheaply while its bytes are in cache (the drain
    /// calls it for each frame it has just copied), for ``prefetch(_:)`` and the frame's
    /// ingest. Default: nil.
    func keyHint(for payload: UnsafeRawBufferPointer) -> FrameKeyHint?

    /// Starts loading what the core will need for the frame `hint` was read from, which is
    /// ingested a frame or two later. Default: nothing.
    func prefetch(_ hint: FrameKeyHint)

    /// Moves the wall-clock windows forward (wall-clock mode); a no-op in event-time mode.
    func advance(wallClockMicros: Int64)

    /// The snapshot as published: the full JSON, and one JSON object per indicator.
    func snapshot(seq: UInt64, publishedAtMicros: Int64) -> SnapshotOutput

    /// The whole state, for a checkpoint (versioned binary owned by the core), or `nil` when the
    /// core cannot serialise its state: the daemon then keeps the whole log and replays it.
    func checkpoint() -> [UInt8]?

    /// The state for a checkpoint, captured on the engine thread and finished elsewhere: only
    /// what must see the state at this log position runs here; the rest (the bulk of the bytes,
    /// the checksum) runs when the checkpoint thread calls ``CapturedCheckpoint/write(to:)``.
    /// `nil` like ``checkpoint()``. Default: the whole ``checkpoint()`` here.
    func captureCheckpoint() -> CapturedCheckpoint?

    /// Replaces the state with a checkpoint's (called once, before any frame is applied).
    func restore(from bytes: [UInt8]) throws(DaemonError)

    /// SIGHUP, step 1: loads and validates the pipeline at `pipelinePath` and returns an empty
    /// core on it (the *donor*), which the daemon fills by replaying the retained log.
    /// Throws, keeping the running pipeline, when the new one is invalid.
    func prepareReload(pipelinePath: String) throws(ConfigError) -> any AggregationCore

    /// SIGHUP, step 2: switches this core to the donor's pipeline: unchanged indicators keep
    /// their state, indicators that would start empty take the donor's (the retained log).
    func adoptReload(from donor: any AggregationCore) -> ReloadSummary

    /// Cumulative counters for metrics (read once per snapshot tick).
    var counters: CoreCounters { get }
}

/// What a reload did to the indicators.
public struct ReloadSummary: Sendable, Equatable {
    /// Indicators whose state carried over (definition unchanged, or derived).
    public var kept: [String] = []
    /// Indicators that are new or changed: rebuilt from the retained log.
    public var backfilled: [String] = []
    public init(kept: [String] = [], backfilled: [String] = []) {
        self.kept = kept
        self.backfilled = backfilled
    }
}

/// Cumulative counts kept by the core (for metrics and `STATUS=`).
public struct CoreCounters: Sendable {
    public struct Pair: Hashable, Sendable {
        public var first: String
        public var second: String
        public init(first: String, second: String) {
            self.first = first
            self.second = second
        }
    }
    public var accepted = 0
    public var duplicates = 0
    public var late = 0
    /// Unrouted events by (type, source), label-capped by the core.
    public var unrouted: [Pair: Int] = [:]
    public init() {}
}

/// Where a frame came from.
public struct FrameOrigin: Sendable {
    /// The endpoint it arrived on, or `ack:<producer-id>` for the acknowledged path.
    public var label: String
    /// CloudEvents `source` prefixes this sender may use; `nil` = any (no security layer).
    public var sourcePrefixes: [String]?

    public init(label: String, sourcePrefixes: [String]? = nil) {
        self.label = label
        self.sourcePrefixes = sourcePrefixes
    }
}

/// What became of one frame.
@dynamicMemberLookup
public struct FrameOutcome: Sendable, HasEventCounts {
    /// Events accepted, duplicates, unrouted and late (`outcome.accepted`, ...).
    public var counts = EventCounts()
    /// Rejected events of the frame: their index in the batch (0 for a single object) and why.
    public var rejected: [Rejection] {
        get { problems?.rejected ?? [] }
        set { problems = Problems.unlessEmpty(newValue, payloadError) }
    }
    /// Set when the frame as a whole is unusable (not JSON, too deep, too large...): nothing applied.
    public var payloadError: Rejection? {
        get { problems?.payloadError }
        set { problems = Problems.unlessEmpty(rejected, newValue) }
    }
    /// No rejection and no payload error (the usual frame).
    @inlinable public var isClean: Bool { problems == nil }

    /// The rare rejections, boxed: with ``counts``, three words, which the core's `ingest`
    /// returns in registers, where the counts, an array and an optional rejection of two
    /// strings were copied through memory and destroyed per frame (`EngineLoop.ingest`'s
    /// largest samples, b1).
    @usableFromInline var problems: Problems?

    /// `rejected` and `payloadError` together, immutable (a setter replaces it).
    @usableFromInline final class Problems: Sendable {
        let rejected: [Rejection]
        let payloadError: Rejection?
        init(rejected: [Rejection], payloadError: Rejection?) {
            self.rejected = rejected
            self.payloadError = payloadError
        }
        static func unlessEmpty(_ rejected: [Rejection], _ payloadError: Rejection?) -> Problems? {
            rejected.isEmpty && payloadError == nil ? nil : Problems(rejected: rejected, payloadError: payloadError)
        }
    }

    public init() {}

    /// One rejected event or payload.
    public struct Rejection: Sendable {
        public var index: Int
        /// A stable code: `invalid_json`, `too_large`, `bad_time`, `wrong_type`, `unknown_type`, ...
        public var code: String
        /// A message naming the field.
        public var message: String
        /// The element's bytes in the frame, when the core knows them (the engine's decoder
        /// does): the reject ledger and the dead letters then take them as they are instead of
        /// splitting the frame again.
        public var element: Range<Int>?
        public init(index: Int, code: String, message: String, element: Range<Int>? = nil) {
            self.index = index
            self.code = code
            self.message = message
            self.element = element
        }
    }

    /// Events the frame held (accepted + duplicates + unrouted + rejected; `late` ones are
    /// also listed in `rejected`).
    public var events: Int { counts.accepted + counts.duplicates + counts.unrouted + rejected.count }
}

/// A built snapshot: what is published and served.
public struct SnapshotOutput: Sendable {
    /// The full snapshot JSON (`{"pipeline":...,"seq":...,"indicators":{...}}`).
    public var json: [UInt8]
    /// Per indicator: its id and the JSON published on `indicator.<id>`.
    public var indicators: [(id: String, json: [UInt8])]
    /// The pipeline clock `T` (the snapshot's `as_of`), microseconds.
    public var asOfMicros: Int64?

    public init(json: [UInt8], indicators: [(id: String, json: [UInt8])], asOfMicros: Int64?) {
        self.json = json
        self.indicators = indicators
        self.asOfMicros = asOfMicros
    }
}

extension AggregationCore {
    public func captureCheckpoint() -> CapturedCheckpoint? { checkpoint().map { CapturedCheckpoint(bytes: $0) } }
    public func ingest(_ payload: UnsafeRawBufferPointer, allowedSources: [String]?, keyHint: FrameKeyHint?) -> FrameOutcome {
        ingest(payload, allowedSources: allowedSources)
    }
    public func keyHint(for payload: UnsafeRawBufferPointer) -> FrameKeyHint? { nil }
    public func prefetch(_ hint: FrameKeyHint) {}
}

// MARK: - CapturedCheckpoint

/// A core's state captured for a checkpoint on the engine thread, handed to the checkpoint
/// thread, which calls ``write(to:)`` once to get the bytes to write, in pieces.
public struct CapturedCheckpoint: Sendable {
    /// Bytes of the finished checkpoint.
    public let byteCount: Int
    private let writer: @Sendable ((UnsafeRawBufferPointer) throws -> Void) throws -> Void

    /// A capture finished by `write` (called once, on another thread), which hands `byteCount`
    /// bytes to its sink in order, in pieces.
    public init(byteCount: Int, write: @escaping @Sendable ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
        self.byteCount = byteCount
        writer = write
    }

    /// Already finished bytes.
    public init(bytes: [UInt8]) {
        byteCount = bytes.count
        writer = { sink in try bytes.withUnsafeBytes(sink) }
    }

    /// Hands the finished bytes to `sink`, in order, in pieces (rethrows what `sink` throws).
    /// Call once.
    public func write(to sink: (UnsafeRawBufferPointer) throws -> Void) throws { try writer(sink) }
}
