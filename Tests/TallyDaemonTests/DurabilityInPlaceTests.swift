import Foundation
import Testing
@testable import TallyDaemon
import TallyEngine

// MARK: - Drains logged in place

/// The daemon's drain buffer is laid out as log records (`FrameBatch`) and logged without a copy
/// (`LogWriter.append` → `WriteAheadLog.append(records:)`). These tests hold that path to the
/// copying encoder (`AppendBatch`): same bytes on disk, same segment splits, same rollback.
@Suite("Write-ahead log: drains logged in place")
struct DurabilityInPlaceTests {
    static let receivedAt: Int64 = 1_764_000_000_123_456

    /// A drain of fire-and-forget frames and acknowledged batches, as the engine loop builds it,
    /// with the entries the copying encoder would be given for it (the origin record first).
    /// - Parameter origins: per frame, the CURVE restriction (nil: the socket's default origin).
    static func drain(_ count: Int, seed: Int = 0, room: Int = FrameBatch.standardRoom,
                      origins: (Int) -> [String]? = { _ in nil }) -> (FrameBatch, [LogEntry]) {
        var batch = FrameBatch(room: room)
        var entries: [LogEntry] = []
        var origin: [String]?? = .none
        for i in 0..<count {
            let payload = walSamplePayload(i + seed)
            let wanted = origins(i)
            if origin == .none || origin! != wanted {
                entries.append(.meta(OriginRecord.encode(wanted)))
                origin = .some(wanted)
            }
            if i % 3 == 1 {
                let producer = Array("producer-\(i % 4)".utf8)
                payload.withUnsafeBytes {
                    batch.appendBatch($0, producer: producer, sequence: UInt64(1_000 + i), ack: Int32(batch.pendingAcks.count))
                }
                batch.pendingAcks.append(PendingAck(envelope: [], sequenceText: Array("\(1_000 + i)".utf8), producer: producer,
                                                    sequence: UInt64(1_000 + i), frame: batch.frames.count - 1, cachedReply: nil))
                batch.needsSync = true
                entries.append(.batch(producer: producer, sequence: UInt64(1_000 + i), payload: payload))
            } else {
                payload.withUnsafeBytes { batch.appendFrame($0, origin: 0) }
                entries.append(.frame(receivedAt: receivedAt, payload: payload))
            }
            if let wanted { batch.restrictLast(to: wanted) }
        }
        return (batch, entries)
    }

    /// Every segment file of `dir`, by name, with its bytes.
    static func segments(_ dir: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for name in try walSegmentFiles(dir) { out[name] = try walReadFile(dir + "/" + name) }
        return out
    }

    static func logInPlace(_ batch: inout FrameBatch, to log: WriteAheadLog, origin: inout [String]??) -> DurabilityError? {
        var scratch = LogWriter.Scratch()
        return LogWriter.append(&batch, to: log, receivedAt: receivedAt, origin: &origin, scratch: &scratch)
    }

    @Test("a drain logged in place writes byte for byte what the copying encoder writes, origin records and receive times included")
    func sameBytesAsTheCopyingEncoder() throws {
        let inPlace = WALTempDirectory("inplace"), copied = WALTempDirectory("copied")
        defer { inPlace.remove(); copied.remove() }
        // Frames from CURVE producers with different allowed sources: origin records between them.
        let (drain, entries) = Self.drain(40) { i in i < 10 ? nil : (i / 7 % 2 == 0 ? ["gov.vn/a"] : ["gov.vn/b", "gov.vn/c"]) }
        var batch = drain
        var origin: [String]?? = .none
        let a = try WriteAheadLog(directory: inPlace.path)
        #expect(Self.logInPlace(&batch, to: a, origin: &origin) == nil)
        #expect(origin == .some(["gov.vn/b", "gov.vn/c"]))
        try a.sync()
        let b = try WriteAheadLog(directory: copied.path)
        try b.append(entries)
        try b.sync()
        #expect(a.lastLSN == LSN(entries.count))
        #expect(try Self.segments(inPlace.path) == Self.segments(copied.path))
        #expect(try walReplayAll(a).map(\.1) == entries)

        // A second drain with the origin unchanged adds no origin record.
        let (secondDrain, secondEntries) = Self.drain(5, seed: 100) { _ in ["gov.vn/b", "gov.vn/c"] }
        var second = secondDrain
        origin = .some(["gov.vn/b", "gov.vn/c"])
        #expect(Self.logInPlace(&second, to: a, origin: &origin) == nil)
        try b.append(Array(secondEntries.dropFirst()))
        #expect(try Self.segments(inPlace.path) == Self.segments(copied.path))
    }

    @Test("a batch that outgrows its room several times keeps every record, byte for byte as the copying encoder")
    func growingBatchKeepsEveryRecord() throws {
        let inPlace = WALTempDirectory("grown"), copied = WALTempDirectory("grown-copied")
        defer { inPlace.remove(); copied.remove() }
        let (drain, entries) = Self.drain(3_000, seed: 7, room: 64)
        var batch = drain
        #expect(batch.buffer.count >= 256 << 10, "the room grew from 64 bytes to 64, 128, 256 KiB and more")
        var origin: [String]?? = .none
        let a = try WriteAheadLog(directory: inPlace.path)
        #expect(Self.logInPlace(&batch, to: a, origin: &origin) == nil)
        try a.sync()
        let b = try WriteAheadLog(directory: copied.path)
        try b.append(entries)
        try b.sync()
        #expect(try Self.segments(inPlace.path) == Self.segments(copied.path))
        #expect(try walReplayAll(a).map(\.1) == entries)
    }

    @Test("a drain larger than one sealed write (256 KiB) is stamped and written piece by piece, byte for byte as the copying encoder")
    func sealedInPieces() throws {
        let inPlace = WALTempDirectory("inplace"), copied = WALTempDirectory("copied")
        defer { inPlace.remove(); copied.remove() }
        let (drain, entries) = Self.drain(4_000)
        var batch = drain
        #expect(batch.byteCount > 2 * WriteAheadLog.sealedWriteBytes)
        var origin: [String]?? = .none
        let a = try WriteAheadLog(directory: inPlace.path)
        #expect(Self.logInPlace(&batch, to: a, origin: &origin) == nil)
        let b = try WriteAheadLog(directory: copied.path)
        try b.append(entries)
        #expect(try Self.segments(inPlace.path) == Self.segments(copied.path))
        #expect(try walReplayAll(a).map(\.1) == entries)
    }

    @Test("each record's stored CRC-32C covers its kind byte and body, and the engine's payload slices exclude the header")
    func checksumsAndPayloadSlices() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let (drain, entries) = Self.drain(12)
        var batch = drain
        let payloads = entries.compactMap { e -> [UInt8]? in
            switch e {
            case .frame(_, let p), .batch(_, _, let p): p
            case .meta: nil
            }
        }
        #expect(batch.frames.map { Array(batch.buffer[$0.offset..<($0.offset + $0.count)]) } == payloads)
        var origin: [String]?? = .some(nil)
        let log = try WriteAheadLog(directory: dir.path)
        #expect(Self.logInPlace(&batch, to: log, origin: &origin) == nil)
        // Still the payloads after the header was stamped (what the engine applies next).
        #expect(batch.frames.map { Array(batch.buffer[$0.offset..<($0.offset + $0.count)]) } == payloads)
        for f in batch.frames {
            let record = Array(batch.buffer[f.record])
            #expect(Int(ByteCoding.loadUInt32(record[...], at: 0)) == record.count - 9)
            #expect(ByteCoding.loadUInt32(record[...], at: 4) == CRC32C.checksum(Array(record[8...])))
            #expect(record[8] == (f.ack >= 0 ? RecordKind.batch.rawValue : RecordKind.frame.rawValue))
        }
        try log.sync()
        #expect(try walReplayAll(log).map(\.1) == Array(entries.dropFirst()))
    }

    @Test("a drain larger than a segment is split at record boundaries into the same segments as the copying encoder")
    func splitAcrossSegments() throws {
        let inPlace = WALTempDirectory("inplace"), copied = WALTempDirectory("copied")
        defer { inPlace.remove(); copied.remove() }
        var options = WriteAheadLog.Options()
        options.maxSegmentSize = 1500
        options.readBufferSize = 256
        let a = try WriteAheadLog(directory: inPlace.path, options: options)
        let b = try WriteAheadLog(directory: copied.path, options: options)
        var all: [LogEntry] = []
        var origin: [String]?? = .none
        for (n, seed) in [(3, 0), (60, 3), (1, 63), (25, 64)] {
            var (batch, entries) = Self.drain(n, seed: seed)
            if origin != .none { entries.removeFirst() }
            let range = try #require(try b.append(entries))
            #expect(Self.logInPlace(&batch, to: a, origin: &origin) == nil)
            #expect(a.lastLSN == range.upperBound)
            all += entries
        }
        try a.sync()
        try b.sync()
        let files = try Self.segments(inPlace.path)
        #expect(files.count > 10)
        // Closed segments are exactly their records; the newest may end in a direct write's zeros.
        let newest = try #require(files.keys.max())
        #expect(files.filter { $0.key != newest }.values.allSatisfy { $0.count <= 1500 && $0.last != 0 })
        #expect(a.activeSize <= 1500)
        #expect(try files == Self.segments(copied.path))
        #expect(try walReplayAll(a).map(\.1) == all)
        let reopened = try WriteAheadLog(directory: inPlace.path, options: options)
        #expect(reopened.tailRepair == nil)
        #expect(try walReplayAll(reopened).map(\.1) == all)
    }

    @Test("records that are not adjacent in memory go out in several pwritev calls (over 1,024 pieces), in order")
    func manyPieces() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let count = 2_500
        let payloads = (0..<count).map(walSamplePayload)
        // Each record followed by a gap byte, so no two records merge into one piece.
        var memory: [UInt8] = []
        var ranges: [Range<Int>] = []
        for p in payloads {
            let start = memory.count
            memory += [UInt8](repeating: 0, count: 17) + p
            ranges.append(start..<memory.count)
            memory.append(0xEE)
        }
        memory.withUnsafeMutableBytes { m in
            for r in ranges {
                let record = UnsafeMutableRawBufferPointer(rebasing: m[r])
                record.storeBytes(of: UInt64(7).littleEndian, toByteOffset: 9, as: UInt64.self)
                RecordLayout.seal(record, kind: .frame)
            }
        }
        let log = try WriteAheadLog(directory: dir.path)
        let lsns = try memory.withUnsafeBytes { m in
            try ranges.map { UnsafeRawBufferPointer(rebasing: m[$0]) }.withUnsafeBufferPointer { try log.append(records: $0) }
        }
        #expect(lsns == 1...LSN(count))
        try log.sync()
        #expect(try walReplayAll(log).map(\.1) == payloads.map { .frame(receivedAt: 7, payload: $0) })
    }

    @Test("a drain with a record over the limit is refused whole: nothing appended, the origin forgotten, the log still usable")
    func oversizedRecordRollsBackTheDrain() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        var options = WriteAheadLog.Options()
        options.maxRecordSize = 200
        options.maxSegmentSize = 2048
        let log = try WriteAheadLog(directory: dir.path, options: options)
        var origin: [String]?? = .none
        let (firstDrain, firstEntries) = Self.drain(4)
        var first = firstDrain
        #expect(Self.logInPlace(&first, to: log, origin: &origin) == nil)
        try log.sync()
        let before = try Self.segments(dir.path)

        var big = FrameBatch()
        for n in [10, 50, 400, 20] {
            let p = [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: n)
            p.withUnsafeBytes { big.appendFrame($0, origin: 0) }
        }
        let error = Self.logInPlace(&big, to: log, origin: &origin)
        #expect(error == .recordTooLarge(size: 8 + 400, limit: 200))
        #expect(origin == .none, "after a failed drain the next one restates its origin")
        #expect(log.lastLSN == LSN(firstEntries.count))
        #expect(try Self.segments(dir.path) == before)

        let (nextDrain, nextEntries) = Self.drain(3, seed: 9)
        var next = nextDrain
        #expect(Self.logInPlace(&next, to: log, origin: &origin) == nil)
        #expect(try walReplayAll(log).map(\.1) == firstEntries + nextEntries)
    }

    @Test("on a full disk an in-place drain that crosses segments is rolled back whole and appends resume when space returns",
          .enabled(if: WALSmallTmpfs.available, "needs mount(2) of a tmpfs (run as root or with CAP_SYS_ADMIN)"))
    func diskFullRollsBackAcrossSegments() throws {
        let fs = try #require(WALSmallTmpfs(size: "256k"))
        defer { fs.unmount() }
        let filler = fs.directory.file("filler")
        try walWriteFile(filler, [UInt8](repeating: 0xAB, count: 64 * 1024))
        let stateDir = fs.directory.file("state")
        var options = WriteAheadLog.Options()
        options.maxSegmentSize = 24 * 1024
        let log = try WriteAheadLog(directory: stateDir, options: options)
        var origin: [String]?? = .none
        var appended: [LogEntry] = []
        var failure: DurabilityError?
        for n in 0..<1000 {
            // ~40 records of ~150 bytes: each drain is ~6 KB, so some cross a segment boundary.
            var (batch, entries) = Self.drain(40, seed: n * 40)
            if origin != .none { entries.removeFirst() }
            let lastBefore = log.lastLSN
            let segmentsBefore = try walSegmentFiles(stateDir)
            if let error = Self.logInPlace(&batch, to: log, origin: &origin) {
                failure = error
                #expect(log.lastLSN == lastBefore)
                #expect(try walSegmentFiles(stateDir) == segmentsBefore, "a segment created by the failed drain is removed")
                break
            }
            appended += entries
            try log.sync()
        }
        let error = try #require(failure, "the 256 KiB tmpfs never filled up")
        #expect(error.isOutOfSpace, "\(error)")
        #expect(origin == .none)
        do {
            let reader = try WriteAheadLog(directory: stateDir, options: options)
            #expect(reader.tailRepair == nil, "the failed write was rolled back, not left torn")
            #expect(try walReplayAll(reader).map(\.1) == appended)
        }
        try FileManager.default.removeItem(atPath: filler)
        let (lastDrain, entries) = Self.drain(10, seed: 77_777)
        var batch = lastDrain
        #expect(Self.logInPlace(&batch, to: log, origin: &origin) == nil)
        try log.sync()
        appended += entries
        #expect(try walReplayAll(log).map(\.1) == appended)
    }
}
