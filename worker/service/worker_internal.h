/* worker_internal.h: state shared by worker.c (loop, lifecycle), worker_load.c (load, unload) and
 * worker_infer.c (admission, sessions, generation). Not part of any public interface. */
#ifndef WORKER_SERVICE_WORKER_INTERNAL_H
#define WORKER_SERVICE_WORKER_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "service/protocol.h"
#include "service/scheduler.h"
#include "service/transport.h"
#include "service/worker.h"
#include "text/tokenizer.h"

/* A fair lock handing the engine to one slot at a time, in arrival order. Generation releases it
 * between tokens, so concurrent requests interleave token by token. The engine is not assumed to
 * be safe for concurrent calls on different sequences. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next, serving;
} turn_lock;
void turn_init(turn_lock *t);
void turn_acquire(turn_lock *t);
void turn_release(turn_lock *t);

/* A conversation whose KV state is kept between requests. */
typedef struct {
    char id[132];
    engine_seq *seq; /* NULL until first used */
    int32_t
        *history; /* tokens fed or sampled in order; the first engine_seq_len are in the cache */
    uint32_t n_history, cap_history;
    bool busy;   /* reserved by an admitted request */
    bool doomed; /* reset while busy: freed on release */
    int64_t last_used_ns;
} session;

/* A loaded model with everything derived from it. Replaced as a whole on reload. */
typedef struct {
    qwen2_model *model;
    engine *eng;
    tokenizer *tok;
    bool chat_ok; /* the file's chat template is one chat_render produces */
    char path[PATH_MAX];
    uint32_t n_ctx, n_sessions;
    pload_result facts; /* strings point into census_names / path / arch */
    char census_names[PROTO_MAX_CENSUS][16];
    char arch[32];
} loaded_model;

typedef struct worker {
    worker_config cfg;
    engine_backend backend;
    transport *tp;
    scheduler *sched;
    pthread_mutex_t mu; /* everything below up to the counters */
    pstate state;
    char reason[600];
    loaded_model *lm; /* NULL when idle */
    session *sessions;
    uint32_t n_sessions;
    engine_memory mem; /* refreshed under the engine turn after each change */
    pcounters cnt;
    double last_tps;
    turn_lock eng_turn;
    /* load in the background */
    pthread_t load_thread;
    bool load_running;
    atomic_bool load_done;
    atomic_bool fatal;     /* a sticky device error happened */
    atomic_uint in_flight; /* admitted requests whose final message is not sent yet */
    uint32_t hb_ms;
    int64_t start_ns;
} worker;

/* Encodes and sends m; failures are logged, never fatal (the controller may be away). */
void worker_send(worker *w, const pmsg *m);
/* Sends an Error reply for request_id. */
void worker_send_error(worker *w, uint64_t request_id, ws_status code, const char *field,
                       const char *msg);
/* Fills a Status body (strings point into w; call with w->mu held). */
void worker_status_fill(worker *w, pstatus *s, uint32_t running, uint32_t queued);

/* worker_load.c */
void worker_on_load(worker *w, const pmsg *m); /* starts the load thread or replies an error */
void worker_load_join(worker *w);              /* joins a finished load thread */
void worker_on_unload(worker *w, const pmsg *m);
void loaded_model_free(worker *w, loaded_model *lm); /* frees sessions first; accepts NULL */
void worker_refresh_memory(worker *w);               /* call holding the engine turn */

/* worker_infer.c */
void worker_on_infer(worker *w, const pmsg *m);
void worker_on_reset(worker *w, const pmsg *m);
void worker_job_run(void *ctx, sched_job *job);
void worker_job_drop(void *ctx, sched_job *job, sched_drop_why why);
void sessions_free_all(worker *w, uint32_t cap); /* holding the engine turn and w->mu */

#endif
