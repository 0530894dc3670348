/* fuzz_server.h — the whole server in process, for the fuzz targets that send it HTTP
 * (fuzz_http, fuzz_body).
 *
 * fuzz_server_setup() starts it like `veltrix serve --demo` (store in a temp directory,
 * fsync off, rate limits off): the real net/log/api objects, the demo hunt and one
 * player. fuzz_exchange() sends bytes on a fresh connection (a socketpair handed to
 * net_adopt) and runs the loop until the server has answered everything and is idle.
 * Placeholders let inputs reach authenticated paths: "@T" a valid player token, "@A" the
 * admin key, "@C" a valid signed payload of demo code lobby-1, "@R" a valid refresh
 * token, "@P" the player's id (86, 14, 39, 96 and 36 bytes). fuzz_answers_check() holds
 * the contract's "no 5xx for bad input" over every answer of an exchange. One target per
 * process, so the state below is the including file's. */
#ifndef VELTRIX_FUZZ_SERVER_H
#define VELTRIX_FUZZ_SERVER_H
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "fuzz_util.h"
#include "log.h"
#include "net.h"
#include "store.h"

static struct net *net;
static struct log *lg;
static struct store *check; /* a third handle, to read what is durable */
static char token[AUTH_TOKEN_MAX], refresh[AUTH_TOKEN_MAX], payload[AUTH_PAYLOAD_MAX], pid[40];
static const char admin_key[] = "fuzz-admin-key";

/* Sends in[0..len) on a fresh connection and collects what comes back (up to cap). */
static size_t fuzz_exchange(const char *in, size_t len, char *out, size_t cap)
{
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    if (net_adopt(net, sv[0])) {
        close(sv[1]);
        return 0;
    }
    size_t sent = 0, got = 0;
    int idle = 0, closed = 0;
    char sink[4096];
    for (int i = 0; i < 20000 && !closed && idle < 3; i++) {
        if (sent < len) {
            ssize_t w = write(sv[1], in + sent, len - sent);
            if (w > 0) sent += (size_t)w;
        }
        net_run_once(net, log_pending(lg) ? 1 : 0);
        ssize_t r;
        int progress = sent < len || log_pending(lg);
        while ((r = read(sv[1], sink, sizeof sink)) > 0) {
            size_t n = (size_t)r < cap - got ? (size_t)r : cap - got;
            memcpy(out + got, sink, n);
            got += n;
            progress = 1;
        }
        if (r == 0) closed = 1;
        idle = progress ? 0 : idle + 1;
    }
    close(sv[1]);
    for (int i = 0; i < 4; i++)
        net_run_once(net, 0); /* let h2o see the hang-up */
    return got;
}

/* The value of "name":"..." in a JSON answer, copied into out. 0 or -1. */
static int fuzz_json_field(const char *s, const char *name, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", name);
    const char *p = strstr(s, pat);
    if (!p) return -1;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    if (n >= cap) return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* A new player and its credentials (a refresh token used twice revokes the player's
 * sessions, so an input that used @R gets fresh ones for the next). */
static void fuzz_new_player(void)
{
    static const char create[] = "POST /v1/players HTTP/1.1\r\nHost: f\r\nContent-Length: 23\r\n"
                                 "Connection: close\r\n\r\n{\"display_name\":\"fuzz\"}";
    char resp[8192];
    size_t n = fuzz_exchange(create, sizeof create - 1, resp, sizeof resp - 1);
    resp[n] = '\0';
    char t[AUTH_TOKEN_MAX], r[AUTH_TOKEN_MAX], p[40];
    if (fuzz_json_field(resp, "token", t, sizeof t) ||
        fuzz_json_field(resp, "refresh_token", r, sizeof r) ||
        fuzz_json_field(resp, "player_id", p, sizeof p)) {
        FUZZ_CHECK(token[0]); /* past players_max: keep the old credentials */
        return;
    }
    memcpy(token, t, sizeof t);
    memcpy(refresh, r, sizeof r);
    memcpy(pid, p, sizeof p);
}

static char fuzz_dir[] = "/tmp/veltrix-fuzz-XXXXXX";

static void fuzz_remove_dir(void)
{
    static const char *const files[] = {"veltrix.db", "veltrix.db-wal", "veltrix.db-shm",
                                        "secret.key"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", fuzz_dir, files[i]);
        unlink(path);
    }
    rmdir(fuzz_dir);
}

static void fuzz_server_setup(void)
{
    char url[128], err[512], path[128];
    struct store *writer, *reader;
    FUZZ_CHECK(mkdtemp(fuzz_dir));
    atexit(fuzz_remove_dir);
    snprintf(url, sizeof url, "sqlite:%s/veltrix.db", fuzz_dir);
    FUZZ_CHECK(store_open(url, STORE_FSYNC_OFF, &writer, err, sizeof err) == 0);
    FUZZ_CHECK(store_open(url, STORE_FSYNC_OFF, &reader, err, sizeof err) == 0);
    FUZZ_CHECK(store_open(url, STORE_FSYNC_OFF, &check, err, sizeof err) == 0);
    struct net_config nc = {.listen = "127.0.0.1:0",
                            .conns_max = 64,
                            .req_timeout_ms = 10000,
                            .body_max = 17 * 1024 * 1024};
    FUZZ_CHECK((net = net_create(&nc, err, sizeof err)) != NULL);
    FUZZ_CHECK((lg = log_create(writer, net_loop(net), 4096)) != NULL);
    struct api_config ac = {.admin_key = admin_key, /* small tables: bounded memory */
                            .data_dir = fuzz_dir,
                            .metrics_public = 1, /* fuzz_body reads the routes there */
                            .token_ttl_s = 86400,
                            .refresh_ttl_s = 30 * 86400,
                            .queue_max = 4096, /* the demo map alone is 1,025 entries */
                            .idem_max = 10000,
                            .idem_retention_ms = 24 * 3600 * 1000LL,
                            .hunts_max = 20,
                            .players_max = 20000,
                            .limits = {.keys_max = 1024}, /* rates 0: off */
                            .tiles_bytes_max = 64 << 20,
                            .map_versions_kept = 3,
                            .live = {64, 1 << 20, 30000, 250, 200, 32 * 1024, 1000, 0, 0, 0}};
    FUZZ_CHECK(api_init(&ac, reader, lg, net, err, sizeof err) == 0);
    FUZZ_CHECK(api_create_demo(err, sizeof err) == 0);
    fuzz_new_player();
    struct auth a;
    snprintf(path, sizeof path, "%s/secret.key", fuzz_dir);
    FUZZ_CHECK(auth_load_secret(&a, path) == 0);
    auth_payload_make(&a, "demo", "lobby-1", payload);
}

/* Copies in to out replacing the placeholders; returns the new length. */
static size_t fuzz_expand(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o < cap; i++) {
        const char *sub = NULL;
        if (in[i] == '@' && i + 1 < len) {
            char c = (char)in[i + 1];
            sub = c == 'T'   ? token
                  : c == 'A' ? admin_key
                  : c == 'C' ? payload
                  : c == 'R' ? refresh
                  : c == 'P' ? pid
                             : NULL;
        }
        if (!sub) {
            out[o++] = (char)in[i];
            continue;
        }
        size_t sl = strlen(sub);
        if (o + sl > cap) break;
        memcpy(out + o, sub, sl);
        o += sl;
        i++;
    }
    return o;
}

/* 1 when a 5xx answer is allowed: a 503 whose error code names a capacity limit (the
 * server is full or busy, API.md). Any other 5xx, "unavailable" included, is the server
 * failing on its input. body: the answer's body, len bytes. */
static int fuzz_5xx_allowed(int status, const char *body, size_t len)
{
    static const char *const limits[] = {"busy", "player_limit", "hunt_limit", "tile_limit"};
    static const char key[] = "{\"error\":{\"code\":\"";
    if (status != 503 || len < sizeof key - 1 || memcmp(body, key, sizeof key - 1)) return 0;
    const char *code = body + sizeof key - 1, *end = memchr(code, '"', len - (sizeof key - 1));
    for (size_t i = 0; end && i < sizeof limits / sizeof limits[0]; i++)
        if ((size_t)(end - code) == strlen(limits[i]) && !memcmp(code, limits[i], end - code))
            return 1;
    return 0;
}

/* The value of header name (lower case, with ':') in head[0..len), or NULL. */
static const char *fuzz_header(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = head; p && p + nl < head + len;) {
        if (!strncasecmp(p, name, nl)) return p + nl;
        p = memchr(p, '\n', (size_t)(head + len - p));
        if (p) p++;
    }
    return NULL;
}

/* Checks every answer in resp[0..n) (pipelined answers one after the other): each starts
 * with an HTTP/1.1 status line and none is a 5xx that fuzz_5xx_allowed refuses. Returns
 * how many answers were checked. The walk stops where answers cannot be delimited any
 * more (no Content-Length, a 101 upgrade, the collected bytes end, or what follows is not
 * a status line: a HEAD answer has a Content-Length but no body); only the first answer
 * must be there whenever anything came back. */
static int fuzz_answers_check(const char *resp, size_t n)
{
    size_t at = 0;
    int answers = 0;
    while (at < n) {
        const char *s = resp + at;
        size_t left = n - at;
        if (left < 12 || memcmp(s, "HTTP/1.1 ", 9)) {
            FUZZ_CHECK(answers > 0);
            break;
        }
        int status = atoi(s + 9);
        FUZZ_CHECK(status >= 100 && status <= 599);
        const char *end = memmem(s, left, "\r\n\r\n", 4);
        if (!end) break;
        size_t head = (size_t)(end - s) + 4, body_len = 0;
        const char *cl = fuzz_header(s, head, "content-length:");
        if (cl) body_len = strtoull(cl, NULL, 10);
        if (body_len > left - head) body_len = left - head; /* cut at cap */
        int ok = status < 500 || fuzz_5xx_allowed(status, s + head, body_len);
        if (!ok) fprintf(stderr, "a %d answer:\n%.*s\n", status, (int)(head + body_len), s);
        FUZZ_CHECK(ok); /* no 5xx but the capacity limits */
        answers++;
        if (status == 101 || (!cl && status >= 200 && status != 204 && status != 304)) break;
        at += head + body_len;
    }
    return answers;
}

#endif
