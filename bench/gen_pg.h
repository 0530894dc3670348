/* gen_pg.h — bench_gen_store's fast loader for a PostgreSQL store: rows of
 * veltrix.events and veltrix.players by COPY ... FROM STDIN in binary format, on a libpq
 * connection of its own. Header-only, included by gen_store.c after its fail().
 *
 * The rows are the ones src/store_pg.c's put statements write (the same columns, types
 * and values: hunt text, seq/time_ms int8, type smallint, player/data bytea; players id
 * bytea, display_name text, created_ms/gen int8); only the way in differs (COPY instead
 * of one INSERT per row). Each COPY is one transaction (autocommit), ended by
 * pg_copy_end. Invariant: at most one COPY is open; rows go out in 1 MB messages. */
#ifndef VELTRIX_BENCH_GEN_PG_H
#define VELTRIX_BENCH_GEN_PG_H
#include <endian.h>
#include <libpq-fe.h>

#define PG_COPY_TXN_ROWS 1000000u /* events per COPY (one transaction each) */
#define PG_COPY_BUF (1u << 20)

enum pg_copy_table { PG_COPY_EVENTS, PG_COPY_PLAYERS };

struct pg_copy {
    PGconn *c;
    char *buf;
    size_t len;
};

static const char *const PG_COPY_SQL[] = {
    [PG_COPY_EVENTS] = "COPY veltrix.events(hunt,seq,time_ms,type,player,data) FROM STDIN "
                       "(FORMAT binary)",
    [PG_COPY_PLAYERS] = "COPY veltrix.players(id,display_name,created_ms,gen) FROM STDIN "
                        "(FORMAT binary)",
};

static void pg_copy_fail(struct pg_copy *k, const char *what)
{
    fprintf(stderr, "bench_gen_store: %s: %s", what, PQerrorMessage(k->c));
    exit(1);
}

static void pg_copy_flush(struct pg_copy *k)
{
    if (k->len && PQputCopyData(k->c, k->buf, (int)k->len) != 1) pg_copy_fail(k, "COPY data");
    k->len = 0;
}

static void pg_copy_raw(struct pg_copy *k, const void *p, size_t n)
{
    if (k->len + n > PG_COPY_BUF) pg_copy_flush(k);
    memcpy(k->buf + k->len, p, n);
    k->len += n;
}

static void pg_copy_u16(struct pg_copy *k, uint16_t v)
{
    v = htobe16(v);
    pg_copy_raw(k, &v, 2);
}

static void pg_copy_u32(struct pg_copy *k, uint32_t v)
{
    v = htobe32(v);
    pg_copy_raw(k, &v, 4);
}

/* One field: its length, then its bytes. */
static void pg_copy_field(struct pg_copy *k, const void *p, size_t n)
{
    pg_copy_u32(k, (uint32_t)n);
    pg_copy_raw(k, p, n);
}

static void pg_copy_int8(struct pg_copy *k, int64_t v)
{
    uint64_t b = htobe64((uint64_t)v);
    pg_copy_field(k, &b, 8);
}

static struct pg_copy *pg_copy_open(const char *url)
{
    struct pg_copy *k = calloc(1, sizeof *k);
    if (!k || !(k->buf = malloc(PG_COPY_BUF))) fail("out of memory");
    k->c = PQconnectdb(url);
    if (PQstatus(k->c) != CONNECTION_OK) pg_copy_fail(k, "connect");
    return k;
}

static void pg_copy_start(struct pg_copy *k, enum pg_copy_table t)
{
    static const char head[19] = "PGCOPY\n\377\r\n\0"; /* signature, flags 0, no extension */
    PGresult *r = PQexec(k->c, PG_COPY_SQL[t]);
    if (PQresultStatus(r) != PGRES_COPY_IN) pg_copy_fail(k, "COPY");
    PQclear(r);
    pg_copy_raw(k, head, sizeof head);
}

static void pg_copy_end(struct pg_copy *k)
{
    pg_copy_u16(k, 0xffff); /* the trailer */
    pg_copy_flush(k);
    if (PQputCopyEnd(k->c, NULL) != 1) pg_copy_fail(k, "COPY end");
    PGresult *r = PQgetResult(k->c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_copy_fail(k, "COPY");
    PQclear(r);
    while ((r = PQgetResult(k->c))) PQclear(r);
}

static void pg_copy_event(struct pg_copy *k, const struct store_event *ev)
{
    uint16_t type = htobe16(ev->type);
    pg_copy_u16(k, 6);
    pg_copy_field(k, ev->hunt, strlen(ev->hunt));
    pg_copy_int8(k, (int64_t)ev->seq);
    pg_copy_int8(k, ev->time_ms);
    pg_copy_field(k, &type, 2);
    pg_copy_field(k, ev->player, 16);
    pg_copy_field(k, ev->data, ev->data_len);
}

static void pg_copy_player(struct pg_copy *k, const struct store_player *p)
{
    pg_copy_u16(k, 4);
    pg_copy_field(k, p->id, 16);
    pg_copy_field(k, p->display_name, strlen(p->display_name));
    pg_copy_int8(k, p->created_ms);
    pg_copy_int8(k, p->gen);
}

/* VACUUM ANALYZE (hint bits set, visibility map, statistics) and a CHECKPOINT (needs a
 * superuser or pg_checkpoint: skipped with a note otherwise). */
static void pg_copy_settle(struct pg_copy *k)
{
    double t = now_s();
    PGresult *r = PQexec(k->c, "VACUUM (ANALYZE) veltrix.events, veltrix.players");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_copy_fail(k, "VACUUM");
    PQclear(r);
    double tv = now_s() - t;
    r = PQexec(k->c, "CHECKPOINT");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    printf("VACUUM ANALYZE %.1f s, CHECKPOINT %s %.1f s\n", tv, ok ? "done in" : "refused after",
           now_s() - t - tv);
}

static void pg_copy_close(struct pg_copy *k)
{
    PQfinish(k->c);
    free(k->buf);
    free(k);
}

#endif
