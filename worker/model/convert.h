/* convert.h: converting the weights of a model file to another block type: the named targets
 * ("q8_0", "q4_k_m", ...), the per-tensor block type a target gives (with the reference tool's
 * mix rules and fallbacks), and a threaded row quantizer that also measures the error. Used by
 * the quantize and synth commands. */
#ifndef WORKER_MODEL_CONVERT_H
#define WORKER_MODEL_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/parallel.h"
#include "base/status.h"
#include "model/quant.h"

typedef enum {
    CONVERT_MIX_NONE, /* every matrix gets the base type (the output matrix Q6_K below 8 bits) */
    CONVERT_MIX_M,    /* q4_k_m, q5_k_m */
    CONVERT_MIX_Q2_K, /* q2_k */
    CONVERT_MIX_Q3_K_M,
} convert_mix;

typedef struct {
    const char *name; /* lower case, as given on the command line */
    ggml_type base;   /* block type of most 2-D weights */
    convert_mix mix;  /* which tensors get other types (see convert_tensor_type) */
    uint32_t ftype;   /* value of general.file_type (the reference tool's file-type numbers) */
} convert_target;

/* What the type policy needs to know about the model. */
typedef struct {
    int n_layers;
    int n_gqa;       /* query heads per KV head (1 when unknown) */
    bool has_output; /* a separate output.weight exists */
} convert_model;

/* Looks up a target by name (case-insensitive): f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m
 * q4_k q5_k q6_k q4_k_m q5_k_m. Returns false when unknown. */
bool convert_target_from_name(const char *name, convert_target *out);

/* The names convert_target_from_name accepts, separated by spaces (for usage messages). */
const char *convert_target_names(void);

/* Block type for one tensor under target t, following the reference tool's rules for these
 * targets (without an importance matrix):
 * - tensors with one non-trivial dimension (norms, biases) stay F32;
 * - every target below 8 bits gives Q6_K to output.weight (token_embd.weight when there is no
 *   output.weight);
 * - q4_k_m, q5_k_m: Q6_K for attn_v.weight and ffn_down.weight of the layers i where i < n/8,
 *   i >= 7n/8 or (i - n/8) % 3 == 2 (n layers);
 * - q2_k: Q3_K for attn_v (Q4_K when n_gqa >= 4), ffn_down and attn_output;
 * - q3_k_m: attn_v Q5_K in layers 0 and 1, else Q4_K; ffn_down Q5_K in layers i < n/16, else
 *   Q4_K; attn_output Q4_K; the other matrices Q3_K;
 * - a k-quant type whose 256-element block does not divide the row length ne[0] falls back to
 *   Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (the reference tool's choice,
 *   with Q4_0 in place of its IQ4_NL, which this project does not read), and any type whose
 *   block does not divide ne[0] to F16.
 * q4_k and q5_k are plain: no mix rules beyond the output matrix. */
ggml_type convert_tensor_type(const convert_target *t, const convert_model *m, const char *name,
                              uint32_t n_dims, const int64_t *ne);

/* Quantizes rows x cols F32 values src into dst (rows of ggml_row_bytes(type, cols) bytes) on
 * pool (NULL: the calling thread alone). When sq_err is not NULL, adds the sum of squared
 * differences between the dequantized result and src to it. */
ws_status convert_quantize_rows(parallel_pool *pool, ggml_type type, const float *src, int64_t rows,
                                int64_t cols, void *dst, double *sq_err, ws_error *err);

#endif
