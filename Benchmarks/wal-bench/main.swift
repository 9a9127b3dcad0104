// wal-bench: figures for the durability layer (append, group commit, replay, checkpoint).
//
//   swift run -c release wal-bench [--dir DIR] [--records N] [--checkpoint-mb M]
//
// Prints figures; asserts nothing (machines are noisy). Uses DIR (default: a fresh directory
// under $TMPDIR or /tmp, removed at the end) on the file system whose durability you want to
// measure.
#if canImport(Glibc)
import Glibc
#endif
import TallyDaemon
import TallyEngine

// MARK: - Arguments

var arguments = CommandLine.arguments.dropFirst()
var baseDir: String?
var records = 2_000_000
var checkpointMB = 100
while let arg = arguments.popFirst() {
    switch arg {
    case "--dir": baseDir = arguments.popFirst()
    case "--records": records = Int(arguments.popFirst() ?? "") ?? records
    case "--checkpoint-mb": checkpointMB = Int(arguments.popFirst() ?? "") ?? checkpointMB
    default:
        print("usage: wal-bench [--dir DIR] [--records N] [--checkpoint-mb M]")
        exit(2)
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func makeTempDir(under baseDir: String?) -> String {
    let parent = baseDir ?? (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp")
    var template = Array("\(parent)/wal-bench-XXXXXX".utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        print("cannot create a directory under \(parent): errno \(errno)")
        exit(1)
    }
    return String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
}

func removeTree(_ path: String) {
    _ = path.withCString { p in
        // The tree is flat (segments, checkpoints, lease): unlink the files, then the directory.
        guard let d = opendir(p) else { return Int32(0) }
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            if name != "." && name != ".." { unlink(path + "/" + name) }
        }
        closedir(d)
        return rmdir(p)
    }
}

/// CPU seconds (user + system) of this process: a figure less sensitive than wall time to other
/// processes on a shared machine.
func cpu() -> Double {
    var u = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

func loadAverage() -> String {
    var l = [Double](repeating: 0, count: 3)
    _ = getloadavg(&l, 3)
    return "\(fmt(l[0], 2)) \(fmt(l[1], 2)) \(fmt(l[2], 2))"
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func fmt(_ v: Double, _ digits: Int = 1) -> String {
    var s = String(Int((v * pow(10, Double(digits))).rounded()))
    if digits > 0 {
        while s.count <= digits { s = "0" + s }
        s.insert(".", at: s.index(s.endIndex, offsetBy: -digits))
    }
    return s
}

let dir = makeTempDir(under: baseDir)
defer { removeTree(dir) }
print("wal-bench: directory \(dir), load average \(loadAverage())")

// A 277-byte CloudEvent-sized payload.
let payload: [UInt8] = (0..<277).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

// MARK: - CRC32C

do {
    let block = [UInt8](repeating: 0x5A, count: 1 << 20)
    var crc: UInt32 = 0
    let t0 = now()
    for _ in 0..<512 { crc = CRC32C.update(crc, block) }
    let dt = now() - t0
    print("crc32c (slicing-by-8): \(fmt(512.0 / 1024 / dt, 2)) GB/s  [\(crc)]")
}

// MARK: - Fire-and-forget append throughput

let drain = 256
do {
    let log = try WriteAheadLog(directory: dir + "/append")
    var lastSync = now()
    let c0 = cpu()
    let t0 = now()
    var appended = 0
    var syncs = 0
    payload.withUnsafeBytes { p in
        while appended < records {
            let n = min(drain, records - appended)
            do {
                try log.append { (batch) throws(DurabilityError) in
                    for i in 0..<n { try batch.frame(receivedAt: Int64(appended + i), payload: p) }
                }
                let t = now()
                if t - lastSync >= 0.1 {  // the daemon's 100 ms timer
                    try log.sync()
                    syncs += 1
                    lastSync = t
                }
            } catch {
                print("append failed: \(error)")
                exit(1)
            }
            appended += n
        }
    }
    let tAppend = now() - t0
    let cAppend = cpu() - c0
    try log.sync()
    let tTotal = now() - t0
    let bytes = Double(appended * (9 + 8 + payload.count))
    print("append (fire-and-forget, \(payload.count)-byte payload = \(9 + 8 + payload.count)-byte record, \(drain) records per append call, fdatasync every 100 ms):")
    print("  \(appended) records, \(fmt(bytes / 1e6, 0)) MB, \(syncs) timer syncs, \(log.segmentCount) segments")
    print("  \(fmt(Double(appended) / tAppend / 1e6, 2)) M records/s, \(fmt(bytes / tAppend / 1e6, 0)) MB/s (appends + timer syncs)")
    print("  \(fmt(Double(appended) / tTotal / 1e6, 2)) M records/s, \(fmt(bytes / tTotal / 1e6, 0)) MB/s (including the final fdatasync)")
    print("  CPU: \(fmt(cAppend, 2)) s = \(fmt(Double(appended) / cAppend / 1e6, 2)) M records per CPU-second (user + system)")

    // MARK: - Replay
    var count = 0
    var sum = 0
    let r0 = now()
    let rc0 = cpu()
    try log.replay(after: 0) { record in
        count += 1
        sum &+= record.body.count
    }
    let rt = now() - r0
    let rc = cpu() - rc0
    print("replay (warm page cache, CRC verified, chunked 1 MiB reads): \(count) records in \(fmt(rt, 3)) s = \(fmt(Double(count) / rt / 1e6, 2)) M records/s, \(fmt(Double(count * (9 + 8 + payload.count)) / rt / 1e6, 0)) MB/s; \(fmt(Double(count) / rc / 1e6, 2)) M records per CPU-second")

    // Reopen: the startup scan of the newest segment.
    try log.close()
    let o0 = now()
    let reopened = try WriteAheadLog(directory: dir + "/append")
    print("reopen (scan of the newest segment, \(reopened.segmentCount) segments): \(fmt((now() - o0) * 1000, 1)) ms")
}
removeTree(dir + "/append")

// MARK: - The daemon's log thread: copy-encoding vs records in place

/// One drain of the daemon (4,096 frames of the 277-byte payload), logged the old way (frames
/// copied from a plain drain buffer into `AppendBatch`, CRC, `pwrite`) or in place (the drain
/// buffer already laid out as records: stamp receive time + CRC, `pwritev`). Alternated three
/// times; CPU is what the log thread would spend.
do {
    let framesPerDrain = 4096
    let frameHeader = RecordLayout.headerSize + RecordLayout.frameFieldsSize
    var plain: [UInt8] = []
    var laidOut: [UInt8] = []
    for _ in 0..<framesPerDrain {
        plain += payload
        laidOut += [UInt8](repeating: 0, count: frameHeader) + payload
    }
    let recordSize = frameHeader + payload.count
    func run(inPlace: Bool, into path: String, plain: [UInt8], laidOut template: [UInt8]) throws -> (cpu: Double, wall: Double) {
        var laidOut = template
        var pieces: [UnsafeRawBufferPointer] = []
        pieces.reserveCapacity(framesPerDrain)
        let log = try WriteAheadLog(directory: path)
        var appended = 0
        var lastSync = now()
        let c0 = cpu(), t0 = now()
        while appended < records {
            let receivedAt = Int64(appended)
            if inPlace {
                try laidOut.withUnsafeMutableBytes { raw in
                    pieces.removeAll(keepingCapacity: true)
                    for i in 0..<framesPerDrain {
                        let record = UnsafeMutableRawBufferPointer(rebasing: raw[(i * recordSize)..<((i + 1) * recordSize)])
                        record.storeBytes(of: UInt64(bitPattern: receivedAt).littleEndian, toByteOffset: RecordLayout.headerSize, as: UInt64.self)
                        RecordLayout.seal(record, kind: .frame)
                        pieces.append(UnsafeRawBufferPointer(record))
                    }
                    _ = try pieces.withUnsafeBufferPointer { try log.append(records: $0) }
                }
            } else {
                try plain.withUnsafeBytes { raw in
                    _ = try log.append { (b) throws(DurabilityError) in
                        for i in 0..<framesPerDrain {
                            try b.frame(receivedAt: receivedAt, payload: UnsafeRawBufferPointer(rebasing: raw[(i * payload.count)..<((i + 1) * payload.count)]))
                        }
                    }
                }
            }
            appended += framesPerDrain
            if now() - lastSync >= 0.1 { try log.sync(); lastSync = now() }
        }
        try log.sync()
        let result = (cpu() - c0, now() - t0)
        try log.close()
        removeTree(path)
        return result
    }
    print("daemon drains of \(framesPerDrain) frames (\(recordSize)-byte records), \(records) records, fdatasync every 100 ms, alternated:")
    var copied: [Double] = [], inPlace: [Double] = []
    for round in 0..<3 {
        let a = try run(inPlace: false, into: dir + "/drain-copy-\(round)", plain: plain, laidOut: laidOut)
        let b = try run(inPlace: true, into: dir + "/drain-inplace-\(round)", plain: plain, laidOut: laidOut)
        copied.append(a.cpu)
        inPlace.append(b.cpu)
        print("  round \(round + 1): copy-encode \(fmt(a.cpu, 3)) CPU-s (\(fmt(a.wall, 3)) s wall), in place \(fmt(b.cpu, 3)) CPU-s (\(fmt(b.wall, 3)) s wall)")
    }
    copied.sort(); inPlace.sort()
    print("  median CPU: copy-encode \(fmt(copied[1], 3)) s, in place \(fmt(inPlace[1], 3)) s (\(fmt((1 - inPlace[1] / copied[1]) * 100, 0))% less)")
}

// MARK: - Group commit

print("group commit (acknowledged batches of 100 events × \(payload.count) bytes, one fdatasync per group):")
for perSync in [1, 4, 16] {
    let path = dir + "/group-\(perSync)"
    let log = try WriteAheadLog(directory: path)
    let batchPayload = [UInt8]((0..<100).flatMap { _ in payload })
    let producer = Array("producer-1".utf8)
    var latencies: [Double] = []
    var seq: UInt64 = 0
    let t0 = now()
    while now() - t0 < 3 {
        let s0 = now()
        try log.append { (b) throws(DurabilityError) in
            for _ in 0..<perSync {
                seq += 1
                try b.batch(producer: producer, sequence: seq, payload: batchPayload)
            }
        }
        try log.sync()
        latencies.append(now() - s0)
    }
    let elapsed = now() - t0
    latencies.sort()
    let batches = Double(latencies.count * perSync)
    print("  \(perSync) batch(es)/fsync: append+fdatasync p50 \(fmt(percentile(latencies, 0.5) * 1000, 2)) ms, p99 \(fmt(percentile(latencies, 0.99) * 1000, 2)) ms; \(fmt(batches / elapsed, 0)) batches/s = \(fmt(batches * 100 / elapsed, 0)) events/s")
    removeTree(path)
}

// MARK: - Group commit: growing vs preallocated segments, interleaved

/// Two logs side by side, one never preallocated (every append grows the file, so every
/// fdatasync also journals the size change) and one preallocating every segment (zero-filled at
/// creation, the zeroing counted in the append that rolls). They take turns every 50 batches so
/// both see the same disk (other processes' I/O swings fdatasync from 0.1 to 4 ms here).
do {
    let batchPayload = [UInt8]((0..<100).flatMap { _ in payload })
    let producer = Array("producer-1".utf8)
    var growing = WriteAheadLog.Options(), preallocated = WriteAheadLog.Options()
    growing.preallocateAfterSyncs = Int.max
    preallocated.preallocateAfterSyncs = 0
    let logs = [try WriteAheadLog(directory: dir + "/grow", options: growing),
                try WriteAheadLog(directory: dir + "/prealloc", options: preallocated)]
    var latencies: [[Double]] = [[], []]
    var seq: UInt64 = 0
    let perLog = max(1_000, min(6_000, records / 50))
    for _ in 0..<(perLog / 50) {
        for (k, log) in logs.enumerated() {
            for _ in 0..<50 {
                seq += 1
                let s0 = now()
                try log.append { (b) throws(DurabilityError) in try b.batch(producer: producer, sequence: seq, payload: batchPayload) }
                try log.sync()
                latencies[k].append(now() - s0)
            }
        }
    }
    print("group commit, 1 batch (27.7 KB) per fdatasync, \(perLog) batches per log, 64 MiB segments, interleaved every 50:")
    for (k, name) in ["growing file", "preallocated"].enumerated() {
        let l = latencies[k].sorted()
        let mean = l.reduce(0, +) / Double(l.count)
        print("  \(name): mean \(fmt(mean * 1000, 3)) ms, p50 \(fmt(percentile(l, 0.5) * 1000, 3)) ms, p99 \(fmt(percentile(l, 0.99) * 1000, 3)) ms, max \(fmt(l.last! * 1000, 1)) ms (\(logs[k].segmentCount) segments)")
    }
    removeTree(dir + "/grow")
    removeTree(dir + "/prealloc")
}

// MARK: - Checkpoint

do {
    let path = dir + "/ckpt"
    let store = try CheckpointStore(directory: path)
    var state = [UInt8](repeating: 0, count: checkpointMB << 20)
    for i in stride(from: 0, to: state.count, by: 4096) { state[i] = UInt8(truncatingIfNeeded: i >> 12) }
    var producers = ProducerTable()
    for i in 0..<1000 { producers.record(producer: Array("producer-\(i)".utf8), sequence: UInt64(i), reply: Array("{\"accepted\":100}".utf8)) }
    let w0 = now()
    let result = try store.write(lsn: 1, engineState: state, producers: producers, snapshotSeq: 1)
    let wt = now() - w0
    print("checkpoint write (\(checkpointMB) MiB engine state + 1,000 producers; crc, write, fsync, rename, fsync dir): \(fmt(wt * 1000, 0)) ms, \(result.bytes) bytes = \(fmt(Double(result.bytes) / wt / 1e6, 0)) MB/s")
    let l0 = now()
    let loaded = try store.loadNewest()
    let lt = now() - l0
    print("checkpoint load + verify (warm cache): \(fmt(lt * 1000, 0)) ms (\(loaded.checkpoint?.engineState.count ?? 0) bytes)")
    removeTree(path)
}
