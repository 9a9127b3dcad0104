@testable import TallyEngine

// MARK: - A seeded generator for the tests

/// SplitMix64 over the simulator's own mixer (`SimHash.mix` is SplitMix64's step and finaliser),
/// so a test that draws from it reproduces from its seed when it fails.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        let z = SimHash.mix(state)
        state &+= 0x9E37_79B9_7F4A_7C15
        return z
    }

    /// A value in `0..<n` (n > 0; modulo bias is irrelevant for test walks).
    mutating func below(_ n: Int64) -> Int64 { Int64(next() % UInt64(n)) }
}
