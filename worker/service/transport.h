/* transport.h: the message channel between a worker and its controller, over nng PAIR1 (the only
 * module that knows nng). The worker dials; the controller listens. URLs: ipc://PATH,
 * tcp://HOST:PORT, tls+tcp://HOST:PORT (mbed TLS, TLS 1.2; a CA file is required to dial, a
 * certificate+key file to listen). Messages are opaque bytes here; protocol.h gives them meaning.
 */
#ifndef WORKER_SERVICE_TRANSPORT_H
#define WORKER_SERVICE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct {
    size_t recv_max_bytes;   /* nng's hard limit: a larger message drops the connection */
    int reconnect_min_ms;    /* dialer back-off: first retry after this ... */
    int reconnect_max_ms;    /* ... doubling up to this */
    int send_timeout_ms;     /* a send waits this long for a peer / buffer room */
    int recv_buffer_msgs;    /* messages queued on receipt before the peer is held back (0..8192) */
    const char *tls_ca_file; /* tls+tcp: CA bundle that verifies the peer */
    const char *tls_cert_key_file; /* tls+tcp: own certificate and key (PEM, one file) */
} transport_options;

typedef struct transport transport;

/* Fills o with the defaults: 1 MiB limit, back-off 100 ms .. 5 s, send timeout 5 s, receive
 * buffer 64 messages. */
void transport_options_default(transport_options *o);

/* Starts dialing url in the background (never fails because the peer is absent) and keeps
 * reconnecting with back-off. WS_ERR_INVALID_ARG for a malformed URL or missing TLS file. */
ws_status transport_dial(const char *url, const transport_options *o, transport **out,
                         ws_error *err);
/* Listens on url. WS_ERR_IO when the address is in use or not reachable. */
ws_status transport_listen(const char *url, const transport_options *o, transport **out,
                           ws_error *err);
void transport_close(transport *t); /* accepts NULL */

/* Sends len bytes (copied). WS_ERR_TIMEOUT when no peer took it within the send timeout,
 * WS_ERR_IO otherwise. Safe from several threads. */
ws_status transport_send(transport *t, const void *buf, size_t len, ws_error *err);

/* Waits up to timeout_ms (< 0: forever) for a message. On WS_OK *buf (free with
 * transport_buf_free(*buf, *len)) holds *len bytes. WS_ERR_TIMEOUT when none came. One receiving
 * thread per transport. */
ws_status transport_recv(transport *t, int timeout_ms, void **buf, size_t *len, ws_error *err);
void transport_buf_free(void *buf, size_t len);

/* Connections established so far (grows by one per new pipe) and whether one is up now. Updated
 * from nng's pipe notifications, which only touch these counters. */
uint64_t transport_connections(const transport *t);
bool transport_connected(const transport *t);

#endif
