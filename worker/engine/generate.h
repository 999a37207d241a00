/* generate.h: the per-request loop. Prefill the prompt into a sequence, then decode and sample
 * until a stop token, a stop string, max_tokens, a cancel or a deadline, streaming UTF-8-safe text
 * through a callback. Knows neither the wire protocol nor the backend in use. */
#ifndef WORKER_ENGINE_GENERATE_H
#define WORKER_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "text/tokenizer.h"

#define GENERATE_MAX_STOP 8

typedef struct {
    const int32_t *prompt; /* tokens appended after what the sequence already holds */
    uint32_t n_prompt;
    sampler_params sampling;
    uint32_t max_tokens;                 /* >= 1 */
    const char *stop[GENERATE_MAX_STOP]; /* stop strings (NUL-terminated), matched on text */
    uint32_t n_stop;
    bool ignore_eos;     /* keep going past stop tokens */
    bool show_special;   /* emit special tokens' text */
    int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
} generate_request;

typedef enum {
    GENERATE_FINISH_STOP = 0,    /* a stop token */
    GENERATE_FINISH_LENGTH,      /* max_tokens or the context filled */
    GENERATE_FINISH_STOP_STRING, /* a stop string (not emitted) */
    GENERATE_FINISH_CANCELLED,
    GENERATE_FINISH_DEADLINE,
    GENERATE_FINISH_ERROR,
} generate_finish;

const char *generate_finish_name(generate_finish f);

typedef struct {
    uint32_t index; /* 0-based index of the generated token */
    int32_t token;
    const char *text; /* newly releasable bytes (complete UTF-8; may be empty) */
    uint32_t text_len;
    const sampler_result *sample; /* token, logprob, top alternatives */
} generate_chunk;

/* Return false to cancel; the loop stops before the next token. */
typedef bool (*generate_on_chunk)(void *user, const generate_chunk *c);

typedef struct {
    generate_finish finish;
    uint32_t n_prompt;
    uint32_t n_generated;
    double prefill_ms; /* time to first token: prefill + first sample */
    double decode_ms;  /* the rest */
    double prompt_tps;
    double decode_tps;
} generate_stats;

/* Runs req on seq. Text released through on_chunk never contains a partial stop string or a
 * partial UTF-8 sequence; at the end held-back text that is not part of a stop string is flushed in
 * a final chunk with token -1, index n_generated and no sample (not after a cancel or a stop
 * string). Returns WS_OK for every finish except ERROR (then err says why).
 * - A stop token (tokenizer_stop_ids, unless ignore_eos) ends the loop without a chunk and is not
 *   counted in n_generated.
 * - The penalty window sees req->prompt followed by the generated tokens.
 * - The context counts as filled when the latest token has no room to be decoded; afterwards seq
 *   holds the prompt and every generated token but the last (which was never decoded).
 * - The deadline is checked before the prefill, before the first sample and before each decode.
 * - prompt_tps is n_prompt over the prefill alone; decode_tps is decode steps per second after the
 *   first token. */
ws_status generate_run(engine_seq *seq, const tokenizer *tok, const generate_request *req,
                       generate_on_chunk on_chunk, void *user, generate_stats *stats,
                       ws_error *err);

#endif
