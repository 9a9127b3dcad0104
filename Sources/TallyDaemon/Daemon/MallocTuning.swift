import CTallyCRC
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

    /// Fixes the mmap threshold, unless the operator set `GLIBC_TUNABLES` (their choice wins).
    /// Call once, early, before the state is built.
    /// - Returns: whether the threshold was set.
    @discardableResult
    static func apply() -> Bool {
        if getenv("GLIBC_TUNABLES") != nil { return false }
        return tally_malloc_fix_mmap_threshold(mmapThreshold) == 1
    }
}
