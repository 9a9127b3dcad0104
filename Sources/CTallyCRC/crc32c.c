// Hardware CRC-32C, dispatched at run time (see include/CTallyCRC.h for why this is C).
#include "CTallyCRC.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <nmmintrin.h>

int tally_crc32c_hw_available(void) {
    static int cached = -1;
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c >= 0) return c;
    unsigned a = 0, b = 0, cx = 0, d = 0;
    c = (__get_cpuid(1, &a, &b, &cx, &d) && (cx & bit_SSE4_2)) ? 1 : 0;
    __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    return c;
}

// One dependent stream of 8-byte steps (3-cycle latency each, ~2.7 bytes per cycle): what a
// log record of ~300 bytes (one event per frame) gets, too short for the streams below.
__attribute__((target("sse4.2")))
static uint64_t crc_u64_loop(uint64_t c, const unsigned char *p, size_t words) {
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        c = _mm_crc32_u64(c, w);
    }
    return c;
}

// MARK: - Three streams at once (Mark Adler's method, crc32c.c on Stack Overflow, zlib licence)
//
// The instruction's throughput is one per cycle but its latency three, so one stream runs at a
// third of the rate. Three adjacent blocks of `LONG` (or `SHORT`) bytes are checksummed side by
// side, the second and third from a zero CRC, then combined: crc(A ‖ B) = shift(crc(A), |B|) ^
// crc(B), where shift applies |B| zero bytes to a CRC (a linear map over GF(2), here four
// 256-entry tables per block size, built once). Why: records of 100 events per frame are ~28 KB
// and a checkpoint tens of MB, where the single stream was ~40% of the log thread (`perf`, b100).

#define POLY 0x82f63b78u
#define LONG 8192
#define SHORT 256

static uint32_t zeros_long[4][256];
static uint32_t zeros_short[4][256];
static int zeros_ready = 0;

static uint32_t gf2_matrix_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1) sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) square[n] = gf2_matrix_times(mat, mat[n]);
}

// The operator that applies `len` zero bytes to a CRC (`len` a power of two).
static void zeros_op(uint32_t *even, size_t len) {
    uint32_t odd[32];
    odd[0] = POLY;   // one zero bit
    uint32_t row = 1;
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_matrix_square(even, odd);   // two zero bits
    gf2_matrix_square(odd, even);   // four
    do {                            // then one zero byte, two, four, ... until len
        gf2_matrix_square(even, odd);
        len >>= 1;
        if (len == 0) return;
        gf2_matrix_square(odd, even);
        len >>= 1;
    } while (len);
    for (int n = 0; n < 32; n++) even[n] = odd[n];
}

static void zeros_tables(uint32_t zeros[][256], size_t len) {
    uint32_t op[32];
    zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_matrix_times(op, n);
        zeros[1][n] = gf2_matrix_times(op, n << 8);
        zeros[2][n] = gf2_matrix_times(op, n << 16);
        zeros[3][n] = gf2_matrix_times(op, n << 24);
    }
}

// Builds the tables on first use; concurrent first calls build identical tables (benign).
static void zeros_init(void) {
    if (__atomic_load_n(&zeros_ready, __ATOMIC_ACQUIRE)) return;
    zeros_tables(zeros_long, LONG);
    zeros_tables(zeros_short, SHORT);
    __atomic_store_n(&zeros_ready, 1, __ATOMIC_RELEASE);
}

static inline uint64_t zeros_shift(uint32_t zeros[][256], uint64_t crc) {
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^ zeros[3][(crc >> 24) & 0xff];
}

// Consumes `*len / (3 * block)` triples of blocks at `*p`, advancing both.
__attribute__((target("sse4.2")))
static uint64_t crc_triples(uint64_t c0, const unsigned char **p, size_t *len, size_t block, uint32_t zeros[][256]) {
    const unsigned char *q = *p;
    size_t n = *len;
    while (n >= 3 * block) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *end = q + block;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, q, 8);
            memcpy(&w1, q + block, 8);
            memcpy(&w2, q + 2 * block, 8);
            c0 = _mm_crc32_u64(c0, w0);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
            q += 8;
        } while (q < end);
        c0 = zeros_shift(zeros, c0) ^ c1;
        c0 = zeros_shift(zeros, c0) ^ c2;
        q += 2 * block;
        n -= 3 * block;
    }
    *p = q;
    *len = n;
    return c0;
}

__attribute__((target("sse4.2")))
uint32_t tally_crc32c_update_hw(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = (uint32_t)~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    if (n >= 3 * SHORT) {
        zeros_init();
        c = crc_triples(c, &p, &n, LONG, zeros_long);
        c = crc_triples(c, &p, &n, SHORT, zeros_short);
    }
    size_t words = n / 8;
    c = crc_u64_loop(c, p, words);
    p += words * 8;
    n -= words * 8;
    while (n > 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    return ~(uint32_t)c;
}

#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

int tally_crc32c_hw_available(void) {
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0;
}

__attribute__((target("crc")))
uint32_t tally_crc32c_update_hw(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_arm_crc32cd(c, w);
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = __builtin_arm_crc32cb(c, *p++);
        n--;
    }
    return ~c;
}

#else
int tally_crc32c_hw_available(void) { return 0; }
uint32_t tally_crc32c_update_hw(uint32_t crc, const void *data, size_t n) {
    (void)data; (void)n;
    return crc;   // never called: availability is 0
}
#endif
