/* quant.c: the block-type table, F16/BF16 conversion, and the 32-element block formats (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0) plus F32/F16/BF16 rows: dequantization, the row dot product and quantization.
 * The k-quants (256-element super-blocks) live in quant_k.c.
 *
 * Block layouts (little endian, d/m are IEEE half):
 *   Q4_0 (18 B): d | qs[16]            x[j] = d * (lo4(qs[j]) - 8), x[j+16] = d * (hi4(qs[j]) - 8)
 *   Q4_1 (20 B): d | m | qs[16]        x = d * q + m, nibbles as Q4_0
 *   Q5_0 (22 B): d | qh u32 | qs[16]   5th bit of element j is bit j of qh; x = d * (q - 16)
 *   Q5_1 (24 B): d | m | qh | qs[16]   x = d * q + m
 *   Q8_0 (34 B): d | qs[32] int8       x = d * q
 * The quantizers for these five reproduce the reference quantizer's arithmetic step by step
 * (float operations in the same order, truncating casts, half rounding of the scales), so the
 * bytes are identical to the reference files. */
#include "model/quant.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#endif

#include "model/quant_k.h"

typedef struct {
    const char *name;
    uint32_t elems;
    uint32_t bytes;
} type_info;

static const type_info type_table[] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},       [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18},   [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22},   [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34},   [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84},
    [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110}, [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144},
    [GGML_TYPE_Q5_K] = {"Q5_K", 256, 176}, [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210},
    [GGML_TYPE_BF16] = {"BF16", 1, 2},
};
#define N_TYPE_SLOTS (sizeof type_table / sizeof type_table[0])

bool ggml_type_supported(uint32_t t) {
    return t < N_TYPE_SLOTS && type_table[t].name != NULL;
}

const char *ggml_type_name(uint32_t t) {
    return ggml_type_supported(t) ? type_table[t].name : "?";
}

bool ggml_type_from_name(const char *name, ggml_type *out) {
    if (!name) return false;
    for (uint32_t t = 0; t < N_TYPE_SLOTS; t++) {
        if (type_table[t].name && strcasecmp(name, type_table[t].name) == 0) {
            if (out) *out = (ggml_type)t;
            return true;
        }
    }
    return false;
}

uint32_t ggml_block_elems(uint32_t t) {
    return ggml_type_supported(t) ? type_table[t].elems : 0;
}

uint32_t ggml_block_bytes(uint32_t t) {
    return ggml_type_supported(t) ? type_table[t].bytes : 0;
}

ws_status ggml_row_bytes(uint32_t t, int64_t n, uint64_t *out, ws_error *err) {
    if (!ggml_type_supported(t))
        return ws_fail(err, WS_ERR_UNSUPPORTED, "block type %u is not supported", t);
    if (n < 0) return ws_fail(err, WS_ERR_FORMAT, "row length %lld is negative", (long long)n);
    const uint64_t be = type_table[t].elems, bb = type_table[t].bytes;
    if ((uint64_t)n % be != 0)
        return ws_fail(err, WS_ERR_FORMAT,
                       "row length %lld is not a multiple of the %s block (%llu)", (long long)n,
                       type_table[t].name, (unsigned long long)be);
    const uint64_t blocks = (uint64_t)n / be;
    if (blocks > UINT64_MAX / bb)
        return ws_fail(err, WS_ERR_FORMAT, "row of %lld %s elements overflows 64-bit size",
                       (long long)n, type_table[t].name);
    if (out) *out = blocks * bb;
    return WS_OK;
}

/* ---- half and bfloat16 ---- */

static inline float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Moves the 15 magnitude bits to the f32 exponent/mantissa position and rescales by 2^112 (exact:
 * half subnormals become f32 subnormals that the multiply normalises); inf/nan keep an all-ones
 * exponent and their payload. */
static inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t mag = (uint32_t)(h & 0x7fffu) << 13;
    /* for inf/nan the rescaled exponent is 143; or-ing all ones into it keeps the payload and
     * needs no branch, so loops of conversions vectorize */
    const uint32_t infnan = (h & 0x7c00u) == 0x7c00u ? 0x7f800000u : 0u;
    return bits_to_f32(sign | infnan | f32_to_bits(bits_to_f32(mag) * 0x1p112f));
}

float quant_f16_to_f32(uint16_t h) {
    return f16_to_f32(h);
}

uint16_t quant_f32_to_f16(float f) {
    const uint32_t x = f32_to_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u | (uint16_t)((a >> 13) & 0x3ffu); /* quiet nan */
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {                       /* below 2^-14: half subnormal or zero */
        if (a <= 0x33000000u) return sign;       /* <= 2^-25 rounds (ties to even) to 0 */
        const uint32_t e = a >> 23;
        const uint32_t m = (a & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e; /* value / 2^-24 = m * 2^(e - 126) */
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ffu);
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++; /* a carry moves into the exponent */
    return sign | (uint16_t)r;
}

float quant_bf16_to_f32(uint16_t h) {
    return bits_to_f32((uint32_t)h << 16);
}

uint16_t quant_f32_to_bf16(float f) {
    const uint32_t x = f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static inline float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_to_f32(h);
}

static inline void wr_f16(uint8_t *p, float f) {
    const uint16_t h = quant_f32_to_f16(f);
    memcpy(p, &h, 2);
}

/* ---- 32-element blocks: one block into y[32] ---- */

static void deq_q4_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0xf) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void deq_q4_1(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0xf) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

/* The fifth bit of element j of a Q5 block is bit j of qh; testing it against a table of
 * single-bit masks (instead of shifting by j) lets the element loops vectorize. */
static const uint32_t bit_mask[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31,
};

static void deq_q5_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const int h = (qh & bit_mask[j]) ? 16 : 0;
        y[j] = (float)(((qs[j] & 0xf) | h) - 16) * d;
    }
    for (int j = 0; j < 16; j++) {
        const int h = (qh & bit_mask[j + 16]) ? 16 : 0;
        y[j + 16] = (float)(((qs[j] >> 4) | h) - 16) * d;
    }
}

static void deq_q5_1(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const int h = (qh & bit_mask[j]) ? 16 : 0;
        y[j] = (float)((qs[j] & 0xf) | h) * d + m;
    }
    for (int j = 0; j < 16; j++) {
        const int h = (qh & bit_mask[j + 16]) ? 16 : 0;
        y[j + 16] = (float)((qs[j] >> 4) | h) * d + m;
    }
}

static void deq_q8_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++)
        y[j] = (float)qs[j] * d;
}

static void deq_f16(const uint8_t *restrict b, float *restrict y) {
    for (int j = 0; j < 32; j++)
        y[j] = rd_f16(b + 2 * j);
}

static void deq_bf16(const uint8_t *restrict b, float *restrict y) {
    for (int j = 0; j < 32; j++) {
        uint16_t h;
        memcpy(&h, b + 2 * j, 2);
        y[j] = quant_bf16_to_f32(h);
    }
}

/* Dequantizes one unit of 32 elements (the block of the small types; 32 elements of F32/F16/BF16)
 * starting at byte p. Returns the bytes consumed. */
typedef void (*deq32_fn)(const uint8_t *b, float *y);

static deq32_fn deq32_for(ggml_type t) {
    switch (t) {
    case GGML_TYPE_Q4_0:
        return deq_q4_0;
    case GGML_TYPE_Q4_1:
        return deq_q4_1;
    case GGML_TYPE_Q5_0:
        return deq_q5_0;
    case GGML_TYPE_Q5_1:
        return deq_q5_1;
    case GGML_TYPE_Q8_0:
        return deq_q8_0;
    case GGML_TYPE_F16:
        return deq_f16;
    case GGML_TYPE_BF16:
        return deq_bf16;
    default:
        return NULL;
    }
}

static bool is_k_quant(ggml_type t) {
    return t == GGML_TYPE_Q2_K || t == GGML_TYPE_Q3_K || t == GGML_TYPE_Q4_K ||
           t == GGML_TYPE_Q5_K || t == GGML_TYPE_Q6_K;
}

/* ---- F16 with the x86-64 conversion instructions ----
 * Where the processor has AVX2, FMA and F16C (checked once at run time), F16 rows convert eight
 * halves per instruction. The values are the same as f16_to_f32's (the conversion is exact); dot
 * products differ from the portable path only in summation order and fused multiply-adds. */
#if defined(__x86_64__)
static bool cpu_has_f16c(void) {
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        v = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) && __builtin_cpu_supports("avx2") &&
            __builtin_cpu_supports("fma");
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v != 0;
}

__attribute__((target("avx2,fma,f16c"))) static void dequant_f16_f16c(const uint8_t *p, float *dst,
                                                                      int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    for (; i < n; i++)
        dst[i] = rd_f16(p + 2 * i);
}

__attribute__((target("avx2,fma,f16c"))) static float dot_f16_f16c(const uint8_t *p, const float *x,
                                                                   int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
        const __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i + 16)));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1);
    }
    const __m256 acc = _mm256_add_ps(acc0, acc1);
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    float s = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
    for (; i < n; i++)
        s += rd_f16(p + 2 * i) * x[i];
    return s;
}
#else
static bool cpu_has_f16c(void) {
    return false;
}
static void dequant_f16_f16c(const uint8_t *p, float *dst, int64_t n) {
    (void)p, (void)dst, (void)n;
}
static float dot_f16_f16c(const uint8_t *p, const float *x, int64_t n) {
    (void)p, (void)x, (void)n;
    return 0.0f;
}
#endif

void quant_dequantize_row(ggml_type t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    if (t == GGML_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    if (is_k_quant(t)) {
        const uint32_t bb = type_table[t].bytes;
        for (int64_t i = 0; i < n; i += QK_K, p += bb)
            quant_k_dequantize_block(t, p, dst + i);
        return;
    }
    /* one loop per type so each vectorizes */
    if (t == GGML_TYPE_F16) {
        if (cpu_has_f16c()) {
            dequant_f16_f16c(p, dst, n);
            return;
        }
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = f16_to_f32(h);
        }
        return;
    }
    if (t == GGML_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = quant_bf16_to_f32(h);
        }
        return;
    }
    const deq32_fn fn = deq32_for(t);
    if (!fn) return;
    const uint32_t bb = type_table[t].bytes;
    for (int64_t i = 0; i < n; i += 32, p += bb)
        fn(p, dst + i);
}

/* ---- dot product ----
 * Eight independent FP32 partial sums (one per lane) so the compiler can keep them in vector
 * registers; they are added at the end. */
#define LANES 8

static inline void acc_dot(float acc[LANES], const float *w, const float *x, int n) {
    for (int j = 0; j < n; j += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += w[j + l] * x[j + l];
}

static inline float acc_sum(const float acc[LANES]) {
    float s = 0.0f;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

float quant_dot_row(ggml_type t, const void *row, const float *x, int64_t n) {
    float acc[LANES] = {0};
    const uint8_t *p = row;
    if (t == GGML_TYPE_F32) {
        const float *w = row;
        int64_t i = 0;
        for (; i + LANES <= n; i += LANES)
            for (int l = 0; l < LANES; l++)
                acc[l] += w[i + l] * x[i + l];
        float s = acc_sum(acc);
        for (; i < n; i++)
            s += w[i] * x[i];
        return s;
    }
    if (is_k_quant(t)) {
        float y[QK_K];
        const uint32_t bb = type_table[t].bytes;
        for (int64_t i = 0; i < n; i += QK_K, p += bb) {
            quant_k_dequantize_block(t, p, y);
            acc_dot(acc, y, x + i, QK_K);
        }
        return acc_sum(acc);
    }
    const deq32_fn fn = deq32_for(t);
    if (!fn) return NAN;
    float y[32];
    if (t == GGML_TYPE_F16 && cpu_has_f16c()) return dot_f16_f16c(p, x, n);
    if (t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) {
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            fn(p + 2 * i, y);
            acc_dot(acc, y, x + i, 32);
        }
        float s = acc_sum(acc);
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            s += (t == GGML_TYPE_F16 ? f16_to_f32(h) : quant_bf16_to_f32(h)) * x[i];
        }
        return s;
    }
    const uint32_t bb = type_table[t].bytes;
    for (int64_t i = 0; i < n; i += 32, p += bb) {
        fn(p, y);
        acc_dot(acc, y, x + i, 32);
    }
    return acc_sum(acc);
}

/* ---- quantization of 32-element blocks ----
 * Each mirrors the reference arithmetic: the scale and its inverse are computed in float before
 * the scale is rounded to half, values are scaled by the float inverse, offset, and truncated by a
 * cast (Q8_0 rounds half away from zero). */

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static void q_q4_0(const float *x, uint8_t *b) {
    const float d = signed_absmax(x, 32) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < 16; j++) {
        const float x0 = x[j] * id, x1 = x[j + 16] * id;
        const int8_t a = (int8_t)(x0 + 8.5f), c = (int8_t)(x1 + 8.5f);
        const uint8_t i0 = (uint8_t)(a < 15 ? a : 15), i1 = (uint8_t)(c < 15 ? c : 15);
        b[2 + j] = (uint8_t)(i0 | (i1 << 4));
    }
}

static void q_q4_1(const float *x, uint8_t *b) {
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    const float d = (mx - mn) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    wr_f16(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        const float x0 = (x[j] - mn) * id, x1 = (x[j + 16] - mn) * id;
        const int8_t a = (int8_t)(x0 + 0.5f), c = (int8_t)(x1 + 0.5f);
        const uint8_t i0 = (uint8_t)(a < 15 ? a : 15), i1 = (uint8_t)(c < 15 ? c : 15);
        b[4 + j] = (uint8_t)(i0 | (i1 << 4));
    }
}

static void q_q5_0(const float *x, uint8_t *b) {
    const float d = signed_absmax(x, 32) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const float x0 = x[j] * id, x1 = x[j + 16] * id;
        const int8_t a = (int8_t)(x0 + 16.5f), c = (int8_t)(x1 + 16.5f);
        const uint8_t i0 = (uint8_t)(a < 31 ? a : 31), i1 = (uint8_t)(c < 31 ? c : 31);
        b[6 + j] = (uint8_t)((i0 & 0xf) | ((i1 & 0xf) << 4));
        qh |= (uint32_t)((i0 & 0x10u) >> 4) << j;
        qh |= (uint32_t)((i1 & 0x10u) >> 4) << (j + 16);
    }
    memcpy(b + 2, &qh, 4);
}

static void q_q5_1(const float *x, uint8_t *b) {
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    const float d = (mx - mn) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    wr_f16(b + 2, mn);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const float x0 = (x[j] - mn) * id, x1 = (x[j + 16] - mn) * id;
        const uint8_t i0 = (uint8_t)(x0 + 0.5f), i1 = (uint8_t)(x1 + 0.5f);
        b[8 + j] = (uint8_t)((i0 & 0xf) | ((i1 & 0xf) << 4));
        qh |= (uint32_t)((i0 & 0x10u) >> 4) << j;
        qh |= (uint32_t)((i1 & 0x10u) >> 4) << (j + 16);
    }
    memcpy(b + 4, &qh, 4);
}

static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

ws_status quant_quantize_row(ggml_type t, const float *src, void *dst, int64_t n, ws_error *err) {
    uint8_t *p = dst;
    if (!ggml_type_supported(t))
        return ws_fail(err, WS_ERR_UNSUPPORTED, "cannot quantize to block type %u", (unsigned)t);
    if (n < 0 || n % type_table[t].elems != 0)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "row length %lld is not a whole number of %s blocks (%u)", (long long)n,
                       type_table[t].name, type_table[t].elems);
    const uint32_t be = type_table[t].elems, bb = type_table[t].bytes;
    switch (t) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return WS_OK;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h =
                t == GGML_TYPE_F16 ? quant_f32_to_f16(src[i]) : quant_f32_to_bf16(src[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return WS_OK;
    default:
        break;
    }
    if (is_k_quant(t)) {
        for (int64_t i = 0; i < n; i += be, p += bb)
            quant_k_quantize_block(t, src + i, p);
        return WS_OK;
    }
    void (*fn)(const float *, uint8_t *) = NULL;
    switch (t) {
    case GGML_TYPE_Q4_0:
        fn = q_q4_0;
        break;
    case GGML_TYPE_Q4_1:
        fn = q_q4_1;
        break;
    case GGML_TYPE_Q5_0:
        fn = q_q5_0;
        break;
    case GGML_TYPE_Q5_1:
        fn = q_q5_1;
        break;
    case GGML_TYPE_Q8_0:
        fn = q_q8_0;
        break;
    default:
        return ws_fail(err, WS_ERR_UNSUPPORTED, "cannot quantize to %s", type_table[t].name);
    }
    for (int64_t i = 0; i < n; i += be, p += bb)
        fn(src + i, p);
    return WS_OK;
}
