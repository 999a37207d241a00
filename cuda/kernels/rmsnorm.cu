/* rmsnorm.cu: RMSNorm of each row in FP32 (prefill), written as FP32 and/or as F16 for the
 * tensor-core GEMM that follows. One block per row. */
#include "kernels/common.cuh"
#include "kernels/kernels.h"

#include <cuda_fp16.h>

__global__ void rmsnorm_kernel(const float *x, const float *w, int dim, float eps, float *out32,
                               __half *out16) {
    __shared__ float red[32];
    const float *row = x + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ss += row[i] * row[i];
    ss = kq_block_sum(ss, red);
    const float scale = rsqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float y = row[i] * scale * w[i];
        if (out32) out32[(size_t)blockIdx.x * dim + i] = y;
        if (out16) out16[(size_t)blockIdx.x * dim + i] = __float2half_rn(y);
    }
}

extern "C" cudaError_t kq_rmsnorm(const float *x, const float *w, int n_rows, int dim, float eps,
                                  float *out32, void *out16, cudaStream_t st) {
    if (n_rows < 1) return cudaErrorInvalidValue;
    rmsnorm_kernel<<<n_rows, 256, 0, st>>>(x, w, dim, eps, out32, (__half *)out16);
    return cudaGetLastError();
}
