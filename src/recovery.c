/* recovery.c — see recovery.h. */
#include "recovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "vx.h"

struct load_ctx {
    struct store *reader;
    recovery_event_cb on_event; /* recovery_catch_up's (NULL: recovery at start) */
    void *on_event_ctx;
    const struct recovery_config *cfg;
    struct recovery_stats *st;
    struct hunt *h;
    char *err;
    size_t errcap;
    const char *snap_hunt; /* the hunt whose snapshot is being restored */
    uint64_t snap_seq;     /* its seq (0: none) */
    recovery_hunt_cb cb;
    void *cb_ctx;
};

int recovery_apply(struct hunt *h, const struct store_event *se, recovery_event_cb cb, void *ctx,
                   char *err, size_t errcap)
{
    struct event ev;
    char why[256] = "";
    struct engine_outcome out;
    int rc = event_read(&ev, se->seq, se->time_ms, se->type, se->player, se->data,
                               se->data_len);
    if (!rc) rc = engine_apply(h, &ev, &out, why, sizeof why);
    if (rc) {
        snprintf(err, errcap, "hunt '%s', event seq %llu (type %u): %s", engine_hunt_id(h),
                 (unsigned long long)se->seq, se->type, why[0] ? why : "cannot decode the event");
        return -1;
    }
    /* Rows from before the chain have no stored hash: theirs is the recomputed one. */
    if (se->has_hash && memcmp(se->hash, out.hash, sizeof out.hash)) {
        snprintf(err, errcap,
                 "hunt '%s', event seq %llu: its stored hash does not match the hash chain "
                 "recomputed from the log (the store was changed behind the server's back)",
                 engine_hunt_id(h), (unsigned long long)se->seq);
        return -1;
    }
    if (cb) cb(h, &ev, &out, ctx);
    return 0;
}

static int load_event(const struct store_event *se, void *arg)
{
    struct load_ctx *c = arg;
    if (recovery_apply(c->h, se, c->on_event, c->on_event_ctx, c->err, c->errcap)) return -1;
    c->st->events++;
    return 0;
}

static int restore_snapshot(uint64_t seq, const uint8_t *data, size_t len, void *arg)
{
    struct load_ctx *c = arg;
    char why[256];
    const char *id = c->snap_hunt;
    int rc = engine_snapshot_decode(id, data, len, &c->h, why, sizeof why);
    if (rc == ENGINE_OLD_SNAPSHOT) { /* from before the hash chain: replay the whole log */
        fprintf(stderr, "veltrix: hunt '%s': its snapshot at seq %llu is in an older format "
                        "(%s); replaying its whole log instead\n",
                id, (unsigned long long)seq, why);
        return 0;
    }
    if (!rc && engine_seq(c->h) != seq) {
        snprintf(why, sizeof why, "it holds seq %llu but its row says %llu",
                 (unsigned long long)engine_seq(c->h), (unsigned long long)seq);
        engine_hunt_destroy(c->h);
        c->h = NULL;
        rc = ENGINE_BAD_SNAPSHOT;
    }
    if (rc)
        snprintf(c->err, c->errcap,
                 "hunt '%s': its snapshot at seq %llu (%zu bytes) cannot be used: %s; start "
                 "with --ignore-snapshots to rebuild it from the whole log instead",
                 id, (unsigned long long)seq, len, why);
    else
        c->snap_seq = seq;
    return rc ? -1 : 0;
}

/* c->h = the hunt restored from its newest snapshot, or NULL when it has none (or
 * ignore_snapshots). -1 with c->err set when the snapshot is unusable. */
static int load_snapshot(const char *id, struct load_ctx *c)
{
    c->snap_hunt = id;
    c->snap_seq = 0;
    if (c->cfg->ignore_snapshots) return 0;
    int rc = store_get_snapshot(c->reader, id, restore_snapshot, c);
    if (rc >= 0) {
        if (c->h) c->st->snapshots++;
        return 0;
    }
    if (!c->err[0])
        snprintf(c->err, c->errcap, "hunt '%s': cannot read its snapshot (%s)", id,
                 store_err_str(rc));
    return -1;
}

/* After a snapshot: the log must reach at least the snapshot's seq. 0 when it does, 1
 * when it ends before (message in c->err), -1 when it cannot be read. */
static int check_log_end(const char *id, struct load_ctx *c)
{
    uint64_t last = 0;
    if (!c->snap_seq) return 0;
    if (store_last_seq(c->reader, id, &last)) return -1;
    if (last >= c->snap_seq) return 0;
    snprintf(c->err, c->errcap,
             "hunt '%s': its snapshot is at seq %llu but its log ends at seq %llu; start with "
             "--ignore-snapshots to rebuild it from the log",
             id, (unsigned long long)c->snap_seq, (unsigned long long)last);
    return 1;
}

/* The log ended before the snapshot (under --fsync batch/off a power failure can lose
 * the log's tail while the snapshot, in its own file, survived): the log is the truth.
 * The snapshot is deleted, or a later restart would load it once the log grew past its
 * seq with other events. c->h starts over from seq 0. */
static int drop_snapshot_ahead(const char *id, struct load_ctx *c)
{
    fprintf(stderr, "veltrix: WARNING: %s; --fsync is not 'always': deleting that snapshot "
                    "and replaying hunt '%s' from its whole log\n", c->err, id);
    c->err[0] = '\0';
    if (store_delete_snapshot(c->reader, id)) {
        snprintf(c->err, c->errcap, "hunt '%s': cannot delete its snapshot", id);
        return -1;
    }
    engine_hunt_destroy(c->h);
    VX_FATAL_IF(!(c->h = engine_hunt_create(id)));
    c->snap_seq = 0;
    c->st->snapshots--;
    return store_each_event(c->reader, id, 1, load_event, c);
}

/* c->h = hunt id recovered; *from = the seq its log replay began after. */
static int load_one(const char *id, struct load_ctx *c, uint64_t *from)
{
    if (!auth_valid_id(id, strlen(id))) {
        snprintf(c->err, c->errcap, "store holds an invalid hunt id '%s'", id);
        return -1;
    }
    c->h = NULL;
    if (load_snapshot(id, c)) return -1;
    VX_FATAL_IF(!c->h && !(c->h = engine_hunt_create(id)));
    *from = engine_seq(c->h);
    int rc = store_each_event(c->reader, id, *from + 1, load_event, c);
    if (!rc && (rc = check_log_end(id, c)) == 1 && !c->cfg->fsync_always) {
        rc = drop_snapshot_ahead(id, c);
        *from = 0;
    }
    if (rc) {
        if (!c->err[0]) snprintf(c->err, c->errcap, "cannot read the log of hunt '%s'", id);
        engine_hunt_destroy(c->h);
        c->h = NULL;
        return -1;
    }
    c->st->hunts++;
    return 0;
}

int recovery_load_hunt(struct store *reader, const struct recovery_config *cfg, const char *id,
                       struct hunt **out, uint64_t *from, struct recovery_stats *st, char *err,
                       size_t errcap)
{
    struct load_ctx c = {.reader = reader, .cfg = cfg, .st = st, .err = err, .errcap = errcap};
    err[0] = '\0';
    if (load_one(id, &c, from)) return -1;
    *out = c.h;
    return 0;
}

static int each_hunt(const char *id, void *arg)
{
    struct load_ctx *c = arg;
    uint64_t from;
    if (load_one(id, c, &from)) return -1;
    return c->cb(c->h, from, c->cb_ctx);
}

int recovery_load_hunts(struct store *reader, const struct recovery_config *cfg,
                        recovery_hunt_cb cb, void *ctx, struct recovery_stats *st, char *err,
                        size_t errcap)
{
    struct load_ctx c = {.reader = reader, .cfg = cfg, .st = st, .err = err, .errcap = errcap,
                         .cb = cb, .cb_ctx = ctx};
    err[0] = '\0';
    int rc = store_each_hunt(reader, each_hunt, &c);
    if (rc && !err[0]) snprintf(err, errcap, "cannot list the hunts in the store");
    return rc;
}

int64_t recovery_catch_up(struct store *reader, struct hunt *h, recovery_event_cb cb, void *ctx,
                          char *err, size_t errcap)
{
    struct recovery_stats st = {0};
    struct load_ctx c = {.reader = reader, .on_event = cb, .on_event_ctx = ctx, .st = &st,
                         .h = h, .err = err, .errcap = errcap};
    err[0] = '\0';
    int rc = store_each_event(reader, engine_hunt_id(h), engine_seq(h) + 1, load_event, &c);
    if (rc && !err[0])
        snprintf(err, errcap, "hunt '%s': cannot read its log after seq %llu (%s)",
                 engine_hunt_id(h), (unsigned long long)engine_seq(h), store_err_str(rc));
    return rc ? -1 : (int64_t)st.events;
}
