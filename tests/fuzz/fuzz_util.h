/* fuzz_util.h — small helpers shared by the fuzz targets (tests/fuzz/<t>/fuzz_<t>.c).
 *
 * A reader over the fuzz input that hands out bytes, small integers and length-prefixed
 * strings and never reads past the end (it yields zeros then), and FUZZ_CHECK, an
 * invariant check that aborts so libFuzzer records the input as a crash. */
#ifndef VELTRIX_FUZZ_UTIL_H
#define VELTRIX_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fuzz_in {
    const uint8_t *p;
    size_t len;
};

static inline int fuzz_more(const struct fuzz_in *in)
{
    return in->len > 0;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (!in->len) return 0;
    in->len--;
    return *in->p++;
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | fuzz_u8(in);
    return v;
}

/* The next n bytes (fewer at the end); *got says how many. */
static inline const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t n, size_t *got)
{
    const uint8_t *p = in->p;
    *got = n < in->len ? n : in->len;
    in->p += *got;
    in->len -= *got;
    return p;
}

/* A string of 0..max bytes (length from one byte) into out, NUL-terminated; it may hold
 * NULs of its own, *len has the real length. */
static inline void fuzz_str(struct fuzz_in *in, char *out, size_t max, size_t *len)
{
    size_t want = fuzz_u8(in) % (max + 1);
    const uint8_t *p = fuzz_bytes(in, want, len);
    memcpy(out, p, *len);
    out[*len] = '\0';
}

#endif
