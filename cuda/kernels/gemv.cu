/* gemv.cu: the decode matrix-vector products, reading each weight in its block type (8 elements a
 * thread a step) against FP32 inputs with FP32 accumulation. Two kernels:
 *   row kernel   one block of 128 threads per output unit (a row, a rotary row pair, or a
 *                gate/up pair; two units a block for the large FFN products): a unit costs one
 *                memory round trip and a block reduction.
 *   head kernel  16 consecutive rows a block for matrices of many rows (the LM head).
 * RMSNorm is folded in as a scalar on the dot products (W.(x*s*w) = s * W.(x*w), x^2 summed from
 * the chunks read), so norms need no launch of their own; epilogues add biases, rotate, fill the
 * KV cache, apply SwiGLU or update the residual. Weights are prefetched into L2 before waiting
 * on the previous kernel (programmatic dependent launch). */
#include <math.h>
#include <string.h>

#include "kernels/blocks.cuh"
#include "kernels/common.cuh"
#include "kernels/kernels.h"

struct gemv_args {
    kq_mat m[3];
    int n_mats, cols, n_units, units_per_block;
    const float *x, *norm_w;
    float eps;
    float *out;
    const kq_params *p;
    int n_head, n_head_kv, head_dim, max_ctx, layer;
    const double *inv_freq;
};

__device__ __forceinline__ const uint8_t *row_ptr(const kq_mat &m, int r) {
    return (const uint8_t *)m.w + (size_t)r * m.row_bytes;
}

/* The QKV unit u: a (row, row + head_dim/2) pair of q, k or v. */
/* The rotated pair (rows r0, r1 = r0 + head_dim/2 of q, k or v) to q or the cache row p->pos. */
__device__ __forceinline__ void qkv_store(const gemv_args &a, int which, int r0, int r1, double f,
                                          float x0, float x1) {
    const int pos = a.p->pos;
    if (which < 2) {
        double s, c;
        sincos((double)pos * f, &s, &c);
        const float fs = (float)s, fc = (float)c;
        const float y0 = x0 * fc - x1 * fs, y1 = x0 * fs + x1 * fc;
        x0 = y0;
        x1 = y1;
    }
    if (which == 0) {
        a.out[r0] = x0;
        a.out[r1] = x1;
        return;
    }
    const int kv_dim = a.n_head_kv * a.head_dim;
    float *cache =
        (which == 1 ? a.p->k : a.p->v) + ((size_t)a.layer * a.max_ctx + (size_t)pos) * kv_dim;
    cache[r0] = x0;
    cache[r1] = x1;
}

/* ---- one block per output unit: the matrices of the layers (a few thousand rows) ----
 * 128 threads share each row (one 8-element chunk per thread at 896 columns), so a unit costs one
 * memory round trip and a block reduction instead of a warp walking the whole row. */

#define ROW_THREADS 128
#define ROW_STEP 5          /* chunks of a row a thread loads at once past ROW_THREADS chunks */
#define PAIR_MIN_UNITS 4096 /* products with this many units take two a block */
#define HEAD_MIN_ROWS 16384 /* SET/ADD products with more rows use the head kernel */

template <int T>
__device__ __forceinline__ float chunk_dot(int type, const uint8_t *row, int c, const float4 &x0,
                                           const float4 &x1, float sx) {
    if constexpr (T >= 0) {
        return bt_row_dot<T>(row, c, x0, x1, sx);
    } else {
        float v = 0.0f;
#define CHUNK_CASE(TT) v = bt_row_dot<TT>(row, c, x0, x1, sx)
        BT_DISPATCH(type, CHUNK_CASE)
#undef CHUNK_CASE
        return v;
    }
}

/* Rows of unit u: (m0 row r0) and, for pairs, (m1 row r1); i is the rotary index. */
template <int MODE>
__device__ __forceinline__ void unit_rows(const gemv_args &a, int u, int &which, int &r0, int &r1,
                                          int &i, const kq_mat *&m0, const kq_mat *&m1) {
    which = 0, r0 = u, r1 = u, i = 0;
    m0 = m1 = &a.m[0];
    if (MODE == KQ_GEMV_QKV) {
        const int half = a.head_dim / 2, qp = a.n_head * half, kp = a.n_head_kv * half;
        which = u < qp ? 0 : u < qp + kp ? 1 : 2;
        const int v = u - (which == 0 ? 0 : which == 1 ? qp : qp + kp);
        i = v % half;
        r0 = (v / half) * a.head_dim + i;
        r1 = r0 + half;
        m0 = m1 = &a.m[which];
    } else if (MODE == KQ_GEMV_SWIGLU) {
        m1 = &a.m[1];
    }
}

/* Input chunk c (elements 8c .. 8c+7) into x0/x1, multiplied by the norm weights when there are
 * any, and sx their sum; the squares of the inputs are added to ss when `count`. Without a norm
 * the input stands in for the norm weights and is selected away, so the loads never sit behind a
 * branch. */
__device__ __forceinline__ void x_chunk(const gemv_args &a, int c, bool count, float4 &x0,
                                        float4 &x1, float &sx, float &ss) {
    const bool norm = a.norm_w != NULL;
    const float4 *x4 = (const float4 *)a.x, *n4 = norm ? (const float4 *)a.norm_w : x4;
    const float4 one = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
    x0 = __ldg(x4 + 2 * c), x1 = __ldg(x4 + 2 * c + 1);
    float4 w0 = __ldg(n4 + 2 * c), w1 = __ldg(n4 + 2 * c + 1);
    const float q = x0.x * x0.x + x0.y * x0.y + x0.z * x0.z + x0.w * x0.w + x1.x * x1.x +
                    x1.y * x1.y + x1.z * x1.z + x1.w * x1.w;
    ss += count && norm ? q : 0.0f;
    w0 = norm ? w0 : one;
    w1 = norm ? w1 : one;
    x0.x *= w0.x, x0.y *= w0.y, x0.z *= w0.z, x0.w *= w0.w;
    x1.x *= w1.x, x1.y *= w1.y, x1.z *= w1.z, x1.w *= w1.w;
    sx = ((x0.x + x0.y) + (x0.z + x0.w)) + ((x1.x + x1.y) + (x1.z + x1.w));
}

/* S chunks of each of the block's rows from chunk c0 on, for NU units. Chunk indices are clamped
 * and the products of chunks past the row dropped by a select, so a step has no branch around a
 * load and all of its loads are in flight at once. */
template <int MODE, int T, int S, int NU>
__device__ __forceinline__ void row_step(const gemv_args &a, const uint8_t *const row0[2],
                                         const uint8_t *const row1[2], const kq_mat *const m0[2],
                                         const kq_mat *const m1[2], int c0, int nch, float d[4],
                                         float &ss) {
    constexpr bool PAIR = MODE == KQ_GEMV_QKV || MODE == KQ_GEMV_SWIGLU;
#pragma unroll
    for (int j = 0; j < S; j++) {
        const int c = c0 + threadIdx.x + j * ROW_THREADS, cc = min(c, nch - 1);
        const bool in = c < nch;
        float4 x0, x1;
        float sx;
        x_chunk(a, cc, in, x0, x1, sx, ss);
        const float v0 = chunk_dot<T>(m0[0]->type, row0[0], cc, x0, x1, sx);
        const float v1 = PAIR ? chunk_dot<T>(m1[0]->type, row1[0], cc, x0, x1, sx) : 0.0f;
        const float v2 = NU > 1 ? chunk_dot<T>(m0[1]->type, row0[1], cc, x0, x1, sx) : 0.0f;
        const float v3 = NU > 1 && PAIR ? chunk_dot<T>(m1[1]->type, row1[1], cc, x0, x1, sx) : 0.0f;
        d[0] += in ? v0 : 0.0f;
        d[1] += in ? v1 : 0.0f;
        d[2] += in ? v2 : 0.0f;
        d[3] += in ? v3 : 0.0f;
    }
}

/* NU units per block (a.units_per_block: 1, or 2 for the large gate/up products). TV (QKV mode,
 * one unit a block) is the block type of the v matrix when it differs from q and k's type T. */
template <int MODE, int T, int TV = T>
__global__ void __launch_bounds__(ROW_THREADS) gemv_row_kernel(gemv_args a) {
    constexpr bool PAIR = MODE == KQ_GEMV_QKV || MODE == KQ_GEMV_SWIGLU;
    __shared__ float red[ROW_THREADS / 32][5];
    const int nu = a.units_per_block, u_first = blockIdx.x * nu, tid = threadIdx.x;
    int which[2], r0[2], r1[2], ri[2];
    const kq_mat *m0[2], *m1[2];
    const uint8_t *row0[2], *row1[2];
    float b0[2] = {0.0f, 0.0f}, b1[2] = {0.0f, 0.0f};
    double f[2] = {0.0, 0.0};
#pragma unroll
    for (int k = 0; k < 2; k++) {
        const int u = min(u_first + k, a.n_units - 1);
        unit_rows<MODE>(a, u, which[k], r0[k], r1[k], ri[k], m0[k], m1[k]);
        row0[k] = row_ptr(*m0[k], r0[k]);
        row1[k] = row_ptr(*m1[k], r1[k]);
        if (k < nu) {
            for (uint64_t o = (uint64_t)tid * 128; o < m0[k]->row_bytes; o += ROW_THREADS * 128) {
                kq_prefetch_l2(row0[k] + o);
                if (PAIR) kq_prefetch_l2(row1[k] + o);
            }
            if (tid == k) { /* thread k finishes unit k */
                if (m0[k]->bias) b0[k] = m0[k]->bias[r0[k]];
                if (PAIR && m1[k]->bias) b1[k] = m1[k]->bias[r1[k]];
                if (MODE == KQ_GEMV_QKV) f[k] = a.inv_freq[ri[k]];
            }
        }
    }
    kq_wait_prior();
    kq_allow_next();
    const bool n4 = a.norm_w != NULL;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}, ss = 0.0f;
    const int nch = a.cols / 8;
    if (TV != T && which[0] == 2) {
        for (int c0 = 0; c0 < nch; c0 += ROW_STEP / 2 * ROW_THREADS)
            row_step<MODE, TV, ROW_STEP / 2, 1>(a, row0, row1, m0, m1, c0, nch, d, ss);
    } else if (nch <= ROW_THREADS) {
        if (nu > 1)
            row_step<MODE, T, 1, 2>(a, row0, row1, m0, m1, 0, nch, d, ss);
        else
            row_step<MODE, T, 1, 1>(a, row0, row1, m0, m1, 0, nch, d, ss);
    } else {
        /* about ROW_STEP chunk loads in flight a thread, over all the rows of the step */
        constexpr int S1 = PAIR ? ROW_STEP / 2 : ROW_STEP, S2 = PAIR ? 1 : ROW_STEP / 2;
        if (nu > 1)
            for (int c0 = 0; c0 < nch; c0 += S2 * ROW_THREADS)
                row_step<MODE, T, S2, 2>(a, row0, row1, m0, m1, c0, nch, d, ss);
        else
            for (int c0 = 0; c0 < nch; c0 += S1 * ROW_THREADS)
                row_step<MODE, T, S1, 1>(a, row0, row1, m0, m1, c0, nch, d, ss);
    }
#pragma unroll
    for (int k = 0; k < 4; k++)
        d[k] = kq_warp_sum(d[k]);
    if (n4) ss = kq_warp_sum(ss);
    if ((tid & 31) == 0) {
#pragma unroll
        for (int k = 0; k < 4; k++)
            red[tid >> 5][k] = d[k];
        red[tid >> 5][4] = ss;
    }
    __syncthreads();
    if (tid >= nu) return;
    /* thread k finishes unit k */
    const int k = tid, u = u_first + k;
    if (u >= a.n_units) return;
    float e0 = 0.0f, e1 = 0.0f;
    ss = 0.0f;
    for (int w = 0; w < ROW_THREADS / 32; w++) {
        e0 += red[w][2 * k];
        e1 += red[w][2 * k + 1];
        ss += red[w][4];
    }
    const float sc = n4 ? rsqrtf(ss / (float)a.cols + a.eps) : 1.0f;
    e0 *= sc;
    e1 *= sc;
    const float bb0 = k == 0 ? b0[0] : b0[1], bb1 = k == 0 ? b1[0] : b1[1];
    if (MODE == KQ_GEMV_QKV) {
        qkv_store(a, k == 0 ? which[0] : which[1], k == 0 ? r0[0] : r0[1], k == 0 ? r1[0] : r1[1],
                  k == 0 ? f[0] : f[1], e0 + bb0, e1 + bb1);
    } else if (MODE == KQ_GEMV_SWIGLU) {
        a.out[u] = e0 / (1.0f + expf(-e0)) * e1;
    } else if (MODE == KQ_GEMV_ADD) {
        a.out[u] += e0 + bb0;
    } else {
        (a.out ? a.out : a.p->logits)[u] = e0 + bb0;
    }
}

/* ---- the LM head (and any matrix of many rows): HEAD_ROWS consecutive rows a block ----
 * Every thread reads one chunk of each of the block's rows for the same input chunk, so sixteen
 * independent loads are in flight per thread; the rows are reduced across the block at the end. */

/* The LM head's chunk product: Q8_0 (the tied embedding of the usual quantized files) with the
 * scale out of the element loop and its signed bytes, offset by 128, made floats by the byte
 * permute (full-rate operations instead of an integer conversion an element: the head reads
 * 136 M of them a token); other types as chunk_dot. */
template <int T>
__device__ __forceinline__ float head_dot(int type, const uint8_t *row, int ci, const float4 &x0,
                                          const float4 &x1, float sx) {
    if constexpr (T == BT_Q8_0) {
        const uint8_t *b = row + (size_t)(ci / 4) * bt_info<BT_Q8_0>::BYTES;
        const float d = bt_half(b);
        const uint64_t q = bt_load8(b + 2 + 8 * (ci % 4));
        const uint32_t v0 = (uint32_t)q ^ 0x80808080u, v1 = (uint32_t)(q >> 32) ^ 0x80808080u;
        return d * bt_bytes_dot(v0, v1, 8388736.0f, x0, x1);
    } else {
        return chunk_dot<T>(type, row, ci, x0, x1, sx);
    }
}

#define HEAD_ROWS 16

template <int MODE, int T>
__global__ void __launch_bounds__(ROW_THREADS) gemv_head_kernel(gemv_args a) {
    __shared__ float red[ROW_THREADS / 32][HEAD_ROWS + 1];
    const int r0 = blockIdx.x * HEAD_ROWS, tid = threadIdx.x;
    const int nr = min(HEAD_ROWS, a.n_units - r0);
    const kq_mat &m = a.m[0];
    const uint8_t *base = row_ptr(m, r0);
    for (uint64_t o = (uint64_t)tid * 128; o < (uint64_t)nr * m.row_bytes; o += ROW_THREADS * 128)
        kq_prefetch_l2(base + o);
    const float bias = tid < nr && m.bias ? m.bias[r0 + tid] : 0.0f;
    kq_wait_prior();
    kq_allow_next();
    const bool n4 = a.norm_w != NULL;
    float acc[HEAD_ROWS], ss = 0.0f;
#pragma unroll
    for (int r = 0; r < HEAD_ROWS; r++)
        acc[r] = 0.0f;
    for (int c = tid; c < a.cols / 8; c += ROW_THREADS) {
        float4 x0, x1;
        float sx;
        x_chunk(a, c, true, x0, x1, sx, ss);
        /* rows past the matrix (last block only) read the last row again and are not written,
         * so the row loads sit in one branch-free stretch */
#pragma unroll
        for (int r = 0; r < HEAD_ROWS; r++)
            acc[r] +=
                head_dot<T>(m.type, base + (size_t)min(r, nr - 1) * m.row_bytes, c, x0, x1, sx);
    }
#pragma unroll
    for (int r = 0; r < HEAD_ROWS; r++)
        acc[r] = kq_warp_sum(acc[r]);
    if (n4) ss = kq_warp_sum(ss);
    if ((tid & 31) == 0) {
#pragma unroll
        for (int r = 0; r < HEAD_ROWS; r++)
            red[tid >> 5][r] = acc[r];
        red[tid >> 5][HEAD_ROWS] = ss;
    }
    __syncthreads();
    if (tid >= nr) return;
    float v = 0.0f;
    ss = 0.0f;
    for (int w = 0; w < ROW_THREADS / 32; w++) {
        v += red[w][tid];
        ss += red[w][HEAD_ROWS];
    }
    v = v * (n4 ? rsqrtf(ss / (float)a.cols + a.eps) : 1.0f) + bias;
    if (MODE == KQ_GEMV_ADD)
        a.out[r0 + tid] += v;
    else
        (a.out ? a.out : a.p->logits)[r0 + tid] = v;
}

extern "C" cudaError_t kq_gemv(int mode, const kq_mat *m, int n_mats, const float *x,
                               const float *norm_w, float eps, float *out, const kq_params *p,
                               const kq_geom *g, int layer, cudaStream_t st) {
    gemv_args a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < n_mats && i < 3; i++)
        a.m[i] = m[i];
    a.n_mats = n_mats;
    a.cols = m[0].cols;
    a.x = x;
    a.norm_w = norm_w;
    a.eps = eps;
    a.out = out;
    a.p = p;
    a.layer = layer;
    if (g) {
        a.n_head = g->n_head;
        a.n_head_kv = g->n_head_kv;
        a.head_dim = g->head_dim;
        a.max_ctx = g->max_ctx;
        a.inv_freq = g->inv_freq;
    }
    a.n_units = mode == KQ_GEMV_QKV ? (m[0].rows + m[1].rows + m[2].rows) / 2 : m[0].rows;
    if ((a.cols & 7) != 0 || mode < 0 || mode > KQ_GEMV_QKV) return cudaErrorInvalidValue;
    int t = m[0].type;
    for (int i = 1; i < n_mats; i++)
        if (m[i].type != t) t = -1;
    void (*k)(gemv_args) = NULL;
    const bool by_head = a.n_units >= HEAD_MIN_ROWS && (mode == KQ_GEMV_SET || mode == KQ_GEMV_ADD);
#define GEMV_T(M, TT)                                                                              \
    (by_head ? gemv_head_kernel<(M == KQ_GEMV_ADD ? KQ_GEMV_ADD : KQ_GEMV_SET), TT>                \
             : gemv_row_kernel<M, TT>)
#define GEMV_PICK(M)                                                                               \
    do {                                                                                           \
        switch (t) {                                                                               \
        case BT_F32:                                                                               \
            k = GEMV_T(M, BT_F32);                                                                 \
            break;                                                                                 \
        case BT_F16:                                                                               \
            k = GEMV_T(M, BT_F16);                                                                 \
            break;                                                                                 \
        case BT_BF16:                                                                              \
            k = GEMV_T(M, BT_BF16);                                                                \
            break;                                                                                 \
        case BT_Q4_0:                                                                              \
            k = GEMV_T(M, BT_Q4_0);                                                                \
            break;                                                                                 \
        case BT_Q4_1:                                                                              \
            k = GEMV_T(M, BT_Q4_1);                                                                \
            break;                                                                                 \
        case BT_Q5_0:                                                                              \
            k = GEMV_T(M, BT_Q5_0);                                                                \
            break;                                                                                 \
        case BT_Q5_1:                                                                              \
            k = GEMV_T(M, BT_Q5_1);                                                                \
            break;                                                                                 \
        case BT_Q8_0:                                                                              \
            k = GEMV_T(M, BT_Q8_0);                                                                \
            break;                                                                                 \
        case BT_Q2_K:                                                                              \
            k = GEMV_T(M, BT_Q2_K);                                                                \
            break;                                                                                 \
        case BT_Q3_K:                                                                              \
            k = GEMV_T(M, BT_Q3_K);                                                                \
            break;                                                                                 \
        case BT_Q4_K:                                                                              \
            k = GEMV_T(M, BT_Q4_K);                                                                \
            break;                                                                                 \
        case BT_Q5_K:                                                                              \
            k = GEMV_T(M, BT_Q5_K);                                                                \
            break;                                                                                 \
        case BT_Q6_K:                                                                              \
            k = GEMV_T(M, BT_Q6_K);                                                                \
            break;                                                                                 \
        default: /* mixed types: only the multi-matrix modes (row kernel) */                       \
            k = gemv_row_kernel<M, -1>;                                                            \
            break;                                                                                 \
        }                                                                                          \
    } while (0)
    switch (mode) {
    case KQ_GEMV_SET:
        GEMV_PICK(KQ_GEMV_SET);
        break;
    case KQ_GEMV_ADD:
        GEMV_PICK(KQ_GEMV_ADD);
        break;
    case KQ_GEMV_SWIGLU:
        GEMV_PICK(KQ_GEMV_SWIGLU);
        break;
    default:
        GEMV_PICK(KQ_GEMV_QKV);
        break;
    }
#undef GEMV_PICK
#undef GEMV_T
    /* the usual mixes of a quantized QKV (q and k in one type, v in a wider one) get their own
     * instance instead of the runtime-typed one (one unit a block) */
    if (mode == KQ_GEMV_QKV && t == -1 && m[0].type == m[1].type && a.n_units < PAIR_MIN_UNITS) {
        if (m[0].type == BT_Q5_0 && m[2].type == BT_Q8_0)
            k = gemv_row_kernel<KQ_GEMV_QKV, BT_Q5_0, BT_Q8_0>;
        else if (m[0].type == BT_Q4_K && m[2].type == BT_Q6_K)
            k = gemv_row_kernel<KQ_GEMV_QKV, BT_Q4_K, BT_Q6_K>;
    }
    if (by_head)
        return kq_launch(k, dim3((a.n_units + HEAD_ROWS - 1) / HEAD_ROWS), dim3(ROW_THREADS), 0, st,
                         a);
    /* two units a block once there are enough of them to fill the machine twice over (the
     * mixed QKV instances above rely on one) */
    a.units_per_block = a.n_units >= PAIR_MIN_UNITS ? 2 : 1;
    const int nb = (a.n_units + a.units_per_block - 1) / a.units_per_block;
    return kq_launch(k, dim3(nb), dim3(ROW_THREADS), 0, st, a);
}
