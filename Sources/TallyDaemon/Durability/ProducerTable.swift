// MARK: - ProducerTable

/// Per acknowledged producer: the recent durable batch sequences and the status reply sent for
/// the newest one.
///
/// This is what makes a retry idempotent, also for a producer with several batches in flight
/// (a window, like Kafka's idempotent producer): for a batch `(producer, sequence)`:
/// - `sequence > newest` → `.apply`: new work; apply it, then `record(...)` the reply once durable.
/// - `sequence == newest` → `.resend(reply)`: the same batch again (its reply was lost); answer
///   the stored reply bytes again, apply zero more times.
/// - `sequence < newest` and one of the last ``windowLimit`` durable sequences, or below all of
///   them (the `floor`) → `.alreadyApplied(last:)`. Only the newest reply is kept, so the daemon
///   answers a status saying "already applied" (not the original counts).
/// - `sequence < newest` but never made durable (a gap: the batch was refused with `retry`, or
///   lost on a broken connection, while a later batch of the same producer was made durable)
///   → `.apply`. This is why the table keeps a window and not only the newest sequence: with
///   only the newest, the re-send of a refused batch overtaken by a later one would be answered
///   "already applied" and its events lost.
///
/// The guarantee: a batch is applied at most once, and a batch that was never made durable is
/// applied when re-sent, as long as fewer than ``windowLimit`` later batches of the same producer
/// were made durable in between (a producer keeps at most ``windowLimit`` batches in flight).
///
/// Bounded: at most `capacity` producers (default 100,000). When a new producer arrives at the
/// cap, the least recently used one is evicted; if that producer later re-sends an old batch it
/// would be applied again, so size the cap well above the number of producers active within a
/// retry horizon. Memory: about 80 bytes + id length + reply length per producer, plus 8 bytes
/// per remembered sequence (at most ``windowLimit``: 128 bytes).
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
        /// The newest durable sequence.
        var sequence: UInt64
        /// The reply sent for `sequence`.
        var reply: [UInt8]
        /// The last durable sequences, ascending, `sequence` included (at most ``windowLimit``).
        var recent: [UInt64]
        /// Sequences below this one are taken as applied (they fell out of `recent`, or the table
        /// was written before windows existed, when every sequence below the newest counted as applied).
        var floor: UInt64
        var prev: Int  // towards least recently used, -1 = none
        var next: Int  // towards most recently used, -1 = none
    }

    /// How many durable sequences are remembered per producer: the largest window of batches in
    /// flight for which a re-sent, never-durable batch is still told apart from an applied one.
    public static let windowLimit = 16

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
    /// - Complexity: O(id length) for the hash, plus O(``windowLimit``) for an older sequence.
    public func check(producer: [UInt8], sequence: UInt64) -> Decision {
        guard let i = index[producer] else { return .apply }
        let slot = slots[i]
        if sequence > slot.sequence { return .apply }
        if sequence == slot.sequence { return .resend(reply: slot.reply) }
        if sequence < slot.floor || slot.recent.contains(sequence) {
            return .alreadyApplied(lastSequence: slot.sequence)
        }
        return .apply   // a gap: never made durable, overtaken by a later batch
    }

    /// The last durable sequence of `producer`, if tracked.
    public func lastSequence(of producer: [UInt8]) -> UInt64? {
        index[producer].map { slots[$0].sequence }
    }

    /// Records that `(producer, sequence)` is durable and applied, with the reply sent for it.
    /// Marks the producer most recently used; evicts the least recently used one at the cap.
    /// A sequence already remembered, or below the floor, changes nothing; an older sequence
    /// that fills a gap is remembered (the newest reply stays the newest sequence's).
    /// - Complexity: O(id length) amortized, plus O(``windowLimit``) to keep `recent` sorted.
    public mutating func record(producer: [UInt8], sequence: UInt64, reply: [UInt8]) {
        if let i = index[producer] {
            guard sequence >= slots[i].floor else { return }
            var at = slots[i].recent.count
            while at > 0, slots[i].recent[at - 1] >= sequence {
                if slots[i].recent[at - 1] == sequence { return }
                at -= 1
            }
            slots[i].recent.insert(sequence, at: at)
            if slots[i].recent.count > Self.windowLimit {
                let dropped = slots[i].recent.removeFirst()
                slots[i].floor = dropped + 1   // dropped < the newest sequence: no overflow
            }
            if sequence > slots[i].sequence {
                slots[i].sequence = sequence
                slots[i].reply = reply
            }
            moveToTail(i)
            return
        }
        adopt(Slot(id: producer, sequence: sequence, reply: reply, recent: [sequence], floor: 0, prev: -1, next: -1))
    }

    /// Adds a slot for a producer not in the table, as most recently used (evicting at the cap).
    private mutating func adopt(_ slot: Slot) {
        if index.count >= capacity, head >= 0 {
            let victim = head
            unlink(victim)
            index[slots[victim].id] = nil
            slots[victim].id = []
            slots[victim].reply = []
            slots[victim].recent = []
            free.append(victim)
            evictions += 1
        }
        let i: Int
        if let reused = free.popLast() {
            slots[reused] = slot
            i = reused
        } else {
            slots.append(slot)
            i = slots.count - 1
        }
        index[slot.id] = i
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

    /// The remembered durable sequences of `producer` (ascending) and its floor, if tracked.
    public func window(of producer: [UInt8]) -> (recent: [UInt64], floor: UInt64)? {
        index[producer].map { (slots[$0].recent, slots[$0].floor) }
    }

    public static func == (a: ProducerTable, b: ProducerTable) -> Bool {
        guard a.capacity == b.capacity, a.count == b.count else { return false }
        var i = a.head, j = b.head
        while i >= 0, j >= 0 {
            let x = a.slots[i], y = b.slots[j]
            guard x.id == y.id, x.sequence == y.sequence, x.reply == y.reply, x.recent == y.recent, x.floor == y.floor else { return false }
            i = x.next
            j = y.next
        }
        return i < 0 && j < 0
    }

    // MARK: Serialization

    static let magic: [UInt8] = Array("TPRD".utf8)

    /// `[magic "TPRD"][version u32][count u32]` then per producer, least recently used first:
    /// `[id length u32][id][sequence u64][reply length u32][reply][floor u64][n u32][n × sequence u64]`
    /// (version 2; version 1, read for checkpoints written before windows, stops after `reply`).
    /// - Complexity: O(total bytes).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = Self.magic
        ByteCoding.append(UInt32(2), to: &out)
        ByteCoding.append(UInt32(count), to: &out)
        var i = head
        while i >= 0 {
            let s = slots[i]
            ByteCoding.append(UInt32(s.id.count), to: &out)
            out.append(contentsOf: s.id)
            ByteCoding.append(s.sequence, to: &out)
            ByteCoding.append(UInt32(s.reply.count), to: &out)
            out.append(contentsOf: s.reply)
            ByteCoding.append(s.floor, to: &out)
            ByteCoding.append(UInt32(s.recent.count), to: &out)
            for q in s.recent { ByteCoding.append(q, to: &out) }
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
        guard version == 1 || version == 2 else { throw fail("unsupported version \(version)") }
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
            // Version 1 knew only the newest sequence and took every older one as applied.
            var floor = seq, recent = [seq]
            if version == 2 {
                try need(12)
                floor = ByteCoding.loadUInt64(bytes, at: p); p += 8
                let n = Int(ByteCoding.loadUInt32(bytes, at: p)); p += 4
                guard n >= 1, n <= Self.windowLimit else { throw fail("\(n) remembered sequences for one producer") }
                try need(8 * n)
                recent = (0..<n).map { ByteCoding.loadUInt64(bytes, at: p + 8 * $0) }
                p += 8 * n
                guard zip(recent, recent.dropFirst()).allSatisfy({ $0 < $1 }), recent.last == seq, floor <= recent[0] else {
                    throw fail("inconsistent sequence window for one producer")
                }
            }
            if index[id] != nil { throw fail("producer listed twice") }
            adopt(Slot(id: id, sequence: seq, reply: reply, recent: recent, floor: floor, prev: -1, next: -1))
        }
        guard p == bytes.endIndex else { throw fail("\(bytes.endIndex - p) trailing bytes") }
        evictions = 0
    }
}
