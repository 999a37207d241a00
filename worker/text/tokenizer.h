/* tokenizer.h: the Qwen2 byte-level BPE tokenizer read from GGUF metadata (tokenizer.ggml.*), and
 * the incremental detokenizer used for streaming. Exact against the Hugging Face tokenizer. */
#ifndef WORKER_TEXT_TOKENIZER_H
#define WORKER_TEXT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/gguf.h"

typedef struct tokenizer tokenizer;

/* Loads the vocabulary, merges, token types and special ids from f (borrowed only during the
 * call: the tokenizer copies what it keeps). WS_ERR_UNSUPPORTED for a tokenizer model or
 * pre-tokenizer other than gpt2 / qwen2, or a token longer than 256 bytes. */
ws_status tokenizer_load(const gguf_file *f, tokenizer **out, ws_error *err);
void tokenizer_free(tokenizer *t); /* accepts NULL */

uint32_t tokenizer_n_vocab(const tokenizer *t);
int32_t tokenizer_eos(const tokenizer *t); /* tokenizer.ggml.eos_token_id */
/* Ids that end generation: eos plus <|endoftext|> and <|im_end|> when present. Returns count. */
uint32_t tokenizer_stop_ids(const tokenizer *t, int32_t *ids, uint32_t cap);
/* Id of an added/special token by its exact text, or -1. */
int32_t tokenizer_find_special(const tokenizer *t, const char *text);
bool tokenizer_is_special(const tokenizer *t, int32_t id); /* control tokens hidden on decode */

/* Encodes len bytes of UTF-8 text. A loaded tokenizer is read-only: several threads may encode
 * and decode with it at once. With parse_special, added-token texts in the input become their
 * ids; otherwise they are tokenized as plain text. The BOS id comes first only when the file's
 * tokenizer.ggml.add_bos_token is true (Qwen2: false). Invalid UTF-8 is WS_ERR_FORMAT naming the
 * byte offset. *ids is malloc'd (caller frees) with *n_ids entries. */
ws_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool parse_special,
                           int32_t **ids, size_t *n_ids, ws_error *err);

/* The bytes of one token (byte-level map undone). Special tokens yield their text when
 * show_special, nothing otherwise. Returns the byte count written (at most cap) via *n; the
 * bytes need not be valid UTF-8 on their own. WS_ERR_RANGE for an id outside the vocabulary. */
ws_status tokenizer_token_bytes(const tokenizer *t, int32_t id, bool show_special, char *buf,
                                size_t cap, size_t *n, ws_error *err);

/* Decodes a whole id sequence to malloc'd bytes (NUL-terminated for convenience; *len excludes
 * the NUL). */
ws_status tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, bool show_special,
                           char **out, size_t *len, ws_error *err);

/* Streaming: feeds one token at a time and returns only complete UTF-8 sequences; incomplete
 * trailing bytes are held until the next token completes them, and flushed (as they are) at the
 * end. */
typedef struct {
    const tokenizer *tok;
    bool show_special;
    char pending[8];
    size_t n_pending;
} detok_stream;
void detok_init(detok_stream *d, const tokenizer *t, bool show_special);
/* Appends the newly complete bytes for id to out (cap bytes); *n receives the count. A token's
 * bytes are at most 256 + 8, so cap >= 512 always suffices. */
ws_status detok_push(detok_stream *d, int32_t id, char *out, size_t cap, size_t *n, ws_error *err);
/* Emits whatever is held back (possibly an incomplete sequence at the end of generation). */
size_t detok_flush(detok_stream *d, char *out, size_t cap);

#endif
