/* engine.h: the backend interface. A backend binds a loaded model, owns sequences with their KV
 * caches, and turns tokens into logits. CPU (the reference) and CUDA implement it; the choice is
 * made once at engine_open. Decode takes several sequences so batching changes callers, not this.
 */
#ifndef WORKER_ENGINE_ENGINE_H
#define WORKER_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/sampler.h"
#include "model/model.h"

typedef enum { ENGINE_CPU = 0, ENGINE_CUDA = 1 } engine_backend;

typedef struct {
    int n_threads;     /* CPU threads; 0 = all online cores */
    int device;        /* CUDA device ordinal */
    uint32_t max_seqs; /* sequences alive at once (CUDA preallocates their KV caches); 0 = 1 */
    uint32_t max_ctx;  /* largest n_ctx a sequence may ask for; 0 = min(n_ctx_train, 4096) */
} engine_options;

typedef struct {
    uint64_t weights;      /* bytes of model weights the engine reads (mapped file or VRAM) */
    uint64_t kv_cache;     /* bytes of KV cache allocated */
    uint64_t scratch;      /* activations, logits, workspaces */
    uint64_t device_total; /* the GPU's memory (0 on CPU) */
    uint64_t device_free;
    char device_name[128]; /* "NVIDIA H200", or "cpu (N threads)" */
    char device_uuid[64];  /* "GPU-..." or "" */
} engine_memory;

typedef struct engine engine;
typedef struct engine_seq engine_seq;

/* Parses "cpu" / "cuda". */
bool engine_backend_from_name(const char *name, engine_backend *out);
const char *engine_backend_name(engine_backend b);
/* True when this build includes the backend (CUDA: built with nvcc) and, for CUDA, a device is
 * present. Never falls back silently: callers choose. */
bool engine_backend_available(engine_backend b);

/* Describes the device a backend would run on before any model is loaded: name, UUID and memory
 * total/free for CUDA device `device`; "cpu (N threads)" for the CPU. WS_ERR_UNSUPPORTED when the
 * backend is not built in, WS_ERR_DEVICE when the device cannot be queried. */
ws_status engine_device_query(engine_backend b, int device, engine_memory *out, ws_error *err);

/* Binds m (borrowed: it must outlive the engine). Out-of-memory names bytes needed and free.
 * Threads: calls on distinct sequences of one engine may come from several threads; the backend
 * serialises its forward passes internally. One sequence is used by one thread at a time. */
ws_status engine_open(engine_backend b, const qwen2_model *m, const engine_options *opt,
                      engine **out, ws_error *err);
void engine_free(engine *e); /* accepts NULL; all sequences must be freed first */
engine_backend engine_get_backend(const engine *e);
const qwen2_model *engine_model(const engine *e);
ws_status engine_memory_get(engine *e, engine_memory *out, ws_error *err);

/* A sequence with room for n_ctx tokens (1 <= n_ctx <= max_ctx). */
ws_status engine_seq_new(engine *e, uint32_t n_ctx, engine_seq **out, ws_error *err);
void engine_seq_free(engine_seq *s);          /* accepts NULL */
uint32_t engine_seq_len(const engine_seq *s); /* tokens in the cache */
uint32_t engine_seq_ctx(const engine_seq *s); /* capacity */
/* Keeps the first n tokens (n <= len); 0 resets. */
ws_status engine_seq_truncate(engine_seq *s, uint32_t n, ws_error *err);

/* Appends n >= 1 tokens at positions len..len+n-1. logits (may be NULL) receives the last row
 * (all_logits false, n_vocab floats) or every row (n x n_vocab, row-major). WS_ERR_RANGE when the
 * tokens would exceed n_ctx or an id is outside the vocabulary. */
ws_status engine_prefill(engine_seq *s, const int32_t *tokens, uint32_t n, bool all_logits,
                         float *logits, ws_error *err);

/* Appends one token to each of n_seqs distinct sequences of one engine; logits (may be NULL)
 * receives n_seqs x n_vocab. */
ws_status engine_decode(engine_seq *const *seqs, const int32_t *tokens, uint32_t n_seqs,
                        float *logits, ws_error *err);

/* Samples from the last logits row the engine computed for s (on the device for CUDA), with the
 * steps of sampler.h. WS_ERR_UNSUPPORTED when the backend keeps no logits of its own (CPU): the
 * caller then asks for logits and runs sampler_sample. */
ws_status engine_sample(engine_seq *s, const sampler_params *p, const int32_t *history,
                        uint32_t n_history, float u, sampler_result *out, ws_error *err);

/* Look-ahead (off for a new sequence): the caller means to decode the token of its next greedy
 * engine_sample on s (temperature 0, no penalties, no alternatives) unless it stops there, so
 * the backend may start that decode before the sample returns (CUDA: the device feeds its own
 * choice to the next step, which a decode of that token then only takes over; any other call
 * discards it, at the cost of the one step computed). Turn it off before a sample the caller
 * knows is its last. Backends without it ignore the hint. */
void engine_seq_lookahead(engine_seq *s, bool on);

/* ---- for backend implementers ----
 * engine.c checks arguments (context room, token ids, distinct sequences) before calling an op.
 * Inside prefill/decode, s->n_past is the position of the first new token; engine.c advances it
 * when the op succeeds. seq_truncate is called with n <= n_past and n_past is set to n after. */
typedef struct {
    const char *name;
    ws_status (*open)(const qwen2_model *m, const engine_options *opt, engine **out, ws_error *err);
    void (*free)(engine *e);
    ws_status (*memory)(engine *e, engine_memory *out, ws_error *err);
    ws_status (*seq_new)(engine *e, uint32_t n_ctx, engine_seq **out, ws_error *err);
    void (*seq_free)(engine_seq *s);
    ws_status (*seq_truncate)(engine_seq *s, uint32_t n, ws_error *err);
    ws_status (*prefill)(engine_seq *s, const int32_t *tokens, uint32_t n, bool all_logits,
                         float *logits, ws_error *err);
    ws_status (*decode)(engine_seq *const *seqs, const int32_t *tokens, uint32_t n_seqs,
                        float *logits, ws_error *err);
    ws_status (*sample)(engine_seq *s, const sampler_params *p, const int32_t *history,
                        uint32_t n_history, float u, sampler_result *out,
                        ws_error *err); /* may be NULL */
} engine_ops;

/* Every backend's engine and sequence structs begin with these. */
struct engine {
    const engine_ops *ops;
    engine_backend backend;
    const qwen2_model *model;
    engine_options opt; /* resolved: no zeros */
};
struct engine_seq {
    engine *eng;
    uint32_t n_ctx;
    uint32_t n_past;
    bool lookahead; /* engine_seq_lookahead */
};

extern const engine_ops engine_cpu_ops;
#ifdef WORKER_HAVE_CUDA
extern const engine_ops engine_cuda_ops; /* cuda/engine_cuda.cu */
bool engine_cuda_device_present(void);
ws_status engine_cuda_device_query(int device, engine_memory *out,
                                   ws_error *err); /* cuda/device_query.cu */
#endif

#endif
