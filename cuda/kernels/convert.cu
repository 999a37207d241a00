/* convert.cu: FP32 activations rounded to F16 (round to nearest even) for a tensor-core GEMM. */
#include "kernels/kernels.h"

#include <cuda_fp16.h>

__global__ void f32_to_f16_kernel(const float *x, long n, __half *y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        y[i] = __float2half_rn(x[i]);
}

extern "C" cudaError_t kq_f32_to_f16(const float *x, long n, void *y, cudaStream_t st) {
    if (n < 1) return cudaErrorInvalidValue;
    const long b = (n + 255) / 256;
    f32_to_f16_kernel<<<(int)(b < 132 * 16 ? b : 132 * 16), 256, 0, st>>>(x, n, (__half *)y);
    return cudaGetLastError();
}
