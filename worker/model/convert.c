/* convert.c: conversion targets, the per-tensor type policy and the threaded row quantizer. */
#include "model/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const convert_target targets[] = {
    {"f32", GGML_TYPE_F32, CONVERT_MIX_NONE, 0},
    {"f16", GGML_TYPE_F16, CONVERT_MIX_NONE, 1},
    {"bf16", GGML_TYPE_BF16, CONVERT_MIX_NONE, 32},
    {"q8_0", GGML_TYPE_Q8_0, CONVERT_MIX_NONE, 7},
    {"q4_0", GGML_TYPE_Q4_0, CONVERT_MIX_NONE, 2},
    {"q4_1", GGML_TYPE_Q4_1, CONVERT_MIX_NONE, 3},
    {"q5_0", GGML_TYPE_Q5_0, CONVERT_MIX_NONE, 8},
    {"q5_1", GGML_TYPE_Q5_1, CONVERT_MIX_NONE, 9},
    {"q2_k", GGML_TYPE_Q2_K, CONVERT_MIX_Q2_K, 10},
    {"q3_k_m", GGML_TYPE_Q3_K, CONVERT_MIX_Q3_K_M, 12},
    {"q4_k", GGML_TYPE_Q4_K, CONVERT_MIX_NONE, 14},
    {"q5_k", GGML_TYPE_Q5_K, CONVERT_MIX_NONE, 16},
    {"q6_k", GGML_TYPE_Q6_K, CONVERT_MIX_NONE, 18},
    {"q4_k_m", GGML_TYPE_Q4_K, CONVERT_MIX_M, 15},
    {"q5_k_m", GGML_TYPE_Q5_K, CONVERT_MIX_M, 17},
};
#define N_TARGETS (sizeof targets / sizeof targets[0])

bool convert_target_from_name(const char *name, convert_target *out) {
    if (!name) return false;
    for (size_t i = 0; i < N_TARGETS; i++) {
        if (strcasecmp(name, targets[i].name) == 0) {
            if (out) *out = targets[i];
            return true;
        }
    }
    return false;
}

const char *convert_target_names(void) {
    return "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m q4_k q5_k q6_k q4_k_m q5_k_m";
}

/* The reference tool's rule for which layers get more bits in the _M mixes. */
static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* Layer index of "blk.N.KIND", or -1; *kind points at KIND. */
static int layer_of(const char *name, const char **kind) {
    int layer = -1, end = 0;
    if (sscanf(name, "blk.%d.%n", &layer, &end) == 1 && end > 0 && layer >= 0) {
        *kind = name + end;
        return layer;
    }
    return -1;
}

static ggml_type fallback(ggml_type t, int64_t cols) {
    if (cols % ggml_block_elems(t) == 0) return t;
    switch (t) {
    case GGML_TYPE_Q2_K:
    case GGML_TYPE_Q3_K:
        t = GGML_TYPE_Q4_0;
        break;
    case GGML_TYPE_Q4_K:
        t = GGML_TYPE_Q5_0;
        break;
    case GGML_TYPE_Q5_K:
        t = GGML_TYPE_Q5_1;
        break;
    case GGML_TYPE_Q6_K:
        t = GGML_TYPE_Q8_0;
        break;
    default:
        break;
    }
    return cols % ggml_block_elems(t) == 0 ? t : GGML_TYPE_F16;
}

/* The mix's type for one layer matrix (kind: "attn_v", "ffn_down", ...), or base. */
static ggml_type mix_type(const convert_target *t, const convert_model *m, int layer,
                          const char *kind, ggml_type base) {
    const bool v = strcmp(kind, "attn_v.weight") == 0, down = strcmp(kind, "ffn_down.weight") == 0;
    const bool out = strcmp(kind, "attn_output.weight") == 0;
    switch (t->mix) {
    case CONVERT_MIX_M:
        return (v || down) && use_more_bits(layer, m->n_layers) ? GGML_TYPE_Q6_K : base;
    case CONVERT_MIX_Q2_K:
        if (v) return m->n_gqa >= 4 ? GGML_TYPE_Q4_K : GGML_TYPE_Q3_K;
        return down || out ? GGML_TYPE_Q3_K : base;
    case CONVERT_MIX_Q3_K_M:
        if (v) return layer < 2 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
        if (down) return layer < m->n_layers / 16 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
        return out ? GGML_TYPE_Q4_K : base;
    default:
        return base;
    }
}

ggml_type convert_tensor_type(const convert_target *t, const convert_model *m, const char *name,
                              uint32_t n_dims, const int64_t *ne) {
    int wide = 0;
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] > 1) wide++;
    if (wide < 2) return GGML_TYPE_F32;
    ggml_type type = t->base;
    const bool quantized = type != GGML_TYPE_F32 && type != GGML_TYPE_F16 &&
                           type != GGML_TYPE_BF16 && type != GGML_TYPE_Q8_0;
    const char *kind = NULL;
    const int layer = layer_of(name, &kind);
    if (quantized && (strcmp(name, "output.weight") == 0 ||
                      (!m->has_output && strcmp(name, "token_embd.weight") == 0))) {
        type = GGML_TYPE_Q6_K;
    } else if (layer >= 0) {
        type = mix_type(t, m, layer, kind, type);
    }
    return fallback(type, ne[0]);
}

typedef struct {
    ggml_type type;
    const float *src;
    int64_t cols;
    uint64_t row_bytes;
    uint8_t *dst;
    bool measure;
    double *partial; /* one per thread */
    int *failed;     /* one per thread: a buffer could not be allocated */
} quant_job;

static void quant_slice(void *ctx, int64_t begin, int64_t end, int thread) {
    quant_job *j = ctx;
    float *back = NULL;
    if (j->measure && !(back = malloc((size_t)j->cols * sizeof(float)))) {
        j->failed[thread] = 1;
        return;
    }
    double sq = 0;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->src + r * j->cols;
        uint8_t *q = j->dst + (uint64_t)r * j->row_bytes;
        quant_quantize_row(j->type, x, q, j->cols, NULL);
        if (!back) continue;
        quant_dequantize_row(j->type, q, back, j->cols);
        for (int64_t c = 0; c < j->cols; c++) {
            const double e = (double)back[c] - x[c];
            sq += e * e;
        }
    }
    j->partial[thread] += sq;
    free(back);
}

ws_status convert_quantize_rows(parallel_pool *pool, ggml_type type, const float *src, int64_t rows,
                                int64_t cols, void *dst, double *sq_err, ws_error *err) {
    uint64_t rb = 0;
    ws_status st = ggml_row_bytes(type, cols, &rb, err);
    if (st != WS_OK) return st;
    const int nt = pool ? parallel_threads(pool) : 1;
    double *partial = calloc((size_t)nt, sizeof *partial);
    int *failed = calloc((size_t)nt, sizeof *failed);
    if (!partial || !failed) {
        st = ws_fail(err, WS_ERR_NOMEM, "quantize: out of memory for %d threads", nt);
        goto fail;
    }
    quant_job job = {type, src, cols, rb, dst, sq_err != NULL, partial, failed};
    if (pool)
        parallel_for(pool, rows, 16, quant_slice, &job);
    else
        quant_slice(&job, 0, rows, 0);
    for (int i = 0; i < nt; i++) {
        if (failed[i]) {
            st = ws_fail(err, WS_ERR_NOMEM, "quantize: out of memory for a %lld-element row",
                         (long long)cols);
            goto fail;
        }
        if (sq_err) *sq_err += partial[i];
    }
fail:
    free(partial);
    free(failed);
    return st;
}
