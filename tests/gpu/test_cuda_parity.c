/* test_cuda_parity.c: the CUDA engine against the goldens in tests/data/goldens (Hugging Face
 * transformers' Qwen2 in float64 on each fixture's dequantized weights). For every fixture and
 * prompt: all rows by prefill, all rows by a one-token prefill followed by decodes through the
 * captured graph, the `long` prompt as 296 + 4 decodes and as one 300-token prefill; the greedy
 * continuation drawn by the device sampler; and, when WORKER_SYNTH_DIR names a folder holding
 * qwen-f16.gguf, qwen-q8_0.gguf and qwen-q4_k_m.gguf (the real Qwen2.5-0.5B shape written by
 * `worker-orcd synth`), CPU engine against CUDA engine on them. Figures print as a table.
 *
 * Tolerances (max |ours - ref| / max |ref|):
 * - F32 weights: prefill GEMMs run in FP32 (CUBLAS_COMPUTE_32F on FP32 operands), decode GEMVs,
 *   attention, norms, softmax and the KV cache are FP32: only FP32-vs-FP64 accumulation differs,
 *   which the CPU engine measures below 1e-6; held to TOL_FP32 = 2e-5.
 * - every other type: prefill feeds the tensor cores F16 operands (activations rounded to F16,
 *   block weights dequantized to F16), FP32 accumulation. F16 rounding is 2^-11 ~ 4.9e-4
 *   relative per operand; over the 7 products of each layer, 2 layers and the LM head the errors
 *   add up: measured at most 5.9e-4 of max |logit| over every fixture and prompt on an H200
 *   (ta-q6_k, chat), 3.5e-4..5e-4 on the real-shape synthetic models against the CPU engine
 *   (llama.cpp's F16 KV cache and 8-bit activations land at 1.4e-2..3.5e-2 on these files).
 *   Held to TOL_F16 = 2e-3, about three times the worst measurement. Decode itself is FP32 but
 *   reads a cache the prefill wrote, so the same figure applies.
 * Top-1 must agree wherever the reference margin between its best two logits exceeds twice the
 * tolerance times max |ref|. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

/* The test data folders: the build's paths, unless the environment names others (a copy of the
 * tree on another machine). */
static const char *data_dir(void) {
    const char *d = getenv("WORKER_TEST_DATA_DIR");
    return d ? d : WORKER_TEST_DATA;
}

#define TOL_FP32 2e-5
#define TOL_F16 2e-3

static const char *const fixtures[] = {
    "ta-f32",  "ta-f16",    "ta-bf16",   "ta-q8_0",   "ta-q4_0", "ta-q4_1", "ta-q5_0", "ta-q5_1",
    "ta-q2_k", "ta-q3_k_m", "ta-q4_k_m", "ta-q5_k_m", "ta-q6_k", "tb-f16",  "tb-q8_0",
};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

#define MAX_PROMPTS 8
#define MAX_IDS 512

typedef struct {
    char name[32];
    int32_t ids[MAX_IDS];
    uint32_t n_ids, rows, first;
    int32_t greedy[16];
    float margin[16];
} prompt;

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

/* Numbers of the array after `"key": [` at or after p; returns the count. */
static uint32_t json_array(const char *p, const char *key, double *out, uint32_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": [", key);
    const char *k = strstr(p, pat);
    ck_assert_msg(k != NULL, "golden JSON lacks %s", key);
    const char *c = k + strlen(pat);
    uint32_t n = 0;
    while (*c && *c != ']') {
        char *e;
        const double v = strtod(c, &e);
        if (e == c) {
            c++;
            continue;
        }
        ck_assert(n < cap);
        out[n++] = v;
        c = e;
    }
    return n;
}

static long json_int(const char *p, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *k = strstr(p, pat);
    ck_assert_msg(k != NULL, "golden JSON lacks %s", key);
    return strtol(k + strlen(pat), NULL, 10);
}

static uint32_t load_prompts(const char *model, prompt *out) {
    char path[1024];
    snprintf(path, sizeof path, "%s/goldens/%s.json", data_dir(), model);
    char *js = read_all(path, NULL);
    static const char *const names[] = {"one", "short", "chat", "long"};
    uint32_t n = 0;
    double *tmp = malloc(MAX_IDS * sizeof *tmp);
    for (uint32_t i = 0; i < 4; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\": {", names[i]);
        const char *p = strstr(js, pat);
        if (!p) continue;
        prompt *pr = &out[n++];
        memset(pr, 0, sizeof *pr);
        snprintf(pr->name, sizeof pr->name, "%s", names[i]);
        pr->n_ids = json_array(p, "ids", tmp, MAX_IDS);
        for (uint32_t j = 0; j < pr->n_ids; j++)
            pr->ids[j] = (int32_t)tmp[j];
        pr->rows = (uint32_t)json_int(p, "logits_rows");
        pr->first = (uint32_t)json_int(p, "first_position");
        ck_assert_uint_eq(json_array(p, "greedy", tmp, MAX_IDS), 16);
        for (uint32_t j = 0; j < 16; j++)
            pr->greedy[j] = (int32_t)tmp[j];
        ck_assert_uint_eq(json_array(p, "top1_top2_margin", tmp, MAX_IDS), 16);
        for (uint32_t j = 0; j < 16; j++)
            pr->margin[j] = (float)tmp[j];
    }
    free(tmp);
    free(js);
    return n;
}

static float *load_logits(const char *model, const char *pname, uint32_t rows, uint32_t n_vocab) {
    char path[1024];
    snprintf(path, sizeof path, "%s/goldens/%s.%s.logits.f32", data_dir(), model, pname);
    size_t len;
    char *buf = read_all(path, &len);
    ck_assert_uint_eq(len, (size_t)rows * n_vocab * 4);
    return (float *)buf;
}

static uint32_t argmax(const float *x, uint32_t n) {
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Compares rows and asserts the tolerance and the top-1 rule; prints one table line. */
static void check_rows(const char *model, const char *pname, const char *mode, const float *ours,
                       const float *ref, uint32_t rows, uint32_t n_vocab, double tol) {
    double max_ref = 0.0, max_diff = 0.0;
    for (size_t i = 0; i < (size_t)rows * n_vocab; i++) {
        ck_assert_msg(isfinite(ours[i]), "%s %s %s: logit %zu not finite", model, pname, mode, i);
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
        if (fabs((double)ours[i] - ref[i]) > max_diff) max_diff = fabs((double)ours[i] - ref[i]);
    }
    uint32_t agree = 0, must = 0, must_ok = 0;
    for (uint32_t r = 0; r < rows; r++) {
        const float *a = ours + (size_t)r * n_vocab, *b = ref + (size_t)r * n_vocab;
        const uint32_t top = argmax(b, n_vocab);
        float second = -INFINITY;
        for (uint32_t i = 0; i < n_vocab; i++)
            if (i != top && b[i] > second) second = b[i];
        const bool ok = argmax(a, n_vocab) == top;
        agree += ok;
        if (b[top] - second > 2 * tol * max_ref) {
            must++;
            must_ok += ok;
        }
    }
    const double rel = max_diff / max_ref;
    printf("| %s | %s | %s | %u | %.3f | %.3g | %.3g | %u/%u |\n", model, pname, mode, rows,
           max_ref, max_diff, rel, agree, rows);
    fflush(stdout);
    ck_assert_msg(rel <= tol, "%s %s %s: max diff %.3g of max |logit| > %.1g", model, pname, mode,
                  rel, tol);
    ck_assert_msg(must_ok == must, "%s %s %s: top-1 differs on %u clear rows", model, pname, mode,
                  must - must_ok);
}

static engine *open_cuda(const qwen2_model *m) {
    ws_error err = {{0}};
    engine_options o = {.max_seqs = 2, .max_ctx = 512};
    engine *e = NULL;
    ck_assert_msg(engine_open(ENGINE_CUDA, m, &o, &e, &err) == WS_OK, "%s", err.msg);
    return e;
}

START_TEST(matches_goldens) {
    const char *model = fixtures[_i];
    const double tol = strcmp(model, "ta-f32") == 0 ? TOL_FP32 : TOL_F16;
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/%s.gguf", data_dir(), model);
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    ck_assert_msg(model_open(path, &m, &err) == WS_OK, "%s", err.msg);
    const uint32_t V = m->cfg.n_vocab;
    engine *e = open_cuda(m);
    prompt *ps = malloc(MAX_PROMPTS * sizeof *ps);
    const uint32_t np = load_prompts(model, ps);
    ck_assert_uint_ge(np, 4);
    float *ours = malloc((size_t)MAX_IDS * V * sizeof(float));
    for (uint32_t k = 0; k < np; k++) {
        const prompt *pr = &ps[k];
        float *ref = load_logits(model, pr->name, pr->rows, V);
        engine_seq *s = NULL;
        ck_assert(engine_seq_new(e, 512, &s, &err) == WS_OK);
        /* 1. one prefill, every row */
        ck_assert_msg(engine_prefill(s, pr->ids, pr->n_ids, true, ours, &err) == WS_OK, "%s",
                      err.msg);
        check_rows(model, pr->name, "prefill", ours + (size_t)pr->first * V, ref, pr->rows, V, tol);
        /* greedy continuation through the device sampler and the decode graph, each step
         * enqueued by the sample before it (look-ahead) */
        sampler_params sp;
        sampler_params_default(&sp);
        engine_seq_lookahead(s, true);
        for (int step = 0; step < 16; step++) {
            sampler_result r;
            ck_assert_msg(engine_sample(s, &sp, NULL, 0, 0.0f, &r, &err) == WS_OK, "%s", err.msg);
            if (r.token != pr->greedy[step]) {
                /* allowed only at a near tie of the reference (0.05 >> our error there) */
                ck_assert_msg(pr->margin[step] <= 0.05f,
                              "%s %s: greedy token %d != %d at step %d (margin %.3f)", model,
                              pr->name, r.token, pr->greedy[step], step, pr->margin[step]);
                break;
            }
            ck_assert(engine_decode(&s, &r.token, 1, NULL, &err) == WS_OK);
        }
        engine_seq_free(s);
        /* 2. a prefill of the first tokens, then one decode per token */
        const uint32_t pre = pr->rows == pr->n_ids ? 1 : pr->first;
        ck_assert(engine_seq_new(e, 512, &s, &err) == WS_OK);
        ck_assert(engine_prefill(s, pr->ids, pre, true, ours, &err) == WS_OK);
        for (uint32_t t = pre; t < pr->n_ids; t++)
            ck_assert_msg(engine_decode(&s, &pr->ids[t], 1, ours + (size_t)t * V, &err) == WS_OK,
                          "%s", err.msg);
        check_rows(model, pr->name, "decode", ours + (size_t)pr->first * V, ref, pr->rows, V, tol);
        engine_seq_free(s);
        free(ref);
    }
    free(ours);
    free(ps);
    engine_free(e);
    model_free(m);
}
END_TEST

/* The same sequence truncated and re-decoded gives the same logits; two sequences decoded
 * together equal each decoded alone; memory is accounted. */
START_TEST(contracts) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/tb-q8_0.gguf", data_dir());
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    ck_assert(model_open(path, &m, &err) == WS_OK);
    const uint32_t V = m->cfg.n_vocab;
    engine *e = open_cuda(m);
    const int32_t ids[6] = {785, 374, 279, 6, 315, 30};
    float *a = malloc(4 * V * sizeof(float)), *b = malloc(4 * V * sizeof(float));
    engine_seq *s = NULL, *t = NULL;
    ck_assert(engine_seq_new(e, 64, &s, &err) == WS_OK);
    ck_assert(engine_seq_new(e, 64, &t, &err) == WS_OK);
    engine_seq *third = NULL;
    ck_assert_int_eq(engine_seq_new(e, 64, &third, &err), WS_ERR_OVERLOADED);
    ck_assert(engine_prefill(s, ids, 4, false, NULL, &err) == WS_OK);
    ck_assert(engine_decode(&s, &ids[4], 1, a, &err) == WS_OK);
    ck_assert(engine_seq_truncate(s, 4, &err) == WS_OK);
    ck_assert(engine_decode(&s, &ids[4], 1, b, &err) == WS_OK);
    ck_assert_mem_eq(a, b, V * sizeof(float)); /* same kernels, same inputs: bit-identical */
    ck_assert(engine_prefill(t, ids, 2, false, NULL, &err) == WS_OK);
    float *alone_t = malloc(V * sizeof(float));
    ck_assert(engine_decode(&t, &ids[2], 1, alone_t, &err) == WS_OK);
    ck_assert(engine_seq_truncate(t, 2, &err) == WS_OK);
    ck_assert(engine_seq_truncate(s, 5, &err) == WS_OK);
    ck_assert(engine_decode(&s, &ids[5], 1, a, &err) == WS_OK); /* s alone at position 5 */
    ck_assert(engine_seq_truncate(s, 5, &err) == WS_OK);
    engine_seq *both[2] = {s, t};
    const int32_t two[2] = {ids[5], ids[2]};
    ck_assert(engine_decode(both, two, 2, b, &err) == WS_OK);
    ck_assert_mem_eq(a, b, V * sizeof(float));
    ck_assert_mem_eq(alone_t, b + V, V * sizeof(float));
    /* each sequence's greedy choice, made in the decode graph, against the host's argmax and
     * log-softmax (double) of the logits the decode returned; the device sums exp of FP32
     * differences in double, so 1e-5 covers its rounding */
    sampler_params gp;
    sampler_params_default(&gp);
    engine_seq_lookahead(s, true);
    engine_seq_lookahead(t, true);
    for (int i = 0; i < 2; i++) {
        sampler_result r;
        ck_assert_msg(engine_sample(both[i], &gp, NULL, 0, 0.0f, &r, &err) == WS_OK, "%s", err.msg);
        const float *row = b + (size_t)i * V;
        uint32_t best = 0;
        for (uint32_t j = 1; j < V; j++)
            if (row[j] > row[best]) best = j;
        double z = 0.0;
        for (uint32_t j = 0; j < V; j++)
            z += exp((double)row[j] - row[best]);
        ck_assert_int_eq(r.token, (int32_t)best);
        ck_assert_msg(fabs(r.logprob + log(z)) < 1e-5, "greedy logprob %g, host %g", r.logprob,
                      -log(z));
    }
    /* With look-ahead a greedy sample enqueues the decode of its token (both sequences have one
     * pending now): a decode of that token takes the step's logits, a decode of any other token
     * discards the step. Either way the logits equal those of the same decode with nothing
     * pending (after a truncation, which also discards). */
    {
        float *c = malloc(2 * (size_t)V * sizeof(float));
        sampler_result r;
        ck_assert(engine_sample(s, &gp, NULL, 0, 0.0f, &r, &err) == WS_OK); /* the same choice */
        const int32_t g = r.token;
        ck_assert(engine_decode(&s, &g, 1, a, &err) == WS_OK); /* taken */
        ck_assert(engine_seq_truncate(s, 6, &err) == WS_OK);
        ck_assert(engine_decode(&s, &g, 1, c, &err) == WS_OK);
        ck_assert_mem_eq(a, c, V * sizeof(float));
        ck_assert(engine_sample(s, &gp, NULL, 0, 0.0f, &r, &err) == WS_OK);
        const int32_t other = (r.token + 1) % (int32_t)V;
        ck_assert(engine_decode(&s, &other, 1, a, &err) == WS_OK); /* discarded */
        ck_assert(engine_seq_truncate(s, 7, &err) == WS_OK);
        ck_assert(engine_decode(&s, &other, 1, c, &err) == WS_OK);
        ck_assert_mem_eq(a, c, V * sizeof(float));
        /* two sequences in one decode: t's pending step taken, s's discarded */
        sampler_result rs, rt;
        ck_assert(engine_sample(s, &gp, NULL, 0, 0.0f, &rs, &err) == WS_OK);
        ck_assert(engine_sample(t, &gp, NULL, 0, 0.0f, &rt, &err) == WS_OK);
        const int32_t pair[2] = {(rs.token + 1) % (int32_t)V, rt.token};
        ck_assert(engine_decode(both, pair, 2, b, &err) == WS_OK);
        ck_assert(engine_seq_truncate(s, 8, &err) == WS_OK);
        ck_assert(engine_seq_truncate(t, 3, &err) == WS_OK);
        ck_assert(engine_decode(both, pair, 2, c, &err) == WS_OK);
        ck_assert_mem_eq(b, c, 2 * V * sizeof(float));
        free(c);
    }
    engine_memory mem;
    ck_assert(engine_memory_get(e, &mem, &err) == WS_OK);
    /* KV: 2 sequences x 2 (K, V) x 2 layers x 512 positions x 128 (kv_dim) x 4 bytes (FP32) */
    ck_assert_uint_eq(mem.kv_cache, 2ull * 2 * 2 * 512 * 128 * 4);
    ck_assert(mem.weights >= 4000000 && mem.scratch > 0 && mem.device_total > mem.device_free);
    ck_assert_ptr_eq(strstr(mem.device_uuid, "GPU-"), mem.device_uuid);
    printf("device: %s %s, total %.1f GiB\n", mem.device_name, mem.device_uuid,
           mem.device_total / 1073741824.0);
    engine_seq_free(s);
    engine_seq_free(t);
    free(alone_t);
    free(a);
    free(b);
    engine_free(e);
    model_free(m);
}
END_TEST

/* CPU engine against CUDA engine on the real shape (synthetic weights). */
START_TEST(synth_real_shape) {
    static const char *const names[] = {"qwen-f16", "qwen-q8_0", "qwen-q4_k_m"};
    const char *dir = getenv("WORKER_SYNTH_DIR");
    if (!dir) {
        printf("synth: WORKER_SYNTH_DIR not set, real-shape comparison not run\n");
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, names[_i]);
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    ck_assert_msg(model_open(path, &m, &err) == WS_OK, "%s", err.msg);
    const uint32_t V = m->cfg.n_vocab, N = 24, D = 8;
    int32_t ids[24 + 8];
    uint64_t x = 12345;
    for (uint32_t i = 0; i < N + D; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % 151643);
    }
    float *cpu = malloc((size_t)(N + D) * V * sizeof(float));
    float *gpu = malloc((size_t)(N + D) * V * sizeof(float));
    engine_options o = {.max_seqs = 1, .max_ctx = 64};
    for (int b = 0; b < 2; b++) {
        engine *e = NULL;
        ck_assert_msg(engine_open(b ? ENGINE_CUDA : ENGINE_CPU, m, &o, &e, &err) == WS_OK, "%s",
                      err.msg);
        engine_seq *s = NULL;
        ck_assert(engine_seq_new(e, 64, &s, &err) == WS_OK);
        float *out = b ? gpu : cpu;
        ck_assert_msg(engine_prefill(s, ids, N, true, out, &err) == WS_OK, "%s", err.msg);
        for (uint32_t t = N; t < N + D; t++)
            ck_assert(engine_decode(&s, &ids[t], 1, out + (size_t)t * V, &err) == WS_OK);
        engine_seq_free(s);
        engine_free(e);
    }
    check_rows(names[_i], "synth24+8", "prefill", gpu, cpu, N, V, TOL_F16);
    check_rows(names[_i], "synth24+8", "decode", gpu + (size_t)N * V, cpu + (size_t)N * V, D, V,
               TOL_F16);
    free(cpu);
    free(gpu);
    model_free(m);
}
END_TEST

/* A prompt long enough that a prefill chunk's attention scores exceed their scratch (the chunk at
 * 2,048 attends 2,560 keys: 14 heads x 512 queries x 2,560 keys > 64 MiB of FP32), so its queries
 * run in sub-chunks: the last prompt row and one decode after it, CPU engine against CUDA engine
 * on the real-shape F16 model. */
START_TEST(synth_long_prompt) {
    const char *dir = getenv("WORKER_SYNTH_DIR");
    if (!dir) {
        printf("synth: WORKER_SYNTH_DIR not set, long-prompt comparison not run\n");
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/qwen-f16.gguf", dir);
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    ck_assert_msg(model_open(path, &m, &err) == WS_OK, "%s", err.msg);
    const uint32_t V = m->cfg.n_vocab, N = 2600;
    int32_t *ids = malloc((N + 1) * sizeof *ids);
    uint64_t x = 777;
    for (uint32_t i = 0; i < N + 1; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % 151643);
    }
    float *cpu = malloc(2 * (size_t)V * sizeof(float)),
          *gpu = malloc(2 * (size_t)V * sizeof(float));
    engine_options o = {.max_seqs = 1, .max_ctx = N + 8};
    for (int b = 0; b < 2; b++) {
        engine *e = NULL;
        ck_assert_msg(engine_open(b ? ENGINE_CUDA : ENGINE_CPU, m, &o, &e, &err) == WS_OK, "%s",
                      err.msg);
        engine_seq *s = NULL;
        ck_assert(engine_seq_new(e, N + 8, &s, &err) == WS_OK);
        float *out = b ? gpu : cpu;
        ck_assert_msg(engine_prefill(s, ids, N, false, out, &err) == WS_OK, "%s", err.msg);
        ck_assert(engine_decode(&s, &ids[N], 1, out + V, &err) == WS_OK);
        engine_seq_free(s);
        engine_free(e);
    }
    check_rows("qwen-f16", "synth2600", "prefill", gpu, cpu, 1, V, TOL_F16);
    check_rows("qwen-f16", "synth2600", "decode", gpu + V, cpu + V, 1, V, TOL_F16);
    free(ids);
    free(cpu);
    free(gpu);
    model_free(m);
}
END_TEST

int main(void) {
    if (!engine_backend_available(ENGINE_CUDA)) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    printf(
        "| model | prompt | mode | rows | max abs ref | max abs diff | diff / max ref | top-1 |\n"
        "|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    Suite *s = suite_create("cuda_parity");
    TCase *tg = tcase_create("goldens");
    tcase_set_timeout(tg, 600);
    tcase_add_loop_test(tg, matches_goldens, 0, N_FIXTURES);
    tcase_add_test(tg, contracts);
    suite_add_tcase(s, tg);
    TCase *ts = tcase_create("synth");
    tcase_set_timeout(ts, 600);
    tcase_add_loop_test(ts, synth_real_shape, 0, 3);
    tcase_add_test(ts, synth_long_prompt);
    suite_add_tcase(s, ts);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* CUDA is not fork-safe: the device was touched */
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
