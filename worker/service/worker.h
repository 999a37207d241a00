/* worker.h: the worker process as a service: lifecycle states, the receive loop, load/unload,
 * admission of inference requests and their execution, heartbeats and registration. `worker-orcd
 * serve` fills a worker_config and calls worker_serve. */
#ifndef WORKER_SERVICE_WORKER_H
#define WORKER_SERVICE_WORKER_H

#include <signal.h>
#include <stdint.h>

#define WORKER_VERSION "0.1.0"

typedef struct {
    const char *controller_url; /* required */
    const char *worker_id;      /* required, non-empty */
    int gpu;                    /* CUDA device ordinal */
    const char *backend;        /* "cuda", "cpu" or "auto" */
    const char *model_dir;      /* loads are confined below it; NULL = any path */
    uint32_t heartbeat_ms;      /* until the controller's ack says otherwise */
    uint32_t slots;             /* requests generating at once */
    uint32_t queue;             /* requests waiting beyond the slots */
    uint64_t max_msg_bytes;     /* largest message accepted (advertised in registration) */
    uint32_t ctx;               /* default context per sequence; 0 = min(trained, 4096) */
    uint32_t sessions;          /* default sessions kept with KV state */
    uint32_t drain_ms;          /* SIGTERM / drain: how long in-flight requests may finish */
    uint32_t grace_ms;          /* controller lost this long: in-flight requests are cancelled */
    int threads;                /* CPU backend threads; 0 = all cores */
    const char *tls_ca_file, *tls_cert_key_file;
} worker_config;

/* Defaults: auto backend (CUDA when a device is present), heartbeat 1000 ms, 2 slots, queue 8, 1
 * MiB messages, ctx 0, 4 sessions, drain 30 s, grace 10 s. */
void worker_config_default(worker_config *c);

/* Runs the worker until it is drained, shut down, or fails. *signals counts SIGTERM/SIGINT
 * received (the first starts a drain). Returns the process exit status: 0 after a drain or
 * shutdown, 1 when it could not start (the reason logged), 3 after a fatal device error. */
int worker_serve(const worker_config *c, volatile sig_atomic_t *signals);

#endif
