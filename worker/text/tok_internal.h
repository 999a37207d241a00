/* tok_internal.h: what the tokenizer's modules share and nothing outside worker/text needs: the
 * tokenizer struct, the pre-tokenizer split (pretok.c), BPE over token ids (bpe.c) and the byte-
 * level map (tokenizer.c). */
#ifndef WORKER_TEXT_TOK_INTERNAL_H
#define WORKER_TEXT_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/gguf.h"

/* GGUF token types (tokenizer.ggml.token_type), as llama.cpp's converter writes them. */
enum {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

#define TOK_MAX_BYTES 256 /* longest token text accepted, in decoded bytes */

/* One merge rule: the pair (left, right) of token ids becomes `result`; lower rank merges first. */
typedef struct {
    uint64_t key; /* tok_pair_key(left, right); 0 marks an empty slot */
    uint32_t rank;
    int32_t result;
} tok_merge;

/* The merge table key of a pair of ids; never 0. */
static inline uint64_t tok_pair_key(int32_t left, int32_t right) {
    return (uint64_t)((uint32_t)left + 1) << 32 | (uint32_t)right;
}

/* Zeroed memory for a large hash table, from the kernel directly and backed by huge pages where
 * the system allows it: the tables are touched at random once while loading, and 4 KiB page
 * faults would dominate the load time. NULL when out of memory. */
void *tok_table_alloc(size_t bytes);
void tok_table_free(void *p, size_t bytes); /* accepts NULL */

/* An added token that encode matches as a whole string (when asked to parse special tokens). */
typedef struct {
    int32_t id;
    uint32_t len;
    const char *text; /* into tokenizer.bytes */
} tok_added;

struct tokenizer {
    uint32_t n_vocab;
    char *bytes;          /* decoded bytes of every token, back to back */
    uint32_t *byte_off;   /* (n_vocab + 1) offsets into bytes */
    uint8_t *type;        /* (n_vocab) TOK_TYPE_* */
    bool *hidden;         /* (n_vocab) hidden by decode without show_special */
    int32_t byte_id[256]; /* token of each single byte */

    tok_merge *merges; /* open-addressing table, mask + 1 slots */
    uint64_t merge_mask;

    tok_added *added; /* sorted by first byte, then longest first */
    uint32_t n_added;
    uint32_t added_start[257]; /* added[added_start[b] .. added_start[b + 1]) start with byte b */

    int32_t eos, bos;
    bool add_bos;
};

/* ---- vocab.c: token text -> id, used while loading ---- */

typedef struct {
    uint32_t id1; /* id + 1; 0: empty */
    uint8_t len;  /* text length, or 0xFF when key holds a hash tag instead */
    char key[11];
} vocab_slot;

typedef struct {
    const char **s;   /* (n) token texts, borrowed from the GGUF file */
    uint32_t *len;    /* (n) */
    vocab_slot *slot; /* mask + 1 slots, linear probing */
    uint64_t mask;
} vocab_index;

/* Indexes the string array `key` of f (n entries; the file must outlive the index). */
ws_status vocab_index_build(const gguf_file *f, const char *key, uint32_t n, vocab_index *v,
                            ws_error *err);
uint64_t vocab_hash(const char *s, size_t n);
/* The id of text s[0..n) with hash h = vocab_hash(s, n), or -1. */
int32_t vocab_index_find(const vocab_index *v, const char *s, size_t n, uint64_t h);
void vocab_index_prefetch(const vocab_index *v, uint64_t h);
void vocab_index_free(vocab_index *v); /* accepts a zeroed index */

/* ---- pretok.c: the qwen2 pre-tokenizer split ---- */

/* Calls piece(ctx, start, len) for each piece of s[0..len) (valid UTF-8, NFC already applied)
 * under the qwen2 split pattern, in order; the pieces tile the input. A non-OK return from piece
 * stops the split and is returned. */
typedef ws_status (*pretok_piece_fn)(void *ctx, const char *s, size_t len);
ws_status pretok_split(const char *s, size_t len, pretok_piece_fn piece, void *ctx);

/* ---- bpe.c: byte-pair merging over token ids ---- */

/* Working memory reused across pieces (one per encode call), and a cache of the ids of short
 * pieces already encoded in this call: text repeats words, and BPE of a piece depends on the piece
 * alone. */
typedef struct {
    struct bpe_sym *sym;
    struct bpe_cand *heap;
    size_t cap_sym, cap_heap;
    struct bpe_cached *cache; /* open addressing, cache_mask + 1 slots */
    size_t cache_mask, cache_count;
    char *keys;      /* piece texts of the cache, back to back */
    int32_t *cached; /* their ids, back to back */
    size_t n_keys, cap_keys, n_cached, cap_cached;
} bpe_work;

/* Merges the byte tokens of one piece (len >= 1 bytes) by rank and appends the resulting ids to
 * the growing array *ids (*n entries, *cap allocated). */
ws_status bpe_encode_piece(const struct tokenizer *t, bpe_work *w, const char *piece, size_t len,
                           int32_t **ids, size_t *n, size_t *cap, ws_error *err);
void bpe_work_free(bpe_work *w);

/* The table slot of the pair (left, right): its entry, or the empty slot where it belongs (key
 * 0). The table always has empty slots. */
tok_merge *bpe_merge_slot(const struct tokenizer *t, int32_t left, int32_t right);
void bpe_merge_prefetch(const struct tokenizer *t, int32_t left, int32_t right);
/* Looks up the merge of (left, right); NULL when there is none. */
const tok_merge *bpe_find_merge(const struct tokenizer *t, int32_t left, int32_t right);

/* Appends one id to a growing array. */
ws_status tok_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id, ws_error *err);

#endif
