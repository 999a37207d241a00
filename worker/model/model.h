/* model.h: the qwen2 architecture bound to a GGUF file. Hyper-parameters in one config struct and
 * weight views into the read-only mapping (never copied, never expanded). Every tensor the
 * architecture needs is found and shape-checked at bind time. */
#ifndef WORKER_MODEL_MODEL_H
#define WORKER_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "model/gguf.h"
#include "model/quant.h"

typedef struct {
    uint32_t n_layer;     /* qwen2.block_count */
    uint32_t n_embd;      /* qwen2.embedding_length */
    uint32_t n_ff;        /* qwen2.feed_forward_length */
    uint32_t n_head;      /* qwen2.attention.head_count */
    uint32_t n_head_kv;   /* qwen2.attention.head_count_kv (default n_head) */
    uint32_t head_dim;    /* n_embd / n_head */
    uint32_t n_vocab;     /* rows of token_embd */
    uint32_t n_ctx_train; /* qwen2.context_length */
    float rms_eps;        /* qwen2.attention.layer_norm_rms_epsilon */
    float rope_base;      /* qwen2.rope.freq_base (default 10000) */
    bool tied_output;     /* no output.weight: the LM head reads token_embd */
} qwen2_config;

/* A weight view. Matrices are row-major [out][in]: ne[0] = in (contiguous), ne[1] = out, and row r
 * is ne[0] elements of `type` starting at data + r * row_bytes. Vectors have ne[1] = 1. */
typedef struct {
    const char *name;
    ggml_type type;
    int64_t ne[2];
    uint64_t row_bytes;
    uint64_t n_bytes;
    const void *data;
} model_tensor;

typedef struct {
    model_tensor attn_norm;    /* (n_embd) f32 */
    model_tensor wq, wk, wv;   /* (n_embd -> n_head*hd), (n_embd -> n_head_kv*hd) x2 */
    model_tensor bq, bk, bv;   /* (q_dim), (kv_dim), (kv_dim) f32 */
    model_tensor wo;           /* (q_dim -> n_embd) */
    model_tensor ffn_norm;     /* (n_embd) f32 */
    model_tensor w_gate, w_up; /* (n_embd -> n_ff) */
    model_tensor w_down;       /* (n_ff -> n_embd) */
} qwen2_layer;

typedef struct {
    qwen2_config cfg;
    model_tensor tok_embd;    /* (n_embd -> n_vocab): row t is token t's embedding */
    model_tensor output_norm; /* (n_embd) f32 */
    model_tensor output;      /* (n_embd -> n_vocab); same view as tok_embd when tied */
    qwen2_layer *layers;      /* n_layer */
    gguf_file *file;          /* owned */
} qwen2_model;

/* Opens and binds path. On failure *out is untouched and err names the first missing or
 * mis-shaped tensor, the key at fault, or the unsupported architecture. */
ws_status model_open(const char *path, qwen2_model **out, ws_error *err);

/* Binds an already parsed file; takes ownership of f only on success. */
ws_status model_bind(gguf_file *f, qwen2_model **out, ws_error *err);

/* Frees the model and its file; accepts NULL. */
void model_free(qwen2_model *m);

/* Total parameters (elements of all bound tensors; the tied head counted once). */
uint64_t model_n_params(const qwen2_model *m);

#endif
