/* softmax.cu: the causal softmax of prefill attention scores (FP32). Rows are the scores of one
 * (head, query) pair against keys 0..L-1; query i of the chunk sits at position pos0 + i and sees
 * keys 0..pos0+i. Masked keys get weight 0. One block per row. */
#include <math.h>

#include "kernels/common.cuh"
#include "kernels/kernels.h"

__global__ void softmax_causal_kernel(float *s, int n, int L, int pos0) {
    __shared__ float red[32];
    const int i = blockIdx.x, h = blockIdx.y;
    float *row = s + ((size_t)h * n + i) * L;
    const int valid = pos0 + i + 1;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < valid; j += blockDim.x)
        m = fmaxf(m, row[j]);
    m = kq_block_max(m, red);
    float z = 0.0f;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) {
        const float p = expf(row[j] - m);
        row[j] = p;
        z += p;
    }
    z = kq_block_sum(z, red);
    const float inv = 1.0f / z;
    for (int j = threadIdx.x; j < L; j += blockDim.x)
        row[j] = j < valid ? row[j] * inv : 0.0f;
}

extern "C" cudaError_t kq_softmax_causal(float *scores, int n_head, int n, int L, int pos0,
                                         cudaStream_t st) {
    if (n < 1 || n_head < 1 || pos0 + n > L) return cudaErrorInvalidValue;
    softmax_causal_kernel<<<dim3(n, n_head), 256, 0, st>>>(scores, n, L, pos0);
    return cudaGetLastError();
}
