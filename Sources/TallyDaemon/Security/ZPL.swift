// MARK: - ZPL (ZeroMQ Property Language, rfc.zeromq.org/spec/4)

/// A reader and writer for the small subset of ZPL that ZeroMQ certificates use.
///
/// Why our own: CZMQ (`zcert`), pyzmq (`zmq.auth`) and libzmq's tools all exchange CURVE
/// certificates as ZPL text, and Tally must read what they write and write what they read. ZPL
/// is a tree of `name` sections and `name = value` properties, nested by four-space indentation,
/// with `#` comments; values are quoted (`"..."` or `'...'`) or bare (up to a `#` or the end).
///
/// The reader is lenient where the writers differ (pyzmq writes metadata values bare, CZMQ
/// quotes them; some tools indent with tabs) and strict where a mistake would change meaning
/// (an unterminated quote, a property outside any section that is not at the top level).
public enum ZPL {
    /// One property: its section path (`["curve"]`), name and value.
    public struct Property: Sendable, Hashable {
        public var path: [String]
        public var name: String
        public var value: String

        public init(path: [String], name: String, value: String) {
            self.path = path
            self.name = name
            self.value = value
        }

        /// `curve/public-key`: the path and name joined by `/`, as CZMQ's `zconfig_resolve` spells it.
        public var key: String { (path + [name]).joined(separator: "/") }
    }

    /// A ZPL syntax error, with the 1-based line it is on.
    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public let line: Int
        public let problem: String
        public var description: String { "line \(line): \(problem)" }
    }

    // MARK: - Reading

    /// Parses ZPL text into its properties, in file order. Sections without properties vanish.
    ///
    /// - Complexity: O(n) in the length of the text.
    public static func parse(_ text: String) throws(SyntaxError) -> [Property] {
        var properties: [Property] = []
        var stack: [String] = []           // section names, one per indentation level
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            // Indentation: four spaces (or one tab) per level, as written by CZMQ and pyzmq.
            var columns = 0
            var body = line
            while let c = body.first, c == " " || c == "\t" {
                columns += c == "\t" ? 4 : 1
                body = body.dropFirst()
            }
            if body.isEmpty || body.first == "#" { continue }
            let level = columns / 4
            guard level <= stack.count else {
                throw SyntaxError(line: lineNumber, problem: "indented deeper than its section")
            }
            stack.removeLast(stack.count - level)

            guard let eq = body.firstIndex(of: "=") else {
                // A section name (possibly followed by a comment).
                let name = stripComment(body).trimmed()
                guard isValidName(name) else {
                    throw SyntaxError(line: lineNumber, problem: "'\(name)' is not a valid name")
                }
                stack.append(String(name))
                continue
            }
            let name = body[..<eq].trimmed()
            guard isValidName(name) else {
                throw SyntaxError(line: lineNumber, problem: "'\(name)' is not a valid property name")
            }
            let value = try parseValue(body[body.index(after: eq)...].trimmedLeading(), line: lineNumber)
            properties.append(Property(path: stack, name: String(name), value: value))
            // A property may also carry children (ZPL allows it); we never need them, but a
            // child line must not fail the parse, so the property name opens a level too.
            stack.append(String(name))
        }
        return properties
    }

    private static func parseValue(_ text: Substring, line: Int) throws(SyntaxError) -> String {
        guard let first = text.first else { return "" }
        if first == "\"" || first == "'" {
            let rest = text.dropFirst()
            guard let close = rest.firstIndex(of: first) else {
                throw SyntaxError(line: line, problem: "unterminated \(first)quoted\(first) value")
            }
            let after = rest[rest.index(after: close)...].trimmed()
            guard after.isEmpty || after.first == "#" else {
                throw SyntaxError(line: line, problem: "unexpected text after the quoted value")
            }
            return String(rest[..<close])
        }
        return String(stripComment(text).trimmed())
    }

    private static func stripComment(_ text: Substring) -> Substring {
        guard let hash = text.firstIndex(of: "#") else { return text }
        return text[..<hash]
    }

    /// ZPL names: letters, digits and `$-_@.&+/`.
    static func isValidName(_ name: Substring) -> Bool {
        !name.isEmpty && name.allSatisfy { c in
            c.isASCII && (c.isLetter || c.isNumber || "$-_@.&+/".contains(c))
        }
    }

    // MARK: - Writing

    /// Whether `value` can be written as a quoted ZPL value (ZPL has no escapes).
    public static func isWritable(_ value: String) -> Bool {
        !value.contains("\"") && !value.contains("\n") && !value.contains("\r")
    }

    /// `    name = "value"` at `level`, as CZMQ writes it. The caller checked ``isWritable(_:)``.
    static func line(_ name: String, _ value: String, level: Int) -> String {
        String(repeating: " ", count: 4 * level) + "\(name) = \"\(value)\"\n"
    }
}

// MARK: - Helpers

extension Substring {
    fileprivate func trimmed() -> Substring { trimmedLeading().trimmedTrailing() }
    fileprivate func trimmedLeading() -> Substring { drop { $0 == " " || $0 == "\t" } }
    fileprivate func trimmedTrailing() -> Substring {
        var s = self
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}
