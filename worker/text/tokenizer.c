/* tokenizer.c: loading the Qwen2 byte-level BPE vocabulary from GGUF metadata, and the accessors.
 *
 * What is kept: every token's decoded bytes (the byte-level map undone for BPE tokens, the text as
 * it is for added tokens), the token types, a hash table from (left id, right id) to merge rank and
 * result, the token of each single byte, and the added tokens that encode matches as whole
 * strings. Encoding is in encode.c, decoding in detok.c. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"
#include "text/tokenizer.h"

/* ---- the GPT-2 byte-to-unicode map ----
 * Printable bytes (33..126, 161..172, 174..255) stand for themselves; the other 68 bytes map, in
 * order, to U+0100 and up. */
static int32_t byte_to_cp(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    int32_t k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) k++;
    return 256 + k;
}

/* Inverse of byte_to_cp: the byte for a code point, or -1. */
static void build_cp_to_byte(int16_t inv[324]) {
    for (int i = 0; i < 324; i++)
        inv[i] = -1;
    for (int b = 0; b < 256; b++)
        inv[byte_to_cp((uint8_t)b)] = (int16_t)b;
}

static size_t put_utf8(char *out, int32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2; /* the map's code points are all below U+0800 */
}

/* ---- loading ---- */

/* Hugging Face marks these Qwen2 added tokens non-special (skip_special_tokens keeps them), while
 * GGUF converters type them CONTROL because they look like <|...|> markers. The token type alone
 * cannot tell, so they are named here to keep decoding identical to the reference. */
static const char *const shown_control[] = {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                                            "<|fim_pad|>",    "<|repo_name|>",  "<|file_sep|>"};

static bool is_shown_control(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof shown_control / sizeof shown_control[0]; i++)
        if (strlen(shown_control[i]) == n && memcmp(shown_control[i], s, n) == 0) return true;
    return false;
}

static ws_status check_models(const gguf_file *f, ws_error *err) {
    const char *s;
    uint64_t n;
    ws_status st = gguf_get_str(f, "tokenizer.ggml.model", &s, &n, err);
    if (st == WS_ERR_NOT_FOUND)
        return ws_fail(err, WS_ERR_FORMAT, "tokenizer.ggml.model: missing (no vocabulary)");
    if (st != WS_OK) return st;
    if (n != 4 || memcmp(s, "gpt2", 4) != 0)
        return ws_fail(err, WS_ERR_UNSUPPORTED,
                       "tokenizer.ggml.model '%.*s': only 'gpt2' (byte-level BPE) is supported",
                       (int)(n > 64 ? 64 : n), s);
    st = gguf_get_str(f, "tokenizer.ggml.pre", &s, &n, err);
    if (st == WS_ERR_NOT_FOUND)
        return ws_fail(err, WS_ERR_UNSUPPORTED,
                       "tokenizer.ggml.pre: missing; only the 'qwen2' pre-tokenizer is supported");
    if (st != WS_OK) return st;
    if (n != 5 || memcmp(s, "qwen2", 5) != 0)
        return ws_fail(err, WS_ERR_UNSUPPORTED,
                       "tokenizer.ggml.pre '%.*s': only the 'qwen2' pre-tokenizer is supported",
                       (int)(n > 64 ? 64 : n), s);
    return WS_OK;
}

/* Reads token types (tokenizer.ggml.token_type, INT32 per token) and the special ids. */
static ws_status load_types(const gguf_file *f, tokenizer *t, ws_error *err) {
    gguf_type et;
    uint64_t n;
    const void *data;
    ws_status st = gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &n, &data, err);
    if (st != WS_OK) return st;
    if (et != GGUF_TYPE_INT32 || n != t->n_vocab)
        return ws_fail(err, WS_ERR_FORMAT,
                       "tokenizer.ggml.token_type: %s[%llu], expected int32[%u]",
                       gguf_type_name(et), (unsigned long long)n, t->n_vocab);
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        int32_t v;
        memcpy(&v, (const char *)data + 4 * (size_t)i, 4);
        if (v < TOK_TYPE_UNDEFINED || v > TOK_TYPE_BYTE)
            return ws_fail(err, WS_ERR_FORMAT, "tokenizer.ggml.token_type[%u]: %d is not a type", i,
                           v);
        t->type[i] = (uint8_t)v;
    }
    const char *keys[2] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.bos_token_id"};
    int32_t *dst[2] = {&t->eos, &t->bos};
    for (int k = 0; k < 2; k++) {
        int64_t v;
        *dst[k] = -1;
        st = gguf_get_int(f, keys[k], &v, err);
        if (st == WS_ERR_NOT_FOUND) continue;
        if (st != WS_OK) return st;
        if (v < 0 || v >= t->n_vocab)
            return ws_fail(err, WS_ERR_FORMAT, "%s: %lld outside the vocabulary of %u", keys[k],
                           (long long)v, t->n_vocab);
        *dst[k] = (int32_t)v;
    }
    st = gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err);
    if (st == WS_ERR_NOT_FOUND)
        t->add_bos = false;
    else if (st != WS_OK)
        return st;
    if (t->add_bos && t->bos < 0)
        return ws_fail(err, WS_ERR_FORMAT, "tokenizer.ggml.add_bos_token set without a bos id");
    return WS_OK;
}

/* Decodes every token into t->bytes and decides which tokens decode hides. */
static ws_status load_bytes(tokenizer *t, const vocab_index *v, ws_error *err) {
    int16_t inv[324];
    build_cp_to_byte(inv);
    size_t total = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        total += v->len[i];
    t->bytes = malloc(total ? total : 1);
    if (!t->bytes) return ws_fail(err, WS_ERR_NOMEM, "tokenizer: out of memory for token text");
    size_t o = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        const uint8_t *s = (const uint8_t *)v->s[i];
        size_t n = v->len[i], start = o;
        uint8_t ty = t->type[i];
        bool raw = ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNUSED;
        for (size_t k = 0; !raw && k < n;) {
            /* Byte-level tokens hold code points below U+0144 only: one or two bytes. */
            int32_t cp = -1;
            if (s[k] < 0x80) {
                cp = s[k];
                k += 1;
            } else if ((s[k] & 0xE0) == 0xC0 && k + 1 < n && (s[k + 1] & 0xC0) == 0x80) {
                cp = (s[k] & 0x1F) << 6 | (s[k + 1] & 0x3F);
                k += 2;
            }
            if (cp < 0 || cp >= 324 || inv[cp] < 0) {
                raw = true; /* not byte-level text: the token's bytes stand as they are */
                o = start;
                break;
            }
            t->bytes[o++] = (char)inv[cp];
        }
        if (raw) {
            memcpy(t->bytes + o, s, n);
            o += n;
        }
        /* tokenizer.h promises at most 256 bytes per token (detok_push's buffer bound). */
        if (o - start > TOK_MAX_BYTES)
            return ws_fail(err, WS_ERR_UNSUPPORTED,
                           "tokenizer.ggml.tokens[%u]: %zu bytes, longer than %d", i, o - start,
                           TOK_MAX_BYTES);
        t->byte_off[i + 1] = (uint32_t)o;
        t->hidden[i] = (ty == TOK_TYPE_CONTROL && !is_shown_control((const char *)s, n)) ||
                       ty == TOK_TYPE_UNUSED;
    }
    if (o > UINT32_MAX) return ws_fail(err, WS_ERR_FORMAT, "tokenizer: token text too large");
    return WS_OK;
}

static int cmp_added(const void *a, const void *b) {
    const tok_added *x = a, *y = b;
    uint8_t fx = (uint8_t)x->text[0], fy = (uint8_t)y->text[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Collects the added tokens (CONTROL and USER_DEFINED) that encode matches as whole strings. */
static ws_status load_added(tokenizer *t, ws_error *err) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->type[i] == TOK_TYPE_CONTROL || t->type[i] == TOK_TYPE_USER_DEFINED) n++;
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return ws_fail(err, WS_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (t->type[i] != TOK_TYPE_CONTROL && t->type[i] != TOK_TYPE_USER_DEFINED) continue;
        uint32_t len = t->byte_off[i + 1] - t->byte_off[i];
        if (len == 0) continue; /* an empty text can never be matched */
        t->added[t->n_added++] = (tok_added){(int32_t)i, len, t->bytes + t->byte_off[i]};
    }
    qsort(t->added, t->n_added, sizeof *t->added, cmp_added);
    uint32_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < t->n_added && (uint8_t)t->added[k].text[0] < b)
            k++;
        t->added_start[b] = b == 256 ? t->n_added : k;
    }
    return WS_OK;
}

/* One merge being resolved: the texts of its halves and their hashes. */
typedef struct {
    const char *a, *b;
    size_t la, lb;
    uint64_t ha, hb, hab;
    char ab[512];
} merge_job;

static ws_status merge_parse(const gguf_file *f, int64_t key, uint64_t r, merge_job *j,
                             ws_error *err) {
    const char *s;
    uint64_t len;
    if (gguf_kv_arr_str(f, (uint64_t)key, r, &s, &len) != WS_OK)
        return ws_fail(err, WS_ERR_FORMAT, "tokenizer.ggml.merges[%llu]: unreadable",
                       (unsigned long long)r);
    const char *sp = memchr(s, ' ', len);
    j->a = s;
    j->la = sp ? (size_t)(sp - s) : 0;
    j->b = sp + 1;
    j->lb = sp ? len - j->la - 1 : 0;
    if (!sp || j->la == 0 || j->lb == 0 || j->la + j->lb > sizeof j->ab)
        return ws_fail(err, WS_ERR_FORMAT, "tokenizer.ggml.merges[%llu]: '%.*s' is not 'A B'",
                       (unsigned long long)r, (int)(len > 64 ? 64 : len), s);
    memcpy(j->ab, j->a, j->la);
    memcpy(j->ab + j->la, j->b, j->lb);
    j->ha = vocab_hash(j->a, j->la);
    j->hb = vocab_hash(j->b, j->lb);
    j->hab = vocab_hash(j->ab, j->la + j->lb);
    return WS_OK;
}

/* Resolves every merge "A B" to ids and fills the merge table. The lookups go in batches whose
 * table slots are prefetched first: resolving is bound by cache misses. */
static ws_status load_merges(const gguf_file *f, tokenizer *t, const vocab_index *v,
                             ws_error *err) {
    enum { BATCH = 16 };
    gguf_type et;
    uint64_t n;
    const void *data;
    ws_status st = gguf_get_arr(f, "tokenizer.ggml.merges", &et, &n, &data, err);
    if (st != WS_OK) return st;
    if (et != GGUF_TYPE_STRING || n >= (uint64_t)INT32_MAX)
        return ws_fail(err, WS_ERR_FORMAT, "tokenizer.ggml.merges: %s[%llu], expected strings",
                       gguf_type_name(et), (unsigned long long)n);
    uint64_t cap = 1;
    while (cap < n + n / 2 + 1)
        cap <<= 1;
    t->merges = tok_table_alloc(cap * sizeof *t->merges);
    t->merge_mask = cap - 1; /* tokenizer_free sizes the table from the mask */
    merge_job *jobs = malloc(BATCH * sizeof *jobs);
    if (!t->merges || !jobs) {
        free(jobs);
        return ws_fail(err, WS_ERR_NOMEM, "tokenizer: out of memory for merges");
    }
    int64_t key = gguf_find_key(f, "tokenizer.ggml.merges");
    for (uint64_t r0 = 0; r0 < n && st == WS_OK; r0 += BATCH) {
        uint64_t k = n - r0 < BATCH ? n - r0 : BATCH;
        int32_t ids[BATCH][3];
        for (uint64_t j = 0; j < k && st == WS_OK; j++) {
            st = merge_parse(f, key, r0 + j, &jobs[j], err);
            if (st != WS_OK) break;
            vocab_index_prefetch(v, jobs[j].ha);
            vocab_index_prefetch(v, jobs[j].hb);
            vocab_index_prefetch(v, jobs[j].hab);
        }
        for (uint64_t j = 0; j < k && st == WS_OK; j++) {
            merge_job *m = &jobs[j];
            ids[j][0] = vocab_index_find(v, m->a, m->la, m->ha);
            ids[j][1] = vocab_index_find(v, m->b, m->lb, m->hb);
            ids[j][2] = vocab_index_find(v, m->ab, m->la + m->lb, m->hab);
            if (ids[j][0] < 0 || ids[j][1] < 0 || ids[j][2] < 0)
                st = ws_fail(err, WS_ERR_FORMAT,
                             "tokenizer.ggml.merges[%llu]: '%.*s %.*s' names a token not in the "
                             "vocabulary",
                             (unsigned long long)(r0 + j), (int)(m->la > 32 ? 32 : m->la), m->a,
                             (int)(m->lb > 32 ? 32 : m->lb), m->b);
            else
                bpe_merge_prefetch(t, ids[j][0], ids[j][1]);
        }
        for (uint64_t j = 0; j < k && st == WS_OK; j++) {
            tok_merge *m = bpe_merge_slot(t, ids[j][0], ids[j][1]);
            m->key = tok_pair_key(ids[j][0], ids[j][1]);
            /* A repeated pair takes its later rank, as the reference's merge map does. */
            m->rank = (uint32_t)(r0 + j);
            m->result = ids[j][2];
        }
    }
    free(jobs);
    return st;
}

/* The token of each single byte. */
static ws_status load_byte_ids(tokenizer *t, const vocab_index *v, ws_error *err) {
    for (int b = 0; b < 256; b++) {
        char s[2];
        size_t n = put_utf8(s, byte_to_cp((uint8_t)b));
        t->byte_id[b] = vocab_index_find(v, s, n, vocab_hash(s, n));
        if (t->byte_id[b] < 0)
            return ws_fail(err, WS_ERR_FORMAT, "tokenizer: no token for byte 0x%02x", b);
    }
    return WS_OK;
}

ws_status tokenizer_load(const gguf_file *f, tokenizer **out, ws_error *err) {
    *out = NULL;
    vocab_index v = {0};
    tokenizer *t = NULL;
    gguf_type et;
    uint64_t n;
    const void *data;
    ws_status st = check_models(f, err);
    if (st != WS_OK) goto fail;
    st = gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n, &data, err);
    if (st != WS_OK) goto fail;
    if (et != GGUF_TYPE_STRING || n < 256 || n >= (uint64_t)INT32_MAX) {
        st = ws_fail(err, WS_ERR_FORMAT, "tokenizer.ggml.tokens: %s[%llu], expected >= 256 strings",
                     gguf_type_name(et), (unsigned long long)n);
        goto fail;
    }
    t = calloc(1, sizeof *t);
    if (!t) {
        st = ws_fail(err, WS_ERR_NOMEM, "tokenizer: out of memory");
        goto fail;
    }
    t->n_vocab = (uint32_t)n;
    t->type = malloc(n);
    t->hidden = malloc(n * sizeof *t->hidden);
    t->byte_off = calloc(n + 1, sizeof *t->byte_off);
    if (!t->type || !t->hidden || !t->byte_off) {
        st = ws_fail(err, WS_ERR_NOMEM, "tokenizer: out of memory for %llu tokens",
                     (unsigned long long)n);
        goto fail;
    }
    if ((st = vocab_index_build(f, "tokenizer.ggml.tokens", t->n_vocab, &v, err)) ||
        (st = load_types(f, t, err)) || (st = load_bytes(t, &v, err)) ||
        (st = load_added(t, err)) || (st = load_byte_ids(t, &v, err)) ||
        (st = load_merges(f, t, &v, err)))
        goto fail;
    vocab_index_free(&v);
    *out = t;
    return WS_OK;
fail:
    ws_error_prefix(err, "loading tokenizer: ");
    vocab_index_free(&v);
    tokenizer_free(t);
    return st;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    free(t->bytes);
    free(t->byte_off);
    free(t->type);
    free(t->hidden);
    if (t->merges) tok_table_free(t->merges, (t->merge_mask + 1) * sizeof *t->merges);
    free(t->added);
    free(t);
}

uint32_t tokenizer_n_vocab(const tokenizer *t) {
    return t->n_vocab;
}

int32_t tokenizer_eos(const tokenizer *t) {
    return t->eos;
}

uint32_t tokenizer_stop_ids(const tokenizer *t, int32_t *ids, uint32_t cap) {
    int32_t cand[3] = {t->eos, tokenizer_find_special(t, "<|im_end|>"),
                       tokenizer_find_special(t, "<|endoftext|>")};
    uint32_t n = 0;
    for (int i = 0; i < 3; i++) {
        if (cand[i] < 0) continue;
        bool dup = false;
        for (uint32_t j = 0; j < n && j < cap; j++)
            dup |= ids[j] == cand[i];
        if (dup) continue;
        if (n < cap) ids[n] = cand[i];
        n++;
    }
    return n;
}

int32_t tokenizer_find_special(const tokenizer *t, const char *text) {
    size_t n = strlen(text);
    for (uint32_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].text, text, n) == 0) return t->added[i].id;
    return -1;
}

bool tokenizer_is_special(const tokenizer *t, int32_t id) {
    return id >= 0 && (uint32_t)id < t->n_vocab && t->hidden[id];
}
