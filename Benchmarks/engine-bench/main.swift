// engine-bench: events/s per core through the engine on the national pipeline, and bytes per
// tracked key. A benchmark, not a test: it prints figures.
//
//   swift build -c release --product engine-bench
//   .build/release/engine-bench FILE.ndjson [--pipeline Pipelines/national-dx.yaml] [--batch 100] [--passes 2] [--keys 1000000]
//                              [--only single|batched|aggregate|keys]   (one section alone, e.g. under `perf record`)
//                              [--no-read-ahead]   (ingest without each frame's key read ahead, `FrameKeyHint`)
//
// 1. decode + validate + dedup + aggregate: `Engine.ingest` over in-memory frames (one event per
//    frame, or arrays of `--batch` events);
// 2. aggregate only: `Engine.apply(event:)` (dedup + aggregation) over events decoded beforehand;
// 3. bytes per tracked key (dedup id, distinct value, state-table row): RSS growth over
//    `--keys` new keys, divided by the number of keys.
import Foundation
import TallyEngine

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Helpers

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// CPU time of this thread: on a shared machine, time-slicing inflates wall time but not this.
func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Resident set size, read with read(2) (procfs files report size 0, so whole-file readers
/// see them empty).
func rssBytes() -> Int {
    let fd = open("/proc/self/statm", O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 256)
    let n = read(fd, &buf, 255)
    guard n > 0 else { return 0 }
    let parts = String(decoding: buf[0..<n], as: UTF8.self).split(separator: " ")
    return (Int(parts[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func fmt(_ x: Double, _ d: Int = 0) -> String { String(format: "%.\(d)f", x) }

func fail(_ m: String) -> Never {
    FileHandle.standardError.write((m + "\n").data(using: .utf8)!)
    exit(2)
}

// MARK: - Arguments

var file = ""
var pipelinePath = "Pipelines/national-dx.yaml"
var batch = 100
var passes = 2
var keyCount = 1_000_000
/// Runs one section alone (profiling): nil runs them all.
var only: String?
/// Read each frame's key ahead and prefetch two frames ahead, as the daemon's loop does.
var readAhead = true
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--pipeline":
        guard let v = args.popFirst() else { fail("--pipeline needs a path") }
        pipelinePath = v
    case "--batch", "--passes", "--keys":
        guard let v = args.popFirst().flatMap({ Int($0) }), v > 0 else { fail("\(a) needs a positive number") }
        if a == "--batch" { batch = v } else if a == "--passes" { passes = v } else { keyCount = v }
    case "--no-read-ahead":
        readAhead = false
    case "--only":
        guard let v = args.popFirst(), ["single", "batched", "aggregate", "keys"].contains(v) else { fail("--only needs single, batched, aggregate or keys") }
        only = v
    default:
        if a.hasPrefix("-") { fail("usage: engine-bench FILE.ndjson [--pipeline P] [--batch N] [--passes N] [--keys N] [--only SECTION] [--no-read-ahead]") }
        file = a
    }
}
guard !file.isEmpty, let data = FileManager.default.contents(atPath: file) else {
    fail("usage: engine-bench FILE.ndjson [--pipeline P] [--batch N] [--passes N] [--keys N]")
}
let pipeline: Pipeline
do { pipeline = try Pipeline.load(path: pipelinePath) } catch { fail("\(error)") }

// MARK: - Frames

let bytes = [UInt8](data)
var lines: [Range<Int>] = []
var start = 0
for (i, b) in bytes.enumerated() where b == 0x0A {
    if i > start { lines.append(start..<i) }
    start = i + 1
}
if start < bytes.count { lines.append(start..<bytes.count) }
// Batched frames: "[" + lines joined by "," + "]".
var batched: [UInt8] = []
var batchRanges: [Range<Int>] = []
var k = 0
while k < lines.count {
    let s = batched.count
    batched.append(0x5B)
    for (j, r) in lines[k..<min(k + batch, lines.count)].enumerated() {
        if j > 0 { batched.append(0x2C) }
        batched.append(contentsOf: bytes[r])
    }
    batched.append(0x5D)
    batchRanges.append(s..<batched.count)
    k += batch
}
print("stream: \(lines.count) events, \(bytes.count) bytes, pipeline \(pipeline.name) (\(pipeline.indicators.count) indicators)")

// MARK: - 1. decode + validate + aggregate

func runIngest(_ buffer: [UInt8], _ frames: [Range<Int>], readAhead: Bool) -> (Double, Double, Engine, Int) {
    let engine = Engine(pipeline: pipeline)
    var accepted = 0
    let t0 = now(), c0 = cpuNow()
    // As the daemon: a drain of up to 1,024 frames reads each frame's key (FrameKeyHint),
    // then each frame is ingested with its hint while the lines of the frame two ahead load.
    var hints: [FrameKeyHint?] = []
    hints.reserveCapacity(1024)
    buffer.withUnsafeBytes { raw in
        var d = 0
        while d < frames.count {
            let drain = frames[d..<min(d + 1024, frames.count)]
            hints.removeAll(keepingCapacity: true)
            if readAhead { for r in drain { hints.append(FrameKeyHint(frame: UnsafeRawBufferPointer(rebasing: raw[r]))) } }
            for (k, r) in drain.enumerated() {
                var hint: FrameKeyHint? = nil
                if readAhead {
                    if k + 2 < hints.count, let h = hints[k + 2] { engine.prefetch(h) }
                    hint = hints[k]
                }
                let rep = engine.ingest(UnsafeRawBufferPointer(rebasing: raw[r]), origin: .any, keyHint: hint)
                accepted += rep.accepted
            }
            d += drain.count
        }
    }
    return (now() - t0, cpuNow() - c0, engine, accepted)
}

var lastEngine: Engine?
/// True when section `name` runs (every section unless `--only` names another).
@MainActor func runs(_ name: String) -> Bool { only == nil || only == name }

for (name, label, buf, frames) in [("single", "1 event/frame", bytes, lines), ("batched", "\(batch) events/frame", batched, batchRanges)] where runs(name) {
    var best = Double.infinity, bestCPU = Double.infinity
    var acc = 0
    for _ in 0..<passes {
        let (dt, cpu, e, a) = runIngest(buf, frames, readAhead: readAhead)
        best = min(best, dt)
        bestCPU = min(bestCPU, cpu)
        acc = a
        lastEngine = e
    }
    print("decode+validate+aggregate, \(label): \(fmt(Double(lines.count) / best)) events/s (\(fmt(best * 1e9 / Double(lines.count), 1)) ns/event, accepted \(acc); thread CPU \(fmt(bestCPU * 1e9 / Double(lines.count), 1)) ns/event)")
}

if only == nil, let e = lastEngine {
    let s = e.snapshot()
    let pick = ["dvc.online_payments", "dvc.online_payments_vnd", "dvc.portal_accounts", "dvc.portal_dossiers",
                "society.mobile_money_customers", "society.mobile_money_rural_customers"]
    print("as_of \(String(decoding: s.json(seq: 0, publishedAt: 0), as: UTF8.self).split(separator: ",")[2])")
    print("check: " + pick.map { "\($0)=\(s[$0]?.value?.description ?? "null")" }.joined(separator: " "))
    let t0 = now()
    var n = 0
    for _ in 0..<100 { n += e.snapshot().json(seq: 1, publishedAt: 0).count }
    print("snapshot + JSON: \(fmt((now() - t0) / 100 * 1e6, 1)) µs (\(n / 100) bytes)")
    let t1 = now()
    let capture = e.captureCheckpoint()
    let t2 = now()
    let ck = capture.sealed()
    print("checkpoint: \(ck.count) bytes in \(fmt((now() - t1) * 1e3, 1)) ms (capture on the engine's thread \(fmt((t2 - t1) * 1e3, 1)) ms, then seal \(fmt((now() - t2) * 1e3, 1)) ms)")
}

// MARK: - 2. aggregate only (pre-decoded events)

/// Events decoded once; their string views point into `bytes` (the stream has no escapes) and
/// lists are copied to storage owned here.
if runs("aggregate") {
    var decoded: [Event] = []
    decoded.reserveCapacity(lines.count)
    var decoder = EventDecoder(catalog: pipeline.catalog)
    var owned: [UnsafeMutablePointer<StringView>] = []
    var escapes = 0
    bytes.withUnsafeBytes { raw in
        let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let end = base + raw.count
        func inside(_ v: StringView) -> Bool { v.start >= base && v.start + v.count <= end }
        for r in lines {
            _ = decoder.decode(UnsafeRawBufferPointer(rebasing: raw[r])) { _, outcome in
                guard case .event(var ev) = outcome else { return }
                for i in 0..<ev.fields.count {
                    switch ev.fields[i] {
                    case .string(let s): if !inside(s) { escapes += 1 }
                    case .strings(let l):
                        let p = UnsafeMutablePointer<StringView>.allocate(capacity: max(l.count, 1))
                        for (j, v) in l.enumerated() { (p + j).initialize(to: v); if !inside(v) { escapes += 1 } }
                        owned.append(p)
                        ev.fields[i] = .strings(StringList(base: UnsafePointer(p), count: l.count))
                    default: break
                    }
                }
                if !inside(ev.source) || !inside(ev.id) { escapes += 1 }
                decoded.append(ev)
            }
        }
    }
    if escapes > 0 { print("warning: \(escapes) strings were unescaped into decoder scratch; aggregate-only figures skip nothing but may read stale views") }
    bytes.withUnsafeBytes { _ in
        var best = Double.infinity, bestCPU = Double.infinity
        for _ in 0..<passes {
            let engine = Engine(pipeline: pipeline)
            let t0 = now(), c0 = cpuNow()
            for ev in decoded { engine.apply(event: ev) }
            best = min(best, now() - t0)
            bestCPU = min(bestCPU, cpuNow() - c0)
        }
        print("aggregate only (dedup + every indicator), pre-decoded: \(fmt(Double(decoded.count) / best)) events/s (\(fmt(best * 1e9 / Double(decoded.count), 1)) ns/event; thread CPU \(fmt(bestCPU * 1e9 / Double(decoded.count), 1)) ns/event)")
    }
}

// MARK: - 3. bytes per tracked key

/// RSS growth per new key of each kind, on a pipeline holding only that kind of state.
func perKey(_ yaml: String, keys keyCount: Int, _ make: (Int, inout [UInt8]) -> Void) -> Double {
    let p = try! Pipeline.parse(yaml: yaml)
    var o = EngineOptions()
    o.dedupHorizon = 7 * EngineOptions.day
    let engine = Engine(pipeline: p, options: o)
    var frame: [UInt8] = []
    // Warm up the allocator and the engine's fixed structures.
    for i in 0..<1000 { make(i, &frame); _ = engine.ingest(frame) }
    let before = rssBytes()
    for i in 1000..<(1000 + keyCount) { make(i, &frame); _ = engine.ingest(frame) }
    let after = rssBytes()
    withExtendedLifetime(engine) {}
    return Double(after - before) / Double(keyCount)
}

func event(_ type: String, _ id: Int, _ data: String) -> [UInt8] {
    Array(#"{"specversion":"1.0","id":"k\#(id)","source":"/bench","type":"\#(type)","time":"2024-04-30T10:00:00+07:00","data":\#(data)}"#.utf8)
}

if runs("keys") {
    let dedupOnly = perKey("pipeline: k\nindicators:\n  - { id: n, unit: count, events: security.incident, aggregate: count }\n", keys: keyCount) { i, f in
        f = event("security.incident", i, #"{"incident":"i","system":"s"}"#)
    }
    let distinctKeys = perKey("pipeline: k\nindicators:\n  - { id: n, unit: count, events: welfare.payment.disbursed, aggregate: distinct(beneficiary) }\n", keys: keyCount) { i, f in
        f = event("welfare.payment.disbursed", i, #"{"beneficiary":"citizen-\#(i)","via_account":true,"amount_vnd":1}"#)
    }
    let rowKeys = perKey("pipeline: k\ntables:\n  s: { events: security.system.classified, key: system }\nindicators:\n  - { id: n, unit: count, table: s, aggregate: count }\n", keys: keyCount) { i, f in
        f = event("security.system.classified", i, #"{"system":"system-\#(i)","owner":"o","level_approved":true}"#)
    }
    print("bytes per key (RSS growth over \(keyCount) keys): dedup id \(fmt(dedupOnly)), distinct value \(fmt(distinctKeys - dedupOnly)) (+ its dedup id), state-table row \(fmt(rowKeys - dedupOnly)) (+ its dedup id); key strings ~12-13 bytes included")
}
