/* stop.c: stop-string matching over streamed text (see stop.h). The held-back suffix is shorter
 * than the longest stop string, so each push costs O(held + len) per stop string plus a suffix
 * check of O(stop length^2) at most. */
#include "engine/stop.h"

#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 when it is not one (bad lead,
 * bad continuation, overlong form, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

ws_status stop_init(stop_matcher *m, const char *const *stops, uint32_t n, ws_error *err) {
    memset(m, 0, sizeof *m);
    if (n > STOP_MAX_STRINGS)
        return ws_fail(err, WS_ERR_INVALID_ARG, "%u stop strings (at most %d)", n,
                       STOP_MAX_STRINGS);
    for (uint32_t i = 0; i < n; i++) {
        if (!stops[i] || stops[i][0] == '\0')
            return ws_fail(err, WS_ERR_INVALID_ARG, "stop string %u is empty", i);
        size_t len = strnlen(stops[i], STOP_MAX_LEN + 1);
        if (len > STOP_MAX_LEN)
            return ws_fail(err, WS_ERR_INVALID_ARG, "stop string %u is longer than %d bytes", i,
                           STOP_MAX_LEN);
        const unsigned char *u = (const unsigned char *)stops[i];
        for (size_t off = 0; off < len;) {
            size_t k = utf8_seq_len(u + off, len - off);
            if (k == 0)
                return ws_fail(err, WS_ERR_INVALID_ARG,
                               "stop string %u: invalid UTF-8 at byte offset %zu", i, off);
            off += k;
        }
        m->str[i] = stops[i];
        m->len[i] = len;
    }
    m->n = n;
    return WS_OK;
}

void stop_free(stop_matcher *m) {
    if (!m) return;
    free(m->held);
    free(m->out);
    m->held = m->out = NULL;
    m->n_held = m->cap_held = m->cap_out = 0;
}

static ws_status reserve(char **buf, size_t *cap, size_t need, ws_error *err) {
    if (need <= *cap) return WS_OK;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p) return ws_fail(err, WS_ERR_NOMEM, "stop matcher buffer of %zu bytes", c);
    *buf = p;
    *cap = c;
    return WS_OK;
}

/* Longest suffix of h (n bytes) that is a proper prefix of one of the stop strings. */
static size_t partial_suffix(const stop_matcher *m, const char *h, size_t n) {
    size_t best = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        size_t k = m->len[i] - 1 < n ? m->len[i] - 1 : n;
        for (; k > best; k--)
            if (memcmp(h + n - k, m->str[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

ws_status stop_push(stop_matcher *m, const char *text, size_t len, const char **out,
                    size_t *out_len, bool *matched, ws_error *err) {
    *out = "";
    *out_len = 0;
    *matched = m->matched;
    if (m->matched) return WS_OK;
    ws_status st = reserve(&m->held, &m->cap_held, m->n_held + len, err);
    if (st != WS_OK) return st;
    if (len == 0 && m->n_held == 0) return WS_OK; /* nothing held, nothing new */
    if (len) memcpy(m->held + m->n_held, text, len);
    m->n_held += len;

    /* Earliest complete occurrence of any stop string. Nothing released earlier can be part of
     * one: every suffix that could start a stop string was held. */
    size_t cut = m->n_held;
    for (uint32_t i = 0; i < m->n; i++) {
        const char *hit = memmem(m->held, m->n_held, m->str[i], m->len[i]);
        if (hit && (size_t)(hit - m->held) < cut) {
            cut = (size_t)(hit - m->held);
            m->matched = true;
        }
    }
    size_t keep = 0;
    if (!m->matched) {
        keep = partial_suffix(m, m->held, m->n_held);
        cut = m->n_held - keep;
    }
    st = reserve(&m->out, &m->cap_out, cut, err);
    if (st != WS_OK) return st;
    if (cut) memcpy(m->out, m->held, cut);
    if (m->matched)
        m->n_held = 0;
    else {
        if (keep) memmove(m->held, m->held + cut, keep);
        m->n_held = keep;
    }
    *out = cut ? m->out : "";
    *out_len = cut;
    *matched = m->matched;
    return WS_OK;
}

size_t stop_flush(stop_matcher *m, const char **out) {
    *out = m->held ? m->held : "";
    size_t n = m->matched ? 0 : m->n_held;
    m->n_held = 0;
    return n;
}
