/* attention.cu: causal grouped-query attention over the FP32 KV cache, for prefill (many queries)
 * and decode (one query) alike. A block handles one (query head, key-range split, token): each
 * warp walks tiles of KT keys (a key's dot product over 64 dimensions a lane, then every value
 * row of the tile against the lane's own value dimensions) with an online softmax; the block's
 * warps are merged in shared memory, and the splits of a (token, head) are merged by whichever
 * block finishes last, so long contexts use many multiprocessors without a second launch.
 * Softmax statistics and sums are FP32.
 *
 * Cache rows before p->pos were written by earlier steps, so each warp loads its first tile of
 * them into registers before waiting on the previous kernel; after the wait only the query and
 * the rows that kernel appended remain to load. */
#include <math.h>

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#include <cuda_fp16.h>

#define ATT_WARPS 4
#define ATT_MIN_CHUNK 256

struct att_args {
    const float *q;
    const kq_params *p;
    int n_head, n_head_kv, max_ctx, layer, n_split;
    float scale;
    float *part;
    unsigned *counters;
    float *out32;
    __half *out16;
};

/* Work split of one warp tile for head dimension HD: LPK lanes share a key (each takes KD of its
 * dimensions), so a tile holds KT keys; each lane accumulates DPL value dimensions. */
template <int HD> struct att_shape {
    static constexpr int LPK = HD / 64, KT = 32 / LPK, KD = HD / LPK, DPL = HD / 32;
};

template <int HD> __device__ void att_write(const att_args &a, int t, int h, int d, float v) {
    const size_t o = ((size_t)t * a.n_head + h) * HD + d;
    if (a.out32) a.out32[o] = v;
    if (a.out16) a.out16[o] = __float2half_rn(v);
}

/* Rows [lo, hi) of the warp tile starting at key `tile`: the lane's slice of its key into kr, the
 * lane's dimensions of every value row into vv. Registers of rows outside are left as they are. */
template <int HD>
__device__ __forceinline__ void att_load_tile(const float *K, const float *V, int kv_dim, int tile,
                                              int lo, int hi, float4 (&kr)[att_shape<HD>::KD / 4],
                                              float (&vv)[att_shape<HD>::KT][att_shape<HD>::DPL]) {
    using S = att_shape<HD>;
    const int lane = threadIdx.x & 31, j = tile + lane % S::KT, slice = lane / S::KT;
    if (j >= lo && j < hi) {
        const float4 *k4 = (const float4 *)(K + (size_t)j * kv_dim + slice * S::KD);
#pragma unroll
        for (int i = 0; i < S::KD / 4; i++)
            kr[i] = k4[i];
    }
#pragma unroll
    for (int k = 0; k < S::KT; k++) {
        const int r = tile + k;
        if (r >= lo && r < hi) {
            const float *vr = V + (size_t)r * kv_dim + lane * S::DPL;
#pragma unroll
            for (int i = 0; i < S::DPL; i++)
                vv[k][i] = vr[i];
        }
    }
}

/* At most half the register file a block (two blocks a multiprocessor): the decode kernel then
 * fits beside the QKV kernel's blocks, which it follows, and starts loading while they finish. */
template <int HD>
__global__ void __launch_bounds__(ATT_WARPS * 32, 2) attention_kernel(att_args a) {
    using S = att_shape<HD>;
    constexpr int DPL = S::DPL, KT = S::KT;
    __shared__ float qs[HD];
    __shared__ float wm[ATT_WARPS], wl[ATT_WARPS], wacc[ATT_WARPS][HD];
    __shared__ bool last;
    const int h = blockIdx.x, s = blockIdx.y, t = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, slice = lane / KT;
    const int kvh = h / (a.n_head / a.n_head_kv), kv_dim = a.n_head_kv * HD;
    /* p->pos is written before the step's first kernel, so it may be read before the wait; the
     * cache rows before it are complete (the previous kernel appends rows pos .. pos+n-1) */
    const int pos = a.p->pos, len = pos + t + 1;
    /* at least ATT_MIN_CHUNK keys a split: short contexts use fewer splits (ns of them) and a
     * single one writes its result directly; unused splits leave at once (split 0 always
     * exists and waits, so the grid still completes after its predecessor) */
    const int chunk = max(ATT_MIN_CHUNK, (len + a.n_split - 1) / a.n_split);
    const int ns = (len + chunk - 1) / chunk;
    if (s >= ns) return;
    const int t0 = s * chunk, t1 = min(len, t0 + chunk);
    const size_t layer_base = (size_t)a.layer * a.max_ctx * kv_dim + (size_t)kvh * HD;
    const float *K = a.p->k + layer_base, *V = a.p->v + layer_base;
    const int tile0 = t0 + warp * KT;
    float4 kr[S::KD / 4];
    float vv[KT][DPL];
#pragma unroll
    for (int k = 0; k < KT; k++)
#pragma unroll
        for (int i = 0; i < DPL; i++)
            vv[k][i] = 0.0f;
    att_load_tile<HD>(K, V, kv_dim, tile0, t0, min(t1, pos), kr, vv);
    /* the later tiles' rows into L2 meanwhile (a prefetch returns nothing, so rows still being
     * written are harmless) */
    for (int r = t0 + ATT_WARPS * KT + threadIdx.x / (HD / 32); r < t1;
         r += blockDim.x / (HD / 32)) {
        const int o = (threadIdx.x % (HD / 32)) * 32;
        kq_prefetch_l2(K + (size_t)r * kv_dim + o);
        kq_prefetch_l2(V + (size_t)r * kv_dim + o);
    }
    kq_wait_prior();
    kq_allow_next();
    for (int d = threadIdx.x; d < HD; d += blockDim.x)
        qs[d] = a.q[((size_t)t * a.n_head + h) * HD + d] * a.scale;
    att_load_tile<HD>(K, V, kv_dim, tile0, max(t0, pos), t1, kr, vv);
    __syncthreads();

    float m = -INFINITY, l = 0.0f, acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++)
        acc[i] = 0.0f;
    for (int tile = tile0; tile < t1; tile += ATT_WARPS * KT) {
        if (tile != tile0) {
#pragma unroll
            for (int k = 0; k < KT; k++)
#pragma unroll
                for (int i = 0; i < DPL; i++)
                    vv[k][i] = 0.0f;
            att_load_tile<HD>(K, V, kv_dim, tile, t0, t1, kr, vv);
        }
        const int j = tile + lane % KT;
        const float4 *q4 = (const float4 *)(qs + slice * S::KD);
        float d0 = 0.0f, d1 = 0.0f;
#pragma unroll
        for (int i = 0; i < S::KD / 4; i += 2) {
            const float4 k0 = kr[i], k1 = kr[i + 1], x0 = q4[i], x1 = q4[i + 1];
            d0 += k0.x * x0.x + k0.y * x0.y + k0.z * x0.z + k0.w * x0.w;
            d1 += k1.x * x1.x + k1.y * x1.y + k1.z * x1.z + k1.w * x1.w;
        }
        float sc = d0 + d1;
        if (S::LPK == 2) sc += __shfl_xor_sync(0xffffffffu, sc, 16);
        sc = j < t1 ? sc : -INFINITY;
        const float m_new = fmaxf(m, kq_warp_max(sc));
        const float corr = expf(m - m_new);
        const float pj = j < t1 ? expf(sc - m_new) : 0.0f;
        /* lanes sharing a key hold the same pj: count it once */
        l = l * corr + kq_warp_sum(slice == 0 ? pj : 0.0f);
#pragma unroll
        for (int i = 0; i < DPL; i++)
            acc[i] *= corr;
#pragma unroll
        for (int k = 0; k < KT; k++) {
            const float w = __shfl_sync(0xffffffffu, pj, k);
#pragma unroll
            for (int i = 0; i < DPL; i++)
                acc[i] += w * vv[k][i];
        }
        m = m_new;
    }
    if (lane == 0) {
        wm[warp] = m;
        wl[warp] = l;
    }
#pragma unroll
    for (int i = 0; i < DPL; i++)
        wacc[warp][lane * DPL + i] = acc[i];
    __syncthreads();

    /* Merge the warps: (M, L, ACC) of this block's key range. */
    float M = -INFINITY;
    for (int w = 0; w < ATT_WARPS; w++)
        M = fmaxf(M, wm[w]);
    float L = 0.0f;
    for (int w = 0; w < ATT_WARPS; w++)
        L += wm[w] == -INFINITY ? 0.0f : wl[w] * expf(wm[w] - M);
    const size_t th = (size_t)t * a.n_head + h;
    if (ns == 1) {
        for (int d = threadIdx.x; d < HD; d += blockDim.x) {
            float v = 0.0f;
            for (int w = 0; w < ATT_WARPS; w++)
                if (wm[w] != -INFINITY) v += wacc[w][d] * expf(wm[w] - M);
            att_write<HD>(a, t, h, d, v / L);
        }
        return;
    }
    float *mine = a.part + (th * a.n_split + s) * (HD + 2);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float v = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            if (wm[w] != -INFINITY) v += wacc[w][d] * expf(wm[w] - M);
        mine[2 + d] = v;
    }
    if (threadIdx.x == 0) {
        mine[0] = M;
        mine[1] = L;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(a.counters + th, 1u) == (unsigned)ns - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    /* the splits' statistics are read in parallel, one thread each (n_split <= blockDim) */
    __shared__ float red[32], sw[ATT_WARPS * 32];
    const float *all = a.part + th * a.n_split * (HD + 2);
    const int k = threadIdx.x;
    const float mk = k < ns ? __ldcg(all + k * (HD + 2)) : -INFINITY;
    const float lk = k < ns ? __ldcg(all + k * (HD + 2) + 1) : 0.0f;
    const float GM = kq_block_max(mk, red);
    const float wk = mk == -INFINITY ? 0.0f : expf(mk - GM);
    const float GL = kq_block_sum(lk * wk, red);
    sw[k] = wk;
    __syncthreads();
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float v = 0.0f;
#pragma unroll 4
        for (int j = 0; j < ns; j++)
            v += sw[j] * __ldcg(all + j * (HD + 2) + 2 + d);
        att_write<HD>(a, t, h, d, v / GL);
    }
    if (threadIdx.x == 0) a.counters[th] = 0;
}

extern "C" cudaError_t kq_attention(const float *q, int n_tok, const kq_params *p, const kq_geom *g,
                                    int layer, int n_split, float *part, unsigned *counters,
                                    float *out32, void *out16, cudaStream_t st) {
    if (n_tok < 1 || n_split < 1 || n_split > ATT_WARPS * 32 || g->n_head % g->n_head_kv != 0)
        return cudaErrorInvalidValue;
    att_args a = {q,          p,        g->n_head, g->n_head_kv,
                  g->max_ctx, layer,    n_split,   1.0f / sqrtf((float)g->head_dim),
                  part,       counters, out32,     (__half *)out16};
    const dim3 grid(g->n_head, n_split, n_tok);
    if (g->head_dim == 64)
        return kq_launch(attention_kernel<64>, grid, dim3(ATT_WARPS * 32), 0, st, a);
    if (g->head_dim == 128)
        return kq_launch(attention_kernel<128>, grid, dim3(ATT_WARPS * 32), 0, st, a);
    return cudaErrorInvalidValue;
}
