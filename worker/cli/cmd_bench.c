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
        if (st == WS_OK) st = pick(pk, &tok, err);
    }
    *tg_s = now_s() - t0;
    return st;
}

int cmd_bench(int argc, char **argv) {
    const char *model_path = NULL, *backend_name = "cpu";
    long n_prompt = 512, n_gen = 128, reps = 5, threads = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "worker-orcd bench: '%s' needs a value or is unknown\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0)
            model_path = v;
        else if (strcmp(a, "--backend") == 0)
            backend_name = v;
        else if (strcmp(a, "-p") == 0)
            ok = parse_long(v, 0, 1 << 20, &n_prompt);
        else if (strcmp(a, "-n") == 0)
            ok = parse_long(v, 0, 1 << 20, &n_gen);
        else if (strcmp(a, "-r") == 0)
            ok = parse_long(v, 1, MAX_REPS, &reps);
        else if (strcmp(a, "--threads") == 0)
            ok = parse_long(v, 1, 4096, &threads);
        else {
            fprintf(stderr, "worker-orcd bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "worker-orcd bench: %s '%s' is out of range\n", a, v);
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "worker-orcd bench: -m FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (n_prompt == 0 && n_gen == 0) {
        fprintf(stderr, "worker-orcd bench: -p and -n are both 0: nothing to measure\n");
        return 2;
    }
    engine_backend backend;
    if (!engine_backend_from_name(backend_name, &backend)) {
        fprintf(stderr, "worker-orcd bench: --backend '%s' is not cpu or cuda\n", backend_name);
        return 2;
    }
    if (!engine_backend_available(backend)) {
        fprintf(stderr,
                "worker-orcd bench: backend '%s' is not available (not built into this binary "
                "or no device present)\n",
                backend_name);
        return 1;
    }

    int rc = 1;
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    engine *e = NULL;
    picker pk = {0};
    int32_t *toks = NULL;
    double pp_ts[MAX_REPS], ttft_ms[MAX_REPS], tg_ts[MAX_REPS];

    uint32_t n_ctx = (uint32_t)(n_prompt > n_gen ? n_prompt : n_gen);
    double t0 = now_s();
    if (model_open(model_path, &m, &err) != WS_OK) goto fail;
    if (n_ctx > m->cfg.n_ctx_train) {
        fprintf(stderr, "worker-orcd bench: %u positions exceed the model's context length %u\n",
                n_ctx, m->cfg.n_ctx_train);
        goto done;
    }
    engine_options opt = {.n_threads = (int)threads, .max_seqs = 1, .max_ctx = n_ctx};
    if (engine_open(backend, m, &opt, &e, &err) != WS_OK) goto fail;
    double load_ms = (now_s() - t0) * 1e3;

    const uint32_t V = m->cfg.n_vocab;
    toks = malloc(n_ctx * sizeof *toks);
    if (!toks) goto fail;
    uint64_t x = 0x9e3779b97f4a7c15ull; /* deterministic tokens drawn from the vocabulary */
    for (uint32_t i = 0; i < n_ctx; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((x >> 33) % V);
    }
    if (engine_seq_new(e, n_ctx, &pk.seq, &err) != WS_OK) goto fail;
    sampler_params_default(&pk.greedy);
    if (sampler_new(V, &pk.smp, &err) != WS_OK) goto fail;

    /* warm-up (untimed): touches the weights and decides where tokens are chosen */
    if (engine_prefill(pk.seq, toks, 1, false, NULL, &err) != WS_OK) goto fail;
    ws_status st = engine_sample(pk.seq, &pk.greedy, NULL, 0, 0.0f, &(sampler_result){0}, &err);
    if (st == WS_ERR_UNSUPPORTED) {
        pk.logits = malloc(V * sizeof *pk.logits);
        if (!pk.logits) goto fail;
    } else if (st != WS_OK) {
        goto fail;
    }
    double dummy, dummy2;
    if (n_prompt > 0 && run_pp(&pk, toks, (uint32_t)n_prompt, &dummy, &dummy2, &err) != WS_OK)
        goto fail;
    if (n_gen > 0 && run_tg(&pk, toks, 1, &dummy, &err) != WS_OK) goto fail;

    for (long r = 0; r < reps; r++) {
        if (n_prompt > 0) {
            double pp_s, ttft_s;
            if (run_pp(&pk, toks, (uint32_t)n_prompt, &pp_s, &ttft_s, &err) != WS_OK) goto fail;
            pp_ts[r] = n_prompt / pp_s;
            ttft_ms[r] = ttft_s * 1e3;
        }
        if (n_gen > 0) {
            double tg_s;
            if (run_tg(&pk, toks, (uint32_t)n_gen, &tg_s, &err) != WS_OK) goto fail;
            tg_ts[r] = n_gen / tg_s;
        }
    }

    engine_memory mem;
    if (engine_memory_get(e, &mem, &err) != WS_OK) goto fail;
    char device[256];
    if (backend == ENGINE_CPU) {
        char cpu[200];
        cpu_model(cpu, sizeof cpu);
        snprintf(device, sizeof device, "%s (%d threads)", cpu, e->opt.n_threads);
    } else {
        snprintf(device, sizeof device, "%s", mem.device_name);
    }
    stat pp = stats(pp_ts, (int)reps), tg = stats(tg_ts, (int)reps), tt = stats(ttft_ms, (int)reps);
    const double MiB = 1024.0 * 1024.0;
    const char *where = pk.logits ? "host logits + sampler" : "device sampler";
    if (json) {
        printf("{\"model\": ");
        json_str(stdout, model_path);
        printf(", \"backend\": \"%s\", \"device\": ", backend_name);
        json_str(stdout, device);
        printf(", \"device_uuid\": ");
        json_str(stdout, mem.device_uuid);
        printf(", \"threads\": %d, \"n_params\": %llu, \"token_choice\": \"%s\",\n",
               e->opt.n_threads, (unsigned long long)model_n_params(m), where);
        printf(" \"load_ms\": %.3f, \"memory\": {\"weights\": %llu, \"kv_cache\": %llu, "
               "\"scratch\": %llu, \"device_total\": %llu, \"device_free\": %llu},\n",
               load_ms, (unsigned long long)mem.weights, (unsigned long long)mem.kv_cache,
               (unsigned long long)mem.scratch, (unsigned long long)mem.device_total,
               (unsigned long long)mem.device_free);
        printf(" \"reps\": %ld, \"tests\": [", reps);
        const char *sep = "";
        if (n_prompt > 0) {
            printf("{\"name\": \"pp%ld\", \"n_prompt\": %ld, \"n_gen\": 0, \"avg_ts\": %.3f, "
                   "\"stddev_ts\": %.3f, \"ttft_ms\": %.3f, \"ttft_stddev_ms\": %.3f}",
                   n_prompt, n_prompt, pp.mean, pp.sd, tt.mean, tt.sd);
            sep = ", ";
        }
        if (n_gen > 0)
            printf("%s{\"name\": \"tg%ld\", \"n_prompt\": 0, \"n_gen\": %ld, \"avg_ts\": %.3f, "
                   "\"stddev_ts\": %.3f}",
                   sep, n_gen, n_gen, tg.mean, tg.sd);
        printf("]}\n");
    } else {
        printf("model:   %s (%u layers, %u hidden, %u vocab, %.1f M params)\n", model_path,
               m->cfg.n_layer, m->cfg.n_embd, V, model_n_params(m) / 1e6);
        printf("device:  %s, backend %s, tokens chosen by %s\n", device, backend_name, where);
        printf("load:    %.1f ms (file open + engine open)\n", load_ms);
        printf("memory:  weights %.1f MiB, KV cache %.2f MiB (%u positions), scratch %.2f MiB",
               mem.weights / MiB, mem.kv_cache / MiB, n_ctx, mem.scratch / MiB);
        if (mem.device_total)
            printf(", device %.0f MiB total, %.0f MiB free", mem.device_total / MiB,
                   mem.device_free / MiB);
        printf("\n\n| test | t/s | reps |\n|---|---|---|\n");
        if (n_prompt > 0) printf("| pp%ld | %.2f ± %.2f | %ld |\n", n_prompt, pp.mean, pp.sd, reps);
        if (n_gen > 0) printf("| tg%ld | %.2f ± %.2f | %ld |\n", n_gen, tg.mean, tg.sd, reps);
        if (n_prompt > 0)
            printf("\ntime to first token (pp%ld + first token): %.2f ± %.2f ms\n", n_prompt,
                   tt.mean, tt.sd);
    }
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
