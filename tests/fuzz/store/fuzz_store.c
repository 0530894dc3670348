/* fuzz_store.c — the store's rows (store_sqlite.c): whatever is written comes back the
 * same, byte for byte.
 *
 * Input: records [op u8][fields...] that put events (hunt id and data from the input,
 * seq taken in order or, one time in eight, a seq already taken, which must conflict
 * and roll the batch back), players, refresh tokens, idempotency records and snapshots
 * into a fresh in-memory store of every registered backend that has one (SQLite's
 * ":memory:"), in batches of one transaction. Afterwards every
 * row is read back through the store's walks and compared with what was committed. */
#include "fuzz_util.h"
#include "store.h"

#define ROWS_MAX 32

struct row {
    int op;
    char hunt[65], text[256], key[65];
    uint8_t id[16], data[256], hash[32];
    size_t data_len;
    uint64_t seq;
    int64_t time;
    uint32_t gen;
    int type;
};

static struct row rows[ROWS_MAX];
static size_t n_rows, n_checked;

static void read_row(struct fuzz_in *in, struct row *r, uint64_t seq)
{
    size_t n;
    memset(r, 0, sizeof *r);
    r->op = fuzz_u8(in) % 5;
    fuzz_str(in, r->hunt, 64, &n);
    fuzz_str(in, r->text, 255, &n);
    fuzz_str(in, r->key, 64, &n);
    memcpy(r->id, fuzz_bytes(in, 16, &n), n);
    memcpy(r->hash, fuzz_bytes(in, 32, &n), n);
    memcpy(r->data, fuzz_bytes(in, fuzz_u8(in), &r->data_len), r->data_len);
    r->time = (int64_t)fuzz_u64(in);
    r->gen = (uint32_t)fuzz_u64(in);
    r->type = fuzz_u8(in);
    r->seq = seq;
}

static int put(struct store *s, const struct row *r)
{
    struct store_event ev = {r->hunt, r->seq, r->time, (uint8_t)r->type, {0}, r->data, r->data_len, {0}, 0, 0};
    struct store_player pl = {{0}, r->text, r->time, r->gen};
    struct store_refresh rt = {{0}, {0}, r->gen, r->time, r->type & 1};
    struct store_idem id = {r->hunt,     r->key, {0}, r->type, (const char *)r->data,
                            r->data_len, r->time, NULL};
    memcpy(ev.player, r->id, 16);
    memcpy(pl.id, r->id, 16);
    memcpy(rt.id, r->id, 16);
    memcpy(rt.player, r->hash, 16);
    memcpy(id.req_hash, r->hash, 32);
    switch (r->op) {
    case 0:
        return store_put_event(s, &ev);
    case 1:
        return store_put_player(s, &pl);
    case 2:
        return store_put_refresh(s, &rt);
    case 3:
        return store_put_idem(s, &id);
    default:
        return store_put_snapshot(s, r->hunt, r->seq, r->data, r->data_len);
    }
}

static int event_cb(const struct store_event *ev, void *ctx)
{
    const struct row *r = ctx;
    if (ev->seq != r->seq) return 0;
    FUZZ_CHECK(ev->time_ms == r->time && ev->type == (uint8_t)r->type);
    FUZZ_CHECK(!memcmp(ev->player, r->id, 16) && ev->data_len == r->data_len);
    FUZZ_CHECK(!r->data_len || !memcmp(ev->data, r->data, r->data_len));
    n_checked++;
    return 0;
}

static int idem_cb(const struct store_idem *i, void *ctx)
{
    const struct row *r = ctx;
    FUZZ_CHECK(!strcmp(i->scope, r->hunt) && !strcmp(i->key, r->key));
    FUZZ_CHECK(!memcmp(i->req_hash, r->hash, 32) && i->status == r->type);
    FUZZ_CHECK(i->body_len == r->data_len);
    FUZZ_CHECK(!r->data_len || !memcmp(i->body, r->data, r->data_len));
    FUZZ_CHECK(i->created_ms == r->time);
    n_checked++;
    return 0;
}

static int snap_cb(uint64_t seq, const uint8_t *data, size_t len, void *ctx)
{
    const struct row *r = ctx;
    FUZZ_CHECK(seq == r->seq && len == r->data_len && (!len || !memcmp(data, r->data, len)));
    n_checked++;
    return 0;
}

/* A player put again keeps its created_ms; the newest put sets the rest. */
static int player_cb(const struct store_player *p, void *ctx)
{
    size_t first = 0;
    while (first < n_rows && !(rows[first].op == 1 && !memcmp(rows[first].id, p->id, 16)))
        first++;
    for (size_t i = n_rows; i-- > 0;)
        if (rows[i].op == 1 && !memcmp(rows[i].id, p->id, 16)) {
            FUZZ_CHECK(!strcmp(p->display_name, rows[i].text));
            FUZZ_CHECK(p->created_ms == rows[first].time && p->gen == rows[i].gen);
            n_checked++;
            return 0;
        }
    FUZZ_CHECK(!"a player nobody put");
    return 0;
}

/* Whether a later row of the same kind overwrites r (snapshots, idempotency records). */
static int superseded(size_t at)
{
    for (size_t j = at + 1; j < n_rows; j++) {
        if (rows[j].op != rows[at].op || strcmp(rows[j].hunt, rows[at].hunt)) continue;
        if (rows[at].op == 4 || !strcmp(rows[j].key, rows[at].key)) return 1;
    }
    return 0;
}

static void verify(struct store *s)
{
    for (size_t i = 0; i < n_rows; i++) {
        const struct row *r = &rows[i];
        size_t before = n_checked;
        if (r->op == 0)
            FUZZ_CHECK(store_each_event(s, r->hunt, r->seq, event_cb, (void *)r) == 0);
        else if (r->op == 3 && !superseded(i))
            FUZZ_CHECK(store_get_idem(s, r->hunt, r->key, idem_cb, (void *)r) == 1);
        else if (r->op == 4 && !superseded(i))
            FUZZ_CHECK(store_get_snapshot(s, r->hunt, snap_cb, (void *)r) == 1);
        else
            continue;
        FUZZ_CHECK(n_checked == before + 1);
    }
    FUZZ_CHECK(store_each_player(s, player_cb, NULL) == 0);
}

/* One input against one backend's in-memory store. */
static void one(const char *url, const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct store *s = NULL;
    char err[256];
    FUZZ_CHECK(store_open(url, STORE_FSYNC_OFF, &s, err, sizeof err) == 0);
    n_rows = 0;
    uint64_t seq = 1;
    while (fuzz_more(&in) && n_rows < ROWS_MAX) {
        size_t batch = fuzz_u8(&in) % 4 + 1, start = n_rows;
        int conflict = 0;
        FUZZ_CHECK(store_begin(s) == 0);
        for (size_t i = 0; i < batch && n_rows < ROWS_MAX; i++) {
            struct row *r = &rows[n_rows];
            read_row(&in, r, seq);
            if (r->op == 0 && (r->type & 7) == 7 && seq > 1) r->seq = seq - 1;
            int rc = put(s, r);
            if (r->op == 0 && r->seq < seq && rc == STORE_ECONFLICT) {
                conflict = 1;
                break;
            }
            FUZZ_CHECK(rc == 0);
            if (r->op == 0) seq++;
            n_rows++;
        }
        if (conflict) { /* the whole batch goes */
            store_rollback(s);
            for (size_t i = start; i < n_rows; i++)
                if (rows[i].op == 0) seq--;
            n_rows = start;
        } else {
            FUZZ_CHECK(store_commit(s) == 0);
        }
    }
    verify(s);
    store_close(s);
}

/* Every registered backend that keeps a store in memory (store_backend_test_url with no
 * directory) gets the same input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct store_backend *const *be = store_backends();
    char url[256];
    for (size_t i = 0; be[i]; i++)
        if (!store_backend_test_url(be[i], NULL, url, sizeof url)) one(url, data, size);
    return 0;
}
