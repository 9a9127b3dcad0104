import Testing

@testable import TallyEngine

// MARK: - The dedup key's hash

/// Dedup keys are stored in checkpoints, so the hash may never change: the word-load tail of
/// `Murmur3.hash128` must give exactly what the byte-at-a-time tail (the reference below, the
/// original code) gave, for every tail length and alignment.
@Suite("Dedup key hash")
struct DedupKeyHashTests {
    /// The original MurmurHash3 x64-128 block loop with a byte-at-a-time tail.
    static func reference(_ data: UnsafeBufferPointer<UInt8>, _ h1: inout UInt64, _ h2: inout UInt64) {
        func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
        let c1: UInt64 = 0x87C3_7B91_1142_53D5
        let c2: UInt64 = 0x4CF5_AD43_2745_937F
        let n = data.count
        var i = 0
        var k1: UInt64 = 0
        var k2: UInt64 = 0
        while i + 16 <= n {
            var b1: UInt64 = 0, b2: UInt64 = 0
            for j in (0..<8).reversed() { b1 = b1 << 8 | UInt64(data[i + j]); b2 = b2 << 8 | UInt64(data[i + 8 + j]) }
            b1 &*= c1; b1 = rotl(b1, 31); b1 &*= c2; h1 ^= b1
            h1 = rotl(h1, 27); h1 &+= h2; h1 = h1 &* 5 &+ 0x52DC_E729
            b2 &*= c2; b2 = rotl(b2, 33); b2 &*= c1; h2 ^= b2
            h2 = rotl(h2, 31); h2 &+= h1; h2 = h2 &* 5 &+ 0x3849_5AB5
            i += 16
        }
        var j = n - 1
        while j >= i {
            let b = UInt64(data[j])
            if j - i >= 8 { k2 = (k2 << 8) | b } else { k1 = (k1 << 8) | b }
            j -= 1
        }
        if n - i > 8 { k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2 }
        if n - i > 0 { k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1 }
        h1 ^= UInt64(n); h2 ^= UInt64(n)
        h1 &+= h2; h2 &+= h1
        h1 = Murmur3.fmix(h1); h2 = Murmur3.fmix(h2)
        h1 &+= h2; h2 &+= h1
    }

    @Test("every length from 0 to 80 bytes at every offset hashes as the byte-at-a-time reference")
    func wordTailMatchesTheReference() {
        let bytes: [UInt8] = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        bytes.withUnsafeBufferPointer { all in
            for offset in 0..<8 {
                for n in 0...80 {
                    let slice = UnsafeBufferPointer(rebasing: all[offset..<(offset + n)])
                    var a1: UInt64 = 0x9E37_79B9_7F4A_7C15, a2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
                    var b1 = a1, b2 = a2
                    Murmur3.hash128(slice, &a1, &a2)
                    Self.reference(slice, &b1, &b2)
                    #expect(a1 == b1 && a2 == b2, "length \(n) at offset \(offset)")
                }
            }
        }
    }

    @Test("the key of a known source and id is the one earlier releases stored")
    func knownKey() {
        let source = Array("/ndxp/gw-05".utf8), id = Array("00000000-0435-4189-8878-fabf2afa134a".utf8)
        let key = source.withUnsafeBufferPointer { s in id.withUnsafeBufferPointer { EventKey(source: s, id: $0) } }
        var h1: UInt64 = 0x9E37_79B9_7F4A_7C15, h2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        source.withUnsafeBufferPointer { Self.reference($0, &h1, &h2) }
        id.withUnsafeBufferPointer { Self.reference($0, &h1, &h2) }
        #expect(key == EventKey(hi: h1, lo: h2))
    }
}
