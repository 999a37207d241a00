/* test_chat.c: the ChatML renderer against conversations rendered by an independent Jinja
 * interpreter running the upstream Qwen2.5 chat template (@lenml/tokenizers; see
 * scripts/tokref/gen.js): same text, and the same ids once encoded with special parsing. Also
 * template recognition (the vocabulary file's template, a changed one, none) and argument errors.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text/chat.h"
#include "tok_vectors.h"

static gguf_file *g_file;
static tokenizer *g_tok;

static void setup(void) {
    g_tok = tv_load_tokenizer(&g_file);
}

static void teardown(void) {
    tokenizer_free(g_tok);
    gguf_close(g_file);
}

/* Parses "role=HEX,role=HEX,..." into messages (strings malloc'd, kept for the test). */
static size_t parse_msgs(char *s, size_t n, chat_message *msgs, size_t cap) {
    size_t k = 0, i = 0;
    while (i < n) {
        char *eq = memchr(s + i, '=', n - i);
        ck_assert(eq != NULL && k < cap);
        char *end = memchr(eq, ',', (size_t)(s + n - eq));
        if (!end) end = s + n;
        *eq = '\0';
        msgs[k].role = s + i;
        msgs[k].content = tv_unhex(eq + 1, (size_t)(end - eq - 1)).p;
        k++;
        i = (size_t)(end - s) + 1;
    }
    return k;
}

START_TEST(matches_reference_renderer) {
    tv_bytes file = tv_read_file(WORKER_TEST_DATA_BUILD "/tokenizer/lenml-qwen2.5-chat.tsv");
    char *line = file.p;
    size_t n = 0, ok = 0;
    while (line < file.p + file.n) {
        char *nl = memchr(line, '\n', (size_t)(file.p + file.n - line));
        ck_assert(nl != NULL);
        char *f[4];
        size_t len[4];
        ck_assert_int_eq(tv_fields(line, (size_t)(nl - line), f, len, 4), 4);
        chat_message msgs[64];
        size_t n_msgs = parse_msgs(f[1], len[1], msgs, 64);
        tv_bytes want = tv_unhex(f[2], len[2]);
        size_t n_want;
        int32_t *want_ids = tv_ids(f[3], len[3], &n_want);
        char *text;
        ws_error err = {{0}};
        ck_assert_msg(chat_render(msgs, n_msgs, f[0][0] == '1', &text, &err) == WS_OK, "%s",
                      err.msg);
        int32_t *ids;
        size_t n_ids;
        ck_assert(tokenizer_encode(g_tok, text, strlen(text), true, &ids, &n_ids, &err) == WS_OK);
        bool same_text = strlen(text) == want.n && memcmp(text, want.p, want.n) == 0;
        bool same_ids = n_ids == n_want && memcmp(ids, want_ids, n_ids * sizeof *ids) == 0;
        if (same_text && same_ids)
            ok++;
        else
            fprintf(stderr, "conversation %zu (%zu messages): text %s, ids %s\n", n, n_msgs,
                    same_text ? "same" : "differs", same_ids ? "same" : "differ");
        for (size_t k = 0; k < n_msgs; k++)
            free((char *)msgs[k].content);
        free(text);
        free(ids);
        free(want.p);
        free(want_ids);
        n++;
        line = nl + 1;
    }
    fprintf(stderr, "chat: %zu of %zu conversations match\n", ok, n);
    ck_assert_uint_ge(n, 150);
    ck_assert_uint_eq(ok, n);
    free(file.p);
}
END_TEST

/* The documented single-turn Qwen2.5 prompt, written out. */
START_TEST(default_system_prompt) {
    chat_message m = {"user", "hi"};
    char *text;
    ck_assert(chat_render(&m, 1, 1, &text, NULL) == WS_OK);
    ck_assert_str_eq(text, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                           "helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                           "<|im_start|>assistant\n");
    free(text);
}
END_TEST

START_TEST(bad_messages) {
    ws_error err = {{0}};
    char *text = (char *)1;
    chat_message bad_role = {"robot", "x"};
    ck_assert_int_eq(chat_render(&bad_role, 1, 1, &text, &err), WS_ERR_INVALID_ARG);
    ck_assert(text == NULL);
    ck_assert(strstr(err.msg, "robot") != NULL);
    chat_message no_content = {"user", NULL};
    ck_assert_int_eq(chat_render(&no_content, 1, 1, &text, &err), WS_ERR_INVALID_ARG);
}
END_TEST

/* Writes the vocabulary file with tokenizer.chat_template replaced (NULL: dropped). */
static gguf_file *variant(const char *tmpl) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/test_chat_%d.gguf", (int)getpid());
    ws_error err = {{0}};
    gguf_writer *w = NULL;
    ck_assert(gguf_writer_new(&w, &err) == WS_OK);
    for (uint64_t i = 0; i < gguf_n_kv(g_file); i++) {
        if (strcmp(gguf_kv_key(g_file, i), "tokenizer.chat_template") != 0)
            ck_assert(gguf_writer_copy_kv(w, g_file, i, &err) == WS_OK);
        else if (tmpl)
            ck_assert(gguf_writer_set_str(w, "tokenizer.chat_template", tmpl, strlen(tmpl), &err) ==
                      WS_OK);
    }
    ck_assert_msg(gguf_writer_write(w, path, &err) == WS_OK, "%s", err.msg);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    ck_assert(gguf_open(path, &f, &err) == WS_OK);
    unlink(path); /* the mapping stays valid */
    return f;
}

START_TEST(template_recognition) {
    ws_error err = {{0}};
    ck_assert_msg(chat_check_template(g_file, &err) == WS_OK, "%s", err.msg);
    gguf_file *f = variant(NULL);
    ck_assert_int_eq(chat_check_template(f, &err), WS_OK);
    gguf_close(f);
    /* Llama 3's template begins like this; anything but the exact Qwen2.5 text is refused. */
    f = variant("{% set loop_messages = messages %}{% for message in loop_messages %}");
    ck_assert_int_eq(chat_check_template(f, &err), WS_ERR_UNSUPPORTED);
    ck_assert(strstr(err.msg, "loop_messages") != NULL);
    gguf_close(f);
    const char *s;
    uint64_t n;
    ck_assert(gguf_get_str(g_file, "tokenizer.chat_template", &s, &n, NULL) == WS_OK);
    char *changed = malloc(n + 2);
    memcpy(changed, s, n);
    changed[n] = ' ';
    changed[n + 1] = '\0';
    f = variant(changed);
    ck_assert_int_eq(chat_check_template(f, &err), WS_ERR_UNSUPPORTED);
    gguf_close(f);
    free(changed);
}
END_TEST

int main(void) {
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("chatml");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, matches_reference_renderer);
    tcase_add_test(tc, default_system_prompt);
    tcase_add_test(tc, bad_messages);
    tcase_add_test(tc, template_recognition);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
