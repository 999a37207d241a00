/* vocab.c: the load-time index from token text (GGUF byte-level form) to token id.
 *
 * Loading resolves about 150k merges, three lookups each, so the index is built for few cache
 * misses: each 16-byte slot holds the id and, for texts of up to 11 bytes (nearly all of them),
 * the text itself; longer texts keep a hash tag and are compared through the token array. The
 * caller computes hashes first and prefetches slots in batches. */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "text/tok_internal.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *tok_table_alloc(size_t bytes) {
    /* Over-map by one huge page so the table can start on a huge-page boundary. */
    size_t total = bytes + HUGE_PAGE;
    char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *start = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (start > p) munmap(p, (size_t)(start - p));
    size_t tail = (size_t)(p + total - (start + bytes));
    if (tail) munmap(start + bytes, tail);
#ifdef MADV_HUGEPAGE
    madvise(start, bytes, MADV_HUGEPAGE); /* a hint: without huge pages the table still works */
#endif
    return start;
}

void tok_table_free(void *p, size_t bytes) {
    if (p) munmap(p, bytes);
}

#define SLOT_LONG 0xFF /* len marker: the text is longer than the slot holds */

uint64_t vocab_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static inline bool slot_is(const vocab_index *v, const vocab_slot *sl, const char *s, size_t n,
                           uint64_t h) {
    if (sl->len != SLOT_LONG) {
        if (sl->len != n) return false;
        for (size_t i = 0; i < n; i++) /* at most 11 bytes: cheaper inline than a call */
            if (sl->key[i] != s[i]) return false;
        return true;
    }
    uint32_t tag = (uint32_t)(h >> 32), stag;
    memcpy(&stag, sl->key, 4);
    return stag == tag && v->len[sl->id1 - 1] == n && memcmp(v->s[sl->id1 - 1], s, n) == 0;
}

int32_t vocab_index_find(const vocab_index *v, const char *s, size_t n, uint64_t h) {
    for (uint64_t i = h & v->mask;; i = (i + 1) & v->mask) {
        const vocab_slot *sl = &v->slot[i];
        if (sl->id1 == 0) return -1;
        if (slot_is(v, sl, s, n, h)) return (int32_t)sl->id1 - 1;
    }
}

void vocab_index_prefetch(const vocab_index *v, uint64_t h) {
    __builtin_prefetch(&v->slot[h & v->mask]);
}

ws_status vocab_index_build(const gguf_file *f, const char *key, uint32_t n, vocab_index *v,
                            ws_error *err) {
    uint64_t cap = 1;
    while (cap < n + n / 2)
        cap <<= 1;
    int64_t k = gguf_find_key(f, key);
    v->s = malloc(n * sizeof *v->s);
    v->len = malloc(n * sizeof *v->len);
    v->slot = tok_table_alloc(cap * sizeof *v->slot);
    v->mask = cap - 1; /* vocab_index_free sizes the table from the mask */
    if (k < 0 || !v->s || !v->len || !v->slot)
        return ws_fail(err, k < 0 ? WS_ERR_NOT_FOUND : WS_ERR_NOMEM, "%s: %s", key,
                       k < 0 ? "missing" : "out of memory");
    uint64_t *hash = malloc(n * sizeof *hash);
    if (!hash) return ws_fail(err, WS_ERR_NOMEM, "%s: out of memory", key);
    for (uint32_t id = 0; id < n; id++) {
        const char *s;
        uint64_t len;
        if (gguf_kv_arr_str(f, (uint64_t)k, id, &s, &len) != WS_OK || len > UINT32_MAX) {
            free(hash);
            return ws_fail(err, WS_ERR_FORMAT, "%s[%u]: unreadable", key, id);
        }
        v->s[id] = s;
        v->len[id] = (uint32_t)len;
        hash[id] = vocab_hash(s, len);
    }
    /* Inserts run a fixed distance behind the prefetches of their slots. */
    enum { AHEAD = 16 };
    for (uint32_t id = 0; id < n; id++) {
        if (id + AHEAD < n) vocab_index_prefetch(v, hash[id + AHEAD]);
        const char *s = v->s[id];
        size_t len = v->len[id];
        uint64_t h = hash[id], i = h & v->mask;
        /* A repeated text keeps its lowest id. */
        while (v->slot[i].id1 != 0 && !slot_is(v, &v->slot[i], s, len, h))
            i = (i + 1) & v->mask;
        vocab_slot *sl = &v->slot[i];
        if (sl->id1 != 0) continue;
        sl->id1 = id + 1;
        if (len <= sizeof sl->key) {
            sl->len = (uint8_t)len;
            memcpy(sl->key, s, len);
        } else {
            uint32_t tag = (uint32_t)(h >> 32);
            sl->len = SLOT_LONG;
            memcpy(sl->key, &tag, 4);
        }
    }
    free(hash);
    return WS_OK;
}

void vocab_index_free(vocab_index *v) {
    free(v->s);
    free(v->len);
    if (v->slot) tok_table_free(v->slot, (v->mask + 1) * sizeof *v->slot);
    memset(v, 0, sizeof *v);
}
