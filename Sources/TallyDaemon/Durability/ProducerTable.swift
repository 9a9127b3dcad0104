// MARK: - ProducerTable

/// Per acknowledged producer: the last durable batch sequence and the status reply sent for it.
///
/// This is what makes a retry idempotent. For a batch `(producer, sequence)`:
/// - `sequence > last` → `.apply`: new work; apply it, then `record(...)` the reply once durable.
/// - `sequence == last` → `.resend(reply)`: the same batch again (its reply was lost); answer
///   the stored reply bytes again, apply zero more times.
/// - `sequence < last` → `.alreadyApplied(last:)`: an older batch. Only the newest reply is kept,
///   so the daemon answers a status saying "already applied" (not the original counts).
///
/// Bounded: at most `capacity` producers (default 100,000). When a new producer arrives at the
/// cap, the least recently used one is evicted; if that producer later re-sends an old batch it
/// would be applied again, so size the cap well above the number of producers active within a
/// retry horizon. Memory: about 80 bytes + id length + reply length per producer.
///
/// Serialized into every checkpoint (`serialized()`, LRU order kept) and rebuilt on replay by
/// running `check`/`record` over the `batch` records after the checkpoint, so it survives
/// restarts exactly as durable as the batches themselves.
public struct ProducerTable: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case apply
        case resend(reply: [UInt8])
        case alreadyApplied(lastSequence: UInt64)
    }

    struct Slot: Sendable, Equatable {
        var id: [UInt8]
        var sequence: UInt64
        var reply: [UInt8]
        var prev: Int  // towards least recently used, -1 = none
        var next: Int  // towards most recently used, -1 = none
    }

    public let capacity: Int
    var slots: [Slot] = []
    var index: [[UInt8]: Int] = [:]
    var free: [Int] = []
    /// Least recently used slot (-1 when empty).
    var head = -1
    /// Most recently used slot.
    var tail = -1
    /// Producers evicted since creation (a metric for the daemon).
    public private(set) var evictions = 0

    public init(capacity: Int = 100_000) {
        precondition(capacity > 0, "ProducerTable capacity must be positive")
        self.capacity = capacity
    }

    /// Number of producers tracked.
    public var count: Int { index.count }

    /// What to do with a batch; does not change the table (a read of recency is not a use).
    /// - Complexity: O(id length) for the hash.
    public func check(producer: [UInt8], sequence: UInt64) -> Decision {
        guard let i = index[producer] else { return .apply }
        let slot = slots[i]
        if sequence > slot.sequence { return .apply }
        if sequence == slot.sequence { return .resend(reply: slot.reply) }
        return .alreadyApplied(lastSequence: slot.sequence)
    }

    /// The last durable sequence of `producer`, if tracked.
    public func lastSequence(of producer: [UInt8]) -> UInt64? {
        index[producer].map { slots[$0].sequence }
    }

    /// Records that `(producer, sequence)` is durable and applied, with the reply sent for it.
    /// Marks the producer most recently used; evicts the least recently used one at the cap.
    /// A sequence not greater than the stored one is ignored (records only move forward).
    /// - Complexity: O(id length) amortized.
    public mutating func record(producer: [UInt8], sequence: UInt64, reply: [UInt8]) {
        if let i = index[producer] {
            guard sequence > slots[i].sequence else { return }
            slots[i].sequence = sequence
            slots[i].reply = reply
            moveToTail(i)
            return
        }
        if index.count >= capacity, head >= 0 {
            let victim = head
            unlink(victim)
            index[slots[victim].id] = nil
            slots[victim].id = []
            slots[victim].reply = []
            free.append(victim)
            evictions += 1
        }
        let slot = Slot(id: producer, sequence: sequence, reply: reply, prev: -1, next: -1)
        let i: Int
        if let reused = free.popLast() {
            slots[reused] = slot
            i = reused
        } else {
            slots.append(slot)
            i = slots.count - 1
        }
        index[producer] = i
        linkAtTail(i)
    }

    // MARK: LRU list

    private mutating func unlink(_ i: Int) {
        let p = slots[i].prev, n = slots[i].next
        if p >= 0 { slots[p].next = n } else { head = n }
        if n >= 0 { slots[n].prev = p } else { tail = p }
        slots[i].prev = -1
        slots[i].next = -1
    }

    private mutating func linkAtTail(_ i: Int) {
        slots[i].prev = tail
        slots[i].next = -1
        if tail >= 0 { slots[tail].next = i } else { head = i }
        tail = i
    }

    private mutating func moveToTail(_ i: Int) {
        guard tail != i else { return }
        unlink(i)
        linkAtTail(i)
    }

    /// Producers from least to most recently used.
    public var entries: [(producer: [UInt8], sequence: UInt64, reply: [UInt8])] {
        var result: [(producer: [UInt8], sequence: UInt64, reply: [UInt8])] = []
        result.reserveCapacity(count)
        var i = head
        while i >= 0 {
            result.append((slots[i].id, slots[i].sequence, slots[i].reply))
            i = slots[i].next
        }
        return result
    }

    public static func == (a: ProducerTable, b: ProducerTable) -> Bool {
        a.capacity == b.capacity && a.entries.elementsEqual(b.entries) { $0.producer == $1.producer && $0.sequence == $1.sequence && $0.reply == $1.reply }
    }

    // MARK: Serialization

    static let magic: [UInt8] = Array("TPRD".utf8)

    /// `[magic "TPRD"][version u32][count u32]` then per producer, least recently used first:
    /// `[id length u32][id][sequence u64][reply length u32][reply]`.
    /// - Complexity: O(total bytes).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = Self.magic
        ByteCoding.append(UInt32(1), to: &out)
        ByteCoding.append(UInt32(count), to: &out)
        var i = head
        while i >= 0 {
            let s = slots[i]
            ByteCoding.append(UInt32(s.id.count), to: &out)
            out.append(contentsOf: s.id)
            ByteCoding.append(s.sequence, to: &out)
            ByteCoding.append(UInt32(s.reply.count), to: &out)
            out.append(contentsOf: s.reply)
            i = s.next
        }
        return out
    }

    /// Rebuilds a table from `serialized()` bytes. A table larger than `capacity` keeps its most
    /// recently used producers.
    /// - Throws: `corruptCheckpoint` when the bytes are not a producer table.
    public init(deserializing bytes: ArraySlice<UInt8>, capacity: Int = 100_000) throws(DurabilityError) {
        self.init(capacity: capacity)
        func fail(_ why: String) -> DurabilityError { .corruptCheckpoint(path: "<producer table>", reason: why) }
        var p = bytes.startIndex
        func need(_ n: Int) throws(DurabilityError) {
            guard bytes.endIndex - p >= n else { throw fail("truncated at byte \(p - bytes.startIndex)") }
        }
        try need(12)
        guard Array(bytes[p..<(p + 4)]) == Self.magic else { throw fail("bad magic") }
        let version = ByteCoding.loadUInt32(bytes, at: p + 4)
        guard version == 1 else { throw fail("unsupported version \(version)") }
        let n = Int(ByteCoding.loadUInt32(bytes, at: p + 8))
        p += 12
        for _ in 0..<n {
            try need(4)
            let idLen = Int(ByteCoding.loadUInt32(bytes, at: p)); p += 4
            try need(idLen + 12)
            let id = Array(bytes[p..<(p + idLen)]); p += idLen
            let seq = ByteCoding.loadUInt64(bytes, at: p); p += 8
            let replyLen = Int(ByteCoding.loadUInt32(bytes, at: p)); p += 4
            try need(replyLen)
            let reply = Array(bytes[p..<(p + replyLen)]); p += replyLen
            record(producer: id, sequence: seq, reply: reply)
        }
        guard p == bytes.endIndex else { throw fail("\(bytes.endIndex - p) trailing bytes") }
        evictions = 0
    }
}
