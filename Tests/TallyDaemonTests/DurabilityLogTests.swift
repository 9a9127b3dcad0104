import Foundation
import Testing
@testable import TallyDaemon
import TallyEngine

// MARK: - CRC32C

@Suite("CRC32C")
struct DurabilityCRC32CTests {
    /// Bit-at-a-time reference, independent of the table code.
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        }
        return ~c
    }

    @Test("the checksum matches the published Castagnoli test vectors (RFC 3720 B.4, \"123456789\")")
    func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test("slicing-by-8 agrees with the bitwise reference at every length and chains across splits")
    func agreesWithReference() {
        var rng = SystemRandomNumberGenerator()
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let expected = Self.reference(bytes)
            #expect(CRC32C.checksum(bytes) == expected)
            let split = length / 3
            #expect(CRC32C.update(CRC32C.checksum(bytes[0..<split]), Array(bytes[split...])) == expected)
        }
    }

    @Test("the software path and the dispatched (hardware when available, three streams from 768 bytes) path agree at every length and alignment")
    func softwareAndDispatchedAgree() {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<100_100).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { all in
            for offset in 0..<9 {
                // Around the three-stream thresholds too (3 × 256 and 3 × 8192 bytes), and a
                // length with whole long triples, short triples and a tail.
                for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 277, 294, 1_000, 767, 768, 769, 1_535, 1_536,
                               24_575, 24_576, 24_577, 28_160, 100_000] {
                    let part = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + length)])
                    let seed: UInt32 = length % 2 == 0 ? 0 : 0xDEAD_BEEF
                    #expect(CRC32C.update(seed, part) == CRC32C.softwareUpdate(seed, part), "offset \(offset) length \(length)")
                }
            }
        }
        let vector = Array("123456789".utf8)
        #expect(vector.withUnsafeBytes { CRC32C.softwareUpdate(0, $0) } == 0xE306_9283)
    }
}

// MARK: - Write-ahead log

@Suite("Write-ahead log")
struct DurabilityLogTests {
    static func smallOptions(segment: Int64 = 4096) -> WriteAheadLog.Options {
        var o = WriteAheadLog.Options()
        o.maxSegmentSize = segment
        o.readBufferSize = 512
        return o
    }

    static func sampleEntry(_ i: Int) -> LogEntry {
        switch i % 3 {
        case 0: .frame(receivedAt: Int64(1_700_000_000_000_000 + i), payload: walSamplePayload(i))
        case 1: .batch(producer: Array("producer-\(i % 5)".utf8), sequence: UInt64(i), payload: walSamplePayload(i))
        default: .meta(walSamplePayload(i))
        }
    }

    @Test("records appended in many calls replay in order with their LSNs across segment rolls and a reopen")
    func roundTripAcrossRolls() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let all = (0..<600).map(Self.sampleEntry)
        do {
            let log = try WriteAheadLog(directory: dir.path, options: Self.smallOptions())
            var next = 0
            var callSize = 1
            while next < all.count {
                let slice = Array(all[next..<min(all.count, next + callSize)])
                let range = try #require(try log.append(slice))
                #expect(range == LSN(next + 1)...LSN(next + slice.count))
                next += slice.count
                callSize = callSize % 17 + 1
                if next % 50 == 0 { try log.sync() }
            }
            try log.sync()
            #expect(log.segmentCount > 10)
            let replayed = try walReplayAll(log)
            #expect(replayed.map(\.0) == (1...600).map { LSN($0) })
            #expect(replayed.map(\.1) == all)
        }
        let files = try walSegmentFiles(dir.path)
        #expect(files.first == "wal-00000000000000000001.log")
        #expect(files.allSatisfy { $0.count == "wal-".count + 20 + ".log".count })

        let reopened = try WriteAheadLog(directory: dir.path, options: Self.smallOptions())
        #expect(reopened.tailRepair == nil)
        #expect(reopened.lastLSN == 600)
        let tail = try walReplayAll(reopened, after: 450)
        #expect(tail.map(\.0) == (451...600).map { LSN($0) })
        #expect(tail.map(\.1) == Array(all[450...]))
        #expect(try reopened.append([.meta([1, 2, 3])]) == 601...601)
    }

    @Test("a record larger than the limit is refused and nothing of its call is appended")
    func oversizedRecordRefused() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        var options = Self.smallOptions()
        options.maxRecordSize = 100
        let log = try WriteAheadLog(directory: dir.path, options: options)
        #expect(throws: DurabilityError.recordTooLarge(size: 8 + 200, limit: 100)) {
            try log.append([.meta([1]), .frame(receivedAt: 0, payload: [UInt8](repeating: 7, count: 200))])
        }
        #expect(log.lastLSN == 0)
        #expect(try walReplayAll(log).isEmpty)
    }

    /// Five records in one segment; returns the segment path, its bytes and where the last record starts.
    static func fiveRecordLog(_ dir: WALTempDirectory) throws -> (path: String, bytes: [UInt8], lastStart: Int, entries: [LogEntry]) {
        let entries = (0..<5).map { i in LogEntry.batch(producer: Array("p".utf8), sequence: UInt64(i + 1), payload: walSamplePayload(i + 3)) }
        let log = try WriteAheadLog(directory: dir.path)
        try log.append(entries)
        try log.sync()
        let path = dir.file(WriteAheadLog.segmentName(1))
        // The records (a direct write pads the file with zeros to a 4 KiB boundary).
        let bytes = Array(try walReadFile(path).prefix(Int(log.activeSize)))
        let lastLength = 9 + 10 + 1 + walSamplePayload(7).count
        return (path, bytes, bytes.count - lastLength, entries)
    }

    @Test("a log torn at every byte offset of its last record is cut back to the four whole records and reported")
    func tornTailAtEveryOffset() throws {
        let source = WALTempDirectory()
        defer { source.remove() }
        let (_, bytes, lastStart, entries) = try Self.fiveRecordLog(source)
        for cut in lastStart..<bytes.count {
            let dir = WALTempDirectory("torn")
            defer { dir.remove() }
            let path = dir.file(WriteAheadLog.segmentName(1))
            try walWriteFile(path, Array(bytes[0..<cut]))
            let log = try WriteAheadLog(directory: dir.path)
            if cut == lastStart {
                #expect(log.tailRepair == nil, "a cut exactly between records is a clean end")
            } else {
                let repair = try #require(log.tailRepair, "cut at \(cut)")
                #expect(repair.offset == Int64(lastStart))
                #expect(repair.bytesTruncated == Int64(cut - lastStart))
                #expect(repair.recordsDropped == 1)
            }
            #expect(log.lastLSN == 4)
            #expect(try walReplayAll(log).map(\.1) == Array(entries[0..<4]))
            #expect(try walReadFile(path).count == lastStart, "the torn bytes are removed from the file")
            #expect(try log.append([.meta([9])]) == 5...5)
        }
    }

    @Test("a flipped byte anywhere in the last record is detected, cut and reported; earlier records stay intact")
    func flippedByteInTail() throws {
        let source = WALTempDirectory()
        defer { source.remove() }
        let (_, bytes, lastStart, entries) = try Self.fiveRecordLog(source)
        for position in lastStart..<bytes.count {
            let dir = WALTempDirectory("flip")
            defer { dir.remove() }
            var damaged = bytes
            damaged[position] ^= 0x5A
            try walWriteFile(dir.file(WriteAheadLog.segmentName(1)), damaged)
            let log = try WriteAheadLog(directory: dir.path)
            let repair = try #require(log.tailRepair, "flip at \(position)")
            #expect(repair.offset == Int64(lastStart))
            #expect(repair.bytesTruncated == Int64(bytes.count - lastStart))
            #expect(try walReplayAll(log).map(\.1) == Array(entries[0..<4]))
        }
    }

    @Test("a corrupt record in an older segment stops replay there with an error and never yields later records")
    func corruptionInOlderSegmentStopsReplay() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let all = (0..<200).map(Self.sampleEntry)
        do {
            let log = try WriteAheadLog(directory: dir.path, options: Self.smallOptions())
            try log.append(all)
            try log.sync()
        }
        let files = try walSegmentFiles(dir.path)
        #expect(files.count >= 3)
        let first = dir.file(files[0])
        var bytes = try walReadFile(first)
        // Find the third record's start and damage its body.
        var offset = 0
        for _ in 0..<2 { offset += 9 + Int(UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16) }
        bytes[offset + 12] ^= 0x01
        try walWriteFile(first, bytes)

        let log = try WriteAheadLog(directory: dir.path, options: Self.smallOptions())
        #expect(log.tailRepair == nil, "only the newest segment is scanned and it is intact")
        var delivered: [LSN] = []
        var thrown: (any Error)?
        do {
            try log.replay(after: 0) { delivered.append($0.lsn) }
        } catch {
            thrown = error
        }
        #expect(delivered == [1, 2])
        guard case .corruptLog(let segment, let at, let reason)? = thrown as? DurabilityError else {
            Issue.record("expected corruptLog, got \(String(describing: thrown))")
            return
        }
        #expect(segment == first)
        #expect(at == Int64(offset))
        #expect(reason.contains("checksum"))
    }

    @Test("replay of the active segment sees appended records before they are synced")
    func replaySeesUnsyncedAppends() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path)
        try log.append([.meta([1]), .meta([2])])
        #expect(log.durableLSN == 0)
        #expect(try walReplayAll(log).map(\.1) == [.meta([1]), .meta([2])])
        try log.sync()
        #expect(log.durableLSN == 2)
    }

    @Test("truncate deletes exactly the segments whose records are all covered, never the active one")
    func truncateDeletesCoveredSegments() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let log = try WriteAheadLog(directory: dir.path, options: Self.smallOptions(segment: 1024))
        try log.append((0..<100).map(Self.sampleEntry))
        try log.sync()
        let before = log.segments.map(\.firstLSN)
        #expect(before.count > 5)
        let through = before[3] - 1  // segments 0, 1, 2 are covered exactly
        #expect(try log.truncate(through: through) == 3)
        #expect(log.segments.map(\.firstLSN) == Array(before[3...]))
        #expect(try walSegmentFiles(dir.path).count == before.count - 3)
        #expect(try log.truncate(through: through + 1) == 0, "segment 3 still holds records after the checkpoint")
        #expect(try walReplayAll(log, after: through).first?.0 == through + 1)
        #expect(throws: DurabilityError.self) { try log.replay(after: 0) { _ in } }
        #expect(try log.truncate(through: 1_000) == before.count - 4)
        #expect(log.segmentCount == 1)
        #expect(try log.append([.meta([1])]) == 101...101)
        try log.sync()
        #expect(log.durableLSN == 101)
    }
}
