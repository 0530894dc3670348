/* fuzz_snapshot.c — libFuzzer target for engine_snapshot_decode.
 *
 * Each input is decoded twice: as is (almost always refused at the checksum), and
 * "resealed": its header length and CRC-64 rewritten to match (and its version set to 1
 * when it says 1, else to 2: the formats before and after seeds), so that the fuzzer
 * reaches the body parser and the rebuild of chests, counters and leaderboard. A decoded hunt
 * must re-encode, and re-decode to the same digest. Build (the fuzz build links the
 * objects of src/ without main.o):
 *   clang -fsanitize=fuzzer,address,undefined -Isrc -DH2O_USE_LIBUV=0 -D_GNU_SOURCE \
 *     tests/fuzz/snapshot/fuzz_snapshot.c src/engine.c src/huntdef.c src/strtab.c \
 *     src/chests.c src/leaderboard.c -ljansson -o build/fuzz_snapshot
 *   build/fuzz_snapshot tests/fuzz/snapshot/corpus */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../../unit/crc64_xz.h"

static void decode(const uint8_t *buf, size_t len)
{
    struct hunt *h = NULL, *again = NULL;
    char err[256];
    if (engine_snapshot_decode("snap", buf, len, &h, err, sizeof err)) return;
    uint8_t *enc;
    size_t n;
    if (engine_snapshot_encode(h, &enc, &n)) abort();
    if (engine_snapshot_decode("snap", enc, n, &again, err, sizeof err)) abort();
    if (engine_digest(again) != engine_digest(h)) abort();
    free(enc);
    engine_hunt_destroy(again);
    engine_hunt_destroy(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode(data, size);
    if (size < 24 || size > (1u << 20)) return 0;
    uint8_t *m = malloc(size);
    memcpy(m, data, size);
    memcpy(m, data[4] == 1 ? "VXSN\1\0\0\0" : "VXSN\2\0\0\0", 8);
    uint64_t body = size - 24, c;
    for (int i = 0; i < 8; i++)
        m[8 + i] = (uint8_t)(body >> (8 * i));
    c = crc64_xz(m, size - 8);
    for (int i = 0; i < 8; i++)
        m[size - 8 + i] = (uint8_t)(c >> (8 * i));
    decode(m, size);
    free(m);
    return 0;
}
