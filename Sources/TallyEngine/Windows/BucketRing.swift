// MARK: - Bucket ring

/// A fixed number of consecutive time buckets ending at the newest bucket seen (`head`),
/// stored in a ring: the memory of one aggregate cell for one resolution.
///
/// Why a ring with a head instead of a dictionary: adding is an index computation and one
/// store, no hashing or allocation on the hot path; when `head` moves forward the slots it
/// passes are cleared (amortised O(1) per bucket of time). A bucket older than the ring
/// (`<= head - capacity`) is not stored here: the grand total and the coarser rings still
/// count it.
///
/// The bucket index is computed by the caller: right-closed `ceil(t / res)` for trailing
/// windows and instants (so `(T - 24h, T]` is exact when `T` is on the resolution), or a
/// calendar period index (left-closed, exact).
///
/// Memory: 8 bytes per slot.
struct BucketRing: Sendable, Equatable {
    enum Combine: UInt8, Sendable { case sum, min, max }

    let combine: Combine
    /// Bucket index of the newest slot; `Int64.min` while empty.
    private(set) var head: Int64 = .min
    private(set) var slots: [Double]

    init(capacity: Int, combine: Combine) {
        self.combine = combine
        slots = [Double](repeating: Self.identity(combine), count: max(capacity, 1))
    }

    static func identity(_ c: Combine) -> Double {
        switch c {
        case .sum: 0
        case .min: .infinity
        case .max: -.infinity
        }
    }

    var capacity: Int64 { Int64(slots.count) }

    /// The oldest bucket index the ring can answer for.
    var oldest: Int64 { head == .min ? .min : head - capacity + 1 }

    @inline(__always)
    private func slot(_ b: Int64) -> Int {
        let n = capacity
        let r = b % n
        return Int(r < 0 ? r + n : r)
    }

    /// Adds `v` to bucket `b`. Returns false when `b` is older than the ring.
    /// - Complexity: O(1) amortised.
    @inline(__always)
    @discardableResult
    mutating func add(_ b: Int64, _ v: Double) -> Bool {
        if head == .min {
            head = b
        } else if b > head {
            let steps = min(b - head, capacity)
            let id = Self.identity(combine)
            var k: Int64 = 1
            while k <= steps {
                slots[slot(head + k)] = id
                k += 1
            }
            head = b
        } else if b <= head - capacity {
            return false
        }
        let i = slot(b)
        switch combine {
        case .sum: slots[i] += v
        case .min: slots[i] = Swift.min(slots[i], v)
        case .max: slots[i] = Swift.max(slots[i], v)
        }
        return true
    }

    /// True when the ring holds every bucket after `lo` (i.e. `lo + 1 >= oldest`).
    func covers(after lo: Int64) -> Bool { head == .min || lo + 1 >= oldest || lo >= head }

    /// The combination of buckets `lo+1 ... hi` (clamped to what the ring holds); the
    /// identity when none. Callers check ``covers(after:)`` first.
    /// - Complexity: O(min(hi - lo, capacity)).
    func range(after lo: Int64, through hi: Int64) -> Double {
        var acc = Self.identity(combine)
        guard head != .min else { return acc }
        let from = Swift.max(lo + 1, oldest)
        let to = Swift.min(hi, head)
        guard from <= to else { return acc }
        var b = from
        while b <= to {
            let v = slots[slot(b)]
            switch combine {
            case .sum: acc += v
            case .min: acc = Swift.min(acc, v)
            case .max: acc = Swift.max(acc, v)
            }
            b += 1
        }
        return acc
    }

    /// The value of one bucket (identity when outside the ring).
    func value(_ b: Int64) -> Double {
        guard head != .min, b <= head, b >= oldest else { return Self.identity(combine) }
        return slots[slot(b)]
    }

    /// Restores a ring from a checkpoint.
    init(combine: Combine, head: Int64, slots: [Double]) {
        self.combine = combine
        self.head = head
        self.slots = slots
    }
}
