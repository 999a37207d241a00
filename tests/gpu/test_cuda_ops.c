/* test_cuda_ops.c: each CUDA kernel against a CPU computation in double precision, at sizes above
 * one thread block, not powers of two, and the real Qwen2.5-0.5B sizes (896, 4864, 151936, head
 * dim 64, 14/2 heads). Dequantization is checked against the goldens' dequantized tensors (made
 * by llama.cpp's gguf-py), the device sampler against the host sampler.
 *
 * Tolerances, as max |gpu - ref| / max |ref| unless stated:
 * - dequantization to FP32 (the embedding kernel): 1e-6; the value is one product of an F16 scale
 *   and a small integer (plus a min), exact or within one FP32 rounding of the reference.
 * - dequantization to F16: each value within 2^-11 relative (one F16 rounding) plus 6e-8 absolute
 *   (the F16 subnormal step).
 * - GEMV, RMSNorm, rotary/KV, attention, SwiGLU: 1e-5. FP32 accumulation of at most 4864 terms
 *   carries ~sqrt(K) * 6e-8 ~ 4e-6 relative error against the double reference, rotary angles
 *   are computed in double.
 * - argmax and greedy: exact. Sampling: the same token for every draw (the draws avoid boundaries
 *   by construction of random logits: a tie within rounding has probability ~1e-6 per draw), the
 *   log-probabilities within 1e-4 absolute. */
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cuda/kernels/kernels.h"
#include "engine/engine.h"
#include "model/quant.h"

/* The test data folders: the build's paths, unless the environment names others (a copy of the
 * tree on another machine). */
static const char *data_dir(void) {
    const char *d = getenv("WORKER_TEST_DATA_DIR");
    return d ? d : WORKER_TEST_DATA;
}
static const char *data_build_dir(void) {
    const char *d = getenv("WORKER_TEST_DATA_BUILD_DIR");
    return d ? d : WORKER_TEST_DATA_BUILD;
}

#define CK(x)                                                                                      \
    ck_assert_msg((x) == cudaSuccess, "%s: %s", #x, cudaGetErrorString(cudaGetLastError()))

static uint64_t rng = 88172645463325252ull;
static double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static float nrand(void) {
    return (float)(sqrt(-2.0 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()));
}

static void *dev_copy(const void *h, size_t n) {
    void *d = NULL;
    CK(cudaMalloc(&d, n ? n : 1));
    if (h) CK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
    return d;
}

static void host_copy(void *h, const void *d, size_t n) {
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost));
}

/* max |a - b| / max |b| over n values; asserts finiteness. */
static double rel_err(const float *a, const double *b, size_t n) {
    double md = 0.0, mr = 0.0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(a[i]), "value %zu not finite", i);
        if (fabs(a[i] - b[i]) > md) md = fabs(a[i] - b[i]);
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    }
    return md / (mr > 0 ? mr : 1.0);
}

static void report(const char *what, double e, double tol) {
    printf("| %s | %.3g | %.0g |\n", what, e, tol);
    fflush(stdout);
    ck_assert_msg(e <= tol, "%s: error %.3g > %.1g", what, e, tol);
}

/* A random weight matrix quantized to type t: host bytes, the dequantized FP32 values, device. */
typedef struct {
    kq_mat m;
    uint8_t *bytes;
    float *deq;
} wmat;

static wmat make_w(ggml_type t, int rows, int cols) {
    wmat w;
    uint64_t rb = 0;
    ws_error err;
    ck_assert(ggml_row_bytes(t, cols, &rb, &err) == WS_OK);
    w.bytes = malloc(rb * rows);
    w.deq = malloc(sizeof(float) * (size_t)rows * cols);
    float *src = malloc(sizeof(float) * cols);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++)
            src[c] = 0.02f * nrand();
        if (t == GGML_TYPE_F32)
            memcpy(w.bytes + rb * r, src, rb);
        else
            ck_assert_msg(quant_quantize_row(t, src, w.bytes + rb * r, cols, &err) == WS_OK, "%s",
                          err.msg);
        quant_dequantize_row(t, w.bytes + rb * r, w.deq + (size_t)r * cols, cols);
    }
    free(src);
    w.m.w = dev_copy(w.bytes, rb * rows);
    w.m.type = (int)t;
    w.m.rows = rows;
    w.m.cols = cols;
    w.m.row_bytes = rb;
    w.m.bias = NULL;
    return w;
}

static void free_w(wmat *w) {
    cudaFree((void *)w->m.w);
    free(w->bytes);
    free(w->deq);
}

static double dotd(const float *w, const double *x, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += (double)w[i] * x[i];
    return s;
}

/* ---- dequantization against the goldens ---- */

static const char *const quant_fixtures[] = {"ta-q8_0",   "ta-q4_0", "ta-q4_1",   "ta-q5_0",
                                             "ta-q5_1",   "ta-q2_k", "ta-q3_k_m", "ta-q4_k_m",
                                             "ta-q5_k_m", "ta-q6_k", "tb-q8_0"};

START_TEST(dequant_goldens) {
    static const char *const tensors[] = {"blk.0.ffn_down.weight", "blk.0.attn_k.weight"};
    const char *fx = quant_fixtures[_i];
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/%s.gguf", data_dir(), fx);
    ws_error err;
    gguf_file *f = NULL;
    ck_assert_msg(gguf_open(path, &f, &err) == WS_OK, "%s", err.msg);
    for (int k = 0; k < 2; k++) {
        const gguf_tensor *t = gguf_find_tensor(f, tensors[k]);
        ck_assert(t != NULL);
        const int cols = (int)t->ne[0], rows = (int)t->ne[1];
        snprintf(path, sizeof path, "%s/goldens/%s.%s.f32", data_build_dir(), fx, tensors[k]);
        FILE *g = fopen(path, "rb");
        ck_assert_msg(g != NULL, "cannot open %s", path);
        float *ref = malloc(sizeof(float) * (size_t)rows * cols);
        ck_assert(fread(ref, sizeof(float), (size_t)rows * cols, g) == (size_t)rows * cols);
        fclose(g);
        kq_mat m = {dev_copy(t->data, t->n_bytes), (int)t->type, rows, cols,
                    t->n_bytes / (uint64_t)rows,   NULL};
        int32_t *ids = malloc(sizeof(int32_t) * rows);
        for (int r = 0; r < rows; r++)
            ids[r] = r;
        int32_t *d_ids = dev_copy(ids, sizeof(int32_t) * rows);
        float *d_out = dev_copy(NULL, sizeof(float) * (size_t)rows * cols);
        void *d_h = dev_copy(NULL, 2 * (size_t)rows * cols);
        CK(kq_embed(&m, d_ids, NULL, rows, d_out, 0));
        CK(kq_dequant_f16(&m, 0, rows, d_h, 0));
        float *out = malloc(sizeof(float) * (size_t)rows * cols);
        uint16_t *h = malloc(2 * (size_t)rows * cols);
        host_copy(out, d_out, sizeof(float) * (size_t)rows * cols);
        host_copy(h, d_h, 2 * (size_t)rows * cols);
        double *refd = malloc(sizeof(double) * (size_t)rows * cols);
        size_t bad16 = 0;
        for (size_t i = 0; i < (size_t)rows * cols; i++) {
            refd[i] = ref[i];
            const float v = quant_f16_to_f32(h[i]);
            if (fabs(v - ref[i]) > fabs(ref[i]) * 4.8828125e-4 + 6e-8) bad16++;
        }
        char what[160];
        snprintf(what, sizeof what, "dequant f32 %s %s (%s)", fx, tensors[k],
                 ggml_type_name(t->type));
        report(what, rel_err(out, refd, (size_t)rows * cols), 1e-6);
        ck_assert_msg(bad16 == 0, "%s: %zu F16 values off by more than one rounding", what, bad16);
        free(refd);
        free(out);
        free(h);
        free(ids);
        free(ref);
        cudaFree(d_ids);
        cudaFree(d_out);
        cudaFree(d_h);
        cudaFree((void *)m.w);
    }
    gguf_close(f);
}
END_TEST

/* ---- GEMV: every block type, every mode ---- */

static const ggml_type all_types[] = {
    GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
    GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K,
    GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static bool is_k(ggml_type t) {
    return t >= GGML_TYPE_Q2_K && t <= GGML_TYPE_Q6_K;
}

/* SET with RMSNorm and bias, ADD, at (rows, cols). */
static void gemv_case(ggml_type t, int rows, int cols) {
    wmat w = make_w(t, rows, cols);
    float *x = malloc(sizeof(float) * cols), *nw = malloc(sizeof(float) * cols);
    float *bias = malloc(sizeof(float) * rows), *base = malloc(sizeof(float) * rows);
    double *ref = malloc(sizeof(double) * rows), *xn = malloc(sizeof(double) * cols);
    double ss = 0.0;
    for (int i = 0; i < cols; i++) {
        x[i] = 3.0f * nrand();
        nw[i] = 1.0f + 0.1f * nrand();
        ss += (double)x[i] * x[i];
    }
    const double sc = 1.0 / sqrt(ss / cols + 1e-6);
    for (int i = 0; i < cols; i++)
        xn[i] = x[i] * sc * nw[i];
    for (int r = 0; r < rows; r++) {
        bias[r] = nrand();
        base[r] = nrand();
    }
    float *dx = dev_copy(x, sizeof(float) * cols), *dn = dev_copy(nw, sizeof(float) * cols);
    float *db = dev_copy(bias, sizeof(float) * rows), *dout = dev_copy(base, sizeof(float) * rows);
    float *out = malloc(sizeof(float) * rows);
    w.m.bias = db;
    CK(kq_gemv(KQ_GEMV_SET, &w.m, 1, dx, dn, 1e-6f, dout, NULL, NULL, 0, 0));
    host_copy(out, dout, sizeof(float) * rows);
    for (int r = 0; r < rows; r++)
        ref[r] = dotd(w.deq + (size_t)r * cols, xn, cols) + bias[r];
    char what[128];
    snprintf(what, sizeof what, "gemv set+norm+bias %s %dx%d", ggml_type_name(t), rows, cols);
    report(what, rel_err(out, ref, rows), 1e-5);
    /* ADD without norm onto a random residual */
    w.m.bias = NULL;
    CK(cudaMemcpy(dout, base, sizeof(float) * rows, cudaMemcpyHostToDevice));
    CK(kq_gemv(KQ_GEMV_ADD, &w.m, 1, dx, NULL, 0.0f, dout, NULL, NULL, 0, 0));
    host_copy(out, dout, sizeof(float) * rows);
    for (int i = 0; i < cols; i++)
        xn[i] = x[i];
    for (int r = 0; r < rows; r++)
        ref[r] = base[r] + dotd(w.deq + (size_t)r * cols, xn, cols);
    snprintf(what, sizeof what, "gemv add %s %dx%d", ggml_type_name(t), rows, cols);
    report(what, rel_err(out, ref, rows), 1e-5);
    cudaFree(dx);
    cudaFree(dn);
    cudaFree(db);
    cudaFree(dout);
    free(x);
    free(nw);
    free(bias);
    free(base);
    free(ref);
    free(xn);
    free(out);
    free_w(&w);
}

START_TEST(gemv_types) {
    const ggml_type t = all_types[_i];
    gemv_case(t, 1000, 768);
    gemv_case(t, 896, 4864);
    if (!is_k(t)) gemv_case(t, 4864, 896);
    if (t == GGML_TYPE_F16 || t == GGML_TYPE_Q8_0) gemv_case(t, 151936, 896);
}
END_TEST

/* gate and up in the block types of the usual files: mixed (the runtime-typed kernel) and equal
 * (the typed kernels, two units a block at this size; Q5_0 through its factored chunk dot) */
static const ggml_type swiglu_types[][2] = {{GGML_TYPE_Q5_0, GGML_TYPE_Q8_0},
                                            {GGML_TYPE_Q5_0, GGML_TYPE_Q5_0},
                                            {GGML_TYPE_Q8_0, GGML_TYPE_Q8_0},
                                            {GGML_TYPE_F16, GGML_TYPE_F16}};

START_TEST(gemv_swiglu) {
    const int rows = 4864, cols = 896;
    const ggml_type tg = swiglu_types[_i][0], tu = swiglu_types[_i][1];
    wmat g = make_w(tg, rows, cols), u = make_w(tu, rows, cols);
    float *x = malloc(sizeof(float) * cols), *nw = malloc(sizeof(float) * cols);
    double *xn = malloc(sizeof(double) * cols), *ref = malloc(sizeof(double) * rows);
    double ss = 0;
    for (int i = 0; i < cols; i++) {
        x[i] = nrand();
        nw[i] = 1.0f + 0.1f * nrand();
        ss += (double)x[i] * x[i];
    }
    for (int i = 0; i < cols; i++)
        xn[i] = x[i] / sqrt(ss / cols + 1e-6) * nw[i];
    for (int r = 0; r < rows; r++) {
        const double a = dotd(g.deq + (size_t)r * cols, xn, cols);
        ref[r] = a / (1.0 + exp(-a)) * dotd(u.deq + (size_t)r * cols, xn, cols);
    }
    float *dx = dev_copy(x, sizeof(float) * cols), *dn = dev_copy(nw, sizeof(float) * cols);
    float *dout = dev_copy(NULL, sizeof(float) * rows), *out = malloc(sizeof(float) * rows);
    const kq_mat m[2] = {g.m, u.m};
    CK(kq_gemv(KQ_GEMV_SWIGLU, m, 2, dx, dn, 1e-6f, dout, NULL, NULL, 0, 0));
    host_copy(out, dout, sizeof(float) * rows);
    char what[96];
    snprintf(what, sizeof what, "gemv swiglu %s/%s %dx%d", ggml_type_name(tg), ggml_type_name(tu),
             rows, cols);
    report(what, rel_err(out, ref, rows), 1e-5);
    cudaFree(dx);
    cudaFree(dn);
    cudaFree(dout);
    free(x);
    free(nw);
    free(xn);
    free(ref);
    free(out);
    free_w(&g);
    free_w(&u);
}
END_TEST

/* ---- rotary, KV append, attention ---- */

#define NH 14
#define NKV 2
#define HD 64
#define MAXC 1100

static double inv_freq_h[HD / 2];

static kq_geom make_geom(void) {
    kq_geom g = {NH, NKV, HD, MAXC, NULL};
    for (int i = 0; i < HD / 2; i++)
        inv_freq_h[i] = pow(1e6, -2.0 * i / HD);
    g.inv_freq = dev_copy(inv_freq_h, sizeof inv_freq_h);
    return g;
}

static kq_params *make_params(int pos, float *k, float *v) {
    kq_params p;
    memset(&p, 0, sizeof p);
    p.pos = pos;
    p.k = k;
    p.v = v;
    return dev_copy(&p, sizeof p);
}

/* Rotates pairs (i, i + HD/2) of one head vector in double. */
static void rope_ref(double *h, int pos) {
    for (int i = 0; i < HD / 2; i++) {
        const double a = pos * inv_freq_h[i], c = cos(a), s = sin(a);
        const double x0 = h[i], x1 = h[i + HD / 2];
        h[i] = x0 * c - x1 * s;
        h[i + HD / 2] = x0 * s + x1 * c;
    }
}

/* q, k and v in the block types of the usual files: the mixed instance (Q5_0 q/k, Q8_0 v) and
 * single types (all Q5_0: the typed kernel for every unit, F16) */
static const ggml_type qkv_types[][3] = {{GGML_TYPE_Q5_0, GGML_TYPE_Q5_0, GGML_TYPE_Q8_0},
                                         {GGML_TYPE_Q5_0, GGML_TYPE_Q5_0, GGML_TYPE_Q5_0},
                                         {GGML_TYPE_F16, GGML_TYPE_F16, GGML_TYPE_F16}};

START_TEST(gemv_qkv_rope) {
    const int cols = 896, layer = 1, pos = 37, q_dim = NH * HD, kv_dim = NKV * HD;
    kq_geom g = make_geom();
    const ggml_type *ty = qkv_types[_i];
    wmat w[3] = {make_w(ty[0], q_dim, cols), make_w(ty[1], kv_dim, cols),
                 make_w(ty[2], kv_dim, cols)};
    const int rows[3] = {q_dim, kv_dim, kv_dim};
    float *bias[3];
    for (int k = 0; k < 3; k++) {
        bias[k] = malloc(sizeof(float) * rows[k]);
        for (int r = 0; r < rows[k]; r++)
            bias[k][r] = r % 64 == 5 ? 20.0f * nrand() : nrand();
        w[k].m.bias = dev_copy(bias[k], sizeof(float) * rows[k]);
    }
    float *x = malloc(sizeof(float) * cols), *nw = malloc(sizeof(float) * cols);
    double *xn = malloc(sizeof(double) * cols), ss = 0;
    for (int i = 0; i < cols; i++) {
        x[i] = nrand();
        nw[i] = 1.0f + 0.1f * nrand();
        ss += (double)x[i] * x[i];
    }
    for (int i = 0; i < cols; i++)
        xn[i] = x[i] / sqrt(ss / cols + 1e-6) * nw[i];
    const size_t cache = (size_t)2 * MAXC * kv_dim;
    float *dk = dev_copy(NULL, cache * 4), *dv = dev_copy(NULL, cache * 4);
    kq_params *p = make_params(pos, dk, dv);
    float *dx = dev_copy(x, sizeof(float) * cols), *dn = dev_copy(nw, sizeof(float) * cols);
    float *dq = dev_copy(NULL, sizeof(float) * q_dim);
    const kq_mat m[3] = {w[0].m, w[1].m, w[2].m};
    CK(kq_gemv(KQ_GEMV_QKV, m, 3, dx, dn, 1e-6f, dq, p, &g, layer, 0));
    float *out[3] = {malloc(4 * q_dim), malloc(4 * kv_dim), malloc(4 * kv_dim)};
    host_copy(out[0], dq, 4 * q_dim);
    const size_t row = ((size_t)layer * MAXC + pos) * kv_dim;
    host_copy(out[1], dk + row, 4 * kv_dim);
    host_copy(out[2], dv + row, 4 * kv_dim);
    for (int k = 0; k < 3; k++) {
        double *ref = malloc(sizeof(double) * rows[k]);
        for (int r = 0; r < rows[k]; r++)
            ref[r] = dotd(w[k].deq + (size_t)r * cols, xn, cols) + bias[k][r];
        if (k < 2)
            for (int h = 0; h < rows[k] / HD; h++)
                rope_ref(ref + h * HD, pos);
        static const char *const nm[] = {"q (rotated)", "k cache (rotated)", "v cache"};
        char what[96];
        snprintf(what, sizeof what, "gemv qkv %s/%s/%s: %s", ggml_type_name(ty[0]),
                 ggml_type_name(ty[1]), ggml_type_name(ty[2]), nm[k]);
        report(what, rel_err(out[k], ref, rows[k]), 1e-5);
        free(ref);
        free(out[k]);
        free(bias[k]);
        cudaFree((void *)w[k].m.bias);
        free_w(&w[k]);
    }
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(p);
    cudaFree(dx);
    cudaFree(dn);
    cudaFree(dq);
    cudaFree((void *)g.inv_freq);
    free(x);
    free(nw);
    free(xn);
}
END_TEST

START_TEST(rope_kv_prefill) {
    const int n = 5, pos = 100, layer = 0, q_dim = NH * HD, kv_dim = NKV * HD;
    const int W = q_dim + 2 * kv_dim;
    kq_geom g = make_geom();
    float *qkv = malloc(sizeof(float) * n * W), *b = malloc(sizeof(float) * W);
    for (int i = 0; i < n * W; i++)
        qkv[i] = nrand();
    for (int i = 0; i < W; i++)
        b[i] = nrand();
    float *dqkv = dev_copy(qkv, sizeof(float) * n * W), *db = dev_copy(b, sizeof(float) * W);
    const size_t cache = (size_t)MAXC * kv_dim;
    float *dk = dev_copy(NULL, cache * 4), *dv = dev_copy(NULL, cache * 4);
    float *dq = dev_copy(NULL, sizeof(float) * n * q_dim);
    kq_params *p = make_params(pos, dk, dv);
    CK(kq_rope_kv(dqkv, db, db + q_dim, db + q_dim + kv_dim, n, p, &g, layer, dq, 0));
    float *oq = malloc(sizeof(float) * n * q_dim), *ok = malloc(4 * n * kv_dim),
          *ov = malloc(4 * n * kv_dim);
    host_copy(oq, dq, sizeof(float) * n * q_dim);
    host_copy(ok, dk + (size_t)pos * kv_dim, 4 * n * kv_dim);
    host_copy(ov, dv + (size_t)pos * kv_dim, 4 * n * kv_dim);
    double *rq = malloc(sizeof(double) * n * q_dim), *rk = malloc(8 * n * kv_dim),
           *rv = malloc(8 * n * kv_dim);
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < q_dim; i++)
            rq[t * q_dim + i] = (double)qkv[t * W + i] + b[i];
        for (int i = 0; i < kv_dim; i++) {
            rk[t * kv_dim + i] = (double)qkv[t * W + q_dim + i] + b[q_dim + i];
            rv[t * kv_dim + i] = (double)qkv[t * W + q_dim + kv_dim + i] + b[q_dim + kv_dim + i];
        }
        for (int h = 0; h < NH; h++)
            rope_ref(rq + t * q_dim + h * HD, pos + t);
        for (int h = 0; h < NKV; h++)
            rope_ref(rk + t * kv_dim + h * HD, pos + t);
    }
    report("rope_kv q", rel_err(oq, rq, (size_t)n * q_dim), 1e-5);
    report("rope_kv k", rel_err(ok, rk, (size_t)n * kv_dim), 1e-5);
    report("rope_kv v", rel_err(ov, rv, (size_t)n * kv_dim), 1e-6);
    free(qkv);
    free(b);
    free(oq);
    free(ok);
    free(ov);
    free(rq);
    free(rk);
    free(rv);
    cudaFree(dqkv);
    cudaFree(db);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dq);
    cudaFree(p);
    cudaFree((void *)g.inv_freq);
}
END_TEST

/* Queries at positions pos0 .. pos0+n-1 of layer 1 against random caches; several splits; nh
 * query heads of hd dimensions sharing nkv key/value heads. */
static void attention_case_hd(int n, int pos0, int n_split, int nh, int nkv, int hd) {
    const int q_dim = nh * hd, kv_dim = nkv * hd, layer = 1, len = pos0 + n;
    kq_geom g = {nh, nkv, hd, MAXC, NULL};
    const size_t cache = (size_t)2 * MAXC * kv_dim;
    float *k = malloc(4 * cache), *v = malloc(4 * cache), *q = malloc(sizeof(float) * n * q_dim);
    for (size_t i = 0; i < cache; i++) {
        k[i] = 2.0f * nrand();
        v[i] = nrand();
    }
    for (int i = 0; i < n * q_dim; i++)
        q[i] = nrand();
    float *dk = dev_copy(k, 4 * cache), *dv = dev_copy(v, 4 * cache);
    float *dq = dev_copy(q, sizeof(float) * n * q_dim), *dout = dev_copy(NULL, 4 * n * q_dim);
    void *d16 = dev_copy(NULL, 2 * n * q_dim);
    float *part = dev_copy(NULL, sizeof(float) * n * nh * n_split * (hd + 2));
    unsigned *cnt = dev_copy(NULL, sizeof(unsigned) * n * nh);
    CK(cudaMemset(cnt, 0, sizeof(unsigned) * n * nh));
    kq_params *p = make_params(pos0, dk, dv);
    CK(kq_attention(dq, n, p, &g, layer, n_split, part, cnt, dout, d16, 0));
    float *out = malloc(4 * n * q_dim);
    uint16_t *o16 = malloc(2 * n * q_dim);
    host_copy(out, dout, 4 * n * q_dim);
    host_copy(o16, d16, 2 * n * q_dim);
    unsigned *cn = malloc(sizeof(unsigned) * n * nh);
    host_copy(cn, cnt, sizeof(unsigned) * n * nh);
    for (int i = 0; i < n * nh; i++)
        ck_assert_uint_eq(cn[i], 0);
    double *ref = malloc(sizeof(double) * n * q_dim), *sc = malloc(sizeof(double) * len);
    const float *K = k + (size_t)layer * MAXC * kv_dim, *V = v + (size_t)layer * MAXC * kv_dim;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh; h++) {
            const int kvh = h / (nh / nkv), L = pos0 + t + 1;
            const float *qh = q + (size_t)t * q_dim + h * hd;
            double m = -INFINITY, z = 0;
            for (int j = 0; j < L; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)qh[d] * K[(size_t)j * kv_dim + kvh * hd + d];
                sc[j] = s / sqrt((double)hd);
                if (sc[j] > m) m = sc[j];
            }
            for (int j = 0; j < L; j++)
                z += (sc[j] = exp(sc[j] - m));
            for (int d = 0; d < hd; d++) {
                double a = 0;
                for (int j = 0; j < L; j++)
                    a += sc[j] * V[(size_t)j * kv_dim + kvh * hd + d];
                ref[(size_t)t * q_dim + h * hd + d] = a / z;
            }
        }
    char what[128];
    snprintf(what, sizeof what, "attention %d queries at %d, %d splits, head dim %d", n, pos0,
             n_split, hd);
    report(what, rel_err(out, ref, (size_t)n * q_dim), 1e-5);
    for (int i = 0; i < n * q_dim; i++)
        ck_assert(fabs(quant_f16_to_f32(o16[i]) - out[i]) <= fabs(out[i]) * 4.9e-4 + 6e-8);
    free(k);
    free(v);
    free(q);
    free(out);
    free(o16);
    free(cn);
    free(ref);
    free(sc);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dq);
    cudaFree(dout);
    cudaFree(d16);
    cudaFree(part);
    cudaFree(cnt);
    cudaFree(p);
}

static void attention_case(int n, int pos0, int n_split) {
    attention_case_hd(n, pos0, n_split, NH, NKV, HD);
}

START_TEST(attention) {
    attention_case(1, 0, 1);
    attention_case(1, 32, 5);
    attention_case(1, 299, 16);
    attention_case(1, 1000, 16);
    attention_case(1, 1000, 1);
    attention_case(40, 7, 1);
    attention_case(3, 500, 7);
    /* head dimension 128 (two lanes a key): 16 query heads over 8 key/value heads */
    attention_case_hd(1, 0, 1, 16, 8, 128);
    attention_case_hd(1, 300, 1, 16, 8, 128);
    attention_case_hd(1, 1000, 16, 16, 8, 128);
    attention_case_hd(5, 40, 3, 16, 8, 128);
}
END_TEST

/* ---- norms, SwiGLU, argmax ---- */

START_TEST(rmsnorm_swiglu) {
    static const int dims[] = {896, 4864, 1000};
    for (int k = 0; k < 3; k++) {
        const int n = 3, d = dims[k];
        float *x = malloc(sizeof(float) * n * d), *w = malloc(sizeof(float) * d);
        for (int i = 0; i < n * d; i++)
            x[i] = 5.0f * nrand();
        for (int i = 0; i < d; i++)
            w[i] = 7.0f + nrand();
        float *dx = dev_copy(x, sizeof(float) * n * d), *dw = dev_copy(w, sizeof(float) * d);
        float *d32 = dev_copy(NULL, sizeof(float) * n * d), *out = malloc(sizeof(float) * n * d);
        CK(kq_rmsnorm(dx, dw, n, d, 1e-6f, d32, NULL, 0));
        host_copy(out, d32, sizeof(float) * n * d);
        double *ref = malloc(sizeof(double) * n * d);
        for (int r = 0; r < n; r++) {
            double ss = 0;
            for (int i = 0; i < d; i++)
                ss += (double)x[r * d + i] * x[r * d + i];
            for (int i = 0; i < d; i++)
                ref[r * d + i] = x[r * d + i] / sqrt(ss / d + 1e-6) * w[i];
        }
        char what[64];
        snprintf(what, sizeof what, "rmsnorm 3x%d", d);
        report(what, rel_err(out, ref, (size_t)n * d), 1e-5);
        /* SwiGLU over the same buffers (n*d values, not a multiple of the block) */
        CK(kq_swiglu(dx, d32, (long)n * d, dx, NULL, 0));
        float *sw = malloc(sizeof(float) * n * d);
        host_copy(sw, dx, sizeof(float) * n * d);
        for (int i = 0; i < n * d; i++)
            ref[i] = x[i] / (1.0 + exp(-(double)x[i])) * out[i];
        snprintf(what, sizeof what, "swiglu %d", n * d);
        report(what, rel_err(sw, ref, (size_t)n * d), 1e-5);
        free(x);
        free(w);
        free(out);
        free(sw);
        free(ref);
        cudaFree(dx);
        cudaFree(dw);
        cudaFree(d32);
    }
}
END_TEST

START_TEST(softmax_causal) {
    const int nh = 14, n = 37, pos0 = 300, L = pos0 + n;
    const size_t total = (size_t)nh * n * L;
    float *x = malloc(sizeof(float) * total), *out = malloc(sizeof(float) * total);
    double *ref = malloc(sizeof(double) * total);
    for (size_t i = 0; i < total; i++)
        x[i] = 4.0f * nrand();
    for (int r = 0; r < nh * n; r++) {
        const int valid = pos0 + r % n + 1;
        const float *row = x + (size_t)r * L;
        double m = -INFINITY, z = 0;
        for (int j = 0; j < valid; j++)
            m = row[j] > m ? row[j] : m;
        for (int j = 0; j < valid; j++)
            z += exp(row[j] - m);
        for (int j = 0; j < L; j++)
            ref[(size_t)r * L + j] = j < valid ? exp(row[j] - m) / z : 0.0;
    }
    float *d = dev_copy(x, sizeof(float) * total);
    CK(kq_softmax_causal(d, nh, n, L, pos0, 0));
    host_copy(out, d, sizeof(float) * total);
    report("softmax causal 14x37x337", rel_err(out, ref, total), 1e-5);
    free(x);
    free(out);
    free(ref);
    cudaFree(d);
}
END_TEST

START_TEST(argmax_vocab) {
    static const int sizes[] = {151936, 1152, 33};
    for (int k = 0; k < 3; k++) {
        const int n = sizes[k];
        float *x = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++)
            x[i] = nrand();
        const int a = n / 3 + 1, b = n - 2; /* two equal maxima: the lower index wins */
        x[a] = x[b] = 50.0f;
        x[0] = NAN;
        float *dx = dev_copy(x, sizeof(float) * n);
        void *ws = dev_copy(NULL, kq_argmax_scratch_bytes(n));
        CK(cudaMemset(ws, 0, kq_argmax_scratch_bytes(n)));
        int32_t *dout = dev_copy(NULL, 4), out = -2;
        for (int rep = 0; rep < 3; rep++) { /* the counter must reset between launches */
            CK(kq_argmax(dx, n, ws, dout, 0));
            host_copy(&out, dout, 4);
            ck_assert_int_eq(out, a);
        }
        free(x);
        cudaFree(dx);
        cudaFree(ws);
        cudaFree(dout);
    }
}
END_TEST

/* ---- the device sampler against the host sampler ---- */

START_TEST(sampler_matches_host) {
    const int n = 151936;
    float *logits = malloc(sizeof(float) * n), *work = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++)
        logits[i] = 3.0f * nrand();
    int32_t hist[64];
    for (int i = 0; i < 64; i++)
        hist[i] = (int32_t)(urand() * 200); /* repeats likely */
    hist[3] = 0;
    sampler_params ps[6];
    for (int i = 0; i < 6; i++)
        sampler_params_default(&ps[i]);
    ps[0].n_logprobs = 5;
    ps[1].temperature = 0.7f, ps[1].top_k = 40, ps[1].top_p = 0.9f, ps[1].n_logprobs = 3;
    ps[2].temperature = 1.0f, ps[2].top_p = 0.95f, ps[2].min_p = 0.05f;
    ps[3].temperature = 1.3f;
    ps[4].temperature = 0.8f, ps[4].repetition_penalty = 1.3f, ps[4].presence_penalty = 0.5f,
    ps[4].frequency_penalty = 0.2f, ps[4].penalty_last_n = 48, ps[4].n_logprobs = 20;
    ps[5].repetition_penalty = 1.5f, ps[5].penalty_last_n = -1; /* greedy with penalties */
    ws_error err;
    sampler *hs = NULL;
    ck_assert(sampler_new(n, &hs, &err) == WS_OK);
    const size_t wsb = kq_sample_scratch_bytes(n);
    void *ws = dev_copy(NULL, wsb);
    CK(cudaMemset(ws, 0, wsb));
    float *dl = dev_copy(logits, sizeof(float) * n);
    int32_t *dpen = dev_copy(NULL, 2 * 64 * 4);
    kq_sample_out *dout = dev_copy(NULL, sizeof(kq_sample_out)), out;
    for (int k = 0; k < 6; k++) {
        const sampler_params *p = &ps[k];
        /* distinct tokens of the window with counts, as the engine folds them */
        int32_t tok[64], cnt[64], nt = 0;
        uint32_t nh = p->penalty_last_n < 0 ? 64 : (uint32_t)p->penalty_last_n;
        if (nh > 64) nh = 64;
        for (uint32_t i = 64 - nh; i < 64 && p->penalty_last_n != 0; i++) {
            int j = 0;
            while (j < nt && tok[j] != hist[i])
                j++;
            if (j == nt) tok[nt] = hist[i], cnt[nt++] = 0;
            cnt[j]++;
        }
        CK(cudaMemcpy(dpen, tok, 4 * nt, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dpen + 64, cnt, 4 * nt, cudaMemcpyHostToDevice));
        for (int d = 0; d < 12; d++) {
            const float u = (float)urand();
            kq_sample_args a = {p->temperature,
                                p->top_p,
                                p->min_p,
                                p->top_k,
                                p->repetition_penalty,
                                p->presence_penalty,
                                p->frequency_penalty,
                                nt,
                                p->n_logprobs,
                                u};
            CK(kq_sample(dl, n, &a, dpen, dpen + 64, ws, wsb, dout, 0));
            host_copy(&out, dout, sizeof out);
            memcpy(work, logits, sizeof(float) * n);
            sampler_result r;
            ck_assert(sampler_sample(hs, p, work, hist, 64, u, &r, &err) == WS_OK);
            ck_assert_msg(out.token == r.token, "params %d u %.6f: device %d host %d", k, u,
                          out.token, r.token);
            ck_assert_msg(fabsf(out.logprob - r.logprob) <= 1e-4f, "params %d: logprob %g vs %g", k,
                          out.logprob, r.logprob);
            for (uint32_t i = 0; i < r.n_top; i++) {
                ck_assert_int_eq(out.top_tokens[i], r.top_tokens[i]);
                ck_assert(fabsf(out.top_logprobs[i] - r.top_logprobs[i]) <= 1e-4f);
            }
        }
    }
    printf("| sampler: 6 parameter sets x 12 draws, device == host | exact | exact |\n");
    sampler_free(hs);
    free(logits);
    free(work);
    cudaFree(ws);
    cudaFree(dl);
    cudaFree(dpen);
    cudaFree(dout);
}
END_TEST

int main(void) {
    if (!engine_backend_available(ENGINE_CUDA)) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    printf("| check | error | tolerance |\n|---|---|---|\n");
    Suite *s = suite_create("cuda_ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, dequant_goldens, 0, sizeof quant_fixtures / sizeof quant_fixtures[0]);
    tcase_add_loop_test(tc, gemv_types, 0, N_TYPES);
    tcase_add_loop_test(tc, gemv_swiglu, 0, sizeof swiglu_types / sizeof swiglu_types[0]);
    tcase_add_loop_test(tc, gemv_qkv_rope, 0, sizeof qkv_types / sizeof qkv_types[0]);
    tcase_add_test(tc, rope_kv_prefill);
    tcase_add_test(tc, attention);
    tcase_add_test(tc, rmsnorm_swiglu);
    tcase_add_test(tc, softmax_causal);
    tcase_add_test(tc, argmax_vocab);
    tcase_add_test(tc, sampler_matches_host);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* CUDA is not fork-safe: the device was touched */
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
