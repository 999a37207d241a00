/* controller_script.c: JSON lines in, JSON lines out, for scripting orcd-stub. */
#include "controller_script.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- a minimal JSON reader ---- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    bool b;
    double num;
    char *str; /* J_STR: NUL-terminated (NUL inside strings is refused) */
    struct jval *items;
    char **keys; /* J_OBJ */
    size_t n;
} jval;

typedef struct {
    const char *start, *p, *end;
    int depth;
    char err[128];
} jparser;

static void jfree(jval *v) {
    if (!v) return;
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

static void skip_ws(jparser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n'))
        j->p++;
}

static bool fail(jparser *j, const char *what) {
    snprintf(j->err, sizeof j->err, "%s at column %ld", what, (long)(j->p - j->start) + 1);
    return false;
}

static void put_utf8(char *o, size_t *n, unsigned cp) {
    if (cp < 0x80)
        o[(*n)++] = (char)cp;
    else if (cp < 0x800)
        o[(*n)++] = (char)(0xC0 | cp >> 6), o[(*n)++] = (char)(0x80 | (cp & 63));
    else if (cp < 0x10000)
        o[(*n)++] = (char)(0xE0 | cp >> 12), o[(*n)++] = (char)(0x80 | ((cp >> 6) & 63)),
        o[(*n)++] = (char)(0x80 | (cp & 63));
    else
        o[(*n)++] = (char)(0xF0 | cp >> 18), o[(*n)++] = (char)(0x80 | ((cp >> 12) & 63)),
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 63)), o[(*n)++] = (char)(0x80 | (cp & 63));
}

static bool hex4(jparser *j, unsigned *out) {
    if (j->end - j->p < 4) return fail(j, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(j, "bad \\u escape");
    }
    *out = v;
    return true;
}

static bool parse_string(jparser *j, char **out) {
    j->p++; /* opening quote */
    char *o = malloc((size_t)(j->end - j->p) + 1);
    size_t n = 0;
    if (!o) return fail(j, "out of memory");
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c != '\\') {
            o[n++] = c;
            continue;
        }
        if (j->p >= j->end) break;
        c = *j->p++;
        unsigned cp;
        switch (c) {
        case 'n':
            o[n++] = '\n';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'u':
            if (!hex4(j, &cp)) goto bad;
            if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
                j->p[1] == 'u') {
                unsigned lo;
                j->p += 2;
                if (!hex4(j, &lo)) goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) {
                fail(j, "NUL in a string");
                goto bad;
            }
            put_utf8(o, &n, cp);
            break;
        default:
            o[n++] = c;
        }
    }
    if (j->p >= j->end) {
        fail(j, "unterminated string");
        goto bad;
    }
    j->p++;
    o[n] = 0;
    *out = o;
    return true;
bad:
    free(o);
    return false;
}

static bool parse_value(jparser *j, jval *v);

static bool parse_container(jparser *j, jval *v, bool obj) {
    v->t = obj ? J_OBJ : J_ARR;
    j->p++;
    if (++j->depth > 16) return fail(j, "nesting too deep");
    skip_ws(j);
    if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        jval *items = realloc(v->items, (v->n + 1) * sizeof *items);
        if (!items) return fail(j, "out of memory");
        v->items = items;
        memset(&v->items[v->n], 0, sizeof *items);
        if (obj) {
            char **keys = realloc(v->keys, (v->n + 1) * sizeof *keys);
            if (!keys) return fail(j, "out of memory");
            v->keys = keys;
            v->keys[v->n] = NULL;
            skip_ws(j);
            if (j->p >= j->end || *j->p != '"') return fail(j, "expected a key");
            if (!parse_string(j, &v->keys[v->n])) return false;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':') return fail(j, "expected ':'");
            j->p++;
        }
        v->n++;
        if (!parse_value(j, &v->items[v->n - 1])) return false;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            j->depth--;
            return true;
        }
        return fail(j, "expected ',' or a closing bracket");
    }
}

static bool parse_value(jparser *j, jval *v) {
    skip_ws(j);
    if (j->p >= j->end) return fail(j, "unexpected end");
    char c = *j->p;
    if (c == '{' || c == '[') return parse_container(j, v, c == '{');
    if (c == '"') {
        v->t = J_STR;
        return parse_string(j, &v->str);
    }
    if (strncmp(j->p, "true", 4) == 0) return v->t = J_BOOL, v->b = true, j->p += 4, true;
    if (strncmp(j->p, "false", 5) == 0) return v->t = J_BOOL, v->b = false, j->p += 5, true;
    if (strncmp(j->p, "null", 4) == 0) return v->t = J_NULL, j->p += 4, true;
    char *e = NULL;
    v->num = strtod(j->p, &e);
    if (e == j->p || !isfinite(v->num)) return fail(j, "bad value");
    v->t = J_NUM;
    j->p = e;
    return true;
}

static const jval *jget(const jval *o, const char *key, jtype t) {
    if (!o || o->t != J_OBJ) return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0) return o->items[i].t == t ? &o->items[i] : NULL;
    return NULL;
}

/* ---- writer ---- */

void json_print_string(FILE *out, const char *s, size_t n) {
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_tag(FILE *out, const jval *req) {
    const jval *tag = jget(req, "tag", J_STR);
    if (tag) {
        fputs(",\"tag\":", out);
        json_print_string(out, tag->str, strlen(tag->str));
    }
}

static void print_error(FILE *out, const jval *req, ws_status st, const char *field,
                        const char *msg) {
    fprintf(out, "{\"event\":\"error\",\"code\":\"%s\",\"field\":", ws_strerror(st));
    json_print_string(out, field ? field : "", field ? strlen(field) : 0);
    fputs(",\"message\":", out);
    json_print_string(out, msg, strlen(msg));
    print_tag(out, req);
    fputs("}\n", out);
    fflush(out);
}

/* ---- requests ---- */

typedef struct {
    FILE *out;
    const jval *req;
} chunk_out;

static bool chunk_json(void *user, const ptoken_chunk *c) {
    chunk_out *o = user;
    fprintf(o->out, "{\"event\":\"chunk\",\"index\":%u,\"token\":%d,\"text\":", c->index,
            c->n_tokens ? c->tokens[0] : -1);
    json_print_string(o->out, c->text, c->text_len);
    if (c->n_logprobs) fprintf(o->out, ",\"logprob\":%.6f", c->logprobs[0].logprob);
    print_tag(o->out, o->req);
    fputs("}\n", o->out);
    fflush(o->out);
    return true;
}

static double num_or(const jval *req, const char *k, double dflt) {
    const jval *v = jget(req, k, J_NUM);
    return v ? v->num : dflt;
}

static ws_status do_infer(controller *c, const jval *req, FILE *out, char *field, ws_error *err) {
    pinfer in;
    memset(&in, 0, sizeof in);
    sampler_params_default(&in.sampling);
    chat_message msgs[PROTO_MAX_MESSAGES];
    int32_t *ids = NULL;
    const jval *v;
    if ((v = jget(req, "prompt", J_STR))) in.prompt = v->str;
    if ((v = jget(req, "messages", J_ARR))) {
        if (v->n > PROTO_MAX_MESSAGES) return ws_fail(err, WS_ERR_INVALID_ARG, "too many messages");
        for (size_t i = 0; i < v->n; i++) {
            const jval *role = jget(&v->items[i], "role", J_STR);
            const jval *content = jget(&v->items[i], "content", J_STR);
            msgs[i].role = role ? role->str : "";
            msgs[i].content = content ? content->str : "";
        }
        in.messages = msgs;
        in.n_messages = (uint32_t)v->n;
    }
    if ((v = jget(req, "tokens", J_ARR))) {
        ids = calloc(v->n ? v->n : 1, sizeof *ids);
        if (!ids) return ws_fail(err, WS_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < v->n; i++)
            ids[i] = (int32_t)v->items[i].num;
        in.token_ids = ids;
        in.n_token_ids = (uint32_t)v->n;
    }
    if ((v = jget(req, "stop", J_ARR)))
        for (size_t i = 0; i < v->n && i < GENERATE_MAX_STOP; i++)
            if (v->items[i].t == J_STR) in.stop[in.n_stop++] = v->items[i].str;
    in.max_tokens = (uint32_t)num_or(req, "max_tokens", 64);
    in.timeout_ms = (uint32_t)num_or(req, "timeout_ms", 0);
    in.sampling.temperature = (float)num_or(req, "temperature", 0);
    in.sampling.top_k = (int32_t)num_or(req, "top_k", 0);
    in.sampling.top_p = (float)num_or(req, "top_p", 1);
    in.sampling.seed = (uint64_t)num_or(req, "seed", 0);
    in.sampling.n_logprobs = (uint32_t)num_or(req, "logprobs", 0);
    if ((v = jget(req, "session", J_STR))) in.session_id = v->str;
    chunk_out co = {out, req};
    pstream_end end;
    ws_status st = ctl_infer(c, &in, 600000, chunk_json, &co, &end, field, err);
    free(ids);
    if (st != WS_OK) return st;
    fprintf(out,
            "{\"event\":\"end\",\"finish\":\"%s\",\"prompt_tokens\":%u,"
            "\"generated_tokens\":%u,\"cached_tokens\":%u,\"ttft_ms\":%.3f,"
            "\"decode_tps\":%.3f,\"total_ms\":%.3f",
            generate_finish_name(end.finish), end.prompt_tokens, end.generated_tokens,
            end.cached_tokens, end.ttft_ms, end.decode_tps, end.total_ms);
    print_tag(out, req);
    fputs("}\n", out);
    return WS_OK;
}

static ws_status do_op(controller *c, const jval *req, FILE *out, char *field, ws_error *err) {
    const jval *op = jget(req, "op", J_STR);
    if (!op) return ws_fail(err, WS_ERR_INVALID_ARG, "missing \"op\"");
    if (strcmp(op->str, "infer") == 0) return do_infer(c, req, out, field, err);
    if (strcmp(op->str, "load") == 0) {
        const jval *model = jget(req, "model", J_STR);
        if (!model) return ws_fail(err, WS_ERR_INVALID_ARG, "load: missing \"model\"");
        pload l = {model->str, (uint32_t)num_or(req, "ctx", 0),
                   (uint32_t)num_or(req, "sessions", 0), 0};
        pmsg r;
        ws_status st = ctl_load(c, &l, 600000, NULL, NULL, &r, err);
        if (st != WS_OK) return st;
        const pload_result *lr = &r.u.load_result;
        fprintf(out, "{\"event\":\"loaded\",\"model\":");
        json_print_string(out, lr->model_path, strlen(lr->model_path));
        fprintf(out,
                ",\"backend\":\"%s\",\"n_vocab\":%u,\"n_ctx\":%u,\"load_ms\":%.1f,"
                "\"weights_bytes\":%llu",
                lr->backend, lr->n_vocab, lr->n_ctx, lr->load_ms,
                (unsigned long long)lr->memory.weights);
        print_tag(out, req);
        fputs("}\n", out);
        pmsg_free(&r);
        return WS_OK;
    }
    if (strcmp(op->str, "health") == 0) {
        pmsg r;
        ws_status st = ctl_health(c, 10000, &r, err);
        if (st != WS_OK) return st;
        const pstatus *s = &r.u.status;
        fprintf(out,
                "{\"event\":\"status\",\"state\":\"%s\",\"running\":%u,\"queued\":%u,"
                "\"sessions\":%u,\"weights_bytes\":%llu,\"kv_bytes\":%llu,"
                "\"requests\":%llu,\"reason\":",
                pstate_name(s->state), s->running, s->queued, s->sessions,
                (unsigned long long)s->memory.weights, (unsigned long long)s->memory.kv_cache,
                (unsigned long long)s->counters.requests);
        json_print_string(out, s->reason, strlen(s->reason));
        print_tag(out, req);
        fputs("}\n", out);
        pmsg_free(&r);
        return WS_OK;
    }
    bool found = false;
    ws_status st;
    if (strcmp(op->str, "reset") == 0) {
        const jval *s = jget(req, "session", J_STR);
        st = ctl_reset(c, s ? s->str : NULL, &found, err);
    } else if (strcmp(op->str, "unload") == 0) {
        st = ctl_unload(c, err);
    } else {
        return ws_fail(err, WS_ERR_INVALID_ARG, "unknown op '%s'", op->str);
    }
    if (st != WS_OK) return st;
    fprintf(out, "{\"event\":\"ack\",\"op\":\"%s\",\"found\":%s", op->str,
            found ? "true" : "false");
    print_tag(out, req);
    fputs("}\n", out);
    return WS_OK;
}

int stub_script(controller *c, FILE *in, FILE *out) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        jparser j = {line, line, line + n, 0, ""};
        jval req;
        memset(&req, 0, sizeof req);
        skip_ws(&j);
        if (j.p == j.end) continue;
        if (!parse_value(&j, &req) || req.t != J_OBJ) {
            print_error(out, NULL, WS_ERR_FORMAT, "", j.err[0] ? j.err : "expected an object");
            rc = 1;
            jfree(&req);
            continue;
        }
        char field[PROTO_MAX_FIELD] = "";
        ws_error err = {{0}};
        ws_status st = do_op(c, &req, out, field, &err);
        if (st != WS_OK) {
            print_error(out, &req, st, field, err.msg);
            rc = 1;
        }
        fflush(out);
        jfree(&req);
    }
    free(line);
    return rc;
}
