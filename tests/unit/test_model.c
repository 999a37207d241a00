/* test_model.c: binding the qwen2 architecture. Every fixture binds with the configuration in
 * tests/data/README.md (a table written by the fixtures' maker, not read back from our code), the
 * parameter count follows from that table by the architecture's formula, and files rewritten with
 * one defect (a missing tensor, a transposed shape, a non-F32 bias, another architecture, a
 * missing key) are refused with a message that names the tensor or key at fault. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"

static const char *const fixtures[] = {
    "ta-bf16", "ta-f16",  "ta-f32",    "ta-q2_k", "ta-q3_k_m", "ta-q4_0", "ta-q4_1", "ta-q4_k_m",
    "ta-q5_0", "ta-q5_1", "ta-q5_k_m", "ta-q6_k", "ta-q8_0",   "tb-f16",  "tb-q8_0",
};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

static void fixture_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/fixtures/%s.gguf", WORKER_TEST_DATA, name);
}

/* Parameters of a qwen2 model from its table row (tied head counted once). */
static uint64_t expected_params(uint64_t d, uint64_t layers, uint64_t heads, uint64_t kv_heads,
                                uint64_t ff, uint64_t vocab, int tied) {
    uint64_t hd = d / heads, q = heads * hd, kv = kv_heads * hd;
    uint64_t layer = 2 * d                /* attn_norm, ffn_norm */
                     + d * q + 2 * d * kv /* wq, wk, wv */
                     + q + 2 * kv         /* biases */
                     + q * d              /* wo */
                     + 3 * d * ff;        /* gate, up, down */
    return vocab * d * (tied ? 1 : 2) + d + layers * layer;
}

START_TEST(fixture_binds) {
    const char *name = fixtures[_i];
    char path[512];
    fixture_path(path, sizeof path, name);
    qwen2_model *m = NULL;
    ws_error err = {{0}};
    ck_assert_msg(model_open(path, &m, &err) == WS_OK, "%s: %s", name, err.msg);
    const qwen2_config *c = &m->cfg;
    int tb = name[1] == 'b';
    ck_assert_uint_eq(c->n_layer, 2);
    ck_assert_uint_eq(c->n_embd, tb ? 384 : 256);
    ck_assert_uint_eq(c->n_ff, tb ? 1024 : 768);
    ck_assert_uint_eq(c->n_head, tb ? 6 : 4);
    ck_assert_uint_eq(c->n_head_kv, 2);
    ck_assert_uint_eq(c->head_dim, 64);
    ck_assert_uint_eq(c->n_vocab, 1152);
    ck_assert(c->rope_base == 1e6f);
    ck_assert(c->rms_eps == 1e-6f);
    ck_assert(c->n_ctx_train >= 300); /* the goldens run 300 positions */
    ck_assert_int_eq(c->tied_output, !tb);
    if (tb)
        ck_assert_ptr_ne(m->output.data, m->tok_embd.data);
    else
        ck_assert_ptr_eq(m->output.data, m->tok_embd.data);
    /* the GGUF convention: ne[0] = input features, ne[1] = output features */
    ck_assert_int_eq(m->layers[1].wk.ne[0], c->n_embd);
    ck_assert_int_eq(m->layers[1].wk.ne[1], 128);
    ck_assert_int_eq(m->layers[1].w_down.ne[0], c->n_ff);
    ck_assert_int_eq(m->layers[1].w_down.ne[1], c->n_embd);
    ck_assert_int_eq(m->layers[0].bq.type, GGML_TYPE_F32);
    ck_assert_str_eq(m->layers[1].w_up.name, "blk.1.ffn_up.weight");
    ck_assert_uint_eq(model_n_params(m), expected_params(tb ? 384 : 256, 2, tb ? 6 : 4, 2,
                                                         tb ? 1024 : 768, 1152, !tb));
    model_free(m);
}
END_TEST

/* ---- broken files: ta-f32 rewritten with one edit ---- */

typedef struct {
    const char *drop_key;    /* key left out */
    const char *arch;        /* general.architecture replaced */
    const char *drop_tensor; /* tensor left out */
    const char *transpose;   /* tensor written with ne[0] and ne[1] swapped */
    const char *as_f16;      /* F32 vector tensor written as F16 */
} edit;

static void write_variant(const edit *ed, char *out, size_t out_n) {
    char src[512];
    fixture_path(src, sizeof src, "ta-f32");
    gguf_file *f = NULL;
    ws_error err = {{0}};
    ck_assert_msg(gguf_open(src, &f, &err) == WS_OK, "%s", err.msg);
    gguf_writer *w = NULL;
    ck_assert(gguf_writer_new(&w, &err) == WS_OK);
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const char *key = gguf_kv_key(f, i);
        if (ed->drop_key && strcmp(key, ed->drop_key) == 0) continue;
        if (ed->arch && strcmp(key, "general.architecture") == 0) {
            ck_assert(gguf_writer_set_str(w, key, ed->arch, strlen(ed->arch), &err) == WS_OK);
            continue;
        }
        ck_assert_msg(gguf_writer_copy_kv(w, f, i, &err) == WS_OK, "%s", err.msg);
    }
    float *tmp = NULL;
    uint16_t *half = NULL;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (ed->drop_tensor && strcmp(t->name, ed->drop_tensor) == 0) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        const void *data = t->data;
        uint64_t n_bytes = t->n_bytes;
        ggml_type type = t->type;
        if (ed->transpose && strcmp(t->name, ed->transpose) == 0) {
            ne[0] = t->ne[1];
            ne[1] = t->ne[0];
        }
        if (ed->as_f16 && strcmp(t->name, ed->as_f16) == 0) {
            ck_assert_int_eq(t->type, GGML_TYPE_F32);
            half = malloc(t->n_elems * 2);
            tmp = malloc(t->n_bytes);
            memcpy(tmp, t->data, t->n_bytes);
            for (uint64_t k = 0; k < t->n_elems; k++)
                half[k] = quant_f32_to_f16(tmp[k]);
            data = half;
            n_bytes = t->n_elems * 2;
            type = GGML_TYPE_F16;
        }
        ck_assert_msg(
            gguf_writer_add_tensor(w, t->name, type, t->n_dims, ne, data, n_bytes, &err) == WS_OK,
            "%s", err.msg);
    }
    const char *dir = getenv("TMPDIR");
    snprintf(out, out_n, "%s/test_model_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(out);
    ck_assert(fd >= 0);
    close(fd);
    ck_assert_msg(gguf_writer_write(w, out, &err) == WS_OK, "%s", err.msg);
    gguf_writer_free(w);
    gguf_close(f);
    free(tmp);
    free(half);
}

/* Opens the variant, expects status want and a message containing every needle. */
static void expect_refused(const edit *ed, ws_status want, const char *needle1,
                           const char *needle2) {
    char path[512];
    write_variant(ed, path, sizeof path);
    qwen2_model *m = NULL;
    ws_error err = {{0}};
    ws_status st = model_open(path, &m, &err);
    unlink(path);
    ck_assert_msg(st == want, "status %s, want %s (%s)", ws_strerror(st), ws_strerror(want),
                  err.msg);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, needle1), "'%s' not in: %s", needle1, err.msg);
    if (needle2) ck_assert_msg(strstr(err.msg, needle2), "'%s' not in: %s", needle2, err.msg);
}

START_TEST(unchanged_rewrite_binds) {
    edit ed = {0};
    char path[512];
    write_variant(&ed, path, sizeof path);
    qwen2_model *m = NULL;
    ws_error err = {{0}};
    ws_status st = model_open(path, &m, &err);
    unlink(path);
    ck_assert_msg(st == WS_OK, "%s", err.msg);
    model_free(m);
}
END_TEST

START_TEST(missing_tensor_named) {
    edit ed = {.drop_tensor = "blk.1.ffn_up.weight"};
    expect_refused(&ed, WS_ERR_FORMAT, "'blk.1.ffn_up.weight'", "missing");
    edit ed2 = {.drop_tensor = "blk.0.attn_v.bias"};
    expect_refused(&ed2, WS_ERR_FORMAT, "'blk.0.attn_v.bias'", "missing");
    edit ed3 = {.drop_tensor = "output_norm.weight"};
    expect_refused(&ed3, WS_ERR_FORMAT, "'output_norm.weight'", "missing");
}
END_TEST

START_TEST(transposed_tensor_named) {
    /* attn_k is [256, 128] in the file; swapped it reads [128, 256] */
    edit ed = {.transpose = "blk.0.attn_k.weight"};
    expect_refused(&ed, WS_ERR_FORMAT, "'blk.0.attn_k.weight'", "[256, 128]");
    edit ed2 = {.transpose = "blk.1.ffn_down.weight"};
    expect_refused(&ed2, WS_ERR_FORMAT, "'blk.1.ffn_down.weight'", "[768, 256]");
}
END_TEST

START_TEST(non_f32_bias_named) {
    edit ed = {.as_f16 = "blk.1.attn_q.bias"};
    expect_refused(&ed, WS_ERR_UNSUPPORTED, "'blk.1.attn_q.bias'", "F32");
}
END_TEST

START_TEST(other_architecture_refused) {
    edit ed = {.arch = "llama"};
    expect_refused(&ed, WS_ERR_UNSUPPORTED, "'llama'", "qwen2");
}
END_TEST

START_TEST(missing_key_named) {
    edit ed = {.drop_key = "qwen2.block_count"};
    expect_refused(&ed, WS_ERR_FORMAT, "qwen2.block_count", "missing");
    edit ed2 = {.drop_key = "qwen2.attention.layer_norm_rms_epsilon"};
    expect_refused(&ed2, WS_ERR_FORMAT, "layer_norm_rms_epsilon", NULL);
}
END_TEST

/* Without head_count_kv the default is head_count (4): K then needs 256 outputs, which the file's
 * [256, 128] attn_k does not have, so the default shows in the shape error. */
START_TEST(defaults_applied) {
    edit ed = {.drop_key = "qwen2.attention.head_count_kv"};
    expect_refused(&ed, WS_ERR_FORMAT, "'blk.0.attn_k.weight'", "expected [256, 256]");

    edit ed2 = {.drop_key = "qwen2.rope.freq_base"};
    char path[512];
    write_variant(&ed2, path, sizeof path);
    qwen2_model *m = NULL;
    ws_error err = {{0}};
    ws_status st = model_open(path, &m, &err);
    unlink(path);
    ck_assert_msg(st == WS_OK, "%s", err.msg);
    ck_assert(m->cfg.rope_base == 10000.0f);
    model_free(m);
}
END_TEST

START_TEST(missing_file_fails_cleanly) {
    qwen2_model *m = NULL;
    ws_error err = {{0}};
    ck_assert(model_open("no-such-file.gguf", &m, &err) != WS_OK);
    ck_assert_ptr_null(m);
    ck_assert(err.msg[0] != 0);
    model_free(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("fixtures");
    tcase_add_loop_test(tc, fixture_binds, 0, N_FIXTURES);
    suite_add_tcase(s, tc);
    TCase *tb = tcase_create("broken");
    tcase_add_test(tb, unchanged_rewrite_binds);
    tcase_add_test(tb, missing_tensor_named);
    tcase_add_test(tb, transposed_tensor_named);
    tcase_add_test(tb, non_f32_bias_named);
    tcase_add_test(tb, other_architecture_refused);
    tcase_add_test(tb, missing_key_named);
    tcase_add_test(tb, defaults_applied);
    tcase_add_test(tb, missing_file_fails_cleanly);
    suite_add_tcase(s, tb);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
