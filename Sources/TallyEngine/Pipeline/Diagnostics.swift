// MARK: - Diagnostics

/// One problem found in a pipeline file, with the position of the YAML node it is about.
///
/// Why positions: operators edit pipelines by hand; `tally check` prints
/// `file:line:column: error: message` so an editor jumps to the spot, and the message says
/// what to write instead.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    public let file: String
    /// 1-based line (0 when the problem is about the file as a whole).
    public let line: Int
    /// 1-based column, in Unicode scalars as libyaml counts them.
    public let column: Int
    public let message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `file:line:column: error: message`, the format compilers and editors understand.
    public var description: String { "\(file):\(line):\(column): error: \(message)" }
}

/// Every problem of a pipeline file at once (never only the first), in file order.
public struct PipelineError: Error, Sendable, CustomStringConvertible {
    public let diagnostics: [Diagnostic]
    public init(diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

// MARK: - Suggestions

enum Suggest {
    /// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
    /// - Complexity: O(candidates × |word| × |candidate|).
    static func nearest(_ word: String, in candidates: [String]) -> String? {
        var best: (String, Int)?
        for c in candidates {
            let d = distance(Array(word.utf8), Array(c.utf8))
            if best == nil || d < best!.1 { best = (c, d) }
        }
        guard let (name, d) = best else { return nil }
        return d <= max(2, word.utf8.count / 3) ? name : nil
    }

    static func distance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }

    /// ` (did you mean 'x'?)` or an empty string.
    static func didYouMean(_ word: String, in candidates: [String]) -> String {
        nearest(word, in: candidates).map { " (did you mean '\($0)'?)" } ?? ""
    }
}
