/* controller_script.h: the scriptable side of orcd-stub. Requests arrive as JSON lines, events
 * leave as JSON lines; a minimal JSON reader and writer are included (objects, arrays, strings,
 * numbers, booleans, null). */
#ifndef ORCD_CONTROLLER_SCRIPT_H
#define ORCD_CONTROLLER_SCRIPT_H

#include <stddef.h>
#include <stdio.h>

#include "controller.h"

/* Writes bytes as a JSON string literal (quotes included); invalid UTF-8 bytes become U+FFFD. */
void json_print_string(FILE *out, const char *s, size_t n);

/* Reads requests from in until end of input, one JSON object per line:
 *   {"op":"infer", "prompt":"..." | "messages":[{"role":"user","content":"..."}] | "tokens":[...],
 *    "max_tokens":N, "temperature":T, "top_k":K, "top_p":P, "seed":S, "stop":["..."],
 *    "session":"...", "timeout_ms":N, "logprobs":N}
 *   {"op":"load", "model":"...", "ctx":N, "sessions":N}   {"op":"unload"}   {"op":"health"}
 *   {"op":"reset", "session":"..."} (all sessions without "session")
 * and prints events: chunk, end, error, loaded, status, ack, each with the line's "tag" when given.
 * Returns 0 when every request succeeded, 1 otherwise. */
int stub_script(controller *c, FILE *in, FILE *out);

#endif
