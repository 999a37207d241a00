/* controller.c: the controller library (see controller.h). Messages are exchanged through the
 * worker's own transport and protocol modules, so both ends speak exactly the same encoding. */
#include "controller.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "service/transport.h"

extern char **environ;

struct controller {
    ctl_options opt;
    transport *tp;
    pid_t pid;
    int exit_status; /* valid when exited */
    bool exited;
    pmsg reg; /* latest registration */
    uint64_t n_reg, n_reg_seen;
    pmsg hb; /* latest heartbeat */
    bool have_hb;
    uint64_t next_id;
    int64_t last_rx_ns;
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ctl_options_default(ctl_options *o) {
    memset(o, 0, sizeof *o);
    o->heartbeat_ms = 500;
    o->missed_heartbeats = 4;
    o->max_msg_bytes = 16u << 20;
}

static ws_status listen_on(controller *c, ws_error *err) {
    transport_options to;
    transport_options_default(&to);
    to.recv_max_bytes = c->opt.max_msg_bytes;
    /* Token chunks arrive in bursts; nng 1.5.2 can also hang closing a socket whose receive
     * queue is full while the peer keeps sending, so give the queue all the room nng allows. */
    to.recv_buffer_msgs = 8192;
    to.tls_cert_key_file = c->opt.tls_cert_key_file;
    to.tls_ca_file = c->opt.tls_ca_file;
    return transport_listen(c->opt.url, &to, &c->tp, err);
}

static ws_status spawn_worker(controller *c, ws_error *err) {
    const char *argv[64];
    char hb[32];
    int n = 0;
    snprintf(hb, sizeof hb, "%u", c->opt.heartbeat_ms);
    argv[n++] = c->opt.worker_bin;
    argv[n++] = "serve";
    argv[n++] = "--controller";
    argv[n++] = c->opt.url;
    argv[n++] = "--worker-id";
    argv[n++] = c->opt.worker_id ? c->opt.worker_id : "worker-1";
    argv[n++] = "--heartbeat-ms";
    argv[n++] = hb;
    for (int i = 0; c->opt.worker_args && c->opt.worker_args[i]; i++) {
        if (n >= 62) return ws_fail(err, WS_ERR_INVALID_ARG, "too many worker arguments");
        argv[n++] = c->opt.worker_args[i];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (c->opt.worker_log)
        posix_spawn_file_actions_addopen(&fa, 2, c->opt.worker_log, O_WRONLY | O_CREAT | O_APPEND,
                                         0644);
    int rv = posix_spawn(&c->pid, c->opt.worker_bin, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rv != 0) {
        c->pid = 0;
        return ws_fail(err, WS_ERR_IO, "could not start '%s': %s", c->opt.worker_bin, strerror(rv));
    }
    c->exited = false;
    c->last_rx_ns = now_ns();
    return WS_OK;
}

ws_status ctl_open(const ctl_options *o, controller **out, ws_error *err) {
    controller *c = calloc(1, sizeof *c);
    if (!c) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
    c->opt = *o;
    pmsg_init(&c->reg, PMSG_NONE, 0);
    pmsg_init(&c->hb, PMSG_NONE, 0);
    c->next_id = 1;
    ws_status st = listen_on(c, err);
    if (st == WS_OK && o->worker_bin) st = spawn_worker(c, err);
    if (st != WS_OK) {
        ctl_close(c);
        return st;
    }
    c->last_rx_ns = now_ns();
    *out = c;
    return WS_OK;
}

/* Reaps the started worker without blocking; true once it has exited. */
static bool reap(controller *c) {
    if (!c->pid || c->exited) return c->exited;
    int status;
    if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
        c->exited = true;
        c->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return c->exited;
}

ws_status ctl_wait_worker(controller *c, int timeout_ms, int *status, ws_error *err) {
    if (!c->pid) return ws_fail(err, WS_ERR_STATE, "no worker process was started here");
    int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
    while (!reap(c)) {
        if (now_ns() > end) return ws_fail(err, WS_ERR_TIMEOUT, "worker still running");
        usleep(5000);
    }
    if (status) *status = c->exit_status;
    return WS_OK;
}

ws_status ctl_signal_worker(controller *c, int sig, ws_error *err) {
    if (!c->pid || reap(c)) return ws_fail(err, WS_ERR_STATE, "no running worker process");
    if (kill(c->pid, sig) != 0) return ws_fail(err, WS_ERR_IO, "kill: %s", strerror(errno));
    return WS_OK;
}

static void stop_worker(controller *c) {
    if (!c->pid || reap(c)) return;
    kill(c->pid, SIGTERM);
    if (ctl_wait_worker(c, 5000, NULL, NULL) != WS_OK) {
        kill(c->pid, SIGKILL);
        ctl_wait_worker(c, 5000, NULL, NULL);
    }
}

void ctl_close(controller *c) {
    if (!c) return;
    stop_worker(c);
    transport_close(c->tp);
    pmsg_free(&c->reg);
    pmsg_free(&c->hb);
    free(c);
}

const preg *ctl_registration(const controller *c) {
    return c->reg.kind == PMSG_REGISTER ? &c->reg.u.reg : NULL;
}

const pstatus *ctl_last_heartbeat(const controller *c) {
    return c->have_hb ? &c->hb.u.heartbeat.status : NULL;
}

uint64_t ctl_registrations(const controller *c) {
    return c->n_reg;
}

pid_t ctl_worker_pid(const controller *c) {
    return c->pid;
}

uint64_t ctl_send(controller *c, pmsg *m, ws_error *err) {
    if (!m->request_id) m->request_id = c->next_id++;
    uint8_t *buf = NULL;
    size_t len = 0;
    ws_status st = pmsg_encode(m, &buf, &len, err);
    if (st == WS_OK) st = transport_send(c->tp, buf, len, err);
    free(buf);
    return st == WS_OK ? m->request_id : 0;
}

ws_status ctl_send_raw(controller *c, const void *buf, size_t len, ws_error *err) {
    return transport_send(c->tp, buf, len, err);
}

/* Handles registrations and heartbeats; true when m was consumed here. */
static bool handle_internal(controller *c, pmsg *m) {
    if (m->kind == PMSG_REGISTER) {
        pmsg_free(&c->reg);
        c->reg = *m;
        c->n_reg++;
        pmsg ack;
        pmsg_init(&ack, PMSG_REGISTER_ACK, 0);
        ack.u.reg_ack.heartbeat_ms = c->opt.heartbeat_ms;
        ack.u.reg_ack.session = "orcd-stub";
        ctl_send(c, &ack, NULL);
        return true;
    }
    if (m->kind == PMSG_HEARTBEAT) {
        pmsg_free(&c->hb);
        c->hb = *m;
        c->have_hb = true;
        return true;
    }
    return false;
}

ws_status ctl_next(controller *c, int timeout_ms, pmsg *out, ws_error *err) {
    int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        if (reap(c))
            return ws_fail(err, WS_ERR_IO, "worker process %d exited with status %d", (int)c->pid,
                           c->exit_status);
        if (!transport_connected(c->tp)) c->last_rx_ns = now_ns();
        int64_t silent = now_ns() - c->last_rx_ns;
        int64_t limit = (int64_t)c->opt.heartbeat_ms * c->opt.missed_heartbeats * 1000000;
        /* Silence counts only while connected: a worker reconnecting after a controller restart
         * is not dead (a stopped or hung one keeps its connection and is caught here). */
        if (c->n_reg && silent > limit)
            return ws_fail(err, WS_ERR_IO, "worker silent for %lld ms (%u heartbeats missed)",
                           (long long)(silent / 1000000), c->opt.missed_heartbeats);
        int left = (int)((end - now_ns()) / 1000000);
        if (left <= 0) return ws_fail(err, WS_ERR_TIMEOUT, "no message within %d ms", timeout_ms);
        void *buf = NULL;
        size_t len = 0;
        ws_status st = transport_recv(c->tp, left < 50 ? left : 50, &buf, &len, err);
        if (st == WS_ERR_TIMEOUT) continue;
        if (st != WS_OK) return st;
        c->last_rx_ns = now_ns();
        char field[PROTO_MAX_FIELD];
        st = pmsg_decode(buf, len, 0, out, field, err);
        transport_buf_free(buf, len);
        if (st != WS_OK) return st;
        if (!handle_internal(c, out)) return WS_OK;
    }
}

ws_status ctl_wait_registration(controller *c, int timeout_ms, ws_error *err) {
    int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
    while (c->n_reg == c->n_reg_seen) {
        int left = (int)((end - now_ns()) / 1000000);
        if (left <= 0)
            return ws_fail(err, WS_ERR_TIMEOUT, "no registration within %d ms", timeout_ms);
        pmsg m;
        ws_status st = ctl_next(c, left < 100 ? left : 100, &m, err);
        if (st == WS_OK)
            pmsg_free(&m); /* not expected before registration */
        else if (st != WS_ERR_TIMEOUT)
            return st;
    }
    c->n_reg_seen = c->n_reg;
    return WS_OK;
}

/* Waits for the reply to id: the first message with that id that is not a progress or chunk is
 * returned; progress and chunks go to the callbacks. Other requests' messages are dropped. */
static ws_status wait_reply(controller *c, uint64_t id, int timeout_ms, pmsg *out, ws_error *err) {
    int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int left = (int)((end - now_ns()) / 1000000);
        if (left <= 0) return ws_fail(err, WS_ERR_TIMEOUT, "no reply within %d ms", timeout_ms);
        ws_status st = ctl_next(c, left, out, err);
        if (st != WS_OK) return st;
        if (out->request_id == id) return WS_OK;
        pmsg_free(out);
    }
}

static ws_status error_of(const pmsg *m, char *field, ws_error *err) {
    if (field) snprintf(field, PROTO_MAX_FIELD, "%s", m->u.error.field);
    return ws_fail(err, m->u.error.code, "%s", m->u.error.message);
}

ws_status ctl_load(controller *c, const pload *req, int timeout_ms, ctl_on_progress progress,
                   void *user, pmsg *result, ws_error *err) {
    pmsg m;
    pmsg_init(&m, PMSG_LOAD, 0);
    m.u.load = *req;
    uint64_t id = ctl_send(c, &m, err);
    if (!id) return WS_ERR_IO;
    for (;;) {
        ws_status st = wait_reply(c, id, timeout_ms, result, err);
        if (st != WS_OK) return st;
        if (result->kind == PMSG_LOAD_PROGRESS) {
            if (progress) progress(user, &result->u.progress);
            pmsg_free(result);
            continue;
        }
        if (result->kind == PMSG_LOAD_RESULT) return WS_OK;
        st = result->kind == PMSG_ERROR
                 ? error_of(result, NULL, err)
                 : ws_fail(err, WS_ERR_PROTOCOL, "unexpected %s", pmsg_kind_name(result->kind));
        pmsg_free(result);
        return st;
    }
}

ws_status ctl_infer(controller *c, const pinfer *req, int timeout_ms, ctl_on_chunk on_chunk,
                    void *user, pstream_end *end, char *field, ws_error *err) {
    pmsg m;
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer = *req;
    uint64_t id = ctl_send(c, &m, err);
    if (!id) return WS_ERR_IO;
    bool cancelled = false;
    for (;;) {
        pmsg r;
        ws_status st = wait_reply(c, id, timeout_ms, &r, err);
        if (st != WS_OK) return st;
        if (r.kind == PMSG_TOKEN_CHUNK) {
            if (on_chunk && !on_chunk(user, &r.u.chunk) && !cancelled) {
                pmsg cm;
                pmsg_init(&cm, PMSG_CANCEL, 0);
                cm.u.cancel_target = id;
                ctl_send(c, &cm, NULL);
                cancelled = true;
            }
            pmsg_free(&r);
            continue;
        }
        if (r.kind == PMSG_STREAM_END) {
            *end = r.u.end;
            pmsg_free(&r);
            return WS_OK;
        }
        st = r.kind == PMSG_ERROR
                 ? error_of(&r, field, err)
                 : ws_fail(err, WS_ERR_PROTOCOL, "unexpected %s", pmsg_kind_name(r.kind));
        pmsg_free(&r);
        return st;
    }
}

/* Sends m and waits for an Ack. */
static ws_status simple(controller *c, pmsg *m, bool *found, ws_error *err) {
    uint64_t id = ctl_send(c, m, err);
    if (!id) return WS_ERR_IO;
    pmsg r;
    ws_status st = wait_reply(c, id, 10000, &r, err);
    if (st != WS_OK) return st;
    if (r.kind == PMSG_ACK) {
        if (found) *found = r.u.ack_found;
    } else {
        st = r.kind == PMSG_ERROR
                 ? error_of(&r, NULL, err)
                 : ws_fail(err, WS_ERR_PROTOCOL, "unexpected %s", pmsg_kind_name(r.kind));
    }
    pmsg_free(&r);
    return st;
}

ws_status ctl_cancel(controller *c, uint64_t request_id, bool *found, ws_error *err) {
    pmsg m;
    pmsg_init(&m, PMSG_CANCEL, 0);
    m.u.cancel_target = request_id;
    return simple(c, &m, found, err);
}

ws_status ctl_reset(controller *c, const char *session_id, bool *found, ws_error *err) {
    pmsg m;
    pmsg_init(&m, PMSG_RESET, 0);
    m.u.reset.session_id = session_id;
    m.u.reset.all = session_id == NULL;
    return simple(c, &m, found, err);
}

ws_status ctl_unload(controller *c, ws_error *err) {
    pmsg m;
    pmsg_init(&m, PMSG_UNLOAD, 0);
    return simple(c, &m, NULL, err);
}

ws_status ctl_drain(controller *c, uint32_t timeout_ms, ws_error *err) {
    pmsg m;
    pmsg_init(&m, PMSG_DRAIN, 0);
    m.u.drain_timeout_ms = timeout_ms;
    return simple(c, &m, NULL, err);
}

ws_status ctl_health(controller *c, int timeout_ms, pmsg *out, ws_error *err) {
    pmsg m;
    pmsg_init(&m, PMSG_HEALTH_QUERY, 0);
    uint64_t id = ctl_send(c, &m, err);
    if (!id) return WS_ERR_IO;
    ws_status st = wait_reply(c, id, timeout_ms, out, err);
    if (st != WS_OK) return st;
    if (out->kind == PMSG_STATUS) return WS_OK;
    st = out->kind == PMSG_ERROR
             ? error_of(out, NULL, err)
             : ws_fail(err, WS_ERR_PROTOCOL, "unexpected %s", pmsg_kind_name(out->kind));
    pmsg_free(out);
    return st;
}

ws_status ctl_relisten(controller *c, int pause_ms, ws_error *err) {
    transport_close(c->tp);
    c->tp = NULL;
    usleep((useconds_t)pause_ms * 1000);
    ws_status st = listen_on(c, err);
    c->last_rx_ns = now_ns();
    return st;
}

ws_status ctl_restart_worker(controller *c, int timeout_ms, ws_error *err) {
    if (!c->opt.worker_bin) return ws_fail(err, WS_ERR_STATE, "the worker was not started here");
    if (c->pid && !reap(c)) {
        kill(c->pid, SIGKILL);
        ctl_wait_worker(c, 5000, NULL, NULL);
    }
    c->n_reg_seen = c->n_reg;
    c->have_hb = false;
    ws_status st = spawn_worker(c, err);
    if (st != WS_OK) return st;
    return ctl_wait_registration(c, timeout_ms, err);
}
