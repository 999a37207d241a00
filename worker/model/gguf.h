/* gguf.h: the GGUF model-file format (v2 and v3), parsed from an untrusted (pointer, length) view.
 *
 * Layout (little endian):
 *   magic "GGUF" u32 | version u32 | n_tensors u64 | n_kv u64
 *   n_kv x { key: string | value_type u32 | value }
 *   n_tensors x { name: string | n_dims u32 | ne[n_dims] u64 | type u32 | offset u64 }
 *   padding to general.alignment (default 32) | tensor data (offsets relative to here)
 * string = u64 length + bytes (no NUL); array = elem_type u32 + count u64 + elements.
 *
 * Every count, length, type, shape, size and offset is checked before use (see the validation list
 * in the parser). A parsed file is immutable; all pointers it hands out stay valid until
 * gguf_close. */
#ifndef WORKER_MODEL_GGUF_H
#define WORKER_MODEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/quant.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 64 /* tensor names are shorter than this, NUL included */

typedef struct {
    char name[GGUF_MAX_NAME];
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous dimension; unused dims are 1 */
    ggml_type type;
    uint64_t offset; /* relative to the start of the data section */
    uint64_t n_elems;
    uint64_t n_bytes;
    const void *data; /* points into the file view */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens path read-only by mmap and parses it. On success *out owns the mapping. */
ws_status gguf_open(const char *path, gguf_file **out, ws_error *err);

/* Parses a borrowed buffer (it must outlive the result). */
ws_status gguf_parse(const void *buf, size_t len, gguf_file **out, ws_error *err);

/* Frees the file and its mapping; accepts NULL. */
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
size_t gguf_file_size(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f); /* byte offset of the data section in the file */

/* ---- metadata ---- */
uint64_t gguf_n_kv(const gguf_file *f);
const char *gguf_kv_key(const gguf_file *f, uint64_t i); /* NUL-terminated copy */
gguf_type gguf_kv_type(const gguf_file *f, uint64_t i);
/* Index of key, or -1 when absent. */
int64_t gguf_find_key(const gguf_file *f, const char *key);

/* Typed getters by key. They return WS_ERR_NOT_FOUND when the key is absent and WS_ERR_FORMAT
 * (naming the key, the expected and the actual type) when the type does not fit. */
/* Any integer type whose value fits int64 (bool excluded). */
ws_status gguf_get_int(const gguf_file *f, const char *key, int64_t *out, ws_error *err);
/* FLOAT32 or FLOAT64. */
ws_status gguf_get_float(const gguf_file *f, const char *key, double *out, ws_error *err);
ws_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, ws_error *err);
/* A string value: bytes are not NUL-terminated and may contain NUL. */
ws_status gguf_get_str(const gguf_file *f, const char *key, const char **s, uint64_t *len,
                       ws_error *err);
/* An array value: element type and count. For numeric arrays *data points at the packed little-
 * endian elements in the file (may be unaligned: read with memcpy). For string arrays *data is
 * NULL: use gguf_get_arr_str. */
ws_status gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *n,
                       const void **data, ws_error *err);
/* Element i of a string array. */
ws_status gguf_get_arr_str(const gguf_file *f, const char *key, uint64_t i, const char **s,
                           uint64_t *len, ws_error *err);

/* Raw access by index, for tools that print or copy every key (inspect, the writer). */
typedef struct {
    gguf_type type;
    gguf_type elem_type; /* for arrays */
    uint64_t n;          /* array length; 1 for scalars */
    const void *data;    /* scalar or numeric array bytes in the file; string bytes for STRING */
    uint64_t len;        /* string length for STRING */
} gguf_value;
ws_status gguf_kv_value(const gguf_file *f, uint64_t i, gguf_value *out);
ws_status gguf_kv_arr_str(const gguf_file *f, uint64_t i, uint64_t j, const char **s,
                          uint64_t *len);

/* Bytes of one scalar of a non-string, non-array type; 0 otherwise. */
size_t gguf_type_size(gguf_type t);
const char *gguf_type_name(gguf_type t);

/* ---- tensors ---- */
uint64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
/* NULL when absent. */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* ---- writer ----
 * Builds a GGUF v3 file in memory order: keys in insertion order, tensors in insertion order,
 * data aligned to general.alignment (32 unless set). Tensor data is copied when added. Setters
 * refuse (WS_ERR_INVALID_ARG) a key that is empty, over 256 bytes or already set, a
 * general.alignment that is not a u32 power of two, and a tensor whose name, shape, type or byte
 * count the parser would reject. */
typedef struct gguf_writer gguf_writer;
ws_status gguf_writer_new(gguf_writer **out, ws_error *err);
void gguf_writer_free(gguf_writer *w);
ws_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v, ws_error *err);
ws_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v, ws_error *err);
ws_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v, ws_error *err);
ws_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v, ws_error *err);
ws_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, uint64_t len,
                              ws_error *err);
/* Any scalar type other than STRING and ARRAY; v points at a host value of that type. */
ws_status gguf_writer_set_val(gguf_writer *w, const char *key, gguf_type type, const void *v,
                              ws_error *err);
/* A numeric array: n packed host values of elem_type (not STRING, not ARRAY). */
ws_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, uint64_t n,
                              const void *data, ws_error *err);
/* A string array: n strings s[i] of lens[i] bytes (any bytes). */
ws_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, uint64_t n, const char *const *s,
                                  const uint64_t *lens, ws_error *err);
/* Copies key i of src (any type, arrays included) under the same name. */
ws_status gguf_writer_copy_kv(gguf_writer *w, const gguf_file *src, uint64_t i, ws_error *err);
ws_status gguf_writer_add_tensor(gguf_writer *w, const char *name, ggml_type type, uint32_t n_dims,
                                 const int64_t *ne, const void *data, uint64_t n_bytes,
                                 ws_error *err);
ws_status gguf_writer_write(gguf_writer *w, const char *path, ws_error *err);

#endif
