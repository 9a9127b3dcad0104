// Hardware CRC-32C (Castagnoli), a prefetch hint and a 16-byte JSON string scan for Tally's hot
// path (SSE2, the x86-64 baseline: Swift has no movemask), the glibc malloc calls the
// daemon makes (`mallopt`, `malloc_trim`: <malloc.h> is not part of Swift's Glibc module), and
// `sync_file_range` and `O_DIRECT` for the write-ahead log (not in Swift's Glibc module: they
// need _GNU_SOURCE).
//
// Why C: the SSE4.2 `crc32` instruction (and ARMv8 `crc32c*`) needs a per-function target
// attribute; Swift 6.3.1 cannot compile the intrinsic without a global `-msse4.2` flag (an
// `unsafeFlags` setting that would also make the whole target require SSE4.2). Here only the
// one function is compiled for SSE4.2 and is called after a CPUID check, so the binary still
// runs on any x86-64 (the Swift caller falls back to its software table).
#ifndef CTALLYCRC_H
#define CTALLYCRC_H

#include <stddef.h>
#include <stdint.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when this CPU has a CRC-32C instruction that tally_crc32c_update_hw uses, else 0.
/// Cheap (cached after the first call).
int tally_crc32c_hw_available(void);

/// Extends a finished CRC-32C `crc` over `n` bytes at `data` with the CPU's CRC-32C
/// instruction. Only call when tally_crc32c_hw_available() returned 1.
uint32_t tally_crc32c_update_hw(uint32_t crc, const void *data, size_t n);

/// Hints the CPU to bring the cache line at `p` in (read, keep in all cache levels).
/// Never faults, whatever `p` is.
static inline __attribute__((always_inline)) void tally_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/// 1 when tally_string_special16 is a 16-byte vector scan on this target, 0 when it is not
/// available (the Swift caller then keeps its 8-byte word scan).
static inline __attribute__((always_inline)) int tally_string_special16_available(void) {
#if defined(__SSE2__)
    return 1;
#else
    return 0;
#endif
}

/// A bit per byte of the 16 bytes at `p` (bit i = byte i) that a JSON string scanner must stop
/// at: `"`, `\`, a control character (< 0x20) or a non-ASCII byte (>= 0x80). 0 when all 16 are
/// plain. The 16 bytes must be readable. Only call when tally_string_special16_available().
///
/// Why: JSON strings in events are 2–40 bytes; one unaligned 16-byte load and three compares
/// replace two or more rounds of the 8-byte word scan (one signed compare against 0x20 catches
/// both control and non-ASCII bytes, which are negative as signed bytes).
static inline __attribute__((always_inline)) unsigned tally_string_special16(const void *p) {
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    __m128i c = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, b), c));
#else
    (void)p;
    return 0;
#endif
}

/// Fixes glibc's mmap threshold at `bytes` (disabling its dynamic adjustment): blocks of that
/// size or more get their own mapping, returned to the kernel when freed. Returns 1 on success,
/// 0 when refused or not glibc.
static inline int tally_malloc_fix_mmap_threshold(int bytes) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, bytes);
#else
    (void)bytes;
    return 0;
#endif
}

/// Returns the free memory of every malloc arena to the kernel (`malloc_trim(0)`: the free top
/// of each heap, and whole free pages inside it), so resident memory follows live memory after
/// a burst. Returns 1 when memory was released (0, and nothing done, off glibc).
static inline int tally_malloc_trim(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}

/// Starts the kernel's writeback of `nbytes` at `offset` of `fd` and returns without waiting
/// for it (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, EINTR retried). Not a durability barrier:
/// only `fdatasync` is. Returns 0, or the errno (0 and nothing done off Linux).
int tally_start_writeback(int fd, int64_t offset, int64_t nbytes);

/// The `O_DIRECT` open flag of this platform (0 where there is none), which Swift's Glibc module
/// does not import (it needs _GNU_SOURCE, and its value differs between architectures).
int tally_o_direct_flag(void);

#ifdef __cplusplus
}
#endif

#endif
