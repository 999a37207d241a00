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
 * The quantizers use the reference quantizer's scale searches with its float arithmetic, so
 * their bytes equal the reference files' (see the quantization section). */
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

/* Round to nearest, ties to even, by adding 1.5 * 2^23 (exact for |f| < 2^22): the rounding the
 * reference quantizer uses, kept so that out-of-range values clamp the same way too. */
static inline int nearest_int(float f) {
    const float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
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

static void deq_q2_k(const uint8_t *restrict b, float *restrict y) {
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

static void deq_q3_k(const uint8_t *restrict b, float *restrict y) {
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

static void deq_q4_k(const uint8_t *restrict b, float *restrict y) {
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

static void deq_q5_k(const uint8_t *restrict b, float *restrict y) {
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

static void deq_q6_k(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b + 208);
    const int8_t *sc = (const int8_t *)(b + 192);
    /* output quarter k (32 values) of half h: low (k even) or high (k odd) nibbles of
     * ql[32*(k&1)..], 2-bit pair k of qh; one scale per 16 values */
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        for (int k = 0; k < 4; k++) {
            const uint8_t *lo = ql + 32 * (k & 1);
            const int nshift = 4 * (k >> 1), hshift = 2 * k;
            for (int g = 0; g < 2; g++) {
                const float ds = d * (float)sc[8 * h + 2 * k + g];
                float *o = y + 128 * h + 32 * k + 16 * g;
                for (int l = 0; l < 16; l++) {
                    const int i = 16 * g + l;
                    const int q = (((lo[i] >> nshift) & 0xf) | (((qh[i] >> hshift) & 3) << 4)) - 32;
                    o[l] = ds * (float)q;
                }
            }
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

/* ---- quantization ----
 * Every k-quant is quantized with the reference quantizer's scale searches, evaluated with the
 * same float operations in the same order, so the bytes match the reference files. Where a
 * sub-block's final scale is zero the levels of its own fit are kept, as there. */

/* Affine fit x ~ scale * L - min over n values with levels L in 0..nmax, min >= 0 (the range
 * always includes 0). Starts from the full range, then tries nstep + 1 candidate inverse scales
 * (nmax + rmin + rdelta * k) / range, refitting scale and min by weighted least squares on each
 * candidate's levels; keeps the lowest weighted absolute (use_mad) or squared error. */
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *min_out,
                        float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *min_out = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best += w[i] * diff;
    }
    uint8_t aux[32];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            aux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det <= 0) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)aux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            err += w[i] * diff;
        }
        if (err < best) {
            memcpy(L, aux, (size_t)n);
            best = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *min_out = -min;
    return scale;
}

/* The value of largest magnitude, with its sign (the first on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

/* Symmetric fit of 16 values for Q6_K: levels -32..31 (stored + 32), weights x^2. Candidate
 * inverse scales map the largest-magnitude value to -(32 + 0.1k), k = -9..9; the one with the
 * largest sumlx^2 / suml2 (least weighted squared error) wins. Returns the scale. */
static float fit_q6(const float *x, uint8_t *L) {
    const int nmax = 32;
    const float max = signed_absmax(x, 16);
    if (fabsf(max) < 1e-15f) {
        memset(L, 0, 16);
        return 0.0f;
    }
    float iscale = (float)-nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < 16; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (uint8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < 16; i++) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < 16; i++)
                L[i] = (uint8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric fit of 16 values for Q3_K: levels -4..3 (stored + 4), weights x^2. Starts from the
 * largest-magnitude value mapped to -4, then up to 5 passes move single levels to their
 * least-squares optimum while that lowers the weighted error. Returns the scale. */
static float fit_q3(const float *x, uint8_t *L) {
    const int nmax = 4;
    const float max = signed_absmax(x, 16);
    if (fabsf(max) < 1e-15f) {
        memset(L, 0, 16);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    int l[16];
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < 16; i++) {
        l[i] = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l[i];
        suml2 += w * (float)l[i] * (float)l[i];
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < 16; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)l[i];
            if (slx <= 0) continue;
            float sl2 = suml2 - w * (float)l[i] * (float)l[i];
            const int nl = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == l[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                l[i] = nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < 16; i++)
        L[i] = (uint8_t)(l[i] + nmax);
    return sumlx / suml2;
}

/* Q4_K (nbits 4) and Q5_K (nbits 5): eight 32-element sub-blocks, weights rms(x) + |x|. */
static void quant_q45_k(const float *x, uint8_t *b, int nbits) {
    const int nmax = (1 << nbits) - 1;
    uint8_t L[QK_K];
    float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xs[l]);
        scales[j] = nbits == 4
                        ? fit_affine(32, nmax, xs, w, L + 32 * j, &mins[j], -1.0f, 0.1f, 20, false)
                        : fit_affine(32, nmax, xs, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    int ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        /* the reference stores these through uint8_t before clamping */
        ls[j] = (uint8_t)nearest_int(inv_scale * scales[j]);
        lm[j] = (uint8_t)nearest_int(inv_min * mins[j]);
        ls[j] = ls[j] < 63 ? ls[j] : 63;
        lm[j] = lm[j] < 63 ? lm[j] : 63;
    }
    pack_scale_min_k4(ls, lm, b + 4);
    const float d = wr_f16(b, max_scale / 63.0f), dmin = wr_f16(b + 2, max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        const float sd = d * (float)ls[j];
        if (sd == 0.0f) continue;
        const float sm = dmin * (float)lm[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clampi(nearest_int((x[32 * j + l] + sm) / sd), 0, nmax);
    }
    uint8_t *qs = b + (nbits == 4 ? 16 : 48);
    if (nbits == 5) memset(b + 16, 0, 32);
    for (int g = 0; g < 4; g++) {
        for (int l = 0; l < 32; l++) {
            const uint8_t a = L[64 * g + l], c = L[64 * g + 32 + l];
            qs[32 * g + l] = (uint8_t)((a & 0xf) | ((c & 0xf) << 4));
            if (nbits == 5)
                b[16 + l] |= (uint8_t)(((a >> 4) << (2 * g)) | ((c >> 4) << (2 * g + 1)));
        }
    }
}

static void quant_q6_k(const float *x, uint8_t *b) {
    uint8_t L[QK_K];
    float s[16];
    for (int j = 0; j < 16; j++)
        s[j] = fit_q6(x + 16 * j, L + 16 * j);
    const float max = signed_absmax(s, 16);
    memset(b, 0, 210);
    if (fabsf(max) < 1e-15f) return;
    int8_t *sc = (int8_t *)(b + 192);
    const float iscale = -128.0f / max;
    const float d = wr_f16(b + 208, 1 / iscale);
    for (int j = 0; j < 16; j++) {
        const int l = nearest_int(iscale * s[j]);
        sc[j] = (int8_t)(l < 127 ? l : 127);
    }
    for (int j = 0; j < 16; j++) {
        const float sd = d * (float)sc[j];
        if (sd == 0.0f) continue;
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)(clampi(nearest_int(x[16 * j + l] / sd), -32, 31) + 32);
    }
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const uint8_t *e = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = e[l], q2 = e[l + 32], q3 = e[l + 64], q4 = e[l + 96];
            ql[l] = (uint8_t)((q1 & 0xf) | ((q3 & 0xf) << 4));
            ql[l + 32] = (uint8_t)((q2 & 0xf) | ((q4 & 0xf) << 4));
            qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

static void quant_q3_k(const float *x, uint8_t *b) {
    uint8_t L[QK_K];
    float s[16];
    for (int j = 0; j < 16; j++)
        s[j] = fit_q3(x + 16 * j, L + 16 * j);
    const float max = signed_absmax(s, 16);
    uint8_t *hmask = b, *qs = b + 32, *scales = b + 96;
    memset(b, 0, 110);
    if (max != 0.0f) {
        const float iscale = -32.0f / max;
        for (int j = 0; j < 16; j++) {
            const int u = clampi((int8_t)nearest_int(iscale * s[j]), -32, 31) + 32;
            if (j < 8)
                scales[j] = (uint8_t)(u & 0xf);
            else
                scales[j - 8] |= (uint8_t)((u & 0xf) << 4);
            scales[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
        }
        wr_f16(b + 108, 1 / iscale);
    }
    const float d = rd_f16(b + 108);
    for (int j = 0; j < 16; j++) {
        const float sd = d * (float)(q3k_scale(scales, j) - 32);
        if (sd == 0.0f) continue;
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)(clampi(nearest_int(x[16 * j + l] / sd), -4, 3) + 4);
    }
    for (int e = 0; e < QK_K; e++) {
        const int half = e / 128, k = (e % 128) / 32, i = e % 32;
        qs[32 * half + i] |= (uint8_t)((L[e] & 3) << (2 * k));
        if (L[e] > 3) hmask[i] |= (uint8_t)(1u << (4 * half + k));
    }
}

static void quant_q2_k(const float *x, uint8_t *b) {
    uint8_t L[QK_K];
    float scales[16], mins[16], w[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++)
            w[l] = fabsf(x[16 * j + l]);
        scales[j] = fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint8_t *sc = b, *qs = b + 16;
    memset(b, 0, 84);
    if (max_scale > 0) {
        const float iscale = 15.0f / max_scale;
        for (int j = 0; j < 16; j++)
            sc[j] = (uint8_t)nearest_int(iscale * scales[j]);
        wr_f16(b + 80, max_scale / 15.0f);
    }
    if (max_min > 0) {
        const float iscale = 15.0f / max_min;
        for (int j = 0; j < 16; j++)
            sc[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
        wr_f16(b + 82, max_min / 15.0f);
    }
    const float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    for (int j = 0; j < 16; j++) {
        const float sd = d * (float)(sc[j] & 0xf);
        if (sd == 0.0f) continue;
        const float sm = dmin * (float)(sc[j] >> 4);
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)clampi(nearest_int((x[16 * j + l] + sm) / sd), 0, 3);
    }
    for (int e = 0; e < QK_K; e++)
        qs[32 * (e / 128) + e % 32] |= (uint8_t)(L[e] << (2 * ((e % 128) / 32)));
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
