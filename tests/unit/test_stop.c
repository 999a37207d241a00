/* test_stop.c: stop strings over streamed text. Fixed cases check what is released after each
 * push; a randomised case compares the concatenated releases with the text cut at the earliest
 * occurrence found by searching the whole string at once (strstr), for random splits. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/stop.h"

/* Pushes the pieces and checks each release against want[i]; returns whether a match happened.
 * flushed receives what stop_flush gives at the end. */
static bool run_pieces(const char *const *stops, uint32_t n_stops, const char *const *pieces,
                       const char *const *want, int n, char *flushed) {
    stop_matcher m;
    ck_assert_int_eq(stop_init(&m, stops, n_stops, NULL), WS_OK);
    bool matched = false;
    for (int i = 0; i < n; i++) {
        const char *out;
        size_t len;
        ck_assert_int_eq(stop_push(&m, pieces[i], strlen(pieces[i]), &out, &len, &matched, NULL),
                         WS_OK);
        ck_assert_msg(len == strlen(want[i]) && memcmp(out, want[i], len) == 0,
                      "push %d ('%s'): released '%.*s', want '%s'", i, pieces[i], (int)len, out,
                      want[i]);
    }
    const char *out;
    size_t len = stop_flush(&m, &out);
    memcpy(flushed, out, len);
    flushed[len] = '\0';
    stop_free(&m);
    return matched;
}

START_TEST(test_split_across_tokens) {
    const char *stops[1] = {"<|end|>"};
    const char *pieces[5] = {"Hello Wo", "rld<", "|end", "|>more", "again"};
    const char *want[5] = {"Hello Wo", "rld", "", "", ""};
    char fl[64];
    ck_assert(run_pieces(stops, 1, pieces, want, 5, fl));
    ck_assert_str_eq(fl, ""); /* nothing after the stop string is ever released */
    /* The whole stop string inside one piece, with text on both sides. */
    const char *p2[1] = {"abc<|end|>def"};
    const char *w2[1] = {"abc"};
    ck_assert(run_pieces(stops, 1, p2, w2, 1, fl));
}
END_TEST

START_TEST(test_partial_released) {
    const char *stops[1] = {"STOP"};
    const char *pieces[4] = {"abST", "OX", "yS", "TO"};
    const char *want[4] = {"ab", "STOX", "y", ""};
    char fl[64];
    ck_assert(!run_pieces(stops, 1, pieces, want, 4, fl));
    ck_assert_str_eq(fl, "STO"); /* held at the end, released by the flush */
    /* Overlap: "aab" inside "aaab" fed a byte at a time. */
    const char *s2[1] = {"aab"};
    const char *p2[5] = {"a", "a", "a", "b", "c"};
    const char *w2[5] = {"", "", "a", "", ""};
    ck_assert(run_pieces(s2, 1, p2, w2, 5, fl));
}
END_TEST

START_TEST(test_multiple_stops) {
    const char *stops[3] = {"bc", "abcd", "\n\n"};
    const char *pieces[2] = {"xab", "cd"};
    const char *want[2] = {"x", ""}; /* "abcd" starts before "bc": the earliest wins */
    char fl[64];
    ck_assert(run_pieces(stops, 3, pieces, want, 2, fl));
    const char *p2[3] = {"one\n", "two\n", "\nthree"};
    const char *w2[3] = {"one", "\ntwo", ""};
    ck_assert(run_pieces(stops, 3, p2, w2, 3, fl));
    /* No stop strings: everything is released at once. */
    const char *w3[3] = {"one\n", "two\n", "\nthree"};
    ck_assert(!run_pieces(stops, 0, p2, w3, 3, fl));
    ck_assert_str_eq(fl, "");
}
END_TEST

START_TEST(test_utf8_stops) {
    /* "日本" (e6 97 a5 e6 9c ac): "今日" holds its "日" until "本" completes the stop string. */
    const char *stops[2] = {"日本", "é!"};
    const char *pieces[2] = {"今日", "本語"};
    const char *want[2] = {"今", ""};
    char fl[64];
    ck_assert(run_pieces(stops, 2, pieces, want, 2, fl));
    const char *p2[3] = {"caf", "é", "?é!"};
    const char *w2[3] = {"caf", "", "é?"};
    ck_assert(run_pieces(stops, 2, p2, w2, 3, fl));
    /* A shared lead byte is not a match: "日曜" shares e6 with "日本" but diverges. */
    const char *p3[2] = {"日", "曜"};
    const char *w3[2] = {"", "日曜"};
    ck_assert(!run_pieces(stops, 2, p3, w3, 2, fl));
}
END_TEST

START_TEST(test_init_errors) {
    stop_matcher m;
    ws_error err;
    const char *empty[2] = {"ok", ""};
    ck_assert_int_eq(stop_init(&m, empty, 2, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "stop string 1"));
    const char *bad[1] = {"a\xc3(b"};
    ck_assert_int_eq(stop_init(&m, bad, 1, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "offset 1"));
    const char *overlong[1] = {"\xc0\xaf"};
    ck_assert_int_eq(stop_init(&m, overlong, 1, &err), WS_ERR_INVALID_ARG);
    const char *nine[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    ck_assert_int_eq(stop_init(&m, nine, 9, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "9"));
    char *big = malloc(STOP_MAX_LEN + 2);
    memset(big, 'x', STOP_MAX_LEN + 1);
    big[STOP_MAX_LEN + 1] = '\0';
    const char *longs[1] = {big};
    ck_assert_int_eq(stop_init(&m, longs, 1, &err), WS_ERR_INVALID_ARG);
    big[STOP_MAX_LEN] = '\0';
    ck_assert_int_eq(stop_init(&m, longs, 1, &err), WS_OK);
    stop_free(&m);
    free(big);
    stop_free(NULL);
}
END_TEST

/* Random texts over {a, b, c} with random splits; expected output is the text before the earliest
 * occurrence of any stop string, found on the whole text. */
START_TEST(test_random_splits) {
    const char *stops[3] = {"abca", "cc", "bab"};
    uint32_t x = 99;
    for (int trial = 0; trial < 2000; trial++) {
        char text[64];
        int n = 1 + trial % 60;
        for (int i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            text[i] = "abc"[(x >> 16) % 3];
        }
        text[n] = '\0';
        size_t want = (size_t)n;
        bool want_match = false;
        for (int s = 0; s < 3; s++) {
            const char *hit = strstr(text, stops[s]);
            if (hit && (size_t)(hit - text) <= want) {
                want = (size_t)(hit - text);
                want_match = true;
            }
        }
        stop_matcher m;
        ck_assert_int_eq(stop_init(&m, stops, 3, NULL), WS_OK);
        char got[128];
        size_t n_got = 0;
        bool matched = false;
        for (int i = 0; i < n;) {
            x = x * 1664525u + 1013904223u;
            int k = 1 + (int)((x >> 16) % 5);
            if (k > n - i) k = n - i;
            const char *out;
            size_t len;
            ck_assert_int_eq(stop_push(&m, text + i, (size_t)k, &out, &len, &matched, NULL), WS_OK);
            memcpy(got + n_got, out, len);
            n_got += len;
            i += k;
            /* What is released is always final: a prefix of the expected output. */
            ck_assert(n_got <= want && memcmp(got, text, n_got) == 0);
            /* Held back: less than the longest stop string (4 bytes). */
            ck_assert(matched || (size_t)i - n_got < 4);
        }
        const char *out;
        size_t len = stop_flush(&m, &out);
        memcpy(got + n_got, out, len);
        n_got += len;
        ck_assert_int_eq(matched, want_match);
        ck_assert_msg(n_got == want && memcmp(got, text, want) == 0, "text '%s': got '%.*s'", text,
                      (int)n_got, got);
        stop_free(&m);
    }
}
END_TEST

int main(void) {
    Suite *su = suite_create("stop");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_split_across_tokens);
    tcase_add_test(tc, test_partial_released);
    tcase_add_test(tc, test_multiple_stops);
    tcase_add_test(tc, test_utf8_stops);
    tcase_add_test(tc, test_init_errors);
    tcase_add_test(tc, test_random_splits);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
