/* crc64_xz.h — CRC-64/XZ (bitwise), for tests that forge snapshot checksums. Written
 * independently of the engine's table-driven one, so a wrong engine CRC still fails the
 * tests that reseal with this. Used by tests/unit/test_snapshot.c and the snapshot fuzz
 * target. */
#ifndef VELTRIX_TEST_CRC64_XZ_H
#define VELTRIX_TEST_CRC64_XZ_H
#include <stddef.h>
#include <stdint.h>

static inline uint64_t crc64_xz(const uint8_t *p, size_t n)
{
    uint64_t c = ~0ull;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xC96C5795D7870F42ull : c >> 1;
    }
    return ~c;
}

#endif
