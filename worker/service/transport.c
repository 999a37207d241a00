/* transport.c: nng PAIR1 sockets for the worker (dialer) and the controller (listener). Options
 * that nng leaves unbounded by default are set before the endpoint starts: receive size limit,
 * reconnect back-off, send timeout. Pipe notifications only update atomic counters: nng forbids
 * touching the socket from them. */
#include "service/transport.h"

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/tls/tls.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct transport {
    nng_socket sock;
    nng_dialer dialer;
    nng_listener listener;
    bool is_dialer;
    atomic_uint_fast64_t n_added;
    atomic_int n_open;
};

void transport_options_default(transport_options *o) {
    memset(o, 0, sizeof *o);
    o->recv_max_bytes = 1u << 20;
    o->reconnect_min_ms = 100;
    o->reconnect_max_ms = 5000;
    o->send_timeout_ms = 5000;
    o->recv_buffer_msgs = 64;
}

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg) {
    (void)p;
    transport *t = arg;
    if (ev == NNG_PIPE_EV_ADD_POST) {
        atomic_fetch_add(&t->n_open, 1);
        atomic_fetch_add(&t->n_added, 1);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        atomic_fetch_sub(&t->n_open, 1);
    }
}

static bool url_ok(const char *url) {
    return url && (strncmp(url, "ipc://", 6) == 0 || strncmp(url, "tcp://", 6) == 0 ||
                   strncmp(url, "tls+tcp://", 10) == 0);
}

static ws_status open_socket(const char *url, transport **out, ws_error *err) {
    if (!url_ok(url))
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "controller URL '%s': expected ipc://, tcp:// or tls+tcp://",
                       url ? url : "(null)");
    transport *t = calloc(1, sizeof *t);
    if (!t) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
    int rv = nng_pair1_open(&t->sock);
    if (rv != 0) {
        free(t);
        return ws_fail(err, WS_ERR_IO, "nng_pair1_open: %s", nng_strerror(rv));
    }
    nng_pipe_notify(t->sock, NNG_PIPE_EV_ADD_POST, on_pipe, t);
    nng_pipe_notify(t->sock, NNG_PIPE_EV_REM_POST, on_pipe, t);
    *out = t;
    return WS_OK;
}

#define TRY(call, what)                                                                            \
    do {                                                                                           \
        int rv_ = (call);                                                                          \
        if (rv_ != 0) {                                                                            \
            st = ws_fail(err, rv_ == NNG_EADDRINUSE ? WS_ERR_IO : WS_ERR_INVALID_ARG,              \
                         "%s '%s': %s", what, url, nng_strerror(rv_));                             \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static ws_status common_options(transport *t, const transport_options *o, const char *url,
                                ws_error *err) {
    ws_status st = WS_OK;
    TRY(nng_socket_set_ms(t->sock, NNG_OPT_SENDTIMEO, o->send_timeout_ms), "send timeout");
    /* Room for a burst of token chunks while the peer reads. */
    TRY(nng_socket_set_int(t->sock, NNG_OPT_SENDBUF, 64), "send buffer");
    TRY(nng_socket_set_int(t->sock, NNG_OPT_RECVBUF, o->recv_buffer_msgs), "receive buffer");
fail:
    return st;
}

ws_status transport_dial(const char *url, const transport_options *o, transport **out,
                         ws_error *err) {
    transport *t = NULL;
    ws_status st = open_socket(url, &t, err);
    if (st != WS_OK) return st;
    t->is_dialer = true;
    st = common_options(t, o, url, err);
    if (st != WS_OK) goto fail;
    TRY(nng_dialer_create(&t->dialer, t->sock, url), "dial");
    TRY(nng_dialer_set_size(t->dialer, NNG_OPT_RECVMAXSZ, o->recv_max_bytes), "receive limit");
    TRY(nng_dialer_set_ms(t->dialer, NNG_OPT_RECONNMINT, o->reconnect_min_ms), "reconnect min");
    TRY(nng_dialer_set_ms(t->dialer, NNG_OPT_RECONNMAXT, o->reconnect_max_ms), "reconnect max");
    if (strncmp(url, "tls+tcp://", 10) == 0) {
        if (!o->tls_ca_file) {
            st = ws_fail(err, WS_ERR_INVALID_ARG, "dial '%s': tls+tcp needs a CA file", url);
            goto fail;
        }
        TRY(nng_dialer_set_string(t->dialer, NNG_OPT_TLS_CA_FILE, o->tls_ca_file), "TLS CA file");
        if (o->tls_cert_key_file)
            TRY(nng_dialer_set_string(t->dialer, NNG_OPT_TLS_CERT_KEY_FILE, o->tls_cert_key_file),
                "TLS certificate");
    }
    TRY(nng_dialer_start(t->dialer, NNG_FLAG_NONBLOCK), "dial");
    *out = t;
    return WS_OK;
fail:
    transport_close(t);
    return st;
}

ws_status transport_listen(const char *url, const transport_options *o, transport **out,
                           ws_error *err) {
    transport *t = NULL;
    ws_status st = open_socket(url, &t, err);
    if (st != WS_OK) return st;
    st = common_options(t, o, url, err);
    if (st != WS_OK) goto fail;
    TRY(nng_listener_create(&t->listener, t->sock, url), "listen");
    TRY(nng_listener_set_size(t->listener, NNG_OPT_RECVMAXSZ, o->recv_max_bytes), "receive limit");
    if (strncmp(url, "tls+tcp://", 10) == 0) {
        if (!o->tls_cert_key_file) {
            st = ws_fail(err, WS_ERR_INVALID_ARG, "listen '%s': tls+tcp needs a certificate", url);
            goto fail;
        }
        TRY(nng_listener_set_string(t->listener, NNG_OPT_TLS_CERT_KEY_FILE, o->tls_cert_key_file),
            "TLS certificate");
        if (o->tls_ca_file)
            TRY(nng_listener_set_string(t->listener, NNG_OPT_TLS_CA_FILE, o->tls_ca_file),
                "TLS CA file");
    }
    {
        int rv = nng_listener_start(t->listener, 0);
        if (rv != 0) {
            st = ws_fail(err, WS_ERR_IO, "listen '%s': %s", url, nng_strerror(rv));
            goto fail;
        }
    }
    *out = t;
    return WS_OK;
fail:
    transport_close(t);
    return st;
}

void transport_close(transport *t) {
    if (!t) return;
    nng_close(t->sock);
    free(t);
}

ws_status transport_send(transport *t, const void *buf, size_t len, ws_error *err) {
    int rv = nng_send(t->sock, (void *)buf, len, 0);
    if (rv == 0) return WS_OK;
    return ws_fail(err, rv == NNG_ETIMEDOUT ? WS_ERR_TIMEOUT : WS_ERR_IO, "send %zu bytes: %s", len,
                   nng_strerror(rv));
}

ws_status transport_recv(transport *t, int timeout_ms, void **buf, size_t *len, ws_error *err) {
    int rv = nng_socket_set_ms(t->sock, NNG_OPT_RECVTIMEO,
                               timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
    if (rv == 0) rv = nng_recv(t->sock, buf, len, NNG_FLAG_ALLOC);
    if (rv == 0) return WS_OK;
    if (rv == NNG_ETIMEDOUT) return WS_ERR_TIMEOUT;
    return ws_fail(err, WS_ERR_IO, "receive: %s", nng_strerror(rv));
}

void transport_buf_free(void *buf, size_t len) {
    if (buf) nng_free(buf, len);
}

uint64_t transport_connections(const transport *t) {
    return atomic_load(&((transport *)t)->n_added);
}

bool transport_connected(const transport *t) {
    return atomic_load(&((transport *)t)->n_open) > 0;
}
