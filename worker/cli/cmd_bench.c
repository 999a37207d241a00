/* cmd_bench.c: the 'bench' subcommand, measured the way llama-bench measures: ppN is one N-token
 * prefill into a fresh sequence, tgN is N tokens decoded one at a time from an empty sequence, each
 * repeated and reported as mean and standard deviation of tokens per second after one untimed
 * warm-up. Decode runs as generation uses the engine: greedy on the device (logits stay there)
 * when the backend samples natively, else logits copied to the host and the sampler's greedy step.
 * Also reported: time to first token (prefill plus choosing the first token), model load time
 * (file open plus engine open), the engine's memory report and the device. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "engine/engine.h"
#include "engine/sampler.h"

#define MAX_REPS 1000

static void usage(FILE *out) {
    fprintf(out, "usage: worker-orcd bench -m FILE [-p 512] [-n 128] [-r 5] [--backend cpu|cuda]\n"
                 "                         [--threads N] [--json]\n"
                 "  -p N  prompt tokens per prefill test (0 = skip)\n"
                 "  -n N  tokens per decode test (0 = skip)\n"
                 "  -r N  repetitions of each test\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

typedef struct {
    double mean, sd;
} stat;

static stat stats(const double *x, int n) {
    stat s = {0, 0};
    for (int i = 0; i < n; i++)
        s.mean += x[i];
    s.mean /= n;
    for (int i = 0; i < n && n > 1; i++)
        s.sd += (x[i] - s.mean) * (x[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0;
    return s;
}

/* The CPU's model name from /proc/cpuinfo, or "unknown cpu". */
static void cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(buf, n, "%.*s", (int)strcspn(v, "\n"), v);
        break;
    }
    fclose(f);
}

static void json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* What a benchmark run needs to pick tokens as generation does. */
typedef struct {
    engine_seq *seq;
    sampler *smp;
    sampler_params greedy;
    float *logits; /* n_vocab; NULL when the engine samples on its device */
} picker;

/* The next token after the last computed row. */
static ws_status pick(picker *pk, int32_t *tok, ws_error *err) {
    sampler_result r;
    ws_status st = pk->logits
                       ? sampler_sample(pk->smp, &pk->greedy, pk->logits, NULL, 0, 0.0f, &r, err)
                       : engine_sample(pk->seq, &pk->greedy, NULL, 0, 0.0f, &r, err);
    if (st == WS_OK) *tok = r.token;
    return st;
}

/* One prefill of n_prompt tokens into the emptied sequence: prefill seconds and time to the first
 * chosen token. */
static ws_status run_pp(picker *pk, const int32_t *toks, uint32_t n_prompt, double *pp_s,
                        double *ttft_s, ws_error *err) {
    ws_status st = engine_seq_truncate(pk->seq, 0, err);
    if (st != WS_OK) return st;
    double t0 = now_s();
    st = engine_prefill(pk->seq, toks, n_prompt, false, pk->logits, err);
    if (st != WS_OK) return st;
    double t1 = now_s();
    int32_t tok;
    st = pick(pk, &tok, err);
    double t2 = now_s();
    *pp_s = t1 - t0;
    *ttft_s = t2 - t0;
    return st;
}

/* n_gen decodes from an empty sequence, starting from toks[0], each next token chosen greedily. */
static ws_status run_tg(picker *pk, const int32_t *toks, uint32_t n_gen, double *tg_s,
                        ws_error *err) {
    ws_status st = engine_seq_truncate(pk->seq, 0, err);
    if (st != WS_OK) return st;
    int32_t tok = toks[0];
    double t0 = now_s();
    for (uint32_t i = 0; i < n_gen && st == WS_OK; i++) {
        st = engine_decode(&pk->seq, &tok, 1, pk->logits, err);
        /* every choice but the last is decoded next, as in a generation loop */
        engine_seq_lookahead(pk->seq, i + 1 < n_gen);
        if (st == WS_OK) st = pick(pk, &tok, err);
    }
    engine_seq_lookahead(pk->seq, false);
    *tg_s = now_s() - t0;
    return st;
}

typedef struct {
    const char *model_path, *backend_name;
    long n_prompt, n_gen, reps, threads;
    bool json;
    engine_backend backend;
} bench_args;

typedef struct {
    double load_ms;
    stat pp, tg, ttft; /* t/s, t/s, ms */
    engine_memory mem;
    char device[256];
    const char *token_choice;
    int threads;
    uint32_t n_ctx;
} bench_report;

/* Returns -1 when the arguments are good, else the exit status. */
static int parse_args(int argc, char **argv, bench_args *a) {
    *a = (bench_args){.backend_name = "cpu", .n_prompt = 512, .n_gen = 128, .reps = 5};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(o, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "worker-orcd bench: '%s' needs a value or is unknown\n", o);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (strcmp(o, "-m") == 0 || strcmp(o, "--model") == 0)
            a->model_path = v;
        else if (strcmp(o, "--backend") == 0)
            a->backend_name = v;
        else if (strcmp(o, "-p") == 0)
            ok = parse_long(v, 0, 1 << 20, &a->n_prompt);
        else if (strcmp(o, "-n") == 0)
            ok = parse_long(v, 0, 1 << 20, &a->n_gen);
        else if (strcmp(o, "-r") == 0)
            ok = parse_long(v, 1, MAX_REPS, &a->reps);
        else if (strcmp(o, "--threads") == 0)
            ok = parse_long(v, 1, 4096, &a->threads);
        else {
            fprintf(stderr, "worker-orcd bench: unknown option '%s'\n", o);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "worker-orcd bench: %s '%s' is out of range\n", o, v);
            return 2;
        }
    }
    if (!a->model_path) {
        fprintf(stderr, "worker-orcd bench: -m FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (a->n_prompt == 0 && a->n_gen == 0) {
        fprintf(stderr, "worker-orcd bench: -p and -n are both 0: nothing to measure\n");
        return 2;
    }
    if (!engine_backend_from_name(a->backend_name, &a->backend)) {
        fprintf(stderr, "worker-orcd bench: --backend '%s' is not cpu or cuda\n", a->backend_name);
        return 2;
    }
    if (!engine_backend_available(a->backend)) {
        fprintf(stderr,
                "worker-orcd bench: backend '%s' is not available (not built into this binary "
                "or no device present)\n",
                a->backend_name);
        return 1;
    }
    return -1;
}

static void print_json(const bench_args *a, const bench_report *r, const qwen2_model *m) {
    const engine_memory *mem = &r->mem;
    printf("{\"model\": ");
    json_str(stdout, a->model_path);
    printf(", \"backend\": \"%s\", \"device\": ", a->backend_name);
    json_str(stdout, r->device);
    printf(", \"device_uuid\": ");
    json_str(stdout, mem->device_uuid);
    printf(", \"threads\": %d, \"n_params\": %llu, \"token_choice\": \"%s\",\n", r->threads,
           (unsigned long long)model_n_params(m), r->token_choice);
    printf(" \"load_ms\": %.3f, \"memory\": {\"weights\": %llu, \"kv_cache\": %llu, "
           "\"scratch\": %llu, \"device_total\": %llu, \"device_free\": %llu},\n",
           r->load_ms, (unsigned long long)mem->weights, (unsigned long long)mem->kv_cache,
           (unsigned long long)mem->scratch, (unsigned long long)mem->device_total,
           (unsigned long long)mem->device_free);
    printf(" \"reps\": %ld, \"tests\": [", a->reps);
    const char *sep = "";
    if (a->n_prompt > 0) {
        printf("{\"name\": \"pp%ld\", \"n_prompt\": %ld, \"n_gen\": 0, \"avg_ts\": %.3f, "
               "\"stddev_ts\": %.3f, \"ttft_ms\": %.3f, \"ttft_stddev_ms\": %.3f}",
               a->n_prompt, a->n_prompt, r->pp.mean, r->pp.sd, r->ttft.mean, r->ttft.sd);
        sep = ", ";
    }
    if (a->n_gen > 0)
        printf("%s{\"name\": \"tg%ld\", \"n_prompt\": 0, \"n_gen\": %ld, \"avg_ts\": %.3f, "
               "\"stddev_ts\": %.3f}",
               sep, a->n_gen, a->n_gen, r->tg.mean, r->tg.sd);
    printf("]}\n");
}

static void print_text(const bench_args *a, const bench_report *r, const qwen2_model *m) {
    const double MiB = 1024.0 * 1024.0;
    const engine_memory *mem = &r->mem;
    printf("model:   %s (%u layers, %u hidden, %u vocab, %.1f M params)\n", a->model_path,
           m->cfg.n_layer, m->cfg.n_embd, m->cfg.n_vocab, model_n_params(m) / 1e6);
    printf("device:  %s, backend %s, tokens chosen by %s\n", r->device, a->backend_name,
           r->token_choice);
    printf("load:    %.1f ms (file open + engine open)\n", r->load_ms);
    printf("memory:  weights %.1f MiB, KV cache %.2f MiB (%u positions), scratch %.2f MiB",
           mem->weights / MiB, mem->kv_cache / MiB, r->n_ctx, mem->scratch / MiB);
    if (mem->device_total)
        printf(", device %.0f MiB total, %.0f MiB free", mem->device_total / MiB,
               mem->device_free / MiB);
    printf("\n\n| test | t/s | reps |\n|---|---|---|\n");
    if (a->n_prompt > 0)
        printf("| pp%ld | %.2f ± %.2f | %ld |\n", a->n_prompt, r->pp.mean, r->pp.sd, a->reps);
    if (a->n_gen > 0)
        printf("| tg%ld | %.2f ± %.2f | %ld |\n", a->n_gen, r->tg.mean, r->tg.sd, a->reps);
    if (a->n_prompt > 0)
        printf("\ntime to first token (pp%ld + first token): %.2f ± %.2f ms\n", a->n_prompt,
               r->ttft.mean, r->ttft.sd);
}

/* The warm-up (untimed) and the timed repetitions. */
static ws_status measure(picker *pk, const int32_t *toks, const bench_args *a, bench_report *r,
                         ws_error *err) {
    static double pp_ts[MAX_REPS], ttft_ms[MAX_REPS], tg_ts[MAX_REPS];
    double pp_s, ttft_s, tg_s;
    ws_status st = WS_OK;
    if (a->n_prompt > 0) st = run_pp(pk, toks, (uint32_t)a->n_prompt, &pp_s, &ttft_s, err);
    if (st == WS_OK && a->n_gen > 0) st = run_tg(pk, toks, 1, &tg_s, err);
    for (long i = 0; i < a->reps && st == WS_OK; i++) {
        pp_ts[i] = ttft_ms[i] = tg_ts[i] = 0;
        if (a->n_prompt > 0) {
            st = run_pp(pk, toks, (uint32_t)a->n_prompt, &pp_s, &ttft_s, err);
            pp_ts[i] = a->n_prompt / pp_s;
            ttft_ms[i] = ttft_s * 1e3;
        }
        if (st == WS_OK && a->n_gen > 0) {
            st = run_tg(pk, toks, (uint32_t)a->n_gen, &tg_s, err);
            tg_ts[i] = a->n_gen / tg_s;
        }
    }
    r->pp = stats(pp_ts, (int)a->reps);
    r->tg = stats(tg_ts, (int)a->reps);
    r->ttft = stats(ttft_ms, (int)a->reps);
    return st;
}

int cmd_bench(int argc, char **argv) {
    bench_args a;
    int arc = parse_args(argc, argv, &a);
    if (arc >= 0) return arc;

    int rc = 1;
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    engine *e = NULL;
    picker pk = {0};
    int32_t *toks = NULL;
    bench_report r = {0};

    r.n_ctx = (uint32_t)(a.n_prompt > a.n_gen ? a.n_prompt : a.n_gen);
    double t0 = now_s();
    if (model_open(a.model_path, &m, &err) != WS_OK) goto fail;
    if (r.n_ctx > m->cfg.n_ctx_train) {
        fprintf(stderr, "worker-orcd bench: %u positions exceed the model's context length %u\n",
                r.n_ctx, m->cfg.n_ctx_train);
        goto done;
    }
    engine_options opt = {.n_threads = (int)a.threads, .max_seqs = 1, .max_ctx = r.n_ctx};
    if (engine_open(a.backend, m, &opt, &e, &err) != WS_OK) goto fail;
    r.load_ms = (now_s() - t0) * 1e3;
    r.threads = e->opt.n_threads;

    const uint32_t V = m->cfg.n_vocab;
    toks = malloc(r.n_ctx * sizeof *toks);
    if (!toks) goto fail;
    uint64_t x = 0x9e3779b97f4a7c15ull; /* deterministic tokens drawn from the vocabulary */
    for (uint32_t i = 0; i < r.n_ctx; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((x >> 33) % V);
    }
    if (engine_seq_new(e, r.n_ctx, &pk.seq, &err) != WS_OK) goto fail;
    sampler_params_default(&pk.greedy);
    if (sampler_new(V, &pk.smp, &err) != WS_OK) goto fail;

    /* where tokens are chosen: on the device when the backend samples, else on the host */
    if (engine_prefill(pk.seq, toks, 1, false, NULL, &err) != WS_OK) goto fail;
    ws_status st = engine_sample(pk.seq, &pk.greedy, NULL, 0, 0.0f, &(sampler_result){0}, &err);
    if (st == WS_ERR_UNSUPPORTED) {
        pk.logits = malloc(V * sizeof *pk.logits);
        if (!pk.logits) goto fail;
    } else if (st != WS_OK) {
        goto fail;
    }
    r.token_choice = pk.logits ? "host logits + sampler" : "device sampler";
    if (measure(&pk, toks, &a, &r, &err) != WS_OK) goto fail;

    if (engine_memory_get(e, &r.mem, &err) != WS_OK) goto fail;
    if (a.backend == ENGINE_CPU) {
        char cpu[200];
        cpu_model(cpu, sizeof cpu);
        snprintf(r.device, sizeof r.device, "%s (%d threads)", cpu, r.threads);
    } else {
        snprintf(r.device, sizeof r.device, "%s", r.mem.device_name);
    }
    if (a.json)
        print_json(&a, &r, m);
    else
        print_text(&a, &r, m);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "worker-orcd bench: %s\n", err.msg[0] ? err.msg : "out of memory");
done:
    sampler_free(pk.smp);
    free(pk.logits);
    engine_seq_free(pk.seq);
    engine_free(e);
    model_free(m);
    free(toks);
    return rc;
}
