/* gguf_write.c: the GGUF v3 writer. Keys and tensors are collected in memory (each value already
 * serialized), then written in one pass: header, keys, tensor infos, padding, aligned data. The
 * writer refuses anything the parser would reject, so what it writes always parses back. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/gguf.h"
#include "model/gguf_internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF values are copied as host bytes");

typedef struct {
    uint8_t *p;
    size_t len, cap;
} wbuf;

typedef struct {
    char *key;
    wbuf val; /* value type u32 + the value's bytes, as stored in the file */
} wkv;

typedef struct {
    char name[GGUF_MAX_NAME];
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    ggml_type type;
    uint8_t *data;
    uint64_t n_bytes;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    uint32_t alignment;
};

static int wbuf_put(wbuf *b, const void *p, size_t n) {
    if (n > SIZE_MAX - b->len) return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int wbuf_u32(wbuf *b, uint32_t v) {
    return wbuf_put(b, &v, 4);
}
static int wbuf_u64(wbuf *b, uint64_t v) {
    return wbuf_put(b, &v, 8);
}
static int wbuf_str(wbuf *b, const void *s, uint64_t n) {
    return wbuf_u64(b, n) || wbuf_put(b, s, (size_t)n);
}

ws_status gguf_writer_new(gguf_writer **out, ws_error *err) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return ws_fail(err, WS_ERR_NOMEM, "gguf writer: out of memory");
    w->alignment = 32;
    *out = w;
    return WS_OK;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].data);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Starts a new key: checks the name and appends an entry whose value holds the type. */
static ws_status kv_begin(gguf_writer *w, const char *key, gguf_type type, wbuf **val,
                          ws_error *err) {
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > GGUF_CAP_KEY)
        return ws_fail(err, WS_ERR_INVALID_ARG, "gguf writer: key length %zu is not in 1..%u", n,
                       GGUF_CAP_KEY);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0)
            return ws_fail(err, WS_ERR_INVALID_ARG, "gguf writer: duplicate key '%s'", key);
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        wkv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) return ws_fail(err, WS_ERR_NOMEM, "gguf writer: out of memory");
        w->kv = kv;
        w->cap_kv = cap;
    }
    wkv *kv = &w->kv[w->n_kv];
    memset(kv, 0, sizeof *kv);
    if (!(kv->key = strdup(key)) || wbuf_u32(&kv->val, type)) {
        free(kv->key);
        free(kv->val.p);
        return ws_fail(err, WS_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->n_kv++;
    *val = &kv->val;
    return WS_OK;
}

/* Drops the entry kv_begin added (a value failed to serialize). */
static ws_status kv_abort(gguf_writer *w, ws_error *err) {
    wkv *kv = &w->kv[--w->n_kv];
    ws_status st = ws_fail(err, WS_ERR_NOMEM, "gguf writer: key '%s': out of memory", kv->key);
    free(kv->key);
    free(kv->val.p);
    return st;
}

ws_status gguf_writer_set_val(gguf_writer *w, const char *key, gguf_type type, const void *v,
                              ws_error *err) {
    size_t sz = gguf_type_size(type);
    if (sz == 0)
        return ws_fail(err, WS_ERR_INVALID_ARG, "gguf writer: key '%s': %s is not a scalar type",
                       key ? key : "", gguf_type_name(type));
    uint8_t b = 0;
    if (type == GGUF_TYPE_BOOL) {
        b = *(const bool *)v ? 1 : 0;
        v = &b;
    }
    if (key && strcmp(key, "general.alignment") == 0) {
        uint32_t a = 0;
        if (type == GGUF_TYPE_UINT32) memcpy(&a, v, 4);
        if (type != GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)) != 0)
            return ws_fail(err, WS_ERR_INVALID_ARG,
                           "gguf writer: general.alignment must be a uint32 power of two");
        w->alignment = a;
    }
    wbuf *val;
    ws_status st = kv_begin(w, key, type, &val, err);
    if (st) return st;
    if (wbuf_put(val, v, sz)) return kv_abort(w, err);
    return WS_OK;
}

ws_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v, ws_error *err) {
    return gguf_writer_set_val(w, key, GGUF_TYPE_UINT32, &v, err);
}

ws_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v, ws_error *err) {
    return gguf_writer_set_val(w, key, GGUF_TYPE_INT32, &v, err);
}

ws_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v, ws_error *err) {
    return gguf_writer_set_val(w, key, GGUF_TYPE_FLOAT32, &v, err);
}

ws_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v, ws_error *err) {
    return gguf_writer_set_val(w, key, GGUF_TYPE_BOOL, &v, err);
}

ws_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, uint64_t len,
                              ws_error *err) {
    if (len > GGUF_CAP_STR)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "gguf writer: key '%s': string of %" PRIu64 " bytes exceeds the cap of %u",
                       key ? key : "", len, GGUF_CAP_STR);
    wbuf *val;
    ws_status st = kv_begin(w, key, GGUF_TYPE_STRING, &val, err);
    if (st) return st;
    if (wbuf_str(val, s, len)) return kv_abort(w, err);
    return WS_OK;
}

ws_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, uint64_t n,
                              const void *data, ws_error *err) {
    size_t sz = gguf_type_size(elem_type);
    if (sz == 0 || n > GGUF_CAP_ARR)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "gguf writer: key '%s': array of %" PRIu64 " %s is not writable",
                       key ? key : "", n, gguf_type_name(elem_type));
    if (elem_type == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return ws_fail(err, WS_ERR_INVALID_ARG,
                               "gguf writer: key '%s': bool element %" PRIu64 " is not 0 or 1",
                               key ? key : "", i);
    wbuf *val;
    ws_status st = kv_begin(w, key, GGUF_TYPE_ARRAY, &val, err);
    if (st) return st;
    if (wbuf_u32(val, elem_type) || wbuf_u64(val, n) || wbuf_put(val, data, (size_t)(n * sz)))
        return kv_abort(w, err);
    return WS_OK;
}

ws_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, uint64_t n, const char *const *s,
                                  const uint64_t *lens, ws_error *err) {
    if (n > GGUF_CAP_ARR)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "gguf writer: key '%s': array of %" PRIu64 " strings exceeds the cap of %u",
                       key ? key : "", n, GGUF_CAP_ARR);
    for (uint64_t i = 0; i < n; i++)
        if (lens[i] > GGUF_CAP_STR)
            return ws_fail(err, WS_ERR_INVALID_ARG,
                           "gguf writer: key '%s': string %" PRIu64 " exceeds the cap of %u bytes",
                           key ? key : "", i, GGUF_CAP_STR);
    wbuf *val;
    ws_status st = kv_begin(w, key, GGUF_TYPE_ARRAY, &val, err);
    if (st) return st;
    if (wbuf_u32(val, GGUF_TYPE_STRING) || wbuf_u64(val, n)) return kv_abort(w, err);
    for (uint64_t i = 0; i < n; i++)
        if (wbuf_str(val, s[i], lens[i])) return kv_abort(w, err);
    return WS_OK;
}

ws_status gguf_writer_copy_kv(gguf_writer *w, const gguf_file *src, uint64_t i, ws_error *err) {
    gguf_value v;
    if (gguf_kv_value(src, i, &v) != WS_OK)
        return ws_fail(err, WS_ERR_RANGE, "gguf writer: source key index %" PRIu64 " >= %" PRIu64,
                       i, gguf_n_kv(src));
    const char *key = gguf_kv_key(src, i);
    if (v.type == GGUF_TYPE_STRING) return gguf_writer_set_str(w, key, v.data, v.len, err);
    if (v.type != GGUF_TYPE_ARRAY) return gguf_writer_set_val(w, key, v.type, v.data, err);
    if (v.elem_type != GGUF_TYPE_STRING)
        return gguf_writer_set_arr(w, key, v.elem_type, v.n, v.data, err);
    /* String arrays: copied element by element straight from the source view. */
    wbuf *val;
    ws_status st = kv_begin(w, key, GGUF_TYPE_ARRAY, &val, err);
    if (st) return st;
    if (wbuf_u32(val, GGUF_TYPE_STRING) || wbuf_u64(val, v.n)) return kv_abort(w, err);
    for (uint64_t j = 0; j < v.n; j++) {
        const char *s;
        uint64_t len;
        gguf_kv_arr_str(src, i, j, &s, &len);
        if (wbuf_str(val, s, len)) return kv_abort(w, err);
    }
    return WS_OK;
}

ws_status gguf_writer_add_tensor(gguf_writer *w, const char *name, ggml_type type, uint32_t n_dims,
                                 const int64_t *ne, const void *data, uint64_t n_bytes,
                                 ws_error *err) {
    size_t nl = name ? strlen(name) : 0;
    if (nl == 0 || nl >= GGUF_MAX_NAME)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "gguf writer: tensor name length %zu is not in 1..%d", nl,
                       GGUF_MAX_NAME - 1);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return ws_fail(err, WS_ERR_INVALID_ARG, "gguf writer: duplicate tensor '%s'", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': n_dims %u is not in 1..%d", name, n_dims,
                       GGUF_MAX_DIMS);
    if (!ggml_type_supported(type))
        return ws_fail(err, WS_ERR_INVALID_ARG, "gguf writer: tensor '%s': unsupported type %d",
                       name, (int)type);
    uint64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1)
            return ws_fail(err, WS_ERR_INVALID_ARG,
                           "gguf writer: tensor '%s': ne[%u] = %" PRId64 " is not >= 1", name, d,
                           ne[d]);
        if (d > 0) {
            if (rows > INT64_MAX / (uint64_t)ne[d])
                return ws_fail(err, WS_ERR_INVALID_ARG,
                               "gguf writer: tensor '%s': element count overflows", name);
            rows *= (uint64_t)ne[d];
        }
    }
    uint64_t row, want;
    ws_status st = ggml_row_bytes(type, ne[0], &row, err);
    if (st) {
        ws_error_prefix(err, "gguf writer: tensor '%s': ", name);
        return WS_ERR_INVALID_ARG;
    }
    if ((uint64_t)ne[0] > INT64_MAX / rows || (row && rows > UINT64_MAX / row))
        return ws_fail(err, WS_ERR_INVALID_ARG, "gguf writer: tensor '%s': size overflows", name);
    want = row * rows;
    if (n_bytes != want)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': %" PRIu64 " data bytes, the shape needs %" PRIu64,
                       name, n_bytes, want);
    if (n_bytes > SIZE_MAX)
        return ws_fail(err, WS_ERR_NOMEM, "gguf writer: tensor '%s' too large", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 16;
        wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t) return ws_fail(err, WS_ERR_NOMEM, "gguf writer: out of memory");
        w->t = t;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->data = malloc(n_bytes ? (size_t)n_bytes : 1)))
        return ws_fail(err, WS_ERR_NOMEM, "gguf writer: tensor '%s': out of memory", name);
    memcpy(t->data, data, (size_t)n_bytes);
    memcpy(t->name, name, nl + 1);
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->n_bytes = n_bytes;
    w->n_t++;
    return WS_OK;
}

static uint64_t pad_to(uint64_t x, uint32_t a) {
    return (a - x % a) % a;
}

/* Serializes the header, keys and tensor infos (offsets assigned in order). */
static int build_header(const gguf_writer *w, wbuf *h) {
    if (wbuf_put(h, "GGUF", 4) || wbuf_u32(h, 3) || wbuf_u64(h, w->n_t) || wbuf_u64(h, w->n_kv))
        return -1;
    for (size_t i = 0; i < w->n_kv; i++)
        if (wbuf_str(h, w->kv[i].key, strlen(w->kv[i].key)) ||
            wbuf_put(h, w->kv[i].val.p, w->kv[i].val.len))
            return -1;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (wbuf_str(h, t->name, strlen(t->name)) || wbuf_u32(h, t->n_dims)) return -1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (wbuf_u64(h, (uint64_t)t->ne[d])) return -1;
        if (wbuf_u32(h, t->type) || wbuf_u64(h, off)) return -1;
        off += t->n_bytes + pad_to(t->n_bytes, w->alignment);
    }
    static const uint8_t zeros[64];
    for (uint64_t p = pad_to(h->len, w->alignment); p > 0;) {
        size_t n = p < sizeof zeros ? (size_t)p : sizeof zeros;
        if (wbuf_put(h, zeros, n)) return -1;
        p -= n;
    }
    return 0;
}

static int write_zeros(FILE *fp, uint64_t n) {
    static const uint8_t zeros[256];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (fwrite(zeros, 1, k, fp) != k) return -1;
        n -= k;
    }
    return 0;
}

ws_status gguf_writer_write(gguf_writer *w, const char *path, ws_error *err) {
    wbuf h = {0};
    FILE *fp = NULL;
    ws_status st = WS_OK;
    if (build_header(w, &h)) {
        st = ws_fail(err, WS_ERR_NOMEM, "gguf writer: out of memory for the header");
        goto fail;
    }
    if (!(fp = fopen(path, "wb"))) {
        st = ws_fail(err, WS_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    int bad = fwrite(h.p, 1, h.len, fp) != h.len;
    for (size_t i = 0; i < w->n_t && !bad; i++) {
        const wtensor *t = &w->t[i];
        bad = fwrite(t->data, 1, (size_t)t->n_bytes, fp) != t->n_bytes ||
              write_zeros(fp, pad_to(t->n_bytes, w->alignment));
    }
    if (fflush(fp) != 0) bad = 1;
    int e = errno;
    if (fclose(fp) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    fp = NULL;
    if (bad) {
        unlink(path);
        st = ws_fail(err, WS_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
fail:
    if (fp) fclose(fp);
    free(h.p);
    return st;
}
