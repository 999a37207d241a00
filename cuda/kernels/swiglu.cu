/* swiglu.cu: silu(gate) * up elementwise (prefill), FP32 in, FP32 and/or F16 out. */
#include "kernels/kernels.h"

#include <cuda_fp16.h>

__global__ void swiglu_kernel(const float *g, const float *u, long n, float *out32, __half *out16) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        const float y = g[i] / (1.0f + expf(-g[i])) * u[i];
        if (out32) out32[i] = y;
        if (out16) out16[i] = __float2half_rn(y);
    }
}

extern "C" cudaError_t kq_swiglu(const float *gate, const float *up, long n, float *out32,
                                 void *out16, cudaStream_t st) {
    if (n < 1) return cudaErrorInvalidValue;
    const long b = (n + 255) / 256;
    swiglu_kernel<<<(int)(b < 132 * 16 ? b : 132 * 16), 256, 0, st>>>(gate, up, n, out32,
                                                                      (__half *)out16);
    return cudaGetLastError();
}
