/* engine_cuda.h: the CUDA backend's private structures, shared by engine_cuda.cu (device, upload,
 * memory, sequences), forward_cuda.cu (prefill, decode graph) and sample_cuda.cu (engine_sample).
 *
 * Device memory, all allocated at open (nothing on the token path):
 *   weights  one allocation carved by offsets, each tensor in its file block type
 *   kv       (max_seqs, n_layer, max_ctx, kv_dim) f32 for K, the same for V
 *   logits   (max_seqs, n_vocab) f32: the last row each sequence computed
 *   scratch  prefill activations for PREFILL_CHUNK tokens, the F16 weight scratch of the prefill
 *            GEMMs, LM-head rows, attention partials, sampler workspace, step parameters */
#ifndef WORKER_CUDA_ENGINE_CUDA_H
#define WORKER_CUDA_ENGINE_CUDA_H

extern "C" {
#include "engine/engine.h"
#include "kernels/kernels.h"
}
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define PREFILL_CHUNK 512           /* tokens per prefill pass */
#define LM_ROW_CHUNK 16384          /* vocabulary rows dequantized at once for all-logits prefill */
#define LM_LOGITS_BYTES (64u << 20) /* budget of the all-logits staging rows */
#define ATT_SCORES_BYTES (64u << 20) /* budget of the prefill attention scores */

typedef struct {
    kq_mat wq, wk, wv, wo, w_gate, w_up, w_down; /* wq/wk/wv carry their biases */
    const float *attn_norm, *ffn_norm;           /* (n_embd) f32 */
} cu_layer;

typedef struct {
    struct engine base;
    int device;
    cudaStream_t st;
    cublasHandle_t blas;
    bool fatal; /* a sticky error happened: every later call fails */

    /* geometry */
    int n_layer, n_embd, n_ff, n_vocab, q_dim, kv_dim, max_ctx, max_seqs;
    float eps;
    kq_geom geom;

    /* weights */
    void *d_weights;
    uint64_t weights_bytes;
    kq_mat tok_embd, output;
    const float *output_norm;
    cu_layer *layers;

    /* KV cache and per-sequence logits */
    float *d_kv;
    uint64_t kv_bytes, slot_elems; /* slot_elems: one sequence's K (or V) floats */
    float *d_seq_logits; /* 2 rows per slot: the sequence's last logits and a speculative step's */
    bool *slot_used;

    /* scratch */
    void *d_scratch;
    uint64_t scratch_bytes;
    float *x, *xn32, *qkv, *q, *att32, *gate, *up, *ff32, *lm_rows, *part;
    float *att_s; /* prefill attention scores (n_head, PREFILL_CHUNK, <= att_s_ctx) */
    uint64_t att_s_elems;
    __half *xn16, *att16, *ff16, *wdeq;
    uint64_t wdeq_elems;
    int lm_rows_n;
    unsigned *counters;
    kq_greedy_out *d_greedy; /* 2 per slot, with the logits rows: each step's greedy choice */
    void *greedy_ws;
    void *sample_ws;
    size_t sample_ws_bytes;
    kq_params *d_params;
    int32_t *d_tokens, *d_pen;
    kq_sample_out *d_sample_out;

    /* pinned host staging */
    kq_params *h_params; /* max_seqs entries */
    int32_t *h_tokens;   /* PREFILL_CHUNK */
    int32_t *h_pen;      /* 2 * n_vocab: distinct penalised tokens, then their counts */
    kq_sample_out *h_sample_out;

    /* the decode step as a graph */
    cudaGraphExec_t graph;
    cudaEvent_t params_done; /* recorded after the last copy out of h_params */
    cudaEvent_t choice_done; /* recorded after a greedy choice's copy to the host */
    int dec_split;
} cu_engine;

typedef struct {
    struct engine_seq base;
    int slot;
    int cur;           /* which of the slot's two logits rows (and greedy choices) is current */
    bool greedy_ready; /* the current greedy choice is over the current logits */
    /* A greedy sample enqueues the decode of its token at spec_pos into the other row (the
     * speculative step); a decode of spec_token at spec_pos then only switches rows. */
    bool spec;
    int32_t spec_token;
    uint32_t spec_pos;
} cu_seq;

/* Turns a CUDA error into a status: sticky errors (illegal address, launch failure, ...) are
 * WS_ERR_DEVICE_FATAL and poison the engine; others WS_ERR_DEVICE. */
ws_status cu_fail(cu_engine *e, ws_error *err, cudaError_t c, const char *what);
ws_status cu_blas_fail(cu_engine *e, ws_error *err, cublasStatus_t s, const char *what);

#define CU_CHECK(e, err, call, what)                                                               \
    do {                                                                                           \
        const cudaError_t c_ = (call);                                                             \
        if (c_ != cudaSuccess) return cu_fail((e), (err), c_, (what));                             \
    } while (0)

/* forward_cuda.cu */
ws_status cu_capture_decode(cu_engine *e, ws_error *err);
ws_status cu_prefill(engine_seq *s, const int32_t *tokens, uint32_t n, bool all_logits,
                     float *logits, ws_error *err);
ws_status cu_decode(engine_seq *const *seqs, const int32_t *tokens, uint32_t n_seqs, float *logits,
                    ws_error *err);
/* sample_cuda.cu */
ws_status cu_sample(engine_seq *s, const sampler_params *p, const int32_t *history,
                    uint32_t n_history, float u, sampler_result *out, ws_error *err);

/* The step parameters of sequence slot `slot` writing logits row `row` (0 or 1) of the slot
 * (host side, pinned). */
void cu_params_for(cu_engine *e, int slot, int row, int32_t token, int32_t pos, kq_params *out);
/* Row `row` of the slot's logits and greedy choices. */
float *cu_logits_row(const cu_engine *e, int slot, int row);
kq_greedy_out *cu_greedy_of(const cu_engine *e, int slot, int row);
/* Enqueues one decode step of s at position pos into logits row `row`: token, or the device's
 * *token_src when it is not NULL, with its parameters staged in the pinned hp (free: the caller
 * waited on params_done), recording params_done after their copy when `record`
 * (forward_cuda.cu). */
ws_status cu_launch_step(cu_engine *e, const cu_seq *s, int32_t token, const int32_t *token_src,
                         uint32_t pos, int row, kq_params *hp, bool record, ws_error *err);

#endif
