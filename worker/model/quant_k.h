/* quant_k.h: internal interface between quant.c (the type table, 32-element formats and the public
 * entry points) and quant_k.c (the 256-element k-quant super-block formats). Not a public header:
 * callers use model/quant.h. Every function takes whole blocks: n is a multiple of 256. */
#ifndef WORKER_MODEL_QUANT_K_H
#define WORKER_MODEL_QUANT_K_H

#include <stdint.h>

#include "model/quant.h"

#define QK_K 256

/* Dequantizes one 256-element super-block of type t (Q2_K..Q6_K) into y[256]. */
void quant_k_dequantize_block(ggml_type t, const uint8_t *blk, float *y);

/* Quantizes one 256-element super-block x[256] of type t (Q2_K..Q6_K) into blk. */
void quant_k_quantize_block(ggml_type t, const float *x, uint8_t *blk);

#endif
