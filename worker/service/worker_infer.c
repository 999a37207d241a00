/* worker_infer.c: inference requests. Admission (in the receive thread) validates and tokenizes
 * the request and reserves its session before queueing; the run (in a slot thread) reuses the
 * session's cached prefix, streams one TokenChunk per token and ends with exactly one StreamEnd,
 * or one Error when the request failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "service/worker_internal.h"
#include "text/chat.h"

typedef struct {
    sched_job job;
    worker *w;
    int32_t *tokens; /* the whole prompt */
    uint32_t n_tokens;
    generate_request greq; /* prompt/n_prompt filled at run time */
    char *stop_store;      /* stop strings, NUL-separated */
    session *sess;         /* reserved, or NULL */
    engine_seq *evicted;   /* an evicted session's sequence, freed at run time */
    int64_t received_ns;
    int64_t started_ns; /* left the queue */
    /* run state */
    int64_t first_token_ns;
    uint32_t n_sent;
    int32_t *generated;
    uint32_t n_generated, cap_generated;
} infer_req;

static void req_free(infer_req *r) {
    if (!r) return;
    free(r->tokens);
    free(r->stop_store);
    free(r->generated);
    free(r);
}

/* ---- sessions (w->mu held) ----
 * w->sessions has room for lm->n_sessions entries that never move (requests hold pointers to
 * them); an entry is free when its id is empty. */

/* Empties s; its KV sequence (if any) is returned for the caller to free under the engine turn. */
static engine_seq *session_clear(worker *w, session *s) {
    engine_seq *seq = s->seq;
    free(s->history);
    if (s->id[0]) w->n_sessions--;
    memset(s, 0, sizeof *s);
    return seq;
}

void sessions_free_all(worker *w, uint32_t cap) {
    for (uint32_t i = 0; w->sessions && i < cap; i++)
        engine_seq_free(session_clear(w, &w->sessions[i]));
    free(w->sessions);
    w->sessions = NULL;
    w->n_sessions = 0;
}

/* Finds or creates the session, reserving it. NULL with err when busy or no room. An evicted
 * session's sequence goes to *evicted, to be freed under the engine turn. */
static session *session_reserve(worker *w, const char *id, engine_seq **evicted, ws_status *st,
                                ws_error *err) {
    uint32_t cap = w->lm->n_sessions;
    session *found = NULL, *lru = NULL, *empty = NULL;
    if (!w->sessions) {
        w->sessions = calloc(cap ? cap : 1, sizeof *w->sessions);
        if (!w->sessions) {
            *st = ws_fail(err, WS_ERR_NOMEM, "out of memory for sessions");
            return NULL;
        }
    }
    for (uint32_t i = 0; i < cap; i++) {
        session *s = &w->sessions[i];
        if (!s->id[0]) {
            if (!empty) empty = s;
            continue;
        }
        if (strcmp(s->id, id) == 0) found = s;
        if (!s->busy && (!lru || s->last_used_ns < lru->last_used_ns)) lru = s;
    }
    if (found) {
        if (found->busy || found->doomed) {
            *st = ws_fail(err, WS_ERR_STATE, "session '%s' is busy with another request", id);
            return NULL;
        }
        found->busy = true;
        return found;
    }
    session *s = empty;
    if (!s && lru) {
        log_event(LOG_INFO, 0, "session.evict", "least recently used session evicted");
        *evicted = session_clear(w, lru);
        s = lru;
    }
    if (!s) {
        *st = ws_fail(err, WS_ERR_OVERLOADED, "all %u sessions are busy", cap);
        return NULL;
    }
    snprintf(s->id, sizeof s->id, "%s", id);
    s->busy = true;
    w->n_sessions++;
    return s;
}

/* Called holding the engine turn (a doomed session's sequence is freed here). */
static void session_release(worker *w, session *s) {
    pthread_mutex_lock(&w->mu);
    s->busy = false;
    s->last_used_ns = sched_now_ns();
    if (s->doomed) engine_seq_free(session_clear(w, s));
    pthread_mutex_unlock(&w->mu);
}

void worker_on_reset(worker *w, const pmsg *m) {
    const char *id = m->u.reset.session_id;
    bool found = false;
    turn_acquire(&w->eng_turn);
    pthread_mutex_lock(&w->mu);
    uint32_t cap = w->lm && w->sessions ? w->lm->n_sessions : 0;
    for (uint32_t i = 0; i < cap; i++) {
        session *s = &w->sessions[i];
        if (!s->id[0] || (!m->u.reset.all && strcmp(s->id, id) != 0)) continue;
        found = true;
        if (s->busy)
            s->doomed = true;
        else
            engine_seq_free(session_clear(w, s));
    }
    pthread_mutex_unlock(&w->mu);
    worker_refresh_memory(w);
    turn_release(&w->eng_turn);
    log_event(LOG_INFO, m->request_id, "reset", "all=%d found=%d", m->u.reset.all, found);
    pmsg r;
    pmsg_init(&r, PMSG_ACK, m->request_id);
    r.u.ack_found = found;
    worker_send(w, &r);
}

/* ---- admission ---- */

static ws_status tokenize_request(const loaded_model *lm, const pinfer *in, infer_req *r,
                                  const char **field, ws_error *err) {
    ws_status st = WS_OK;
    size_t n = 0;
    if (in->prompt) {
        *field = "infer.prompt";
        st = tokenizer_encode(lm->tok, in->prompt, strlen(in->prompt), in->parse_special,
                              &r->tokens, &n, err);
    } else if (in->n_messages) {
        *field = "infer.messages";
        if (!lm->chat_ok)
            return ws_fail(err, WS_ERR_UNSUPPORTED,
                           "the loaded model's chat template is not "
                           "supported; send prompt or token_ids");
        char *text = NULL;
        st = chat_render(in->messages, in->n_messages, 1, &text, err);
        if (st == WS_OK)
            st = tokenizer_encode(lm->tok, text, strlen(text), true, &r->tokens, &n, err);
        free(text);
    } else {
        *field = "infer.token_ids";
        uint32_t n_vocab = tokenizer_n_vocab(lm->tok);
        for (uint32_t i = 0; i < in->n_token_ids; i++)
            if (in->token_ids[i] < 0 || (uint32_t)in->token_ids[i] >= n_vocab)
                return ws_fail(err, WS_ERR_RANGE,
                               "token_ids[%u] = %d outside the vocabulary "
                               "(0..%u)",
                               i, in->token_ids[i], n_vocab - 1);
        r->tokens = malloc(in->n_token_ids * sizeof *r->tokens);
        if (!r->tokens) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
        memcpy(r->tokens, in->token_ids, in->n_token_ids * sizeof *r->tokens);
        n = in->n_token_ids;
    }
    if (st != WS_OK) return st;
    if (n == 0) return ws_fail(err, WS_ERR_INVALID_ARG, "the prompt has no tokens");
    r->n_tokens = (uint32_t)n;
    return WS_OK;
}

static ws_status build_request(worker *w, const pmsg *m, infer_req *r, const char **field,
                               ws_error *err) {
    const pinfer *in = &m->u.infer;
    const loaded_model *lm = w->lm;
    ws_status st = tokenize_request(lm, in, r, field, err);
    if (st != WS_OK) return st;
    *field = "infer.sampling";
    st = sampler_params_validate(&in->sampling, tokenizer_n_vocab(lm->tok), err);
    if (st != WS_OK) return st;
    if ((uint64_t)r->n_tokens + in->max_tokens > lm->n_ctx) {
        *field = "infer.max_tokens";
        return ws_fail(err, WS_ERR_RANGE,
                       "prompt of %u tokens + max_tokens %u exceeds the "
                       "context of %u",
                       r->n_tokens, in->max_tokens, lm->n_ctx);
    }
    size_t total = 0;
    for (uint32_t i = 0; i < in->n_stop; i++)
        total += strlen(in->stop[i]) + 1;
    r->stop_store = malloc(total ? total : 1);
    if (!r->stop_store) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
    char *p = r->stop_store;
    generate_request *g = &r->greq;
    for (uint32_t i = 0; i < in->n_stop; i++) {
        size_t n = strlen(in->stop[i]) + 1;
        memcpy(p, in->stop[i], n);
        g->stop[i] = p;
        p += n;
    }
    g->n_stop = in->n_stop;
    g->sampling = in->sampling;
    g->max_tokens = in->max_tokens;
    g->ignore_eos = in->ignore_eos;
    g->show_special = in->show_special;
    r->job.request_id = m->request_id;
    r->job.deadline_ns = in->timeout_ms ? r->received_ns + (int64_t)in->timeout_ms * 1000000 : 0;
    g->deadline_ns = r->job.deadline_ns;
    r->job.user = r;
    r->w = w;
    return WS_OK;
}

void worker_on_infer(worker *w, const pmsg *m) {
    infer_req *r = calloc(1, sizeof *r);
    const char *field = "";
    ws_error err = {{0}};
    ws_status st = WS_OK;
    if (!r) {
        worker_send_error(w, m->request_id, WS_ERR_NOMEM, "", "out of memory");
        return;
    }
    r->received_ns = sched_now_ns();
    pthread_mutex_lock(&w->mu);
    w->cnt.requests++;
    if (w->state != PSTATE_READY) {
        st = ws_fail(&err, WS_ERR_STATE, "cannot generate while %s%s", pstate_name(w->state),
                     w->state == PSTATE_IDLE ? " (no model loaded)" : "");
    } else {
        st = build_request(w, m, r, &field, &err);
        if (st == WS_OK && m->u.infer.session_id) {
            field = "infer.session_id";
            r->sess = session_reserve(w, m->u.infer.session_id, &r->evicted, &st, &err);
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (st == WS_OK) {
        if (log_prompts_allowed() && m->u.infer.prompt)
            log_event(LOG_INFO, m->request_id, "infer.prompt", "%s", m->u.infer.prompt);
        field = "";
        atomic_fetch_add(&w->in_flight, 1);
        st = sched_submit(w->sched, &r->job, &err);
        if (st != WS_OK) atomic_fetch_sub(&w->in_flight, 1);
        if (st != WS_OK && r->sess) {
            turn_acquire(&w->eng_turn);
            engine_seq_free(r->evicted);
            r->evicted = NULL;
            session_release(w, r->sess);
            turn_release(&w->eng_turn);
        }
    }
    if (st != WS_OK) {
        pthread_mutex_lock(&w->mu);
        if (st == WS_ERR_OVERLOADED)
            w->cnt.rejected++;
        else
            w->cnt.failed++;
        pthread_mutex_unlock(&w->mu);
        worker_send_error(w, m->request_id, st, field, err.msg);
        req_free(r);
        return;
    }
    log_event(LOG_INFO, m->request_id, "infer.queued", "prompt_tokens=%u max_tokens=%u",
              r->n_tokens, r->greq.max_tokens);
}

/* ---- running ---- */

static void send_end(worker *w, infer_req *r, generate_finish finish, const generate_stats *gs,
                     uint32_t cached) {
    int64_t now = sched_now_ns();
    pmsg m;
    pmsg_init(&m, PMSG_STREAM_END, r->job.request_id);
    pstream_end *e = &m.u.end;
    e->finish = finish;
    e->prompt_tokens = r->n_tokens;
    e->generated_tokens = gs ? gs->n_generated : 0;
    e->cached_tokens = cached;
    e->ttft_ms = r->first_token_ns ? (double)(r->first_token_ns - r->received_ns) / 1e6 : 0;
    e->queue_ms = (double)((r->started_ns ? r->started_ns : now) - r->received_ns) / 1e6;
    e->decode_tps = gs ? gs->decode_tps : 0;
    e->total_ms = (double)(now - r->received_ns) / 1e6;
    pthread_mutex_lock(&w->mu);
    if (finish == GENERATE_FINISH_CANCELLED)
        w->cnt.cancelled++;
    else if (finish == GENERATE_FINISH_DEADLINE)
        w->cnt.deadline++;
    else
        w->cnt.completed++;
    if (gs) {
        w->cnt.tokens_in += r->n_tokens;
        w->cnt.tokens_out += gs->n_generated;
        if (gs->decode_tps > 0) w->last_tps = gs->decode_tps;
    }
    pthread_mutex_unlock(&w->mu);
    atomic_fetch_sub(&w->in_flight, 1);
    worker_send(w, &m);
    log_event(LOG_INFO, r->job.request_id, "infer.end",
              "finish=%s prompt=%u generated=%u "
              "cached=%u ttft_ms=%.1f tps=%.1f",
              generate_finish_name(finish), e->prompt_tokens, e->generated_tokens, cached,
              e->ttft_ms, e->decode_tps);
}

void worker_job_drop(void *ctx, sched_job *job, sched_drop_why why) {
    worker *w = ctx;
    infer_req *r = job->user;
    send_end(w, r,
             why == SCHED_DROP_DEADLINE ? GENERATE_FINISH_DEADLINE : GENERATE_FINISH_CANCELLED,
             NULL, 0);
    turn_acquire(&w->eng_turn);
    engine_seq_free(r->evicted);
    if (r->sess) session_release(w, r->sess);
    turn_release(&w->eng_turn);
    req_free(r);
}

static bool on_chunk(void *user, const generate_chunk *c) {
    infer_req *r = user;
    worker *w = r->w;
    if (c->token >= 0) {
        if (!r->first_token_ns) r->first_token_ns = sched_now_ns();
        if (r->n_generated == r->cap_generated) {
            uint32_t cap = r->cap_generated ? r->cap_generated * 2 : 64;
            int32_t *g = realloc(r->generated, cap * sizeof *g);
            if (!g) return false;
            r->generated = g;
            r->cap_generated = cap;
        }
        r->generated[r->n_generated++] = c->token;
    }
    pmsg m;
    pmsg_init(&m, PMSG_TOKEN_CHUNK, r->job.request_id);
    m.u.chunk.index = c->index;
    m.u.chunk.tokens = c->token >= 0 ? &c->token : NULL;
    m.u.chunk.n_tokens = c->token >= 0 ? 1 : 0;
    m.u.chunk.text = c->text;
    m.u.chunk.text_len = c->text_len;
    if (r->greq.sampling.n_logprobs && c->sample && c->token >= 0) {
        m.u.chunk.logprobs = c->sample;
        m.u.chunk.n_logprobs = 1;
    }
    /* Between tokens: let other slots use the engine while this one sends. */
    turn_release(&w->eng_turn);
    worker_send(w, &m);
    turn_acquire(&w->eng_turn);
    return !atomic_load(&r->job.cancel);
}

static uint32_t common_prefix(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb) {
    uint32_t n = 0;
    while (n < na && n < nb && a[n] == b[n])
        n++;
    return n;
}

/* Points seq at the sequence to use and greq at the tokens still to feed. */
static ws_status prepare_seq(worker *w, infer_req *r, engine_seq **seq, uint32_t *cached,
                             ws_error *err) {
    loaded_model *lm = w->lm;
    session *s = r->sess;
    *cached = 0;
    if (s && s->seq) {
        uint32_t keep = common_prefix(s->history, s->n_history, r->tokens, r->n_tokens);
        uint32_t in_cache = engine_seq_len(s->seq);
        if (keep > in_cache) keep = in_cache;
        if (keep == r->n_tokens) keep--; /* feed at least one token to get logits */
        ws_status st = engine_seq_truncate(s->seq, keep, err);
        if (st != WS_OK) return st;
        *cached = keep;
        *seq = s->seq;
    } else {
        ws_status st = engine_seq_new(lm->eng, lm->n_ctx, seq, err);
        if (st != WS_OK) return st;
        if (s) s->seq = *seq;
    }
    r->greq.prompt = r->tokens + *cached;
    r->greq.n_prompt = r->n_tokens - *cached;
    return WS_OK;
}

/* Records what the session's cache now holds: the prompt and the generated tokens. */
static void session_store(worker *w, infer_req *r) {
    session *s = r->sess;
    uint32_t n = r->n_tokens + r->n_generated;
    pthread_mutex_lock(&w->mu);
    if (n > s->cap_history) {
        int32_t *h = realloc(s->history, n * sizeof *h);
        if (!h) {
            s->n_history = 0; /* nothing reusable is better than a wrong prefix */
            pthread_mutex_unlock(&w->mu);
            return;
        }
        s->history = h;
        s->cap_history = n;
    }
    memcpy(s->history, r->tokens, r->n_tokens * sizeof *r->tokens);
    if (r->n_generated)
        memcpy(s->history + r->n_tokens, r->generated, r->n_generated * sizeof *r->generated);
    s->n_history = n;
    pthread_mutex_unlock(&w->mu);
}

void worker_job_run(void *ctx, sched_job *job) {
    worker *w = ctx;
    infer_req *r = job->user;
    ws_error err = {{0}};
    generate_stats gs;
    memset(&gs, 0, sizeof gs);
    uint32_t cached = 0;
    r->started_ns = sched_now_ns();
    if (atomic_load(&job->cancel)) {
        worker_job_drop(w, job, SCHED_DROP_CANCELLED);
        return;
    }
    turn_acquire(&w->eng_turn);
    engine_seq_free(r->evicted);
    r->evicted = NULL;
    engine_seq *seq = NULL;
    ws_status st = prepare_seq(w, r, &seq, &cached, &err);
    if (st == WS_OK) st = generate_run(seq, w->lm->tok, &r->greq, on_chunk, r, &gs, &err);
    if (r->sess) {
        if (st == WS_OK)
            session_store(w, r);
        else if (seq)
            engine_seq_truncate(seq, 0, NULL), r->sess->n_history = 0;
    } else {
        engine_seq_free(seq);
    }
    if (r->sess) session_release(w, r->sess);
    worker_refresh_memory(w);
    turn_release(&w->eng_turn);
    if (st == WS_ERR_DEVICE_FATAL) atomic_store(&w->fatal, true);
    if (st != WS_OK) {
        pthread_mutex_lock(&w->mu);
        w->cnt.failed++;
        pthread_mutex_unlock(&w->mu);
        atomic_fetch_sub(&w->in_flight, 1);
        worker_send_error(w, job->request_id, st, "", err.msg);
    } else {
        send_end(w, r, gs.finish, &gs, cached);
    }
    req_free(r);
}
