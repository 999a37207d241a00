/* test_detok.c: the streaming detokenizer. Over every generated reference string (see
 * scripts/tokref/gen.js), feeding the reference ids one at a time yields exactly the bytes of a
 * one-shot decode, and every chunk handed out is complete, valid UTF-8 (checked with utf8proc);
 * plus the hold-back and flush rules on hand-built byte sequences, and which tokens decoding hides
 * (against the reference's skip_special_tokens). */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_vectors.h"

static gguf_file *g_file;
static tokenizer *g_tok;

static void setup(void) {
    g_tok = tv_load_tokenizer(&g_file);
}

static void teardown(void) {
    tokenizer_free(g_tok);
    gguf_close(g_file);
}

static bool valid_utf8(const char *s, size_t n) {
    size_t pos = 0;
    while (pos < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + pos, (utf8proc_ssize_t)(n - pos), &cp);
        if (k <= 0) return false;
        pos += (size_t)k;
    }
    return true;
}

START_TEST(stream_equals_one_shot) {
    bool show = _i % 2 == 1;
    size_t n;
    tv_case *cases = tv_load_cases(tv_case_files[_i / 2], &n);
    size_t ok = 0, tokens = 0;
    for (size_t i = 0; i < n; i++) {
        tv_case *c = &cases[i];
        char *once;
        size_t once_len;
        ws_error err = {{0}};
        ck_assert(tokenizer_decode(g_tok, c->ids, c->n_ids, show, &once, &once_len, &err) == WS_OK);
        char *acc = malloc(once_len + 1);
        size_t acc_len = 0;
        detok_stream d;
        detok_init(&d, g_tok, show);
        bool chunks_valid = true;
        for (size_t k = 0; k < c->n_ids; k++) {
            char chunk[512];
            size_t m;
            ck_assert_msg(detok_push(&d, c->ids[k], chunk, sizeof chunk, &m, &err) == WS_OK, "%s",
                          err.msg);
            chunks_valid &= valid_utf8(chunk, m);
            ck_assert(acc_len + m <= once_len);
            memcpy(acc + acc_len, chunk, m);
            acc_len += m;
        }
        char tail[8];
        size_t m = detok_flush(&d, tail, sizeof tail);
        /* The reference ids decode to valid UTF-8, so nothing is left to flush. */
        ck_assert_uint_eq(m, 0);
        if (chunks_valid && acc_len == once_len && memcmp(acc, once, once_len) == 0)
            ok++;
        else
            fprintf(stderr, "case %zu: stream differs (valid chunks %d)\n", i, chunks_valid);
        tokens += c->n_ids;
        free(acc);
        free(once);
    }
    fprintf(stderr, "%s, stream (%s specials): %zu of %zu cases, %zu tokens\n",
            strrchr(tv_case_files[_i / 2], '/') + 1, show ? "shown" : "hidden", ok, n, tokens);
    ck_assert_uint_eq(ok, n);
    tv_free_cases(cases, n);
}
END_TEST

/* Sequences around each added token decoded by the JavaScript reference with and without
 * skip_special_tokens: the same tokens are hidden (151643..151656, not 151657..151664). */
START_TEST(hidden_tokens_match_reference) {
    tv_bytes file = tv_read_file(WORKER_TEST_DATA "/tokenizer/lenml-qwen2.5-decode.tsv");
    char *line = file.p;
    size_t n = 0;
    while (line < file.p + file.n) {
        char *nl = memchr(line, '\n', (size_t)(file.p + file.n - line));
        ck_assert(nl != NULL);
        char *f[3];
        size_t len[3];
        ck_assert_int_eq(tv_fields(line, (size_t)(nl - line), f, len, 3), 3);
        size_t n_ids;
        int32_t *ids = tv_ids(f[0], len[0], &n_ids);
        for (int show = 0; show < 2; show++) {
            tv_bytes want = tv_unhex(f[1 + show], len[1 + show]);
            char *text;
            size_t text_len;
            ck_assert(tokenizer_decode(g_tok, ids, n_ids, show, &text, &text_len, NULL) == WS_OK);
            ck_assert_msg(text_len == want.n && memcmp(text, want.p, want.n) == 0,
                          "ids %.*s, show %d: '%s' vs '%s'", (int)len[0], f[0], show, text, want.p);
            free(text);
            free(want.p);
        }
        free(ids);
        n++;
        line = nl + 1;
    }
    ck_assert_uint_eq(n, 66);
    free(file.p);
}
END_TEST

/* The token whose bytes are the single byte b. */
static int32_t byte_token(uint8_t b) {
    for (int32_t id = 0; id < 512; id++) {
        char buf[8];
        size_t n;
        if (tokenizer_token_bytes(g_tok, id, false, buf, sizeof buf, &n, NULL) == WS_OK && n == 1 &&
            (uint8_t)buf[0] == b)
            return id;
    }
    ck_abort_msg("no token for byte 0x%02x", b);
    return -1;
}

static size_t push(detok_stream *d, int32_t id, char *out) {
    size_t m;
    ws_error err = {{0}};
    ck_assert_msg(detok_push(d, id, out, 512, &m, &err) == WS_OK, "%s", err.msg);
    return m;
}

/* "€" is E2 82 AC: as three byte tokens nothing comes out until the third; a hidden special
 * token in between changes nothing. */
START_TEST(holds_incomplete_sequence) {
    detok_stream d;
    char out[512];
    detok_init(&d, g_tok, false);
    ck_assert_uint_eq(push(&d, byte_token(0xE2), out), 0);
    ck_assert_uint_eq(push(&d, 151645, out), 0);
    ck_assert_uint_eq(push(&d, byte_token(0x82), out), 0);
    ck_assert_uint_eq(push(&d, byte_token(0xAC), out), 3);
    ck_assert(memcmp(out, "\xe2\x82\xac", 3) == 0);
    /* "a" then the first half of U+1F600: "a" comes out, the half is held, the flush returns it
     * as it is. */
    ck_assert_uint_eq(push(&d, byte_token('a'), out), 1);
    ck_assert_uint_eq(push(&d, byte_token(0xF0), out), 0);
    ck_assert_uint_eq(push(&d, byte_token(0x9F), out), 0);
    ck_assert_uint_eq(detok_flush(&d, out, sizeof out), 2);
    ck_assert(memcmp(out, "\xf0\x9f", 2) == 0);
    ck_assert_uint_eq(detok_flush(&d, out, sizeof out), 0);
    /* A byte that can never start a sequence is not held. */
    ck_assert_uint_eq(push(&d, byte_token(0xFF), out), 1);
    /* With show_special the marker's text comes out, after the held bytes it completes. */
    detok_init(&d, g_tok, true);
    ck_assert_uint_eq(push(&d, byte_token(0xC3), out), 0);
    ck_assert_uint_eq(push(&d, byte_token(0xA9), out), 2);
    ck_assert_uint_eq(push(&d, 151645, out), 10);
    ck_assert(memcmp(out, "<|im_end|>", 10) == 0);
}
END_TEST

START_TEST(push_errors) {
    detok_stream d;
    char out[4];
    size_t m;
    ws_error err = {{0}};
    detok_init(&d, g_tok, true);
    ck_assert_int_eq(detok_push(&d, 151645, out, sizeof out, &m, &err), WS_ERR_INVALID_ARG);
    ck_assert_int_eq(detok_push(&d, 151936, out, sizeof out, &m, &err), WS_ERR_RANGE);
    ck_assert_int_eq(detok_push(&d, -5, out, sizeof out, &m, &err), WS_ERR_RANGE);
    ck_assert(strstr(err.msg, "-5") != NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("detok");
    TCase *tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, stream_equals_one_shot, 0, 4);
    tcase_add_test(tc, holds_incomplete_sequence);
    tcase_add_test(tc, push_errors);
    tcase_add_test(tc, hidden_tokens_match_reference);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
