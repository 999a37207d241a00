/* gemv.cu: the decode matrix-vector products. One warp computes one output unit (a row, or the
 * row pair a rotary rotation mixes) by reading the weight rows in their block type, 8 elements per
 * lane per step, against the input vector held in shared memory; FP32 accumulation. Each block
 * first loads (and optionally RMS-normalises) the input, so the norms need no launch of their own;
 * the epilogues add biases, rotate, fill the KV cache, apply SwiGLU or update the residual. */
#include <math.h>
#include <string.h>

#include "kernels/blocks.cuh"
#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define GEMV_WARPS 4

struct gemv_args {
    kq_mat m[3];
    int n_mats, cols, n_units, units_per_warp;
    const float *x, *norm_w;
    float eps;
    float *out;
    const kq_params *p;
    int n_head, n_head_kv, head_dim, max_ctx, layer;
    const double *inv_freq;
};

/* Dot products of NR rows of type T (cols elements) with x (times nw elementwise when nw is not
 * NULL), both read through the cache: no staging, so the first weight and input loads leave
 * together. Every lane gets the sums. */
template <int T, int NR>
__device__ __forceinline__ void dot_rows(const uint8_t *const *rows, int cols, const float *x,
                                         const float *nw, float *acc) {
    const int lane = threadIdx.x & 31, nch = cols >> 3;
    const float4 *x4 = (const float4 *)x, *n4 = (const float4 *)nw;
    float a[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        a[r] = 0.0f;
#pragma unroll 4
    for (int c = lane; c < nch; c += 32) {
        float4 x0 = __ldg(x4 + 2 * c), x1 = __ldg(x4 + 2 * c + 1);
        if (nw) {
            const float4 w0 = __ldg(n4 + 2 * c), w1 = __ldg(n4 + 2 * c + 1);
            x0.x *= w0.x, x0.y *= w0.y, x0.z *= w0.z, x0.w *= w0.w;
            x1.x *= w1.x, x1.y *= w1.y, x1.z *= w1.z, x1.w *= w1.w;
        }
#pragma unroll
        for (int r = 0; r < NR; r++) {
            float y[8];
            bt_row_chunk<T>(rows[r], c, y);
            a[r] += y[0] * x0.x + y[1] * x0.y + y[2] * x0.z + y[3] * x0.w + y[4] * x1.x +
                    y[5] * x1.y + y[6] * x1.z + y[7] * x1.w;
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = kq_warp_sum(a[r]);
}

/* Runtime-typed dispatch to dot_rows. */
template <int NR>
__device__ __forceinline__ void dot_rows_t(int type, const uint8_t *const *rows, int cols,
                                           const float *x, const float *nw, float *acc) {
#define GEMV_CASE(T) dot_rows<T, NR>(rows, cols, x, nw, acc)
    BT_DISPATCH(type, GEMV_CASE)
#undef GEMV_CASE
}

/* Compile-time type T, or the runtime type when T < 0 (matrices of mixed types). */
template <int T, int NR>
__device__ __forceinline__ void dot_any(int type, const uint8_t *const *rows, int cols,
                                        const float *x, const float *nw, float *acc) {
    if constexpr (T >= 0)
        dot_rows<T, NR>(rows, cols, x, nw, acc);
    else
        dot_rows_t<NR>(type, rows, cols, x, nw, acc);
}

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

template <int T> __device__ void qkv_unit(const gemv_args &a, float sc, int u) {
    const int half = a.head_dim / 2;
    const int q_pairs = a.n_head * half, kv_pairs = a.n_head_kv * half;
    int which = 0, v = u;
    if (v >= q_pairs) {
        v -= q_pairs;
        which = 1;
        if (v >= kv_pairs) {
            v -= kv_pairs;
            which = 2;
        }
    }
    const kq_mat &m = a.m[which];
    const int head = v / half, i = v % half;
    const int r0 = head * a.head_dim + i, r1 = r0 + half;
    const uint8_t *rows[2] = {row_ptr(m, r0), row_ptr(m, r1)};
    /* biases and the frequency are loaded alongside the weights, not after them */
    const float b0 = m.bias ? m.bias[r0] : 0.0f, b1 = m.bias ? m.bias[r1] : 0.0f;
    const double f = a.inv_freq ? a.inv_freq[i] : 0.0;
    float d[2];
    dot_any<T, 2>(m.type, rows, a.cols, a.x, a.norm_w, d);
    if ((threadIdx.x & 31) != 0) return;
    qkv_store(a, which, r0, r1, f, d[0] * sc + b0, d[1] * sc + b1);
}

template <int MODE, int T>
__global__ void __launch_bounds__(GEMV_WARPS * 32, 8) gemv_kernel(gemv_args a) {
    /* Before the predecessor finishes: warm L2 with this warp's first weight rows. */
    {
        const int w = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
        const int u = w * a.units_per_warp;
        if (u < a.n_units) {
            int mi = 0, r = u;
            if (MODE == KQ_GEMV_QKV) {
                const int half = a.head_dim / 2, qp = a.n_head * half, kp = a.n_head_kv * half;
                mi = u < qp ? 0 : u < qp + kp ? 1 : 2;
                const int v = u - (mi == 0 ? 0 : mi == 1 ? qp : qp + kp);
                r = (v / half) * a.head_dim + v % half;
            }
            const int nm = MODE == KQ_GEMV_SWIGLU ? 2 : 1;
            for (int k = 0; k < nm; k++) {
                const kq_mat &m = a.m[mi + k];
                const uint8_t *row = (const uint8_t *)m.w + (size_t)r * m.row_bytes;
                for (uint64_t o = (uint64_t)lane * 128; o < m.row_bytes; o += 32 * 128)
                    kq_prefetch_l2(row + o);
                if (MODE == KQ_GEMV_QKV) /* the rotary partner row */
                    for (uint64_t o = (uint64_t)lane * 128; o < m.row_bytes; o += 32 * 128)
                        kq_prefetch_l2(row + (size_t)(a.head_dim / 2) * m.row_bytes + o);
            }
        }
    }
    kq_wait_prior();
    kq_allow_next();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int u0 = (blockIdx.x * GEMV_WARPS + warp) * a.units_per_warp;
    if (u0 >= a.n_units) return;
    /* RMSNorm as a scalar on the dot products: W.(x*s*w) = s * W.(x*w); each warp sums x^2 */
    float sc = 1.0f;
    if (a.norm_w) {
        float ss = 0.0f;
        for (int i = lane; i < a.cols / 4; i += 32) {
            const float4 v = __ldg((const float4 *)a.x + i);
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
        sc = rsqrtf(kq_warp_sum(ss) / (float)a.cols + a.eps);
    }
    const int u1 = min(u0 + a.units_per_warp, a.n_units);
    if (MODE == KQ_GEMV_QKV) {
        for (int u = u0; u < u1; u++)
            qkv_unit<T>(a, sc, u);
    } else if (MODE == KQ_GEMV_SWIGLU) {
        for (int u = u0; u < u1; u++) {
            if (T >= 0 && u + 1 < u1) { /* two units at once: four rows in flight */
                const uint8_t *rows[4] = {row_ptr(a.m[0], u), row_ptr(a.m[1], u),
                                          row_ptr(a.m[0], u + 1), row_ptr(a.m[1], u + 1)};
                float d[4];
                dot_any<T, 4>(a.m[0].type, rows, a.cols, a.x, a.norm_w, d);
                if (lane < 2) {
                    const float g = (lane == 0 ? d[0] : d[2]) * sc;
                    const float up = (lane == 0 ? d[1] : d[3]) * sc;
                    a.out[u + lane] = g / (1.0f + expf(-g)) * up;
                }
                u++;
                continue;
            }
            const uint8_t *rows[2] = {row_ptr(a.m[0], u), row_ptr(a.m[1], u)};
            float d[2];
            if (T >= 0 || a.m[0].type == a.m[1].type) {
                dot_any<T, 2>(a.m[0].type, rows, a.cols, a.x, a.norm_w, d);
            } else {
                dot_any<T, 1>(a.m[0].type, rows, a.cols, a.x, a.norm_w, d);
                dot_any<T, 1>(a.m[1].type, rows + 1, a.cols, a.x, a.norm_w, d + 1);
            }
            const float g = d[0] * sc, up = d[1] * sc;
            if (lane == 0) a.out[u] = g / (1.0f + expf(-g)) * up;
        }
    } else {
        float *out = a.out ? a.out : a.p->logits;
        /* two rows at a time: twice the loads in flight */
        for (int u = u0; u < u1; u += 2) {
            const int nr = u + 1 < u1 ? 2 : 1;
            const uint8_t *rows[2] = {row_ptr(a.m[0], u), row_ptr(a.m[0], u + nr - 1)};
            float d[2];
            if (nr == 2)
                dot_any<T, 2>(a.m[0].type, rows, a.cols, a.x, a.norm_w, d);
            else
                dot_any<T, 1>(a.m[0].type, rows, a.cols, a.x, a.norm_w, d);
            if (lane < nr) {
                float v = (lane == 0 ? d[0] : d[1]) * sc;
                if (a.m[0].bias) v += a.m[0].bias[u + lane];
                if (MODE == KQ_GEMV_ADD)
                    out[u + lane] += v;
                else
                    out[u + lane] = v;
            }
        }
    }
}

/* ---- one block per output unit: the matrices of the layers (a few thousand rows) ----
 * 128 threads share each row (one 8-element chunk per thread at 896 columns), so a unit costs one
 * memory round trip and a block reduction instead of a warp walking the whole row. */

#define ROW_THREADS 128
#define ROW_MAX_UNITS 16384 /* beyond this, warps walk rows (the LM head) */

template <int T>
__device__ __forceinline__ float chunk_dot(int type, const uint8_t *row, int c, const float4 &x0,
                                           const float4 &x1) {
    float y[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if constexpr (T >= 0) {
        bt_row_chunk<T>(row, c, y);
    } else {
#define CHUNK_CASE(TT) bt_row_chunk<TT>(row, c, y)
        BT_DISPATCH(type, CHUNK_CASE)
#undef CHUNK_CASE
    }
    return y[0] * x0.x + y[1] * x0.y + y[2] * x0.z + y[3] * x0.w + y[4] * x1.x + y[5] * x1.y +
           y[6] * x1.z + y[7] * x1.w;
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

/* NU units per block (a.units_per_warp: 1, or 2 for the large gate/up products). */
template <int MODE, int T>
__global__ void __launch_bounds__(ROW_THREADS) gemv_row_kernel(gemv_args a) {
    constexpr bool PAIR = MODE == KQ_GEMV_QKV || MODE == KQ_GEMV_SWIGLU;
    __shared__ float red[ROW_THREADS / 32][5];
    const int nu = a.units_per_warp, u_first = blockIdx.x * nu, tid = threadIdx.x;
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
    const float4 *x4 = (const float4 *)a.x, *n4 = (const float4 *)a.norm_w;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}, ss = 0.0f;
#pragma unroll 2
    for (int c = tid; c < a.cols / 8; c += ROW_THREADS) {
        float4 x0 = __ldg(x4 + 2 * c), x1 = __ldg(x4 + 2 * c + 1);
        if (n4) {
            ss += x0.x * x0.x + x0.y * x0.y + x0.z * x0.z + x0.w * x0.w + x1.x * x1.x +
                  x1.y * x1.y + x1.z * x1.z + x1.w * x1.w;
            const float4 w0 = __ldg(n4 + 2 * c), w1 = __ldg(n4 + 2 * c + 1);
            x0.x *= w0.x, x0.y *= w0.y, x0.z *= w0.z, x0.w *= w0.w;
            x1.x *= w1.x, x1.y *= w1.y, x1.z *= w1.z, x1.w *= w1.w;
        }
        d[0] += chunk_dot<T>(m0[0]->type, row0[0], c, x0, x1);
        if (PAIR) d[1] += chunk_dot<T>(m1[0]->type, row1[0], c, x0, x1);
        if (nu > 1) {
            d[2] += chunk_dot<T>(m0[1]->type, row0[1], c, x0, x1);
            if (PAIR) d[3] += chunk_dot<T>(m1[1]->type, row1[1], c, x0, x1);
        }
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
    /* One wave of 8 resident blocks per multiprocessor; more units per warp beyond. */
    static int n_sm = 0;
    if (n_sm == 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            n_sm = 132;
    }
    const int target_warps = n_sm * 8 * GEMV_WARPS;
    a.units_per_warp = a.n_units > target_warps ? (a.n_units + target_warps - 1) / target_warps : 1;
    const int warps = (a.n_units + a.units_per_warp - 1) / a.units_per_warp;
    const int blocks = (warps + GEMV_WARPS - 1) / GEMV_WARPS;
    const dim3 grid(blocks), block(GEMV_WARPS * 32);
    if ((a.cols & 7) != 0 || mode < 0 || mode > KQ_GEMV_QKV) return cudaErrorInvalidValue;
    int t = m[0].type;
    for (int i = 1; i < n_mats; i++)
        if (m[i].type != t) t = -1;
    void (*k)(gemv_args) = NULL;
    const bool by_row = a.n_units <= ROW_MAX_UNITS;
#define GEMV_T(M, TT) (by_row ? gemv_row_kernel<M, TT> : gemv_kernel<M, TT>)
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
        default:                                                                                   \
            k = GEMV_T(M, -1);                                                                     \
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
    if (by_row) {
        /* two units a block once there are enough of them to fill the machine twice over */
        a.units_per_warp = a.n_units >= 4096 ? 2 : 1;
        const int nb = (a.n_units + a.units_per_warp - 1) / a.units_per_warp;
        return kq_launch(k, dim3(nb), dim3(ROW_THREADS), 0, st, a);
    }
    return kq_launch(k, grid, block, 0, st, a);
}
