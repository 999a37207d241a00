/* quant_k.c: the k-quant super-block formats (256 elements each), dequantization and quantization.
 *
 * Layouts (little endian; d, dmin are IEEE half). Element e of a super-block:
 *   Q2_K (84 B):  scales[16] | qs[64] | d | dmin
 *       sub-block s = e/16 has scale d*(scales[s] & 15) and min dmin*(scales[s] >> 4);
 *       q = (qs[32*(e/128) + e%32] >> (2*((e%128)/32))) & 3;  x = scale*q - min.
 *   Q3_K (110 B): hmask[32] | qs[64] | scales[12] | d
 *       q = low 2 bits as Q2_K, plus 4 when bit (4*(e/128) + (e%128)/32) of hmask[e%32] is set,
 *       minus 4 (q in -4..3); 6-bit scale s = e/16: low 4 bits in scales[s] (s < 8) or the high
 *       nibble of scales[s-8], high 2 bits at bit 2*(s/4) of scales[8 + s%4]; x = d*(sc-32)*q.
 *   Q4_K (144 B): d | dmin | scales[12] | qs[128]
 *       64-element group g uses qs[32g..32g+31]: low nibbles hold its first 32 values, high
 *       nibbles the next 32. Eight 6-bit scale/min pairs packed in 12 bytes (pack_scale_min_k4);
 *       sub-block s = e/32: x = d*sc[s]*q - dmin*m[s].
 *   Q5_K (176 B): d | dmin | scales[12] | qh[32] | qs[128]
 *       as Q4_K plus a 5th bit: bit 2g of qh[l] for value l of group g's first half, bit 2g+1 for
 *       the second half.
 *   Q6_K (210 B): ql[128] | qh[64] | scales[16] int8 | d
 *       per 128-element half h (ql + 64h, qh + 32h), l < 32: values l, l+32, l+64, l+96 take the
 *       low nibble of ql[l], low of ql[l+32], high of ql[l], high of ql[l+32], and 2-bit pairs
 *       0, 2, 4, 6 of qh[l]; q in 0..63 minus 32; x = d*scales[e/16]*q.
 *
 * Q6_K is quantized with the reference quantizer's scale search and arithmetic (identical bytes).
 * Q2_K..Q5_K use a simpler search of our own (a few candidate ranges per sub-block, least-squares
 * refit, scales requantized against the half-rounded super-scale): same layout, other bytes. */
#include "model/quant_k.h"

#include <math.h>
#include <string.h>

static inline float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return quant_f16_to_f32(h);
}

/* Stores f as half and returns the stored value. */
static inline float wr_f16(uint8_t *p, float f) {
    const uint16_t h = quant_f32_to_f16(f);
    memcpy(p, &h, 2);
    return quant_f16_to_f32(h);
}

static inline int nearest_int(float f) {
    return (int)lrintf(f);
}

static inline int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- 6-bit scale/min packing of Q4_K and Q5_K ---- */

static inline void get_scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void pack_scale_min_k4(const int sc[8], const int m[8], uint8_t *q) {
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
        q[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
    }
}

/* 6-bit scale s (0..15) of Q3_K, unsigned (0..63). */
static inline int q3k_scale(const uint8_t *sc, int s) {
    const int lo = s < 8 ? (sc[s] & 0xf) : (sc[s - 8] >> 4);
    const int hi = (sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
    return lo | (hi << 4);
}

/* ---- dequantization ---- */

static void deq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *qs = b + 16;
    const float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    for (int e0 = 0; e0 < QK_K; e0 += 16) {
        const int s = e0 / 16;
        const float dl = d * (float)(scales[s] & 0xf), ml = dmin * (float)(scales[s] >> 4);
        const uint8_t *q = qs + 32 * (e0 / 128) + e0 % 32;
        const int shift = 2 * ((e0 % 128) / 32);
        for (int l = 0; l < 16; l++)
            y[e0 + l] = dl * (float)((q[l] >> shift) & 3) - ml;
    }
}

static void deq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hmask = b, *qs = b + 32, *scales = b + 96;
    const float d = rd_f16(b + 108);
    for (int e0 = 0; e0 < QK_K; e0 += 16) {
        const float dl = d * (float)(q3k_scale(scales, e0 / 16) - 32);
        const int half = e0 / 128, j = (e0 % 128) / 32, l0 = e0 % 32;
        const uint8_t *q = qs + 32 * half + l0, *hm = hmask + l0;
        const uint8_t bit = (uint8_t)(1u << (4 * half + j));
        for (int l = 0; l < 16; l++) {
            const int v = ((q[l] >> (2 * j)) & 3) - ((hm[l] & bit) ? 0 : 4);
            y[e0 + l] = dl * (float)v;
        }
    }
}

static void deq_q4_k(const uint8_t *b, float *y) {
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *qs = b + 16;
    for (int g = 0; g < 4; g++) {
        int sc, m;
        get_scale_min_k4(2 * g, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        get_scale_min_k4(2 * g + 1, scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        const uint8_t *q = qs + 32 * g;
        float *o = y + 64 * g;
        for (int l = 0; l < 32; l++)
            o[l] = d1 * (float)(q[l] & 0xf) - m1;
        for (int l = 0; l < 32; l++)
            o[32 + l] = d2 * (float)(q[l] >> 4) - m2;
    }
}

static void deq_q5_k(const uint8_t *b, float *y) {
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
    for (int g = 0; g < 4; g++) {
        int sc, m;
        get_scale_min_k4(2 * g, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        get_scale_min_k4(2 * g + 1, scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        const uint8_t *q = qs + 32 * g;
        const int s1 = 2 * g, s2 = 2 * g + 1;
        float *o = y + 64 * g;
        for (int l = 0; l < 32; l++)
            o[l] = d1 * (float)((q[l] & 0xf) | (((qh[l] >> s1) & 1) << 4)) - m1;
        for (int l = 0; l < 32; l++)
            o[32 + l] = d2 * (float)((q[l] >> 4) | (((qh[l] >> s2) & 1) << 4)) - m2;
    }
}

static void deq_q6_k(const uint8_t *b, float *y) {
    const float d = rd_f16(b + 208);
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const int8_t *s = sc + 8 * h;
        float *o = y + 128 * h;
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            o[l] = d * (float)s[is + 0] * (float)q1;
            o[l + 32] = d * (float)s[is + 2] * (float)q2;
            o[l + 64] = d * (float)s[is + 4] * (float)q3;
            o[l + 96] = d * (float)s[is + 6] * (float)q4;
        }
    }
}

void quant_k_dequantize_block(ggml_type t, const uint8_t *blk, float *y) {
    switch (t) {
    case GGML_TYPE_Q2_K:
        deq_q2_k(blk, y);
        break;
    case GGML_TYPE_Q3_K:
        deq_q3_k(blk, y);
        break;
    case GGML_TYPE_Q4_K:
        deq_q4_k(blk, y);
        break;
    case GGML_TYPE_Q5_K:
        deq_q5_k(blk, y);
        break;
    case GGML_TYPE_Q6_K:
        deq_q6_k(blk, y);
        break;
    default:
        break;
    }
}

/* ---- scale search ---- */

/* Affine fit x ~ s*q - m with q in 0..nmax, s >= 0, m >= 0 (the formats store a non-negative
 * min that is subtracted, so the range always includes 0). Tries shrunken ranges and refits
 * (s, m) by least squares on the chosen levels; keeps the lowest squared error. */
static void fit_affine(const float *x, int n, int nmax, float *s_out, float *m_out) {
    float lo = 0.0f, hi = 0.0f;
    for (int i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (hi <= lo) {
        *s_out = 0.0f;
        *m_out = 0.0f;
        return;
    }
    float best_err = INFINITY, best_s = (hi - lo) / (float)nmax, best_m = -lo;
    for (int step = 0; step <= 12; step++) {
        const float f = 1.0f - 0.02f * (float)step;
        float s = (hi - lo) * f / (float)nmax, m = -lo;
        for (int it = 0; it < 2; it++) {
            if (s <= 0.0f) break;
            double sq = 0, sl = 0, sll = 0, sx = 0, slx = 0, err = 0;
            for (int i = 0; i < n; i++) {
                const int q = clampi(nearest_int((x[i] + m) / s), 0, nmax);
                const float e = s * (float)q - m - x[i];
                err += (double)e * e;
                sq += 1;
                sl += q;
                sll += (double)q * q;
                sx += x[i];
                slx += (double)q * x[i];
            }
            if (err < best_err) {
                best_err = (float)err;
                best_s = s;
                best_m = m;
            }
            /* least squares x = s*q - m over the current levels */
            const double det = sq * sll - sl * sl;
            if (det <= 0) break;
            const double ns = (sq * slx - sl * sx) / det;
            const double nm = -(sx - ns * sl) / sq;
            if (ns <= 0 || nm < 0) break;
            s = (float)ns;
            m = (float)nm;
        }
    }
    *s_out = best_s;
    *m_out = best_m;
}

/* Symmetric fit x ~ s*q with q in -nlo..nlo-1 (e.g. -32..31): candidate scales from the
 * largest-magnitude element mapped to -nlo, plus nearby values; the lowest squared error wins.
 * Returns s with sign (negative when the largest element is positive). */
static float fit_symmetric(const float *x, int n, int nlo) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax == 0.0f) return 0.0f;
    float best_s = max / (float)-nlo, best_err = INFINITY;
    for (int step = -6; step <= 6; step++) {
        const float s = max / ((float)-nlo + 0.1f * (float)step);
        double err = 0;
        for (int i = 0; i < n; i++) {
            const int q = clampi(nearest_int(x[i] / s), -nlo, nlo - 1);
            const float e = s * (float)q - x[i];
            err += (double)e * e;
        }
        if (err < best_err) {
            best_err = (float)err;
            best_s = s;
        }
    }
    return best_s;
}

/* Super-scale for non-negative sub-scales v[ns] in levels 0..lmax: stores it as half at p and
 * writes the integer levels. */
static void quantize_subscales(const float *v, int ns, int lmax, uint8_t *p, int *lv) {
    float vmax = 0.0f;
    for (int i = 0; i < ns; i++)
        if (v[i] > vmax) vmax = v[i];
    const float d = wr_f16(p, vmax / (float)lmax);
    for (int i = 0; i < ns; i++)
        lv[i] = d > 0.0f ? clampi(nearest_int(v[i] / d), 0, lmax) : 0;
}

/* Levels for x given the final scale and min (both as the decoder computes them). */
static inline int level_affine(float x, float s, float m, int nmax) {
    return s > 0.0f ? clampi(nearest_int((x + m) / s), 0, nmax) : 0;
}

/* ---- quantization ---- */

/* Q4_K (nbits 4) and Q5_K (nbits 5): eight 32-element sub-blocks. */
static void quant_q45_k(const float *x, uint8_t *b, int nbits) {
    const int nmax = (1 << nbits) - 1;
    float s[8], m[8];
    for (int j = 0; j < 8; j++)
        fit_affine(x + 32 * j, 32, nmax, &s[j], &m[j]);
    int ls[8], lm[8];
    quantize_subscales(s, 8, 63, b, ls);
    quantize_subscales(m, 8, 63, b + 2, lm);
    pack_scale_min_k4(ls, lm, b + 4);
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    uint8_t q[QK_K];
    for (int j = 0; j < 8; j++) {
        const float sd = d * (float)ls[j], sm = dmin * (float)lm[j];
        for (int l = 0; l < 32; l++)
            q[32 * j + l] = (uint8_t)level_affine(x[32 * j + l], sd, sm, nmax);
    }
    uint8_t *qs = b + (nbits == 4 ? 16 : 48);
    if (nbits == 5) memset(b + 16, 0, 32);
    for (int g = 0; g < 4; g++) {
        for (int l = 0; l < 32; l++) {
            const uint8_t a = q[64 * g + l], c = q[64 * g + 32 + l];
            qs[32 * g + l] = (uint8_t)((a & 0xf) | ((c & 0xf) << 4));
            if (nbits == 5)
                b[16 + l] |= (uint8_t)(((a >> 4) << (2 * g)) | ((c >> 4) << (2 * g + 1)));
        }
    }
}

/* Q6_K follows the reference quantizer's arithmetic, so its bytes match the reference files:
 * per 16 values a symmetric scale chosen among 19 candidates (the largest-magnitude value
 * mapped to -32 + 0.1k, k = -9..9) by an x^2-weighted least-squares fit; the scales quantized
 * to int8 against a super-scale that maps the largest one to -128. Float operations are kept in
 * the same order as there. */
static float q6k_subblock_scale(const float *x) {
    const int nmax = 32;
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 16; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) return 0.0f;
    float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < 16; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < 16; i++) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quant_q6_k(const float *x, uint8_t *b) {
    float s[16], amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 16; j++) {
        s[j] = q6k_subblock_scale(x + 16 * j);
        if (fabsf(s[j]) > amax) {
            amax = fabsf(s[j]);
            max = s[j];
        }
    }
    memset(b, 0, 210);
    if (amax < 1e-15f) return;
    int8_t *sc = (int8_t *)(b + 192);
    const float iscale = -128.0f / max;
    const float d = wr_f16(b + 208, 1.0f / iscale);
    uint8_t q[QK_K];
    for (int j = 0; j < 16; j++) {
        const int l = nearest_int(iscale * s[j]);
        sc[j] = (int8_t)(l < 127 ? l : 127);
    }
    for (int j = 0; j < 16; j++) {
        const float sd = d * (float)sc[j];
        for (int l = 0; l < 16; l++) {
            /* with a zero scale every level decodes to 0; level 0 (stored 32) is written */
            const int v = sd != 0.0f ? clampi(nearest_int(x[16 * j + l] / sd), -32, 31) : 0;
            q[16 * j + l] = (uint8_t)(v + 32);
        }
    }
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const uint8_t *e = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = e[l], q2 = e[l + 32], q3 = e[l + 64], q4 = e[l + 96];
            ql[l] = (uint8_t)((q1 & 0xf) | ((q3 & 0xf) << 4));
            ql[l + 32] = (uint8_t)((q2 & 0xf) | ((q4 & 0xf) << 4));
            qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

static void quant_q3_k(const float *x, uint8_t *b) {
    float s[16], amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 16; j++) {
        s[j] = fit_symmetric(x + 16 * j, 16, 4);
        if (fabsf(s[j]) > amax) {
            amax = fabsf(s[j]);
            max = s[j];
        }
    }
    const float d = wr_f16(b + 108, max / -32.0f);
    uint8_t *hmask = b, *qs = b + 32, *scales = b + 96;
    memset(b, 0, 108);
    for (int j = 0; j < 16; j++) {
        const int ls = d != 0.0f ? clampi(nearest_int(s[j] / d), -32, 31) : 0;
        const int u = ls + 32;
        if (j < 8)
            scales[j] |= (uint8_t)(u & 0xf);
        else
            scales[j - 8] |= (uint8_t)((u & 0xf) << 4);
        scales[8 + (j & 3)] |= (uint8_t)((u >> 4) << (2 * (j >> 2)));
        const float sd = d * (float)ls;
        for (int l = 0; l < 16; l++) {
            const int e = 16 * j + l;
            const int v = sd != 0.0f ? clampi(nearest_int(x[e] / sd), -4, 3) + 4 : 4;
            const int half = e / 128, k = (e % 128) / 32, i = e % 32;
            qs[32 * half + i] |= (uint8_t)((v & 3) << (2 * k));
            if (v & 4) hmask[i] |= (uint8_t)(1u << (4 * half + k));
        }
    }
}

static void quant_q2_k(const float *x, uint8_t *b) {
    float s[16], m[16];
    for (int j = 0; j < 16; j++)
        fit_affine(x + 16 * j, 16, 3, &s[j], &m[j]);
    int ls[16], lm[16];
    quantize_subscales(s, 16, 15, b + 80, ls);
    quantize_subscales(m, 16, 15, b + 82, lm);
    const float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    uint8_t *scales = b, *qs = b + 16;
    memset(qs, 0, 64);
    for (int j = 0; j < 16; j++) {
        scales[j] = (uint8_t)(ls[j] | (lm[j] << 4));
        const float sd = d * (float)ls[j], sm = dmin * (float)lm[j];
        for (int l = 0; l < 16; l++) {
            const int e = 16 * j + l;
            const int v = level_affine(x[e], sd, sm, 3);
            qs[32 * (e / 128) + e % 32] |= (uint8_t)(v << (2 * ((e % 128) / 32)));
        }
    }
}

void quant_k_quantize_block(ggml_type t, const float *x, uint8_t *blk) {
    switch (t) {
    case GGML_TYPE_Q2_K:
        quant_q2_k(x, blk);
        break;
    case GGML_TYPE_Q3_K:
        quant_q3_k(x, blk);
        break;
    case GGML_TYPE_Q4_K:
        quant_q45_k(x, blk, 4);
        break;
    case GGML_TYPE_Q5_K:
        quant_q45_k(x, blk, 5);
        break;
    case GGML_TYPE_Q6_K:
        quant_q6_k(x, blk);
        break;
    default:
        break;
    }
}
