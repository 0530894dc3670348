/* fuzz_http.c — the whole HTTP request path: h2o's HTTP/1 parser, http_dispatch, every
 * route's handler (api.c), idempotency, the engine and the durable log, in process.
 *
 * Set up once like `veltrix serve --demo` (store in a temp directory, fsync off): the
 * real net/log/api objects. Each input is raw bytes a client sends on one connection (a
 * socketpair handed to net_adopt), with placeholders replaced first so the fuzzer can
 * reach authenticated paths: "@T" a valid player token, "@A" the admin key, "@C" a valid
 * signed payload of demo code lobby-1, "@R" a valid refresh token, "@P" the player's id
 * (they expand to 86, 14, 39, 96 and 36 bytes: seeds count Content-Length with those
 * lengths). The loop runs until
 * the server has answered everything and is idle, then the client hangs up.
 * Invariants: no crash, leak or sanitizer report (ASan/UBSan), every answer starts with
 * an HTTP/1.1 status line, no answer is a 5xx other than 503 (limits), and (every 8th
 * input, once the log has drained) the demo hunt's seq in memory is the last in the
 * store: nothing applied in memory is missing from the durable log.
 * FUZZ_HTTP_DUMP=1 prints each answer (to check what a seed reaches). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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
static size_t exchange(const char *in, size_t len, char *out, size_t cap)
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
static int json_field(const char *s, const char *name, char *out, size_t cap)
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
static void new_player(void)
{
    static const char create[] = "POST /v1/players HTTP/1.1\r\nHost: f\r\nContent-Length: 23\r\n"
                                 "Connection: close\r\n\r\n{\"display_name\":\"fuzz\"}";
    char resp[8192];
    size_t n = exchange(create, sizeof create - 1, resp, sizeof resp - 1);
    resp[n] = '\0';
    char t[AUTH_TOKEN_MAX], r[AUTH_TOKEN_MAX], p[40];
    if (json_field(resp, "token", t, sizeof t) || json_field(resp, "refresh_token", r, sizeof r) ||
        json_field(resp, "player_id", p, sizeof p)) {
        FUZZ_CHECK(token[0]); /* past players_max: keep the old credentials */
        return;
    }
    memcpy(token, t, sizeof t);
    memcpy(refresh, r, sizeof r);
    memcpy(pid, p, sizeof p);
}

static char dir[] = "/tmp/veltrix-fuzz-http-XXXXXX";

static void remove_dir(void)
{
    static const char *const files[] = {"veltrix.db", "veltrix.db-wal", "veltrix.db-shm",
                                        "secret.key"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void setup(void)
{
    char url[128], err[512], path[128];
    struct store *writer, *reader;
    FUZZ_CHECK(mkdtemp(dir));
    atexit(remove_dir);
    snprintf(url, sizeof url, "sqlite:%s/veltrix.db", dir);
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
                            .data_dir = dir,
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
                            .live = {64, 1 << 20, 30000, 250, 200, 32 * 1024, 1000}};
    FUZZ_CHECK(api_init(&ac, reader, lg, net, err, sizeof err) == 0);
    FUZZ_CHECK(api_create_demo(err, sizeof err) == 0);
    new_player();
    struct auth a;
    snprintf(path, sizeof path, "%s/secret.key", dir);
    FUZZ_CHECK(auth_load_secret(&a, path) == 0);
    auth_payload_make(&a, "demo", "lobby-1", payload);
}

/* Copies in to out replacing the placeholders; returns the new length. */
static size_t expand(const uint8_t *in, size_t len, char *out, size_t cap)
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

static int last_seq(const struct store_event *ev, void *arg)
{
    *(uint64_t *)arg = ev->seq;
    return 0;
}

/* Once the log has drained, memory is never ahead of the store: the demo hunt's seq in
 * memory (GET /digest) is the last seq in the store's log. */
static void check_durable(void)
{
    static const char get[] = "GET /v1/hunts/demo/digest HTTP/1.1\r\nHost: f\r\n"
                              "Authorization: Bearer fuzz-admin-key\r\nConnection: close\r\n\r\n";
    char resp[4096];
    size_t n = exchange(get, sizeof get - 1, resp, sizeof resp - 1);
    resp[n] = '\0';
    const char *p = strstr(resp, "\"seq\":");
    FUZZ_CHECK(p);
    uint64_t seq = strtoull(p + 6, NULL, 10), stored = 0;
    FUZZ_CHECK(store_each_event(check, "demo", seq, last_seq, &stored) == 0);
    FUZZ_CHECK(stored == seq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned runs;
    static char req[1 << 17], resp[1 << 16];
    if (!net) setup();
    size_t len = expand(data, size, req, sizeof req);
    size_t n = exchange(req, len, resp, sizeof resp - 1);
    resp[n] = '\0';
    if (getenv("FUZZ_HTTP_DUMP")) fprintf(stderr, "---- answer\n%s\n", resp);
    if (n) {
        FUZZ_CHECK(n >= 12 && !memcmp(resp, "HTTP/1.1 ", 9));
        FUZZ_CHECK(resp[9] != '5' || !memcmp(resp + 9, "503", 3));
    }
    if (memmem(data, size, "@R", 2)) new_player();
    if (++runs % 8 == 0 && !log_pending(lg)) check_durable();
    return 0;
}
