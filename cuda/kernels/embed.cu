/* embed.cu: token embedding lookup for every block type: row `token` of token_embd, dequantized to
 * FP32 into the residual stream. One block per token, 8 elements per thread per step. */
#include "kernels/blocks.cuh"
#include "kernels/common.cuh"
#include "kernels/kernels.h"

template <int T>
__global__ void embed_kernel(kq_mat tab, const int32_t *tokens, const kq_params *p, float *x) {
    kq_wait_prior();
    kq_allow_next();
    const int i = blockIdx.x;
    int tok = tokens ? tokens[i] : p->token;
    if (!tokens && p->token_src) {
        tok = *p->token_src;
        tok = tok >= 0 && tok < tab.rows ? tok : 0;
    }
    const uint8_t *row = (const uint8_t *)tab.w + (size_t)tok * tab.row_bytes;
    float *out = x + (size_t)i * tab.cols;
    for (int c = threadIdx.x; c < tab.cols / 8; c += blockDim.x) {
        float y[8];
        bt_row_chunk<T>(row, c, y);
        *(float4 *)(out + 8 * c) = make_float4(y[0], y[1], y[2], y[3]);
        *(float4 *)(out + 8 * c + 4) = make_float4(y[4], y[5], y[6], y[7]);
    }
}

extern "C" cudaError_t kq_embed(const kq_mat *tab, const int32_t *tokens, const kq_params *p, int n,
                                float *x, cudaStream_t st) {
    if ((tab->cols & 7) != 0 || n < 1 || (!tokens && n != 1)) return cudaErrorInvalidValue;
#define EMBED_CASE(T)                                                                              \
    return kq_launch(embed_kernel<T>, dim3(n), dim3(128), 0, st, *tab, tokens, p, x)
    BT_DISPATCH(tab->type, EMBED_CASE)
#undef EMBED_CASE
    return cudaErrorInvalidValue;
}
