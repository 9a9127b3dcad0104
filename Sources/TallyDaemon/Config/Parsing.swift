// MARK: - Durations

/// A human duration from the command line or the config file: `250ms`, `5s`, `1m`, `1h`, `1.5s`,
/// `750us`. A bare number is seconds (what an operator who writes `snapshot-interval: 1` means).
///
/// Why not Swift's `Duration` parsing: there is none, and the protocol fixes these spellings.
/// - Complexity: O(n) in the length of the text.
public enum DurationText {
    /// Parses `text` into a `Duration`; throws ``ConfigError`` naming the setting and the accepted forms.
    public static func parse(_ text: String, setting: String) throws(ConfigError) -> Duration {
        let trimmed = text.trimmingWhitespace()
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9),
                                         ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(trimmed)
        var scale = 1.0
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            number = trimmed.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0 else {
            throw ConfigError(setting: setting, value: text,
                              problem: "is not a duration",
                              fix: "write a number with a unit, e.g. 250ms, 5s, 1m")
        }
        let nanos = (value * scale * 1e9).rounded()
        guard nanos <= 9.2e18 else {
            throw ConfigError(setting: setting, value: text, problem: "is too long", fix: "use at most a few days")
        }
        return .nanoseconds(Int64(nanos))
    }

    /// `Duration` as a compact text (`250ms`, `5s`), for logs and `--help` defaults.
    public static func format(_ d: Duration) -> String {
        let micros = d.microseconds
        if micros % 1_000_000 == 0 { return "\(micros / 1_000_000)s" }
        if micros % 1_000 == 0 { return "\(micros / 1_000)ms" }
        return "\(micros)us"
    }
}

extension Duration {
    /// Whole microseconds (truncated), the unit of the engine's clock.
    public var microseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000 + atto / 1_000_000_000_000
    }

    /// Whole milliseconds (rounded up, so a positive duration never becomes a 0 ms poll).
    public var millisecondsRoundedUp: Int64 {
        let micros = microseconds
        return (micros + 999) / 1_000
    }
}

// MARK: - Byte sizes

/// A byte size: `16777216`, `64k`/`64KiB` (×1024), `16M`/`16MiB`, `1G`/`1GiB`; `kB`/`MB`/`GB` are ×1000.
public enum ByteSizeText {
    /// - Complexity: O(n) in the length of the text.
    public static func parse(_ text: String, setting: String) throws(ConfigError) -> Int {
        let trimmed = text.trimmingWhitespace()
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
                                      ("kB", 1_000), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000),
                                      ("k", 1 << 10), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1)]
        var number = Substring(trimmed)
        var scale = 1
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            number = trimmed.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Int(number.trimmingWhitespace()), value >= 0,
              value <= Int.max / scale else {
            throw ConfigError(setting: setting, value: text, problem: "is not a byte size",
                              fix: "write a whole number of bytes or use a unit, e.g. 16MiB, 64k")
        }
        return value * scale
    }
}

// MARK: - ConfigError

/// A usage or configuration error: a setting whose value cannot be used. The command line maps it
/// to exit code 2, and its text always says what was wrong and what to do.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The flag or config key, e.g. `--snapshot-interval`.
    public let setting: String
    /// The offending value, as written (empty when the setting is missing).
    public let value: String
    /// What is wrong with it.
    public let problem: String
    /// What to do instead.
    public let fix: String

    public init(setting: String, value: String, problem: String, fix: String) {
        self.setting = setting
        self.value = value
        self.problem = problem
        self.fix = fix
    }

    public var description: String {
        let what = value.isEmpty ? "\(setting) \(problem)" : "\(setting) '\(value)' \(problem)"
        return "\(what): \(fix)."
    }
}

// MARK: - Small string helpers

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and newlines (no Foundation needed).
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = lastIndex(where: { !isSpace($0) })!
        return String(self[first...last])
    }
}
