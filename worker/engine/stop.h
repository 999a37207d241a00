/* stop.h: stop strings matched on generated text across token boundaries. Text is pushed as it is
 * decoded; what is released can no longer be part of a stop string, and text that could still be
 * the start of one is held back until the next push resolves it. The stop string itself and
 * anything after it are never released. */
#ifndef WORKER_ENGINE_STOP_H
#define WORKER_ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define STOP_MAX_STRINGS 8
#define STOP_MAX_LEN 1024 /* bytes of one stop string */

typedef struct {
    const char *str[STOP_MAX_STRINGS]; /* borrowed: valid until stop_free */
    size_t len[STOP_MAX_STRINGS];
    uint32_t n;
    bool matched;
    char *held; /* bytes not yet released: a suffix that may begin a stop string */
    size_t n_held, cap_held;
    char *out; /* the last release */
    size_t cap_out;
} stop_matcher;

/* Prepares m for n (<= STOP_MAX_STRINGS) stop strings. Each must be non-empty valid UTF-8 of at
 * most STOP_MAX_LEN bytes: otherwise WS_ERR_INVALID_ARG naming its index. n = 0 is allowed (every
 * push then releases everything). */
ws_status stop_init(stop_matcher *m, const char *const *stops, uint32_t n, ws_error *err);
void stop_free(stop_matcher *m); /* accepts NULL and a zeroed matcher */

/* Appends len bytes and sets *out / *out_len to the bytes now releasable (never NULL; valid until
 * the next call). When a stop string completes, *matched becomes true, the release ends just before
 * the earliest occurrence, and later pushes release nothing. */
ws_status stop_push(stop_matcher *m, const char *text, size_t len, const char **out,
                    size_t *out_len, bool *matched, ws_error *err);

/* At the end of generation: the held-back bytes (none after a match); valid until the next
 * call. */
size_t stop_flush(stop_matcher *m, const char **out);

#endif
