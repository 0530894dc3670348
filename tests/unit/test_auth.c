/* Unit tests: UUIDv7 layout and monotonicity, tokens, refresh tokens, code payloads. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
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

/* base64url without padding, as auth.c writes it (an independent copy). */
static size_t b64url(const uint8_t *p, size_t n, char *out)
{
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        if (i + 1 < n) out[o++] = B64[v >> 6 & 63];
        if (i + 2 < n) out[o++] = B64[v & 63];
    }
    out[o] = '\0';
    return o;
}

static void hmac_ref(const void *msg, size_t len, uint8_t m[32])
{
    unsigned int mlen = 32;
    HMAC(EVP_sha256(), SECRET, 32, msg, len, m, &mlen);
}

/* The MAC is plain HMAC-SHA256 of "vx1." "hunt.code" (its first 16 bytes): payloads
 * printed on QR codes by an earlier build must keep verifying. Checked against OpenSSL's
 * own HMAC for messages of one to three SHA-256 blocks. */
TEST(payload_mac_is_standard_hmac)
{
    char payload[AUTH_PAYLOAD_MAX], want[40], code[65], id[65], hunt[65], msg[160];
    uint8_t m[32];
    memset(hunt, 'h', 64);
    hunt[64] = '\0';
    for (int hl = 1; hl <= 64; hl += 63) {
        hunt[hl] = '\0';
        for (int cl = 1; cl <= 64; cl++) {
            memset(id, 'a' + cl % 26, (size_t)cl);
            id[cl] = '\0';
            size_t n = (size_t)snprintf(msg, sizeof msg, "vx1.%s.%s", hunt, id);
            hmac_ref(msg, n, m);
            b64url(m, 16, want);
            auth_payload_make(&A, hunt, id, payload);
            CHECK_EQ_STR(payload + n + 1, want);
            CHECK_EQ_INT(auth_payload_check(&A, hunt, payload, strlen(payload), code), AUTH_OK);
            CHECK_EQ_STR(code, id);
        }
        hunt[hl] = 'h';
    }
}

/* A token is "vt1." b64(player gen exp) "." b64(HMAC-SHA256 of "vt1." and the body, all
 * 32 bytes): checked whole against OpenSSL's HMAC. */
TEST(token_mac_is_standard_hmac)
{
    struct auth_claims c = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 7,
                            1764580800123};
    uint8_t body[4 + 28], m[32];
    memcpy(body, "vt1.", 4);
    memcpy(body + 4, c.player, 16);
    for (int i = 0; i < 4; i++) body[20 + i] = (uint8_t)(c.gen >> (8 * (3 - i)));
    for (int i = 0; i < 8; i++) body[24 + i] = (uint8_t)((uint64_t)c.exp_ms >> (8 * (7 - i)));
    hmac_ref(body, sizeof body, m);
    char want[AUTH_TOKEN_MAX], tok[AUTH_TOKEN_MAX];
    size_t o = 4;
    memcpy(want, "vt1.", 4);
    o += b64url(body + 4, 28, want + o);
    want[o++] = '.';
    b64url(m, 32, want + o);
    auth_token_make(&A, &c, tok);
    CHECK_EQ_STR(tok, want);
}

/* auth_load_secret: an existing 32-byte file is the secret (tokens equal those of
 * auth_set_secret), a missing one is created (0600) and reloads to the same key, a short
 * one is refused. */
TEST(load_secret)
{
    char dir[] = "/tmp/vx-auth-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/secret.key", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(SECRET, 1, 32, f) == 32);
    fclose(f);
    struct auth loaded, made, again;
    struct auth_claims c = {{9}, 1, 5000};
    char t1[AUTH_TOKEN_MAX], t2[AUTH_TOKEN_MAX];
    CHECK_EQ_INT(auth_load_secret(&loaded, path), 0);
    auth_token_make(&loaded, &c, t1);
    auth_token_make(&A, &c, t2);
    CHECK_EQ_STR(t1, t2);
    CHECK_EQ_INT(unlink(path), 0);
    CHECK_EQ_INT(auth_load_secret(&made, path), 0); /* created */
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 32 && (st.st_mode & 0777) == 0600);
    CHECK_EQ_INT(auth_load_secret(&again, path), 0);
    auth_token_make(&made, &c, t1);
    auth_token_make(&again, &c, t2);
    CHECK_EQ_STR(t1, t2);
    struct auth_claims got;
    CHECK_EQ_INT(auth_token_check(&A, t1, strlen(t1), 0, &got), AUTH_INVALID); /* new key */
    CHECK(truncate(path, 31) == 0);
    CHECK_EQ_INT(auth_load_secret(&again, path), -EINVAL);
    unlink(path);
    rmdir(dir);
}

/* auth_load_secret_file (--cluster-secret-file): 32 raw bytes, or 64 hex digits in either
 * case with white space after them, give the same secret; it is never created; anything
 * else is -EINVAL. auth_derive is HMAC-SHA256(secret, domain || msg). */
TEST(load_secret_file_and_derive)
{
    char dir[] = "/tmp/vx-auth-XXXXXX", path[64], hex[80];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/cluster.key", dir);
    struct auth loaded;
    struct auth_claims c = {{9}, 1, 5000};
    char t1[AUTH_TOKEN_MAX], t2[AUTH_TOKEN_MAX];
    auth_token_make(&A, &c, t2);
    CHECK_EQ_INT(auth_load_secret_file(&loaded, path), -ENOENT); /* never created */
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, i % 2 ? "%02x" : "%02X", SECRET[i]);
    const char *tails[] = {"", "\n", " \r\n"};
    for (int k = 0; k < 3; k++) {
        FILE *f = fopen(path, "wb");
        CHECK(f && fprintf(f, "%s%s", hex, tails[k]) > 0);
        fclose(f);
        memset(&loaded, 0, sizeof loaded);
        CHECK_EQ_INT(auth_load_secret_file(&loaded, path), 0);
        auth_token_make(&loaded, &c, t1);
        CHECK_EQ_STR(t1, t2);
    }
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(SECRET, 1, 32, f) == 32);
    fclose(f);
    CHECK_EQ_INT(auth_load_secret_file(&loaded, path), 0);
    auth_token_make(&loaded, &c, t1);
    CHECK_EQ_STR(t1, t2);
    const char *bad[] = {"", "abc", ("zz" "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
                         "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 x"};
    for (int k = 0; k < 4; k++) {
        f = fopen(path, "wb");
        CHECK(f != NULL);
        fputs(bad[k], f);
        fclose(f);
        CHECK_EQ_INT(auth_load_secret_file(&loaded, path), -EINVAL);
    }
    uint8_t got[32], want[32];
    unsigned int mlen = 32;
    auth_derive(&A, "veltrix-forward-key-v1:", "n1", 2, got);
    HMAC(EVP_sha256(), SECRET, 32, (const uint8_t *)"veltrix-forward-key-v1:n1", 25, want, &mlen);
    CHECK(memcmp(got, want, 32) == 0);
    unlink(path);
    rmdir(dir);
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
    RUN(token_mac_is_standard_hmac);
    RUN(load_secret);
    RUN(load_secret_file_and_derive);
    RUN(valid_ids);
    return HARNESS_DONE();
}
