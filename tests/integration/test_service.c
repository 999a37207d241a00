/* test_service.c: a real worker-orcd process (CPU backend) driven over ipc:// by the controller
 * library: registration, load, streamed greedy generation against the transformers golden,
 * equality with `worker-orcd run`, chat, cancel, sessions, queueing, overload and deadlines. */
#include <signal.h>
#include <strings.h>
#include <sys/wait.h>

#include "integration/service_fixture.h"

/* tests/data/goldens/ta-q8_0.json, prompt "short": token ids and the greedy continuation that
 * Hugging Face transformers produced on the same weights (top-1/top-2 margins >= 0.51, far above
 * any FP32 rounding difference). */
static const int32_t SHORT_IDS[] = {785, 374, 279, 6, 315, 30, 198};
static const int32_t SHORT_GREEDY[16] = {682, 682, 682, 682, 682, 682, 682, 682,
                                         682, 682, 682, 682, 682, 682, 682, 682};
#define N_SHORT 7

START_TEST(registration_and_heartbeat) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-reg", "--slots", "3", "--queue", "5",
                                       "--max-msg-bytes", "200000", NULL});
    const preg *r = ctl_registration(f.c);
    ck_assert_str_eq(r->worker_id, "w-reg");
    ck_assert_str_eq(r->backend, "cpu");
    ck_assert_uint_eq(r->protocol_version, PROTOCOL_VERSION);
    ck_assert_uint_eq(r->slots, 3);
    ck_assert_uint_eq(r->queue, 5);
    ck_assert_uint_eq(r->max_msg_bytes, 200000);
    ck_assert_int_eq(r->state, PSTATE_IDLE);
    ck_assert_uint_eq(r->pid, (uint32_t)ctl_worker_pid(f.c));
    ck_assert(strncmp(r->build, "worker-orcd ", 12) == 0);
    /* Heartbeats come at the interval the ack set (200 ms): wait for one. */
    pmsg m;
    ws_error err = {{0}};
    ck_assert_int_eq(ctl_next(f.c, 1500, &m, &err), WS_ERR_TIMEOUT);
    const pstatus *hb = ctl_last_heartbeat(f.c);
    ck_assert_ptr_nonnull(hb);
    ck_assert_int_eq(hb->state, PSTATE_IDLE);
    /* An idle worker refuses to generate, naming its state. */
    pinfer in = fx_ids_request(SHORT_IDS, N_SHORT, 4);
    pstream_end end;
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 5000, NULL, NULL, &end, field, &err), WS_ERR_STATE);
    ck_assert_msg(strstr(err.msg, "idle") != NULL, "%s", err.msg);
    fx_stop(&f);
}
END_TEST

START_TEST(load_reports_model_and_memory) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-load", NULL});
    pload l = {FX_MODEL, 0, 0, 0};
    pmsg r;
    ws_error err = {{0}};
    ck_assert_int_eq(ctl_load(f.c, &l, 60000, NULL, NULL, &r, &err), WS_OK);
    const pload_result *lr = &r.u.load_result;
    /* Facts from tests/data/README.md: ta = 256 hidden, 2 layers, 4/2 heads, vocab 1152. */
    ck_assert_str_eq(lr->architecture, "qwen2");
    ck_assert_uint_eq(lr->n_layer, 2);
    ck_assert_uint_eq(lr->n_embd, 256);
    ck_assert_uint_eq(lr->n_head, 4);
    ck_assert_uint_eq(lr->n_head_kv, 2);
    ck_assert_uint_eq(lr->n_vocab, 1152);
    ck_assert_uint_eq(lr->n_ctx, 4096);
    ck_assert_str_eq(lr->backend, "cpu");
    ck_assert_uint_eq(lr->file_bytes, 2027136);
    bool has_q8 = false;
    for (uint32_t i = 0; i < lr->n_census; i++)
        has_q8 |= strcasecmp(lr->census[i].type, "q8_0") == 0;
    ck_assert_msg(has_q8, "census lacks q8_0");
    ck_assert_msg(strstr(lr->model_path, f.dir + 5) != NULL, "%s", lr->model_path);
    pmsg_free(&r);
    pmsg h;
    ck_assert_int_eq(ctl_health(f.c, 5000, &h, &err), WS_OK);
    ck_assert_int_eq(h.u.status.state, PSTATE_READY);
    pmsg_free(&h);
    fx_stop(&f);
}
END_TEST

START_TEST(greedy_stream_matches_golden) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-greedy", NULL});
    fx_load(&f, FX_MODEL);
    pinfer in = fx_ids_request(SHORT_IDS, N_SHORT, 16);
    fx_stream s;
    fx_stream_init(&s);
    pstream_end end;
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &s, &end, field, &err), WS_OK);
    ck_assert_int_eq(end.finish, GENERATE_FINISH_LENGTH);
    ck_assert_uint_eq(end.prompt_tokens, N_SHORT);
    ck_assert_uint_eq(end.generated_tokens, 16);
    ck_assert_uint_eq(s.n_tokens, 16);
    ck_assert(s.index_ok);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(s.tokens[i], SHORT_GREEDY[i]);
    ck_assert(end.ttft_ms > 0);
    fx_stop(&f);
}
END_TEST

/* Runs `worker-orcd run` with how ("-p" or "--chat") and returns its stdout (malloc'd). */
static char *run_cli(const char *model, const char *how, const char *text, int max_tokens) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' run -m '%s' --backend cpu --threads 1 %s '%s' -n %d --temp 0 2>/dev/null",
             FX_WORKER, model, how, text, max_tokens);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char *out = calloc(1, 65536);
    size_t n = fread(out, 1, 65535, p);
    out[n] = 0;
    int rc = pclose(p);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "worker-orcd run failed: %d", rc);
    return out;
}

START_TEST(stream_equals_run_command) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-run", NULL});
    fx_load(&f, FX_MODEL);
    const char *prompt = "The capital of France is";
    pinfer in;
    memset(&in, 0, sizeof in);
    sampler_params_default(&in.sampling);
    in.prompt = prompt;
    in.max_tokens = 24;
    fx_stream s;
    fx_stream_init(&s);
    pstream_end end;
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &s, &end, field, &err), WS_OK);
    s.text[s.n_text] = 0;
    ck_assert_uint_eq(end.generated_tokens, 24);
    ck_assert_uint_gt(s.n_text, 0);
    /* `run` prints exactly the generated text on stdout. */
    char *cli = run_cli(f.model, "-p", prompt, 24);
    ck_assert_str_eq(cli, s.text);
    free(cli);
    /* The same for one chat message. */
    chat_message msgs[] = {{"user", "Name three colours."}};
    in.prompt = NULL;
    in.messages = msgs;
    in.n_messages = 1;
    in.max_tokens = 20;
    fx_stream_init(&s);
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &s, &end, field, &err), WS_OK);
    s.text[s.n_text] = 0;
    cli = run_cli(f.model, "--chat", msgs[0].content, 20);
    ck_assert_str_eq(cli, s.text);
    free(cli);
    fx_stop(&f);
}
END_TEST

START_TEST(chat_equals_chatml_text) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-chat", NULL});
    fx_load(&f, FX_MODEL);
    chat_message msgs[] = {{"user", "hi"}};
    pinfer in;
    memset(&in, 0, sizeof in);
    sampler_params_default(&in.sampling);
    in.messages = msgs;
    in.n_messages = 1;
    in.max_tokens = 12;
    in.ignore_eos = true;
    fx_stream a, b;
    fx_stream_init(&a);
    fx_stream_init(&b);
    pstream_end ea, eb;
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &a, &ea, field, &err), WS_OK);
    /* The same conversation written out by hand from the ChatML definition (REFERENCE: default
     * system prompt, newline after "assistant"); its special tokens are parsed. */
    in.messages = NULL;
    in.n_messages = 0;
    in.parse_special = true;
    in.prompt = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                "assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &b, &eb, field, &err), WS_OK);
    ck_assert_uint_eq(ea.prompt_tokens, eb.prompt_tokens);
    ck_assert_uint_eq(a.n_tokens, 12);
    ck_assert_uint_eq(a.n_tokens, b.n_tokens);
    for (uint32_t i = 0; i < a.n_tokens; i++)
        ck_assert_int_eq(a.tokens[i], b.tokens[i]);
    fx_stop(&f);
}
END_TEST

START_TEST(cancel_mid_stream) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-cancel", NULL});
    fx_load(&f, FX_MODEL);
    pinfer in = fx_ids_request(SHORT_IDS, N_SHORT, 4000);
    fx_stream s;
    fx_stream_init(&s);
    s.stop_after = 3; /* ctl_infer sends a Cancel after the third chunk */
    pstream_end end;
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 60000, fx_collect, &s, &end, field, &err), WS_OK);
    ck_assert_int_eq(end.finish, GENERATE_FINISH_CANCELLED);
    ck_assert_uint_ge(end.generated_tokens, 3);
    ck_assert_uint_lt(end.generated_tokens, 4000);
    /* Cancel is idempotent: a finished request is simply not found. */
    bool found = true;
    ck_assert_int_eq(ctl_cancel(f.c, 1000000, &found, &err), WS_OK);
    ck_assert(!found);
    /* The worker keeps serving. */
    in.max_tokens = 4;
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, NULL, NULL, &end, field, &err), WS_OK);
    ck_assert_int_eq(end.finish, GENERATE_FINISH_LENGTH);
    fx_stop(&f);
}
END_TEST

START_TEST(session_reuse_and_reset) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-sess", NULL});
    fx_load(&f, FX_MODEL);
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    pstream_end end;
    fx_stream t1;
    fx_stream_init(&t1);
    pinfer in = fx_ids_request(SHORT_IDS, N_SHORT, 6);
    in.session_id = "conv-1";
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &t1, &end, field, &err), WS_OK);
    ck_assert_uint_eq(end.cached_tokens, 0);
    /* Turn two: the whole conversation so far plus new tokens. */
    int32_t conv[64];
    uint32_t n = 0;
    for (uint32_t i = 0; i < N_SHORT; i++)
        conv[n++] = SHORT_IDS[i];
    for (uint32_t i = 0; i < t1.n_tokens; i++)
        conv[n++] = t1.tokens[i];
    conv[n++] = 198;
    conv[n++] = 785;
    fx_stream t2, fresh, t3;
    fx_stream_init(&t2);
    fx_stream_init(&fresh);
    fx_stream_init(&t3);
    in = fx_ids_request(conv, n, 8);
    in.session_id = "conv-1";
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &t2, &end, field, &err), WS_OK);
    /* Everything fed before is reused: the prompt and the generated tokens, except the last one
     * when generation sampled it without feeding it back. */
    ck_assert_uint_ge(end.cached_tokens, N_SHORT + t1.n_tokens - 1);
    ck_assert_uint_le(end.cached_tokens, N_SHORT + t1.n_tokens);
    /* The same conversation without a session: computed from scratch, same tokens. */
    in.session_id = NULL;
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &fresh, &end, field, &err), WS_OK);
    ck_assert_uint_eq(end.cached_tokens, 0);
    ck_assert_uint_eq(t2.n_tokens, fresh.n_tokens);
    for (uint32_t i = 0; i < t2.n_tokens; i++)
        ck_assert_int_eq(t2.tokens[i], fresh.tokens[i]);
    /* Reset drops the state: the next turn starts from nothing. */
    bool found = false;
    ck_assert_int_eq(ctl_reset(f.c, "conv-1", &found, &err), WS_OK);
    ck_assert(found);
    ck_assert_int_eq(ctl_reset(f.c, "no-such", &found, &err), WS_OK);
    ck_assert(!found);
    in.session_id = "conv-1";
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &t3, &end, field, &err), WS_OK);
    ck_assert_uint_eq(end.cached_tokens, 0);
    for (uint32_t i = 0; i < t3.n_tokens; i++)
        ck_assert_int_eq(t3.tokens[i], fresh.tokens[i]);
    ck_assert_int_eq(ctl_reset(f.c, NULL, &found, &err), WS_OK);
    ck_assert(found);
    pmsg h;
    ck_assert_int_eq(ctl_health(f.c, 5000, &h, &err), WS_OK);
    ck_assert_uint_eq(h.u.status.sessions, 0);
    pmsg_free(&h);
    fx_stop(&f);
}
END_TEST

/* Sends n greedy requests without waiting; returns their ids. */
static void send_many(fx *f, uint64_t *ids, int n, uint32_t max_tokens, uint32_t timeout_ms) {
    for (int i = 0; i < n; i++) {
        pmsg m;
        pmsg_init(&m, PMSG_INFER, 0);
        m.u.infer = fx_ids_request(SHORT_IDS, N_SHORT, max_tokens);
        m.u.infer.timeout_ms = i == n - 1 ? timeout_ms : 0;
        ws_error err = {{0}};
        ids[i] = ctl_send(f->c, &m, &err);
        ck_assert_uint_ne(ids[i], 0);
    }
}

typedef struct {
    int n_chunks, ended, errored;
    pmsg_kind last;
    pstream_end end;
    perror_body error;
    char message[256];
    int end_order, first_chunk_order;
} req_log;

/* Reads messages until every one of n requests ended; order counts message arrivals. */
static void collect_all(fx *f, const uint64_t *ids, req_log *logs, int n) {
    int done = 0, order = 0;
    while (done < n) {
        pmsg m;
        ws_error err = {{0}};
        ws_status st = ctl_next(f->c, 60000, &m, &err);
        ck_assert_msg(st == WS_OK, "%s", err.msg);
        order++;
        for (int i = 0; i < n; i++) {
            if (m.request_id != ids[i]) continue;
            req_log *l = &logs[i];
            if (m.kind == PMSG_TOKEN_CHUNK && m.u.chunk.n_tokens) {
                if (!l->n_chunks) l->first_chunk_order = order;
                l->n_chunks++;
            } else if (m.kind == PMSG_STREAM_END) {
                l->ended = 1, l->end = m.u.end, l->end_order = order, done++;
            } else if (m.kind == PMSG_ERROR) {
                l->errored = 1, l->error = m.u.error, done++;
                snprintf(l->message, sizeof l->message, "%s", m.u.error.message);
                l->error.message = l->message;
                l->error.field = "";
            }
        }
        pmsg_free(&m);
    }
}

START_TEST(queued_requests_run_in_order) {
    fx f;
    fx_start(&f,
             (const char *const[]){"--worker-id", "w-queue", "--slots", "1", "--queue", "4", NULL});
    fx_load(&f, FX_MODEL);
    uint64_t ids[3];
    req_log logs[3];
    memset(logs, 0, sizeof logs);
    send_many(&f, ids, 3, 24, 0);
    collect_all(&f, ids, logs, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(logs[i].ended, "request %d: %s", i, logs[i].message);
        ck_assert_int_eq(logs[i].end.finish, GENERATE_FINISH_LENGTH);
        ck_assert_int_eq(logs[i].n_chunks, 24);
    }
    /* One slot: each request starts streaming only after the previous one ended. */
    ck_assert_int_gt(logs[1].first_chunk_order, logs[0].end_order);
    ck_assert_int_gt(logs[2].first_chunk_order, logs[1].end_order);
    ck_assert(logs[2].end.queue_ms >= logs[0].end.queue_ms);
    fx_stop(&f);
}
END_TEST

START_TEST(overload_rejected) {
    fx f;
    fx_start(&f,
             (const char *const[]){"--worker-id", "w-over", "--slots", "1", "--queue", "1", NULL});
    fx_load(&f, FX_MODEL);
    uint64_t ids[4];
    req_log logs[4];
    memset(logs, 0, sizeof logs);
    send_many(&f, ids, 4, 300, 0);
    collect_all(&f, ids, logs, 4);
    /* Capacity is one running plus one queued: the other two are refused at once. */
    ck_assert(logs[0].ended && logs[1].ended);
    for (int i = 2; i < 4; i++) {
        ck_assert(logs[i].errored);
        ck_assert_int_eq(logs[i].error.code, WS_ERR_OVERLOADED);
        ck_assert(logs[i].error.retriable);
        ck_assert_int_eq(logs[i].n_chunks, 0);
        ck_assert_msg(strstr(logs[i].message, "overloaded") != NULL, "%s", logs[i].message);
    }
    pmsg h;
    ws_error err = {{0}};
    ck_assert_int_eq(ctl_health(f.c, 5000, &h, &err), WS_OK);
    ck_assert_uint_eq(h.u.status.counters.rejected, 2);
    ck_assert_uint_eq(h.u.status.counters.completed, 2);
    pmsg_free(&h);
    fx_stop(&f);
}
END_TEST

START_TEST(deadline_exceeded) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-dead", "--slots", "1", NULL});
    fx_load(&f, FX_MODEL);
    /* A request still waiting in the queue when its deadline passes ends without tokens. */
    uint64_t ids[2];
    req_log logs[2];
    memset(logs, 0, sizeof logs);
    send_many(&f, ids, 2, 2000, 50);
    collect_all(&f, ids, logs, 2);
    ck_assert(logs[1].ended);
    ck_assert_int_eq(logs[1].end.finish, GENERATE_FINISH_DEADLINE);
    ck_assert_int_eq(logs[1].n_chunks, 0);
    ck_assert_int_lt(logs[1].end_order, logs[0].end_order);
    /* A running request stops between tokens once its deadline passed. */
    pinfer in = fx_ids_request(SHORT_IDS, N_SHORT, 4000);
    in.timeout_ms = 150;
    pstream_end end;
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 60000, NULL, NULL, &end, field, &err), WS_OK);
    ck_assert_int_eq(end.finish, GENERATE_FINISH_DEADLINE);
    ck_assert_uint_lt(end.generated_tokens, 4000);
    fx_stop(&f);
}
END_TEST

START_TEST(health_answered_during_generation) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-health", NULL});
    fx_load(&f, FX_MODEL);
    uint64_t ids[1];
    send_many(&f, ids, 1, 1500, 0);
    pmsg m;
    ws_error err = {{0}};
    /* Wait for the first token, then ask: the status reports the running request. */
    do {
        ck_assert_int_eq(ctl_next(f.c, 30000, &m, &err), WS_OK);
        pmsg_kind k = m.kind;
        pmsg_free(&m);
        if (k == PMSG_TOKEN_CHUNK) break;
    } while (1);
    pmsg q;
    pmsg_init(&q, PMSG_HEALTH_QUERY, 0);
    uint64_t hid = ctl_send(f.c, &q, &err);
    bool got_status = false, ended = false;
    uint32_t running = 0;
    while (!ended) {
        ck_assert_int_eq(ctl_next(f.c, 30000, &m, &err), WS_OK);
        if (m.request_id == hid && m.kind == PMSG_STATUS) {
            got_status = true;
            running = m.u.status.running;
            ck_assert_int_eq(m.u.status.state, PSTATE_READY);
        }
        ended = m.request_id == ids[0] && m.kind == PMSG_STREAM_END;
        pmsg_free(&m);
    }
    ck_assert(got_status);
    ck_assert_uint_eq(running, 1);
    fx_stop(&f);
}
END_TEST

/* tests/data/goldens/ta-q8_0.json, prompt "one": [785] continues greedily with token 22 (top-1
 * margins >= 0.49). */
static const int32_t ONE_IDS[] = {785};
#define ONE_GREEDY 22

START_TEST(concurrent_slots_match_goldens) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-slots", "--slots", "2", NULL});
    fx_load(&f, FX_MODEL);
    /* Two requests share the engine token by token; each must still equal its golden. */
    uint64_t ids[2];
    pmsg m;
    ws_error err = {{0}};
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer = fx_ids_request(SHORT_IDS, N_SHORT, 16);
    ids[0] = ctl_send(f.c, &m, &err);
    pmsg_init(&m, PMSG_INFER, 0);
    m.u.infer = fx_ids_request(ONE_IDS, 1, 16);
    m.u.infer.sampling.n_logprobs = 3;
    ids[1] = ctl_send(f.c, &m, &err);
    int ended = 0, n[2] = {0, 0};
    while (ended < 2) {
        pmsg r;
        ck_assert_msg(ctl_next(f.c, 30000, &r, &err) == WS_OK, "%s", err.msg);
        int k = r.request_id == ids[0] ? 0 : (r.request_id == ids[1] ? 1 : -1);
        ck_assert_int_ge(k, 0);
        if (r.kind == PMSG_TOKEN_CHUNK && r.u.chunk.n_tokens) {
            int32_t want = k == 0 ? SHORT_GREEDY[n[k]] : ONE_GREEDY;
            ck_assert_int_eq(r.u.chunk.tokens[0], want);
            ck_assert_uint_eq(r.u.chunk.index, n[k]);
            if (k == 1) { /* greedy: the chosen token is the most likely alternative */
                ck_assert_uint_eq(r.u.chunk.n_logprobs, 1);
                ck_assert_uint_eq(r.u.chunk.logprobs[0].n_top, 3);
                ck_assert_int_eq(r.u.chunk.logprobs[0].top_tokens[0], want);
                ck_assert(r.u.chunk.logprobs[0].logprob <= 0.0f);
            } else {
                ck_assert_uint_eq(r.u.chunk.n_logprobs, 0);
            }
            n[k]++;
        } else if (r.kind == PMSG_STREAM_END) {
            ck_assert_int_eq(r.u.end.finish, GENERATE_FINISH_LENGTH);
            ended++;
        } else {
            ck_assert_msg(r.kind == PMSG_TOKEN_CHUNK, "unexpected %s", pmsg_kind_name(r.kind));
        }
        pmsg_free(&r);
    }
    ck_assert_int_eq(n[0], 16);
    ck_assert_int_eq(n[1], 16);
    fx_stop(&f);
}
END_TEST

START_TEST(stop_string_ends_stream) {
    fx f;
    fx_start(&f, (const char *const[]){"--worker-id", "w-stop", NULL});
    fx_load(&f, FX_MODEL);
    /* The golden continuation repeats token 682; a stop string spanning two of its copies ends
     * the stream after the second, and is not emitted. */
    pinfer in = fx_ids_request(SHORT_IDS, N_SHORT, 16);
    fx_stream s;
    fx_stream_init(&s);
    pstream_end end;
    ws_error err = {{0}};
    char field[PROTO_MAX_FIELD];
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &s, &end, field, &err), WS_OK);
    s.text[s.n_text] = 0;
    size_t piece = s.n_text / 16; /* every token has the same text */
    ck_assert_uint_gt(piece, 1);
    char stop[64];
    snprintf(stop, sizeof stop, "%.*s%.*s", (int)piece - 1, s.text + 1, 1, s.text);
    in.stop[0] = stop;
    in.n_stop = 1;
    fx_stream t;
    fx_stream_init(&t);
    ck_assert_int_eq(ctl_infer(f.c, &in, 30000, fx_collect, &t, &end, field, &err), WS_OK);
    ck_assert_int_eq(end.finish, GENERATE_FINISH_STOP_STRING);
    ck_assert_uint_eq(end.generated_tokens, 2);
    t.text[t.n_text] = 0;
    ck_assert_uint_eq(t.n_text, 1); /* only the first byte precedes the stop string */
    ck_assert_int_eq(t.text[0], s.text[0]);
    fx_stop(&f);
}
END_TEST

Suite *service_suite(void) {
    Suite *s = suite_create("service");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, registration_and_heartbeat);
    tcase_add_test(tc, load_reports_model_and_memory);
    tcase_add_test(tc, greedy_stream_matches_golden);
    tcase_add_test(tc, stream_equals_run_command);
    tcase_add_test(tc, chat_equals_chatml_text);
    tcase_add_test(tc, cancel_mid_stream);
    tcase_add_test(tc, session_reuse_and_reset);
    tcase_add_test(tc, queued_requests_run_in_order);
    tcase_add_test(tc, overload_rejected);
    tcase_add_test(tc, deadline_exceeded);
    tcase_add_test(tc, health_answered_during_generation);
    tcase_add_test(tc, concurrent_slots_match_goldens);
    tcase_add_test(tc, stop_string_ends_stream);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(service_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
