/* dequant.cu: a range of weight rows expanded to F16 in scratch, so that prefill can multiply them
 * with cuBLAS on the tensor cores. Weights stay in their block type in VRAM; only the scratch of
 * the matrix in use is expanded. */
#include "kernels/blocks.cuh"
#include "kernels/kernels.h"

template <int T> __global__ void dequant_kernel(kq_mat m, int row0, int n_rows, __half *out) {
    const int nch = m.cols / 8;
    const long total = (long)n_rows * nch;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        const int r = (int)(i / nch), c = (int)(i % nch);
        float y[8];
        bt_row_chunk<T>((const uint8_t *)m.w + (size_t)(row0 + r) * m.row_bytes, c, y);
        __half2 h[4];
#pragma unroll
        for (int k = 0; k < 4; k++)
            h[k] = __floats2half2_rn(y[2 * k], y[2 * k + 1]);
        *(uint4 *)(out + (size_t)r * m.cols + 8 * c) = *(const uint4 *)h;
    }
}

extern "C" cudaError_t kq_dequant_f16(const kq_mat *m, int row0, int n_rows, void *out16,
                                      cudaStream_t st) {
    if ((m->cols & 7) != 0 || n_rows < 1) return cudaErrorInvalidValue;
    const long total = (long)n_rows * (m->cols / 8);
    const int blocks = (int)((total + 255) / 256 < 132 * 16 ? (total + 255) / 256 : 132 * 16);
#define DEQ_CASE(T) dequant_kernel<T><<<blocks, 256, 0, st>>>(*m, row0, n_rows, (__half *)out16)
    BT_DISPATCH(m->type, DEQ_CASE)
#undef DEQ_CASE
    return cudaGetLastError();
}
