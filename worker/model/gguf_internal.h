/* gguf_internal.h: the parsed-file layout shared by the GGUF parser (gguf.c), its accessors
 * (gguf_read.c) and the writer (gguf_write.c). Not part of the public interface. */
#ifndef WORKER_MODEL_GGUF_INTERNAL_H
#define WORKER_MODEL_GGUF_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "model/gguf.h"

/* Caps on untrusted counts and lengths (on top of "must fit in the bytes left"). */
#define GGUF_CAP_KEY 256u         /* bytes of a key */
#define GGUF_CAP_STR (16u << 20)  /* bytes of a string value or array string */
#define GGUF_CAP_ARR (1u << 24)   /* elements of an array */
#define GGUF_CAP_COUNT (1u << 16) /* n_kv and n_tensors */
#define GGUF_MIN_KV 14u           /* smallest key/value: 8 + 1 + 4 + 1 bytes */
#define GGUF_MIN_TENSOR 33u       /* smallest tensor info: 8 + 1 + 4 + 8 + 4 + 8 bytes */

typedef struct {
    char *key; /* NUL-terminated copy */
    gguf_type type;
    gguf_type elem_type; /* arrays */
    uint64_t n;          /* array count; 1 for scalars */
    const uint8_t *data; /* scalar bytes, string bytes or numeric array bytes in the view */
    uint64_t len;        /* string length */
    uint64_t *str_offs;  /* string arrays: view offset of each element's length prefix */
} gguf_kv;

/* Open-addressing set of names (keys or tensor names) mapping to their index. */
typedef struct {
    const char **names; /* NULL = empty slot */
    uint64_t *idx;
    uint64_t cap; /* power of two, at least twice the entries */
} gguf_hash;

struct gguf_file {
    const uint8_t *buf;
    size_t len;
    void *map; /* owned mapping (gguf_open), or NULL */
    size_t map_len;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    gguf_hash key_index;
    gguf_hash tensor_index;
};

/* Sizes the table for n names; returns nonzero when out of memory. */
int gguf_hash_init(gguf_hash *h, uint64_t n);
void gguf_hash_free(gguf_hash *h);
/* Index of name, or -1. */
int64_t gguf_hash_find(const gguf_hash *h, const char *name);
/* Adds name (the pointer is kept, not copied); the caller checked it is absent. */
void gguf_hash_insert(gguf_hash *h, const char *name, uint64_t idx);

static inline uint32_t gguf_le32(const void *p) {
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t gguf_le64(const void *p) {
    const uint8_t *b = p;
    return (uint64_t)gguf_le32(b) | (uint64_t)gguf_le32(b + 4) << 32;
}

#endif
