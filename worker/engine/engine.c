/* engine.c: backend selection and the argument checks every backend relies on. */
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const engine_ops *backend_ops(engine_backend b) {
    switch (b) {
    case ENGINE_CPU:
        return &engine_cpu_ops;
#ifdef WORKER_HAVE_CUDA
    case ENGINE_CUDA:
        return &engine_cuda_ops;
#else
    case ENGINE_CUDA:
        return NULL;
#endif
    }
    return NULL;
}

bool engine_backend_from_name(const char *name, engine_backend *out) {
    if (strcmp(name, "cpu") == 0) {
        *out = ENGINE_CPU;
        return true;
    }
    if (strcmp(name, "cuda") == 0) {
        *out = ENGINE_CUDA;
        return true;
    }
    return false;
}

const char *engine_backend_name(engine_backend b) {
    return b == ENGINE_CUDA ? "cuda" : "cpu";
}

bool engine_backend_available(engine_backend b) {
    if (b == ENGINE_CPU) return true;
#ifdef WORKER_HAVE_CUDA
    return engine_cuda_device_present();
#else
    return false;
#endif
}

ws_status engine_device_query(engine_backend b, int device, engine_memory *out, ws_error *err) {
    memset(out, 0, sizeof *out);
    if (b == ENGINE_CPU) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(out->device_name, sizeof out->device_name, "cpu (%ld threads)", n > 0 ? n : 1);
        return WS_OK;
    }
#ifdef WORKER_HAVE_CUDA
    return engine_cuda_device_query(device, out, err);
#else
    return ws_fail(err, WS_ERR_UNSUPPORTED, "backend cuda is not built into this binary");
#endif
}

ws_status engine_open(engine_backend b, const qwen2_model *m, const engine_options *opt,
                      engine **out, ws_error *err) {
    const engine_ops *ops = backend_ops(b);
    if (!ops)
        return ws_fail(err, WS_ERR_UNSUPPORTED, "backend '%s' is not built into this binary",
                       engine_backend_name(b));
    engine_options o = {0};
    if (opt) o = *opt;
    if (o.n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.n_threads = n > 0 ? (int)n : 1;
    }
    if (o.max_seqs == 0) o.max_seqs = 1;
    if (o.max_ctx == 0) o.max_ctx = m->cfg.n_ctx_train < 4096 ? m->cfg.n_ctx_train : 4096;
    if (o.max_ctx == 0)
        return ws_fail(err, WS_ERR_INVALID_ARG, "max_ctx resolves to 0 (model context_length 0)");
    engine *e = NULL;
    ws_status st = ops->open(m, &o, &e, err);
    if (st != WS_OK) return st;
    e->ops = ops;
    e->backend = b;
    e->model = m;
    e->opt = o;
    *out = e;
    return WS_OK;
}

void engine_free(engine *e) {
    if (e) e->ops->free(e);
}

engine_backend engine_get_backend(const engine *e) {
    return e->backend;
}

const qwen2_model *engine_model(const engine *e) {
    return e->model;
}

ws_status engine_memory_get(engine *e, engine_memory *out, ws_error *err) {
    memset(out, 0, sizeof *out);
    return e->ops->memory(e, out, err);
}

ws_status engine_seq_new(engine *e, uint32_t n_ctx, engine_seq **out, ws_error *err) {
    if (n_ctx == 0 || n_ctx > e->opt.max_ctx)
        return ws_fail(err, WS_ERR_RANGE, "n_ctx %u outside [1, %u]", n_ctx, e->opt.max_ctx);
    engine_seq *s = NULL;
    ws_status st = e->ops->seq_new(e, n_ctx, &s, err);
    if (st != WS_OK) return st;
    s->eng = e;
    s->n_ctx = n_ctx;
    s->n_past = 0;
    s->lookahead = false;
    *out = s;
    return WS_OK;
}

void engine_seq_lookahead(engine_seq *s, bool on) {
    s->lookahead = on;
}

void engine_seq_free(engine_seq *s) {
    if (s) s->eng->ops->seq_free(s);
}

uint32_t engine_seq_len(const engine_seq *s) {
    return s->n_past;
}

uint32_t engine_seq_ctx(const engine_seq *s) {
    return s->n_ctx;
}

ws_status engine_seq_truncate(engine_seq *s, uint32_t n, ws_error *err) {
    if (n > s->n_past)
        return ws_fail(err, WS_ERR_RANGE, "truncate to %u but sequence holds %u tokens", n,
                       s->n_past);
    ws_status st = s->eng->ops->seq_truncate(s, n, err);
    if (st == WS_OK) s->n_past = n;
    return st;
}

static ws_status check_tokens(const engine *e, const int32_t *tokens, uint32_t n, ws_error *err) {
    uint32_t n_vocab = e->model->cfg.n_vocab;
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab)
            return ws_fail(err, WS_ERR_RANGE, "token %u: id %d outside vocabulary [0, %u)", i,
                           tokens[i], n_vocab);
    return WS_OK;
}

ws_status engine_prefill(engine_seq *s, const int32_t *tokens, uint32_t n, bool all_logits,
                         float *logits, ws_error *err) {
    if (n == 0) return ws_fail(err, WS_ERR_INVALID_ARG, "prefill of 0 tokens");
    if ((uint64_t)s->n_past + n > s->n_ctx)
        return ws_fail(err, WS_ERR_RANGE, "%u tokens after %u exceed the context of %u", n,
                       s->n_past, s->n_ctx);
    ws_status st = check_tokens(s->eng, tokens, n, err);
    if (st != WS_OK) return st;
    st = s->eng->ops->prefill(s, tokens, n, all_logits, logits, err);
    if (st == WS_OK) s->n_past += n;
    return st;
}

ws_status engine_decode(engine_seq *const *seqs, const int32_t *tokens, uint32_t n_seqs,
                        float *logits, ws_error *err) {
    if (n_seqs == 0) return ws_fail(err, WS_ERR_INVALID_ARG, "decode of 0 sequences");
    engine *e = seqs[0]->eng;
    for (uint32_t i = 0; i < n_seqs; i++) {
        if (seqs[i]->eng != e)
            return ws_fail(err, WS_ERR_INVALID_ARG, "decode: sequence %u is of another engine", i);
        if (seqs[i]->n_past + 1 > seqs[i]->n_ctx)
            return ws_fail(err, WS_ERR_RANGE, "decode: sequence %u is full (%u tokens)", i,
                           seqs[i]->n_ctx);
        for (uint32_t j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return ws_fail(err, WS_ERR_INVALID_ARG, "decode: sequence %u given twice", i);
    }
    ws_status st = check_tokens(e, tokens, n_seqs, err);
    if (st != WS_OK) return st;
    st = e->ops->decode(seqs, tokens, n_seqs, logits, err);
    if (st == WS_OK)
        for (uint32_t i = 0; i < n_seqs; i++)
            seqs[i]->n_past += 1;
    return st;
}

ws_status engine_sample(engine_seq *s, const sampler_params *p, const int32_t *history,
                        uint32_t n_history, float u, sampler_result *out, ws_error *err) {
    if (!s->eng->ops->sample)
        return ws_fail(err, WS_ERR_UNSUPPORTED, "backend %s has no native sampler",
                       s->eng->ops->name);
    if (s->n_past == 0) return ws_fail(err, WS_ERR_STATE, "sample before any prefill");
    return s->eng->ops->sample(s, p, history, n_history, u, out, err);
}
