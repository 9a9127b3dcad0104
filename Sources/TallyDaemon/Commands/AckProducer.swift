import Foundation
import ZeroMQ

// MARK: - AckProducer

/// The client side of acknowledged ingest: one producer id, numbered batches, up to `window` of
/// them in flight (the ZeroMQ guide's Lazy Pirate, with a window as in Kafka's idempotent
/// producer), each re-sent with the **same** sequence until the daemon answers it.
///
/// Why a window: with one batch in flight, a producer waits a whole round trip (the daemon's
/// group `fdatasync` included) per batch, so its throughput is batch size / round trip whatever
/// the daemon's speed. With `window` batches in flight the round trips overlap, and the daemon's
/// group commit covers more batches per `fdatasync`.
///
/// Why it is safe: the daemon remembers the last ``ProducerTable/windowLimit`` durable sequences
/// of each producer, so a batch refused with `retry` (or lost on a broken connection) while later
/// ones were made durable is still applied when re-sent, and a re-sent durable one never twice,
/// as long as fewer than ``ProducerTable/windowLimit`` later batches overtook it. Hence the window
/// is counted from the oldest unanswered batch (no sequence `window` or more past it is sent until
/// it is answered), and `window` is at most ``ProducerTable/windowLimit``. The windowed crash loop
/// (`Tests/Integration/crash_loop.py ... 8 4`) loses acknowledged batches when either rule is broken.
///
/// Rules it follows (the README's retry rules):
/// - a reply with `"retry":true` (`storage_unavailable`, `rate_limited`): nothing was recorded;
///   the same sequence is re-sent after a back-off (0.1 s × attempt, at most 2 s), the other
///   batches in flight carry on;
/// - no reply for `timeout` after a send: the socket may hold stale requests or a dead
///   connection, so it is closed, a new one opened, and every unanswered batch re-sent in order;
/// - after `retries` attempts a batch is given up: a silence throws ``CommandFailure`` (exit 1),
///   a retryable error is handed back as the batch's final status.
///
/// Blocking: use from a thread, never from Swift concurrency's cooperative pool.
final class AckProducer {
    /// A batch the daemon answered for good (applied, rejected, or refused after every attempt).
    struct Completion {
        /// The caller's tag given to ``send(_:tag:)`` (e.g. the frame index).
        var tag: Int
        var sequence: UInt64
        /// The status object (`accepted`, `rejected`, ..., or `error`).
        var status: [String: Any]
    }

    private struct InFlight {
        var sequence: UInt64
        var sequenceText: [UInt8]
        var payload: [UInt8]
        var tag: Int
        var attempts: Int
        var sentAt: ContinuousClock.Instant
        /// Set while waiting to re-send after a retryable error (not awaiting a reply then).
        var retryAt: ContinuousClock.Instant?
    }

    let context: Context
    let endpoint: String
    let producer: [UInt8]
    let window: Int
    let timeout: Duration
    let retries: Int
    let curve: CurveClientKeys?
    private var socket: Socket
    private var poller = Poller()
    private var sequence: UInt64
    /// In sequence order; at most `window` long.
    private var inFlight: [InFlight] = []
    /// Re-sends so far (after a silence or a retryable error).
    private(set) var resends = 0

    /// - Parameters:
    ///   - window: batches in flight, 1...``ProducerTable/windowLimit``.
    ///   - firstSequence: the sequence before the first batch's; it must be above every sequence
    ///     this producer id used before (the default, the wall clock in µs, is across restarts).
    /// - Throws: ``CommandFailure`` (exit 2) for an unusable endpoint or window.
    init(context: Context, endpoint: String, producer: String, window: Int = 1, timeout: Duration = .milliseconds(2500),
         retries: Int = 10, curve: CurveClientKeys? = nil, firstSequence: UInt64 = UInt64(Clocks.wallMicros())) throws {
        guard (1...ProducerTable.windowLimit).contains(window) else {
            throw CommandFailure(code: 2, "--window \(window): use 1 to \(ProducerTable.windowLimit) batches in flight (the daemon tells re-sent batches apart within the last \(ProducerTable.windowLimit))")
        }
        self.context = context
        self.endpoint = endpoint
        self.producer = Array(producer.utf8)
        self.window = window
        self.timeout = timeout
        self.retries = max(1, retries)
        self.curve = curve
        sequence = firstSequence
        socket = try Self.dealer(context, endpoint, curve: curve)
        poller.add(socket, .pollIn)
    }

    private static func dealer(_ context: Context, _ endpoint: String, curve: CurveClientKeys?) throws -> Socket {
        let s = try Socket(context, .dealer)
        try s.set(.linger, 0)
        try curve?.configure(s)
        do { try s.connect(endpoint) } catch {
            throw CommandFailure(code: 2, "--to \(endpoint) is not a usable endpoint (\(error)): write e.g. \(DefaultEndpoints.ingestAck)")
        }
        return s
    }

    /// Sends one batch under the next sequence, first waiting (and re-sending) while `window`
    /// batches are in flight.
    /// - Returns: the batches answered for good meanwhile (any order).
    /// - Throws: ``CommandFailure`` when a batch is never answered or the daemon calls the request malformed.
    func send(_ payload: [UInt8], tag: Int) throws -> [Completion] {
        var done: [Completion] = []
        // The window is anchored at the oldest unanswered batch, as TCP's: the next sequence must
        // be fewer than `window` past it. Counting only the batches in flight would let later
        // batches be answered and replaced while one is stuck (refused, or lost with a dead
        // connection), until more than the daemon's ``ProducerTable/windowLimit`` durable
        // sequences overtake it and its re-send is answered `already_applied` unapplied.
        while let oldest = inFlight.first, sequence + 1 - oldest.sequence >= UInt64(window) { try pump(into: &done) }
        sequence += 1
        let entry = InFlight(sequence: sequence, sequenceText: Array(String(sequence).utf8), payload: payload, tag: tag,
                             attempts: 1, sentAt: .now, retryAt: nil)
        try transmit(entry)
        inFlight.append(entry)
        // Take replies already there without waiting, so completions flow back early.
        try receiveReady(into: &done)
        return done
    }

    /// Waits until every batch in flight is answered for good.
    func finish() throws -> [Completion] {
        var done: [Completion] = []
        while !inFlight.isEmpty { try pump(into: &done) }
        return done
    }

    func close() { socket.close() }

    /// A producer id stable for this process, `tally-<command>-<host>-<pid>`: the default of
    /// `tally send --ack` and `tally simulate --ack` (give `--producer-id` to keep one across runs).
    static func defaultProducerID(command: String) -> String {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        return "tally-\(command)-\(String(cString: host))-\(getpid())"
    }

    // MARK: - The loop

    private func transmit(_ e: InFlight) throws {
        try socket.sendMultipart([producer, e.sequenceText, e.payload])
    }

    /// One turn: waits for a reply until the next deadline (a re-send due or a silence), takes
    /// every reply there, then re-sends what is due.
    private func pump(into done: inout [Completion]) throws {
        let now = ContinuousClock.now
        var next = now + timeout
        for e in inFlight { next = min(next, e.retryAt ?? (e.sentAt + timeout)) }
        let wait = next > now ? (next - now) : .zero
        if try poller.poll(timeoutMilliseconds: max(0, Int(wait.millisecondsRoundedUp))) > 0 {
            try receiveReady(into: &done)
        }
        try resendDue()
    }

    /// Handles every reply already received (non-blocking).
    private func receiveReady(into done: inout [Completion]) throws {
        while let parts = try socket.receiveMultipart(flags: .dontWait) {
            let body = parts.first?.count == 0 ? Array(parts.dropFirst()) : parts
            if body.count == 1 {   // an error object for a malformed request
                throw CommandFailure(code: 1, "the daemon refused the request: \(body[0].string)")
            }
            // A reply for a batch no longer awaited (answered already, an earlier attempt's) is stale.
            guard body.count == 2, let i = inFlight.firstIndex(where: { $0.retryAt == nil && $0.sequenceText == body[0].bytes }) else { continue }
            let status = (try? JSONSerialization.jsonObject(with: Data(body[1].bytes))) as? [String: Any] ?? ["error": body[1].string]
            if let error = status["error"] as? [String: Any], error["retry"] as? Bool == true, inFlight[i].attempts < retries {
                // Nothing was recorded: the same sequence again later; the rest of the window carries on.
                inFlight[i].retryAt = .now + .milliseconds(min(2_000, 100 * inFlight[i].attempts))
                continue
            }
            let e = inFlight.remove(at: i)
            done.append(Completion(tag: e.tag, sequence: e.sequence, status: status))
        }
    }

    /// Re-sends batches whose back-off ended; on a silence past `timeout`, reconnects and re-sends
    /// every batch awaiting a reply, in sequence order (Lazy Pirate).
    private func resendDue() throws {
        let now = ContinuousClock.now
        for i in inFlight.indices {
            guard let at = inFlight[i].retryAt, at <= now else { continue }
            inFlight[i].retryAt = nil
            inFlight[i].attempts += 1
            inFlight[i].sentAt = now
            resends += 1
            try transmit(inFlight[i])
        }
        guard let silent = inFlight.first(where: { $0.retryAt == nil && now >= $0.sentAt + timeout }) else { return }
        if silent.attempts >= retries {
            throw CommandFailure(code: 1, "no acknowledgement for batch \(silent.tag) (sequence \(silent.sequence)) after \(silent.attempts) attempts: is the daemon running with --ingest-ack \(endpoint)?")
        }
        socket.close()
        socket = try Self.dealer(context, endpoint, curve: curve)
        poller = Poller()
        poller.add(socket, .pollIn)
        for i in inFlight.indices where inFlight[i].retryAt == nil {
            inFlight[i].attempts += 1
            inFlight[i].sentAt = now
            resends += 1
            try transmit(inFlight[i])
        }
    }
}
