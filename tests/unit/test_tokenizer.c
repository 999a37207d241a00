/* test_tokenizer.c: the Qwen2 tokenizer against references nobody here wrote: llama.cpp's 46
 * published Qwen2 vectors (made with Hugging Face transformers), 3,463 category strings and 6,000
 * random all-of-Unicode strings tokenized by the independent JavaScript implementation
 * (@lenml/tokenizers with the upstream tokenizer.json; see scripts/tokref/gen.js), the documented
 * vectors and token facts of the Qwen2.5 vocabulary, and the error contract (invalid UTF-8,
 * unsupported tokenizers, ids out of range). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Encodes s (NUL-terminated) and compares with the expected ids. */
static void expect_ids(const char *s, bool special, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    ws_error err = {{0}};
    ck_assert_msg(tokenizer_encode(g_tok, s, strlen(s), special, &ids, &n, &err) == WS_OK, "%s",
                  err.msg);
    char a[512], b[512];
    ck_assert_msg(n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0),
                  "'%s': got [%s] want [%s]", s, tv_fmt_ids(a, sizeof a, ids, n),
                  tv_fmt_ids(b, sizeof b, want, n_want));
    free(ids);
}

/* llama.cpp's test layout: inputs separated by "\n__ggml_vocab_test__\n", one output line each. */
START_TEST(published_vectors) {
    tv_bytes inp = tv_read_file(WORKER_TEST_DATA "/tokenizer/qwen2-vectors.inp");
    tv_bytes out = tv_read_file(WORKER_TEST_DATA "/tokenizer/qwen2-vectors.out");
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = inp.p, *o = out.p;
    int n = 0, ok = 0;
    while (p < inp.p + inp.n) {
        char *next = strstr(p, sep);
        ck_assert(next != NULL);
        char *onl = strchr(o, '\n');
        ck_assert(onl != NULL);
        size_t n_want;
        int32_t *want = tv_ids(o, (size_t)(onl - o), &n_want);
        int32_t *ids;
        size_t n_ids;
        ws_error err = {{0}};
        ck_assert_msg(tokenizer_encode(g_tok, p, (size_t)(next - p), false, &ids, &n_ids, &err) ==
                          WS_OK,
                      "%s", err.msg);
        if (n_ids == n_want && (n_ids == 0 || memcmp(ids, want, n_ids * sizeof *ids) == 0))
            ok++;
        else {
            char a[512], b[512];
            fprintf(stderr, "vector %d: got [%s] want [%s]\n", n,
                    tv_fmt_ids(a, sizeof a, ids, n_ids), tv_fmt_ids(b, sizeof b, want, n_want));
        }
        free(ids);
        free(want);
        n++;
        p = next + strlen(sep);
        o = onl + 1;
    }
    ck_assert_int_eq(n, 46);
    ck_assert_int_eq(ok, 46);
    free(inp.p);
    free(out.p);
}
END_TEST

/* Every generated string encodes to exactly the JavaScript reference's ids. */
START_TEST(generated_vectors) {
    size_t n;
    tv_case *cases = tv_load_cases(tv_case_files[_i], &n);
    ck_assert_uint_ge(n, 3000);
    size_t ok = 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        tv_case *c = &cases[i];
        int32_t *ids;
        size_t n_ids;
        ws_error err = {{0}};
        ck_assert_msg(
            tokenizer_encode(g_tok, c->text.p, c->text.n, c->special, &ids, &n_ids, &err) == WS_OK,
            "case %zu: %s", i, err.msg);
        if (n_ids == c->n_ids && (n_ids == 0 || memcmp(ids, c->ids, n_ids * sizeof *ids) == 0))
            ok++;
        else if (shown++ < 8) {
            char a[512], b[512];
            fprintf(stderr, "case %zu (%c, %zu bytes) '%.60s': got [%s] want [%s]\n", i,
                    c->special ? 'P' : 'T', c->text.n, c->text.p,
                    tv_fmt_ids(a, sizeof a, ids, n_ids), tv_fmt_ids(b, sizeof b, c->ids, c->n_ids));
        }
        free(ids);
    }
    fprintf(stderr, "%s: %zu of %zu match\n", strrchr(tv_case_files[_i], '/') + 1, ok, n);
    ck_assert_uint_eq(ok, n);
    tv_free_cases(cases, n);
}
END_TEST

/* decode(encode(x)) is NFC(x), NFC as computed by JavaScript's String.normalize. */
START_TEST(decode_inverts_encode) {
    size_t n;
    tv_case *cases = tv_load_cases(tv_case_files[_i], &n);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        tv_case *c = &cases[i];
        int32_t *ids;
        size_t n_ids, len;
        char *text;
        ws_error err = {{0}};
        ck_assert(tokenizer_encode(g_tok, c->text.p, c->text.n, c->special, &ids, &n_ids, &err) ==
                  WS_OK);
        ck_assert_msg(tokenizer_decode(g_tok, ids, n_ids, true, &text, &len, &err) == WS_OK, "%s",
                      err.msg);
        if (len == c->nfc.n && memcmp(text, c->nfc.p, len) == 0)
            ok++;
        else
            fprintf(stderr, "case %zu: decode gives %zu bytes, NFC has %zu\n", i, len, c->nfc.n);
        free(text);
        free(ids);
    }
    ck_assert_uint_eq(ok, n);
    tv_free_cases(cases, n);
}
END_TEST

/* Facts of the Qwen2.5 vocabulary (tests/data/README.md, the upstream tokenizer.json). */
START_TEST(vocabulary_facts) {
    ck_assert_uint_eq(tokenizer_n_vocab(g_tok), 151936);
    ck_assert_int_eq(tokenizer_eos(g_tok), 151645);
    int32_t stop[4];
    ck_assert_uint_eq(tokenizer_stop_ids(g_tok, stop, 4), 2);
    ck_assert_int_eq(stop[0], 151645);
    ck_assert_int_eq(stop[1], 151643);
    ck_assert_int_eq(tokenizer_find_special(g_tok, "<|im_start|>"), 151644);
    ck_assert_int_eq(tokenizer_find_special(g_tok, "<tool_call>"), 151657);
    ck_assert_int_eq(tokenizer_find_special(g_tok, "<|file_sep|>"), 151664);
    ck_assert_int_eq(tokenizer_find_special(g_tok, "<|nope|>"), -1);
    /* Hugging Face's skip_special_tokens hides 151643..151656 and shows 151657..151664. */
    for (int32_t id = 151643; id <= 151664; id++)
        ck_assert_msg(tokenizer_is_special(g_tok, id) == (id <= 151656), "id %d", id);
    ck_assert(!tokenizer_is_special(g_tok, 220));
    ck_assert(!tokenizer_is_special(g_tok, -1));
    ck_assert(!tokenizer_is_special(g_tok, 151936));
}
END_TEST

START_TEST(documented_vectors) {
    const int32_t france[] = {3838, 374, 279, 6722, 315, 9625, 30};
    expect_ids("What is the capital of France?", false, france, 7);
    const int32_t chat[] = {151644, 872, 198, 6023, 151645};
    expect_ids("<|im_start|>user\nhi<|im_end|>", true, chat, 5);
    /* Without special parsing the markers are plain text: '<', '|', 'im', '_end', '|', '>'. */
    const int32_t plain[] = {27, 91, 318, 6213, 91, 29};
    expect_ids("<|im_end|>", false, plain, 6);
    expect_ids("", false, NULL, 0);
}
END_TEST

START_TEST(invalid_utf8_names_offset) {
    static const struct {
        const char *s;
        size_t len, offset;
    } bad[] = {
        {"ab\xff", 3, 2},      {"\xc3", 1, 0},
        {"ok \xc0\xaf", 5, 3}, {"\xed\xa0\x80", 3, 0},
        {"abc\xe2\x82", 5, 3}, {"\xf4\x90\x80\x80", 4, 0},
        {"x\x80y", 3, 1},      {"caf\xc3\xa9\xe9", 6, 5},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 99;
        ws_error err = {{0}};
        ck_assert_int_eq(tokenizer_encode(g_tok, bad[i].s, bad[i].len, false, &ids, &n, &err),
                         WS_ERR_FORMAT);
        ck_assert(ids == NULL && n == 0);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad[i].offset);
        ck_assert_msg(strstr(err.msg, want) != NULL, "case %zu: '%s' lacks '%s'", i, err.msg, want);
    }
}
END_TEST

START_TEST(token_bytes_contract) {
    char buf[8];
    size_t n;
    ws_error err = {{0}};
    ck_assert(tokenizer_token_bytes(g_tok, 220, false, buf, sizeof buf, &n, &err) == WS_OK);
    ck_assert(n == 1 && buf[0] == ' ');
    ck_assert(tokenizer_token_bytes(g_tok, 151645, false, buf, sizeof buf, &n, &err) == WS_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(tokenizer_token_bytes(g_tok, 151645, true, buf, sizeof buf, &n, &err),
                     WS_ERR_INVALID_ARG); /* 10 bytes do not fit 8: refused, not cut */
    ck_assert_int_eq(tokenizer_token_bytes(g_tok, 151936, true, buf, sizeof buf, &n, &err),
                     WS_ERR_RANGE);
    ck_assert_int_eq(tokenizer_token_bytes(g_tok, -1, true, buf, sizeof buf, &n, &err),
                     WS_ERR_RANGE);
    int32_t ids[] = {9707, 151645, 151643};
    char *text;
    size_t len;
    ck_assert(tokenizer_decode(g_tok, ids, 3, false, &text, &len, &err) == WS_OK);
    ck_assert_str_eq(text, "Hello");
    free(text);
    ck_assert(tokenizer_decode(g_tok, ids, 3, true, &text, &len, &err) == WS_OK);
    ck_assert_str_eq(text, "Hello<|im_end|><|endoftext|>");
    free(text);
    ids[1] = 200000;
    ck_assert_int_eq(tokenizer_decode(g_tok, ids, 3, true, &text, &len, &err), WS_ERR_RANGE);
    ck_assert(text == NULL);
}
END_TEST

/* Long inputs stay correct (they round-trip) with the heap-based merge loop. */
START_TEST(long_words_round_trip) {
    size_t len = 1 << 20;
    char *s = malloc(len);
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        s[i] = _i == 0 ? 'a' : (char)('a' + (x >> 16) % 26);
    }
    int32_t *ids;
    size_t n, out_len;
    char *text;
    ws_error err = {{0}};
    ck_assert(tokenizer_encode(g_tok, s, len, false, &ids, &n, &err) == WS_OK);
    ck_assert(tokenizer_decode(g_tok, ids, n, true, &text, &out_len, &err) == WS_OK);
    ck_assert(out_len == len && memcmp(text, s, len) == 0);
    free(text);
    free(ids);
    free(s);
}
END_TEST

/* Random inputs: raw bytes are either tokenized or refused as invalid UTF-8, never anything else;
 * random text of code points that NFC leaves alone (below U+0300, CJK ideographs, emoji; any
 * mixture of them is already NFC) decodes back to itself. */
START_TEST(random_inputs) {
    uint32_t x = 2463534242u;
#define NEXT() (x ^= x << 13, x ^= x >> 17, x ^= x << 5, x)
    char s[600];
    for (int round = 0; round < 3000; round++) {
        size_t len = NEXT() % 120, o = 0;
        bool raw = round % 2 == 0;
        while (o < len) {
            if (raw) {
                s[o++] = (char)(NEXT() & 0xFF);
                continue;
            }
            uint32_t r = NEXT() % 4, cp = r == 0   ? NEXT() % 0x80
                                          : r == 1 ? NEXT() % 0x300
                                          : r == 2 ? 0x4E00 + NEXT() % 0x5200
                                                   : 0x1F300 + NEXT() % 0x250;
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            if (cp < 0x80)
                s[o++] = (char)cp;
            else if (cp < 0x800) {
                s[o++] = (char)(0xC0 | cp >> 6);
                s[o++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                s[o++] = (char)(0xE0 | cp >> 12);
                s[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
                s[o++] = (char)(0x80 | (cp & 0x3F));
            } else {
                s[o++] = (char)(0xF0 | cp >> 18);
                s[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
                s[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
                s[o++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        int32_t *ids;
        size_t n, out_len;
        ws_error err = {{0}};
        ws_status st = tokenizer_encode(g_tok, s, o, round % 3 == 0, &ids, &n, &err);
        ck_assert_msg(st == WS_OK || (raw && st == WS_ERR_FORMAT), "round %d: %s", round, err.msg);
        if (st != WS_OK) continue;
        char *text;
        ck_assert(tokenizer_decode(g_tok, ids, n, true, &text, &out_len, &err) == WS_OK);
        if (!raw) ck_assert_msg(out_len == o && memcmp(text, s, o) == 0, "round %d", round);
        free(text);
        free(ids);
    }
#undef NEXT
}
END_TEST

/* Writes a copy of the vocabulary file with one string key replaced (value NULL: dropped). */
static const char *write_variant(const char *key, const char *value) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/test_tokenizer_%d.gguf", (int)getpid());
    ws_error err = {{0}};
    gguf_writer *w = NULL;
    ck_assert(gguf_writer_new(&w, &err) == WS_OK);
    for (uint64_t i = 0; i < gguf_n_kv(g_file); i++) {
        if (strcmp(gguf_kv_key(g_file, i), key) != 0)
            ck_assert_msg(gguf_writer_copy_kv(w, g_file, i, &err) == WS_OK, "%s", err.msg);
        else if (value)
            ck_assert(gguf_writer_set_str(w, key, value, strlen(value), &err) == WS_OK);
    }
    ck_assert_msg(gguf_writer_write(w, path, &err) == WS_OK, "%s", err.msg);
    gguf_writer_free(w);
    return path;
}

static void expect_load_fails(const char *path, ws_status want, const char *needle) {
    gguf_file *f = NULL;
    tokenizer *t = (tokenizer *)1;
    ws_error err = {{0}};
    ck_assert(gguf_open(path, &f, &err) == WS_OK);
    ck_assert_int_eq(tokenizer_load(f, &t, &err), want);
    ck_assert(t == NULL);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
    gguf_close(f);
    unlink(path);
}

START_TEST(unsupported_is_an_error) {
    expect_load_fails(write_variant("tokenizer.ggml.pre", "llama-bpe"), WS_ERR_UNSUPPORTED,
                      "llama-bpe");
    expect_load_fails(write_variant("tokenizer.ggml.pre", NULL), WS_ERR_UNSUPPORTED,
                      "tokenizer.ggml.pre");
    expect_load_fails(write_variant("tokenizer.ggml.model", "llama"), WS_ERR_UNSUPPORTED, "llama");
    expect_load_fails(write_variant("tokenizer.ggml.merges", NULL), WS_ERR_NOT_FOUND,
                      "tokenizer.ggml.merges");
}
END_TEST

/* The small-vocabulary model fixtures (1024 BPE tokens, added tokens from 1024) load too. */
START_TEST(fixture_vocabulary) {
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    ws_error err = {{0}};
    ck_assert(gguf_open(WORKER_TEST_DATA "/fixtures/ta-f32.gguf", &f, &err) == WS_OK);
    ck_assert_msg(tokenizer_load(f, &t, &err) == WS_OK, "%s", err.msg);
    ck_assert_uint_eq(tokenizer_n_vocab(t), 1152);
    ck_assert_int_eq(tokenizer_eos(t), 1026);
    const char *s = "<|im_start|>user\nThe cat sat on the mat.<|im_end|>";
    int32_t *ids;
    size_t n, len;
    ck_assert(tokenizer_encode(t, s, strlen(s), true, &ids, &n, &err) == WS_OK);
    ck_assert(n > 3 && ids[0] == 1025 && ids[n - 1] == 1026);
    for (size_t i = 1; i + 1 < n; i++)
        ck_assert_int_lt(ids[i], 1024);
    char *text;
    ck_assert(tokenizer_decode(t, ids, n, true, &text, &len, &err) == WS_OK);
    ck_assert_str_eq(text, s);
    free(text);
    free(ids);
    tokenizer_free(t);
    gguf_close(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("qwen2.5");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, published_vectors);
    tcase_add_loop_test(tc, generated_vectors, 0, 2);
    tcase_add_loop_test(tc, decode_inverts_encode, 0, 2);
    tcase_add_test(tc, vocabulary_facts);
    tcase_add_test(tc, documented_vectors);
    tcase_add_test(tc, invalid_utf8_names_offset);
    tcase_add_test(tc, token_bytes_contract);
    tcase_add_loop_test(tc, long_words_round_trip, 0, 2);
    tcase_add_test(tc, random_inputs);
    tcase_add_test(tc, unsupported_is_an_error);
    tcase_add_test(tc, fixture_vocabulary);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
