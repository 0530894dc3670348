/* store.c — the store interface's one dispatch point: picks the backend by the URL's
 * scheme (backends[]), and forwards every operation to the handle's backend table
 * (store_int.h). Nothing here knows a backend's storage. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "store_int.h"

/* One row per backend; "fault:" wraps another store for failure tests (store_fault.c);
 * PostgreSQL answers to both of libpq's URI schemes (store_pg.c). */
static const struct store_backend *const backends[] = {
    &store_sqlite_backend, &store_fault_backend, &store_pg_backend, &store_postgresql_backend,
    NULL};

const struct store_backend *const *store_backends(void) { return backends; }

const char *store_backend_scheme(const struct store_backend *be) { return be->scheme; }

int store_backend_test_url(const struct store_backend *be, const char *dir, char *out,
                           size_t cap)
{
    return be->test_url ? be->test_url(dir, out, cap) : -1;
}

static const struct store_backend *backend_of(const char *url)
{
    for (size_t i = 0; backends[i]; i++) {
        size_t n = strlen(backends[i]->scheme);
        if (!strncmp(url, backends[i]->scheme, n) && url[n] == ':') return backends[i];
    }
    return NULL;
}

const char *store_err_str(int err)
{
    switch (err) {
    case STORE_OK: return "ok";
    case STORE_EIO: return "store i/o error";
    case STORE_ECONFLICT: return "sequence number already taken";
    case STORE_ECORRUPT: return "corrupt row in store";
    case STORE_EURL: return "bad store url";
    case STORE_ESTOP: return "stopped";
    case STORE_ENOTSUP: return "not supported by this store (several nodes need PostgreSQL)";
    case STORE_EFENCED: return "fenced: the hunt's lease moved to another node";
    }
    return "unknown store error";
}

/* The user info ends at the last '@' before the query: a password with a bare '/' (which
 * libpq then misreads) is hidden too. "password=" is libpq's parameter. */
void store_url_redact(const char *url, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = url, *auth = strstr(url, "://");
    const char *query = url + strcspn(url, "?#"), *at = NULL, *colon = NULL;
    for (const char *q = auth ? auth + 3 : query; q < query; q++)
        if (*q == '@') at = q;
    if (at) colon = memchr(auth + 3, ':', (size_t)(at - auth - 3));
    while (*p && o + 4 < cap) {
        if (p == colon) {
            o += (size_t)snprintf(out + o, cap - o, ":***");
            p = at;
        } else if (p > query && !strncasecmp(p, "password=", 9) &&
                   (p[-1] == '?' || p[-1] == '&')) {
            o += (size_t)snprintf(out + o, cap - o, "password=***");
            p += 9 + strcspn(p + 9, "&#");
        } else {
            out[o++] = *p++;
        }
    }
    out[o < cap ? o : cap - 1] = '\0';
}

void store_default_url(const char *data_dir, char *out, size_t cap)
{
    snprintf(out, cap, "sqlite:%s/veltrix.db", data_dir);
}

static int unknown(const char *url, char *err, size_t errcap)
{
    char list[128] = "";
    for (size_t i = 0; backends[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s:...", i ? ", " : "",
                 backends[i]->scheme);
    /* Only the scheme: the rest of a URL may hold a password. */
    snprintf(err, errcap, "unsupported store url scheme '%.*s' (expected %s)",
             (int)strcspn(url, ":/@"), url, list);
    return STORE_EURL;
}

int store_open(const char *url, enum store_fsync fsync, struct store **out, char *err,
               size_t errcap)
{
    const struct store_backend *be = backend_of(url);
    if (!be) return unknown(url, err, errcap);
    int rc = be->open(url, fsync, out, err, errcap);
    if (!rc) (*out)->be = be;
    return rc;
}

int store_lock(const char *url, char *err, size_t errcap)
{
    const struct store_backend *be = backend_of(url);
    if (!be) return unknown(url, err, errcap);
    return be->lock ? be->lock(url, err, errcap) : 0;
}

void store_close(struct store *s)
{
    if (s) s->be->close(s);
}

int store_begin(struct store *s) { return s->be->begin(s); }
int store_commit(struct store *s) { return s->be->commit(s); }
void store_rollback(struct store *s) { s->be->rollback(s); }
size_t store_fenced_hunts(struct store *s, const char *const **hunts)
{
    *hunts = NULL;
    return s->be->fenced_hunts ? s->be->fenced_hunts(s, hunts) : 0;
}
int store_put_event(struct store *s, const struct store_event *ev)
{
    if (ev->epoch && !s->be->fenced_hunts) return STORE_ENOTSUP;
    return s->be->put_event(s, ev);
}
int store_put_player(struct store *s, const struct store_player *p)
{
    return s->be->put_player(s, p);
}
int store_put_refresh(struct store *s, const struct store_refresh *r)
{
    return s->be->put_refresh(s, r);
}
int store_prune_refresh(struct store *s, int64_t now_ms)
{
    return s->be->prune_refresh(s, now_ms);
}
int store_put_idem(struct store *s, const struct store_idem *i) { return s->be->put_idem(s, i); }
int store_prune_idem(struct store *s, int64_t cutoff_ms)
{
    return s->be->prune_idem(s, cutoff_ms);
}
int store_each_hunt(struct store *s, store_hunt_cb cb, void *ctx)
{
    return s->be->each_hunt(s, cb, ctx);
}
int store_each_event(struct store *s, const char *hunt, uint64_t from_seq, store_event_cb cb,
                     void *ctx)
{
    return s->be->each_event(s, hunt, from_seq, cb, ctx);
}
int store_each_player(struct store *s, store_player_cb cb, void *ctx)
{
    return s->be->each_player(s, cb, ctx);
}
int store_each_refresh(struct store *s, int64_t now_ms, store_refresh_cb cb, void *ctx)
{
    return s->be->each_refresh(s, now_ms, cb, ctx);
}
int store_each_idem(struct store *s, int64_t since_ms, store_idem_cb cb, void *ctx)
{
    return s->be->each_idem(s, since_ms, cb, ctx);
}
int store_each_idem_of_hunt(struct store *s, const char *hunt, int64_t since_ms,
                            store_idem_cb cb, void *ctx)
{
    return s->be->each_idem_of_hunt ? s->be->each_idem_of_hunt(s, hunt, since_ms, cb, ctx)
                                    : STORE_ENOTSUP;
}

int store_get_idem(struct store *s, const char *scope, const char *key, store_idem_cb cb,
                   void *ctx)
{
    return s->be->get_idem(s, scope, key, cb, ctx);
}
int store_put_snapshot(struct store *s, const char *hunt, uint64_t seq, const uint8_t *data,
                       size_t len)
{
    return s->be->put_snapshot(s, hunt, seq, data, len);
}
int store_get_snapshot(struct store *s, const char *hunt, store_snapshot_cb cb, void *ctx)
{
    return s->be->get_snapshot(s, hunt, cb, ctx);
}
int store_delete_snapshot(struct store *s, const char *hunt)
{
    return s->be->delete_snapshot(s, hunt);
}
int store_put_blob(struct store *s, const uint8_t hash[32], const uint8_t *data, size_t len)
{
    return s->be->put_blob(s, hash, data, len);
}
int store_get_blob(struct store *s, const uint8_t hash[32], store_snapshot_cb cb, void *ctx)
{
    return s->be->get_blob(s, hash, cb, ctx);
}
int store_put_tile(struct store *s, const struct store_tile *t) { return s->be->put_tile(s, t); }
int store_put_map_version(struct store *s, const struct store_map_version *v)
{
    return s->be->put_map_version(s, v);
}
int store_each_tile(struct store *s, store_tile_cb cb, void *ctx)
{
    return s->be->each_tile(s, cb, ctx);
}
int store_get_map_version(struct store *s, const char *hunt, int64_t version,
                          store_map_version_cb cb, void *ctx)
{
    return s->be->get_map_version ? s->be->get_map_version(s, hunt, version, cb, ctx)
                                  : STORE_ENOTSUP;
}

int store_each_map_version(struct store *s, store_map_version_cb cb, void *ctx)
{
    return s->be->each_map_version(s, cb, ctx);
}
int store_ping(struct store *s) { return s->be->ping(s); }
int store_other_sessions(struct store *s, uint64_t *n)
{
    *n = 0;
    return s->be->other_sessions ? s->be->other_sessions(s, n) : STORE_ENOTSUP;
}

int store_last_seq(struct store *s, const char *hunt, uint64_t *seq)
{
    return s->be->last_seq(s, hunt, seq);
}

int store_heads(struct store *s, const char *const *hunts, size_t n, uint64_t *seqs)
{
    if (s->be->heads) return s->be->heads(s, hunts, n, seqs);
    for (size_t i = 0; i < n; i++) {
        int rc = s->be->last_seq(s, hunts[i], &seqs[i]);
        if (rc) return rc;
    }
    return 0;
}

int store_node_beat(struct store *s, const char *id, const char *advertise, int draining)
{
    return s->be->node_beat ? s->be->node_beat(s, id, advertise, draining) : STORE_ENOTSUP;
}
int store_each_node(struct store *s, store_node_cb cb, void *ctx)
{
    return s->be->each_node ? s->be->each_node(s, cb, ctx) : STORE_ENOTSUP;
}
int store_each_lease(struct store *s, store_lease_cb cb, void *ctx)
{
    return s->be->each_lease ? s->be->each_lease(s, cb, ctx) : STORE_ENOTSUP;
}
int store_lease_take(struct store *s, const char *hunt, const char *node, int64_t lease_ms,
                     uint64_t *epoch)
{
    return s->be->lease_take ? s->be->lease_take(s, hunt, node, lease_ms, epoch) : STORE_ENOTSUP;
}
int store_lease_renew(struct store *s, const char *node, int64_t lease_ms, store_lease_cb cb,
                      void *ctx)
{
    return s->be->lease_renew ? s->be->lease_renew(s, node, lease_ms, cb, ctx) : STORE_ENOTSUP;
}
int store_refresh_rotate(struct store *s, const uint8_t player[16], const uint8_t old_id[16],
                         uint64_t gen, int64_t now_ms, const struct store_refresh *nw,
                         uint8_t cur_id[16], uint64_t *cur_gen)
{
    return s->be->refresh_rotate
               ? s->be->refresh_rotate(s, player, old_id, gen, now_ms, nw, cur_id, cur_gen)
               : STORE_ENOTSUP;
}

int store_revoke_player(struct store *s, const uint8_t player[16], uint64_t *gen)
{
    return s->be->revoke_player ? s->be->revoke_player(s, player, gen) : STORE_ENOTSUP;
}

int store_lease_release(struct store *s, const char *node, const char *hunt)
{
    return s->be->lease_release ? s->be->lease_release(s, node, hunt) : STORE_ENOTSUP;
}
int store_cluster_secret(struct store *s, const uint8_t candidate[32], uint8_t out[32])
{
    return s->be->cluster_secret ? s->be->cluster_secret(s, candidate, out) : STORE_ENOTSUP;
}
int store_get_player(struct store *s, const uint8_t id[16], store_player_cb cb, void *ctx)
{
    return s->be->get_player ? s->be->get_player(s, id, cb, ctx) : STORE_ENOTSUP;
}
int store_each_snapshot(struct store *s, store_hunt_snapshot_cb cb, void *ctx)
{
    return s->be->each_snapshot(s, cb, ctx);
}
int store_each_blob(struct store *s, store_blob_cb cb, void *ctx)
{
    return s->be->each_blob(s, cb, ctx);
}
int store_put_events(struct store *s, const struct store_event *evs, size_t n)
{
    if (s->be->put_events) return s->be->put_events(s, evs, n);
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) rc = s->be->put_event(s, &evs[i]);
    return rc;
}
