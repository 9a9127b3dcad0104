public import Logging
public import Synchronization
public import ZeroMQ

// MARK: - Daemon

/// The running daemon: binds the protocol's endpoints and runs the engine thread and the
/// snapshot-service thread (see ARCHITECTURE.md, "Threads").
///
/// ```swift
/// let daemon = try Daemon(settings: settings, core: core, logger: logger)
/// try daemon.start()          // binds, publishes the first snapshot, starts the threads
/// ...
/// daemon.requestStop()        // SIGTERM: stop input, drain, final snapshot, checkpoint
/// await daemon.stopped.wait()
/// ```
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

    /// The endpoints actually bound (a `tcp://127.0.0.1:*` becomes its real port). Set by ``start()``.
    public private(set) var boundEndpoints = BoundEndpoints()

    let context: Context
    private let core: any AggregationCore
    private var pulls: [(socket: Socket, origin: FrameOrigin)] = []
    private var ack: Socket?
    private var pub: Socket?
    private var service: SnapshotService?
    private let wake = WakePipe()
    private let stopFlag = Atomic<Bool>(false)
    private let reloadFlag = Atomic<Bool>(false)
    private var seq: UInt64
    private var producers = ProducerReplies()

    /// - Parameters:
    ///   - core: the aggregation core; from now on owned by the engine thread.
    ///   - initialSeq: the last `seq` published before (from the state directory); the first
    ///     snapshot of this run is `initialSeq + 1`.
    public init(settings: RunSettings, core: any AggregationCore, logger: Logger, initialSeq: UInt64 = 0) throws(DaemonError) {
        self.settings = settings
        self.core = core
        self.logger = logger
        self.seq = initialSeq
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

    // MARK: - Start

    /// Binds every endpoint, publishes the first snapshot and starts the threads.
    /// - Throws: ``DaemonError/usage(_:)`` for an endpoint libzmq cannot parse,
    ///   ``DaemonError/runtime(_:)`` for one it cannot bind (in use, no such interface).
    public func start() throws(DaemonError) {
        do {
            for endpoint in settings.ingest {
                let s = try Socket(context, .pull)
                try s.set(.receiveHighWaterMark, settings.ingestHighWaterMark)
                try s.set(.maxMessageSize, Int64(settings.maxMessageSize))
                try bind(s, endpoint, flag: "--ingest")
                pulls.append((s, FrameOrigin(label: (try? s.lastEndpoint) ?? endpoint)))
            }
            if let endpoint = settings.ingestAck {
                let s = try Socket(context, .router)
                try s.set(.receiveHighWaterMark, settings.ingestHighWaterMark)
                try s.set(.maxMessageSize, Int64(settings.maxMessageSize))
                try s.set(.linger, 1_000)
                try bind(s, endpoint, flag: "--ingest-ack")
                ack = s
            }
            let p = try Socket(context, .pub)
            try p.set(.sendHighWaterMark, settings.publishHighWaterMark)
            try p.set(.linger, 1_000)   // the final snapshot reaches subscribers that keep up
            try bind(p, settings.publish, flag: "--publish")
            pub = p
            let r = try Socket(context, .router)
            try r.set(.maxMessageSize, 64 << 10)
            try r.set(.linger, 500)
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

    // MARK: - Control (any thread)

    /// Asks for a graceful shutdown: stop taking input, drain, final snapshot, checkpoint.
    /// Idempotent; async-signal-safe enough to call from a signal task.
    public func requestStop() {
        stopFlag.store(true, ordering: .releasing)
        wake.wake()
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
        for p in pulls { p.socket.close() }
        ack?.close()
        pub?.close()
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

        init(daemon: Daemon) {
            self.daemon = daemon
            interval = daemon.settings.snapshotInterval.microseconds
            nextTick = Int64(Clocks.monotonicNanos() / 1_000) + interval
            wakeIndex = poller.add(fileDescriptor: daemon.wake.readFD, .pollIn)
            pullIndex = daemon.pulls.map { poller.add($0.socket, .pollIn) }
            if let ack = daemon.ack { ackIndex = poller.add(ack, .pollIn) }
        }

        mutating func run() {
            let d = daemon
            do {
                while true {
                    let now = Int64(Clocks.monotonicNanos() / 1_000)
                    if now >= nextTick {
                        d.tick()
                        nextTick += interval
                        if nextTick <= now { nextTick = now + interval }   // skip missed ticks
                        continue
                    }
                    let timeout = Int((nextTick - now + 999) / 1_000)
                    _ = try poller.poll(timeoutMilliseconds: max(1, timeout))
                    if poller.revents(wakeIndex).contains(.pollIn) { d.wake.drain() }
                    if d.stopFlag.load(ordering: .acquiring) { break }
                    if d.reloadFlag.exchange(false, ordering: .acquiringAndReleasing) { d.reload() }
                    var any = false
                    for (i, idx) in pullIndex.enumerated() where poller.revents(idx).contains(.pollIn) {
                        try drainPull(i, limit: d.settings.drainLimit)
                        any = true
                    }
                    if let ackIndex, poller.revents(ackIndex).contains(.pollIn) {
                        try drainAck(limit: d.settings.drainLimit)
                        any = true
                    }
                    if any { commit() }
                    d.hooks.loopTurn?()
                }
                // Shutdown: take what libzmq already queued (bounded), then the final snapshot.
                d.hooks.stopping?()
                let deadline = Int64(Clocks.monotonicNanos() / 1_000) + d.settings.shutdownTimeout.microseconds / 2
                var drained = 0
                repeat {
                    drained = 0
                    for i in pullIndex.indices { drained += try drainPull(i, limit: d.settings.drainLimit) }
                    if ackIndex != nil { drained += try drainAck(limit: d.settings.drainLimit) }
                    if drained > 0 { commit() }
                } while drained > 0 && Int64(Clocks.monotonicNanos() / 1_000) < deadline
            } catch {
                d.logger.error("engine loop stopped on a ZeroMQ error: \(error)")
            }
            d.tick()   // the final snapshot
            d.hooks.finalCheckpoint?()
            d.logger.info("tally stopped", metadata: ["seq": "\(d.seq)"])
        }

        /// Receives up to `limit` frames from PULL socket `i` into the batch (no allocation: one
        /// reused `Message`, one reused buffer). - Returns: frames taken.
        @discardableResult
        mutating func drainPull(_ i: Int, limit: Int) throws(ZMQError) -> Int {
            let d = daemon
            let socket = d.pulls[i].socket
            let max = d.settings.maxMessageSize
            var n = 0
            while n < limit, try socket.receive(into: message, flags: .dontWait) {
                n += 1
                let size = message.count
                if size > max {
                    message.withUnsafeBytes { buf in
                        d.ledger.recordFrame(code: "too_large", message: "frame of \(size) bytes exceeds --max-message-size \(max)",
                                             payload: buf, origin: d.pulls[i].origin)
                    }
                    continue
                }
                message.withUnsafeBytes { batch.append($0, origin: Int32(i), ack: -1) }
            }
            return n
        }

        /// Receives acknowledged batches `[routing-id, (empty)?, producer-id, sequence, payload]`.
        @discardableResult
        mutating func drainAck(limit: Int) throws(ZMQError) -> Int {
            let d = daemon
            guard let socket = d.ack else { return 0 }
            var n = 0
            while n < limit, let frames = try socket.receiveMultipart(flags: .dontWait) {
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
                if let previous = d.producers.reply(for: request.producer, sequence: request.sequence) {
                    batch.pendingAcks.append(PendingAck(envelope: request.envelope, sequenceText: request.sequenceText,
                                                        producer: request.producer, sequence: request.sequence,
                                                        frame: -1, cachedReply: previous))
                    continue
                }
                let size = request.payload.count
                if size > d.settings.maxMessageSize {
                    var outcome = FrameOutcome()
                    outcome.payloadError = .init(index: 0, code: "too_large", message: "payload of \(size) bytes exceeds --max-message-size")
                    let reply = AckStatus.json(outcome)
                    batch.pendingAcks.append(PendingAck(envelope: request.envelope, sequenceText: request.sequenceText,
                                                        producer: request.producer, sequence: request.sequence,
                                                        frame: -1, cachedReply: reply))
                    continue
                }
                let ackIdx = Int32(batch.pendingAcks.count)
                request.payload.withUnsafeBytes { batch.append($0, origin: -1, ack: ackIdx) }
                batch.pendingAcks.append(PendingAck(envelope: request.envelope, sequenceText: request.sequenceText,
                                                    producer: request.producer, sequence: request.sequence,
                                                    frame: batch.frames.count - 1, cachedReply: nil))
            }
            return n
        }

        /// Applies the drained frames (after the write-ahead log, when there is one), answers the
        /// acknowledged batches, flushes dead letters and updates the counters.
        mutating func commit() {
            let d = daemon
            var accepted = 0, duplicates = 0, unrouted = 0, late = 0, rejected = 0, bytes = 0
            var outcomes: [FrameOutcome?] = batch.pendingAcks.isEmpty ? [] : Array(repeating: nil, count: batch.frames.count)
            batch.buffer.withUnsafeBytes { raw in
                for (fi, f) in batch.frames.enumerated() {
                    let payload = UnsafeRawBufferPointer(rebasing: raw[f.offset..<(f.offset + f.count)])
                    let origin = f.origin >= 0 ? d.pulls[Int(f.origin)].origin
                        : FrameOrigin(label: "ack:\(batch.pendingAcks[Int(f.ack)].producer)")
                    let outcome = d.core.ingest(payload, origin: origin)
                    accepted &+= outcome.accepted
                    duplicates &+= outcome.duplicates
                    unrouted &+= outcome.unrouted
                    late &+= outcome.late
                    bytes &+= f.count
                    if outcome.payloadError != nil || !outcome.rejected.isEmpty {
                        rejected &+= outcome.payloadError != nil ? 1 : outcome.rejected.count
                        d.ledger.record(outcome, payload: payload, origin: origin)
                    }
                    if f.ack >= 0 { outcomes[fi] = outcome }
                }
            }
            if let socket = d.ack {
                for p in batch.pendingAcks {
                    let reply: [UInt8]
                    if let cached = p.cachedReply {
                        reply = cached
                    } else {
                        reply = AckStatus.json(outcomes[p.frame] ?? FrameOutcome())
                        d.producers.record(producer: p.producer, sequence: p.sequence, reply: reply)
                    }
                    var parts = p.envelope
                    parts.append(Message(bytes: p.sequenceText))
                    parts.append(Message(bytes: reply))
                    do { _ = try socket.sendMultipart(parts, flags: .dontWait) } catch {
                        d.logger.warning("cannot answer producer \(p.producer): \(error)")
                    }
                }
            }
            let frames = batch.frames.count
            batch.reset()
            d.ledger.flush()
            d.stats.withLock { s in
                s.frames &+= frames
                s.bytes &+= bytes
                s.accepted &+= accepted
                s.duplicates &+= duplicates
                s.unrouted &+= unrouted
                s.late &+= late
                s.rejected &+= rejected
            }
        }
    }

    // MARK: - Snapshots (engine thread)

    private func tick() {
        if settings.clock == .wall { core.advance(wallClockMicros: Clocks.wallMicros()) }
        publishSnapshot()
    }

    private func publishSnapshot() {
        seq += 1
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
        hooks.published?(seq)
    }

    private func reload() {
        hooks.reloading?()
        do {
            try core.reload()
            logger.info("pipeline reloaded", metadata: ["pipeline": "\(settings.pipelinePath)"])
        } catch {
            stats.withLock { $0.reloadFailures &+= 1 }
            logger.error("reload failed, the running pipeline stays: \(error)")
        }
        hooks.ready?()
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
    /// After the final snapshot: the durability layer writes its checkpoint here.
    public var finalCheckpoint: (@Sendable () -> Void)?
    public init() {}
}

/// Live counters of the daemon.
public struct DaemonStats: Sendable {
    public var frames = 0
    public var bytes = 0
    public var accepted = 0
    public var duplicates = 0
    public var unrouted = 0
    public var late = 0
    /// Rejected events plus rejected whole payloads (each counts once).
    public var rejected = 0
    public var seq: UInt64 = 0
    public var snapshots = 0
    public var reloadFailures = 0
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
