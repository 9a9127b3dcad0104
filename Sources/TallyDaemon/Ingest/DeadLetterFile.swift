#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - DeadLetterFile

/// The `--dead-letter FILE`: every rejected payload or event, with its reason, as one JSON line,
/// so an operator can see exactly what was refused and replay it after fixing the producer.
///
/// Line shape: `{"at":"<wall RFC 3339>","reason":"bad_time","message":"...","origin":"tcp://...",
/// "source":"...","index":3,"bytes":812,"payload":"<the frame or event as a JSON string>"}`
/// (`index` only for one event of a batch; `payload` is cut at ``payloadLimit`` bytes with
/// `"truncated":true`, so an oversized frame costs the file a bounded amount).
///
/// Rotation: when a write would take the file past `maxBytes`, `FILE` becomes `FILE.1`, `FILE.1`
/// becomes `FILE.2`, ... and `FILE.<keep>` is deleted: the disk used is bounded by
/// `(keep + 1) × maxBytes`.
///
/// Not thread-safe: owned by the engine thread. Lines are buffered and written by ``flush()``
/// (once per drained batch), so a flood of bad input costs one `write` per batch, not per event.
public final class DeadLetterFile {
    public let path: String
    public let maxBytes: Int
    public let keep: Int
    /// Bytes of a payload kept in its line.
    public let payloadLimit: Int
    private var fd: Int32 = -1
    private var size: Int = 0
    private var buffer: [UInt8] = []
    /// Lines written since start (for metrics and tests).
    public private(set) var linesWritten: Int = 0
    /// Write errors since start; a dead-letter problem never stops ingest.
    public private(set) var writeErrors: Int = 0

    /// Opens (appending to) the file, creating it `0600`.
    /// - Throws: ``FileError`` when the file cannot be opened: a usage problem reported at start.
    public init(path: String, maxBytes: Int, keep: Int, payloadLimit: Int = 16 << 10) throws(FileError) {
        self.path = path
        self.maxBytes = maxBytes
        self.keep = max(1, keep)
        self.payloadLimit = min(payloadLimit, max(256, maxBytes / 4))
        buffer.reserveCapacity(64 << 10)
        try openFile()
    }

    deinit {
        flush()
        if fd >= 0 { close(fd) }
    }

    /// Appends one rejection (buffered until ``flush()``).
    /// - Complexity: O(payload bytes kept).
    public func record(reason: String, message: String, origin: String, source: String?,
                       index: Int?, payload: UnsafeRawBufferPointer, at wallMicros: Int64) {
        buffer.append(contentsOf: #"{"at":"#.utf8)
        JSONText.appendString(Clocks.rfc3339(micros: wallMicros), to: &buffer)
        buffer.append(contentsOf: #","reason":"#.utf8)
        JSONText.appendString(reason, to: &buffer)
        buffer.append(contentsOf: #","message":"#.utf8)
        JSONText.appendString(message, to: &buffer)
        buffer.append(contentsOf: #","origin":"#.utf8)
        JSONText.appendString(origin, to: &buffer)
        if let source {
            buffer.append(contentsOf: #","source":"#.utf8)
            JSONText.appendString(source, to: &buffer)
        }
        if let index {
            buffer.append(contentsOf: #","index":"#.utf8)
            JSONText.appendInt(index, to: &buffer)
        }
        buffer.append(contentsOf: #","bytes":"#.utf8)
        JSONText.appendInt(payload.count, to: &buffer)
        let kept = UnsafeRawBufferPointer(rebasing: payload.prefix(payloadLimit))
        if kept.count < payload.count {
            buffer.append(contentsOf: #","truncated":true"#.utf8)
        }
        buffer.append(contentsOf: #","payload":"#.utf8)
        JSONText.appendString(bytes: kept, to: &buffer)
        buffer.append(contentsOf: "}\n".utf8)
        linesWritten += 1
        if buffer.count >= 256 << 10 { flush() }
    }

    /// Writes the buffered lines, rotating first when they would not fit under `maxBytes`.
    /// Lines are never split across two files.
    public func flush() {
        guard !buffer.isEmpty else { return }
        var runStart = 0
        var pos = 0
        while pos < buffer.count {
            let lineEnd = (buffer[pos...].firstIndex(of: 0x0A) ?? (buffer.count - 1)) + 1
            let pending = pos - runStart
            if size + pending > 0 && size + pending + (lineEnd - pos) > maxBytes {
                writeAll(runStart..<pos)
                rotate()
                runStart = pos
            }
            pos = lineEnd
        }
        writeAll(runStart..<pos)
        buffer.removeAll(keepingCapacity: true)
    }

    // MARK: - Files

    private func openFile() throws(FileError) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileError(path: path, operation: "open", errno: errno) }
        var st = stat()
        size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
    }

    private func rotate() {
        guard size > 0 else { return }
        if fd >= 0 { close(fd); fd = -1 }
        _ = unlink("\(path).\(keep)")
        if keep > 1 {
            for n in stride(from: keep - 1, through: 1, by: -1) {
                _ = rename("\(path).\(n)", "\(path).\(n + 1)")
            }
        }
        _ = rename(path, "\(path).1")
        do { try openFile() } catch { writeErrors += 1 }
    }

    private func writeAll(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        guard fd >= 0 else { writeErrors += 1; return }
        buffer.withUnsafeBytes { raw in
            var offset = range.lowerBound
            while offset < range.upperBound {
                let n = write(fd, raw.baseAddress! + offset, range.upperBound - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    writeErrors += 1
                    return
                }
                offset += n
                size += n
            }
        }
    }
}
