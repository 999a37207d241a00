/* gguf.c: the GGUF parser. Reads an untrusted (pointer, length) view in one forward pass; every
 * count, length, type, shape, size and offset is checked before it is used or allocated for, and
 * every failure names the byte offset and the key, tensor or field at fault.
 *
 * Caps (beyond "must fit in the bytes that are left"):
 *   keys: 1..GGUF_CAP_KEY bytes, no NUL          n_kv, n_tensors: <= GGUF_CAP_COUNT
 *   string values and array strings: <= GGUF_CAP_STR bytes
 *   arrays: <= GGUF_CAP_ARR elements, no nested arrays
 *   tensor names: 1..63 bytes, no NUL, unique    n_dims 1..4, each ne in 1..INT64_MAX */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/gguf_internal.h"

/* ---- bounded reader ---- */

typedef struct {
    const uint8_t *p;
    size_t len;
    size_t pos;
    ws_error *err;
} reader;

static size_t rd_left(const reader *r) {
    return r->len - r->pos;
}

static ws_status rd_need(reader *r, uint64_t n, const char *what, const char *who) {
    if (n <= rd_left(r)) return WS_OK;
    return ws_fail(r->err, WS_ERR_FORMAT,
                   "offset %zu: %s%struncated: %s needs %" PRIu64 " bytes, %zu left", r->pos, who,
                   *who ? ": " : "", what, n, rd_left(r));
}

static ws_status rd_bytes(reader *r, void *out, size_t n, const char *what, const char *who) {
    ws_status st = rd_need(r, n, what, who);
    if (st) return st;
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return WS_OK;
}

static ws_status rd_u32(reader *r, uint32_t *v, const char *what, const char *who) {
    uint8_t b[4];
    ws_status st = rd_bytes(r, b, 4, what, who);
    if (st) return st;
    *v = gguf_le32(b);
    return WS_OK;
}

static ws_status rd_u64(reader *r, uint64_t *v, const char *what, const char *who) {
    uint8_t b[8];
    ws_status st = rd_bytes(r, b, 8, what, who);
    if (st) return st;
    *v = gguf_le64(b);
    return WS_OK;
}

/* A length-prefixed string: checks the cap and the remaining bytes; *s points into the view. */
static ws_status rd_str(reader *r, const uint8_t **s, uint64_t *n, uint64_t cap, const char *what,
                        const char *who) {
    size_t at = r->pos;
    char field[96];
    snprintf(field, sizeof field, "%s length", what);
    ws_status st = rd_u64(r, n, field, who);
    if (st) return st;
    if (*n > cap)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: %s%s%s length %" PRIu64 " exceeds the cap of %" PRIu64 " bytes",
                       at, who, *who ? ": " : "", what, *n, cap);
    if ((st = rd_need(r, *n, what, who))) return st;
    *s = r->p + r->pos;
    r->pos += (size_t)*n;
    return WS_OK;
}

/* ---- metadata ---- */

size_t gguf_type_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

const char *gguf_type_name(gguf_type t) {
    static const char *const names[GGUF_TYPE_COUNT] = {
        "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
        "bool",  "string", "array",  "uint64", "int64",  "float64",
    };
    if ((unsigned)t >= GGUF_TYPE_COUNT) return "?";
    return names[t];
}

/* Checks that every bool byte is 0 or 1 (anything else is not a bool this format defines). */
static ws_status check_bools(reader *r, const uint8_t *b, uint64_t n, const char *key) {
    for (uint64_t i = 0; i < n; i++)
        if (b[i] > 1)
            return ws_fail(r->err, WS_ERR_FORMAT,
                           "offset %zu: key '%s': bool value %u is not 0 or 1",
                           (size_t)(b + i - r->p), key, b[i]);
    return WS_OK;
}

static ws_status parse_array(reader *r, gguf_kv *kv) {
    char who[GGUF_CAP_KEY + 16];
    snprintf(who, sizeof who, "key '%s'", kv->key);
    uint32_t et;
    size_t at = r->pos;
    ws_status st = rd_u32(r, &et, "array element type", who);
    if (st) return st;
    if (et == GGUF_TYPE_ARRAY)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset %zu: key '%s': nested array", at, kv->key);
    if (et >= GGUF_TYPE_COUNT)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: key '%s': array element type %u out of range", at, kv->key, et);
    kv->elem_type = (gguf_type)et;
    at = r->pos;
    if ((st = rd_u64(r, &kv->n, "array count", who))) return st;
    if (kv->n > GGUF_CAP_ARR)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: key '%s': array count %" PRIu64 " exceeds the cap of %u", at,
                       kv->key, kv->n, GGUF_CAP_ARR);
    if (et != GGUF_TYPE_STRING) {
        uint64_t bytes = kv->n * gguf_type_size(kv->elem_type); /* <= 2^24 * 8: no overflow */
        if ((st = rd_need(r, bytes, "array data", who))) return st;
        kv->data = r->p + r->pos;
        if (et == GGUF_TYPE_BOOL && (st = check_bools(r, kv->data, kv->n, kv->key))) return st;
        r->pos += (size_t)bytes;
        return WS_OK;
    }
    /* Each string takes at least its 8-byte length: bound the count before allocating. */
    if (kv->n > rd_left(r) / 8)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: key '%s': array of %" PRIu64
                       " strings cannot fit in the %zu bytes left",
                       at, kv->key, kv->n, rd_left(r));
    kv->str_offs = malloc((kv->n ? kv->n : 1) * sizeof *kv->str_offs);
    if (!kv->str_offs) return ws_fail(r->err, WS_ERR_NOMEM, "key '%s': out of memory", kv->key);
    for (uint64_t j = 0; j < kv->n; j++) {
        kv->str_offs[j] = r->pos;
        /* Fast path for a whole, in-cap string; anything else goes through rd_str for the message.
         */
        if (rd_left(r) >= 8) {
            uint64_t n = gguf_le64(r->p + r->pos);
            if (n <= GGUF_CAP_STR && n <= rd_left(r) - 8) {
                r->pos += 8 + (size_t)n;
                continue;
            }
        }
        const uint8_t *s;
        uint64_t n;
        char what[48];
        snprintf(what, sizeof what, "string %" PRIu64, j);
        if ((st = rd_str(r, &s, &n, GGUF_CAP_STR, what, who))) return st;
    }
    return WS_OK;
}

static ws_status parse_kv(gguf_file *f, reader *r, uint64_t i) {
    gguf_kv *kv = &f->kv[i];
    char who[GGUF_CAP_KEY + 16];
    snprintf(who, sizeof who, "key %" PRIu64, i);
    const uint8_t *k;
    uint64_t klen;
    size_t at = r->pos;
    ws_status st = rd_str(r, &k, &klen, GGUF_CAP_KEY, "name", who);
    if (st) return st;
    if (klen == 0)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset %zu: key %" PRIu64 ": empty name", at, i);
    if (memchr(k, 0, klen))
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: key %" PRIu64 ": name contains a NUL byte", at, i);
    if (!(kv->key = malloc(klen + 1)))
        return ws_fail(r->err, WS_ERR_NOMEM, "key %" PRIu64 ": out of memory", i);
    memcpy(kv->key, k, klen);
    kv->key[klen] = '\0';
    int64_t dup = gguf_hash_find(&f->key_index, kv->key);
    if (dup >= 0)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset %zu: duplicate key '%s'", at, kv->key);
    gguf_hash_insert(&f->key_index, kv->key, i);

    snprintf(who, sizeof who, "key '%s'", kv->key);
    uint32_t t;
    at = r->pos;
    if ((st = rd_u32(r, &t, "value type", who))) return st;
    if (t >= GGUF_TYPE_COUNT)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset %zu: key '%s': value type %u out of range",
                       at, kv->key, t);
    kv->type = (gguf_type)t;
    kv->n = 1;
    if (t == GGUF_TYPE_ARRAY) return parse_array(r, kv);
    if (t == GGUF_TYPE_STRING)
        return rd_str(r, &kv->data, &kv->len, GGUF_CAP_STR, "string value", who);
    size_t sz = gguf_type_size(kv->type);
    if ((st = rd_need(r, sz, "value", who))) return st;
    kv->data = r->p + r->pos;
    if (t == GGUF_TYPE_BOOL && (st = check_bools(r, kv->data, 1, kv->key))) return st;
    r->pos += sz;
    return WS_OK;
}

/* general.alignment must be a u32 power of two; absent means 32. */
static ws_status read_alignment(gguf_file *f, ws_error *err) {
    f->alignment = 32;
    int64_t i = gguf_find_key(f, "general.alignment");
    if (i < 0) return WS_OK;
    const gguf_kv *kv = &f->kv[i];
    if (kv->type != GGUF_TYPE_UINT32)
        return ws_fail(err, WS_ERR_FORMAT, "key 'general.alignment': type %s, expected uint32",
                       gguf_type_name(kv->type));
    uint32_t a = gguf_le32(kv->data);
    if (a == 0 || (a & (a - 1)) != 0)
        return ws_fail(err, WS_ERR_FORMAT, "key 'general.alignment': %u is not a power of two", a);
    f->alignment = a;
    return WS_OK;
}

/* ---- tensors ---- */

static ws_status parse_tensor_info(gguf_file *f, reader *r, uint64_t i) {
    gguf_tensor *t = &f->tensors[i];
    char who[GGUF_MAX_NAME + 16];
    snprintf(who, sizeof who, "tensor %" PRIu64, i);
    const uint8_t *name;
    uint64_t nlen;
    size_t at = r->pos;
    ws_status st = rd_str(r, &name, &nlen, GGUF_CAP_STR, "name", who);
    if (st) return st;
    if (nlen == 0)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset %zu: tensor %" PRIu64 ": empty name", at, i);
    if (nlen >= GGUF_MAX_NAME)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: tensor %" PRIu64 ": name length %" PRIu64 " is not below %d",
                       at, i, nlen, GGUF_MAX_NAME);
    if (memchr(name, 0, nlen))
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: tensor %" PRIu64 ": name contains a NUL byte", at, i);
    memcpy(t->name, name, nlen);
    t->name[nlen] = '\0';
    if (gguf_hash_find(&f->tensor_index, t->name) >= 0)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset %zu: duplicate tensor name '%s'", at,
                       t->name);
    gguf_hash_insert(&f->tensor_index, t->name, i);

    snprintf(who, sizeof who, "tensor '%s'", t->name);
    at = r->pos;
    if ((st = rd_u32(r, &t->n_dims, "n_dims", who))) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset %zu: tensor '%s': n_dims %u is not in 1..%d",
                       at, t->name, t->n_dims, GGUF_MAX_DIMS);
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        at = r->pos;
        if (d < t->n_dims) {
            char what[16];
            snprintf(what, sizeof what, "ne[%u]", d);
            if ((st = rd_u64(r, &ne, what, who))) return st;
            if (ne < 1 || ne > INT64_MAX)
                return ws_fail(r->err, WS_ERR_FORMAT,
                               "offset %zu: tensor '%s': ne[%u] = %" PRIu64
                               " is not in 1..INT64_MAX",
                               at, t->name, d, ne);
        }
        if (n_elems > INT64_MAX / ne)
            return ws_fail(r->err, WS_ERR_FORMAT,
                           "offset %zu: tensor '%s': element count overflows 64 bits", at, t->name);
        n_elems *= ne;
        t->ne[d] = (int64_t)ne;
    }
    t->n_elems = n_elems;
    uint32_t type;
    at = r->pos;
    if ((st = rd_u32(r, &type, "type", who))) return st;
    if (!ggml_type_supported(type))
        return ws_fail(r->err, WS_ERR_UNSUPPORTED, "offset %zu: tensor '%s': unsupported type %u",
                       at, t->name, type);
    t->type = (ggml_type)type;
    uint32_t be = ggml_block_elems(type);
    if (t->ne[0] % be != 0)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: tensor '%s': ne[0] = %" PRId64
                       " is not a multiple of the %s block size %u",
                       at, t->name, t->ne[0], ggml_type_name(type), be);
    uint64_t row;
    ws_error qerr;
    if (ggml_row_bytes(type, t->ne[0], &row, &qerr) != WS_OK)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset %zu: tensor '%s': %s", at, t->name, qerr.msg);
    uint64_t rows = n_elems / (uint64_t)t->ne[0];
    if (row != 0 && rows > UINT64_MAX / row)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset %zu: tensor '%s': byte size overflows 64 bits", at, t->name);
    t->n_bytes = row * rows;
    return rd_u64(r, &t->offset, "offset", who);
}

/* Offsets: aligned, in file order without overlap, and inside the file. */
static ws_status place_tensors(gguf_file *f, ws_error *err) {
    uint64_t prev_end = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment != 0)
            return ws_fail(err, WS_ERR_FORMAT,
                           "tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %u",
                           t->name, t->offset, f->alignment);
        if (t->offset < prev_end)
            return ws_fail(err, WS_ERR_FORMAT,
                           "tensor '%s': offset %" PRIu64
                           " overlaps or precedes tensor '%s' (ends at %" PRIu64 ")",
                           t->name, t->offset, f->tensors[i - 1].name, prev_end);
        uint64_t avail = f->data_offset <= f->len ? f->len - f->data_offset : 0;
        if (t->offset > avail || t->n_bytes > avail - t->offset)
            return ws_fail(err, WS_ERR_FORMAT,
                           "tensor '%s': data at offset %" PRIu64 " (%" PRIu64
                           " bytes) runs past the end of the file (%" PRIu64 " data bytes)",
                           t->name, t->offset, t->n_bytes, avail);
        prev_end = t->offset + t->n_bytes;
        t->data = f->buf + f->data_offset + t->offset;
    }
    return WS_OK;
}

/* ---- file ---- */

static ws_status parse_header(gguf_file *f, reader *r) {
    uint8_t magic[4];
    ws_status st = rd_bytes(r, magic, 4, "magic", "");
    if (st) return st;
    if (memcmp(magic, "GGUF", 4) != 0)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset 0: bad magic %02x %02x %02x %02x (expected \"GGUF\")", magic[0],
                       magic[1], magic[2], magic[3]);
    if ((st = rd_u32(r, &f->version, "version", ""))) return st;
    if (f->version < 2 || f->version > 3)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset 4: unsupported GGUF version %u (expected 2 or 3%s)", f->version,
                       f->version == 2u << 24 || f->version == 3u << 24 ? "; a big-endian file?"
                                                                        : "");
    if ((st = rd_u64(r, &f->n_tensors, "n_tensors", ""))) return st;
    if ((st = rd_u64(r, &f->n_kv, "n_kv", ""))) return st;
    if (f->n_tensors > GGUF_CAP_COUNT)
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset 8: n_tensors %" PRIu64 " exceeds the cap of %u", f->n_tensors,
                       GGUF_CAP_COUNT);
    if (f->n_kv > GGUF_CAP_COUNT)
        return ws_fail(r->err, WS_ERR_FORMAT, "offset 16: n_kv %" PRIu64 " exceeds the cap of %u",
                       f->n_kv, GGUF_CAP_COUNT);
    /* The smallest key is 8 + 1 + 4 + 1 bytes, the smallest tensor info 8 + 1 + 4 + 8 + 4 + 8. */
    if (f->n_kv * GGUF_MIN_KV + f->n_tensors * GGUF_MIN_TENSOR > rd_left(r))
        return ws_fail(r->err, WS_ERR_FORMAT,
                       "offset 24: %" PRIu64 " keys and %" PRIu64
                       " tensors cannot fit in the %zu bytes left",
                       f->n_kv, f->n_tensors, rd_left(r));
    return WS_OK;
}

ws_status gguf_parse(const void *buf, size_t len, gguf_file **out, ws_error *err) {
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return ws_fail(err, WS_ERR_NOMEM, "gguf: out of memory");
    f->buf = buf;
    f->len = len;
    reader r = {buf, len, 0, err};
    ws_status st;
    if ((st = parse_header(f, &r))) goto fail;
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors || gguf_hash_init(&f->key_index, f->n_kv) ||
        gguf_hash_init(&f->tensor_index, f->n_tensors)) {
        st = ws_fail(err, WS_ERR_NOMEM, "gguf: out of memory for %" PRIu64 " keys", f->n_kv);
        goto fail;
    }
    for (uint64_t i = 0; i < f->n_kv; i++)
        if ((st = parse_kv(f, &r, i))) goto fail;
    if ((st = read_alignment(f, err))) goto fail;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((st = parse_tensor_info(f, &r, i))) goto fail;
    f->data_offset = r.pos + (f->alignment - r.pos % f->alignment) % f->alignment;
    if ((st = place_tensors(f, err))) goto fail;
    *out = f;
    return WS_OK;
fail:
    gguf_close(f);
    return st;
}

ws_status gguf_open(const char *path, gguf_file **out, ws_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return ws_fail(err, e == ENOENT ? WS_ERR_NOT_FOUND : WS_ERR_IO, "%s: %s", path,
                       strerror(e));
    }
    struct stat sb;
    void *map = NULL;
    size_t n = 0;
    ws_status st;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = ws_fail(err, WS_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    n = (size_t)sb.st_size;
    if (n > 0) {
        map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            st = ws_fail(err, WS_ERR_IO, "%s: mmap: %s", path, strerror(errno));
            goto fail;
        }
    }
    gguf_file *f;
    if ((st = gguf_parse(map, n, &f, err))) {
        ws_error_prefix(err, "%s: ", path);
        goto fail;
    }
    f->map = map;
    f->map_len = n;
    close(fd);
    *out = f;
    return WS_OK;
fail:
    if (map) munmap(map, n);
    close(fd);
    return st;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) {
            free(f->kv[i].key);
            free(f->kv[i].str_offs);
        }
    free(f->kv);
    free(f->tensors);
    gguf_hash_free(&f->key_index);
    gguf_hash_free(&f->tensor_index);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}
