/* test_haiku.c: the real Qwen2.5-0.5B-Instruct GGUF on the GPU, end to end through the tokenizer,
 * the chat template, the CUDA engine, the device sampler and the streaming detokenizer. A chat asks
 * for a haiku about GPU computing that contains the current minute in words; it passes when the
 * word appears (case-insensitive, hyphen or space), three lines come back, and a second run with
 * the same seed gives identical tokens.
 * Skipped (exit 77) when WORKER_TEST_MODEL does not name a readable file or no GPU is present:
 * the weights are not part of the repository. */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/generate.h"
#include "model/model.h"
#include "text/chat.h"
#include "text/tokenizer.h"

#define MAX_OUT 256

typedef struct {
    int32_t tokens[MAX_OUT];
    uint32_t n_tokens;
    char text[8192];
    size_t n_text;
} collected;

static bool on_chunk(void *user, const generate_chunk *c) {
    collected *o = user;
    if (c->token >= 0 && o->n_tokens < MAX_OUT) o->tokens[o->n_tokens++] = c->token;
    if (o->n_text + c->text_len < sizeof o->text) {
        memcpy(o->text + o->n_text, c->text, c->text_len);
        o->n_text += c->text_len;
        o->text[o->n_text] = '\0';
    }
    return true;
}

/* The minute 0..59 in English words, tens and units joined by a hyphen ("fifty-seven"). */
static void minute_words(int m, char *out, size_t cap) {
    static const char *const ones[] = {"zero",    "one",     "two",       "three",    "four",
                                       "five",    "six",     "seven",     "eight",    "nine",
                                       "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                       "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
    static const char *const tens[] = {"", "", "twenty", "thirty", "forty", "fifty"};
    if (m < 20)
        snprintf(out, cap, "%s", ones[m]);
    else if (m % 10 == 0)
        snprintf(out, cap, "%s", tens[m / 10]);
    else
        snprintf(out, cap, "%s-%s", tens[m / 10], ones[m % 10]);
}

/* Lower case, hyphens as spaces, runs of whitespace as one space. */
static void normalise(const char *in, char *out, size_t cap) {
    size_t n = 0;
    bool space = false;
    for (; *in && n + 1 < cap; in++) {
        char c = (char)tolower((unsigned char)*in);
        if (c == '-' || isspace((unsigned char)c)) {
            space = true;
            continue;
        }
        if (space && n > 0 && n + 2 < cap) out[n++] = ' ';
        space = false;
        out[n++] = c;
    }
    out[n] = '\0';
}

static unsigned count_lines(const char *text) {
    unsigned n = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool blank = true;
        for (size_t i = 0; i < len; i++)
            if (!isspace((unsigned char)p[i])) blank = false;
        if (!blank) n++;
        if (!e) break;
        p = e + 1;
    }
    return n;
}

static void generate_once(engine *eng, const tokenizer *tok, const int32_t *ids, size_t n_ids,
                          collected *out) {
    engine_seq *seq = NULL;
    ws_error err = {{0}};
    ck_assert_msg(engine_seq_new(eng, 1024, &seq, &err) == WS_OK, "%s", err.msg);
    generate_request req = {0};
    req.prompt = ids;
    req.n_prompt = (uint32_t)n_ids;
    sampler_params_default(&req.sampling);
    /* the model card's generation settings */
    req.sampling.temperature = 0.7f;
    req.sampling.top_p = 0.8f;
    req.sampling.top_k = 20;
    req.sampling.repetition_penalty = 1.05f;
    req.sampling.penalty_last_n = 64;
    req.sampling.seed = 2026;
    req.max_tokens = 96;
    generate_stats stats;
    memset(out, 0, sizeof *out);
    ck_assert_msg(generate_run(seq, tok, &req, on_chunk, out, &stats, &err) == WS_OK, "%s",
                  err.msg);
    ck_assert_msg(stats.finish == GENERATE_FINISH_STOP, "finish %s after %u tokens",
                  generate_finish_name(stats.finish), stats.n_generated);
    printf("haiku (%u tokens, %.0f tok/s):\n%s\n", stats.n_generated, stats.decode_tps, out->text);
    engine_seq_free(seq);
}

START_TEST(haiku_with_the_minute) {
    const char *path = getenv("WORKER_TEST_MODEL");
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    ck_assert_msg(model_open(path, &m, &err) == WS_OK, "%s", err.msg);
    tokenizer *tok = NULL;
    ck_assert_msg(tokenizer_load(m->file, &tok, &err) == WS_OK, "%s", err.msg);
    ck_assert_msg(chat_check_template(m->file, &err) == WS_OK, "%s", err.msg);

    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char word[32], want[32];
    minute_words(tm.tm_min, word, sizeof word);
    normalise(word, want, sizeof want);
    char user[256];
    snprintf(user, sizeof user,
             "Write a haiku about GPU computing. It must contain the word \"%s\". Reply with the "
             "three lines of the haiku only.",
             word);
    const chat_message msgs[] = {{"user", user}};
    char *text = NULL;
    ck_assert_msg(chat_render(msgs, 1, 1, &text, &err) == WS_OK, "%s", err.msg);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    ck_assert_msg(tokenizer_encode(tok, text, strlen(text), true, &ids, &n_ids, &err) == WS_OK,
                  "%s", err.msg);

    engine *eng = NULL;
    engine_options opt = {0};
    opt.max_ctx = 1024;
    ck_assert_msg(engine_open(ENGINE_CUDA, m, &opt, &eng, &err) == WS_OK, "%s", err.msg);
    static collected a, b;
    generate_once(eng, tok, ids, n_ids, &a);
    generate_once(eng, tok, ids, n_ids, &b);

    char got[8192];
    normalise(a.text, got, sizeof got);
    ck_assert_msg(strstr(got, want) != NULL, "the haiku lacks \"%s\"", word);
    ck_assert_uint_eq(count_lines(a.text), 3);
    ck_assert_uint_eq(a.n_tokens, b.n_tokens);
    ck_assert_msg(memcmp(a.tokens, b.tokens, a.n_tokens * sizeof a.tokens[0]) == 0,
                  "same seed, different tokens");

    engine_free(eng);
    free(ids);
    free(text);
    tokenizer_free(tok);
    model_free(m);
}
END_TEST

int main(void) {
    const char *path = getenv("WORKER_TEST_MODEL");
    if (!path || access(path, R_OK) != 0) {
        printf("skipped: WORKER_TEST_MODEL does not name a readable Qwen2.5-0.5B-Instruct GGUF\n");
        return 77;
    }
    if (!engine_backend_available(ENGINE_CUDA)) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    Suite *s = suite_create("haiku");
    TCase *tc = tcase_create("real model");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, haiku_with_the_minute);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
