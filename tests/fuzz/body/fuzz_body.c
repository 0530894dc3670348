/* fuzz_body.c — request bodies on every route that takes one: the contract says a request
 * never gets a 5xx for bad input (API.md "Conventions").
 *
 * The server runs in process (fuzz_server.h). At start the target lists the POST and PUT
 * routes from GET /metrics (so a route added later is fuzzed without editing this file),
 * fills their path parameters with entities of the demo hunt (a hunt definition goes to
 * its own hunt "fz") and finds which credential each needs: a player token, or the admin
 * key where the token gets 403. Each input, placeholders of fuzz_server.h expanded, is
 * then the body of one well-formed request to each of those routes, authenticated.
 * Invariants: no crash, leak or sanitizer report; every request gets an answer, and no
 * answer is a 5xx other than a 503 of a capacity limit (busy, player_limit, hunt_limit,
 * tile_limit): never 503 "unavailable". */
#include "fuzz_server.h"

#define ROUTES_MAX 32

static struct route {
    const char *method;
    char path[128];
    int admin;
} routes[ROUTES_MAX];
static size_t n_routes;

/* "/v1/hunts/:/items/:/collect" -> "/v1/hunts/demo/items/key-red/collect"; a parameter
 * not named by the segment before it is "1" (an id, a tile coordinate). */
static void fill_params(const char *method, const char *pattern, char *out, size_t cap)
{
    static const char *const after[][2] = {
        {"hunts", "demo"}, {"items", "key-red"}, {"zones", "atrium"}};
    char pat[128], *save;
    const char *prev = "";
    size_t o = 0;
    if (!strcmp(method, "PUT") && !strcmp(pattern, "/v1/hunts/:")) {
        snprintf(out, cap, "/v1/hunts/fz"); /* definitions: not the demo hunt's */
        return;
    }
    snprintf(pat, sizeof pat, "%s", pattern);
    for (char *seg = strtok_r(pat, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        const char *v = strcmp(seg, ":") ? seg : "1";
        for (size_t i = 0; !strcmp(seg, ":") && i < sizeof after / sizeof after[0]; i++)
            v = !strcmp(prev, after[i][0]) ? after[i][1] : v;
        o += (size_t)snprintf(out + o, cap - o, "/%s", v);
        FUZZ_CHECK(o < cap);
        prev = seg;
    }
}

/* One request with body[0..len) on a fresh connection; the answer into resp. */
static size_t send_body(const struct route *rt, const char *body, size_t len, char *resp,
                        size_t cap)
{
    static char req[(1 << 17) + 512];
    int h = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: f\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     rt->method, rt->path, rt->admin ? admin_key : token, len);
    FUZZ_CHECK(h > 0 && (size_t)h + len <= sizeof req);
    memcpy(req + h, body, len);
    size_t n = fuzz_exchange(req, (size_t)h + len, resp, cap - 1);
    resp[n] = '\0';
    return n;
}

/* The POST and PUT routes from /metrics, and the credential each needs. */
static void find_routes(void)
{
    static const char get[] = "GET /metrics HTTP/1.1\r\nHost: f\r\nConnection: close\r\n\r\n";
    static char resp[1 << 18];
    size_t n = fuzz_exchange(get, sizeof get - 1, resp, sizeof resp - 1);
    resp[n] = '\0';
    const char *p = resp;
    while ((p = strstr(p, "veltrix_http_requests_total{method=\""))) {
        char method[8], pattern[100];
        int end = 0; /* one line per route and status class: take the 1xx one */
        p += strlen("veltrix_http_requests_total{method=\"");
        if (sscanf(p, "%7[A-Z]\",route=\"%99[^\"]\",code=\"1xx\"%n", method, pattern, &end) != 2 ||
            !end || (strcmp(method, "POST") && strcmp(method, "PUT")))
            continue;
        if (!strcmp(pattern, "/v1/cluster/events") || !strcmp(pattern, "/v1/cluster/batch"))
            continue; /* between nodes only (403 here): fuzz_feed, fuzz_fwdbatch fuzz them */
        FUZZ_CHECK(n_routes < ROUTES_MAX);
        struct route *rt = &routes[n_routes++];
        rt->method = !strcmp(method, "PUT") ? "PUT" : "POST";
        fill_params(method, pattern, rt->path, sizeof rt->path);
        char probe[8192];
        send_body(rt, "{", 1, probe, sizeof probe); /* a player token on an admin route: 403 */
        int status = atoi(probe + 9);
        rt->admin = status == 403;
        if (rt->admin) send_body(rt, "{", 1, probe, sizeof probe);
        status = atoi(probe + 9);
        if (status == 401 || status == 403 || status == 404 || status == 405)
            fprintf(stderr, "fuzz_body: %s %s (%s) answers %d: the route is not reached\n",
                    rt->method, rt->path, pattern, status);
        FUZZ_CHECK(status != 401 && status != 403 && status != 404 && status != 405);
    }
    FUZZ_CHECK(n_routes >= 8); /* players, refresh, hunt, tile, publish, scan, collect... */
    fprintf(stderr, "fuzz_body: %zu routes:", n_routes);
    for (size_t i = 0; i < n_routes; i++)
        fprintf(stderr, " %s %s (%s)", routes[i].method, routes[i].path,
                routes[i].admin ? "admin" : "player");
    fprintf(stderr, "\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char body[1 << 17], resp[1 << 16];
    if (!net) {
        fuzz_server_setup();
        find_routes();
    }
    size_t len = fuzz_expand(data, size, body, sizeof body);
    for (size_t i = 0; i < n_routes; i++) {
        size_t n = send_body(&routes[i], body, len, resp, sizeof resp);
        if (getenv("FUZZ_BODY_DUMP"))
            fprintf(stderr, "---- %s %s\n%s\n", routes[i].method, routes[i].path, resp);
        FUZZ_CHECK(fuzz_answers_check(resp, n) == 1);
    }
    if (memmem(data, size, "@R", 2)) fuzz_new_player();
    return 0;
}
