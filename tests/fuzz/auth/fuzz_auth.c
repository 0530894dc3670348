/* fuzz_auth.c — player tokens, refresh tokens and QR code payloads (auth.c).
 *
 * Input: [mode u8] then mode-specific bytes. Modes 0-2 check raw bytes as a token, a
 * refresh token and a payload of hunt "demo" (forgeries must not pass: with a fixed
 * secret, random bytes are never valid). Modes 3-5 sign claims taken from the input,
 * check that the credential verifies to the same claims, then change one byte (position
 * and value from the input) and check that the altered credential is refused: one valid
 * encoding per credential, no malleability. */
#include "auth.h"
#include "fuzz_util.h"

static struct auth a; /* secret {7, 1, 2, 3, 0...}, set on the first input */

static void mutate_rejected(char *cred, struct fuzz_in *in, int kind)
{
    size_t len = strlen(cred), at = fuzz_u8(in) % len;
    char was = cred[at], to = (char)fuzz_u8(in);
    if (to == was) return;
    cred[at] = to;
    struct auth_claims c;
    struct auth_refresh r;
    char code[65];
    int rc = kind == 0   ? auth_token_check(&a, cred, len, 0, &c)
             : kind == 1 ? auth_refresh_check(&a, cred, len, &r)
                         : auth_payload_check(&a, "demo", cred, len, code);
    FUZZ_CHECK(rc == AUTH_INVALID);
}

static void signed_roundtrip(int kind, struct fuzz_in *in)
{
    char cred[AUTH_PAYLOAD_MAX];
    size_t n;
    if (kind == 0) {
        struct auth_claims c = {{0}, 0, 0}, got;
        memcpy(c.player, fuzz_bytes(in, 16, &n), n);
        c.gen = (uint32_t)fuzz_u64(in);
        c.exp_ms = (int64_t)(fuzz_u64(in) >> 1);
        auth_token_make(&a, &c, cred);
        int rc = auth_token_check(&a, cred, strlen(cred), c.exp_ms - 1, &got);
        FUZZ_CHECK(rc == AUTH_OK && !memcmp(got.player, c.player, 16));
        FUZZ_CHECK(got.gen == c.gen && got.exp_ms == c.exp_ms);
        FUZZ_CHECK(auth_token_check(&a, cred, strlen(cred), c.exp_ms, &got) == AUTH_EXPIRED);
    } else if (kind == 1) {
        struct auth_refresh r = {{0}, {0}, 0}, got;
        memcpy(r.id, fuzz_bytes(in, 16, &n), n);
        memcpy(r.player, fuzz_bytes(in, 16, &n), n);
        r.gen = (uint32_t)fuzz_u64(in);
        auth_refresh_make(&a, &r, cred);
        FUZZ_CHECK(auth_refresh_check(&a, cred, strlen(cred), &got) == AUTH_OK);
        FUZZ_CHECK(!memcmp(got.id, r.id, 16) && !memcmp(got.player, r.player, 16));
        FUZZ_CHECK(got.gen == r.gen);
    } else {
        char code[65], got[65];
        fuzz_str(in, code, 64, &n);
        if (!auth_valid_id(code, n)) return;
        auth_payload_make(&a, "demo", code, cred);
        FUZZ_CHECK(auth_payload_check(&a, "demo", cred, strlen(cred), got) == AUTH_OK);
        FUZZ_CHECK(!strcmp(got, code));
        FUZZ_CHECK(auth_payload_check(&a, "demo2", cred, strlen(cred), got) == AUTH_INVALID);
    }
    mutate_rejected(cred, in, kind);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t secret[32] = {7, 1, 2, 3};
    static int ready;
    if (!ready) {
        auth_set_secret(&a, secret);
        ready = 1;
    }
    struct fuzz_in in = {data, size};
    int mode = fuzz_u8(&in) % 6;
    char code[65];
    struct auth_claims c;
    struct auth_refresh r;
    if (mode >= 3) {
        signed_roundtrip(mode - 3, &in);
        return 0;
    }
    const char *s = (const char *)in.p;
    if (mode == 0) FUZZ_CHECK(auth_token_check(&a, s, in.len, 0, &c) == AUTH_INVALID);
    if (mode == 1) FUZZ_CHECK(auth_refresh_check(&a, s, in.len, &r) == AUTH_INVALID);
    if (mode == 2) FUZZ_CHECK(auth_payload_check(&a, "demo", s, in.len, code) == AUTH_INVALID);
    return 0;
}
