/* splitmix.h: the splitmix64 generator (Steele, Lea and Flood), the project's one source of
 * deterministic 64-bit streams: it seeds the sampler's xoshiro256** and draws synth's weights. */
#ifndef WORKER_BASE_SPLITMIX_H
#define WORKER_BASE_SPLITMIX_H

#include <stdint.h>

/* Advances *state and returns the next output. */
static inline uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
