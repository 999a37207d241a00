/* cmd_run.c: the 'run' subcommand. Generates from a plain prompt (-p, encoded as text) or one chat
 * message (--chat, rendered as ChatML and encoded with special tokens), streams the text to stdout
 * as it is released, and ends with one line of figures on stderr. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/stop.h"
#include "model/model.h"
#include "text/chat.h"
#include "text/tokenizer.h"

#define DEFAULT_MAX_TOKENS 256
#define DEFAULT_CTX 4096 /* capped by the model's context length */
#define DEFAULT_REPEAT_LAST_N 64
#define STR_(x) #x
#define STR(x) STR_(x)

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: worker-orcd run -m FILE (-p TEXT | --chat TEXT [--system TEXT]) [options]\n"
        "  -p TEXT               prompt, encoded as plain text (no special tokens)\n"
        "  --chat TEXT           one user message in the model's ChatML template\n"
        "  --system TEXT         system message for --chat (default: the Qwen one)\n"
        "  --backend cpu|cuda    engine (default cpu)\n"
        "  --threads N           CPU threads (default: all cores)\n"
        "  --ctx N               context length (default min(model's, %d))\n"
        "  -n N                  at most N generated tokens (default %d)\n"
        "  --temp T              temperature in [0, 100]; 0 = greedy (default 0)\n"
        "  --top-k K             keep the K most likely tokens; 0 = off\n"
        "  --top-p P             nucleus mass in (0, 1]; 1 = off\n"
        "  --min-p P             drop tokens below P x the best one's probability, [0, 1)\n"
        "  --repeat-penalty R    > 0; 1 = off\n"
        "  --repeat-last-n N     penalty window in tokens; -1 = all, 0 = off (default %d)\n"
        "  --presence-penalty P  [-2, 2]\n"
        "  --frequency-penalty P [-2, 2]\n"
        "  --seed S              random seed, 0..2^64-1 (default 0)\n"
        "  --stop STR            stop string, not printed (up to %d)\n"
        "  --logprobs N          print each token's logprob and N alternatives (0..%d) on stderr\n"
        "  --ignore-eos          do not stop at end-of-sequence tokens\n"
        "  --special             print special tokens' text\n",
        DEFAULT_CTX, DEFAULT_MAX_TOKENS, DEFAULT_REPEAT_LAST_N, GENERATE_MAX_STOP,
        SAMPLER_MAX_LOGPROBS);
}

typedef struct {
    const char *model, *prompt, *chat, *system, *backend;
    long threads, ctx, max_tokens;
    sampler_params sp;
    const char *stop[GENERATE_MAX_STOP];
    uint32_t n_stop;
    bool ignore_eos, special;
} run_opts;

/* ---- flag values: whole-string parses with range checks ---- */

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (s[0] < '0' || s[0] > '9') return false; /* strtoull would take a sign or spaces */
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = (uint64_t)v;
    return true;
}

/* A finite number in the range: lo_open / hi_open exclude the bound. */
static bool parse_float(const char *s, double lo, bool lo_open, double hi, bool hi_open,
                        float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return false;
    if (lo_open ? !(v > lo) : !(v >= lo)) return false;
    if (hi_open ? !(v < hi) : !(v <= hi)) return false;
    *out = (float)v;
    return true;
}

#define BAD_VALUE(flag, v, what)                                                                   \
    do {                                                                                           \
        fprintf(stderr, "worker-orcd run: %s '%s' is not %s\n", flag, v, what);                    \
        return 2;                                                                                  \
    } while (0)

/* Returns 0 to go on, 2 on a usage error, -1 after --help. */
static int parse_args(int argc, char **argv, run_opts *o) {
    memset(o, 0, sizeof *o);
    o->backend = "cpu";
    o->max_tokens = DEFAULT_MAX_TOKENS;
    sampler_params_default(&o->sp);
    o->sp.penalty_last_n = DEFAULT_REPEAT_LAST_N;
    static const char *const no_value[] = {"--ignore-eos", "--special"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return -1;
        }
        if (strcmp(a, no_value[0]) == 0) {
            o->ignore_eos = true;
            continue;
        }
        if (strcmp(a, no_value[1]) == 0) {
            o->special = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "worker-orcd run: '%s' needs a value or is unknown\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        sampler_params *sp = &o->sp;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            o->model = v;
        } else if (strcmp(a, "-p") == 0 || strcmp(a, "--prompt") == 0) {
            o->prompt = v;
        } else if (strcmp(a, "--chat") == 0) {
            o->chat = v;
        } else if (strcmp(a, "--system") == 0) {
            o->system = v;
        } else if (strcmp(a, "--backend") == 0) {
            o->backend = v;
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_long(v, 1, 4096, &o->threads)) BAD_VALUE(a, v, "an integer in [1, 4096]");
        } else if (strcmp(a, "--ctx") == 0) {
            if (!parse_long(v, 1, INT32_MAX, &o->ctx)) BAD_VALUE(a, v, "an integer >= 1");
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--max-tokens") == 0) {
            if (!parse_long(v, 1, INT32_MAX, &o->max_tokens)) BAD_VALUE(a, v, "an integer >= 1");
        } else if (strcmp(a, "--temp") == 0) {
            if (!parse_float(v, 0, false, 100, false, &sp->temperature))
                BAD_VALUE(a, v, "a number in [0, 100]");
        } else if (strcmp(a, "--top-k") == 0) {
            long k;
            if (!parse_long(v, 0, INT32_MAX, &k)) BAD_VALUE(a, v, "an integer >= 0");
            sp->top_k = (int32_t)k;
        } else if (strcmp(a, "--top-p") == 0) {
            if (!parse_float(v, 0, true, 1, false, &sp->top_p)) BAD_VALUE(a, v, "in (0, 1]");
        } else if (strcmp(a, "--min-p") == 0) {
            if (!parse_float(v, 0, false, 1, true, &sp->min_p)) BAD_VALUE(a, v, "in [0, 1)");
        } else if (strcmp(a, "--repeat-penalty") == 0) {
            if (!parse_float(v, 0, true, HUGE_VAL, true, &sp->repetition_penalty))
                BAD_VALUE(a, v, "a finite number > 0");
        } else if (strcmp(a, "--repeat-last-n") == 0) {
            long n;
            if (!parse_long(v, -1, INT32_MAX, &n)) BAD_VALUE(a, v, "an integer >= -1");
            sp->penalty_last_n = (int32_t)n;
        } else if (strcmp(a, "--presence-penalty") == 0) {
            if (!parse_float(v, -2, false, 2, false, &sp->presence_penalty))
                BAD_VALUE(a, v, "in [-2, 2]");
        } else if (strcmp(a, "--frequency-penalty") == 0) {
            if (!parse_float(v, -2, false, 2, false, &sp->frequency_penalty))
                BAD_VALUE(a, v, "in [-2, 2]");
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_u64(v, &sp->seed)) BAD_VALUE(a, v, "an integer in [0, 2^64-1]");
        } else if (strcmp(a, "--logprobs") == 0) {
            long n;
            if (!parse_long(v, 0, SAMPLER_MAX_LOGPROBS, &n))
                BAD_VALUE(a, v, "an integer in [0, " STR(SAMPLER_MAX_LOGPROBS) "]");
            sp->n_logprobs = (uint32_t)n;
        } else if (strcmp(a, "--stop") == 0) {
            if (o->n_stop == GENERATE_MAX_STOP) {
                fprintf(stderr, "worker-orcd run: --stop given more than %d times\n",
                        GENERATE_MAX_STOP);
                return 2;
            }
            o->stop[o->n_stop++] = v;
        } else {
            fprintf(stderr, "worker-orcd run: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o->model) {
        fprintf(stderr, "worker-orcd run: -m FILE is required\n");
        return 2;
    }
    if (!o->prompt == !o->chat) {
        fprintf(stderr, "worker-orcd run: give exactly one of -p TEXT and --chat TEXT\n");
        return 2;
    }
    if (o->system && !o->chat) {
        fprintf(stderr, "worker-orcd run: --system goes with --chat\n");
        return 2;
    }
    stop_matcher m;
    ws_error err;
    if (stop_init(&m, o->stop, o->n_stop, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd run: --stop: %s\n", err.msg);
        return 2;
    }
    stop_free(&m);
    return 0;
}

/* ---- streaming ---- */

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

typedef struct {
    bool write_failed;
    char last;
    sampler_result *res; /* (max_tokens) with --logprobs */
    uint32_t n_res;
} stream;

static bool on_chunk(void *user, const generate_chunk *c) {
    stream *s = user;
    if (c->text_len) {
        if (fwrite(c->text, 1, c->text_len, stdout) != c->text_len || fflush(stdout) != 0) {
            s->write_failed = true;
            return false;
        }
        s->last = c->text[c->text_len - 1];
    }
    if (s->res && c->sample) s->res[s->n_res++] = *c->sample;
    return !g_interrupted;
}

/* Prints a token's bytes with control and non-ASCII bytes escaped. */
static void print_token(const tokenizer *tok, int32_t id) {
    char buf[512];
    size_t n = 0;
    if (tokenizer_token_bytes(tok, id, true, buf, sizeof buf, &n, NULL) != WS_OK) n = 0;
    fputc('"', stderr);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '"' || ch == '\\')
            fprintf(stderr, "\\%c", ch);
        else if (ch >= 0x20 && ch < 0x7f)
            fputc(ch, stderr);
        else
            fprintf(stderr, "\\x%02x", ch);
    }
    fputc('"', stderr);
}

static void print_logprobs(const tokenizer *tok, const stream *s) {
    for (uint32_t i = 0; i < s->n_res; i++) {
        const sampler_result *r = &s->res[i];
        fprintf(stderr, "%u\t%d\t%.4f\t", i, r->token, (double)r->logprob);
        print_token(tok, r->token);
        for (uint32_t k = 0; k < r->n_top; k++) {
            fprintf(stderr, "%s%d ", k ? ", " : "\t[", r->top_tokens[k]);
            print_token(tok, r->top_tokens[k]);
            fprintf(stderr, " %.4f", (double)r->top_logprobs[k]);
        }
        fprintf(stderr, "%s\n", r->n_top ? "]" : "");
    }
}

/* ---- the command ---- */

/* Encodes the prompt: -p as plain text, --chat through the ChatML template. */
static ws_status encode_prompt(const run_opts *o, const qwen2_model *m, const tokenizer *tok,
                               int32_t **ids, size_t *n, ws_error *err) {
    if (o->prompt) return tokenizer_encode(tok, o->prompt, strlen(o->prompt), false, ids, n, err);
    ws_status st = chat_check_template(m->file, err);
    if (st != WS_OK) return st;
    chat_message msgs[2];
    size_t k = 0;
    if (o->system) msgs[k++] = (chat_message){"system", o->system};
    msgs[k++] = (chat_message){"user", o->chat};
    char *text = NULL;
    st = chat_render(msgs, k, 1, &text, err);
    if (st != WS_OK) return st;
    st = tokenizer_encode(tok, text, strlen(text), true, ids, n, err);
    free(text);
    return st;
}

int cmd_run(int argc, char **argv) {
    run_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) return rc < 0 ? 0 : rc;
    engine_backend backend;
    if (!engine_backend_from_name(o.backend, &backend)) {
        fprintf(stderr, "worker-orcd run: --backend '%s' is not cpu or cuda\n", o.backend);
        return 2;
    }
    if (!engine_backend_available(backend)) {
        fprintf(stderr,
                "worker-orcd run: --backend %s is not available (not built into this binary or "
                "no device present)\n",
                o.backend);
        return 1;
    }

    rc = 1;
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    tokenizer *tok = NULL;
    engine *e = NULL;
    engine_seq *seq = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    stream s = {0};
    if (model_open(o.model, &m, &err) != WS_OK) goto fail;
    if (tokenizer_load(m->file, &tok, &err) != WS_OK) goto fail;
    uint32_t ctx_max = m->cfg.n_ctx_train;
    if (o.ctx > (long)ctx_max) {
        fprintf(stderr, "worker-orcd run: --ctx %ld exceeds the model's context length %u\n", o.ctx,
                ctx_max);
        rc = 2;
        goto done;
    }
    uint32_t ctx = o.ctx ? (uint32_t)o.ctx : (ctx_max < DEFAULT_CTX ? ctx_max : DEFAULT_CTX);
    if (o.sp.top_k > (int32_t)m->cfg.n_vocab) {
        fprintf(stderr, "worker-orcd run: --top-k %d exceeds the vocabulary of %u\n", o.sp.top_k,
                m->cfg.n_vocab);
        rc = 2;
        goto done;
    }
    if (encode_prompt(&o, m, tok, &ids, &n_ids, &err) != WS_OK) goto fail;
    if (n_ids == 0) {
        fprintf(stderr, "worker-orcd run: the prompt encodes to no tokens\n");
        rc = 2;
        goto done;
    }
    if (n_ids > ctx) {
        fprintf(stderr, "worker-orcd run: the prompt of %zu tokens does not fit --ctx %u\n", n_ids,
                ctx);
        rc = 2;
        goto done;
    }
    engine_options opt = {.n_threads = (int)o.threads, .max_seqs = 1, .max_ctx = ctx};
    if (engine_open(backend, m, &opt, &e, &err) != WS_OK) goto fail;
    if (engine_seq_new(e, ctx, &seq, &err) != WS_OK) goto fail;

    generate_request req = {0};
    req.prompt = ids;
    req.n_prompt = (uint32_t)n_ids;
    req.sampling = o.sp;
    req.max_tokens = (uint32_t)o.max_tokens;
    memcpy(req.stop, o.stop, sizeof req.stop);
    req.n_stop = o.n_stop;
    req.ignore_eos = o.ignore_eos;
    req.show_special = o.special;
    if (o.sp.n_logprobs) {
        s.res = malloc((size_t)req.max_tokens * sizeof *s.res);
        if (!s.res) {
            fprintf(stderr, "worker-orcd run: out of memory for %u logprob records\n",
                    req.max_tokens);
            goto done;
        }
    }
    struct sigaction sa = {0}, old_sa;
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART; /* a write in progress completes; the loop stops at the next token */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    generate_stats st;
    ws_status gst = generate_run(seq, tok, &req, on_chunk, &s, &st, &err);
    sigaction(SIGINT, &old_sa, NULL);
    if (s.last != '\n' && s.last != 0 && isatty(STDOUT_FILENO)) fputc('\n', stdout);
    fflush(stdout);
    if (gst != WS_OK) goto fail;
    if (s.write_failed) {
        fprintf(stderr, "worker-orcd run: writing to stdout failed: %s\n", strerror(errno));
        goto done;
    }
    if (s.res) print_logprobs(tok, &s);
    fprintf(stderr,
            "prompt %u tokens, %.1f tok/s | generated %u tokens, %.1f tok/s | first token %.1f ms "
            "| finish %s\n",
            st.n_prompt, st.prompt_tps, st.n_generated, st.decode_tps, st.prefill_ms,
            generate_finish_name(st.finish));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "worker-orcd run: %s\n", err.msg);
done:
    free(s.res);
    free(ids);
    engine_seq_free(seq);
    engine_free(e);
    tokenizer_free(tok);
    model_free(m);
    return rc;
}
