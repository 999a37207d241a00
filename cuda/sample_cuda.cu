/* sample_cuda.cu: engine_sample for the CUDA backend. The host folds the penalty window into
 * distinct tokens with counts (validating ids); everything over the vocabulary runs on the device
 * (kernels/sample.cu) from the sequence's last logits row, and only the result comes back. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine_cuda.h"

/* the greedy fast path copies a kq_greedy_out over the head of the sample result */
static_assert(offsetof(kq_sample_out, token) == offsetof(kq_greedy_out, token) &&
                  offsetof(kq_sample_out, logprob) == offsetof(kq_greedy_out, logprob),
              "kq_greedy_out must match the head of kq_sample_out");

static int cmp_i32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Distinct tokens of the window with their counts into tok/cnt; returns how many. */
static int32_t fold_window(const int32_t *w, uint32_t n, int32_t *tok, int32_t *cnt, int32_t *tmp) {
    memcpy(tmp, w, (size_t)n * 4);
    qsort(tmp, n, 4, cmp_i32);
    int32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (k > 0 && tok[k - 1] == tmp[i]) {
            cnt[k - 1]++;
        } else {
            tok[k] = tmp[i];
            cnt[k] = 1;
            k++;
        }
    }
    return k;
}

/* The result the device left in h_sample_out (copied and synchronized) into out. */
static ws_status sample_result(cu_engine *e, const sampler_params *p, sampler_result *out,
                               ws_error *err) {
    const kq_sample_out *r = e->h_sample_out;
    memset(out, 0, sizeof *out);
    if (r->token < 0 || r->token >= e->n_vocab)
        return ws_fail(err, WS_ERR_INTERNAL, "sampling found no finite logit (token %d)", r->token);
    out->token = r->token;
    out->logprob = r->logprob;
    out->n_top = p->n_logprobs < (uint32_t)e->n_vocab ? p->n_logprobs : (uint32_t)e->n_vocab;
    if (out->n_top > SAMPLER_MAX_LOGPROBS) out->n_top = SAMPLER_MAX_LOGPROBS;
    for (uint32_t i = 0; i < out->n_top; i++) {
        out->top_tokens[i] = r->top_tokens[i];
        out->top_logprobs[i] = r->top_logprobs[i];
    }
    return WS_OK;
}

ws_status cu_sample(engine_seq *s, const sampler_params *p, const int32_t *history,
                    uint32_t n_history, float u, sampler_result *out, ws_error *err) {
    cu_engine *e = (cu_engine *)s->eng;
    cu_seq *cs = (cu_seq *)s;
    if (e->fatal) return ws_fail(err, WS_ERR_DEVICE_FATAL, "the CUDA engine hit a sticky error");
    ws_status st = sampler_params_validate(p, (uint32_t)e->n_vocab, err);
    if (st != WS_OK) return st;
    if (!(u >= 0.0f && u < 1.0f))
        return ws_fail(err, WS_ERR_INVALID_ARG, "uniform draw u %g outside [0, 1)", (double)u);
    CU_CHECK(e, err, cudaSetDevice(e->device), "selecting the CUDA device");

    kq_sample_args a;
    memset(&a, 0, sizeof a);
    a.temperature = p->temperature;
    a.top_p = p->top_p;
    a.min_p = p->min_p;
    a.top_k = p->top_k;
    a.repetition_penalty = p->repetition_penalty;
    a.presence_penalty = p->presence_penalty;
    a.frequency_penalty = p->frequency_penalty;
    a.n_logprobs = p->n_logprobs;
    a.u = u;
    const bool penalise = p->penalty_last_n != 0 && n_history > 0 &&
                          (p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
                           p->frequency_penalty != 0.0f);
    if (penalise) {
        uint32_t n = n_history;
        if (p->penalty_last_n > 0 && (uint32_t)p->penalty_last_n < n)
            n = (uint32_t)p->penalty_last_n;
        const int32_t *w = history + (n_history - n);
        for (uint32_t i = 0; i < n; i++)
            if (w[i] < 0 || w[i] >= e->n_vocab)
                return ws_fail(err, WS_ERR_RANGE,
                               "history[%u]: token %d outside vocabulary [0, %d)",
                               n_history - n + i, w[i], e->n_vocab);
        int32_t *tmp = (int32_t *)malloc((size_t)n * 4);
        if (!tmp) return ws_fail(err, WS_ERR_NOMEM, "penalty window of %u tokens", n);
        /* distinct tokens never exceed the vocabulary: h_pen holds 2 * n_vocab */
        a.n_pen = fold_window(w, n, e->h_pen, e->h_pen + e->n_vocab, tmp);
        free(tmp);
        CU_CHECK(
            e, err,
            cudaMemcpyAsync(e->d_pen, e->h_pen, (size_t)a.n_pen * 4, cudaMemcpyHostToDevice, e->st),
            "penalty tokens");
        CU_CHECK(e, err,
                 cudaMemcpyAsync(e->d_pen + e->n_vocab, e->h_pen + e->n_vocab, (size_t)a.n_pen * 4,
                                 cudaMemcpyHostToDevice, e->st),
                 "penalty counts");
    }
    if (!penalise && a.temperature == 0.0f && a.n_logprobs == 0 && cs->greedy_ready) {
        /* plain greedy after a decode step: the step's graph already chose (kq_greedy) */
        const kq_greedy_out *choice = cu_greedy_of(e, cs->slot, cs->cur);
        CU_CHECK(e, err,
                 cudaMemcpyAsync(e->h_sample_out, choice, sizeof(kq_greedy_out),
                                 cudaMemcpyDeviceToHost, e->st),
                 "greedy choice");
        CU_CHECK(e, err, cudaEventRecord(e->choice_done, e->st), "greedy choice");
        /* With look-ahead the decode of the chosen token follows unless the caller stops:
         * enqueue it now, reading the token on the device, into the other logits row, so the
         * device does not wait for the host's round trip (cu_decode keeps it when the caller
         * decodes that token). A pending one was enqueued by an earlier sample of these same
         * logits. */
        if (s->lookahead && !cs->spec && s->n_past < s->n_ctx) {
            CU_CHECK(e, err, cudaEventSynchronize(e->params_done), "decode parameters");
            st = cu_launch_step(e, cs, 0, &choice->token, s->n_past, cs->cur ^ 1, &e->h_params[0],
                                true, err);
            if (st != WS_OK) return st;
            cs->spec = true;
            cs->spec_pos = s->n_past;
        }
        CU_CHECK(e, err, cudaEventSynchronize(e->choice_done), "greedy choice");
        st = sample_result(e, p, out, err);
        if (st != WS_OK) cs->spec = false;
        cs->spec_token = out->token;
        return st;
    }
    const float *logits = cu_logits_row(e, cs->slot, cs->cur);
    CU_CHECK(e, err,
             kq_sample(logits, e->n_vocab, &a, e->d_pen, e->d_pen + e->n_vocab, e->sample_ws,
                       e->sample_ws_bytes, e->d_sample_out, e->st),
             "sampling");
    CU_CHECK(e, err,
             cudaMemcpyAsync(e->h_sample_out, e->d_sample_out, sizeof(kq_sample_out),
                             cudaMemcpyDeviceToHost, e->st),
             "sample result");
    CU_CHECK(e, err, cudaStreamSynchronize(e->st), "sampling");
    return sample_result(e, p, out, err);
}
