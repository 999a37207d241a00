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
                                           const float *xs, float *acc){
#define GEMV_CASE(T) dot_rows<T, NR>(rows, cols, xs, acc)
    BT_DISPATCH(type, GEMV_CASE)
#undef GEMV_CASE
}

__device__ __forceinline__ const uint8_t *row_ptr(const kq_mat &m, int r) {
    return (const uint8_t *)m.w + (size_t)r * m.row_bytes;
}

/* The QKV unit u: a (row, row + head_dim/2) pair of q, k or v. */
__device__ void qkv_unit(const gemv_args &a, const float *xs, int u) {
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
    dot_rows_t<2>(m.type, rows, a.cols, xs, d);
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

template <int MODE> __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_kernel(gemv_args a) {
    extern __shared__ float xs[];
    __shared__ float red[32];
    float ss = 0.0f;
    for (int i = threadIdx.x * 4; i < a.cols; i += blockDim.x * 4) {
        const float4 v = *(const float4 *)(a.x + i);
        *(float4 *)(xs + i) = v;
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    if (a.norm_w) {
        ss = kq_block_sum(ss, red);
        const float scale = rsqrtf(ss / (float)a.cols + a.eps);
        for (int i = threadIdx.x; i < a.cols; i += blockDim.x)
            xs[i] = xs[i] * scale * a.norm_w[i];
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int u0 = (blockIdx.x * GEMV_WARPS + warp) * a.units_per_warp;
    for (int u = u0; u < u0 + a.units_per_warp && u < a.n_units; u++) {
        if (MODE == KQ_GEMV_QKV) {
            qkv_unit(a, xs, u);
        } else if (MODE == KQ_GEMV_SWIGLU) {
            const uint8_t *g = row_ptr(a.m[0], u), *up = row_ptr(a.m[1], u);
            float d[2];
            if (a.m[0].type == a.m[1].type) {
                const uint8_t *rows[2] = {g, up};
                dot_rows_t<2>(a.m[0].type, rows, a.cols, xs, d);
            } else {
                dot_rows_t<1>(a.m[0].type, &g, a.cols, xs, d);
                dot_rows_t<1>(a.m[1].type, &up, a.cols, xs, d + 1);
            }
            if (lane == 0) a.out[u] = d[0] / (1.0f + expf(-d[0])) * d[1];
        } else {
            const uint8_t *r = row_ptr(a.m[0], u);
            float d;
            dot_rows_t<1>(a.m[0].type, &r, a.cols, xs, &d);
            if (lane == 0) {
                if (a.m[0].bias) d += a.m[0].bias[u];
                if (MODE == KQ_GEMV_ADD)
                    a.out[u] += d;
                else
                    (a.out ? a.out : a.p->logits)[u] = d;
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
    /* About 8 resident blocks per multiprocessor over 132 of them; more units per warp beyond. */
    const int target_warps = 132 * 8 * GEMV_WARPS;
    a.units_per_warp = a.n_units > target_warps ? (a.n_units + target_warps - 1) / target_warps : 1;
    const int warps = (a.n_units + a.units_per_warp - 1) / a.units_per_warp;
    const int blocks = (warps + GEMV_WARPS - 1) / GEMV_WARPS;
    const size_t smem = (size_t)a.cols * sizeof(float);
    const dim3 grid(blocks), block(GEMV_WARPS * 32);
    if ((a.cols & 7) != 0 || mode < 0 || mode > KQ_GEMV_QKV) return cudaErrorInvalidValue;
#define GEMV_LAUNCH(M)                                                                             \
    do {                                                                                           \
        if (smem > 48 * 1024) {                                                                    \
            const cudaError_t e = cudaFuncSetAttribute(                                            \
                gemv_kernel<M>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);           \
            if (e != cudaSuccess) return e;                                                        \
        }                                                                                          \
        gemv_kernel<M><<<grid, block, smem, st>>>(a);                                              \
    } while (0)
    switch (mode) {
    case KQ_GEMV_SET:
        GEMV_LAUNCH(KQ_GEMV_SET);
        break;
    case KQ_GEMV_ADD:
        GEMV_LAUNCH(KQ_GEMV_ADD);
        break;
    case KQ_GEMV_SWIGLU:
        GEMV_LAUNCH(KQ_GEMV_SWIGLU);
        break;
    default:
        GEMV_LAUNCH(KQ_GEMV_QKV);
        break;
    }
#undef GEMV_LAUNCH
    return cudaGetLastError();
}
