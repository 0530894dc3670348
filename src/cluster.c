/* cluster.c — see cluster.h: placement, the owner's lease clock, forwarded requests.
 *
 * The hashes are written over OpenSSL's SHA-256 primitives, as in auth.c: OpenSSL 3's
 * EVP layer fetches the algorithm from its provider store at every call (a lock, a hash
 * table lookup, allocations), which cost more than the hashing itself, and a forwarded
 * request is MACed once where it leaves and once where it arrives. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: no EVP fetch per hash */
#include "cluster.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "vx.h"

#define PLACE_DOMAIN "veltrix-place-v1"
#define FWD_DOMAIN "veltrix-forward-v1"

uint64_t cluster_score(const char *node, const char *hunt)
{
    uint8_t d[32];
    size_t nl = strlen(node);
    uint8_t len = (uint8_t)(nl > 255 ? 255 : nl);
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, PLACE_DOMAIN, sizeof PLACE_DOMAIN - 1);
    SHA256_Update(&c, &len, 1);
    SHA256_Update(&c, node, len);
    SHA256_Update(&c, hunt, strlen(hunt));
    SHA256_Final(d, &c);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | d[i];
    return x;
}

int cluster_place(const char *hunt, const struct cluster_node *nodes, size_t n)
{
    int best = -1;
    uint64_t best_score = 0;
    for (size_t i = 0; i < n; i++) {
        if (!nodes[i].alive) continue;
        uint64_t s = cluster_score(nodes[i].id, hunt);
        if (best < 0 || s > best_score ||
            (s == best_score && strcmp(nodes[i].id, nodes[best].id) < 0)) {
            best = (int)i;
            best_score = s;
        }
    }
    return best;
}

void cluster_lease_renewed(struct cluster_lease *l, uint64_t epoch, int64_t sent_ms)
{
    if (epoch != l->epoch) {
        l->epoch = epoch;
        l->renewed_ms = sent_ms;
    } else if (sent_ms > l->renewed_ms) {
        l->renewed_ms = sent_ms;
    }
}

int cluster_lease_may_write(const struct cluster_lease *l, int64_t now_ms, int64_t lease_ms,
                            int64_t margin_ms)
{
    return l->epoch != 0 && now_ms < l->renewed_ms + lease_ms - margin_ms;
}

static void mac_field(SHA256_CTX *c, const void *p, size_t n)
{
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    SHA256_Update(c, len, 4);
    if (n) SHA256_Update(c, p, n);
}

static int mac_str(SHA256_CTX *c, const char *s)
{
    if (!s) return -1;
    mac_field(c, s, strlen(s));
    return 0;
}

/* SHA-256 of the HMAC key block (RFC 2104: the 32-byte secret, zero padded, xor pad). */
static void mac_key(SHA256_CTX *c, const uint8_t secret[32], uint8_t pad)
{
    uint8_t block[64];
    for (int i = 0; i < 64; i++)
        block[i] = (uint8_t)((i < 32 ? secret[i] : 0) ^ pad);
    SHA256_Init(c);
    SHA256_Update(c, block, 64);
    OPENSSL_cleanse(block, sizeof block);
}

/* The MAC (HMAC-SHA-256) of f by secret; 0 or -1 (a NULL string). */
static int forward_mac(const uint8_t secret[32], const struct cluster_fwd *f, uint8_t mac[32])
{
    char t[24];
    uint8_t inner[32];
    SHA256_CTX c;
    int rc = -1;
    snprintf(t, sizeof t, "%" PRId64, f->time_ms);
    mac_key(&c, secret, 0x36);
    SHA256_Update(&c, FWD_DOMAIN, sizeof FWD_DOMAIN - 1);
    if (!mac_str(&c, f->from) && !mac_str(&c, t) && !mac_str(&c, f->client_addr) &&
        !mac_str(&c, f->method) && !mac_str(&c, f->path) && !mac_str(&c, f->authorization) &&
        !mac_str(&c, f->idem_key)) {
        mac_field(&c, f->body_sha256, 32);
        SHA256_Final(inner, &c);
        mac_key(&c, secret, 0x5c);
        SHA256_Update(&c, inner, 32);
        SHA256_Final(mac, &c);
        rc = 0;
    }
    OPENSSL_cleanse(&c, sizeof c);
    OPENSSL_cleanse(inner, sizeof inner);
    return rc;
}

static const char HEX[] = "0123456789abcdef";

/* The value of a lowercase hex digit, or -1 (uppercase is not the encoding). */
static int hex_val(char h)
{
    return h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
}

int cluster_forward_sign(const uint8_t secret[32], const struct cluster_fwd *f,
                         char out[CLUSTER_FWD_MAX])
{
    uint8_t mac[32];
    if (!f->from || !vx_is_id(f->from, strlen(f->from), CLUSTER_NODE_ID_MAX) ||
        forward_mac(secret, f, mac))
        return -1;
    int n = snprintf(out, CLUSTER_FWD_MAX, "vf1.%s.%" PRId64 ".", f->from, f->time_ms);
    for (int i = 0; i < 32; i++) {
        out[n + 2 * i] = HEX[mac[i] >> 4];
        out[n + 2 * i + 1] = HEX[mac[i] & 15];
    }
    out[n + 64] = '\0';
    return 0;
}

/* Parses "vf1.<node>.<time>.<64 hex>" into in and mac; 0 or -1. */
static int forward_parse(const char *h, size_t len, struct cluster_fwd_in *in, uint8_t mac[32])
{
    if (len < 4 || memcmp(h, "vf1.", 4) != 0) return -1;
    const char *p = h + 4, *end = h + len, *dot = memchr(p, '.', (size_t)(end - p));
    if (!dot || !vx_is_id(p, (size_t)(dot - p), CLUSTER_NODE_ID_MAX)) return -1;
    memcpy(in->from, p, (size_t)(dot - p));
    in->from[dot - p] = '\0';
    p = dot + 1;
    int neg = p < end && *p == '-';
    p += neg;
    int64_t t = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < 18)
        t = t * 10 + (*p++ - '0');
    if (p == digits || p >= end || *p++ != '.' || end - p != 64) return -1;
    in->time_ms = neg ? -t : t;
    for (int i = 0; i < 32; i++) {
        int hi = hex_val(p[2 * i]), lo = hex_val(p[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int cluster_forward_check(const uint8_t secret[32], const char *header, size_t len,
                          const struct cluster_fwd *f, int64_t now_ms, int64_t skew_ms,
                          struct cluster_fwd_in *in)
{
    uint8_t got[32], want[32];
    struct cluster_fwd g = *f;
    if (!header || forward_parse(header, len, in, got)) return -1;
    g.from = in->from;
    g.time_ms = in->time_ms;
    if (forward_mac(secret, &g, want) || CRYPTO_memcmp(got, want, 32) != 0) return -1;
    int64_t d = now_ms - in->time_ms;
    return d <= skew_ms && d >= -skew_ms ? 0 : -1;
}
