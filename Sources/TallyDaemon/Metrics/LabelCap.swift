// Bounds the cardinality of a label whose values come from the outside (CloudEvents `source`,
// event `type`): each distinct value becomes a time series in every scrape and in Prometheus' memory,
// so a producer inventing a new source per event must not be able to grow either without bound.
import Synchronization

// MARK: - Cap

/// Admits the first `limit` distinct values of a label; every later new value is reported as
/// `overflowValue` (`"other"`). Values longer than `maxValueBytes` are truncated first (on a UTF-8
/// character boundary), and the empty value becomes `"unknown"`.
///
/// Why the first values and not the most frequent: admission must be decided once, without keeping
/// per-value statistics; agencies are known in advance and send from the start, so in practice the
/// admitted set is the legitimate one and the noise lands in `other`.
///
/// Thread-safe (a mutex around a set), so the engine thread and the socket-monitor thread may share one.
/// - Complexity: `admit` is O(length of value) (one hash and one set lookup); memory is
///   O(limit × maxValueBytes).
public final class LabelCap: Sendable {
    /// How many distinct values are admitted.
    public let limit: Int
    /// Longest value kept, in UTF-8 bytes.
    public let maxValueBytes: Int
    /// What every value beyond the limit is reported as.
    public let overflowValue: String
    private let admitted: Mutex<Set<String>>

    public init(limit: Int = 1_000, maxValueBytes: Int = 128, overflowValue: String = "other") {
        precondition(limit >= 0 && maxValueBytes > 0)
        self.limit = limit
        self.maxValueBytes = maxValueBytes
        self.overflowValue = overflowValue
        self.admitted = Mutex([])
    }

    /// The label value to use for `value`.
    public func admit(_ value: String) -> String {
        let value = Self.truncate(value.isEmpty ? "unknown" : value, toBytes: maxValueBytes)
        return admitted.withLock { set in
            if set.contains(value) { return value }
            guard set.count < limit else { return overflowValue }
            set.insert(value)
            return value
        }
    }

    /// How many distinct values have been admitted so far.
    public var admittedCount: Int { admitted.withLock { $0.count } }

    static func truncate(_ value: String, toBytes limit: Int) -> String {
        guard value.utf8.count > limit else { return value }
        var result = ""
        var used = 0
        for character in value {
            let size = character.utf8.count
            if used + size > limit { break }
            result.append(character)
            used += size
        }
        return result
    }
}
