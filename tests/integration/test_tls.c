/* test_tls.c: the worker dials its controller over tls+tcp:// (mbed TLS), verifying the
 * controller's certificate with --tls-ca; a worker given the wrong CA never connects. The
 * certificates are made at run time with the openssl command; without it the suite exits 77
 * (reported as skipped by ctest). */
#include <signal.h>

#include "integration/service_fixture.h"

static char g_dir[64];

static void make_certs(void) {
    char cmd[1024];
    /* Two unrelated self-signed certificates for "localhost" (mbed TLS 2.28 matches host names,
     * not IP addresses). */
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout key%d.pem "
                 "-out cert%d.pem -days 2 -subj /CN=localhost "
                 "-addext subjectAltName=DNS:localhost >/dev/null 2>&1 && "
                 "cat cert%d.pem key%d.pem > both%d.pem",
                 g_dir, i, i, i, i, i);
        ck_assert_int_eq(system(cmd), 0);
    }
}

/* Starts a controller on tls+tcp with certificate 0 and a worker trusting CA ca_index. */
static ws_status start(controller **c, int ca_index, int port, ws_error *err) {
    static char url[64], cert[128], ca[128], log[128];
    snprintf(url, sizeof url, "tls+tcp://localhost:%d", port);
    snprintf(cert, sizeof cert, "%s/both0.pem", g_dir);
    snprintf(ca, sizeof ca, "%s/cert%d.pem", g_dir, ca_index);
    snprintf(log, sizeof log, "%s/worker%d.log", g_dir, ca_index);
    static const char *args[8];
    args[0] = "--backend", args[1] = "cpu", args[2] = "--tls-ca", args[3] = ca, args[4] = NULL;
    ctl_options o;
    ctl_options_default(&o);
    o.url = url;
    o.worker_bin = FX_WORKER;
    o.worker_args = args;
    o.worker_log = log;
    o.tls_cert_key_file = cert;
    ws_status st = ctl_open(&o, c, err);
    if (st != WS_OK) return st;
    return ctl_wait_registration(*c, 4000, err);
}

START_TEST(tls_with_the_right_ca) {
    controller *c = NULL;
    ws_error err = {{0}};
    int port = 30000 + (int)(getpid() % 20000);
    ck_assert_msg(start(&c, 0, port, &err) == WS_OK, "%s", err.msg);
    ck_assert_str_eq(ctl_registration(c)->backend, "cpu");
    pload l = {WORKER_TEST_DATA "/fixtures/" FX_MODEL, 0, 0, 0};
    pmsg r;
    ck_assert_msg(ctl_load(c, &l, 30000, NULL, NULL, &r, &err) == WS_OK, "%s", err.msg);
    pmsg_free(&r);
    static const int32_t ids[] = {785, 374, 279};
    pinfer in = fx_ids_request(ids, 3, 6);
    pstream_end end;
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(c, &in, 30000, NULL, NULL, &end, field, &err), WS_OK);
    ck_assert_uint_eq(end.generated_tokens, 6);
    ctl_close(c);
}
END_TEST

START_TEST(tls_with_a_wrong_ca_never_registers) {
    controller *c = NULL;
    ws_error err = {{0}};
    int port = 30000 + (int)((getpid() + 7) % 20000);
    ck_assert_int_eq(start(&c, 1, port, &err), WS_ERR_TIMEOUT);
    ctl_close(c);
}
END_TEST

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_tls: the openssl command is not installed: skipped\n");
        return 77;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/orcd-tls-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, make_certs, NULL);
    tcase_add_test(tc, tls_with_the_right_ca);
    tcase_add_test(tc, tls_with_a_wrong_ca_never_registers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) failed++;
    return failed ? 1 : 0;
}
