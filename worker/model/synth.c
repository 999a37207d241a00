/* synth.c: deterministic random qwen2 models (see synth.h). */
#include "model/synth.h"
#include "base/splitmix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/parallel.h"
#include "model/gguf.h"

void synth_default_params(synth_params *p) {
    memset(p, 0, sizeof *p);
    p->n_layers = 24;
    p->hidden = 896;
    p->ffn = 4864;
    p->heads = 14;
    p->kv_heads = 2;
    p->ctx = 32768;
    convert_target_from_name("f16", &p->target);
    p->seed = 1;
    p->tied = true;
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    p->threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* ---- random numbers ---- */

/* Uniform in (0, 1]. */
static double uniform01(uint64_t *s) {
    return ((double)(splitmix64(s) >> 11) + 1.0) * 0x1p-53;
}

static uint64_t hash_name(const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    return h;
}

typedef enum { DIST_MATRIX, DIST_EMBED, DIST_NORM, DIST_OUT_NORM, DIST_BIAS } dist_kind;

typedef struct {
    float *dst;
    int64_t cols;
    uint64_t seed;
    dist_kind kind;
} gen_job;

/* Fills rows [begin, end): each row has its own stream, so the slicing does not matter. */
static void gen_rows(void *ctx, int64_t begin, int64_t end, int thread) {
    const gen_job *j = ctx;
    static const double mean[] = {0, 0, 1, 7, 0}, sd[] = {0.02, 0.05, 0.1, 0.5, 0.5};
    for (int64_t r = begin; r < end; r++) {
        uint64_t s = j->seed ^ ((uint64_t)r * 0xd1b54a32d192ed03ull);
        float *y = j->dst + r * j->cols;
        for (int64_t c = 0; c < j->cols; c += 2) {
            /* Box-Muller: two normals from two uniforms */
            const double rad = sqrt(-2.0 * log(uniform01(&s))),
                         ang = 6.283185307179586 * uniform01(&s);
            const double z[2] = {rad * cos(ang), rad * sin(ang)};
            for (int k = 0; k < 2 && c + k < j->cols; k++) {
                double v = mean[j->kind] + sd[j->kind] * z[k];
                if (j->kind == DIST_BIAS && (splitmix64(&s) & 63) == 0) v = 20.0 * z[k];
                y[c + k] = (float)v;
            }
        }
    }
}

/* ---- the model ---- */

typedef struct {
    const synth_params *p;
    parallel_pool *pool;
    gguf_writer *w;
    int64_t n_vocab;
} synth_ctx;

static ws_status add_tensor(synth_ctx *c, const char *name, int64_t ne0, int64_t ne1,
                            dist_kind kind, ws_error *err) {
    const uint32_t n_dims = ne1 > 1 ? 2 : 1;
    const int64_t ne[2] = {ne0, ne1};
    const convert_model m = {c->p->n_layers, c->p->heads / c->p->kv_heads, !c->p->tied};
    const ggml_type type = convert_tensor_type(&c->p->target, &m, name, n_dims, ne);
    uint64_t rb = 0;
    ws_status st = ggml_row_bytes(type, ne0, &rb, err);
    if (st != WS_OK) return st;
    float *x = malloc((size_t)(ne0 * ne1) * sizeof(float));
    void *q = malloc(rb * (uint64_t)ne1);
    if (!x || !q) {
        st = ws_fail(err, WS_ERR_NOMEM, "out of memory for tensor '%s'", name);
        goto fail;
    }
    gen_job job = {x, ne0, c->p->seed * 0x9e3779b97f4a7c15ull ^ hash_name(name), kind};
    parallel_for(c->pool, ne1, 4, gen_rows, &job);
    if ((st = convert_quantize_rows(c->pool, type, x, ne1, ne0, q, NULL, err)) != WS_OK) goto fail;
    st = gguf_writer_add_tensor(c->w, name, type, n_dims, ne, q, rb * (uint64_t)ne1, err);
fail:
    free(x);
    free(q);
    return st;
}

static ws_status add_layers(synth_ctx *c, ws_error *err) {
    const synth_params *p = c->p;
    const int64_t h = p->hidden, hd = p->hidden / p->heads, kv = hd * p->kv_heads;
    for (int l = 0; l < p->n_layers; l++) {
        const struct {
            const char *suffix;
            int64_t ne0, ne1;
            dist_kind kind;
        } t[] = {
            {"attn_norm.weight", h, 1, DIST_NORM},     {"attn_q.weight", h, h, DIST_MATRIX},
            {"attn_q.bias", h, 1, DIST_BIAS},          {"attn_k.weight", h, kv, DIST_MATRIX},
            {"attn_k.bias", kv, 1, DIST_BIAS},         {"attn_v.weight", h, kv, DIST_MATRIX},
            {"attn_v.bias", kv, 1, DIST_BIAS},         {"attn_output.weight", h, h, DIST_MATRIX},
            {"ffn_norm.weight", h, 1, DIST_NORM},      {"ffn_gate.weight", h, p->ffn, DIST_MATRIX},
            {"ffn_up.weight", h, p->ffn, DIST_MATRIX}, {"ffn_down.weight", p->ffn, h, DIST_MATRIX},
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            char name[GGUF_MAX_NAME];
            snprintf(name, sizeof name, "blk.%d.%s", l, t[i].suffix);
            ws_status st = add_tensor(c, name, t[i].ne0, t[i].ne1, t[i].kind, err);
            if (st != WS_OK) return st;
        }
    }
    return WS_OK;
}

static ws_status check_params(const synth_params *p, ws_error *err) {
    const struct {
        const char *name;
        int v, max;
    } pos[] = {{"--layers", p->n_layers, 4096},   {"--hidden", p->hidden, 1 << 20},
               {"--ffn", p->ffn, 1 << 22},        {"--heads", p->heads, 4096},
               {"--kv-heads", p->kv_heads, 4096}, {"--ctx", p->ctx, 1 << 24},
               {"--threads", p->threads, 1024}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v < 1 || pos[i].v > pos[i].max)
            return ws_fail(err, WS_ERR_INVALID_ARG, "%s %d is not in 1..%d", pos[i].name, pos[i].v,
                           pos[i].max);
    if (p->hidden % p->heads != 0)
        return ws_fail(err, WS_ERR_INVALID_ARG, "--heads %d does not divide --hidden %d", p->heads,
                       p->hidden);
    if ((p->hidden / p->heads) % 2 != 0)
        return ws_fail(err, WS_ERR_INVALID_ARG, "head size %d (--hidden / --heads) is odd",
                       p->hidden / p->heads);
    if (p->heads % p->kv_heads != 0)
        return ws_fail(err, WS_ERR_INVALID_ARG, "--kv-heads %d does not divide --heads %d",
                       p->kv_heads, p->heads);
    return WS_OK;
}

static ws_status add_metadata(synth_ctx *c, const gguf_file *vocab, ws_error *err) {
    const synth_params *p = c->p;
    gguf_writer *w = c->w;
    ws_status st;
    const char *arch = "qwen2", *name = "synth";
    if ((st = gguf_writer_set_str(w, "general.architecture", arch, strlen(arch), err)) ||
        (st = gguf_writer_set_str(w, "general.type", "model", 5, err)) ||
        (st = gguf_writer_set_str(w, "general.name", name, strlen(name), err)) ||
        (st = gguf_writer_set_u32(w, "qwen2.block_count", (uint32_t)p->n_layers, err)) ||
        (st = gguf_writer_set_u32(w, "qwen2.context_length", (uint32_t)p->ctx, err)) ||
        (st = gguf_writer_set_u32(w, "qwen2.embedding_length", (uint32_t)p->hidden, err)) ||
        (st = gguf_writer_set_u32(w, "qwen2.feed_forward_length", (uint32_t)p->ffn, err)) ||
        (st = gguf_writer_set_u32(w, "qwen2.attention.head_count", (uint32_t)p->heads, err)) ||
        (st =
             gguf_writer_set_u32(w, "qwen2.attention.head_count_kv", (uint32_t)p->kv_heads, err)) ||
        (st = gguf_writer_set_f32(w, "qwen2.rope.freq_base", 1e6f, err)) ||
        (st = gguf_writer_set_f32(w, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f, err)) ||
        (st = gguf_writer_set_u32(w, "general.file_type", p->target.ftype, err)))
        return st;
    for (uint64_t i = 0; i < gguf_n_kv(vocab); i++)
        if (strncmp(gguf_kv_key(vocab, i), "tokenizer.", 10) == 0 &&
            (st = gguf_writer_copy_kv(w, vocab, i, err)) != WS_OK)
            return st;
    return gguf_writer_set_u32(w, "general.quantization_version", 2, err);
}

ws_status synth_write(const synth_params *p, const char *vocab_path, const char *out_path,
                      ws_error *err) {
    gguf_file *vocab = NULL;
    synth_ctx c = {p, NULL, NULL, 0};
    ws_status st = check_params(p, err);
    if (st != WS_OK) return st;
    if ((st = gguf_open(vocab_path, &vocab, err)) != WS_OK) {
        ws_error_prefix(err, "vocabulary %s: ", vocab_path);
        return st;
    }
    gguf_type et;
    uint64_t n_vocab = 0;
    const void *data;
    if ((st = gguf_get_arr(vocab, "tokenizer.ggml.tokens", &et, &n_vocab, &data, err)) != WS_OK) {
        ws_error_prefix(err, "vocabulary %s: ", vocab_path);
        goto fail;
    }
    if (n_vocab < 1 || n_vocab > (1u << 24)) {
        st = ws_fail(err, WS_ERR_FORMAT, "vocabulary %s: %llu tokens is not in 1..2^24", vocab_path,
                     (unsigned long long)n_vocab);
        goto fail;
    }
    c.n_vocab = (int64_t)n_vocab;
    if ((st = gguf_writer_new(&c.w, err)) != WS_OK ||
        (st = parallel_new(p->threads, &c.pool, err)) != WS_OK ||
        (st = add_metadata(&c, vocab, err)) != WS_OK ||
        (st = add_tensor(&c, "token_embd.weight", p->hidden, c.n_vocab, DIST_EMBED, err)) ||
        (st = add_layers(&c, err)) != WS_OK ||
        (st = add_tensor(&c, "output_norm.weight", p->hidden, 1, DIST_OUT_NORM, err)) != WS_OK ||
        (!p->tied &&
         (st = add_tensor(&c, "output.weight", p->hidden, c.n_vocab, DIST_MATRIX, err)) != WS_OK))
        goto fail;
    st = gguf_writer_write(c.w, out_path, err);
fail:
    parallel_free(c.pool);
    gguf_writer_free(c.w);
    gguf_close(vocab);
    return st;
}
