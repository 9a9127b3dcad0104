import Foundation
import Testing
@testable import TallyDaemon

// MARK: - Appends written with O_DIRECT

/// The log writes its appends with `O_DIRECT` (``DirectWriter``; those a sync follows at once
/// too, unless `directForSyncedAppends` is off). These tests hold it to a log written through
/// the page cache: the same records at the same offsets, only zeros after them, the same segment
/// splits, and a tail block that survives reopening, appends through the cache in between, rolls
/// and preallocated segments.
@Suite("Write-ahead log: appends written with O_DIRECT")
struct DurabilityDirectIOTests {
    static func options(direct: Bool, segment: Int64 = 1 << 20) -> WriteAheadLog.Options {
        walOptions(segment: segment, readBuffer: 4096, directIO: direct)
    }

    /// Entries of many sizes (so record ends fall anywhere in a block), with a few larger than
    /// the direct writer's staging buffer (several full-buffer writes in one call).
    static func entry(_ i: Int) -> LogEntry {
        if i % 37 == 5 { return .frame(receivedAt: Int64(i), payload: [UInt8](repeating: UInt8(truncatingIfNeeded: i | 1), count: 300_000 + i)) }
        return i % 2 == 0 ? .frame(receivedAt: Int64(i), payload: walSamplePayload(i) + [UInt8](repeating: 7, count: i % 700))
                          : .batch(producer: Array("p\(i % 3)".utf8), sequence: UInt64(i), payload: walSamplePayload(i))
    }

    /// Whether `directory`'s file system takes `O_DIRECT` (tmpfs before Linux 6.6 does not).
    static func directIOAvailable(_ directory: String) throws -> Bool {
        let probe = directory + "/probe"
        try walWriteFile(probe, [1])
        defer { try? FileManager.default.removeItem(atPath: probe) }
        guard let fd = try FileIO.openDirect(probe) else { return false }
        try FileIO.close(fd, path: probe)
        return true
    }

    /// Every segment of the direct log holds the buffered log's bytes: closed segments exactly,
    /// the newest one followed by zeros (a direct write pads to a 4 KiB boundary).
    static func expectSameRecords(direct: WALTempDirectory, buffered: WALTempDirectory, usesDirectIO: Bool) throws {
        let names = try walSegmentFiles(buffered.path)
        #expect(try walSegmentFiles(direct.path) == names)
        for (k, name) in names.enumerated() {
            let d = try walReadFile(direct.file(name)), b = try walReadFile(buffered.file(name))
            if k < names.count - 1 {
                #expect(d == b, "closed segment \(name) is exactly its records")
            } else {
                #expect(d.count >= b.count && Array(d.prefix(b.count)) == b, "the newest segment starts with the same records")
                #expect(d.dropFirst(b.count).allSatisfy { $0 == 0 }, "and only zeros follow them")
                if usesDirectIO { #expect(d.count % DirectWriter.block == 0, "a direct write ends on a block boundary") }
            }
        }
    }

    /// Syncs both logs, then holds the direct one to the buffered one: the same records
    /// (``expectSameRecords(direct:buffered:usesDirectIO:)``) and a replay of `all`.
    static func expectSameLog(_ direct: WriteAheadLog, in d: WALTempDirectory, as buffered: WriteAheadLog,
                              in b: WALTempDirectory, replaying all: [LogEntry]) throws {
        try direct.sync()
        try buffered.sync()
        try expectSameRecords(direct: d, buffered: b, usesDirectIO: direct.usesDirectIO)
        #expect(try walReplayAll(direct).map(\.1) == all)
    }

    /// A direct log (with `directForSyncedAppends` when given, else the default) and a page-cache
    /// log with the same segment size, each in a temporary directory of its own (the caller
    /// removes both).
    static func pair(segment: Int64, directForSyncedAppends: Bool? = nil) throws -> (d: WALTempDirectory, b: WALTempDirectory, direct: WriteAheadLog, buffered: WriteAheadLog) {
        let d = WALTempDirectory("direct"), b = WALTempDirectory("buffered")
        var o = options(direct: true, segment: segment)
        if let directForSyncedAppends { o.directForSyncedAppends = directForSyncedAppends }
        do {
            return (d, b, try WriteAheadLog(directory: d.path, options: o),
                    try WriteAheadLog(directory: b.path, options: options(direct: false, segment: segment)))
        } catch {
            d.remove()
            b.remove()
            throw error
        }
    }

    @Test("the log uses O_DIRECT exactly when the file system takes it, and never when it is turned off")
    func usedWhereAvailable() throws {
        let dir = WALTempDirectory("direct")
        defer { dir.remove() }
        let available = try Self.directIOAvailable(dir.path)
        #expect(try WriteAheadLog(directory: dir.file("on"), options: Self.options(direct: true)).usesDirectIO == available)
        #expect(try WriteAheadLog(directory: dir.file("off"), options: Self.options(direct: false)).usesDirectIO == false)
    }

    @Test("direct appends leave the records a page-cache log leaves, followed by zeros to the block boundary, and replay the same")
    func sameRecordsAsThePageCache() throws {
        let (d, b, direct, buffered) = try Self.pair(segment: 256 << 10)
        defer { d.remove(); b.remove() }
        var all: [LogEntry] = []
        var i = 0
        for size in [1, 3, 1, 17, 2, 40, 1, 9] {
            let call = (i..<(i + size)).map(Self.entry)
            i += size
            #expect(try direct.append(call) == buffered.append(call))
            all += call
        }
        try Self.expectSameLog(direct, in: d, as: buffered, in: b, replaying: all)
        #expect(direct.segmentCount > 2, "large records rolled the 256 KiB segments")
    }

    @Test("with directForSyncedAppends off, appends a sync follows go through the page cache, and the next direct write keeps their bytes")
    func mixedWithAppendsASyncFollows() throws {
        let (d, b, direct, buffered) = try Self.pair(segment: 64 << 10, directForSyncedAppends: false)
        defer { d.remove(); b.remove() }
        var all: [LogEntry] = []
        var origin: [String]?? = .none
        var scratch = LogWriter.Scratch()
        for (k, (n, seed)) in [(3, 0), (7, 3), (1, 10), (25, 11), (2, 36), (60, 38), (1, 98)].enumerated() {
            var (batch, entries) = DurabilityInPlaceTests.drain(n, seed: seed)
            if origin != .none { entries.removeFirst() }   // the origin is logged once
            let synced = k % 2 == 1   // an acknowledged drain: through the page cache, then fdatasync
            #expect(LogWriter.append(&batch, to: direct, receivedAt: DurabilityInPlaceTests.receivedAt, origin: &origin,
                                     scratch: &scratch, syncFollows: synced) == nil)
            _ = try buffered.append(entries)
            if synced { try direct.sync() }
            all += entries
        }
        try Self.expectSameLog(direct, in: d, as: buffered, in: b, replaying: all)
    }

    @Test("appends a sync follows are written with O_DIRECT too by default: each ends on a block boundary, and the log replays as a page-cache one",
          .enabled(if: availableInTemp, "needs a file system with O_DIRECT for temporary directories"))
    func appendsASyncFollowsGoDirect() throws {
        let (d, b, direct, buffered) = try Self.pair(segment: 64 << 10)
        defer { d.remove(); b.remove() }
        #expect(direct.options.directForSyncedAppends, "the default")
        var all: [LogEntry] = []
        var origin: [String]?? = .none
        var scratch = LogWriter.Scratch()
        for (n, seed) in [(3, 0), (7, 3), (1, 10), (25, 11), (2, 36)] {
            var (batch, entries) = DurabilityInPlaceTests.drain(n, seed: seed)
            if origin != .none { entries.removeFirst() }   // the origin is logged once
            #expect(LogWriter.append(&batch, to: direct, receivedAt: DurabilityInPlaceTests.receivedAt, origin: &origin,
                                     scratch: &scratch, syncFollows: true) == nil)
            try direct.sync()
            // Through the page cache the file would end right after the records; a direct write
            // pads its last block with zeros.
            let newest = try #require(try FileManager.default.contentsOfDirectory(atPath: d.path).filter { $0.hasSuffix(".log") }.max())
            let size = try #require(try FileManager.default.attributesOfItem(atPath: d.file(newest))[.size] as? Int)
            #expect(size % DirectWriter.block == 0, "a synced append of \(n) frames left \(size) bytes: not written directly")
            _ = try buffered.append(entries)
            all += entries
        }
        try Self.expectSameLog(direct, in: d, as: buffered, in: b, replaying: all)
    }

    /// Whether the temporary directories' file system takes `O_DIRECT` (for tests that need it).
    static let availableInTemp: Bool = {
        let dir = WALTempDirectory("probe")
        defer { dir.remove() }
        return (try? directIOAvailable(dir.path)) ?? false
    }()

    @Test("a file system that refuses direct writes (EINVAL) turns them off for the log: that append and the next go through the page cache, nothing lost",
          .enabled(if: availableInTemp, "the temporary directory's file system has no O_DIRECT"))
    func refusedDirectWritesFallBack() throws {
        let (d, b, direct, buffered) = try Self.pair(segment: 64 << 10)
        defer { d.remove(); b.remove() }
        #expect(direct.usesDirectIO)
        var all: [LogEntry] = []
        for k in 0..<6 {
            if k == 2 { direct.direct?.refusesWrites = true }
            let call = (0..<(k + 2)).map { Self.entry(k * 50 + $0 * 2) }
            #expect(try direct.append(call) == buffered.append(call))
            all += call
            #expect(direct.usesDirectIO == (k < 2))
        }
        try Self.expectSameLog(direct, in: d, as: buffered, in: b, replaying: all)
        let reopened = try WriteAheadLog(directory: d.path, options: Self.options(direct: false))
        #expect(reopened.tailRepair == nil)
        #expect(try walReplayAll(reopened).map(\.1) == all)
    }

    @Test("a log reopened after direct writes (no clean close) reads its tail block back and appends after it intact")
    func reopenedAfterDirectWrites() throws {
        let d = WALTempDirectory("direct"), b = WALTempDirectory("buffered")
        defer { d.remove(); b.remove() }
        let buffered = try WriteAheadLog(directory: b.path, options: Self.options(direct: false))
        var all: [LogEntry] = []
        for round in 0..<4 {
            // A new log object each round, the previous one dropped without close (as after kill -9).
            let direct = try WriteAheadLog(directory: d.path, options: Self.options(direct: true))
            #expect(direct.tailRepair == nil, "zeros after the records are the end, not damage")
            #expect(direct.lastLSN == LSN(all.count))
            let call = (0..<(round * 3 + 2)).map { Self.entry(round * 100 + $0 * 2) }
            #expect(try direct.append(call) == buffered.append(call))
            all += call
        }
        try buffered.sync()
        let last = try WriteAheadLog(directory: d.path, options: Self.options(direct: true))
        try Self.expectSameRecords(direct: d, buffered: b, usesDirectIO: last.usesDirectIO)
        #expect(try walReplayAll(last).map(\.1) == all)
    }

    @Test("direct writes into preallocated segments keep them whole; reopening finds no damage")
    func intoPreallocatedSegments() throws {
        let d = WALTempDirectory("direct"), b = WALTempDirectory("buffered")
        defer { d.remove(); b.remove() }
        var o = Self.options(direct: true, segment: 16 << 10)
        o.preallocateAfterSyncs = 0
        var ob = o
        ob.directIO = false
        let direct = try WriteAheadLog(directory: d.path, options: o)
        let buffered = try WriteAheadLog(directory: b.path, options: ob)
        var all: [LogEntry] = []
        for i in 0..<200 where i % 37 != 5 {
            let e = Self.entry(i)
            #expect(try direct.append([e]) == buffered.append([e]))
            all.append(e)
        }
        try Self.expectSameLog(direct, in: d, as: buffered, in: b, replaying: all)
        #expect(direct.segmentCount > 2)
        #expect(direct.activeFileSize == 16 << 10, "the newest segment keeps its preallocated size")
        let reopened = try WriteAheadLog(directory: d.path, options: o)
        #expect(reopened.tailRepair == nil)
        #expect(try walReplayAll(reopened).map(\.1) == all)
    }
}
