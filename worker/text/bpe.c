/* bpe.c: byte-pair encoding of one pre-tokenized piece, over token ids.
 *
 * A piece starts as one symbol per byte (the byte's token). Candidate merges of neighbouring
 * symbols sit in a binary heap ordered by (rank, position); the lowest is applied, which is the
 * Hugging Face order (lowest rank first, leftmost among equals). Symbols form a linked list, and a
 * popped candidate whose symbols changed since it was pushed is skipped, so a piece of n bytes
 * costs O(n log n) however long it is. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

struct bpe_sym {
    int32_t id;
    int32_t prev, next; /* neighbours in the list; -1 at the ends */
};

struct bpe_cand {
    uint32_t rank;
    int32_t pos;         /* index of the left symbol */
    int32_t left, right; /* the ids it was pushed for */
    int32_t result;
};

struct bpe_cached {
    uint64_t hash; /* 0: empty */
    uint32_t key_off, ids_off;
    uint8_t key_len, n_ids;
};

/* Pieces of CACHE_MIN_LEN..CACHE_MAX_LEN bytes are cached, up to CACHE_MAX_ENTRIES per call. */
enum { CACHE_MIN_LEN = 3, CACHE_MAX_LEN = 32, CACHE_MAX_ENTRIES = 1 << 16 };

static inline uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

tok_merge *bpe_merge_slot(const struct tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = tok_pair_key(left, right);
    for (uint64_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        tok_merge *m = &t->merges[i];
        if (m->key == key || m->key == 0) return m;
    }
}

void bpe_merge_prefetch(const struct tokenizer *t, int32_t left, int32_t right) {
    __builtin_prefetch(&t->merges[hash_u64(tok_pair_key(left, right)) & t->merge_mask]);
}

const tok_merge *bpe_find_merge(const struct tokenizer *t, int32_t left, int32_t right) {
    const tok_merge *m = bpe_merge_slot(t, left, right);
    return m->key == 0 ? NULL : m;
}

ws_status tok_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id, ws_error *err) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, nc * sizeof *p);
        if (!p) return ws_fail(err, WS_ERR_NOMEM, "tokenizer: out of memory for %zu ids", nc);
        *ids = p;
        *cap = nc;
    }
    (*ids)[(*n)++] = id;
    return WS_OK;
}

static inline bool cand_less(const struct bpe_cand *a, const struct bpe_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct bpe_cand *h, size_t *n, struct bpe_cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static struct bpe_cand heap_pop(struct bpe_cand *h, size_t *n) {
    struct bpe_cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct bpe_cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) {
            m = l;
            best = &h[l];
        }
        if (r < *n && cand_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0) h[i] = last;
    return top;
}

/* Pushes the merge of symbols a and its right neighbour, when there is one. */
static void push_pair(const struct tokenizer *t, bpe_work *w, size_t *nh, int32_t a) {
    if (a < 0) return;
    int32_t b = w->sym[a].next;
    if (b < 0) return;
    const tok_merge *m = bpe_find_merge(t, w->sym[a].id, w->sym[b].id);
    if (!m) return;
    struct bpe_cand c = {m->rank, a, w->sym[a].id, w->sym[b].id, m->result};
    heap_push(w->heap, nh, c);
}

static ws_status work_reserve(bpe_work *w, size_t n, ws_error *err) {
    if (n > (size_t)INT32_MAX)
        return ws_fail(err, WS_ERR_NOMEM, "tokenizer: piece of %zu bytes", n);
    if (w->cap_sym < n) {
        size_t nc = n < 256 ? 256 : n;
        struct bpe_sym *s = realloc(w->sym, nc * sizeof *s);
        if (!s) return ws_fail(err, WS_ERR_NOMEM, "tokenizer: out of memory for a piece");
        w->sym = s;
        w->cap_sym = nc;
    }
    /* Each merge pushes at most two candidates, after the n - 1 initial ones. */
    size_t nh = 3 * n;
    if (w->cap_heap < nh) {
        struct bpe_cand *h = realloc(w->heap, nh * sizeof *h);
        if (!h) return ws_fail(err, WS_ERR_NOMEM, "tokenizer: out of memory for a piece");
        w->heap = h;
        w->cap_heap = nh;
    }
    return WS_OK;
}

static ws_status merge_piece(const struct tokenizer *t, bpe_work *w, const char *piece, size_t len,
                             int32_t **ids, size_t *n, size_t *cap, ws_error *err) {
    const uint8_t *s = (const uint8_t *)piece;
    ws_status st = work_reserve(w, len, err);
    if (st != WS_OK) return st;
    for (size_t i = 0; i < len; i++) {
        w->sym[i].id = t->byte_id[s[i]];
        w->sym[i].prev = (int32_t)i - 1;
        w->sym[i].next = i + 1 < len ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < len; i++)
        push_pair(t, w, &nh, (int32_t)i);
    while (nh > 0) {
        struct bpe_cand c = heap_pop(w->heap, &nh);
        struct bpe_sym *a = &w->sym[c.pos];
        if (a->id != c.left || a->next < 0) continue; /* a was merged since */
        struct bpe_sym *b = &w->sym[a->next];
        if (b->id != c.right) continue;
        a->id = c.result;
        a->next = b->next;
        if (b->next >= 0) w->sym[b->next].prev = c.pos;
        b->id = -1; /* dead: no candidate can match it again */
        push_pair(t, w, &nh, a->prev);
        push_pair(t, w, &nh, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
        st = tok_push_id(ids, n, cap, w->sym[i].id, err);
        if (st != WS_OK) return st;
    }
    return WS_OK;
}

static uint64_t piece_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h | 1; /* never 0, the empty mark */
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

/* The cache slot for (piece, h): its entry, or the empty slot where it belongs. */
static struct bpe_cached *cache_slot(bpe_work *w, const char *piece, size_t len, uint64_t h) {
    for (size_t i = h & w->cache_mask;; i = (i + 1) & w->cache_mask) {
        struct bpe_cached *c = &w->cache[i];
        if (c->hash == 0) return c;
        if (c->hash == h && c->key_len == len && memcmp(w->keys + c->key_off, piece, len) == 0)
            return c;
    }
}

/* Remembers ids[0..n_ids) for piece; a cache that is full or cannot grow is left as it is. */
static void cache_put(bpe_work *w, struct bpe_cached *slot, const char *piece, size_t len,
                      uint64_t h, const int32_t *ids, size_t n_ids) {
    if (w->cache_count >= CACHE_MAX_ENTRIES || n_ids > UINT8_MAX) return;
    if (!grow((void **)&w->keys, &w->cap_keys, w->n_keys + len, 1) ||
        !grow((void **)&w->cached, &w->cap_cached, w->n_cached + n_ids, sizeof *w->cached))
        return;
    *slot = (struct bpe_cached){h, (uint32_t)w->n_keys, (uint32_t)w->n_cached, (uint8_t)len,
                                (uint8_t)n_ids};
    memcpy(w->keys + w->n_keys, piece, len);
    memcpy(w->cached + w->n_cached, ids, n_ids * sizeof *ids);
    w->n_keys += len;
    w->n_cached += n_ids;
    w->cache_count++;
}

/* Keeps the cache table at most half full, doubling it (from 256 slots) as it fills. False when
 * it cannot grow: encoding goes on without the cache. */
static bool cache_reserve(bpe_work *w) {
    size_t slots = w->cache ? w->cache_mask + 1 : 0;
    if (w->cache && 2 * (w->cache_count + 1) <= slots) return true;
    if (w->cache_count >= CACHE_MAX_ENTRIES) return true; /* full: lookups only */
    size_t ns = slots ? 2 * slots : 256;
    struct bpe_cached *old = w->cache, *nt = calloc(ns, sizeof *nt);
    if (!nt) return false;
    w->cache = nt;
    w->cache_mask = ns - 1;
    for (size_t i = 0; i < slots; i++) {
        if (old[i].hash == 0) continue;
        size_t j = old[i].hash & w->cache_mask;
        while (nt[j].hash != 0)
            j = (j + 1) & w->cache_mask;
        nt[j] = old[i];
    }
    free(old);
    return true;
}

ws_status bpe_encode_piece(const struct tokenizer *t, bpe_work *w, const char *piece, size_t len,
                           int32_t **ids, size_t *n, size_t *cap, ws_error *err) {
    if (len == 1) return tok_push_id(ids, n, cap, t->byte_id[(uint8_t)piece[0]], err);
    if (len < CACHE_MIN_LEN || len > CACHE_MAX_LEN)
        return merge_piece(t, w, piece, len, ids, n, cap, err);
    if (!cache_reserve(w)) return merge_piece(t, w, piece, len, ids, n, cap, err);
    uint64_t h = piece_hash(piece, len);
    struct bpe_cached *c = cache_slot(w, piece, len, h);
    if (c->hash != 0) {
        for (size_t i = 0; i < c->n_ids; i++) {
            ws_status st = tok_push_id(ids, n, cap, w->cached[c->ids_off + i], err);
            if (st != WS_OK) return st;
        }
        return WS_OK;
    }
    size_t first = *n;
    ws_status st = merge_piece(t, w, piece, len, ids, n, cap, err);
    if (st == WS_OK) cache_put(w, c, piece, len, h, *ids + first, *n - first);
    return st;
}

void bpe_work_free(bpe_work *w) {
    if (!w) return;
    free(w->sym);
    free(w->heap);
    free(w->cache);
    free(w->keys);
    free(w->cached);
    memset(w, 0, sizeof *w);
}
