/* cmd_quantize.c: the 'quantize' subcommand. Converts every tensor of a GGUF model to a target
 * block type (or mix), copying all metadata, and prints the RMS error of the result per block
 * type. With --compare it measures an existing file against its unquantized original instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/parallel.h"
#include "cli/commands.h"
#include "model/convert.h"
#include "model/gguf.h"

typedef struct {
    int tensors;
    uint64_t elems;
    double sq_err, sq_w;
} type_stats;

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: worker-orcd quantize IN.gguf OUT.gguf TYPE [--threads N]\n"
        "       worker-orcd quantize --compare FILE.gguf ORIGINAL.gguf\n\n"
        "TYPE: %s\n"
        "Norms and biases stay F32; below 8 bits the output matrix gets Q6_K; q2_k, q3_k_m,\n"
        "q4_k_m and q5_k_m give some layer matrices other types, as llama.cpp's mixes of those\n"
        "names do (q4_k and q5_k are plain). Rows that a k-quant block does not divide fall\n"
        "back to Q5_0 (Q4_K), Q5_1 (Q5_K), Q8_0 (Q6_K) or Q4_0 (Q2_K, Q3_K). Prints, per block\n"
        "type, the RMS error of the dequantized weights against the input.\n"
        "--compare prints the same table for FILE's tensors against ORIGINAL's.\n",
        convert_target_names());
}

static void print_stats(const type_stats *st) {
    printf("%-6s %8s %12s %12s %12s %10s\n", "type", "tensors", "elements", "rms_error",
           "rms_weight", "relative");
    for (uint32_t t = 0; t <= GGML_TYPE_BF16; t++) {
        if (st[t].tensors == 0) continue;
        const double n = (double)st[t].elems;
        const double e = sqrt(st[t].sq_err / n), w = sqrt(st[t].sq_w / n);
        printf("%-6s %8d %12llu %12.4e %12.4e %10.4e\n", ggml_type_name(t), st[t].tensors,
               (unsigned long long)st[t].elems, e, w, w > 0 ? e / w : 0.0);
    }
}

/* The tensor as F32 in a new buffer. */
static float *tensor_f32(const gguf_tensor *t, ws_error *err) {
    float *out = malloc(t->n_elems * sizeof(float));
    if (!out) {
        ws_fail(err, WS_ERR_NOMEM, "tensor '%s': out of memory for %llu elements", t->name,
                (unsigned long long)t->n_elems);
        return NULL;
    }
    const int64_t cols = t->ne[0], rows = (int64_t)(t->n_elems / (uint64_t)cols);
    const uint64_t rb = t->n_bytes / (uint64_t)rows;
    for (int64_t r = 0; r < rows; r++)
        quant_dequantize_row(t->type, (const uint8_t *)t->data + (uint64_t)r * rb, out + r * cols,
                             cols);
    return out;
}

static double sum_sq(const float *x, uint64_t n) {
    double s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

static int compare_files(const char *path, const char *orig_path) {
    gguf_file *f = NULL, *o = NULL;
    ws_error err = {{0}};
    float *a = NULL, *b = NULL;
    int rc = 1;
    type_stats st[GGML_TYPE_BF16 + 1] = {{0}};
    if (gguf_open(path, &f, &err) != WS_OK || gguf_open(orig_path, &o, &err) != WS_OK) goto fail;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i), *u = gguf_find_tensor(o, t->name);
        if (!u || u->n_elems != t->n_elems) {
            ws_fail(&err, WS_ERR_NOT_FOUND, "tensor '%s' %s in %s", t->name,
                    u ? "has another shape" : "is missing", orig_path);
            goto fail;
        }
        if (!(a = tensor_f32(t, &err)) || !(b = tensor_f32(u, &err))) goto fail;
        type_stats *s = &st[t->type];
        s->tensors++;
        s->elems += t->n_elems;
        s->sq_w += sum_sq(b, t->n_elems);
        for (uint64_t k = 0; k < t->n_elems; k++)
            s->sq_err += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
        free(a);
        free(b);
        a = b = NULL;
    }
    print_stats(st);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "worker-orcd quantize: %s\n", err.msg);
    free(a);
    free(b);
    gguf_close(f);
    gguf_close(o);
    return rc;
}

/* {arch}.NAME as an integer in 1..limit, or 0. */
static int arch_int(const gguf_file *f, const char *name, int64_t limit) {
    const char *arch;
    uint64_t len;
    int64_t n = 0;
    if (gguf_get_str(f, "general.architecture", &arch, &len, NULL) != WS_OK || len >= 64) return 0;
    char key[128];
    snprintf(key, sizeof key, "%.*s.%s", (int)len, arch, name);
    if (gguf_get_int(f, key, &n, NULL) != WS_OK || n < 1 || n > limit) return 0;
    return (int)n;
}

/* Layer count ({arch}.block_count, else one more than the highest blk.N), query heads per KV
 * head, and whether there is a separate output matrix. */
static convert_model model_shape(const gguf_file *f) {
    convert_model m = {arch_int(f, "block_count", 100000), 1,
                       gguf_find_tensor(f, "output.weight") != NULL};
    if (m.n_layers == 0) {
        for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
            int layer;
            if (sscanf(gguf_tensor_at(f, i)->name, "blk.%d.", &layer) == 1 && layer >= m.n_layers)
                m.n_layers = layer + 1;
        }
    }
    const int heads = arch_int(f, "attention.head_count", 1 << 20);
    const int kv = arch_int(f, "attention.head_count_kv", 1 << 20);
    if (heads && kv && heads % kv == 0) m.n_gqa = heads / kv;
    return m;
}

/* Output order: tensors outside layers first, then layer by layer, by name within each group
 * (the order the reference tool writes, so equal inputs give equal files). */
static int layer_key(const char *name) {
    int layer;
    return sscanf(name, "blk.%d.", &layer) == 1 ? layer : -1;
}

static const gguf_file *sort_src;
static int tensor_order(const void *a, const void *b) {
    const gguf_tensor *ta = gguf_tensor_at(sort_src, *(const uint64_t *)a);
    const gguf_tensor *tb = gguf_tensor_at(sort_src, *(const uint64_t *)b);
    const int la = layer_key(ta->name), lb = layer_key(tb->name);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(ta->name, tb->name);
}

static ws_status quantize_file(const char *in, const char *out, const convert_target *target,
                               int threads, type_stats *st, ws_error *err) {
    gguf_file *f = NULL;
    gguf_writer *w = NULL;
    parallel_pool *pool = NULL;
    float *x = NULL;
    void *q = NULL;
    uint64_t *order = NULL;
    ws_status s;
    if ((s = gguf_open(in, &f, err)) != WS_OK || (s = gguf_writer_new(&w, err)) != WS_OK ||
        (s = parallel_new(threads, &pool, err)) != WS_OK)
        goto fail;
    /* every key but these two, which follow at the end (the order the reference tool writes) */
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const char *key = gguf_kv_key(f, i);
        if (strcmp(key, "general.file_type") == 0 ||
            strcmp(key, "general.quantization_version") == 0)
            continue;
        if ((s = gguf_writer_copy_kv(w, f, i, err)) != WS_OK) goto fail;
    }
    if ((s = gguf_writer_set_u32(w, "general.quantization_version", 2, err)) != WS_OK ||
        (s = gguf_writer_set_u32(w, "general.file_type", target->ftype, err)) != WS_OK)
        goto fail;
    const convert_model shape = model_shape(f);
    const uint64_t nt = gguf_n_tensors(f);
    if (!(order = malloc((nt ? nt : 1) * sizeof *order))) {
        s = ws_fail(err, WS_ERR_NOMEM, "out of memory for %llu tensors", (unsigned long long)nt);
        goto fail;
    }
    for (uint64_t i = 0; i < nt; i++)
        order[i] = i;
    sort_src = f;
    qsort(order, nt, sizeof *order, tensor_order);
    for (uint64_t i = 0; i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, order[i]);
        const ggml_type type = convert_tensor_type(target, &shape, t->name, t->n_dims, t->ne);
        const int64_t cols = t->ne[0], rows = (int64_t)(t->n_elems / (uint64_t)cols);
        uint64_t rb = 0;
        if ((s = ggml_row_bytes(type, cols, &rb, err)) != WS_OK) goto fail;
        if (!(x = tensor_f32(t, err))) {
            s = WS_ERR_NOMEM;
            goto fail;
        }
        if (!(q = malloc(rb * (uint64_t)rows))) {
            s = ws_fail(err, WS_ERR_NOMEM, "tensor '%s': out of memory", t->name);
            goto fail;
        }
        type_stats *ts = &st[type];
        if ((s = convert_quantize_rows(pool, type, x, rows, cols, q, &ts->sq_err, err)) != WS_OK ||
            (s = gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne, q, rb * (uint64_t)rows,
                                        err)) != WS_OK)
            goto fail;
        ts->tensors++;
        ts->elems += t->n_elems;
        ts->sq_w += sum_sq(x, t->n_elems);
        free(x);
        free(q);
        x = NULL;
        q = NULL;
    }
    s = gguf_writer_write(w, out, err);
fail:
    free(order);
    free(x);
    free(q);
    parallel_free(pool);
    gguf_writer_free(w);
    gguf_close(f);
    return s;
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int npos = 0, threads = 0;
    bool compare = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--compare") == 0) {
            compare = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            const long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1024) {
                fprintf(stderr, "worker-orcd quantize: --threads '%s' is not in 1..1024\n",
                        argv[i]);
                return 2;
            }
            threads = (int)v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "worker-orcd quantize: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "worker-orcd quantize: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (compare) {
        if (npos != 2) {
            usage(stderr);
            return 2;
        }
        return compare_files(pos[0], pos[1]);
    }
    if (npos != 3) {
        usage(stderr);
        return 2;
    }
    convert_target target;
    if (!convert_target_from_name(pos[2], &target)) {
        fprintf(stderr, "worker-orcd quantize: unknown type '%s' (one of: %s)\n", pos[2],
                convert_target_names());
        return 2;
    }
    if (threads == 0) {
        const long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
    }
    type_stats st[GGML_TYPE_BF16 + 1] = {{0}};
    ws_error err = {{0}};
    if (quantize_file(pos[0], pos[1], &target, threads, st, &err) != WS_OK) {
        fprintf(stderr, "worker-orcd quantize: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s (%s)\n", pos[1], target.name);
    print_stats(st);
    return 0;
}
