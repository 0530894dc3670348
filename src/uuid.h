/* uuid.h — UUIDv7 (RFC 9562): 48-bit Unix ms, version 7, a 12-bit counter in rand_a that
 * keeps ids monotonic within one millisecond (RFC 9562 §6.2 method 1), variant 10, and
 * 62 random bits. Time and randomness are arguments, so the generator is testable. */
#ifndef VELTRIX_UUID_H
#define VELTRIX_UUID_H
#include <stdint.h>

struct uuid7_gen {
    int64_t last_ms;
    uint16_t counter;
};

/* Next id, strictly greater (bytewise) than the previous one of this generator, even if
 * the clock goes back or the counter overflows (the timestamp then moves ahead by 1 ms).
 * rnd supplies fresh random bits (the counter seed uses 11 of them). */
void uuid7_next(struct uuid7_gen *g, int64_t now_ms, uint64_t rnd, uint8_t out[16]);
/* 36-char canonical form plus NUL. */
void uuid_format(const uint8_t id[16], char out[37]);
/* 0 for a canonical lower- or upper-case uuid string of exactly 36 chars, else -1. */
int uuid_parse(const char *s, uint8_t out[16]);

#endif
