// decode-bench: throughput of the CloudEvents decoder (decode + validate, no aggregation).
//
//   swift build -c release --product decode-bench
//   .build/release/decode-bench FILE.ndjson [--batch 100] [--passes 3]
//   .build/release/decode-bench FILE.ndjson --mutate 1000000 [--seed 1]
//
// `--mutate N` is a smoke fuzzer instead of a benchmark: N frames made of random lines (some
// as batches) with 1-8 random byte edits each, decoded by one reused decoder; it checks the
// decoder's contract on each (no element reported after a frame rejection, indices 0, 1, ...)
// and prints how the frames were classified.
//
// Reads an NDJSON file into memory, builds the frames once (each line a frame, or arrays of
// `--batch` lines), then times `EventDecoder.decode` over all of them, `--passes` times, and
// prints events/s and ns/event of the best pass plus the outcome counts (which must not vary).
import TallyEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Arguments

struct Options {
    var file = ""
    var batch = 1
    var passes = 3
    var mutate = 0
    var seed: UInt64 = 1
}

func fail(_ message: String, code: Int32 = 1) -> Never {
    var m = message + "\n"
    m.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(code)
}

func usage() -> Never { fail("usage: decode-bench FILE.ndjson [--batch N] [--passes N]", code: 2) }

/// `x` with `decimals` digits after the point (no Foundation).
func fmt(_ x: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let v = (x * scale).rounded() / scale
    var s = String(Int64(v.rounded(.towardZero)))
    if decimals > 0 {
        let frac = Int64(((v - v.rounded(.towardZero)) * scale).rounded().magnitude)
        let f = String(frac)
        s += "." + String(repeating: "0", count: max(0, decimals - f.count)) + f
    }
    return s
}

var options = Options()
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--batch", "-b": options.batch = args.popFirst().flatMap { Int($0) } ?? 0
    case "--passes", "-r": options.passes = args.popFirst().flatMap { Int($0) } ?? 0
    case "--mutate": options.mutate = args.popFirst().flatMap { Int($0) } ?? 0
    case "--seed": options.seed = args.popFirst().flatMap { UInt64($0) } ?? 1
    default: if options.file.isEmpty && !a.hasPrefix("-") { options.file = a } else { usage() }
    }
}
guard !options.file.isEmpty, options.batch >= 1, options.passes >= 1 else { usage() }

// MARK: - Input

func readFile(_ path: String) -> [UInt8] {
    guard let f = fopen(path, "rb") else {
        fail("decode-bench: cannot open \(path)")
    }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

let bytes = readFile(options.file)
var lines: [ArraySlice<UInt8>] = []
var lineStart = 0
for i in bytes.indices where bytes[i] == UInt8(ascii: "\n") {
    if i > lineStart { lines.append(bytes[lineStart..<i]) }
    lineStart = i + 1
}
if lineStart < bytes.count { lines.append(bytes[lineStart...]) }

// MARK: - Mutation smoke fuzzing

/// SplitMix64: a small deterministic generator, so a failing seed can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

if options.mutate > 0 {
    var rng = SplitMix(state: options.seed)
    var decoder = EventDecoder()
    let tokens: [[UInt8]] = [Array("[".utf8), Array("{".utf8), Array("\\u".utf8), Array("\"".utf8), Array("\\".utf8),
                             [0xFF], [0xED, 0xA0, 0x80], [0xF0, 0x9F], Array("1e999".utf8), Array("-".utf8), [0],
                             Array("99999999999999999999".utf8), Array("\\ud800".utf8), Array(",".utf8), Array("null".utf8)]
    var frameCodes: [String: Int] = [:]
    var elementCodes: [String: Int] = [:]
    var accepted = 0
    for _ in 0..<options.mutate {
        let n = Int.random(in: 0...3, using: &rng) == 0 ? Int.random(in: 2...5, using: &rng) : 1
        var frame: [UInt8] = n > 1 ? [UInt8(ascii: "[")] : []
        for j in 0..<n {
            if j > 0 { frame.append(UInt8(ascii: ",")) }
            frame += lines[Int.random(in: 0..<lines.count, using: &rng)]
        }
        if n > 1 { frame.append(UInt8(ascii: "]")) }
        for _ in 0..<Int.random(in: 1...8, using: &rng) where !frame.isEmpty {
            let at = Int.random(in: 0..<frame.count, using: &rng)
            switch Int.random(in: 0...5, using: &rng) {
            case 0: frame[at] = UInt8.random(in: 0...255, using: &rng)
            case 1: frame.insert(UInt8.random(in: 0...255, using: &rng), at: at)
            case 2: frame.remove(at: at)
            case 3: frame.removeLast(frame.count - at)
            case 4: frame.insert(contentsOf: tokens[Int.random(in: 0..<tokens.count, using: &rng)], at: at)
            default: frame.insert(contentsOf: frame[at..<min(frame.count, at + Int.random(in: 1...40, using: &rng))], at: at)
            }
        }
        var indices: [Int] = []
        // An exact-size allocation per frame, so that AddressSanitizer (`--sanitize=address`)
        // catches any read past the frame's end.
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: max(frame.count, 1), alignment: 1)
        defer { raw.deallocate() }
        frame.withUnsafeBytes { raw.copyMemory(from: $0) }
        let frameError = decoder.decode(UnsafeRawBufferPointer(rebasing: raw[0..<frame.count])) { i, outcome in
            indices.append(i)
            switch outcome {
            case .rejected(let r): elementCodes[r.code.rawValue, default: 0] += 1
            case .event(let e): _ = e.dedupKey; accepted += 1
            default: accepted += 1
            }
        }
        if let frameError {
            frameCodes[frameError.code.rawValue, default: 0] += 1
            if !indices.isEmpty { fail("contract violated: elements reported for a rejected frame (seed \(options.seed))") }
        } else if indices != Array(0..<indices.count) {
            fail("contract violated: indices \(indices) (seed \(options.seed))")
        }
    }
    print("mutated frames: \(options.mutate) (seed \(options.seed)), elements accepted: \(accepted)")
    print("frame rejections: \(frameCodes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
    print("element rejections: \(elementCodes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
    exit(0)
}

/// All frames in one contiguous buffer (like a receive loop would see them, one after another).
var frameBytes: [UInt8] = []
var frameRanges: [Range<Int>] = []
frameBytes.reserveCapacity(bytes.count + lines.count / options.batch * 2 + 2)
var k = 0
while k < lines.count {
    let start = frameBytes.count
    if options.batch == 1 {
        frameBytes.append(contentsOf: lines[k])
        k += 1
    } else {
        frameBytes.append(UInt8(ascii: "["))
        let stop = min(k + options.batch, lines.count)
        for j in k..<stop {
            if j > k { frameBytes.append(UInt8(ascii: ",")) }
            frameBytes.append(contentsOf: lines[j])
        }
        frameBytes.append(UInt8(ascii: "]"))
        k = stop
    }
    frameRanges.append(start..<frameBytes.count)
}

// MARK: - Timing

func nowNanos(_ clock: clockid_t = CLOCK_MONOTONIC) -> UInt64 {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct Counts: Equatable {
    var events = 0, unrouted = 0, balances = 0, rejected = 0, frameRejects = 0
    var checksum: Int64 = 0
}

var decoder = EventDecoder()
var best = UInt64.max
var bestCPU = UInt64.max
var counts = Counts()
frameBytes.withUnsafeBytes { all in
    for pass in 1...options.passes {
        var c = Counts()
        let t0 = nowNanos()
        let c0 = nowNanos(CLOCK_THREAD_CPUTIME_ID)
        for r in frameRanges {
            let frame = UnsafeRawBufferPointer(rebasing: all[r])
            // The by-address form the engine uses (events read in place, not copied).
            let frameError = decoder.decode(frame, event: { _, e in
                c.events += 1
                c.checksum &+= e.pointee.time &+ Int64(e.pointee.fields.count) &+ Int64(e.pointee.id.count)
            }, other: { _, outcome in
                switch outcome {
                case .event: c.events += 1
                case .unrouted: c.unrouted += 1
                case .balance: c.balances += 1
                case .rejected: c.rejected += 1
                }
            })
            if frameError != nil { c.frameRejects += 1 }
        }
        let dt = nowNanos() - t0
        let cpu = nowNanos(CLOCK_THREAD_CPUTIME_ID) - c0
        bestCPU = min(bestCPU, cpu)
        if pass > 1 && c != counts { fail("decode-bench: outcome counts differ between passes") }
        counts = c
        best = min(best, dt)
        let elements = c.events + c.unrouted + c.balances + c.rejected
        print("pass \(pass): \(elements) elements in \(fmt(Double(dt) / 1e6, 1)) ms (cpu \(fmt(Double(cpu) / 1e6, 1)) ms), \(fmt(Double(elements) / (Double(dt) / 1e9), 0)) events/s")
    }
}

let elements = counts.events + counts.unrouted + counts.balances + counts.rejected
let secs = Double(best) / 1e9
let mb = Double(frameBytes.count) / 1e6
print("""
file: \(options.file)  frames: \(frameRanges.count)  events per frame: \(options.batch)  bytes: \(frameBytes.count)
outcomes: events \(counts.events), unrouted \(counts.unrouted), balances \(counts.balances), rejected \(counts.rejected), frame rejects \(counts.frameRejects)
best of \(options.passes): \(fmt(secs, 3)) s  \(fmt(Double(elements) / secs, 0)) events/s  \
\(fmt(Double(best) / Double(max(elements, 1)), 1)) ns/event  \(fmt(mb / secs, 0)) MB/s
best thread CPU time: \(fmt(Double(bestCPU) / Double(max(elements, 1)), 1)) ns/event (\(fmt(Double(elements) / (Double(bestCPU) / 1e9), 0)) events/s of CPU)
""")
