/* service_fixture.h: helpers for the integration suites: a temporary directory, a controller
 * listening on ipc:// inside it and a real worker-orcd process on the CPU backend. nng is created
 * inside each test (after Check's fork): it is not fork-safe. */
#ifndef TESTS_SERVICE_FIXTURE_H
#define TESTS_SERVICE_FIXTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller.h"

#define FX_MODEL "ta-q8_0.gguf"
#define FX_WORKER WORKER_BIN_DIR "/worker-orcd"

typedef struct {
    char dir[64];
    char url[128];
    char log[128];
    char model[128]; /* the fixture model copied into dir (the worker's --model-dir) */
    controller *c;
} fx;

/* Copies a file; returns 0 on success. */
static inline int fx_copy(const char *from, const char *to, size_t max_bytes) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int rc = (in && out) ? 0 : -1;
    char buf[65536];
    size_t n, total = 0;
    while (rc == 0 && total < max_bytes && (n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (n > max_bytes - total) n = max_bytes - total;
        if (fwrite(buf, 1, n, out) != n) rc = -1;
        total += n;
    }
    if (in) fclose(in);
    if (out) fclose(out);
    return rc;
}

/* Prints the worker's log (for a failing test). */
static inline void fx_dump_log(const fx *f) {
    FILE *in = fopen(f->log, "r");
    if (!in) return;
    char line[1024];
    fprintf(stderr, "---- worker log ----\n");
    while (fgets(line, sizeof line, in))
        fputs(line, stderr);
    fclose(in);
}

/* Starts a controller and a worker with `extra` serve arguments (NULL-terminated, may be NULL)
 * and waits for the registration. */
static inline void fx_start_url(fx *f, const char *url, const char *const *extra) {
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/orcd-it-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    if (url)
        snprintf(f->url, sizeof f->url, "%s", url);
    else
        snprintf(f->url, sizeof f->url, "ipc://%s/ctl.ipc", f->dir);
    snprintf(f->log, sizeof f->log, "%s/worker.log", f->dir);
    snprintf(f->model, sizeof f->model, "%s/" FX_MODEL, f->dir);
    ck_assert_int_eq(fx_copy(WORKER_TEST_DATA "/fixtures/" FX_MODEL, f->model, (size_t)-1), 0);
    static const char *args[40];
    int n = 0;
    args[n++] = "--backend";
    args[n++] = "cpu";
    args[n++] = "--threads";
    args[n++] = "1";
    args[n++] = "--model-dir";
    args[n++] = f->dir;
    for (int i = 0; extra && extra[i] && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    ctl_options o;
    ctl_options_default(&o);
    o.url = f->url;
    o.worker_bin = FX_WORKER;
    o.worker_args = args;
    o.worker_log = f->log;
    o.heartbeat_ms = 200;
    o.missed_heartbeats = 10;
    ws_error err = {{0}};
    ck_assert_msg(ctl_open(&o, &f->c, &err) == WS_OK, "ctl_open: %s", err.msg);
    ws_status st = ctl_wait_registration(f->c, 20000, &err);
    if (st != WS_OK) fx_dump_log(f);
    ck_assert_msg(st == WS_OK, "registration: %s", err.msg);
}

static inline void fx_start(fx *f, const char *const *extra) {
    fx_start_url(f, NULL, extra);
}

static inline void fx_load(fx *f, const char *name) {
    pload l = {name, 0, 0, 0};
    pmsg r;
    ws_error err = {{0}};
    ws_status st = ctl_load(f->c, &l, 60000, NULL, NULL, &r, &err);
    if (st != WS_OK) fx_dump_log(f);
    ck_assert_msg(st == WS_OK, "load %s: %s", name, err.msg);
    pmsg_free(&r);
}

/* True when the worker's log holds a sanitizer report (builds with WORKER_SANITIZE). */
static inline bool fx_log_has_sanitizer_report(const fx *f) {
    FILE *in = fopen(f->log, "r");
    if (!in) return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, in))
        found = strstr(line, "Sanitizer") != NULL || strstr(line, "runtime error:") != NULL;
    fclose(in);
    return found;
}

/* Stops the worker (SIGTERM: it drains and exits, running the leak check in sanitizer builds),
 * checks its log and removes the directory. */
static inline void fx_stop(fx *f) {
    ctl_close(f->c);
    f->c = NULL;
    if (fx_log_has_sanitizer_report(f)) fx_dump_log(f);
    ck_assert_msg(!fx_log_has_sanitizer_report(f), "the worker's log has a sanitizer report");
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A greedy request over token ids. */
static inline pinfer fx_ids_request(const int32_t *ids, uint32_t n, uint32_t max_tokens) {
    pinfer in;
    memset(&in, 0, sizeof in);
    sampler_params_default(&in.sampling);
    in.token_ids = ids;
    in.n_token_ids = n;
    in.max_tokens = max_tokens;
    in.ignore_eos = true;
    return in;
}

/* Collects a stream's tokens and text. */
typedef struct {
    int32_t tokens[4096];
    uint32_t n_tokens;
    char text[65536];
    size_t n_text;
    uint32_t next_index;
    bool index_ok;
    uint32_t stop_after; /* return false after this many chunks (0 = never) */
    uint32_t chunks;
} fx_stream;

static inline bool fx_collect(void *user, const ptoken_chunk *c) {
    fx_stream *s = user;
    if (c->n_tokens && c->index != s->next_index) s->index_ok = false;
    for (uint32_t i = 0; i < c->n_tokens && s->n_tokens < 4096; i++)
        s->tokens[s->n_tokens++] = c->tokens[i];
    s->next_index += c->n_tokens;
    if (s->n_text + c->text_len < sizeof s->text) {
        memcpy(s->text + s->n_text, c->text, c->text_len);
        s->n_text += c->text_len;
    }
    s->chunks++;
    return !(s->stop_after && s->chunks >= s->stop_after);
}

static inline void fx_stream_init(fx_stream *s) {
    memset(s, 0, sizeof *s);
    s->index_ok = true;
}

#endif
