public import Logging
public import TallyEngine

// MARK: - EngineCore

/// ``AggregationCore`` over `TallyEngine.Engine`: the only place the daemon touches the engine.
///
/// Why an adapter: the run loop speaks frames, outcomes and snapshot bytes; the engine speaks
/// pipelines, reports and `Snapshot` values. Keeping the translation here lets the engine evolve
/// (checkpoints, reconfiguration) by changing this file alone.
///
/// Single owner: every method runs on the engine thread.
public final class EngineCore: AggregationCore {
    public private(set) var engine: Engine {
        didSet { hot = Unmanaged.passUnretained(engine) }
    }
    /// ``engine`` without ownership, for ``ingest(_:allowedSources:)``: calling through the stored
    /// `var` cost an exclusivity check and a retain/release pair per frame. (With the origin and
    /// report changes of the same round, retain/release and access checks fell from 8% to 2.7% of
    /// the engine thread's samples at 1 event/frame; round 11.) Valid while `engine` holds the
    /// same object: it is replaced only by ``restore(from:)`` and reloads, on the engine thread,
    /// never during a call.
    private var hot: Unmanaged<Engine>
    public let settings: RunSettings
    private let logger: Logger
    /// `snapshot.<name>` topic bytes, built once.
    private var indicatorIds: [String]
    /// `Origin.any`, read once: the default argument of `Engine.ingest` goes through a lazy
    /// global's `swift_once` and a copy per frame (~1% of the engine thread at 1 event/frame).
    private let anyOrigin = Origin.any

    /// Loads the pipeline and the opening balances of `settings`.
    /// - Throws: ``ConfigError`` (exit 2) naming the file, line and column of each pipeline error,
    ///   or an unreadable/invalid balances file.
    public init(settings: RunSettings, logger: Logger) throws(ConfigError) {
        self.settings = settings
        self.logger = logger
        let pipeline = try Self.loadPipeline(settings.pipelinePath)
        engine = Engine(pipeline: pipeline, options: Self.options(settings))
        hot = Unmanaged.passUnretained(engine)
        indicatorIds = pipeline.indicators.map(\.id)
        if let balances = settings.balances { try loadBalances(balances) }
    }

    /// A fresh core on an already validated pipeline (reload), with the same options and balances.
    private init(settings: RunSettings, logger: Logger, pipeline: Pipeline) throws(ConfigError) {
        self.settings = settings
        self.logger = logger
        engine = Engine(pipeline: pipeline, options: Self.options(settings))
        hot = Unmanaged.passUnretained(engine)
        indicatorIds = pipeline.indicators.map(\.id)
        if let balances = settings.balances { try loadBalances(balances) }
    }

    /// The engine's options from the settings: the clock, and the decoder's share of the limits
    /// (`--max-json-depth`, `--max-string-length`, `--max-events-per-batch`).
    static func options(_ s: RunSettings) -> EngineOptions {
        var o = EngineOptions(clock: s.clock == .wall ? .wallClock : .eventTime)
        o.decodeLimits = s.limits.decodeLimits
        return o
    }

    /// Loads and compiles a pipeline, turning its diagnostics into one configuration error.
    public static func loadPipeline(_ path: String) throws(ConfigError) -> Pipeline {
        do {
            return try Pipeline.load(path: path)
        } catch {
            throw ConfigError(setting: "--pipeline", value: path,
                              problem: "is not a valid pipeline:\n\(error.description)",
                              fix: "fix the errors above (run 'tally check \(path)' to see them again)")
        }
    }

    /// Applies a JSON-lines file of `tally.balance` events (opening balances).
    private func loadBalances(_ path: String) throws(ConfigError) {
        let bytes: [UInt8]
        do { bytes = try readFileBytes(path) } catch {
            throw ConfigError(setting: "--balances", value: path, problem: "cannot be read (\(error))",
                              fix: "give a readable JSON-lines file of tally.balance events")
        }
        var lineNumber = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { continue }
            let report = line.withUnsafeBytes { engine.ingest($0) }
            if let e = report.payloadError ?? report.rejected.first?.reason {
                throw ConfigError(setting: "--balances", value: "\(path):\(lineNumber)", problem: "is not a valid balance (\(e.code.rawValue): \(e.message))",
                                  fix: #"write one {"specversion":"1.0","type":"tally.balance","data":{"indicator":...,"value":...},...} per line"#)
            }
        }
    }

    // MARK: AggregationCore

    public var pipelineName: String { engine.pipeline.name }

    /// - Complexity: O(payload bytes + events × aggregates per type); allocation-free when every
    ///   event is valid (the report's arrays stay empty).
    public func ingest(_ payload: UnsafeRawBufferPointer, allowedSources: [String]?) -> FrameOutcome {
        ingest(payload, allowedSources: allowedSources, keyHint: nil)
    }

    public func ingest(_ payload: UnsafeRawBufferPointer, allowedSources: [String]?, keyHint: FrameKeyHint?) -> FrameOutcome {
        guard let allowedSources else {
            return hot._withUnsafeGuaranteedRef { Self.outcome(of: $0.ingest(payload, origin: anyOrigin, keyHint: keyHint)) }
        }
        return Self.outcome(of: engine.ingest(payload, origin: Origin(sourcePrefixes: allowedSources), keyHint: keyHint))
    }

    /// The frame's dedup key (``FrameKeyHint``), read while the drain has its bytes in cache.
    /// - Complexity: O(its `id` + `source`) and one hash, which the frame's decode then skips;
    ///   nothing for a batch.
    public func keyHint(for payload: UnsafeRawBufferPointer) -> FrameKeyHint? {
        FrameKeyHint(frame: payload)
    }

    /// ``Engine/prefetch(_:)``: two prefetch instructions.
    public func prefetch(_ hint: FrameKeyHint) {
        hot._withUnsafeGuaranteedRef { $0.prefetch(hint) }
    }

    /// The report as the daemon's outcome. The report is consumed (no copy of its arrays, no
    /// retain/release per frame on the all-valid path); rejections take the out-of-line path.
    @inline(__always)
    private static func outcome(of report: consuming IngestReport) -> FrameOutcome {
        var out = FrameOutcome()
        out.counts = report.counts
        if !report.isClean { addRejections(of: report, to: &out) }
        return out
    }

    @inline(never)
    private static func addRejections(of report: borrowing IngestReport, to out: inout FrameOutcome) {
        var rejected: [FrameOutcome.Rejection] = []
        if !report.rejected.isEmpty {
            rejected.reserveCapacity(report.rejected.count)
            let elements = report.rejectedElements
            for (k, r) in report.rejected.enumerated() {
                rejected.append(.init(index: r.index, code: r.reason.code.rawValue, message: r.reason.message,
                                      element: k < elements.count ? elements[k] : nil))
            }
        }
        let payloadError = report.payloadError.map { FrameOutcome.Rejection(index: 0, code: $0.code.rawValue, message: $0.message) }
        out.problems = FrameOutcome.Problems.unlessEmpty(rejected, payloadError)
    }

    public func advance(wallClockMicros: Int64) {
        engine.advance(wallClock: wallClockMicros)
    }

    /// - Complexity: O(indicators + groups); the per-indicator messages reuse the full
    ///   snapshot's `as_of` text.
    public func snapshot(seq: UInt64, publishedAtMicros: Int64) -> SnapshotOutput {
        let snap = engine.snapshot()
        let json = snap.json(seq: seq, publishedAt: publishedAtMicros)
        let asOf = Self.asOfText(json)
        var perIndicator: [(id: String, json: [UInt8])] = []
        perIndicator.reserveCapacity(snap.indicators.count)
        for ind in snap.indicators {
            guard let entry = snap.indicatorJSON(ind.id) else { continue }
            var out: [UInt8] = []
            out.reserveCapacity(entry.count + ind.id.utf8.count + 96)
            out.append(contentsOf: #"{"pipeline":"#.utf8)
            JSONText.appendString(snap.pipeline, to: &out)
            out.append(contentsOf: #","seq":"#.utf8)
            JSONText.appendInt(Int(seq), to: &out)
            out.append(contentsOf: #","as_of":"#.utf8)
            out.append(contentsOf: asOf)
            out.append(contentsOf: #","id":"#.utf8)
            JSONText.appendString(ind.id, to: &out)
            out.append(contentsOf: #","indicator":"#.utf8)
            out.append(contentsOf: entry)
            out.append(UInt8(ascii: "}"))
            perIndicator.append((ind.id, out))
        }
        return SnapshotOutput(json: json, indicators: perIndicator, asOfMicros: snap.asOf)
    }

    /// The raw `as_of` value (`"..."` or `null`) of a snapshot object written by `Snapshot.json`.
    static func asOfText(_ json: [UInt8]) -> ArraySlice<UInt8> {
        let key = Array(#""as_of":"#.utf8)
        let end = Array(#","published_at""#.utf8)
        guard let k = json.firstRange(of: key), let e = json[k.upperBound...].firstRange(of: end) else {
            return ArraySlice(Array("null".utf8))
        }
        return json[k.upperBound..<e.lowerBound]
    }

    /// The whole engine state (`Engine.checkpoint()`: versioned binary with its own checksum,
    /// aggregates keyed by canonical definition so a checkpoint also restores into a changed pipeline).
    /// - Complexity: O(state size): keys, buckets and remembered ids, never events.
    public func checkpoint() -> [UInt8]? { engine.checkpoint() }

    /// `Engine.captureCheckpoint()` here (serialisation, without the remembered ids); the ids'
    /// entries and the checksum are written by ``CapturedCheckpoint/write(to:)`` on the
    /// checkpoint thread.
    /// - Complexity: O(state size) here, O(bytes) there.
    public func captureCheckpoint() -> CapturedCheckpoint? {
        let box = CaptureBox(engine.captureCheckpoint())
        return CapturedCheckpoint(byteCount: box.byteCount) { sink in try box.take().write(to: sink) }
    }

    /// Replaces the engine with one restored from a checkpoint (called before any frame is applied).
    /// Opening balances from `--balances` are applied again afterwards: the latest `at` wins, so
    /// re-applying the same file is idempotent, and a balance changed in the file takes effect.
    public func restore(from bytes: [UInt8]) throws(DaemonError) {
        do {
            engine = try Engine.restore(pipeline: engine.pipeline, options: engine.options, from: bytes)
        } catch {
            throw .runtime("the checkpoint cannot be restored into this pipeline: \(error): move checkpoint-*.bin out of the state directory to recover from the log alone")
        }
        if let balances = settings.balances {
            do { try loadBalances(balances) } catch { throw .usage("\(error)") }
        }
    }

    /// Loads the (possibly moved) pipeline file and builds an empty core on it with the same
    /// options and balances: the donor of ``adoptReload(from:)``.
    public func prepareReload(pipelinePath: String) throws(ConfigError) -> any AggregationCore {
        let pipeline = try Self.loadPipeline(pipelinePath)
        return try EngineCore(settings: settings, logger: logger, pipeline: pipeline)
    }

    /// `Engine.reconfigure(to:backfillFrom:)` with the donor's engine.
    /// - Complexity: O(indicators + state of the backfilled aggregates).
    public func adoptReload(from donor: any AggregationCore) -> ReloadSummary {
        guard let donor = donor as? EngineCore else { return ReloadSummary(kept: indicatorIds) }
        let report = engine.reconfigure(to: donor.engine.pipeline, backfillFrom: donor.engine)
        indicatorIds = engine.pipeline.indicators.map(\.id)
        return ReloadSummary(kept: report.kept, backfilled: report.fresh)
    }

    public var counters: CoreCounters {
        let s = engine.stats
        var c = CoreCounters()
        c.accepted = s.accepted
        c.duplicates = s.duplicates
        c.late = s.late
        for (k, v) in s.unrouted { c.unrouted[.init(first: k.first, second: k.second)] = v }
        return c
    }
}

/// Moves an engine capture to the checkpoint thread so that sealing it finds the only
/// reference to its bytes (sealing in place, no 1-copy of the whole state). Written on the
/// engine thread before the hand-over, read once after it on the checkpoint thread (the
/// hand-over's semaphore orders the two).
private final class CaptureBox: @unchecked Sendable {
    private var capture: CheckpointCapture?
    let byteCount: Int

    init(_ capture: CheckpointCapture) {
        byteCount = capture.byteCount
        self.capture = capture
    }

    func take() -> CheckpointCapture {
        let c = capture!
        capture = nil
        return c
    }
}
