/* engine_cuda.cu: the CUDA backend's device set-up: weight upload (one allocation carved by
 * offsets, block types kept, pinned staging with asynchronous copies), the preallocated KV cache
 * and scratch, memory accounting, sequences and error mapping. The forward passes live in
 * forward_cuda.cu, device sampling in sample_cuda.cu. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_cuda.h"

/* ---- errors ---- */

static bool cu_sticky(cudaError_t c) {
    switch (c) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
    case cudaErrorUnknown:
        return true;
    default:
        return false;
    }
}

ws_status cu_fail(cu_engine *e, ws_error *err, cudaError_t c, const char *what) {
    if (cu_sticky(c)) {
        if (e) e->fatal = true;
        return ws_fail(err, WS_ERR_DEVICE_FATAL, "%s: %s (sticky CUDA error; restart needed)", what,
                       cudaGetErrorString(c));
    }
    cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
    return ws_fail(err, WS_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(c));
}

ws_status cu_blas_fail(cu_engine *e, ws_error *err, cublasStatus_t s, const char *what) {
    const cudaError_t c = cudaPeekAtLastError();
    if (c != cudaSuccess && cu_sticky(c)) return cu_fail(e, err, c, what);
    return ws_fail(err, WS_ERR_DEVICE, "%s: cuBLAS status %d", what, (int)s);
}

/* cudaMalloc with an out-of-memory message naming the bytes needed and free. */
static ws_status cu_alloc(cu_engine *e, void **p, uint64_t bytes, const char *what, ws_error *err) {
    const cudaError_t c = cudaMalloc(p, bytes);
    if (c == cudaSuccess) return WS_OK;
    *p = NULL;
    if (c == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return ws_fail(err, WS_ERR_DEVICE,
                       "out of device memory for %s: %llu bytes needed, %llu free of %llu", what,
                       (unsigned long long)bytes, (unsigned long long)fr, (unsigned long long)tot);
    }
    return cu_fail(e, err, c, what);
}

extern "C" bool engine_cuda_device_present(void) {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

/* ---- weights ---- */

#define CU_ALIGN 256u

static uint64_t align_up(uint64_t v) {
    return (v + CU_ALIGN - 1) & ~(uint64_t)(CU_ALIGN - 1);
}

typedef struct {
    const model_tensor *t;
    uint64_t off;
} up_item;

/* Weights that must be uploaded, in order; the tied head is shared with token_embd. */
static int list_tensors(const qwen2_model *m, up_item *items) {
    int n = 0;
    items[n++].t = &m->tok_embd;
    items[n++].t = &m->output_norm;
    if (!m->cfg.tied_output && m->output.data != m->tok_embd.data) items[n++].t = &m->output;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        const qwen2_layer *L = &m->layers[l];
        const model_tensor *ts[] = {&L->attn_norm, &L->wq,     &L->wk,   &L->wv,
                                    &L->bq,        &L->bk,     &L->bv,   &L->wo,
                                    &L->ffn_norm,  &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            items[n++].t = ts[i];
    }
    return n;
}

static const void *dev_ptr(const cu_engine *e, const up_item *items, int n, const model_tensor *t) {
    for (int i = 0; i < n; i++)
        if (items[i].t == t || items[i].t->data == t->data)
            return (const char *)e->d_weights + items[i].off;
    return NULL;
}

static ws_status check_matrix(const model_tensor *t, ws_error *err) {
    if (!ggml_type_supported((uint32_t)t->type) || (t->ne[0] % 8) != 0)
        return ws_fail(err, WS_ERR_UNSUPPORTED,
                       "tensor '%s': type %s with %lld columns is not supported on CUDA", t->name,
                       ggml_type_name((uint32_t)t->type), (long long)t->ne[0]);
    return WS_OK;
}

static kq_mat make_mat(const cu_engine *e, const up_item *items, int n, const model_tensor *t,
                       const model_tensor *bias) {
    kq_mat k;
    k.w = dev_ptr(e, items, n, t);
    k.type = (int)t->type;
    k.cols = (int)t->ne[0];
    k.rows = (int)t->ne[1];
    k.row_bytes = t->row_bytes;
    k.bias = bias ? (const float *)dev_ptr(e, items, n, bias) : NULL;
    return k;
}

/* Copies every tensor through two pinned staging buffers, alternating, with asynchronous copies. */
static ws_status upload(cu_engine *e, up_item *items, int n, ws_error *err) {
    const uint64_t stage = 32u << 20;
    void *pin[2] = {NULL, NULL};
    cudaEvent_t ev[2] = {NULL, NULL};
    ws_status st = WS_OK;
    cudaError_t c = cudaSuccess;
    int k = 0;
    for (int i = 0; i < 2; i++) {
        if ((c = cudaMallocHost(&pin[i], stage)) != cudaSuccess ||
            (c = cudaEventCreateWithFlags(&ev[i], cudaEventDisableTiming)) != cudaSuccess) {
            st = cu_fail(e, err, c, "pinned staging for the weight upload");
            goto done;
        }
    }
    for (int i = 0; i < n; i++) {
        const char *src = (const char *)items[i].t->data;
        char *dst = (char *)e->d_weights + items[i].off;
        for (uint64_t done_b = 0; done_b < items[i].t->n_bytes;) {
            const uint64_t len =
                items[i].t->n_bytes - done_b < stage ? items[i].t->n_bytes - done_b : stage;
            if ((c = cudaEventSynchronize(ev[k])) != cudaSuccess) break;
            memcpy(pin[k], src + done_b, len);
            if ((c = cudaMemcpyAsync(dst + done_b, pin[k], len, cudaMemcpyHostToDevice, e->st)) !=
                    cudaSuccess ||
                (c = cudaEventRecord(ev[k], e->st)) != cudaSuccess)
                break;
            done_b += len;
            k ^= 1;
        }
        if (c != cudaSuccess) break;
    }
    if (c == cudaSuccess) c = cudaStreamSynchronize(e->st);
    if (c != cudaSuccess) st = cu_fail(e, err, c, "uploading the weights");
done:
    for (int i = 0; i < 2; i++) {
        if (ev[i]) cudaEventDestroy(ev[i]);
        if (pin[i]) cudaFreeHost(pin[i]);
    }
    return st;
}

static ws_status load_weights(cu_engine *e, const qwen2_model *m, ws_error *err) {
    const int cap = 3 + 12 * (int)m->cfg.n_layer;
    up_item *items = (up_item *)calloc((size_t)cap, sizeof *items);
    if (!items) return ws_fail(err, WS_ERR_NOMEM, "upload list of %d tensors", cap);
    const int n = list_tensors(m, items);
    ws_status st = WS_OK;
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        items[i].off = off;
        off = align_up(off + items[i].t->n_bytes);
    }
    e->weights_bytes = off;
    if ((st = check_matrix(&m->tok_embd, err)) != WS_OK ||
        (st = check_matrix(&m->output, err)) != WS_OK)
        goto done;
    if ((st = cu_alloc(e, &e->d_weights, off, "the model weights", err)) != WS_OK) goto done;
    if ((st = upload(e, items, n, err)) != WS_OK) goto done;
    e->tok_embd = make_mat(e, items, n, &m->tok_embd, NULL);
    e->output = make_mat(e, items, n, &m->output, NULL);
    e->output_norm = (const float *)dev_ptr(e, items, n, &m->output_norm);
    e->layers = (cu_layer *)calloc(m->cfg.n_layer, sizeof *e->layers);
    if (!e->layers) {
        st = ws_fail(err, WS_ERR_NOMEM, "layer table");
        goto done;
    }
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        const qwen2_layer *L = &m->layers[l];
        const model_tensor *mats[] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                      &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
            if ((st = check_matrix(mats[i], err)) != WS_OK) goto done;
        cu_layer *C = &e->layers[l];
        C->wq = make_mat(e, items, n, &L->wq, &L->bq);
        C->wk = make_mat(e, items, n, &L->wk, &L->bk);
        C->wv = make_mat(e, items, n, &L->wv, &L->bv);
        C->wo = make_mat(e, items, n, &L->wo, NULL);
        C->w_gate = make_mat(e, items, n, &L->w_gate, NULL);
        C->w_up = make_mat(e, items, n, &L->w_up, NULL);
        C->w_down = make_mat(e, items, n, &L->w_down, NULL);
        C->attn_norm = (const float *)dev_ptr(e, items, n, &L->attn_norm);
        C->ffn_norm = (const float *)dev_ptr(e, items, n, &L->ffn_norm);
    }
done:
    free(items);
    return st;
}

/* ---- scratch ---- */

static ws_status alloc_scratch(cu_engine *e, ws_error *err) {
    const uint64_t P = PREFILL_CHUNK, D = (uint64_t)e->n_embd, F = (uint64_t)e->n_ff;
    const uint64_t W = (uint64_t)e->q_dim + 2u * e->kv_dim;
    uint64_t wmax = (uint64_t)LM_ROW_CHUNK * D;
    for (int l = 0; l < e->n_layer; l++) {
        const cu_layer *L = &e->layers[l];
        const kq_mat *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) {
            const uint64_t el = (uint64_t)ms[i]->rows * ms[i]->cols;
            if (el > wmax) wmax = el;
        }
    }
    e->wdeq_elems = wmax;
    uint64_t rows = LM_LOGITS_BYTES / ((uint64_t)e->n_vocab * 4u);
    e->lm_rows_n = (int)(rows < 1 ? 1 : rows > P ? P : rows);
    e->sample_ws_bytes = kq_sample_scratch_bytes(e->n_vocab);
    {
        const uint64_t per_key = (uint64_t)e->geom.n_head * P * 4u;
        uint64_t keys = ATT_SCORES_BYTES / per_key;
        if (keys > (uint64_t)e->max_ctx) keys = (uint64_t)e->max_ctx;
        e->att_s_elems = keys * e->geom.n_head * P;
    }
    const uint64_t part = (uint64_t)e->geom.n_head * e->dec_split * (e->geom.head_dim + 2);
    struct {
        void **p;
        uint64_t bytes;
    } plan[] = {
        {(void **)&e->x, P * D * 4},
        {(void **)&e->xn32, P * D * 4},
        {(void **)&e->xn16, P * D * 2},
        {(void **)&e->qkv, P * W * 4},
        {(void **)&e->q, P * e->q_dim * 4},
        {(void **)&e->att32, P * e->q_dim * 4},
        {(void **)&e->att16, P * e->q_dim * 2},
        {(void **)&e->gate, P * F * 4},
        {(void **)&e->up, P * F * 4},
        {(void **)&e->ff32, P * F * 4},
        {(void **)&e->ff16, P * F * 2},
        {(void **)&e->wdeq, wmax * 2},
        {(void **)&e->lm_rows, (uint64_t)e->lm_rows_n * e->n_vocab * 4},
        {(void **)&e->part, part * 4},
        {(void **)&e->att_s, e->att_s_elems * 4},
        {(void **)&e->counters, (uint64_t)e->geom.n_head * 4},
        {(void **)&e->d_greedy, (uint64_t)e->max_seqs * 2 * sizeof(kq_greedy_out)},
        {&e->greedy_ws, kq_greedy_scratch_bytes()},
        {&e->sample_ws, e->sample_ws_bytes},
        {(void **)&e->d_params, sizeof(kq_params) * 2},
        {(void **)&e->d_tokens, P * 4},
        {(void **)&e->d_pen, 2u * e->n_vocab * 4},
        {(void **)&e->d_sample_out, sizeof(kq_sample_out)},
    };
    const int n = (int)(sizeof plan / sizeof plan[0]);
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += align_up(plan[i].bytes);
    ws_status st = cu_alloc(e, &e->d_scratch, total, "scratch buffers", err);
    if (st != WS_OK) return st;
    e->scratch_bytes = total;
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        *plan[i].p = (char *)e->d_scratch + off;
        off += align_up(plan[i].bytes);
    }
    /* the counters (attention, greedy choice, sampler) must start at zero; the kernels leave
     * them zero */
    CU_CHECK(e, err, cudaMemsetAsync(e->d_scratch, 0, total, e->st), "clearing scratch");
    return WS_OK;
}

static ws_status alloc_host(cu_engine *e, ws_error *err) {
    CU_CHECK(e, err, cudaMallocHost((void **)&e->h_params, sizeof(kq_params) * e->max_seqs),
             "pinned parameters");
    CU_CHECK(e, err, cudaMallocHost((void **)&e->h_tokens, PREFILL_CHUNK * 4), "pinned tokens");
    CU_CHECK(e, err, cudaMallocHost((void **)&e->h_pen, 2u * e->n_vocab * 4), "pinned history");
    CU_CHECK(e, err, cudaMallocHost((void **)&e->h_sample_out, sizeof(kq_sample_out)),
             "pinned sample result");
    return WS_OK;
}

/* ---- lifecycle ---- */

static void cu_free(engine *base) {
    cu_engine *e = (cu_engine *)base;
    if (!e) return;
    cudaSetDevice(e->device);
    if (e->graph) cudaGraphExecDestroy(e->graph);
    if (e->blas) cublasDestroy(e->blas);
    if (e->st) cudaStreamSynchronize(e->st);
    cudaFree(e->d_weights);
    cudaFree(e->d_kv);
    cudaFree(e->d_seq_logits);
    cudaFree(e->d_scratch);
    cudaFree((void *)e->geom.inv_freq);
    cudaFreeHost(e->h_params);
    cudaFreeHost(e->h_tokens);
    cudaFreeHost(e->h_pen);
    cudaFreeHost(e->h_sample_out);
    if (e->params_done) cudaEventDestroy(e->params_done);
    if (e->choice_done) cudaEventDestroy(e->choice_done);
    if (e->st) cudaStreamDestroy(e->st);
    free(e->layers);
    free(e->slot_used);
    free(e);
}

static ws_status cu_open(const qwen2_model *m, const engine_options *opt, engine **out,
                         ws_error *err) {
    const qwen2_config *c = &m->cfg;
    if (c->head_dim != 64 && c->head_dim != 128)
        return ws_fail(err, WS_ERR_UNSUPPORTED, "head_dim %u: the CUDA engine handles 64 and 128",
                       c->head_dim);
    if (c->n_head_kv == 0 || c->n_head % c->n_head_kv != 0 || c->n_embd % 8 != 0 ||
        c->n_ff % 8 != 0)
        return ws_fail(err, WS_ERR_UNSUPPORTED, "geometry n_embd %u n_ff %u heads %u/%u", c->n_embd,
                       c->n_ff, c->n_head, c->n_head_kv);
    cu_engine *e = (cu_engine *)calloc(1, sizeof *e);
    if (!e) return ws_fail(err, WS_ERR_NOMEM, "CUDA engine");
    ws_status st = WS_OK;
    cudaError_t ce;
    cublasStatus_t bs;
    double *inv = NULL;
    e->device = opt->device;
    e->n_layer = (int)c->n_layer;
    e->n_embd = (int)c->n_embd;
    e->n_ff = (int)c->n_ff;
    e->n_vocab = (int)c->n_vocab;
    e->q_dim = (int)(c->n_head * c->head_dim);
    e->kv_dim = (int)(c->n_head_kv * c->head_dim);
    e->max_ctx = (int)opt->max_ctx;
    e->max_seqs = (int)opt->max_seqs;
    e->eps = c->rms_eps;
    e->geom.n_head = (int)c->n_head;
    e->geom.n_head_kv = (int)c->n_head_kv;
    e->geom.head_dim = (int)c->head_dim;
    e->geom.max_ctx = e->max_ctx;
    {
        /* at most 32 splits; the attention kernel also keeps 256 keys a split or more, since
         * merging splits costs more than walking up to 256 keys in one block */
        const int s = (e->max_ctx + 255) / 256;
        e->dec_split = s < 1 ? 1 : s > 32 ? 32 : s;
    }
    if ((ce = cudaSetDevice(e->device)) != cudaSuccess) {
        st = cu_fail(e, err, ce, "selecting the CUDA device");
        goto fail;
    }
    if ((ce = cudaStreamCreateWithFlags(&e->st, cudaStreamNonBlocking)) != cudaSuccess) {
        st = cu_fail(e, err, ce, "creating a stream");
        goto fail;
    }
    if ((ce = cudaEventCreateWithFlags(&e->params_done, cudaEventDisableTiming)) != cudaSuccess ||
        (ce = cudaEventCreateWithFlags(&e->choice_done, cudaEventDisableTiming)) != cudaSuccess) {
        st = cu_fail(e, err, ce, "creating an event");
        goto fail;
    }
    if ((bs = cublasCreate(&e->blas)) != CUBLAS_STATUS_SUCCESS ||
        (bs = cublasSetStream(e->blas, e->st)) != CUBLAS_STATUS_SUCCESS) {
        st = cu_blas_fail(e, err, bs, "creating the cuBLAS handle");
        goto fail;
    }
    if ((st = load_weights(e, m, err)) != WS_OK) goto fail;
    /* rotary frequencies in double: base^(-2i/head_dim) */
    {
        const int half = (int)c->head_dim / 2;
        inv = (double *)malloc(sizeof(double) * half);
        if (!inv) {
            st = ws_fail(err, WS_ERR_NOMEM, "rotary table");
            goto fail;
        }
        for (int i = 0; i < half; i++)
            inv[i] = pow((double)c->rope_base, -2.0 * i / (double)c->head_dim);
        if ((st = cu_alloc(e, (void **)&e->geom.inv_freq, sizeof(double) * half, "rotary table",
                           err)) != WS_OK)
            goto fail;
        if ((ce = cudaMemcpy((void *)e->geom.inv_freq, inv, sizeof(double) * half,
                             cudaMemcpyHostToDevice)) != cudaSuccess) {
            st = cu_fail(e, err, ce, "uploading the rotary table");
            goto fail;
        }
    }
    e->slot_elems = (uint64_t)e->n_layer * e->max_ctx * e->kv_dim;
    e->kv_bytes = 2u * e->slot_elems * 4u * e->max_seqs;
    if ((st = cu_alloc(e, (void **)&e->d_kv, e->kv_bytes, "the KV cache", err)) != WS_OK) goto fail;
    if ((st = cu_alloc(e, (void **)&e->d_seq_logits, (uint64_t)e->max_seqs * 2 * e->n_vocab * 4,
                       "sequence logits", err)) != WS_OK)
        goto fail;
    e->slot_used = (bool *)calloc((size_t)e->max_seqs, sizeof(bool));
    if (!e->slot_used) {
        st = ws_fail(err, WS_ERR_NOMEM, "sequence slots");
        goto fail;
    }
    if ((st = alloc_scratch(e, err)) != WS_OK || (st = alloc_host(e, err)) != WS_OK) goto fail;
    if ((st = cu_capture_decode(e, err)) != WS_OK) goto fail;
    if ((ce = cudaStreamSynchronize(e->st)) != cudaSuccess) {
        st = cu_fail(e, err, ce, "finishing the set-up");
        goto fail;
    }
    free(inv);
    *out = &e->base;
    return WS_OK;
fail:
    free(inv);
    cu_free(&e->base);
    return st;
}

static ws_status cu_memory(engine *base, engine_memory *out, ws_error *err) {
    cu_engine *e = (cu_engine *)base;
    out->weights = e->weights_bytes;
    out->kv_cache = e->kv_bytes;
    out->scratch = e->scratch_bytes + (uint64_t)e->max_seqs * e->n_vocab * 4;
    /* name, UUID, total and free memory as registration reports them */
    return engine_cuda_device_query(e->device, out, err);
}

/* ---- sequences ---- */

float *cu_logits_row(const cu_engine *e, int slot, int row) {
    return e->d_seq_logits + ((uint64_t)slot * 2 + (uint64_t)row) * e->n_vocab;
}

kq_greedy_out *cu_greedy_of(const cu_engine *e, int slot, int row) {
    return e->d_greedy + (size_t)slot * 2 + (size_t)row;
}

void cu_params_for(cu_engine *e, int slot, int row, int32_t token, int32_t pos, kq_params *out) {
    memset(out, 0, sizeof *out);
    out->token = token;
    out->pos = pos;
    out->k = e->d_kv + (uint64_t)slot * 2u * e->slot_elems;
    out->v = out->k + e->slot_elems;
    out->logits = cu_logits_row(e, slot, row);
    out->greedy = cu_greedy_of(e, slot, row);
}

static ws_status cu_seq_new(engine *base, uint32_t n_ctx, engine_seq **out, ws_error *err) {
    cu_engine *e = (cu_engine *)base;
    int slot = -1;
    for (int i = 0; i < e->max_seqs && slot < 0; i++)
        if (!e->slot_used[i]) slot = i;
    if (slot < 0)
        return ws_fail(err, WS_ERR_OVERLOADED, "all %d sequence slots are in use", e->max_seqs);
    cu_seq *s = (cu_seq *)calloc(1, sizeof *s);
    if (!s) return ws_fail(err, WS_ERR_NOMEM, "sequence");
    s->slot = slot;
    e->slot_used[slot] = true;
    *out = &s->base;
    return WS_OK;
}

static void cu_seq_free(engine_seq *base) {
    cu_seq *s = (cu_seq *)base;
    if (!s) return;
    ((cu_engine *)s->base.eng)->slot_used[s->slot] = false;
    free(s);
}

static ws_status cu_seq_truncate(engine_seq *s, uint32_t n, ws_error *err) {
    /* Cache rows at and beyond n are overwritten by the next tokens; nothing to clear. A
     * speculative step no longer matches any decode. */
    ((cu_seq *)s)->spec = false;
    return WS_OK;
}

extern "C" const engine_ops engine_cuda_ops = {
    "cuda",      cu_open,         cu_free,    cu_memory, cu_seq_new,
    cu_seq_free, cu_seq_truncate, cu_prefill, cu_decode, cu_sample,
};
