/* test_quant.c: the block formats against references nobody here wrote.
 *
 * - Dequantization: blk.0.ffn_down.weight and blk.0.attn_k.weight of every quantized fixture
 *   (made by llama.cpp's llama-quantize) against the dumps made by gguf-py's dequantizer
 *   (goldens/MODEL.TENSOR.f32). Measured max |ours - golden|: 0 for every type (Q2_K, Q3_K, Q4_0,
 *   Q4_1, Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0); the test allows 1e-6 of the tensor's max |value|
 *   because gguf-py evaluates the same products in numpy, where a different operation order may
 *   move a result by an ulp.
 * - Quantization: every quantized tensor of every ta-* reference file (Q2_K, Q3_K, Q4_0, Q4_1,
 *   Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0; made by llama-quantize from ta-f32 without an importance
 *   matrix), quantized by us from ta-f32's weights, byte for byte against the reference file.
 * - quant_dot_row against a double-precision dot product of the golden dequantized rows.
 * - F16 and BF16 conversion against known bit patterns. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/quant.h"
#include "test_env.h"

static const char *const quantized_fixtures[] = {
    "ta-q2_k", "ta-q3_k_m", "ta-q4_0", "ta-q4_1", "ta-q4_k_m", "ta-q5_0",
    "ta-q5_1", "ta-q5_k_m", "ta-q6_k", "ta-q8_0", "tb-q8_0",
};
#define N_QFIX (int)(sizeof quantized_fixtures / sizeof quantized_fixtures[0])
static const char *const golden_tensors[] = {"blk.0.ffn_down.weight", "blk.0.attn_k.weight"};

static gguf_file *open_fixture(const char *model) {
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/%s.gguf", WORKER_TEST_DATA, model);
    gguf_file *f = NULL;
    ws_error err = {{0}};
    ck_assert_msg(gguf_open(path, &f, &err) == WS_OK, "%s: %s", path, err.msg);
    return f;
}

/* Reads a whole file; *n gets its size. */
static void *read_file(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    const long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = malloc((size_t)len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

static float *read_golden(const char *model, const char *tensor, size_t expect_elems) {
    char path[512];
    snprintf(path, sizeof path, "%s/goldens/%s.%s.f32", WORKER_TEST_DATA_BUILD, model, tensor);
    size_t n = 0;
    float *g = read_file(path, &n);
    ck_assert_msg(n == expect_elems * sizeof(float), "%s: %zu bytes, expected %zu", path, n,
                  expect_elems * sizeof(float));
    return g;
}

static float *dequantize_tensor(const gguf_tensor *t) {
    const int64_t cols = t->ne[0], rows = (int64_t)t->n_elems / cols;
    uint64_t rb = 0;
    ck_assert_int_eq(ggml_row_bytes(t->type, cols, &rb, NULL), WS_OK);
    float *out = malloc(t->n_elems * sizeof(float));
    ck_assert_ptr_nonnull(out);
    for (int64_t r = 0; r < rows; r++)
        quant_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, out + r * cols, cols);
    return out;
}

/* ---- dequantization against the goldens ---- */

START_TEST(dequant_matches_golden) {
    const char *model = quantized_fixtures[_i];
    gguf_file *f = open_fixture(model);
    for (int k = 0; k < 2; k++) {
        const gguf_tensor *t = gguf_find_tensor(f, golden_tensors[k]);
        ck_assert_msg(t != NULL, "%s: no %s", model, golden_tensors[k]);
        float *g = read_golden(model, golden_tensors[k], t->n_elems);
        float *ours = dequantize_tensor(t);
        float gmax = 0.0f, err = 0.0f;
        for (uint64_t i = 0; i < t->n_elems; i++) {
            gmax = fmaxf(gmax, fabsf(g[i]));
            err = fmaxf(err, fabsf(ours[i] - g[i]));
        }
        printf("dequant %-9s %-21s %-4s max |ours - golden| %g (max |w| %g)\n", model,
               golden_tensors[k], ggml_type_name(t->type), err, gmax);
        ck_assert_msg(err <= 1e-6f * gmax, "%s %s (%s): max |ours - golden| %g (max |w| %g)", model,
                      golden_tensors[k], ggml_type_name(t->type), err, gmax);
        free(g);
        free(ours);
    }
    gguf_close(f);
}
END_TEST

/* ---- the dot product ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float rng_uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * 0x1p-53) * 2.0f - 1.0f;
}

/* FP32 accumulation of n products: the error of any summation order is at most about
 * n * 2^-24 * sum |w_i x_i| (each product and each partial sum rounds once); the double result
 * stands in for the exact one. */
static void check_dot(ggml_type type, const void *row, const float *w, int64_t n,
                      const char *what) {
    float *x = malloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_uniform();
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)w[i] * x[i];
        mag += fabs((double)w[i] * x[i]);
    }
    const float got = quant_dot_row(type, row, x, n);
    const double bound = (double)n * 0x1p-24 * mag;
    ck_assert_msg(fabs(got - exact) <= bound, "%s (%s, n %lld): dot %.9g, double %.9g, bound %g",
                  what, ggml_type_name(type), (long long)n, got, exact, bound);
    free(x);
}

START_TEST(dot_matches_double_on_golden_rows) {
    const char *model = quantized_fixtures[_i];
    gguf_file *f = open_fixture(model);
    for (int k = 0; k < 2; k++) {
        const gguf_tensor *t = gguf_find_tensor(f, golden_tensors[k]);
        ck_assert_ptr_nonnull(t);
        float *g = read_golden(model, golden_tensors[k], t->n_elems);
        const int64_t cols = t->ne[0];
        uint64_t rb = 0;
        ck_assert_int_eq(ggml_row_bytes(t->type, cols, &rb, NULL), WS_OK);
        for (int64_t r = 0; r < 8; r++)
            check_dot(t->type, (const uint8_t *)t->data + r * rb, g + r * cols, cols, model);
        free(g);
    }
    gguf_close(f);
}
END_TEST

/* F32, F16, BF16 rows, including lengths that are not a multiple of the vector width. */
START_TEST(dot_plain_types) {
    const int64_t lens[] = {1, 7, 32, 37, 256, 1000};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        float *w = malloc((size_t)n * sizeof(float)), *wq = malloc((size_t)n * sizeof(float));
        uint16_t *h = malloc((size_t)n * 2);
        for (int64_t i = 0; i < n; i++)
            w[i] = rng_uniform() * 0.05f;
        check_dot(GGML_TYPE_F32, w, w, n, "f32");
        ck_assert_int_eq(quant_quantize_row(GGML_TYPE_F16, w, h, n, NULL), WS_OK);
        for (int64_t i = 0; i < n; i++)
            wq[i] = quant_f16_to_f32(h[i]);
        check_dot(GGML_TYPE_F16, h, wq, n, "f16");
        ck_assert_int_eq(quant_quantize_row(GGML_TYPE_BF16, w, h, n, NULL), WS_OK);
        for (int64_t i = 0; i < n; i++)
            wq[i] = quant_bf16_to_f32(h[i]);
        check_dot(GGML_TYPE_BF16, h, wq, n, "bf16");
        free(w);
        free(wq);
        free(h);
    }
}
END_TEST

/* ---- quantization against the reference files ---- */

/* The first two are the sanitizer pass's subset (test_env.h). */
static const char *const byte_identity_refs[] = {"ta-q8_0",   "ta-q4_k_m", "ta-q4_0", "ta-q4_1",
                                                 "ta-q5_0",   "ta-q5_1",   "ta-q2_k", "ta-q3_k_m",
                                                 "ta-q5_k_m", "ta-q6_k"};

static bool reference_quantizer_type(ggml_type t) {
    return t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16;
}

/* Quantizes ta-f32's copy of t into a new buffer of t's size. */
static uint8_t *quantize_like(const gguf_tensor *src, const gguf_tensor *t) {
    ck_assert_int_eq(src->type, GGML_TYPE_F32);
    ck_assert_uint_eq(src->n_elems, t->n_elems);
    const int64_t cols = t->ne[0], rows = (int64_t)t->n_elems / cols;
    uint64_t rb = 0;
    ck_assert_int_eq(ggml_row_bytes(t->type, cols, &rb, NULL), WS_OK);
    uint8_t *out = malloc(t->n_bytes);
    ck_assert_ptr_nonnull(out);
    ws_error err = {{0}};
    for (int64_t r = 0; r < rows; r++)
        ck_assert_msg(quant_quantize_row(t->type, (const float *)src->data + r * cols, out + r * rb,
                                         cols, &err) == WS_OK,
                      "%s", err.msg);
    return out;
}

START_TEST(quantize_bytes_identical_to_reference) {
    gguf_file *f32 = open_fixture("ta-f32");
    gguf_file *ref = open_fixture(byte_identity_refs[_i]);
    int compared = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(ref); i++) {
        const gguf_tensor *t = gguf_tensor_at(ref, i);
        if (!reference_quantizer_type(t->type)) continue;
        const gguf_tensor *src = gguf_find_tensor(f32, t->name);
        ck_assert_msg(src != NULL, "ta-f32 lacks %s", t->name);
        uint8_t *ours = quantize_like(src, t);
        const uint8_t *ref_bytes = t->data;
        uint64_t b = 0; /* first difference (one assertion: each one costs a syscall in Check) */
        while (b < t->n_bytes && ours[b] == ref_bytes[b])
            b++;
        ck_assert_msg(b == t->n_bytes, "%s %s (%s): byte %llu is 0x%02x, reference 0x%02x",
                      byte_identity_refs[_i], t->name, ggml_type_name(t->type),
                      (unsigned long long)b, ours[b], ref_bytes[b]);
        free(ours);
        compared++;
    }
    ck_assert_msg(compared > 0, "%s holds no tensor of its own type", byte_identity_refs[_i]);
    gguf_close(ref);
    gguf_close(f32);
}
END_TEST

/* Rows of zeros must come back as exact zeros, and rows of extreme but finite values must come
 * back finite, for every type (the scale searches divide by ranges and scales). */
START_TEST(quantize_degenerate_rows) {
    const ggml_type types[] = {GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                               GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q2_K,
                               GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    float x[256], y[256];
    uint8_t q[256 * 4];
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const ggml_type t = types[k];
        memset(x, 0, sizeof x);
        ck_assert_int_eq(quant_quantize_row(t, x, q, 256, NULL), WS_OK);
        quant_dequantize_row(t, q, y, 256);
        for (int i = 0; i < 256; i++)
            ck_assert_msg(y[i] == 0.0f, "%s: zero row gives %g", ggml_type_name(t), y[i]);
        for (int i = 0; i < 256; i++)
            x[i] = (i % 7 == 0) ? 1e-30f : (i % 3 ? 0.5f : -0.25f);
        x[17] = 3e4f;
        ck_assert_int_eq(quant_quantize_row(t, x, q, 256, NULL), WS_OK);
        quant_dequantize_row(t, q, y, 256);
        for (int i = 0; i < 256; i++)
            ck_assert_msg(isfinite(y[i]), "%s: element %d is %g", ggml_type_name(t), i, y[i]);
    }
}
END_TEST

/* ---- F16 / BF16 conversion ---- */

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

START_TEST(f16_to_f32_known_patterns) {
    ck_assert_float_eq(quant_f16_to_f32(0x3c00), 1.0f);
    ck_assert_float_eq(quant_f16_to_f32(0xc000), -2.0f);
    ck_assert_float_eq(quant_f16_to_f32(0x7bff), 65504.0f);
    ck_assert_float_eq(quant_f16_to_f32(0x0400), 0x1p-14f);        /* smallest normal */
    ck_assert_float_eq(quant_f16_to_f32(0x0001), 0x1p-24f);        /* smallest subnormal */
    ck_assert_float_eq(quant_f16_to_f32(0x03ff), 1023 * 0x1p-24f); /* largest subnormal */
    ck_assert_float_eq(quant_f16_to_f32(0x8001), -0x1p-24f);
    ck_assert_float_eq(quant_f16_to_f32(0x3555), 0.333251953125f);
    const float nz = quant_f16_to_f32(0x8000);
    ck_assert(nz == 0.0f && signbit(nz));
    ck_assert(isinf(quant_f16_to_f32(0x7c00)) && quant_f16_to_f32(0x7c00) > 0);
    ck_assert(isinf(quant_f16_to_f32(0xfc00)) && quant_f16_to_f32(0xfc00) < 0);
    ck_assert(isnan(quant_f16_to_f32(0x7e00)));
    ck_assert(isnan(quant_f16_to_f32(0x7c01)));
}
END_TEST

START_TEST(f32_to_f16_rounding) {
    ck_assert_uint_eq(quant_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(quant_f32_to_f16(-0.0f), 0x8000);
    ck_assert_uint_eq(quant_f32_to_f16(0.1f), 0x2e66);
    ck_assert_uint_eq(quant_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(quant_f32_to_f16(65519.996f), 0x7bff); /* just under the halfway point */
    ck_assert_uint_eq(quant_f32_to_f16(65520.0f), 0x7c00);   /* halfway to 2^16 rounds to inf */
    ck_assert_uint_eq(quant_f32_to_f16(1e9f), 0x7c00);
    ck_assert_uint_eq(quant_f32_to_f16(-INFINITY), 0xfc00);
    const uint16_t n = quant_f32_to_f16(NAN);
    ck_assert((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    /* ties to even between 1 and 1 + 2^-10, and between 1 + 2^-10 and 1 + 2^-9 */
    ck_assert_uint_eq(quant_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    ck_assert_uint_eq(quant_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    ck_assert_uint_eq(quant_f32_to_f16(f32_from_bits(0x3f801001)), 0x3c01); /* above the tie */
    /* subnormal results */
    ck_assert_uint_eq(quant_f32_to_f16(0x1p-24f), 0x0001);
    ck_assert_uint_eq(quant_f32_to_f16(0x1p-25f), 0x0000); /* tie to even: 0 */
    ck_assert_uint_eq(quant_f32_to_f16(f32_from_bits(0x33000001)), 0x0001);
    ck_assert_uint_eq(quant_f32_to_f16(3 * 0x1p-25f), 0x0002); /* 1.5 ulp: tie to even 2 */
    ck_assert_uint_eq(quant_f32_to_f16(5 * 0x1p-25f), 0x0002); /* 2.5 ulp: tie to even 2 */
    ck_assert_uint_eq(quant_f32_to_f16(-1023 * 0x1p-24f), 0x83ff);
    ck_assert_uint_eq(quant_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400); /* rounds up to normal */
    ck_assert_uint_eq(quant_f32_to_f16(1e-30f), 0x0000);
    ck_assert_uint_eq(quant_f32_to_f16(f32_from_bits(0x00000001)), 0x0000); /* f32 subnormal */
    /* every half but the nans survives the round trip (first failure reported) */
    uint32_t bad = 0x10000;
    for (uint32_t h = 0; h < 0x10000 && bad == 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        if (quant_f32_to_f16(quant_f16_to_f32((uint16_t)h)) != h) bad = h;
    }
    ck_assert_msg(bad == 0x10000, "half 0x%04x does not round-trip", bad);
}
END_TEST

START_TEST(bf16_conversion) {
    ck_assert_float_eq(quant_bf16_to_f32(0x3f80), 1.0f);
    ck_assert_float_eq(quant_bf16_to_f32(0xc0a0), -5.0f);
    ck_assert_float_eq(quant_bf16_to_f32(0x0001), f32_from_bits(0x00010000));
    ck_assert(isinf(quant_bf16_to_f32(0xff80)));
    ck_assert(isnan(quant_bf16_to_f32(0x7fc0)));
    ck_assert_uint_eq(quant_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(quant_f32_to_bf16(f32_from_bits(0x3f808000)), 0x3f80); /* tie, even */
    ck_assert_uint_eq(quant_f32_to_bf16(f32_from_bits(0x3f818000)), 0x3f82); /* tie, to even */
    ck_assert_uint_eq(quant_f32_to_bf16(f32_from_bits(0x3f808001)), 0x3f81); /* above the tie */
    ck_assert_uint_eq(quant_f32_to_bf16(f32_from_bits(0x7f7fffff)), 0x7f80); /* max -> inf */
    ck_assert_uint_eq(quant_f32_to_bf16(INFINITY), 0x7f80);
    ck_assert_uint_eq(quant_f32_to_bf16(f32_from_bits(0x00018000)), 0x0002); /* subnormal tie */
    const uint16_t n = quant_f32_to_bf16(f32_from_bits(0x7f800001));         /* signalling nan */
    ck_assert((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
}
END_TEST

/* ---- the type table ---- */

START_TEST(type_table) {
    const struct {
        ggml_type t;
        const char *name;
        uint32_t elems, bytes;
    } want[] = {
        {GGML_TYPE_F32, "F32", 1, 4},       {GGML_TYPE_F16, "F16", 1, 2},
        {GGML_TYPE_BF16, "BF16", 1, 2},     {GGML_TYPE_Q4_0, "Q4_0", 32, 18},
        {GGML_TYPE_Q4_1, "Q4_1", 32, 20},   {GGML_TYPE_Q5_0, "Q5_0", 32, 22},
        {GGML_TYPE_Q5_1, "Q5_1", 32, 24},   {GGML_TYPE_Q8_0, "Q8_0", 32, 34},
        {GGML_TYPE_Q2_K, "Q2_K", 256, 84},  {GGML_TYPE_Q3_K, "Q3_K", 256, 110},
        {GGML_TYPE_Q4_K, "Q4_K", 256, 144}, {GGML_TYPE_Q5_K, "Q5_K", 256, 176},
        {GGML_TYPE_Q6_K, "Q6_K", 256, 210},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert(ggml_type_supported(want[i].t));
        ck_assert_str_eq(ggml_type_name(want[i].t), want[i].name);
        ck_assert_uint_eq(ggml_block_elems(want[i].t), want[i].elems);
        ck_assert_uint_eq(ggml_block_bytes(want[i].t), want[i].bytes);
        ggml_type t;
        ck_assert(ggml_type_from_name(want[i].name, &t) && t == want[i].t);
    }
    ggml_type t;
    ck_assert(ggml_type_from_name("q4_k", &t) && t == GGML_TYPE_Q4_K);
    ck_assert(!ggml_type_from_name("Q4_2", &t));
    ck_assert(!ggml_type_supported(4) && !ggml_type_supported(9) && !ggml_type_supported(15));
    ck_assert_str_eq(ggml_type_name(99), "?");
    ck_assert_uint_eq(ggml_block_bytes(99), 0);

    uint64_t rb = 0;
    ws_error err = {{0}};
    ck_assert_int_eq(ggml_row_bytes(GGML_TYPE_Q4_K, 4864, &rb, &err), WS_OK);
    ck_assert_uint_eq(rb, 19 * 144);
    ck_assert_int_eq(ggml_row_bytes(GGML_TYPE_Q4_K, 896, &rb, &err), WS_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "896"));
    ck_assert_int_eq(ggml_row_bytes(GGML_TYPE_F32, INT64_MAX, &rb, &err), WS_ERR_FORMAT);
    ck_assert_int_eq(ggml_row_bytes(5, 32, &rb, &err), WS_ERR_UNSUPPORTED);
    ck_assert_int_eq(quant_quantize_row(GGML_TYPE_Q4_0, NULL, NULL, 33, &err), WS_ERR_INVALID_ARG);
}
END_TEST

static Suite *quant_suite(void) {
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("formats");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, type_table);
    tcase_add_test(tc, f16_to_f32_known_patterns);
    tcase_add_test(tc, f32_to_f16_rounding);
    tcase_add_test(tc, bf16_conversion);
    tcase_add_loop_test(tc, dequant_matches_golden, 0, N_QFIX);
    tcase_add_loop_test(tc, dot_matches_double_on_golden_rows, 0, N_QFIX);
    tcase_add_test(tc, dot_plain_types);
    tcase_add_test(tc, quantize_degenerate_rows);
    tcase_add_loop_test(
        tc, quantize_bytes_identical_to_reference, 0,
        test_light() ? 2 : (int)(sizeof byte_identity_refs / sizeof byte_identity_refs[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(quant_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
