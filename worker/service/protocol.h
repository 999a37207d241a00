/* protocol.h: the wire protocol as plain C structs. protocol.c converts them to and from the
 * protobuf-c Envelope of proto/worker.proto and is the only file that knows protobuf-c. Both the
 * worker and the controller library use it.
 *
 * Decoding validates everything that can be checked without a model: protocol version, a body is
 * present, text fields are UTF-8 without NUL, counts are within their caps, exactly one prompt
 * form. Each failure names the field at fault. Checks that need the model (token ids against the
 * vocabulary, prompt + max_tokens against the context, sampling ranges) belong to the worker. */
#ifndef WORKER_SERVICE_PROTOCOL_H
#define WORKER_SERVICE_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "text/chat.h"

#define PROTOCOL_VERSION 1
#define PROTO_MAX_CENSUS 16    /* block types listed in a load result */
#define PROTO_MAX_MESSAGES 256 /* chat messages in one request */
#define PROTO_MAX_FIELD 64     /* bytes of a field name in an error, NUL included */

typedef enum {
    PMSG_NONE = 0,
    PMSG_REGISTER,
    PMSG_REGISTER_ACK,
    PMSG_LOAD,
    PMSG_LOAD_PROGRESS,
    PMSG_LOAD_RESULT,
    PMSG_UNLOAD,
    PMSG_INFER,
    PMSG_TOKEN_CHUNK,
    PMSG_STREAM_END,
    PMSG_CANCEL,
    PMSG_RESET,
    PMSG_HEALTH_QUERY,
    PMSG_STATUS,
    PMSG_HEARTBEAT,
    PMSG_DRAIN,
    PMSG_SHUTDOWN,
    PMSG_ACK,
    PMSG_ERROR,
    PMSG_KIND_COUNT
} pmsg_kind;

typedef enum {
    PSTATE_STARTING = 1,
    PSTATE_IDLE,
    PSTATE_LOADING,
    PSTATE_READY,
    PSTATE_DRAINING,
    PSTATE_FAILED,
} pstate;

typedef struct {
    uint64_t weights, kv_cache, scratch, device_total, device_free;
} pmem;

typedef struct {
    const char *worker_id, *build, *backend, *gpu_name, *gpu_uuid, *model_path;
    uint32_t protocol_version;
    uint64_t vram_total, vram_free, max_msg_bytes;
    uint32_t slots, queue, pid;
    pstate state;
} preg;

typedef struct {
    uint32_t heartbeat_ms;
    const char *session;
} preg_ack;

typedef struct {
    const char *model_path;
    uint32_t n_ctx, n_sessions, n_threads;
} pload;

typedef struct {
    const char *stage;
    float fraction;
} pload_progress;

typedef struct {
    const char *type;
    uint32_t tensors;
} pblock_count;

typedef struct {
    const char *model_path, *architecture, *backend;
    uint64_t n_params, file_bytes;
    uint32_t n_layer, n_embd, n_head, n_head_kv, n_vocab, n_ctx_train, n_ctx;
    pblock_count census[PROTO_MAX_CENSUS];
    uint32_t n_census;
    pmem memory;
    double load_ms;
} pload_result;

/* Exactly one of prompt, messages or token_ids is set (decode checks it). */
typedef struct {
    const char *prompt; /* NUL-terminated UTF-8 or NULL */
    const chat_message *messages;
    uint32_t n_messages;
    const int32_t *token_ids;
    uint32_t n_token_ids;
    sampler_params sampling; /* defaults of sampler_params_default for absent fields; seed and
                              * n_logprobs included */
    const char *stop[GENERATE_MAX_STOP];
    uint32_t n_stop;
    uint32_t max_tokens;    /* >= 1 */
    uint32_t timeout_ms;    /* 0 = no deadline */
    const char *session_id; /* NULL or non-empty */
    bool ignore_eos, show_special;
    bool parse_special; /* prompt: added-token texts become their ids */
} pinfer;

typedef struct {
    uint32_t index;
    const int32_t *tokens;
    uint32_t n_tokens;
    const char *text; /* text_len bytes (NUL-terminated when decoded) */
    uint32_t text_len;
    const sampler_result *logprobs; /* n_logprobs entries (0 when not asked) */
    uint32_t n_logprobs;
} ptoken_chunk;

typedef struct {
    generate_finish finish; /* never GENERATE_FINISH_ERROR: errors travel as PMSG_ERROR */
    uint32_t prompt_tokens, generated_tokens, cached_tokens;
    double ttft_ms, queue_ms, decode_tps, total_ms;
} pstream_end;

typedef struct {
    uint64_t requests, completed, failed, cancelled, rejected, deadline, tokens_in, tokens_out,
        bad_messages;
} pcounters;

typedef struct {
    pstate state;
    const char *reason, *model_path;
    pmem memory;
    uint32_t running, queued, sessions;
    pcounters counters;
    double uptime_ms, decode_tps;
} pstatus;

typedef struct {
    ws_status code;
    const char *message;
    const char *field; /* "" when no single field is at fault */
    bool retriable;
} perror_body;

struct pmsg_alloc;

/* One envelope. Strings and arrays are borrowed when encoding; after pmsg_decode they point into
 * memory owned by the message, released by pmsg_free. */
typedef struct {
    uint32_t protocol_version; /* PROTOCOL_VERSION unless a test says otherwise */
    uint64_t request_id;
    pmsg_kind kind;
    union {
        preg reg;
        preg_ack reg_ack;
        pload load;
        pload_progress progress;
        pload_result load_result;
        pinfer infer;
        ptoken_chunk chunk;
        pstream_end end;
        uint64_t cancel_target;
        struct {
            const char *session_id; /* NULL with all */
            bool all;
        } reset;
        pstatus status;
        struct {
            uint64_t seq;
            pstatus status;
        } heartbeat;
        uint32_t drain_timeout_ms;
        bool ack_found;
        perror_body error;
    } u;
    struct pmsg_alloc *allocs; /* decode only */
} pmsg;

/* Zeroes m, sets the current protocol version and kind. */
void pmsg_init(pmsg *m, pmsg_kind kind, uint64_t request_id);

/* Releases what pmsg_decode allocated; accepts NULL and initialised-only messages. */
void pmsg_free(pmsg *m);

/* Serialises m into a malloc'd buffer (*buf, *len; the caller frees). WS_ERR_INVALID_ARG naming
 * the field when m cannot be represented (too many census rows, an unknown kind). */
ws_status pmsg_encode(const pmsg *m, uint8_t **buf, size_t *len, ws_error *err);

/* Parses and validates len bytes. On failure returns WS_ERR_PROTOCOL (or WS_ERR_NOMEM for a
 * message beyond max_bytes) with err naming the problem and field (size PROTO_MAX_FIELD) naming the
 * field; out->request_id is still set when the envelope could be read so the error reply can carry
 * it. On success the caller owns *out (pmsg_free). max_bytes 0 = no size check. */
ws_status pmsg_decode(const void *buf, size_t len, uint64_t max_bytes, pmsg *out, char *field,
                      ws_error *err);

const char *pmsg_kind_name(pmsg_kind k);
const char *pstate_name(pstate s);
/* True for codes a controller may retry unchanged later (overloaded, state, timeout, device). */
bool pstatus_retriable(ws_status code);

#endif
