/* quant.h: the GGML block formats a GGUF file may hold. Sizes, CPU dequantization of a row into
 * F32, a dot product of a block row with an F32 vector (FP32 accumulation), and quantization of F32
 * rows (byte-compatible with the reference layout). Type ids are GGML's, as stored in GGUF. */
#ifndef WORKER_MODEL_QUANT_H
#define WORKER_MODEL_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"

typedef enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_BF16 = 30,
} ggml_type;

/* True when t is one of the types above (the ones this project reads). */
bool ggml_type_supported(uint32_t t);

/* "F32", "Q4_K", ... for supported types; "?" otherwise. */
const char *ggml_type_name(uint32_t t);

/* Parses a name as printed by ggml_type_name (case-insensitive). Returns false if unknown. */
bool ggml_type_from_name(const char *name, ggml_type *out);

/* Elements per block (1 for F32/F16/BF16, 32 or 256 otherwise); 0 for unsupported types. */
uint32_t ggml_block_elems(uint32_t t);

/* Bytes per block; 0 for unsupported types. */
uint32_t ggml_block_bytes(uint32_t t);

/* Bytes of a row of n elements: fails (WS_ERR_FORMAT) when n is not a multiple of the block size
 * or the size overflows. */
ws_status ggml_row_bytes(uint32_t t, int64_t n, uint64_t *out, ws_error *err);

/* Dequantizes n elements (a whole number of blocks) from src into dst. */
void quant_dequantize_row(ggml_type t, const void *src, float *dst, int64_t n);

/* Returns sum_i w[i] * x[i] over a row of n elements stored as type t, accumulated in FP32 from the
 * dequantized weights (no rounding of x). */
float quant_dot_row(ggml_type t, const void *row, const float *x, int64_t n);

/* Quantizes n F32 elements (a whole number of blocks) into dst. For every block type the bytes
 * equal the reference quantizer's (llama.cpp's quantize_row_*_ref, no importance matrix). Fails
 * only for types it cannot write or a length that is not a whole number of blocks. */
ws_status quant_quantize_row(ggml_type t, const float *src, void *dst, int64_t n, ws_error *err);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);

#endif
