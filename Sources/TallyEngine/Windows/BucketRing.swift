import CTallyCRC

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

    /// Combines the values `read(b)` of buckets `from ... to` (the identity when empty): the one
    /// fold behind ``range(after:through:)`` of both ring forms.
    /// - Complexity: O(to - from + 1).
    @inline(__always)
    static func fold(_ c: Combine, from: Int64, through to: Int64, _ read: (Int64) -> Double) -> Double {
        var acc = identity(c)
        var b = from
        while b <= to {
            let v = read(b)
            switch c {
            case .sum: acc += v
            case .min: acc = Swift.min(acc, v)
            case .max: acc = Swift.max(acc, v)
            }
            b += 1
        }
        return acc
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
        guard head != .min else { return Self.identity(combine) }
        return Self.fold(combine, from: Swift.max(lo + 1, oldest), through: Swift.min(hi, head)) { slots[slot($0)] }
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

// MARK: - Flat ring

/// A ``BucketRing`` laid out in memory its owner allocates (an aggregate cell's block): the
/// engine's per-event form of a ring. Layout at `base`: `head` (Int64), `head mod capacity`
/// (Int64), then `capacity` slots (Double), slot `b mod capacity` holding bucket `b` — the same
/// state and layout as ``BucketRing``, which stays the value form (checkpoint restore, tests).
///
/// Why: a `BucketRing` inside a cell inside an array of cells cost a uniqueness check and a
/// bounds check per array level on every event (about 11 `swift_isUniquelyReferenced` calls per
/// `ndxp.transaction`); here an update is plain loads and stores. The owner guarantees `base`
/// points at ``words(capacity:)`` 8-byte words for as long as the view is used.
struct FlatRing {
    let base: UnsafeMutableRawPointer
    /// Number of slots (at least 1).
    let capacity: Int
    let combine: BucketRing.Combine

    @inline(__always)
    init(base: UnsafeMutableRawPointer, capacity: Int, combine: BucketRing.Combine) {
        self.base = base
        self.capacity = max(capacity, 1)
        self.combine = combine
    }

    /// 8-byte words a ring of `capacity` slots takes (head, head slot, slots).
    static func words(capacity: Int) -> Int { 2 + max(capacity, 1) }

    /// Bucket index of the newest slot; `Int64.min` while empty.
    var head: Int64 {
        @inline(__always) get { base.load(as: Int64.self) }
        @inline(__always) nonmutating set { base.storeBytes(of: newValue, as: Int64.self) }
    }

    private var headSlot: Int {
        @inline(__always) get { Int(base.load(fromByteOffset: 8, as: Int64.self)) }
        @inline(__always) nonmutating set { base.storeBytes(of: Int64(newValue), toByteOffset: 8, as: Int64.self) }
    }

    /// Slot `i` (0 ..< capacity).
    @inline(__always)
    func slot(at i: Int) -> Double { base.load(fromByteOffset: 16 &+ 8 &* i, as: Double.self) }

    @inline(__always)
    private func set(_ i: Int, _ v: Double) { base.storeBytes(of: v, toByteOffset: 16 &+ 8 &* i, as: Double.self) }

    @inline(__always)
    private func slot(_ b: Int64) -> Int {
        let n = Int64(capacity)
        let r = b % n
        return Int(r < 0 ? r + n : r)
    }

    /// Writes an empty ring.
    func initialize() {
        head = .min
        headSlot = 0
        let id = BucketRing.identity(combine)
        for i in 0..<capacity { set(i, id) }
    }

    /// Writes `ring`'s state (same capacity and combine; the caller checked).
    func initialize(from ring: BucketRing) {
        precondition(ring.slots.count == capacity && ring.combine == combine, "ring shape mismatch")
        head = ring.head
        headSlot = ring.head == .min ? 0 : slot(ring.head)
        for (i, v) in ring.slots.enumerated() { set(i, v) }
    }

    /// The value form (checkpoint, reload donor). - Complexity: O(capacity), allocates.
    var ring: BucketRing {
        BucketRing(combine: combine, head: head, slots: (0..<capacity).map { slot(at: $0) })
    }

    /// The oldest bucket index the ring can answer for.
    var oldest: Int64 { head == .min ? .min : head - Int64(capacity) + 1 }

    /// Adds `v` to bucket `b`; exactly ``BucketRing/add(_:_:)``. Returns false when `b` is older
    /// than the ring.
    /// - Complexity: O(1) amortised; a division only when the ring starts or jumps by more
    ///   than its capacity.
    @inline(__always)
    @discardableResult
    func add(_ b: Int64, _ v: Double) -> Bool {
        let n = capacity
        let h = head
        let i: Int
        if h == .min || b > h {
            let id = BucketRing.identity(combine)
            if h != .min && b - h < Int64(n) {
                // Clear the slots the head passes.
                var s = headSlot
                for _ in 0..<Int(b - h) {
                    s += 1
                    if s == n { s = 0 }
                    set(s, id)
                }
                headSlot = s
                i = s
                // The line the head reaches 8 buckets from now: in a long ring (86,400 seconds)
                // it was last touched a whole window ago, and its miss on the advance that
                // reaches it was ~45% of `update`'s samples (`perf annotate`, b100).
                if n > 16 {
                    let ahead = s &+ 8
                    tally_prefetch(base + (16 &+ 8 &* (ahead >= n ? ahead &- n : ahead)))
                }
            } else {
                if h != .min { for k in 0..<n { set(k, id) } }
                i = slot(b)
                headSlot = i
            }
            head = b
        } else {
            let back = h &- b
            if back >= Int64(n) { return false }
            let j = headSlot - Int(back)
            i = j < 0 ? j + n : j
        }
        let old = slot(at: i)
        switch combine {
        case .sum: set(i, old + v)
        case .min: set(i, Swift.min(old, v))
        case .max: set(i, Swift.max(old, v))
        }
        return true
    }

    /// True when the ring holds every bucket after `lo`; see ``BucketRing/covers(after:)``.
    func covers(after lo: Int64) -> Bool { head == .min || lo + 1 >= oldest || lo >= head }

    /// The combination of buckets `lo+1 ... hi`; see ``BucketRing/range(after:through:)``.
    /// - Complexity: O(min(hi - lo, capacity)).
    func range(after lo: Int64, through hi: Int64) -> Double {
        let h = head
        guard h != .min else { return BucketRing.identity(combine) }
        return BucketRing.fold(combine, from: Swift.max(lo + 1, oldest), through: Swift.min(hi, h)) { slot(at: slot($0)) }
    }

    /// The value of one bucket (identity when outside the ring).
    func value(_ b: Int64) -> Double {
        let h = head
        guard h != .min, b <= h, b >= oldest else { return BucketRing.identity(combine) }
        return slot(at: slot(b))
    }
}
