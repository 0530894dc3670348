/* auth.h — signed credentials: player tokens, refresh tokens, QR code payloads, and the
 * admin key check.
 *
 * Everything is HMAC-SHA256 under a 32-byte server secret kept in the data directory
 * (mode 0600), so credentials survive restarts and cannot be forged. Each kind of
 * credential signs with its own domain prefix, so one can never stand for another.
 *   token    = "vt1." b64url(player[16] gen[4] exp_ms[8]) "." b64url(mac)
 *   refresh  = "vr1." b64url(rt_id[16] player[16] gen[4]) "." b64url(mac)
 *   payload  = "vx1." hunt "." code "." b64url(mac[0..15])
 * A token is valid while exp_ms > now and gen equals the player's current session
 * generation (the caller checks gen: bumping it revokes every session of the player). */
#ifndef VELTRIX_AUTH_H
#define VELTRIX_AUTH_H
#include <stddef.h>
#include <stdint.h>

#define AUTH_TOKEN_MAX 128
#define AUTH_PAYLOAD_MAX 192

enum auth_err { AUTH_OK = 0, AUTH_INVALID = -2001, AUTH_EXPIRED = -2002 };

struct auth {
    uint8_t secret[32];
    /* HMAC key schedule (auth_set_secret): the SHA-256 states after the inner and the
     * outer key block, so that a MAC hashes only the message and the inner digest. */
    uint64_t keyed[2][16];
};

struct auth_claims {
    uint8_t player[16];
    uint32_t gen;
    int64_t exp_ms;
};

struct auth_refresh {
    uint8_t id[16];
    uint8_t player[16];
    uint32_t gen;
};

/* Loads the secret from path, or creates it (random, mode 0600) if absent. 0 or -errno. */
int auth_load_secret(struct auth *a, const char *path);
/* Loads a secret that must exist (several nodes share one: --cluster-secret-file): 32 raw
 * bytes, or 64 hex digits with optional white space after them (`openssl rand -hex 32`).
 * Never creates one. 0, -errno for an unreadable file, or -EINVAL for another content. */
int auth_load_secret_file(struct auth *a, const char *path);
/* A key derived from the secret for one purpose: HMAC-SHA256(secret, domain || msg).
 * Domains must differ from the credential prefixes above ("vt1." ...); the forwarding
 * between nodes (forward.c) keys each destination node with its own. */
void auth_derive(const struct auth *a, const char *domain, const void *msg, size_t len,
                 uint8_t out[32]);
/* Sets the secret (and its key schedule): auth_load_secret does it; a caller that fills
 * an auth itself (tests) must. */
void auth_set_secret(struct auth *a, const uint8_t secret[32]);
/* Overwrites the secret and its key schedule (at shutdown). */
void auth_wipe(struct auth *a);
void auth_token_make(const struct auth *a, const struct auth_claims *c, char out[AUTH_TOKEN_MAX]);
/* AUTH_OK (claims filled), AUTH_INVALID, or AUTH_EXPIRED (claims filled). */
int auth_token_check(const struct auth *a, const char *tok, size_t len, int64_t now_ms,
                     struct auth_claims *c);
void auth_refresh_make(const struct auth *a, const struct auth_refresh *r,
                       char out[AUTH_TOKEN_MAX]);
int auth_refresh_check(const struct auth *a, const char *tok, size_t len,
                       struct auth_refresh *r);
void auth_payload_make(const struct auth *a, const char *hunt, const char *code,
                       char out[AUTH_PAYLOAD_MAX]);
/* AUTH_OK with the code id copied to code (65 bytes), or AUTH_INVALID when the payload is
 * malformed, for another hunt, or its signature does not match. */
int auth_payload_check(const struct auth *a, const char *hunt, const char *payload,
                       size_t len, char code[65]);
/* Constant-time comparison of two byte strings. */
int auth_equal(const void *a, size_t alen, const void *b, size_t blen);
/* SHA-256 of data (request fingerprints for idempotency). */
void auth_sha256(const void *data, size_t len, uint8_t out[32]);
/* Fills buf with cryptographically random bytes. 0 or -1. */
int auth_random(void *buf, size_t len);
/* 1 if s is a valid id: 1..64 chars of [a-z0-9_-]. */
int auth_valid_id(const char *s, size_t len);

#endif
