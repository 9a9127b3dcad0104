public import TallyEngine

// MARK: - Limits

/// Every bound the daemon puts on input, in one place, with its default and why.
///
/// Hitting a limit rejects the input with a reason (a counted `RejectReason.code`); none of them
/// lets memory grow with the input. Config-file keys are the flag names without `--`.
///
/// | setting | flag | default | what happens at the limit |
/// | --- | --- | --- | --- |
/// | ``maxMessageSize`` | `--max-message-size` | 16 MiB | frame rejected `too_large` (and libzmq drops a peer whose message exceeds it when set as `ZMQ_MAXMSGSIZE`) |
/// | ``maxEventsPerBatch`` | `--max-events-per-batch` | 10 000 | frame rejected `too_large` |
/// | ``maxJSONDepth`` | `--max-json-depth` | 32 | frame rejected `too_deep` |
/// | ``maxStringLength`` | `--max-string-length` | 64 KiB | event rejected `too_large` |
/// | ``receiveHighWaterMark`` | `--ingest-hwm` | 10 000 messages per peer | the producer blocks (PUSH) or gets `EAGAIN`: back-pressure, not memory |
/// | ``sendHighWaterMark`` | `--publish-hwm` | 1 000 messages per subscriber | a slow subscriber's snapshots are dropped, others unaffected |
/// | ``rateLimit`` | `--rate-limit EVENTS/S[,BURST]` | off | frame rejected `rate_limited` (per producer: CURVE User-Id, and the acknowledged path's producer id; see `IngestRateLimiter`) |
///
/// The worst-case memory of ingest is then about `receiveHighWaterMark × peers × maxMessageSize`
/// in libzmq's queues (bounded, and the reason the HWM default is modest) plus one decoded frame.
public struct Limits: Sendable, Equatable {
    /// Bytes of one frame; also `ZMQ_MAXMSGSIZE` on ingest sockets.
    public var maxMessageSize: Int = 16 << 20
    /// Events in one batch (a JSON array frame).
    public var maxEventsPerBatch: Int = 10_000
    /// Nesting of JSON arrays/objects in a frame (outer container = 1).
    public var maxJSONDepth: Int = 32
    /// Bytes of one JSON string.
    public var maxStringLength: Int = 65_536
    /// `ZMQ_RCVHWM` of the ingest sockets (messages per peer).
    public var receiveHighWaterMark: Int32 = 10_000
    /// `ZMQ_SNDHWM` of the publication socket (messages per subscriber).
    public var sendHighWaterMark: Int32 = 1_000
    /// Per-producer event rate; `nil` = unlimited.
    public var rateLimit: RateLimit?

    public init() {}

    /// The decoder's share of these limits, for `EventDecoder(limits:)` / the engine's options.
    public var decodeLimits: DecodeLimits {
        var d = DecodeLimits()
        d.maxDepth = maxJSONDepth
        d.maxStringLength = maxStringLength
        d.maxEventsPerBatch = maxEventsPerBatch
        return d
    }

    /// The reason code for a frame refused by ``rateLimit`` (not a decoder code: the daemon adds it).
    public static let rateLimitedCode = RejectReason.Code(rawValue: "rate_limited")

    /// Rejects nonsensical values with a message naming the setting (exit 2).
    public func validate() throws(SecurityConfigError) {
        func positive(_ v: Int, _ name: String) throws(SecurityConfigError) {
            guard v > 0 else { throw SecurityConfigError("--\(name) must be positive, got \(v)") }
        }
        try positive(maxMessageSize, "max-message-size")
        try positive(maxEventsPerBatch, "max-events-per-batch")
        try positive(maxJSONDepth, "max-json-depth")
        try positive(maxStringLength, "max-string-length")
        try positive(Int(receiveHighWaterMark), "ingest-hwm")
        try positive(Int(sendHighWaterMark), "publish-hwm")
        if let r = rateLimit { try r.validate() }
    }
}

// MARK: - RateLimit

/// `--rate-limit 5000/s,20000`: each producer may send `eventsPerSecond` on average with bursts of
/// `burst` events; `maxProducers` bounds the memory of the table (see ``RateLimiter``).
public struct RateLimit: Sendable, Equatable {
    public var eventsPerSecond: Double
    public var burst: Double
    public var maxProducers: Int

    public init(eventsPerSecond: Double, burst: Double? = nil, maxProducers: Int = 10_000) {
        self.eventsPerSecond = eventsPerSecond
        self.burst = burst ?? eventsPerSecond
        self.maxProducers = maxProducers
    }

    /// Parses `RATE` or `RATE,BURST` (`RATE` may end in `/s`).
    public init(parsing text: String) throws(SecurityConfigError) {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: " \t") }
        guard (1...2).contains(parts.count),
              let rate = Double(parts[0].hasSuffix("/s") ? String(parts[0].dropLast(2)) : parts[0]),
              parts.count == 1 || Double(parts[1]) != nil else {
            throw SecurityConfigError("--rate-limit '\(text)' is not RATE[/s][,BURST]: write e.g. 5000/s,20000")
        }
        self.init(eventsPerSecond: rate, burst: parts.count == 2 ? Double(parts[1])! : nil)
        try validate()
    }

    func validate() throws(SecurityConfigError) {
        guard eventsPerSecond > 0, eventsPerSecond.isFinite, burst >= 1, burst.isFinite, maxProducers > 0 else {
            throw SecurityConfigError("--rate-limit needs a positive rate and a burst of at least 1 event")
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}

// MARK: - RateLimiter

/// Token buckets keyed by producer (User-Id or acknowledged-ingest producer id), with bounded memory.
///
/// Each bucket holds up to `burst` tokens and refills at `eventsPerSecond`; a frame of `n` events
/// takes `n` tokens or is refused whole (so a batch is never half-applied for rate reasons).
///
/// Memory: at most `maxProducers` buckets. When a new producer arrives at the cap, buckets that have
/// refilled to full are dropped first (they carry no information: a new bucket starts full), then the
/// least recently used until a quarter of the table is free, so the O(n) sweep happens at most once
/// per `maxProducers / 4` new producers. A producer evicted early gets a full bucket back: flooding
/// the table with fresh ids can reset others' buckets, which is why the authenticated User-Id is the
/// key of choice (its set is bounded by `--authorized-keys`).
///
/// Single-owner (the engine thread); not thread-safe.
/// - Complexity: `admit` O(1) amortized (O(n log n) sweep every n/4 insertions).
public struct RateLimiter: Sendable {
    public let limit: RateLimit
    private var buckets: [String: Bucket] = [:]

    private struct Bucket: Sendable {
        var tokens: Double
        var updatedNanos: UInt64
    }

    public init(limit: RateLimit) { self.limit = limit }

    /// How many producers are tracked now (≤ `limit.maxProducers`).
    public var trackedProducers: Int { buckets.count }

    /// Takes `cost` tokens from `producer`'s bucket at monotonic time `nowNanos`; `false` = refuse
    /// the frame (`rate_limited`). A cost above the burst can never pass.
    public mutating func admit(_ producer: String, cost: Int = 1, nowNanos: UInt64) -> Bool {
        let need = Double(max(0, cost))
        if var bucket = buckets[producer] {
            refill(&bucket, now: nowNanos)
            let ok = bucket.tokens >= need
            if ok { bucket.tokens -= need }
            buckets[producer] = bucket
            return ok
        }
        if buckets.count >= limit.maxProducers { evict(now: nowNanos) }
        let ok = limit.burst >= need
        buckets[producer] = Bucket(tokens: ok ? limit.burst - need : limit.burst, updatedNanos: nowNanos)
        return ok
    }

    /// Gives back `cost` tokens taken by ``admit(_:cost:nowNanos:)`` (capped at the burst): when a
    /// frame passed one bucket but another refused it, the first must not pay for nothing.
    /// - Complexity: O(1).
    public mutating func refund(_ producer: String, cost: Int) {
        guard var bucket = buckets[producer] else { return }
        bucket.tokens = min(limit.burst, bucket.tokens + Double(max(0, cost)))
        buckets[producer] = bucket
    }

    /// Seconds until `producer`'s bucket holds `cost` tokens (0 when it already does, or is unknown);
    /// what a refused producer is told to wait.
    public func secondsUntil(_ producer: String, cost: Int, nowNanos: UInt64) -> Double {
        guard var bucket = buckets[producer] else { return 0 }
        refill(&bucket, now: nowNanos)
        let missing = Double(cost) - bucket.tokens
        return missing <= 0 ? 0 : missing / limit.eventsPerSecond
    }

    private func refill(_ bucket: inout Bucket, now: UInt64) {
        guard now > bucket.updatedNanos else { return }
        let elapsed = Double(now - bucket.updatedNanos) / 1e9
        bucket.tokens = min(limit.burst, bucket.tokens + elapsed * limit.eventsPerSecond)
        bucket.updatedNanos = now
    }

    private mutating func evict(now: UInt64) {
        let target = limit.maxProducers - max(1, limit.maxProducers / 4)
        // Full buckets first: forgetting them changes nothing.
        for (key, var bucket) in buckets {
            refill(&bucket, now: now)
            if bucket.tokens >= limit.burst { buckets[key] = nil }
        }
        guard buckets.count > target else { return }
        let oldest = buckets.sorted { $0.value.updatedNanos < $1.value.updatedNanos }
        for (key, _) in oldest.prefix(buckets.count - target) { buckets[key] = nil }
    }
}
