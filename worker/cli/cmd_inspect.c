/* cmd_inspect.c: the 'inspect' subcommand. Prints a GGUF file's metadata (large arrays summarised),
 * its tensor table, the block-type census, file and parameter sizes and the qwen2 config that
 * model_bind derives, as text or as one JSON object (--json). A file that does not parse or bind
 * exits 1 with the message on stderr (the JSON still carries it under "error"). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "model/gguf.h"
#include "model/model.h"
#include "model/quant.h"

#define ARR_FULL 16     /* arrays up to this many elements are printed whole */
#define ARR_HEAD 8      /* larger ones: this many leading elements */
#define TEXT_STR_MAX 96 /* text output: bytes of a string shown before "... (N bytes)" */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when it is not one. */
static size_t utf8_len(const uint8_t *p, uint64_t n) {
    if (p[0] < 0x80) return 1;
    size_t len = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || p[0] > 0xF4 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (len == 3 && p[0] == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
    if (len == 3 && p[0] == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
    if (len == 4 && p[0] == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
    if (len == 4 && p[0] == 0xF4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
    return len;
}

static bool utf8_valid(const char *s, uint64_t n) {
    const uint8_t *p = (const uint8_t *)s;
    for (uint64_t i = 0; i < n;) {
        size_t k = utf8_len(p + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

/* ---- JSON ---- */

/* A JSON string of valid UTF-8 bytes s: quotes, backslashes and control bytes escaped. */
static void json_raw_str(FILE *o, const char *s, uint64_t n) {
    fputc('"', o);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '"' || c == '\\')
            fprintf(o, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", o);
        else if (c == '\t')
            fputs("\\t", o);
        else if (c == '\r')
            fputs("\\r", o);
        else if (c < 0x20 || c == 0x7F)
            fprintf(o, "\\u%04x", c);
        else
            fputc(c, o);
    }
    fputc('"', o);
}

static void hex_str(FILE *o, const char *s, uint64_t n) {
    fputc('"', o);
    for (uint64_t i = 0; i < n; i++)
        fprintf(o, "%02x", (uint8_t)s[i]);
    fputc('"', o);
}

/* A byte string as a JSON value: a string when it is valid UTF-8, else {"hex": "..."} so that no
 * byte is lost or altered. */
static void json_bytes(FILE *o, const char *s, uint64_t n) {
    if (utf8_valid(s, n)) {
        json_raw_str(o, s, n);
        return;
    }
    fputs("{\"hex\": ", o);
    hex_str(o, s, n);
    fputc('}', o);
}

/* A name used as an object key or field (keys, tensor names): invalid UTF-8 becomes "hex:...". */
static void json_name(FILE *o, const char *s) {
    uint64_t n = strlen(s);
    if (utf8_valid(s, n)) {
        json_raw_str(o, s, n);
        return;
    }
    fputs("\"hex:", o);
    for (uint64_t i = 0; i < n; i++)
        fprintf(o, "%02x", (uint8_t)s[i]);
    fputc('"', o);
}

static void json_double(FILE *o, double v, bool f32) {
    if (isnan(v))
        fputs("\"nan\"", o);
    else if (isinf(v))
        fputs(v > 0 ? "\"inf\"" : "\"-inf\"", o);
    else
        fprintf(o, f32 ? "%.9g" : "%.17g", v);
}

/* One element of a non-string value (p: its little-endian bytes). */
static void print_scalar(FILE *o, gguf_type t, const uint8_t *p, bool json) {
    uint64_t u = 0;
    memcpy(&u, p, gguf_type_size(t)); /* little-endian host, as the writer asserts */
    switch (t) {
    case GGUF_TYPE_UINT8:
        fprintf(o, "%u", (unsigned)(uint8_t)u);
        break;
    case GGUF_TYPE_INT8:
        fprintf(o, "%d", (int)(int8_t)u);
        break;
    case GGUF_TYPE_UINT16:
        fprintf(o, "%u", (unsigned)(uint16_t)u);
        break;
    case GGUF_TYPE_INT16:
        fprintf(o, "%d", (int)(int16_t)u);
        break;
    case GGUF_TYPE_UINT32:
        fprintf(o, "%" PRIu32, (uint32_t)u);
        break;
    case GGUF_TYPE_INT32:
        fprintf(o, "%" PRId32, (int32_t)u);
        break;
    case GGUF_TYPE_UINT64:
        fprintf(o, "%" PRIu64, u);
        break;
    case GGUF_TYPE_INT64:
        fprintf(o, "%" PRId64, (int64_t)u);
        break;
    case GGUF_TYPE_BOOL:
        fputs(u ? "true" : "false", o);
        break;
    case GGUF_TYPE_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        if (json)
            json_double(o, f, true);
        else
            fprintf(o, "%.9g", f);
        break;
    }
    case GGUF_TYPE_FLOAT64: {
        double d;
        memcpy(&d, p, 8);
        if (json)
            json_double(o, d, false);
        else
            fprintf(o, "%.17g", d);
        break;
    }
    default:
        fputs("?", o);
    }
}

/* ---- text ---- */

/* A byte string for the terminal: C escapes for control and invalid bytes, long ones shortened
 * with the full length stated. */
static void text_str(FILE *o, const char *s, uint64_t n) {
    uint64_t show = n > TEXT_STR_MAX ? TEXT_STR_MAX : n;
    const uint8_t *p = (const uint8_t *)s;
    fputc('"', o);
    for (uint64_t i = 0; i < show;) {
        size_t k = utf8_len(p + i, n - i);
        if (k == 1 && p[i] >= 0x20 && p[i] != 0x7F && p[i] != '"' && p[i] != '\\')
            fputc(p[i], o);
        else if (p[i] == '\n')
            fputs("\\n", o);
        else if (p[i] == '"' || p[i] == '\\')
            fprintf(o, "\\%c", p[i]);
        else if (k > 1)
            fwrite(p + i, 1, k, o);
        else
            fprintf(o, "\\x%02x", p[i]);
        i += k ? k : 1;
    }
    fputc('"', o);
    if (show < n) fprintf(o, "... (%" PRIu64 " bytes)", n);
}

/* True when s is printable ASCII without spaces or quotes (printed as is). */
static bool plain_name(const char *s) {
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || *s == '"' || *s == '\\') return false;
    return true;
}

/* ---- the report ---- */

typedef struct {
    const char *path;
    const gguf_file *f;
    const qwen2_model *m; /* NULL when binding failed */
    const char *error;    /* bind error, or NULL */
    uint64_t census[64];  /* tensors per ggml type id (supported ids are < 64) */
    uint64_t n_params;
} report;

static void value_elem(FILE *o, const gguf_file *f, uint64_t i, const gguf_value *v, uint64_t j,
                       bool json) {
    if (v->elem_type == GGUF_TYPE_STRING) {
        const char *s;
        uint64_t len;
        gguf_kv_arr_str(f, i, j, &s, &len);
        if (json)
            json_bytes(o, s, len);
        else
            text_str(o, s, len);
    } else {
        print_scalar(o, v->elem_type, (const uint8_t *)v->data + j * gguf_type_size(v->elem_type),
                     json);
    }
}

static void json_metadata(FILE *o, const gguf_file *f) {
    fputs("  \"metadata\": {", o);
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        gguf_value v;
        gguf_kv_value(f, i, &v);
        fputs(i ? ",\n    " : "\n    ", o);
        json_name(o, gguf_kv_key(f, i));
        fprintf(o, ": {\"type\": \"%s\", ", gguf_type_name(v.type));
        if (v.type == GGUF_TYPE_STRING) {
            fputs("\"value\": ", o);
            json_bytes(o, v.data, v.len);
        } else if (v.type != GGUF_TYPE_ARRAY) {
            fputs("\"value\": ", o);
            print_scalar(o, v.type, v.data, true);
        } else {
            bool whole = v.n <= ARR_FULL;
            fprintf(o, "\"elem_type\": \"%s\", \"count\": %" PRIu64 ", \"%s\": [",
                    gguf_type_name(v.elem_type), v.n, whole ? "values" : "head");
            for (uint64_t j = 0; j < (whole ? v.n : ARR_HEAD); j++) {
                if (j) fputs(", ", o);
                value_elem(o, f, i, &v, j, true);
            }
            fputc(']', o);
        }
        fputc('}', o);
    }
    fputs("\n  },\n", o);
}

static void json_report(FILE *o, const report *r) {
    const gguf_file *f = r->f;
    fputs("{\n  \"file\": ", o);
    json_bytes(o, r->path, strlen(r->path));
    fprintf(o,
            ",\n  \"file_size\": %zu,\n  \"version\": %u,\n  \"alignment\": %u,\n"
            "  \"data_offset\": %" PRIu64 ",\n  \"n_kv\": %" PRIu64 ",\n",
            gguf_file_size(f), gguf_version(f), gguf_alignment(f), gguf_data_offset(f),
            gguf_n_kv(f));
    json_metadata(o, f);
    fprintf(o, "  \"n_tensors\": %" PRIu64 ",\n  \"tensors\": [", gguf_n_tensors(f));
    uint64_t data_bytes = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", o);
        json_name(o, t->name);
        fprintf(o, ", \"type\": \"%s\", \"shape\": [", ggml_type_name(t->type));
        for (uint32_t d = 0; d < t->n_dims; d++)
            fprintf(o, "%s%" PRId64, d ? ", " : "", t->ne[d]);
        fprintf(o, "], \"offset\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", t->offset, t->n_bytes);
        data_bytes += t->n_bytes;
    }
    fputs("\n  ],\n  \"tensor_types\": {", o);
    bool first = true;
    for (unsigned t = 0; t < 64; t++)
        if (r->census[t]) {
            fprintf(o, "%s\"%s\": %" PRIu64, first ? "" : ", ", ggml_type_name(t), r->census[t]);
            first = false;
        }
    fprintf(o, "},\n  \"n_params\": %" PRIu64 ",\n  \"tensor_bytes\": %" PRIu64 ",\n", r->n_params,
            data_bytes);
    if (r->m) {
        const qwen2_config *c = &r->m->cfg;
        fprintf(o,
                "  \"config\": {\"architecture\": \"qwen2\", \"n_layer\": %u, \"n_embd\": %u, "
                "\"n_ff\": %u, \"n_head\": %u, \"n_head_kv\": %u, \"head_dim\": %u, "
                "\"n_vocab\": %u, \"n_ctx_train\": %u, \"rms_eps\": ",
                c->n_layer, c->n_embd, c->n_ff, c->n_head, c->n_head_kv, c->head_dim, c->n_vocab,
                c->n_ctx_train);
        json_double(o, c->rms_eps, true);
        fputs(", \"rope_base\": ", o);
        json_double(o, c->rope_base, true);
        fprintf(o, ", \"tied_output\": %s, \"n_params\": %" PRIu64 "},\n",
                c->tied_output ? "true" : "false", model_n_params(r->m));
        fputs("  \"error\": null\n}\n", o);
    } else {
        fputs("  \"config\": null,\n  \"error\": ", o);
        json_bytes(o, r->error, strlen(r->error));
        fputs("\n}\n", o);
    }
}

static void text_report(FILE *o, const report *r) {
    const gguf_file *f = r->f;
    fprintf(o, "file: %s\n  %zu bytes, GGUF v%u, alignment %u, data at offset %" PRIu64 "\n",
            r->path, gguf_file_size(f), gguf_version(f), gguf_alignment(f), gguf_data_offset(f));
    fprintf(o, "\nmetadata (%" PRIu64 " keys):\n", gguf_n_kv(f));
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        gguf_value v;
        gguf_kv_value(f, i, &v);
        const char *key = gguf_kv_key(f, i);
        fputs("  ", o);
        if (plain_name(key))
            fputs(key, o);
        else
            text_str(o, key, strlen(key));
        if (v.type == GGUF_TYPE_STRING) {
            fputs(" string ", o);
            text_str(o, v.data, v.len);
        } else if (v.type != GGUF_TYPE_ARRAY) {
            fprintf(o, " %s ", gguf_type_name(v.type));
            print_scalar(o, v.type, v.data, false);
        } else {
            bool whole = v.n <= ARR_FULL;
            fprintf(o, " array of %" PRIu64 " %s: [", v.n, gguf_type_name(v.elem_type));
            for (uint64_t j = 0; j < (whole ? v.n : ARR_HEAD); j++) {
                if (j) fputs(", ", o);
                value_elem(o, f, i, &v, j, false);
            }
            fputs(whole ? "]" : ", ...]", o);
        }
        fputc('\n', o);
    }
    fprintf(o, "\ntensors (%" PRIu64 "):\n  %-40s %-5s %-24s %12s %12s\n", gguf_n_tensors(f),
            "name", "type", "shape", "offset", "bytes");
    uint64_t data_bytes = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char shape[96];
        int n = snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRId64, d ? ", " : "",
                          t->ne[d]);
        snprintf(shape + n, sizeof shape - (size_t)n, "]");
        if (plain_name(t->name))
            fprintf(o, "  %-40s", t->name);
        else {
            fputs("  ", o);
            text_str(o, t->name, strlen(t->name));
        }
        fprintf(o, " %-5s %-24s %12" PRIu64 " %12" PRIu64 "\n", ggml_type_name(t->type), shape,
                t->offset, t->n_bytes);
        data_bytes += t->n_bytes;
    }
    fputs("\nblock types:", o);
    for (unsigned t = 0; t < 64; t++)
        if (r->census[t]) fprintf(o, " %s x%" PRIu64, ggml_type_name(t), r->census[t]);
    fprintf(o, "\nparameters: %" PRIu64 " in %" PRIu64 " tensor bytes (%.3f bits per weight)\n",
            r->n_params, data_bytes,
            r->n_params ? 8.0 * (double)data_bytes / (double)r->n_params : 0.0);
    if (!r->m) {
        fprintf(o, "\nmodel: not usable: %s\n", r->error);
        return;
    }
    const qwen2_config *c = &r->m->cfg;
    fprintf(o,
            "\nmodel: qwen2, %u layers, n_embd %u, n_ff %u, heads %u (kv %u, head dim %u), "
            "vocab %u, trained context %u\n  rms_eps %g, rope base %g, output %s, %" PRIu64
            " parameters bound\n",
            c->n_layer, c->n_embd, c->n_ff, c->n_head, c->n_head_kv, c->head_dim, c->n_vocab,
            c->n_ctx_train, c->rms_eps, c->rope_base,
            c->tied_output ? "tied to token_embd" : "separate", model_n_params(r->m));
}

static int usage(FILE *o) {
    fprintf(o, "usage: worker-orcd inspect FILE [--json]\n"
               "  Prints a GGUF file's metadata, tensor table, block-type census, sizes and the\n"
               "  qwen2 config derived from it; --json prints one JSON object instead.\n"
               "  Exits 1 (message on stderr) when the file is malformed or not a usable model.\n");
    return o == stdout ? 0 : 2;
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage(stdout);
        else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "worker-orcd inspect: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        } else
            path = argv[i];
    }
    if (!path) return usage(stderr);

    gguf_file *f = NULL;
    ws_error err;
    ws_status st = gguf_open(path, &f, &err);
    if (st != WS_OK) {
        fprintf(stderr, "worker-orcd inspect: %s (%s)\n", err.msg, ws_strerror(st));
        return 1;
    }
    report r = {.path = path, .f = f};
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if ((unsigned)t->type < 64) r.census[t->type]++; /* supported type ids are all < 64 */
        r.n_params += t->n_elems;
    }
    qwen2_model *m = NULL;
    ws_error berr;
    ws_status bst = model_bind(f, &m, &berr); /* on success m owns f */
    if (bst == WS_OK)
        r.m = m;
    else
        r.error = berr.msg;
    if (json)
        json_report(stdout, &r);
    else
        text_report(stdout, &r);
    int rc = 0;
    if (fflush(stdout) != 0) {
        fprintf(stderr, "worker-orcd inspect: writing the report failed\n");
        rc = 1;
    }
    if (bst == WS_OK) {
        model_free(m);
    } else {
        fprintf(stderr, "worker-orcd inspect: %s: not a usable model: %s (%s)\n", path, berr.msg,
                ws_strerror(bst));
        gguf_close(f);
        rc = 1;
    }
    return rc;
}
