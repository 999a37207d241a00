/* controller.h: a small controller library, the other end of the worker protocol. It listens on
 * a URL, optionally starts the worker process itself, waits for its registration (answering with
 * an ack that sets the heartbeat interval), and offers blocking helpers for load, inference with
 * streamed callbacks, cancel, reset and health, plus raw send/receive for anything else. A worker
 * is declared dead when its process exits or when it misses heartbeats; ctl_restart_worker starts
 * a new one. Single-threaded: one caller drives a controller. */
#ifndef ORCD_CONTROLLER_H
#define ORCD_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/status.h"
#include "service/protocol.h"

typedef struct {
    const char *url;                /* where to listen, e.g. ipc:///tmp/x/ctl.ipc */
    const char *worker_bin;         /* worker-orcd to start; NULL = accept an external worker */
    const char *const *worker_args; /* extra `serve` arguments, NULL-terminated (may be NULL) */
    const char *worker_id;          /* for the started worker ("worker-1" when NULL) */
    const char *worker_log;         /* file for the worker's stderr; NULL = inherit */
    uint32_t heartbeat_ms;          /* interval given in the ack (500) */
    uint32_t missed_heartbeats;     /* silent this many intervals = dead (4) */
    uint64_t max_msg_bytes;         /* largest message accepted from the worker (16 MiB) */
    const char *tls_cert_key_file;  /* tls+tcp: the controller's certificate and key (PEM) */
    const char *tls_ca_file;        /* tls+tcp: CA that worker certificates must chain to */
} ctl_options;

typedef struct controller controller;

void ctl_options_default(ctl_options *o);

/* Listens and, with worker_bin, starts the worker. Does not wait for registration. */
ws_status ctl_open(const ctl_options *o, controller **out, ws_error *err);
/* Stops a started worker (SIGKILL if it does not exit after SIGTERM within 5 s), closes the
 * socket. Accepts NULL. */
void ctl_close(controller *c);

/* Waits for a registration newer than the last one seen. WS_ERR_TIMEOUT, or WS_ERR_IO when the
 * started worker exited first. */
ws_status ctl_wait_registration(controller *c, int timeout_ms, ws_error *err);
/* The latest registration (valid until the next one arrives or ctl_close). */
const preg *ctl_registration(const controller *c);
/* The latest heartbeat's status, or NULL before the first. */
const pstatus *ctl_last_heartbeat(const controller *c);
uint64_t ctl_registrations(const controller *c);

/* Sends m, giving it a fresh request id when m->request_id is 0; returns the id used (0 on
 * failure, err set). */
uint64_t ctl_send(controller *c, pmsg *m, ws_error *err);
ws_status ctl_send_raw(controller *c, const void *buf, size_t len, ws_error *err);

/* Receives the next message other than registrations and heartbeats (which are handled here).
 * The caller frees *out with pmsg_free. WS_ERR_TIMEOUT when none came within timeout_ms; WS_ERR_IO
 * when the worker is dead (process exited, or heartbeats missed). */
ws_status ctl_next(controller *c, int timeout_ms, pmsg *out, ws_error *err);

/* Loads path; progress (may be NULL) sees each LoadProgress. On success *result holds the
 * LoadResult (free with pmsg_free); on a worker error returns its code with its message in err. */
typedef void (*ctl_on_progress)(void *user, const pload_progress *p);
ws_status ctl_load(controller *c, const pload *req, int timeout_ms, ctl_on_progress progress,
                   void *user, pmsg *result, ws_error *err);

/* Runs one request to its end, calling on_chunk for each TokenChunk (return false to send a
 * cancel). *end receives the StreamEnd. Worker errors return their code, message in err and the
 * offending field in field (PROTO_MAX_FIELD bytes, may be NULL). */
typedef bool (*ctl_on_chunk)(void *user, const ptoken_chunk *c);
ws_status ctl_infer(controller *c, const pinfer *req, int timeout_ms, ctl_on_chunk on_chunk,
                    void *user, pstream_end *end, char *field, ws_error *err);

/* Simple commands: wait for the Ack (or Error). found receives the Ack's flag (may be NULL). */
ws_status ctl_cancel(controller *c, uint64_t request_id, bool *found, ws_error *err);
ws_status ctl_reset(controller *c, const char *session_id, bool *found, ws_error *err);
ws_status ctl_unload(controller *c, ws_error *err);
ws_status ctl_drain(controller *c, uint32_t timeout_ms, ws_error *err);
/* Asks for a Status; *out must be freed with pmsg_free. */
ws_status ctl_health(controller *c, int timeout_ms, pmsg *out, ws_error *err);

/* Closes the listening socket and listens again on the same URL after pause_ms: to the worker
 * this is a controller that went away and came back (it must register again). */
ws_status ctl_relisten(controller *c, int pause_ms, ws_error *err);

/* The started worker's process (0 for an external one). */
pid_t ctl_worker_pid(const controller *c);
/* Sends sig to the started worker. */
ws_status ctl_signal_worker(controller *c, int sig, ws_error *err);
/* Waits for the started worker to exit; *status gets its exit code (128 + signal when killed).
 * WS_ERR_TIMEOUT when it is still running. */
ws_status ctl_wait_worker(controller *c, int timeout_ms, int *status, ws_error *err);
/* Kills a started worker that is still alive, starts a new one and waits for its registration. */
ws_status ctl_restart_worker(controller *c, int timeout_ms, ws_error *err);

#endif
