public import Logging
public import Synchronization
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Daemon

/// The running daemon: recovers the state directory, binds the protocol's endpoints and runs
/// the engine thread and the snapshot-service thread (see ARCHITECTURE.md, "Threads").
///
/// ```swift
/// let daemon = try Daemon(settings: settings, core: core, logger: logger)
/// try daemon.start()          // recovers, binds, publishes the first snapshot, starts the threads
/// ...
/// daemon.requestStop()        // SIGTERM: stop input, drain, final snapshot, checkpoint
/// await daemon.stopped.wait()
/// ```
///
/// Durability (with a state directory): every drained frame is appended to the write-ahead log
/// with one write before anything is applied; acknowledged batches of the drain share one
/// `fdatasync`, which runs on the log thread while they are applied, and they are answered only
/// after it succeeded; fire-and-forget frames are synced at most ``syncInterval`` later.
/// Recovery replays the log (after the newest checkpoint when the core can checkpoint). The snapshot `seq` comes from the lease in the state directory.
///
/// Lifecycle hooks (`hooks`) are where systemd notification, the watchdog and metrics attach;
/// they run on the engine thread and must not block.
public final class Daemon: @unchecked Sendable {
    public let settings: RunSettings
    public let logger: Logger
    /// Bad-input accounting (counts, rate-limited warnings, dead letters).
    public let ledger: RejectLedger
    /// The latest published snapshot (what the snapshot service answers).
    public let latest = LatestSnapshot()
    /// Fires when the engine thread has finished (final snapshot published, checkpoint written).
    public let stopped = Completion()
    /// Live counters, readable from any thread.
    public let stats = Mutex(DaemonStats())
    public var hooks = DaemonHooks()
    /// Re-reads the settings (the `--config` file under the command-line flags) on SIGHUP; set
    /// before ``start()``. Only the pipeline path is applied live; see ``reload()``.
    public var settingsReloader: (@Sendable () throws -> RunSettings)?
    /// Prometheus metrics, updated once per drain; set before ``start()``.
    public var metrics: TallyMetrics?
    /// Bytes drained per loop turn at most (plus one frame): bounds the batch and log buffers.
    static let drainBytes = 4 << 20
    /// How many frames ahead of the one it ingests the engine loop prefetches dedup lines for
    /// (``AggregationCore/prefetch(_:)``): one frame's decode and apply (~0.4 µs) covers a miss
    /// to memory; two leave room for a slower frame.
    static let keyPrefetchDistance = 2
    /// How long fire-and-forget frames may stay in the log unsynced (a crash loses at most this).
    public var syncInterval: Duration = .milliseconds(100)

    /// The endpoints actually bound (a `tcp://127.0.0.1:*` becomes its real port). Set by ``start()``.
    public private(set) var boundEndpoints = BoundEndpoints()
    /// What recovery found (nil without a state directory). Set by ``start()``.
    public private(set) var recovery: RecoveryReport?

    let context: Context
    private var core: any AggregationCore
    private var durable: DurableState?
    /// Per acknowledged producer: last durable sequence and its reply (in the checkpoint; rebuilt by replay).
    private var producers = ProducerTable()
    private var security: Security?
    /// `--rate-limit`: per-producer token buckets (nil = unlimited). Engine thread only.
    private let rateLimiter: IngestRateLimiter?
    private var pulls: [(socket: Socket, origin: FrameOrigin)] = []
    private var ack: Socket?
    private var pub: Socket?
    private var service: SnapshotService?
    private let wake = WakePipe()
    /// Peers connected and handshake failures (socket monitors, on their own thread).
    private var connections: ConnectionMonitor?
    /// Subscribers on the PUB socket and producers on the ingest sockets right now.
    public var connectedPeers: (subscribers: Int, producers: Int, handshakeFailures: Int) {
        guard let c = connections else { return (0, 0, 0) }
        return (c.subscribers.load(ordering: .relaxed), c.producers.load(ordering: .relaxed), c.handshakeFailures.load(ordering: .relaxed))
    }
    private let stopFlag = Atomic<Bool>(false)
    private let reloadFlag = Atomic<Bool>(false)
    private var seq: UInt64
    /// The pipeline file in effect (a reload may take a new path from the config file).
    private var activePipelinePath: String
    /// Log segment size (default: `WriteAheadLog.Options`'s 64 MiB); set before ``start()``.
    /// Tests use small segments to see the log truncated behind checkpoints.
    var logSegmentSize: Int64?
    /// Runs on the log thread right before each group-commit `fdatasync` (tests: hold a sync in
    /// flight to see that no reply goes out before it, or make it fail). Set before ``start()``.
    var beforeLogSync: (@Sendable () -> Void)?
    /// `stats.bytes` when the last checkpoint was attempted (engine thread).
    private var checkpointBytesMark = 0
    private var rejectedReported: [RejectLedger.Key: Int] = [:]
    private var unroutedReported: [CoreCounters.Pair: Int] = [:]

    /// - Parameters:
    ///   - core: the aggregation core; from now on owned by the engine thread.
    ///   - initialSeq: without a state directory, the last `seq` published before; the first
    ///     snapshot of this run is `initialSeq + 1`. With one, the lease there decides.
    public init(settings: RunSettings, core: any AggregationCore, logger: Logger, initialSeq: UInt64 = 0) throws(DaemonError) {
        self.settings = settings
        self.core = core
        self.logger = logger
        self.seq = initialSeq
        self.activePipelinePath = settings.pipelinePath
        self.rateLimiter = settings.rateLimit.map { IngestRateLimiter(limit: $0) }
        var deadLetter: DeadLetterFile?
        if let path = settings.deadLetter {
            do {
                deadLetter = try DeadLetterFile(path: path, maxBytes: settings.deadLetterMaxBytes, keep: settings.deadLetterKeep)
            } catch {
                throw DaemonError.usage("--dead-letter \(path): \(error): give a writable file path")
            }
        }
        self.ledger = RejectLedger(logger: logger, deadLetter: deadLetter)
        do {
            context = try Context(ioThreads: 1, defaultLinger: 0)
        } catch {
            throw DaemonError.runtime("cannot create the ZeroMQ context: \(error)")
        }
    }

    /// The pipeline name being published (`snapshot.<name>`).
    public var pipelineName: String { core.pipelineName }

    // MARK: - Start

    /// Recovers the state directory, binds every endpoint, publishes the first snapshot and
    /// starts the threads; ``DaemonHooks/ready`` runs last (`READY=1` only after all of it).
    /// - Throws: ``DaemonError/usage(_:)`` for an endpoint libzmq cannot parse, a non-loopback
    ///   bind without CURVE, a bad key file; ``DaemonError/runtime(_:)`` for one it cannot bind
    ///   (in use, no such interface) or a state directory that cannot be recovered.
    public func start() throws(DaemonError) {
        let options = SecurityOptions(curveSecret: settings.curveSecret, authorizedKeys: settings.authorizedKeys,
                                      insecure: settings.insecure)
        do {
            let all = settings.ingest + [settings.publish, settings.snapshotService] + (settings.ingestAck.map { [$0] } ?? [])
            try SecurityOptions.validateBinds(endpoints: all, curve: options.curve, insecure: options.insecure, logger: logger)
            security = try Security.start(options: options, context: context, logger: logger)
        } catch {
            throw .usage(error.message)
        }
        try recover()
        do {
            for endpoint in settings.ingest {
                let s = try Socket(context, .pull)
                try s.set(.receiveHighWaterMark, settings.ingestHighWaterMark)
                try s.set(.maxMessageSize, Int64(settings.maxMessageSize))
                try security?.configure(socket: s, role: .ingest)
                try bind(s, endpoint, flag: "--ingest")
                pulls.append((s, FrameOrigin(label: (try? s.lastEndpoint) ?? endpoint)))
            }
            if let endpoint = settings.ingestAck {
                let s = try Socket(context, .router)
                try s.set(.receiveHighWaterMark, settings.ingestHighWaterMark)
                try s.set(.maxMessageSize, Int64(settings.maxMessageSize) + 4096)
                try s.set(.linger, 1_000)
                try security?.configure(socket: s, role: .ingestAck)
                try bind(s, endpoint, flag: "--ingest-ack")
                ack = s
            }
            let p = try Socket(context, .pub)
            try p.set(.sendHighWaterMark, settings.publishHighWaterMark)
            try p.set(.linger, 1_000)   // the final snapshot reaches subscribers that keep up
            try security?.configure(socket: p, role: .publish)
            try bind(p, settings.publish, flag: "--publish")
            pub = p
            let r = try Socket(context, .router)
            try r.set(.maxMessageSize, 64 << 10)
            try r.set(.linger, 500)
            try security?.configure(socket: r, role: .snapshot)
            try bind(r, settings.snapshotService, flag: "--snapshot-service")
            service = SnapshotService(socket: r, latest: latest, logger: logger)
        } catch let e as DaemonError {
            throw e
        } catch {
            throw DaemonError.runtime("cannot set up the sockets: \(error)")
        }
        boundEndpoints = BoundEndpoints(
            ingest: pulls.map { $0.origin.label }, ingestAck: ack.map { (try? $0.lastEndpoint) ?? "" },
            publish: (try? pub!.lastEndpoint) ?? settings.publish, snapshotService: service!.endpoint)

        let monitor = ConnectionMonitor(metrics: metrics)
        do {
            for p in pulls { try monitor.watch(p.socket, context: context, role: .producer, endpoint: p.origin.label) }
            if let ack { try monitor.watch(ack, context: context, role: .producer, endpoint: boundEndpoints.ingestAck ?? "") }
            if let pub { try monitor.watch(pub, context: context, role: .subscriber, endpoint: boundEndpoints.publish) }
            connections = monitor
            spawnThread(name: "tally-monitor") { monitor.run() }
        } catch {
            logger.warning("socket monitors unavailable, connection metrics stay at 0: \(error)")
        }
        publishSnapshot()   // the service has something to answer from its first request
        let service = self.service!
        spawnThread(name: "tally-snapshots") { service.run() }
        spawnThread(name: "tally-engine") { [self] in
            engineMain()
            stopped.fire()
        }
        logger.info("tally is running", metadata: [
            "pipeline": "\(core.pipelineName)", "ingest": "\(boundEndpoints.ingest.joined(separator: ","))",
            "ingest-ack": "\(boundEndpoints.ingestAck ?? "off")", "publish": "\(boundEndpoints.publish)",
            "snapshot-service": "\(boundEndpoints.snapshotService)",
            "snapshot-interval": "\(DurationText.format(settings.snapshotInterval))",
            "state-dir": "\(settings.stateDirectory ?? "none (in memory)")",
            // Whether log appends bypass the page cache (O_DIRECT) or go through it (a file
            // system without direct I/O): the log's CPU cost differs (Deploy/README).
            "log-writes": "\(durable.map { $0.log.usesDirectIO ? "direct" : "page cache" } ?? "none")",
        ])
        hooks.ready?()
    }

    private func bind(_ socket: Socket, _ endpoint: String, flag: String) throws(DaemonError) {
        do {
            try socket.bind(endpoint)
        } catch {
            switch error {
            case .invalidArgument, .protocolNotSupported, .incompatibleProtocol:
                throw .usage("\(flag) \(endpoint) is not a usable endpoint (\(error.message)): write e.g. tcp://127.0.0.1:7701 or ipc:///run/tally/x.sock")
            case .addressInUse:
                throw .runtime("\(flag) \(endpoint) is already in use: stop the other process or choose another port")
            default:
                throw .runtime("\(flag) \(endpoint) cannot be bound: \(error)")
            }
        }
    }

    // MARK: - Recovery

    /// Opens the state directory and brings the core and the producer table to the end of the log.
    private func recover() throws(DaemonError) {
        guard let dir = settings.stateDirectory else { return }
        var options = RecoveryOptions()
        options.log.maxRecordSize = max(options.log.maxRecordSize, settings.maxMessageSize + 4096)
        if let size = logSegmentSize { options.log.maxSegmentSize = size }
        let state: DurableState
        do {
            state = try Recovery.open(stateDirectory: dir, options: options)
        } catch {
            if case .stateDirectoryLocked = error {
                throw .runtime("--state-dir \(dir) is in use by another tally process: stop it, or give this one its own --state-dir")
            }
            throw .runtime("--state-dir \(dir) cannot be recovered: \(error)")
        }
        let began = Clocks.monotonicNanos()
        logger.info("recovering", metadata: ["state-dir": "\(dir)", "found": "\(state.report)"])
        if let cp = state.checkpoint {
            try core.restore(from: cp.engineState)
        }
        producers = state.producers
        var replayed: UInt64 = 0
        do {
            let hooks = self.hooks
            replayed = try Self.replayLog(state.log, after: state.checkpoint?.lsn ?? 0, into: core, producers: &producers) { n in
                hooks.recovering?(n)
            }
        } catch {
            throw .runtime("--state-dir \(dir): replaying the log failed: \(error): the records before the failure were applied; move the damaged segment away to start from what is intact")
        }
        durable = state
        recovery = state.report
        let ms = Double(Clocks.monotonicNanos() - began) / 1e6
        stats.withLock {
            $0.recoveredRecords = Int(replayed)
            $0.producers = producers.count
        }
        logger.info("recovered", metadata: ["records": "\(replayed)", "milliseconds": "\(Int(ms))",
                                            "producers": "\(producers.count)", "next-seq": "\(state.sequences.upcoming)"])
    }

    /// Replays the log records after `lsn` into `core`, bringing `producers` forward: exactly the
    /// decisions the live loop made (an acknowledged batch is applied only when the table says so).
    /// - Parameter progress: called every 100,000 records (the runner extends systemd's start timeout).
    /// - Returns: records replayed.
    /// - Complexity: O(log bytes after `lsn`); memory O(read buffer).
    static func replayLog(_ log: WriteAheadLog, after lsn: LSN, into core: any AggregationCore,
                          producers: inout ProducerTable, initialRestriction: [String]? = nil,
                          progress: (UInt64) -> Void) throws -> UInt64 {
        var restriction: [String]? = initialRestriction
        var n: UInt64 = 0
        var table = producers
        defer { producers = table }
        try log.replay(after: lsn) { record in
            n += 1
            if n % 100_000 == 0 { progress(n) }
            switch try record.decoded() {
            case .frame(_, let payload):
                _ = payload.withUnsafeBytes { core.ingest($0, allowedSources: restriction) }
            case .batch(let producer, let sequence, let payload):
                let id = Array(producer)
                guard case .apply = table.check(producer: id, sequence: sequence) else { return }
                let outcome = payload.withUnsafeBytes { core.ingest($0, allowedSources: restriction) }
                table.record(producer: id, sequence: sequence, reply: AckStatus.json(outcome))
            case .meta(let body):
                if let r = OriginRecord.decode(body) { restriction = r }
            case .unknown:
                break
            }
        }
        return n
    }

    // MARK: - Control (any thread)

    /// Asks for a graceful shutdown: stop taking input, drain, final snapshot, checkpoint.
    /// Idempotent; async-signal-safe enough to call from a signal task.
    /// - Returns: true for the first request, false when a stop was already requested.
    @discardableResult
    public func requestStop() -> Bool {
        let (exchanged, _) = stopFlag.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing)
        wake.wake()
        return exchanged
    }

    /// Asks the engine thread to reload the pipeline (SIGHUP).
    public func requestReload() {
        reloadFlag.store(true, ordering: .releasing)
        wake.wake()
    }

    // MARK: - Engine thread

    private func engineMain() {
        var loop = EngineLoop(daemon: self)
        loop.run()
        // Graceful end: the snapshot service keeps answering until here, then stops.
        service?.requestStop()
        connections?.stop()
        for p in pulls { p.socket.close() }
        ack?.close()
        pub?.close()
        security?.stop()
    }

    /// The engine loop's state, kept in one struct so the hot path reads locals, not class fields.
    struct EngineLoop {
        let daemon: Daemon
        let message = Message()
        var batch = FrameBatch()
        var poller = Poller()
        var wakeIndex = 0
        var pullIndex: [Int] = []
        var ackIndex: Int?
        let interval: Int64
        var nextTick: Int64
        /// Fire-and-forget records appended but not yet synced.
        var unsynced = false
        var nextSync: Int64 = 0
        let syncEvery: Int64
        var nextCheckpoint: Int64
        let checkpointEvery: Int64
        /// The log's thread (nil without a state directory): appends drain N while drain N-1 is applied.
        let writer: LogWriter?
        /// The checkpoint thread (nil without a state directory): writes the checkpoint captured
        /// here, and deletes the log segments behind it, while ingest goes on.
        let checkpointer: CheckpointWriter?
        /// The second drain buffer (the other one is in the writer's hands or being applied).
        var spare: FrameBatch?
        var tally = IngestTally()
        let curve: Bool
        var storageFailures = 0
        var lastStorageWarning: Int64 = 0
        /// When the current drain took its first frame (µs, monotonic): `tally_engine_lag_seconds`.
        var drainStarted: Int64 = 0
        /// Per frame of the drain, the outcome of an acknowledged one (capacity kept across drains).
        var ackOutcomes: [FrameOutcome?] = []

        init(daemon: Daemon) {
            self.daemon = daemon
            interval = daemon.settings.snapshotInterval.microseconds
            let now = Int64(Clocks.monotonicNanos() / 1_000)
            nextTick = now + interval
            syncEvery = max(1_000, daemon.syncInterval.microseconds)
            checkpointEvery = max(100_000, daemon.settings.checkpointInterval.microseconds)
            nextCheckpoint = now + checkpointEvery
            curve = daemon.security?.access != nil
            writer = daemon.durable.map { LogWriter(log: $0.log, beforeSync: daemon.beforeLogSync) }
            writer?.start()
            checkpointer = daemon.durable.map { CheckpointWriter(store: $0.checkpoints, beforeWrite: daemon.hooks.checkpointWriting) }
            checkpointer?.start()
            wakeIndex = poller.add(fileDescriptor: daemon.wake.readFD, .pollIn)
            pullIndex = daemon.pulls.map { poller.add($0.socket, .pollIn) }
            if let ack = daemon.ack { ackIndex = poller.add(ack, .pollIn) }
        }

        mutating func run() {
            let d = daemon
            do {
                while true {
                    var now = Int64(Clocks.monotonicNanos() / 1_000)
                    if now >= nextTick {
                        d.tick()
                        nextTick += interval
                        // Skip missed ticks, measured after the snapshot: a snapshot slower than the
                        // interval (a huge state, a debug build, a loaded machine) must leave ingest a
                        // whole interval before the next one, never starve it tick after tick.
                        let after = Int64(Clocks.monotonicNanos() / 1_000)
                        if nextTick <= after { nextTick = after + interval }
                        continue
                    }
                    // The timer side of group commit. With input flowing, the drain this turn
                    // takes carries the `fdatasync` to the log's thread (appended, then synced,
                    // while this thread applies the previous drain); only a turn that drains
                    // nothing syncs here. The kernel's writeback of ~100 ms of frames inside
                    // `fdatasync` was 5–13% of this thread's CPU at 1 M events/s (round 7).
                    let syncDue = unsynced && now >= nextSync
                    collectCheckpoint(blocking: false)
                    // One checkpoint in flight at most: a due one waits for a turn with the thread idle.
                    if now >= nextCheckpoint || d.loggedSinceCheckpoint() >= d.settings.checkpointBytes,
                       !(checkpointer?.busy ?? false) {
                        flushPipeline()
                        d.checkpoint(writer: checkpointer)
                        nextCheckpoint = now + checkpointEvery
                        writer?.loggedOrigin = .none   // recovery starts after it: the next record restates the origin
                    }
                    var wait = nextTick - now
                    if unsynced { wait = min(wait, nextSync - now) }
                    // A logged drain waiting to be applied: look for input without sleeping.
                    let inFlight = writer?.busy ?? false
                    _ = try poller.poll(timeoutMilliseconds: inFlight ? 0 : max(1, Int((wait + 999) / 1_000)))
                    if poller.revents(wakeIndex).contains(.pollIn) { d.wake.drain() }
                    if d.stopFlag.load(ordering: .acquiring) { break }
                    d.core.advance(wallClockMicros: Clocks.wallMicros())   // bounds future event times
                    if d.reloadFlag.exchange(false, ordering: .acquiringAndReleasing) {
                        flushPipeline()
                        if unsynced { syncLog() }
                        collectCheckpoint(blocking: true)   // the retained log is settled before it is replayed
                        d.reload()
                    }
                    var any = false
                    drainStarted = Int64(Clocks.monotonicNanos() / 1_000)
                    for (i, idx) in pullIndex.enumerated() where poller.revents(idx).contains(.pollIn) {
                        try drainPull(i, limit: d.settings.drainLimit)
                        any = true
                    }
                    if let ackIndex, poller.revents(ackIndex).contains(.pollIn) {
                        flushPipeline()   // the producer table must know every earlier batch
                        try drainAck(limit: d.settings.drainLimit)
                        any = true
                    }
                    var syncCarried = false
                    if any {
                        now = Int64(Clocks.monotonicNanos() / 1_000)
                        if syncDue, writer != nil, !batch.frames.isEmpty {
                            // `applyLogged` clears `unsynced` when the writer reports it synced;
                            // until then the timer must not fire again for the same records.
                            batch.needsSync = true
                            nextSync = now + syncEvery
                            syncCarried = true
                        }
                        commit(now: now)
                    } else if inFlight {
                        flushPipeline()   // input went quiet: apply the last logged drain now
                    }
                    if syncDue && unsynced && !syncCarried { syncLog() }
                    d.hooks.loopTurn?()
                }
                // Shutdown: take what libzmq already queued (bounded), then the final snapshot.
                d.hooks.stopping?()
                let deadline = Int64(Clocks.monotonicNanos() / 1_000) + d.settings.shutdownTimeout.microseconds / 2
                var drained = 0
                repeat {
                    drained = 0
                    for i in pullIndex.indices { drained += try drainPull(i, limit: d.settings.drainLimit) }
                    if ackIndex != nil {
                        flushPipeline()
                        drained += try drainAck(limit: d.settings.drainLimit)
                    }
                    if drained > 0 { commit(now: Int64(Clocks.monotonicNanos() / 1_000)) }
                } while drained > 0 && Int64(Clocks.monotonicNanos() / 1_000) < deadline
            } catch {
                d.logger.error("engine loop stopped on a ZeroMQ error: \(error)")
            }
            flushPipeline()
            if unsynced { syncLog() }
            d.tick()   // the final snapshot
            d.hooks.finalCheckpoint?()
            collectCheckpoint(blocking: true)   // the one in flight, then the final one
            flushPipeline()
            d.checkpoint(writer: checkpointer)
            collectCheckpoint(blocking: true)
            checkpointer?.stop()
            writer?.stop()
            d.closeState()
            d.logger.info("tally stopped", metadata: ["seq": "\(d.seq)"])
        }

        /// Takes the checkpoint thread's outcome, if any (with `blocking`, waits until it is idle):
        /// a durable checkpoint is counted and logged, then the log segments behind the older
        /// kept checkpoint are detached here (the log's owner, with its writer idle) and handed
        /// back to the thread to delete; a failure is logged and counted, and the log is kept.
        /// - Complexity: O(1) when nothing finished (one `sem_trywait`); O(segments) otherwise.
        mutating func collectCheckpoint(blocking: Bool) {
            guard let checkpointer else { return }
            let d = daemon
            while let outcome = blocking ? checkpointer.wait() : checkpointer.poll() {
                switch outcome {
                case .checkpoint(let job, .success(let written)):
                    let total = Clocks.monotonicNanos() &- job.began
                    d.metrics?.checkpointDuration.record(.nanoseconds(Int64(total)))
                    d.metrics?.checkpointBytes.set(Double(written.bytes))
                    d.stats.withLock {
                        $0.checkpoints &+= 1
                        $0.lastCheckpointLSN = job.lsn
                    }
                    d.logger.info("checkpoint written", metadata: [
                        "path": "\(written.path)", "bytes": "\(written.bytes)", "lsn": "\(job.lsn)",
                        "capture-ms": "\(Double(job.captureNanos / 10_000) / 100)",
                        "of-which-log-sync-ms": "\(Double(job.syncNanos / 10_000) / 100)",
                        "heap-trim-ms": "\(Double(job.trimNanos / 10_000) / 100)",
                        "total-ms": "\(total / 1_000_000)",
                    ])
                    // Durable: only now may the log behind the older kept checkpoint go.
                    if let log = d.durable?.log {
                        flushPipeline()   // the log has one owner at a time: the writer must be idle
                        let detached = log.detachSegments(through: written.truncatableThrough)
                        if !detached.isEmpty { checkpointer.submit(.removeSegments(detached)) }
                    }
                case .checkpoint(_, .failure(let error)):
                    d.stats.withLock { $0.checkpointFailures &+= 1 }
                    d.logger.error("checkpoint failed, the log is kept: \(error)")
                case .segmentsRemoved(_, let error?):
                    d.logger.error("deleting log segments behind a checkpoint failed; the rest stay on disk until a restart's first checkpoint: \(error)")
                case .segmentsRemoved(_, nil):
                    break
                }
            }
        }

        /// Makes the fire-and-forget records durable (the timer side of group commit).
        mutating func syncLog() {
            guard let log = daemon.durable?.log else { unsynced = false; return }
            flushPipeline()   // the log has one owner at a time: the writer must be idle
            let t0 = ContinuousClock.now
            do {
                try log.sync()
                daemon.metrics?.walFsync.record(ContinuousClock.now - t0)
            } catch {
                storageProblem(error, frames: 0)
                // The log dropped the unsynced records: its replay state is unknown again.
                writer?.loggedOrigin = .none
            }
            unsynced = false
            nextSync = Int64(Clocks.monotonicNanos() / 1_000) + syncEvery
        }

        /// Counts a failed log write or sync and logs it (at most every 5 s).
        /// - Parameters:
        ///   - frames: frames not applied because their append failed.
        ///   - appliedNotDurable: acknowledged batches applied in overlap with an `fdatasync`
        ///     that then failed: answered `storage_unavailable`, not recorded as durable, so the
        ///     producer's re-send is logged and applied again (its events then count as duplicates).
        mutating func storageProblem(_ error: DurabilityError, frames: Int, appliedNotDurable: Int = 0) {
            let d = daemon
            storageFailures += 1
            d.stats.withLock {
                $0.storageErrors &+= 1
                $0.droppedFrames &+= frames
                $0.appliedNotDurable &+= appliedNotDurable
            }
            let now = Int64(Clocks.monotonicNanos() / 1_000)
            if now - lastStorageWarning >= 5_000_000 {
                lastStorageWarning = now
                if appliedNotDurable > 0 {
                    d.logger.error("the write-ahead log's fdatasync failed after its drain was applied: its acknowledged batches answer storage_unavailable and count once when re-sent (dedup by source + id); until the log is written again, nothing more is applied", metadata: [
                        "error": "\(error)", "out-of-space": "\(error.isOutOfSpace)", "failures": "\(storageFailures)",
                        "batches-applied-not-durable": "\(appliedNotDurable)",
                    ])
                } else {
                    d.logger.error("the write-ahead log cannot be written: acknowledgements answer storage_unavailable and nothing is applied until it can", metadata: [
                        "error": "\(error)", "out-of-space": "\(error.isOutOfSpace)", "failures": "\(storageFailures)",
                    ])
                }
            }
        }

        /// Receives up to `limit` frames from PULL socket `i` into the batch (no allocation: one
        /// reused `Message`, one reused buffer). - Returns: frames taken.
        @discardableResult
        mutating func drainPull(_ i: Int, limit: Int) throws(ZMQError) -> Int {
            let d = daemon
            let socket = d.pulls[i].socket
            let max = d.settings.maxMessageSize
            // Read once per drain, not per frame (each class-field read of a reference is a retain/release pair).
            let limiter = d.rateLimiter
            let core = d.core
            let message = self.message
            let flags = ReceiveFlags.dontWait
            let originIndex = Int32(i)
            var n = 0
            // Bounded by frames and by bytes: 4096 batch frames of 28 KB would otherwise copy 113 MB per drain.
            while n < limit, batch.byteCount < Daemon.drainBytes, try socket.receive(into: message, flags: flags) {
                n += 1
                let size = message.count
                if size > max {
                    message.withUnsafeBytes { buf in
                        d.ledger.recordFrame(code: "too_large", message: "frame of \(size) bytes exceeds --max-message-size \(max)",
                                             payload: buf, origin: d.pulls[i].origin)
                    }
                    continue
                }
                if let limiter, limiter.refusePull(message, curve: curve, origin: d.pulls[i].origin, ledger: d.ledger) { continue }
                // The frame's dedup key, read now that its bytes are in cache (see `keyHint(for:)`).
                message.withUnsafeBytes { batch.appendFrame($0, origin: originIndex, keyHint: core.keyHint(for: $0)) }
                if curve, let prefixes = d.security?.origin(forUserId: message.property("User-Id")) {
                    batch.restrictLast(to: prefixes)
                }
            }
            return n
        }

        /// Receives acknowledged batches `[routing-id, (empty)?, producer-id, sequence, payload]`
        /// and decides for each: apply (new), answer from the producer table (re-sent), or repeat
        /// the reply of the same batch pending in this drain.
        @discardableResult
        mutating func drainAck(limit: Int) throws(ZMQError) -> Int {
            let d = daemon
            guard let socket = d.ack else { return 0 }
            var n = 0
            while n < limit, batch.byteCount < Daemon.drainBytes, let frames = try socket.receiveMultipart(flags: .dontWait) {
                n += 1
                guard let request = AckRequest(frames) else {
                    var parts = Array(frames.prefix(1))
                    if frames.count > 1, frames[1].count == 0 { parts.append(Message()) }
                    parts.append(Message(bytes: JSONText.errorObject(
                        "malformed request: send [producer-id, sequence, payload] (sequence in decimal ASCII)",
                        code: "bad_request")))
                    _ = try socket.sendMultipart(parts, flags: .dontWait)
                    continue
                }
                var pending = PendingAck(envelope: request.envelope, sequenceText: request.sequenceText,
                                         producer: request.producer, sequence: request.sequence,
                                         frame: -1, cachedReply: nil)
                let key = PendingKey(producer: request.producer, sequence: request.sequence)
                if let earlier = batch.pendingBySequence[key] {
                    pending.sameAs = earlier   // the same batch twice in one drain: one apply, two replies
                    batch.pendingAcks.append(pending)
                    continue
                }
                // Other batches of this producer pending in the drain have other sequences, so the
                // table alone decides (a lower sequence than theirs may be a gap being filled).
                switch d.producers.check(producer: request.producer, sequence: request.sequence) {
                case .apply: break
                case .resend(let reply):
                    pending.cachedReply = reply
                    batch.pendingAcks.append(pending)
                    continue
                case .alreadyApplied(let last):
                    pending.cachedReply = AckStatus.alreadyApplied(lastSequence: last)
                    batch.pendingAcks.append(pending)
                    continue
                }
                let size = request.payload.count
                if size > d.settings.maxMessageSize {
                    var outcome = FrameOutcome()
                    outcome.payloadError = .init(index: 0, code: "too_large", message: "payload of \(size) bytes exceeds --max-message-size")
                    pending.cachedReply = AckStatus.json(outcome)
                    batch.pendingAcks.append(pending)
                    continue
                }
                if let limiter = d.rateLimiter,
                   let refusal = limiter.refuseAck(producer: request.producer, payload: request.payload, curve: curve, ledger: d.ledger) {
                    pending.cachedReply = refusal   // not recorded: the same sequence re-sent later is applied
                    batch.pendingAcks.append(pending)
                    continue
                }
                let ackIdx = Int32(batch.pendingAcks.count)
                request.payload.withUnsafeBytes {
                    batch.appendBatch($0, producer: request.producer, sequence: request.sequence, ack: ackIdx)
                }
                if curve, let prefixes = d.security?.origin(forUserId: request.payload.property("User-Id")) {
                    batch.restrictLast(to: prefixes)
                }
                pending.frame = batch.frames.count - 1
                batch.pendingBySequence[key] = batch.pendingAcks.count
                batch.pendingAcks.append(pending)
                batch.needsSync = true
            }
            return n
        }

        /// Logs the drained frames and applies them. Fire-and-forget drains are pipelined: this
        /// drain goes to the log's thread while the previous one (already logged) is applied
        /// here. A drain with acknowledged batches to make durable is appended, then applied
        /// here while the log's thread runs its `fdatasync` (one for the group), and answered
        /// once that succeeded, before the loop goes on (``commitAcknowledged(now:)``).
        mutating func commit(now: Int64) {
            guard let writer else {
                apply(now: now, storageError: nil)
                return
            }
            if batch.frames.isEmpty && batch.pendingAcks.isEmpty { return }
            // Batches move by `swap` only: the writer stamps record headers into the buffer, and a
            // second live reference would make that (or the next drain's append) copy 4 MiB.
            if batch.pendingAcks.isEmpty {
                var logged = FrameBatch(placeholder: ())
                let previous: LogWriter.Outcome? = writer.busy ? writer.wait(into: &logged) : nil
                writer.submit(&batch, receivedAt: Clocks.wallMicros())
                if let result = previous {
                    swap(&batch, &logged)
                    applyLogged(result, now: now)
                } else if spare != nil {
                    swap(&batch, &spare!)
                    spare = nil
                } else {
                    batch = FrameBatch()
                }
                return
            }
            flushPipeline()
            if batch.needsSync {
                commitAcknowledged(now: now)
                return
            }
            // Every acknowledged batch is answered from the table or refused: nothing to sync.
            writer.submit(&batch, receivedAt: Clocks.wallMicros())
            let result = writer.wait(into: &batch)
            applyLogged(result, now: now)
        }

        /// A drain with acknowledged batches: appended here (the writer is idle), then synced by
        /// the log's thread while this thread applies it; the producers are answered after the sync.
        ///
        /// Order, per drain: append (here) → apply (here) ∥ `fdatasync` (log thread) → wait for
        /// the sync → answer. So a frame is still in the log before it is applied, and a reply is
        /// never sent before its batch's record is durable. The append stays on this thread:
        /// handing it to the log thread and waiting for it back costs two thread wake-ups on the
        /// round trip (measured slower, `Benchmarks/PERFORMANCE.md` round 7).
        ///
        /// Failures: an append that fails leaves nothing in the log and nothing is applied (every
        /// new batch answers `storage_unavailable`), as before. An `fdatasync` that fails after the
        /// apply: the log has removed the records since its last good sync, the engine holds the
        /// drain (as for a failed timer sync of fire-and-forget frames); the new batches answer
        /// `storage_unavailable` and are *not* recorded in the producer table, so their re-sends
        /// are logged and applied again, and the engine's dedup by `source` + `id` counts their
        /// events once (the re-send's record is what makes them durable).
        /// - Precondition: the writer is idle, `batch.needsSync`.
        /// - Complexity: O(drain); wall time ≈ append + max(apply, `fdatasync`) instead of their sum.
        mutating func commitAcknowledged(now: Int64) {
            guard let writer else { return }
            if let error = writer.appendHere(&batch, receivedAt: Clocks.wallMicros()) {
                applyLogged(LogWriter.Outcome(error: error), now: now)
                return
            }
            writer.submitSync()
            ingest()
            let result = writer.waitSynced()
            if let error = result.error {
                storageProblem(error, frames: 0, appliedNotDurable: batch.pendingAcks.reduce(0) { $0 + ($1.frame >= 0 ? 1 : 0) })
            } else {
                daemon.metrics?.walFsync.record(.nanoseconds(Int64(result.syncNanos)))
            }
            // Synced, or the failed sync removed every unsynced record: nothing waits for the timer.
            unsynced = false
            nextSync = now + syncEvery
            answer(storageError: result.error, applied: true)
        }

        /// Waits for the drain the log's thread holds, if any, and applies it (keeping the drain
        /// being received). Called before anything else touches the log or the producer table.
        mutating func flushPipeline() {
            guard let writer, writer.busy else { return }
            var receiving = FrameBatch(placeholder: ())
            swap(&receiving, &batch)
            let result = writer.wait(into: &batch)
            applyLogged(result, now: Int64(Clocks.monotonicNanos() / 1_000))
            spare = FrameBatch(placeholder: ())
            swap(&spare!, &batch)
            swap(&batch, &receiving)
        }

        /// Applies ``batch`` after the writer's `result` for it (storage error: nothing applied).
        mutating func applyLogged(_ result: LogWriter.Outcome, now: Int64) {
            let d = daemon
            if let error = result.error {
                storageProblem(error, frames: batch.frames.count)
            } else if result.synced {
                d.metrics?.walFsync.record(.nanoseconds(Int64(result.syncNanos)))
                unsynced = false
                nextSync = now + syncEvery
            } else if !unsynced, !batch.frames.isEmpty {
                unsynced = true
                nextSync = now + syncEvery
            }
            apply(now: now, storageError: result.error)
        }

        /// Applies the frames of ``batch``, answers its acknowledged batches, flushes dead
        /// letters, updates the counters and empties the batch (keeping its capacity).
        mutating func apply(now: Int64, storageError: DurabilityError?) {
            if storageError == nil { ingest() }
            answer(storageError: storageError, applied: false)
        }

        /// Applies the frames of ``batch`` to the engine and adds them to the counters (stats and
        /// the drain's metrics tally); the outcomes of acknowledged frames go to ``ackOutcomes``,
        /// and the batch is kept for ``answer(storageError:applied:)``.
        /// - Complexity: O(events of the drain).
        mutating func ingest() {
            let d = daemon
            var accepted = 0, duplicates = 0, unrouted = 0, late = 0, rejected = 0, bytes = 0, events = 0
            let withAcks = !batch.pendingAcks.isEmpty
            if withAcks {
                ackOutcomes.removeAll(keepingCapacity: true)
                ackOutcomes.append(contentsOf: repeatElement(nil, count: batch.frames.count))
            }
            let recordSizes = d.metrics != nil
            let core = d.core   // round 7: one existential load + retain per drain, not per frame
            // Read once per drain. Per frame the core gets only the allowed sources (nil for
            // an open socket): passing the frame's whole origin (label + prefixes, copied out of
            // the class's `pulls`) cost an exclusivity check and two retain/release pairs per
            // frame (round 11). The label is built only for a rejection, below.
            let pullPrefixes = d.pulls.map(\.origin.sourcePrefixes)
            let frames = batch.frames
            let ahead = Daemon.keyPrefetchDistance
            // The first frames' dedup lines; then, per frame, those of the frame `ahead` of it.
            for f in frames.prefix(ahead) { if let h = f.keyHint { core.prefetch(h) } }
            batch.buffer.withUnsafeBytes { raw in
                for (fi, f) in frames.enumerated() {
                    let payload = UnsafeRawBufferPointer(rebasing: raw[f.offset..<(f.offset + f.count)])
                    if fi + ahead < frames.count, let h = frames[fi + ahead].keyHint { core.prefetch(h) }
                    let outcome: FrameOutcome
                    if f.restriction >= 0 {
                        outcome = core.ingest(payload, allowedSources: batch.restrictions[Int(f.restriction)], keyHint: f.keyHint)
                    } else if f.origin >= 0, let prefixes = pullPrefixes[Int(f.origin)] {
                        outcome = core.ingest(payload, allowedSources: prefixes, keyHint: f.keyHint)
                    } else {
                        outcome = core.ingest(payload, allowedSources: nil, keyHint: f.keyHint)
                    }
                    accepted &+= outcome.accepted
                    duplicates &+= outcome.duplicates
                    unrouted &+= outcome.unrouted
                    late &+= outcome.late
                    bytes &+= f.count
                    let n = outcome.events
                    events &+= n
                    if recordSizes { tally.batchSizes.append(n) }
                    if !outcome.isClean {
                        rejected &+= outcome.payloadError != nil ? 1 : outcome.rejected.count
                        var origin = f.origin >= 0 ? d.pulls[Int(f.origin)].origin : FrameOrigin(label: "ack")
                        if f.restriction >= 0 { origin.sourcePrefixes = batch.restrictions[Int(f.restriction)] }
                        if f.ack >= 0 {
                            origin.label = "ack:" + String(decoding: batch.pendingAcks[Int(f.ack)].producer, as: UTF8.self)
                        }
                        d.ledger.record(outcome, payload: payload, origin: origin)
                    }
                    if f.ack >= 0 { ackOutcomes[fi] = outcome }
                }
            }
            tally.received = events
            tally.accepted = accepted
            tally.duplicates = duplicates
            tally.late = late
            tally.bytes = bytes
            d.stats.withLock { s in
                s.bytes &+= bytes
                s.events &+= events
                s.accepted &+= accepted
                s.duplicates &+= duplicates
                s.unrouted &+= unrouted
                s.late &+= late
                s.rejected &+= rejected
            }
        }

        /// Answers the acknowledged batches of ``batch`` (recording the new ones in the producer
        /// table only when `storageError` is nil: only then are they durable), flushes dead
        /// letters, reports the drain's metrics and empties the batch (keeping its capacity).
        /// - Parameter applied: the frames were applied although `storageError` says they are not
        ///   durable (an `fdatasync` that failed after an overlapped apply): the reply says so.
        mutating func answer(storageError: DurabilityError?, applied: Bool) {
            let d = daemon
            let withAcks = !batch.pendingAcks.isEmpty
            if withAcks {
                let storageReply = storageError.map {
                    AckStatus.storageError(applied
                        ? "the write-ahead log's fdatasync failed after the batch was applied; re-send the same sequence (its events count once): \($0)"
                        : "\($0)")
                }
                answerAcks(storageReply: storageReply)
            }
            let frames = batch.frames.count
            batch.reset()
            d.ledger.flush()
            if let metrics = d.metrics {
                if drainStarted > 0 { tally.lagSeconds = Double(Int64(Clocks.monotonicNanos() / 1_000) - drainStarted) / 1e6 }
                metrics.record(tally)
                tally.reset()
            }
            let producerCount = withAcks ? d.producers.count : -1
            d.stats.withLock { s in
                s.frames &+= frames
                if producerCount >= 0 { s.producers = producerCount }
            }
        }

        /// Answers every ``FrameBatch/pendingAcks`` in order: from the table or the limiter
        /// (cached), as an earlier pending ack of the drain (`sameAs`), with `storageReply`, or
        /// with its apply's outcome, then recorded in the producer table.
        /// - Precondition: `storageReply` is nil only when the drain is applied and durable (its
        ///   `fdatasync` succeeded).
        /// - Complexity: O(acks).
        mutating func answerAcks(storageReply: [UInt8]?) {
            let d = daemon
            guard let socket = d.ack else { return }
            for i in batch.pendingAcks.indices {
                let p = batch.pendingAcks[i]
                let reply: [UInt8]
                if let cached = p.cachedReply {
                    reply = cached
                } else if p.sameAs >= 0 {
                    reply = batch.pendingAcks[p.sameAs].reply ?? AckStatus.storageError("not answered")
                } else if let storageReply {
                    reply = storageReply
                } else {
                    reply = AckStatus.json(ackOutcomes[p.frame] ?? FrameOutcome())
                    d.producers.record(producer: p.producer, sequence: p.sequence, reply: reply)
                }
                batch.pendingAcks[i].reply = reply
                var parts = p.envelope
                parts.append(Message(bytes: p.sequenceText))
                parts.append(Message(bytes: reply))
                do { _ = try socket.sendMultipart(parts, flags: .dontWait) } catch {
                    d.logger.warning("cannot answer producer \(String(decoding: p.producer, as: UTF8.self)): \(error)")
                }
            }
        }
    }

    // MARK: - Snapshots (engine thread)

    private func tick() {
        if settings.clock == .wall { core.advance(wallClockMicros: Clocks.wallMicros()) }
        publishSnapshot()
        if metrics != nil { reportLabelledCounts() }
    }

    private func nextSeq() -> UInt64 {
        if let sequences = durable?.sequences {
            do {
                seq = try sequences.next()
                return seq
            } catch {
                logger.error("cannot extend the seq lease (\(error)); continuing in memory")
            }
        }
        seq += 1
        return seq
    }

    private func publishSnapshot() {
        let seq = nextSeq()
        let out = core.snapshot(seq: seq, publishedAtMicros: Clocks.wallMicros())
        latest.set(seq: seq, json: out.json)
        guard let pub else { return }
        // PUB never blocks: a subscriber past its high-water mark loses messages, nobody waits.
        do {
            _ = try pub.sendMultipart([Array("snapshot.\(core.pipelineName)".utf8), out.json], flags: .dontWait)
            for (id, json) in out.indicators {
                _ = try pub.sendMultipart([Array("indicator.\(id)".utf8), json], flags: .dontWait)
            }
        } catch {
            logger.error("cannot publish snapshot \(seq): \(error)")
        }
        stats.withLock {
            $0.seq = seq
            $0.snapshots &+= 1
        }
        metrics?.recordSnapshotPublished(seq: seq)
        hooks.published?(seq)
    }

    /// Moves the rejected-by-(reason, source) and unrouted-by-(type, source) counts into the
    /// metrics: once per tick, O(distinct labels), never per event.
    private func reportLabelledCounts() {
        guard let metrics else { return }
        let (_, byKey) = ledger.counts()
        for (key, count) in byKey {
            let before = rejectedReported[key] ?? 0
            if count > before {
                metrics.recordRejected(reason: key.reason, source: key.source, count: count - before)
                rejectedReported[key] = count
            }
        }
        for (pair, count) in core.counters.unrouted {
            let before = unroutedReported[pair] ?? 0
            if count > before {
                metrics.recordUnrouted(type: pair.first, source: pair.second, count: count - before)
                unroutedReported[pair] = count
            }
        }
    }

    // MARK: - Checkpoints and shutdown (engine thread)

    /// Frame bytes applied (and so logged) since the last checkpoint attempt: with
    /// `--checkpoint-bytes` it bounds the log that recovery replays during a burst.
    /// - Complexity: O(1), one uncontended lock; the loop asks once per turn.
    fileprivate func loggedSinceCheckpoint() -> Int {
        guard durable != nil else { return 0 }
        return stats.withLock { $0.bytes } &- checkpointBytesMark
    }

    /// Captures a checkpoint (engine + producers + seq, as of the log's last record) and hands
    /// it to the checkpoint thread, which writes it while ingest goes on; the log is truncated
    /// behind it only once it is durable (``EngineLoop/collectCheckpoint(blocking:)``). When the
    /// core cannot serialise its state, only syncs the log (recovery replays all of it).
    ///
    /// Call with every appended record applied (the log writer idle) and `writer` idle. The
    /// engine thread pays the capture alone: one log fsync and the state's serialisation,
    /// reported as `tally_checkpoint_capture_seconds`.
    /// - Complexity: O(state size) here (~25 ms per million remembered ids); the checksum, the
    ///   file write and the fsyncs run on the checkpoint thread.
    private func checkpoint(writer: CheckpointWriter?) {
        guard let state = durable else { return }
        checkpointBytesMark = stats.withLock { $0.bytes }
        let began = Clocks.monotonicNanos()
        guard let writer, let engineState = core.captureCheckpoint() else {
            do { try state.log.sync() } catch { logger.error("cannot sync the write-ahead log: \(error)") }
            return
        }
        let serialized = Clocks.monotonicNanos()
        do {
            try state.log.sync()
        } catch {
            stats.withLock { $0.checkpointFailures &+= 1 }
            logger.error("checkpoint failed, the log is kept: \(error)")
            return
        }
        let captureNanos = Clocks.monotonicNanos() &- began
        metrics?.checkpointCapture.record(.nanoseconds(Int64(captureNanos)))
        stats.withLock { $0.lastCheckpointCaptureSeconds = Double(captureNanos) / 1e9 }
        writer.submit(.checkpoint(.init(lsn: state.log.lastLSN, engineState: engineState, producers: producers,
                                        snapshotSeq: seq, began: began, captureNanos: captureNanos,
                                        syncNanos: captureNanos &- (serialized &- began))))
    }

    private func closeState() {
        guard let state = durable else { return }
        do { try state.close() } catch { logger.error("closing the state directory: \(error)") }
    }

    // MARK: - Reload (engine thread)

    /// SIGHUP: re-reads the config file (when ``settingsReloader`` is set) and validates the new
    /// pipeline first; on any error the running one stays, logged and counted. Then an empty
    /// engine on the new pipeline (the donor) replays the retained log, and the running engine
    /// switches to the new pipeline keeping every unchanged indicator's state and taking the
    /// donor's state for new or changed indicators.
    ///
    /// What an added indicator holds: every event still in the log. The log is truncated behind
    /// the older of the two kept checkpoints, so after checkpoints it covers roughly the last two
    /// checkpoint intervals (or `--checkpoint-bytes`), not all history; without a state directory
    /// it starts empty. Settings other than the pipeline (endpoints, state dir, metrics, security)
    /// need a restart: a changed one is named in the log.
    /// - Complexity: O(retained log) for the replay, plus O(state) of the donor in memory while it runs.
    private func reload() {
        hooks.reloading?()
        let began = Clocks.monotonicNanos()
        do throws(DaemonError) {
            var pipelinePath = activePipelinePath
            if let reread = settingsReloader {
                let fresh: RunSettings
                do { fresh = try reread() } catch { throw .usage("the config file is not valid: \(error)") }
                let needRestart = Self.restartOnlyChanges(from: settings, to: fresh)
                if !needRestart.isEmpty {
                    logger.warning("changed settings need a restart to take effect (the running values stay)", metadata: [
                        "settings": "\(needRestart.joined(separator: ", "))",
                    ])
                }
                pipelinePath = fresh.pipelinePath
            }
            let donor: any AggregationCore
            do { donor = try core.prepareReload(pipelinePath: pipelinePath) } catch { throw .usage("\(error)") }
            var replayed: UInt64 = 0
            if let state = durable {
                var scratch = ProducerTable(capacity: producers.capacity)
                do {
                    // With CURVE, records before the first origin record of the retained log are
                    // judged as from nobody (allowed nothing), never as from anybody.
                    replayed = try Self.replayLog(state.log, after: state.log.firstLSN &- 1, into: donor, producers: &scratch,
                                                  initialRestriction: security?.access != nil ? [] : nil) { _ in }
                } catch {
                    throw .runtime("rebuilding the new indicators from the log failed: \(error)")
                }
            }
            let summary = core.adoptReload(from: donor)
            activePipelinePath = pipelinePath
            security?.reload()
            metrics?.recordReload(succeeded: true)
            logger.info("pipeline reloaded", metadata: [
                "pipeline": "\(pipelinePath)",
                "kept": "\(summary.kept.count)",
                "rebuilt-from-log": "\(summary.backfilled.joined(separator: ","))",
                "log-records": "\(replayed)",
                "milliseconds": "\((Clocks.monotonicNanos() - began) / 1_000_000)",
            ])
        } catch {
            stats.withLock { $0.reloadFailures &+= 1 }
            metrics?.recordReload(succeeded: false)
            logger.error("reload failed, the running pipeline stays: \(error)")
        }
        hooks.ready?()
    }

    /// Settings that a reload cannot apply (sockets, state, metrics server, security): their names.
    static func restartOnlyChanges(from old: RunSettings, to new: RunSettings) -> [String] {
        var changed: [String] = []
        if old.ingest != new.ingest { changed.append("ingest") }
        if old.ingestAck != new.ingestAck { changed.append("ingest-ack") }
        if old.publish != new.publish { changed.append("publish") }
        if old.snapshotService != new.snapshotService { changed.append("snapshot-service") }
        if old.stateDirectory != new.stateDirectory { changed.append("state-dir") }
        if old.metrics != new.metrics { changed.append("metrics") }
        if old.snapshotInterval != new.snapshotInterval { changed.append("snapshot-interval") }
        if old.checkpointInterval != new.checkpointInterval { changed.append("checkpoint-interval") }
        if old.checkpointBytes != new.checkpointBytes { changed.append("checkpoint-bytes") }
        if old.clock != new.clock { changed.append("clock") }
        if old.balances != new.balances { changed.append("balances") }
        if old.curveSecret != new.curveSecret { changed.append("curve-secret") }
        if old.authorizedKeys != new.authorizedKeys { changed.append("authorized-keys") }
        if old.insecure != new.insecure { changed.append("insecure") }
        if old.maxMessageSize != new.maxMessageSize { changed.append("max-message-size") }
        if old.ingestHighWaterMark != new.ingestHighWaterMark { changed.append("ingest-hwm") }
        if old.publishHighWaterMark != new.publishHighWaterMark { changed.append("publish-hwm") }
        if old.maxJSONDepth != new.maxJSONDepth { changed.append("max-json-depth") }
        if old.maxStringLength != new.maxStringLength { changed.append("max-string-length") }
        if old.maxEventsPerBatch != new.maxEventsPerBatch { changed.append("max-events-per-batch") }
        if old.rateLimit != new.rateLimit { changed.append("rate-limit") }
        if old.deadLetter != new.deadLetter { changed.append("dead-letter") }
        return changed
    }
}

// MARK: - Origin records

/// The `meta` log record that carries a CURVE producer's allowed `source` prefixes to replay:
/// `origin-any`, or `origin:` + prefixes separated by newlines. Written only when the origin of
/// consecutive frames changes, so with CURVE off there is one per run.
enum OriginRecord {
    static let any = Array("origin-any".utf8)
    static let prefix = Array("origin:".utf8)

    static func encode(_ prefixes: [String]?) -> [UInt8] {
        guard let prefixes else { return any }
        return prefix + Array(prefixes.joined(separator: "\n").utf8)
    }

    /// - Returns: `.some(nil)` for any origin, `.some(list)`, or nil for another kind of meta record.
    static func decode(_ body: ArraySlice<UInt8>) -> [String]?? {
        if body.elementsEqual(any) { return .some(nil) }
        guard body.starts(with: prefix) else { return nil }
        let rest = body.dropFirst(prefix.count)
        if rest.isEmpty { return .some([]) }
        return .some(rest.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) })
    }
}

// MARK: - Hooks, stats, endpoints, errors

/// Lifecycle callbacks (systemd, watchdog, metrics). Each runs on the engine thread and must not block.
public struct DaemonHooks: Sendable {
    /// Sockets bound, state recovered, first snapshot published (`READY=1`); also after a reload.
    public var ready: (@Sendable () -> Void)?
    /// Every engine-loop turn (at least once per snapshot interval): the watchdog pings from here.
    public var loopTurn: (@Sendable () -> Void)?
    /// A snapshot was published with this `seq`.
    public var published: (@Sendable (UInt64) -> Void)?
    /// A reload begins (`RELOADING=1`).
    public var reloading: (@Sendable () -> Void)?
    /// The graceful shutdown begins (`STOPPING=1`).
    public var stopping: (@Sendable () -> Void)?
    /// After the final snapshot, before the final checkpoint (`EXTEND_TIMEOUT_USEC=`).
    public var finalCheckpoint: (@Sendable () -> Void)?
    /// On the checkpoint thread (`tally-checkpoint`), before a captured checkpoint is written,
    /// with its LSN. Unlike the others it may block: ingest goes on meanwhile (tests hold a
    /// checkpoint in flight here).
    public var checkpointWriting: (@Sendable (UInt64) -> Void)?
    /// During recovery, every 100,000 records replayed (`EXTEND_TIMEOUT_USEC=`).
    public var recovering: (@Sendable (UInt64) -> Void)?
    public init() {}
}

/// Live counters of the daemon.
public struct DaemonStats: Sendable {
    public var frames = 0
    public var bytes = 0
    /// Events in applied frames (valid or not).
    public var events = 0
    public var accepted = 0
    public var duplicates = 0
    public var unrouted = 0
    public var late = 0
    /// Rejected events plus rejected whole payloads (each counts once).
    public var rejected = 0
    public var seq: UInt64 = 0
    public var snapshots = 0
    public var reloadFailures = 0
    /// Failed log writes or syncs (disk full, I/O error), and the frames not applied because of them.
    public var storageErrors = 0
    public var droppedFrames = 0
    /// Acknowledged batches applied in overlap with a group-commit `fdatasync` that then failed:
    /// answered `storage_unavailable` and not recorded, so their re-sends count as duplicates.
    public var appliedNotDurable = 0
    /// Log records replayed at start.
    public var recoveredRecords = 0
    /// Acknowledged producers tracked.
    public var producers = 0
    /// Checkpoints made durable, and checkpoints that failed (the log was kept).
    public var checkpoints = 0
    public var checkpointFailures = 0
    /// LSN of the newest durable checkpoint written by this run (0: none yet).
    public var lastCheckpointLSN: UInt64 = 0
    /// Engine-thread time of the latest checkpoint capture (log fsync + serialisation), seconds.
    public var lastCheckpointCaptureSeconds = 0.0
    public init() {}
}

/// The endpoints as bound.
public struct BoundEndpoints: Sendable, Equatable {
    public var ingest: [String] = []
    public var ingestAck: String?
    public var publish: String = ""
    public var snapshotService: String = ""
}

/// Why the daemon could not start or run: `usage` maps to exit 2, `runtime` to exit 1.
public enum DaemonError: Error, CustomStringConvertible, Sendable {
    case usage(String)
    case runtime(String)

    public var description: String {
        switch self {
        case .usage(let m), .runtime(let m): m
        }
    }
    public var exitCode: Int32 {
        switch self {
        case .usage: 2
        case .runtime: 1
        }
    }
}
