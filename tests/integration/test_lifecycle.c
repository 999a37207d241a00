/* test_lifecycle.c: a real worker-orcd process under faults: malformed and oversized messages,
 * bad loads (missing, corrupt, outside --model-dir) with the old model kept, a controller that goes
 * away and comes back, a killed worker restarted by the controller, SIGTERM drain with a request
 * in flight, and the WORKER_* environment twins of the flags. */
#include <signal.h>
#include <sys/stat.h>

#include "integration/service_fixture.h"

static const int32_t IDS[] = {785, 374, 279, 6, 315, 30, 198};

/* Sends raw bytes and expects an Error naming field (substring of the message: what). */
static void expect_error(fx *f, const void *buf, size_t len, ws_status code, const char *field,
                         const char *what) {
    ws_error err = {{0}};
    ck_assert_int_eq(ctl_send_raw(f->c, buf, len, &err), WS_OK);
    pmsg m;
    ck_assert_msg(ctl_next(f->c, 10000, &m, &err) == WS_OK, "%s", err.msg);
    ck_assert_msg(m.kind == PMSG_ERROR, "got %s", pmsg_kind_name(m.kind));
    ck_assert_msg(m.u.error.code == code, "code %s: %s", ws_strerror(m.u.error.code),
                  m.u.error.message);
    ck_assert_str_eq(m.u.error.field, field);
    ck_assert_msg(strstr(m.u.error.message, what) != NULL, "'%s' lacks '%s'", m.u.error.message,
                  what);
    pmsg_free(&m);
}

static void expect_encoded_error(fx *f, pmsg *m, ws_status code, const char *field,
                                 const char *what) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ws_error err = {{0}};
    if (!m->request_id) m->request_id = 77;
    ck_assert_int_eq(pmsg_encode(m, &buf, &len, &err), WS_OK);
    expect_error(f, buf, len, code, field, what);
    free(buf);
}

START_TEST(malformed_messages_get_errors) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-bad", "--max-msg-bytes", "4096", NULL});
    fx_load(&f, FX_MODEL);
    expect_error(&f, "", 0, WS_ERR_PROTOCOL, "envelope", "empty message");
    expect_error(&f, "\xff\xff\xff\xff\x0f", 5, WS_ERR_PROTOCOL, "envelope", "not a valid");
    /* A truncated envelope: a length-delimited field that claims more bytes than follow. */
    expect_error(&f, "\x08\x01\x82\x01\x10\x0a", 6, WS_ERR_PROTOCOL, "envelope", "not a valid");
    pmsg m;
    pmsg_init(&m, PMSG_HEALTH_QUERY, 0);
    m.protocol_version = 9;
    expect_encoded_error(&f, &m, WS_ERR_PROTOCOL, "protocol_version", "unsupported version 9");
    pmsg_init(&m, PMSG_NONE, 0);
    expect_encoded_error(&f, &m, WS_ERR_PROTOCOL, "body", "no body");
    pmsg_init(&m, PMSG_STREAM_END, 0);
    m.u.end.finish = GENERATE_FINISH_STOP;
    expect_encoded_error(&f, &m, WS_ERR_PROTOCOL, "body", "not a command");
    /* Out-of-range and ill-formed inference fields, each named. */
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer.prompt = "bad \xc3\x28 utf8";
    m.u.infer.max_tokens = 4;
    sampler_params_default(&m.u.infer.sampling);
    expect_encoded_error(&f, &m, WS_ERR_PROTOCOL, "infer.prompt", "invalid UTF-8");
    m.u.infer = fx_ids_request(IDS, 7, 0);
    expect_encoded_error(&f, &m, WS_ERR_PROTOCOL, "infer.max_tokens", "at least 1");
    m.u.infer = fx_ids_request(IDS, 7, 4);
    m.u.infer.sampling.temperature = -1.0f;
    expect_encoded_error(&f, &m, WS_ERR_INVALID_ARG, "infer.sampling", "temperature");
    int32_t bad_ids[] = {785, 99999};
    m.u.infer = fx_ids_request(bad_ids, 2, 4);
    expect_encoded_error(&f, &m, WS_ERR_RANGE, "infer.token_ids", "99999");
    m.u.infer = fx_ids_request(IDS, 7, 4095);
    expect_encoded_error(&f, &m, WS_ERR_RANGE, "infer.max_tokens", "exceeds the context");
    m.u.infer = fx_ids_request(IDS, 7, 4);
    m.u.infer.prompt = "both";
    expect_encoded_error(&f, &m, WS_ERR_PROTOCOL, "infer.prompt", "exactly one");
    /* Oversized: above the advertised 4096 bytes, below nng's hard limit: an error, not a drop. */
    char *big = malloc(6001);
    memset(big, 'a', 6000);
    big[6000] = 0;
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer = fx_ids_request(IDS, 7, 4);
    m.u.infer.token_ids = NULL;
    m.u.infer.n_token_ids = 0;
    m.u.infer.prompt = big;
    expect_encoded_error(&f, &m, WS_ERR_NOMEM, "max_msg_bytes", "exceeds max_msg_bytes 4096");
    free(big);
    /* Far above the limit (over nng's hard cap of 2 x 4096 + 64 KiB): nng drops the connection
     * without a word; the worker reconnects and registers again. */
    size_t huge_len = 200000;
    char *huge = calloc(1, huge_len);
    ck_assert_int_eq(ctl_send_raw(f.c, huge, huge_len, NULL), WS_OK);
    free(huge);
    ws_error rerr = {{0}};
    ck_assert_msg(ctl_wait_registration(f.c, 20000, &rerr) == WS_OK, "%s", rerr.msg);
    /* nng may hand the same message to the new connection when the old one dropped mid-write,
     * which drops that one too: wait until the registrations settle. */
    while (ctl_wait_registration(f.c, 1000, &rerr) == WS_OK)
        continue;
    ck_assert_uint_ge(ctl_registrations(f.c), 2);
    /* Still serving, and counting what it refused. */
    pmsg h;
    ws_error err = {{0}};
    ck_assert_int_eq(ctl_health(f.c, 5000, &h, &err), WS_OK);
    ck_assert_int_eq(h.u.status.state, PSTATE_READY);
    ck_assert_uint_eq(h.u.status.counters.bad_messages, 10);
    pmsg_free(&h);
    pinfer in = fx_ids_request(IDS, 7, 4);
    pstream_end end;
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, NULL, NULL, &end, field, &err), WS_OK);
    ck_assert_uint_eq(end.generated_tokens, 4);
    fx_stop(&f);
}
END_TEST

static ws_status try_load(fx *f, const char *path, ws_error *err) {
    pload l = {path, 0, 0, 0};
    pmsg r;
    ws_status st = ctl_load(f->c, &l, 60000, NULL, NULL, &r, err);
    if (st == WS_OK) pmsg_free(&r);
    return st;
}

START_TEST(bad_loads_keep_worker_alive) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-loads", NULL});
    ws_error err = {{0}};
    ck_assert_int_eq(try_load(&f, "missing.gguf", &err), WS_ERR_NOT_FOUND);
    ck_assert_msg(strstr(err.msg, "missing.gguf") != NULL, "%s", err.msg);
    /* Outside --model-dir: an absolute path, a ".." escape and a symbolic link out. */
    ck_assert_int_eq(try_load(&f, WORKER_TEST_DATA "/fixtures/" FX_MODEL, &err), WS_ERR_PERMISSION);
    ck_assert_msg(strstr(err.msg, "outside --model-dir") != NULL, "%s", err.msg);
    char path[256];
    snprintf(path, sizeof path, "%s/../../%s", f.dir, WORKER_TEST_DATA "/fixtures/" FX_MODEL);
    ck_assert_int_eq(try_load(&f, path, &err), WS_ERR_PERMISSION);
    snprintf(path, sizeof path, "%s/link.gguf", f.dir);
    ck_assert_int_eq(symlink(WORKER_TEST_DATA "/fixtures/" FX_MODEL, path), 0);
    ck_assert_int_eq(try_load(&f, "link.gguf", &err), WS_ERR_PERMISSION);
    /* A corrupt file: the fixture cut after 1000 bytes. */
    snprintf(path, sizeof path, "%s/cut.gguf", f.dir);
    ck_assert_int_eq(fx_copy(f.model, path, 1000), 0);
    ck_assert_int_eq(try_load(&f, "cut.gguf", &err), WS_ERR_FORMAT);
    pmsg h;
    ck_assert_int_eq(ctl_health(f.c, 5000, &h, &err), WS_OK);
    ck_assert_int_eq(h.u.status.state, PSTATE_IDLE);
    ck_assert_msg(strstr(h.u.status.reason, "cut.gguf") != NULL, "%s", h.u.status.reason);
    pmsg_free(&h);
    /* Load a good model, then fail a reload: the old model keeps serving. */
    ck_assert_int_eq(try_load(&f, FX_MODEL, &err), WS_OK);
    ck_assert_int_eq(try_load(&f, "cut.gguf", &err), WS_ERR_FORMAT);
    ck_assert_int_eq(ctl_health(f.c, 5000, &h, &err), WS_OK);
    ck_assert_int_eq(h.u.status.state, PSTATE_READY);
    ck_assert_msg(strstr(h.u.status.model_path, FX_MODEL) != NULL, "%s", h.u.status.model_path);
    pmsg_free(&h);
    pinfer in = fx_ids_request(IDS, 7, 4);
    pstream_end end;
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, NULL, NULL, &end, field, &err), WS_OK);
    /* Unload returns to idle. */
    ck_assert_int_eq(ctl_unload(f.c, &err), WS_OK);
    ck_assert_int_eq(ctl_health(f.c, 5000, &h, &err), WS_OK);
    ck_assert_int_eq(h.u.status.state, PSTATE_IDLE);
    ck_assert_uint_eq(h.u.status.memory.kv_cache, 0);
    pmsg_free(&h);
    fx_stop(&f);
}
END_TEST

START_TEST(controller_restart_reregisters) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-rereg", NULL});
    fx_load(&f, FX_MODEL);
    ck_assert_uint_eq(ctl_registrations(f.c), 1);
    ws_error err = {{0}};
    ck_assert_int_eq(ctl_relisten(f.c, 300, &err), WS_OK);
    ck_assert_msg(ctl_wait_registration(f.c, 20000, &err) == WS_OK, "%s", err.msg);
    ck_assert_uint_eq(ctl_registrations(f.c), 2);
    const preg *r = ctl_registration(f.c);
    ck_assert_str_eq(r->worker_id, "w-rereg");
    ck_assert_int_eq(r->state, PSTATE_READY); /* the model survived the controller */
    ck_assert_msg(strstr(r->model_path, FX_MODEL) != NULL, "%s", r->model_path);
    pinfer in = fx_ids_request(IDS, 7, 4);
    pstream_end end;
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, NULL, NULL, &end, field, &err), WS_OK);
    fx_stop(&f);
}
END_TEST

START_TEST(killed_worker_is_restarted) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-kill", NULL});
    fx_load(&f, FX_MODEL);
    pid_t first = ctl_worker_pid(f.c);
    ws_error err = {{0}};
    ck_assert_int_eq(ctl_signal_worker(f.c, SIGKILL, &err), WS_OK);
    pmsg m;
    ck_assert_int_eq(ctl_next(f.c, 10000, &m, &err), WS_ERR_IO);
    ck_assert_msg(strstr(err.msg, "exited") != NULL, "%s", err.msg);
    ck_assert_msg(ctl_restart_worker(f.c, 20000, &err) == WS_OK, "%s", err.msg);
    ck_assert_int_ne(ctl_worker_pid(f.c), first);
    ck_assert_int_eq(ctl_registration(f.c)->state, PSTATE_IDLE);
    fx_load(&f, FX_MODEL);
    pinfer in = fx_ids_request(IDS, 7, 4);
    pstream_end end;
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, NULL, NULL, &end, field, &err), WS_OK);
    fx_stop(&f);
}
END_TEST

START_TEST(sigterm_drains_in_flight) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-term", NULL});
    fx_load(&f, FX_MODEL);
    pmsg m;
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer = fx_ids_request(IDS, 7, 400);
    ws_error err = {{0}};
    uint64_t id = ctl_send(f.c, &m, &err);
    ck_assert_uint_ne(id, 0);
    pmsg r;
    do {
        ck_assert_int_eq(ctl_next(f.c, 30000, &r, &err), WS_OK);
        pmsg_kind k = r.kind;
        pmsg_free(&r);
        if (k == PMSG_TOKEN_CHUNK) break;
    } while (1);
    ck_assert_int_eq(ctl_signal_worker(f.c, SIGTERM, &err), WS_OK);
    usleep(100000);
    /* Draining: new work is refused, the request in flight runs to its end. */
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer = fx_ids_request(IDS, 7, 4);
    uint64_t late = ctl_send(f.c, &m, &err);
    bool ended = false, refused = false;
    while (!ended) {
        ws_status st = ctl_next(f.c, 30000, &r, &err);
        ck_assert_msg(st == WS_OK, "%s", err.msg);
        if (r.request_id == id && r.kind == PMSG_STREAM_END) {
            ended = true;
            ck_assert_int_eq(r.u.end.finish, GENERATE_FINISH_LENGTH);
            ck_assert_uint_eq(r.u.end.generated_tokens, 400);
        }
        if (r.request_id == late && r.kind == PMSG_ERROR) {
            refused = true;
            ck_assert_int_eq(r.u.error.code, WS_ERR_STATE);
        }
        pmsg_free(&r);
    }
    ck_assert(refused);
    int status = -1;
    ck_assert_int_eq(ctl_wait_worker(f.c, 20000, &status, &err), WS_OK);
    ck_assert_int_eq(status, 0);
    fx_stop(&f);
}
END_TEST

START_TEST(environment_twins) {
    setenv("WORKER_SLOTS", "3", 1);
    setenv("WORKER_QUEUE", "7", 1);
    setenv("WORKER_LOG_FORMAT", "json", 1);
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-env", "--queue", "6", NULL});
    const preg *r = ctl_registration(f.c);
    ck_assert_uint_eq(r->slots, 3);
    ck_assert_uint_eq(r->queue, 6); /* the command line wins over the environment */
    /* JSON logs carry the worker id and never the prompt text. */
    fx_load(&f, FX_MODEL);
    pinfer in;
    memset(&in, 0, sizeof in);
    sampler_params_default(&in.sampling);
    in.prompt = "secret prompt words";
    in.max_tokens = 2;
    pstream_end end;
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, NULL, NULL, &end, field, &err), WS_OK);
    FILE *log = fopen(f.log, "r");
    ck_assert_ptr_nonnull(log);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, log)) {
        ck_assert_msg(line[0] == '{' && strstr(line, "\"worker\":\"w-env\"") != NULL, "%s", line);
        ck_assert_msg(strstr(line, "secret") == NULL, "prompt leaked: %s", line);
        n++;
    }
    fclose(log);
    ck_assert_int_gt(n, 2);
    fx_stop(&f);
}
END_TEST

START_TEST(controller_loss_cancels_after_grace) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-grace", "--grace-ms", "300", NULL});
    fx_load(&f, FX_MODEL);
    pmsg m;
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer = fx_ids_request(IDS, 7, 4000);
    ws_error err = {{0}};
    uint64_t id = ctl_send(f.c, &m, &err);
    pmsg r;
    do {
        ck_assert_int_eq(ctl_next(f.c, 30000, &r, &err), WS_OK);
        pmsg_kind k = r.kind;
        pmsg_free(&r);
        if (k == PMSG_TOKEN_CHUNK) break;
    } while (1);
    /* The controller goes away for longer than the grace period: the request is cancelled, and
     * its end is delivered once the controller is back. */
    ck_assert_int_eq(ctl_relisten(f.c, 1500, &err), WS_OK);
    bool ended = false;
    while (!ended) {
        ck_assert_msg(ctl_next(f.c, 30000, &r, &err) == WS_OK, "%s", err.msg);
        if (r.request_id == id && r.kind == PMSG_STREAM_END) {
            ended = true;
            ck_assert_int_eq(r.u.end.finish, GENERATE_FINISH_CANCELLED);
            ck_assert_uint_lt(r.u.end.generated_tokens, 4000);
        }
        pmsg_free(&r);
    }
    ck_assert_msg(ctl_wait_registration(f.c, 20000, &err) == WS_OK, "%s", err.msg);
    ck_assert_uint_eq(ctl_registrations(f.c), 2);
    fx_stop(&f);
}
END_TEST

START_TEST(silent_worker_is_declared_dead) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-stop", NULL});
    ws_error err = {{0}};
    /* A stopped process sends no heartbeats: after 10 missed intervals of 200 ms it is dead. */
    ck_assert_int_eq(ctl_signal_worker(f.c, SIGSTOP, &err), WS_OK);
    pmsg m;
    ck_assert_int_eq(ctl_next(f.c, 10000, &m, &err), WS_ERR_IO);
    ck_assert_msg(strstr(err.msg, "heartbeats missed") != NULL, "%s", err.msg);
    ck_assert_msg(ctl_restart_worker(f.c, 20000, &err) == WS_OK, "%s", err.msg);
    fx_load(&f, FX_MODEL);
    fx_stop(&f);
}
END_TEST

START_TEST(tcp_transport) {
    fx f;
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
    fx_start_url(&f, url, (const char *const[]){"--worker-id", "w-tcp", NULL});
    fx_load(&f, FX_MODEL);
    pinfer in = fx_ids_request(IDS, 7, 8);
    pstream_end end;
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, NULL, NULL, &end, field, &err), WS_OK);
    ck_assert_uint_eq(end.generated_tokens, 8);
    fx_stop(&f);
}
END_TEST

START_TEST(drain_and_shutdown_commands) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-drain", NULL});
    fx_load(&f, FX_MODEL);
    ws_error err = {{0}};
    ck_assert_int_eq(ctl_drain(f.c, 10000, &err), WS_OK);
    int status = -1;
    ck_assert_int_eq(ctl_wait_worker(f.c, 20000, &status, &err), WS_OK);
    ck_assert_int_eq(status, 0);
    ck_assert_msg(ctl_restart_worker(f.c, 20000, &err) == WS_OK, "%s", err.msg);
    fx_load(&f, FX_MODEL);
    /* Shutdown cancels what runs: the stream ends CANCELLED, then the process exits 0. */
    pmsg m;
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer = fx_ids_request(IDS, 7, 4000);
    uint64_t id = ctl_send(f.c, &m, &err);
    pmsg_init(&m, PMSG_SHUTDOWN, 0);
    ck_assert_uint_ne(ctl_send(f.c, &m, &err), 0);
    bool ended = false;
    while (!ended) {
        pmsg r;
        ck_assert_msg(ctl_next(f.c, 20000, &r, &err) == WS_OK, "%s", err.msg);
        if (r.request_id == id && r.kind == PMSG_STREAM_END) {
            ended = true;
            ck_assert_int_eq(r.u.end.finish, GENERATE_FINISH_CANCELLED);
        }
        pmsg_free(&r);
    }
    ck_assert_int_eq(ctl_wait_worker(f.c, 20000, &status, &err), WS_OK);
    ck_assert_int_eq(status, 0);
    fx_stop(&f);
}
END_TEST

START_TEST(backend_choice_is_explicit) {
    /* auto picks CUDA exactly when a device is usable, and says so in the registration; asking
     * for CUDA where there is none fails loudly instead of falling back to the CPU. */
    bool cuda = engine_backend_available(ENGINE_CUDA);
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-auto", "--backend", "auto", NULL});
    ck_assert_str_eq(ctl_registration(f.c)->backend, cuda ? "cuda" : "cpu");
    fx_stop(&f);
    if (!cuda) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "'%s' serve --controller ipc:///tmp/orcd-none.ipc --worker-id x --backend cuda "
                 "2>&1 | grep -q 'not available'",
                 FX_WORKER);
        ck_assert_int_eq(system(cmd), 0);
    }
}
END_TEST

Suite *lifecycle_suite(void) {
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, malformed_messages_get_errors);
    tcase_add_test(tc, bad_loads_keep_worker_alive);
    tcase_add_test(tc, controller_restart_reregisters);
    tcase_add_test(tc, killed_worker_is_restarted);
    tcase_add_test(tc, sigterm_drains_in_flight);
    tcase_add_test(tc, environment_twins);
    tcase_add_test(tc, controller_loss_cancels_after_grace);
    tcase_add_test(tc, silent_worker_is_declared_dead);
    tcase_add_test(tc, tcp_transport);
    tcase_add_test(tc, drain_and_shutdown_commands);
    tcase_add_test(tc, backend_choice_is_explicit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(lifecycle_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
