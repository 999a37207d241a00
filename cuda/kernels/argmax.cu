/* argmax.cu: greedy selection over the whole vocabulary with many threads: each block reduces a
 * slice to (value, index), the last block to finish reduces the blocks' results. Ties go to the
 * lowest index; NaN never wins (all-NaN input gives -1). */
#include <limits.h>
#include <math.h>

#include "kernels/kernels.h"

#define AM_BLOCKS 64
#define AM_THREADS 512

struct am_scratch {
    unsigned counter;
    int pad[3];
    float val[AM_BLOCKS];
    int idx[AM_BLOCKS];
};

__device__ __forceinline__ void am_better(float &bv, int &bi, float v, int i) {
    if (v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
    }
}

__device__ void am_block(float &bv, int &bi) {
    __shared__ float sv[32];
    __shared__ int si[32];
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(0xffffffffu, bv, o);
        const int i = __shfl_xor_sync(0xffffffffu, bi, o);
        am_better(bv, bi, v, i);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    bv = lane < (int)(blockDim.x >> 5) ? sv[lane] : -INFINITY;
    bi = lane < (int)(blockDim.x >> 5) ? si[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(0xffffffffu, bv, o);
        const int i = __shfl_xor_sync(0xffffffffu, bi, o);
        am_better(bv, bi, v, i);
    }
}

__global__ void argmax_kernel(const float *x, int n, am_scratch *s, int32_t *out) {
    __shared__ bool last;
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        am_better(bv, bi, x[i], i);
    am_block(bv, bi);
    if (threadIdx.x == 0) {
        s->val[blockIdx.x] = bv;
        s->idx[blockIdx.x] = bi;
        __threadfence();
        last = atomicAdd(&s->counter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    bv = -INFINITY;
    bi = INT_MAX;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += blockDim.x)
        am_better(bv, bi, __ldcg(&s->val[b]), __ldcg(&s->idx[b]));
    am_block(bv, bi);
    if (threadIdx.x == 0) {
        *out = bi == INT_MAX ? -1 : bi;
        s->counter = 0;
    }
}

extern "C" size_t kq_argmax_scratch_bytes(int n) {
    return sizeof(am_scratch);
}

extern "C" cudaError_t kq_argmax(const float *x, int n, void *scratch, int32_t *out,
                                 cudaStream_t st) {
    if (n < 1) return cudaErrorInvalidValue;
    const int blocks = (n + AM_THREADS - 1) / AM_THREADS < AM_BLOCKS
                           ? (n + AM_THREADS - 1) / AM_THREADS
                           : AM_BLOCKS;
    argmax_kernel<<<blocks, AM_THREADS, 0, st>>>(x, n, (am_scratch *)scratch, out);
    return cudaGetLastError();
}
