/* model.c: binds a parsed GGUF file to the qwen2 architecture: the config from metadata and a
 * shape-checked view of every weight. Nothing is copied; views point into the file mapping. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hyper-parameters ---- */

/* Reads a positive integer key that fits in uint32. A missing key is an error unless dflt != 0, in
 * which case dflt is used. */
static ws_status read_u32(const gguf_file *f, const char *key, uint32_t dflt, uint32_t *out,
                          ws_error *err) {
    int64_t v;
    ws_status st = gguf_get_int(f, key, &v, err);
    if (st == WS_ERR_NOT_FOUND) {
        if (dflt == 0) return ws_fail(err, WS_ERR_FORMAT, "metadata key '%s' is missing", key);
        *out = dflt;
        return WS_OK;
    }
    if (st != WS_OK) return st;
    if (v < 1 || v > (int64_t)UINT32_MAX)
        return ws_fail(err, WS_ERR_FORMAT, "metadata key '%s' = %lld is out of range", key,
                       (long long)v);
    *out = (uint32_t)v;
    return WS_OK;
}

static ws_status read_float(const gguf_file *f, const char *key, double dflt, bool required,
                            float *out, ws_error *err) {
    double v;
    ws_status st = gguf_get_float(f, key, &v, err);
    if (st == WS_ERR_NOT_FOUND) {
        if (required) return ws_fail(err, WS_ERR_FORMAT, "metadata key '%s' is missing", key);
        v = dflt;
    } else if (st != WS_OK) {
        return st;
    }
    if (!(v > 0) || !isfinite(v) || v > 1e30)
        return ws_fail(err, WS_ERR_FORMAT, "metadata key '%s' = %g must be a positive number", key,
                       v);
    *out = (float)v;
    return WS_OK;
}

/* The defaults follow the reference loader's for qwen2:
 *   - block_count, embedding_length, feed_forward_length, attention.head_count, context_length and
 *     attention.layer_norm_rms_epsilon are required (the reference loader fails without them too);
 *   - attention.head_count_kv defaults to attention.head_count (plain multi-head attention);
 *   - rope.freq_base defaults to 10000;
 *   - attention.key_length / value_length default to embedding_length / head_count; this engine
 *     needs both equal, and rope.dimension_count (when present) equal to the head dimension, since
 *     qwen2 rotates whole heads;
 *   - rope.scaling.type other than "none" is refused (not implemented). */
static ws_status read_config(const gguf_file *f, qwen2_config *c, ws_error *err) {
    ws_status st;
    if ((st = read_u32(f, "qwen2.block_count", 0, &c->n_layer, err)) != WS_OK) return st;
    if ((st = read_u32(f, "qwen2.embedding_length", 0, &c->n_embd, err)) != WS_OK) return st;
    if ((st = read_u32(f, "qwen2.feed_forward_length", 0, &c->n_ff, err)) != WS_OK) return st;
    if ((st = read_u32(f, "qwen2.attention.head_count", 0, &c->n_head, err)) != WS_OK) return st;
    if ((st = read_u32(f, "qwen2.attention.head_count_kv", c->n_head, &c->n_head_kv, err)) != WS_OK)
        return st;
    if ((st = read_u32(f, "qwen2.context_length", 0, &c->n_ctx_train, err)) != WS_OK) return st;
    if ((st = read_float(f, "qwen2.attention.layer_norm_rms_epsilon", 0, true, &c->rms_eps, err)) !=
        WS_OK)
        return st;
    if ((st = read_float(f, "qwen2.rope.freq_base", 10000.0, false, &c->rope_base, err)) != WS_OK)
        return st;

    if (c->n_layer > 4096)
        return ws_fail(err, WS_ERR_FORMAT, "qwen2.block_count = %u is implausibly large",
                       c->n_layer);
    if (c->n_head_kv > c->n_head || c->n_head % c->n_head_kv != 0)
        return ws_fail(err, WS_ERR_FORMAT,
                       "qwen2.attention.head_count = %u is not a multiple of head_count_kv = %u",
                       c->n_head, c->n_head_kv);
    uint32_t dflt_hd = c->n_embd % c->n_head == 0 ? c->n_embd / c->n_head : 0;
    uint32_t k_len = 0, v_len = 0; /* set by read_u32 on success; zero keeps -O3 quiet */
    if (dflt_hd == 0 && gguf_find_key(f, "qwen2.attention.key_length") < 0)
        return ws_fail(err, WS_ERR_FORMAT,
                       "qwen2.embedding_length = %u is not a multiple of head_count = %u",
                       c->n_embd, c->n_head);
    if ((st = read_u32(f, "qwen2.attention.key_length", dflt_hd, &k_len, err)) != WS_OK) return st;
    if ((st = read_u32(f, "qwen2.attention.value_length", k_len, &v_len, err)) != WS_OK) return st;
    if (v_len != k_len)
        return ws_fail(err, WS_ERR_UNSUPPORTED,
                       "qwen2.attention.value_length = %u differs from key_length = %u", v_len,
                       k_len);
    if (k_len % 2 != 0)
        return ws_fail(err, WS_ERR_FORMAT, "head dimension %u is odd (rotary needs pairs)", k_len);
    c->head_dim = k_len;
    uint32_t n_rot = 0;
    if ((st = read_u32(f, "qwen2.rope.dimension_count", k_len, &n_rot, err)) != WS_OK) return st;
    if (n_rot != k_len)
        return ws_fail(err, WS_ERR_UNSUPPORTED,
                       "qwen2.rope.dimension_count = %u: partial rotary (head dim %u) is not "
                       "supported",
                       n_rot, k_len);
    const char *s;
    uint64_t len;
    st = gguf_get_str(f, "qwen2.rope.scaling.type", &s, &len, err);
    if (st == WS_OK && !(len == 4 && memcmp(s, "none", 4) == 0))
        return ws_fail(err, WS_ERR_UNSUPPORTED, "qwen2.rope.scaling.type '%.*s' is not supported",
                       (int)(len < 64 ? len : 64), s);
    if (st != WS_OK && st != WS_ERR_NOT_FOUND) return st;
    return WS_OK;
}

/* ---- tensors ---- */

/* Binds tensor `name` with ne[0] = in and ne[1] = out (out = 0: a vector of in elements; in = 0:
 * any ne[0], taken from the file). f32_only: norms and biases, which the forward pass reads as F32.
 */
static ws_status bind_tensor(const gguf_file *f, const char *name, int64_t in, int64_t out,
                             bool f32_only, model_tensor *t, ws_error *err) {
    const gguf_tensor *g = gguf_find_tensor(f, name);
    if (!g) return ws_fail(err, WS_ERR_FORMAT, "tensor '%s' is missing", name);
    bool vec = out == 0;
    int64_t want1 = vec ? 1 : out;
    bool shape_ok = g->ne[0] == in && g->ne[1] == want1 && g->ne[2] == 1 && g->ne[3] == 1 &&
                    g->n_dims == (vec ? 1u : 2u);
    if (!shape_ok) {
        if (vec)
            return ws_fail(err, WS_ERR_FORMAT,
                           "tensor '%s' has shape [%lld, %lld, %lld, %lld] (%u dims), expected "
                           "[%lld]",
                           name, (long long)g->ne[0], (long long)g->ne[1], (long long)g->ne[2],
                           (long long)g->ne[3], g->n_dims, (long long)in);
        return ws_fail(err, WS_ERR_FORMAT,
                       "tensor '%s' has shape [%lld, %lld, %lld, %lld] (%u dims), expected "
                       "[%lld, %lld] (ne[0] = input features, ne[1] = output features)",
                       name, (long long)g->ne[0], (long long)g->ne[1], (long long)g->ne[2],
                       (long long)g->ne[3], g->n_dims, (long long)in, (long long)out);
    }
    if (!ggml_type_supported(g->type))
        return ws_fail(err, WS_ERR_UNSUPPORTED, "tensor '%s' has unsupported block type %u", name,
                       (unsigned)g->type);
    if (f32_only && g->type != GGML_TYPE_F32)
        return ws_fail(err, WS_ERR_UNSUPPORTED, "tensor '%s' is %s; it must be F32", name,
                       ggml_type_name(g->type));
    t->name = g->name;
    t->type = g->type;
    t->ne[0] = g->ne[0];
    t->ne[1] = g->ne[1];
    ws_status st = ggml_row_bytes(g->type, g->ne[0], &t->row_bytes, err);
    if (st != WS_OK) {
        ws_error_prefix(err, "tensor '%s': ", name);
        return st;
    }
    t->n_bytes = g->n_bytes;
    t->data = g->data;
    return WS_OK;
}

static ws_status bind_layer(const gguf_file *f, const qwen2_config *c, uint32_t il, qwen2_layer *l,
                            ws_error *err) {
    const int64_t d = c->n_embd, q = (int64_t)c->n_head * c->head_dim,
                  kv = (int64_t)c->n_head_kv * c->head_dim, ff = c->n_ff;
    const struct {
        const char *suffix;
        int64_t in, out;
        bool f32_only;
        model_tensor *t;
    } want[] = {
        {"attn_norm.weight", d, 0, true, &l->attn_norm},
        {"attn_q.weight", d, q, false, &l->wq},
        {"attn_k.weight", d, kv, false, &l->wk},
        {"attn_v.weight", d, kv, false, &l->wv},
        {"attn_q.bias", q, 0, true, &l->bq},
        {"attn_k.bias", kv, 0, true, &l->bk},
        {"attn_v.bias", kv, 0, true, &l->bv},
        {"attn_output.weight", q, d, false, &l->wo},
        {"ffn_norm.weight", d, 0, true, &l->ffn_norm},
        {"ffn_gate.weight", d, ff, false, &l->w_gate},
        {"ffn_up.weight", d, ff, false, &l->w_up},
        {"ffn_down.weight", ff, d, false, &l->w_down},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char name[GGUF_MAX_NAME];
        snprintf(name, sizeof name, "blk.%u.%s", il, want[i].suffix);
        ws_status st =
            bind_tensor(f, name, want[i].in, want[i].out, want[i].f32_only, want[i].t, err);
        if (st != WS_OK) return st;
    }
    return WS_OK;
}

ws_status model_bind(gguf_file *f, qwen2_model **out, ws_error *err) {
    const char *arch;
    uint64_t arch_len;
    ws_status st = gguf_get_str(f, "general.architecture", &arch, &arch_len, err);
    if (st == WS_ERR_NOT_FOUND)
        return ws_fail(err, WS_ERR_FORMAT, "metadata key 'general.architecture' is missing");
    if (st != WS_OK) return st;
    if (!(arch_len == 5 && memcmp(arch, "qwen2", 5) == 0))
        return ws_fail(err, WS_ERR_UNSUPPORTED,
                       "architecture '%.*s' is not supported (only 'qwen2')",
                       (int)(arch_len < 64 ? arch_len : 64), arch);

    qwen2_model *m = calloc(1, sizeof *m);
    if (!m) return ws_fail(err, WS_ERR_NOMEM, "model: out of memory");
    qwen2_config *c = &m->cfg;
    if ((st = read_config(f, c, err)) != WS_OK) goto fail;

    /* token_embd fixes the vocabulary size: its rows are the tokens. */
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb) {
        st = ws_fail(err, WS_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
        goto fail;
    }
    if (emb->ne[1] < 1 || emb->ne[1] > INT32_MAX) {
        st = ws_fail(err, WS_ERR_FORMAT, "tensor 'token_embd.weight' has %lld rows",
                     (long long)emb->ne[1]);
        goto fail;
    }
    c->n_vocab = (uint32_t)emb->ne[1];
    if ((st = bind_tensor(f, "token_embd.weight", c->n_embd, c->n_vocab, false, &m->tok_embd,
                          err)) != WS_OK)
        goto fail;
    if ((st = bind_tensor(f, "output_norm.weight", c->n_embd, 0, true, &m->output_norm, err)) !=
        WS_OK)
        goto fail;
    c->tied_output = gguf_find_tensor(f, "output.weight") == NULL;
    if (c->tied_output)
        m->output = m->tok_embd;
    else if ((st = bind_tensor(f, "output.weight", c->n_embd, c->n_vocab, false, &m->output,
                               err)) != WS_OK)
        goto fail;

    m->layers = calloc(c->n_layer, sizeof *m->layers);
    if (!m->layers) {
        st = ws_fail(err, WS_ERR_NOMEM, "model: out of memory for %u layers", c->n_layer);
        goto fail;
    }
    for (uint32_t il = 0; il < c->n_layer; il++)
        if ((st = bind_layer(f, c, il, &m->layers[il], err)) != WS_OK) goto fail;

    m->file = f;
    *out = m;
    return WS_OK;
fail:
    free(m->layers);
    free(m);
    return st;
}

ws_status model_open(const char *path, qwen2_model **out, ws_error *err) {
    gguf_file *f = NULL;
    ws_status st = gguf_open(path, &f, err);
    if (st != WS_OK) return st;
    st = model_bind(f, out, err);
    if (st != WS_OK) {
        ws_error_prefix(err, "%s: ", path);
        gguf_close(f);
    }
    return st;
}

void model_free(qwen2_model *m) {
    if (!m) return;
    gguf_close(m->file);
    free(m->layers);
    free(m);
}

static uint64_t elems(const model_tensor *t) {
    return (uint64_t)t->ne[0] * (uint64_t)t->ne[1];
}

uint64_t model_n_params(const qwen2_model *m) {
    uint64_t n = elems(&m->tok_embd) + elems(&m->output_norm);
    if (!m->cfg.tied_output) n += elems(&m->output);
    for (uint32_t il = 0; il < m->cfg.n_layer; il++) {
        const qwen2_layer *l = &m->layers[il];
        const model_tensor *ts[] = {&l->attn_norm, &l->wq,     &l->wk,   &l->wv,
                                    &l->bq,        &l->bk,     &l->bv,   &l->wo,
                                    &l->ffn_norm,  &l->w_gate, &l->w_up, &l->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            n += elems(ts[i]);
    }
    return n;
}
