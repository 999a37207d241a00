/* rope_kv.cu: the prefill epilogue of the Q/K/V projections: biases, NEOX rotary (element i pairs
 * with i + head_dim/2) at each token's position, q to its buffer and k, v into the KV cache. */
#include "kernels/kernels.h"

__global__ void rope_kv_kernel(const float *qkv, const float *bq, const float *bk, const float *bv,
                               const kq_params *p, kq_geom g, int layer, float *q_out) {
    const int t = blockIdx.x, half = g.head_dim / 2;
    const int q_dim = g.n_head * g.head_dim, kv_dim = g.n_head_kv * g.head_dim;
    const int width = q_dim + 2 * kv_dim, pos = p->pos + t;
    const float *row = qkv + (size_t)t * width;
    const size_t cache_row = ((size_t)layer * g.max_ctx + (size_t)pos) * kv_dim;
    for (int u = threadIdx.x; u < width / 2; u += blockDim.x) {
        int which = 0, v = u;
        if (v >= q_dim / 2) {
            v -= q_dim / 2;
            which = 1;
            if (v >= kv_dim / 2) {
                v -= kv_dim / 2;
                which = 2;
            }
        }
        const int head = v / half, i = v % half;
        const int r0 = head * g.head_dim + i, r1 = r0 + half;
        const int base = which == 0 ? 0 : which == 1 ? q_dim : q_dim + kv_dim;
        const float *b = which == 0 ? bq : which == 1 ? bk : bv;
        float x0 = row[base + r0] + (b ? b[r0] : 0.0f), x1 = row[base + r1] + (b ? b[r1] : 0.0f);
        if (which < 2) {
            double s, c;
            sincos((double)pos * g.inv_freq[i], &s, &c);
            const float fs = (float)s, fc = (float)c;
            const float y0 = x0 * fc - x1 * fs, y1 = x0 * fs + x1 * fc;
            x0 = y0;
            x1 = y1;
        }
        if (which == 0) {
            q_out[(size_t)t * q_dim + r0] = x0;
            q_out[(size_t)t * q_dim + r1] = x1;
        } else {
            float *cache = (which == 1 ? p->k : p->v) + cache_row;
            cache[r0] = x0;
            cache[r1] = x1;
        }
    }
}

extern "C" cudaError_t kq_rope_kv(const float *qkv, const float *bq, const float *bk,
                                  const float *bv, int n_tok, const kq_params *p, const kq_geom *g,
                                  int layer, float *q_out, cudaStream_t st) {
    if (n_tok < 1) return cudaErrorInvalidValue;
    rope_kv_kernel<<<n_tok, 256, 0, st>>>(qkv, bq, bk, bv, p, *g, layer, q_out);
    return cudaGetLastError();
}
