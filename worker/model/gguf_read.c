/* gguf_read.c: read access to a parsed GGUF file: file facts, metadata by index and by key (typed
 * getters that check the stored type), tensors, and the name index the parser fills. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/gguf_internal.h"

/* ---- name index ---- */

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int gguf_hash_init(gguf_hash *h, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    h->names = calloc(cap, sizeof *h->names);
    h->idx = calloc(cap, sizeof *h->idx);
    h->cap = cap;
    return !h->names || !h->idx;
}

void gguf_hash_free(gguf_hash *h) {
    free(h->names);
    free(h->idx);
    h->names = NULL;
    h->idx = NULL;
}

int64_t gguf_hash_find(const gguf_hash *h, const char *name) {
    if (!h->names) return -1;
    for (uint64_t s = hash_name(name) & (h->cap - 1);; s = (s + 1) & (h->cap - 1)) {
        if (!h->names[s]) return -1;
        if (strcmp(h->names[s], name) == 0) return (int64_t)h->idx[s];
    }
}

void gguf_hash_insert(gguf_hash *h, const char *name, uint64_t idx) {
    uint64_t s = hash_name(name) & (h->cap - 1);
    while (h->names[s])
        s = (s + 1) & (h->cap - 1);
    h->names[s] = name;
    h->idx[s] = idx;
}

/* ---- file ---- */

uint32_t gguf_version(const gguf_file *f) {
    return f->version;
}
uint32_t gguf_alignment(const gguf_file *f) {
    return f->alignment;
}
size_t gguf_file_size(const gguf_file *f) {
    return f->len;
}
uint64_t gguf_data_offset(const gguf_file *f) {
    return f->data_offset;
}

/* ---- metadata by index ---- */

uint64_t gguf_n_kv(const gguf_file *f) {
    return f->n_kv;
}

const char *gguf_kv_key(const gguf_file *f, uint64_t i) {
    return i < f->n_kv ? f->kv[i].key : NULL;
}

gguf_type gguf_kv_type(const gguf_file *f, uint64_t i) {
    return i < f->n_kv ? f->kv[i].type : GGUF_TYPE_COUNT;
}

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    return gguf_hash_find(&f->key_index, key);
}

ws_status gguf_kv_value(const gguf_file *f, uint64_t i, gguf_value *out) {
    if (i >= f->n_kv) return WS_ERR_RANGE;
    const gguf_kv *kv = &f->kv[i];
    out->type = kv->type;
    out->elem_type = kv->type == GGUF_TYPE_ARRAY ? kv->elem_type : kv->type;
    out->n = kv->n;
    out->data =
        (kv->type == GGUF_TYPE_ARRAY && kv->elem_type == GGUF_TYPE_STRING) ? NULL : kv->data;
    out->len = kv->len;
    return WS_OK;
}

ws_status gguf_kv_arr_str(const gguf_file *f, uint64_t i, uint64_t j, const char **s,
                          uint64_t *len) {
    if (i >= f->n_kv) return WS_ERR_RANGE;
    const gguf_kv *kv = &f->kv[i];
    if (kv->type != GGUF_TYPE_ARRAY || kv->elem_type != GGUF_TYPE_STRING) return WS_ERR_FORMAT;
    if (j >= kv->n) return WS_ERR_RANGE;
    /* The parser checked every element's length and bytes against the view. */
    const uint8_t *p = f->buf + kv->str_offs[j];
    *len = gguf_le64(p);
    *s = (const char *)p + 8;
    return WS_OK;
}

/* ---- typed getters by key ---- */

static ws_status lookup(const gguf_file *f, const char *key, const gguf_kv **kv, ws_error *err) {
    int64_t i = gguf_find_key(f, key);
    if (i < 0) return ws_fail(err, WS_ERR_NOT_FOUND, "key '%s' not found", key);
    *kv = &f->kv[i];
    return WS_OK;
}

static ws_status wrong_type(const gguf_kv *kv, const char *expected, ws_error *err) {
    if (kv->type == GGUF_TYPE_ARRAY)
        return ws_fail(err, WS_ERR_FORMAT, "key '%s': expected %s, found array of %s", kv->key,
                       expected, gguf_type_name(kv->elem_type));
    return ws_fail(err, WS_ERR_FORMAT, "key '%s': expected %s, found %s", kv->key, expected,
                   gguf_type_name(kv->type));
}

ws_status gguf_get_int(const gguf_file *f, const char *key, int64_t *out, ws_error *err) {
    const gguf_kv *kv = NULL;
    ws_status st = lookup(f, key, &kv, err);
    if (st) return st;
    const uint8_t *d = kv->data;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
        *out = d[0];
        return WS_OK;
    case GGUF_TYPE_INT8:
        *out = (int8_t)d[0];
        return WS_OK;
    case GGUF_TYPE_UINT16:
        *out = (uint16_t)(d[0] | d[1] << 8);
        return WS_OK;
    case GGUF_TYPE_INT16:
        *out = (int16_t)(uint16_t)(d[0] | d[1] << 8);
        return WS_OK;
    case GGUF_TYPE_UINT32:
        *out = gguf_le32(d);
        return WS_OK;
    case GGUF_TYPE_INT32:
        *out = (int32_t)gguf_le32(d);
        return WS_OK;
    case GGUF_TYPE_INT64:
        *out = (int64_t)gguf_le64(d);
        return WS_OK;
    case GGUF_TYPE_UINT64: {
        uint64_t v = gguf_le64(d);
        if (v > INT64_MAX)
            return ws_fail(err, WS_ERR_FORMAT,
                           "key '%s': uint64 value %" PRIu64 " does not fit int64", key, v);
        *out = (int64_t)v;
        return WS_OK;
    }
    default:
        return wrong_type(kv, "an integer", err);
    }
}

ws_status gguf_get_float(const gguf_file *f, const char *key, double *out, ws_error *err) {
    const gguf_kv *kv = NULL;
    ws_status st = lookup(f, key, &kv, err);
    if (st) return st;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        uint32_t b = gguf_le32(kv->data);
        float v;
        memcpy(&v, &b, 4);
        *out = v;
        return WS_OK;
    }
    if (kv->type == GGUF_TYPE_FLOAT64) {
        uint64_t b = gguf_le64(kv->data);
        memcpy(out, &b, 8);
        return WS_OK;
    }
    return wrong_type(kv, "float32 or float64", err);
}

ws_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, ws_error *err) {
    const gguf_kv *kv = NULL;
    ws_status st = lookup(f, key, &kv, err);
    if (st) return st;
    if (kv->type != GGUF_TYPE_BOOL) return wrong_type(kv, "bool", err);
    *out = kv->data[0] != 0;
    return WS_OK;
}

ws_status gguf_get_str(const gguf_file *f, const char *key, const char **s, uint64_t *len,
                       ws_error *err) {
    const gguf_kv *kv = NULL;
    ws_status st = lookup(f, key, &kv, err);
    if (st) return st;
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(kv, "string", err);
    *s = (const char *)kv->data;
    *len = kv->len;
    return WS_OK;
}

ws_status gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *n,
                       const void **data, ws_error *err) {
    const gguf_kv *kv = NULL;
    ws_status st = lookup(f, key, &kv, err);
    if (st) return st;
    if (kv->type != GGUF_TYPE_ARRAY) return wrong_type(kv, "an array", err);
    *elem_type = kv->elem_type;
    *n = kv->n;
    *data = kv->elem_type == GGUF_TYPE_STRING ? NULL : kv->data;
    return WS_OK;
}

ws_status gguf_get_arr_str(const gguf_file *f, const char *key, uint64_t i, const char **s,
                           uint64_t *len, ws_error *err) {
    const gguf_kv *kv = NULL;
    ws_status st = lookup(f, key, &kv, err);
    if (st) return st;
    if (kv->type != GGUF_TYPE_ARRAY || kv->elem_type != GGUF_TYPE_STRING)
        return wrong_type(kv, "an array of string", err);
    if (i >= kv->n)
        return ws_fail(err, WS_ERR_RANGE, "key '%s': index %" PRIu64 " >= array count %" PRIu64,
                       key, i, kv->n);
    return gguf_kv_arr_str(f, (uint64_t)(kv - f->kv), i, s, len);
}

/* ---- tensors ---- */

uint64_t gguf_n_tensors(const gguf_file *f) {
    return f->n_tensors;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    int64_t i = gguf_hash_find(&f->tensor_index, name);
    return i < 0 ? NULL : &f->tensors[i];
}
