/* fuzz_http.c — the whole HTTP request path: h2o's HTTP/1 parser, http_dispatch, every
 * route's handler (api.c), idempotency, the engine and the durable log, in process.
 *
 * The server runs in process (fuzz_server.h: set up like `veltrix serve --demo`). Each
 * input is raw bytes a client sends on one connection, with the placeholders of
 * fuzz_server.h replaced first so the fuzzer can reach authenticated paths ("@T", "@A",
 * "@C", "@R", "@P" expand to 86, 14, 39, 96 and 36 bytes: seeds count Content-Length
 * with those lengths). The loop runs until the server has answered everything and is
 * idle, then the client hangs up.
 * Invariants: no crash, leak or sanitizer report (ASan/UBSan), every answer starts with
 * an HTTP/1.1 status line, no answer is a 5xx other than a 503 of a capacity limit
 * (busy, player_limit, hunt_limit, tile_limit: fuzz_answers_check), and (every 8th
 * input, once the log has drained) the demo hunt's seq in memory is the last in the
 * store: nothing applied in memory is missing from the durable log.
 * FUZZ_HTTP_DUMP=1 prints each answer (to check what a seed reaches). */
#include "fuzz_server.h"

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
    size_t n = fuzz_exchange(get, sizeof get - 1, resp, sizeof resp - 1);
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
    if (!net) fuzz_server_setup();
    size_t len = fuzz_expand(data, size, req, sizeof req);
    size_t n = fuzz_exchange(req, len, resp, sizeof resp - 1);
    resp[n] = '\0';
    if (getenv("FUZZ_HTTP_DUMP")) fprintf(stderr, "---- answer\n%s\n", resp);
    fuzz_answers_check(resp, n);
    if (memmem(data, size, "@R", 2)) fuzz_new_player();
    if (++runs % 8 == 0 && !log_pending(lg)) check_durable();
    return 0;
}
