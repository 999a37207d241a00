/* cmd_serve.c: `worker-orcd serve`: run as a worker. Every flag has a WORKER_* environment twin;
 * a flag given on the command line wins over its twin. SIGTERM/SIGINT start a drain; a second
 * signal ends the process at once. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "cli/commands.h"
#include "service/worker.h"

static volatile sig_atomic_t g_signals;

/* The first signal asks for a drain (the loop polls g_signals); a second one means "now": the
 * process ends here, without cleanup, as the user asked. */
static void on_signal(int sig) {
    if (g_signals++ > 0) _exit(128 + sig);
}

typedef enum { OPT_STR, OPT_U32, OPT_U64, OPT_INT, OPT_FLAG } opt_kind;

typedef struct {
    const char *flag, *env;
    opt_kind kind;
    void *dst;
    const char *help;
} serve_opt;

static int parse_value(const serve_opt *o, const char *v, const char *from) {
    if (o->kind == OPT_STR) {
        *(const char **)o->dst = v;
        return 0;
    }
    if (o->kind == OPT_FLAG) {
        if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
            *(int *)o->dst = 1;
        else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
            *(int *)o->dst = 0;
        else
            goto bad;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    if (v[0] == '-' && o->kind != OPT_INT) goto bad;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || !end || *end || end == v) goto bad;
    if (o->kind == OPT_U32 && x > 0xffffffffull) goto bad;
    if (o->kind == OPT_INT) {
        long long s = strtoll(v, &end, 10);
        if (s < -1 || s > 1 << 20) goto bad;
        *(int *)o->dst = (int)s;
    } else if (o->kind == OPT_U32) {
        *(uint32_t *)o->dst = (uint32_t)x;
    } else {
        *(uint64_t *)o->dst = (uint64_t)x;
    }
    return 0;
bad:
    fprintf(stderr, "worker-orcd serve: %s: invalid value '%s' for %s\n", from, v, o->flag);
    return 2;
}

static void usage(FILE *out, const serve_opt *opts, size_t n) {
    fprintf(out, "usage: worker-orcd serve --controller URL --worker-id ID [options]\n\n"
                 "Dials the controller (ipc://PATH, tcp://HOST:PORT, tls+tcp://HOST:PORT), "
                 "registers and serves\nload, inference and health commands until drained.\n\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %-18s %-22s %s\n", opts[i].flag, opts[i].env, opts[i].help);
}

int cmd_serve(int argc, char **argv) {
    worker_config c;
    worker_config_default(&c);
    const char *log_fmt = "text";
    int log_prompts = 0, verbose = 0;
    serve_opt opts[] = {
        {"--controller", "WORKER_CONTROLLER", OPT_STR, &c.controller_url, "controller URL"},
        {"--worker-id", "WORKER_ID", OPT_STR, &c.worker_id, "this worker's identity"},
        {"--gpu", "WORKER_GPU", OPT_INT, &c.gpu, "CUDA device ordinal (0)"},
        {"--backend", "WORKER_BACKEND", OPT_STR, &c.backend, "cuda | cpu | auto (auto)"},
        {"--model-dir", "WORKER_MODEL_DIR", OPT_STR, &c.model_dir, "loads are confined here"},
        {"--log-format", "WORKER_LOG_FORMAT", OPT_STR, &log_fmt, "json | text (text)"},
        {"--log-prompts", "WORKER_LOG_PROMPTS", OPT_FLAG, &log_prompts, "0|1: log prompt text (0)"},
        {"--verbose", "WORKER_VERBOSE", OPT_FLAG, &verbose, "0|1: debug logs (0)"},
        {"--heartbeat-ms", "WORKER_HEARTBEAT_MS", OPT_U32, &c.heartbeat_ms, "heartbeat (1000)"},
        {"--slots", "WORKER_SLOTS", OPT_U32, &c.slots, "requests generating at once (2)"},
        {"--queue", "WORKER_QUEUE", OPT_U32, &c.queue, "requests waiting beyond slots (8)"},
        {"--max-msg-bytes", "WORKER_MAX_MSG_BYTES", OPT_U64, &c.max_msg_bytes,
         "largest accepted message (1048576)"},
        {"--ctx", "WORKER_CTX", OPT_U32, &c.ctx, "context per sequence (min(trained, 4096))"},
        {"--sessions", "WORKER_SESSIONS", OPT_U32, &c.sessions, "sessions kept with KV (4)"},
        {"--threads", "WORKER_THREADS", OPT_INT, &c.threads, "CPU threads (0 = all cores)"},
        {"--drain-ms", "WORKER_DRAIN_MS", OPT_U32, &c.drain_ms, "drain timeout (30000)"},
        {"--grace-ms", "WORKER_GRACE_MS", OPT_U32, &c.grace_ms,
         "controller loss before cancelling (10000)"},
        {"--tls-ca", "WORKER_TLS_CA", OPT_STR, &c.tls_ca_file, "tls+tcp: CA file"},
        {"--tls-cert", "WORKER_TLS_CERT", OPT_STR, &c.tls_cert_key_file, "tls+tcp: cert+key"},
    };
    size_t n_opts = sizeof opts / sizeof opts[0];
    for (size_t i = 0; i < n_opts; i++) {
        const char *v = getenv(opts[i].env);
        if (v && *v && parse_value(&opts[i], v, opts[i].env)) return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, opts, n_opts);
            return 0;
        }
        size_t k = 0;
        while (k < n_opts && strcmp(argv[i], opts[k].flag) != 0)
            k++;
        if (k == n_opts) {
            fprintf(stderr, "worker-orcd serve: unknown option '%s'\n", argv[i]);
            usage(stderr, opts, n_opts);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "worker-orcd serve: %s needs a value\n", argv[i]);
            return 2;
        }
        if (parse_value(&opts[k], argv[++i], "command line")) return 2;
    }
    log_format lf;
    if (!log_format_from_name(log_fmt, &lf)) {
        fprintf(stderr, "worker-orcd serve: --log-format '%s': expected json or text\n", log_fmt);
        return 2;
    }
    if (!c.controller_url || !c.worker_id) {
        fprintf(stderr, "worker-orcd serve: --controller and --worker-id are required\n");
        return 2;
    }
    log_init(lf, verbose ? LOG_DEBUG : LOG_INFO, c.worker_id, log_prompts);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return worker_serve(&c, &g_signals);
}
