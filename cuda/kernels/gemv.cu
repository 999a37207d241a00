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

#define GEMV_WARPS 8

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

/* Dot products of NR rows of type T (cols elements) with xs; every lane gets the sums. */
template <int T, int NR>
__device__ __forceinline__ void dot_rows(const uint8_t *const *rows, int cols, const float *xs,
                                         float *acc) {
    const int lane = threadIdx.x & 31, nch = cols >> 3;
    float a[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        a[r] = 0.0f;
#pragma unroll 4
    for (int c = lane; c < nch; c += 32) {
        const float4 x0 = ((const float4 *)xs)[2 * c], x1 = ((const float4 *)xs)[2 * c + 1];
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
                                           const float *xs, float *acc) {
#define GEMV_CASE(T) dot_rows<T, NR>(rows, cols, xs, acc)
    BT_DISPATCH(type, GEMV_CASE)
#undef GEMV_CASE
}

/* Compile-time type T, or the runtime type when T < 0 (matrices of mixed types). */
template <int T, int NR>
__device__ __forceinline__ void dot_any(int type, const uint8_t *const *rows, int cols,
                                        const float *xs, float *acc) {
    if constexpr (T >= 0)
        dot_rows<T, NR>(rows, cols, xs, acc);
    else
        dot_rows_t<NR>(type, rows, cols, xs, acc);
}

__device__ __forceinline__ const uint8_t *row_ptr(const kq_mat &m, int r) {
    return (const uint8_t *)m.w + (size_t)r * m.row_bytes;
}

/* The QKV unit u: a (row, row + head_dim/2) pair of q, k or v. */
template <int T> __device__ void qkv_unit(const gemv_args &a, const float *xs, int u) {
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
    float d[2];
    dot_any<T, 2>(m.type, rows, a.cols, xs, d);
    if ((threadIdx.x & 31) != 0) return;
    float x0 = d[0] + (m.bias ? m.bias[r0] : 0.0f), x1 = d[1] + (m.bias ? m.bias[r1] : 0.0f);
    const int pos = a.p->pos;
    if (which < 2) {
        double s, c;
        sincos((double)pos * a.inv_freq[i], &s, &c);
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

/* T: the block type of every matrix, or -1 for a runtime switch (mixed types). At most 64
 * registers, so that four blocks (32 warps) stay resident per multiprocessor. */
template <int MODE, int T>
__global__ void __launch_bounds__(GEMV_WARPS * 32, 4) gemv_kernel(gemv_args a) {
    extern __shared__ float xs[];
    __shared__ float red[32];
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
    /* norm weights are immutable too: fetched before the wait when they fit 4 per thread */
    float nwr[4];
    const bool nw_pre = a.norm_w && a.cols <= 4 * (int)blockDim.x;
    if (nw_pre) {
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int i = threadIdx.x + k * blockDim.x;
            nwr[k] = i < a.cols ? a.norm_w[i] : 0.0f;
        }
    }
    kq_wait_prior();
    kq_allow_next();
    float ss = 0.0f;
    for (int i = threadIdx.x * 4; i < a.cols; i += blockDim.x * 4) {
        const float4 v = *(const float4 *)(a.x + i);
        *(float4 *)(xs + i) = v;
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    if (a.norm_w) {
        ss = kq_block_sum(ss, red);
        const float scale = rsqrtf(ss / (float)a.cols + a.eps);
        __syncthreads(); /* every float4 store of xs is visible before the rescale */
        if (nw_pre) {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int i = threadIdx.x + k * blockDim.x;
                if (i < a.cols) xs[i] = xs[i] * scale * nwr[k];
            }
        } else {
            for (int i = threadIdx.x; i < a.cols; i += blockDim.x)
                xs[i] = xs[i] * scale * a.norm_w[i];
        }
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int u0 = (blockIdx.x * GEMV_WARPS + warp) * a.units_per_warp;
    const int u1 = min(u0 + a.units_per_warp, a.n_units);
    if (MODE == KQ_GEMV_QKV) {
        for (int u = u0; u < u1; u++)
            qkv_unit<T>(a, xs, u);
    } else if (MODE == KQ_GEMV_SWIGLU) {
        for (int u = u0; u < u1; u++) {
            const uint8_t *rows[2] = {row_ptr(a.m[0], u), row_ptr(a.m[1], u)};
            float d[2];
            if (T >= 0 || a.m[0].type == a.m[1].type) {
                dot_any<T, 2>(a.m[0].type, rows, a.cols, xs, d);
            } else {
                dot_any<T, 1>(a.m[0].type, rows, a.cols, xs, d);
                dot_any<T, 1>(a.m[1].type, rows + 1, a.cols, xs, d + 1);
            }
            if (lane == 0) a.out[u] = d[0] / (1.0f + expf(-d[0])) * d[1];
        }
    } else {
        float *out = a.out ? a.out : a.p->logits;
        /* two rows at a time: twice the loads in flight */
        for (int u = u0; u < u1; u += 2) {
            const int nr = u + 1 < u1 ? 2 : 1;
            const uint8_t *rows[2] = {row_ptr(a.m[0], u), row_ptr(a.m[0], u + nr - 1)};
            float d[2];
            if (nr == 2)
                dot_any<T, 2>(a.m[0].type, rows, a.cols, xs, d);
            else
                dot_any<T, 1>(a.m[0].type, rows, a.cols, xs, d);
            if (lane < nr) {
                float v = lane == 0 ? d[0] : d[1];
                if (a.m[0].bias) v += a.m[0].bias[u + lane];
                if (MODE == KQ_GEMV_ADD)
                    out[u + lane] += v;
                else
                    out[u + lane] = v;
            }
        }
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
    /* One wave of 4 resident blocks per multiprocessor; more units per warp beyond. */
    static int n_sm = 0;
    if (n_sm == 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            n_sm = 132;
    }
    const int target_warps = n_sm * 4 * GEMV_WARPS;
    a.units_per_warp = a.n_units > target_warps ? (a.n_units + target_warps - 1) / target_warps : 1;
    const int warps = (a.n_units + a.units_per_warp - 1) / a.units_per_warp;
    const int blocks = (warps + GEMV_WARPS - 1) / GEMV_WARPS;
    const size_t smem = (size_t)a.cols * sizeof(float);
    const dim3 grid(blocks), block(GEMV_WARPS * 32);
    if ((a.cols & 7) != 0 || mode < 0 || mode > KQ_GEMV_QKV) return cudaErrorInvalidValue;
    int t = m[0].type;
    for (int i = 1; i < n_mats; i++)
        if (m[i].type != t) t = -1;
    void (*k)(gemv_args) = NULL;
#define GEMV_PICK(M)                                                                               \
    do {                                                                                           \
        switch (t) {                                                                               \
        case BT_F32:                                                                               \
            k = gemv_kernel<M, BT_F32>;                                                            \
            break;                                                                                 \
        case BT_F16:                                                                               \
            k = gemv_kernel<M, BT_F16>;                                                            \
            break;                                                                                 \
        case BT_BF16:                                                                              \
            k = gemv_kernel<M, BT_BF16>;                                                           \
            break;                                                                                 \
        case BT_Q4_0:                                                                              \
            k = gemv_kernel<M, BT_Q4_0>;                                                           \
            break;                                                                                 \
        case BT_Q4_1:                                                                              \
            k = gemv_kernel<M, BT_Q4_1>;                                                           \
            break;                                                                                 \
        case BT_Q5_0:                                                                              \
            k = gemv_kernel<M, BT_Q5_0>;                                                           \
            break;                                                                                 \
        case BT_Q5_1:                                                                              \
            k = gemv_kernel<M, BT_Q5_1>;                                                           \
            break;                                                                                 \
        case BT_Q8_0:                                                                              \
            k = gemv_kernel<M, BT_Q8_0>;                                                           \
            break;                                                                                 \
        case BT_Q2_K:                                                                              \
            k = gemv_kernel<M, BT_Q2_K>;                                                           \
            break;                                                                                 \
        case BT_Q3_K:                                                                              \
            k = gemv_kernel<M, BT_Q3_K>;                                                           \
            break;                                                                                 \
        case BT_Q4_K:                                                                              \
            k = gemv_kernel<M, BT_Q4_K>;                                                           \
            break;                                                                                 \
        case BT_Q5_K:                                                                              \
            k = gemv_kernel<M, BT_Q5_K>;                                                           \
            break;                                                                                 \
        case BT_Q6_K:                                                                              \
            k = gemv_kernel<M, BT_Q6_K>;                                                           \
            break;                                                                                 \
        default:                                                                                   \
            k = gemv_kernel<M, -1>;                                                                \
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
    if (smem > 48 * 1024) {
        const cudaError_t e =
            cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    return kq_launch(k, grid, block, smem, st, a);
}
