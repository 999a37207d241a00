/* dump.h: the one opt-in tensor dump, for bisecting a divergence from a reference layer by layer.
 *
 * Set WORKER_DUMP=DIR (an existing directory) before the engine opens. Each dumped row becomes
 * DIR/s{seq}.L{layer}.{name}.p{pos}.f32 (float32 little endian; layer -1 is written "out" for
 * tensors outside the layers, e.g. s0.Lout.logits.p6.f32), and one line per file is appended to
 * DIR/index.tsv: file, seq, layer, name, pos, element count. Later rows with the same key replace
 * the earlier file (the index keeps both lines).
 *
 * When WORKER_DUMP is unset the cost is one branch on a cached flag: call sites use DUMP_ROWS. */
#ifndef WORKER_BASE_DUMP_H
#define WORKER_BASE_DUMP_H

#include <stdbool.h>
#include <stdint.h>

extern bool dump_on; /* set once by dump_init */

/* Reads WORKER_DUMP once per process (later calls do nothing). Engines call it when they open. */
void dump_init(void);

/* Writes n_rows rows of row_len floats (row r at data + r * row_len, position pos[r]) for sequence
 * seq. A write error is reported once on stderr and turns dumping off. */
void dump_rows(uint32_t seq, int layer, const char *name, const uint32_t *pos, const float *data,
               uint32_t n_rows, uint64_t row_len);

#define DUMP_ROWS(seq, layer, name, pos, data, n_rows, row_len)                                    \
    do {                                                                                           \
        if (dump_on) dump_rows(seq, layer, name, pos, data, n_rows, row_len);                      \
    } while (0)

#endif
