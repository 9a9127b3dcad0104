import Foundation
import Testing
@testable import TallyDaemon
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Writeback started as the log is appended

@Suite("Write-ahead log: writeback started as it is appended")
struct DurabilityWritebackTests {
    /// Through the page cache: writeback is what the log starts for bytes it wrote there
    /// (direct writes leave nothing to write back).
    static func options(every bytes: Int64, segment: Int64 = 16 << 10) -> WriteAheadLog.Options {
        var o = walOptions(segment: segment)
        o.writebackAfterBytes = bytes
        return o
    }

    static func entry(_ i: Int) -> LogEntry { .frame(receivedAt: Int64(i), payload: walSamplePayload(i)) }

    @Test("the kernel call is really made: 0 on a log file, EBADF on a closed descriptor")
    func theCallReachesTheKernel() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let path = dir.file("f")
        try walWriteFile(path, Array(repeating: 7, count: 8192))
        let fd = open(path, O_RDWR)
        #expect(fd >= 0)
        #expect(FileIO.startWriteback(fd, offset: 0, length: 8192) == 0)
        close(fd)
        #expect(FileIO.startWriteback(fd, offset: 0, length: 8192) == EBADF)
    }

    @Test("writeback is started every time the threshold's worth of bytes is appended, and restarts at each segment")
    func startedEveryThreshold() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path, options: Self.options(every: 2048))
        var appended: [LogEntry] = []
        var starts = 0
        var segments = log.segmentCount
        for i in 0..<400 {
            let before = log.writebackFrom
            let e = Self.entry(i)
            try log.append([e])
            appended.append(e)
            // Never more than one threshold (plus the record just written) left unstarted.
            #expect(log.activeSize - log.writebackFrom < 2048)
            #expect(log.writebackFrom <= log.activeSize)
            if log.segmentCount != segments {
                segments = log.segmentCount
                #expect(log.writebackFrom == 0 || log.writebackFrom == log.activeSize)
            } else if log.writebackFrom != before {
                starts += 1
                #expect(log.writebackFrom == log.activeSize)
            }
        }
        #expect(log.segmentCount >= 3)
        #expect(starts >= 10)
        // Only a hint: what is replayed is exactly what was appended.
        #expect(try walReplayAll(log).map(\.1) == appended)
    }

    @Test("with the threshold at Int64.max writeback is never started by the log")
    func neverWhenDisabled() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path, options: Self.options(every: .max, segment: 1 << 20))
        for i in 0..<200 { try log.append([Self.entry(i)]) }
        #expect(log.activeSize > 4096)
        #expect(log.writebackFrom == 0)
    }

    @Test("an append told that an fdatasync follows (acknowledged batches) starts no writeback; the next one catches up")
    func notWhenASyncFollows() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path, options: Self.options(every: 1024, segment: 1 << 20))
        // 40 sealed frame records side by side in one buffer: [header][receivedAt][payload].
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for i in 0..<40 {
            let start = bytes.count
            bytes += [UInt8](repeating: 0, count: RecordLayout.headerSize + 8) + walSamplePayload(i)
            ranges.append(start..<bytes.count)
        }
        try bytes.withUnsafeMutableBytes { all in
            for r in ranges { RecordLayout.seal(UnsafeMutableRawBufferPointer(rebasing: all[r]), kind: .frame) }
            let records = ranges.map { UnsafeRawBufferPointer(rebasing: all[$0]) }
            try records[0..<20].withUnsafeBufferPointer { _ = try log.append(records: $0, syncFollows: true) }
            #expect(log.activeSize > 1024)
            #expect(log.writebackFrom == 0)
            try records[20..<40].withUnsafeBufferPointer { _ = try log.append(records: $0, syncFollows: false) }
            #expect(log.writebackFrom == log.activeSize)
        }
        #expect(try walReplayAll(log).count == 40)
    }

    @Test("reopening a log starts counting from the end of its records")
    func reopenStartsAtTheEnd() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        do {
            let log = try WriteAheadLog(directory: dir.path, options: Self.options(every: 1 << 30, segment: 1 << 20))
            for i in 0..<50 { try log.append([Self.entry(i)]) }
            try log.sync()
        }
        let log = try WriteAheadLog(directory: dir.path, options: Self.options(every: 1 << 30, segment: 1 << 20))
        #expect(log.activeSize > 0)
        #expect(log.writebackFrom == log.activeSize)
    }
}
