/* store_pg.c — the PostgreSQL store: "postgres://..." (or "postgresql://..."), a libpq
 * connection URI, with the same rows and the same answers as store_sqlite.c.
 *
 * Schema: the tables live in their own schema, `veltrix`; veltrix.schema_version holds one
 * row per applied step of MIGRATIONS[] (append only), walked forward at open under an
 * advisory lock so that several nodes starting at once migrate once. A store that is
 * already current is only read (no DDL, no lock). Strings that are ids (hunts) are
 * `text COLLATE "C"` (byte order, as SQLite's); strings that are opaque bytes
 * (idempotency scopes and keys, tile content types) are bytea, so that no input can make
 * a write fail on encoding and wedge the log writer.
 *
 * Writes: a store_begin..store_commit batch is sent in libpq's pipeline mode. BEGIN, every
 * put and COMMIT go out as prepared statements without waiting for their answers (libpq
 * flushes every 64 KB); store_commit adds the one sync and then reads every answer, so a
 * batch costs one round trip, not one per row. The first error of the batch decides:
 * 23505 (a (hunt, seq) that is taken) is STORE_ECONFLICT, anything else STORE_EIO; either
 * way the transaction is rolled back and nothing of the batch stays. A conflict is thus
 * reported by store_commit rather than by the store_put_event that caused it. A read on
 * the same handle inside a batch first settles the pipeline (sync, answers read) and then
 * runs inside the open transaction, seeing its rows, as with SQLite. Outside a batch a
 * put is its own transaction. synchronous_commit is raised to on when the server has it
 * off, whatever --fsync says: a COMMIT that answered is durable.
 *
 * Reads: walks go by pages of keyset queries (ORDER BY the key, LIMIT), each page read
 * whole, so that memory stays bounded and a callback may query the same handle (recovery
 * reads a hunt's snapshot and log from inside store_each_hunt).
 *
 * Snapshots: their own transaction, outside store_begin/store_commit. On a handle that is
 * inside a batch they go through a second connection opened on first need; in PostgreSQL
 * writing one locks one row of veltrix.snapshots and never holds up appends.
 *
 * Passwords: no message carries a password of the URL. URLs are shown with the password
 * replaced by "***" (store_url_redact(), store.c); libpq's own messages go through scrub(),
 * which removes the password libpq parsed, and when they are about the URL (it does not
 * parse, or no connection was made with it) through scrub_url_msg(), which keeps only the
 * quoted fragments that the redacted URL shows (a URL libpq misreads, a password with a
 * bare '/', puts pieces of the password in them).
 *
 * Outages: no thread ever waits on the server without a bound. Connections are
 * non-blocking and every wait for an answer is await()'s poll, at most veltrix_timeout_ms
 * (a parameter of the URL that veltrix takes out before libpq sees it; default 15 s,
 * store_ping 2 s); past it the connection is given up (its socket shut down). TCP
 * keepalives and tcp_user_timeout are set too (the URL may override them), and the server
 * ends a session of ours left silent inside a transaction (idle_in_transaction_session_
 * timeout), so that a partitioned session never holds its locks for long. A lost
 * connection is made again on a thread of its own (struct redial): meanwhile every call
 * on the handle fails at once with STORE_EIO, whichever thread makes it (the event loop's
 * reader: /healthz, an idempotency key evicted early, a live catch-up page), and the next
 * call after it is ready picks it up. Attempts back off exponentially (100 ms doubling to
 * 5 s) and failures are logged once per 10 s. Before it is handed over, the new connection
 * ends the lost one's server session and waits until it is gone (pg_terminate_backend
 * with a timeout, matched on PID and start time): a COMMIT that was sent on it has then
 * committed or rolled back for good, so the log's read-back of a commit in doubt (log.c)
 * is final, never a race with a transaction still open.
 *
 * Invariants: s->conn is NULL or non-blocking; a batch (in_txn) never reconnects, it
 * fails whole (txn_err) and the caller retries it; only the thread using a handle touches
 * it, its redial shares nothing with it but the struct redial under its mutex.
 *
 * Not yet: no ownership (store_lock is NULL: two servers on one database would both
 * write; the log's read-back then stops the process when it sees the other's rows). */
#include "store_int.h"
#include "vx.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#define STR_(x) #x
#define STR(x) STR_(x)

#define PG_VERSION_MIN 150000 /* pipeline mode needs 14; tested on 15 */
#define PAGE_ROWS 4096        /* rows per page of a walk */
#define PAGE_MANIFESTS 16     /* map manifests per page (each up to megabytes) */
#define PAGE_BLOBS 16         /* blobs per page (a tile: up to a request body) */
#define MIGRATE_LOCK 8531344316514793473 /* advisory lock key: 0x76656c7472697801 */
#define TIMEOUT_MS_DEFAULT 15000          /* veltrix_timeout_ms: the longest wait for an answer */
#define PING_MS 2000                       /* store_ping waits no longer than this */
#define REDIAL_MIN_NS 100000000LL          /* the first reconnect's delay, doubling up to: */
#define REDIAL_MAX_NS 5000000000LL
#define REDIAL_SAY_NS 10000000000LL        /* failed reconnects are logged once per 10 s */

enum {
    Q_PUT_EVENT, Q_PUT_PLAYER, Q_PUT_REFRESH, Q_DROP_REFRESH, Q_USE_REFRESH, Q_PRUNE_REFRESH,
    Q_PUT_IDEM, Q_PRUNE_IDEM, Q_HUNTS, Q_EVENTS,
    Q_PLAYERS, Q_REFRESH, Q_IDEMS, Q_HUNT_IDEMS, Q_GET_IDEM, Q_PING, Q_PUT_BLOB, Q_GET_BLOB, Q_PUT_TILE,
    Q_PUT_MAPVER, Q_PRUNE_MAPVER, Q_TILES, Q_MAPVERS, Q_GET_MAPVER, Q_LAST_SEQ, Q_BLOBS,
    Q_GET_PLAYER, Q_OTHERS, Q_HEADS,
    Q_PUT_EVENTS, Q_MAX
};

static const char *const SQL[Q_MAX] = {
    [Q_PUT_EVENT] = "INSERT INTO veltrix.events(hunt,seq,time_ms,type,player,data,hash) "
                    "VALUES($1::text,$2::int8,$3::int8,$4::int8,$5::bytea,$6::bytea,$7::bytea)",
    [Q_PUT_PLAYER] = "INSERT INTO veltrix.players(id,display_name,created_ms,gen) "
                     "VALUES($1::bytea,$2::text,$3::int8,$4::int8) ON CONFLICT(id) DO UPDATE "
                     "SET display_name=excluded.display_name, gen=excluded.gen",
    /* A player's current refresh token is its only row (store.h store_put_refresh). */
    [Q_PUT_REFRESH] = "INSERT INTO veltrix.refresh(id,player,gen,expires_ms,used) "
                      "VALUES($1::bytea,$2::bytea,$3::int8,$4::int8,0) "
                      "ON CONFLICT(id) DO UPDATE SET player=excluded.player, gen=excluded.gen,"
                      " expires_ms=excluded.expires_ms, used=0",
    [Q_DROP_REFRESH] = "DELETE FROM veltrix.refresh WHERE player=$1::bytea AND id<>$2::bytea",
    [Q_USE_REFRESH] = "UPDATE veltrix.refresh SET used=1 WHERE id=$1::bytea",
    [Q_PRUNE_REFRESH] = "DELETE FROM veltrix.refresh WHERE id IN (SELECT id FROM "
                        "veltrix.refresh WHERE expires_ms<$1::int8 LIMIT "
                        STR(STORE_PRUNE_REFRESH_MAX) ")",
    [Q_PUT_IDEM] = "INSERT INTO veltrix.idem(scope,key,req_hash,status,body,created_ms,hunt) "
                   "VALUES($1::bytea,$2::bytea,$3::bytea,$4::int8,$5::bytea,$6::int8,$7::text) "
                   "ON CONFLICT(scope,key) DO UPDATE SET req_hash=excluded.req_hash, "
                   "status=excluded.status, body=excluded.body, created_ms=excluded.created_ms, "
                   "hunt=excluded.hunt",
    [Q_PRUNE_IDEM] = "DELETE FROM veltrix.idem WHERE (scope,key) IN (SELECT scope,key FROM "
                     "veltrix.idem WHERE created_ms<$1::int8 LIMIT " STR(STORE_PRUNE_IDEM_MAX) ")",
    /* DISTINCT would read every event: this walks the primary key hunt by hunt. */
    [Q_HUNTS] = "WITH RECURSIVE h(hunt) AS (SELECT min(hunt) FROM veltrix.events UNION ALL "
                "SELECT (SELECT min(e.hunt) FROM veltrix.events e WHERE e.hunt>h.hunt) FROM h "
                "WHERE h.hunt IS NOT NULL) SELECT hunt FROM h WHERE hunt IS NOT NULL",
    [Q_EVENTS] = "SELECT seq,time_ms,type,player,data,hash FROM veltrix.events "
                 "WHERE hunt=$1::text AND seq>=$2::int8 ORDER BY seq LIMIT $3::int8",
    [Q_PLAYERS] = "SELECT id,display_name,created_ms,gen FROM veltrix.players "
                  "WHERE id>$1::bytea ORDER BY id LIMIT $2::int8",
    [Q_REFRESH] = "SELECT id,player,gen,expires_ms,used FROM veltrix.refresh "
                  "WHERE expires_ms>$1::int8 AND id>$2::bytea ORDER BY id LIMIT $3::int8",
    [Q_IDEMS] = "SELECT scope,key,req_hash,status,body,created_ms FROM veltrix.idem "
                "WHERE created_ms>=$1::int8 AND (created_ms,scope,key)>($2::int8,$3::bytea,"
                "$4::bytea) ORDER BY created_ms,scope,key LIMIT $5::int8",
    [Q_HUNT_IDEMS] = "SELECT scope,key,req_hash,status,body,created_ms FROM veltrix.idem "
                     "WHERE hunt=$1::text AND created_ms>=$2::int8 AND (created_ms,scope,key)>"
                     "($3::int8,$4::bytea,$5::bytea) ORDER BY created_ms,scope,key LIMIT $6::int8",
    [Q_GET_IDEM] = "SELECT scope,key,req_hash,status,body,created_ms FROM veltrix.idem "
                   "WHERE scope=$1::bytea AND key=$2::bytea",
    [Q_PING] = "SELECT 1",
    [Q_OTHERS] = "SELECT count(*)::int8 FROM pg_stat_activity WHERE datname=current_database() "
                 "AND application_name='veltrix' AND pid<>pg_backend_pid()",
    [Q_PUT_BLOB] = "INSERT INTO veltrix.blobs(hash,data) VALUES($1::bytea,$2::bytea) "
                   "ON CONFLICT(hash) DO NOTHING",
    [Q_GET_BLOB] = "SELECT data FROM veltrix.blobs WHERE hash=$1::bytea",
    [Q_PUT_TILE] = "INSERT INTO veltrix.draft_tiles(hunt,x,y,hash,ctype) "
                   "VALUES($1::text,$2::int8,$3::int8,$4::bytea,$5::bytea) ON CONFLICT(hunt,x,y) "
                   "DO UPDATE SET hash=excluded.hash, ctype=excluded.ctype",
    [Q_PUT_MAPVER] = "INSERT INTO veltrix.map_versions(hunt,version,manifest) "
                     "VALUES($1::text,$2::int8,$3::bytea) ON CONFLICT(hunt,version) "
                     "DO UPDATE SET manifest=excluded.manifest",
    [Q_PRUNE_MAPVER] = "DELETE FROM veltrix.map_versions WHERE hunt=$1::text AND version<$2::int8",
    [Q_TILES] = "SELECT hunt,x,y,hash,ctype FROM veltrix.draft_tiles "
                "WHERE (hunt,x,y)>($1::text,$2::int8,$3::int8) ORDER BY hunt,x,y LIMIT $4::int8",
    [Q_MAPVERS] = "SELECT hunt,version,manifest FROM veltrix.map_versions "
                  "WHERE (hunt,version)>($1::text,$2::int8) ORDER BY hunt,version LIMIT $3::int8",
    [Q_GET_MAPVER] = "SELECT hunt,version,manifest FROM veltrix.map_versions "
                     "WHERE hunt=$1::text AND version=$2::int8",
    [Q_LAST_SEQ] = "SELECT coalesce(max(seq),0)::int8 FROM veltrix.events WHERE hunt=$1::text",
    /* One backward index probe per hunt ((hunt, seq) is the key), in the array's order. */
    [Q_HEADS] = "SELECT (SELECT coalesce(max(seq),0) FROM veltrix.events "
                "WHERE hunt=t.h COLLATE \"C\")::int8 "
                "FROM unnest($1::text[]) WITH ORDINALITY AS t(h,i) ORDER BY t.i",
    [Q_BLOBS] = "SELECT hash,data FROM veltrix.blobs WHERE hash>$1::bytea ORDER BY hash "
                "LIMIT $2::int8",
    [Q_GET_PLAYER] = "SELECT id,display_name,created_ms,gen FROM veltrix.players "
                     "WHERE id=$1::bytea",
    /* A batch's events in one statement: seven binary arrays, one per column (ev_flush). */
    [Q_PUT_EVENTS] = "INSERT INTO veltrix.events(hunt,seq,time_ms,type,player,data,hash) "
                     "SELECT * FROM unnest($1::text[],$2::int8[],$3::int8[],$4::int2[],"
                     "$5::bytea[],$6::bytea[],$7::bytea[])",
};

/* Snapshots run unprepared (rare; and possibly on the second connection). */
static const char PUT_SNAPSHOT[] =
    "INSERT INTO veltrix.snapshots(hunt,seq,data) VALUES($1::text,$2::int8,$3::bytea) "
    "ON CONFLICT(hunt) DO UPDATE SET seq=excluded.seq, data=excluded.data";
static const char GET_SNAPSHOT[] = "SELECT seq,data FROM veltrix.snapshots WHERE hunt=$1::text";
static const char DELETE_SNAPSHOT[] = "DELETE FROM veltrix.snapshots WHERE hunt=$1::text";

/* Step i takes the schema from version i to i+1, inside the migration's transaction.
 * Append only; never edit a shipped step. */
static const char *const MIGRATIONS[] = {
    "CREATE TABLE veltrix.events(hunt text COLLATE \"C\" NOT NULL, seq bigint NOT NULL,"
    " time_ms bigint NOT NULL, type smallint NOT NULL, player bytea NOT NULL,"
    " data bytea NOT NULL, PRIMARY KEY(hunt, seq));"
    "CREATE TABLE veltrix.players(id bytea PRIMARY KEY, display_name text NOT NULL,"
    " created_ms bigint NOT NULL, gen bigint NOT NULL);"
    "CREATE TABLE veltrix.refresh(id bytea PRIMARY KEY, player bytea NOT NULL,"
    " gen bigint NOT NULL, expires_ms bigint NOT NULL, used smallint NOT NULL);"
    "CREATE TABLE veltrix.idem(scope bytea NOT NULL, key bytea NOT NULL,"
    " req_hash bytea NOT NULL, status integer NOT NULL, body bytea NOT NULL,"
    " created_ms bigint NOT NULL, PRIMARY KEY(scope, key));"
    "CREATE INDEX idem_created ON veltrix.idem(created_ms, scope, key);"
    "CREATE TABLE veltrix.snapshots(hunt text COLLATE \"C\" PRIMARY KEY, seq bigint NOT NULL,"
    " data bytea NOT NULL);"
    "CREATE TABLE veltrix.blobs(hash bytea PRIMARY KEY, data bytea NOT NULL);"
    "CREATE TABLE veltrix.draft_tiles(hunt text COLLATE \"C\" NOT NULL, x bigint NOT NULL,"
    " y bigint NOT NULL, hash bytea NOT NULL, ctype bytea NOT NULL, PRIMARY KEY(hunt, x, y));"
    "CREATE TABLE veltrix.map_versions(hunt text COLLATE \"C\" NOT NULL,"
    " version bigint NOT NULL, manifest bytea NOT NULL, PRIMARY KEY(hunt, version));",
    /* One refresh row per player (its current token): found by player, pruned by expiry. */
    "CREATE INDEX refresh_player ON veltrix.refresh(player);"
    "CREATE INDEX refresh_expires ON veltrix.refresh(expires_ms);"
    "DELETE FROM veltrix.refresh r WHERE used<>0 OR EXISTS (SELECT 1 FROM veltrix.refresh n"
    " WHERE n.player=r.player AND n.used=0 AND n.id>r.id);",
    /* Several nodes: membership and hunt leases (store.h), stamped by the server's clock. */
    "CREATE TABLE veltrix.nodes(node_id text COLLATE \"C\" PRIMARY KEY, advertise text NOT NULL,"
    " heartbeat_at timestamptz NOT NULL, draining boolean NOT NULL);"
    "CREATE TABLE veltrix.hunt_leases(hunt text COLLATE \"C\" PRIMARY KEY,"
    " owner text COLLATE \"C\" NOT NULL, epoch bigint NOT NULL, expires_at timestamptz NOT NULL);",
    /* The hash chain (engine.h): each event's link; NULL in rows written before it. */
    "ALTER TABLE veltrix.events ADD COLUMN hash bytea;",
    /* Several nodes: the secret they share (store_cluster_secret), one row. */
    ("CREATE TABLE veltrix.cluster_secret(id int PRIMARY KEY CHECK (id = 1),"
     " secret bytea NOT NULL CHECK (length(secret) = 32));"),
    /* Several nodes: the fence of a batch (store_event.epoch), run inside its transaction
     * before its events are inserted. Each hunt's lease row is read FOR SHARE: a takeover's UPDATE of it
     * waits for this transaction, or this one waits for the takeover and then reads its new
     * epoch; a batch never commits under an epoch that is no longer its hunt's. */
    "CREATE FUNCTION veltrix.fence(hunts text[], epochs int8[]) RETURNS void"
    " LANGUAGE plpgsql AS $f$ DECLARE cur int8; bad text[] := '{}'; BEGIN"
    " FOR i IN 1 .. coalesce(array_length(hunts, 1), 0) LOOP"
    " SELECT epoch INTO cur FROM veltrix.hunt_leases WHERE hunt = hunts[i] FOR SHARE;"
    " IF cur IS DISTINCT FROM epochs[i] THEN bad := bad || hunts[i]; END IF; END LOOP;"
    " IF cardinality(bad) > 0 THEN RAISE EXCEPTION USING ERRCODE = 'VXF01',"
    " MESSAGE = 'fenced: the lease of a hunt of this batch moved',"
    " DETAIL = array_to_string(bad, ' '); END IF; END $f$;",
    /* Several nodes: a hunt's idempotency records go with the hunt to its next owner
     * (store_each_idem_of_hunt); NULL in rows of other writes and of older versions. */
    "ALTER TABLE veltrix.idem ADD COLUMN hunt text COLLATE \"C\";"
    "CREATE INDEX idem_hunt ON veltrix.idem(hunt, created_ms) WHERE hunt IS NOT NULL;",
};
#define SCHEMA_VERSION ((int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0])))

#define PG(base) ((struct pg *)(base))
struct buf {
    char *p;
    size_t len, cap;
};

static int buf_put(struct buf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            free(b->p);
            *b = (struct buf){0};
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

/* A field of COPY's binary format: its length (int32), then its bytes. */
static int buf_field(struct buf *b, const void *data, size_t n)
{
    uint32_t len = htobe32((uint32_t)n);
    return n > INT32_MAX || buf_put(b, &len, 4) ? -1 : buf_put(b, data, n);
}

static int buf_int(struct buf *b, uint64_t v, size_t bytes) /* int8 or int2, big-endian */
{
    uint64_t v64 = htobe64(v);
    uint16_t v16 = htobe16((uint16_t)v);
    return bytes == 8 ? buf_field(b, &v64, 8) : buf_field(b, &v16, 2);
}

struct pg {
    struct store base; /* first: store.c dispatches through it */
    PGconn *conn;
    PGconn *side;      /* snapshots during a batch; opened on first need */
    char *url;         /* as given: libpq reconnects with it */
    char *password;    /* what scrub() removes from messages (NULL: none) */
    int in_txn;        /* between store_begin and store_commit/store_rollback */
    int txn_err;       /* the batch's first error (it will not commit) */
    int timeout_ms;    /* the longest wait for an answer (veltrix_timeout_ms) */
    int pid;           /* conn's server session: its PID and start time */
    char started[64];
    int old_pid;       /* the session of the connection lost (0: none), ended by the next */
    char old_started[64];
    struct redial *redial;    /* a reconnection under way (NULL: none) */
    int64_t redial_ns;        /* none starts before this */
    int64_t backoff_ns, said_ns;
    unsigned redials;         /* attempts since the connection was lost */
    /* The batch's fence: its distinct (hunt, epoch != 0), checked before its events are inserted. */
    struct fence {
        char (*hunt)[VX_ID_MAX + 1];
        uint64_t *epoch;
        size_t n, cap;
    } fence;
    /* The batch's events, column by column as the elements of binary arrays (a 20-byte
     * header is left free at the front of each), sent as one INSERT before the fence and
     * COMMIT (ev_flush). */
    struct buf ev_col[7];
    size_t ev_n;
    char *fenced_text;   /* the hunts of the last fenced commit, split in place */
    const char **fenced; /* pointers into fenced_text */
    size_t n_fenced;
};

/* ---- messages without passwords ------------------------------------------------------ */

/* Replaces every occurrence of secret in msg by "***" (in place). */
static void cut(char *msg, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    char *hit, *from = msg;
    if (!n) return;
    size_t m = n < 3 ? n : 3; /* never longer than what it replaces */
    while ((hit = strstr(from, secret))) {
        memmove(hit + m, hit + n, strlen(hit + n) + 1);
        memset(hit, '*', m);
        from = hit + m; /* on after it (the stars may contain a secret of stars) */
    }
}

/* A message from libpq made one line, without the password. */
static void scrub(char *msg, const char *password)
{
    cut(msg, password);
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\t' || *c == '\r') *c = ' ';
    size_t n = strlen(msg);
    while (n && msg[n - 1] == ' ') msg[--n] = '\0';
    char *w = msg; /* squeeze runs of spaces */
    for (char *r = msg; *r; r++)
        if (*r != ' ' || w == msg || w[-1] != ' ') *w++ = *r;
    *w = '\0';
}

/* A message of libpq about url (it could not parse it, or not connect with it): libpq
 * quotes pieces of the URL, and when it misreads one (a bare '/' in a password) a piece of
 * the password may be among them. Only quoted fragments that the redacted URL `shown`
 * contains are kept; the others become "...". */
static void scrub_url_msg(const char *msg, const char *shown, const char *password, char *out,
                          size_t cap)
{
    char frag[256];
    size_t o = 0, f = 0;
    int quoted = 0;
    for (const char *r = msg; *r && o + 6 < cap; r++) {
        if (*r == '"' && quoted) {
            frag[f] = '\0';
            int keep = f < sizeof frag - 1 && f > 0 && strstr(shown, frag);
            o += (size_t)snprintf(out + o, cap - o, "\"%s\"", keep ? frag : "...");
            quoted = 0;
        } else if (*r == '"') {
            quoted = 1;
            f = 0;
        } else if (quoted) {
            if (f < sizeof frag - 1) frag[f++] = *r;
        } else {
            out[o++] = *r;
        }
    }
    out[o < cap ? o : cap - 1] = '\0';
    scrub(out, password);
}

static void say(const struct pg *s, const char *what, const char *msg)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", msg ? msg : "");
    scrub(buf, s->password);
    fprintf(stderr, "veltrix: postgres: %s: %s\n", what, buf);
}

/* ---- parameters and values ---------------------------------------------------------- */

/* Parameters of one statement: text for text columns, binary for everything else. */
struct args {
    int n;
    const char *val[7];
    int len[7], fmt[7];
    uint64_t num[7]; /* big-endian int8 */
};

static void arg_text(struct args *a, const char *s)
{
    a->val[a->n] = s;
    a->len[a->n] = 0;
    a->fmt[a->n++] = 0;
}

static void arg_bytes(struct args *a, const void *p, size_t len)
{
    a->val[a->n] = len ? (const char *)p : ""; /* NULL would be SQL NULL */
    a->len[a->n] = len > INT_MAX ? -1 : (int)len;
    a->fmt[a->n++] = 1;
}

static void arg_int(struct args *a, int64_t v)
{
    a->num[a->n] = htobe64((uint64_t)v);
    a->val[a->n] = (const char *)&a->num[a->n];
    a->len[a->n] = 8;
    a->fmt[a->n++] = 1;
}

static int args_ok(const struct args *a)
{
    for (int i = 0; i < a->n; i++)
        if (a->len[i] < 0) return 0;
    return 1;
}

/* An integer column in binary format (smallint, integer or bigint). */
static int64_t col_int(const PGresult *r, int row, int col)
{
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (PQgetlength(r, row, col)) {
    case 2: memcpy(&v16, v, 2); return (int16_t)be16toh(v16);
    case 4: memcpy(&v32, v, 4); return (int32_t)be32toh(v32);
    case 8: memcpy(&v64, v, 8); return (int64_t)be64toh(v64);
    }
    return INT64_MIN;
}

static const uint8_t *col_bytes(const PGresult *r, int row, int col, size_t *len)
{
    *len = (size_t)PQgetlength(r, row, col);
    return (const uint8_t *)PQgetvalue(r, row, col);
}

/* A bytea column of exactly n bytes into out. */
static int col_fixed(const PGresult *r, int row, int col, uint8_t *out, size_t n)
{
    if (PQgetisnull(r, row, col) || (size_t)PQgetlength(r, row, col) != n) return STORE_ECORRUPT;
    memcpy(out, PQgetvalue(r, row, col), n);
    return 0;
}

/* ---- connections ---------------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits until c has sent its output and has a whole result to give (or none pending):
 * 0; STORE_EIO when the connection failed; AWAIT_TIMEOUT after timeout_ms without that.
 * Every wait of this file is this one (the connection is non-blocking): a server or a
 * network that goes silent costs at most timeout_ms, never a hung thread. */
#define AWAIT_TIMEOUT (-1) /* await() only: never leaves this file */
static int await(PGconn *c, int timeout_ms)
{
    int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int f = PQflush(c);
        if (f < 0) return STORE_EIO;
        if (!f && !PQisBusy(c)) return 0;
        int64_t left = end - now_ns();
        if (left <= 0) return AWAIT_TIMEOUT;
        struct pollfd p = {PQsocket(c), (short)(POLLIN | (f ? POLLOUT : 0)), 0};
        int n = poll(&p, 1, (int)(left / 1000000) + 1);
        if (n < 0 && errno != EINTR) return STORE_EIO;
        if (n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(c))
            return STORE_EIO;
    }
}

/* The next result of c (PQgetResult), waiting at most timeout_ms. A connection that
 * gives no answer in time is shut down here (its socket is libpq's, still open): libpq
 * then sees it broken, this result is an error and the handle connects again. */
static PGresult *next_result(PGconn *c, int timeout_ms)
{
    if (await(c, timeout_ms) == AWAIT_TIMEOUT) {
        fprintf(stderr, "veltrix: postgres: no answer within %d ms: connection given up\n",
                timeout_ms);
        shutdown(PQsocket(c), SHUT_RDWR);
        PQconsumeInput(c);
    }
    return PQgetResult(c);
}

/* Sends one statement (sql with parameters a, or the prepared statement prep; sql
 * without a may hold several) and returns its last result, or the first error; NULL
 * when it could not be sent. PQexec's contract, with the wait bounded by timeout_ms. */
static PGresult *run(PGconn *c, int timeout_ms, const char *sql, const char *prep,
                     const struct args *a)
{
    int sent = prep  ? PQsendQueryPrepared(c, prep, a->n, a->val, a->len, a->fmt, 1)
               : a   ? PQsendQueryParams(c, sql, a->n, NULL, a->val, a->len, a->fmt, 1)
                     : PQsendQuery(c, sql);
    PGresult *last = NULL, *r;
    if (!sent) return NULL;
    while ((r = next_result(c, timeout_ms))) {
        if (last && PQresultStatus(last) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(last);
            last = r;
        }
    }
    return last;
}

/* Runs sql (no parameters, one or more statements); 0 or STORE_EIO with the message. */
static int exec(PGconn *c, int ms, const char *sql, const char *password, char *err,
                size_t errcap)
{
    PGresult *r = run(c, ms, sql, NULL, NULL);
    ExecStatusType st = PQresultStatus(r);
    int ok = r && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
    if (!ok) {
        snprintf(err, errcap, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        scrub(err, password);
    }
    PQclear(r);
    return ok ? 0 : STORE_EIO;
}

/* STORE_EIO with "what: <libpq's message>" in err. */
static int failed(PGconn *c, const char *what, const char *password, char *err, size_t errcap)
{
    snprintf(err, errcap, "%s: %s", what, PQerrorMessage(c));
    scrub(err, password);
    return STORE_EIO;
}

/* The first column of the one row sql returns, as text ("" when none). */
static int query_text(PGconn *c, int ms, const char *sql, char *out, size_t cap)
{
    PGresult *r = run(c, ms, sql, NULL, NULL);
    int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
    snprintf(out, cap, "%s", ok && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return ok ? 0 : STORE_EIO;
}

/* Notices ("schema already exists, skipping") are not errors: errors come as results. */
static void ignore_notice(void *arg, const char *message) {}

/* Connects to url; on failure a one-line message without the password. The connection
 * is non-blocking (every wait is await()'s) and has TCP keepalives and a TCP user timeout
 * of ms, so that a peer gone silent is noticed by the kernel too (the URL may set them
 * otherwise). Connecting itself is bounded by connect_timeout. */
static PGconn *connect_url(const char *url, int ms, const char *password, char *err,
                           size_t errcap)
{
    /* Defaults first: the URL may override them (libpq's expand_dbname order). */
    static const char *const keys[] = {"connect_timeout", "application_name", "client_encoding",
                                       "keepalives", "keepalives_idle", "keepalives_interval",
                                       "keepalives_count", "tcp_user_timeout", "dbname", NULL};
    char user_timeout[16];
    snprintf(user_timeout, sizeof user_timeout, "%d", ms);
    const char *vals[] = {"10", "veltrix", "UTF8", "1", "5", "2", "3", user_timeout, url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c && PQstatus(c) == CONNECTION_OK && PQsetnonblocking(c, 1) == 0) {
        PQsetNoticeProcessor(c, ignore_notice, NULL);
        return c;
    }
    char shown[512], why[512];
    store_url_redact(url, shown, sizeof shown);
    scrub_url_msg(c ? PQerrorMessage(c) : "out of memory", shown, password, why, sizeof why);
    snprintf(err, errcap, "cannot connect to %s: %s", shown, why);
    PQfinish(c);
    return NULL;
}

/* The message for a server older than PG_VERSION_MIN, naming both versions (v is
 * PQserverVersion's number); 0 when v is recent enough. */
static int version_err(int v, char *err, size_t errcap)
{
    if (v >= PG_VERSION_MIN) return 0;
    if (v >= 100000)
        snprintf(err, errcap, "PostgreSQL server version %d.%d is too old: veltrix needs %d or "
                 "newer", v / 10000, v % 10000, PG_VERSION_MIN / 10000);
    else
        snprintf(err, errcap, "PostgreSQL server version %d.%d.%d is too old: veltrix needs %d "
                 "or newer", v / 10000, v / 100 % 100, v % 100, PG_VERSION_MIN / 10000);
    return STORE_EIO;
}

/* Session settings: a COMMIT that answered must be durable; a session of ours that goes
 * silent inside a transaction (a stalled network) is ended by the server after ms, so
 * that it never holds its rows' locks for long (veltrix's own transactions never wait
 * for the client: a batch goes out whole). */
static int configure(PGconn *c, int ms, const char *password, char *err, size_t errcap)
{
    char sc[32], sql[96];
    if (query_text(c, ms, "SELECT current_setting('synchronous_commit')", sc, sizeof sc))
        return failed(c, "cannot read synchronous_commit", password, err, errcap);
    snprintf(sql, sizeof sql, "SET idle_in_transaction_session_timeout TO %d", ms);
    if (exec(c, ms, sql, password, err, errcap)) /* a safeguard: a server without it works */
        fprintf(stderr, "veltrix: postgres: idle_in_transaction_session_timeout not set: %s\n",
                err);
    if (strcmp(sc, "off")) return 0;
    return exec(c, ms, "SET synchronous_commit TO on", password, err, errcap);
}

static int schema_version(PGconn *c, int ms, int *version)
{
    char v[32];
    *version = 0;
    if (query_text(c, ms, "SELECT to_regclass('veltrix.schema_version') IS NOT NULL", v,
                   sizeof v))
        return STORE_EIO;
    if (strcmp(v, "t")) return 0;
    if (query_text(c, ms, "SELECT coalesce(max(version),0) FROM veltrix.schema_version", v,
                   sizeof v))
        return STORE_EIO;
    *version = atoi(v);
    return 0;
}

/* Walks the schema forward to SCHEMA_VERSION in one transaction, under an advisory lock
 * (another node may be doing the same). */
static int migrate(PGconn *c, int ms, const char *password, char *err, size_t errcap)
{
    int v, rc;
    if (schema_version(c, ms, &v))
        return failed(c, "cannot read the schema version", password, err, errcap);
    if (v == SCHEMA_VERSION) return 0;
    rc = exec(c, ms, "BEGIN; SELECT pg_advisory_xact_lock(" STR(MIGRATE_LOCK) ");"
                     "CREATE SCHEMA IF NOT EXISTS veltrix;"
                     "CREATE TABLE IF NOT EXISTS veltrix.schema_version(version integer "
                     "PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
              password, err, errcap);
    if (!rc && schema_version(c, ms, &v))
        rc = failed(c, "cannot read the schema version", password, err, errcap);
    if (!rc && v > SCHEMA_VERSION) {
        snprintf(err, errcap, "store schema version %d is newer than this binary's (%d)", v,
                 SCHEMA_VERSION);
        rc = STORE_ECORRUPT;
    }
    for (; !rc && v < SCHEMA_VERSION; v++) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO veltrix.schema_version(version) VALUES(%d)", v + 1);
        if (!(rc = exec(c, ms, MIGRATIONS[v], password, err, errcap)))
            rc = exec(c, ms, sql, password, err, errcap);
    }
    if (!rc) rc = exec(c, ms, "COMMIT", password, err, errcap);
    if (rc) PQclear(run(c, ms, "ROLLBACK", NULL, NULL));
    return rc;
}

#define FENCE_STATE "VXF01" /* veltrix.fence(): a hunt's lease moved (migration 6) */

/* Keeps the hunts a fence refused (the error's detail: their ids, space-separated) for
 * store_fenced_hunts. STORE_EFENCED, or STORE_EIO when out of memory. */
static int fenced(struct pg *s, const PGresult *r)
{
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    size_t n = 0, len = detail ? strlen(detail) : 0;
    char *text = malloc(len + 1);
    const char **list = malloc((len / 2 + 1) * sizeof *list);
    if (!text || !list) {
        free(text);
        free(list);
        return STORE_EIO;
    }
    memcpy(text, detail ? detail : "", len + 1);
    for (char *save = NULL, *t = strtok_r(text, " ", &save); t; t = strtok_r(NULL, " ", &save))
        list[n++] = t;
    free(s->fenced_text);
    free(s->fenced);
    s->fenced_text = text;
    s->fenced = list;
    s->n_fenced = n;
    return STORE_EFENCED;
}

static size_t pg_fenced_hunts(struct store *base, const char *const **hunts)
{
    struct pg *s = PG(base);
    *hunts = s->fenced;
    return s->n_fenced;
}

/* Reads the answers of a pipeline up to and including its sync: 0, or the first error
 * (STORE_ECONFLICT for 23505, STORE_EFENCED for the fence's, else STORE_EIO). */
static int drain(struct pg *s, PGconn *c)
{
    int rc = 0, nulls = 0;
    for (;;) {
        PGresult *r = next_result(c, s->timeout_ms);
        if (!r) {
            /* One NULL ends each statement's answers; two in a row: nothing is coming. */
            if (PQstatus(c) == CONNECTION_BAD || ++nulls > 1) return rc ? rc : STORE_EIO;
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return rc;
        }
        if (st == PGRES_FATAL_ERROR && !rc) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            rc = !state                     ? STORE_EIO
                 : !strcmp(state, "23505")  ? STORE_ECONFLICT
                 : !strcmp(state, FENCE_STATE) ? fenced(s, r)
                                            : STORE_EIO;
            if (rc == STORE_EIO) say(s, "write", PQresultErrorMessage(r));
        }
        PQclear(r);
    }
}

/* Prepares every statement in one round trip. */
static int prepare(struct pg *s, char *err, size_t errcap)
{
    char name[8];
    int rc = PQenterPipelineMode(s->conn) ? 0 : STORE_EIO;
    for (int i = 0; !rc && i < Q_MAX; i++) {
        snprintf(name, sizeof name, "q%d", i);
        if (!PQsendPrepare(s->conn, name, SQL[i], 0, NULL)) rc = STORE_EIO;
    }
    if (!rc && !PQpipelineSync(s->conn)) rc = STORE_EIO;
    if (!rc) rc = drain(s, s->conn);
    if (!PQexitPipelineMode(s->conn) && !rc) rc = STORE_EIO;
    if (rc) {
        snprintf(err, errcap, "cannot prepare statements: %s", PQerrorMessage(s->conn));
        scrub(err, s->password);
    }
    return rc;
}

/* A session's start time as text that no session setting (DateStyle, TimeZone) changes. */
#define STARTED "(extract(epoch FROM backend_start)*1000000)::int8::text"

/* Which server session s->conn is (its PID and start time), so that a later connection can end
 * it for sure (end_session). */
static void session_of(struct pg *s)
{
    PGresult *r = run(s->conn, s->timeout_ms,
                      "SELECT pg_backend_pid(), " STARTED " FROM pg_stat_activity "
                      "WHERE pid=pg_backend_pid()", NULL, NULL);
    s->pid = 0;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        s->pid = atoi(PQgetvalue(r, 0, 0));
        snprintf(s->started, sizeof s->started, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
}

/* Ends the server session this handle had before its connection was lost, and waits (at
 * most timeout_ms) until it is gone: its transaction is then committed or rolled back for
 * good, and reads on the new connection say which (a commit in doubt, log.c). A session
 * the server already ended is not found; one that this role may not end is logged. */
static void end_session(struct pg *s, int pid, const char *started)
{
    static const char sql[] = "SELECT count(pg_terminate_backend(pid, $3::int8)) FROM "
                              "pg_stat_activity WHERE pid=$1::int8 AND " STARTED "=$2";
    struct args a = {0};
    if (!pid) return;
    arg_int(&a, pid);
    arg_text(&a, started);
    arg_int(&a, s->timeout_ms / 2); /* the server's wait, inside ours */
    PGresult *r = run(s->conn, s->timeout_ms, sql, NULL, &a);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
        say(s, "cannot end the lost session", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    PQclear(r);
}

/* A connection ready for the statements: version checked, session set, prepared. */
static int setup(struct pg *s, char *err, size_t errcap)
{
    int rc = version_err(PQserverVersion(s->conn), err, errcap);
    if (!rc) rc = configure(s->conn, s->timeout_ms, s->password, err, errcap);
    if (!rc) rc = migrate(s->conn, s->timeout_ms, s->password, err, errcap);
    if (!rc) rc = prepare(s, err, errcap);
    if (!rc) session_of(s);
    return rc;
}

/* A reconnection on a thread of its own, so that the thread using the handle (the event
 * loop's reader among them) never waits for one: meanwhile its calls fail at once with
 * STORE_EIO. Shared by the handle and the thread; the last of them to let go frees it. */
struct redial {
    pthread_mutex_t mu;
    int refs, done;
    struct pg tmp; /* the thread's: url, password and timeout copied; conn when it worked */
    int old_pid;
    char old_started[64], err[512];
};

static void redial_release(struct redial *r)
{
    pthread_mutex_lock(&r->mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!last) return;
    PQfinish(r->tmp.conn);
    free(r->tmp.url);
    free(r->tmp.password);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void *redial_run(void *arg)
{
    struct redial *r = arg;
    struct pg *t = &r->tmp;
    t->conn = connect_url(t->url, t->timeout_ms, t->password, r->err, sizeof r->err);
    if (t->conn) end_session(t, r->old_pid, r->old_started);
    if (t->conn && setup(t, r->err, sizeof r->err)) {
        PQfinish(t->conn);
        t->conn = NULL;
    }
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    pthread_mutex_unlock(&r->mu);
    redial_release(r);
    return NULL;
}

/* Starts a reconnection of s (signals stay with the threads that handle them). */
static void redial_start(struct pg *s)
{
    struct redial *r = calloc(1, sizeof *r);
    pthread_t th;
    pthread_attr_t at;
    if (!r) return;
    pthread_mutex_init(&r->mu, NULL);
    r->refs = 2;
    r->tmp.timeout_ms = s->timeout_ms;
    r->tmp.url = strdup(s->url);
    r->tmp.password = s->password ? strdup(s->password) : NULL;
    r->old_pid = s->old_pid;
    snprintf(r->old_started, sizeof r->old_started, "%s", s->old_started);
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = r->tmp.url && (!s->password || r->tmp.password)
                 ? vx_thread_start(&th, &at, redial_run, r) : -1;
    pthread_attr_destroy(&at);
    if (rc) {
        r->refs = 1;
        snprintf(r->err, sizeof r->err, "cannot start a thread");
        r->done = 1;
    }
    s->redial = r;
}

/* Collects a finished reconnection: 0 when it gave s a connection. Attempts that fail
 * back off exponentially (REDIAL_MIN_NS doubling up to REDIAL_MAX_NS) and are logged at
 * most once per REDIAL_SAY_NS. */
static int redial_finish(struct pg *s)
{
    struct redial *r = s->redial;
    int64_t now = now_ns();
    s->redial = NULL;
    s->redials++;
    if (r->tmp.conn) {
        s->conn = r->tmp.conn;
        r->tmp.conn = NULL;
        s->pid = r->tmp.pid;
        memcpy(s->started, r->tmp.started, sizeof s->started);
        s->old_pid = 0;
        fprintf(stderr, "veltrix: postgres: reconnected (after %u attempt%s)\n", s->redials,
                s->redials == 1 ? "" : "s");
        s->redials = 0;
        s->backoff_ns = 0;
        s->said_ns = 0;
    } else {
        s->backoff_ns = s->backoff_ns ? s->backoff_ns * 2 : REDIAL_MIN_NS;
        if (s->backoff_ns > REDIAL_MAX_NS) s->backoff_ns = REDIAL_MAX_NS;
        if (!s->said_ns || now - s->said_ns >= REDIAL_SAY_NS) {
            char msg[640];
            snprintf(msg, sizeof msg, "attempt %u failed (the next in %lld ms; failures are "
                     "logged once per %d s): %s", s->redials, (long long)(s->backoff_ns / 1000000),
                     (int)(REDIAL_SAY_NS / 1000000000), r->err);
            say(s, "reconnect", msg);
            s->said_ns = now;
        }
    }
    s->redial_ns = now + s->backoff_ns;
    redial_release(r);
    return s->conn ? 0 : STORE_EIO;
}

/* Gives up s's connection (broken, or silent past the timeout), remembering its server
 * session for the next one to end. */
static void drop(struct pg *s)
{
    if (!s->conn) return;
    say(s, "connection lost", PQerrorMessage(s->conn));
    s->old_pid = s->pid;
    memcpy(s->old_started, s->started, sizeof s->started);
    PQfinish(s->conn);
    s->conn = NULL;
    if (s->in_txn && !s->txn_err) s->txn_err = STORE_EIO;
}

/* 0 when s has a working connection. Otherwise STORE_EIO at once: a lost connection is
 * made again on a thread of its own (redial), and a later call picks it up. */
static int ensure_conn(struct pg *s)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK) return 0;
    drop(s);
    if (s->redial) {
        pthread_mutex_lock(&s->redial->mu);
        int done = s->redial->done;
        pthread_mutex_unlock(&s->redial->mu);
        if (!done) return STORE_EIO;
        if (!redial_finish(s)) return 0;
    }
    if (now_ns() >= s->redial_ns) redial_start(s);
    return STORE_EIO;
}

/* ---- open, close, test URL ----------------------------------------------------------- */

static void pg_close(struct store *base)
{
    struct pg *s = PG(base);
    if (!s) return;
    PQfinish(s->conn);
    PQfinish(s->side);
    if (s->redial) redial_release(s->redial);
    free(s->url);
    free(s->password);
    free(s->fence.hunt);
    free(s->fence.epoch);
    for (int i = 0; i < 7; i++) free(s->ev_col[i].p);
    free(s->fenced_text);
    free(s->fenced);
    free(s);
}

/* The password libpq would use for url (NULL when none, or url does not parse: then
 * *parsed is 0 and err says why, without any piece of the URL but its redacted form). */
static char *password_of(const char *url, int *parsed, char *err, size_t errcap)
{
    char *msg = NULL, *pw = NULL, shown[512], why[512];
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    *parsed = opts != NULL;
    if (!opts) {
        store_url_redact(url, shown, sizeof shown);
        scrub_url_msg(msg ? msg : "out of memory", shown, NULL, why, sizeof why);
        snprintf(err, errcap, "malformed postgres url %s: %s", shown, why);
        PQfreemem(msg);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (!strcmp(o->keyword, "password") && o->val && *o->val) pw = strdup(o->val);
    PQconninfoFree(opts);
    return pw;
}

/* Takes veltrix's own parameter out of url (libpq refuses names it does not know):
 * veltrix_timeout_ms=N, the longest wait for any answer of the server (*ms, default
 * TIMEOUT_MS_DEFAULT). 0, or -1 for a bad value. */
static int take_timeout(char *url, int *ms)
{
    static const char key[] = "veltrix_timeout_ms=";
    *ms = TIMEOUT_MS_DEFAULT;
    for (char *p = strchr(url, '?'); p; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, key, sizeof key - 1)) continue;
        char *v = p + sizeof key, *end;
        long n = strtol(v, &end, 10);
        if (end == v || (*end && *end != '&') || n < 100 || n > 3600000) return -1;
        if (*end) memmove(p + 1, end + 1, strlen(end + 1) + 1); /* "?k=v&rest" -> "?rest" */
        else *p = '\0';
        *ms = (int)n;
        return 0;
    }
    return 0;
}

static int pg_open(const char *url, enum store_fsync fsync, struct store **out, char *err,
                   size_t errcap)
{
    int parsed, rc = STORE_EIO;
    struct pg *s = calloc(1, sizeof *s);
    if (!s || !(s->url = strdup(url))) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    if (strncmp(url + strcspn(url, ":"), "://", 3)) {
        snprintf(err, errcap, "a postgres store url is postgres://[USER@]HOST[:PORT]/DB[?...]");
        rc = STORE_EURL;
        goto fail;
    }
    if (take_timeout(s->url, &s->timeout_ms)) {
        snprintf(err, errcap, "veltrix_timeout_ms must be a number of milliseconds, 100 to "
                 "3600000");
        rc = STORE_EURL;
        goto fail;
    }
    s->password = password_of(s->url, &parsed, err, errcap);
    if (!parsed) {
        rc = STORE_EURL;
        goto fail;
    }
    if (!(s->conn = connect_url(s->url, s->timeout_ms, s->password, err, errcap))) goto fail;
    if ((rc = setup(s, err, errcap))) goto fail;
    *out = &s->base;
    return 0;
fail:
    pg_close(s ? &s->base : NULL);
    return rc;
}

/* "postgres:///DB?host=..&port=..&user=..[&password=..]" for the server of base. */
static int url_with_db(const char *base, const char *db, char *out, size_t cap)
{
    static const char *const keep[] = {"host", "hostaddr", "port", "user", "password", NULL};
    PQconninfoOption *opts = PQconninfoParse(base, NULL);
    if (!opts) return -1;
    size_t n = (size_t)snprintf(out, cap, "postgres:///%s", db);
    char sep = '?';
    for (PQconninfoOption *o = opts; o->keyword && n < cap; o++) {
        for (int k = 0; keep[k] && o->val && *o->val; k++) {
            if (strcmp(o->keyword, keep[k])) continue;
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%c%s=", sep, o->keyword);
            for (const unsigned char *c = (const unsigned char *)o->val; *c && n < cap; c++)
                n += (size_t)snprintf(out + n, cap - n,
                                      (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                                              (*c >= '0' && *c <= '9') || strchr("-._~/", *c)
                                          ? "%c"
                                          : "%%%02X",
                                      *c);
            sep = '&';
        }
    }
    PQconninfoFree(opts);
    return n < cap ? 0 : -1;
}

/* A fresh database on the server of $VELTRIX_TEST_PG_URL per call (tests start empty);
 * -1 when that variable is unset, or for an in-memory store (dir NULL). */
static int pg_test_url(const char *dir, char *out, size_t cap)
{
    static unsigned calls;
    const char *base = getenv("VELTRIX_TEST_PG_URL");
    char db[64], sql[160], err[512];
    if (!dir || !base || !*base) return -1;
    int parsed;
    char *pw = password_of(base, &parsed, err, sizeof err);
    PGconn *c = parsed ? connect_url(base, TIMEOUT_MS_DEFAULT, pw, err, sizeof err) : NULL;
    int rc = c ? 0 : -1;
    snprintf(db, sizeof db, "veltrix_test_%ld_%u", (long)getpid(), calls++);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db);
    if (!rc) rc = exec(c, TIMEOUT_MS_DEFAULT, sql, pw, err, sizeof err);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    if (!rc) rc = exec(c, TIMEOUT_MS_DEFAULT, sql, pw, err, sizeof err);
    if (!rc) rc = url_with_db(base, db, out, cap);
    if (rc) fprintf(stderr, "veltrix: postgres: test database: %s\n", err);
    PQfinish(c);
    free(pw);
    return rc ? -1 : 0;
}

/* ---- statements ------------------------------------------------------------------------ */

/* Logs and returns the error of a result that is not what a statement should give. */
static int result_err(struct pg *s, PGresult *r, ExecStatusType want)
{
    if (r && PQresultStatus(r) == want) return 0;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && !strcmp(state, "23505")) return STORE_ECONFLICT;
    say(s, "query", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    return STORE_EIO;
}

/* Ends the pipeline of a batch (a read needs the connection): sends the sync and reads
 * the answers so far. The transaction stays open; a failure is kept for the commit. */
static int settle(struct pg *s)
{
    if (PQpipelineStatus(s->conn) == PQ_PIPELINE_OFF) return s->txn_err;
    int rc = PQpipelineSync(s->conn) ? drain(s, s->conn) : STORE_EIO;
    if (!PQexitPipelineMode(s->conn) && !rc) rc = STORE_EIO;
    if (rc && !s->txn_err) s->txn_err = rc;
    return s->txn_err;
}

/* Sends statement q of a batch into the pipeline (no waiting), or runs it as its own
 * transaction outside a batch. */
static int put(struct pg *s, int q, const struct args *a)
{
    char name[8];
    snprintf(name, sizeof name, "q%d", q);
    if (!args_ok(a)) return STORE_EIO;
    if (!s->in_txn) {
        if (ensure_conn(s)) return STORE_EIO;
        PGresult *r = run(s->conn, s->timeout_ms, NULL, name, a);
        int rc = result_err(s, r, PGRES_COMMAND_OK);
        PQclear(r);
        return rc;
    }
    if (s->txn_err) return s->txn_err;
    if (PQpipelineStatus(s->conn) == PQ_PIPELINE_OFF && !PQenterPipelineMode(s->conn))
        return s->txn_err = STORE_EIO;
    if (!PQsendQueryPrepared(s->conn, name, a->n, a->val, a->len, a->fmt, 1)) {
        say(s, "write", PQerrorMessage(s->conn));
        return s->txn_err = STORE_EIO;
    }
    return 0;
}

/* ---- a batch's events: one INSERT of seven binary arrays --------------------------------
 * One statement per batch instead of one per event: the server parses, plans and answers
 * once (measured: see README "The store on PostgreSQL"). Array wire format (array_send):
 * ndim, has-null flag, element type OID, then per dimension its size and lower bound, then
 * each element as int32 length (-1: NULL) and its bytes. */
static const uint32_t EV_OID[7] = {25, 20, 20, 21, 17, 17, 17}; /* text int8 int8 int2 bytea */

static int ev_add(struct pg *s, const struct store_event *ev)
{
    static const char head[20];
    static const uint32_t null = 0xffffffffu;
    struct buf *c = s->ev_col;
    int bad = 0;
    if (!s->ev_n)
        for (int i = 0; i < 7; i++) c[i].len = 0, bad |= buf_put(&c[i], head, sizeof head);
    bad |= buf_field(&c[0], ev->hunt, strlen(ev->hunt)) || buf_int(&c[1], ev->seq, 8) ||
           buf_int(&c[2], (uint64_t)ev->time_ms, 8) || buf_int(&c[3], ev->type, 2) ||
           buf_field(&c[4], ev->player, 16) ||
           buf_field(&c[5], ev->data_len ? (const void *)ev->data : "", ev->data_len) ||
           (ev->has_hash ? buf_field(&c[6], ev->hash, 32) : buf_put(&c[6], &null, 4));
    if (bad) return s->txn_err = STORE_EIO;
    s->ev_n++;
    return 0;
}

/* Sends the batch's events gathered so far into its pipeline. */
static int ev_flush(struct pg *s)
{
    if (!s->ev_n) return s->txn_err;
    struct args a = {0};
    for (int i = 0; i < 7; i++) {
        uint32_t h[5] = {htobe32(1), htobe32(i == 6), htobe32(EV_OID[i]),
                         htobe32((uint32_t)s->ev_n), htobe32(1)};
        memcpy(s->ev_col[i].p, h, sizeof h);
        arg_bytes(&a, s->ev_col[i].p, s->ev_col[i].len);
    }
    int rc = put(s, Q_PUT_EVENTS, &a); /* libpq copies the parameters before returning */
    s->ev_n = 0;
    return rc;
}

/* Runs query q and returns its rows (the caller PQclears), or NULL after logging. */
static PGresult *query(struct pg *s, int q, const struct args *a)
{
    char name[8];
    snprintf(name, sizeof name, "q%d", q);
    if (s->in_txn) ev_flush(s);
    if (s->in_txn ? settle(s) : ensure_conn(s)) return NULL; /* a failed batch reads nothing */
    PGresult *r = run(s->conn, s->timeout_ms, NULL, name, a);
    if (result_err(s, r, PGRES_TUPLES_OK)) {
        PQclear(r);
        return NULL;
    }
    return r;
}

/* ---- transactions --------------------------------------------------------------------- */

static int pg_begin(struct store *base)
{
    struct pg *s = PG(base);
    if (s->in_txn || ensure_conn(s)) return STORE_EIO;
    if (!PQenterPipelineMode(s->conn) ||
        !PQsendQueryParams(s->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0)) {
        say(s, "begin", PQerrorMessage(s->conn));
        PQexitPipelineMode(s->conn);
        return STORE_EIO;
    }
    s->in_txn = 1;
    s->txn_err = 0;
    s->fence.n = 0;
    s->n_fenced = 0;
    s->ev_n = 0;
    return 0;
}

/* Adds (hunt, epoch) to the batch's fence unless it is there. 0 or STORE_EIO. */
static int fence_add(struct fence *f, const char *hunt, uint64_t epoch)
{
    for (size_t i = f->n; i-- > 0;)
        if (f->epoch[i] == epoch && !strcmp(f->hunt[i], hunt)) return 0;
    if (strlen(hunt) > VX_ID_MAX) return STORE_EIO;
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        char(*h)[VX_ID_MAX + 1] = realloc(f->hunt, cap * sizeof *h);
        if (h) f->hunt = h;
        uint64_t *e = realloc(f->epoch, cap * sizeof *e);
        if (e) f->epoch = e;
        if (!h || !e) return STORE_EIO;
        f->cap = cap;
    }
    strcpy(f->hunt[f->n], hunt);
    f->epoch[f->n++] = epoch;
    return 0;
}

/* Sends the fence of the batch into its pipeline, before its events: veltrix.fence() over two
 * text arrays ({"h1","h2"}, {1,2}: ids are [a-z0-9_-], nothing to escape). */
static int fence_send(struct pg *s)
{
    struct fence *f = &s->fence;
    size_t cap = f->n * (VX_ID_MAX + 4) + 3, at = 0, et = 0;
    char *hunts = malloc(cap), *epochs = malloc(f->n * 22 + 3);
    int rc = hunts && epochs ? 0 : STORE_EIO;
    if (!rc) {
        hunts[at++] = '{';
        epochs[et++] = '{';
        for (size_t i = 0; i < f->n; i++) {
            at += (size_t)sprintf(hunts + at, "%s\"%s\"", i ? "," : "", f->hunt[i]);
            et += (size_t)sprintf(epochs + et, "%s%llu", i ? "," : "", (unsigned long long)f->epoch[i]);
        }
        memcpy(hunts + at, "}", 2);
        memcpy(epochs + et, "}", 2);
        const char *val[2] = {hunts, epochs};
        if (!PQsendQueryParams(s->conn, "SELECT veltrix.fence($1::text[], $2::int8[])", 2, NULL,
                               val, NULL, NULL, 0)) {
            say(s, "fence", PQerrorMessage(s->conn));
            rc = STORE_EIO;
        }
    }
    free(hunts);
    free(epochs);
    return rc;
}

/* Whatever state the server's transaction is in, ends it. */
static void abort_txn(struct pg *s)
{
    if (PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF) settle(s);
    s->in_txn = 0;
    PGTransactionStatusType t = PQtransactionStatus(s->conn);
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
        PQclear(run(s->conn, s->timeout_ms, "ROLLBACK", NULL, NULL));
}

static int pg_commit(struct store *base)
{
    struct pg *s = PG(base);
    if (!s->in_txn) return STORE_EIO;
    int rc = s->txn_err;
    if (!rc && PQpipelineStatus(s->conn) == PQ_PIPELINE_OFF && !PQenterPipelineMode(s->conn))
        rc = STORE_EIO;
    /* The fence before the events' INSERT: a stale owner's events would otherwise meet the
     * new owner's rows at the same seqs first (a unique violation, not a fence). */
    if (!rc && s->fence.n) rc = fence_send(s);
    if (!rc) rc = ev_flush(s);
    if (!rc && !PQsendQueryParams(s->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0)) rc = STORE_EIO;
    if (!rc) rc = settle(s);
    /* COMMIT of a transaction the server had aborted answers without error (ROLLBACK). */
    if (!rc && PQtransactionStatus(s->conn) != PQTRANS_IDLE) rc = STORE_EIO;
    if (rc) abort_txn(s);
    s->in_txn = 0;
    return rc;
}

static void pg_rollback(struct store *base)
{
    struct pg *s = PG(base);
    if (s->in_txn) abort_txn(s);
}

/* ---- puts ------------------------------------------------------------------------------- */

/* In a batch: gathered for its one INSERT (ev_flush), its epoch for the fence. Outside
 * one: a row of its own (a fence needs a batch). */
static int pg_put_event(struct store *base, const struct store_event *ev)
{
    struct pg *s = PG(base);
    if (s->in_txn) {
        if (s->txn_err) return s->txn_err;
        if (ev->epoch && fence_add(&s->fence, ev->hunt, ev->epoch)) return s->txn_err = STORE_EIO;
        return ev_add(s, ev);
    }
    if (ev->epoch) return STORE_ENOTSUP;
    struct args a = {0};
    arg_text(&a, ev->hunt);
    arg_int(&a, (int64_t)ev->seq);
    arg_int(&a, ev->time_ms);
    arg_int(&a, ev->type);
    arg_bytes(&a, ev->player, 16);
    arg_bytes(&a, ev->data, ev->data_len);
    arg_bytes(&a, ev->hash, 32);
    if (!ev->has_hash) a.val[a.n - 1] = NULL; /* SQL NULL */
    return put(s, Q_PUT_EVENT, &a);
}

static int pg_put_player(struct store *base, const struct store_player *p)
{
    struct args a = {0};
    arg_bytes(&a, p->id, 16);
    arg_text(&a, p->display_name);
    arg_int(&a, p->created_ms);
    arg_int(&a, p->gen);
    return put(PG(base), Q_PUT_PLAYER, &a);
}

static int pg_put_refresh(struct store *base, const struct store_refresh *r)
{
    struct args a = {0}, d = {0};
    arg_bytes(&a, r->id, 16);
    if (r->used) return put(PG(base), Q_USE_REFRESH, &a);
    arg_bytes(&a, r->player, 16);
    arg_int(&a, r->gen);
    arg_int(&a, r->expires_ms);
    int rc = put(PG(base), Q_PUT_REFRESH, &a);
    if (rc) return rc;
    arg_bytes(&d, r->player, 16);
    arg_bytes(&d, r->id, 16);
    return put(PG(base), Q_DROP_REFRESH, &d);
}

static int pg_prune_refresh(struct store *base, int64_t now_ms)
{
    struct args a = {0};
    arg_int(&a, now_ms);
    return put(PG(base), Q_PRUNE_REFRESH, &a);
}

static int pg_put_idem(struct store *base, const struct store_idem *i)
{
    struct args a = {0};
    arg_bytes(&a, i->scope, strlen(i->scope));
    arg_bytes(&a, i->key, strlen(i->key));
    arg_bytes(&a, i->req_hash, 32);
    arg_int(&a, i->status);
    arg_bytes(&a, i->body, i->body_len);
    arg_int(&a, i->created_ms);
    arg_text(&a, i->hunt); /* NULL: SQL NULL */
    return put(PG(base), Q_PUT_IDEM, &a);
}

static int pg_prune_idem(struct store *base, int64_t cutoff_ms)
{
    struct args a = {0};
    arg_int(&a, cutoff_ms);
    return put(PG(base), Q_PRUNE_IDEM, &a);
}

static int pg_put_blob(struct store *base, const uint8_t hash[32], const uint8_t *data, size_t len)
{
    struct args a = {0};
    arg_bytes(&a, hash, 32);
    arg_bytes(&a, data, len);
    return put(PG(base), Q_PUT_BLOB, &a);
}

static int pg_put_tile(struct store *base, const struct store_tile *t)
{
    struct args a = {0};
    arg_text(&a, t->hunt);
    arg_int(&a, t->x);
    arg_int(&a, t->y);
    arg_bytes(&a, t->hash, 32);
    arg_bytes(&a, t->ctype, strlen(t->ctype));
    return put(PG(base), Q_PUT_TILE, &a);
}

static int pg_put_map_version(struct store *base, const struct store_map_version *v)
{
    struct args a = {0}, b = {0};
    arg_text(&a, v->hunt);
    arg_int(&a, v->version);
    arg_bytes(&a, v->data, v->len);
    arg_text(&b, v->hunt);
    arg_int(&b, v->keep_from);
    int rc = put(PG(base), Q_PUT_MAPVER, &a);
    return rc ? rc : put(PG(base), Q_PRUNE_MAPVER, &b);
}

/* ---- walks ------------------------------------------------------------------------------ */

/* Each walk below reads page after page of at most `page` rows; row() is called for each
 * and its non-zero answer stops the walk. next() puts the last row's key into the
 * arguments for the following page. */
struct walk {
    struct pg *s;
    int q, page;
    struct args a;
    int (*row)(struct walk *w, const PGresult *r, int i);
    int (*next)(struct walk *w, const PGresult *r, int last); /* 0 or STORE_ECORRUPT */
    void *cb, *ctx;
    const char *hunt;
    char key[3][256]; /* copies of the last row's text keys (the page is freed) */
    size_t key_len[3];
};

static int walk(struct walk *w)
{
    for (;;) {
        PGresult *r = query(w->s, w->q, &w->a);
        if (!r) return STORE_EIO;
        int n = PQntuples(r), rc = 0;
        for (int i = 0; !rc && i < n; i++) rc = w->row(w, r, i);
        if (!rc && n == w->page && w->next) rc = w->next(w, r, n - 1);
        PQclear(r);
        if (rc || n < w->page || !w->next) return rc;
    }
}

/* Keeps column col of row i as key k (bytea or text), and passes it as argument arg. */
static int keep_key(struct walk *w, const PGresult *r, int i, int col, int k, int arg)
{
    size_t len = (size_t)PQgetlength(r, i, col);
    if (len >= sizeof w->key[k]) return STORE_ECORRUPT;
    memcpy(w->key[k], PQgetvalue(r, i, col), len);
    w->key[k][len] = '\0';
    w->key_len[k] = len;
    w->a.val[arg] = w->key[k];
    w->a.len[arg] = (int)len;
    return 0;
}

static int hunt_row(struct walk *w, const PGresult *r, int i)
{
    return ((store_hunt_cb)w->cb)(PQgetvalue(r, i, 0), w->ctx);
}

static int pg_each_hunt(struct store *base, store_hunt_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_HUNTS, .page = -1, .row = hunt_row, .cb = (void *)cb,
                     .ctx = ctx};
    return walk(&w);
}

static int event_row(struct walk *w, const PGresult *r, int i)
{
    struct store_event ev = {.hunt = w->hunt};
    ev.seq = (uint64_t)col_int(r, i, 0);
    ev.time_ms = col_int(r, i, 1);
    ev.type = (uint8_t)col_int(r, i, 2);
    if (col_fixed(r, i, 3, ev.player, 16)) return STORE_ECORRUPT;
    ev.data = col_bytes(r, i, 4, &ev.data_len);
    if (!PQgetisnull(r, i, 5)) {
        if (col_fixed(r, i, 5, ev.hash, 32)) return STORE_ECORRUPT;
        ev.has_hash = 1;
    }
    return ((store_event_cb)w->cb)(&ev, w->ctx);
}

static int event_next(struct walk *w, const PGresult *r, int last)
{
    w->a.num[1] = htobe64((uint64_t)col_int(r, last, 0) + 1);
    return 0;
}

static int pg_each_event(struct store *base, const char *hunt, uint64_t from_seq,
                         store_event_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_EVENTS, .page = PAGE_ROWS, .row = event_row,
                     .next = event_next, .cb = (void *)cb, .ctx = ctx, .hunt = hunt};
    arg_text(&w.a, hunt);
    arg_int(&w.a, (int64_t)from_seq);
    arg_int(&w.a, PAGE_ROWS);
    return walk(&w);
}

static int player_row(struct walk *w, const PGresult *r, int i)
{
    struct store_player p;
    if (col_fixed(r, i, 0, p.id, 16)) return STORE_ECORRUPT;
    p.display_name = PQgetvalue(r, i, 1);
    p.created_ms = col_int(r, i, 2);
    p.gen = (uint32_t)col_int(r, i, 3);
    return ((store_player_cb)w->cb)(&p, w->ctx);
}

static int player_next(struct walk *w, const PGresult *r, int last)
{
    return keep_key(w, r, last, 0, 0, 0);
}

static int pg_each_player(struct store *base, store_player_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_PLAYERS, .page = PAGE_ROWS, .row = player_row,
                     .next = player_next, .cb = (void *)cb, .ctx = ctx};
    arg_bytes(&w.a, "", 0);
    arg_int(&w.a, PAGE_ROWS);
    return walk(&w);
}

static int refresh_row(struct walk *w, const PGresult *r, int i)
{
    struct store_refresh t;
    if (col_fixed(r, i, 0, t.id, 16) || col_fixed(r, i, 1, t.player, 16)) return STORE_ECORRUPT;
    t.gen = (uint32_t)col_int(r, i, 2);
    t.expires_ms = col_int(r, i, 3);
    t.used = (int)col_int(r, i, 4);
    return ((store_refresh_cb)w->cb)(&t, w->ctx);
}

static int refresh_next(struct walk *w, const PGresult *r, int last)
{
    return keep_key(w, r, last, 0, 0, 1);
}

static int pg_each_refresh(struct store *base, int64_t now_ms, store_refresh_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_REFRESH, .page = PAGE_ROWS, .row = refresh_row,
                     .next = refresh_next, .cb = (void *)cb, .ctx = ctx};
    arg_int(&w.a, now_ms);
    arg_bytes(&w.a, "", 0);
    arg_int(&w.a, PAGE_ROWS);
    return walk(&w);
}

/* An idempotency row; scope and key are bytea, handed out as C strings (libpq ends
 * every value with a NUL). */
static int idem_row(struct walk *w, const PGresult *r, int i)
{
    struct store_idem d;
    d.scope = PQgetvalue(r, i, 0);
    d.key = PQgetvalue(r, i, 1);
    if (strlen(d.scope) != (size_t)PQgetlength(r, i, 0) ||
        strlen(d.key) != (size_t)PQgetlength(r, i, 1) || col_fixed(r, i, 2, d.req_hash, 32))
        return STORE_ECORRUPT;
    d.status = (int)col_int(r, i, 3);
    d.body = (const char *)col_bytes(r, i, 4, &d.body_len);
    d.created_ms = col_int(r, i, 5);
    d.hunt = NULL;
    return ((store_idem_cb)w->cb)(&d, w->ctx);
}

static int idem_next(struct walk *w, const PGresult *r, int last)
{
    w->a.num[1] = htobe64((uint64_t)col_int(r, last, 5));
    return keep_key(w, r, last, 0, 0, 2) ? STORE_ECORRUPT : keep_key(w, r, last, 1, 1, 3);
}

static int hunt_idem_next(struct walk *w, const PGresult *r, int last)
{
    w->a.num[2] = htobe64((uint64_t)col_int(r, last, 5));
    return keep_key(w, r, last, 0, 0, 3) ? STORE_ECORRUPT : keep_key(w, r, last, 1, 1, 4);
}

/* Every idempotency record created at or after since_ms, or only hunt's (not NULL). */
static int idem_walk(struct store *base, const char *hunt, int64_t since_ms, store_idem_cb cb,
                     void *ctx)
{
    struct walk w = {.s = PG(base), .q = hunt ? Q_HUNT_IDEMS : Q_IDEMS, .page = PAGE_ROWS,
                     .row = idem_row, .next = hunt ? hunt_idem_next : idem_next,
                     .cb = (void *)cb, .ctx = ctx};
    if (hunt) arg_text(&w.a, hunt);
    arg_int(&w.a, since_ms);
    arg_int(&w.a, INT64_MIN);
    arg_bytes(&w.a, "", 0);
    arg_bytes(&w.a, "", 0);
    arg_int(&w.a, PAGE_ROWS);
    return walk(&w);
}

static int pg_each_idem(struct store *base, int64_t since_ms, store_idem_cb cb, void *ctx)
{
    return idem_walk(base, NULL, since_ms, cb, ctx);
}

static int pg_each_idem_of_hunt(struct store *base, const char *hunt, int64_t since_ms,
                                store_idem_cb cb, void *ctx)
{
    return idem_walk(base, hunt, since_ms, cb, ctx);
}

static int idem_found(struct walk *w, const PGresult *r, int i)
{
    int rc = idem_row(w, r, i);
    return rc ? rc : 1;
}

static int pg_get_idem(struct store *base, const char *scope, const char *key, store_idem_cb cb,
                       void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_GET_IDEM, .page = -1, .row = idem_found,
                     .cb = (void *)cb, .ctx = ctx};
    arg_bytes(&w.a, scope, strlen(scope));
    arg_bytes(&w.a, key, strlen(key));
    return walk(&w);
}

static int tile_row(struct walk *w, const PGresult *r, int i)
{
    struct store_tile t;
    int64_t x = col_int(r, i, 1), y = col_int(r, i, 2);
    t.hunt = PQgetvalue(r, i, 0);
    t.ctype = PQgetvalue(r, i, 4);
    if (x < 0 || y < 0 || x > UINT32_MAX || y > UINT32_MAX ||
        strlen(t.ctype) != (size_t)PQgetlength(r, i, 4) || col_fixed(r, i, 3, t.hash, 32))
        return STORE_ECORRUPT;
    t.x = (uint32_t)x;
    t.y = (uint32_t)y;
    return ((store_tile_cb)w->cb)(&t, w->ctx);
}

static int tile_next(struct walk *w, const PGresult *r, int last)
{
    w->a.num[1] = htobe64((uint64_t)col_int(r, last, 1));
    w->a.num[2] = htobe64((uint64_t)col_int(r, last, 2));
    return keep_key(w, r, last, 0, 0, 0); /* text: the kept copy ends with a NUL */
}

static int pg_each_tile(struct store *base, store_tile_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_TILES, .page = PAGE_ROWS, .row = tile_row,
                     .next = tile_next, .cb = (void *)cb, .ctx = ctx};
    arg_text(&w.a, "");
    arg_int(&w.a, -1);
    arg_int(&w.a, -1);
    arg_int(&w.a, PAGE_ROWS);
    return walk(&w);
}

static int map_version_row(struct walk *w, const PGresult *r, int i)
{
    struct store_map_version v = {PQgetvalue(r, i, 0), col_int(r, i, 1), 0, NULL, 0};
    v.keep_from = v.version;
    v.data = col_bytes(r, i, 2, &v.len);
    return ((store_map_version_cb)w->cb)(&v, w->ctx);
}

static int map_version_next(struct walk *w, const PGresult *r, int last)
{
    w->a.num[1] = htobe64((uint64_t)col_int(r, last, 1));
    return keep_key(w, r, last, 0, 0, 0);
}

static int pg_each_map_version(struct store *base, store_map_version_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_MAPVERS, .page = PAGE_MANIFESTS,
                     .row = map_version_row, .next = map_version_next, .cb = (void *)cb,
                     .ctx = ctx};
    arg_text(&w.a, "");
    arg_int(&w.a, INT64_MIN);
    arg_int(&w.a, PAGE_MANIFESTS);
    return walk(&w);
}

static int map_version_found(struct walk *w, const PGresult *r, int i)
{
    int rc = map_version_row(w, r, i);
    return rc ? rc : 1;
}

static int pg_get_map_version(struct store *base, const char *hunt, int64_t version,
                              store_map_version_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_GET_MAPVER, .page = -1, .row = map_version_found,
                     .cb = (void *)cb, .ctx = ctx};
    arg_text(&w.a, hunt);
    arg_int(&w.a, version);
    return walk(&w);
}

static int blob_found(struct walk *w, const PGresult *r, int i)
{
    size_t len;
    const uint8_t *data = col_bytes(r, i, 0, &len);
    int rc = ((store_snapshot_cb)w->cb)(0, data, len, w->ctx);
    return rc ? rc : 1;
}

static int pg_get_blob(struct store *base, const uint8_t hash[32], store_snapshot_cb cb,
                       void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_GET_BLOB, .page = -1, .row = blob_found,
                     .cb = (void *)cb, .ctx = ctx};
    arg_bytes(&w.a, hash, 32);
    return walk(&w);
}

/* A health probe (/healthz, on the event loop): it waits PING_MS at most. */
static int pg_ping(struct store *base)
{
    struct args a = {0};
    struct pg *s = PG(base);
    int ms = s->timeout_ms;
    s->timeout_ms = ms < PING_MS ? ms : PING_MS;
    PGresult *r = query(s, Q_PING, &a);
    s->timeout_ms = ms;
    int ok = r && PQntuples(r) == 1;
    PQclear(r);
    return ok ? 0 : STORE_EIO;
}

static int pg_other_sessions(struct store *base, uint64_t *n)
{
    struct args a = {0};
    PGresult *r = query(PG(base), Q_OTHERS, &a);
    int ok = r && PQntuples(r) == 1;
    if (ok) *n = (uint64_t)col_int(r, 0, 0);
    PQclear(r);
    return ok ? 0 : STORE_EIO;
}

static int pg_last_seq(struct store *base, const char *hunt, uint64_t *seq)
{
    struct args a = {0};
    arg_text(&a, hunt);
    PGresult *r = query(PG(base), Q_LAST_SEQ, &a);
    int ok = r && PQntuples(r) == 1;
    if (ok) *seq = (uint64_t)col_int(r, 0, 0);
    PQclear(r);
    return ok ? 0 : STORE_EIO;
}

#define HEADS_PER_QUERY 1000

static int pg_heads(struct store *base, const char *const *hunts, size_t n, uint64_t *seqs)
{
    for (size_t at = 0; at < n; at += HEADS_PER_QUERY) {
        size_t k = n - at < HEADS_PER_QUERY ? n - at : HEADS_PER_QUERY, cap = 3, len = 0;
        for (size_t i = 0; i < k; i++) cap += 2 * strlen(hunts[at + i]) + 3;
        char *arr = malloc(cap);
        if (!arr) return STORE_EIO;
        arr[len++] = '{';
        for (size_t i = 0; i < k; i++) { /* a text[] literal: each element quoted */
            if (i) arr[len++] = ',';
            arr[len++] = '"';
            for (const char *c = hunts[at + i]; *c; c++) {
                if (*c == '"' || *c == '\\') arr[len++] = '\\';
                arr[len++] = *c;
            }
            arr[len++] = '"';
        }
        arr[len++] = '}';
        arr[len] = '\0';
        struct args a = {0};
        arg_text(&a, arr);
        PGresult *r = query(PG(base), Q_HEADS, &a);
        int ok = r && PQntuples(r) == (int)k;
        for (size_t i = 0; ok && i < k; i++) seqs[at + i] = (uint64_t)col_int(r, (int)i, 0);
        PQclear(r);
        free(arr);
        if (!ok) return STORE_EIO;
    }
    return 0;
}

/* ---- snapshots -------------------------------------------------------------------------- */

/* The connection for a snapshot: the handle's own outside a batch, else the second one
 * (opened now if needed), so that a snapshot is never part of a batch. */
static PGconn *snap_conn(struct pg *s)
{
    char err[512] = "";
    if (!s->in_txn) return ensure_conn(s) ? NULL : s->conn;
    if (s->side && PQstatus(s->side) == CONNECTION_OK) return s->side;
    PQfinish(s->side);
    if ((s->side = connect_url(s->url, s->timeout_ms, s->password, err, sizeof err)) &&
        configure(s->side, s->timeout_ms, s->password, err, sizeof err)) {
        PQfinish(s->side);
        s->side = NULL;
    }
    if (!s->side) say(s, "snapshot connection", err);
    return s->side;
}

/* Runs a snapshot statement; NULL after logging when it failed. */
static PGresult *snap_exec(struct pg *s, const char *sql, const struct args *a,
                           ExecStatusType want)
{
    PGconn *c = snap_conn(s);
    if (!c || !args_ok(a)) return NULL;
    PGresult *r = run(c, s->timeout_ms, sql, NULL, a);
    if (r && PQresultStatus(r) == want) return r;
    say(s, "snapshot", PQerrorMessage(c));
    PQclear(r);
    return NULL;
}

static int pg_put_snapshot(struct store *base, const char *hunt, uint64_t seq,
                           const uint8_t *data, size_t len)
{
    struct args a = {0};
    arg_text(&a, hunt);
    arg_int(&a, (int64_t)seq);
    arg_bytes(&a, data, len);
    PGresult *r = snap_exec(PG(base), PUT_SNAPSHOT, &a, PGRES_COMMAND_OK);
    PQclear(r);
    return r ? 0 : STORE_EIO;
}

static int pg_get_snapshot(struct store *base, const char *hunt, store_snapshot_cb cb, void *ctx)
{
    struct args a = {0};
    arg_text(&a, hunt);
    PGresult *r = snap_exec(PG(base), GET_SNAPSHOT, &a, PGRES_TUPLES_OK);
    if (!r) return STORE_EIO;
    int rc = 0;
    if (PQntuples(r) == 1) {
        size_t n;
        const uint8_t *data = col_bytes(r, 0, 1, &n);
        rc = cb((uint64_t)col_int(r, 0, 0), data, n, ctx);
        if (!rc) rc = 1;
    }
    PQclear(r);
    return rc;
}

static int pg_delete_snapshot(struct store *base, const char *hunt)
{
    struct args a = {0};
    arg_text(&a, hunt);
    PGresult *r = snap_exec(PG(base), DELETE_SNAPSHOT, &a, PGRES_COMMAND_OK);
    PQclear(r);
    return r ? 0 : STORE_EIO;
}

/* ---- several nodes: membership and leases ------------------------------------------------
 * Rare statements (a few per second per node), unprepared, each its own transaction, on
 * the handle's connection (the cluster thread owns a handle of its own). Times come from
 * the server: now() is the statement's transaction start, the same for a whole statement. */

static const char NODE_BEAT[] =
    "INSERT INTO veltrix.nodes(node_id,advertise,heartbeat_at,draining) "
    "VALUES($1::text,$2::text,now(),$3::int8<>0) ON CONFLICT(node_id) DO UPDATE "
    "SET advertise=excluded.advertise, heartbeat_at=now(), draining=excluded.draining";
static const char EACH_NODE[] =
    "SELECT node_id,advertise,(extract(epoch FROM now()-heartbeat_at)*1000)::int8,"
    "draining::int4 FROM veltrix.nodes ORDER BY node_id";
static const char EACH_LEASE[] =
    "SELECT hunt,owner,epoch,(extract(epoch FROM expires_at-now())*1000)::int8 "
    "FROM veltrix.hunt_leases ORDER BY hunt";
/* A new holder bumps the epoch; the holder of an unexpired lease only extends it. */
static const char LEASE_TAKE[] =
    "INSERT INTO veltrix.hunt_leases AS l(hunt,owner,epoch,expires_at) "
    "VALUES($1::text,$2::text,1,now()+$3::int8*interval '1 millisecond') "
    "ON CONFLICT(hunt) DO UPDATE SET owner=excluded.owner, expires_at=excluded.expires_at,"
    " epoch=CASE WHEN l.owner=excluded.owner AND l.expires_at>now() THEN l.epoch"
    " ELSE l.epoch+1 END "
    "WHERE l.expires_at<=now() OR l.owner=excluded.owner RETURNING epoch";
static const char LEASE_RENEW[] =
    "UPDATE veltrix.hunt_leases SET expires_at=now()+$2::int8*interval '1 millisecond' "
    "WHERE owner=$1::text AND expires_at>now() "
    "RETURNING hunt,owner,epoch,(extract(epoch FROM expires_at-now())*1000)::int8";
static const char LEASE_RELEASE[] =
    "UPDATE veltrix.hunt_leases SET expires_at=now() WHERE owner=$1::text "
    "AND ($2::text='' OR hunt=$2::text) AND expires_at>now()";

/* Runs sql outside any batch on the handle's connection; NULL after logging on failure. */
static PGresult *cluster_exec(struct pg *s, const char *what, const char *sql,
                              const struct args *a, ExecStatusType want)
{
    if (s->in_txn || ensure_conn(s) || !args_ok(a)) return NULL;
    PGresult *r = run(s->conn, s->timeout_ms, sql, NULL, a); /* bounded like every wait */
    if (r && PQresultStatus(r) == want) return r;
    say(s, what, r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    PQclear(r);
    return NULL;
}

static int pg_node_beat(struct store *base, const char *id, const char *advertise, int draining)
{
    struct args a = {0};
    arg_text(&a, id);
    arg_text(&a, advertise);
    arg_int(&a, draining != 0);
    PGresult *r = cluster_exec(PG(base), "node heartbeat", NODE_BEAT, &a, PGRES_COMMAND_OK);
    PQclear(r);
    return r ? 0 : STORE_EIO;
}

static int pg_each_node(struct store *base, store_node_cb cb, void *ctx)
{
    struct args a = {0};
    PGresult *r = cluster_exec(PG(base), "nodes", EACH_NODE, &a, PGRES_TUPLES_OK);
    if (!r) return STORE_EIO;
    int rc = 0;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        struct store_node n = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), col_int(r, i, 2),
                               col_int(r, i, 3) != 0};
        rc = cb(&n, ctx);
    }
    PQclear(r);
    return rc;
}

/* cb for each row (hunt, owner, epoch, left_ms) of r. */
static int lease_rows(PGresult *r, store_lease_cb cb, void *ctx)
{
    int rc = 0;
    for (int i = 0; !rc && cb && i < PQntuples(r); i++) {
        struct store_lease l = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                                (uint64_t)col_int(r, i, 2), col_int(r, i, 3)};
        rc = cb(&l, ctx);
    }
    PQclear(r);
    return rc;
}

static int pg_each_lease(struct store *base, store_lease_cb cb, void *ctx)
{
    struct args a = {0};
    PGresult *r = cluster_exec(PG(base), "leases", EACH_LEASE, &a, PGRES_TUPLES_OK);
    return r ? lease_rows(r, cb, ctx) : STORE_EIO;
}

static int pg_lease_take(struct store *base, const char *hunt, const char *node,
                         int64_t lease_ms, uint64_t *epoch)
{
    struct args a = {0};
    arg_text(&a, hunt);
    arg_text(&a, node);
    arg_int(&a, lease_ms);
    PGresult *r = cluster_exec(PG(base), "lease", LEASE_TAKE, &a, PGRES_TUPLES_OK);
    if (!r) return STORE_EIO;
    int taken = PQntuples(r) == 1;
    if (taken) *epoch = (uint64_t)col_int(r, 0, 0);
    PQclear(r);
    return taken;
}

static int pg_lease_renew(struct store *base, const char *node, int64_t lease_ms,
                          store_lease_cb cb, void *ctx)
{
    struct args a = {0};
    arg_text(&a, node);
    arg_int(&a, lease_ms);
    PGresult *r = cluster_exec(PG(base), "lease renewal", LEASE_RENEW, &a, PGRES_TUPLES_OK);
    return r ? lease_rows(r, cb, ctx) : STORE_EIO;
}

/* The rotation's UPDATE and the player's current row as the statement found it (a
 * data-modifying CTE: the SELECT sees the rows from before the UPDATE). */
#define REFRESH_ROTATE                                                                    \
    "WITH r AS (UPDATE veltrix.refresh SET id=$5::bytea, expires_ms=$6::int8 "              \
    "WHERE player=$1::bytea AND id=$2::bytea AND gen=$3::int8 AND used=0 "                 \
    "AND expires_ms>$4::int8 RETURNING 1) "                                                 \
    "SELECT (SELECT count(*) FROM r)::int8, c.id, c.gen FROM (SELECT 1) AS one "            \
    "LEFT JOIN LATERAL (SELECT id, gen FROM veltrix.refresh WHERE player=$1::bytea "        \
    "ORDER BY id DESC LIMIT 1) AS c ON true"
#define REVOKE_PLAYER                                                                     \
    "WITH d AS (DELETE FROM veltrix.refresh WHERE player=$1::bytea) "                       \
    "UPDATE veltrix.players SET gen=gen+1 WHERE id=$1::bytea RETURNING gen"

static int pg_refresh_rotate(struct store *base, const uint8_t player[16], const uint8_t old_id[16],
                             uint64_t gen, int64_t now_ms, const struct store_refresh *nw,
                             uint8_t cur_id[16], uint64_t *cur_gen)
{
    struct args a = {0};
    arg_bytes(&a, player, 16);
    arg_bytes(&a, old_id, 16);
    arg_int(&a, (int64_t)gen);
    arg_int(&a, now_ms);
    arg_bytes(&a, nw->id, 16);
    arg_int(&a, nw->expires_ms);
    PGresult *r = cluster_exec(PG(base), "refresh rotation", REFRESH_ROTATE, &a, PGRES_TUPLES_OK);
    if (!r) return STORE_EIO;
    int rc = PQntuples(r) == 1 ? 0 : STORE_ECORRUPT;
    memset(cur_id, 0, 16);
    *cur_gen = 0;
    if (!rc && !PQgetisnull(r, 0, 1)) {
        rc = col_fixed(r, 0, 1, cur_id, 16) ? STORE_ECORRUPT : 0;
        *cur_gen = (uint64_t)col_int(r, 0, 2);
    }
    if (!rc) rc = col_int(r, 0, 0) == 1;
    PQclear(r);
    return rc;
}

static int pg_revoke_player(struct store *base, const uint8_t player[16], uint64_t *gen)
{
    struct args a = {0};
    arg_bytes(&a, player, 16);
    PGresult *r = cluster_exec(PG(base), "revocation", REVOKE_PLAYER, &a, PGRES_TUPLES_OK);
    if (!r) return STORE_EIO;
    int rc = PQntuples(r) == 1;
    if (rc) *gen = (uint64_t)col_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static int pg_lease_release(struct store *base, const char *node, const char *hunt)
{
    struct args a = {0};
    arg_text(&a, node);
    arg_text(&a, hunt ? hunt : "");
    PGresult *r = cluster_exec(PG(base), "lease release", LEASE_RELEASE, &a, PGRES_COMMAND_OK);
    PQclear(r);
    return r ? 0 : STORE_EIO;
}

/* The first node's random secret wins; a node that lost the race to create it reads the
 * winner's (the statement's snapshot may predate it: then the second try sees it). */
static const char CLUSTER_SECRET[] =
    "WITH ins AS (INSERT INTO veltrix.cluster_secret(id,secret) VALUES(1,$1::bytea) "
    "ON CONFLICT(id) DO NOTHING RETURNING secret) "
    "SELECT secret FROM ins UNION ALL SELECT secret FROM veltrix.cluster_secret WHERE id=1";

static int pg_cluster_secret(struct store *base, const uint8_t candidate[32], uint8_t out[32])
{
    int rc = STORE_EIO;
    for (int attempt = 0; attempt < 2 && rc == STORE_EIO; attempt++) {
        struct args a = {0};
        arg_bytes(&a, candidate, 32);
        PGresult *r = cluster_exec(PG(base), "cluster secret", CLUSTER_SECRET, &a, PGRES_TUPLES_OK);
        if (!r) break;
        if (PQntuples(r) >= 1) rc = col_fixed(r, 0, 0, out, 32) ? STORE_ECORRUPT : 0;
        PQclear(r);
    }
    return rc;
}

static int player_found(struct walk *w, const PGresult *r, int i)
{
    int rc = player_row(w, r, i);
    return rc ? rc : 1;
}

static int pg_get_player(struct store *base, const uint8_t id[16], store_player_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_GET_PLAYER, .page = -1, .row = player_found,
                     .cb = (void *)cb, .ctx = ctx};
    arg_bytes(&w.a, id, 16);
    return walk(&w);
}

/* ---- whole-store walks and bulk events (veltrix migrate) -------------------------------- */

static int blob_row(struct walk *w, const PGresult *r, int i)
{
    uint8_t hash[32];
    size_t len;
    if (col_fixed(r, i, 0, hash, 32)) return STORE_ECORRUPT;
    const uint8_t *data = col_bytes(r, i, 1, &len);
    return ((store_blob_cb)w->cb)(hash, data, len, w->ctx);
}

static int blob_next(struct walk *w, const PGresult *r, int last)
{
    return keep_key(w, r, last, 0, 0, 0);
}

static int pg_each_blob(struct store *base, store_blob_cb cb, void *ctx)
{
    struct walk w = {.s = PG(base), .q = Q_BLOBS, .page = PAGE_BLOBS, .row = blob_row,
                     .next = blob_next, .cb = (void *)cb, .ctx = ctx};
    arg_bytes(&w.a, "", 0);
    arg_int(&w.a, PAGE_BLOBS);
    return walk(&w);
}

/* One snapshot at a time (each may be tens of megabytes), by hunt, on the snapshot
 * connection (snap_conn), as store_get_snapshot reads them. */
static int pg_each_snapshot(struct store *base, store_hunt_snapshot_cb cb, void *ctx)
{
    static const char sql[] =
        "SELECT hunt,seq,data FROM veltrix.snapshots WHERE hunt>$1::text ORDER BY hunt LIMIT 1";
    char last[256] = "";
    for (int rc = 0;;) {
        struct args a = {0};
        arg_text(&a, last);
        PGresult *r = snap_exec(PG(base), sql, &a, PGRES_TUPLES_OK);
        if (!r) return STORE_EIO;
        if (PQntuples(r) == 1) {
            size_t n, hunt_len = (size_t)PQgetlength(r, 0, 0);
            const uint8_t *data = col_bytes(r, 0, 2, &n);
            rc = hunt_len < sizeof last ? cb(PQgetvalue(r, 0, 0), (uint64_t)col_int(r, 0, 1),
                                             data, n, ctx)
                                        : STORE_ECORRUPT;
            memcpy(last, PQgetvalue(r, 0, 0), hunt_len < sizeof last ? hunt_len + 1 : 0);
        }
        int done = PQntuples(r) != 1;
        PQclear(r);
        if (rc || done) return rc;
    }
}

/* Appends to a growing buffer; -1 when out of memory (the buffer is then freed). */
/* evs as COPY's binary format: the signature, flags and header extension (both 0), a
 * tuple per event (its field count, then each field, in the column order of COPY_EVENTS
 * and of the types of veltrix.events: text, int8, int8, int2, bytea, bytea, and the
 * chain's hash, bytea or NULL — length -1 — for a row written before the chain), the end. */
static int copy_encode(struct buf *b, const struct store_event *evs, size_t n)
{
    static const char head[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    const uint16_t fields = htobe16(7), end = 0xffff;
    const uint32_t null = 0xffffffffu;
    int rc = buf_put(b, head, sizeof head);
    for (size_t i = 0; !rc && i < n; i++) {
        const struct store_event *e = &evs[i];
        rc = buf_put(b, &fields, 2) || buf_field(b, e->hunt, strlen(e->hunt)) ||
             buf_int(b, e->seq, 8) || buf_int(b, (uint64_t)e->time_ms, 8) ||
             buf_int(b, e->type, 2) || buf_field(b, e->player, 16) ||
             buf_field(b, e->data_len ? (const void *)e->data : "", e->data_len) ||
             (e->has_hash ? buf_field(b, e->hash, 32) : buf_put(b, &null, 4));
    }
    return rc || buf_put(b, &end, 2) ? -1 : 0;
}

/* Sends b as the data of the COPY that c is in, ends it and reads its answer. */
static int copy_send(struct pg *s, const struct buf *b)
{
    const size_t chunk = 1 << 20;
    int ok = 1;
    for (size_t o = 0; ok && o < b->len; o += chunk)
        ok = PQputCopyData(s->conn, b->p + o, (int)(b->len - o < chunk ? b->len - o : chunk)) == 1;
    if (PQputCopyEnd(s->conn, ok ? NULL : "veltrix: sending failed") != 1) ok = 0;
    PGresult *r = PQgetResult(s->conn);
    int rc = result_err(s, r, PGRES_COMMAND_OK);
    PQclear(r);
    while ((r = PQgetResult(s->conn))) PQclear(r);
    return rc ? rc : ok ? 0 : STORE_EIO;
}

/* The events in one COPY ... FROM STDIN (binary): about 3x the rows per second of the
 * pipelined INSERTs (the server parses, plans and answers no statement per row). COPY
 * has no place in a pipeline: an open batch's pipeline is settled first (its answers
 * read), the COPY runs in its transaction, and the next put opens a pipeline again. A
 * failure is the batch's error, as a put's would be. */
static int pg_put_events(struct store *base, const struct store_event *evs, size_t n)
{
    static const char COPY_EVENTS[] =
        "COPY veltrix.events(hunt,seq,time_ms,type,player,data,hash) FROM STDIN (FORMAT binary)";
    struct pg *s = PG(base);
    struct buf b = {0};
    int rc = s->in_txn ? settle(s) : ensure_conn(s);
    if (rc || !n) return rc;
    if (copy_encode(&b, evs, n)) {
        free(b.p);
        return s->in_txn ? (s->txn_err = STORE_EIO) : STORE_EIO;
    }
    PGresult *r = PQexec(s->conn, COPY_EVENTS);
    rc = result_err(s, r, PGRES_COPY_IN);
    PQclear(r);
    if (!rc) rc = copy_send(s, &b);
    free(b.p);
    if (rc && s->in_txn) s->txn_err = rc;
    return rc;
}

/* Both URL schemes libpq takes; only the first has a test URL (one suite run). */
#define PG_OPS                                                                            \
    .open = pg_open, .lock = NULL, .close = pg_close, .begin = pg_begin,                  \
    .commit = pg_commit, .rollback = pg_rollback, .put_event = pg_put_event,              \
    .put_player = pg_put_player, .put_refresh = pg_put_refresh,                            \
    .prune_refresh = pg_prune_refresh, .put_idem = pg_put_idem,                            \
    .prune_idem = pg_prune_idem, .each_hunt = pg_each_hunt, .each_event = pg_each_event,  \
    .each_player = pg_each_player, .each_refresh = pg_each_refresh,                       \
    .each_idem = pg_each_idem, .each_idem_of_hunt = pg_each_idem_of_hunt,                \
    .get_idem = pg_get_idem, .put_snapshot = pg_put_snapshot,                             \
    .get_snapshot = pg_get_snapshot, .delete_snapshot = pg_delete_snapshot,               \
    .put_blob = pg_put_blob, .get_blob = pg_get_blob, .put_tile = pg_put_tile,            \
    .put_map_version = pg_put_map_version, .each_tile = pg_each_tile,                     \
    .each_map_version = pg_each_map_version, .ping = pg_ping, .last_seq = pg_last_seq,    \
    .heads = pg_heads,                                                                    \
    .other_sessions = pg_other_sessions,                                                  \
    .get_map_version = pg_get_map_version,                                                \
    .node_beat = pg_node_beat, .each_node = pg_each_node, .each_lease = pg_each_lease,    \
    .lease_take = pg_lease_take, .lease_renew = pg_lease_renew,                           \
    .lease_release = pg_lease_release, .each_snapshot = pg_each_snapshot,                 \
    .refresh_rotate = pg_refresh_rotate, .revoke_player = pg_revoke_player,               \
    .cluster_secret = pg_cluster_secret, .get_player = pg_get_player,                     \
    .fenced_hunts = pg_fenced_hunts,                                                      \
    .each_blob = pg_each_blob, .put_events = pg_put_events

const struct store_backend store_pg_backend = {.scheme = "postgres", .test_url = pg_test_url,
                                               PG_OPS};
const struct store_backend store_postgresql_backend = {.scheme = "postgresql", PG_OPS};
