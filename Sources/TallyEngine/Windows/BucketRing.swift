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
///
/// Slot `b mod capacity` holds bucket `b` (the checkpoint writes the slots in that layout);
/// `headSlot` caches `head mod capacity` so the per-event path needs no integer division
/// (a 64-bit `idiv` is 15-40 cycles, and every event updated several rings).
struct BucketRing: Sendable, Equatable {
    enum Combine: UInt8, Sendable { case sum, min, max }

    let combine: Combine
    /// Bucket index of the newest slot; `Int64.min` while empty.
    private(set) var head: Int64 = .min
    /// `head mod capacity` (0 while empty): the slot of the newest bucket.
    private var headSlot = 0
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

    /// Equality of the observable state (`headSlot` is derived from `head`).
    static func == (a: BucketRing, b: BucketRing) -> Bool {
        a.combine == b.combine && a.head == b.head && a.slots == b.slots
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
    /// - Complexity: O(1) amortised; a division only when the ring starts or jumps by more
    ///   than its capacity.
    @inline(__always)
    @discardableResult
    mutating func add(_ b: Int64, _ v: Double) -> Bool {
        let n = slots.count
        let i: Int
        if head == .min || b > head {
            // Clear the slots the head passes (all of them after a jump past the capacity).
            if head != .min && b - head < Int64(n) {
                let steps = Int(b - head)
                let id = Self.identity(combine)
                var s = headSlot
                slots.withUnsafeMutableBufferPointer { buf in
                    for _ in 0..<steps {
                        s += 1
                        if s == n { s = 0 }
                        buf[s] = id
                    }
                }
                headSlot = s
            } else {
                if head != .min {
                    let id = Self.identity(combine)
                    slots.withUnsafeMutableBufferPointer { $0.update(repeating: id) }
                }
                headSlot = slot(b)
            }
            head = b
            i = headSlot
        } else {
            let back = head &- b
            if back >= Int64(n) { return false }
            let j = headSlot - Int(back)
            i = j < 0 ? j + n : j
        }
        slots.withUnsafeMutableBufferPointer { buf in
            switch combine {
            case .sum: buf[i] += v
            case .min: buf[i] = Swift.min(buf[i], v)
            case .max: buf[i] = Swift.max(buf[i], v)
            }
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
        if head != .min { headSlot = slot(head) }
    }
}
