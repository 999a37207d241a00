/* protocol_encode.c: plain structs -> protobuf-c Envelope -> bytes. Stack-built messages borrow
 * the caller's strings and arrays; nothing here outlives pmsg_encode. */
#include <stdlib.h>
#include <string.h>

#include "service/protocol.h"
#include "worker.pb-c.h"

#define SET(msg, field, val) ((msg).has_##field = 1, (msg).field = (val))

static char *str(const char *s) {
    return s ? (char *)s : NULL;
}

static ProtobufCBinaryData bin(const char *s, size_t n) {
    ProtobufCBinaryData b = {n, (uint8_t *)s};
    return b;
}

static void mem_to(Orcd__Memory *d, const pmem *s) {
    orcd__memory__init(d);
    SET(*d, weights, s->weights);
    SET(*d, kv_cache, s->kv_cache);
    SET(*d, scratch, s->scratch);
    SET(*d, device_total, s->device_total);
    SET(*d, device_free, s->device_free);
}

typedef struct {
    Orcd__Status st;
    Orcd__Memory mem;
    Orcd__Counters cnt;
} status_parts;

static void status_to(status_parts *p, const pstatus *s) {
    orcd__status__init(&p->st);
    orcd__counters__init(&p->cnt);
    mem_to(&p->mem, &s->memory);
    SET(p->st, state, (Orcd__WorkerState)s->state);
    p->st.reason = str(s->reason);
    p->st.model_path = str(s->model_path);
    p->st.memory = &p->mem;
    SET(p->st, running, s->running);
    SET(p->st, queued, s->queued);
    SET(p->st, sessions, s->sessions);
    SET(p->st, uptime_ms, s->uptime_ms);
    SET(p->st, decode_tps, s->decode_tps);
    const pcounters *k = &s->counters;
    SET(p->cnt, requests, k->requests);
    SET(p->cnt, completed, k->completed);
    SET(p->cnt, failed, k->failed);
    SET(p->cnt, cancelled, k->cancelled);
    SET(p->cnt, rejected, k->rejected);
    SET(p->cnt, deadline, k->deadline);
    SET(p->cnt, tokens_in, k->tokens_in);
    SET(p->cnt, tokens_out, k->tokens_out);
    SET(p->cnt, bad_messages, k->bad_messages);
    p->st.counters = &p->cnt;
}

static Orcd__FinishReason finish_to(generate_finish f) {
    switch (f) {
    case GENERATE_FINISH_STOP:
        return ORCD__FINISH_REASON__FINISH_STOP;
    case GENERATE_FINISH_LENGTH:
        return ORCD__FINISH_REASON__FINISH_LENGTH;
    case GENERATE_FINISH_STOP_STRING:
        return ORCD__FINISH_REASON__FINISH_STOP_STRING;
    case GENERATE_FINISH_CANCELLED:
        return ORCD__FINISH_REASON__FINISH_CANCELLED;
    case GENERATE_FINISH_DEADLINE:
        return ORCD__FINISH_REASON__FINISH_DEADLINE;
    default:
        return ORCD__FINISH_REASON__FINISH_UNSPECIFIED;
    }
}

static void reg_to(Orcd__Register *r, const preg *s) {
    orcd__register__init(r);
    r->worker_id = str(s->worker_id);
    r->build = str(s->build);
    r->backend = str(s->backend);
    r->gpu_name = str(s->gpu_name);
    r->gpu_uuid = str(s->gpu_uuid);
    r->model_path = str(s->model_path);
    SET(*r, protocol_version, s->protocol_version);
    SET(*r, vram_total, s->vram_total);
    SET(*r, vram_free, s->vram_free);
    SET(*r, max_msg_bytes, s->max_msg_bytes);
    SET(*r, slots, s->slots);
    SET(*r, queue, s->queue);
    SET(*r, pid, s->pid);
    SET(*r, state, (Orcd__WorkerState)s->state);
}

/* Builds the Infer body; arrays live in the caller-provided storage. */
typedef struct {
    Orcd__Infer in;
    Orcd__Sampling sp;
    Orcd__ChatMessage *msgs;
    Orcd__ChatMessage **msg_ptrs;
    ProtobufCBinaryData stop[GENERATE_MAX_STOP];
} infer_parts;

static ws_status infer_to(infer_parts *p, const pinfer *s, ws_error *err) {
    orcd__infer__init(&p->in);
    orcd__sampling__init(&p->sp);
    if (s->prompt) SET(p->in, prompt, bin(s->prompt, strlen(s->prompt)));
    if (s->n_messages) {
        p->msgs = calloc(s->n_messages, sizeof *p->msgs);
        p->msg_ptrs = calloc(s->n_messages, sizeof *p->msg_ptrs);
        if (!p->msgs || !p->msg_ptrs) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
        for (uint32_t i = 0; i < s->n_messages; i++) {
            orcd__chat_message__init(&p->msgs[i]);
            const char *role = s->messages[i].role ? s->messages[i].role : "";
            const char *content = s->messages[i].content ? s->messages[i].content : "";
            SET(p->msgs[i], role, bin(role, strlen(role)));
            SET(p->msgs[i], content, bin(content, strlen(content)));
            p->msg_ptrs[i] = &p->msgs[i];
        }
        p->in.n_messages = s->n_messages;
        p->in.messages = p->msg_ptrs;
    }
    p->in.n_token_ids = s->n_token_ids;
    p->in.token_ids = (int32_t *)s->token_ids;
    const sampler_params *sp = &s->sampling;
    SET(p->sp, temperature, sp->temperature);
    SET(p->sp, top_k, sp->top_k);
    SET(p->sp, top_p, sp->top_p);
    SET(p->sp, min_p, sp->min_p);
    SET(p->sp, repetition_penalty, sp->repetition_penalty);
    SET(p->sp, presence_penalty, sp->presence_penalty);
    SET(p->sp, frequency_penalty, sp->frequency_penalty);
    SET(p->sp, penalty_last_n, sp->penalty_last_n);
    p->in.sampling = &p->sp;
    SET(p->in, seed, sp->seed);
    SET(p->in, logprobs, sp->n_logprobs);
    if (s->n_stop > GENERATE_MAX_STOP)
        return ws_fail(err, WS_ERR_INVALID_ARG, "infer.stop: %u strings > %d", s->n_stop,
                       GENERATE_MAX_STOP);
    for (uint32_t i = 0; i < s->n_stop; i++)
        p->stop[i] = bin(s->stop[i], strlen(s->stop[i]));
    p->in.n_stop = s->n_stop;
    p->in.stop = p->stop;
    SET(p->in, max_tokens, s->max_tokens);
    if (s->timeout_ms) SET(p->in, timeout_ms, s->timeout_ms);
    if (s->session_id) SET(p->in, session_id, bin(s->session_id, strlen(s->session_id)));
    if (s->ignore_eos) SET(p->in, ignore_eos, 1);
    if (s->show_special) SET(p->in, show_special, 1);
    if (s->parse_special) SET(p->in, parse_special, 1);
    return WS_OK;
}

typedef struct {
    Orcd__TokenChunk ch;
    Orcd__TokenLogprob *lp;
    Orcd__TokenLogprob **lp_ptrs;
} chunk_parts;

static ws_status chunk_to(chunk_parts *p, const ptoken_chunk *s, ws_error *err) {
    orcd__token_chunk__init(&p->ch);
    SET(p->ch, index, s->index);
    p->ch.n_token_ids = s->n_tokens;
    p->ch.token_ids = (int32_t *)s->tokens;
    SET(p->ch, text, bin(s->text, s->text_len));
    if (s->n_logprobs) {
        p->lp = calloc(s->n_logprobs, sizeof *p->lp);
        p->lp_ptrs = calloc(s->n_logprobs, sizeof *p->lp_ptrs);
        if (!p->lp || !p->lp_ptrs) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
        for (uint32_t i = 0; i < s->n_logprobs; i++) {
            const sampler_result *r = &s->logprobs[i];
            orcd__token_logprob__init(&p->lp[i]);
            SET(p->lp[i], token, r->token);
            SET(p->lp[i], logprob, r->logprob);
            uint32_t n = r->n_top < SAMPLER_MAX_LOGPROBS ? r->n_top : SAMPLER_MAX_LOGPROBS;
            p->lp[i].n_top_tokens = n;
            p->lp[i].top_tokens = (int32_t *)r->top_tokens;
            p->lp[i].n_top_logprobs = n;
            p->lp[i].top_logprobs = (float *)r->top_logprobs;
            p->lp_ptrs[i] = &p->lp[i];
        }
        p->ch.n_logprobs = s->n_logprobs;
        p->ch.logprobs = p->lp_ptrs;
    }
    return WS_OK;
}

typedef struct {
    Orcd__LoadResult lr;
    Orcd__Memory mem;
    Orcd__BlockCount bc[PROTO_MAX_CENSUS];
    Orcd__BlockCount *bcp[PROTO_MAX_CENSUS];
} result_parts;

static ws_status result_to(result_parts *p, const pload_result *s, ws_error *err) {
    orcd__load_result__init(&p->lr);
    if (s->n_census > PROTO_MAX_CENSUS)
        return ws_fail(err, WS_ERR_INVALID_ARG, "load_result.census: %u rows > %d", s->n_census,
                       PROTO_MAX_CENSUS);
    p->lr.model_path = str(s->model_path);
    p->lr.architecture = str(s->architecture);
    p->lr.backend = str(s->backend);
    SET(p->lr, n_params, s->n_params);
    SET(p->lr, file_bytes, s->file_bytes);
    SET(p->lr, n_layer, s->n_layer);
    SET(p->lr, n_embd, s->n_embd);
    SET(p->lr, n_head, s->n_head);
    SET(p->lr, n_head_kv, s->n_head_kv);
    SET(p->lr, n_vocab, s->n_vocab);
    SET(p->lr, n_ctx_train, s->n_ctx_train);
    SET(p->lr, n_ctx, s->n_ctx);
    SET(p->lr, load_ms, s->load_ms);
    mem_to(&p->mem, &s->memory);
    p->lr.memory = &p->mem;
    for (uint32_t i = 0; i < s->n_census; i++) {
        orcd__block_count__init(&p->bc[i]);
        p->bc[i].type = str(s->census[i].type);
        SET(p->bc[i], tensors, s->census[i].tensors);
        p->bcp[i] = &p->bc[i];
    }
    p->lr.n_census = s->n_census;
    p->lr.census = p->bcp;
    return WS_OK;
}

ws_status pmsg_encode(const pmsg *m, uint8_t **buf, size_t *len, ws_error *err) {
    Orcd__Envelope e;
    orcd__envelope__init(&e);
    SET(e, protocol_version, m->protocol_version);
    SET(e, request_id, m->request_id);
    /* Every body kind in one place: only the one in use is initialised and linked. */
    Orcd__Register reg;
    Orcd__RegisterAck ack;
    Orcd__Load load;
    Orcd__LoadProgress prog;
    result_parts res;
    Orcd__Unload unload;
    infer_parts inf = {0};
    chunk_parts chunk = {0};
    Orcd__StreamEnd end;
    Orcd__Cancel cancel;
    Orcd__Reset reset;
    Orcd__HealthQuery hq;
    status_parts status;
    Orcd__Heartbeat hb;
    Orcd__Drain drain;
    Orcd__Shutdown shut;
    Orcd__Ack okm;
    Orcd__Error er;
    ws_status st = WS_OK;
    switch (m->kind) {
    case PMSG_REGISTER:
        reg_to(&reg, &m->u.reg);
        e.body_case = ORCD__ENVELOPE__BODY_REGISTER, e.register_ = &reg;
        break;
    case PMSG_REGISTER_ACK:
        orcd__register_ack__init(&ack);
        SET(ack, heartbeat_ms, m->u.reg_ack.heartbeat_ms);
        ack.session = str(m->u.reg_ack.session);
        e.body_case = ORCD__ENVELOPE__BODY_REGISTER_ACK, e.register_ack = &ack;
        break;
    case PMSG_LOAD: {
        orcd__load__init(&load);
        const char *path = m->u.load.model_path ? m->u.load.model_path : "";
        SET(load, model_path, bin(path, strlen(path)));
        SET(load, n_ctx, m->u.load.n_ctx);
        SET(load, n_sessions, m->u.load.n_sessions);
        SET(load, n_threads, m->u.load.n_threads);
        e.body_case = ORCD__ENVELOPE__BODY_LOAD, e.load = &load;
        break;
    }
    case PMSG_LOAD_PROGRESS:
        orcd__load_progress__init(&prog);
        prog.stage = str(m->u.progress.stage);
        SET(prog, fraction, m->u.progress.fraction);
        e.body_case = ORCD__ENVELOPE__BODY_LOAD_PROGRESS, e.load_progress = &prog;
        break;
    case PMSG_LOAD_RESULT:
        st = result_to(&res, &m->u.load_result, err);
        e.body_case = ORCD__ENVELOPE__BODY_LOAD_RESULT, e.load_result = &res.lr;
        break;
    case PMSG_UNLOAD:
        orcd__unload__init(&unload);
        e.body_case = ORCD__ENVELOPE__BODY_UNLOAD, e.unload = &unload;
        break;
    case PMSG_INFER:
        st = infer_to(&inf, &m->u.infer, err);
        e.body_case = ORCD__ENVELOPE__BODY_INFER, e.infer = &inf.in;
        break;
    case PMSG_TOKEN_CHUNK:
        st = chunk_to(&chunk, &m->u.chunk, err);
        e.body_case = ORCD__ENVELOPE__BODY_TOKEN_CHUNK, e.token_chunk = &chunk.ch;
        break;
    case PMSG_STREAM_END: {
        const pstream_end *s = &m->u.end;
        orcd__stream_end__init(&end);
        SET(end, finish, finish_to(s->finish));
        SET(end, prompt_tokens, s->prompt_tokens);
        SET(end, generated_tokens, s->generated_tokens);
        SET(end, cached_tokens, s->cached_tokens);
        SET(end, ttft_ms, s->ttft_ms);
        SET(end, queue_ms, s->queue_ms);
        SET(end, decode_tps, s->decode_tps);
        SET(end, total_ms, s->total_ms);
        e.body_case = ORCD__ENVELOPE__BODY_STREAM_END, e.stream_end = &end;
        break;
    }
    case PMSG_CANCEL:
        orcd__cancel__init(&cancel);
        SET(cancel, target_request_id, m->u.cancel_target);
        e.body_case = ORCD__ENVELOPE__BODY_CANCEL, e.cancel = &cancel;
        break;
    case PMSG_RESET:
        orcd__reset__init(&reset);
        if (m->u.reset.session_id)
            SET(reset, session_id, bin(m->u.reset.session_id, strlen(m->u.reset.session_id)));
        if (m->u.reset.all) SET(reset, all, 1);
        e.body_case = ORCD__ENVELOPE__BODY_RESET, e.reset = &reset;
        break;
    case PMSG_HEALTH_QUERY:
        orcd__health_query__init(&hq);
        e.body_case = ORCD__ENVELOPE__BODY_HEALTH_QUERY, e.health_query = &hq;
        break;
    case PMSG_STATUS:
        status_to(&status, &m->u.status);
        e.body_case = ORCD__ENVELOPE__BODY_STATUS, e.status = &status.st;
        break;
    case PMSG_HEARTBEAT:
        orcd__heartbeat__init(&hb);
        status_to(&status, &m->u.heartbeat.status);
        SET(hb, seq, m->u.heartbeat.seq);
        hb.status = &status.st;
        e.body_case = ORCD__ENVELOPE__BODY_HEARTBEAT, e.heartbeat = &hb;
        break;
    case PMSG_DRAIN:
        orcd__drain__init(&drain);
        SET(drain, timeout_ms, m->u.drain_timeout_ms);
        e.body_case = ORCD__ENVELOPE__BODY_DRAIN, e.drain = &drain;
        break;
    case PMSG_SHUTDOWN:
        orcd__shutdown__init(&shut);
        e.body_case = ORCD__ENVELOPE__BODY_SHUTDOWN, e.shutdown = &shut;
        break;
    case PMSG_ACK:
        orcd__ack__init(&okm);
        SET(okm, found, m->u.ack_found);
        e.body_case = ORCD__ENVELOPE__BODY_ACK, e.ack = &okm;
        break;
    case PMSG_ERROR:
        orcd__error__init(&er);
        SET(er, code, (Orcd__ErrorCode)m->u.error.code);
        er.message = str(m->u.error.message);
        er.field = str(m->u.error.field);
        SET(er, retriable, m->u.error.retriable);
        e.body_case = ORCD__ENVELOPE__BODY_ERROR, e.error = &er;
        break;
    case PMSG_NONE:
        break; /* an envelope without a body: used by tests of the decoder */
    default:
        st = ws_fail(err, WS_ERR_INVALID_ARG, "message kind %d unknown", (int)m->kind);
    }
    if (st == WS_OK) {
        size_t n = orcd__envelope__get_packed_size(&e);
        *buf = malloc(n ? n : 1);
        if (!*buf)
            st = ws_fail(err, WS_ERR_NOMEM, "out of memory packing %zu bytes", n);
        else
            *len = orcd__envelope__pack(&e, *buf);
    }
    free(inf.msgs);
    free(inf.msg_ptrs);
    free(chunk.lp);
    free(chunk.lp_ptrs);
    return st;
}
