/* detok.c: token ids back to bytes, at once or one token at a time for streaming.
 *
 * Decoding is exact: a token's bytes are the byte-level map undone (tokenizer.c precomputes
 * them), so the concatenation may split a UTF-8 sequence between tokens. The stream holds back an
 * incomplete sequence at the end of what it has seen until a later token completes it. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"
#include "text/tokenizer.h"

/* The bytes decode shows for id, or NULL (with WS_ERR_RANGE) for an id outside the vocabulary. */
static const char *token_span(const tokenizer *t, int32_t id, bool show_special, size_t *n,
                              ws_error *err) {
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        ws_fail(err, WS_ERR_RANGE, "token id %d outside the vocabulary of %u", id, t->n_vocab);
        return NULL;
    }
    *n = t->hidden[id] && !show_special ? 0 : t->byte_off[id + 1] - t->byte_off[id];
    return t->bytes + t->byte_off[id];
}

ws_status tokenizer_token_bytes(const tokenizer *t, int32_t id, bool show_special, char *buf,
                                size_t cap, size_t *n, ws_error *err) {
    size_t len;
    *n = 0;
    const char *s = token_span(t, id, show_special, &len, err);
    if (!s) return WS_ERR_RANGE;
    if (len > cap)
        return ws_fail(err, WS_ERR_INVALID_ARG, "token %d has %zu bytes, buffer holds %zu", id, len,
                       cap);
    memcpy(buf, s, len);
    *n = len;
    return WS_OK;
}

ws_status tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, bool show_special,
                           char **out, size_t *len, ws_error *err) {
    *out = NULL;
    *len = 0;
    size_t total = 0, k;
    for (size_t i = 0; i < n; i++) {
        if (!token_span(t, ids[i], show_special, &k, err)) {
            ws_error_prefix(err, "decoding id %zu of %zu: ", i, n);
            return WS_ERR_RANGE;
        }
        total += k;
    }
    char *buf = malloc(total + 1);
    if (!buf) return ws_fail(err, WS_ERR_NOMEM, "decode: out of memory for %zu bytes", total);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = token_span(t, ids[i], show_special, &k, err);
        memcpy(buf + o, s, k);
        o += k;
    }
    buf[o] = '\0';
    *out = buf;
    *len = o;
    return WS_OK;
}

void detok_init(detok_stream *d, const tokenizer *t, bool show_special) {
    d->tok = t;
    d->show_special = show_special;
    d->n_pending = 0;
}

/* Bytes at the end of s[0..n) that start a UTF-8 sequence not yet complete (0..3). */
static size_t incomplete_tail(const uint8_t *s, size_t n) {
    size_t j = n;
    while (j > 0 && n - j < 3 && (s[j - 1] & 0xC0) == 0x80)
        j--;
    if (j == 0) return 0;
    uint8_t lead = s[j - 1];
    size_t need = lead >= 0xF0 && lead <= 0xF4   ? 4
                  : lead >= 0xE0 && lead <= 0xEF ? 3
                  : lead >= 0xC2 && lead <= 0xDF ? 2
                                                 : 1;
    size_t have = n - (j - 1);
    return need > have ? have : 0;
}

ws_status detok_push(detok_stream *d, int32_t id, char *out, size_t cap, size_t *n, ws_error *err) {
    size_t len;
    *n = 0;
    const char *s = token_span(d->tok, id, d->show_special, &len, err);
    if (!s) return WS_ERR_RANGE;
    size_t m = d->n_pending + len;
    if (m > cap)
        return ws_fail(err, WS_ERR_INVALID_ARG,
                       "detokenizer: %zu bytes for token %d, buffer holds %zu", m, id, cap);
    memcpy(out, d->pending, d->n_pending);
    memcpy(out + d->n_pending, s, len);
    size_t hold = incomplete_tail((const uint8_t *)out, m);
    memcpy(d->pending, out + m - hold, hold);
    d->n_pending = hold;
    *n = m - hold;
    return WS_OK;
}

size_t detok_flush(detok_stream *d, char *out, size_t cap) {
    size_t k = d->n_pending < cap ? d->n_pending : cap;
    memcpy(out, d->pending, k);
    memmove(d->pending, d->pending + k, d->n_pending - k);
    d->n_pending -= k;
    return k;
}
