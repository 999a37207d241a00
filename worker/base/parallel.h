/* parallel.h: a small persistent thread pool with one operation, a parallel-for over a range of
 * rows. The calling thread takes part, so a pool of n threads starts n - 1 workers. Ranges are
 * split into contiguous, nearly equal slices, one per thread, so a given n and thread count always
 * give the same slices (results never depend on scheduling). */
#ifndef WORKER_BASE_PARALLEL_H
#define WORKER_BASE_PARALLEL_H

#include <stdint.h>

#include "base/status.h"

typedef struct parallel_pool parallel_pool;

/* Work on rows [begin, end) as thread `thread` (0 = the caller, < parallel_threads()). */
typedef void (*parallel_fn)(void *ctx, int64_t begin, int64_t end, int thread);

/* Starts a pool of n_threads >= 1 threads (the caller counts as one). */
ws_status parallel_new(int n_threads, parallel_pool **out, ws_error *err);

/* Stops and joins the workers; accepts NULL. Must not be called while parallel_for runs. */
void parallel_free(parallel_pool *p);

int parallel_threads(const parallel_pool *p);

/* Calls fn over [0, n) split across the pool and returns when every slice is done. Slices smaller
 * than min_rows are not split further (fewer threads take part). One caller at a time. */
void parallel_for(parallel_pool *p, int64_t n, int64_t min_rows, parallel_fn fn, void *ctx);

#endif
