/* cmd_tokenize.c: the 'tokenize' subcommand: UTF-8 text on stdin to token ids on stdout.
 *
 *   worker-orcd tokenize -m FILE [--special] [--split MARKER] [--bench N]
 *   worker-orcd tokenize -m FILE --chat [--system TEXT]
 *
 * The input is taken byte for byte (a trailing newline is text too). Ids are printed separated by
 * spaces, one line per input. --split cuts the input at every line equal to MARKER (the newline
 * before the marker line belongs to the separator) and prints one line per piece. --chat renders
 * stdin as the user turn of a ChatML conversation with the generation prompt. --bench encodes the
 * input (each piece, with --split) once untimed, then N times, and prints the tokenizer's load time
 * and the encode throughput instead of ids. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "text/chat.h"
#include "text/tokenizer.h"

typedef struct {
    const char *model, *split, *system;
    bool special, chat;
    long bench;
} tok_opts;

static void usage(FILE *out) {
    fprintf(out, "usage: worker-orcd tokenize -m FILE [--special] [--split MARKER] [--bench N]\n"
                 "       worker-orcd tokenize -m FILE --chat [--system TEXT]\n"
                 "Reads UTF-8 text from stdin and prints its token ids.\n"
                 "  -m, --model FILE  GGUF file with the vocabulary\n"
                 "  --special         match added tokens (<|im_start|>, ...) in the text\n"
                 "  --split MARKER    one line of ids per piece between lines equal to MARKER\n"
                 "  --chat            stdin is a user message; print the ids of the ChatML prompt\n"
                 "  --system TEXT     system prompt for --chat (default: Qwen's)\n"
                 "  --bench N         encode N times; print load time and throughput\n");
}

static double clock_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void) {
    return clock_s(CLOCK_MONOTONIC);
}

/* Reads all of stdin into a malloc'd, NUL-terminated buffer (the loop ends with n < cap). */
static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n, stdin);
        n += k;
        if (n < cap) break;
        char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            return NULL;
        }
        buf = p;
        cap *= 2;
    }
    if (!buf || ferror(stdin)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Encodes one piece: prints its ids, or (bench) only counts them. */
typedef struct {
    const tokenizer *t;
    bool special, print;
    size_t n_ids;
} piece_ctx;

static int encode_piece(piece_ctx *c, const char *s, size_t len) {
    int32_t *ids;
    size_t n;
    ws_error err = {{0}};
    if (tokenizer_encode(c->t, s, len, c->special, &ids, &n, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd tokenize: %s\n", err.msg);
        return 1;
    }
    if (c->print) {
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    c->n_ids += n;
    free(ids);
    return 0;
}

/* Encodes the whole input, or with a marker each piece between lines equal to it (the newline
 * before a marker line belongs to the separator; text after the last marker is a last piece). */
static int encode_input(piece_ctx *c, const char *s, size_t len, const char *marker) {
    if (!marker) return encode_piece(c, s, len);
    size_t mlen = strlen(marker), start = 0, ls = 0;
    int rc = 0;
    while (ls < len && rc == 0) {
        const char *nl = memchr(s + ls, '\n', len - ls);
        size_t le = nl ? (size_t)(nl - s) : len;
        if (le - ls == mlen && memcmp(s + ls, marker, mlen) == 0) {
            rc = encode_piece(c, s + start, ls > start ? ls - 1 - start : 0);
            start = le + 1;
        }
        ls = le + 1;
    }
    if (rc == 0 && start < len) rc = encode_piece(c, s + start, len - start);
    return rc;
}

static int run_bench(const tokenizer *t, const char *s, size_t len, const tok_opts *o,
                     double load_s, double load_cpu_s) {
    piece_ctx c = {t, o->special, false, 0};
    double t0 = 0, c0 = 0;
    for (long r = -1; r < o->bench; r++) { /* round -1 is an untimed warm-up */
        if (r == 0) {
            t0 = now_s();
            c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        }
        c.n_ids = 0;
        if (encode_input(&c, s, len, o->split)) return 1;
    }
    double dt = now_s() - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    double mb = (double)len * (double)o->bench / 1e6;
    printf("load_ms %.1f\nload_cpu_ms %.1f\nbytes %zu\nids %zu\nrepeats %ld\nseconds %.4f\n"
           "cpu_seconds %.4f\nMB_per_s %.2f\nMB_per_cpu_s %.2f\n",
           1e3 * load_s, 1e3 * load_cpu_s, len, c.n_ids, o->bench, dt, dc, mb / dt, mb / dc);
    return 0;
}

static int parse_args(int argc, char **argv, tok_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val)
            o->model = argv[++i];
        else if (!strcmp(a, "--split") && has_val)
            o->split = argv[++i];
        else if (!strcmp(a, "--system") && has_val)
            o->system = argv[++i];
        else if (!strcmp(a, "--bench") && has_val) {
            char *end;
            o->bench = strtol(argv[++i], &end, 10);
            if (*end || o->bench < 1) {
                fprintf(stderr, "worker-orcd tokenize: --bench '%s': expected a count >= 1\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--special"))
            o->special = true;
        else if (!strcmp(a, "--chat"))
            o->chat = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        } else {
            fprintf(stderr, "worker-orcd tokenize: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o->model) {
        fprintf(stderr, "worker-orcd tokenize: -m FILE is required\n");
        return 2;
    }
    if (o->system && !o->chat) {
        fprintf(stderr, "worker-orcd tokenize: --system needs --chat\n");
        return 2;
    }
    if (o->chat && (o->split || o->bench)) {
        fprintf(stderr, "worker-orcd tokenize: --chat does not combine with --split or --bench\n");
        return 2;
    }
    return 0;
}

/* Renders stdin as a user turn and prints the prompt's ids. */
static int print_chat(const gguf_file *f, const tokenizer *t, const char *text, size_t len,
                      const char *system) {
    ws_error err = {{0}};
    if (memchr(text, '\0', len)) {
        fprintf(stderr, "worker-orcd tokenize: --chat input contains a NUL byte\n");
        return 1;
    }
    if (chat_check_template(f, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd tokenize: %s\n", err.msg);
        return 1;
    }
    chat_message msgs[2] = {{"system", system}, {"user", text}};
    size_t skip = system ? 0 : 1;
    char *prompt = NULL;
    if (chat_render(msgs + skip, 2 - skip, 1, &prompt, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd tokenize: %s\n", err.msg);
        return 1;
    }
    piece_ctx c = {t, true, true, 0};
    int rc = encode_piece(&c, prompt, strlen(prompt));
    free(prompt);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    tok_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    ws_error err = {{0}};
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    char *text = NULL;
    size_t len = 0;
    rc = 1;
    if (gguf_open(o.model, &f, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd tokenize: %s: %s\n", o.model, err.msg);
        goto done;
    }
    /* The tokenizer's own load time, wall and CPU, the file already parsed. */
    double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (tokenizer_load(f, &t, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd tokenize: %s: %s\n", o.model, err.msg);
        goto done;
    }
    double load_s = now_s() - t0, load_cpu_s = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    text = read_stdin(&len);
    if (!text) {
        fprintf(stderr, "worker-orcd tokenize: cannot read stdin\n");
        goto done;
    }
    if (o.chat)
        rc = print_chat(f, t, text, len, o.system);
    else if (o.bench)
        rc = run_bench(t, text, len, &o, load_s, load_cpu_s);
    else {
        piece_ctx c = {t, o.special, true, 0};
        rc = encode_input(&c, text, len, o.split);
    }
done:
    free(text);
    tokenizer_free(t);
    gguf_close(f);
    return rc;
}
