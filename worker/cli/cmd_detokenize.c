/* cmd_detokenize.c: the 'detokenize' subcommand: token ids on stdin to bytes on stdout.
 *
 *   worker-orcd detokenize -m FILE [--special]
 *
 * Ids are decimal integers separated by whitespace. The bytes are written exactly as the tokens
 * decode (no newline is added); special tokens are left out unless --special. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "text/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out, "usage: worker-orcd detokenize -m FILE [--special]\n"
                 "Reads token ids from stdin and writes their bytes to stdout.\n"
                 "  -m, --model FILE  GGUF file with the vocabulary\n"
                 "  --special         show special tokens (<|im_end|>, ...)\n");
}

/* Reads whitespace-separated ids from stdin into a malloc'd array. */
static int read_ids(int32_t **out, size_t *n_out) {
    size_t n = 0, cap = 0, k = 0;
    int32_t *ids = NULL;
    char word[32];
    int c, rc = 1;
    for (;;) {
        c = getchar();
        if (c != EOF && !isspace(c)) {
            if (k + 1 >= sizeof word) {
                word[k] = '\0';
                fprintf(stderr, "worker-orcd detokenize: '%s...' is not a token id\n", word);
                goto fail;
            }
            word[k++] = (char)c;
            continue;
        }
        if (k > 0) {
            word[k] = '\0';
            char *end;
            errno = 0;
            long v = strtol(word, &end, 10);
            if (*end || errno || v < 0 || v > INT32_MAX) {
                fprintf(stderr, "worker-orcd detokenize: '%s' is not a token id\n", word);
                goto fail;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                int32_t *p = realloc(ids, cap * sizeof *p);
                if (!p) {
                    fprintf(stderr, "worker-orcd detokenize: out of memory\n");
                    goto fail;
                }
                ids = p;
            }
            ids[n++] = (int32_t)v;
            k = 0;
        }
        if (c == EOF) break;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "worker-orcd detokenize: cannot read stdin\n");
        goto fail;
    }
    *out = ids;
    *n_out = n;
    return 0;
fail:
    free(ids);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL;
    bool special = false;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--special"))
            special = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "worker-orcd detokenize: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "worker-orcd detokenize: -m FILE is required\n");
        return 2;
    }
    ws_error err = {{0}};
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    char *bytes = NULL;
    int rc = 1;
    if (gguf_open(model, &f, &err) != WS_OK || tokenizer_load(f, &t, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd detokenize: %s: %s\n", model, err.msg);
        goto done;
    }
    if (read_ids(&ids, &n)) goto done;
    if (tokenizer_decode(t, ids, n, special, &bytes, &len, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd detokenize: %s\n", err.msg);
        goto done;
    }
    if (fwrite(bytes, 1, len, stdout) != len || fflush(stdout) != 0) {
        fprintf(stderr, "worker-orcd detokenize: cannot write stdout\n");
        goto done;
    }
    rc = 0;
done:
    free(bytes);
    free(ids);
    tokenizer_free(t);
    gguf_close(f);
    return rc;
}
