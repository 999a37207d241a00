/* parallel.c: the persistent pthread pool behind parallel_for. Workers sleep on a condition
 * variable between jobs; each job is published with a generation number so a worker runs it
 * exactly once, and the caller waits until every worker has reported its slice done. */
#include "base/parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct parallel_pool {
    int n_threads;
    pthread_t *workers; /* n_threads - 1 */
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a new job or stop */
    pthread_cond_t done_cv; /* a worker finished its slice */
    uint64_t generation;    /* incremented per job */
    int pending;            /* workers still running the current job */
    int stop;
    /* the current job */
    parallel_fn fn;
    void *ctx;
    int64_t n;
    int n_active; /* threads that get a slice */
};

static void slice(int64_t n, int n_active, int t, int64_t *begin, int64_t *end) {
    *begin = n * t / n_active;
    *end = n * (t + 1) / n_active;
}

typedef struct {
    parallel_pool *pool;
    int index; /* 1.. n_threads - 1 */
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    parallel_pool *p = wa->pool;
    int t = wa->index;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        parallel_fn fn = p->fn;
        void *ctx = p->ctx;
        int64_t n = p->n;
        int n_active = p->n_active;
        pthread_mutex_unlock(&p->mu);
        if (t < n_active) {
            int64_t b, e;
            slice(n, n_active, t, &b, &e);
            if (b < e) fn(ctx, b, e, t);
        }
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

ws_status parallel_new(int n_threads, parallel_pool **out, ws_error *err) {
    if (n_threads < 1 || n_threads > 4096)
        return ws_fail(err, WS_ERR_INVALID_ARG, "thread count %d outside [1, 4096]", n_threads);
    parallel_pool *p = calloc(1, sizeof *p);
    if (!p) return ws_fail(err, WS_ERR_NOMEM, "thread pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) goto nomem;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto nomem;
        wa->pool = p;
        wa->index = i;
        int rc = pthread_create(&p->workers[i - 1], NULL, worker_main, wa);
        if (rc != 0) {
            free(wa);
            parallel_free(p);
            return ws_fail(err, WS_ERR_NOMEM, "thread pool: cannot start thread %d of %d: %s", i,
                           n_threads, strerror(rc));
        }
        p->n_started++;
    }
    *out = p;
    return WS_OK;
nomem:
    parallel_free(p);
    return ws_fail(err, WS_ERR_NOMEM, "thread pool: out of memory");
}

void parallel_free(parallel_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int parallel_threads(const parallel_pool *p) {
    return p->n_threads;
}

void parallel_for(parallel_pool *p, int64_t n, int64_t min_rows, parallel_fn fn, void *ctx) {
    if (n <= 0) return;
    if (min_rows < 1) min_rows = 1;
    int64_t most = (n + min_rows - 1) / min_rows;
    int n_active = most < p->n_threads ? (int)most : p->n_threads;
    if (n_active == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->n_active = n_active;
    p->pending = p->n_started;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    int64_t b, e;
    slice(n, n_active, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
