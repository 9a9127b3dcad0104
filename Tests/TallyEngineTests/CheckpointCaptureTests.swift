import Foundation
import Testing
@testable import TallyEngine

// MARK: - Checkpoint capture (engine thread) and sealing (any thread)

@Suite("Checkpoint capture: cheap serialisation on the engine thread, checksum elsewhere, same format")
struct CheckpointCaptureTests {
    /// The national pipeline and an engine that has ingested the shared test stream.
    static func nationalEngineAfterStream() throws -> (Pipeline, Engine) {
        let p = try EngineStateTests.national()
        let a = Engine(pipeline: p, options: EngineStateTests.options())
        for e in EngineStateTests.stream() { a.send(e) }
        return (p, a)
    }

    @Test("the dedup index writes exactly the keys and hours its entries list, 24 little-endian bytes each")
    func dedupSerializationMatchesEntries() {
        let d = DedupIndexTests.filled(5_000, hours: 40)
        let entries = d.entries
        #expect(d.liveCount == entries.count)
        #expect(d.liveCount == d.count)
        var expected: [UInt8] = []
        for (k, h) in entries {
            for v in [k.hi, k.lo, UInt64(bitPattern: h)] { withUnsafeBytes(of: v.littleEndian) { expected.append(contentsOf: $0) } }
        }
        var out = [UInt8](repeating: 0xAA, count: entries.count * DedupIndex.serializedEntrySize + 24)
        let written = out.withUnsafeMutableBytes { d.snapshot.serialize(into: $0.baseAddress!, maxEntries: entries.count) }
        #expect(written == entries.count)
        #expect(Array(out.prefix(expected.count)) == expected)
        #expect(out.suffix(24).allSatisfy { $0 == 0xAA }, "nothing is written past the entries")
        // Never past maxEntries either.
        let short = out.withUnsafeMutableBytes { d.snapshot.serialize(into: $0.baseAddress!, maxEntries: 10) }
        #expect(short == 10)
    }

    @Test("a capture sealed after more events were applied holds the state as of the capture (the remembered ids are shared, not later ones)")
    func sealedAfterMoreEvents() throws {
        let (p, a) = try Self.nationalEngineAfterStream()
        let (_, b) = try Self.nationalEngineAfterStream()   // the same state, never changed after
        let whole = a.checkpoint()
        let capture = a.captureCheckpoint()
        // New ids in the capture's newest hour and in later hours: the index copies the shared
        // sets it writes to, the capture keeps the ones it took.
        for i in 0..<300 {
            a.send(CE.event("ndxp.transaction", "2024-04-30T\(10 + i % 14):30:00+07:00",
                            ["endpoint": "ep\(i % 6)", "consumer": "c", "provider": "p", "status": "ok"], id: "later\(i)"))
        }
        #expect(a.stats.accepted == b.stats.accepted + 300)
        let sealed = capture.sealed()
        #expect(sealed.count == whole.count)
        #expect(sealed == whole, "the same bytes as a checkpoint taken at the capture")
        let restored = try Engine.restore(pipeline: p, options: EngineStateTests.options(), from: sealed)
        #expect(restored.snapshot() == b.snapshot())
        #expect(restored.stats == b.stats)
        #expect(restored.dedup.liveCount == b.dedup.liveCount)
    }

    @Test("a capture sealed on another thread is byte for byte the checkpoint and restores to the same snapshot")
    func sealedOnAnotherThread() throws {
        let (p, a) = try Self.nationalEngineAfterStream()
        let whole = a.checkpoint()
        let capture = a.captureCheckpoint()
        #expect(capture.byteCount == whole.count)
        final class Result: @unchecked Sendable { var bytes: [UInt8] = [] }
        let result = Result()
        let done = DispatchSemaphore(value: 0)
        let t = Thread {
            result.bytes = capture.sealed()
            done.signal()
        }
        t.start()
        done.wait()
        #expect(result.bytes == whole)
        let b = try Engine.restore(pipeline: p, options: EngineStateTests.options(), from: result.bytes)
        #expect(b.snapshot() == a.snapshot())
        #expect(b.stats == a.stats)
        // The checksum is really there: a flipped body byte is refused.
        var bad = result.bytes
        bad[bad.count - 1] ^= 0x01
        #expect(throws: CheckpointError.self) { _ = try Engine.restore(pipeline: p, options: EngineStateTests.options(), from: bad) }
    }

    @Test("a capture written in pieces, ids across many hours and many pieces, joins into the checkpoint, and no id piece exceeds 64 KiB")
    func writtenInPieces() throws {
        let p = try EngineStateTests.national()
        let e = Engine(pipeline: p, options: EngineStateTests.options())
        for i in 0..<9_000 {
            e.send(CE.event("ndxp.transaction", "2024-04-\(10 + i % 5)T\(10 + i % 12):30:00+07:00",
                            ["endpoint": "ep\(i % 7)", "consumer": "c", "provider": "p", "status": "ok"], id: "piece-\(i)"))
        }
        #expect(e.dedup.liveCount == 9_000)   // five days of event time: inside the 7-day horizon
        let whole = e.checkpoint()
        let capture = e.captureCheckpoint()
        var pieces: [[UInt8]] = []
        capture.write { pieces.append(Array($0)) }
        #expect(pieces.flatMap { $0 } == whole)
        #expect(capture.byteCount == whole.count)
        let idPieces = pieces.count - 3   // the header, what precedes the ids, what follows them
        #expect(idPieces == (9_000 + CheckpointCapture.idsPerPiece - 1) / CheckpointCapture.idsPerPiece)
        #expect(pieces.allSatisfy { $0.count <= 64 << 10 || $0 == pieces[1] || $0 == pieces.last! })
        let restored = try Engine.restore(pipeline: p, options: EngineStateTests.options(), from: pieces.flatMap { $0 })
        #expect(restored.snapshot() == e.snapshot())
    }

    @Test("the remembered ids serialised in small pieces from a cursor are the whole serialisation")
    func dedupPiecesFromACursor() {
        let snapshot = DedupIndexTests.filled(1_000, hours: 13).snapshot
        let size = DedupIndex.serializedEntrySize
        var whole = [UInt8](repeating: 0, count: snapshot.count * size)
        _ = whole.withUnsafeMutableBytes { snapshot.serialize(into: $0.baseAddress!, maxEntries: snapshot.count) }
        for piece in [1, 7, 64, 999, 1_000, 5_000] {
            var joined: [UInt8] = []
            var cursor = DedupSnapshot.Cursor()
            var scratch = [UInt8](repeating: 0, count: piece * size)
            while true {
                let n = scratch.withUnsafeMutableBytes { snapshot.serialize(from: &cursor, into: $0.baseAddress!, maxEntries: piece) }
                if n == 0 { break }
                joined += scratch[0..<(n * size)]
            }
            #expect(joined == whole, "pieces of \(piece)")
        }
    }

    @Test("a checkpoint is written as version 2 with the CRC-32C of its body in the header")
    func versionTwoCarriesCRC32C() throws {
        let (p, a) = try Self.nationalEngineAfterStream()
        let bytes = a.checkpoint()
        let version = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        let sum = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self)) }
        #expect(version == 2)
        #expect(sum == UInt64(CRC32C.checksum(Array(bytes[32...]))))
    }

    @Test("a version-1 checkpoint (FNV-1a checksum), as earlier builds wrote it, still restores; a flipped byte in it is refused")
    func versionOneStillRestores() throws {
        let (p, a) = try Self.nationalEngineAfterStream()
        // The bodies are identical: rewrite the header as version 1 wrote it.
        var v1 = a.checkpoint()
        let fnv = v1.withUnsafeBytes { fnv1a64(UnsafeRawBufferPointer(rebasing: $0[32...])) }
        v1.withUnsafeMutableBytes {
            $0.storeBytes(of: UInt64(1).littleEndian, toByteOffset: 8, as: UInt64.self)
            $0.storeBytes(of: fnv.littleEndian, toByteOffset: 24, as: UInt64.self)
        }
        let b = try Engine.restore(pipeline: p, options: EngineStateTests.options(), from: v1)
        #expect(b.snapshot() == a.snapshot())
        #expect(b.stats == a.stats)
        var bad = v1
        bad[40] ^= 0x10
        #expect(throws: CheckpointError.self) { _ = try Engine.restore(pipeline: p, options: EngineStateTests.options(), from: bad) }
        // A version-1 header over the version-2 checksum is a mismatch, not silently accepted.
        var mixed = a.checkpoint()
        mixed.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(1).littleEndian, toByteOffset: 8, as: UInt64.self) }
        #expect(throws: CheckpointError.self) { _ = try Engine.restore(pipeline: p, options: EngineStateTests.options(), from: mixed) }
        // A version from the future is refused by name.
        var future = a.checkpoint()
        future.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(3).littleEndian, toByteOffset: 8, as: UInt64.self) }
        do {
            _ = try Engine.restore(pipeline: p, options: EngineStateTests.options(), from: future)
            Issue.record("a version-3 checkpoint was restored")
        } catch {
            #expect(error.kind == .unsupportedVersion)
        }
    }

    @Test("the byte writer grows past its initial capacity and the reader reads back every field")
    func writerGrowsAndReads() throws {
        let w = ByteWriter(capacity: 64)
        for i in 0..<10_000 as Range<UInt64> {
            w.u64(i &* 0x9E37_79B9_7F4A_7C15)
            w.varint(i * i)
            w.u8(UInt8(truncatingIfNeeded: i))
            if i % 1_000 == 0 { w.string("s\(i)") }
        }
        var r = ByteReader(bytes: Array(w.bytes), at: 0)
        for i in 0..<10_000 as Range<UInt64> {
            #expect(try r.u64() == i &* 0x9E37_79B9_7F4A_7C15)
            #expect(try r.varint() == i * i)
            #expect(try r.u8() == UInt8(truncatingIfNeeded: i))
            if i % 1_000 == 0 { #expect(try r.string() == "s\(i)") }
        }
        #expect(r.at == w.count)
    }
}
