/* Unit tests: UUIDv7 layout and monotonicity, tokens, refresh tokens, code payloads. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "harness.h"
#include "uuid.h"

static const uint8_t SECRET[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                   12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                   23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static struct auth A; /* auth_set_secret(&A, SECRET) in main */

TEST(uuid_layout)
{
    struct uuid7_gen g = {0};
    uint8_t id[16];
    int64_t ms = 1764580800123;
    uuid7_next(&g, ms, 0xdeadbeefcafef00dull, id);
    uint64_t ts = 0;
    for (int i = 0; i < 6; i++) ts = ts << 8 | id[i];
    CHECK_EQ_INT(ts, ms);
    CHECK_EQ_INT(id[6] >> 4, 7);     /* version */
    CHECK_EQ_INT(id[8] >> 6, 2);     /* variant 10 */
    char s[37];
    uint8_t back[16];
    uuid_format(id, s);
    CHECK_EQ_INT(strlen(s), 36);
    CHECK_EQ_INT(s[14], '7');
    CHECK_EQ_INT(uuid_parse(s, back), 0);
    CHECK(memcmp(back, id, 16) == 0);
    CHECK(uuid_parse("not-a-uuid", back) < 0);
    CHECK(uuid_parse("0193a5c4-0000-7000-8000-00000000000g", back) < 0);
}

TEST(uuid_monotonic)
{
    struct uuid7_gen g = {0};
    uint8_t prev[16], cur[16];
    uint64_t rnd = 88172645463325252ull;
    uuid7_next(&g, 1000, rnd, prev);
    for (int i = 0; i < 20000; i++) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        int64_t ms = 1000 + i / 5000 - (i % 97 == 0); /* same ms, and the clock going back */
        uuid7_next(&g, ms, rnd, cur);
        if (memcmp(prev, cur, 16) >= 0) {
            CHECK(!"uuid not increasing");
            break;
        }
        CHECK_EQ_INT(cur[6] >> 4, 7);
        CHECK_EQ_INT(cur[8] >> 6, 2);
        memcpy(prev, cur, 16);
    }
}

TEST(token_roundtrip_and_tamper)
{
    struct auth_claims c = {{9, 9, 9}, 3, 5000}, got;
    char tok[AUTH_TOKEN_MAX];
    auth_token_make(&A, &c, tok);
    CHECK_EQ_INT(auth_token_check(&A, tok, strlen(tok), 4999, &got), AUTH_OK);
    CHECK(memcmp(got.player, c.player, 16) == 0);
    CHECK_EQ_INT(got.gen, 3);
    CHECK_EQ_INT(auth_token_check(&A, tok, strlen(tok), 5000, &got), AUTH_EXPIRED);
    for (size_t i = 0; i < strlen(tok); i++) { /* every single-character change fails */
        char t2[AUTH_TOKEN_MAX];
        strcpy(t2, tok);
        t2[i] = t2[i] == 'A' ? 'B' : 'A';
        CHECK(auth_token_check(&A, t2, strlen(t2), 0, &got) == AUTH_INVALID);
    }
    struct auth other;
    uint8_t flipped[32];
    memcpy(flipped, SECRET, 32);
    flipped[0] ^= 1;
    auth_set_secret(&other, flipped);
    CHECK(auth_token_check(&other, tok, strlen(tok), 0, &got) == AUTH_INVALID);
    CHECK(auth_token_check(&A, "", 0, 0, &got) == AUTH_INVALID);
    CHECK(auth_token_check(&A, tok, strlen(tok) - 1, 0, &got) == AUTH_INVALID);
    /* a refresh token is not a token */
    struct auth_refresh r = {{1}, {2}, 0}, rg;
    char ref[AUTH_TOKEN_MAX];
    auth_refresh_make(&A, &r, ref);
    CHECK(auth_token_check(&A, ref, strlen(ref), 0, &got) == AUTH_INVALID);
    CHECK_EQ_INT(auth_refresh_check(&A, ref, strlen(ref), &rg), AUTH_OK);
    CHECK(memcmp(rg.id, r.id, 16) == 0 && memcmp(rg.player, r.player, 16) == 0);
    CHECK(auth_refresh_check(&A, tok, strlen(tok), &rg) == AUTH_INVALID);
}

TEST(code_payloads)
{
    char p[AUTH_PAYLOAD_MAX], code[65];
    auth_payload_make(&A, "demo", "lobby-1", p);
    CHECK_EQ_INT(auth_payload_check(&A, "demo", p, strlen(p), code), AUTH_OK);
    CHECK_EQ_STR(code, "lobby-1");
    CHECK(auth_payload_check(&A, "other", p, strlen(p), code) == AUTH_INVALID);
    CHECK(auth_payload_check(&A, "dem", p, strlen(p), code) == AUTH_INVALID);
    char forged[AUTH_PAYLOAD_MAX];
    strcpy(forged, p);
    memcpy(forged + 9, "2", 1); /* lobby-2 with lobby-1's signature */
    CHECK(auth_payload_check(&A, "demo", forged, strlen(forged), code) == AUTH_INVALID);
    CHECK(auth_payload_check(&A, "demo", "vx1.demo.lobby-1", 16, code) == AUTH_INVALID);
    CHECK(auth_payload_check(&A, "demo", "vx1.demo..x", 11, code) == AUTH_INVALID);
    CHECK(auth_payload_check(&A, "demo", "", 0, code) == AUTH_INVALID);
}

/* The MAC is plain HMAC-SHA256 of "vx1." "hunt.code": payloads printed on QR codes by
 * an earlier build must keep verifying. Checked against OpenSSL's own HMAC. */
TEST(payload_mac_is_standard_hmac)
{
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char payload[AUTH_PAYLOAD_MAX], want[40], code[65];
    uint8_t m[32];
    unsigned int mlen = 32;
    const char *msg = "vx1.lisbon.lobby-1";
    HMAC(EVP_sha256(), SECRET, 32, (const uint8_t *)msg, strlen(msg), m, &mlen);
    size_t o = 0;
    for (int i = 0; i < 16; i += 3) { /* base64url of the first 16 bytes, no padding */
        uint32_t v = (uint32_t)m[i] << 16 | (i + 1 < 16 ? (uint32_t)m[i + 1] << 8 : 0) |
                     (i + 2 < 16 ? m[i + 2] : 0);
        want[o++] = B64[v >> 18 & 63];
        want[o++] = B64[v >> 12 & 63];
        if (i + 1 < 16) want[o++] = B64[v >> 6 & 63];
        if (i + 2 < 16) want[o++] = B64[v & 63];
    }
    want[o] = '\0';
    auth_payload_make(&A, "lisbon", "lobby-1", payload);
    CHECK_EQ_STR(payload + strlen(msg) + 1, want);
    CHECK_EQ_INT(auth_payload_check(&A, "lisbon", payload, strlen(payload), code), AUTH_OK);
}

TEST(valid_ids)
{
    CHECK(auth_valid_id("a", 1));
    CHECK(auth_valid_id("lobby-1_x", 9));
    CHECK(!auth_valid_id("", 0));
    CHECK(!auth_valid_id("A", 1));
    CHECK(!auth_valid_id("a.b", 3));
    CHECK(!auth_valid_id("a%20", 4));
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = 0;
    CHECK(auth_valid_id(long_id, 64));
    CHECK(!auth_valid_id(long_id, 65));
}

int main(void)
{
    auth_set_secret(&A, SECRET);
    RUN(uuid_layout);
    RUN(uuid_monotonic);
    RUN(token_roundtrip_and_tamper);
    RUN(code_payloads);
    RUN(payload_mac_is_standard_hmac);
    RUN(valid_ids);
    return HARNESS_DONE();
}
