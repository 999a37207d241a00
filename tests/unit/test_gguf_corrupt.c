/* test_gguf_corrupt.c: the malformed-file corpus (tests/data/corrupt, written by
 * scripts/make-corrupt-gguf from the format description, not from the parser). Each file must be
 * rejected with the status and the error substring its manifest line names, and the valid controls
 * must parse. Files are parsed from exact-size heap copies so that any read past the end is caught
 * by AddressSanitizer in the sanitizer build. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

#define CORRUPT_DIR WORKER_TEST_DATA "/corrupt"

typedef struct {
    char file[128];
    char status[32];
    char expect[400];
} entry;

static entry entries[256];
static int n_entries;

/* Copies a manifest field, failing (never cutting) when it does not fit. */
static void copy_field(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    ck_assert_msg(n < cap, "manifest field too long: %s", src);
    memcpy(dst, src, n + 1);
}

static void load_manifest(void) {
    FILE *fp = fopen(CORRUPT_DIR "/MANIFEST.tsv", "r");
    ck_assert_msg(fp != NULL, "cannot open the manifest");
    char line[1024];
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#') continue;
        line[strcspn(line, "\n")] = '\0';
        ck_assert_int_lt(n_entries, (int)(sizeof entries / sizeof entries[0]));
        entry *e = &entries[n_entries++];
        char *t1 = strchr(line, '\t');
        ck_assert_ptr_nonnull(t1);
        char *t2 = strchr(t1 + 1, '\t');
        ck_assert_ptr_nonnull(t2);
        *t1 = *t2 = '\0';
        copy_field(e->file, sizeof e->file, line);
        copy_field(e->status, sizeof e->status, t1 + 1);
        copy_field(e->expect, sizeof e->expect, t2 + 1);
    }
    fclose(fp);
}

static uint8_t *read_exact(const char *name, size_t *n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CORRUPT_DIR, name);
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "%s", path);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    ck_assert(fread(b, 1, *n, fp) == *n);
    fclose(fp);
    return b;
}

/* Reads every metadata value and tensor byte of a parsed file (the sanitizers watch the reads). */
static void walk(const gguf_file *f) {
    unsigned sum = 0;
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        gguf_value v;
        ck_assert(gguf_kv_value(f, i, &v) == WS_OK);
        if (v.type == GGUF_TYPE_STRING)
            for (uint64_t j = 0; j < v.len; j++)
                sum += ((const uint8_t *)v.data)[j];
        else if (v.type == GGUF_TYPE_ARRAY && v.elem_type == GGUF_TYPE_STRING)
            for (uint64_t j = 0; j < v.n; j++) {
                const char *s;
                uint64_t len;
                ck_assert(gguf_kv_arr_str(f, i, j, &s, &len) == WS_OK);
                for (uint64_t k = 0; k < len; k++)
                    sum += (uint8_t)s[k];
            }
        else
            for (uint64_t j = 0; j < v.n * gguf_type_size(v.elem_type); j++)
                sum += ((const uint8_t *)v.data)[j];
    }
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        for (uint64_t j = 0; j < t->n_bytes; j++)
            sum += ((const uint8_t *)t->data)[j];
    }
    (void)sum;
}

START_TEST(corpus_rejected_with_message) {
    load_manifest();
    ck_assert_int_ge(n_entries, 40);
    int n_bad = 0;
    for (int i = 0; i < n_entries; i++) {
        const entry *e = &entries[i];
        size_t n;
        uint8_t *buf = read_exact(e->file, &n);
        gguf_file *f = NULL;
        ws_error err = {{0}};
        ws_status st = gguf_parse(buf, n, &f, &err);
        ck_assert_msg(strcmp(ws_strerror(st), e->status) == 0, "%s: status %s, expected %s (%s)",
                      e->file, ws_strerror(st), e->status, err.msg);
        if (st == WS_OK) {
            walk(f);
        } else {
            n_bad++;
            ck_assert_ptr_null(f);
            ck_assert_msg(strstr(err.msg, e->expect) != NULL, "%s: message '%s' lacks '%s'",
                          e->file, err.msg, e->expect);
        }
        gguf_close(f);
        free(buf);
    }
    ck_assert_int_ge(n_bad, 40);
}
END_TEST

/* Every prefix of the valid file that ends before its last tensor's data is rejected as
 * truncated; the longer ones (they only lack trailing padding) parse. */
START_TEST(every_prefix_rejected) {
    size_t n;
    uint8_t *full = read_exact("valid.gguf", &n);
    gguf_file *f = NULL;
    ck_assert(gguf_parse(full, n, &f, NULL) == WS_OK);
    const gguf_tensor *last = gguf_tensor_at(f, gguf_n_tensors(f) - 1);
    size_t need = (size_t)(gguf_data_offset(f) + last->offset + last->n_bytes);
    gguf_close(f);
    ck_assert_uint_lt(need, n); /* the corpus file ends with padding */
    for (size_t len = 0; len < n; len++) {
        uint8_t *buf = malloc(len ? len : 1);
        memcpy(buf, full, len);
        ws_error err = {{0}};
        ws_status st = gguf_parse(buf, len, &f, &err);
        if (len >= need) {
            ck_assert_msg(st == WS_OK, "prefix %zu: %s", len, err.msg);
            gguf_close(f);
        } else {
            ck_assert_msg(st == WS_ERR_FORMAT, "prefix %zu: status %s", len, ws_strerror(st));
            ck_assert_msg(strstr(err.msg, "truncated") || strstr(err.msg, "past the end") ||
                              strstr(err.msg, "cannot fit"),
                          "prefix %zu: %s", len, err.msg);
        }
        free(buf);
    }
    free(full);
}
END_TEST

/* gguf_open prefixes the path to the parser's message. */
START_TEST(open_names_path) {
    gguf_file *f = NULL;
    ws_error err;
    ck_assert(gguf_open(CORRUPT_DIR "/n-dims-5.gguf", &f, &err) == WS_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "n-dims-5.gguf: ") && strstr(err.msg, "n_dims 5"), "%s", err.msg);
    ck_assert(gguf_open(CORRUPT_DIR "/trunc-empty.gguf", &f, &err) == WS_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "truncated: magic"), "%s", err.msg);
    ck_assert(gguf_open(CORRUPT_DIR "/valid-v2.gguf", &f, &err) == WS_OK);
    ck_assert_uint_eq(gguf_version(f), 2);
    gguf_close(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gguf_corrupt");
    TCase *tc = tcase_create("corrupt");
    tcase_add_test(tc, corpus_rejected_with_message);
    tcase_add_test(tc, every_prefix_rejected);
    tcase_add_test(tc, open_names_path);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
