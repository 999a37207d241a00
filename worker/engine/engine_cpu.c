/* engine_cpu.c: the CPU reference engine, the yardstick the GPU engine is measured against.
 *
 * FP32 activations, FP32 accumulation, FP32 KV cache. Weights stay in their file block types in the
 * read-only mapping: each weight row is dequantized into a per-thread buffer when a matrix product
 * reaches it, then reused for every token of the batch (prefill is matrix-matrix, so a row is read
 * once per chunk of up to CPU_CHUNK tokens). Threads split the output rows of every product and the
 * (token, head) pairs of attention.
 *
 * Every token's arithmetic is the same whatever batch it travels in (same dot-product order, same
 * thread-independent reductions), so prefill, chunked prefill and decode give identical bits for
 * identical positions, and sequences decoded together equal sequences decoded alone.
 *
 * The scratch buffers belong to the engine, so one prefill or decode runs at a time per engine:
 * a mutex serialises calls from several threads (the service's slots); batching goes through
 * engine_decode's several sequences instead. */
#include "engine/engine.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dump.h"
#include "base/parallel.h"

#define CPU_CHUNK 64 /* tokens per forward pass: bounds scratch, amortises each weight row */
/* Multiply-adds below which a thread's slice is not worth a wake-up (tens of microseconds). */
#define CPU_SLICE_MIN_WORK 65536

typedef struct {
    engine base;
    parallel_pool *pool;
    pthread_mutex_t mu;     /* one forward pass at a time; guards kv_bytes and next_seq_id */
    uint32_t q_dim, kv_dim; /* n_head * head_dim, n_head_kv * head_dim */
    uint32_t row_max;       /* longest weight row: max(n_embd, n_ff, q_dim) */
    /* scratch for one chunk of up to CPU_CHUNK tokens */
    float *x;                   /* (CHUNK, n_embd) residual stream */
    float *xb;                  /* (CHUNK, n_embd) normed input, then a block's output */
    float *q;                   /* (CHUNK, q_dim) */
    float *k, *v;               /* (CHUNK, kv_dim) */
    float *att;                 /* (CHUNK, q_dim) attention output, heads concatenated */
    float *gate, *up;           /* (CHUNK, n_ff) */
    float *rope_cos, *rope_sin; /* (CHUNK, head_dim / 2) */
    float *thread_row;          /* (n_threads, row_max) one dequantized weight row per thread */
    float *thread_score;        /* (n_threads, max_ctx) attention scores per thread */
    uint64_t weight_bytes, scratch_bytes, kv_bytes;
    uint32_t next_seq_id;
} cpu_engine;

typedef struct {
    engine_seq base;
    uint32_t id;    /* names the sequence in tensor dumps */
    float *k_cache; /* (n_layer, n_ctx, kv_dim) after rotary */
    float *v_cache; /* (n_layer, n_ctx, kv_dim) */
} cpu_seq;

/* The tokens of one forward pass: token t belongs to seq[t] at position pos[t]. */
typedef struct {
    uint32_t n;
    cpu_seq *seq[CPU_CHUNK];
    uint32_t pos[CPU_CHUNK];
    const int32_t *tokens;
} batch;

/* ============================== kernels ============================== */

/* FP32 dot product with eight independent partial sums (a fixed order, vectorisable). */
static float dot(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += a[i + k] * b[i + k];
    float tail = 0;
    for (; i < n; i++)
        tail += a[i] * b[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

/* out[t] = x[t] / rms(x[t]) * w, for n rows of d. */
static void rmsnorm(float *out, const float *x, const model_tensor *w, uint32_t n, uint32_t d,
                    float eps) {
    const float *g = w->data;
    for (uint32_t t = 0; t < n; t++) {
        const float *xt = x + (uint64_t)t * d;
        float *ot = out + (uint64_t)t * d;
        double ss = 0;
        for (uint32_t i = 0; i < d; i++)
            ss += (double)xt[i] * xt[i];
        float scale = (float)(1.0 / sqrt(ss / d + eps));
        for (uint32_t i = 0; i < d; i++)
            ot[i] = xt[i] * scale * g[i];
    }
}

typedef struct {
    cpu_engine *e;
    const model_tensor *w; /* (in -> out) */
    const float *bias;     /* (out) or NULL */
    const float *x;        /* (n, in) */
    float *y;              /* (n, out) */
    uint32_t n;
} matmul_job;

static void matmul_rows(void *ctx, int64_t r0, int64_t r1, int thread) {
    const matmul_job *j = ctx;
    const int64_t in = j->w->ne[0], out = j->w->ne[1];
    float *buf = j->e->thread_row + (uint64_t)thread * j->e->row_max;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *src = (const uint8_t *)j->w->data + (uint64_t)r * j->w->row_bytes;
        const float *wr = (const float *)src;
        if (j->w->type != GGML_TYPE_F32) {
            quant_dequantize_row(j->w->type, src, buf, in);
            wr = buf;
        }
        float b = j->bias ? j->bias[r] : 0.0f;
        for (uint32_t t = 0; t < j->n; t++)
            j->y[(uint64_t)t * out + r] = dot(wr, j->x + (uint64_t)t * in, in) + b;
    }
}

/* y = W x (+ bias) for n rows of x; threads split the output features. */
static void matmul(cpu_engine *e, float *y, const model_tensor *w, const model_tensor *bias,
                   const float *x, uint32_t n) {
    matmul_job j = {e, w, bias ? (const float *)bias->data : NULL, x, y, n};
    int64_t per_row = w->ne[0] * (int64_t)n;
    parallel_for(e->pool, w->ne[1], (CPU_SLICE_MIN_WORK + per_row - 1) / per_row, matmul_rows, &j);
}

/* Rotary angles per token: theta_i = pos * base^(-2i / head_dim), i < head_dim / 2. The angle is
 * formed in float32 like the reference implementations (inverse frequency rounded to float, then
 * one float product); its cosine and sine are evaluated in double and rounded once. */
static void rope_tables(cpu_engine *e, const batch *b) {
    const qwen2_config *c = &e->base.model->cfg;
    uint32_t half = c->head_dim / 2;
    for (uint32_t t = 0; t < b->n; t++)
        for (uint32_t i = 0; i < half; i++) {
            float inv_freq = (float)(1.0 / pow(c->rope_base, (double)(2 * i) / c->head_dim));
            float theta = (float)b->pos[t] * inv_freq;
            e->rope_cos[t * half + i] = (float)cos(theta);
            e->rope_sin[t * half + i] = (float)sin(theta);
        }
}

/* NEOX rotary on n_heads heads of each row: element i pairs with element i + head_dim / 2. */
static void rope(const cpu_engine *e, float *x, uint32_t n, uint32_t n_heads) {
    uint32_t hd = e->base.model->cfg.head_dim, half = hd / 2;
    for (uint32_t t = 0; t < n; t++) {
        const float *cs = e->rope_cos + t * half, *sn = e->rope_sin + t * half;
        for (uint32_t h = 0; h < n_heads; h++) {
            float *v = x + ((uint64_t)t * n_heads + h) * hd;
            for (uint32_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = a * sn[i] + b * cs[i];
            }
        }
    }
}

typedef struct {
    cpu_engine *e;
    const batch *b;
    uint32_t layer;
} attention_job;

/* Causal grouped-query attention for (token, head) pairs [i0, i1): query head h reads KV head
 * h / (n_head / n_head_kv) at positions 0..pos of its own sequence. */
static void attention_rows(void *ctx, int64_t i0, int64_t i1, int thread) {
    const attention_job *j = ctx;
    cpu_engine *e = j->e;
    const qwen2_config *c = &e->base.model->cfg;
    const uint32_t hd = c->head_dim, group = c->n_head / c->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    float *score = e->thread_score + (uint64_t)thread * e->base.opt.max_ctx;
    for (int64_t i = i0; i < i1; i++) {
        uint32_t t = (uint32_t)(i / c->n_head), h = (uint32_t)(i % c->n_head);
        const cpu_seq *s = j->b->seq[t];
        uint32_t n_kv = j->b->pos[t] + 1;
        uint64_t layer_off = (uint64_t)j->layer * s->base.n_ctx * e->kv_dim + (h / group) * hd;
        const float *kc = s->k_cache + layer_off, *vc = s->v_cache + layer_off;
        const float *qh = e->q + (uint64_t)t * e->q_dim + h * hd;
        float *out = e->att + (uint64_t)t * e->q_dim + h * hd;

        float max = -INFINITY;
        for (uint32_t p = 0; p < n_kv; p++) {
            score[p] = dot(qh, kc + (uint64_t)p * e->kv_dim, hd) * scale;
            if (score[p] > max) max = score[p];
        }
        float sum = 0;
        for (uint32_t p = 0; p < n_kv; p++) {
            score[p] = expf(score[p] - max);
            sum += score[p];
        }
        memset(out, 0, hd * sizeof *out);
        for (uint32_t p = 0; p < n_kv; p++) {
            const float *vp = vc + (uint64_t)p * e->kv_dim;
            for (uint32_t d = 0; d < hd; d++)
                out[d] += score[p] * vp[d];
        }
        float inv = 1.0f / sum;
        for (uint32_t d = 0; d < hd; d++)
            out[d] *= inv;
    }
}

static void store_kv(cpu_engine *e, const batch *b, uint32_t layer) {
    for (uint32_t t = 0; t < b->n; t++) {
        cpu_seq *s = b->seq[t];
        uint64_t off = ((uint64_t)layer * s->base.n_ctx + b->pos[t]) * e->kv_dim;
        memcpy(s->k_cache + off, e->k + (uint64_t)t * e->kv_dim, e->kv_dim * sizeof(float));
        memcpy(s->v_cache + off, e->v + (uint64_t)t * e->kv_dim, e->kv_dim * sizeof(float));
    }
}

static void add_rows(float *x, const float *y, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        x[i] += y[i];
}

static void swiglu(float *gate, const float *up, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void dump_batch(const batch *b, int layer, const char *name, const float *x, uint64_t len) {
    for (uint32_t t = 0; t < b->n; t++)
        dump_rows(b->seq[t]->id, layer, name, &b->pos[t], x + t * len, 1, len);
}

#define DUMP(layer, name, x, len)                                                                  \
    do {                                                                                           \
        if (dump_on) dump_batch(b, layer, name, x, len);                                           \
    } while (0)

/* ============================== the model ============================== */

/* Runs the tokens of b through the model, appending their keys and values to their sequences'
 * caches. When logits is not NULL, rows first_logit..n-1 of the output go there (row-major). */
static void forward(cpu_engine *e, const batch *b, uint32_t first_logit, float *logits) {
    const qwen2_model *m = e->base.model;
    const qwen2_config *c = &m->cfg;
    const uint32_t n = b->n, d = c->n_embd;

    // token embeddings: one dequantized row per token
    for (uint32_t t = 0; t < n; t++)
        quant_dequantize_row(m->tok_embd.type,
                             (const uint8_t *)m->tok_embd.data +
                                 (uint64_t)b->tokens[t] * m->tok_embd.row_bytes,
                             e->x + (uint64_t)t * d, d);
    DUMP(-1, "embd", e->x, d);
    rope_tables(e, b);

    for (uint32_t il = 0; il < c->n_layer; il++) {
        const qwen2_layer *l = &m->layers[il];
        const int L = (int)il;

        // attention: x += o_proj(attn(rope(q), rope(k), v)) of norm1(x)
        rmsnorm(e->xb, e->x, &l->attn_norm, n, d, c->rms_eps);
        DUMP(L, "attn_norm", e->xb, d);
        matmul(e, e->q, &l->wq, &l->bq, e->xb, n);
        matmul(e, e->k, &l->wk, &l->bk, e->xb, n);
        matmul(e, e->v, &l->wv, &l->bv, e->xb, n);
        DUMP(L, "q", e->q, e->q_dim);
        DUMP(L, "k", e->k, e->kv_dim);
        DUMP(L, "v", e->v, e->kv_dim);
        rope(e, e->q, n, c->n_head);
        rope(e, e->k, n, c->n_head_kv);
        DUMP(L, "q_rope", e->q, e->q_dim);
        DUMP(L, "k_rope", e->k, e->kv_dim);
        store_kv(e, b, il);
        attention_job aj = {e, b, il};
        int64_t per_pair = 2 * (int64_t)c->head_dim * (b->pos[n - 1] + 1);
        parallel_for(e->pool, (int64_t)n * c->n_head,
                     (CPU_SLICE_MIN_WORK + per_pair - 1) / per_pair, attention_rows, &aj);
        DUMP(L, "attn", e->att, e->q_dim);
        matmul(e, e->xb, &l->wo, NULL, e->att, n);
        DUMP(L, "attn_out", e->xb, d);
        add_rows(e->x, e->xb, (uint64_t)n * d);

        // feed-forward: x += down(silu(gate(norm2(x))) * up(norm2(x)))
        rmsnorm(e->xb, e->x, &l->ffn_norm, n, d, c->rms_eps);
        DUMP(L, "ffn_norm", e->xb, d);
        matmul(e, e->gate, &l->w_gate, NULL, e->xb, n);
        matmul(e, e->up, &l->w_up, NULL, e->xb, n);
        swiglu(e->gate, e->up, (uint64_t)n * c->n_ff);
        DUMP(L, "ffn_act", e->gate, c->n_ff);
        matmul(e, e->xb, &l->w_down, NULL, e->gate, n);
        DUMP(L, "ffn_out", e->xb, d);
        add_rows(e->x, e->xb, (uint64_t)n * d);
        DUMP(L, "l_out", e->x, d);
    }

    // output: logits = lm_head(norm_out(x)) for the rows asked for
    if (!logits || first_logit >= n) return;
    uint32_t n_out = n - first_logit;
    float *xo = e->x + (uint64_t)first_logit * d, *xn = e->xb + (uint64_t)first_logit * d;
    rmsnorm(xn, xo, &m->output_norm, n_out, d, c->rms_eps);
    matmul(e, logits, &m->output, NULL, xn, n_out);
    if (dump_on) {
        batch tail = *b;
        tail.n = n_out;
        memmove(tail.seq, b->seq + first_logit, n_out * sizeof tail.seq[0]);
        memmove(tail.pos, b->pos + first_logit, n_out * sizeof tail.pos[0]);
        dump_batch(&tail, -1, "output_norm", xn, d);
        dump_batch(&tail, -1, "logits", logits, c->n_vocab);
    }
}

/* ============================== engine ops ============================== */

static void cpu_free(engine *base) {
    cpu_engine *e = (cpu_engine *)base;
    if (!e) return;
    parallel_free(e->pool);
    pthread_mutex_destroy(&e->mu);
    free(e->x);
    free(e->xb);
    free(e->q);
    free(e->k);
    free(e->v);
    free(e->att);
    free(e->gate);
    free(e->up);
    free(e->rope_cos);
    free(e->rope_sin);
    free(e->thread_row);
    free(e->thread_score);
    free(e);
}

static float *scratch(cpu_engine *e, uint64_t n_floats) {
    e->scratch_bytes += n_floats * sizeof(float);
    return malloc(n_floats * sizeof(float));
}

static uint64_t weight_bytes(const qwen2_model *m) {
    uint64_t n = m->tok_embd.n_bytes + m->output_norm.n_bytes;
    if (!m->cfg.tied_output) n += m->output.n_bytes;
    for (uint32_t il = 0; il < m->cfg.n_layer; il++) {
        const qwen2_layer *l = &m->layers[il];
        n += l->attn_norm.n_bytes + l->wq.n_bytes + l->wk.n_bytes + l->wv.n_bytes + l->bq.n_bytes +
             l->bk.n_bytes + l->bv.n_bytes + l->wo.n_bytes + l->ffn_norm.n_bytes +
             l->w_gate.n_bytes + l->w_up.n_bytes + l->w_down.n_bytes;
    }
    return n;
}

static ws_status cpu_open(const qwen2_model *m, const engine_options *opt, engine **out,
                          ws_error *err) {
    const qwen2_config *c = &m->cfg;
    cpu_engine *e = calloc(1, sizeof *e);
    if (!e) return ws_fail(err, WS_ERR_NOMEM, "cpu engine: out of memory");
    e->base.model = m;
    e->base.opt = *opt;
    pthread_mutex_init(&e->mu, NULL);
    ws_status st = parallel_new(opt->n_threads, &e->pool, err);
    if (st != WS_OK) goto fail;
    dump_init();

    e->q_dim = c->n_head * c->head_dim;
    e->kv_dim = c->n_head_kv * c->head_dim;
    e->row_max = c->n_embd > c->n_ff ? c->n_embd : c->n_ff;
    if (e->q_dim > e->row_max) e->row_max = e->q_dim;
    const uint64_t C = CPU_CHUNK, T = (uint64_t)opt->n_threads;
    e->x = scratch(e, C * c->n_embd);
    e->xb = scratch(e, C * c->n_embd);
    e->q = scratch(e, C * e->q_dim);
    e->k = scratch(e, C * e->kv_dim);
    e->v = scratch(e, C * e->kv_dim);
    e->att = scratch(e, C * e->q_dim);
    e->gate = scratch(e, C * c->n_ff);
    e->up = scratch(e, C * c->n_ff);
    e->rope_cos = scratch(e, C * (c->head_dim / 2));
    e->rope_sin = scratch(e, C * (c->head_dim / 2));
    e->thread_row = scratch(e, T * e->row_max);
    e->thread_score = scratch(e, T * opt->max_ctx);
    if (!e->x || !e->xb || !e->q || !e->k || !e->v || !e->att || !e->gate || !e->up ||
        !e->rope_cos || !e->rope_sin || !e->thread_row || !e->thread_score) {
        st = ws_fail(err, WS_ERR_NOMEM, "cpu engine: cannot allocate %llu bytes of scratch",
                     (unsigned long long)e->scratch_bytes);
        goto fail;
    }
    e->weight_bytes = weight_bytes(m);
    *out = &e->base;
    return WS_OK;
fail:
    cpu_free(&e->base);
    return st;
}

/* Weights are views into the read-only file mapping: the engine allocates nothing for them, but
 * they are what the engine reads, and the page cache holds them (shared with any other process
 * mapping the same file) once touched. Reporting their size as `weights` makes the total the
 * resident cost of serving, comparable with the GPU engine's figure. */
static ws_status cpu_memory(engine *base, engine_memory *out, ws_error *err) {
    cpu_engine *e = (cpu_engine *)base;
    pthread_mutex_lock(&e->mu);
    out->weights = e->weight_bytes;
    out->kv_cache = e->kv_bytes;
    out->scratch = e->scratch_bytes;
    pthread_mutex_unlock(&e->mu);
    snprintf(out->device_name, sizeof out->device_name, "cpu (%d threads)", base->opt.n_threads);
    return WS_OK;
}

static uint64_t seq_kv_bytes(const cpu_engine *e, uint32_t n_ctx) {
    return 2ull * e->base.model->cfg.n_layer * n_ctx * e->kv_dim * sizeof(float);
}

static ws_status cpu_seq_new(engine *base, uint32_t n_ctx, engine_seq **out, ws_error *err) {
    cpu_engine *e = (cpu_engine *)base;
    uint64_t bytes = seq_kv_bytes(e, n_ctx);
    cpu_seq *s = calloc(1, sizeof *s);
    if (!s) return ws_fail(err, WS_ERR_NOMEM, "cpu engine: out of memory for a sequence");
    s->k_cache = malloc(bytes / 2);
    s->v_cache = malloc(bytes / 2);
    if (!s->k_cache || !s->v_cache) {
        free(s->k_cache);
        free(s->v_cache);
        free(s);
        return ws_fail(err, WS_ERR_NOMEM,
                       "cpu engine: cannot allocate %llu bytes of KV cache "
                       "for %u tokens",
                       (unsigned long long)bytes, n_ctx);
    }
    s->base.eng = base; /* engine.c sets it again; seq_free needs it */
    s->base.n_ctx = n_ctx;
    pthread_mutex_lock(&e->mu);
    s->id = e->next_seq_id++;
    e->kv_bytes += bytes;
    pthread_mutex_unlock(&e->mu);
    *out = &s->base;
    return WS_OK;
}

static void cpu_seq_free(engine_seq *base) {
    cpu_seq *s = (cpu_seq *)base;
    if (!s) return;
    cpu_engine *e = (cpu_engine *)base->eng;
    pthread_mutex_lock(&e->mu);
    e->kv_bytes -= seq_kv_bytes(e, base->n_ctx);
    pthread_mutex_unlock(&e->mu);
    free(s->k_cache);
    free(s->v_cache);
    free(s);
}

/* Positions past n are simply overwritten by later tokens. */
static ws_status cpu_seq_truncate(engine_seq *s, uint32_t n, ws_error *err) {
    return WS_OK;
}

static ws_status cpu_prefill(engine_seq *base, const int32_t *tokens, uint32_t n, bool all_logits,
                             float *logits, ws_error *err) {
    cpu_engine *e = (cpu_engine *)base->eng;
    const uint32_t n_vocab = base->eng->model->cfg.n_vocab;
    pthread_mutex_lock(&e->mu);
    for (uint32_t done = 0; done < n;) {
        batch b;
        b.n = n - done < CPU_CHUNK ? n - done : CPU_CHUNK;
        b.tokens = tokens + done;
        for (uint32_t t = 0; t < b.n; t++) {
            b.seq[t] = (cpu_seq *)base;
            b.pos[t] = base->n_past + done + t;
        }
        bool last = done + b.n == n;
        if (!logits)
            forward(e, &b, b.n, NULL);
        else if (all_logits)
            forward(e, &b, 0, logits + (uint64_t)done * n_vocab);
        else
            forward(e, &b, last ? b.n - 1 : b.n, last ? logits : NULL);
        done += b.n;
    }
    pthread_mutex_unlock(&e->mu);
    return WS_OK;
}

static ws_status cpu_decode(engine_seq *const *seqs, const int32_t *tokens, uint32_t n_seqs,
                            float *logits, ws_error *err) {
    cpu_engine *e = (cpu_engine *)seqs[0]->eng;
    const uint32_t n_vocab = e->base.model->cfg.n_vocab;
    pthread_mutex_lock(&e->mu);
    for (uint32_t done = 0; done < n_seqs;) {
        batch b;
        b.n = n_seqs - done < CPU_CHUNK ? n_seqs - done : CPU_CHUNK;
        b.tokens = tokens + done;
        for (uint32_t t = 0; t < b.n; t++) {
            b.seq[t] = (cpu_seq *)seqs[done + t];
            b.pos[t] = seqs[done + t]->n_past;
        }
        forward(e, &b, 0, logits ? logits + (uint64_t)done * n_vocab : NULL);
        done += b.n;
    }
    pthread_mutex_unlock(&e->mu);
    return WS_OK;
}

const engine_ops engine_cpu_ops = {
    .name = "cpu",
    .open = cpu_open,
    .free = cpu_free,
    .memory = cpu_memory,
    .seq_new = cpu_seq_new,
    .seq_free = cpu_seq_free,
    .seq_truncate = cpu_seq_truncate,
    .prefill = cpu_prefill,
    .decode = cpu_decode,
    .sample = NULL, /* the caller samples from host logits */
};
