/* fuzz_gguf.c: libFuzzer entry for the GGUF parser. Parses the input from an exact-size copy and,
 * when it is accepted, reads every key, value, array element and tensor byte through the public
 * accessors, so the sanitizers see any access the parser's checks failed to bound. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

static volatile unsigned sink;

static void walk(const gguf_file *f) {
    unsigned sum = gguf_version(f) + gguf_alignment(f) + (unsigned)gguf_data_offset(f);
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const char *key = gguf_kv_key(f, i);
        sum += (unsigned)strlen(key) + (unsigned)gguf_kv_type(f, i);
        if (gguf_find_key(f, key) != (int64_t)i) abort(); /* keys are unique and indexed */
        gguf_value v;
        if (gguf_kv_value(f, i, &v) != WS_OK) abort();
        int64_t iv;
        double dv;
        bool bv;
        const char *s;
        uint64_t len;
        gguf_get_int(f, key, &iv, NULL);
        gguf_get_float(f, key, &dv, NULL);
        gguf_get_bool(f, key, &bv, NULL);
        gguf_get_str(f, key, &s, &len, NULL);
        if (v.type == GGUF_TYPE_STRING) {
            for (uint64_t j = 0; j < v.len; j++)
                sum += ((const uint8_t *)v.data)[j];
        } else if (v.type == GGUF_TYPE_ARRAY && v.elem_type == GGUF_TYPE_STRING) {
            for (uint64_t j = 0; j < v.n; j++) {
                if (gguf_get_arr_str(f, key, j, &s, &len, NULL) != WS_OK) abort();
                for (uint64_t k = 0; k < len; k++)
                    sum += (uint8_t)s[k];
            }
        } else {
            const uint8_t *p = v.data;
            for (uint64_t j = 0; j < v.n * gguf_type_size(v.elem_type); j++)
                sum += p[j];
        }
    }
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t) abort();
        const uint8_t *p = t->data;
        for (uint64_t j = 0; j < t->n_bytes; j++)
            sum += p[j];
    }
    sink = sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    gguf_file *f = NULL;
    ws_error err;
    if (gguf_parse(copy, size, &f, &err) == WS_OK)
        walk(f);
    else if (f != NULL || memchr(err.msg, 0, sizeof err.msg) == NULL)
        abort();
    gguf_close(f);
    free(copy);
    return 0;
}
