/* synth.h: writes a qwen2 GGUF model of any shape with deterministic random weights and the
 * vocabulary of another GGUF file: the project's own test and benchmark models.
 *
 * Weights are drawn like the reference fixtures: matrices N(0, 0.02), the token embedding
 * N(0, 0.05), norm weights N(1, 0.1), output_norm N(7, 0.5), q/k/v biases N(0, 0.5) with one value
 * in 64 drawn from N(0, 20) instead. Every value depends only on the seed, the tensor's name and
 * its position, never on the thread count. */
#ifndef WORKER_MODEL_SYNTH_H
#define WORKER_MODEL_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "model/convert.h"

typedef struct {
    int n_layers, hidden, ffn, heads, kv_heads, ctx;
    convert_target target; /* block types of the weights (norms and biases stay F32) */
    uint64_t seed;
    bool tied; /* no output.weight: the head reuses token_embd */
    int threads;
} synth_params;

/* The shape of Qwen2.5-0.5B (24 layers, 896 hidden, 4864 FFN, 14/2 heads, 32768 context), F16,
 * seed 1, tied, one thread per CPU. */
void synth_default_params(synth_params *p);

/* Writes the model to out_path. Every key "tokenizer.*" of vocab_path is copied, and the
 * vocabulary size is its token count. Fails with WS_ERR_INVALID_ARG naming the parameter when the
 * shape is inconsistent (heads not dividing hidden, kv_heads not dividing heads, odd head size,
 * non-positive sizes). */
ws_status synth_write(const synth_params *p, const char *vocab_path, const char *out_path,
                      ws_error *err);

#endif
