import CTallyCRC
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - MallocTuning

/// glibc malloc settings for a long-running daemon whose large blocks (hash tables, aggregate
/// cells, drain buffers) are resized over its life.
///
/// Why: glibc's mmap threshold is dynamic by default: it starts at 128 KiB and, each time a
/// mmap'd block is freed, rises to that block's size (up to 32 MiB). After the first hash-table
/// resizes, every later large table therefore lives on the brk heap, where the freed old tables
/// leave holes that only partly get reused: resident memory crept up by 0.4–11.5% between 1 M and
/// 10 M events with the same keys (8 runs of `Benchmarks/perf/memory_flat.py`). A fixed threshold
/// keeps every block of 256 KiB or more in its own mapping, returned to the kernel when freed:
/// 0.5–2.6% over 4 runs, and ~55 MiB (~18%) less resident memory at the same point
/// (`Benchmarks/PERFORMANCE.md`, round 9). Ingest speed did not move beyond the noise.
///
/// Cost: one `mmap`/`munmap` pair (and fresh-page faults) per large allocation, which here are
/// rare (tables grow by doubling, drain buffers are reused).
enum MallocTuning {
    /// Blocks of this size or more get their own mapping.
    static let mmapThreshold: Int32 = 256 << 10

    /// Whether ``apply()`` tuned malloc in this process (then ``trimAfterCheckpoint()`` trims).
    private static let applied = Atomic<Bool>(false)

    /// Fixes the mmap threshold, unless the operator set `GLIBC_TUNABLES` (their choice wins).
    /// Call once, early, before the state is built.
    /// - Returns: whether the threshold was set.
    @discardableResult
    static func apply() -> Bool {
        if getenv("GLIBC_TUNABLES") != nil { return false }
        let done = tally_malloc_fix_mmap_threshold(mmapThreshold) == 1
        if done { applied.store(true, ordering: .relaxed) }
        return done
    }

    /// Gives the heaps' free memory back to the kernel (`malloc_trim(0)`), when ``apply()``
    /// tuned malloc; called by the checkpoint thread after each checkpoint.
    ///
    /// Why: blocks under the mmap threshold live on the heaps, and a burst leaves their pages
    /// resident after it is freed: above all libzmq's inbound messages (28 KB each at 100 events
    /// per frame, up to `--ingest-hwm` 10,000 of them queued when the engine lags). Resident
    /// memory then moved between plateaus ~50 MiB apart depending on the largest burst so far,
    /// not on the state (two `memory_flat.py` runs of round 11: +0.5% and +18.7% from 1 M to
    /// 10 M events). After a checkpoint is the natural moment: the capture has just been freed,
    /// and it happens every `--checkpoint-interval` or `--checkpoint-bytes`.
    ///
    /// Cost: glibc walks each arena's free chunks under that arena's lock, so a thread
    /// allocating from it meanwhile waits (the engine's hot path does not allocate);
    /// measured in the `checkpoint written` log line (`heap-trim-ms`).
    /// - Returns: how long it took, in nanoseconds (0 when malloc is not tuned).
    static func trimAfterCheckpoint() -> UInt64 {
        guard applied.load(ordering: .relaxed) else { return 0 }
        let t0 = Clocks.monotonicNanos()
        _ = tally_malloc_trim()
        return max(1, Clocks.monotonicNanos() - t0)
    }
}
