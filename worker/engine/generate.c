/* generate.c: the per-request loop of generate.h. Prefill, then sample / stream / decode one token
 * at a time. Sampling runs on the backend when it has a sampler of its own (the logits then stay
 * on the device); otherwise the last logits row comes to the host for sampler_sample. Text goes
 * through the streaming detokenizer (whole UTF-8 sequences) and then the stop-string matcher
 * (nothing that may begin a stop string) before it reaches the callback. */
#include "engine/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/stop.h"

#define MAX_STOP_IDS 8
#define TEXT_CAP 1024 /* detok_push needs at most 512 */

const char *generate_finish_name(generate_finish f) {
    switch (f) {
    case GENERATE_FINISH_STOP:
        return "stop";
    case GENERATE_FINISH_LENGTH:
        return "length";
    case GENERATE_FINISH_STOP_STRING:
        return "stop_string";
    case GENERATE_FINISH_CANCELLED:
        return "cancelled";
    case GENERATE_FINISH_DEADLINE:
        return "deadline";
    case GENERATE_FINISH_ERROR:
        return "error";
    }
    return "unknown";
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    engine_seq *seq;
    const tokenizer *tok;
    const generate_request *req;
    uint32_t n_vocab;
    sampler *smp;     /* host sampling only */
    float *logits;    /* (n_vocab) host sampling only: the last row */
    int32_t *history; /* prompt then generated ids, for the penalties */
    uint32_t n_history;
    int32_t stop_ids[MAX_STOP_IDS];
    uint32_t n_stop_ids;
    sampler_rng rng;
    detok_stream detok;
    stop_matcher stops;
    char text[TEXT_CAP];
} gen;

static ws_status check_request(const generate_request *req, uint32_t n_vocab, ws_error *err) {
    if (req->n_prompt == 0 || !req->prompt)
        return ws_fail(err, WS_ERR_INVALID_ARG, "prompt of 0 tokens (at least one is needed)");
    if (req->max_tokens == 0) return ws_fail(err, WS_ERR_INVALID_ARG, "max_tokens 0 (at least 1)");
    if (req->n_stop > GENERATE_MAX_STOP)
        return ws_fail(err, WS_ERR_INVALID_ARG, "%u stop strings (at most %d)", req->n_stop,
                       GENERATE_MAX_STOP);
    if (req->deadline_ns < 0)
        return ws_fail(err, WS_ERR_INVALID_ARG, "deadline_ns %lld is negative",
                       (long long)req->deadline_ns);
    return sampler_params_validate(&req->sampling, n_vocab, err);
}

static ws_status gen_init(gen *g, engine_seq *seq, const tokenizer *tok,
                          const generate_request *req, ws_error *err) {
    memset(g, 0, sizeof *g);
    g->seq = seq;
    g->tok = tok;
    g->req = req;
    g->n_vocab = engine_model(seq->eng)->cfg.n_vocab;
    ws_status st = check_request(req, g->n_vocab, err);
    if (st != WS_OK) return st;
    st = stop_init(&g->stops, req->stop, req->n_stop, err);
    if (st != WS_OK) return st;
    if (!req->ignore_eos) g->n_stop_ids = tokenizer_stop_ids(tok, g->stop_ids, MAX_STOP_IDS);
    /* At most one token more than the context has room for can be generated. */
    uint64_t room = (uint64_t)engine_seq_ctx(seq) + 1;
    uint64_t n_hist = (uint64_t)req->n_prompt + (req->max_tokens < room ? req->max_tokens : room);
    g->history = malloc(n_hist * sizeof *g->history);
    if (!g->history)
        return ws_fail(err, WS_ERR_NOMEM, "history of %llu tokens", (unsigned long long)n_hist);
    memcpy(g->history, req->prompt, req->n_prompt * sizeof *g->history);
    g->n_history = req->n_prompt;
    if (!seq->eng->ops->sample) { /* engine_sample would answer WS_ERR_UNSUPPORTED */
        st = sampler_new(g->n_vocab, &g->smp, err);
        if (st != WS_OK) return st;
        g->logits = malloc((size_t)g->n_vocab * sizeof *g->logits);
        if (!g->logits) return ws_fail(err, WS_ERR_NOMEM, "logits row of %u floats", g->n_vocab);
    }
    sampler_rng_seed(&g->rng, req->sampling.seed);
    detok_init(&g->detok, tok, req->show_special);
    return WS_OK;
}

static void gen_free(gen *g) {
    stop_free(&g->stops);
    sampler_free(g->smp);
    free(g->logits);
    free(g->history);
}

static ws_status gen_sample(gen *g, sampler_result *res, ws_error *err) {
    float u = sampler_rng_uniform(&g->rng);
    if (g->smp)
        return sampler_sample(g->smp, &g->req->sampling, g->logits, g->history, g->n_history, u,
                              res, err);
    return engine_sample(g->seq, &g->req->sampling, g->history, g->n_history, u, res, err);
}

static bool is_stop_id(const gen *g, int32_t id) {
    for (uint32_t i = 0; i < g->n_stop_ids; i++)
        if (g->stop_ids[i] == id) return true;
    return false;
}

static bool deadline_passed(const generate_request *req) {
    return req->deadline_ns > 0 && now_ns() >= req->deadline_ns;
}

/* Streams token id: detokenize, hold back for stop strings, call back. */
static ws_status gen_emit(gen *g, uint32_t index, const sampler_result *res,
                          generate_on_chunk on_chunk, void *user, bool *matched, bool *keep_going,
                          ws_error *err) {
    size_t n = 0;
    ws_status st = detok_push(&g->detok, res->token, g->text, sizeof g->text, &n, err);
    if (st != WS_OK) return st;
    const char *out;
    size_t out_len;
    st = stop_push(&g->stops, g->text, n, &out, &out_len, matched, err);
    if (st != WS_OK) return st;
    generate_chunk c = {index, res->token, out, (uint32_t)out_len, res};
    *keep_going = on_chunk(user, &c);
    return WS_OK;
}

/* At the end: the detokenizer's incomplete tail and the held-back text, in one chunk. */
static ws_status gen_flush(gen *g, uint32_t index, generate_on_chunk on_chunk, void *user,
                           bool *matched, ws_error *err) {
    size_t n = detok_flush(&g->detok, g->text, sizeof g->text);
    const char *out;
    size_t out_len;
    ws_status st = stop_push(&g->stops, g->text, n, &out, &out_len, matched, err);
    if (st != WS_OK) return st;
    char *buf = NULL;
    size_t total = out_len;
    if (!*matched) {
        const char *held;
        size_t n_held = stop_flush(&g->stops, &held);
        total += n_held;
        if (total) {
            buf = malloc(total);
            if (!buf) return ws_fail(err, WS_ERR_NOMEM, "final text of %zu bytes", total);
            memcpy(buf, out, out_len);
            memcpy(buf + out_len, held, n_held);
            out = buf;
        }
    }
    if (total) {
        generate_chunk c = {index, -1, out, (uint32_t)total, NULL};
        (void)on_chunk(user, &c); /* the loop is over either way */
    }
    free(buf);
    return WS_OK;
}

ws_status generate_run(engine_seq *seq, const tokenizer *tok, const generate_request *req,
                       generate_on_chunk on_chunk, void *user, generate_stats *stats,
                       ws_error *err) {
    memset(stats, 0, sizeof *stats);
    stats->finish = GENERATE_FINISH_ERROR;
    stats->n_prompt = req->n_prompt;
    gen g;
    uint32_t n_gen = 0, n_decode = 0;
    int64_t t0 = now_ns(), t_prefilled = 0, t_first = 0;
    generate_finish fin = GENERATE_FINISH_LENGTH;
    ws_status st = gen_init(&g, seq, tok, req, err);
    if (st != WS_OK) goto fail;

    if (deadline_passed(req)) {
        fin = GENERATE_FINISH_DEADLINE;
        goto done;
    }
    st = engine_prefill(seq, req->prompt, req->n_prompt, false, g.logits, err);
    if (st != WS_OK) goto fail;
    t_prefilled = now_ns();
    if (deadline_passed(req)) {
        fin = GENERATE_FINISH_DEADLINE;
        goto done;
    }
    for (;;) {
        sampler_result res;
        /* a sample that is not the last the request allows is followed by a decode unless the
         * request stops there */
        engine_seq_lookahead(seq, n_gen + 1 < req->max_tokens);
        st = gen_sample(&g, &res, err);
        if (st != WS_OK) goto fail;
        if (n_gen == 0) t_first = now_ns();
        if (is_stop_id(&g, res.token)) {
            fin = GENERATE_FINISH_STOP;
            break;
        }
        g.history[g.n_history++] = res.token;
        n_gen++;
        bool matched = false, keep_going = true;
        st = gen_emit(&g, n_gen - 1, &res, on_chunk, user, &matched, &keep_going, err);
        if (st != WS_OK) goto fail;
        if (matched) {
            fin = GENERATE_FINISH_STOP_STRING;
            break;
        }
        if (!keep_going) {
            fin = GENERATE_FINISH_CANCELLED;
            break;
        }
        if (n_gen == req->max_tokens || engine_seq_len(seq) >= engine_seq_ctx(seq)) {
            fin = GENERATE_FINISH_LENGTH;
            break;
        }
        if (deadline_passed(req)) {
            fin = GENERATE_FINISH_DEADLINE;
            break;
        }
        st = engine_decode(&seq, &res.token, 1, g.logits, err);
        if (st != WS_OK) goto fail;
        n_decode++;
    }
done:
    if (fin != GENERATE_FINISH_CANCELLED && fin != GENERATE_FINISH_STOP_STRING) {
        bool matched = false;
        st = gen_flush(&g, n_gen, on_chunk, user, &matched, err);
        if (st != WS_OK) goto fail;
        if (matched) fin = GENERATE_FINISH_STOP_STRING;
    }
    int64_t t_end = now_ns();
    if (!t_first) t_first = t_end;
    stats->finish = fin;
    stats->n_generated = n_gen;
    stats->prefill_ms = (double)(t_first - t0) / 1e6;
    stats->decode_ms = (double)(t_end - t_first) / 1e6;
    if (t_prefilled > t0) stats->prompt_tps = req->n_prompt / ((double)(t_prefilled - t0) / 1e9);
    /* Decode speed: the decode steps (each one token through the model) over the time after
     * the first token. */
    if (n_decode > 0 && t_end > t_first)
        stats->decode_tps = n_decode / ((double)(t_end - t_first) / 1e9);
    gen_free(&g);
    return WS_OK;
fail:
    stats->n_generated = n_gen;
    gen_free(&g);
    return st;
}
