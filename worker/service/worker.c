/* worker.c: the worker's lifecycle and its receive loop. One thread receives, validates and
 * dispatches messages, sends registration after every (re)connection and heartbeats at the agreed
 * interval; loads run in a background thread and generation in the scheduler's slot threads, so
 * health questions are answered at any time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "service/worker_internal.h"

void worker_config_default(worker_config *c) {
    memset(c, 0, sizeof *c);
    c->backend = "auto";
    c->heartbeat_ms = 1000;
    c->slots = 2;
    c->queue = 8;
    c->max_msg_bytes = 1u << 20;
    c->sessions = 4;
    c->drain_ms = 30000;
    c->grace_ms = 10000;
}

/* ---- the engine turn ---- */

void turn_init(turn_lock *t) {
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->next = t->serving = 0;
}

void turn_acquire(turn_lock *t) {
    pthread_mutex_lock(&t->mu);
    uint64_t me = t->next++;
    while (me != t->serving)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

void turn_release(turn_lock *t) {
    pthread_mutex_lock(&t->mu);
    t->serving++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* ---- sending ---- */

/* Sends what pmsg_encode produced (st, buf, len) and frees buf. */
static void send_encoded(worker *w, const pmsg *m, ws_status st, uint8_t *buf, size_t len,
                         ws_error *err) {
    if (st == WS_OK) st = transport_send(w->tp, buf, len, err);
    if (st != WS_OK)
        log_event(LOG_WARN, m->request_id, "send.failed", "%s: %s", pmsg_kind_name(m->kind),
                  err->msg);
    free(buf);
}

void worker_send(worker *w, const pmsg *m) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ws_error err = {{0}};
    ws_status st = pmsg_encode(m, &buf, &len, &err);
    send_encoded(w, m, st, buf, len, &err);
}

void worker_send_error(worker *w, uint64_t request_id, ws_status code, const char *field,
                       const char *msg) {
    pmsg m;
    pmsg_init(&m, PMSG_ERROR, request_id);
    m.u.error.code = code;
    m.u.error.message = msg;
    m.u.error.field = field ? field : "";
    m.u.error.retriable = pstatus_retriable(code);
    log_event(LOG_WARN, request_id, "request.error", "%s%s%s: %s", ws_strerror(code),
              field && *field ? " field=" : "", field ? field : "", msg);
    worker_send(w, &m);
}

void worker_status_fill(worker *w, pstatus *s, uint32_t running, uint32_t queued) {
    memset(s, 0, sizeof *s);
    s->state = w->state;
    s->reason = w->reason;
    s->model_path = w->lm ? w->lm->path : "";
    s->memory.weights = w->mem.weights;
    s->memory.kv_cache = w->mem.kv_cache;
    s->memory.scratch = w->mem.scratch;
    s->memory.device_total = w->mem.device_total;
    s->memory.device_free = w->mem.device_free;
    s->running = running;
    s->queued = queued;
    s->sessions = w->n_sessions;
    s->counters = w->cnt;
    s->uptime_ms = (double)(sched_now_ns() - w->start_ns) / 1e6;
    s->decode_tps = w->last_tps;
}

static void send_status(worker *w, pmsg_kind kind, uint64_t request_id, uint64_t seq) {
    uint32_t running, queued;
    sched_counts(w->sched, &running, &queued);
    pmsg m;
    pmsg_init(&m, kind, request_id);
    pthread_mutex_lock(&w->mu);
    if (kind == PMSG_HEARTBEAT) {
        m.u.heartbeat.seq = seq;
        worker_status_fill(w, &m.u.heartbeat.status, running, queued);
    } else {
        worker_status_fill(w, &m.u.status, running, queued);
    }
    /* Encoded under mu (the strings point into w), sent after: a slow controller must not
     * hold up the slots, which take mu too. */
    uint8_t *buf = NULL;
    size_t len = 0;
    ws_error err = {{0}};
    ws_status st = pmsg_encode(&m, &buf, &len, &err);
    pthread_mutex_unlock(&w->mu);
    send_encoded(w, &m, st, buf, len, &err);
}

static void send_register(worker *w) {
    pmsg m;
    pmsg_init(&m, PMSG_REGISTER, 0);
    preg *r = &m.u.reg;
    pthread_mutex_lock(&w->mu);
    r->worker_id = w->cfg.worker_id;
    r->build = "worker-orcd " WORKER_VERSION;
    r->protocol_version = PROTOCOL_VERSION;
    r->backend = engine_backend_name(w->backend);
    r->gpu_name = w->mem.device_name;
    r->gpu_uuid = w->mem.device_uuid;
    r->vram_total = w->mem.device_total;
    r->vram_free = w->mem.device_free;
    r->max_msg_bytes = w->cfg.max_msg_bytes;
    r->slots = w->cfg.slots;
    r->queue = w->cfg.queue;
    r->state = w->state;
    r->model_path = w->lm ? w->lm->path : "";
    r->pid = (uint32_t)getpid();
    pstate state = r->state;
    uint8_t *buf = NULL;
    size_t len = 0;
    ws_error err = {{0}};
    ws_status st = pmsg_encode(&m, &buf, &len, &err);
    pthread_mutex_unlock(&w->mu);
    send_encoded(w, &m, st, buf, len, &err);
    log_event(LOG_INFO, 0, "register.sent", "backend=%s state=%s", engine_backend_name(w->backend),
              pstate_name(state));
}

static void set_state(worker *w, pstate s) {
    pthread_mutex_lock(&w->mu);
    w->state = s;
    pthread_mutex_unlock(&w->mu);
    log_event(LOG_INFO, 0, "state", "%s", pstate_name(s));
}

/* ---- dispatch ---- */

typedef enum { RUN_ON = 0, RUN_DRAIN, RUN_SHUTDOWN } run_mode;

static void reply_ack(worker *w, uint64_t id, bool found) {
    pmsg m;
    pmsg_init(&m, PMSG_ACK, id);
    m.u.ack_found = found;
    worker_send(w, &m);
}

static run_mode dispatch(worker *w, const pmsg *m, uint32_t *drain_ms) {
    switch (m->kind) {
    case PMSG_REGISTER_ACK:
        if (m->u.reg_ack.heartbeat_ms) w->hb_ms = m->u.reg_ack.heartbeat_ms;
        log_event(LOG_INFO, 0, "register.ack", "heartbeat_ms=%u session=%s", w->hb_ms,
                  m->u.reg_ack.session);
        return RUN_ON;
    case PMSG_LOAD:
        worker_on_load(w, m);
        return RUN_ON;
    case PMSG_UNLOAD:
        worker_on_unload(w, m);
        return RUN_ON;
    case PMSG_INFER:
        worker_on_infer(w, m);
        return RUN_ON;
    case PMSG_CANCEL: {
        bool found = sched_cancel(w->sched, m->u.cancel_target);
        log_event(LOG_INFO, m->request_id, "cancel", "target=%llu found=%d",
                  (unsigned long long)m->u.cancel_target, found);
        reply_ack(w, m->request_id, found);
        return RUN_ON;
    }
    case PMSG_RESET:
        worker_on_reset(w, m);
        return RUN_ON;
    case PMSG_HEALTH_QUERY:
        send_status(w, PMSG_STATUS, m->request_id, 0);
        return RUN_ON;
    case PMSG_DRAIN:
        *drain_ms = m->u.drain_timeout_ms ? m->u.drain_timeout_ms : w->cfg.drain_ms;
        reply_ack(w, m->request_id, false);
        return RUN_DRAIN;
    case PMSG_SHUTDOWN:
        reply_ack(w, m->request_id, false);
        return RUN_SHUTDOWN;
    default: {
        char msg[128];
        snprintf(msg, sizeof msg, "body '%s' is not a command a worker accepts",
                 pmsg_kind_name(m->kind));
        pthread_mutex_lock(&w->mu);
        w->cnt.bad_messages++;
        pthread_mutex_unlock(&w->mu);
        worker_send_error(w, m->request_id, WS_ERR_PROTOCOL, "body", msg);
        return RUN_ON;
    }
    }
}

static void on_bytes(worker *w, const void *buf, size_t len, run_mode *mode, uint32_t *drain_ms) {
    pmsg m;
    char field[PROTO_MAX_FIELD];
    ws_error err = {{0}};
    ws_status st = pmsg_decode(buf, len, w->cfg.max_msg_bytes, &m, field, &err);
    if (st != WS_OK) {
        pthread_mutex_lock(&w->mu);
        w->cnt.bad_messages++;
        pthread_mutex_unlock(&w->mu);
        worker_send_error(w, m.request_id, st, field, err.msg);
        return;
    }
    run_mode r = dispatch(w, &m, drain_ms);
    if (r > *mode) *mode = r;
    pmsg_free(&m);
}

/* ---- the loop ---- */

static ws_status worker_start(worker *w, const worker_config *c, ws_error *err) {
    memset(w, 0, sizeof *w);
    w->cfg = *c;
    w->start_ns = sched_now_ns();
    w->hb_ms = c->heartbeat_ms ? c->heartbeat_ms : 1000;
    w->state = PSTATE_STARTING;
    pthread_mutex_init(&w->mu, NULL);
    turn_init(&w->eng_turn);
    if (!c->worker_id || !*c->worker_id)
        return ws_fail(err, WS_ERR_INVALID_ARG, "--worker-id is required");
    if (strcmp(c->backend, "auto") == 0) {
        w->backend = engine_backend_available(ENGINE_CUDA) ? ENGINE_CUDA : ENGINE_CPU;
    } else if (!engine_backend_from_name(c->backend, &w->backend)) {
        return ws_fail(err, WS_ERR_INVALID_ARG, "--backend '%s': expected cuda, cpu or auto",
                       c->backend);
    } else if (!engine_backend_available(w->backend)) {
        return ws_fail(err, WS_ERR_UNSUPPORTED,
                       "--backend %s: not available here (no CUDA device or not built with "
                       "CUDA); use --backend cpu explicitly",
                       c->backend);
    }
    /* Registration names the device (and, for CUDA, its memory) before any model is loaded. */
    ws_status qst = engine_device_query(w->backend, c->gpu, &w->mem, err);
    if (qst != WS_OK) return qst;
    if (c->model_dir) {
        char real[PATH_MAX];
        if (!realpath(c->model_dir, real))
            return ws_fail(err, WS_ERR_NOT_FOUND, "--model-dir '%s' does not exist", c->model_dir);
    }
    if (c->max_msg_bytes < 1024 || c->max_msg_bytes > (1u << 30))
        return ws_fail(err, WS_ERR_INVALID_ARG, "--max-msg-bytes %llu: expected 1024..2^30",
                       (unsigned long long)c->max_msg_bytes);
    ws_status st =
        sched_new(c->slots, c->queue, worker_job_run, worker_job_drop, w, &w->sched, err);
    if (st != WS_OK) return st;
    transport_options o;
    transport_options_default(&o);
    /* nng drops the connection for messages over its limit without telling anyone; keep that
     * limit above the advertised one so that moderately oversized messages get an error reply. */
    o.recv_max_bytes = (size_t)c->max_msg_bytes * 2 + 65536;
    o.tls_ca_file = c->tls_ca_file;
    o.tls_cert_key_file = c->tls_cert_key_file;
    return transport_dial(c->controller_url, &o, &w->tp, err);
}

static void worker_stop(worker *w) {
    if (w->load_running) {
        pthread_join(w->load_thread, NULL);
        w->load_running = false;
    }
    sched_free(w->sched);
    w->sched = NULL;
    pthread_mutex_lock(&w->mu);
    loaded_model *lm = w->lm;
    w->lm = NULL;
    pthread_mutex_unlock(&w->mu);
    loaded_model_free(w, lm);
    /* nng_close discards messages still queued on the socket and nng 1.5 has no linger: give
     * the pipe a moment to deliver the last stream ends and acks. */
    if (w->tp && transport_connected(w->tp)) usleep(200000);
    transport_close(w->tp);
    pthread_mutex_destroy(&w->mu);
}

int worker_serve(const worker_config *c, volatile sig_atomic_t *signals) {
    worker w;
    ws_error err = {{0}};
    ws_status st = worker_start(&w, c, &err);
    if (st != WS_OK) {
        log_event(LOG_ERROR, 0, "start.failed", "%s", err.msg);
        if (w.sched) worker_stop(&w);
        return 1;
    }
    log_event(LOG_INFO, 0, "start", "controller=%s backend=%s slots=%u queue=%u", c->controller_url,
              engine_backend_name(w.backend), c->slots, c->queue);
    set_state(&w, PSTATE_IDLE);
    uint64_t seen_conn = 0, hb_seq = 0;
    int64_t next_hb = 0, lost_since = 0, drain_until = 0, next_warn = 0;
    bool loss_handled = false;
    run_mode mode = RUN_ON;
    uint32_t drain_ms = c->drain_ms;
    int exit_code = 0;
    for (;;) {
        int64_t now = sched_now_ns();
        uint64_t conn = transport_connections(w.tp);
        if (conn != seen_conn) { /* a new connection: introduce ourselves again */
            seen_conn = conn;
            send_register(&w);
            next_hb = now + (int64_t)w.hb_ms * 1000000;
        }
        if (now >= next_hb && transport_connected(w.tp)) {
            send_status(&w, PMSG_HEARTBEAT, 0, ++hb_seq);
            next_hb = now + (int64_t)w.hb_ms * 1000000;
        }
        if (transport_connected(w.tp)) {
            lost_since = 0;
            loss_handled = false;
        } else if (!lost_since) {
            lost_since = now;
            next_warn = now + 5000000000LL;
        } else if (now > next_warn) { /* nng retries quietly: say so, every 10 s */
            log_event(LOG_WARN, 0, "controller.unreachable",
                      "no connection to %s for %lld s (retrying; for tls+tcp check --tls-ca and "
                      "that the certificate names the host)",
                      c->controller_url, (long long)((now - lost_since) / 1000000000));
            next_warn = now + 10000000000LL;
        }
        if (lost_since && !loss_handled && now - lost_since > (int64_t)c->grace_ms * 1000000) {
            uint32_t running, queued;
            sched_counts(w.sched, &running, &queued);
            loss_handled = true;
            if (running || queued) {
                log_event(LOG_WARN, 0, "controller.lost", "cancelling %u running, %u queued",
                          running, queued);
                sched_cancel_all(w.sched, SCHED_DROP_CANCELLED);
            }
        }
        if (atomic_load(&w.load_done)) worker_load_join(&w);
        sched_expire(w.sched, now);
        if (atomic_load(&w.fatal)) {
            set_state(&w, PSTATE_FAILED);
            send_status(&w, PMSG_STATUS, 0, 0);
            exit_code = 3;
            break;
        }
        if (signals && *signals > 0 && mode == RUN_ON) {
            log_event(LOG_INFO, 0, "signal", "draining for up to %u ms", c->drain_ms);
            mode = RUN_DRAIN;
        }
        if (mode == RUN_SHUTDOWN) {
            sched_close(w.sched);
            sched_cancel_all(w.sched, SCHED_DROP_SHUTDOWN);
            sched_wait_idle(w.sched, 5000);
            break;
        }
        if (mode == RUN_DRAIN) {
            if (!drain_until) {
                drain_until = now + (int64_t)drain_ms * 1000000;
                sched_close(w.sched);
                set_state(&w, PSTATE_DRAINING);
            }
            uint32_t running, queued;
            sched_counts(w.sched, &running, &queued);
            if (!running && !queued && !w.load_running) break;
            if (now > drain_until) {
                log_event(LOG_WARN, 0, "drain.timeout", "cancelling %u running, %u queued", running,
                          queued);
                sched_cancel_all(w.sched, SCHED_DROP_SHUTDOWN);
                sched_wait_idle(w.sched, 5000);
                break;
            }
        }
        void *buf = NULL;
        size_t len = 0;
        st = transport_recv(w.tp, 20, &buf, &len, &err);
        if (st == WS_OK) {
            on_bytes(&w, buf, len, &mode, &drain_ms);
            transport_buf_free(buf, len);
        } else if (st != WS_ERR_TIMEOUT) {
            log_event(LOG_ERROR, 0, "receive.failed", "%s", err.msg);
            usleep(20000);
        }
    }
    log_event(LOG_INFO, 0, "exit", "code=%d", exit_code);
    worker_stop(&w);
    return exit_code;
}
