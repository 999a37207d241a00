/* common.cuh: small device helpers shared by the kernels (reductions). */
#ifndef WORKER_CUDA_COMMON_CUH
#define WORKER_CUDA_COMMON_CUH

__device__ __forceinline__ float kq_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float kq_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
 * red: 32 floats of shared memory. */
__device__ __forceinline__ float kq_block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kq_warp_sum(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return kq_warp_sum(v);
}

/* Sum over the block in double (blockDim.x a multiple of 32); the result is thread 0's.
 * red: 32 doubles of shared memory. */
__device__ __forceinline__ double kq_block_sum_f64(double v, double *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double t = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < nw; w++)
            t += red[w];
    return t;
}

__device__ __forceinline__ float kq_block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kq_warp_max(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    return kq_warp_max(v);
}

/* Programmatic dependent launch: a kernel launched by kq_launch may start while its predecessor
 * in the stream is finishing. Before kq_wait_prior it may only read memory no kernel of the step
 * writes (weights, the step's kq_params, copied in before its first kernel) and prefetch into L2;
 * after it, everything earlier in the stream is complete and visible. */
__device__ __forceinline__ void kq_wait_prior(void) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

/* Lets the next kernel in the stream start its own pre-wait part. */
__device__ __forceinline__ void kq_allow_next(void) {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

/* Warms L2 with the line at p (a weight the kernel reads after kq_wait_prior). */
__device__ __forceinline__ void kq_prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

/* Launches k with programmatic stream serialization (see kq_wait_prior). */
template <typename... KArgs, typename... Args>
static cudaError_t kq_launch(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem,
                             cudaStream_t st, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    cudaError_t e = cudaLaunchKernelEx(&cfg, k, ((KArgs)args)...);
    return e != cudaSuccess ? e : cudaGetLastError();
}

#endif
