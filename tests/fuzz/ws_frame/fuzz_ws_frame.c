/* fuzz_ws_frame.c — libFuzzer target for the WebSocket client-frame reader (ws_read).
 *
 * The input is a byte stream from a client. It is fed to one ws_reader in pieces whose
 * sizes come from the first byte (so partial frames are exercised), the way on_read sees
 * a socket. Checks: a consumed frame never claims more than it was given, a message never
 * exceeds WS_MESSAGE_MAX, text messages are valid UTF-8, an error is one of the close
 * codes the reader may give. Build (the fuzz Makefile target links every src object but
 * main.o):
 *   clang -fsanitize=fuzzer,address,undefined -DH2O_USE_LIBUV=0 -Isrc \
 *     tests/fuzz/ws_frame/fuzz_ws_frame.c <src objects> $(LIBS) */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    size_t step = (size_t)data[0] % 32 + 1;
    uint8_t *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    size_t have = 0, avail = 0, total = size - 1;
    struct ws_reader r = {0};
    for (;;) {
        avail = avail + step < total ? avail + step : total;
        struct ws_msg m;
        size_t used;
        int rc = ws_read(&r, buf + have, avail - have, &used, &m);
        if (rc < 0) {
            assert(rc == -WS_CLOSE_PROTOCOL || rc == -WS_CLOSE_TOO_BIG ||
                   rc == -WS_CLOSE_BAD_DATA || rc == -WS_CLOSE_TRY_AGAIN);
            break;
        }
        assert(used <= avail - have);
        if (rc == 1) {
            assert(m.len <= WS_MESSAGE_MAX);
            assert(m.opcode != WS_TEXT || ws_utf8_valid(m.data, m.len));
        }
        have += used;
        if (used == 0 && avail == total) break;
    }
    ws_reader_deinit(&r);
    free(buf);
    return 0;
}
