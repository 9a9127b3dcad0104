import Foundation
import Testing
@testable import TallyDaemon

// MARK: - Temp directories and file surgery for the durability tests

/// A fresh directory under the system temp dir, removed by `remove()`.
struct WALTempDirectory {
    let path: String

    init(_ label: String = "wal") {
        var template = Array((NSTemporaryDirectory() + "tally-\(label)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: errno \(errno)")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

func walReadFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func walWriteFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func walFileMode(_ path: String) -> mode_t {
    var st = stat()
    precondition(stat(path, &st) == 0, "stat \(path) failed")
    return st.st_mode & 0o777
}

func walSegmentFiles(_ dir: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("wal-") }.sorted()
}

/// Small payloads with varied sizes so records straddle read-buffer and segment boundaries.
func walSamplePayload(_ i: Int) -> [UInt8] {
    let n = (i * 37) % 300 + 1
    return (0..<n).map { UInt8(truncatingIfNeeded: $0 &+ i) }
}

/// Log options for the tests: `segment`-byte segments, a `readBuffer`-byte replay buffer, and
/// direct writes only when `directIO` (tests of the page-cache layout turn them off).
func walOptions(segment: Int64, readBuffer: Int = 512, directIO: Bool = false) -> WriteAheadLog.Options {
    var o = WriteAheadLog.Options()
    o.directIO = directIO
    o.maxSegmentSize = segment
    o.readBufferSize = readBuffer
    return o
}

/// Everything a replay delivered, decoded into owned values.
func walReplayAll(_ log: WriteAheadLog, after lsn: LSN = 0) throws -> [(LSN, LogEntry)] {
    var out: [(LSN, LogEntry)] = []
    try log.replay(after: lsn) { record in
        out.append((record.lsn, try walEntry(of: record)))
    }
    return out
}

func walEntry(of record: LogRecord) throws -> LogEntry {
    switch try record.decoded() {
    case .frame(let t, let payload): return .frame(receivedAt: t, payload: Array(payload))
    case .batch(let p, let s, let payload): return .batch(producer: Array(p), sequence: s, payload: Array(payload))
    case .meta(let body): return .meta(Array(body))
    case .unknown(let kind, _): throw DurabilityError.invalidArgument("unexpected kind \(kind)")
    }
}
