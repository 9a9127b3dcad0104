// MARK: - Counter-based randomness

/// Deterministic, counter-based pseudo-randomness for the simulator.
///
/// Why counter-based rather than a stateful generator: every attribute of every simulated
/// event is a pure function of `(seed, stream, a, b)`, so a source can be generated lazily
/// in any chunking (per hour, per day) and the expected report can recompute one day's
/// figures without replaying the stream. The mixer is SplitMix64's finaliser, which passes
/// BigCrush as a counter-mode generator; it is not cryptographic and need not be.
/// - Complexity: O(1), a handful of multiplications.
enum SimHash {
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A 64-bit hash of a seed, a stream id and two counters.
    @inline(__always)
    static func hash(_ seed: UInt64, _ stream: UInt64, _ a: UInt64, _ b: UInt64 = 0) -> UInt64 {
        mix(mix(mix(seed ^ mix(stream)) ^ a) ^ (b &* 0xD6E8_FEB8_6659_FD93))
    }

    /// A uniform double in [0, 1) from a hash.
    @inline(__always)
    static func unit(_ h: UInt64) -> Double { Double(h >> 11) * 0x1.0p-53 }

    /// A uniform integer in `0..<n` (n > 0) from a hash (multiply-shift, negligible bias).
    @inline(__always)
    static func below(_ h: UInt64, _ n: Int) -> Int {
        Int(h.multipliedFullWidth(by: UInt64(n)).high)
    }
}

// MARK: - Exact allocation helpers

enum Allocation {
    /// Splits `total` into integer parts proportional to `weights` (largest remainder,
    /// ties to the lower index), so the parts always sum to `total` exactly.
    /// - Complexity: O(n log n) for n weights.
    static func largestRemainder(_ total: Int, weights: [Double]) -> [Int] {
        precondition(total >= 0)
        let sum = weights.reduce(0, +)
        guard sum > 0, !weights.isEmpty else {
            var parts = [Int](repeating: 0, count: weights.count)
            if !parts.isEmpty { parts[0] = total }
            return parts
        }
        var parts = [Int](repeating: 0, count: weights.count)
        var remainders: [(Double, Int)] = []
        remainders.reserveCapacity(weights.count)
        var assigned = 0
        for (i, w) in weights.enumerated() {
            let exact = Double(total) * w / sum
            let whole = Int(exact.rounded(.down))
            parts[i] = whole
            assigned += whole
            remainders.append((exact - Double(whole), i))
        }
        remainders.sort { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
        var k = 0
        while assigned < total {
            parts[remainders[k % remainders.count].1] += 1
            assigned += 1
            k += 1
        }
        return parts
    }

    /// Whether item `j` of a sequence of `n` is one of the `k` chosen ones when `k` of `n`
    /// are spread evenly (Bresenham). Exactly `k` of `0..<n` are chosen, with no state.
    @inline(__always)
    static func chosen(_ j: Int, _ k: Int, _ n: Int) -> Bool {
        n > 0 && ((j + 1) * k) / n > (j * k) / n
    }

    /// How many of the first `j` items are chosen by ``chosen(_:_:_:)``.
    @inline(__always)
    static func chosenBefore(_ j: Int, _ k: Int, _ n: Int) -> Int { n > 0 ? (j * k) / n : 0 }

    /// A bijection of `0..<n` (affine: `(a·j + b) mod n` with `gcd(a, n) = 1`), used to
    /// scatter identifiers over time without storing a permutation.
    static func affine(seed: UInt64, n: Int) -> (a: Int, b: Int) {
        guard n > 1 else { return (1, 0) }
        var a = Int(SimHash.mix(seed) % UInt64(n))
        if a < 2 { a = 2 }
        while gcd(a, n) != 1 { a += 1; if a >= n { a = 1 } }
        return (a, Int(SimHash.mix(seed ^ 0xABCD) % UInt64(n)))
    }

    static func gcd(_ x: Int, _ y: Int) -> Int {
        var (a, b) = (x, y)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }
}

// MARK: - Math

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

enum SimMath {
    @inline(__always)
    static func pow(_ x: Double, _ y: Double) -> Double {
        x == 0 ? 0 : exp(y * log(x))
    }
}
