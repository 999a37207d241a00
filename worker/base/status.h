/* status.h: the one error enum of worker-orcd, its strerror, and the error-text buffer that
 * carries the detail (which key, field, value or offset) from the point of failure to the caller
 * and, in the service, to the controller. */
#ifndef WORKER_BASE_STATUS_H
#define WORKER_BASE_STATUS_H

#include <stddef.h>

typedef enum {
    WS_OK = 0,
    WS_ERR_IO,           /* a file or socket operation failed */
    WS_ERR_FORMAT,       /* malformed input: model file, message, request */
    WS_ERR_UNSUPPORTED,  /* well-formed but not implemented (architecture, block type, template) */
    WS_ERR_INVALID_ARG,  /* a caller-supplied argument or flag is out of range */
    WS_ERR_NOMEM,        /* host allocation failed or a size limit was hit */
    WS_ERR_NOT_FOUND,    /* a key, tensor, session or file does not exist */
    WS_ERR_RANGE,        /* a value (position, context, token id) is outside its range */
    WS_ERR_DEVICE,       /* a recoverable GPU error (including device out of memory) */
    WS_ERR_DEVICE_FATAL, /* a sticky GPU error: the process must report and exit */
    WS_ERR_OVERLOADED,   /* admission refused: slots and queue are full */
    WS_ERR_CANCELLED,    /* the request was cancelled */
    WS_ERR_TIMEOUT,      /* a deadline passed */
    WS_ERR_STATE,        /* the operation is not allowed in the current state */
    WS_ERR_PROTOCOL,     /* a wire-protocol violation */
    WS_ERR_PERMISSION,   /* refused by policy (path outside the model directory) */
    WS_ERR_INTERNAL,     /* an invariant broke */
    WS_STATUS_COUNT
} ws_status;

/* Returns a static, stable lower-case name for st ("format", "device-fatal", ...). */
const char *ws_strerror(ws_status st);

/* Error detail. Functions that fail write a one-line message here; callers may pass NULL. */
typedef struct {
    char msg[512];
} ws_error;

/* Formats the message into err (when err is not NULL) and returns st, so a failure reads
 * `return ws_fail(err, WS_ERR_FORMAT, "tensor '%s': n_dims %u > 4", name, nd);`. */
ws_status ws_fail(ws_error *err, ws_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context ("loading model: " + old message). */
void ws_error_prefix(ws_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
