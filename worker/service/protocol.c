/* protocol.c: decoding and validating envelopes (protobuf-c -> plain structs), shared helpers.
 * Encoding lives in protocol_encode.c; these two are the only files that know protobuf-c. */
#include "service/protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker.pb-c.h"

struct pmsg_alloc {
    struct pmsg_alloc *next;
    max_align_t align[];
};

void pmsg_init(pmsg *m, pmsg_kind kind, uint64_t request_id) {
    memset(m, 0, sizeof *m);
    m->protocol_version = PROTOCOL_VERSION;
    m->request_id = request_id;
    m->kind = kind;
}

void pmsg_free(pmsg *m) {
    if (!m) return;
    struct pmsg_alloc *a = m->allocs;
    while (a) {
        struct pmsg_alloc *next = a->next;
        free(a);
        a = next;
    }
    m->allocs = NULL;
}

static void *msg_alloc(pmsg *m, size_t n) {
    struct pmsg_alloc *a = calloc(1, sizeof *a + n + 1);
    if (!a) return NULL;
    a->next = m->allocs;
    m->allocs = a;
    return a->align;
}

const char *pmsg_kind_name(pmsg_kind k) {
    static const char *names[PMSG_KIND_COUNT] = {
        "none",        "register", "register_ack", "load",        "load_progress",
        "load_result", "unload",   "infer",        "token_chunk", "stream_end",
        "cancel",      "reset",    "health_query", "status",      "heartbeat",
        "drain",       "shutdown", "ack",          "error"};
    return (unsigned)k < PMSG_KIND_COUNT ? names[k] : "unknown";
}

const char *pstate_name(pstate s) {
    switch (s) {
    case PSTATE_STARTING:
        return "starting";
    case PSTATE_IDLE:
        return "idle";
    case PSTATE_LOADING:
        return "loading";
    case PSTATE_READY:
        return "ready";
    case PSTATE_DRAINING:
        return "draining";
    case PSTATE_FAILED:
        return "failed";
    }
    return "unknown";
}

bool pstatus_retriable(ws_status code) {
    return code == WS_ERR_OVERLOADED || code == WS_ERR_STATE || code == WS_ERR_TIMEOUT ||
           code == WS_ERR_DEVICE;
}

/* ---- unpacking under a byte budget ---- */

typedef struct {
    size_t used, cap;
} budget;

typedef struct {
    size_t size;
    max_align_t align[];
} budget_hdr;

static void *budget_alloc(void *data, size_t n) {
    budget *b = data;
    if (n > b->cap - b->used) return NULL;
    budget_hdr *h = malloc(sizeof *h + n);
    if (!h) return NULL;
    h->size = n;
    b->used += n;
    return h->align;
}

static void budget_free(void *data, void *p) {
    if (!p) return;
    budget *b = data;
    budget_hdr *h = (budget_hdr *)((char *)p - offsetof(budget_hdr, align));
    b->used -= h->size;
    free(h);
}

/* ---- field checks ---- */

typedef struct {
    pmsg *m;
    char *field;
    ws_error *err;
} dctx;

static ws_status bad(dctx *c, const char *field, const char *fmt, const char *detail) {
    if (c->field) snprintf(c->field, PROTO_MAX_FIELD, "%s", field);
    return ws_fail(c->err, WS_ERR_PROTOCOL, fmt, field, detail);
}

/* Offset of the first byte that breaks UTF-8 (or is NUL), or -1 when s is clean. */
static long utf8_bad_offset(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0) return (long)i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0)
            k = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            k = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            k = 3, cp = c & 0x07, min = 0x10000;
        else
            return (long)i;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
        i += k + 1;
    }
    return -1;
}

/* Copies text bytes into the message as a NUL-terminated string after checking them. */
static ws_status take_text(dctx *c, const char *field, const uint8_t *data, size_t len,
                           const char **out) {
    long off = utf8_bad_offset(data, len);
    if (off >= 0) {
        char where[32];
        snprintf(where, sizeof where, "%ld", off);
        return bad(c, field, "field '%s': invalid UTF-8 or NUL at byte %s", where);
    }
    char *s = msg_alloc(c->m, len);
    if (!s) return ws_fail(c->err, WS_ERR_NOMEM, "out of memory copying '%s'", field);
    if (len) memcpy(s, data, len);
    s[len] = 0;
    *out = s;
    return WS_OK;
}

static ws_status take_str(dctx *c, const char *field, const char *s, const char **out) {
    if (!s) {
        *out = "";
        return WS_OK;
    }
    return take_text(c, field, (const uint8_t *)s, strlen(s), out);
}

/* ---- bodies ---- */

static void mem_from(pmem *d, const Orcd__Memory *s) {
    if (!s) return;
    d->weights = s->weights;
    d->kv_cache = s->kv_cache;
    d->scratch = s->scratch;
    d->device_total = s->device_total;
    d->device_free = s->device_free;
}

static ws_status status_from(dctx *c, pstatus *d, const Orcd__Status *s) {
    if (!s) return bad(c, "status", "field '%s' missing%s", "");
    d->state = (pstate)s->state;
    ws_status st = take_str(c, "status.reason", s->reason, &d->reason);
    if (st == WS_OK) st = take_str(c, "status.model_path", s->model_path, &d->model_path);
    mem_from(&d->memory, s->memory);
    d->running = s->running;
    d->queued = s->queued;
    d->sessions = s->sessions;
    d->uptime_ms = s->uptime_ms;
    d->decode_tps = s->decode_tps;
    const Orcd__Counters *k = s->counters;
    if (k) {
        pcounters *o = &d->counters;
        o->requests = k->requests, o->completed = k->completed, o->failed = k->failed;
        o->cancelled = k->cancelled, o->rejected = k->rejected, o->deadline = k->deadline;
        o->tokens_in = k->tokens_in, o->tokens_out = k->tokens_out;
        o->bad_messages = k->bad_messages;
    }
    return st;
}

static ws_status sampling_from(dctx *c, sampler_params *p, const Orcd__Infer *in) {
    sampler_params_default(p);
    const Orcd__Sampling *s = in->sampling;
    if (s) {
        if (s->has_temperature) p->temperature = s->temperature;
        if (s->has_top_k) p->top_k = s->top_k;
        if (s->has_top_p) p->top_p = s->top_p;
        if (s->has_min_p) p->min_p = s->min_p;
        if (s->has_repetition_penalty) p->repetition_penalty = s->repetition_penalty;
        if (s->has_presence_penalty) p->presence_penalty = s->presence_penalty;
        if (s->has_frequency_penalty) p->frequency_penalty = s->frequency_penalty;
        if (s->has_penalty_last_n) p->penalty_last_n = s->penalty_last_n;
    }
    if (in->has_seed) p->seed = in->seed;
    if (in->has_logprobs) {
        if (in->logprobs > SAMPLER_MAX_LOGPROBS)
            return bad(c, "infer.logprobs", "field '%s': more than %s alternatives",
                       "20" /* SAMPLER_MAX_LOGPROBS */);
        p->n_logprobs = in->logprobs;
    }
    return WS_OK;
}

static ws_status infer_from(dctx *c, pinfer *d, const Orcd__Infer *in) {
    ws_status st = sampling_from(c, &d->sampling, in);
    if (st != WS_OK) return st;
    int forms = (in->has_prompt ? 1 : 0) + (in->n_messages ? 1 : 0) + (in->n_token_ids ? 1 : 0);
    if (forms != 1)
        return bad(c, "infer.prompt",
                   "field '%s': exactly one of prompt, messages or token_ids "
                   "must be set%s",
                   "");
    if (in->has_prompt) {
        if (in->prompt.len == 0) return bad(c, "infer.prompt", "field '%s' is empty%s", "");
        st = take_text(c, "infer.prompt", in->prompt.data, in->prompt.len, &d->prompt);
        if (st != WS_OK) return st;
    }
    if (in->n_messages > PROTO_MAX_MESSAGES)
        return bad(c, "infer.messages", "field '%s': more than %s messages", "256");
    if (in->n_messages) {
        chat_message *msgs = msg_alloc(c->m, in->n_messages * sizeof *msgs);
        if (!msgs) return ws_fail(c->err, WS_ERR_NOMEM, "out of memory for messages");
        for (size_t i = 0; i < in->n_messages; i++) {
            const Orcd__ChatMessage *cm = in->messages[i];
            if (!cm->has_role || cm->role.len == 0)
                return bad(c, "infer.messages.role", "field '%s' missing%s", "");
            st = take_text(c, "infer.messages.role", cm->role.data, cm->role.len, &msgs[i].role);
            if (st == WS_OK)
                st = take_text(c, "infer.messages.content", cm->content.data, cm->content.len,
                               &msgs[i].content);
            if (st != WS_OK) return st;
        }
        d->messages = msgs;
        d->n_messages = (uint32_t)in->n_messages;
    }
    if (in->n_token_ids) {
        int32_t *ids = msg_alloc(c->m, in->n_token_ids * sizeof *ids);
        if (!ids) return ws_fail(c->err, WS_ERR_NOMEM, "out of memory for token_ids");
        memcpy(ids, in->token_ids, in->n_token_ids * sizeof *ids);
        d->token_ids = ids;
        d->n_token_ids = (uint32_t)in->n_token_ids;
    }
    if (in->n_stop > GENERATE_MAX_STOP)
        return bad(c, "infer.stop", "field '%s': more than %s stop strings", "8");
    for (size_t i = 0; i < in->n_stop; i++) {
        if (in->stop[i].len == 0)
            return bad(c, "infer.stop", "field '%s': empty stop string%s", "");
        st = take_text(c, "infer.stop", in->stop[i].data, in->stop[i].len, &d->stop[i]);
        if (st != WS_OK) return st;
    }
    d->n_stop = (uint32_t)in->n_stop;
    if (!in->has_max_tokens || in->max_tokens == 0)
        return bad(c, "infer.max_tokens", "field '%s' must be at least 1%s", "");
    d->max_tokens = in->max_tokens;
    d->timeout_ms = in->has_timeout_ms ? in->timeout_ms : 0;
    if (in->has_session_id) {
        if (in->session_id.len == 0 || in->session_id.len > 128)
            return bad(c, "infer.session_id", "field '%s' must be 1..128 bytes%s", "");
        st = take_text(c, "infer.session_id", in->session_id.data, in->session_id.len,
                       &d->session_id);
        if (st != WS_OK) return st;
    }
    d->ignore_eos = in->has_ignore_eos && in->ignore_eos;
    d->show_special = in->has_show_special && in->show_special;
    d->parse_special = in->has_parse_special && in->parse_special;
    return WS_OK;
}

static ws_status chunk_from(dctx *c, ptoken_chunk *d, const Orcd__TokenChunk *s) {
    d->index = s->index;
    d->n_tokens = (uint32_t)s->n_token_ids;
    int32_t *ids = msg_alloc(c->m, s->n_token_ids * sizeof *ids);
    char *text = msg_alloc(c->m, s->text.len);
    if (!ids || !text) return ws_fail(c->err, WS_ERR_NOMEM, "out of memory for a token chunk");
    if (s->n_token_ids) memcpy(ids, s->token_ids, s->n_token_ids * sizeof *ids);
    if (s->text.len) memcpy(text, s->text.data, s->text.len);
    d->tokens = ids;
    d->text = text;
    d->text_len = (uint32_t)s->text.len;
    if (s->n_logprobs) {
        sampler_result *r = msg_alloc(c->m, s->n_logprobs * sizeof *r);
        if (!r) return ws_fail(c->err, WS_ERR_NOMEM, "out of memory for logprobs");
        for (size_t i = 0; i < s->n_logprobs; i++) {
            const Orcd__TokenLogprob *l = s->logprobs[i];
            r[i].token = l->token;
            r[i].logprob = l->logprob;
            size_t n = l->n_top_tokens < l->n_top_logprobs ? l->n_top_tokens : l->n_top_logprobs;
            if (n > SAMPLER_MAX_LOGPROBS)
                return bad(c, "token_chunk.logprobs", "field '%s': more than %s alternatives",
                           "20");
            r[i].n_top = (uint32_t)n;
            for (size_t j = 0; j < n; j++) {
                r[i].top_tokens[j] = l->top_tokens[j];
                r[i].top_logprobs[j] = l->top_logprobs[j];
            }
        }
        d->logprobs = r;
        d->n_logprobs = (uint32_t)s->n_logprobs;
    }
    return WS_OK;
}

static ws_status load_result_from(dctx *c, pload_result *d, const Orcd__LoadResult *s) {
    ws_status st = take_str(c, "load_result.model_path", s->model_path, &d->model_path);
    if (st == WS_OK)
        st = take_str(c, "load_result.architecture", s->architecture, &d->architecture);
    if (st == WS_OK) st = take_str(c, "load_result.backend", s->backend, &d->backend);
    if (st != WS_OK) return st;
    d->n_params = s->n_params, d->file_bytes = s->file_bytes;
    d->n_layer = s->n_layer, d->n_embd = s->n_embd, d->n_head = s->n_head;
    d->n_head_kv = s->n_head_kv, d->n_vocab = s->n_vocab, d->n_ctx_train = s->n_ctx_train;
    d->n_ctx = s->n_ctx;
    d->load_ms = s->load_ms;
    mem_from(&d->memory, s->memory);
    if (s->n_census > PROTO_MAX_CENSUS)
        return bad(c, "load_result.census", "field '%s': more than %s rows", "16");
    for (size_t i = 0; i < s->n_census; i++) {
        st = take_str(c, "load_result.census", s->census[i]->type, &d->census[i].type);
        if (st != WS_OK) return st;
        d->census[i].tensors = s->census[i]->tensors;
    }
    d->n_census = (uint32_t)s->n_census;
    return WS_OK;
}

static ws_status body_from(dctx *c, const Orcd__Envelope *e) {
    pmsg *m = c->m;
    ws_status st = WS_OK;
    switch (e->body_case) {
    case ORCD__ENVELOPE__BODY_REGISTER: {
        const Orcd__Register *r = e->register_;
        preg *d = &m->u.reg;
        m->kind = PMSG_REGISTER;
        st = take_str(c, "register.worker_id", r->worker_id, &d->worker_id);
        if (st == WS_OK) st = take_str(c, "register.build", r->build, &d->build);
        if (st == WS_OK) st = take_str(c, "register.backend", r->backend, &d->backend);
        if (st == WS_OK) st = take_str(c, "register.gpu_name", r->gpu_name, &d->gpu_name);
        if (st == WS_OK) st = take_str(c, "register.gpu_uuid", r->gpu_uuid, &d->gpu_uuid);
        if (st == WS_OK) st = take_str(c, "register.model_path", r->model_path, &d->model_path);
        d->protocol_version = r->protocol_version;
        d->vram_total = r->vram_total, d->vram_free = r->vram_free;
        d->max_msg_bytes = r->max_msg_bytes;
        d->slots = r->slots, d->queue = r->queue, d->pid = r->pid;
        d->state = (pstate)r->state;
        return st;
    }
    case ORCD__ENVELOPE__BODY_REGISTER_ACK:
        m->kind = PMSG_REGISTER_ACK;
        m->u.reg_ack.heartbeat_ms = e->register_ack->heartbeat_ms;
        return take_str(c, "register_ack.session", e->register_ack->session, &m->u.reg_ack.session);
    case ORCD__ENVELOPE__BODY_LOAD: {
        const Orcd__Load *l = e->load;
        m->kind = PMSG_LOAD;
        if (!l->has_model_path || l->model_path.len == 0)
            return bad(c, "load.model_path", "field '%s' missing%s", "");
        if (l->model_path.len > 4096)
            return bad(c, "load.model_path", "field '%s' longer than %s bytes", "4096");
        m->u.load.n_ctx = l->n_ctx;
        m->u.load.n_sessions = l->n_sessions;
        m->u.load.n_threads = l->n_threads;
        return take_text(c, "load.model_path", l->model_path.data, l->model_path.len,
                         &m->u.load.model_path);
    }
    case ORCD__ENVELOPE__BODY_LOAD_PROGRESS:
        m->kind = PMSG_LOAD_PROGRESS;
        m->u.progress.fraction = e->load_progress->fraction;
        return take_str(c, "load_progress.stage", e->load_progress->stage, &m->u.progress.stage);
    case ORCD__ENVELOPE__BODY_LOAD_RESULT:
        m->kind = PMSG_LOAD_RESULT;
        return load_result_from(c, &m->u.load_result, e->load_result);
    case ORCD__ENVELOPE__BODY_UNLOAD:
        m->kind = PMSG_UNLOAD;
        return WS_OK;
    case ORCD__ENVELOPE__BODY_INFER:
        m->kind = PMSG_INFER;
        return infer_from(c, &m->u.infer, e->infer);
    case ORCD__ENVELOPE__BODY_TOKEN_CHUNK:
        m->kind = PMSG_TOKEN_CHUNK;
        return chunk_from(c, &m->u.chunk, e->token_chunk);
    case ORCD__ENVELOPE__BODY_STREAM_END: {
        const Orcd__StreamEnd *s = e->stream_end;
        pstream_end *d = &m->u.end;
        m->kind = PMSG_STREAM_END;
        switch (s->finish) {
        case ORCD__FINISH_REASON__FINISH_STOP:
            d->finish = GENERATE_FINISH_STOP;
            break;
        case ORCD__FINISH_REASON__FINISH_LENGTH:
            d->finish = GENERATE_FINISH_LENGTH;
            break;
        case ORCD__FINISH_REASON__FINISH_STOP_STRING:
            d->finish = GENERATE_FINISH_STOP_STRING;
            break;
        case ORCD__FINISH_REASON__FINISH_CANCELLED:
            d->finish = GENERATE_FINISH_CANCELLED;
            break;
        case ORCD__FINISH_REASON__FINISH_DEADLINE:
            d->finish = GENERATE_FINISH_DEADLINE;
            break;
        default:
            return bad(c, "stream_end.finish", "field '%s' missing or unknown%s", "");
        }
        d->prompt_tokens = s->prompt_tokens, d->generated_tokens = s->generated_tokens;
        d->cached_tokens = s->cached_tokens;
        d->ttft_ms = s->ttft_ms, d->queue_ms = s->queue_ms, d->decode_tps = s->decode_tps;
        d->total_ms = s->total_ms;
        return WS_OK;
    }
    case ORCD__ENVELOPE__BODY_CANCEL:
        m->kind = PMSG_CANCEL;
        if (!e->cancel->has_target_request_id)
            return bad(c, "cancel.target_request_id", "field '%s' missing%s", "");
        m->u.cancel_target = e->cancel->target_request_id;
        return WS_OK;
    case ORCD__ENVELOPE__BODY_RESET: {
        const Orcd__Reset *r = e->reset;
        m->kind = PMSG_RESET;
        m->u.reset.all = r->has_all && r->all;
        bool has_id = r->has_session_id && r->session_id.len > 0;
        if (m->u.reset.all == has_id)
            return bad(c, "reset.session_id", "field '%s': give a session id or all, not both%s",
                       "");
        if (has_id)
            return take_text(c, "reset.session_id", r->session_id.data, r->session_id.len,
                             &m->u.reset.session_id);
        return WS_OK;
    }
    case ORCD__ENVELOPE__BODY_HEALTH_QUERY:
        m->kind = PMSG_HEALTH_QUERY;
        return WS_OK;
    case ORCD__ENVELOPE__BODY_STATUS:
        m->kind = PMSG_STATUS;
        return status_from(c, &m->u.status, e->status);
    case ORCD__ENVELOPE__BODY_HEARTBEAT:
        m->kind = PMSG_HEARTBEAT;
        m->u.heartbeat.seq = e->heartbeat->seq;
        return status_from(c, &m->u.heartbeat.status, e->heartbeat->status);
    case ORCD__ENVELOPE__BODY_DRAIN:
        m->kind = PMSG_DRAIN;
        m->u.drain_timeout_ms = e->drain->timeout_ms;
        return WS_OK;
    case ORCD__ENVELOPE__BODY_SHUTDOWN:
        m->kind = PMSG_SHUTDOWN;
        return WS_OK;
    case ORCD__ENVELOPE__BODY_ACK:
        m->kind = PMSG_ACK;
        m->u.ack_found = e->ack->has_found && e->ack->found;
        return WS_OK;
    case ORCD__ENVELOPE__BODY_ERROR: {
        const Orcd__Error *r = e->error;
        m->kind = PMSG_ERROR;
        m->u.error.code = ((int)r->code > 0 && (int)r->code < (int)WS_STATUS_COUNT)
                              ? (ws_status)r->code
                              : WS_ERR_INTERNAL;
        m->u.error.retriable = r->retriable;
        st = take_str(c, "error.message", r->message, &m->u.error.message);
        if (st == WS_OK) st = take_str(c, "error.field", r->field, &m->u.error.field);
        return st;
    }
    default:
        break;
    }
    return bad(c, "body", "field '%s': no body or an unknown body%s", "");
}

ws_status pmsg_decode(const void *buf, size_t len, uint64_t max_bytes, pmsg *out, char *field,
                      ws_error *err) {
    pmsg_init(out, PMSG_NONE, 0);
    if (field) field[0] = 0;
    dctx c = {out, field, err};
    if (max_bytes && len > max_bytes) {
        if (field) snprintf(field, PROTO_MAX_FIELD, "max_msg_bytes");
        return ws_fail(err, WS_ERR_NOMEM, "message of %zu bytes exceeds max_msg_bytes %llu", len,
                       (unsigned long long)max_bytes);
    }
    if (len == 0) return bad(&c, "envelope", "field '%s': empty message%s", "");
    /* Unpacked structures are at most a few times the wire size (pointers per repeated field). */
    budget b = {0, len * 8 + 65536};
    ProtobufCAllocator alloc = {budget_alloc, budget_free, &b};
    Orcd__Envelope *e = orcd__envelope__unpack(&alloc, len, buf);
    if (!e)
        return bad(&c, "envelope",
                   "field '%s': not a valid protobuf Envelope (truncated, "
                   "malformed or too large to unpack)%s",
                   "");
    out->request_id = e->request_id;
    out->protocol_version = e->protocol_version;
    ws_status st;
    if (e->protocol_version != PROTOCOL_VERSION) {
        char v[32];
        snprintf(v, sizeof v, "%u (expected %d)", e->protocol_version, PROTOCOL_VERSION);
        st = bad(&c, "protocol_version", "field '%s': unsupported version %s", v);
    } else {
        st = body_from(&c, e);
    }
    orcd__envelope__free_unpacked(e, &alloc);
    if (st != WS_OK) {
        uint64_t id = out->request_id;
        pmsg_free(out);
        pmsg_init(out, PMSG_NONE, id);
    }
    return st;
}
