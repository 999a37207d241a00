/* chat.h: the Qwen2.5 ChatML template, recognised from tokenizer.chat_template. */
#ifndef WORKER_TEXT_CHAT_H
#define WORKER_TEXT_CHAT_H

#include <stddef.h>

#include "base/status.h"
#include "model/gguf.h"

typedef struct {
    const char *role;    /* "system", "user", "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
} chat_message;

#define CHAT_DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

/* WS_OK when the file's tokenizer.chat_template is one this module renders (Qwen2/Qwen2.5
 * ChatML); WS_ERR_UNSUPPORTED naming what was found otherwise. A file without a template is
 * treated as ChatML. */
ws_status chat_check_template(const gguf_file *f, ws_error *err);

/* Renders messages as ChatML text (with the default system prompt when the first message is not
 * a system message), ending with "<|im_start|>assistant\n" when add_generation_prompt. The result
 * is malloc'd; encode it with parse_special = true. Unknown roles are WS_ERR_INVALID_ARG. */
ws_status chat_render(const chat_message *msgs, size_t n, int add_generation_prompt, char **out,
                      ws_error *err);

#endif
