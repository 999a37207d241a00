/* log.h: structured logs on stderr, one line per event, as JSON objects or as text. Each line
 * carries the time, level, worker id, request id (when there is one) and an event name; the
 * message is free text. Prompts and generated text are never logged unless log_init allowed it. */
#ifndef WORKER_BASE_LOG_H
#define WORKER_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;
typedef enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON } log_format;

/* Parses "json" / "text". */
bool log_format_from_name(const char *name, log_format *out);

/* Sets the process-wide format, minimum level, worker id (copied) and whether prompts may be
 * logged. Call once before other threads log; later calls replace the settings. */
void log_init(log_format fmt, log_level min_level, const char *worker_id, bool log_prompts);

/* True when log_init allowed prompt text in logs. */
bool log_prompts_allowed(void);

/* Writes one line: request_id 0 means none. Thread-safe; lines never interleave. */
void log_event(log_level level, uint64_t request_id, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
