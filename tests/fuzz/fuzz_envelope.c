/* fuzz_envelope.c: libFuzzer harness for the wire protocol. Every input goes through envelope
 * decoding (byte budget, version, body, field validation) and, for infer requests, the sampling
 * checks the worker applies before queueing. A decoded message must re-encode, decode again to
 * the same kind and id, and re-encode to the same bytes.
 * Built with -DENVELOPE_SEEDS it is instead a small program that writes one valid envelope of
 * each kind into the folder given as its argument (the fuzz run's seeds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/protocol.h"

#define FUZZ_MAX_BYTES (1u << 20)

#ifndef ENVELOPE_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy, so reads past size are caught by ASan */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    pmsg m;
    char field[PROTO_MAX_FIELD];
    ws_error err;
    if (pmsg_decode(copy, size, FUZZ_MAX_BYTES, &m, field, &err) == WS_OK) {
        if (m.kind == PMSG_INFER) (void)sampler_params_validate(&m.u.infer.sampling, 151936, &err);
        uint8_t *buf = NULL, *buf2 = NULL;
        size_t len = 0, len2 = 0;
        pmsg m2;
        if (pmsg_encode(&m, &buf, &len, &err) != WS_OK) abort();
        if (pmsg_decode(buf, len, 0, &m2, field, &err) != WS_OK) abort();
        if (m2.kind != m.kind || m2.request_id != m.request_id) abort();
        if (pmsg_encode(&m2, &buf2, &len2, &err) != WS_OK) abort();
        if (len2 != len || memcmp(buf, buf2, len) != 0) abort();
        free(buf);
        free(buf2);
        pmsg_free(&m2);
    }
    pmsg_free(&m);
    free(copy);
    return 0;
}
#else
static int write_seed(const char *dir, const pmsg *m) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ws_error err;
    if (pmsg_encode(m, &buf, &len, &err) != WS_OK) {
        fprintf(stderr, "envelope seeds: %s: %s\n", pmsg_kind_name(m->kind), err.msg);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, pmsg_kind_name(m->kind));
    FILE *f = fopen(path, "wb");
    int rc = !f || fwrite(buf, 1, len, f) != len;
    if (f && fclose(f) != 0) rc = 1;
    free(buf);
    if (rc) fprintf(stderr, "envelope seeds: cannot write %s\n", path);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: envelope_seeds DIR\n");
        return 2;
    }
    static const int32_t ids[] = {3838, 374, 279};
    static const chat_message msgs[] = {{"system", "be brief"}, {"user", "hi"}};
    int rc = 0;
    for (int k = PMSG_REGISTER; k < PMSG_KIND_COUNT; k++) {
        pmsg m;
        pmsg_init(&m, (pmsg_kind)k, 7);
        switch (k) {
        case PMSG_REGISTER:
            m.u.reg.worker_id = "w1";
            m.u.reg.backend = "cpu";
            m.u.reg.state = PSTATE_IDLE;
            m.u.reg.protocol_version = PROTOCOL_VERSION;
            break;
        case PMSG_LOAD:
            m.u.load.model_path = "m.gguf";
            m.u.load.n_ctx = 512;
            break;
        case PMSG_INFER:
            m.u.infer.prompt = "hello";
            sampler_params_default(&m.u.infer.sampling);
            m.u.infer.max_tokens = 4;
            m.u.infer.stop[0] = "\n";
            m.u.infer.n_stop = 1;
            break;
        case PMSG_TOKEN_CHUNK:
            m.u.chunk.tokens = ids;
            m.u.chunk.n_tokens = 3;
            m.u.chunk.text = "abc";
            m.u.chunk.text_len = 3;
            break;
        case PMSG_ERROR:
            m.u.error.code = WS_ERR_FORMAT;
            m.u.error.message = "bad";
            m.u.error.field = "prompt";
            break;
        case PMSG_RESET:
            m.u.reset.all = true;
            break;
        default:
            break;
        }
        rc |= write_seed(argv[1], &m);
    }
    pmsg m;
    pmsg_init(&m, PMSG_INFER, 8);
    m.u.infer.messages = msgs;
    m.u.infer.n_messages = 2;
    sampler_params_default(&m.u.infer.sampling);
    m.u.infer.max_tokens = 2;
    m.u.infer.session_id = "s";
    uint8_t *buf = NULL;
    size_t len = 0;
    ws_error err;
    if (pmsg_encode(&m, &buf, &len, &err) == WS_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/infer-chat.bin", argv[1]);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len) rc = 1;
        if (f) fclose(f);
        free(buf);
    } else {
        rc = 1;
    }
    return rc;
}
#endif
