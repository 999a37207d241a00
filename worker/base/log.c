/* log.c: one formatted line per event, written with a single write(2) so that lines from
 * different threads never interleave. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static log_format g_format = LOG_FORMAT_TEXT;
static log_level g_min = LOG_INFO;
static bool g_prompts = false;
static char g_worker[128] = "";

bool log_format_from_name(const char *name, log_format *out) {
    if (strcmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else if (strcmp(name, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else
        return false;
    return true;
}

void log_init(log_format fmt, log_level min_level, const char *worker_id, bool log_prompts) {
    g_format = fmt;
    g_min = min_level;
    g_prompts = log_prompts;
    snprintf(g_worker, sizeof g_worker, "%s", worker_id ? worker_id : "");
}

bool log_prompts_allowed(void) {
    return g_prompts;
}

static const char *level_name(log_level l) {
    static const char *n[] = {"debug", "info", "warn", "error"};
    return (unsigned)l <= LOG_ERROR ? n[l] : "info";
}

/* Appends s as a JSON string body (without quotes) into out[*n..cap). */
static void json_escape(char *out, size_t cap, size_t *n, const char *s) {
    for (; *s && *n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)c;
        } else if (c < 0x20) {
            *n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
        } else {
            out[(*n)++] = (char)c;
        }
    }
}

void log_event(log_level level, uint64_t request_id, const char *event, const char *fmt, ...) {
    if (level < g_min) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);
    char line[4096];
    size_t n = 0;
    if (g_format == LOG_FORMAT_JSON) {
        n += (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"worker\":\"",
                              when, level_name(level));
        json_escape(line, sizeof line, &n, g_worker);
        if (request_id)
            n += (size_t)snprintf(line + n, sizeof line - n, "\",\"request\":%llu",
                                  (unsigned long long)request_id);
        else
            n += (size_t)snprintf(line + n, sizeof line - n, "\"");
        n += (size_t)snprintf(line + n, sizeof line - n, ",\"event\":\"");
        json_escape(line, sizeof line, &n, event);
        n += (size_t)snprintf(line + n, sizeof line - n, "\",\"msg\":\"");
        json_escape(line, sizeof line, &n, msg);
        n += (size_t)snprintf(line + n, sizeof line - n, "\"}\n");
    } else {
        n = (size_t)snprintf(line, sizeof line, "%s %-5s worker=%s", when, level_name(level),
                             g_worker);
        if (request_id && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " request=%llu",
                                  (unsigned long long)request_id);
        if (n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " %s: %s\n", event, msg);
    }
    if (n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc;
}
