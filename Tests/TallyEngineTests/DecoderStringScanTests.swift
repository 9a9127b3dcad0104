@testable import TallyEngine
import Testing

// MARK: - Where a string scan stops

/// `Scanner.firstSpecial` is the inner loop of every JSON string the decoder reads: 16 bytes at a
/// time (SSE2), then 8 (a word), then 1. A wrong mask bit, a wrong offset or a read that stops
/// short at any of the three steps would end a string early or run past its closing quote, so
/// each step is checked against a byte-by-byte reference at every offset and on the bytes either
/// side of each boundary (0x1F/0x20, 0x7F/0x80, the neighbours of `"` and `\`).
@Suite("Decoder: the string scan's first special byte")
struct DecoderStringScanTests {
    /// The byte-by-byte definition: `"`, `\`, a control character or non-ASCII.
    static func reference(_ bytes: [UInt8], from start: Int) -> Int {
        var i = start
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x22 || c == 0x5C || c < 0x20 || c >= 0x80 { return i }
            i += 1
        }
        return bytes.count
    }

    /// `firstSpecial` over exactly `bytes` (the buffer ends where they end), as an offset.
    static func scanned(_ bytes: [UInt8], from start: Int) -> Int {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(bytes.count, 1))
        defer { p.deallocate() }
        p.initialize(from: bytes, count: bytes.count)
        return Scanner.firstSpecial(p + start, p + bytes.count) - UnsafePointer(p)
    }

    @Test("each kind of special byte is found at every offset of a 0- to 48-byte run")
    func everyOffset() {
        for special: UInt8 in [0x22, 0x5C, 0x00, 0x0A, 0x1F, 0x80, 0xC3, 0xFF] {
            for length in 0...48 {
                for at in 0...length {   // `at == length`: no special byte at all
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    if at < length { bytes[at] = special }
                    #expect(Self.scanned(bytes, from: 0) == at, "special \(special) at \(at) of \(length)")
                }
            }
        }
    }

    @Test("the bytes beside each boundary are plain: space, DEL, !, #, [ and ]")
    func boundaryNeighboursArePlain() {
        let plain: [UInt8] = [0x20, 0x7F, 0x21, 0x23, 0x5B, 0x5D]
        for length in 0...40 {
            let bytes = (0..<length).map { plain[$0 % plain.count] }
            #expect(Self.scanned(bytes, from: 0) == length)
        }
    }

    @Test("random runs with random starts stop where the byte-by-byte scan stops")
    func randomRunsMatchTheReference() {
        var rng = SplitMix(state: 0x5CA9_0016)
        let edges: [UInt8] = [0x1F, 0x20, 0x21, 0x22, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xE2, 0x00]
        for _ in 0..<5_000 {
            let length = Int(rng.below(81))
            let bytes: [UInt8] = (0..<length).map { _ in
                rng.below(12) == 0 ? edges[Int(rng.below(Int64(edges.count)))] : UInt8(0x20 + rng.below(0x5F))
            }
            let start = length == 0 ? 0 : Int(rng.below(Int64(length + 1)))
            #expect(Self.scanned(bytes, from: start) == Self.reference(bytes, from: start), "\(bytes) from \(start)")
        }
    }
}
