import Testing

@testable import TallyEngine

// MARK: - Bucket rings against a reference model

/// The ring caches the slot of its head instead of dividing per add; these tests hold it to a
/// plain model (a dictionary of the buckets the ring should still hold) and to the slot layout
/// the checkpoint writes (`b mod capacity`).
@Suite("Bucket rings")
struct BucketRingTests {
    /// What the ring must answer: the combination per bucket of every add within the capacity
    /// of the newest bucket seen.
    struct Model {
        let capacity: Int64
        let combine: BucketRing.Combine
        var head: Int64 = .min
        var buckets: [Int64: Double] = [:]

        mutating func add(_ b: Int64, _ v: Double) -> Bool {
            if head == .min || b > head { head = b }
            buckets = buckets.filter { $0.key > head - capacity }
            guard b > head - capacity else { return false }
            let old = buckets[b] ?? BucketRing.identity(combine)
            switch combine {
            case .sum: buckets[b] = old + v
            case .min: buckets[b] = min(old, v)
            case .max: buckets[b] = max(old, v)
            }
            return true
        }
    }

    @Test("adds forward, backward, past the capacity and at negative buckets give the model's values",
          arguments: [BucketRing.Combine.sum, .min, .max], [1, 2, 7, 64])
    func matchesTheModel(combine: BucketRing.Combine, capacity: Int) {
        var rng = SplitMix(state: UInt64(capacity) &* 31 &+ UInt64(combine.rawValue))
        var ring = BucketRing(capacity: capacity, combine: combine)
        var model = Model(capacity: Int64(capacity), combine: combine)
        var b: Int64 = -3 * Int64(capacity) - 5
        for step in 0..<4000 {
            switch rng.below(10) {
            case 0: b += Int64(capacity) + rng.below(3 * Int64(capacity) + 1)  // jump past the ring
            case 1, 2: b -= rng.below(Int64(capacity) + 2)                   // late, maybe too old
            case 3, 4, 5: b += rng.below(3)                                   // the usual: same or next
            default: break
            }
            let v = Double(rng.below(1000)) - 500
            #expect(ring.add(b, v) == model.add(b, v), "step \(step): accepted bucket \(b)")
            #expect(ring.head == model.head)
            for q in (model.head - Int64(capacity) - 1)...(model.head + 1) {
                #expect(ring.value(q) == (model.buckets[q] ?? BucketRing.identity(combine)), "step \(step): bucket \(q)")
            }
        }
    }

    @Test("slot b mod capacity holds bucket b, also after a restore")
    func slotLayoutIsTheCheckpointOne() {
        var ring = BucketRing(capacity: 5, combine: .sum)
        for b in Int64(-7)...Int64(3) { ring.add(b, Double(b)) }
        for b in Int64(-1)...Int64(3) {
            let s = Int(((b % 5) + 5) % 5)
            #expect(ring.slots[s] == Double(b))
        }
        var restored = BucketRing(combine: .sum, head: ring.head, slots: ring.slots)
        #expect(restored == ring)
        restored.add(4, 10)
        ring.add(4, 10)
        restored.add(2, 1)
        ring.add(2, 1)
        #expect(restored == ring)
        #expect(restored.value(4) == 10 && restored.value(2) == 3 && restored.value(-1) == 0)
    }

    @Test("a flat ring in an aggregate's block keeps exactly the state of a bucket ring, also after a copy in",
          arguments: [BucketRing.Combine.sum, .min, .max], [1, 3, 64])
    func flatRingMatchesBucketRing(combine: BucketRing.Combine, capacity: Int) {
        var rng = SplitMix(state: UInt64(capacity) &* 131 &+ UInt64(combine.rawValue))
        let block = UnsafeMutableRawPointer.allocate(byteCount: 8 * FlatRing.words(capacity: capacity), alignment: 8)
        defer { block.deallocate() }
        let flat = FlatRing(base: block, capacity: capacity, combine: combine)
        flat.initialize()
        var ring = BucketRing(capacity: capacity, combine: combine)
        #expect(flat.ring == ring)
        var b: Int64 = -2 * Int64(capacity) - 3
        for step in 0..<3000 {
            switch rng.below(10) {
            case 0: b += Int64(capacity) + rng.below(3 * Int64(capacity) + 1)
            case 1, 2: b -= rng.below(Int64(capacity) + 2)
            case 3, 4, 5: b += rng.below(3)
            default: break
            }
            let v = Double(rng.below(1000)) - 500
            #expect(flat.add(b, v) == ring.add(b, v), "step \(step)")
            #expect(flat.ring == ring, "step \(step)")
            #expect(flat.oldest == ring.oldest)
            let lo = b - rng.below(Int64(capacity) + 3), hi = b + rng.below(3)
            #expect(flat.covers(after: lo) == ring.covers(after: lo))
            #expect(flat.range(after: lo, through: hi) == ring.range(after: lo, through: hi))
            #expect(flat.value(lo) == ring.value(lo))
            if step % 500 == 499 { flat.initialize(from: ring) }  // as a restore does: the head slot is rederived
        }
    }
}
