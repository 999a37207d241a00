/* sample.cu: the sampler.h pipeline on the device over the whole vocabulary.
 *   1. penalties on a copy of the logits (one thread per distinct history token);
 *   2. log-softmax normaliser: max and sum of exp in double, one block of 1024 threads;
 *   3. greedy: the many-block argmax; top-n logprobs from a radix sort of the penalised logits;
 *   4/5. temperature > 0: radix sort of logits / T (descending, stable: ties keep the lower id),
 *      then one block walks the sorted prefix with block-wide scans in double: top-k, softmax
 *      weights r = exp(v - v_max), min-p (r >= min_p), top-p (shortest prefix with mass >=
 *      top_p * z), renormalise, and the inverse-CDF draw with the caller's u.
 * The arithmetic follows the host sampler (float weights, double sums) so both pick the same token
 * except where a sum lands within rounding of a boundary. */
#include <cub/device/device_radix_sort.cuh>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define SP_THREADS 1024

struct sp_layout {
    size_t pen, keys, keys_sorted, ids, ids_sorted, stats, cub, cub_bytes, total;
};

static sp_layout sp_plan(int n) {
    sp_layout l;
    const size_t fb = ((size_t)n * 4 + 255) & ~(size_t)255;
    l.pen = 0;
    l.keys = l.pen + fb;
    l.keys_sorted = l.keys + fb;
    l.ids = l.keys_sorted + fb;
    l.ids_sorted = l.ids + fb;
    l.stats = l.ids_sorted + fb;
    l.cub = l.stats + 2048;
    l.cub_bytes = 0;
    cub::DeviceRadixSort::SortPairsDescending(NULL, l.cub_bytes, (const float *)NULL, (float *)NULL,
                                              (const int *)NULL, (int *)NULL, n);
    l.total = l.cub + ((l.cub_bytes + 255) & ~(size_t)255);
    return l;
}

/* pen = logits (when pen is not NULL) and ids = 0..n-1 (when ids is not NULL). */
__global__ void sp_copy_kernel(const float *logits, int n, float *pen, int *ids) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        if (pen) pen[i] = logits[i];
        if (ids) ids[i] = i;
    }
}

__global__ void sp_penalty_kernel(float *pen, const int32_t *tok, const int32_t *cnt, int n_pen,
                                  kq_sample_args a) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_pen) return;
    float l = pen[tok[i]];
    if (l > 0.0f)
        l /= a.repetition_penalty;
    else if (l < 0.0f)
        l *= a.repetition_penalty;
    l -= a.presence_penalty;
    l -= (float)cnt[i] * a.frequency_penalty;
    pen[tok[i]] = l;
}

#define SP_STAT_BLOCKS 64

struct sp_stats {
    double lse;
    int32_t argmax;
    unsigned counter; /* zero between launches */
    float bmax[SP_STAT_BLOCKS];
    double bsum[SP_STAT_BLOCKS];
    int32_t bidx[SP_STAT_BLOCKS];
};

/* lse of pen: each block its slice's max and sum of exp (FP32 terms, double sum), the last block
 * to finish merges them; keys = pen / T when keys is not NULL. */
__global__ void sp_stats_kernel(const float *pen, int n, float t, float *keys, sp_stats *s) {
    __shared__ float red[32];
    __shared__ double dred[32];
    __shared__ bool last;
    const int per = (n + gridDim.x - 1) / gridDim.x;
    const int b = blockIdx.x * per, e = min(n, b + per);
    float m = -INFINITY;
    for (int i = b + threadIdx.x; i < e; i += blockDim.x) {
        m = fmaxf(m, pen[i]);
        if (keys) keys[i] = pen[i] / t;
    }
    m = kq_block_max(m, red);
    double sum = 0.0;
    for (int i = b + threadIdx.x; i < e; i += blockDim.x)
        sum += (double)expf(pen[i] - m);
    const double tot = kq_block_sum_f64(sum, dred);
    const int lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        s->bmax[blockIdx.x] = m;
        s->bsum[blockIdx.x] = tot;
        __threadfence();
        last = atomicAdd(&s->counter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last || threadIdx.x >= 32) return;
    /* one warp merges the blocks' (max, sum) pairs */
    __threadfence();
    float M = -INFINITY;
    for (int k = lane; k < (int)gridDim.x; k += 32)
        M = fmaxf(M, __ldcg(&s->bmax[k]));
    M = kq_warp_max(M);
    double S = 0.0;
    for (int k = lane; k < (int)gridDim.x; k += 32) {
        const float mk = __ldcg(&s->bmax[k]);
        if (mk != -INFINITY) S += __ldcg(&s->bsum[k]) * (double)expf(mk - M);
    }
    for (int o = 16; o > 0; o >>= 1)
        S += __shfl_xor_sync(0xffffffffu, S, o);
    if (lane == 0) {
        s->lse = (double)M + log(S);
        s->counter = 0;
    }
}

/* Greedy without alternatives, in one launch: each block the (max, lowest index) of its slice and
 * the slice's sum of exp relative to that max; the last block merges them into the token and its
 * log-probability (max - lse). */
__global__ void sp_greedy_kernel(const float *pen, int n, sp_stats *s, int32_t *out_tok,
                                 float *out_lp, const kq_params *p) {
    if (p) { /* in the decode graph: the logits and the result of the step's sequence */
        kq_wait_prior();
        pen = p->logits;
        out_tok = &p->greedy->token;
        out_lp = &p->greedy->logprob;
    }
    __shared__ float red[32], bm;
    __shared__ int ri[32];
    __shared__ double dred[32];
    __shared__ bool last;
    const int per = (n + gridDim.x - 1) / gridDim.x;
    const int b = blockIdx.x * per, e = min(n, b + per);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int i = b + threadIdx.x; i < e; i += blockDim.x)
        if (pen[i] > bv || (pen[i] == bv && i < bi)) bv = pen[i], bi = i;
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(0xffffffffu, bv, o);
        const int j = __shfl_xor_sync(0xffffffffu, bi, o);
        if (v > bv || (v == bv && j < bi)) bv = v, bi = j;
    }
    if (lane == 0) red[warp] = bv, ri[warp] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < nw; w++)
            if (red[w] > bv || (red[w] == bv && ri[w] < bi)) bv = red[w], bi = ri[w];
        bm = bv;
        ri[0] = bi;
    }
    __syncthreads();
    const float m = bm;
    double sum = 0.0;
    if (m != -INFINITY)
        for (int i = b + threadIdx.x; i < e; i += blockDim.x)
            sum += (double)expf(pen[i] - m);
    const double tot = kq_block_sum_f64(sum, dred);
    if (threadIdx.x == 0) {
        s->bmax[blockIdx.x] = m;
        s->bsum[blockIdx.x] = tot;
        s->bidx[blockIdx.x] = ri[0];
        __threadfence();
        last = atomicAdd(&s->counter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last || threadIdx.x >= 32) return;
    __threadfence();
    float M = -INFINITY;
    int I = INT_MAX;
    for (int k = lane; k < (int)gridDim.x; k += 32) {
        const float v = __ldcg(&s->bmax[k]);
        const int j = __ldcg(&s->bidx[k]);
        if (v > M || (v == M && j < I)) M = v, I = j;
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(0xffffffffu, M, o);
        const int j = __shfl_xor_sync(0xffffffffu, I, o);
        if (v > M || (v == M && j < I)) M = v, I = j;
    }
    double S = 0.0;
    for (int k = lane; k < (int)gridDim.x; k += 32) {
        const float mk = __ldcg(&s->bmax[k]);
        if (mk != -INFINITY) S += __ldcg(&s->bsum[k]) * (double)expf(mk - M);
    }
    for (int o = 16; o > 0; o >>= 1)
        S += __shfl_xor_sync(0xffffffffu, S, o);
    if (lane == 0) {
        const bool found = I != INT_MAX;
        *out_tok = found ? I : -1;
        *out_lp = found ? (float)((double)M - ((double)M + log(S))) : NAN;
        s->counter = 0;
    }
}

/* Exclusive block scan of one double per thread (SP_THREADS threads); returns the total too. */
__device__ double sp_scan(double v, double *total) {
    __shared__ double ws[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double x = v;
    for (int o = 1; o < 32; o <<= 1) {
        const double y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    __syncthreads();
    if (lane == 31) ws[warp] = x;
    __syncthreads();
    if (warp == 0) {
        double w = ws[lane];
        for (int o = 1; o < 32; o <<= 1) {
            const double y = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += y;
        }
        ws[lane] = w;
    }
    __syncthreads();
    *total = ws[31];
    return x - v + (warp > 0 ? ws[warp - 1] : 0.0);
}

/* First index j < k (in this thread's segment [b, e)) where base + cumulative r passes target
 * (>= when ge, else >); folded into *first by atomicMin. */
__device__ void sp_find(const float *keys, float vmax, int b, int e, double base, double target,
                        bool ge, int *first) {
    double cum = base;
    for (int j = b; j < e; j++) {
        cum += (double)expf(keys[j] - vmax);
        if (ge ? cum >= target : cum > target) {
            atomicMin(first, j);
            return;
        }
    }
}

__global__ void sp_pick_kernel(const float *keys, const int *ids, int n, kq_sample_args a,
                               sp_stats *s) {
    __shared__ int first;
    const float vmax = keys[0];
    const int k = a.top_k > 0 && a.top_k < n ? a.top_k : n;
    const int seg = (k + SP_THREADS - 1) / SP_THREADS;
    const int b = min(k, (int)threadIdx.x * seg), e = min(k, b + seg);
    /* min-p survivors are a prefix (r never increases along the sorted order). */
    if (threadIdx.x == 0) first = k;
    __syncthreads();
    double mine = 0.0;
    for (int j = b; j < e; j++) {
        const float r = expf(keys[j] - vmax);
        if (a.min_p > 0.0f && r < a.min_p) {
            atomicMin(&first, j);
            break;
        }
    }
    __syncthreads();
    const int nk = max(first, 1);
    for (int j = b; j < e; j++)
        mine += (double)expf(keys[j] - vmax);
    double z;
    const double base = sp_scan(mine, &z);
    int cut = nk;
    if (a.top_p < 1.0f) {
        __syncthreads();
        if (threadIdx.x == 0) first = nk;
        __syncthreads();
        sp_find(keys, vmax, b, min(e, nk), base, (double)a.top_p * z, true, &first);
        __syncthreads();
        cut = first < nk ? first + 1 : nk;
    }
    /* Mass of the kept prefix, then the draw. */
    double part = 0.0;
    for (int j = b; j < min(e, cut); j++)
        part += (double)expf(keys[j] - vmax);
    double zf;
    const double base2 = sp_scan(part, &zf);
    __syncthreads();
    if (threadIdx.x == 0) first = cut - 1;
    __syncthreads();
    sp_find(keys, vmax, b, min(e, cut), base2, (double)a.u * zf, false, &first);
    __syncthreads();
    if (threadIdx.x == 0) s->argmax = ids[first];
}

__global__ void sp_finish_kernel(const float *pen, const float *sorted_pen, const int *sorted_ids,
                                 const sp_stats *s, kq_sample_args a, const int32_t *greedy,
                                 kq_sample_out *out) {
    const int i = threadIdx.x;
    if (i == 0) {
        const int tok = greedy ? *greedy : s->argmax;
        out->token = tok;
        out->logprob = tok >= 0 ? (float)((double)pen[tok] - s->lse) : NAN;
    }
    if (i < (int)a.n_logprobs && i < 20) {
        out->top_tokens[i] = sorted_ids[i];
        out->top_logprobs[i] = (float)((double)sorted_pen[i] - s->lse);
    }
}

extern "C" size_t kq_sample_scratch_bytes(int n) {
    return sp_plan(n).total + kq_argmax_scratch_bytes(n) + 256;
}

#define SP_CHECK(x)                                                                                \
    do {                                                                                           \
        const cudaError_t e_ = (x);                                                                \
        if (e_ != cudaSuccess) return e_;                                                          \
    } while (0)

extern "C" cudaError_t kq_sample(const float *logits, int n, const kq_sample_args *a,
                                 const int32_t *pen_tok, const int32_t *pen_cnt, void *scratch,
                                 size_t scratch_bytes, kq_sample_out *out, cudaStream_t st) {
    const sp_layout l = sp_plan(n);
    if (n < 1 || scratch_bytes < kq_sample_scratch_bytes(n)) return cudaErrorInvalidValue;
    char *base = (char *)scratch;
    float *pen_buf = (float *)(base + l.pen), *keys = (float *)(base + l.keys);
    float *keys_sorted = (float *)(base + l.keys_sorted);
    int *ids = (int *)(base + l.ids), *ids_sorted = (int *)(base + l.ids_sorted);
    sp_stats *s = (sp_stats *)(base + l.stats);
    void *am = base + l.total;
    int32_t *greedy_tok = (int32_t *)(base + l.total + kq_argmax_scratch_bytes(n));
    size_t cub_bytes = l.cub_bytes;
    const int blocks = (n + 255) / 256 < 264 ? (n + 255) / 256 : 264;
    const bool greedy = a->temperature == 0.0f;

    /* without penalties the logits are read in place */
    const float *pen = a->n_pen > 0 ? pen_buf : logits;
    const bool sorts = a->n_logprobs > 0 || !greedy;
    if (a->n_pen > 0 || sorts) {
        sp_copy_kernel<<<blocks, 256, 0, st>>>(logits, n, a->n_pen > 0 ? pen_buf : NULL,
                                               sorts ? ids : NULL);
        SP_CHECK(cudaGetLastError());
    }
    if (a->n_pen > 0) {
        sp_penalty_kernel<<<(a->n_pen + 255) / 256, 256, 0, st>>>(pen_buf, pen_tok, pen_cnt,
                                                                  a->n_pen, *a);
        SP_CHECK(cudaGetLastError());
    }
    if (greedy && a->n_logprobs == 0) {
        sp_greedy_kernel<<<SP_STAT_BLOCKS, 512, 0, st>>>(pen, n, s, &out->token, &out->logprob,
                                                         NULL);
        return cudaGetLastError();
    }
    sp_stats_kernel<<<SP_STAT_BLOCKS, 512, 0, st>>>(pen, n, greedy ? 1.0f : a->temperature,
                                                    greedy ? NULL : keys, s);
    SP_CHECK(cudaGetLastError());
    if (a->n_logprobs > 0) {
        /* The alternatives are ranked by the penalised logits at temperature 1. */
        SP_CHECK(cub::DeviceRadixSort::SortPairsDescending(
            base + l.cub, cub_bytes, pen, keys_sorted, ids, ids_sorted, n, 0, 32, st));
    }
    if (greedy) {
        SP_CHECK(kq_argmax(pen, n, am, greedy_tok, st));
        sp_finish_kernel<<<1, 32, 0, st>>>(pen, keys_sorted, ids_sorted, s, *a, greedy_tok, out);
        return cudaGetLastError();
    }
    if (a->n_logprobs > 0) {
        /* keep the temperature-1 ranking for the report: finish writes it before the re-sort */
        sp_finish_kernel<<<1, 32, 0, st>>>(pen, keys_sorted, ids_sorted, s, *a, NULL, out);
        SP_CHECK(cudaGetLastError());
    }
    float *vk = keys_sorted;
    int *vi = ids_sorted;
    SP_CHECK(cub::DeviceRadixSort::SortPairsDescending(base + l.cub, cub_bytes, keys, vk, ids, vi,
                                                       n, 0, 32, st));
    sp_pick_kernel<<<1, SP_THREADS, 0, st>>>(vk, vi, n, *a, s);
    SP_CHECK(cudaGetLastError());
    kq_sample_args none = *a;
    none.n_logprobs = 0;
    sp_finish_kernel<<<1, 32, 0, st>>>(pen, vk, vi, s, none, NULL, out);
    return cudaGetLastError();
}

extern "C" size_t kq_greedy_scratch_bytes(void) {
    return sizeof(sp_stats);
}

extern "C" cudaError_t kq_greedy(const kq_params *p, int n, void *scratch, cudaStream_t st) {
    if (n < 1 || !p) return cudaErrorInvalidValue;
    return kq_launch(sp_greedy_kernel, dim3(SP_STAT_BLOCKS), dim3(512), 0, st, (const float *)NULL,
                     n, (sp_stats *)scratch, (int32_t *)NULL, (float *)NULL, p);
}
