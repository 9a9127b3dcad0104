import ZeroMQ

// MARK: - IngestRateLimiter

/// `--rate-limit RATE/s,BURST` on the ingest paths: which producer a frame is charged to, what it
/// costs, and what a refused frame becomes (a counted `rate_limited` rejection, and on the
/// acknowledged path a reply telling the producer to re-send later).
///
/// Who is a producer:
/// - with CURVE, the key's name (ZAP User-Id) on **every** ingest path: the authenticated identity,
///   whose set is bounded by `--authorized-keys`, so inventing names cannot escape it;
/// - on the acknowledged path, also the `producer-id` frame (both buckets must admit the frame);
/// - fire-and-forget without CURVE has no identity: the peer's IP address (`Peer-Address`), or,
///   on transports without one (`ipc://`), the endpoint (all its producers share one bucket).
///
/// Cost: a frame of n events takes n tokens or is refused whole (a batch is never half-applied
/// for rate reasons), so BURST must be at least the largest batch a producer sends. Refused frames
/// are neither logged to the write-ahead log nor applied; on the acknowledged path nothing is
/// recorded in the producer table, so the same sequence re-sent later is applied normally.
///
/// Memory: the ``RateLimiter``'s buckets, at most `maxProducers` (10 000), whatever ids arrive.
/// Single owner: the engine thread.
/// - Complexity: per frame O(frame bytes) for the event count (a byte scan, only when the limit
///   is on) plus O(1) amortized for the bucket.
final class IngestRateLimiter {
    private(set) var limiter: RateLimiter
    /// Frames and events refused so far (also counted in the reject ledger as `rate_limited`).
    private(set) var refusedFrames = 0
    private(set) var refusedEvents = 0

    init(limit: RateLimit) { limiter = RateLimiter(limit: limit) }

    static let code = Limits.rateLimitedCode.rawValue

    // MARK: Fire-and-forget

    /// Charges a PULL frame to its producer. - Returns: `true` when the frame is refused (it was
    /// recorded in `ledger`; the caller drops it).
    func refusePull(_ message: Message, curve: Bool, origin: FrameOrigin, ledger: RejectLedger) -> Bool {
        let key: String
        if curve, let user = message.property("User-Id") {
            key = "user:" + user
        } else if let peer = message.property("Peer-Address") {
            key = "peer:" + peer
        } else {
            key = "endpoint:" + origin.label
        }
        return message.withUnsafeBytes { payload -> Bool in
            let cost = Self.eventCount(payload)
            let now = Clocks.monotonicNanos()
            guard !limiter.admit(key, cost: cost, nowNanos: now) else { return false }
            refused(key: key, cost: cost, now: now, payload: payload, origin: origin, ledger: ledger)
            return true
        }
    }

    // MARK: Acknowledged

    /// Charges an acknowledged batch to its producer id (and, with CURVE, to its key).
    /// - Returns: the reply for a refused batch (`{"error":{"reason":"rate_limited",...,"retry":true}}`),
    ///   or nil when it may be applied.
    func refuseAck(producer: [UInt8], payload message: Message, curve: Bool, ledger: RejectLedger) -> [UInt8]? {
        let producerKey = "producer:" + String(decoding: producer, as: UTF8.self)
        let userKey = curve ? message.property("User-Id").map { "user:" + $0 } : nil
        return message.withUnsafeBytes { payload -> [UInt8]? in
            let cost = Self.eventCount(payload)
            let now = Clocks.monotonicNanos()
            var refusedBy: String?
            if let userKey, !limiter.admit(userKey, cost: cost, nowNanos: now) {
                refusedBy = userKey
            } else if !limiter.admit(producerKey, cost: cost, nowNanos: now) {
                if let userKey { limiter.refund(userKey, cost: cost) }
                refusedBy = producerKey
            }
            guard let key = refusedBy else { return nil }
            let origin = FrameOrigin(label: "ack:" + String(decoding: producer, as: UTF8.self))
            let text = refused(key: key, cost: cost, now: now, payload: payload, origin: origin, ledger: ledger)
            return AckStatus.retryableError(reason: Self.code, message: text)
        }
    }

    // MARK: Shared

    @discardableResult
    private func refused(key: String, cost: Int, now: UInt64, payload: UnsafeRawBufferPointer,
                         origin: FrameOrigin, ledger: RejectLedger) -> String {
        refusedFrames &+= 1
        refusedEvents &+= cost
        let limit = limiter.limit
        let wait = limiter.secondsUntil(key, cost: cost, nowNanos: now)
        let text = cost > Int(limit.burst)
            ? "\(key): a frame of \(cost) events exceeds the --rate-limit burst of \(Int(limit.burst)) events: send smaller batches"
            : "\(key) is over --rate-limit \(Self.format(limit.eventsPerSecond))/s (burst \(Int(limit.burst))): frame of \(cost) events refused; re-send in \(Int((wait * 1000).rounded(.up))) ms"
        ledger.recordFrame(code: Self.code, message: text, payload: payload, origin: origin)
        return text
    }

    private static func format(_ rate: Double) -> String {
        rate == rate.rounded() && rate < 1e15 ? String(Int(rate)) : String(rate)
    }

    /// Events in a frame without decoding it: the elements of a top-level JSON array (strings
    /// skipped, nesting tracked), else 1. A malformed frame gets some count ≥ 1 and is rejected
    /// later by the decoder anyway.
    /// - Complexity: O(bytes), no allocation.
    static func eventCount(_ bytes: UnsafeRawBufferPointer) -> Int {
        var i = 0
        let n = bytes.count
        while i < n, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        guard i < n, bytes[i] == UInt8(ascii: "[") else { return 1 }
        var depth = 0
        var inString = false
        var count = 0
        var sawValue = false
        while i < n {
            let b = bytes[i]
            if inString {
                if b == UInt8(ascii: "\\") { i += 1 } else if b == UInt8(ascii: "\"") { inString = false }
            } else {
                switch b {
                case UInt8(ascii: "\""):
                    inString = true
                    if depth == 1 { sawValue = true }
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    if depth == 1 { sawValue = true }
                    depth += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    depth -= 1
                    if depth == 0 { return max(1, count + (sawValue ? 1 : 0)) }
                case UInt8(ascii: ","):
                    if depth == 1 { count += 1; sawValue = false }
                case 0x20, 0x0A, 0x0D, 0x09:
                    break
                default:
                    if depth == 1 { sawValue = true }
                }
            }
            i += 1
        }
        return max(1, count + (sawValue ? 1 : 0))
    }
}

extension AckStatus {
    /// An answer for a batch that was neither applied nor recorded, which the producer must re-send
    /// later with the **same** sequence (`storage_unavailable`, `rate_limited`).
    static func retryableError(reason: String, message: String) -> [UInt8] {
        var out = Array(#"{"accepted":0,"duplicates":0,"unrouted":0,"late":0,"rejected":[],"error":{"reason":"#.utf8)
        JSONText.appendString(reason, to: &out)
        out.append(contentsOf: #","message":"#.utf8)
        JSONText.appendString(message, to: &out)
        out.append(contentsOf: #","retry":true}}"#.utf8)
        return out
    }
}
