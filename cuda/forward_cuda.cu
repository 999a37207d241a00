/* forward_cuda.cu: the Qwen2 forward pass on the device.
 *
 * Decode (one token per sequence) is one CUDA graph captured at open: embedding, then per layer
 *   gemv QKV   (RMSNorm fused, biases, NEOX rotary, k/v into the cache at p->pos)
 *   attention  (split over the key range, splits merged in-kernel)
 *   gemv ADD   (o_proj into the residual)
 *   gemv SWIGLU(RMSNorm fused, gate and up, silu(g) * u)
 *   gemv ADD   (down into the residual)
 * and the LM head (output norm fused) into the sequence's logits row; the position, token and
 * cache of the step are read from device memory, so the graph replays for any sequence.
 *
 * Prefill runs chunks of PREFILL_CHUNK tokens: RMSNorm, cuBLAS GEMMs (F16 weights directly,
 * other block types dequantized to an F16 scratch, F32 weights in FP32; FP32 accumulation and
 * FP32 outputs), the rotary/KV epilogue, attention, residual updates through beta = 1. */
#include <math.h>
#include <string.h>

#include "engine_cuda.h"

#define LAUNCH(e, err, call, what) CU_CHECK(e, err, call, what)

/* ---- decode graph ---- */

static ws_status enqueue_decode(cu_engine *e, ws_error *err) {
    const kq_params *p = e->d_params;
    LAUNCH(e, err, kq_embed(&e->tok_embd, NULL, p, 1, e->x, e->st), "embedding");
    for (int l = 0; l < e->n_layer; l++) {
        const cu_layer *L = &e->layers[l];
        const kq_mat qkv[3] = {L->wq, L->wk, L->wv};
        LAUNCH(
            e, err,
            kq_gemv(KQ_GEMV_QKV, qkv, 3, e->x, L->attn_norm, e->eps, e->q, p, &e->geom, l, e->st),
            "qkv projection");
        LAUNCH(e, err,
               kq_attention(e->q, 1, p, &e->geom, l, e->dec_split, e->part, e->counters, e->att32,
                            NULL, e->st),
               "attention");
        LAUNCH(e, err,
               kq_gemv(KQ_GEMV_ADD, &L->wo, 1, e->att32, NULL, 0.0f, e->x, p, NULL, l, e->st),
               "output projection");
        const kq_mat gu[2] = {L->w_gate, L->w_up};
        LAUNCH(
            e, err,
            kq_gemv(KQ_GEMV_SWIGLU, gu, 2, e->x, L->ffn_norm, e->eps, e->ff32, p, NULL, l, e->st),
            "gate/up projection");
        LAUNCH(e, err,
               kq_gemv(KQ_GEMV_ADD, &L->w_down, 1, e->ff32, NULL, 0.0f, e->x, p, NULL, l, e->st),
               "down projection");
    }
    /* out == NULL: the LM head writes to p->logits */
    LAUNCH(
        e, err,
        kq_gemv(KQ_GEMV_SET, &e->output, 1, e->x, e->output_norm, e->eps, NULL, p, NULL, 0, e->st),
        "LM head");
    /* the greedy choice in the same graph, so a greedy sampler only copies it out */
    LAUNCH(e, err, kq_greedy(p, e->n_vocab, e->greedy_ws, e->st), "greedy choice");
    return WS_OK;
}

ws_status cu_capture_decode(cu_engine *e, ws_error *err) {
    cudaGraph_t g = NULL;
    CU_CHECK(e, err, cudaStreamBeginCapture(e->st, cudaStreamCaptureModeThreadLocal),
             "starting the decode graph capture");
    ws_status st = enqueue_decode(e, err);
    const cudaError_t c = cudaStreamEndCapture(e->st, &g);
    if (st != WS_OK) {
        if (g) cudaGraphDestroy(g);
        return st;
    }
    CU_CHECK(e, err, c, "capturing the decode graph");
    const cudaError_t ci = cudaGraphInstantiate(&e->graph, g, 0);
    cudaGraphDestroy(g);
    CU_CHECK(e, err, ci, "instantiating the decode graph");
    CU_CHECK(e, err, cudaGraphUpload(e->graph, e->st), "uploading the decode graph");
    return WS_OK;
}

ws_status cu_launch_step(cu_engine *e, const cu_seq *s, int32_t token, const int32_t *token_src,
                         uint32_t pos, int row, kq_params *hp, bool record, ws_error *err) {
    cu_params_for(e, s->slot, row, token, (int32_t)pos, hp);
    hp->token_src = token_src;
    CU_CHECK(e, err,
             cudaMemcpyAsync(e->d_params, hp, sizeof(kq_params), cudaMemcpyHostToDevice, e->st),
             "decode parameters");
    if (record) CU_CHECK(e, err, cudaEventRecord(e->params_done, e->st), "decode parameters");
    CU_CHECK(e, err, cudaGraphLaunch(e->graph, e->st), "launching the decode graph");
    return WS_OK;
}

/* A decode of the token a greedy sample chose, at the position it was chosen for, was enqueued by
 * that sample (cu_sample): it only switches the sequence to the step's logits row. */
static bool spec_matches(const cu_seq *s, int32_t token) {
    return s->spec && s->spec_token == token && s->spec_pos == s->base.n_past;
}

ws_status cu_decode(engine_seq *const *seqs, const int32_t *tokens, uint32_t n_seqs, float *logits,
                    ws_error *err) {
    cu_engine *e = (cu_engine *)seqs[0]->eng;
    if (e->fatal) return ws_fail(err, WS_ERR_DEVICE_FATAL, "the CUDA engine hit a sticky error");
    CU_CHECK(e, err, cudaSetDevice(e->device), "selecting the CUDA device");
    /* the pinned parameters of the previous call must have been copied before they change */
    CU_CHECK(e, err, cudaEventSynchronize(e->params_done), "decode parameters");
    uint32_t last = n_seqs; /* the last sequence that needs a launch */
    for (uint32_t i = 0; i < n_seqs; i++)
        if (!spec_matches((const cu_seq *)seqs[i], tokens[i])) last = i;
    for (uint32_t i = 0; i < n_seqs; i++) {
        cu_seq *s = (cu_seq *)seqs[i];
        if (spec_matches(s, tokens[i])) {
            s->cur ^= 1;
        } else {
            /* a speculative step that does not match wrote only the other row and cache rows
             * from its position on, which this step and later ones overwrite before use */
            ws_status st = cu_launch_step(e, s, tokens[i], NULL, (uint32_t)s->base.n_past, s->cur,
                                          &e->h_params[i], i == last, err);
            if (st != WS_OK) return st;
        }
        s->spec = false;
        s->greedy_ready = true;
        if (logits)
            CU_CHECK(e, err,
                     cudaMemcpyAsync(logits + (size_t)i * e->n_vocab,
                                     cu_logits_row(e, s->slot, s->cur), (size_t)e->n_vocab * 4,
                                     cudaMemcpyDeviceToHost, e->st),
                     "copying logits");
    }
    /* Without logits to return nothing waits here: the next call on the stream (engine_sample
     * or another step) runs after this one, and reports any error of it. */
    if (logits) CU_CHECK(e, err, cudaStreamSynchronize(e->st), "decode");
    return WS_OK;
}

/* ---- prefill ---- */

/* y (n_tok rows, ldy) = x . W^T (+ beta * y), for rows [r0, r0 + nr) of W. x32/x16 are the same
 * activations in FP32 and F16 with leading dimension W.cols. */
static ws_status gemm_rows(cu_engine *e, const kq_mat *w, int r0, int nr, int n_tok,
                           const float *x32, const __half *x16, float *y, int ldy, float beta,
                           ws_error *err) {
    const float alpha = 1.0f;
    const void *A;
    const void *B;
    cudaDataType_t ta;
    if (w->type == 0 /* F32 */) {
        A = (const char *)w->w + (size_t)r0 * w->row_bytes;
        B = x32;
        ta = CUDA_R_32F;
    } else if (w->type == 1 /* F16 */) {
        A = (const char *)w->w + (size_t)r0 * w->row_bytes;
        B = x16;
        ta = CUDA_R_16F;
    } else {
        CU_CHECK(e, err, kq_dequant_f16(w, r0, nr, e->wdeq, e->st), "dequantizing a weight");
        A = e->wdeq;
        B = x16;
        ta = CUDA_R_16F;
    }
    /* GGUF rows are [out][in] row-major = column-major (in x out): op(A) = T, lda = in. */
    const cublasStatus_t s = cublasGemmEx(e->blas, CUBLAS_OP_T, CUBLAS_OP_N, nr, n_tok, w->cols,
                                          &alpha, A, ta, w->cols, B, ta, w->cols, &beta, y + r0,
                                          CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) return cu_blas_fail(e, err, s, "prefill GEMM");
    return WS_OK;
}

static ws_status gemm(cu_engine *e, const kq_mat *w, int n_tok, const float *x32, const __half *x16,
                      float *y, int ldy, float beta, ws_error *err) {
    const int step = w->type <= 1 ? w->rows : (int)(e->wdeq_elems / (uint64_t)w->cols);
    for (int r0 = 0; r0 < w->rows; r0 += step) {
        const int nr = w->rows - r0 < step ? w->rows - r0 : step;
        ws_status st = gemm_rows(e, w, r0, nr, n_tok, x32, x16, y, ldy, beta, err);
        if (st != WS_OK) return st;
    }
    return WS_OK;
}

/* Causal attention of the chunk's n queries at pos0.. against the cache of layer l: FP32 scores
 * by strided-batched SGEMM (one batch per KV head, its query heads sharing K), the causal softmax,
 * FP32 SGEMM with V; att16 gets the F16 copy for the output projection. Long contexts run the
 * queries in sub-chunks whose scores fit their scratch (each against the keys up to its last
 * query); only a context too long for a single query's scores falls back to the attention
 * kernel. */
static ws_status prefill_attention(cu_engine *e, int n, int pos0, int l, const kq_params *hp,
                                   ws_error *err) {
    const int L = pos0 + n, hd = e->geom.head_dim, group = e->geom.n_head / e->geom.n_head_kv;
    const uint64_t per_query = (uint64_t)e->geom.n_head * L; /* score floats, at most */
    if (per_query > e->att_s_elems) {
        LAUNCH(e, err,
               kq_attention(e->q, n, e->d_params, &e->geom, l, 1, e->part, e->counters, e->att32,
                            e->att16, e->st),
               "attention");
        return WS_OK;
    }
    const uint64_t fit = e->att_s_elems / per_query;
    const int nq = fit < (uint64_t)n ? (int)fit : n;
    const size_t layer_off = (size_t)l * e->max_ctx * e->kv_dim;
    const float *K = hp->k + layer_off, *V = hp->v + layer_off;
    const float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    for (int i0 = 0; i0 < n; i0 += nq) {
        const int m = n - i0 < nq ? n - i0 : nq, Li = pos0 + i0 + m;
        const long long sS = (long long)Li * m;
        const float *Q = e->q + (size_t)i0 * e->q_dim;
        float *O = e->att32 + (size_t)i0 * e->q_dim;
        for (int g = 0; g < e->geom.n_head_kv; g++) {
            /* S_h (Li x m, col-major) = K_g^T-view . Q_h: keys along rows, queries along columns */
            const cublasStatus_t bs = cublasSgemmStridedBatched(
                e->blas, CUBLAS_OP_T, CUBLAS_OP_N, Li, m, hd, &scale, K + (size_t)g * hd, e->kv_dim,
                0, Q + (size_t)g * group * hd, e->q_dim, hd, &zero,
                e->att_s + (size_t)g * group * sS, Li, sS, group);
            if (bs != CUBLAS_STATUS_SUCCESS) return cu_blas_fail(e, err, bs, "attention scores");
        }
        LAUNCH(e, err, kq_softmax_causal(e->att_s, e->geom.n_head, m, Li, pos0 + i0, e->st),
               "softmax");
        for (int g = 0; g < e->geom.n_head_kv; g++) {
            /* O_h^T (hd x m) = V_g (hd x Li, col-major view of the cache) . P_h (Li x m) */
            const cublasStatus_t bs = cublasSgemmStridedBatched(
                e->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, m, Li, &one, V + (size_t)g * hd, e->kv_dim,
                0, e->att_s + (size_t)g * group * sS, Li, sS, &zero, O + (size_t)g * group * hd,
                e->q_dim, hd, group);
            if (bs != CUBLAS_STATUS_SUCCESS) return cu_blas_fail(e, err, bs, "attention values");
        }
    }
    LAUNCH(e, err, kq_f32_to_f16(e->att32, (long)n * e->q_dim, e->att16, e->st), "attention f16");
    return WS_OK;
}

/* One chunk of n tokens whose first position is pos0; the embeddings are in e->x. */
static ws_status prefill_layers(cu_engine *e, int n, int pos0, const kq_params *hp, ws_error *err) {
    const kq_params *p = e->d_params;
    const int W = e->q_dim + 2 * e->kv_dim;
    for (int l = 0; l < e->n_layer; l++) {
        const cu_layer *L = &e->layers[l];
        LAUNCH(e, err,
               kq_rmsnorm(e->x, L->attn_norm, n, e->n_embd, e->eps, e->xn32, e->xn16, e->st),
               "attention norm");
        ws_status st;
        if ((st = gemm(e, &L->wq, n, e->xn32, e->xn16, e->qkv, W, 0.0f, err)) != WS_OK ||
            (st = gemm(e, &L->wk, n, e->xn32, e->xn16, e->qkv + e->q_dim, W, 0.0f, err)) != WS_OK ||
            (st = gemm(e, &L->wv, n, e->xn32, e->xn16, e->qkv + e->q_dim + e->kv_dim, W, 0.0f,
                       err)) != WS_OK)
            return st;
        LAUNCH(
            e, err,
            kq_rope_kv(e->qkv, L->wq.bias, L->wk.bias, L->wv.bias, n, p, &e->geom, l, e->q, e->st),
            "rotary and KV append");
        if ((st = prefill_attention(e, n, pos0, l, hp, err)) != WS_OK) return st;
        if ((st = gemm(e, &L->wo, n, e->att32, e->att16, e->x, e->n_embd, 1.0f, err)) != WS_OK)
            return st;
        LAUNCH(e, err, kq_rmsnorm(e->x, L->ffn_norm, n, e->n_embd, e->eps, e->xn32, e->xn16, e->st),
               "ffn norm");
        if ((st = gemm(e, &L->w_gate, n, e->xn32, e->xn16, e->gate, e->n_ff, 0.0f, err)) != WS_OK ||
            (st = gemm(e, &L->w_up, n, e->xn32, e->xn16, e->up, e->n_ff, 0.0f, err)) != WS_OK)
            return st;
        LAUNCH(e, err, kq_swiglu(e->gate, e->up, (long)n * e->n_ff, e->ff32, e->ff16, e->st),
               "swiglu");
        if ((st = gemm(e, &L->w_down, n, e->ff32, e->ff16, e->x, e->n_embd, 1.0f, err)) != WS_OK)
            return st;
    }
    return WS_OK;
}

/* Logits of the chunk's rows [0, n) into host rows (ldh = n_vocab), through LM-row groups. */
static ws_status prefill_all_logits(cu_engine *e, int n, float *host, ws_error *err) {
    for (int r0 = 0; r0 < n; r0 += e->lm_rows_n) {
        const int nr = n - r0 < e->lm_rows_n ? n - r0 : e->lm_rows_n;
        const float *xr = e->x + (size_t)r0 * e->n_embd;
        LAUNCH(e, err,
               kq_rmsnorm(xr, e->output_norm, nr, e->n_embd, e->eps, e->xn32, e->xn16, e->st),
               "output norm");
        ws_status st = gemm(e, &e->output, nr, e->xn32, e->xn16, e->lm_rows, e->n_vocab, 0.0f, err);
        if (st != WS_OK) return st;
        CU_CHECK(e, err,
                 cudaMemcpyAsync(host + (size_t)r0 * e->n_vocab, e->lm_rows,
                                 (size_t)nr * e->n_vocab * 4, cudaMemcpyDeviceToHost, e->st),
                 "copying logits");
        CU_CHECK(e, err, cudaStreamSynchronize(e->st), "prefill logits");
    }
    return WS_OK;
}

ws_status cu_prefill(engine_seq *s, const int32_t *tokens, uint32_t n, bool all_logits,
                     float *logits, ws_error *err) {
    cu_engine *e = (cu_engine *)s->eng;
    cu_seq *cs = (cu_seq *)s;
    if (e->fatal) return ws_fail(err, WS_ERR_DEVICE_FATAL, "the CUDA engine hit a sticky error");
    cs->greedy_ready = false; /* the logits row is the prefill's from here on */
    cs->spec = false;
    CU_CHECK(e, err, cudaSetDevice(e->device), "selecting the CUDA device");
    float *seq_logits = cu_logits_row(e, cs->slot, cs->cur);
    for (uint32_t c0 = 0; c0 < n; c0 += PREFILL_CHUNK) {
        const int m = (int)(n - c0 < PREFILL_CHUNK ? n - c0 : PREFILL_CHUNK);
        const bool last = c0 + (uint32_t)m == n;
        /* the pinned staging is reused by every chunk: the previous chunk must be done */
        CU_CHECK(e, err, cudaStreamSynchronize(e->st), "prefill");
        memcpy(e->h_tokens, tokens + c0, (size_t)m * 4);
        cu_params_for(e, cs->slot, cs->cur, 0, (int32_t)(s->n_past + c0), &e->h_params[0]);
        CU_CHECK(
            e, err,
            cudaMemcpyAsync(e->d_tokens, e->h_tokens, (size_t)m * 4, cudaMemcpyHostToDevice, e->st),
            "prefill tokens");
        CU_CHECK(e, err,
                 cudaMemcpyAsync(e->d_params, &e->h_params[0], sizeof(kq_params),
                                 cudaMemcpyHostToDevice, e->st),
                 "prefill parameters");
        LAUNCH(e, err, kq_embed(&e->tok_embd, e->d_tokens, e->d_params, m, e->x, e->st),
               "embedding");
        ws_status st = prefill_layers(e, m, (int)(s->n_past + c0), &e->h_params[0], err);
        if (st != WS_OK) return st;
        if (all_logits && logits) {
            st = prefill_all_logits(e, m, logits + (size_t)c0 * e->n_vocab, err);
            if (st != WS_OK) return st;
        }
        if (last) {
            /* the last row's logits stay on the device for engine_sample */
            LAUNCH(e, err,
                   kq_gemv(KQ_GEMV_SET, &e->output, 1, e->x + (size_t)(m - 1) * e->n_embd,
                           e->output_norm, e->eps, seq_logits, e->d_params, NULL, 0, e->st),
                   "LM head");
            if (logits && !all_logits)
                CU_CHECK(e, err,
                         cudaMemcpyAsync(logits, seq_logits, (size_t)e->n_vocab * 4,
                                         cudaMemcpyDeviceToHost, e->st),
                         "copying logits");
        }
    }
    CU_CHECK(e, err, cudaStreamSynchronize(e->st), "prefill");
    return WS_OK;
}
