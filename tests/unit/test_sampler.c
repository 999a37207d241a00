/* test_sampler.c: the sampler against its definition. Expected distributions are computed here in
 * double from the documented steps by a plain sort-everything implementation, and compared with
 * many seeded draws by a chi-square test; exact cases check what is fully determined (greedy,
 * ties, the inverse CDF at chosen u, penalties, logprobs). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

/* ---- an independent reference of steps 3-4, in double ---- */

static const float *g_sort_logits;
static int ref_cmp(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float lx = g_sort_logits[x], ly = g_sort_logits[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : (x > y);
}

/* Writes the probability of every token after temperature, top-k, top-p and min-p. */
static void ref_probs(const float *logits, uint32_t n, const sampler_params *p, double *prob) {
    int32_t *order = malloc(n * sizeof *order);
    for (uint32_t i = 0; i < n; i++)
        order[i] = (int32_t)i;
    g_sort_logits = logits; /* order by logit equals order by logit / T for T > 0 */
    qsort(order, n, sizeof *order, ref_cmp);
    uint32_t keep = n;
    if (p->top_k > 0 && (uint32_t)p->top_k < n) keep = (uint32_t)p->top_k;
    double mx = (double)logits[order[0]] / p->temperature, z = 0.0;
    double *w = calloc(n, sizeof *w);
    for (uint32_t i = 0; i < keep; i++) {
        w[i] = exp((double)logits[order[i]] / p->temperature - mx);
        z += w[i];
    }
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        for (uint32_t i = 0; i < keep; i++) {
            cum += w[i] / z;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        uint32_t i = 1;
        while (i < keep && w[i] / z >= p->min_p * (w[0] / z))
            i++;
        keep = i;
    }
    double zk = 0.0;
    for (uint32_t i = 0; i < keep; i++)
        zk += w[i];
    memset(prob, 0, n * sizeof *prob);
    for (uint32_t i = 0; i < keep; i++)
        prob[order[i]] = w[i] / zk;
    free(w);
    free(order);
}

/* Upper 0.1% points of the chi-square distribution, df 1..15 (standard tables). A correct
 * sampler fails one of these with probability 0.001 for a given seed; the seeds are fixed, so a
 * pass is reproducible, and the draw counts make a wrong filter miss by orders of magnitude. */
static const double chi2_999[16] = {0,      10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322,
                                    26.124, 27.877, 29.588, 31.264, 32.909, 34.528, 36.123, 37.697};

/* Draws n_draws tokens and compares the histogram with ref_probs. Categories are the tokens with
 * expected probability > 0 (tokens outside the vocabulary's first n_cat form one extra bin, so a
 * large vocabulary can be tested with a few categories); a token of probability 0 must never come
 * up. */
static void check_distribution(const float *logits, uint32_t n, const sampler_params *p,
                               uint32_t n_cat, uint32_t n_draws) {
    double *prob = malloc(n * sizeof *prob);
    ref_probs(logits, n, p, prob);
    double expect[17] = {0};
    uint32_t count[17] = {0};
    ck_assert_uint_le(n_cat, 15); /* bin 16 is kept for a pool */
    for (uint32_t i = 0; i < n; i++)
        expect[i < n_cat ? i : n_cat] += prob[i];
    sampler *s = NULL;
    ck_assert_int_eq(sampler_new(n, &s, NULL), WS_OK);
    sampler_rng rng;
    sampler_rng_seed(&rng, p->seed);
    float *work = malloc(n * sizeof *work);
    for (uint32_t d = 0; d < n_draws; d++) {
        memcpy(work, logits, n * sizeof *work);
        sampler_result r;
        ws_error err;
        ck_assert_int_eq(sampler_sample(s, p, work, NULL, 0, sampler_rng_uniform(&rng), &r, &err),
                         WS_OK);
        ck_assert_msg(prob[r.token] > 0.0, "token %d has probability 0 but was drawn", r.token);
        count[(uint32_t)r.token < n_cat ? (uint32_t)r.token : n_cat]++;
    }
    /* Bins expecting fewer than 5 draws are pooled (the usual validity rule for chi-square); a
     * pool still under 5 joins the smallest regular bin. */
    double pool_e = 0.0, chi2 = 0.0;
    uint32_t pool_n = 0, small = 17;
    for (uint32_t c = 0; c <= n_cat; c++) {
        if (expect[c] > 0.0 && expect[c] * n_draws < 5.0) {
            pool_e += expect[c];
            pool_n += count[c];
            expect[c] = 0.0;
        } else if (expect[c] > 0.0 && (small == 17 || expect[c] < expect[small])) {
            small = c;
        }
    }
    if (pool_e * n_draws >= 5.0) {
        expect[16] = pool_e;
        count[16] = pool_n;
    } else if (pool_e > 0.0) {
        ck_assert_uint_lt(small, 17);
        expect[small] += pool_e;
        count[small] += pool_n;
    }
    int df = -1;
    for (uint32_t c = 0; c <= 16; c++) {
        if (expect[c] == 0.0) continue;
        double e = expect[c] * n_draws;
        chi2 += (count[c] - e) * (count[c] - e) / e;
        df++;
    }
    if (df > 0)
        ck_assert_msg(chi2 < chi2_999[df], "chi-square %.2f >= %.3f (df %d)", chi2, chi2_999[df],
                      df);
    else
        ck_assert_uint_eq(df, 0); /* one token: determined, already checked above */
    free(work);
    free(prob);
    sampler_free(s);
}

static const float small_logits[10] = {1.0f, 2.5f, 0.3f, 2.5f,  -1.0f,
                                       1.7f, 0.0f, 3.1f, -0.4f, 1.2f};

static sampler_params params_t(float t, uint64_t seed) {
    sampler_params p;
    sampler_params_default(&p);
    p.temperature = t;
    p.seed = seed;
    return p;
}

START_TEST(test_temperature_distribution) {
    float temps[3] = {1.0f, 0.5f, 2.0f};
    for (int i = 0; i < 3; i++) {
        sampler_params p = params_t(temps[i], 11 + (uint64_t)i);
        check_distribution(small_logits, 10, &p, 10, 100000);
    }
}
END_TEST

START_TEST(test_top_k_distribution) {
    sampler_params p = params_t(1.0f, 21);
    p.top_k = 3; /* 3.1, then the tie 2.5 / 2.5 (ids 1 and 3) */
    check_distribution(small_logits, 10, &p, 10, 100000);
    p.top_k = 2; /* the tie at the boundary goes to the lower id (1) */
    p.seed = 22;
    check_distribution(small_logits, 10, &p, 10, 100000);
}
END_TEST

START_TEST(test_top_p_distribution) {
    sampler_params p = params_t(1.0f, 31);
    p.top_p = 0.8f;
    check_distribution(small_logits, 10, &p, 10, 100000);
    p.top_p = 0.5f;
    p.temperature = 0.7f;
    p.seed = 32;
    check_distribution(small_logits, 10, &p, 10, 100000);
}
END_TEST

START_TEST(test_min_p_distribution) {
    sampler_params p = params_t(1.0f, 41);
    p.min_p = 0.15f;
    check_distribution(small_logits, 10, &p, 10, 100000);
    p.min_p = 0.5f;
    p.temperature = 1.5f;
    p.seed = 42;
    check_distribution(small_logits, 10, &p, 10, 100000);
}
END_TEST

START_TEST(test_combined_distribution) {
    sampler_params p = params_t(0.8f, 51);
    p.top_k = 6;
    p.top_p = 0.9f;
    p.min_p = 0.05f;
    check_distribution(small_logits, 10, &p, 10, 100000);
}
END_TEST

/* The real vocabulary size: 8 strong tokens (logits 0 .. -3.5) hold about 60% of the mass and
 * 151928 weak ones (logits in [-12, -11)) the rest, spread over a few hundred of the sampler's
 * buckets with hundreds of tokens each. The weak tokens are one bin. */
START_TEST(test_large_vocab_distribution) {
    uint32_t n = 151936;
    float *l = malloc(n * sizeof *l);
    uint32_t x = 12345;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        l[i] = -12.0f + (float)(x >> 8) / 16777216.0f;
    }
    float heads[8] = {0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -2.5f, -3.0f, -3.5f};
    for (int i = 0; i < 8; i++)
        l[i] = heads[i];
    sampler_params p = params_t(1.0f, 61);
    check_distribution(l, n, &p, 8, 2000);
    /* With top-p the tail must be cut exactly where the definition says. */
    p.top_p = 0.95f;
    p.seed = 62;
    check_distribution(l, n, &p, 8, 2000);
    p.top_p = 1.0f;
    p.top_k = 40;
    p.seed = 63;
    check_distribution(l, n, &p, 8, 2000);
    free(l);
}
END_TEST

/* ---- exact cases ---- */

static int32_t sample_once(const float *logits, uint32_t n, const sampler_params *p, float u,
                           sampler_result *r) {
    sampler *s = NULL;
    ck_assert_int_eq(sampler_new(n, &s, NULL), WS_OK);
    float *w = malloc(n * sizeof *w);
    memcpy(w, logits, n * sizeof *w);
    ws_error err;
    ws_status st = sampler_sample(s, p, w, NULL, 0, u, r, &err);
    ck_assert_msg(st == WS_OK, "%s", err.msg);
    free(w);
    sampler_free(s);
    return r->token;
}

START_TEST(test_greedy_and_ties) {
    sampler_params p = params_t(0.0f, 0);
    sampler_result r;
    ck_assert_int_eq(sample_once(small_logits, 10, &p, 0.99f, &r), 7);
    float tie[5] = {0.5f, 2.0f, -1.0f, 2.0f, 2.0f};
    ck_assert_int_eq(sample_once(tie, 5, &p, 0.0f, &r), 1);
    ck_assert_int_eq(sample_once(tie, 5, &p, 0.5f, &r), 1);
    /* Filters do not apply to greedy. */
    p.top_k = 1;
    p.top_p = 0.1f;
    ck_assert_int_eq(sample_once(tie, 5, &p, 0.7f, &r), 1);
    /* top-k 1 at any temperature is greedy, ties included. */
    p = params_t(1.3f, 0);
    p.top_k = 1;
    for (float u = 0.0f; u < 1.0f; u += 0.125f)
        ck_assert_int_eq(sample_once(tie, 5, &p, u, &r), 1);
}
END_TEST

/* Probabilities 0.5, 0.3, 0.2 on ids 2, 0, 1: the inverse CDF over descending probability picks
 * id 2 for u < 0.5, id 0 for u in [0.5, 0.8), id 1 above. */
START_TEST(test_inverse_cdf) {
    float l[3] = {logf(0.3f), logf(0.2f), logf(0.5f)};
    sampler_params p = params_t(1.0f, 0);
    sampler_result r;
    float us[6] = {0.0f, 0.49f, 0.51f, 0.79f, 0.81f, 0.9999f};
    int32_t want[6] = {2, 2, 0, 0, 1, 1};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(sample_once(l, 3, &p, us[i], &r), want[i]);
    /* top-p 0.7: {0.5, 0.3} renormalised to 0.625 / 0.375. */
    p.top_p = 0.7f;
    ck_assert_int_eq(sample_once(l, 3, &p, 0.62f, &r), 2);
    ck_assert_int_eq(sample_once(l, 3, &p, 0.63f, &r), 0);
    ck_assert_int_eq(sample_once(l, 3, &p, 0.9999f, &r), 0);
    /* min-p 0.5: 0.2 < 0.25 dropped, 0.3 kept. */
    p.top_p = 1.0f;
    p.min_p = 0.5f;
    ck_assert_int_eq(sample_once(l, 3, &p, 0.9999f, &r), 0);
    p.min_p = 0.7f; /* only the best survives */
    ck_assert_int_eq(sample_once(l, 3, &p, 0.9999f, &r), 2);
}
END_TEST

START_TEST(test_penalties) {
    float base[8] = {2.0f, -1.5f, 0.0f, 3.0f, -0.5f, 1.0f, 4.0f, -2.0f};
    int32_t hist[7] = {6, 0, 1, 0, 2, 0, 5}; /* 0 x3, 1, 2, 5, 6 */
    sampler_params p = params_t(0.0f, 0);
    p.repetition_penalty = 1.25f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    int32_t windows[3] = {-1, 4, 0};
    for (int wi = 0; wi < 3; wi++) {
        p.penalty_last_n = windows[wi];
        uint32_t first = windows[wi] < 0 ? 0 : windows[wi] == 0 ? 7 : 7 - (uint32_t)windows[wi];
        int cnt[8] = {0};
        for (uint32_t i = first; i < 7; i++)
            cnt[hist[i]]++;
        double want[8];
        for (int t = 0; t < 8; t++) {
            double v = base[t];
            if (cnt[t] > 0) {
                v = v > 0 ? v / 1.25 : v < 0 ? v * 1.25 : v;
                v -= 0.5 + 0.25 * cnt[t];
            }
            want[t] = v;
        }
        sampler *s = NULL;
        ck_assert_int_eq(sampler_new(8, &s, NULL), WS_OK);
        float w[8];
        memcpy(w, base, sizeof w);
        sampler_result r;
        ck_assert_int_eq(sampler_sample(s, &p, w, hist, 7, 0.0f, &r, NULL), WS_OK);
        for (int t = 0; t < 8; t++) {
            if (cnt[t] == 0)
                ck_assert_msg(w[t] == base[t], "window %d: token %d changed", windows[wi], t);
            else /* float arithmetic on values of a few units: within 1e-6 */
                ck_assert_msg(fabs(w[t] - want[t]) < 1e-6, "window %d token %d: %g want %g",
                              windows[wi], t, (double)w[t], want[t]);
        }
        /* The counts scratch is clean again: a second call with no history changes nothing. */
        memcpy(w, base, sizeof w);
        ck_assert_int_eq(sampler_sample(s, &p, w, hist, 0, 0.0f, &r, NULL), WS_OK);
        ck_assert(memcmp(w, base, sizeof w) == 0);
        sampler_free(s);
    }
    /* Greedy follows the penalised logits: 6 (4.0) falls to 4/1.25 - 0.75 = 2.45 < 3.0. */
    p.penalty_last_n = -1;
    sampler *s = NULL;
    ck_assert_int_eq(sampler_new(8, &s, NULL), WS_OK);
    float w[8];
    memcpy(w, base, sizeof w);
    sampler_result r;
    ck_assert_int_eq(sampler_sample(s, &p, w, hist, 7, 0.0f, &r, NULL), WS_OK);
    ck_assert_int_eq(r.token, 3);
    /* A history id outside the vocabulary is an error naming its index. */
    int32_t bad[3] = {1, 9, 2};
    ws_error err;
    memcpy(w, base, sizeof w);
    ck_assert_int_eq(sampler_sample(s, &p, w, bad, 3, 0.0f, &r, &err), WS_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "history[1]"));
    sampler_free(s);
}
END_TEST

START_TEST(test_logprobs) {
    uint32_t n = 1000;
    float *l = malloc(n * sizeof *l);
    uint32_t x = 777;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        l[i] = 8.0f * ((float)(x >> 8) / 16777216.0f) - 4.0f;
    }
    l[500] = l[20]; /* a tie among the best: the lower id comes first */
    l[20] = l[500] = 6.0f;
    int32_t hist[3] = {20, 7, 20};
    for (int mode = 0; mode < 3; mode++) {
        sampler_params p = params_t(mode == 0 ? 0.0f : 0.9f, 5);
        p.n_logprobs = 20;
        if (mode == 2) { /* logprobs come after the penalties, before the temperature */
            p.repetition_penalty = 1.5f;
            p.penalty_last_n = -1;
        }
        double *pen = malloc(n * sizeof *pen);
        for (uint32_t i = 0; i < n; i++)
            pen[i] = l[i];
        if (mode == 2) {
            pen[20] = (double)(6.0f / 1.5f);
            pen[7] = pen[7] > 0 ? (double)(l[7] / 1.5f) : (double)(l[7] * 1.5f);
        }
        double mx = pen[0], sum = 0.0;
        for (uint32_t i = 0; i < n; i++)
            mx = pen[i] > mx ? pen[i] : mx;
        for (uint32_t i = 0; i < n; i++)
            sum += exp(pen[i] - mx);
        double lse = mx + log(sum);
        sampler_result r;
        sampler *s = NULL;
        ck_assert_int_eq(sampler_new(n, &s, NULL), WS_OK);
        float *w = malloc(n * sizeof *w);
        memcpy(w, l, n * sizeof *w);
        ck_assert_int_eq(sampler_sample(s, &p, w, hist, 3, 0.3f, &r, NULL), WS_OK);
        ck_assert_uint_eq(r.n_top, 20);
        /* The expected top 20: select by repeated scan in double, ties to the lower id. */
        char *used = calloc(n, 1);
        for (uint32_t k = 0; k < 20; k++) {
            int32_t best = -1;
            for (uint32_t i = 0; i < n; i++)
                if (!used[i] && (best < 0 || pen[i] > pen[best])) best = (int32_t)i;
            used[best] = 1;
            ck_assert_int_eq(r.top_tokens[k], best);
            /* float result of a value of magnitude < 16: within 1e-5 of the double */
            ck_assert_msg(fabs(r.top_logprobs[k] - (pen[best] - lse)) < 1e-5,
                          "mode %d rank %u: %g want %g", mode, k, (double)r.top_logprobs[k],
                          pen[best] - lse);
        }
        ck_assert(fabs(r.logprob - (pen[r.token] - lse)) < 1e-5);
        if (mode == 0) ck_assert_int_eq(r.token, 20);
        free(used);
        free(w);
        free(pen);
        sampler_free(s);
    }
    free(l);
}
END_TEST

START_TEST(test_rng_and_seed) {
    /* splitmix64 from seed 0 gives the published first outputs; they seed xoshiro256**. */
    sampler_rng a, b;
    sampler_rng_seed(&a, 0);
    ck_assert(a.s[0] == 0xe220a8397b1dcdafull && a.s[1] == 0x6e789e6aa1b965f4ull);
    ck_assert(a.s[2] == 0x06c45d188009454full && a.s[3] == 0xf88bb8a8724c81ecull);
    /* xoshiro256** output is rotl(s1 * 5, 7) * 9; the uniform takes its top 24 bits. */
    uint64_t m = a.s[1] * 5;
    uint64_t out = ((m << 7) | (m >> 57)) * 9;
    ck_assert(sampler_rng_uniform(&a) == (float)(out >> 40) / 16777216.0f);

    sampler_rng_seed(&a, 42);
    sampler_rng_seed(&b, 42);
    int differ = 0;
    sampler_rng c;
    sampler_rng_seed(&c, 43);
    for (int i = 0; i < 1000; i++) {
        float u = sampler_rng_uniform(&a);
        ck_assert(u >= 0.0f && u < 1.0f);
        ck_assert(u * 16777216.0f == floorf(u * 16777216.0f));
        ck_assert(u == sampler_rng_uniform(&b));
        differ += u != sampler_rng_uniform(&c);
    }
    ck_assert_int_gt(differ, 990);

    /* Same seed and logits, same token sequence. */
    sampler_params p = params_t(1.0f, 9);
    p.top_p = 0.95f;
    int32_t seq[2][64];
    for (int run = 0; run < 2; run++) {
        sampler *s = NULL;
        ck_assert_int_eq(sampler_new(10, &s, NULL), WS_OK);
        sampler_rng_seed(&a, p.seed);
        for (int i = 0; i < 64; i++) {
            float w[10];
            memcpy(w, small_logits, sizeof w);
            sampler_result r;
            ck_assert_int_eq(sampler_sample(s, &p, w, NULL, 0, sampler_rng_uniform(&a), &r, NULL),
                             WS_OK);
            seq[run][i] = r.token;
        }
        sampler_free(s);
    }
    ck_assert(memcmp(seq[0], seq[1], sizeof seq[0]) == 0);
}
END_TEST

static void expect_invalid(const sampler_params *p, const char *field, const char *value) {
    ws_error err;
    ck_assert_int_eq(sampler_params_validate(p, 100, &err), WS_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, field) && strstr(err.msg, value), "'%s' lacks %s / %s", err.msg,
                  field, value);
}

START_TEST(test_validate) {
    sampler_params p;
    sampler_params_default(&p);
    ck_assert_int_eq(sampler_params_validate(&p, 100, NULL), WS_OK);
    ck_assert(p.temperature == 0.0f && p.top_p == 1.0f && p.repetition_penalty == 1.0f);
#define BAD(stmt, field, value)                                                                    \
    do {                                                                                           \
        sampler_params_default(&p);                                                                \
        stmt;                                                                                      \
        expect_invalid(&p, field, value);                                                          \
    } while (0)
    BAD(p.temperature = -0.5f, "temperature", "-0.5");
    BAD(p.temperature = 101.0f, "temperature", "101");
    BAD(p.temperature = NAN, "temperature", "nan");
    BAD(p.top_k = -1, "top_k", "-1");
    BAD(p.top_k = 101, "top_k", "101");
    BAD(p.top_p = 0.0f, "top_p", "0");
    BAD(p.top_p = 1.5f, "top_p", "1.5");
    BAD(p.min_p = 1.0f, "min_p", "1");
    BAD(p.min_p = -0.25f, "min_p", "-0.25");
    BAD(p.repetition_penalty = 0.0f, "repetition_penalty", "0");
    BAD(p.repetition_penalty = INFINITY, "repetition_penalty", "inf");
    BAD(p.presence_penalty = 2.5f, "presence_penalty", "2.5");
    BAD(p.frequency_penalty = -3.0f, "frequency_penalty", "-3");
    BAD(p.penalty_last_n = -2, "penalty_last_n", "-2");
    BAD(p.n_logprobs = 21, "n_logprobs", "21");
#undef BAD
    /* The boundaries themselves are valid. */
    sampler_params_default(&p);
    p.temperature = 100.0f;
    p.top_k = 100;
    p.top_p = 1.0f;
    p.presence_penalty = -2.0f;
    p.frequency_penalty = 2.0f;
    p.penalty_last_n = -1;
    p.n_logprobs = 20;
    ck_assert_int_eq(sampler_params_validate(&p, 100, NULL), WS_OK);
    /* sampler_sample validates too, and checks u. */
    sampler *s = NULL;
    ck_assert_int_eq(sampler_new(10, &s, NULL), WS_OK);
    float w[10];
    memcpy(w, small_logits, sizeof w);
    sampler_result r;
    ws_error err;
    p = params_t(1.0f, 0);
    ck_assert_int_eq(sampler_sample(s, &p, w, NULL, 0, 1.0f, &r, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "u"));
    p.top_k = 11;
    ck_assert_int_eq(sampler_sample(s, &p, w, NULL, 0, 0.5f, &r, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "top_k 11"));
    sampler_free(s);
}
END_TEST

int main(void) {
    Suite *su = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_greedy_and_ties);
    tcase_add_test(tc, test_inverse_cdf);
    tcase_add_test(tc, test_penalties);
    tcase_add_test(tc, test_logprobs);
    tcase_add_test(tc, test_rng_and_seed);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_temperature_distribution);
    tcase_add_test(tc, test_top_k_distribution);
    tcase_add_test(tc, test_top_p_distribution);
    tcase_add_test(tc, test_min_p_distribution);
    tcase_add_test(tc, test_combined_distribution);
    tcase_add_test(tc, test_large_vocab_distribution);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
