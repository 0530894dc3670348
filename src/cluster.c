/* cluster.c — see cluster.h: placement, the owner's lease clock, forwarded requests. */
#include "cluster.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "vx.h"

#define PLACE_DOMAIN "veltrix-place-v1"
#define FWD_DOMAIN "veltrix-forward-v1"

uint64_t cluster_score(const char *node, const char *hunt)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    size_t nl = strlen(node);
    uint8_t len = (uint8_t)(nl > 255 ? 255 : nl);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    VX_FATAL_IF(!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
                    !EVP_DigestUpdate(c, PLACE_DOMAIN, sizeof PLACE_DOMAIN - 1) ||
                    !EVP_DigestUpdate(c, &len, 1) || !EVP_DigestUpdate(c, node, len) ||
                    !EVP_DigestUpdate(c, hunt, strlen(hunt)) || !EVP_DigestFinal_ex(c, d, &dl) ||
                    dl != 32);
    EVP_MD_CTX_free(c);
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

static void mac_field(EVP_MAC_CTX *c, const void *p, size_t n)
{
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    EVP_MAC_update(c, len, 4);
    if (n) EVP_MAC_update(c, p, n);
}

static int mac_str(EVP_MAC_CTX *c, const char *s)
{
    if (!s) return -1;
    mac_field(c, s, strlen(s));
    return 0;
}

/* The MAC of f by secret; 0 or -1 (OpenSSL failure, a NULL string). */
static int forward_mac(const uint8_t secret[32], const struct cluster_fwd *f, uint8_t mac[32])
{
    char t[24];
    size_t out = 0;
    int rc = -1;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    snprintf(t, sizeof t, "%" PRId64, f->time_ms);
    if (c && EVP_MAC_init(c, secret, 32, params)) {
        EVP_MAC_update(c, (const uint8_t *)FWD_DOMAIN, sizeof FWD_DOMAIN - 1);
        if (!mac_str(c, f->from) && !mac_str(c, t) && !mac_str(c, f->client_addr) &&
            !mac_str(c, f->method) && !mac_str(c, f->path) && !mac_str(c, f->authorization) &&
            !mac_str(c, f->idem_key)) {
            mac_field(c, f->body_sha256, 32);
            rc = EVP_MAC_final(c, mac, &out, 32) && out == 32 ? 0 : -1;
        }
    }
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    return rc;
}

int cluster_forward_sign(const uint8_t secret[32], const struct cluster_fwd *f,
                         char out[CLUSTER_FWD_MAX])
{
    uint8_t mac[32];
    if (!f->from || !vx_is_id(f->from, strlen(f->from), CLUSTER_NODE_ID_MAX) ||
        forward_mac(secret, f, mac))
        return -1;
    int n = snprintf(out, CLUSTER_FWD_MAX, "vf1.%s.%" PRId64 ".", f->from, f->time_ms);
    for (int i = 0; i < 32; i++)
        n += snprintf(out + n, CLUSTER_FWD_MAX - (size_t)n, "%02x", mac[i]);
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
        unsigned v;
        char hex[3] = {p[2 * i], p[2 * i + 1], 0};
        if (!strchr("0123456789abcdef", hex[0]) || !strchr("0123456789abcdef", hex[1]) ||
            sscanf(hex, "%2x", &v) != 1)
            return -1;
        mac[i] = (uint8_t)v;
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
