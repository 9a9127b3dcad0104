import TallyEngine
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Checkpoint

/// One loaded checkpoint: the engine's opaque state, the producer table and the snapshot
/// sequence, all as of log record `lsn` (every record ≤ `lsn` is reflected in the state).
public struct Checkpoint: Sendable {
    public let lsn: LSN
    public let snapshotSeq: UInt64
    public let engineState: [UInt8]
    public let producers: ProducerTable
    public let path: String
}

/// A checkpoint file that failed verification during `loadNewest`.
public struct RejectedCheckpoint: Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// The result of writing a checkpoint.
public struct CheckpointWriteResult: Sendable, Equatable {
    public let path: String
    public let bytes: Int64
    /// The LSN of the oldest checkpoint still kept: the log may be truncated through it (not
    /// through the new one), so a fallback to the older checkpoint still finds its records.
    public let truncatableThrough: LSN
}

// MARK: - CheckpointStore

/// Checkpoint files `checkpoint-<lsn, 20 digits>.bin` in the state directory.
///
/// File layout (little-endian), a 56-byte header then two bodies:
/// `[magic "TALLYCKP"][version u32 = 1][header length u32 = 56][lsn u64][snapshot seq u64]`
/// `[engine length u64][producers length u64][crc32c u32][reserved u32]` `[engine][producers]`.
/// The CRC-32C covers header bytes 0..<48, the engine bytes and the producer bytes, so any flipped
/// byte or truncation is detected.
///
/// Writing is atomic: temp file (mode 0600) → write → fsync → rename → fsync the directory. The
/// newest two checkpoints are kept; `loadNewest` falls back to the older one when the newest fails
/// its checks, and reports why.
public struct CheckpointStore: Sendable {
    public let directory: String
    /// Capacity given to producer tables loaded from checkpoints.
    public let producerCapacity: Int
    /// How many checkpoints are kept (at least 2 so there is something to fall back to).
    public let keep: Int

    static let magic: [UInt8] = Array("TALLYCKP".utf8)
    static let headerLength = 56
    static let version: UInt32 = 1

    /// Opens the store, creating `directory` with mode 0700 and removing temp files left by a
    /// crash during a previous write.
    public init(directory: String, producerCapacity: Int = 100_000, keep: Int = 2) throws(DurabilityError) {
        self.directory = directory
        self.producerCapacity = producerCapacity
        self.keep = max(2, keep)
        try FileIO.makeDirectory(directory, mode: 0o700)
        for name in try FileIO.listDirectory(directory) where name.hasPrefix("checkpoint-") && name.hasSuffix(".tmp") {
            try FileIO.unlinkIfPresent(FileIO.join(directory, name))
        }
    }

    static func fileName(_ lsn: LSN) -> String {
        let digits = String(lsn)
        return "checkpoint-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".bin"
    }

    /// Checkpoint files present, newest (highest LSN) first.
    public func list() throws(DurabilityError) -> [(lsn: LSN, path: String)] {
        var result: [(lsn: LSN, path: String)] = []
        for name in try FileIO.listDirectory(directory) where name.hasPrefix("checkpoint-") && name.hasSuffix(".bin") {
            let digits = name.dropFirst("checkpoint-".count).dropLast(4)
            guard digits.count == 20, let lsn = LSN(digits) else { continue }
            result.append((lsn, FileIO.join(directory, name)))
        }
        return result.sorted { $0.lsn > $1.lsn }
    }

    // MARK: Writing

    /// Bytes per `pwrite` of a checkpoint file; each piece's writeback is started as it is written.
    static let writePiece = 1 << 20

    /// Writes a checkpoint atomically and prunes all but the newest `keep`.
    ///
    /// The caller must have made the log durable through `lsn` and applied every record ≤ `lsn`
    /// (and none after) to the state it passes.
    /// - Complexity: O(state size): one CRC pass and one `pwrite` per MiB of the bytes (each
    ///   piece's writeback started at once), one fsync of the file and one of the directory.
    @discardableResult
    public func write(lsn: LSN, engineState: [UInt8], producers: ProducerTable, snapshotSeq: UInt64) throws(DurabilityError) -> CheckpointWriteResult {
        try write(lsn: lsn, engineState: CapturedCheckpoint(bytes: engineState), producers: producers, snapshotSeq: snapshotSeq)
    }

    /// ``write(lsn:engineState:producers:snapshotSeq:)`` with the engine's state handed over in
    /// pieces (``CapturedCheckpoint/write(to:)``), never held whole: the header, whose checksum
    /// covers everything after it, is written last, at the file's start, before the fsync.
    /// - Complexity: as above; memory: one MiB of pieces at most, plus what the capture holds.
    @discardableResult
    public func write(lsn: LSN, engineState: CapturedCheckpoint, producers: ProducerTable, snapshotSeq: UInt64) throws(DurabilityError) -> CheckpointWriteResult {
        let producerBytes = producers.serialized()
        var header = Self.magic
        ByteCoding.append(Self.version, to: &header)
        ByteCoding.append(UInt32(Self.headerLength), to: &header)
        ByteCoding.append(lsn, to: &header)
        ByteCoding.append(snapshotSeq, to: &header)
        ByteCoding.append(UInt64(engineState.byteCount), to: &header)
        ByteCoding.append(UInt64(producerBytes.count), to: &header)
        var crc = CRC32C.checksum(header)
        let finalPath = FileIO.join(directory, Self.fileName(lsn))
        let tempPath = finalPath + ".tmp"
        let fd = try FileIO.open(tempPath, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        let headerSize = Int64(header.count + 8)   // + the checksum and the reserved word
        precondition(headerSize == Int64(Self.headerLength), "checkpoint header layout")
        var total = headerSize
        var isOpen = true
        do throws(DurabilityError) {
            // Written in pieces, each one's writeback started at once (as the log does): the
            // fsync below then finds little left to write, instead of all of a checkpoint of tens
            // of MB at once while the log's own fdatasyncs queue behind it on the same disk.
            var writebackFrom: Int64 = 0
            var pending: DurabilityError?
            func put(_ bytes: UnsafeRawBufferPointer) throws(DurabilityError) {
                var offset = 0
                while offset < bytes.count {
                    let n = min(Self.writePiece, bytes.count - offset)
                    try FileIO.pwriteAll(fd, UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), at: total, path: tempPath)
                    crc = CRC32C.update(crc, UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]))
                    offset += n
                    total += Int64(n)
                    FileIO.startWriteback(fd, from: &writebackFrom, to: total, every: Int64(Self.writePiece))
                }
            }
            do {
                try engineState.write { piece in
                    do throws(DurabilityError) { try put(piece) } catch {
                        pending = error
                        throw error
                    }
                }
            } catch {
                throw pending ?? .invalidArgument("the checkpoint's state could not be written: \(error)")
            }
            let written = Int(total - headerSize)
            guard written == engineState.byteCount else {
                throw .invalidArgument("the captured state wrote \(written) bytes, announced \(engineState.byteCount)")
            }
            try producerBytes.withUnsafeBytes { b in Result { () throws(DurabilityError) in try put(b) } }.get()
            ByteCoding.append(crc, to: &header)
            ByteCoding.append(UInt32(0), to: &header)
            try header.withUnsafeBytes { b in
                Result { () throws(DurabilityError) in try FileIO.pwriteAll(fd, b, at: 0, path: tempPath) }
            }.get()
            try FileIO.fsync(fd, path: tempPath)
            isOpen = false
            try FileIO.close(fd, path: tempPath)
        } catch {
            if isOpen { Glibc.close(fd) }
            try? FileIO.unlinkIfPresent(tempPath)
            throw error
        }
        do throws(DurabilityError) {
            try FileIO.rename(tempPath, finalPath)
        } catch {
            try? FileIO.unlinkIfPresent(tempPath)
            throw error
        }
        try FileIO.syncDirectory(directory)

        let all = try list()
        for old in all.dropFirst(keep) { try FileIO.unlinkIfPresent(old.path) }
        let kept = all.prefix(keep)
        return CheckpointWriteResult(path: finalPath, bytes: total, truncatableThrough: kept.last?.lsn ?? lsn)
    }

    // MARK: Loading

    /// Loads the newest checkpoint that passes verification, newest first.
    /// - Returns: the checkpoint (nil when none is valid or none exists) and the files rejected on
    ///   the way, with reasons, for the recovery report.
    /// - Complexity: O(size of the checkpoints read).
    public func loadNewest() throws(DurabilityError) -> (checkpoint: Checkpoint?, rejected: [RejectedCheckpoint]) {
        var rejected: [RejectedCheckpoint] = []
        for entry in try list() {
            do throws(DurabilityError) {
                return (try load(path: entry.path, expectedLSN: entry.lsn), rejected)
            } catch {
                switch error {
                case .corruptCheckpoint(let path, let reason):
                    rejected.append(RejectedCheckpoint(path: path, reason: reason))
                case .system(_, _, let code) where code == EIO:
                    rejected.append(RejectedCheckpoint(path: entry.path, reason: error.description))
                default:
                    throw error
                }
            }
        }
        return (nil, rejected)
    }

    /// Loads and verifies one checkpoint file.
    public func load(path: String, expectedLSN: LSN? = nil) throws(DurabilityError) -> Checkpoint {
        func corrupt(_ why: String) -> DurabilityError { .corruptCheckpoint(path: path, reason: why) }
        let fd = try FileIO.open(path, flags: O_RDONLY)
        defer { Glibc.close(fd) }
        let size = try FileIO.fileSize(fd, path: path)
        guard size >= Int64(Self.headerLength) else { throw corrupt("file of \(size) bytes is shorter than the header") }
        let header = try Self.read(fd, count: Self.headerLength, at: 0, path: path)
        guard Array(header[0..<8]) == Self.magic else { throw corrupt("bad magic") }
        let h = header[...]
        let version = ByteCoding.loadUInt32(h, at: 8)
        guard version == Self.version else { throw corrupt("unsupported version \(version)") }
        guard ByteCoding.loadUInt32(h, at: 12) == UInt32(Self.headerLength) else { throw corrupt("bad header length") }
        let lsn = ByteCoding.loadUInt64(h, at: 16)
        let seq = ByteCoding.loadUInt64(h, at: 24)
        let engineLength = ByteCoding.loadUInt64(h, at: 32)
        let producersLength = ByteCoding.loadUInt64(h, at: 40)
        let storedCRC = ByteCoding.loadUInt32(h, at: 48)
        guard engineLength <= UInt64(size), producersLength <= UInt64(size),
              Int64(Self.headerLength) + Int64(engineLength) + Int64(producersLength) == size else {
            throw corrupt("lengths (engine \(engineLength), producers \(producersLength)) do not match the file size \(size)")
        }
        if let expectedLSN, expectedLSN != lsn { throw corrupt("header LSN \(lsn) does not match the file name's \(expectedLSN)") }
        let engine = try Self.read(fd, count: Int(engineLength), at: Int64(Self.headerLength), path: path)
        let producerBytes = try Self.read(fd, count: Int(producersLength), at: Int64(Self.headerLength) + Int64(engineLength), path: path)
        var crc = CRC32C.checksum(h[0..<48])
        crc = CRC32C.update(crc, engine)
        crc = CRC32C.update(crc, producerBytes)
        guard crc == storedCRC else { throw corrupt("checksum mismatch") }
        let producers: ProducerTable
        do throws(DurabilityError) {
            producers = try ProducerTable(deserializing: producerBytes[...], capacity: producerCapacity)
        } catch {
            throw corrupt("producer table: \(error)")
        }
        return Checkpoint(lsn: lsn, snapshotSeq: seq, engineState: engine, producers: producers, path: path)
    }

    private static func read(_ fd: Int32, count: Int, at offset: Int64, path: String) throws(DurabilityError) -> [UInt8] {
        if count == 0 { return [] }
        var error: DurabilityError?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(DurabilityError) {
                initialized = try FileIO.preadFully(fd, into: UnsafeMutableRawPointer(buffer.baseAddress!), count: count, at: offset, path: path)
            } catch let e {
                error = e
                initialized = 0
            }
        }
        if let error { throw error }
        guard bytes.count == count else { throw .corruptCheckpoint(path: path, reason: "short read") }
        return bytes
    }
}
