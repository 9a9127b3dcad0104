// decode-bench: throughput of the CloudEvents decoder (decode + validate, no aggregation).
//
//   swift build -c release --product decode-bench
//   .build/release/decode-bench FILE.ndjson [--batch 100] [--passes 3]
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

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct Counts: Equatable {
    var events = 0, unrouted = 0, balances = 0, rejected = 0, frameRejects = 0
    var checksum: Int64 = 0
}

var decoder = EventDecoder()
var best = UInt64.max
var counts = Counts()
frameBytes.withUnsafeBytes { all in
    for pass in 1...options.passes {
        var c = Counts()
        let t0 = nowNanos()
        for r in frameRanges {
            let frame = UnsafeRawBufferPointer(rebasing: all[r])
            let frameError = decoder.decode(frame) { _, outcome in
                switch outcome {
                case .event(let e):
                    c.events += 1
                    c.checksum &+= e.time &+ Int64(e.fields.count) &+ Int64(e.id.count)
                case .unrouted: c.unrouted += 1
                case .balance: c.balances += 1
                case .rejected: c.rejected += 1
                }
            }
            if frameError != nil { c.frameRejects += 1 }
        }
        let dt = nowNanos() - t0
        if pass > 1 && c != counts { fail("decode-bench: outcome counts differ between passes") }
        counts = c
        best = min(best, dt)
        let elements = c.events + c.unrouted + c.balances + c.rejected
        print("pass \(pass): \(elements) elements in \(fmt(Double(dt) / 1e6, 1)) ms")
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
""")
