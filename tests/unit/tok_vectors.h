/* tok_vectors.h: readers for the tokenizer reference files in tests/data/tokenizer, shared by the
 * tokenizer, detokenizer and chat suites. Files are tab-separated lines, text fields in hex (the
 * layouts are described in scripts/tokref/gen.js). Everything is loaded whole and kept for the
 * process lifetime of a test. */
#ifndef TESTS_UNIT_TOK_VECTORS_H
#define TESTS_UNIT_TOK_VECTORS_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "text/tokenizer.h"

#define TOK_VOCAB_GGUF WORKER_TEST_DATA_BUILD "/tokenizer/qwen2.5-vocab.gguf"

/* The encode vector sets: gen.js's categories, and soup.py's random strings over all of
 * Unicode. */
static const char *const tv_case_files[] = {
    WORKER_TEST_DATA_BUILD "/tokenizer/lenml-qwen2.5.tsv",
    WORKER_TEST_DATA_BUILD "/tokenizer/lenml-qwen2.5-soup.tsv",
};

typedef struct {
    char *p;
    size_t n;
} tv_bytes;

/* Reads a whole file; fails the test when it cannot. */
static inline tv_bytes tv_read_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    tv_bytes b = {malloc((size_t)n + 1), (size_t)n};
    ck_assert(b.p && fread(b.p, 1, (size_t)n, fp) == (size_t)n);
    b.p[n] = '\0';
    fclose(fp);
    return b;
}

static inline int tv_hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    ck_abort_msg("bad hex digit 0x%02x", (unsigned char)c);
    return 0;
}

/* Decodes hex s[0..n) into malloc'd bytes (NUL-terminated). */
static inline tv_bytes tv_unhex(const char *s, size_t n) {
    ck_assert_msg(n % 2 == 0, "odd hex length %zu", n);
    tv_bytes b = {malloc(n / 2 + 1), n / 2};
    for (size_t i = 0; i < n / 2; i++)
        b.p[i] = (char)(tv_hexval(s[2 * i]) << 4 | tv_hexval(s[2 * i + 1]));
    b.p[n / 2] = '\0';
    return b;
}

/* Parses space-separated ids s[0..n) into a malloc'd array. */
static inline int32_t *tv_ids(const char *s, size_t n, size_t *count) {
    int32_t *ids = malloc((n / 2 + 1) * sizeof *ids);
    size_t k = 0, i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        if (i == n) break;
        long v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            v = v * 10 + (s[i++] - '0');
        ck_assert_msg(i == n || s[i] == ' ', "bad id list");
        ids[k++] = (int32_t)v;
    }
    *count = k;
    return ids;
}

/* Splits line into at most max tab-separated fields (pointers into line, lengths in len). */
static inline int tv_fields(char *line, size_t n, char **f, size_t *len, int max) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n && k < max; i++)
        if (i == n || line[i] == '\t') {
            f[k] = line + start;
            len[k++] = i - start;
            start = i + 1;
        }
    return k;
}

/* One case of the generated encode vectors. */
typedef struct {
    bool special;
    tv_bytes text, nfc;
    int32_t *ids;
    size_t n_ids;
} tv_case;

/* Loads the generated vectors (see scripts/tokref/gen.js). */
static inline tv_case *tv_load_cases(const char *path, size_t *n_cases) {
    tv_bytes file = tv_read_file(path);
    size_t cap = 4096, n = 0;
    tv_case *cases = malloc(cap * sizeof *cases);
    char *line = file.p;
    while (line < file.p + file.n) {
        char *nl = memchr(line, '\n', (size_t)(file.p + file.n - line));
        ck_assert(nl != NULL);
        char *f[4];
        size_t len[4];
        ck_assert_int_eq(tv_fields(line, (size_t)(nl - line), f, len, 4), 4);
        if (n == cap) cases = realloc(cases, (cap *= 2) * sizeof *cases);
        tv_case *c = &cases[n++];
        ck_assert(len[0] == 1 && (f[0][0] == 'P' || f[0][0] == 'T'));
        c->special = f[0][0] == 'P';
        c->text = tv_unhex(f[1], len[1]);
        c->ids = tv_ids(f[2], len[2], &c->n_ids);
        c->nfc = len[3] == 1 && f[3][0] == '=' ? tv_unhex(f[1], len[1]) : tv_unhex(f[3], len[3]);
        line = nl + 1;
    }
    free(file.p);
    *n_cases = n;
    return cases;
}

static inline void tv_free_cases(tv_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(cases[i].text.p);
        free(cases[i].nfc.p);
        free(cases[i].ids);
    }
    free(cases);
}

/* Opens the reference vocabulary and loads its tokenizer. */
static inline tokenizer *tv_load_tokenizer(gguf_file **f) {
    ws_error err = {{0}};
    tokenizer *t = NULL;
    ck_assert_msg(gguf_open(TOK_VOCAB_GGUF, f, &err) == WS_OK, "%s", err.msg);
    ck_assert_msg(tokenizer_load(*f, &t, &err) == WS_OK, "%s", err.msg);
    return t;
}

/* Prints ids for a failure message into buf. */
static inline const char *tv_fmt_ids(char *buf, size_t cap, const int32_t *ids, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 16 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? " %d" : "%d", ids[i]);
    return buf;
}

#endif
