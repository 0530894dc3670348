/* api_web.c — the web pages, served from the bundle embedded in the binary: the player
 * app (GET /), the organizer console (GET /admin), the venue screen (GET /board/{hunt})
 * and their content-hashed files (GET /assets/{name}).
 *
 * Design: web/build.mjs bundles web/src with esbuild and writes every file, with its
 * gzipped copy and ETag, into a generated C table (struct web_asset, api_int.h); answers
 * point at those static bytes (http_send_ref, no copy). The pages name their scripts and
 * styles by content hash, so those are cached for a year; the pages themselves are
 * revalidated every time (no-cache + ETag).
 *
 * Invariants:
 * - every answer carries a Content-Security-Policy that allows this origin only and no
 *   inline script or style element, plus nosniff and no-referrer;
 * - the gzipped bytes go out only to a client whose Accept-Encoding takes gzip, and
 *   every answer says Vary: Accept-Encoding. */
#include "api_int.h"

#include <string.h>
#include <strings.h>

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";
static const char cc_page[] = "no-cache", cc_hashed[] = "public, max-age=31536000, immutable";

static const struct web_asset *find(const char *path, size_t len)
{
    for (size_t i = 0; i < web_assets_n; i++)
        if (strlen(web_assets[i].path) == len && !memcmp(web_assets[i].path, path, len))
            return &web_assets[i];
    return NULL;
}

/* Whether the parameters of one Accept-Encoding entry, [p, end), say q=0 (0, 0., 0.000). */
static int q_zero(const char *p, const char *end)
{
    const char *q = memmem(p, (size_t)(end - p), "q=", 2);
    if (!q) return 0;
    q += 2;
    if (q == end || *q != '0') return 0;
    q++;
    if (q < end && *q == '.') q++;
    while (q < end && *q == '0')
        q++;
    while (q < end && *q == ' ')
        q++;
    return q == end;
}

/* Whether Accept-Encoding lists gzip (or *) with a q-value other than 0. */
static int takes_gzip(struct http_str ae)
{
    const char *p = ae.p, *end = ae.p + ae.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        const char *tok = p;
        while (p < end && *p != ',' && *p != ';' && *p != ' ')
            p++;
        size_t tl = (size_t)(p - tok);
        const char *stop = memchr(p, ',', (size_t)(end - p));
        if (!stop) stop = end;
        if ((tl == 4 && !strncasecmp(tok, "gzip", 4)) || (tl == 1 && *tok == '*'))
            return !q_zero(p, stop);
        p = stop;
    }
    return 0;
}

static void send_asset(struct http_req *r, const struct web_asset *a)
{
    struct http_str ae = http_header(r, "accept-encoding"), inm = http_header(r, "if-none-match");
    int gz = a->gz_len && ae.p && takes_gzip(ae);
    const char *etag = gz ? a->gz_etag : a->etag;
    int nm = inm.p && inm.len == strlen(etag) && !memcmp(inm.p, etag, inm.len);
    const char *cc = a->immutable ? cc_hashed : cc_page;
    struct http_hdr hs[9] = {
        {"etag", etag, strlen(etag)},
        {"cache-control", cc, strlen(cc)},
        {"vary", "accept-encoding", 15},
        {"content-security-policy", csp, sizeof csp - 1},
        {"x-content-type-options", "nosniff", 7},
        {"referrer-policy", "no-referrer", 11},
        {"content-type", a->ctype, strlen(a->ctype)},
        {"content-encoding", "gzip", 4},
    };
    size_t n = nm ? 6 : gz ? 8 : 7;
    http_send_ref(r, nm ? 304 : 200, hs, n, gz ? a->gz : a->body, gz ? a->gz_len : a->len, NULL,
                  NULL);
}

static void send_page(struct http_req *r, const char *path)
{
    const struct web_asset *a = find(path, strlen(path));
    VX_FATAL_IF(!a); /* web/build.mjs always writes the three pages */
    send_asset(r, a);
}

void api_web_player(struct http_req *r) { send_page(r, "/"); }
void api_web_admin(struct http_req *r) { send_page(r, "/admin"); }

/* The page reads the hunt id from its own address; an id that cannot be one is refused
 * here so that a mistyped link says so at once. */
void api_web_board(struct http_req *r)
{
    struct http_str h = http_param(r, 0);
    if (!auth_valid_id(h.p, h.len)) {
        http_error(r, 400, "invalid_id", "ids are 1-64 characters of [a-z0-9_-]");
        return;
    }
    send_page(r, "/board");
}

void api_web_asset(struct http_req *r)
{
    struct http_str p = http_path(r);
    const struct web_asset *a = find(p.p, p.len);
    if (!a || !a->immutable) {
        http_error(r, 404, "not_found", "no such file");
        return;
    }
    send_asset(r, a);
}
