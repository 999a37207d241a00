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

/* Normalises and encodes text that holds no added tokens. */
static ws_status encode_plain(encoder *e, const char *s, size_t len) {
    if (len == 0) return WS_OK;
    bool ascii = true; /* ASCII text is already NFC */
    for (size_t i = 0; i < len && ascii; i++)
        ascii = (uint8_t)s[i] < 0x80;
    if (ascii) return pretok_split(s, len, on_piece, e);
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0) {
        free(nfc);
        return ws_fail(e->err, n == UTF8PROC_ERROR_NOMEM ? WS_ERR_NOMEM : WS_ERR_FORMAT,
                       "input text: NFC normalisation failed: %s", utf8proc_errmsg(n));
    }
    ws_status st = pretok_split((const char *)nfc, (size_t)n, on_piece, e);
    free(nfc);
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
