/* chat.c: the Qwen2.5 ChatML chat template, rendered in C.
 *
 * The GGUF's tokenizer.chat_template (a Jinja program) is not interpreted: it is recognised as
 * the exact Qwen2.5 template text, and this file renders what that template renders for messages
 * without tools. Any other template is refused rather than approximated. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat.h"

/* tokenizer.chat_template of Qwen2.5 instruct models (as published in tokenizer_config.json). */
static const char qwen25_template[] =
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user "
    "query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\"
    "n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function na"
    "me and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\":"
    " <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }"
    "}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a help"
    "ful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first)"
    " or (message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\"
    "n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

ws_status chat_check_template(const gguf_file *f, ws_error *err) {
    const char *s;
    uint64_t n;
    ws_status st = gguf_get_str(f, "tokenizer.chat_template", &s, &n, err);
    if (st == WS_ERR_NOT_FOUND) return WS_OK;
    if (st != WS_OK) return st;
    if (n == sizeof qwen25_template - 1 && memcmp(s, qwen25_template, n) == 0) return WS_OK;
    char head[61];
    size_t k = n < 60 ? (size_t)n : 60;
    for (size_t i = 0; i < k; i++)
        head[i] = s[i] == '\n' ? ' ' : s[i];
    head[k] = '\0';
    return ws_fail(err, WS_ERR_UNSUPPORTED,
                   "tokenizer.chat_template: %llu bytes starting '%s%s' is not the Qwen2.5 ChatML "
                   "template",
                   (unsigned long long)n, head, n > 60 ? "..." : "");
}

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} strbuf;

static void put(strbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->oom) return;
    if (b->n + k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + k + 1)
            nc *= 2;
        char *p = realloc(b->p, nc);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
}

static bool role_is(const chat_message *m, const char *role) {
    return strcmp(m->role, role) == 0;
}

/* One whole turn: <|im_start|>ROLE\nCONTENT<|im_end|>\n */
static void put_turn(strbuf *b, const char *role, const char *content) {
    put(b, "<|im_start|>");
    put(b, role);
    put(b, "\n");
    put(b, content);
    put(b, "<|im_end|>\n");
}

ws_status chat_render(const chat_message *msgs, size_t n, int add_generation_prompt, char **out,
                      ws_error *err) {
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        const chat_message *m = &msgs[i];
        if (!m->role || !m->content)
            return ws_fail(err, WS_ERR_INVALID_ARG, "chat message %zu: missing %s", i,
                           m->role ? "content" : "role");
        if (!role_is(m, "system") && !role_is(m, "user") && !role_is(m, "assistant") &&
            !role_is(m, "tool"))
            return ws_fail(err, WS_ERR_INVALID_ARG,
                           "chat message %zu: role '%.32s' is not system, user, assistant or tool",
                           i, m->role);
    }
    strbuf b = {0};
    bool first_system = n > 0 && role_is(&msgs[0], "system");
    put_turn(&b, "system", first_system ? msgs[0].content : CHAT_DEFAULT_SYSTEM);
    for (size_t i = first_system ? 1 : 0; i < n; i++) {
        const chat_message *m = &msgs[i];
        if (!role_is(m, "tool")) {
            put_turn(&b, m->role, m->content);
            continue;
        }
        /* Consecutive tool results share one user turn. */
        if (i == 0 || !role_is(&msgs[i - 1], "tool")) put(&b, "<|im_start|>user");
        put(&b, "\n<tool_response>\n");
        put(&b, m->content);
        put(&b, "\n</tool_response>");
        if (i + 1 == n || !role_is(&msgs[i + 1], "tool")) put(&b, "<|im_end|>\n");
    }
    if (add_generation_prompt) put(&b, "<|im_start|>assistant\n");
    if (b.oom) {
        free(b.p);
        return ws_fail(err, WS_ERR_NOMEM, "chat: out of memory rendering %zu messages", n);
    }
    *out = b.p;
    return WS_OK;
}
