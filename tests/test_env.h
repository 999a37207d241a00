/* test_env.h: how a suite learns that it runs in the sanitizer pass of scripts/test.
 * There the heavy data-driven loops cover a representative subset (listed first in each suite's
 * table), since the same suites run in full in the main build; the sanitizer pass is after memory
 * and undefined-behaviour errors, which the subset exercises through every code path. */
#ifndef WORKER_TESTS_TEST_ENV_H
#define WORKER_TESTS_TEST_ENV_H

#include <stdlib.h>
#include <string.h>

/* True when WORKER_TEST_LIGHT is set to a non-empty value other than "0". */
static inline int test_light(void) {
    const char *v = getenv("WORKER_TEST_LIGHT");
    return v && *v && strcmp(v, "0") != 0;
}

#endif
