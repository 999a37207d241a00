/* scheduler.c: slot threads pulling from a bounded FIFO under one mutex. */
#include "service/scheduler.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct scheduler {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued, or stopping */
    pthread_cond_t idle; /* a job finished or left the queue */
    uint32_t n_slots, n_queue;
    sched_job *head, *tail;
    uint32_t queued;
    sched_job **running; /* n_slots; NULL when a slot is free */
    uint32_t n_running;
    bool closed, stopping;
    sched_run_fn run;
    sched_drop_fn drop;
    void *ctx;
    pthread_t *threads;
    uint32_t n_threads;
};

int64_t sched_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    scheduler *s;
    uint32_t slot;
} slot_arg;

static void *slot_main(void *p) {
    slot_arg a = *(slot_arg *)p;
    free(p);
    scheduler *s = a.s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->work, &s->mu);
        if (s->stopping) break;
        sched_job *j = s->head;
        s->head = j->next;
        if (!s->head) s->tail = NULL;
        s->queued--;
        j->next = NULL;
        s->running[a.slot] = j;
        s->n_running++;
        pthread_mutex_unlock(&s->mu);
        s->run(s->ctx, j); /* j belongs to run from here on */
        pthread_mutex_lock(&s->mu);
        s->running[a.slot] = NULL;
        s->n_running--;
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

ws_status sched_new(uint32_t n_slots, uint32_t n_queue, sched_run_fn run, sched_drop_fn drop,
                    void *ctx, scheduler **out, ws_error *err) {
    if (n_slots == 0 || n_slots > 256)
        return ws_fail(err, WS_ERR_INVALID_ARG, "slots %u: expected 1..256", n_slots);
    if (n_queue > 65536)
        return ws_fail(err, WS_ERR_INVALID_ARG, "queue %u: expected 0..65536", n_queue);
    scheduler *s = calloc(1, sizeof *s);
    if (!s) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
    s->running = calloc(n_slots, sizeof *s->running);
    s->threads = calloc(n_slots, sizeof *s->threads);
    if (!s->running || !s->threads) {
        free(s->running);
        free(s->threads);
        free(s);
        return ws_fail(err, WS_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->n_slots = n_slots;
    s->n_queue = n_queue;
    s->run = run;
    s->drop = drop;
    s->ctx = ctx;
    for (uint32_t i = 0; i < n_slots; i++) {
        slot_arg *a = malloc(sizeof *a);
        if (a) a->s = s, a->slot = i;
        if (!a || pthread_create(&s->threads[i], NULL, slot_main, a) != 0) {
            free(a);
            sched_free(s);
            return ws_fail(err, WS_ERR_NOMEM, "could not start slot thread %u", i);
        }
        s->n_threads++;
    }
    *out = s;
    return WS_OK;
}

/* Unlinks queued jobs matching (id, or all when all) into a list returned to the caller. */
static sched_job *unlink_queued(scheduler *s, bool all, uint64_t id, int64_t expire_ns) {
    sched_job *out = NULL, **tail = &out, **pp = &s->head;
    s->tail = NULL;
    while (*pp) {
        sched_job *j = *pp;
        bool take = all || (expire_ns ? (j->deadline_ns && j->deadline_ns < expire_ns)
                                      : j->request_id == id);
        if (take) {
            *pp = j->next;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
            s->queued--;
        } else {
            s->tail = j;
            pp = &j->next;
        }
    }
    if (out) pthread_cond_broadcast(&s->idle);
    return out;
}

static void drop_list(scheduler *s, sched_job *list, sched_drop_why why) {
    while (list) {
        sched_job *next = list->next;
        s->drop(s->ctx, list, why);
        list = next;
    }
}

void sched_free(scheduler *s) {
    if (!s) return;
    sched_cancel_all(s, SCHED_DROP_SHUTDOWN);
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    s->closed = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    for (uint32_t i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    free(s->running);
    free(s->threads);
    free(s);
}

ws_status sched_submit(scheduler *s, sched_job *job, ws_error *err) {
    ws_status st = WS_OK;
    pthread_mutex_lock(&s->mu);
    uint32_t free_slots = s->n_slots - s->n_running;
    if (s->closed) {
        st = ws_fail(err, WS_ERR_STATE, "not accepting requests (draining or shutting down)");
    } else if (s->queued >= free_slots + s->n_queue) {
        st = ws_fail(err, WS_ERR_OVERLOADED,
                     "overloaded: %u running and %u queued (slots %u, "
                     "queue %u)",
                     s->n_running, s->queued, s->n_slots, s->n_queue);
    } else {
        job->enqueued_ns = sched_now_ns();
        job->next = NULL;
        atomic_store(&job->cancel, false);
        if (s->tail)
            s->tail->next = job;
        else
            s->head = job;
        s->tail = job;
        s->queued++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

bool sched_cancel(scheduler *s, uint64_t request_id) {
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < s->n_slots; i++)
        if (s->running[i] && s->running[i]->request_id == request_id) {
            atomic_store(&s->running[i]->cancel, true);
            found = true;
        }
    sched_job *list = unlink_queued(s, false, request_id, 0);
    pthread_mutex_unlock(&s->mu);
    drop_list(s, list, SCHED_DROP_CANCELLED);
    return found || list != NULL;
}

void sched_cancel_all(scheduler *s, sched_drop_why why) {
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < s->n_slots; i++)
        if (s->running[i]) atomic_store(&s->running[i]->cancel, true);
    sched_job *list = unlink_queued(s, true, 0, 0);
    pthread_mutex_unlock(&s->mu);
    drop_list(s, list, why);
}

void sched_expire(scheduler *s, int64_t now_ns) {
    pthread_mutex_lock(&s->mu);
    sched_job *list = s->head ? unlink_queued(s, false, 0, now_ns) : NULL;
    pthread_mutex_unlock(&s->mu);
    drop_list(s, list, SCHED_DROP_DEADLINE);
}

void sched_counts(scheduler *s, uint32_t *running, uint32_t *queued) {
    pthread_mutex_lock(&s->mu);
    *running = s->n_running;
    *queued = s->queued;
    pthread_mutex_unlock(&s->mu);
}

void sched_close(scheduler *s) {
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    pthread_mutex_unlock(&s->mu);
}

bool sched_wait_idle(scheduler *s, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (int64_t)(timeout_ms % 1000) * 1000000;
    ts.tv_sec += timeout_ms / 1000 + ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&s->mu);
    while (s->n_running || s->queued)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &ts) != 0) break;
    bool idle = !s->n_running && !s->queued;
    pthread_mutex_unlock(&s->mu);
    return idle;
}
