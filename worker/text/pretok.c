/* pretok.c: the qwen2 pre-tokenizer split, written out by hand over code points.
 *
 * The Hugging Face tokenizer cuts normalised text with this pattern (Oniguruma semantics), keeping
 * every match as a piece:
 *
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} | ?[^\s\p{L}\p{N}]+[\r\n]*
 *   | \s*[\r\n]+ | \s+(?!\S) | \s+
 *
 * Alternatives are tried in order at the current position, each greedy with backtracking. The
 * classes come from utf8proc: \p{L} is Lu/Ll/Lt/Lm/Lo, \p{N} is Nd/Nl/No, and \s is the Unicode
 * White_Space property (Zs, Zl, Zp, U+0009..U+000D and U+0085), which is how Oniguruma defines it.
 * The contractions match case-insensitively under Unicode simple case folding. */
#include <utf8proc.h>

#include "text/tok_internal.h"

enum { CLS_OTHER, CLS_L, CLS_N, CLS_WS, CLS_CRLF };

typedef struct {
    int32_t cp;
    uint8_t cls;
    uint8_t n; /* bytes */
} cpinfo;

static uint8_t class_of(int32_t c) {
    if (c == '\r' || c == '\n') return CLS_CRLF;
    if ((c >= 0x09 && c <= 0x0D) || c == 0x85) return CLS_WS;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return CLS_L;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return CLS_N;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
        return CLS_WS;
    default:
        return CLS_OTHER;
    }
}

/* The code point at byte pos (pos < len; the text is valid UTF-8). */
static inline cpinfo at(const uint8_t *s, size_t len, size_t pos) {
    cpinfo r;
    uint8_t b = s[pos];
    if (b < 0x80) {
        r.cp = b;
        r.n = 1;
        if ((b | 0x20) >= 'a' && (b | 0x20) <= 'z')
            r.cls = CLS_L;
        else if (b >= '0' && b <= '9')
            r.cls = CLS_N;
        else
            r.cls = class_of(b);
        return r;
    }
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(s + pos, (utf8proc_ssize_t)(len - pos), &cp);
    r.cp = cp;
    r.n = (uint8_t)(n > 0 ? n : 1);
    r.cls = class_of(cp);
    return r;
}

/* Upper-case ASCII letter that c case-folds to, or 0. Covers e.g. U+017F LATIN SMALL LETTER LONG
 * S, which folds to 's'. */
static int fold_letter(int32_t c) {
    int32_t u = utf8proc_toupper(c);
    return (u >= 'A' && u <= 'Z') ? (int)u : 0;
}

/* End of the contraction starting at pos (s[pos] == '\''), or pos when there is none. */
static size_t match_contraction(const uint8_t *s, size_t len, size_t pos) {
    size_t p1 = pos + 1;
    if (p1 >= len) return pos;
    cpinfo a = at(s, len, p1);
    int u = fold_letter(a.cp);
    if (u == 'S' || u == 'T' || u == 'M' || u == 'D') return p1 + a.n;
    size_t p2 = p1 + a.n;
    if (p2 >= len) return pos;
    cpinfo b = at(s, len, p2);
    int v = fold_letter(b.cp);
    if ((u == 'R' && v == 'E') || (u == 'V' && v == 'E') || (u == 'L' && v == 'L')) return p2 + b.n;
    return pos;
}

/* End of the run of code points of class cls (or of the two classes) starting at pos. */
static size_t run_end(const uint8_t *s, size_t len, size_t pos, uint8_t cls, uint8_t cls2) {
    while (pos < len) {
        cpinfo c = at(s, len, pos);
        if (c.cls != cls && c.cls != cls2) break;
        pos += c.n;
    }
    return pos;
}

/* End of the piece that starts at pos. */
static size_t match_at(const uint8_t *s, size_t len, size_t pos) {
    cpinfo c = at(s, len, pos);
    size_t next = pos + c.n;

    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c.cp == '\'') {
        size_t e = match_contraction(s, len, pos);
        if (e != pos) return e;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c.cls == CLS_L) return run_end(s, len, next, CLS_L, CLS_L);
    if ((c.cls == CLS_WS || c.cls == CLS_OTHER) && next < len && at(s, len, next).cls == CLS_L)
        return run_end(s, len, next, CLS_L, CLS_L);
    /* \p{N} */
    if (c.cls == CLS_N) return next;
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    size_t k = pos;
    if (c.cp == ' ' && next < len && at(s, len, next).cls == CLS_OTHER) k = next;
    if (k != pos || c.cls == CLS_OTHER) {
        k = run_end(s, len, k, CLS_OTHER, CLS_OTHER);
        return run_end(s, len, k, CLS_CRLF, CLS_CRLF);
    }
    /* c is whitespace. Scan the whole run [pos, j), noting where its last CR/LF ends and where
     * its last code point starts. */
    size_t j = pos, last_crlf_end = 0, last_start = pos;
    while (j < len) {
        cpinfo w = at(s, len, j);
        if (w.cls != CLS_WS && w.cls != CLS_CRLF) break;
        last_start = j;
        j += w.n;
        if (w.cls == CLS_CRLF) last_crlf_end = j;
    }
    /* \s*[\r\n]+ : the greedy \s* backs off to the last CR/LF of the run. */
    if (last_crlf_end != 0) return last_crlf_end;
    /* \s+(?!\S) : the whole run at the end of the text, else all but its last code point. */
    if (j == len) return j;
    if (last_start > pos) return last_start;
    /* \s+ : a single whitespace code point before a non-space. */
    return j;
}

ws_status pretok_split(const char *text, size_t len, pretok_piece_fn piece, void *ctx) {
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0;
    while (pos < len) {
        size_t end = match_at(s, len, pos);
        ws_status st = piece(ctx, text + pos, end - pos);
        if (st != WS_OK) return st;
        pos = end;
    }
    return WS_OK;
}
