/* dump.c: writes the tensor rows DUMP_ROWS hands it into the directory named by WORKER_DUMP. */
#include "base/dump.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool dump_on = false;

static pthread_once_t dump_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t dump_mu = PTHREAD_MUTEX_INITIALIZER;
static char dump_dir[4096];

static void dump_read_env(void) {
    const char *dir = getenv("WORKER_DUMP");
    if (!dir || !*dir) return;
    if (strlen(dir) >= sizeof dump_dir - 128) {
        fprintf(stderr, "WORKER_DUMP: directory name too long; tensor dump off\n");
        return;
    }
    strcpy(dump_dir, dir);
    dump_on = true;
}

void dump_init(void) {
    pthread_once(&dump_once, dump_read_env);
}

static bool write_file(const char *path, const void *data, size_t n, const char *mode) {
    FILE *f = fopen(path, mode);
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    if (fclose(f) != 0) ok = false;
    return ok;
}

void dump_rows(uint32_t seq, int layer, const char *name, const uint32_t *pos, const float *data,
               uint32_t n_rows, uint64_t row_len) {
    pthread_mutex_lock(&dump_mu);
    for (uint32_t r = 0; r < n_rows && dump_on; r++) {
        char layer_s[16], file[256], path[sizeof dump_dir + 256], line[512];
        if (layer < 0)
            snprintf(layer_s, sizeof layer_s, "out");
        else
            snprintf(layer_s, sizeof layer_s, "%d", layer);
        snprintf(file, sizeof file, "s%u.L%s.%s.p%u.f32", seq, layer_s, name, pos[r]);
        snprintf(path, sizeof path, "%s/%s", dump_dir, file);
        bool ok = write_file(path, data + (uint64_t)r * row_len, row_len * sizeof(float), "wb");
        if (ok) {
            int len = snprintf(line, sizeof line, "%s\t%u\t%s\t%s\t%u\t%llu\n", file, seq, layer_s,
                               name, pos[r], (unsigned long long)row_len);
            snprintf(path, sizeof path, "%s/index.tsv", dump_dir);
            ok = write_file(path, line, (size_t)len, "ab");
        }
        if (!ok) {
            fprintf(stderr, "WORKER_DUMP: cannot write %s: %s; tensor dump off\n", path,
                    strerror(errno));
            dump_on = false;
        }
    }
    pthread_mutex_unlock(&dump_mu);
}
