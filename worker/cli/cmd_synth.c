/* cmd_synth.c: the 'synth' subcommand: writes a qwen2 model with deterministic random weights
 * and a given vocabulary (see model/synth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "model/synth.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: worker-orcd synth --vocab VOCAB.gguf -o OUT.gguf [options]\n\n"
            "Writes a qwen2 model with deterministic random weights and VOCAB's tokenizer.\n"
            "Defaults are the shape of Qwen2.5-0.5B.\n"
            "  --layers N      layers (24)\n"
            "  --hidden N      hidden size (896)\n"
            "  --ffn N         feed-forward size (4864)\n"
            "  --heads N       query heads (14)\n"
            "  --kv-heads N    key/value heads (2)\n"
            "  --ctx N         context length (32768)\n"
            "  --type T        f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m q4_k q5_k q6_k\n"
            "                  q4_k_m q5_k_m (f16); chosen per tensor as 'quantize' does\n"
            "  --seed N        random seed (1)\n"
            "  --tied          no output.weight, the head reuses token_embd (default)\n"
            "  --untied        a separate output.weight\n"
            "  --threads N     worker threads (one per CPU)\n");
}

static bool parse_int(const char *flag, const char *s, long long max, long long *out) {
    char *end;
    const long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0 || v > max) {
        fprintf(stderr, "worker-orcd synth: %s '%s' is not an integer in 0..%lld\n", flag, s, max);
        return false;
    }
    *out = v;
    return true;
}

int cmd_synth(int argc, char **argv) {
    synth_params p;
    synth_default_params(&p);
    const char *vocab = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--tied") == 0 || strcmp(a, "--untied") == 0) {
            p.tied = strcmp(a, "--tied") == 0;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "worker-orcd synth: '%s' needs a value or is unknown\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long long n = 0;
        int *field = NULL;
        if (strcmp(a, "--vocab") == 0) {
            vocab = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--type") == 0) {
            if (!convert_target_from_name(v, &p.target)) {
                fprintf(stderr, "worker-orcd synth: unknown --type '%s' (one of: %s)\n", v,
                        convert_target_names());
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_int(a, v, (1ll << 62), &n)) return 2;
            p.seed = (uint64_t)n;
        } else if (strcmp(a, "--layers") == 0) {
            field = &p.n_layers;
        } else if (strcmp(a, "--hidden") == 0) {
            field = &p.hidden;
        } else if (strcmp(a, "--ffn") == 0) {
            field = &p.ffn;
        } else if (strcmp(a, "--heads") == 0) {
            field = &p.heads;
        } else if (strcmp(a, "--kv-heads") == 0) {
            field = &p.kv_heads;
        } else if (strcmp(a, "--ctx") == 0) {
            field = &p.ctx;
        } else if (strcmp(a, "--threads") == 0) {
            field = &p.threads;
        } else {
            fprintf(stderr, "worker-orcd synth: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (field) {
            if (!parse_int(a, v, 1 << 30, &n)) return 2;
            *field = (int)n;
        }
    }
    if (!vocab || !out) {
        fprintf(stderr, "worker-orcd synth: --vocab and -o are required\n");
        usage(stderr);
        return 2;
    }
    ws_error err = {{0}};
    const ws_status st = synth_write(&p, vocab, out, &err);
    if (st != WS_OK) {
        fprintf(stderr, "worker-orcd synth: %s\n", err.msg);
        return st == WS_ERR_INVALID_ARG ? 2 : 1;
    }
    printf(
        "wrote %s: qwen2, %d layers, hidden %d, ffn %d, heads %d/%d, ctx %d, %s, %s, seed %llu\n",
        out, p.n_layers, p.hidden, p.ffn, p.heads, p.kv_heads, p.ctx, p.target.name,
        p.tied ? "tied" : "untied", (unsigned long long)p.seed);
    return 0;
}
