// Bad input can arrive at line rate (a misconfigured producer sending a million malformed events a
// second); logging each would flood the journal and cost more than rejecting them. Warnings about
// bad input therefore go through a token bucket per reason: a burst, then a steady trickle, and a
// summary line "suppressed N similar messages" so nothing is silently lost.
public import Logging
import Synchronization

// MARK: - Token bucket

/// The classic token bucket on an injected monotonic clock (µs): holds at most `capacity` tokens,
/// refills `refillPerSecond`, and each allowed action takes one.
/// - Complexity: O(1) per `take`.
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Double
    public let refillPerSecond: Double
    public private(set) var tokens: Double
    private var lastRefill: UInt64

    /// Starts full at `now`.
    public init(capacity: Int, refillPerSecond: Double, now: UInt64) {
        precondition(capacity > 0 && refillPerSecond > 0)
        self.capacity = Double(capacity)
        self.refillPerSecond = refillPerSecond
        self.tokens = Double(capacity)
        self.lastRefill = now
    }

    /// Takes a token if one is available at `now`.
    public mutating func take(now: UInt64) -> Bool {
        if now > lastRefill {
            tokens = min(capacity, tokens + Double(now - lastRefill) * refillPerSecond / 1_000_000)
            lastRefill = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

// MARK: - Rate-limited logger

/// Logs at most `burst` lines at once and `perSecond` lines per second for each `reason`; the
/// suppressed ones are counted and reported as one line, `suppressed N similar messages`, before the
/// next line of that reason, or by `flushSuppressed()` (call it on a periodic tick so a burst that
/// simply stops is still reported).
///
/// A suppressed message's text and metadata are autoclosures, never evaluated: suppression costs a
/// lock and a bucket update. Reasons beyond `maxReasons` share one bucket (`other`), so memory is
/// bounded whatever the input.
///
/// ```swift
/// let badInput = RateLimitedLogger(logger: Logger(label: "tally.ingest"))
/// badInput.warning(reason: "invalid_json", "rejected payload", metadata: ["source": "\(source)"])
/// ```
/// - Complexity: O(1) per call (plus formatting when the line is emitted); memory O(maxReasons).
public final class RateLimitedLogger: Sendable {
    private struct ReasonState {
        var bucket: TokenBucket
        var suppressed: Int
    }

    public let logger: Logger
    public let burst: Int
    public let perSecond: Double
    public let maxReasons: Int
    private let clock: @Sendable () -> UInt64
    private let reasons = Mutex<[String: ReasonState]>([:])

    /// - Parameters:
    ///   - burst: lines allowed at once for one reason.
    ///   - perSecond: steady lines per second for one reason.
    ///   - clock: monotonic microseconds (injected by tests).
    public init(
        logger: Logger, burst: Int = 10, perSecond: Double = 10, maxReasons: Int = 256,
        clock: @escaping @Sendable () -> UInt64 = { MonotonicClock.microseconds() }
    ) {
        self.logger = logger
        self.burst = burst
        self.perSecond = perSecond
        self.maxReasons = maxReasons
        self.clock = clock
    }

    /// Logs a warning about bad input of kind `reason`, unless that reason is over its rate.
    /// - Returns: whether the line was written.
    @discardableResult
    public func warning(
        reason: String, _ message: @autoclosure () -> Logger.Message,
        metadata: @autoclosure () -> Logger.Metadata? = nil
    ) -> Bool {
        log(level: .warning, reason: reason, message(), metadata: metadata())
    }

    /// Logs at `level` under the rate limit of `reason`.
    @discardableResult
    public func log(
        level: Logger.Level, reason: String, _ message: @autoclosure () -> Logger.Message,
        metadata: @autoclosure () -> Logger.Metadata? = nil
    ) -> Bool {
        guard logger.logLevel <= level else { return false }
        let now = clock()
        let (allowed, previouslySuppressed, key) = reasons.withLock { table -> (Bool, Int, String) in
            let key = table[reason] != nil || table.count < maxReasons - 1 ? reason : "other"
            var state = table[key] ?? ReasonState(
                bucket: TokenBucket(capacity: burst, refillPerSecond: perSecond, now: now), suppressed: 0)
            defer { table[key] = state }
            guard state.bucket.take(now: now) else {
                state.suppressed += 1
                return (false, 0, key)
            }
            let suppressed = state.suppressed
            state.suppressed = 0
            return (true, suppressed, key)
        }
        guard allowed else { return false }
        if previouslySuppressed > 0 { summarize(reason: key, count: previouslySuppressed, level: level) }
        var fields = metadata() ?? [:]
        fields["reason"] = fields["reason"] ?? .string(reason)
        logger.log(level: level, message(), metadata: fields)
        return true
    }

    /// Writes the pending `suppressed N similar messages` lines (one per reason with suppressions)
    /// and forgets reasons whose bucket is full again, so a burst that stops is still reported.
    /// - Returns: the number of summary lines written.
    @discardableResult
    public func flushSuppressed(level: Logger.Level = .warning) -> Int {
        let now = clock()
        let pending = reasons.withLock { table -> [(String, Int)] in
            var pending: [(String, Int)] = []
            for key in Array(table.keys) {
                var state = table[key]!
                if state.suppressed > 0 {
                    pending.append((key, state.suppressed))
                    state.suppressed = 0
                    table[key] = state
                } else {
                    var probe = state.bucket
                    // Refill to now: a bucket back at capacity carries no information any more.
                    _ = probe.take(now: now)
                    if probe.tokens + 1 >= Double(burst) { table[key] = nil }
                }
            }
            return pending.sorted { $0.0 < $1.0 }
        }
        for (reason, count) in pending { summarize(reason: reason, count: count, level: level) }
        return pending.count
    }

    private func summarize(reason: String, count: Int, level: Logger.Level) {
        logger.log(level: level, "suppressed \(count) similar messages",
                   metadata: ["reason": .string(reason), "suppressed": .stringConvertible(count)])
    }
}
