import Foundation
import Testing
@testable import TallyDaemon

// MARK: - Preallocated (zero-filled) segments

@Suite("Write-ahead log: preallocated segments")
struct DurabilityPreallocationTests {
    static let segment: Int64 = 4096

    /// Small segments; every segment after one that saw `after` syncs is preallocated. Written
    /// through the page cache, so a file's size is exactly its records (or its preallocation);
    /// `DurabilityDirectIOTests` covers direct writes into preallocated segments.
    static func options(after: Int = 1) -> WriteAheadLog.Options {
        var o = walOptions(segment: segment)
        o.preallocateAfterSyncs = after
        return o
    }

    static func entry(_ i: Int) -> LogEntry {
        i % 2 == 0 ? .frame(receivedAt: Int64(i), payload: walSamplePayload(i))
                   : .batch(producer: Array("p\(i % 3)".utf8), sequence: UInt64(i), payload: walSamplePayload(i))
    }

    /// Appends entries one call + one sync each (an acknowledged stream) until the log has
    /// rolled at least `rolls` times; returns what was appended.
    static func fill(_ log: WriteAheadLog, rolls: Int, from start: Int = 0) throws -> [LogEntry] {
        var out: [LogEntry] = []
        var i = start
        let target = log.segmentCount + rolls
        while log.segmentCount < target || out.count < 3 {
            let e = entry(i)
            try log.append([e])
            try log.sync()
            out.append(e)
            i += 1
        }
        return out
    }

    static func size(_ path: String) throws -> Int64 {
        Int64(try walReadFile(path).count)
    }

    @Test("after a sync-heavy segment the next one is zero-filled to full size; a roll cuts the zeros off the older one")
    func preallocatedAfterSyncs() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path, options: Self.options())
        let appended = try Self.fill(log, rolls: 3)
        let files = try walSegmentFiles(dir.path)
        #expect(files.count == 4)
        // The first segment was created empty; the newest is preallocated.
        #expect(try Self.size(dir.file(files.last!)) == Self.segment)
        #expect(log.activeFileSize == Self.segment && log.activeSize < Self.segment)
        // Older ones hold exactly their records (replay reads them to their end).
        var records = 0
        for name in files.dropLast() {
            let bytes = try walReadFile(dir.file(name))
            #expect(bytes.count <= Self.segment)
            #expect(bytes.last != 0 || bytes.isEmpty)
            records += 1
        }
        #expect(records == 3)
        #expect(try walReplayAll(log).map(\.1) == appended)
        // File sizes overcount by the zero tail; recordBytes does not.
        let fileBytes = try files.reduce(Int64(0)) { $0 + (try Self.size(dir.file($1))) }
        #expect(try WriteAheadLog.recordBytes(directory: dir.path) == fileBytes - (Self.segment - log.activeSize))
    }

    @Test("a zero-filled tail is the end of the log, not damage: reopening keeps it, and appends overwrite it")
    func zeroTailIsTheEnd() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        var appended: [LogEntry]
        do {
            // Dropped without close(): what kill -9 leaves (records in the page cache, zeros after them).
            let log = try WriteAheadLog(directory: dir.path, options: Self.options())
            appended = try Self.fill(log, rolls: 2)
        }
        let newest = dir.file(try walSegmentFiles(dir.path).last!)
        #expect(try Self.size(newest) == Self.segment)
        let reopened = try WriteAheadLog(directory: dir.path, options: Self.options())
        #expect(reopened.tailRepair == nil)
        #expect(reopened.lastLSN == LSN(appended.count))
        #expect(reopened.activeFileSize == Self.segment)
        #expect(try Self.size(newest) == Self.segment, "opening keeps the preallocation")
        #expect(try walReplayAll(reopened).map(\.1) == appended)
        let more = (1000..<1003).map(Self.entry)
        try reopened.append(more)
        try reopened.sync()
        appended += more
        #expect(try walReplayAll(reopened).map(\.1) == appended)
        let again = try WriteAheadLog(directory: dir.path, options: Self.options())
        #expect(again.tailRepair == nil)
        #expect(try walReplayAll(again).map(\.1) == appended)
    }

    @Test("a segment preallocated but never written (a crash right after the roll) opens as empty, and appends continue")
    func emptyPreallocatedSegment() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path, options: Self.options())
        var appended = try Self.fill(log, rolls: 1)
        // What a roll leaves before the first write into the new segment: the old one cut to
        // its records (and synced), the new one all zeros.
        let old = dir.file(try walSegmentFiles(dir.path).last!)
        #expect(truncate(old, off_t(log.activeSize)) == 0)
        let name = WriteAheadLog.segmentName(log.nextLSN)
        try walWriteFile(dir.file(name), [UInt8](repeating: 0, count: Int(Self.segment)))
        let reopened = try WriteAheadLog(directory: dir.path, options: Self.options())
        #expect(reopened.tailRepair == nil)
        #expect(reopened.segmentCount == log.segmentCount + 1)
        #expect(reopened.lastLSN == LSN(appended.count))
        let e = Self.entry(77)
        #expect(try reopened.append([e]) == LSN(appended.count + 1)...LSN(appended.count + 1))
        appended.append(e)
        #expect(try walReplayAll(reopened).map(\.1) == appended)
    }

    @Test("a record torn inside the zero-filled tail is cut back and reported at every tear offset")
    func tornTailInsidePreallocation() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let appended: [LogEntry]
        let lastStart: Int
        let path: String
        do {
            let log = try WriteAheadLog(directory: dir.path, options: Self.options())
            var entries = try Self.fill(log, rolls: 1)
            lastStart = Int(log.activeSize)
            let last = LogEntry.frame(receivedAt: 9, payload: [UInt8](repeating: 0xA5, count: 120))
            try log.append([last])
            try log.sync()
            path = dir.file(try walSegmentFiles(dir.path).last!)
            entries.append(last)
            appended = entries
        }
        let intact = try walReadFile(path)
        #expect(intact.count == Int(Self.segment))
        let recordEnd = lastStart + 9 + 8 + 120
        // Tear: only the first k bytes of the last record reached the disk, zeros after them.
        for k in stride(from: 1, to: recordEnd - lastStart, by: 7) {
            var torn = intact
            for i in (lastStart + k)..<recordEnd { torn[i] = 0 }
            try walWriteFile(path, torn)
            let log = try WriteAheadLog(directory: dir.path, options: Self.options())
            let repair = try #require(log.tailRepair, "tear at \(k)")
            #expect(repair.offset == Int64(lastStart))
            #expect(log.lastLSN == LSN(appended.count - 1))
            #expect(try walReplayAll(log).map(\.1) == Array(appended.dropLast()))
            #expect(try Self.size(path) == Int64(lastStart), "the damaged tail is cut, preallocation included")
        }
    }

    @Test("bytes after a run of zeros are damage, not the end: the tail is cut and reported")
    func garbageAfterZerosIsDamage() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let appended: [LogEntry]
        let end: Int64
        do {
            let log = try WriteAheadLog(directory: dir.path, options: Self.options())
            appended = try Self.fill(log, rolls: 1)
            end = log.activeSize
        }
        let path = dir.file(try walSegmentFiles(dir.path).last!)
        var bytes = try walReadFile(path)
        bytes[bytes.count - 3] = 0x01
        try walWriteFile(path, bytes)
        let log = try WriteAheadLog(directory: dir.path, options: Self.options())
        let repair = try #require(log.tailRepair)
        #expect(repair.offset == end)
        #expect(repair.bytesTruncated == Self.segment - end)
        #expect(try walReplayAll(log).map(\.1) == appended)
    }

    @Test("a segment that saw fewer syncs than the threshold starts its successor empty (a fast fire-and-forget stream)")
    func notPreallocatedBelowThreshold() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path, options: Self.options(after: 1_000))
        let appended = try Self.fill(log, rolls: 2)
        #expect(log.activeFileSize == log.activeSize)
        for name in try walSegmentFiles(dir.path) {
            let bytes = try walReadFile(dir.file(name))
            #expect(bytes.count <= Self.segment && bytes.last != 0)
        }
        #expect(try walReplayAll(log).map(\.1) == appended)
    }

    @Test("a failed append in a preallocated segment rolls back to the records before it and the log appends again")
    func rollbackInPreallocatedSegment() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        var o = Self.options()
        o.maxRecordSize = 400
        let log = try WriteAheadLog(directory: dir.path, options: o)
        var appended = try Self.fill(log, rolls: 1)
        #expect(log.activeFileSize == Self.segment)
        #expect(throws: DurabilityError.self) {
            try log.append([Self.entry(500), .meta([UInt8](repeating: 1, count: 500))])
        }
        #expect(log.lastLSN == LSN(appended.count))
        let e = Self.entry(501)
        try log.append([e])
        try log.sync()
        appended.append(e)
        #expect(try walReplayAll(log).map(\.1) == appended)
        let reopened = try WriteAheadLog(directory: dir.path, options: o)
        #expect(reopened.tailRepair == nil)
        #expect(try walReplayAll(reopened).map(\.1) == appended)
    }

    @Test("preallocation that does not fit on the disk is given up (the segment grows as it appends), not an error",
          .enabled(if: WALSmallTmpfs.available, "needs mount(2) of a tmpfs (run as root or with CAP_SYS_ADMIN)"))
    func preallocationOnAFullDisk() throws {
        let fs = try #require(WALSmallTmpfs(size: "160k"))
        defer { fs.unmount() }
        let stateDir = fs.directory.file("state")
        var o = Self.options()
        o.maxSegmentSize = 96 * 1024
        let log = try WriteAheadLog(directory: stateDir, options: o)
        var appended: [LogEntry] = []
        var i = 0
        // Fill the first segment, roll: 96 KiB of zeros do not fit next to it.
        while log.segmentCount < 2 {
            let e = Self.entry(i)
            try log.append([e])
            try log.sync()
            appended.append(e)
            i += 1
        }
        #expect(log.activeFileSize == log.activeSize, "preallocation given up")
        for _ in 0..<20 {
            let e = Self.entry(i)
            try log.append([e])
            try log.sync()
            appended.append(e)
            i += 1
        }
        #expect(try walReplayAll(log).map(\.1) == appended)
        let reopened = try WriteAheadLog(directory: stateDir, options: o)
        #expect(reopened.tailRepair == nil)
        #expect(try walReplayAll(reopened).map(\.1) == appended)
    }
}
