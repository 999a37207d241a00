/* worker_load.c: loading a model in the background (path confinement, model, engine, tokenizer),
 * swapping it in only when every step succeeded, and unloading. A failed load keeps whatever was
 * loaded before and records the reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "service/worker_internal.h"
#include "text/chat.h"

typedef struct {
    worker *w;
    uint64_t request_id;
    pload req; /* model_path copied below */
    char path[PATH_MAX];
} load_job;

void worker_refresh_memory(worker *w) {
    pthread_mutex_lock(&w->mu);
    if (w->lm) {
        engine_memory mem;
        ws_error err = {{0}};
        if (engine_memory_get(w->lm->eng, &mem, &err) == WS_OK) w->mem = mem;
    } else {
        /* no model: the device's own figures, so the controller sees free memory move */
        engine_memory dev;
        ws_error err = {{0}};
        if (engine_device_query(w->backend, w->cfg.gpu, &dev, &err) == WS_OK) w->mem = dev;
    }
    pthread_mutex_unlock(&w->mu);
}

void loaded_model_free(worker *w, loaded_model *lm) {
    if (!lm) return;
    turn_acquire(&w->eng_turn);
    pthread_mutex_lock(&w->mu);
    if (w->lm == NULL || w->lm == lm) sessions_free_all(w, lm->n_sessions);
    pthread_mutex_unlock(&w->mu);
    engine_free(lm->eng);
    turn_release(&w->eng_turn);
    tokenizer_free(lm->tok);
    model_free(lm->model);
    free(lm);
}

/* Resolves the requested path (relative paths are taken below --model-dir) and refuses anything
 * whose real path leaves the model directory (symbolic links and ".." included). */
static ws_status resolve_path(const worker *w, const char *req, char *out, ws_error *err) {
    char joined[PATH_MAX * 2];
    if (w->cfg.model_dir && req[0] != '/')
        snprintf(joined, sizeof joined, "%s/%s", w->cfg.model_dir, req);
    else
        snprintf(joined, sizeof joined, "%s", req);
    if (!realpath(joined, out))
        return ws_fail(err, WS_ERR_NOT_FOUND, "model file '%s' not found", req);
    struct stat sb;
    if (stat(out, &sb) != 0 || !S_ISREG(sb.st_mode))
        return ws_fail(err, WS_ERR_NOT_FOUND, "model '%s' is not a regular file", req);
    if (!w->cfg.model_dir) return WS_OK;
    char dir[PATH_MAX];
    if (!realpath(w->cfg.model_dir, dir))
        return ws_fail(err, WS_ERR_NOT_FOUND, "--model-dir '%s' no longer exists",
                       w->cfg.model_dir);
    size_t n = strlen(dir);
    bool inside = strncmp(out, dir, n) == 0 && (out[n] == '/' || (n == 1 && dir[0] == '/'));
    if (!inside)
        return ws_fail(err, WS_ERR_PERMISSION, "model '%s' resolves outside --model-dir '%s'", req,
                       dir);
    return WS_OK;
}

static void send_progress(worker *w, uint64_t id, const char *stage, float fraction) {
    pmsg m;
    pmsg_init(&m, PMSG_LOAD_PROGRESS, id);
    m.u.progress.stage = stage;
    m.u.progress.fraction = fraction;
    worker_send(w, &m);
}

static void census_fill(loaded_model *lm) {
    const gguf_file *f = lm->model->file;
    uint32_t counts[PROTO_MAX_CENSUS] = {0};
    uint32_t types[PROTO_MAX_CENSUS];
    uint32_t n = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        uint32_t t = (uint32_t)gguf_tensor_at(f, i)->type, k = 0;
        while (k < n && types[k] != t)
            k++;
        if (k == n) {
            if (n == PROTO_MAX_CENSUS) continue; /* more block types than any real file has */
            types[n++] = t;
        }
        counts[k]++;
    }
    for (uint32_t k = 0; k < n; k++) {
        snprintf(lm->census_names[k], sizeof lm->census_names[k], "%s", ggml_type_name(types[k]));
        lm->facts.census[k].type = lm->census_names[k];
        lm->facts.census[k].tensors = counts[k];
    }
    lm->facts.n_census = n;
}

/* Builds a complete loaded_model or fails leaving nothing behind. */
/* The first forward passes of a process pay one-time costs (library heuristics and workspaces
 * for each GEMM shape, the first graph launch). A GPU load runs a short prefill, a decode and the
 * sampler once on a scratch sequence so the first request does not pay them. */
static ws_status warm_up(engine *eng, uint32_t n_ctx, ws_error *err) {
    enum { N_MAX = 8 };
    if (n_ctx < 2) return WS_OK; /* no room for a prefill and a decode; nothing to warm */
    const uint32_t n = n_ctx - 1 < N_MAX ? n_ctx - 1 : N_MAX;
    const int32_t toks[N_MAX + 1] = {0};
    engine_seq *s = NULL;
    ws_status st = engine_seq_new(eng, n + 1, &s, err);
    if (st != WS_OK) return st;
    sampler_params p;
    sampler_params_default(&p);
    sampler_result r;
    st = engine_prefill(s, toks, n, false, NULL, err);
    if (st == WS_OK) st = engine_sample(s, &p, toks, n, 0.0f, &r, err);
    engine_seq *const seqs[1] = {s};
    if (st == WS_OK) st = engine_decode(seqs, toks + n, 1, NULL, err);
    if (st == WS_OK) st = engine_sample(s, &p, toks, n + 1, 0.0f, &r, err);
    engine_seq_free(s);
    if (st != WS_OK) ws_error_prefix(err, "warm-up pass: ");
    return st;
}

static ws_status load_model(worker *w, load_job *j, loaded_model **out, ws_error *err) {
    loaded_model *lm = calloc(1, sizeof *lm);
    if (!lm) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
    snprintf(lm->path, sizeof lm->path, "%s", j->path);
    send_progress(w, j->request_id, "open", 0.0f);
    ws_status st = model_open(j->path, &lm->model, err);
    if (st != WS_OK) goto fail;
    const qwen2_config *cfg = &lm->model->cfg;
    uint32_t n_ctx = j->req.n_ctx ? j->req.n_ctx : w->cfg.ctx;
    if (n_ctx == 0) n_ctx = cfg->n_ctx_train < 4096 ? cfg->n_ctx_train : 4096;
    if (n_ctx > cfg->n_ctx_train) {
        st = ws_fail(err, WS_ERR_RANGE, "load.n_ctx %u exceeds the model's trained context %u",
                     n_ctx, cfg->n_ctx_train);
        goto fail;
    }
    lm->n_ctx = n_ctx;
    lm->n_sessions = j->req.n_sessions ? j->req.n_sessions : w->cfg.sessions;
    send_progress(w, j->request_id, "engine", 0.3f);
    engine_options eo = {0};
    eo.n_threads = j->req.n_threads ? (int)j->req.n_threads : w->cfg.threads;
    eo.device = w->cfg.gpu;
    eo.max_seqs = w->cfg.slots + lm->n_sessions;
    eo.max_ctx = n_ctx;
    st = engine_open(w->backend, lm->model, &eo, &lm->eng, err);
    if (st != WS_OK) goto fail;
    if (w->backend == ENGINE_CUDA && (st = warm_up(lm->eng, n_ctx, err)) != WS_OK) goto fail;
    send_progress(w, j->request_id, "tokenizer", 0.9f);
    st = tokenizer_load(lm->model->file, &lm->tok, err);
    if (st != WS_OK) goto fail;
    ws_error cerr = {{0}};
    lm->chat_ok = chat_check_template(lm->model->file, &cerr) == WS_OK;
    if (!lm->chat_ok) log_event(LOG_WARN, j->request_id, "load.chat", "%s", cerr.msg);
    pload_result *f = &lm->facts;
    const char *arch = NULL;
    uint64_t alen = 0;
    if (gguf_get_str(lm->model->file, "general.architecture", &arch, &alen, NULL) == WS_OK)
        snprintf(lm->arch, sizeof lm->arch, "%.*s", (int)(alen < 31 ? alen : 31), arch);
    f->model_path = lm->path;
    f->architecture = lm->arch;
    f->backend = engine_backend_name(w->backend);
    f->n_params = model_n_params(lm->model);
    f->file_bytes = gguf_file_size(lm->model->file);
    f->n_layer = cfg->n_layer, f->n_embd = cfg->n_embd, f->n_head = cfg->n_head;
    f->n_head_kv = cfg->n_head_kv, f->n_vocab = cfg->n_vocab, f->n_ctx_train = cfg->n_ctx_train;
    f->n_ctx = n_ctx;
    census_fill(lm);
    *out = lm;
    return WS_OK;
fail:
    engine_free(lm->eng);
    tokenizer_free(lm->tok);
    model_free(lm->model);
    free(lm);
    return st;
}

static void *load_main(void *p) {
    load_job *j = p;
    worker *w = j->w;
    int64_t t0 = sched_now_ns();
    ws_error err = {{0}};
    loaded_model *lm = NULL;
    ws_status st = resolve_path(w, j->req.model_path, j->path, &err);
    if (st == WS_OK) st = load_model(w, j, &lm, &err);
    if (st != WS_OK) {
        pthread_mutex_lock(&w->mu);
        snprintf(w->reason, sizeof w->reason, "load '%s' failed: %s", j->req.model_path, err.msg);
        w->state = w->lm ? PSTATE_READY : PSTATE_IDLE;
        pthread_mutex_unlock(&w->mu);
        const char *field =
            (st == WS_ERR_NOT_FOUND || st == WS_ERR_PERMISSION || st == WS_ERR_FORMAT)
                ? "load.model_path"
                : (st == WS_ERR_RANGE ? "load.n_ctx" : "");
        worker_send_error(w, j->request_id, st, field, err.msg);
        goto done;
    }
    loaded_model *old;
    pthread_mutex_lock(&w->mu);
    old = w->lm;
    pthread_mutex_unlock(&w->mu);
    loaded_model_free(w, old); /* nothing runs: loads are refused while requests are in flight */
    turn_acquire(&w->eng_turn);
    pthread_mutex_lock(&w->mu);
    w->lm = lm;
    w->reason[0] = 0;
    w->state = PSTATE_READY;
    pthread_mutex_unlock(&w->mu);
    worker_refresh_memory(w);
    turn_release(&w->eng_turn);
    lm->facts.load_ms = (double)(sched_now_ns() - t0) / 1e6;
    pmsg m;
    pmsg_init(&m, PMSG_LOAD_RESULT, j->request_id);
    pthread_mutex_lock(&w->mu);
    m.u.load_result = lm->facts;
    m.u.load_result.memory = (pmem){w->mem.weights, w->mem.kv_cache, w->mem.scratch,
                                    w->mem.device_total, w->mem.device_free};
    pthread_mutex_unlock(&w->mu);
    log_event(LOG_INFO, j->request_id, "load.done", "path=%s ms=%.1f params=%llu", lm->path,
              lm->facts.load_ms, (unsigned long long)lm->facts.n_params);
    worker_send(w, &m);
done:
    free((void *)j->req.model_path);
    free(j);
    atomic_store(&w->load_done, true);
    return NULL;
}

void worker_load_join(worker *w) {
    if (!w->load_running) return;
    pthread_join(w->load_thread, NULL);
    w->load_running = false;
    atomic_store(&w->load_done, false);
}

/* A load thread that left the LOADING state is finishing its reply (which may point into the
 * new model): wait for it before anything could replace or free that model. */
static void join_finishing_load(worker *w) {
    pthread_mutex_lock(&w->mu);
    bool finishing = w->load_running && w->state != PSTATE_LOADING;
    pthread_mutex_unlock(&w->mu);
    if (finishing) {
        pthread_join(w->load_thread, NULL);
        w->load_running = false;
        atomic_store(&w->load_done, false);
    }
}

void worker_on_load(worker *w, const pmsg *m) {
    uint32_t running, queued;
    join_finishing_load(w);
    sched_counts(w->sched, &running, &queued);
    if (!atomic_load(&w->in_flight)) running = queued = 0; /* finished, thread still unwinding */
    pthread_mutex_lock(&w->mu);
    pstate s = w->state;
    bool refuse = s == PSTATE_LOADING || s == PSTATE_DRAINING || s == PSTATE_FAILED || running ||
                  queued || w->load_running;
    if (!refuse) w->state = PSTATE_LOADING;
    pthread_mutex_unlock(&w->mu);
    if (refuse) {
        char msg[160];
        snprintf(msg, sizeof msg, "cannot load while %s with %u running and %u queued requests",
                 pstate_name(s), running, queued);
        worker_send_error(w, m->request_id, WS_ERR_STATE, "", msg);
        return;
    }
    log_event(LOG_INFO, m->request_id, "load.start", "path=%s", m->u.load.model_path);
    load_job *j = calloc(1, sizeof *j);
    char *path = strdup(m->u.load.model_path);
    if (!j || !path) goto fail;
    j->w = w;
    j->request_id = m->request_id;
    j->req = m->u.load;
    j->req.model_path = path;
    if (pthread_create(&w->load_thread, NULL, load_main, j) != 0) goto fail;
    w->load_running = true;
    return;
fail:
    free(j);
    free(path);
    pthread_mutex_lock(&w->mu);
    w->state = w->lm ? PSTATE_READY : PSTATE_IDLE;
    pthread_mutex_unlock(&w->mu);
    worker_send_error(w, m->request_id, WS_ERR_NOMEM, "", "could not start the load");
}

void worker_on_unload(worker *w, const pmsg *m) {
    uint32_t running, queued;
    join_finishing_load(w);
    sched_counts(w->sched, &running, &queued);
    if (!atomic_load(&w->in_flight)) running = queued = 0; /* finished, thread still unwinding */
    pthread_mutex_lock(&w->mu);
    pstate s = w->state;
    bool refuse = s != PSTATE_READY || running || queued;
    loaded_model *lm = refuse ? NULL : w->lm;
    pthread_mutex_unlock(&w->mu);
    if (refuse) {
        char msg[160];
        snprintf(msg, sizeof msg, "cannot unload while %s with %u running and %u queued requests",
                 pstate_name(s), running, queued);
        worker_send_error(w, m->request_id, WS_ERR_STATE, "", msg);
        return;
    }
    loaded_model_free(w, lm);
    pthread_mutex_lock(&w->mu);
    w->lm = NULL;
    w->state = PSTATE_IDLE;
    uint64_t total = w->mem.device_total, free_b = w->mem.device_free;
    char name[128], uuid[64];
    memcpy(name, w->mem.device_name, sizeof name);
    memcpy(uuid, w->mem.device_uuid, sizeof uuid);
    memset(&w->mem, 0, sizeof w->mem);
    w->mem.device_total = total;
    w->mem.device_free = free_b;
    memcpy(w->mem.device_name, name, sizeof name);
    memcpy(w->mem.device_uuid, uuid, sizeof uuid);
    pthread_mutex_unlock(&w->mu);
    log_event(LOG_INFO, m->request_id, "unload", "done");
    pmsg r;
    pmsg_init(&r, PMSG_ACK, m->request_id);
    worker_send(w, &r);
}
