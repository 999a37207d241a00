/* blocks.cuh: device-side reading of the GGML block formats. Every type is read in chunks of 8
 * consecutive elements (a chunk never straddles a block or a scale group), so one generic loop
 * serves dot products, dequantization and embedding lookups. Layouts are those of
 * worker/model/quant.h (little endian, d/dmin IEEE half):
 *   Q4_0 d|qs[16]  Q4_1 d|m|qs[16]  Q5_0 d|qh[4]|qs[16]  Q5_1 d|m|qh[4]|qs[16]  Q8_0 d|qs[32]
 *   Q2_K scales[16]|qs[64]|d|dmin  Q3_K hmask[32]|qs[64]|scales[12]|d
 *   Q4_K d|dmin|scales[12]|qs[128]  Q5_K d|dmin|scales[12]|qh[32]|qs[128]
 *   Q6_K ql[128]|qh[64]|scales[16]|d */
#ifndef WORKER_CUDA_BLOCKS_CUH
#define WORKER_CUDA_BLOCKS_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

/* GGML type ids (as model/quant.h). */
enum {
    BT_F32 = 0,
    BT_F16 = 1,
    BT_Q4_0 = 2,
    BT_Q4_1 = 3,
    BT_Q5_0 = 6,
    BT_Q5_1 = 7,
    BT_Q8_0 = 8,
    BT_Q2_K = 10,
    BT_Q3_K = 11,
    BT_Q4_K = 12,
    BT_Q5_K = 13,
    BT_Q6_K = 14,
    BT_BF16 = 30,
};

/* Elements and bytes of one block. */
template <int T> struct bt_info;
template <> struct bt_info<BT_F32> { static constexpr int QK = 8, BYTES = 32; };
template <> struct bt_info<BT_F16> { static constexpr int QK = 8, BYTES = 16; };
template <> struct bt_info<BT_BF16> { static constexpr int QK = 8, BYTES = 16; };
template <> struct bt_info<BT_Q4_0> { static constexpr int QK = 32, BYTES = 18; };
template <> struct bt_info<BT_Q4_1> { static constexpr int QK = 32, BYTES = 20; };
template <> struct bt_info<BT_Q5_0> { static constexpr int QK = 32, BYTES = 22; };
template <> struct bt_info<BT_Q5_1> { static constexpr int QK = 32, BYTES = 24; };
template <> struct bt_info<BT_Q8_0> { static constexpr int QK = 32, BYTES = 34; };
template <> struct bt_info<BT_Q2_K> { static constexpr int QK = 256, BYTES = 84; };
template <> struct bt_info<BT_Q3_K> { static constexpr int QK = 256, BYTES = 110; };
template <> struct bt_info<BT_Q4_K> { static constexpr int QK = 256, BYTES = 144; };
template <> struct bt_info<BT_Q5_K> { static constexpr int QK = 256, BYTES = 176; };
template <> struct bt_info<BT_Q6_K> { static constexpr int QK = 256, BYTES = 210; };

__device__ __forceinline__ float bt_half(const uint8_t *p) {
    const uint16_t h = *(const uint16_t *)p; /* every half in these layouts is 2-byte aligned */
    return __half2float(__ushort_as_half(h));
}

/* 8 bytes from a 2-byte aligned address: three aligned 32-bit loads and funnel shifts by 0 or 16
 * bits, with no branch (blocks of 18, 22 or 34 bytes alternate between aligned and not from one
 * block to the next, so a branch would split the lanes of a warp). The third word is the second
 * again when p is aligned, so no load leaves the 4-byte word holding p+7. */
__device__ __forceinline__ uint64_t bt_load8(const uint8_t *p) {
    const uintptr_t a = (uintptr_t)p;
    const uint32_t *w = (const uint32_t *)(a & ~(uintptr_t)3);
    const uint32_t sh = (uint32_t)(a & 3) * 8, odd = (a & 3) != 0;
    const uint32_t w0 = w[0], w1 = w[1], w2 = w[1 + odd];
    return (uint64_t)__funnelshift_r(w0, w1, sh) | ((uint64_t)__funnelshift_r(w1, w2, sh) << 32);
}

/* 4 bytes from a 2-byte aligned address (as bt_load8). */
__device__ __forceinline__ uint32_t bt_load4(const uint8_t *p) {
    const uintptr_t a = (uintptr_t)p;
    const uint32_t *w = (const uint32_t *)(a & ~(uintptr_t)3);
    const uint32_t sh = (uint32_t)(a & 3) * 8, odd = (a & 3) != 0;
    return __funnelshift_r(w[0], w[odd], sh);
}

/* Elements c*8 .. c*8+7 of block b (c < QK/8) into y. */
template <int T> __device__ __forceinline__ void bt_chunk(const uint8_t *b, int c, float y[8]);

template <> __device__ __forceinline__ void bt_chunk<BT_F32>(const uint8_t *b, int c, float y[8]) {
    const float4 a = ((const float4 *)b)[0], d = ((const float4 *)b)[1];
    y[0] = a.x, y[1] = a.y, y[2] = a.z, y[3] = a.w, y[4] = d.x, y[5] = d.y, y[6] = d.z, y[7] = d.w;
}

template <> __device__ __forceinline__ void bt_chunk<BT_F16>(const uint8_t *b, int c, float y[8]) {
    const uint4 v = *(const uint4 *)b;
    const __half2 *h = (const __half2 *)&v;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 f = __half22float2(h[i]);
        y[2 * i] = f.x, y[2 * i + 1] = f.y;
    }
}

template <> __device__ __forceinline__ void bt_chunk<BT_BF16>(const uint8_t *b, int c, float y[8]) {
    const uint4 v = *(const uint4 *)b;
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        y[2 * i] = __uint_as_float(w[i] << 16);
        y[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q4_0>(const uint8_t *b, int c, float y[8]) {
    const float d = bt_half(b);
    const uint64_t q = bt_load8(b + 2 + 8 * (c & 1));
    const int sh = (c >> 1) * 4;
#pragma unroll
    for (int i = 0; i < 8; i++)
        y[i] = (float)((int)((q >> (8 * i + sh)) & 0xf) - 8) * d;
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q4_1>(const uint8_t *b, int c, float y[8]) {
    const float d = bt_half(b), m = bt_half(b + 2);
    const uint64_t q = bt_load8(b + 4 + 8 * (c & 1));
    const int sh = (c >> 1) * 4;
#pragma unroll
    for (int i = 0; i < 8; i++)
        y[i] = (float)((q >> (8 * i + sh)) & 0xf) * d + m;
}

/* Spreads bits 0..3 of h to bit 0 of bytes 0..3. */
__device__ __forceinline__ uint32_t bt_spread4(uint32_t h) {
    return ((h & 0xfu) * 0x00204081u) & 0x01010101u;
}

/* Q5_0 with 32-bit operations only: the nibbles of four elements come out of one word with one
 * shift and mask, and the fifth bits are spread into the same bytes by a multiply. Each byte b
 * in 0..31 becomes a float without an integer conversion: a byte permute places it under the
 * exponent of 2^23 (the float 2^23 + b), from which 2^23 + 16 is subtracted exactly; the product
 * with d is rounded once, as (b - 16) * d. */
__device__ __forceinline__ float bt_byte_2p23(uint32_t v, int i) {
    return __uint_as_float(__byte_perm(v, 0x4B000000u, 0x7540u + (unsigned)i));
}

__device__ __forceinline__ float bt_q5_byte(uint32_t v, int i, float d) {
    return (bt_byte_2p23(v, i) - 8388624.0f) * d;
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q5_0>(const uint8_t *b, int c, float y[8]) {
    const float d = bt_half(b);
    const uint32_t qh = bt_load4(b + 2);
    const int j0 = 8 * (c & 1), sh = (c >> 1) * 4;
    const uint64_t q = bt_load8(b + 6 + j0);
    const uint32_t h = qh >> (c * 8); /* bits of elements c*8 .. c*8+7 */
    const uint32_t v0 = (((uint32_t)q >> sh) & 0x0f0f0f0fu) | (bt_spread4(h) << 4);
    const uint32_t v1 = (((uint32_t)(q >> 32) >> sh) & 0x0f0f0f0fu) | (bt_spread4(h >> 4) << 4);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        y[i] = bt_q5_byte(v0, i, d);
        y[4 + i] = bt_q5_byte(v1, i, d);
    }
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q5_1>(const uint8_t *b, int c, float y[8]) {
    const float d = bt_half(b), m = bt_half(b + 2);
    const uint32_t qh = bt_load4(b + 4);
    const int j0 = 8 * (c & 1), sh = (c >> 1) * 4;
    const uint64_t q = bt_load8(b + 8 + j0);
    const int hb = j0 + (c >> 1) * 16;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int v = (int)((q >> (8 * i + sh)) & 0xf) | (int)(((qh >> (hb + i)) & 1u) << 4);
        y[i] = (float)v * d + m;
    }
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q8_0>(const uint8_t *b, int c, float y[8]) {
    const float d = bt_half(b);
    const uint64_t q = bt_load8(b + 2 + 8 * c);
#pragma unroll
    for (int i = 0; i < 8; i++)
        y[i] = (float)(int8_t)(q >> (8 * i)) * d;
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q2_K>(const uint8_t *b, int c, float y[8]) {
    const int e0 = 8 * c, s = e0 >> 4;
    const float d = bt_half(b + 80), dmin = bt_half(b + 82);
    const uint8_t sc = b[s];
    const float dl = d * (float)(sc & 0xf), ml = dmin * (float)(sc >> 4);
    const uint64_t q = bt_load8(b + 16 + 32 * (e0 >> 7) + (e0 & 31));
    const int sh = 2 * ((e0 & 127) >> 5);
#pragma unroll
    for (int i = 0; i < 8; i++)
        y[i] = dl * (float)((q >> (8 * i + sh)) & 3) - ml;
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q3_K>(const uint8_t *b, int c, float y[8]) {
    const int e0 = 8 * c, s = e0 >> 4;
    const uint8_t *scales = b + 96;
    const int lo = s < 8 ? (scales[s] & 0xf) : (scales[s - 8] >> 4);
    const int hi = (scales[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
    const float dl = bt_half(b + 108) * (float)((lo | (hi << 4)) - 32);
    const int half = e0 >> 7, j = (e0 & 127) >> 5, l0 = e0 & 31;
    const uint64_t q = bt_load8(b + 32 + 32 * half + l0);
    const uint64_t hm = bt_load8(b + l0);
    const int bit = 4 * half + j;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int v = (int)((q >> (8 * i + 2 * j)) & 3) - (((hm >> (8 * i + bit)) & 1) ? 0 : 4);
        y[i] = dl * (float)v;
    }
}

/* 6-bit scale and min j (0..7) of Q4_K/Q5_K. */
__device__ __forceinline__ void bt_scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q4_K>(const uint8_t *b, int c, float y[8]) {
    const int e0 = 8 * c, g = e0 >> 6, hi = (e0 >> 5) & 1, l0 = e0 & 31;
    int sc, m;
    bt_scale_min_k4(2 * g + hi, b + 4, &sc, &m);
    const float dl = bt_half(b) * (float)sc, ml = bt_half(b + 2) * (float)m;
    const uint64_t q = bt_load8(b + 16 + 32 * g + l0);
    const int sh = 4 * hi;
#pragma unroll
    for (int i = 0; i < 8; i++)
        y[i] = dl * (float)((q >> (8 * i + sh)) & 0xf) - ml;
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q5_K>(const uint8_t *b, int c, float y[8]) {
    const int e0 = 8 * c, g = e0 >> 6, hi = (e0 >> 5) & 1, l0 = e0 & 31;
    int sc, m;
    bt_scale_min_k4(2 * g + hi, b + 4, &sc, &m);
    const float dl = bt_half(b) * (float)sc, ml = bt_half(b + 2) * (float)m;
    const uint64_t q = bt_load8(b + 48 + 32 * g + l0);
    const uint64_t qh = bt_load8(b + 16 + l0);
    const int sh = 4 * hi, hb = 2 * g + hi;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int v = (int)((q >> (8 * i + sh)) & 0xf) | (int)(((qh >> (8 * i + hb)) & 1) << 4);
        y[i] = dl * (float)v - ml;
    }
}

template <> __device__ __forceinline__ void bt_chunk<BT_Q6_K>(const uint8_t *b, int c, float y[8]) {
    const int e0 = 8 * c, h = e0 >> 7, r = e0 & 127, k = r >> 5, l0 = r & 31;
    /* k: 0 low nibble of ql[l], 1 low of ql[l+32], 2 high of ql[l], 3 high of ql[l+32] */
    const uint64_t ql = bt_load8(b + 64 * h + l0 + 32 * (k & 1));
    const uint64_t qh = bt_load8(b + 128 + 32 * h + l0);
    const float dl = bt_half(b + 208) * (float)(int8_t)b[192 + (e0 >> 4)];
    const int sh = 4 * (k >> 1), hs = 2 * k;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int v = (int)((ql >> (8 * i + sh)) & 0xf) | (int)(((qh >> (8 * i + hs)) & 3) << 4);
        y[i] = dl * (float)(v - 32);
    }
}

/* ---- dot products of one chunk with 8 inputs (x0, x1; sx their sum) ----
 * The generic form dequantizes the chunk and multiplies. Q5_0, Q4_K and Q6_K (the quantized
 * layers of the usual Q4_K_M files besides Q8_0) keep the scale out of the element loop
 * (d * sum q_i x_i, minus min * sum x_i where the type has one) and turn small unsigned integers
 * into floats by the byte permute of bt_q5_byte instead of an integer conversion: one exact
 * subtraction and one fused multiply-add an element. Q8_0 and the rest keep the generic form,
 * which measured faster for them (docs/BENCHMARKS.md, third round). */
template <int T>
__device__ __forceinline__ float bt_dot(const uint8_t *b, int c, const float4 &x0, const float4 &x1,
                                        float sx) {
    float y[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    bt_chunk<T>(b, c, y);
    return y[0] * x0.x + y[1] * x0.y + y[2] * x0.z + y[3] * x0.w + y[4] * x1.x + y[5] * x1.y +
           y[6] * x1.z + y[7] * x1.w;
}

/* sum over i of (byte i of v0 | v1, as 2^23 + byte (bt_byte_2p23), minus `base`) * x_i: the
 * bytes are below 256, so each difference is exact. */
__device__ __forceinline__ float bt_bytes_dot(uint32_t v0, uint32_t v1, float base,
                                              const float4 &x0, const float4 &x1) {
#define BT_B(v, i) (bt_byte_2p23(v, i) - base)
    float s = BT_B(v0, 0) * x0.x;
    s = fmaf(BT_B(v0, 1), x0.y, s);
    s = fmaf(BT_B(v0, 2), x0.z, s);
    s = fmaf(BT_B(v0, 3), x0.w, s);
    s = fmaf(BT_B(v1, 0), x1.x, s);
    s = fmaf(BT_B(v1, 1), x1.y, s);
    s = fmaf(BT_B(v1, 2), x1.z, s);
    s = fmaf(BT_B(v1, 3), x1.w, s);
#undef BT_B
    return s;
}

template <>
__device__ __forceinline__ float bt_dot<BT_Q5_0>(const uint8_t *b, int c, const float4 &x0,
                                                 const float4 &x1, float sx) {
    const float d = bt_half(b);
    const uint32_t h = b[2 + c]; /* the fifth bits of elements 8c .. 8c+7: byte c of qh */
    const int j0 = 8 * (c & 1), sh = (c >> 1) * 4;
    const uint64_t q = bt_load8(b + 6 + j0);
    const uint32_t v0 = (((uint32_t)q >> sh) & 0x0f0f0f0fu) | (bt_spread4(h) << 4);
    const uint32_t v1 = (((uint32_t)(q >> 32) >> sh) & 0x0f0f0f0fu) | (bt_spread4(h >> 4) << 4);
    return d * bt_bytes_dot(v0, v1, 8388624.0f, x0, x1);
}

/* Q4_K blocks (144 bytes) start 16-byte aligned in any row of whole blocks whose start is, so the
 * scales and quants are read as aligned words; the 6-bit scale and min of sub-block j come out of
 * the same three scale words for every j, selected without a branch (lanes of a warp cover all
 * eight sub-blocks). */
template <>
__device__ __forceinline__ float bt_dot<BT_Q4_K>(const uint8_t *b, int c, const float4 &x0,
                                                 const float4 &x1, float sx) {
    const int e0 = 8 * c, g = e0 >> 6, hi = (e0 >> 5) & 1, l0 = e0 & 31, j = 2 * g + hi;
    const uint4 hd = *(const uint4 *)b; /* d | dmin, scales[0..3], [4..7], [8..11] */
    const int sh = 8 * (j & 3);
    const uint32_t b0 = hd.y >> sh, b1 = hd.z >> sh, b2 = hd.w >> sh;
    const uint32_t sc = j < 4 ? b0 & 63u : (b2 & 15u) | ((b0 >> 2) & 48u);
    const uint32_t mn = j < 4 ? b1 & 63u : ((b2 >> 4) & 15u) | ((b1 >> 2) & 48u);
    const float d = __half2float(__ushort_as_half((unsigned short)(hd.x & 0xffffu)));
    const float dmin = __half2float(__ushort_as_half((unsigned short)(hd.x >> 16)));
    const uint2 q = *(const uint2 *)(b + 16 + 32 * g + l0);
    const uint32_t v0 = (q.x >> (4 * hi)) & 0x0f0f0f0fu, v1 = (q.y >> (4 * hi)) & 0x0f0f0f0fu;
    return d * (float)sc * bt_bytes_dot(v0, v1, 8388608.0f, x0, x1) - dmin * (float)mn * sx;
}

template <>
__device__ __forceinline__ float bt_dot<BT_Q6_K>(const uint8_t *b, int c, const float4 &x0,
                                                 const float4 &x1, float sx) {
    const int e0 = 8 * c, h = e0 >> 7, r = e0 & 127, k = r >> 5, l0 = r & 31;
    const uint64_t ql = bt_load8(b + 64 * h + l0 + 32 * (k & 1));
    const uint64_t qh = bt_load8(b + 128 + 32 * h + l0);
    const float dl = bt_half(b + 208) * (float)(int8_t)b[192 + (e0 >> 4)];
    const int sh = 4 * (k >> 1), hs = 2 * k;
    const uint32_t v0 =
        (((uint32_t)ql >> sh) & 0x0f0f0f0fu) | ((((uint32_t)qh >> hs) & 0x03030303u) << 4);
    const uint32_t v1 = (((uint32_t)(ql >> 32) >> sh) & 0x0f0f0f0fu) |
                        ((((uint32_t)(qh >> 32) >> hs) & 0x03030303u) << 4);
    return dl * bt_bytes_dot(v0, v1, 8388640.0f, x0, x1);
}

/* Elements 8*ci .. 8*ci+7 of a row stored as type T. */
template <int T>
__device__ __forceinline__ void bt_row_chunk(const uint8_t *row, int ci, float y[8]) {
    constexpr int CPB = bt_info<T>::QK / 8;
    bt_chunk<T>(row + (size_t)(ci / CPB) * bt_info<T>::BYTES, ci % CPB, y);
}

/* bt_dot of chunk ci of a row stored as type T. */
template <int T>
__device__ __forceinline__ float bt_row_dot(const uint8_t *row, int ci, const float4 &x0,
                                            const float4 &x1, float sx) {
    constexpr int CPB = bt_info<T>::QK / 8;
    return bt_dot<T>(row + (size_t)(ci / CPB) * bt_info<T>::BYTES, ci % CPB, x0, x1, sx);
}

/* Calls F.template operator()<T>() for the runtime type t; false when t is not a block type. */
#define BT_DISPATCH(t, F)                                                                          \
    switch (t) {                                                                                   \
    case BT_F32:                                                                                   \
        F(BT_F32);                                                                                 \
        break;                                                                                     \
    case BT_F16:                                                                                   \
        F(BT_F16);                                                                                 \
        break;                                                                                     \
    case BT_BF16:                                                                                  \
        F(BT_BF16);                                                                                \
        break;                                                                                     \
    case BT_Q4_0:                                                                                  \
        F(BT_Q4_0);                                                                                \
        break;                                                                                     \
    case BT_Q4_1:                                                                                  \
        F(BT_Q4_1);                                                                                \
        break;                                                                                     \
    case BT_Q5_0:                                                                                  \
        F(BT_Q5_0);                                                                                \
        break;                                                                                     \
    case BT_Q5_1:                                                                                  \
        F(BT_Q5_1);                                                                                \
        break;                                                                                     \
    case BT_Q8_0:                                                                                  \
        F(BT_Q8_0);                                                                                \
        break;                                                                                     \
    case BT_Q2_K:                                                                                  \
        F(BT_Q2_K);                                                                                \
        break;                                                                                     \
    case BT_Q3_K:                                                                                  \
        F(BT_Q3_K);                                                                                \
        break;                                                                                     \
    case BT_Q4_K:                                                                                  \
        F(BT_Q4_K);                                                                                \
        break;                                                                                     \
    case BT_Q5_K:                                                                                  \
        F(BT_Q5_K);                                                                                \
        break;                                                                                     \
    case BT_Q6_K:                                                                                  \
        F(BT_Q6_K);                                                                                \
        break;                                                                                     \
    default:                                                                                       \
        break;                                                                                     \
    }

#endif
