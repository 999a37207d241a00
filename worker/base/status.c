/* status.c: names for ws_status and the error-text helpers. */
#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[WS_STATUS_COUNT] = {
    [WS_OK] = "ok",
    [WS_ERR_IO] = "io",
    [WS_ERR_FORMAT] = "format",
    [WS_ERR_UNSUPPORTED] = "unsupported",
    [WS_ERR_INVALID_ARG] = "invalid-argument",
    [WS_ERR_NOMEM] = "out-of-memory",
    [WS_ERR_NOT_FOUND] = "not-found",
    [WS_ERR_RANGE] = "out-of-range",
    [WS_ERR_DEVICE] = "device",
    [WS_ERR_DEVICE_FATAL] = "device-fatal",
    [WS_ERR_OVERLOADED] = "overloaded",
    [WS_ERR_CANCELLED] = "cancelled",
    [WS_ERR_TIMEOUT] = "timeout",
    [WS_ERR_STATE] = "state",
    [WS_ERR_PROTOCOL] = "protocol",
    [WS_ERR_PERMISSION] = "permission",
    [WS_ERR_INTERNAL] = "internal",
};

const char *ws_strerror(ws_status st) {
    if ((unsigned)st >= WS_STATUS_COUNT) return "unknown";
    return status_names[st];
}

ws_status ws_fail(ws_error *err, ws_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

void ws_error_prefix(ws_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[256];
    char old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Messages longer than the buffer end with "..." rather than being cut silently. */
    size_t np = strnlen(prefix, sizeof prefix), no = strnlen(old, sizeof old);
    size_t cap = sizeof err->msg - 1;
    if (np > cap) np = cap;
    memcpy(err->msg, prefix, np);
    size_t room = cap - np;
    if (no <= room) {
        memcpy(err->msg + np, old, no);
        err->msg[np + no] = '\0';
    } else {
        memcpy(err->msg + np, old, room);
        memcpy(err->msg + cap - 3, "...", 3);
        err->msg[cap] = '\0';
    }
}
