/* sampler.c: the host implementation of sampler.h. Every filter keeps a prefix of the candidates
 * ordered by descending scaled logit (ties by lower id), so nothing is sorted whole: top-k and the
 * top-n logprobs come from a bounded heap, min-p is a threshold, and the top-p cut and the draw
 * are found by walking per-bucket masses (buckets of the float encoding of the probability, in
 * order) and sorting only the one bucket where a walk stops. O(n) per token plus one small sort;
 * a degenerate distribution (everything in one bucket) costs one O(n log n) sort. */
#include "engine/sampler.h"
#include "base/splitmix.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Buckets by the top 16 bits of r's float encoding: for r in [0, 1] the encoding is monotone, so
 * a bucket holds a contiguous run of the order (r_a > r_b implies v_a > v_b) and buckets taken
 * from the highest down visit the candidates in order, each bucket unsorted inside. A bucket spans
 * a relative width of 1/128, so only the one bucket where a walk stops needs sorting. */
#define BUCKET_SHIFT 16
#define BUCKET_TOP (0x3f800000u >> BUCKET_SHIFT) /* the bucket of r = 1 */
#define N_BUCKETS (BUCKET_TOP + 1)

/* One candidate: scaled logit v, weight r = exp(v - v_max) (so the best has r = 1), token id. */
typedef struct {
    float v;
    float r;
    int32_t id;
} cand;

struct sampler {
    uint32_t n_vocab;
    uint32_t *counts; /* (n_vocab) occurrences in the penalty window; all zero between calls */
    cand *cands;      /* (n_vocab) the candidates of step 4 */
    cand *sel;        /* (n_vocab) one bucket of them, sorted */
    double *mass;     /* (N_BUCKETS) candidate mass per bucket; all zero between calls */
    uint32_t *cnt;    /* (N_BUCKETS) candidates per bucket; all zero between calls */
};

/* ---- parameters ---- */

void sampler_params_default(sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 0.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->penalty_last_n = 0;
    p->seed = 0;
    p->n_logprobs = 0;
}

ws_status sampler_params_validate(const sampler_params *p, uint32_t n_vocab, ws_error *err) {
    /* Comparisons are written so that NaN fails them. */
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        return ws_fail(err, WS_ERR_INVALID_ARG, "temperature %g outside [0, 100]",
                       (double)p->temperature);
    if (p->top_k < 0 || (uint32_t)p->top_k > n_vocab)
        return ws_fail(err, WS_ERR_INVALID_ARG, "top_k %d outside [0, %u] (0 = off)", p->top_k,
                       n_vocab);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return ws_fail(err, WS_ERR_INVALID_ARG, "top_p %g outside (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
        return ws_fail(err, WS_ERR_INVALID_ARG, "min_p %g outside [0, 1)", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && isfinite(p->repetition_penalty)))
        return ws_fail(err, WS_ERR_INVALID_ARG, "repetition_penalty %g is not a finite value > 0",
                       (double)p->repetition_penalty);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return ws_fail(err, WS_ERR_INVALID_ARG, "presence_penalty %g outside [-2, 2]",
                       (double)p->presence_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return ws_fail(err, WS_ERR_INVALID_ARG, "frequency_penalty %g outside [-2, 2]",
                       (double)p->frequency_penalty);
    if (p->penalty_last_n < -1)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "penalty_last_n %d outside [-1, inf) (0 = off, -1 = all)",
                       p->penalty_last_n);
    if (p->n_logprobs > SAMPLER_MAX_LOGPROBS)
        return ws_fail(err, WS_ERR_INVALID_ARG, "n_logprobs %u outside [0, %d]", p->n_logprobs,
                       SAMPLER_MAX_LOGPROBS);
    return WS_OK;
}

/* ---- random stream: xoshiro256** seeded through splitmix64 ---- */

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void sampler_rng_seed(sampler_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rng_next(sampler_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

float sampler_rng_uniform(sampler_rng *r) {
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* ---- lifecycle ---- */

ws_status sampler_new(uint32_t n_vocab, sampler **out, ws_error *err) {
    if (n_vocab == 0) return ws_fail(err, WS_ERR_INVALID_ARG, "sampler for a vocabulary of 0");
    sampler *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->n_vocab = n_vocab;
    s->counts = calloc(n_vocab, sizeof *s->counts);
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->sel = malloc((size_t)n_vocab * sizeof *s->sel);
    s->mass = calloc(N_BUCKETS, sizeof *s->mass);
    s->cnt = calloc(N_BUCKETS, sizeof *s->cnt);
    if (!s->counts || !s->cands || !s->sel || !s->mass || !s->cnt) goto nomem;
    *out = s;
    return WS_OK;
nomem:
    sampler_free(s);
    return ws_fail(err, WS_ERR_NOMEM, "sampler scratch for %u tokens", n_vocab);
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->counts);
    free(s->cands);
    free(s->sel);
    free(s->mass);
    free(s->cnt);
    free(s);
}

/* ---- ordering: higher value first, lower id on ties ---- */

static int better(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (better(x->v, x->id, y->v, y->id)) return -1;
    if (better(y->v, y->id, x->v, x->id)) return 1;
    return 0;
}

/* Min-heap on the ordering (root = the worst kept): keeps the best k of a stream in O(n log k). */
static void heap_sift_down(cand *h, uint32_t n, uint32_t i) {
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(h[w].v, h[w].id, h[l].v, h[l].id)) w = l;
        if (r < n && better(h[w].v, h[w].id, h[r].v, h[r].id)) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Writes the best k (1 <= k <= n) of values[i] / t into h, unordered. */
static void select_top(const float *values, uint32_t n, float t, uint32_t k, cand *h) {
    for (uint32_t i = 0; i < k; i++)
        h[i] = (cand){values[i] / t, 0.0f, (int32_t)i};
    for (uint32_t i = k / 2; i-- > 0;)
        heap_sift_down(h, k, i);
    for (uint32_t i = k; i < n; i++) {
        float v = values[i] / t;
        if (!better(v, (int32_t)i, h[0].v, h[0].id)) continue;
        h[0] = (cand){v, 0.0f, (int32_t)i};
        heap_sift_down(h, k, 0);
    }
}

/* ---- the steps ---- */

/* Step 1. counts[] is zero on entry and on exit. */
static ws_status apply_penalties(sampler *s, const sampler_params *p, float *logits,
                                 const int32_t *history, uint32_t n_history, ws_error *err) {
    if (p->penalty_last_n == 0 || n_history == 0) return WS_OK;
    if (p->repetition_penalty == 1.0f && p->presence_penalty == 0.0f &&
        p->frequency_penalty == 0.0f)
        return WS_OK;
    uint32_t n = n_history;
    if (p->penalty_last_n > 0 && (uint32_t)p->penalty_last_n < n) n = (uint32_t)p->penalty_last_n;
    const int32_t *w = history + (n_history - n);
    for (uint32_t i = 0; i < n; i++)
        if (w[i] < 0 || (uint32_t)w[i] >= s->n_vocab)
            return ws_fail(err, WS_ERR_RANGE, "history[%u]: token %d outside vocabulary [0, %u)",
                           n_history - n + i, w[i], s->n_vocab);
    for (uint32_t i = 0; i < n; i++)
        s->counts[w[i]]++;
    /* Each distinct token is penalised once, on its first appearance in the window. */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = s->counts[w[i]];
        if (c == 0) continue;
        s->counts[w[i]] = 0;
        float l = logits[w[i]];
        if (l > 0.0f)
            l /= p->repetition_penalty;
        else if (l < 0.0f)
            l *= p->repetition_penalty;
        l -= p->presence_penalty;
        l -= (float)c * p->frequency_penalty;
        logits[w[i]] = l;
    }
    return WS_OK;
}

/* Step 2: log-softmax normaliser (max + log of the sum in double) and the top-n alternatives. */
static void take_logprobs(sampler *s, const sampler_params *p, const float *logits, double *lse,
                          sampler_result *out) {
    uint32_t n = s->n_vocab;
    float m = logits[0];
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > m) m = logits[i];
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        sum += expf(logits[i] - m); /* 1 ulp each; summed in double */
    *lse = (double)m + log(sum);
    out->n_top = 0;
    uint32_t k = p->n_logprobs < n ? p->n_logprobs : n;
    if (k == 0) return;
    cand h[SAMPLER_MAX_LOGPROBS];
    select_top(logits, n, 1.0f, k, h);
    qsort(h, k, sizeof *h, cand_cmp);
    for (uint32_t i = 0; i < k; i++) {
        out->top_tokens[i] = h[i].id;
        out->top_logprobs[i] = (float)((double)h[i].v - *lse);
    }
    out->n_top = k;
}

static int32_t argmax(const float *v, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int32_t)best;
}

static uint32_t bucket_of(float r) {
    uint32_t bits;
    memcpy(&bits, &r, sizeof bits);
    return bits >> BUCKET_SHIFT;
}

/* Copies the candidates of bucket b into out, sorted; returns their count. */
static uint32_t gather_bucket(const cand *c, uint32_t n, uint32_t b, cand *out) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (bucket_of(c[i].r) == b) out[k++] = c[i];
    qsort(out, k, sizeof *out, cand_cmp);
    return k;
}

/* Steps 4 (top-p) and 5 over the nk candidates whose per-bucket mass and count are filled in;
 * z is the top-k set's mass and lo the lowest non-empty bucket. */
static int32_t walk_buckets(sampler *s, const sampler_params *p, uint32_t nk, double z, uint32_t lo,
                            float u) {
    const cand *c = s->cands;
    cand *sel = s->sel;
    const double *mass = s->mass;
    const uint32_t *cnt = s->cnt;

    /* top-p: the smallest prefix with mass >= top_p * z. It ends inside bucket cut_b, of which
     * the first cut_n (sorted, in sel) belong to it. zf is the mass of the final prefix. */
    uint32_t cut_b = N_BUCKETS, cut_n = 0;
    double zf = 0.0, target = (double)p->top_p * z;
    for (uint32_t b = BUCKET_TOP + 1; b-- > lo;) {
        if (cnt[b] == 0) continue;
        if (p->top_p < 1.0f && zf + mass[b] >= target) {
            uint32_t k = gather_bucket(c, nk, b, sel);
            double cum = zf;
            cut_b = b;
            cut_n = k; /* rounding can leave the sorted walk a hair short: the whole bucket */
            for (uint32_t j = 0; j < k; j++) {
                cum += sel[j].r;
                if (cum >= target) {
                    cut_n = j + 1;
                    break;
                }
            }
            zf = cum;
            break;
        }
        zf += mass[b];
    }

    /* Renormalise over the prefix and draw by inverse CDF: find the bucket where the running
     * mass passes u * zf, then walk it sorted. */
    double cum = 0.0;
    target = (double)u * zf;
    for (uint32_t b = BUCKET_TOP + 1; b-- > lo;) {
        if (cnt[b] == 0) continue;
        if (b == cut_b) {
            for (uint32_t j = 0; j < cut_n; j++) {
                cum += sel[j].r;
                if (cum > target) return sel[j].id;
            }
            return sel[cut_n - 1].id; /* rounding at the very end of the prefix */
        }
        if (cum + mass[b] > target) {
            uint32_t k = gather_bucket(c, nk, b, sel);
            for (uint32_t j = 0; j < k; j++) {
                cum += sel[j].r;
                if (cum > target) return sel[j].id;
            }
            return sel[k - 1].id; /* rounding inside the bucket */
        }
        cum += mass[b];
    }
    /* Rounding left u * zf at or above the whole mass: the last candidate of the prefix. */
    uint32_t k = gather_bucket(c, nk, lo, sel);
    return sel[k - 1].id;
}

/* Steps 4 and 5 for temperature > 0 (the scaled logits live in the candidates). */
static int32_t sample_stochastic(sampler *s, const sampler_params *p, const float *logits,
                                 float u) {
    uint32_t n = s->n_vocab;
    float t = p->temperature;
    cand *c = s->cands;
    uint32_t nc = n;
    if (p->top_k > 0 && (uint32_t)p->top_k < n) {
        nc = (uint32_t)p->top_k;
        select_top(logits, n, t, nc, c);
    } else {
        for (uint32_t i = 0; i < n; i++)
            c[i] = (cand){logits[i] / t, 0.0f, (int32_t)i};
    }

    /* Softmax weights relative to the best candidate (r = 1); z is the top-k set's mass. */
    float vmax = c[0].v;
    for (uint32_t i = 1; i < nc; i++)
        if (c[i].v > vmax) vmax = c[i].v;
    double z = 0.0;
    for (uint32_t i = 0; i < nc; i++) {
        c[i].r = expf(c[i].v - vmax);
        z += c[i].r;
    }

    /* min-p drops p < min_p * p_max, that is r < min_p, wherever it falls; since top-p and min-p
     * both keep a prefix, the result is the shorter prefix, and a top-p walk that runs out of
     * min-p survivors means min-p is the binding one. The best candidate always survives. */
    uint32_t nk = nc;
    if (p->min_p > 0.0f) {
        nk = 0;
        for (uint32_t i = 0; i < nc; i++)
            if (c[i].r >= p->min_p) c[nk++] = c[i];
    }
    uint32_t lo = BUCKET_TOP;
    for (uint32_t i = 0; i < nk; i++) {
        uint32_t b = bucket_of(c[i].r);
        s->mass[b] += c[i].r;
        s->cnt[b]++;
        if (b < lo) lo = b;
    }
    int32_t tok = walk_buckets(s, p, nk, z, lo, u);
    for (uint32_t i = 0; i < nk; i++) { /* back to all zero, touching only what was used */
        uint32_t b = bucket_of(c[i].r);
        s->mass[b] = 0.0;
        s->cnt[b] = 0;
    }
    return tok;
}

ws_status sampler_sample(sampler *s, const sampler_params *p, float *logits, const int32_t *history,
                         uint32_t n_history, float u, sampler_result *out, ws_error *err) {
    ws_status st = sampler_params_validate(p, s->n_vocab, err);
    if (st != WS_OK) return st;
    if (!(u >= 0.0f && u < 1.0f))
        return ws_fail(err, WS_ERR_INVALID_ARG, "uniform draw u %g outside [0, 1)", (double)u);
    st = apply_penalties(s, p, logits, history, n_history, err);
    if (st != WS_OK) return st;
    double lse;
    take_logprobs(s, p, logits, &lse, out);
    int32_t tok =
        p->temperature == 0.0f ? argmax(logits, s->n_vocab) : sample_stochastic(s, p, logits, u);
    out->token = tok;
    out->logprob = (float)((double)logits[tok] - lse);
    return WS_OK;
}
