/* encode.c: text to token ids, the way the Hugging Face Qwen2 tokenizer does it.
 *
 * 1. The input must be valid UTF-8 (rejected with the byte offset otherwise).
 * 2. With parse_special, added tokens are cut out first, leftmost and longest match first; they
 *    are matched on the raw text, as their "normalized": false asks.
 * 3. Each stretch of text between them is NFC-normalised (utf8proc), split by the qwen2
 *    pre-tokenizer (pretok.c), and each piece is byte-pair encoded (bpe.c). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tok_internal.h"
#include "text/tokenizer.h"

typedef struct {
    const tokenizer *t;
    bpe_work work;
    int32_t **ids;
    size_t *n, *cap;
    ws_error *err;
} encoder;

static ws_status on_piece(void *ctx, const char *s, size_t len) {
    encoder *e = ctx;
    return bpe_encode_piece(e->t, &e->work, s, len, e->ids, e->n, e->cap, e->err);
}

static ws_status check_utf8(const char *text, size_t len, ws_error *err) {
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0;
    while (pos < len) {
        if (s[pos] < 0x80) {
            pos++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s + pos, (utf8proc_ssize_t)(len - pos), &cp);
        if (n <= 0)
            return ws_fail(err, WS_ERR_FORMAT,
                           "input text: invalid UTF-8 at byte offset %zu (0x%02x)", pos, s[pos]);
        pos += (size_t)n;
    }
    return WS_OK;
}

/* True when code point cp at this position is an NFC boundary that NFC leaves as it is: every
 * code point below U+0300 (combining class 0, and the second elements of compositions all lie
 * at U+0300 or above), and above that the code points with combining class 0, no decomposition
 * and no role as the second element of a composition (utf8proc marks those with comb_index >=
 * 0x8000); Hangul jamo compose algorithmically, outside those tables, so they are not. Text
 * between two such boundaries normalises on its own (Unicode UAX #15, "stable code points"). */
static bool nfc_inert(int32_t cp) {
    if (cp < 0x300) return true;
    if (cp >= 0x1100 && cp <= 0x11FF) return false;
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    return p->combining_class == 0 && p->decomp_seqindex == UINT16_MAX &&
           (p->comb_index == UINT16_MAX || p->comb_index < 0x8000);
}

/* Decodes the code point at pos (valid UTF-8) into *cp and returns its length. */
static size_t cp_at(const uint8_t *s, size_t len, size_t pos, int32_t *cp) {
    if (s[pos] < 0x80) {
        *cp = s[pos];
        return 1;
    }
    utf8proc_int32_t c = 0;
    utf8proc_ssize_t n = utf8proc_iterate(s + pos, (utf8proc_ssize_t)(len - pos), &c);
    *cp = c;
    return n > 0 ? (size_t)n : 1;
}

typedef struct {
    char *p;
    size_t n, cap;
} text_buf;

static bool buf_put(text_buf *b, const void *s, size_t n) {
    if (n == 0) return true;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + n)
            nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) return false;
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

/* NFC of s[0..len): *out is NULL when s is NFC already, else a malloc'd normalised copy. Only
 * the stretches around code points that may change go through utf8proc. */
static ws_status nfc(const char *text, size_t len, text_buf *out, ws_error *err) {
    const uint8_t *s = (const uint8_t *)text;
    size_t copied = 0, pos = 0, last_inert = 0;
    out->p = NULL;
    out->n = out->cap = 0;
    while (pos < len) {
        int32_t cp;
        if (s[pos] < 0xCC) { /* lead bytes below 0xCC (and continuation bytes) stay below U+0300 */
            if (s[pos] < 0x80 || s[pos] >= 0xC0) last_inert = pos;
            pos++;
            continue;
        }
        size_t k = cp_at(s, len, pos, &cp);
        if (nfc_inert(cp)) {
            last_inert = pos;
            pos += k;
            continue;
        }
        /* [start, end): from the boundary before this code point to the next boundary. */
        size_t start = last_inert < copied ? copied : last_inert, end = pos + k;
        while (end < len) {
            size_t k2 = cp_at(s, len, end, &cp);
            if (nfc_inert(cp)) break;
            end += k2;
        }
        utf8proc_uint8_t *norm = NULL;
        utf8proc_ssize_t n = utf8proc_map(s + start, (utf8proc_ssize_t)(end - start), &norm,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        bool ok =
            n >= 0 && buf_put(out, text + copied, start - copied) && buf_put(out, norm, (size_t)n);
        free(norm);
        if (!ok) {
            free(out->p);
            out->p = NULL;
            return ws_fail(err, n < 0 && n != UTF8PROC_ERROR_NOMEM ? WS_ERR_FORMAT : WS_ERR_NOMEM,
                           "input text: NFC normalisation failed: %s",
                           n < 0 ? utf8proc_errmsg(n) : "out of memory");
        }
        copied = pos = last_inert = end;
    }
    if (out->p && !buf_put(out, text + copied, len - copied)) {
        free(out->p);
        out->p = NULL;
        return ws_fail(err, WS_ERR_NOMEM, "input text: out of memory normalising");
    }
    return WS_OK;
}

/* Normalises and encodes text that holds no added tokens. */
static ws_status encode_plain(encoder *e, const char *s, size_t len) {
    if (len == 0) return WS_OK;
    text_buf norm;
    ws_status st = nfc(s, len, &norm, e->err);
    if (st != WS_OK) return st;
    if (!norm.p) return pretok_split(s, len, on_piece, e);
    st = pretok_split(norm.p, norm.n, on_piece, e);
    free(norm.p);
    return st;
}

/* The longest added token at text[pos..len), or NULL. */
static const tok_added *match_added(const tokenizer *t, const char *text, size_t len, size_t pos) {
    uint8_t b = (uint8_t)text[pos];
    for (uint32_t i = t->added_start[b]; i < t->added_start[b + 1]; i++) {
        const tok_added *a = &t->added[i];
        if (a->len <= len - pos && memcmp(a->text, text + pos, a->len) == 0) return a;
    }
    return NULL;
}

ws_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool parse_special,
                           int32_t **ids, size_t *n_ids, ws_error *err) {
    *ids = NULL;
    *n_ids = 0;
    size_t cap = 0;
    encoder e = {t, {0}, ids, n_ids, &cap, err};
    ws_status st = check_utf8(text, len, err);
    if (st != WS_OK) goto fail;
    if (t->add_bos && (st = tok_push_id(ids, n_ids, &cap, t->bos, err)) != WS_OK) goto fail;
    if (!parse_special) {
        st = encode_plain(&e, text, len);
        if (st != WS_OK) goto fail;
    } else {
        size_t seg = 0, pos = 0;
        while (pos < len) {
            const tok_added *a = match_added(t, text, len, pos);
            if (!a) {
                pos++;
                continue;
            }
            if ((st = encode_plain(&e, text + seg, pos - seg)) != WS_OK ||
                (st = tok_push_id(ids, n_ids, &cap, a->id, err)) != WS_OK)
                goto fail;
            pos += a->len;
            seg = pos;
        }
        if ((st = encode_plain(&e, text + seg, len - seg)) != WS_OK) goto fail;
    }
    bpe_work_free(&e.work);
    return WS_OK;
fail:
    bpe_work_free(&e.work);
    free(*ids);
    *ids = NULL;
    *n_ids = 0;
    return st;
}
