/* test_ws.c — the pure WebSocket framing of ws.c: frame headers, client frame parsing
 * (masking, lengths, RFC violations and their close codes), fragmentation and the accept
 * key of RFC 6455's example. */
#include <stdlib.h>

#include "harness.h"
#include "ws.h"

/* Builds a masked client frame of payload into out; returns its length. */
static size_t client_frame(uint8_t *out, int b0, const void *payload, size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t hl = ws_frame_header(out, 0, len);
    out[0] = (uint8_t)b0;
    out[1] |= 0x80;
    memcpy(out + hl, mask, 4);
    for (size_t i = 0; i < len; i++) out[hl + 4 + i] = ((const uint8_t *)payload)[i] ^ mask[i & 3];
    return hl + 4 + len;
}

TEST(header_lengths)
{
    uint8_t h[10];
    CHECK_EQ_INT(ws_frame_header(h, WS_TEXT, 5), 2);
    CHECK_EQ_INT(h[0], 0x81);
    CHECK_EQ_INT(h[1], 5);
    CHECK_EQ_INT(ws_frame_header(h, WS_TEXT, 126), 4);
    CHECK_EQ_INT(h[1], 126);
    CHECK_EQ_INT(h[2] << 8 | h[3], 126);
    CHECK_EQ_INT(ws_frame_header(h, WS_BINARY, 70000), 10);
    CHECK_EQ_INT(h[0], 0x82);
    CHECK_EQ_INT(h[1], 127);
    CHECK_EQ_INT(h[7] << 16 | h[8] << 8 | h[9], 70000);
}

TEST(accept_key_rfc_example)
{
    char out[29];
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(reads_masked_text)
{
    uint8_t buf[64];
    size_t n = client_frame(buf, 0x81, "Hello", 5), used;
    struct ws_reader r = {0};
    struct ws_msg m;
    for (size_t k = 0; k < n; k++) { /* every prefix: need more */
        CHECK_EQ_INT(ws_read(&r, buf, k, &used, &m), 0);
        CHECK_EQ_INT(used, 0);
    }
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), 1);
    CHECK_EQ_INT(used, n);
    CHECK_EQ_INT(m.opcode, WS_TEXT);
    CHECK(m.len == 5 && memcmp(m.data, "Hello", 5) == 0);
    ws_reader_deinit(&r);
}

TEST(protocol_errors)
{
    uint8_t buf[200], big[130];
    size_t used;
    struct ws_reader r = {0};
    struct ws_msg m;
    memset(big, 'a', sizeof big);
    size_t n = client_frame(buf, 0x81, "x", 1);
    buf[1] &= 0x7f; /* unmasked */
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), -1002);
    client_frame(buf, 0xc1, "x", 1); /* RSV1 without an extension */
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), -1002);
    client_frame(buf, 0x83, "x", 1); /* reserved opcode */
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), -1002);
    n = client_frame(buf, 0x09, "x", 1); /* fragmented ping */
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), -1002);
    n = client_frame(buf, 0x89, big, 126); /* control frame over 125 */
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), -1002);
    n = client_frame(buf, 0x80, "x", 1); /* continuation with nothing to continue */
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), -1002);
    uint8_t nonmin[] = {0x81, 0xfe, 0x00, 0x05, 1, 2, 3, 4}; /* 16-bit length for 5 */
    CHECK_EQ_INT(ws_read(&r, nonmin, sizeof nonmin, &used, &m), -1002);
    n = client_frame(buf, 0x81, "\xc3\x28", 2); /* invalid UTF-8 */
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), -1007);
    n = client_frame(buf, 0x88, "\x03", 1); /* close with a 1-byte payload */
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), -1002);
    ws_reader_deinit(&r);
}

TEST(too_big_from_header_alone)
{
    uint8_t h[14] = {0x81, 0xfe, 0x10, 0x01}; /* 4097 bytes announced, nothing sent */
    size_t used;
    struct ws_reader r = {0};
    struct ws_msg m;
    CHECK_EQ_INT(ws_read(&r, h, 4, &used, &m), -1009);
    uint8_t h64[14] = {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0};
    CHECK_EQ_INT(ws_read(&r, h64, 10, &used, &m), -1009);
    h64[2] = 0x80; /* most significant bit set */
    CHECK_EQ_INT(ws_read(&r, h64, 10, &used, &m), -1002);
    uint8_t *ok = malloc(4200);
    char *payload = malloc(4096);
    memset(payload, 'z', 4096);
    size_t n = client_frame(ok, 0x81, payload, 4096); /* exactly the limit */
    CHECK_EQ_INT(ws_read(&r, ok, n, &used, &m), 1);
    CHECK_EQ_INT(m.len, 4096);
    free(ok);
    free(payload);
    ws_reader_deinit(&r);
}

TEST(fragments_and_interleaved_ping)
{
    uint8_t buf[256];
    size_t n = 0, used, off = 0;
    n += client_frame(buf + n, 0x01, "Hel", 3);
    n += client_frame(buf + n, 0x89, "p", 1);
    n += client_frame(buf + n, 0x00, "lo ", 3);
    n += client_frame(buf + n, 0x80, "you", 3);
    struct ws_reader r = {0};
    struct ws_msg m;
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), 0);
    CHECK(used > 0);
    off += used;
    CHECK_EQ_INT(ws_read(&r, buf + off, n - off, &used, &m), 1);
    CHECK_EQ_INT(m.opcode, WS_PING);
    off += used;
    CHECK_EQ_INT(ws_read(&r, buf + off, n - off, &used, &m), 0);
    off += used;
    CHECK_EQ_INT(ws_read(&r, buf + off, n - off, &used, &m), 1);
    off += used;
    CHECK_EQ_INT(off, n);
    CHECK_EQ_INT(m.opcode, WS_TEXT);
    CHECK(m.len == 9 && memcmp(m.data, "Hello you", 9) == 0);
    /* a new data frame while a fragmented message is open */
    n = client_frame(buf, 0x01, "a", 1);
    n += client_frame(buf + n, 0x81, "b", 1);
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), 0);
    CHECK_EQ_INT(ws_read(&r, buf + used, n - used, &used, &m), -1002);
    ws_reader_deinit(&r);
}

TEST(fragments_over_limit)
{
    uint8_t *buf = malloc(5000);
    char *payload = malloc(3000);
    memset(payload, 'q', 3000);
    size_t n = client_frame(buf, 0x01, payload, 3000), used;
    n += client_frame(buf + n, 0x80, payload, 1200);
    struct ws_reader r = {0};
    struct ws_msg m;
    CHECK_EQ_INT(ws_read(&r, buf, n, &used, &m), 0);
    CHECK_EQ_INT(ws_read(&r, buf + used, n - used, &used, &m), -1009);
    ws_reader_deinit(&r);
    free(buf);
    free(payload);
}

TEST(utf8)
{
    CHECK(ws_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    CHECK(!ws_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!ws_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
    CHECK(!ws_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!ws_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
}

TEST(shared_buf)
{
    struct ws_buf *b = ws_buf_frame(WS_TEXT, "{}", 2);
    CHECK(b && b->len == 4 && b->data[0] == 0x81 && b->data[1] == 2);
    CHECK(ws_buf_ref(b)->refs == 2);
    ws_buf_unref(b);
    ws_buf_unref(b);
}

int main(void)
{
    RUN(header_lengths);
    RUN(accept_key_rfc_example);
    RUN(reads_masked_text);
    RUN(protocol_errors);
    RUN(too_big_from_header_alone);
    RUN(fragments_and_interleaved_ping);
    RUN(fragments_over_limit);
    RUN(utf8);
    RUN(shared_buf);
    return HARNESS_DONE();
}
