/* test_generate.c: the generation loop end to end on a real fixture (tests/data/fixtures/ta-f32)
 * with the CPU engine and the tokenizer. Greedy continuations are compared with the reference's
 * greedy tokens in the goldens JSON (Hugging Face transformers in float64), first-token logprobs
 * with log-softmax of the reference logits, and streamed text with tokenizer_decode of the ids;
 * then the ways a run ends: max_tokens, a stop token, a stop string, cancel, deadline, a full
 * context; and request validation. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/generate.h"
#include "model/model.h"
#include "text/tokenizer.h"

/* The engine matches the reference logits within 1e-5 of max |logit| (test_engine_cpu); here max
 * |logit| is below 20, so each logit is within 2e-4 and a top-1/top-2 margin within 4e-4. A
 * greedy step whose reference margin is under ten times that could legitimately flip: prompts
 * with such a step are skipped. (None of the current ta-f32 prompts has one: the smallest margin
 * is 0.024.) */
#define MIN_MARGIN 4e-3

/* Logprobs are log-softmax of logits within 2e-4 each; the log-sum-exp moves by at most as much:
 * 5e-4 covers both. */
#define LOGPROB_TOL 5e-4

static qwen2_model *g_model;
static tokenizer *g_tok;
static engine *g_eng;

static void setup(void) {
    ws_error err;
    ck_assert_msg(model_open(WORKER_TEST_DATA "/fixtures/ta-f32.gguf", &g_model, &err) == WS_OK,
                  "%s", err.msg);
    ck_assert_msg(tokenizer_load(g_model->file, &g_tok, &err) == WS_OK, "%s", err.msg);
    engine_options o = {.n_threads = 2, .max_seqs = 1, .max_ctx = 1024};
    ck_assert_msg(engine_open(ENGINE_CPU, g_model, &o, &g_eng, &err) == WS_OK, "%s", err.msg);
}

static void teardown(void) {
    engine_free(g_eng);
    tokenizer_free(g_tok);
    model_free(g_model);
}

/* ---- collecting what the loop streams ---- */

typedef struct {
    int32_t ids[2048];
    sampler_result res[2048];
    uint32_t n_ids, n_calls, n_final;
    char text[65536];
    size_t n_text;
    int cancel_at;          /* return false at this index (-1: never) */
    int64_t sleep_until_ns; /* at index sleep_at, sleep past this CLOCK_MONOTONIC time */
    int sleep_at;
} collect;

static void collect_init(collect *c) {
    memset(c, 0, sizeof *c);
    c->cancel_at = -1;
    c->sleep_at = -1;
}

static bool on_chunk(void *user, const generate_chunk *ch) {
    collect *c = user;
    c->n_calls++;
    ck_assert(c->n_text + ch->text_len <= sizeof c->text);
    memcpy(c->text + c->n_text, ch->text, ch->text_len);
    c->n_text += ch->text_len;
    if (ch->token < 0) {
        c->n_final++;
        ck_assert_ptr_null(ch->sample);
        ck_assert_uint_eq(ch->index, c->n_ids);
        return true;
    }
    ck_assert_uint_eq(c->n_final, 0); /* the flush chunk comes last */
    ck_assert_uint_eq(ch->index, c->n_ids);
    ck_assert_int_eq(ch->sample->token, ch->token);
    c->res[c->n_ids] = *ch->sample;
    c->ids[c->n_ids++] = ch->token;
    if ((int)ch->index == c->sleep_at) {
        struct timespec ts = {c->sleep_until_ns / 1000000000, c->sleep_until_ns % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
        }
    }
    return (int)ch->index != c->cancel_at;
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static generate_request request(const int32_t *prompt, uint32_t n, uint32_t max_tokens) {
    generate_request r;
    memset(&r, 0, sizeof r);
    r.prompt = prompt;
    r.n_prompt = n;
    r.max_tokens = max_tokens;
    sampler_params_default(&r.sampling);
    return r;
}

/* Runs req on a fresh sequence of n_ctx; returns the status. */
static ws_status run(const generate_request *req, uint32_t n_ctx, collect *c, generate_stats *st,
                     ws_error *err) {
    engine_seq *seq = NULL;
    ck_assert_msg(engine_seq_new(g_eng, n_ctx, &seq, err) == WS_OK, "%s", err->msg);
    ws_status s = generate_run(seq, g_tok, req, on_chunk, c, st, err);
    if (s == WS_OK && st->finish == GENERATE_FINISH_LENGTH && st->n_generated < req->max_tokens)
        ck_assert_uint_eq(engine_seq_len(seq), n_ctx);
    engine_seq_free(seq);
    return s;
}

/* The streamed text equals tokenizer_decode of the streamed ids. */
static void check_text_is_decode(const collect *c, bool show_special) {
    char *dec = NULL;
    size_t n = 0;
    ws_error err;
    ck_assert_int_eq(tokenizer_decode(g_tok, c->ids, c->n_ids, show_special, &dec, &n, &err),
                     WS_OK);
    ck_assert_msg(n == c->n_text && memcmp(dec, c->text, n) == 0,
                  "streamed %zu bytes, decode gives %zu", c->n_text, n);
    free(dec);
}

/* ---- the goldens JSON: the few fields used here ---- */

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

/* Numbers of the array `"key": [...]` inside the prompt object that starts at obj. */
static uint32_t json_array(const char *obj, const char *key, double *out, uint32_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(obj, pat);
    const char *end = strchr(obj, '}');
    ck_assert_msg(p && p < end, "key %s missing", key);
    p = strchr(p, '[') + 1;
    uint32_t n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == ',' || *p == '\r')
            p++;
        if (*p == ']') break;
        char *q;
        double v = strtod(p, &q);
        ck_assert(q != p && n < cap);
        out[n++] = v;
        p = q;
    }
    return n;
}

static const char *const prompt_names[4] = {"one", "short", "chat", "long"};

START_TEST(test_golden_greedy) {
    char *js = read_file(WORKER_TEST_DATA "/goldens/ta-f32.json", NULL);
    for (int pi = 0; pi < 4; pi++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\": {", prompt_names[pi]);
        const char *obj = strstr(js, pat);
        ck_assert_msg(obj != NULL, "prompt %s missing", prompt_names[pi]);
        static double ids_d[512], greedy_d[64], margin[64];
        uint32_t n_ids = json_array(obj, "ids", ids_d, 512);
        uint32_t n_greedy = json_array(obj, "greedy", greedy_d, 64);
        uint32_t n_margin = json_array(obj, "top1_top2_margin", margin, 64);
        ck_assert_uint_eq(n_greedy, 16);
        ck_assert_uint_eq(n_margin, n_greedy);
        double min_margin = 1e9;
        for (uint32_t i = 0; i < n_margin; i++)
            min_margin = fmin(min_margin, margin[i]);
        if (min_margin < MIN_MARGIN) {
            printf("golden greedy %-6s skipped: margin %.2e < %.0e\n", prompt_names[pi], min_margin,
                   MIN_MARGIN);
            continue;
        }
        int32_t ids[512];
        for (uint32_t i = 0; i < n_ids; i++)
            ids[i] = (int32_t)ids_d[i];
        generate_request req = request(ids, n_ids, n_greedy);
        req.ignore_eos = true; /* the reference continuation has a fixed length */
        req.sampling.n_logprobs = 5;
        collect *c = malloc(sizeof *c);
        collect_init(c);
        generate_stats st;
        ws_error err;
        ck_assert_msg(run(&req, 512, c, &st, &err) == WS_OK, "%s", err.msg);
        ck_assert_int_eq(st.finish, GENERATE_FINISH_LENGTH);
        ck_assert_uint_eq(st.n_generated, n_greedy);
        ck_assert_uint_eq(st.n_prompt, n_ids);
        ck_assert_uint_eq(c->n_ids, n_greedy);
        for (uint32_t i = 0; i < n_greedy; i++)
            ck_assert_msg(c->ids[i] == (int32_t)greedy_d[i], "%s token %u: %d, reference %d",
                          prompt_names[pi], i, c->ids[i], (int32_t)greedy_d[i]);
        check_text_is_decode(c, false);
        printf("golden greedy %-6s %2u tokens match (min margin %.3f)\n", prompt_names[pi],
               n_greedy, min_margin);

        /* The first token's logprobs: log-softmax of the reference's last prompt row. */
        char path[512];
        size_t len;
        snprintf(path, sizeof path, WORKER_TEST_DATA "/goldens/ta-f32.%s.logits.f32",
                 prompt_names[pi]);
        char *raw = read_file(path, &len);
        uint32_t nv = g_model->cfg.n_vocab;
        ck_assert(len % (4 * nv) == 0);
        const char *row = raw + len - 4 * (size_t)nv;
        double mx = -1e30, sum = 0.0;
        double *lg = malloc(nv * sizeof *lg);
        for (uint32_t i = 0; i < nv; i++) {
            float f;
            memcpy(&f, row + 4 * i, 4);
            lg[i] = f;
            mx = fmax(mx, lg[i]);
        }
        for (uint32_t i = 0; i < nv; i++)
            sum += exp(lg[i] - mx);
        double lse = mx + log(sum);
        const sampler_result *r = &c->res[0];
        ck_assert_uint_eq(r->n_top, 5);
        ck_assert_int_eq(r->top_tokens[0], r->token);
        ck_assert(fabs(r->logprob - (lg[r->token] - lse)) < LOGPROB_TOL);
        for (uint32_t k = 0; k < 5; k++) {
            ck_assert(fabs(r->top_logprobs[k] - (lg[r->top_tokens[k]] - lse)) < LOGPROB_TOL);
            if (k) ck_assert(r->top_logprobs[k] <= r->top_logprobs[k - 1]);
        }
        free(lg);
        free(raw);
        free(c);
    }
    free(js);
}
END_TEST

static const int32_t chat_prompt[11] = {1025, 872, 198, 9, 11, 222, 525, 498, 30, 1026, 198};

/* Sampled text equals the decode of the ids, with and without special tokens shown; the stop
 * string then cuts a rerun with the same seed exactly where a whole-text search finds it. */
START_TEST(test_stream_and_stop_string) {
    for (int special = 0; special < 2; special++) {
        generate_request req = request(chat_prompt, 11, 60);
        req.sampling.temperature = 1.0f;
        req.sampling.seed = 7;
        req.ignore_eos = true;
        req.show_special = special;
        collect *c = malloc(sizeof *c);
        collect_init(c);
        generate_stats st;
        ws_error err;
        ck_assert_msg(run(&req, 512, c, &st, &err) == WS_OK, "%s", err.msg);
        ck_assert_uint_eq(c->n_ids, 60);
        check_text_is_decode(c, special);

        /* A stop string: the first 5 printable ASCII bytes in a row from the middle of the
         * text on (sampled byte tokens can make the rest invalid UTF-8). */
        ck_assert_uint_gt(c->n_text, 40);
        size_t at = c->n_text / 2, run_len = 0;
        for (; at < c->n_text && run_len < 5; at++)
            run_len = c->text[at] >= 0x20 && c->text[at] <= 0x7e ? run_len + 1 : 0;
        ck_assert_msg(run_len == 5, "no 5 printable bytes in the second half of the text");
        char stop[6];
        memcpy(stop, c->text + at - 5, 5);
        stop[5] = '\0';
        char *full = malloc(c->n_text + 1);
        memcpy(full, c->text, c->n_text);
        full[c->n_text] = '\0';
        size_t want = (size_t)(strstr(full, stop) - full);
        collect *c2 = malloc(sizeof *c2);
        collect_init(c2);
        req.stop[0] = "never appears \x01";
        req.stop[1] = stop;
        req.n_stop = 2;
        ck_assert_msg(run(&req, 512, c2, &st, &err) == WS_OK, "%s", err.msg);
        ck_assert_int_eq(st.finish, GENERATE_FINISH_STOP_STRING);
        ck_assert_uint_eq(c2->n_final, 0);
        ck_assert_msg(c2->n_text == want && memcmp(c2->text, full, want) == 0,
                      "stopped text of %zu bytes, want %zu", c2->n_text, want);
        /* Same seed, same tokens up to the stop. */
        ck_assert_uint_le(c2->n_ids, c->n_ids);
        ck_assert(memcmp(c2->ids, c->ids, c2->n_ids * sizeof *c2->ids) == 0);
        free(full);
        free(c2);
        free(c);
    }
}
END_TEST

/* At temperature 100 the fixture's distribution is nearly flat over 1152 ids, a few of them stop
 * ids: a stop token comes after some hundreds of tokens at most, at the same place for a fixed
 * seed. */
START_TEST(test_stop_token) {
    generate_request req = request(chat_prompt, 11, 900);
    req.sampling.temperature = 100.0f;
    req.sampling.seed = 7; /* stops after 47 tokens */
    collect *c = malloc(sizeof *c), *all = malloc(sizeof *all);
    collect_init(c);
    collect_init(all);
    generate_stats st;
    ws_error err;
    ck_assert_msg(run(&req, 1024, c, &st, &err) == WS_OK, "%s", err.msg);
    ck_assert_int_eq(st.finish, GENERATE_FINISH_STOP);
    ck_assert_uint_eq(st.n_generated, c->n_ids);
    int32_t stops[8];
    uint32_t n_stops = tokenizer_stop_ids(g_tok, stops, 8);
    ck_assert_uint_gt(n_stops, 0);
    /* With ignore_eos the same draws give the same ids, then the stop id itself. */
    req.ignore_eos = true;
    req.max_tokens = c->n_ids + 1;
    ck_assert_msg(run(&req, 1024, all, &st, &err) == WS_OK, "%s", err.msg);
    ck_assert_uint_eq(all->n_ids, c->n_ids + 1);
    ck_assert(memcmp(all->ids, c->ids, c->n_ids * sizeof *c->ids) == 0);
    bool is_stop = false;
    for (uint32_t i = 0; i < n_stops; i++)
        is_stop |= all->ids[c->n_ids] == stops[i];
    ck_assert_msg(is_stop, "token %d after the stopped run is not a stop id", all->ids[c->n_ids]);
    for (uint32_t i = 0; i < c->n_ids; i++)
        for (uint32_t j = 0; j < n_stops; j++)
            ck_assert_int_ne(c->ids[i], stops[j]);
    printf("stop token %d after %u tokens\n", all->ids[c->n_ids], c->n_ids);
    free(c);
    free(all);
}
END_TEST

START_TEST(test_limits) {
    const int32_t prompt[7] = {785, 374, 279, 6, 315, 30, 198};
    generate_stats st;
    ws_error err;
    collect *c = malloc(sizeof *c);

    /* max_tokens */
    generate_request req = request(prompt, 7, 5);
    req.ignore_eos = true;
    collect_init(c);
    ck_assert_int_eq(run(&req, 512, c, &st, &err), WS_OK);
    ck_assert_int_eq(st.finish, GENERATE_FINISH_LENGTH);
    ck_assert_uint_eq(st.n_generated, 5);
    ck_assert_uint_eq(c->n_ids, 5);
    ck_assert(st.prompt_tps > 0 && st.decode_tps > 0 && st.prefill_ms > 0);

    /* The context fills: 7 + 3 = 10 holds the prompt and 3 decoded tokens; the 4th token is
     * sampled from the last decode and has no room. */
    req.max_tokens = 100;
    collect_init(c);
    ck_assert_int_eq(run(&req, 10, c, &st, &err), WS_OK);
    ck_assert_int_eq(st.finish, GENERATE_FINISH_LENGTH);
    ck_assert_uint_eq(st.n_generated, 4);
    /* A prompt that fills the context exactly still yields one token. */
    collect_init(c);
    ck_assert_int_eq(run(&req, 7, c, &st, &err), WS_OK);
    ck_assert_int_eq(st.finish, GENERATE_FINISH_LENGTH);
    ck_assert_uint_eq(st.n_generated, 1);
    /* A prompt longer than the context is an error from the prefill. */
    collect_init(c);
    ck_assert_int_eq(run(&req, 6, c, &st, &err), WS_ERR_RANGE);
    ck_assert_int_eq(st.finish, GENERATE_FINISH_ERROR);

    /* Cancel: the callback returns false at index 2; no further chunk, not even a flush. */
    collect_init(c);
    c->cancel_at = 2;
    ck_assert_int_eq(run(&req, 512, c, &st, &err), WS_OK);
    ck_assert_int_eq(st.finish, GENERATE_FINISH_CANCELLED);
    ck_assert_uint_eq(st.n_generated, 3);
    ck_assert_uint_eq(c->n_calls, 3);

    /* Deadline already past: nothing runs. */
    req.deadline_ns = mono_ns() - 1;
    collect_init(c);
    ck_assert_int_eq(run(&req, 512, c, &st, &err), WS_OK);
    ck_assert_int_eq(st.finish, GENERATE_FINISH_DEADLINE);
    ck_assert_uint_eq(st.n_generated, 0);
    ck_assert_uint_eq(c->n_calls, 0);
    /* Deadline passing during the run: the callback of token 2 sleeps past it (the first tokens
     * of this 2-layer model take milliseconds against the 5 s allowed). */
    req.deadline_ns = mono_ns() + 5000000000LL;
    collect_init(c);
    c->sleep_at = 2;
    c->sleep_until_ns = req.deadline_ns + 1000000;
    ck_assert_int_eq(run(&req, 512, c, &st, &err), WS_OK);
    ck_assert_int_eq(st.finish, GENERATE_FINISH_DEADLINE);
    ck_assert_uint_eq(st.n_generated, 3);
    free(c);
}
END_TEST

START_TEST(test_invalid_requests) {
    const int32_t prompt[2] = {785, 374};
    generate_stats st;
    ws_error err;
    collect *c = malloc(sizeof *c);
    collect_init(c);
    generate_request req = request(prompt, 2, 0);
    ck_assert_int_eq(run(&req, 64, c, &st, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "max_tokens"));
    req = request(prompt, 0, 4);
    ck_assert_int_eq(run(&req, 64, c, &st, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "prompt"));
    req = request(prompt, 2, 4);
    req.sampling.top_p = 0.0f;
    ck_assert_int_eq(run(&req, 64, c, &st, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "top_p"));
    req = request(prompt, 2, 4);
    req.stop[0] = "";
    req.n_stop = 1;
    ck_assert_int_eq(run(&req, 64, c, &st, &err), WS_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "stop string 0"));
    req = request(prompt, 2, 4);
    int32_t bad[2] = {785, 5000};
    req.prompt = bad;
    ck_assert_int_eq(run(&req, 64, c, &st, &err), WS_ERR_RANGE);
    ck_assert_uint_eq(c->n_calls, 0);
    ck_assert_str_eq(generate_finish_name(GENERATE_FINISH_STOP_STRING), "stop_string");
    free(c);
}
END_TEST

int main(void) {
    Suite *su = suite_create("generate");
    TCase *tc = tcase_create("ta-f32");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_golden_greedy);
    tcase_add_test(tc, test_stream_and_stop_string);
    tcase_add_test(tc, test_stop_token);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_invalid_requests);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
