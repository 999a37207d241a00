/* test_gguf.c: the GGUF parser on the llama.cpp-written fixtures (facts from tests/data/README.md
 * and the fixtures' own metadata), the typed getters' type checks, and the writer: a round trip of
 * every value type and several tensor types, and a rewrite of each fixture through
 * gguf_writer_copy_kv that must reproduce llama.cpp's bytes exactly. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/gguf.h"

static const char *const fixtures[] = {
    "ta-bf16", "ta-f16",  "ta-f32",    "ta-q2_k", "ta-q3_k_m", "ta-q4_0", "ta-q4_1", "ta-q4_k_m",
    "ta-q5_0", "ta-q5_1", "ta-q5_k_m", "ta-q6_k", "ta-q8_0",   "tb-f16",  "tb-q8_0",
};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

static gguf_file *open_fixture(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/%s.gguf", WORKER_TEST_DATA, name);
    gguf_file *f = NULL;
    ws_error err = {{0}};
    ws_status st = gguf_open(path, &f, &err);
    ck_assert_msg(st == WS_OK, "%s: %s", path, err.msg);
    return f;
}

static int64_t get_int(const gguf_file *f, const char *key) {
    int64_t v = -1;
    ws_error err;
    ck_assert_msg(gguf_get_int(f, key, &v, &err) == WS_OK, "%s", err.msg);
    return v;
}

/* Metadata and tensor table of each fixture against the model table in tests/data/README.md. */
START_TEST(fixture_loads) {
    const char *name = fixtures[_i];
    gguf_file *f = open_fixture(name);
    bool tb = name[1] == 'b';
    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_uint_eq(gguf_alignment(f), 32);
    ck_assert_int_eq(get_int(f, "qwen2.block_count"), 2);
    ck_assert_int_eq(get_int(f, "qwen2.embedding_length"), tb ? 384 : 256);
    ck_assert_int_eq(get_int(f, "qwen2.feed_forward_length"), tb ? 1024 : 768);
    ck_assert_int_eq(get_int(f, "qwen2.attention.head_count"), tb ? 6 : 4);
    ck_assert_int_eq(get_int(f, "qwen2.attention.head_count_kv"), 2);
    ck_assert_int_eq(get_int(f, "tokenizer.ggml.eos_token_id"), 1026); /* <|im_end|> */
    double base, eps;
    ck_assert(gguf_get_float(f, "qwen2.rope.freq_base", &base, NULL) == WS_OK);
    ck_assert(gguf_get_float(f, "qwen2.attention.layer_norm_rms_epsilon", &eps, NULL) == WS_OK);
    ck_assert(base == 1e6);
    ck_assert(fabs(eps - 1e-6) < 1e-12); /* stored as float32: 1e-6 rounds by < 1e-13 */
    const char *s;
    uint64_t len;
    ck_assert(gguf_get_str(f, "general.architecture", &s, &len, NULL) == WS_OK);
    ck_assert(len == 5 && memcmp(s, "qwen2", 5) == 0);
    gguf_type et;
    uint64_t n;
    const void *data;
    ck_assert(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n, &data, NULL) == WS_OK);
    ck_assert(et == GGUF_TYPE_STRING && n == 1152 && data == NULL);
    ck_assert(gguf_get_arr_str(f, "tokenizer.ggml.tokens", 1026, &s, &len, NULL) == WS_OK);
    ck_assert(len == 10 && memcmp(s, "<|im_end|>", 10) == 0);
    ck_assert(gguf_get_arr(f, "tokenizer.ggml.merges", &et, &n, &data, NULL) == WS_OK);
    ck_assert(et == GGUF_TYPE_STRING && n == 768);

    /* 2 layers of 12 tensors, output_norm and token_embd, and tb's untied output. */
    ck_assert_uint_eq(gguf_n_tensors(f), tb ? 27 : 26);
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    ck_assert_ptr_nonnull(emb);
    ck_assert(emb->n_dims == 2 && emb->ne[0] == (tb ? 384 : 256) && emb->ne[1] == 1152);
    const gguf_tensor *down = gguf_find_tensor(f, "blk.1.ffn_down.weight");
    ck_assert_ptr_nonnull(down);
    ck_assert(down->ne[0] == (tb ? 1024 : 768) && down->ne[1] == (tb ? 384 : 256));
    ck_assert((gguf_find_tensor(f, "output.weight") != NULL) == tb);
    ck_assert_ptr_null(gguf_find_tensor(f, "blk.2.ffn_down.weight"));

    /* Table sanity: sizes from the block layout, in-order aligned offsets inside the file, and
     * llama.cpp's layout (each tensor padded to the alignment, the file ending after the last). */
    const uint8_t *base_ptr = gguf_tensor_at(f, 0)->data;
    ck_assert(gguf_data_offset(f) % 32 == 0);
    uint64_t expect_off = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        ck_assert_ptr_eq(gguf_find_tensor(f, t->name), t);
        uint64_t row;
        ck_assert(ggml_row_bytes(t->type, t->ne[0], &row, NULL) == WS_OK);
        ck_assert_uint_eq(t->n_elems, (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]));
        ck_assert_uint_eq(t->n_bytes, row * (t->n_elems / (uint64_t)t->ne[0]));
        ck_assert_uint_eq(t->offset, expect_off);
        ck_assert_ptr_eq(t->data, base_ptr + t->offset);
        expect_off = (t->offset + t->n_bytes + 31) / 32 * 32;
    }
    ck_assert_uint_eq(gguf_data_offset(f) + expect_off, gguf_file_size(f));
    ck_assert_ptr_null(gguf_tensor_at(f, gguf_n_tensors(f)));
    gguf_close(f);
}
END_TEST

/* The vocabulary GGUF written by llama.cpp's converter (151936 tokens): a file with no tensors. */
START_TEST(vocab_file_loads) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer/qwen2.5-vocab.gguf", WORKER_TEST_DATA_BUILD);
    gguf_file *f = NULL;
    ws_error err;
    ck_assert_msg(gguf_open(path, &f, &err) == WS_OK, "%s", err.msg);
    ck_assert_uint_eq(gguf_n_tensors(f), 0);
    gguf_type et;
    uint64_t n;
    const void *data;
    ck_assert(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n, &data, NULL) == WS_OK);
    ck_assert(et == GGUF_TYPE_STRING && n == 151936);
    ck_assert(gguf_get_arr(f, "tokenizer.ggml.merges", &et, &n, &data, NULL) == WS_OK);
    ck_assert(n == 151387);
    ck_assert_int_eq(get_int(f, "tokenizer.ggml.eos_token_id"), 151645);
    ck_assert_int_eq(get_int(f, "tokenizer.ggml.bos_token_id"), 151643);
    gguf_close(f);
}
END_TEST

START_TEST(getters_check_types) {
    gguf_file *f = open_fixture("ta-q8_0");
    ws_error err;
    int64_t i;
    double d;
    bool b;
    const char *s;
    uint64_t len, n;
    gguf_type et;
    const void *data;
    ck_assert(gguf_get_int(f, "general.architecture", &i, &err) == WS_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "general.architecture") && strstr(err.msg, "integer") &&
                      strstr(err.msg, "string"),
                  "%s", err.msg);
    ck_assert(gguf_get_int(f, "qwen2.rope.freq_base", &i, &err) == WS_ERR_FORMAT);
    ck_assert(gguf_get_int(f, "tokenizer.ggml.add_bos_token", &i, &err) == WS_ERR_FORMAT);
    ck_assert(gguf_get_float(f, "qwen2.block_count", &d, &err) == WS_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "uint32"), "%s", err.msg);
    ck_assert(gguf_get_bool(f, "qwen2.block_count", &b, &err) == WS_ERR_FORMAT);
    ck_assert(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b, &err) == WS_OK && !b);
    ck_assert(gguf_get_str(f, "tokenizer.ggml.tokens", &s, &len, &err) == WS_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "array of string"), "%s", err.msg);
    ck_assert(gguf_get_arr(f, "general.name", &et, &n, &data, &err) == WS_ERR_FORMAT);
    ck_assert(gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &n, &data, &err) == WS_OK);
    ck_assert(et == GGUF_TYPE_INT32 && n == 1152 && data != NULL);
    /* Element types are checked at the use site: token_type is not a string array. */
    ck_assert(gguf_get_arr_str(f, "tokenizer.ggml.token_type", 0, &s, &len, &err) == WS_ERR_FORMAT);
    ck_assert(gguf_get_arr_str(f, "tokenizer.ggml.tokens", 1152, &s, &len, &err) == WS_ERR_RANGE);
    ck_assert(gguf_get_int(f, "no.such.key", &i, &err) == WS_ERR_NOT_FOUND);
    ck_assert_msg(strstr(err.msg, "no.such.key"), "%s", err.msg);
    ck_assert_int_eq(gguf_find_key(f, "no.such.key"), -1);
    int64_t k = gguf_find_key(f, "general.name");
    ck_assert(k >= 0 && strcmp(gguf_kv_key(f, (uint64_t)k), "general.name") == 0);
    ck_assert(gguf_kv_type(f, (uint64_t)k) == GGUF_TYPE_STRING);
    gguf_value v;
    ck_assert(gguf_kv_value(f, gguf_n_kv(f), &v) == WS_ERR_RANGE);
    gguf_close(f);
}
END_TEST

START_TEST(open_errors) {
    gguf_file *f = NULL;
    ws_error err;
    ck_assert(gguf_open("/nonexistent/x.gguf", &f, &err) == WS_ERR_NOT_FOUND);
    ck_assert(gguf_open(WORKER_TEST_DATA, &f, &err) == WS_ERR_IO);
    ck_assert(gguf_parse("", 0, &f, &err) == WS_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "truncated") && strstr(err.msg, "magic"), "%s", err.msg);
    ck_assert_ptr_null(f);
    gguf_close(NULL);
    gguf_writer_free(NULL);
}
END_TEST

/* ---- writer ---- */

/* A scratch file name unique to this process (Check forks each test). */
static const char *tmp_path(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "/tmp/test_gguf_%s_%d.gguf", tag, (int)getpid());
    return buf;
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    ck_assert(fread(b, 1, *n, fp) == *n);
    fclose(fp);
    return b;
}

#define W(call) ck_assert_msg((call) == WS_OK, "%s", err.msg)

static void check_scalar(const gguf_file *f, const char *key, gguf_type t, const void *v) {
    int64_t i = gguf_find_key(f, key);
    ck_assert_msg(i >= 0, "%s missing", key);
    gguf_value gv;
    ck_assert(gguf_kv_value(f, (uint64_t)i, &gv) == WS_OK);
    ck_assert_msg(gv.type == t && gv.n == 1, "%s", key);
    ck_assert_msg(memcmp(gv.data, v, gguf_type_size(t)) == 0, "%s", key);
}

/* Every value type and four tensor types out and back: the values the test wrote are read back
 * through the parser, and the layout facts (header bytes, alignment 64) are checked on the bytes.
 */
START_TEST(writer_round_trip) {
    gguf_writer *w;
    ws_error err;
    W(gguf_writer_new(&w, &err));
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    uint64_t u64 = 18000000000000000000ull;
    int64_t i64 = -9000000000000000000ll;
    double f64 = -2.5e300;
    W(gguf_writer_set_u32(w, "general.alignment", 64, &err));
    W(gguf_writer_set_val(w, "v.u8", GGUF_TYPE_UINT8, &u8, &err));
    W(gguf_writer_set_val(w, "v.i8", GGUF_TYPE_INT8, &i8, &err));
    W(gguf_writer_set_val(w, "v.u16", GGUF_TYPE_UINT16, &u16, &err));
    W(gguf_writer_set_val(w, "v.i16", GGUF_TYPE_INT16, &i16, &err));
    W(gguf_writer_set_i32(w, "v.i32", i32, &err));
    W(gguf_writer_set_f32(w, "v.f32", 0.15625f, &err));
    W(gguf_writer_set_bool(w, "v.bool", true, &err));
    W(gguf_writer_set_str(w, "v.str", "a\0b\xff\"\n", 6, &err));
    W(gguf_writer_set_val(w, "v.u64", GGUF_TYPE_UINT64, &u64, &err));
    W(gguf_writer_set_val(w, "v.i64", GGUF_TYPE_INT64, &i64, &err));
    W(gguf_writer_set_val(w, "v.f64", GGUF_TYPE_FLOAT64, &f64, &err));
    const int32_t ai[5] = {1, -2, 3, -4, 2147483647};
    const double ad[2] = {0.5, -1e-300};
    const uint8_t ab[3] = {1, 0, 1};
    W(gguf_writer_set_arr(w, "a.i32", GGUF_TYPE_INT32, 5, ai, &err));
    W(gguf_writer_set_arr(w, "a.f64", GGUF_TYPE_FLOAT64, 2, ad, &err));
    W(gguf_writer_set_arr(w, "a.bool", GGUF_TYPE_BOOL, 3, ab, &err));
    W(gguf_writer_set_arr(w, "a.empty", GGUF_TYPE_UINT16, 0, NULL, &err));
    const char *strs[3] = {"x", "", "\xe4\xbd\xa0\xe5\xa5\xbd"};
    const uint64_t lens[3] = {1, 0, 6};
    W(gguf_writer_set_arr_str(w, "a.str", 3, strs, lens, &err));

    float f32[12];
    for (int i = 0; i < 12; i++)
        f32[i] = (float)i - 5.5f;
    uint8_t q8[2 * 34], f16[16], q4k[2 * 144];
    for (size_t i = 0; i < sizeof q8; i++)
        q8[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof f16; i++)
        f16[i] = (uint8_t)(i + 1);
    for (size_t i = 0; i < sizeof q4k; i++)
        q4k[i] = (uint8_t)(255 - i);
    W(gguf_writer_add_tensor(w, "t.f32", GGML_TYPE_F32, 2, (int64_t[]){4, 3}, f32, 48, &err));
    W(gguf_writer_add_tensor(w, "t.q8_0", GGML_TYPE_Q8_0, 2, (int64_t[]){64, 1}, q8, 68, &err));
    W(gguf_writer_add_tensor(w, "t.f16", GGML_TYPE_F16, 1, (int64_t[]){8}, f16, 16, &err));
    W(gguf_writer_add_tensor(w, "t.q4_k", GGML_TYPE_Q4_K, 4, (int64_t[]){256, 1, 1, 2}, q4k, 288,
                             &err));
    char pbuf[256];
    const char *path = tmp_path(pbuf, sizeof pbuf, "rt");
    W(gguf_writer_write(w, path, &err));
    gguf_writer_free(w);

    size_t n;
    uint8_t *bytes = read_all(path, &n);
    uint32_t ver;
    uint64_t counts[2];
    memcpy(&ver, bytes + 4, 4);
    memcpy(counts, bytes + 8, 16);
    ck_assert(memcmp(bytes, "GGUF", 4) == 0 && ver == 3 && counts[0] == 4 && counts[1] == 17);

    gguf_file *f;
    W(gguf_open(path, &f, &err));
    unlink(path);

    /* gguf_writer_copy_kv over every value type: the copy must equal the original bytes. */
    gguf_writer *w2;
    W(gguf_writer_new(&w2, &err));
    for (uint64_t i = 0; i < gguf_n_kv(f); i++)
        W(gguf_writer_copy_kv(w2, f, i, &err));
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        W(gguf_writer_add_tensor(w2, t->name, t->type, t->n_dims, t->ne, t->data, t->n_bytes,
                                 &err));
    }
    ck_assert(gguf_writer_copy_kv(w2, f, 0, &err) == WS_ERR_INVALID_ARG); /* already copied */
    ck_assert(gguf_writer_copy_kv(w2, f, gguf_n_kv(f), &err) == WS_ERR_RANGE);
    char pbuf2[256];
    const char *path2 = tmp_path(pbuf2, sizeof pbuf2, "rt2");
    W(gguf_writer_write(w2, path2, &err));
    gguf_writer_free(w2);
    size_t n2;
    uint8_t *copy = read_all(path2, &n2);
    unlink(path2);
    ck_assert_uint_eq(n2, n);
    ck_assert(memcmp(copy, bytes, n) == 0);
    free(copy);
    free(bytes);
    ck_assert_uint_eq(gguf_alignment(f), 64);
    ck_assert_uint_eq(gguf_data_offset(f) % 64, 0);
    ck_assert_uint_eq(gguf_n_kv(f), 17);
    ck_assert_str_eq(gguf_kv_key(f, 1), "v.u8"); /* insertion order */
    check_scalar(f, "v.u8", GGUF_TYPE_UINT8, &u8);
    check_scalar(f, "v.i8", GGUF_TYPE_INT8, &i8);
    check_scalar(f, "v.u16", GGUF_TYPE_UINT16, &u16);
    check_scalar(f, "v.i16", GGUF_TYPE_INT16, &i16);
    check_scalar(f, "v.i32", GGUF_TYPE_INT32, &i32);
    check_scalar(f, "v.u64", GGUF_TYPE_UINT64, &u64);
    check_scalar(f, "v.i64", GGUF_TYPE_INT64, &i64);
    check_scalar(f, "v.f64", GGUF_TYPE_FLOAT64, &f64);
    int64_t iv;
    double dv;
    bool bv;
    W(gguf_get_int(f, "v.i16", &iv, &err));
    ck_assert_int_eq(iv, -30000);
    W(gguf_get_int(f, "v.i64", &iv, &err));
    ck_assert_int_eq(iv, i64);
    ck_assert(gguf_get_int(f, "v.u64", &iv, &err) == WS_ERR_FORMAT); /* > INT64_MAX */
    W(gguf_get_float(f, "v.f32", &dv, &err));
    ck_assert(dv == 0.15625);
    W(gguf_get_float(f, "v.f64", &dv, &err));
    ck_assert(dv == f64);
    W(gguf_get_bool(f, "v.bool", &bv, &err));
    ck_assert(bv);
    const char *s;
    uint64_t len, cnt;
    W(gguf_get_str(f, "v.str", &s, &len, &err));
    ck_assert(len == 6 && memcmp(s, "a\0b\xff\"\n", 6) == 0);
    gguf_type et;
    const void *data;
    W(gguf_get_arr(f, "a.i32", &et, &cnt, &data, &err));
    ck_assert(et == GGUF_TYPE_INT32 && cnt == 5 && memcmp(data, ai, sizeof ai) == 0);
    W(gguf_get_arr(f, "a.f64", &et, &cnt, &data, &err));
    ck_assert(et == GGUF_TYPE_FLOAT64 && cnt == 2 && memcmp(data, ad, sizeof ad) == 0);
    W(gguf_get_arr(f, "a.bool", &et, &cnt, &data, &err));
    ck_assert(et == GGUF_TYPE_BOOL && cnt == 3 && memcmp(data, ab, 3) == 0);
    W(gguf_get_arr(f, "a.empty", &et, &cnt, &data, &err));
    ck_assert(et == GGUF_TYPE_UINT16 && cnt == 0);
    W(gguf_get_arr(f, "a.str", &et, &cnt, &data, &err));
    ck_assert(et == GGUF_TYPE_STRING && cnt == 3 && data == NULL);
    for (uint64_t j = 0; j < 3; j++) {
        W(gguf_get_arr_str(f, "a.str", j, &s, &len, &err));
        ck_assert(len == lens[j] && memcmp(s, strs[j], len) == 0);
    }

    const gguf_tensor *t = gguf_find_tensor(f, "t.f32");
    ck_assert(t && t->type == GGML_TYPE_F32 && t->n_dims == 2 && t->ne[0] == 4 && t->ne[1] == 3);
    ck_assert(t->ne[2] == 1 && t->n_bytes == 48 && memcmp(t->data, f32, 48) == 0);
    t = gguf_find_tensor(f, "t.q8_0");
    ck_assert(t && t->type == GGML_TYPE_Q8_0 && t->n_bytes == 68 && memcmp(t->data, q8, 68) == 0);
    t = gguf_find_tensor(f, "t.f16");
    ck_assert(t && t->n_dims == 1 && t->ne[1] == 1 && memcmp(t->data, f16, 16) == 0);
    t = gguf_find_tensor(f, "t.q4_k");
    ck_assert(t && t->n_dims == 4 && t->ne[3] == 2 && t->n_elems == 512);
    ck_assert(t->n_bytes == 288 && memcmp(t->data, q4k, 288) == 0);
    for (uint64_t i = 0; i < 4; i++)
        ck_assert_uint_eq(gguf_tensor_at(f, i)->offset % 64, 0);
    gguf_close(f);
}
END_TEST

START_TEST(writer_refuses) {
    gguf_writer *w;
    ws_error err;
    W(gguf_writer_new(&w, &err));
    W(gguf_writer_set_u32(w, "k", 1, &err));
    ck_assert(gguf_writer_set_i32(w, "k", 2, &err) == WS_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "duplicate key 'k'"), "%s", err.msg);
    ck_assert(gguf_writer_set_u32(w, "", 1, &err) == WS_ERR_INVALID_ARG);
    ck_assert(gguf_writer_set_u32(w, "general.alignment", 48, &err) == WS_ERR_INVALID_ARG);
    ck_assert(gguf_writer_set_i32(w, "general.alignment", 64, &err) == WS_ERR_INVALID_ARG);
    uint8_t two = 2;
    ck_assert(gguf_writer_set_arr(w, "b", GGUF_TYPE_BOOL, 1, &two, &err) == WS_ERR_INVALID_ARG);
    ck_assert(gguf_writer_set_arr(w, "s", GGUF_TYPE_STRING, 0, NULL, &err) == WS_ERR_INVALID_ARG);
    float x[64] = {0};
    W(gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, (int64_t[]){4}, x, 16, &err));
    ck_assert(gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, (int64_t[]){4}, x, 16, &err) ==
              WS_ERR_INVALID_ARG);
    ck_assert(gguf_writer_add_tensor(w, "u", GGML_TYPE_F32, 1, (int64_t[]){4}, x, 12, &err) ==
              WS_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "12 data bytes"), "%s", err.msg);
    ck_assert(gguf_writer_add_tensor(w, "u", GGML_TYPE_Q8_0, 1, (int64_t[]){33}, x, 34, &err) ==
              WS_ERR_INVALID_ARG);
    ck_assert(gguf_writer_add_tensor(w, "u", GGML_TYPE_F32, 5, (int64_t[]){1, 1, 1, 1, 1}, x, 4,
                                     &err) == WS_ERR_INVALID_ARG);
    ck_assert(gguf_writer_add_tensor(w, "u", GGML_TYPE_F32, 2, (int64_t[]){4, 0}, x, 0, &err) ==
              WS_ERR_INVALID_ARG);
    ck_assert(gguf_writer_add_tensor(w, "u", (ggml_type)4, 1, (int64_t[]){4}, x, 16, &err) ==
              WS_ERR_INVALID_ARG);
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    ck_assert(gguf_writer_add_tensor(w, longname, GGML_TYPE_F32, 1, (int64_t[]){4}, x, 16, &err) ==
              WS_ERR_INVALID_ARG);
    ck_assert(gguf_writer_write(w, "/nonexistent/dir/x.gguf", &err) == WS_ERR_IO);
    gguf_writer_free(w);
}
END_TEST

/* Every key copied with gguf_writer_copy_kv and every tensor re-added, in file order: the result
 * must equal the fixture byte for byte (llama.cpp wrote it), so the writer's layout, padding and
 * value encodings match an independent implementation. */
START_TEST(rewrite_reproduces_fixture) {
    gguf_file *f = open_fixture(fixtures[_i]);
    gguf_writer *w;
    ws_error err;
    W(gguf_writer_new(&w, &err));
    for (uint64_t i = 0; i < gguf_n_kv(f); i++)
        W(gguf_writer_copy_kv(w, f, i, &err));
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        W(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->n_bytes, &err));
    }
    char pbuf[256];
    const char *path = tmp_path(pbuf, sizeof pbuf, "copy");
    W(gguf_writer_write(w, path, &err));
    gguf_writer_free(w);
    size_t n;
    uint8_t *bytes = read_all(path, &n);
    unlink(path);
    char orig[512];
    snprintf(orig, sizeof orig, "%s/fixtures/%s.gguf", WORKER_TEST_DATA, fixtures[_i]);
    size_t m;
    uint8_t *want = read_all(orig, &m);
    ck_assert_uint_eq(n, m);
    ck_assert(memcmp(bytes, want, n) == 0);
    free(bytes);
    free(want);
    gguf_close(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, fixture_loads, 0, (int)N_FIXTURES);
    tcase_add_test(tc, vocab_file_loads);
    tcase_add_test(tc, getters_check_types);
    tcase_add_test(tc, open_errors);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("write");
    tcase_add_test(tw, writer_round_trip);
    tcase_add_test(tw, writer_refuses);
    tcase_add_loop_test(tw, rewrite_reproduces_fixture, 0, (int)N_FIXTURES);
    suite_add_tcase(s, tw);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
