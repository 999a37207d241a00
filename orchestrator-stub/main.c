/* main.c: orcd-stub, a minimal orchestrator. It starts a worker (or waits for an external one),
 * loads a model, sends prompts or chat messages and streams the text to the terminal as it
 * arrives, ending with a summary (time to first token, tokens/s, memory). With --script it reads
 * requests as JSON lines on stdin and prints every event as a JSON line on stdout. A worker that
 * dies is restarted and the model loaded again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controller.h"
#include "controller_script.h"

typedef struct {
    const char *listen, *worker_bin, *model, *backend, *model_dir, *worker_log, *session;
    const char *tls_cert, *tls_ca;
    const char *prompts[32], *chats[32];
    int n_prompts, n_chats;
    uint32_t max_tokens, ctx, slots;
    float temperature;
    uint64_t seed;
    bool script, external, show_special;
} stub_args;

static void usage(FILE *out) {
    fprintf(out,
            "usage: orcd-stub --model MODEL.gguf [--prompt TEXT | --chat TEXT]... [options]\n"
            "       orcd-stub --model MODEL.gguf --script   (JSON lines on stdin and stdout)\n\n"
            "  --worker-bin PATH   worker-orcd to start (default: next to orcd-stub)\n"
            "  --external          do not start a worker; wait for one to dial --listen\n"
            "  --listen URL        controller address (default ipc:///tmp/orcd-stub-PID.ipc)\n"
            "  --backend B         cuda | cpu | auto for the started worker (auto)\n"
            "  --model-dir DIR     the worker's model directory (default: the model's folder)\n"
            "  --worker-log FILE   the worker's log (default: inherit stderr)\n"
            "  --max-tokens N      (128)   --temperature T (0 = greedy)   --seed S (0)\n"
            "  --ctx N             context per sequence   --slots N   --session ID\n"
            "  --show-special      print special tokens\n"
            "  --tls-cert FILE     tls+tcp: this controller's certificate and key (PEM)\n"
            "  --tls-ca FILE       tls+tcp: the CA the started worker verifies us with\n");
}

static int parse_args(int argc, char **argv, stub_args *a) {
    memset(a, 0, sizeof *a);
    a->backend = "auto";
    a->max_tokens = 128;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(k, "--help") == 0 || strcmp(k, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(k, "--script") == 0)
            a->script = true, takes = false;
        else if (strcmp(k, "--external") == 0)
            a->external = true, takes = false;
        else if (strcmp(k, "--show-special") == 0)
            a->show_special = true, takes = false;
        else if (!v) {
            fprintf(stderr, "orcd-stub: %s needs a value\n", k);
            return 2;
        } else if (strcmp(k, "--listen") == 0)
            a->listen = v;
        else if (strcmp(k, "--worker-bin") == 0)
            a->worker_bin = v;
        else if (strcmp(k, "--model") == 0)
            a->model = v;
        else if (strcmp(k, "--backend") == 0)
            a->backend = v;
        else if (strcmp(k, "--model-dir") == 0)
            a->model_dir = v;
        else if (strcmp(k, "--worker-log") == 0)
            a->worker_log = v;
        else if (strcmp(k, "--session") == 0)
            a->session = v;
        else if (strcmp(k, "--tls-cert") == 0)
            a->tls_cert = v;
        else if (strcmp(k, "--tls-ca") == 0)
            a->tls_ca = v;
        else if (strcmp(k, "--prompt") == 0 && a->n_prompts < 32)
            a->prompts[a->n_prompts++] = v;
        else if (strcmp(k, "--chat") == 0 && a->n_chats < 32)
            a->chats[a->n_chats++] = v;
        else if (strcmp(k, "--max-tokens") == 0)
            a->max_tokens = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--ctx") == 0)
            a->ctx = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--slots") == 0)
            a->slots = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--temperature") == 0)
            a->temperature = strtof(v, NULL);
        else if (strcmp(k, "--seed") == 0)
            a->seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "orcd-stub: unknown option '%s'\n", k);
            usage(stderr);
            return 2;
        }
        if (takes) i++;
    }
    if (!a->model && !a->script) {
        fprintf(stderr, "orcd-stub: --model is required\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* ---- terminal mode ---- */

typedef struct {
    bool json;
    uint32_t n_tokens;
    char *text; /* the reply so far (terminal mode), for the chat history */
    size_t n_text, cap_text;
} stream_ctx;

static bool print_chunk(void *user, const ptoken_chunk *c) {
    stream_ctx *s = user;
    s->n_tokens += c->n_tokens;
    if (s->json) {
        printf("{\"event\":\"chunk\",\"index\":%u,\"token\":%d,\"text\":", c->index,
               c->n_tokens ? c->tokens[0] : -1);
        json_print_string(stdout, c->text, c->text_len);
        printf("}\n");
    } else {
        fwrite(c->text, 1, c->text_len, stdout);
        if (s->n_text + c->text_len + 1 > s->cap_text) {
            size_t cap = (s->n_text + c->text_len + 1) * 2;
            char *t = realloc(s->text, cap);
            if (!t) return false;
            s->text = t;
            s->cap_text = cap;
        }
        memcpy(s->text + s->n_text, c->text, c->text_len);
        s->n_text += c->text_len;
        s->text[s->n_text] = 0;
    }
    fflush(stdout);
    return true;
}

static const char *finish_name(generate_finish f) {
    return generate_finish_name(f);
}

static void summary(controller *c, const pstream_end *e, FILE *out) {
    pmsg st;
    ws_error err = {{0}};
    fprintf(out,
            "\n--- %s: %u prompt tokens, %u generated (%u cached), TTFT %.1f ms, %.1f tok/s, "
            "total %.0f ms\n",
            finish_name(e->finish), e->prompt_tokens, e->generated_tokens, e->cached_tokens,
            e->ttft_ms, e->decode_tps, e->total_ms);
    if (ctl_health(c, 5000, &st, &err) == WS_OK) {
        const pmem *m = &st.u.status.memory;
        fprintf(out, "--- memory: weights %.1f MiB, KV cache %.1f MiB, scratch %.1f MiB",
                m->weights / 1048576.0, m->kv_cache / 1048576.0, m->scratch / 1048576.0);
        if (m->device_total)
            fprintf(out, "; VRAM free %.0f of %.0f MiB", m->device_free / 1048576.0,
                    m->device_total / 1048576.0);
        fprintf(out, "\n");
        pmsg_free(&st);
    }
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static ws_status load_model(controller *c, const stub_args *a, bool quiet, ws_error *err) {
    pload l = {a->model, a->ctx, 0, 0};
    pmsg r;
    double t0 = now_ms();
    ws_status st = ctl_load(c, &l, 600000, NULL, NULL, &r, err);
    if (st != WS_OK) return st;
    const pload_result *lr = &r.u.load_result;
    if (!quiet)
        fprintf(stderr,
                "orcd-stub: loaded %s (%s, %u layers, %u vocab, ctx %u) on %s: %.0f ms from the "
                "load command to ready (worker: %.0f ms); weights %.1f MiB, KV %.1f MiB\n",
                lr->model_path, lr->architecture, lr->n_layer, lr->n_vocab, lr->n_ctx, lr->backend,
                now_ms() - t0, lr->load_ms, lr->memory.weights / 1048576.0,
                lr->memory.kv_cache / 1048576.0);
    pmsg_free(&r);
    return WS_OK;
}

/* Runs req; a dead worker is restarted, the model reloaded and the request sent once more. */
static ws_status run_one(controller *c, const stub_args *a, const pinfer *req, stream_ctx *s,
                         pstream_end *end, ws_error *err) {
    for (int attempt = 0;; attempt++) {
        char field[PROTO_MAX_FIELD] = "";
        s->n_text = 0;
        ws_status st = ctl_infer(c, req, 600000, print_chunk, s, end, field, err);
        if (st != WS_ERR_IO || attempt > 0 || a->external) return st;
        fprintf(stderr, "orcd-stub: %s; restarting the worker\n", err->msg);
        st = ctl_restart_worker(c, 60000, err);
        if (st == WS_OK) st = load_model(c, a, true, err);
        if (st != WS_OK) return st;
    }
}

static int terminal_mode(controller *c, const stub_args *a) {
    ws_error err = {{0}};
    int rc = 0;
    int n = a->n_prompts + a->n_chats;
    chat_message history[64];
    char *replies[64];
    int n_hist = 0, n_replies = 0;
    stream_ctx s = {false, 0, NULL, 0, 0};
    for (int i = 0; i < (n ? n : 1); i++) {
        pinfer req;
        memset(&req, 0, sizeof req);
        sampler_params_default(&req.sampling);
        req.sampling.temperature = a->temperature;
        req.sampling.seed = a->seed;
        req.max_tokens = a->max_tokens;
        req.session_id = a->session;
        req.show_special = a->show_special;
        if (i < a->n_prompts) {
            req.prompt = a->prompts[i];
            printf("%s", a->prompts[i]);
        } else {
            const char *msg = n ? a->chats[i - a->n_prompts] : "Write a haiku about GPUs.";
            if (n_hist + 2 > 64) break;
            history[n_hist++] = (chat_message){"user", msg};
            req.messages = history;
            req.n_messages = (uint32_t)n_hist;
            printf("> %s\n", msg);
        }
        fflush(stdout);
        pstream_end end;
        ws_status st = run_one(c, a, &req, &s, &end, &err);
        if (st != WS_OK) {
            fprintf(stderr, "\norcd-stub: request failed: %s: %s\n", ws_strerror(st), err.msg);
            rc = 1;
            continue;
        }
        if (req.messages && s.text && n_replies < 64) { /* the next chat turn sees this reply */
            replies[n_replies] = strdup(s.text);
            if (replies[n_replies])
                history[n_hist++] = (chat_message){"assistant", replies[n_replies++]};
        }
        summary(c, &end, stdout);
    }
    for (int i = 0; i < n_replies; i++)
        free(replies[i]);
    free(s.text);
    return rc;
}

int main(int argc, char **argv) {
    stub_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    char url[256], bin[4096], dir[4096];
    if (!a.listen) {
        snprintf(url, sizeof url, "ipc:///tmp/orcd-stub-%d.ipc", (int)getpid());
        a.listen = url;
    }
    if (!a.worker_bin && !a.external) {
        ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 32);
        if (n <= 0) {
            fprintf(stderr, "orcd-stub: cannot find worker-orcd; pass --worker-bin\n");
            return 1;
        }
        bin[n] = 0;
        char *slash = strrchr(bin, '/');
        snprintf(slash + 1, 32, "worker-orcd");
        a.worker_bin = bin;
    }
    char model_abs[4096];
    if (a.model) { /* the worker resolves relative paths against its --model-dir */
        if (!realpath(a.model, model_abs)) {
            fprintf(stderr, "orcd-stub: model '%s' not found\n", a.model);
            return 1;
        }
        a.model = model_abs;
    }
    if (!a.model_dir && a.model) {
        snprintf(dir, sizeof dir, "%s", a.model);
        *strrchr(dir, '/') = 0;
        a.model_dir = dir[0] ? dir : "/";
    }
    char slots[16];
    snprintf(slots, sizeof slots, "%u", a.slots ? a.slots : 2);
    const char *wargs[] = {"--backend",
                           a.backend,
                           "--slots",
                           slots,
                           "--model-dir",
                           a.model_dir ? a.model_dir : ".",
                           a.tls_ca ? "--tls-ca" : NULL,
                           a.tls_ca,
                           NULL};
    ctl_options o;
    ctl_options_default(&o);
    o.url = a.listen;
    o.worker_bin = a.external ? NULL : a.worker_bin;
    o.worker_args = wargs;
    o.worker_log = a.worker_log;
    o.tls_cert_key_file = a.tls_cert;
    controller *c = NULL;
    ws_error err = {{0}};
    double t_spawn = now_ms();
    ws_status st = ctl_open(&o, &c, &err);
    if (st == WS_OK) {
        if (a.external) fprintf(stderr, "orcd-stub: waiting for a worker on %s\n", a.listen);
        st = ctl_wait_registration(c, a.external ? 3600000 : 60000, &err);
    }
    if (st != WS_OK) {
        fprintf(stderr, "orcd-stub: %s\n", err.msg);
        ctl_close(c);
        return 1;
    }
    const preg *r = ctl_registration(c);
    if (!a.script)
        fprintf(stderr,
                "orcd-stub: worker '%s' registered %.0f ms after %s (%s, backend %s, device %s, "
                "pid %u)\n",
                r->worker_id, now_ms() - t_spawn, a.external ? "listening" : "its start", r->build,
                r->backend, r->gpu_name, r->pid);
    if (a.model) st = load_model(c, &a, a.script, &err);
    if (st != WS_OK) {
        fprintf(stderr, "orcd-stub: load failed: %s: %s\n", ws_strerror(st), err.msg);
        ctl_close(c);
        return 1;
    }
    rc = a.script ? stub_script(c, stdin, stdout) : terminal_mode(c, &a);
    ctl_close(c);
    return rc;
}
