/* bench/gen_log.c — writes a big /log export (JSON lines, the `veltrix audit --log` format
 * of API.md "Fairness evidence") for the audit benchmark (bench/audit.sh).
 *
 *   build/bench_gen_log FILE [events=10000000] [players=events/10]
 *
 * One hunt "audit": the benchmark definition's 1,000 codes plus a zone "z" with a chest
 * range as large as needed. Players, round-robin, alternate a scan of their next code and
 * an open in "z"; every event is decided and applied by the engine (so the chain, draws,
 * points and loot are the real ones), and the first line carries the seed and the exact
 * definition text (a hunt whose seed is revealed). Prints the head seq and hash. */
#include <inttypes.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_hunt.h"
#include "engine.h"
#include "uuid.h"
#include "vx.h"

static void fail(const char *what)
{
    fprintf(stderr, "bench_gen_log: %s\n", what);
    exit(1);
}

/* The benchmark definition with a zone of `chests` range chests. Malloc'd. */
static char *definition(uint64_t chests)
{
    char *base = bench_definition("audit"), *s;
    size_t n = strlen(base);
    if (!base || !(s = malloc(n + 256))) fail("out of memory");
    memcpy(s, base, n - 1); /* without the closing brace */
    snprintf(s + n - 1, 256,
             ",\"zones\":[{\"id\":\"z\",\"x\":0,\"y\":0,\"w\":8,\"h\":8,\"chest_range\":"
             "{\"prefix\":\"r\",\"count\":%" PRIu64 ",\"points\":3,\"loot\":[\"coin\"]}}]}",
             chests);
    free(base);
    return s;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static void define_line(FILE *f, const char *def, const struct engine_outcome *o, int64_t t)
{
    char at[32], h[65], sha_hex[65], seed_hex[65];
    uint8_t sha[32], cm[32];
    SHA256((const uint8_t *)def, strlen(def), sha);
    SHA256(BENCH_SEED, 32, cm);
    hex(sha, 32, sha_hex);
    hex(o->hash, 32, h);
    hex(BENCH_SEED, 32, seed_hex);
    char cm_hex[65];
    hex(cm, 32, cm_hex);
    vx_time_format(t, at);
    json_t *text = json_string(def);
    char *quoted = json_dumps(text, JSON_ENCODE_ANY);
    json_t *d = json_loads(def, 0, NULL);
    char *pub = json_dumps(d, JSON_COMPACT);
    fprintf(f,
            "{\"seq\":1,\"type\":\"hunt_updated\",\"at\":\"%s\",\"draw_rule\":1,"
            "\"definition_sha256\":\"%s\",\"definition\":%s,\"definition_text\":%s,"
            "\"seed_commitment\":\"%s\",\"seed\":\"%s\",\"hash\":\"%s\"}\n",
            at, sha_hex, pub, quoted, cm_hex, seed_hex, h);
    free(quoted);
    free(pub);
    json_decref(text);
    json_decref(d);
}

static void play_line(FILE *f, const struct event *ev, const struct engine_outcome *o)
{
    char at[32], h[65], id[37];
    vx_time_format(ev->time_ms, at);
    hex(o->hash, 32, h);
    uuid_format(ev->player, id);
    if (ev->type == EVENT_SCAN)
        fprintf(f, "{\"seq\":%" PRIu64 ",\"type\":\"scan\",\"at\":\"%s\",\"player\":\"%s\","
                   "\"display_name\":\"p\",\"code\":\"%s\",\"points\":%" PRId64 ",\"hash\":\"%s\"}\n",
                ev->seq, at, id, ev->u.scan.code, o->points, h);
    else
        fprintf(f, "{\"seq\":%" PRIu64 ",\"type\":\"chest_opened\",\"at\":\"%s\",\"player\":\"%s\","
                   "\"display_name\":\"p\",\"zone\":\"z\",\"chest\":\"%s\",\"points\":%" PRId64
                   ",\"loot\":[\"coin\"],\"hash\":\"%s\"}\n",
                ev->seq, at, id, ev->u.open.chest, o->points, h);
}

int main(int argc, char **argv)
{
    if (argc < 2) fail("usage: bench_gen_log FILE [events] [players]");
    uint64_t events = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000000;
    uint32_t players = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : (uint32_t)(events / 10 + 1);
    FILE *f = fopen(argv[1], "w");
    if (!f || events < 2) fail("cannot write the file");
    char *def = definition(events), err[256];
    struct hunt *h = engine_hunt_create("audit");
    struct event ev;
    struct engine_outcome o;
    int64_t t = 1796115600000LL;
    if (engine_define(h, def, strlen(def), BENCH_SEED, t, &ev, err, sizeof err) ||
        engine_apply(h, &ev, &o, err, sizeof err))
        fail(err);
    define_line(f, def, &o, t);
    for (uint64_t i = 1; i < events; i++) {
        uint32_t p = (uint32_t)((i - 1) % players);
        uint64_t round = (i - 1) / players;
        uint8_t id[16];
        char code[16];
        bench_player_id(id, p);
        snprintf(code, sizeof code, "c%u", (unsigned)(round / 2 % BENCH_CODES));
        int rc = round % 2 == 0 ? engine_scan(h, id, code, t + (int64_t)i, &ev)
                                : engine_open(h, id, "z", t + (int64_t)i, &ev);
        if (rc || engine_apply(h, &ev, &o, err, sizeof err)) fail("an event the engine refused");
        play_line(f, &ev, &o);
    }
    char hh[65];
    uint8_t head[32];
    engine_head_hash(h, head);
    hex(head, 32, hh);
    printf("head: seq %" PRIu64 " hash %s\n", engine_seq(h), hh);
    if (fclose(f)) fail("cannot write the file");
    engine_hunt_destroy(h);
    free(def);
    return 0;
}
