public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - RejectLedger

/// Bad input's book-keeping: every rejected payload or event counted by reason and by `source`,
/// warned about at a bounded rate, and written to the dead-letter file when there is one.
///
/// Memory is bounded whatever producers send: at most ``maxKeys`` distinct (reason, source)
/// pairs are tracked individually, the rest are counted under source `"(other)"`.
///
/// Owned by the engine thread; the counts are published under a lock for readers elsewhere
/// (metrics, `STATUS=`, tests) through ``counts()``.
public final class RejectLedger: Sendable {
    /// Distinct (reason, source) pairs tracked before folding into `"(other)"`.
    public let maxKeys: Int
    private let state: Mutex<State>
    private let logger: Logger
    /// At most this many warning lines per ``warnWindowMicros``; the rest are summarised.
    private let warnBurst: Int
    private let warnWindowMicros: Int64
    nonisolated(unsafe) private let deadLetter: DeadLetterFile?

    struct State {
        var counts: [Key: Int] = [:]
        var total: Int = 0
        var windowStart: Int64 = 0
        var warnedInWindow: Int = 0
        var suppressed: Int = 0
    }

    /// A count key.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        public var reason: String
        public var source: String
        public var description: String { "\(reason)/\(source)" }
    }

    public init(logger: Logger, deadLetter: DeadLetterFile?, maxKeys: Int = 1024,
                warnBurst: Int = 10, warnWindow: Duration = .seconds(10)) {
        self.logger = logger
        self.deadLetter = deadLetter
        self.maxKeys = maxKeys
        self.warnBurst = warnBurst
        self.warnWindowMicros = warnWindow.microseconds
        self.state = Mutex(State())
    }

    /// Records every rejection in `outcome` for the frame `payload` from `origin`.
    /// - Complexity: O(1) when nothing was rejected; otherwise O(bytes up to the end of the
    ///   last rejected element) to find the rejected events' `source` and bytes (cold path).
    @inline(__always)
    public func record(_ outcome: FrameOutcome, payload: UnsafeRawBufferPointer, origin: FrameOrigin) {
        guard !outcome.isClean else { return }
        recordSlow(outcome, payload: payload, origin: origin)
    }

    /// Records a frame rejected before it reached the core (e.g. larger than the limit).
    public func recordFrame(code: String, message: String, payload: UnsafeRawBufferPointer, origin: FrameOrigin) {
        var outcome = FrameOutcome()
        outcome.payloadError = .init(index: 0, code: code, message: message)
        recordSlow(outcome, payload: payload, origin: origin)
    }

    @inline(never)
    private func recordSlow(_ outcome: FrameOutcome, payload: UnsafeRawBufferPointer, origin: FrameOrigin) {
        let now = Clocks.wallMicros()
        var items: [(FrameOutcome.Rejection, String?, UnsafeRawBufferPointer, Int?)] = []
        if let error = outcome.payloadError {
            let source = error.code == "too_large" ? nil : JSONScan.sourceOf(payload)
            items.append((error, source, payload, nil))
        } else {
            let batched = JSONScan.isArray(payload)
            // Where the decoder found them; only when a rejection lacks its bytes is the frame
            // split again, and only as far as the last rejected element.
            let known = outcome.rejected.allSatisfy { $0.element.map { $0.upperBound <= payload.count } ?? false }
            let last = outcome.rejected.reduce(0) { max($0, $1.index) }
            let scanned = known || !batched ? [payload] : JSONScan.arrayElements(payload, through: last)
            for r in outcome.rejected {
                let bytes = known ? UnsafeRawBufferPointer(rebasing: payload[r.element!])
                    : r.index < scanned.count ? scanned[r.index] : payload
                items.append((r, JSONScan.sourceOf(bytes), bytes, batched ? r.index : nil))
            }
        }
        var warnings: [String] = []
        var summary: Int = 0
        state.withLock { s in
            if now - s.windowStart >= warnWindowMicros {
                summary = s.suppressed
                s.windowStart = now
                s.warnedInWindow = 0
                s.suppressed = 0
            }
            for (r, source, _, index) in items {
                var key = Key(reason: r.code, source: source ?? "(unknown)")
                if s.counts[key] == nil && s.counts.count >= maxKeys { key.source = "(other)" }
                s.counts[key, default: 0] += 1
                s.total += 1
                if s.warnedInWindow < warnBurst {
                    s.warnedInWindow += 1
                    let at = index.map { " event \($0)" } ?? ""
                    warnings.append("rejected\(at) from \(origin.label) source=\(source ?? "?"): \(r.code): \(r.message)")
                } else {
                    s.suppressed += 1
                }
            }
        }
        if summary > 0 {
            logger.warning("\(summary) more rejections were not logged individually (rate limit)")
        }
        for w in warnings { logger.warning("\(w)") }
        if let deadLetter {
            for (r, source, bytes, index) in items {
                deadLetter.record(reason: r.code, message: r.message, origin: origin.label, source: source,
                                  index: index, payload: bytes, at: now)
            }
        }
    }

    /// Writes buffered dead letters (the engine loop calls this once per drain).
    public func flush() { deadLetter?.flush() }

    /// A copy of the counts.
    public func counts() -> (total: Int, byKey: [Key: Int]) {
        state.withLock { ($0.total, $0.counts) }
    }

    /// Counts per reason, summed over sources.
    public func countsByReason() -> [String: Int] {
        state.withLock { s in
            var out: [String: Int] = [:]
            for (k, v) in s.counts { out[k.reason, default: 0] += v }
            return out
        }
    }
}

// MARK: - JSONScan

/// Tolerant byte scanning of JSON for the cold paths (rejections): split a batch into its
/// elements and find an event's `source`, without a full parse and without trusting the input.
enum JSONScan {
    /// Whether the first non-space byte is `[`.
    static func isArray(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for b in bytes {
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { continue }
            return b == UInt8(ascii: "[")
        }
        return false
    }

    /// The byte ranges of a top-level array's elements (best effort on malformed input), up to
    /// and including element `through` (all of them by default): the scan stops there.
    /// - Complexity: O(bytes up to the end of element `through`), one pass tracking depth;
    ///   string contents are skipped with `memchr` to the next quote.
    static func arrayElements(_ bytes: UnsafeRawBufferPointer, through last: Int = .max) -> [UnsafeRawBufferPointer] {
        var out: [UnsafeRawBufferPointer] = []
        guard let base = bytes.baseAddress else { return out }
        var depth = 0
        var start: Int? = nil
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            switch b {
            case 0x22:
                if depth == 1 && start == nil { start = i }
                // Skip the string: the next quote not preceded by an odd run of backslashes.
                var j = i + 1
                while j < n {
                    guard let q = memchr(base + j, 0x22, n - j) else { j = n; break }
                    let at = base.distance(to: UnsafeRawPointer(q))
                    var backslashes = 0
                    while at - 1 - backslashes > i && bytes[at - 1 - backslashes] == 0x5C { backslashes += 1 }
                    j = at
                    if backslashes % 2 == 0 { break }
                    j += 1
                }
                i = j + 1
                continue
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                if depth == 1 && start == nil { start = i }
                depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
                if depth == 0, let s = start {
                    out.append(UnsafeRawBufferPointer(rebasing: bytes[s..<i]).trimmed())
                    start = nil
                }
            case UInt8(ascii: ","):
                if depth == 1, let s = start {
                    out.append(UnsafeRawBufferPointer(rebasing: bytes[s..<i]).trimmed())
                    start = nil
                    if out.count > last { return out }
                }
            case 0x20, 0x0A, 0x0D, 0x09:
                break
            default:
                if depth == 1 && start == nil { start = i }
            }
            i += 1
        }
        return out
    }

    /// The string value of the first `"source"` key (at any depth; good enough for accounting).
    static func sourceOf(_ bytes: UnsafeRawBufferPointer) -> String? {
        let key = Array(#""source""#.utf8)
        guard bytes.count > key.count else { return nil }
        var i = 0
        let limit = min(bytes.count, 1 << 16)
        while i + key.count <= limit {
            if bytes[i] == 0x22 && bytes[i + 1] == UInt8(ascii: "s") {
                var match = true
                for k in 0..<key.count where bytes[i + k] != key[k] { match = false; break }
                if match {
                    var j = i + key.count
                    while j < bytes.count && (bytes[j] == 0x20 || bytes[j] == UInt8(ascii: ":")) { j += 1 }
                    guard j < bytes.count, bytes[j] == 0x22 else { return nil }
                    var end = j + 1
                    while end < bytes.count && bytes[end] != 0x22 && end - j < 512 {
                        if bytes[end] == 0x5C { end += 1 }
                        end += 1
                    }
                    guard end < bytes.count else { return nil }
                    return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(j + 1)..<end]), as: UTF8.self)
                }
            }
            i += 1
        }
        return nil
    }
}

extension UnsafeRawBufferPointer {
    /// Without leading and trailing JSON whitespace.
    func trimmed() -> UnsafeRawBufferPointer {
        var lo = 0, hi = count
        func ws(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }
        while lo < hi && ws(self[lo]) { lo += 1 }
        while hi > lo && ws(self[hi - 1]) { hi -= 1 }
        return UnsafeRawBufferPointer(rebasing: self[lo..<hi])
    }
}
