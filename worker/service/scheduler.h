/* scheduler.h: admission and execution of requests. A fixed number of slots (one thread each)
 * run jobs; a bounded FIFO queue holds the ones waiting. Beyond slots + queue a submit is refused
 * at once (WS_ERR_OVERLOADED): nothing waits unboundedly. Cancellation reaches queued jobs (dropped
 * at once) and running ones (a flag the job polls between tokens). Knows nothing of the protocol
 * or the engine. */
#ifndef WORKER_SERVICE_SCHEDULER_H
#define WORKER_SERVICE_SCHEDULER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"

typedef enum { SCHED_DROP_CANCELLED = 0, SCHED_DROP_DEADLINE, SCHED_DROP_SHUTDOWN } sched_drop_why;

typedef struct sched_job {
    uint64_t request_id;
    int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
    int64_t enqueued_ns; /* set by sched_submit */
    atomic_bool cancel;  /* set by sched_cancel; the runner polls it */
    void *user;
    struct sched_job *next;
} sched_job;

/* run: executes job in a slot thread and then owns it. drop: a queued job leaves without running
 * (cancelled, expired, shut down); called without the scheduler's lock, and then owns the job. */
typedef void (*sched_run_fn)(void *ctx, sched_job *job);
typedef void (*sched_drop_fn)(void *ctx, sched_job *job, sched_drop_why why);

typedef struct scheduler scheduler;

ws_status sched_new(uint32_t n_slots, uint32_t n_queue, sched_run_fn run, sched_drop_fn drop,
                    void *ctx, scheduler **out, ws_error *err);
/* Cancels queued jobs (drop SHUTDOWN), flags running ones, joins the slot threads. Accepts NULL. */
void sched_free(scheduler *s);

/* Queues job. WS_ERR_OVERLOADED when slots and queue are full, WS_ERR_STATE after sched_close.
 * On failure the caller keeps the job. */
ws_status sched_submit(scheduler *s, sched_job *job, ws_error *err);

/* Cancels request_id: a queued job is dropped (CANCELLED), a running one flagged. Returns false
 * when no such job is queued or running (already finished: cancel is idempotent). */
bool sched_cancel(scheduler *s, uint64_t request_id);
/* Flags every running job and drops every queued one with why. */
void sched_cancel_all(scheduler *s, sched_drop_why why);
/* Drops queued jobs whose deadline is before now_ns (DEADLINE). */
void sched_expire(scheduler *s, int64_t now_ns);

void sched_counts(scheduler *s, uint32_t *running, uint32_t *queued);
/* Refuses further submits. */
void sched_close(scheduler *s);
/* Waits until nothing runs or waits, up to timeout_ms; returns true when idle. */
bool sched_wait_idle(scheduler *s, int timeout_ms);

/* Monotonic clock in nanoseconds. */
int64_t sched_now_ns(void);

#endif
