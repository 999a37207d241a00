/* sampler.h: turning a row of logits into the next token. One implementation behind one parameter
 * struct; the CUDA backend implements the same steps on the device (engine_sample).
 *
 * Order of steps (documented contract, both backends):
 *   1. penalties over the last penalty_last_n tokens of history: repetition (logit > 0 divided,
 *      < 0 multiplied), then presence (- once per distinct token) and frequency (- per count);
 *   2. logprobs are taken here: log-softmax of the penalised logits (temperature 1);
 *   3. temperature == 0: greedy (argmax, lowest id on ties); stop;
 *   4. divide by temperature; top-k; softmax; top-p (smallest prefix of the sorted
 *      distribution with mass >= top_p); min-p (drop p < min_p * p_max); renormalise;
 *   5. draw with the caller's uniform number u in [0, 1) by inverse CDF over tokens sorted by
 *      descending probability (ties by lower id).
 * The random stream: a splitmix64/xoshiro-style generator seeded by `seed`, one draw per token. */
#ifndef WORKER_ENGINE_SAMPLER_H
#define WORKER_ENGINE_SAMPLER_H

#include <stdint.h>

#include "base/status.h"

#define SAMPLER_MAX_LOGPROBS 20

typedef struct {
    float temperature;        /* 0 = greedy; (0, 100] otherwise */
    int32_t top_k;            /* 0 = off; at most n_vocab */
    float top_p;              /* (0, 1]; 1 = off */
    float min_p;              /* [0, 1); 0 = off */
    float repetition_penalty; /* > 0; 1 = off */
    float presence_penalty;   /* [-2, 2]; 0 = off */
    float frequency_penalty;  /* [-2, 2]; 0 = off */
    int32_t penalty_last_n;   /* window of history for penalties; 0 = off, -1 = all */
    uint64_t seed;
    uint32_t n_logprobs; /* alternatives to report, 0..SAMPLER_MAX_LOGPROBS */
} sampler_params;

typedef struct {
    int32_t token;
    float logprob; /* of token, from step 2 */
    uint32_t n_top;
    int32_t top_tokens[SAMPLER_MAX_LOGPROBS];
    float top_logprobs[SAMPLER_MAX_LOGPROBS];
} sampler_result;

/* Greedy, no penalties, no logprobs, seed 0. */
void sampler_params_default(sampler_params *p);

/* WS_ERR_INVALID_ARG naming the field and value when a parameter is out of range. */
ws_status sampler_params_validate(const sampler_params *p, uint32_t n_vocab, ws_error *err);

/* Deterministic random stream. */
typedef struct {
    uint64_t s[4];
} sampler_rng;
void sampler_rng_seed(sampler_rng *r, uint64_t seed);
/* Uniform in [0, 1) with 24 random bits. */
float sampler_rng_uniform(sampler_rng *r);

typedef struct sampler sampler;

/* Scratch for a vocabulary of n_vocab. Owned by the caller; sampler_free accepts NULL. */
ws_status sampler_new(uint32_t n_vocab, sampler **out, ws_error *err);
void sampler_free(sampler *s);

/* Applies the steps above to logits with history (the tokens so far, oldest first) and the
 * uniform draw u. The penalties of step 1 are applied to logits in place; nothing else is written
 * there. Validates p (as sampler_params_validate), u in [0, 1) and the ids of the penalty window
 * (WS_ERR_RANGE naming the index). top_k > 0 keeps the k best by scaled logit (ties: lower id). */
ws_status sampler_sample(sampler *s, const sampler_params *p, float *logits, const int32_t *history,
                         uint32_t n_history, float u, sampler_result *out, ws_error *err);

#endif
