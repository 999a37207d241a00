/* cmd_logits.c: the 'logits' subcommand. Runs a token sequence through an engine and writes the
 * logits of every position as float32 little endian, one row of n_vocab per position: positions
 * before --decode-from come from one prefill, the rest are decoded one token at a time through the
 * KV cache. Used to compare the engines with reference logits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "engine/engine.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: worker-orcd logits -m FILE --tokens \"ID ID ...\" [--decode-from K]\n"
            "                          [--backend cpu|cuda] [--threads N] -o OUT\n"
            "  writes float32 little-endian logits, one row of n_vocab per token position;\n"
            "  positions before K come from one prefill, positions from K on are decoded one\n"
            "  at a time through the KV cache (default K = number of tokens: all by prefill)\n");
}

/* Parses a whole decimal integer in [lo, hi]. */
static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* Splits whitespace-separated ids into a new array. */
static int parse_tokens(const char *s, int32_t **out, uint32_t *n) {
    size_t cap = strlen(s) / 2 + 1;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    uint32_t k = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',')
            p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p ||
            (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != ',') || v < INT32_MIN ||
            v > INT32_MAX) {
            fprintf(stderr, "worker-orcd logits: --tokens: '%.*s' is not a token id\n",
                    (int)strcspn(p, " \t\n,"), p);
            free(ids);
            return -1;
        }
        ids[k++] = (int32_t)v;
        p = end;
    }
    *out = ids;
    *n = k;
    return 0;
}

typedef struct {
    const char *model_path, *tokens_arg, *out_path, *backend_name;
    long decode_from, threads;
    engine_backend backend;
} logits_args;

/* Returns -1 when the arguments are good, else the exit status. */
static int parse_args(int argc, char **argv, logits_args *a) {
    *a = (logits_args){.backend_name = "cpu", .decode_from = -1};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "worker-orcd logits: '%s' needs a value or is unknown\n", o);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(o, "-m") == 0 || strcmp(o, "--model") == 0) {
            a->model_path = v;
        } else if (strcmp(o, "--tokens") == 0) {
            a->tokens_arg = v;
        } else if (strcmp(o, "-o") == 0 || strcmp(o, "--output") == 0) {
            a->out_path = v;
        } else if (strcmp(o, "--backend") == 0) {
            a->backend_name = v;
        } else if (strcmp(o, "--decode-from") == 0) {
            if (!parse_long(v, 0, INT32_MAX, &a->decode_from)) {
                fprintf(stderr, "worker-orcd logits: --decode-from '%s' is not a count >= 0\n", v);
                return 2;
            }
        } else if (strcmp(o, "--threads") == 0) {
            if (!parse_long(v, 1, 4096, &a->threads)) {
                fprintf(stderr, "worker-orcd logits: --threads '%s' is not in [1, 4096]\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "worker-orcd logits: unknown option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (!a->model_path || !a->tokens_arg || !a->out_path) {
        fprintf(stderr, "worker-orcd logits: -m, --tokens and -o are required\n");
        usage(stderr);
        return 2;
    }
    if (!engine_backend_from_name(a->backend_name, &a->backend)) {
        fprintf(stderr, "worker-orcd logits: --backend '%s' is not cpu or cuda\n", a->backend_name);
        return 2;
    }
    return -1;
}

int cmd_logits(int argc, char **argv) {
    logits_args a;
    int arc = parse_args(argc, argv, &a);
    if (arc >= 0) return arc;
    const char *out_path = a.out_path, *backend_name = a.backend_name;
    int32_t *ids = NULL;
    uint32_t n = 0;
    if (parse_tokens(a.tokens_arg, &ids, &n) != 0) return 2;
    if (n == 0) {
        fprintf(stderr, "worker-orcd logits: --tokens holds no token ids\n");
        free(ids);
        return 2;
    }
    uint32_t k = a.decode_from < 0 ? n : (uint32_t)a.decode_from;
    if (k > n) {
        fprintf(stderr, "worker-orcd logits: --decode-from %u exceeds the %u tokens given\n", k, n);
        free(ids);
        return 2;
    }
    if (!engine_backend_available(a.backend)) {
        fprintf(stderr,
                "worker-orcd logits: backend '%s' is not available (not built into this binary "
                "or no device present)\n",
                backend_name);
        free(ids);
        return 1;
    }

    int rc = 1;
    ws_error err = {{0}};
    qwen2_model *m = NULL;
    engine *e = NULL;
    engine_seq *s = NULL;
    float *logits = NULL;
    FILE *out = NULL;
    if (model_open(a.model_path, &m, &err) != WS_OK) goto fail;
    if (n > m->cfg.n_ctx_train) {
        fprintf(stderr, "worker-orcd logits: %u tokens exceed the model's context length %u\n", n,
                m->cfg.n_ctx_train);
        goto done;
    }
    const uint32_t V = m->cfg.n_vocab;
    engine_options opt = {.n_threads = (int)a.threads, .max_seqs = 1, .max_ctx = n};
    if (engine_open(a.backend, m, &opt, &e, &err) != WS_OK) goto fail;
    if (engine_seq_new(e, n, &s, &err) != WS_OK) goto fail;
    logits = malloc((size_t)n * V * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "worker-orcd logits: out of memory for %u x %u logits\n", n, V);
        goto done;
    }
    if (k > 0 && engine_prefill(s, ids, k, true, logits, &err) != WS_OK) goto fail;
    for (uint32_t t = k; t < n; t++)
        if (engine_decode(&s, &ids[t], 1, logits + (size_t)t * V, &err) != WS_OK) goto fail;

    out = fopen(out_path, "wb");
    if (!out) {
        fprintf(stderr, "worker-orcd logits: cannot open %s: %s\n", out_path, strerror(errno));
        goto done;
    }
    bool ok = fwrite(logits, sizeof *logits, (size_t)n * V, out) == (size_t)n * V;
    if (fclose(out) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "worker-orcd logits: writing %s failed: %s\n", out_path, strerror(errno));
        goto done;
    }
    fprintf(stderr, "wrote %u rows x %u logits to %s (%u by prefill, %u decoded, backend %s)\n", n,
            V, out_path, k, n - k, backend_name);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "worker-orcd logits: %s\n", err.msg);
done:
    engine_seq_free(s);
    engine_free(e);
    model_free(m);
    free(logits);
    free(ids);
    return rc;
}
