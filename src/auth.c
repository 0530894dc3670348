/* auth.c — see auth.h. Base64url without padding; MACs compared in constant time. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: no EVP fetch per MAC */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        if (i + 1 < len) out[o++] = B64[v >> 6 & 63];
        if (i + 2 < len) out[o++] = B64[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* B64 inverted: the value of each byte of the alphabet, -1 elsewhere. */
static const int8_t B64_VAL[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* Decodes exactly outlen bytes from exactly the canonical encoding length; 0 or -1. */
static int b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
    if (len != (outlen * 4 + 2) / 3) return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = B64_VAL[(unsigned char)in[i]];
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (acc & ((1u << bits) - 1)) ? -1 : 0; /* no stray bits: one encoding per value */
}

/* The HMAC key schedule: the SHA-256 states after the inner (0x36) and the outer (0x5c)
 * padded key block, computed once per secret. */
_Static_assert(sizeof(SHA256_CTX) <= sizeof(((struct auth *)0)->keyed[0]), "auth.keyed");

void auth_set_secret(struct auth *a, const uint8_t secret[32])
{
    uint8_t pad[64];
    SHA256_CTX c;
    memmove(a->secret, secret, 32);
    for (int k = 0; k < 2; k++) {
        uint8_t x = k ? 0x5c : 0x36;
        for (int i = 0; i < 64; i++) pad[i] = (uint8_t)((i < 32 ? a->secret[i] : 0) ^ x);
        SHA256_Init(&c);
        SHA256_Update(&c, pad, 64);
        memcpy(a->keyed[k], &c, sizeof c);
    }
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(&c, sizeof c);
}

/* HMAC-SHA256 (RFC 2104) of domain || msg under the secret, continuing the key schedule
 * of auth_set_secret. Written over the SHA-256 primitives: OpenSSL 3's one-shot HMAC()
 * fetches the digest through its provider layer (locks, allocations) on every call,
 * several times the cost of the hashing itself. */
static void mac(const struct auth *a, const char *domain, const void *msg, size_t len,
                uint8_t out[32])
{
    uint8_t inner[32];
    SHA256_CTX c;
    memcpy(&c, a->keyed[0], sizeof c);
    SHA256_Update(&c, domain, strlen(domain));
    SHA256_Update(&c, msg, len);
    SHA256_Final(inner, &c);
    memcpy(&c, a->keyed[1], sizeof c);
    SHA256_Update(&c, inner, 32);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof c);
    OPENSSL_cleanse(inner, sizeof inner);
}

void auth_wipe(struct auth *a) { OPENSSL_cleanse(a, sizeof *a); }

int auth_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

/* Not the one-shot SHA256(): in OpenSSL 3 it goes through EVP_Q_digest, which fetches
 * the digest from the provider store (a lock, a lookup, allocations) at every call. */
void auth_sha256(const void *data, size_t len, uint8_t out[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

int auth_random(void *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

int auth_load_secret(struct auth *a, const char *path)
{
    uint8_t secret[32];
    int rc = 0, fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, secret, 32);
        close(fd);
        rc = n == 32 ? 0 : -EINVAL;
    } else if (errno != ENOENT) {
        return -errno;
    } else if (auth_random(secret, 32)) {
        return -EIO;
    } else if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0) {
        rc = -errno;
    } else {
        ssize_t n = write(fd, secret, 32);
        rc = (n == 32 && fsync(fd) == 0) ? 0 : -EIO;
        close(fd);
    }
    if (!rc) auth_set_secret(a, secret);
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}

/* 64 hex digits (either case) then only white space; 0 with secret filled, or -1. */
static int parse_hex_secret(const char *t, size_t n, uint8_t secret[32])
{
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    if (n < 64) return -1;
    for (size_t i = 64; i < n; i++)
        if (!strchr(" \t\r\n", t[i]) || !t[i]) return -1;
    for (int i = 0; i < 64; i++) {
        const char *d = t[i] ? strchr(hex, t[i]) : NULL;
        if (!d) return -1;
        int v = (int)(d - hex) & 15;
        secret[i / 2] = (uint8_t)(i % 2 ? secret[i / 2] | v : v << 4);
    }
    return 0;
}

int auth_load_secret_file(struct auth *a, const char *path)
{
    char buf[130];
    uint8_t secret[32];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    int rc = n == 32 ? (memcpy(secret, buf, 32), 0)
             : n > 0 && n < (ssize_t)sizeof buf ? parse_hex_secret(buf, (size_t)n, secret)
                                                 : -1;
    if (!rc) auth_set_secret(a, secret);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc ? -EINVAL : 0;
}

void auth_derive(const struct auth *a, const char *domain, const void *msg, size_t len,
                 uint8_t out[32])
{
    mac(a, domain, msg, len, out);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* prefix b64(body) "." b64(mac(domain, body)) */
static void sign(const struct auth *a, const char *prefix, const uint8_t *body, size_t len,
                 char *out)
{
    uint8_t m[32];
    mac(a, prefix, body, len, m);
    size_t o = strlen(prefix);
    memcpy(out, prefix, o);
    o += b64_encode(body, len, out + o);
    out[o++] = '.';
    b64_encode(m, 32, out + o);
}

/* Checks the shape and signature; fills body. 0 or AUTH_INVALID. */
static int verify(const struct auth *a, const char *prefix, const char *tok, size_t len,
                  uint8_t *body, size_t body_len)
{
    size_t pl = strlen(prefix), bl = (body_len * 4 + 2) / 3;
    uint8_t m[32], want[32];
    if (len != pl + bl + 1 + 43 || memcmp(tok, prefix, pl) != 0 || tok[pl + bl] != '.')
        return AUTH_INVALID;
    if (b64_decode(tok + pl, bl, body, body_len) || b64_decode(tok + pl + bl + 1, 43, m, 32))
        return AUTH_INVALID;
    mac(a, prefix, body, body_len, want);
    return auth_equal(m, 32, want, 32) ? AUTH_OK : AUTH_INVALID;
}

void auth_token_make(const struct auth *a, const struct auth_claims *c, char out[AUTH_TOKEN_MAX])
{
    uint8_t body[28];
    memcpy(body, c->player, 16);
    put_be(body + 16, c->gen, 4);
    put_be(body + 20, (uint64_t)c->exp_ms, 8);
    sign(a, "vt1.", body, sizeof body, out);
}

int auth_token_check(const struct auth *a, const char *tok, size_t len, int64_t now_ms,
                     struct auth_claims *c)
{
    uint8_t body[28];
    int rc = verify(a, "vt1.", tok, len, body, sizeof body);
    if (rc) return rc;
    memcpy(c->player, body, 16);
    c->gen = (uint32_t)get_be(body + 16, 4);
    c->exp_ms = (int64_t)get_be(body + 20, 8);
    return c->exp_ms > now_ms ? AUTH_OK : AUTH_EXPIRED;
}

void auth_refresh_make(const struct auth *a, const struct auth_refresh *r,
                       char out[AUTH_TOKEN_MAX])
{
    uint8_t body[36];
    memcpy(body, r->id, 16);
    memcpy(body + 16, r->player, 16);
    put_be(body + 32, r->gen, 4);
    sign(a, "vr1.", body, sizeof body, out);
}

int auth_refresh_check(const struct auth *a, const char *tok, size_t len,
                       struct auth_refresh *r)
{
    uint8_t body[36];
    int rc = verify(a, "vr1.", tok, len, body, sizeof body);
    if (rc) return rc;
    memcpy(r->id, body, 16);
    memcpy(r->player, body + 16, 16);
    r->gen = (uint32_t)get_be(body + 32, 4);
    return AUTH_OK;
}

int auth_valid_id(const char *s, size_t len)
{
    if (len < 1 || len > 64) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void payload_mac(const struct auth *a, const char *hunt, const char *code,
                        uint8_t m[32])
{
    char msg[132];
    size_t hl = strnlen(hunt, 64), cl = strnlen(code, 64);
    memcpy(msg, hunt, hl);
    msg[hl] = '.';
    memcpy(msg + hl + 1, code, cl);
    mac(a, "vx1.", msg, hl + 1 + cl, m);
}

void auth_payload_make(const struct auth *a, const char *hunt, const char *code,
                       char out[AUTH_PAYLOAD_MAX])
{
    uint8_t m[32];
    char sig[32];
    payload_mac(a, hunt, code, m);
    b64_encode(m, 16, sig);
    snprintf(out, AUTH_PAYLOAD_MAX, "vx1.%s.%s.%s", hunt, code, sig);
}

int auth_payload_check(const struct auth *a, const char *hunt, const char *payload,
                       size_t len, char code[65])
{
    size_t hl = strlen(hunt);
    if (len < 4 + hl + 1 || memcmp(payload, "vx1.", 4) != 0 ||
        memcmp(payload + 4, hunt, hl) != 0 || payload[4 + hl] != '.')
        return AUTH_INVALID;
    const char *c = payload + 5 + hl, *end = payload + len;
    const char *dot = memchr(c, '.', (size_t)(end - c));
    if (!dot || !auth_valid_id(c, (size_t)(dot - c))) return AUTH_INVALID;
    memcpy(code, c, (size_t)(dot - c));
    code[dot - c] = '\0';
    uint8_t m[32], got[16];
    if (b64_decode(dot + 1, (size_t)(end - dot - 1), got, 16)) return AUTH_INVALID;
    payload_mac(a, hunt, code, m);
    return auth_equal(got, 16, m, 16) ? AUTH_OK : AUTH_INVALID;
}
