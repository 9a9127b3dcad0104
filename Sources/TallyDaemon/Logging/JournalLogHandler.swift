// A swift-log handler for a daemon under systemd: one line per record on stderr, which journald
// captures. Under journald (detected through `$JOURNAL_STREAM`) each line starts with the syslog
// priority `<N>` so `journalctl -p warning` filters correctly, and carries no timestamp (journald
// stamps it); anywhere else it reads `timestamp level label: message key=value ...`.
public import Logging
import Glibc
import Synchronization

// MARK: - Sink

/// Where formatted lines go. The default writes to file descriptor 2 with one `write(2)` per line,
/// so lines from different threads never interleave (a single write to a pipe or the journal's stream
/// socket is atomic up to PIPE_BUF, and our lines are short).
public struct LogSink: Sendable {
    public let write: @Sendable ([UInt8]) -> Void

    public init(write: @escaping @Sendable ([UInt8]) -> Void) {
        self.write = write
    }

    /// Standard error. A full non-blocking stderr (EAGAIN) drops the line rather than stall the caller.
    public static let standardError = LogSink { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.write(2, raw.baseAddress! + offset, raw.count - offset)
            }
            if written > 0 {
                offset += written
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}

// MARK: - Format

/// How lines are laid out.
public enum LogFormat: Sendable, Equatable {
    /// `<N>label: message key=value`: for journald, which adds time, unit and PID itself.
    case journal
    /// `2026-04-30T16:59:59.123Z warning label: message key=value`: for a terminal or a file.
    case plain

    /// `.journal` when stderr is the stream journald handed us: `$JOURNAL_STREAM` is `DEV:INODE`
    /// and must match stderr's `fstat` (systemd.exec(5)), so a redirected stderr gets `.plain`.
    public static func detect(environment: [String: String]? = nil) -> LogFormat {
        let environment = environment ?? SystemCall.environment()
        guard let value = environment["JOURNAL_STREAM"] else { return .plain }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return .plain }
        var status = stat()
        guard fstat(2, &status) == 0 else { return .plain }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode ? .journal : .plain
    }
}

// MARK: - Handler

/// swift-log handler writing one line per record, for journald or a terminal.
///
/// ```swift
/// JournalLogHandler.bootstrap(level: .info)
/// let log = Logger(label: "tally.daemon")
/// log.info("ready", metadata: ["seq": "41", "ingest": "tcp://127.0.0.1:7701"])
/// // under systemd:  <6>tally.daemon: ready ingest=tcp://127.0.0.1:7701 seq=41
/// ```
/// - Complexity: O(message + metadata) per record, one `write`.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    public let format: LogFormat
    private let sink: LogSink

    public init(
        label: String, level: Logger.Level = .info, format: LogFormat = .detect(), sink: LogSink = .standardError,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
        self.metadataProvider = metadataProvider
    }

    /// Installs the handler for the whole process. Call once, first thing in `main`.
    public static func bootstrap(level: Logger.Level = .info, format: LogFormat = .detect()) {
        LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: level, format: format) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let specific = event.metadata { merged.merge(specific) { _, new in new } }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        sink.write(Self.line(level: event.level, label: label, message: event.message.description,
                             metadata: merged, format: format))
    }

    // MARK: Rendering

    /// The syslog priority journald understands (`sd-daemon(3)`'s `SD_*` prefixes).
    public static func priority(of level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// One formatted line, newline-terminated. Newlines inside the message or values are escaped so a
    /// record is always exactly one line.
    static func line(
        level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, format: LogFormat,
        wallClock: timespec? = nil
    ) -> [UInt8] {
        var text: String
        switch format {
        case .journal:
            text = "<\(priority(of: level))>\(label): "
        case .plain:
            text = "\(timestamp(wallClock)) \(level) \(label): "
        }
        text += escapeLine(message)
        for key in metadata.keys.sorted() {
            text += " \(key)=\(quote(render(metadata[key]!)))"
        }
        text += "\n"
        return Array(text.utf8)
    }

    static func render(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): return string
        case .stringConvertible(let convertible): return convertible.description
        case .array(let array): return "[" + array.map(render).joined(separator: ",") + "]"
        case .dictionary(let dictionary):
            return "{" + dictionary.keys.sorted().map { "\($0)=\(render(dictionary[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// Quotes a value containing spaces, quotes, `=` or nothing at all, logfmt style.
    static func quote(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.utf8.contains { $0 <= 0x20 || $0 == 0x22 || $0 == 0x3D || $0 == 0x5C }
        guard needsQuotes else { return value }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func escapeLine(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) else { return text }
        return text.replacingNewlines()
    }

    /// RFC 3339 UTC with milliseconds, without Foundation.
    static func timestamp(_ given: timespec? = nil) -> String {
        var now = given ?? timespec()
        if given == nil { clock_gettime(CLOCK_REALTIME, &now) }
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + "\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        var out = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
