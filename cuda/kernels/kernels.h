/* kernels.h: the launchers of the CUDA backend's kernels, one operation per .cu file. Plain C
 * types only, so the engine and the C tests can call them. Every launcher enqueues on `st`,
 * returns the launch status (cudaGetLastError) and never synchronizes.
 *
 * Conventions: activations are FP32 row-major (n_tok, dim); "f16" outputs are IEEE half (__half)
 * passed as void*. A weight is a kq_mat: a GGUF matrix in its file block type, row-major
 * [rows][cols] with cols contiguous (cols a multiple of 8 and of the block size). */
#ifndef WORKER_CUDA_KERNELS_H
#define WORKER_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const void *w; /* device pointer to row 0 */
    int type;      /* ggml_type id */
    int rows, cols;
    uint64_t row_bytes;
    const float *bias; /* (rows) f32 or NULL (GEMV only) */
} kq_mat;

/* The greedy choice over a logits row: the largest logit's index (lowest on ties, -1 when none is
 * finite) and its log-probability. */
typedef struct {
    int32_t token;
    float logprob;
} kq_greedy_out;

/* Per-step values the kernels read from device memory, so that one captured graph replays for
 * any position and sequence. */
typedef struct {
    int32_t token; /* decode input token */
    int32_t pos;   /* position of the first new token */
    int32_t pad[2];
    float *k;                 /* the sequence's K cache: (n_layer, max_ctx, kv_dim) f32 */
    float *v;                 /* V cache, same shape */
    float *logits;            /* where the decode LM head writes (n_vocab) f32 */
    kq_greedy_out *greedy;    /* where the decode step's greedy choice goes */
    const int32_t *token_src; /* not NULL: the decode input token is read here instead (an
                               * earlier step's greedy choice, still on the device) */
} kq_params;

/* Model geometry the attention-side kernels need. */
typedef struct {
    int n_head, n_head_kv, head_dim;
    int max_ctx;            /* rows of one layer's cache */
    const double *inv_freq; /* (head_dim/2) rotary frequencies base^(-2i/head_dim), device */
} kq_geom;

/* embed.cu: x[i] = row tokens[i] of tab dequantized to f32, i < n. tokens is a device array; when
 * it is NULL the single token *p->token_src, else p->token, is used (n must be 1). A token_src
 * outside [0, rows) reads row 0: it marks a step whose result is never used. */
cudaError_t kq_embed(const kq_mat *tab, const int32_t *tokens, const kq_params *p, int n, float *x,
                     cudaStream_t st);

/* rmsnorm.cu: out = x * rsqrt(mean(x^2) + eps) * w per row of dim; out32 and/or out16 (either may
 * be NULL). */
cudaError_t kq_rmsnorm(const float *x, const float *w, int n_rows, int dim, float eps, float *out32,
                       void *out16, cudaStream_t st);

/* dequant.cu: rows row0 .. row0+n_rows-1 of m into out16 (n_rows, cols) half. */
cudaError_t kq_dequant_f16(const kq_mat *m, int row0, int n_rows, void *out16, cudaStream_t st);

/* gemv.cu: one-token matrix-vector products reading each block type directly, FP32 accumulation.
 * The input x (cols f32) is normalised first when norm_w is given (RMSNorm with eps).
 *   KQ_GEMV_SET:    out[r] = W[r].x (+ bias[r]); out NULL: p->logits (the decode LM head)
 *   KQ_GEMV_ADD:    out[r] += W[r].x                              (residual update)
 *   KQ_GEMV_SWIGLU: out[r] = silu(G[r].x) * (U[r].x)              (m[0] = G, m[1] = U)
 *   KQ_GEMV_QKV:    q = Wq.x+bq, k = Wk.x+bk, v = Wv.x+bv (m[0..2]); NEOX rotary on q and k at
 *                   position p->pos; q to out, k and v to the cache row p->pos of layer
 *                   `layer` (p->k, p->v). */
enum { KQ_GEMV_SET = 0, KQ_GEMV_ADD = 1, KQ_GEMV_SWIGLU = 2, KQ_GEMV_QKV = 3 };
cudaError_t kq_gemv(int mode, const kq_mat *m, int n_mats, const float *x, const float *norm_w,
                    float eps, float *out, const kq_params *p, const kq_geom *g, int layer,
                    cudaStream_t st);

/* rope_kv.cu (prefill): qkv is (n_tok, q_dim + 2 kv_dim) f32 from the projection GEMMs. Adds the
 * biases, applies NEOX rotary at positions p->pos + i, writes q to q_out (n_tok, q_dim) and k, v to
 * the cache rows of layer `layer`. */
cudaError_t kq_rope_kv(const float *qkv, const float *bq, const float *bk, const float *bv,
                       int n_tok, const kq_params *p, const kq_geom *g, int layer, float *q_out,
                       cudaStream_t st);

/* attention.cu: causal grouped-query attention of n_tok queries (n_tok, n_head*head_dim) at
 * positions p->pos + i against the cache of layer `layer`, each over keys 0..pos. The key range is
 * split into at most n_split (<= 128) parts of at least 64 keys, computed in parallel and merged
 * (part: n_tok*n_head*n_split*(hd+2)
 * floats; counters: n_tok*n_head zeros, left zero afterwards). out32 and/or out16 receive
 * (n_tok, n_head*head_dim). */
cudaError_t kq_attention(const float *q, int n_tok, const kq_params *p, const kq_geom *g, int layer,
                         int n_split, float *part, unsigned *counters, float *out32, void *out16,
                         cudaStream_t st);

/* softmax.cu (prefill attention): in place over scores (n_head, n, L) f32, row (h, i) holding
 * query i's scores against keys 0..L-1: softmax over keys 0..pos0+i, zero beyond. */
cudaError_t kq_softmax_causal(float *scores, int n_head, int n, int L, int pos0, cudaStream_t st);

/* convert.cu: y = x rounded to F16, n values. */
cudaError_t kq_f32_to_f16(const float *x, long n, void *y, cudaStream_t st);

/* swiglu.cu (prefill): out = silu(gate) * up elementwise over n values; out32/out16 as above. */
cudaError_t kq_swiglu(const float *gate, const float *up, long n, float *out32, void *out16,
                      cudaStream_t st);

/* argmax.cu: *out = the index of the largest of x[0..n) (lowest index on ties; NaN never wins).
 * scratch: kq_argmax_scratch_bytes(n) bytes whose counter word starts (and is left) zero. */
size_t kq_argmax_scratch_bytes(int n);
cudaError_t kq_argmax(const float *x, int n, void *scratch, int32_t *out, cudaStream_t st);

/* sample.cu: the sampler.h pipeline on the device. */
typedef struct {
    float temperature, top_p, min_p;
    int32_t top_k;
    float repetition_penalty, presence_penalty, frequency_penalty;
    int32_t n_pen; /* distinct penalised tokens in pen_tok / pen_cnt */
    uint32_t n_logprobs;
    float u; /* the caller's uniform draw in [0, 1) */
} kq_sample_args;

typedef struct {
    int32_t token;
    float logprob;
    int32_t top_tokens[20];
    float top_logprobs[20];
} kq_sample_out;

/* Workspace bytes for a vocabulary of n. */
size_t kq_sample_scratch_bytes(int n);
/* Applies penalties to a copy of logits, then log-softmax, greedy or temperature/top-k/top-p/min-p
 * and the inverse-CDF draw; writes *out (device). pen_tok/pen_cnt: device arrays of n_pen. */
cudaError_t kq_sample(const float *logits, int n, const kq_sample_args *a, const int32_t *pen_tok,
                      const int32_t *pen_cnt, void *scratch, size_t scratch_bytes,
                      kq_sample_out *out, cudaStream_t st);

/* The greedy choice over the n logits at p->logits into *p->greedy, launched after the decode
 * LM head in the decode graph (it waits on it). scratch: kq_greedy_scratch_bytes() bytes whose
 * counter word starts (and is left) zero. */
size_t kq_greedy_scratch_bytes(void);
cudaError_t kq_greedy(const kq_params *p, int n, void *scratch, cudaStream_t st);

#ifdef __cplusplus
}
#endif

#endif
