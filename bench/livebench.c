/* livebench.c — load tool for the live stream: N WebSocket clients in one hunt, writers
 * posting scans at a fixed rate, delivery rate and latency, server memory per connection.
 *
 *   bench_livebench --port P --key ADMIN_KEY [--pid SERVER_PID] [--clients 10000]
 *                   [--rate 40] [--seconds 10] [--writers 50] [--codes 400] [--hunt blive]
 *                   [--client-ports P1,P2,...]
 *
 * Steps: define a hunt of `codes` codes, create `writers` players (w0, w1, ...) and one
 * watcher; read the server's VmRSS; open the clients (one epoll loop, nonblocking, at most
 * 256 handshakes in flight); read VmRSS again once all are idle: (after - before) / N is
 * the server memory per idle connection. Then scans go out at `rate` per second over 8
 * keep-alive connections, each (writer, code) once, and every client parses what it gets.
 * A scan message names its writer (display_name "w<i>") and code ("c<k>"), so each
 * receipt is matched with the time its scan was sent and the time its answer came back:
 *   send->recv  from sending the scan (includes the group commit and its fsync);
 *   ack->recv   from its HTTP answer, which leaves right when the event is durable and
 *               published: the closest a client can see to commit-to-receipt (it can be
 *               slightly negative: a client may get the event before the writer its 200).
 * --client-ports spreads the WebSocket clients round robin over those ports (nodes of one
 * cluster: `bench/run.sh cluster`); the setup and the scans still go to --port.
 * Prints a summary and one line "RESULT key=value ..." for bench/run.sh. Single thread,
 * bounded in time: setup 60 s, connect 120 s, run `seconds` + 5 s drain. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define WRITER_CONNS 8
#define HANDSHAKES_MAX 256

struct opts {
    int port, pid, clients, writers, codes;
    double rate, seconds;
    const char *key, *hunt;
    int client_ports[16], n_client_ports; /* none: the clients dial --port */
};

enum kind { K_CLIENT, K_WRITER };

struct conn {
    enum kind kind;
    int fd, state; /* client: 0 connecting, 1 handshake sent, 2 open, 3 closed */
    char *buf;     /* unparsed input */
    size_t len, cap;
    long busy;     /* writer: event index in flight, -1 idle */
};

static struct opts o = {0, 0, 10000, 50, 400, 40, 10, NULL, "blive", {0}, 0};
static char **tokens; /* writers' tokens, then the watcher's */
static char **payloads;
static double *t_send, *t_ack;
static double *lat_send, *lat_ack;
static size_t n_lat, cap_lat;
static uint64_t frames, scan_msgs, closed_clients, open_clients;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "livebench: %s\n", what);
    exit(1);
}

/* ---- blocking HTTP for the setup ----------------------------------------------------- */

static int dial_port(int port, int nonblock)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0), one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS) die("connect");
    return fd;
}

static int dial(int nonblock) { return dial_port(o.port, nonblock); }

/* One request on a fresh connection; returns the parsed JSON body (status in *status). */
static json_t *http(const char *method, const char *path, const char *auth, const char *body,
                    int *status)
{
    int fd = dial(0);
    char head[1024];
    size_t bl = body ? strlen(body) : 0;
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, auth ? "Authorization: Bearer " : "", auth ? auth : "",
                      auth ? "\r\n" : "", bl);
    if (write(fd, head, (size_t)hl) != hl || (bl && write(fd, body, bl) != (ssize_t)bl))
        die("write");
    size_t cap = 1 << 16, len = 0;
    char *r = malloc(cap);
    ssize_t n;
    while ((n = read(fd, r + len, cap - len - 1)) > 0)
        if ((len += (size_t)n) == cap - 1) r = realloc(r, cap *= 2);
    close(fd);
    r[len] = '\0';
    *status = len > 12 ? atoi(r + 9) : 0;
    char *b = strstr(r, "\r\n\r\n");
    json_t *j = b ? json_loads(b + 4, 0, NULL) : NULL;
    free(r);
    return j;
}

static void setup(void)
{
    json_t *def = json_pack("{s:s,s:{s:i,s:i},s:[],s:[],s:[]}", "name", "live bench", "map",
                            "width", 1000, "height", 1000, "codes", "items", "zones");
    json_t *codes = json_object_get(def, "codes");
    for (int k = 0; k < o.codes; k++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", k);
        json_array_append_new(codes, json_pack("{s:s,s:i,s:i,s:i}", "id", id, "points", 1 + k % 50,
                                               "x", k % 1000, "y", k / 1000));
    }
    char *body = json_dumps(def, JSON_COMPACT), path[256];
    int st;
    snprintf(path, sizeof path, "/v1/hunts/%s", o.hunt);
    json_decref(http("PUT", path, o.key, body, &st));
    if (st != 200 && st != 201) die("PUT hunt failed");
    free(body);
    json_decref(def);
    snprintf(path, sizeof path, "/v1/hunts/%s/codes", o.hunt);
    json_t *cj = http("GET", path, o.key, NULL, &st), *c;
    size_t i;
    payloads = calloc((size_t)o.codes, sizeof *payloads);
    json_array_foreach(json_object_get(cj, "codes"), i, c)
    {
        int k = atoi(json_string_value(json_object_get(c, "id")) + 1);
        if (k >= 0 && k < o.codes) payloads[k] = strdup(json_string_value(json_object_get(c, "payload")));
    }
    json_decref(cj);
    tokens = calloc((size_t)o.writers + 1, sizeof *tokens);
    for (int w = 0; w <= o.writers; w++) {
        char b[64];
        snprintf(b, sizeof b, "{\"display_name\":\"%s%d\"}", w < o.writers ? "w" : "watcher", w);
        json_t *pj = http("POST", "/v1/players", NULL, b, &st);
        const char *t = json_string_value(json_object_get(pj, "token"));
        if (st != 201 || !t) die("POST /v1/players failed");
        tokens[w] = strdup(t);
        json_decref(pj);
    }
    for (int k = 0; k < o.codes; k++)
        if (!payloads[k]) die("missing code payload");
}

static long rss_kb(void)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", o.pid);
    FILE *f = o.pid ? fopen(path, "r") : NULL;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

/* ---- the event loop ------------------------------------------------------------------ */

static int ep;
static struct conn *clients, writers[WRITER_CONNS];

static void add(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev)) die("epoll_ctl");
}

static void append(struct conn *c, const char *p, size_t n)
{
    if (c->len + n > c->cap) {
        c->cap = (c->len + n) * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
}

static void sample(double t, const char *p, size_t n)
{
    const char *dn = memmem(p, n, "\"display_name\":\"w", 17);
    const char *cd = memmem(p, n, "\"code\":\"c", 9);
    if (!dn || !cd) return;
    long idx = atol(cd + 9) * o.writers + atol(dn + 17);
    if (idx < 0 || idx >= (long)o.codes * o.writers || t_send[idx] == 0) return;
    if (n_lat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 1 << 20;
        lat_send = realloc(lat_send, cap_lat * sizeof *lat_send);
        lat_ack = realloc(lat_ack, cap_lat * sizeof *lat_ack);
    }
    lat_send[n_lat] = t - t_send[idx];
    lat_ack[n_lat++] = t_ack[idx] ? t - t_ack[idx] : -1e9; /* ack not read yet: fixed below */
    scan_msgs++;
}

/* Parses the frames in c->buf; returns 0, or -1 when the server closed. */
static int client_frames(struct conn *c, double t)
{
    size_t off = 0;
    while (c->len - off >= 2) {
        const uint8_t *p = (const uint8_t *)c->buf + off;
        size_t n = p[1] & 0x7f, hl = 2;
        if (n == 126) {
            if (c->len - off < 4) break;
            n = (size_t)p[2] << 8 | p[3], hl = 4;
        } else if (n == 127) {
            if (c->len - off < 10) break;
            n = 0;
            for (int i = 2; i < 10; i++) n = n << 8 | p[i];
            hl = 10;
        }
        if (c->len - off < hl + n) break;
        int op = p[0] & 0x0f;
        if (op == 8) return -1;
        if (op == 1) {
            frames++;
            sample(t, (const char *)p + hl, n);
        }
        off += hl + n;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return 0;
}

static void on_client(struct conn *c, uint32_t events, double t)
{
    char buf[65536];
    if (c->state == 0 && (events & EPOLLOUT)) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET /v1/hunts/%s/live?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         o.hunt, tokens[o.writers]);
        if (write(c->fd, req, (size_t)n) != n) die("handshake write");
        c->state = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN) return;
            break;
        }
        append(c, buf, (size_t)n);
        if (c->state == 1) {
            char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (!e) continue;
            if (strncmp(c->buf, "HTTP/1.1 101", 12)) die("handshake refused");
            c->state = 2;
            open_clients++;
            size_t used = (size_t)(e + 4 - c->buf);
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
        }
        if (client_frames(c, t)) break;
    }
    if (c->state == 2) open_clients--;
    c->state = 3;
    closed_clients++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* A new connection for writer w: the server closed the old one (idle for
 * --request-timeout-ms; writers are taken first-idle-first, so at low rates most idle). */
static void redial(struct conn *w)
{
    close(w->fd); /* leaves the epoll set with it */
    w->fd = dial(0);
    fcntl(w->fd, F_SETFL, O_NONBLOCK);
    w->len = 0;
    add(w, EPOLLIN);
}

static void send_scan(struct conn *w, long idx, double t)
{
    char body[256], req[1024];
    int bl = snprintf(body, sizeof body, "{\"code\":\"%s\"}", payloads[idx / o.writers]);
    int n = snprintf(req, sizeof req,
                     "POST /v1/hunts/%s/scans HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     o.hunt, tokens[idx % o.writers], bl, body);
    t_send[idx] = t;
    w->busy = idx;
    if (write(w->fd, req, (size_t)n) == n) return;
    if (errno != EPIPE && errno != ECONNRESET) die("scan write");
    redial(w); /* closed a moment ago: once more on a new connection */
    if (write(w->fd, req, (size_t)n) != n) die("scan write");
}

static uint64_t acks, ack_errors;

static void on_writer(struct conn *w, double t)
{
    char buf[8192];
    ssize_t n;
    while ((n = read(w->fd, buf, sizeof buf)) > 0) append(w, buf, (size_t)n);
    int closed = n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE));
    if (closed && w->busy >= 0 && w->len > 0) die("writer connection closed mid-answer");
    if (closed) {
        /* A scan sent just as the server's close crossed it got no answer (the server
         * never read it): it goes again on the new connection. */
        long again = w->busy;
        redial(w);
        w->busy = -1;
        if (again >= 0) send_scan(w, again, t);
        return;
    }
    char *e = memmem(w->buf, w->len, "\r\n\r\n", 4);
    if (!e) return;
    char *cl = memmem(w->buf, (size_t)(e - w->buf), "ontent-Length: ", 15);
    size_t need = (size_t)(e + 4 - w->buf) + (cl ? (size_t)atol(cl + 15) : 0);
    if (w->len < need) return;
    if (strncmp(w->buf, "HTTP/1.1 200", 12)) ack_errors++;
    t_ack[w->busy] = t;
    acks++;
    memmove(w->buf, w->buf + need, w->len - need);
    w->len -= need;
    w->busy = -1;
}

static void loop_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    double t = now_s();
    for (int i = 0; i < n; i++) /* answers first: their time is the reference */
        if (((struct conn *)evs[i].data.ptr)->kind == K_WRITER) on_writer(evs[i].data.ptr, t);
    for (int i = 0; i < n; i++) {
        struct conn *c = evs[i].data.ptr;
        if (c->kind == K_CLIENT) on_client(c, evs[i].events, now_s());
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    return n ? v[(size_t)(p * (double)(n - 1))] * 1000 : 0;
}

static void connect_all(void)
{
    clients = calloc((size_t)o.clients, sizeof *clients);
    int started = 0;
    double deadline = now_s() + 120;
    while ((int)(open_clients + closed_clients) < o.clients && now_s() < deadline) {
        while (started < o.clients && started - (int)(open_clients + closed_clients) < HANDSHAKES_MAX) {
            struct conn *c = &clients[started++];
            c->kind = K_CLIENT;
            c->fd = o.n_client_ports
                        ? dial_port(o.client_ports[(started - 1) % o.n_client_ports], 1)
                        : dial(1);
            add(c, EPOLLOUT | EPOLLIN);
        }
        loop_once(10);
    }
    if ((int)open_clients != o.clients) {
        fprintf(stderr, "livebench: only %llu of %d clients connected (%llu closed)\n",
                (unsigned long long)open_clients, o.clients, (unsigned long long)closed_clients);
        exit(1);
    }
}

static void run_load(double *elapsed)
{
    for (int i = 0; i < WRITER_CONNS; i++) {
        writers[i] = (struct conn){.kind = K_WRITER, .fd = dial(0), .busy = -1};
        fcntl(writers[i].fd, F_SETFL, O_NONBLOCK);
        add(&writers[i], EPOLLIN);
    }
    long total = (long)(o.rate * o.seconds), max = (long)o.codes * o.writers, next = 0;
    if (total > max) total = max;
    double t0 = now_s(), end = t0 + o.seconds + 5;
    uint64_t f0 = frames;
    while (now_s() < end && (next < total || acks < (uint64_t)total || scan_msgs < (uint64_t)total * open_clients)) {
        double t = now_s();
        for (int i = 0; i < WRITER_CONNS && next < total && t >= t0 + next / o.rate; i++)
            if (writers[i].busy < 0) send_scan(&writers[i], next++, t);
        loop_once(1);
    }
    *elapsed = now_s() - t0;
    frames -= f0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a write to a connection the server closed: EPIPE */
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--port")) o.port = atoi(v);
        else if (!strcmp(a, "--pid")) o.pid = atoi(v);
        else if (!strcmp(a, "--key")) o.key = v;
        else if (!strcmp(a, "--clients")) o.clients = atoi(v);
        else if (!strcmp(a, "--rate")) o.rate = atof(v);
        else if (!strcmp(a, "--seconds")) o.seconds = atof(v);
        else if (!strcmp(a, "--writers")) o.writers = atoi(v);
        else if (!strcmp(a, "--codes")) o.codes = atoi(v);
        else if (!strcmp(a, "--hunt")) o.hunt = v;
        else if (!strcmp(a, "--client-ports")) {
            for (const char *p = v; *p && o.n_client_ports < 16;) {
                o.client_ports[o.n_client_ports++] = atoi(p);
                p += strcspn(p, ",");
                p += *p == ',';
            }
        }
        else die("unknown option (see the comment at the top of bench/livebench.c)");
    }
    if (!o.port || !o.key || o.clients < 1 || o.rate <= 0 || o.writers < 1 || o.codes < 1)
        die("usage: bench_livebench --port P --key ADMIN_KEY [--pid PID] [--clients N] ...");
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl)) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    setup();
    size_t ev_max = (size_t)o.codes * (size_t)o.writers;
    t_send = calloc(ev_max, sizeof *t_send);
    t_ack = calloc(ev_max, sizeof *t_ack);
    if ((ep = epoll_create1(0)) < 0) die("epoll_create1");
    long rss0 = rss_kb();
    connect_all();
    double idle_until = now_s() + 1.0;
    while (now_s() < idle_until) loop_once(50);
    long rss1 = rss_kb();
    double elapsed;
    run_load(&elapsed);
    /* receipts before their ack was read used -1e9: count them as ack->recv 0 */
    for (size_t i = 0; i < n_lat; i++)
        if (lat_ack[i] < -1e8) lat_ack[i] = 0;
    qsort(lat_send, n_lat, sizeof *lat_send, cmp);
    qsort(lat_ack, n_lat, sizeof *lat_ack, cmp);
    double per_conn = rss0 > 0 && rss1 > 0 ? (double)(rss1 - rss0) * 1024 / o.clients : -1;
    double rate = frames / elapsed;
    printf("livebench: %d clients, %llu scans acknowledged (%llu errors) at %.0f/s target\n",
           o.clients, (unsigned long long)acks, (unsigned long long)ack_errors, o.rate);
    printf("  delivered %llu text messages in %.2f s: %.0f/s (%llu scan events matched, "
           "%llu clients closed by the server)\n",
           (unsigned long long)frames, elapsed, rate, (unsigned long long)scan_msgs,
           (unsigned long long)closed_clients);
    printf("  latency send->recv p50 %.2f ms p99 %.2f ms max %.2f ms; ack->recv p50 %.2f ms "
           "p99 %.2f ms max %.2f ms\n",
           pct(lat_send, n_lat, .5), pct(lat_send, n_lat, .99), pct(lat_send, n_lat, 1),
           pct(lat_ack, n_lat, .5), pct(lat_ack, n_lat, .99), pct(lat_ack, n_lat, 1));
    printf("  server VmRSS %ld kB before the clients, %ld kB with them idle: %.0f bytes per "
           "connection\n", rss0, rss1, per_conn);
    printf("RESULT clients=%d deliveries_per_s=%.0f send_p50_ms=%.2f send_p99_ms=%.2f "
           "ack_p50_ms=%.2f ack_p99_ms=%.2f bytes_per_conn=%.0f closed=%llu acks=%llu errors=%llu\n",
           o.clients, rate, pct(lat_send, n_lat, .5), pct(lat_send, n_lat, .99),
           pct(lat_ack, n_lat, .5), pct(lat_ack, n_lat, .99), per_conn,
           (unsigned long long)closed_clients, (unsigned long long)acks,
           (unsigned long long)ack_errors);
    return ack_errors || closed_clients ? 1 : 0;
}
