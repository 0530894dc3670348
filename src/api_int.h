/* api_int.h — inside the API layer (api.c and api_<resource>.c): the server's state
 * (one `api_app`, owned by the event loop thread) and the helpers the endpoint files
 * share. Only the api files include it; the rest of Veltrix includes api.h. */
#ifndef VELTRIX_API_INT_H
#define VELTRIX_API_INT_H
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "auth.h"
#include "engine.h"
#include "feed.h"
#include "forward.h"
#include "fwdbatch.h"
#include "hmap.h"
#include "http.h"
#include "idem.h"
#include "jsonw.h"
#include "live.h"
#include "log.h"
#include "net.h"
#include "qr.h"
#include "ratelimit.h"
#include "recovery.h"
#include "snap.h"
#include "tail.h"
#include "tiles.h"
#include "uuid.h"

struct player {
    uint8_t id[16];
    char *name;
    int64_t created_ms;
    uint32_t gen;
    /* The one refresh token of the player that may be used: every other correctly signed
     * one of its generation was issued before and used, so presenting it is a reuse.
     * Nothing else is remembered per token, so memory does not grow with refreshes. */
    uint8_t refresh_id[16];
    int64_t refresh_exp_ms; /* 0: none */
    int64_t rate_tat;       /* --rate-player bucket (ratelimit.h rl_take_held) */
};

struct live_pending {
    struct hunt *h;
    struct ws_buf *frame;
};

struct app {
    struct api_config cfg;
    struct auth auth;
    struct store *reader;
    struct log *log;
    struct net *net;
    struct hmap players, hunts;
    struct idem *idem;
    struct tiles *tiles;
    struct live *live;
    struct forward *fwd; /* several nodes: writes to the hunts' owners (NULL: one node) */
    struct feed *feed;   /* several nodes, --replica-feed push: events to the replicas */
    int node_checked;    /* the gate checked this request's signature (a GATE_NODE route) */
    struct live_pending live_next; /* the live frame of the event apply() just applied */
    struct uuid7_gen uuid;
    uint64_t players_created, refresh_reused, writes_rejected_busy;
    int64_t idem_pruned_ms;    /* when a write last pruned the store's expired keys */
    int64_t refresh_pruned_ms; /* when a new refresh token last pruned expired ones */
};
extern struct app api_app;

struct idem_req {
    char scope[200];
    char key[256];
    uint8_t hash[32];
    int present;
};

/* Route gate classes (http_route.gate_class): which per-address bucket a route spends.
 * Tile reads have their own (--rate-ip-tiles): one map view asks for dozens of them, and
 * a venue behind one NAT address would spend --rate-ip on tiles alone (~6 µs each). */
enum { GATE_IP = 0, GATE_TILES = 1, GATE_NODE = 2 /* between nodes only: signed, no limit */ };

/* ---- api_req.c */
int64_t api_now_ms(void);
/* Copies a path parameter that must be an id; answers 400 invalid_id otherwise. */
int api_param_id(struct http_req *r, int i, char out[ENGINE_ID_MAX + 1]);
/* Param 0 is the hunt id: validates and looks it up, answering errors itself. */
struct hunt *api_hunt_param(struct http_req *r);
/* The bearer token of the request, or p == NULL. */
struct http_str api_bearer(struct http_req *r);
struct player *api_check_token(const char *tok, size_t len, int *err);
/* Several nodes, the gate's last step: a request whose token (a bearer, or ?token=) names
 * a player this node does not hold (or holds with an older session generation) is held
 * (1) while the store thread reads the player, then goes on (api_gate_resume). 0: nothing
 * to read (or the read is refused: the store is down, or PLAYER_LOADS_PER_S is spent;
 * the handler then answers 401). fwd, addr: the gate's, for api_gate_resume. */
int api_player_gate(struct http_req *r, int fwd, const uint8_t addr[16]);
/* A player read from the store on the store thread (api_store_job): set row.id, call
 * api_player_read there, then api_player_learn on the loop (which frees name). */
struct api_player_row {
    struct store_player row;
    char *name; /* row.display_name's copy */
    int rc;     /* 1 found, 0 not, < 0 a store error */
};
void api_player_read(struct store *s, struct api_player_row *x);
/* The player in memory (added, or its generation raised), or NULL: not found, or the
 * node holds --max-players already. */
struct player *api_player_learn(struct api_player_row *x);
/* veltrix_player_loads_total: players read from the store on a token (several nodes). */
void api_player_loads_render(struct metrics_buf *b);
/* The authenticated player, or NULL after answering 401. */
struct player *api_authed(struct http_req *r);
/* 0 for the admin key; otherwise answers 403 (a player token) or 401 and returns -1. */
int api_admin(struct http_req *r);
/* Whether an Authorization header value carries the admin key: bodies over 64 KiB are
 * read only then (http.h http_limits, checked before the body arrives). */
int api_big_body_ok(const char *v, size_t len);
/* The JSON object body (empty body = {} when allow_empty), or NULL after a 400. */
json_t *api_body_object(struct http_req *r, int allow_empty);
/* A required string field, or NULL after a 400. */
const char *api_str_field(struct http_req *r, json_t *obj, const char *name);
/* The value of a body of exactly the form {"name":"value"} (white space around tokens
 * allowed) whose value is printable ASCII without escapes, copied to out; 1 when the body
 * has that form. Every other body returns 0 and goes through jansson, which reads this
 * form the same way: a short cut for the shape clients send on hot paths. */
int api_body_plain_string(struct http_str b, const char *name, char *out, size_t cap);
/* Appends the rank, or null for an unranked player. */
void api_rank_w(struct jsonw *w, uint64_t rank);

/* ---- api_limits.c */
int api_limits_init(const struct rl_config *c);
void api_limits_deinit(void);
/* The client's address: the peer's, or behind --trusted-proxy the last address of
 * X-Forwarded-For (the one that proxy added; earlier ones are the client's say-so), or
 * on one of several nodes the address a forwarded request carries (checked by the gate). */
void api_client_addr(struct http_req *r, uint8_t out[16]);
/* The gate of every route: a forwarded request's proof (403 when it does not check), the
 * client address's bucket for the route's class, then where a hunt write goes
 * (api_write_route). */
int api_limit_ip(struct http_req *r);
/* Goes on with a request the gate held (a replica's read, a player's read): the gate's
 * steps after the hold (where a write goes; the player, unless player_read), then its
 * handler. */
void api_gate_resume(struct http_req *r, int fwd, const uint8_t addr[16], int player_read);
/* The authenticated player's bucket (every player endpoint). */
int api_limit_player(struct http_req *r, struct player *p);
/* Players created per address (POST /v1/players). */
int api_limit_new_player(struct http_req *r);
/* A live client's position: dropped outside the hunt's window (as POST .../position is
 * refused), then the speed check. */
int api_live_move_check(const uint8_t player[16], const char *hunt_id, double x, double y);
/* A position faster than --max-speed from the player's last one in this hunt: 422. */
int api_limit_move(struct http_req *r, const struct player *p, struct hunt *h, double x, double y);
/* Each metric family in one block (Prometheus text format wants them contiguous). */
void api_limits_render(struct metrics_buf *b);

/* ---- api_write.c */
/* Reads the Idempotency-Key header and looks it up for (who, method, path). Returns 1
 * when the request was answered (replayed, key reused with another body, waiting on a
 * pending duplicate, or a malformed key); 0 to go on (ir->present says if a key came). */
int api_idem_check(struct http_req *r, const char *who, struct idem_req *ir);
/* Several nodes: where a hunt write (a route other than GET under /v1/hunts/{hunt}) goes.
 * 0 to go on here (this node holds the hunt's lease, or the hunt is new and placed here:
 * the epoch is kept for api_entry_event); 1 when r was forwarded to the owner or answered
 * (503 hunt_moving: no owner, or forwarded already and this node does not own the hunt
 * either — at most one hop). A single node always goes on. */
int api_write_route(struct http_req *r, int forwarded, const uint8_t client_addr[16]);
/* Answers 503 unless the log can take one more entry. Checked before the engine decides,
 * so that everything applied in memory reaches the log. */
int api_log_room(struct http_req *r);
/* Queues e (ownership moves) with the idempotency record, and answers r with status and
 * body (malloc'd, ownership moves) once durable. api_log_room() must have been checked. */
void api_submit_raw(struct http_req *r, struct idem_req *ir, struct log_entry *e, int status,
                    char *body, size_t len);
/* api_submit_raw with resp (stolen) encoded compactly. */
void api_submit(struct http_req *r, struct idem_req *ir, struct log_entry *e, int status,
                json_t *resp);
struct log_entry *api_new_entry(void);
/* Adds ev (of hunt h) to entry e. */
void api_entry_event(struct log_entry *e, struct hunt *h, const struct event *ev);
/* Applies an event the engine just decided; a failure here is a programmer error. Its
 * live message is encoded now, while the outcome is fresh, and published once durable
 * (see api_submit() and on_durable()). */
void api_apply(struct hunt *h, const struct event *ev, struct engine_outcome *out);
void api_engine_error(struct http_req *r, int rc);
/* The HTTP status of an engine refusal (the engine knows nothing of HTTP). */
int api_engine_status(int err);

/* Several nodes: a player another node created, read from the store into memory (at
 * most PLAYER_LOADS_PER_S a second); NULL when unknown, refused or the store is down. */

/* ---- api_cluster.c */
/* 1 with *epoch set when this node may write hunt now: always for a single node (epoch 0,
 * unfenced); for one of several, while it holds the hunt's lease (node_owns) and has taken
 * the hunt over under it. 2: it holds the lease and is taking the hunt over (memory brought
 * to the store's head and the hunt's idempotency records loaded, on the tail thread: the
 * request may wait, api_take_wait). 0 otherwise: the write goes to the owner. */
int api_write_epoch(const char *hunt, uint64_t *epoch);
/* Holds r until hunt's takeover ends (api_write_epoch said 2): 1 held, 0 not (no take in
 * flight, or out of memory). A write (addr: its client address, fwd: forwarded) then goes
 * through the rest of its gate again, or is answered 503 hunt_moving if the take failed;
 * a token read (addr NULL) runs its handler again, from memory if the take failed. */
int api_take_wait(struct http_req *r, const char *hunt, int fwd, const uint8_t addr[16]);
/* The store refused a write of hunt because its lease moved (STORE_EFENCED): the hunt's
 * memory holds events that never landed. Called once per refused write. */
void api_hunt_fenced(const char *hunt);
/* A write of h applied in memory and queued to the log (delta 1), then durable or refused
 * (delta -1). Several nodes: while any is in flight, the hunt's memory may be ahead of the
 * store, so it is not caught up from the store (as a replica, by a read, or under a new
 * epoch) until they all resolve: landed, or fenced and then rebuilt. */
void api_cluster_write(const struct hunt *h, int delta);
/* Read-your-writes, the handler's part: a GET carrying a player token (a bearer, or
 * live's ?token=) of hunt id that the gate did not hold (api_read_gate): on a node that
 * owns the hunt and is taking it over, holds it until the take ends (1: the caller
 * returns; its handler runs again then); on a replica where the hunt is not loaded yet,
 * loads it from the store (synchronously: once per hunt). 0 otherwise. Anonymous reads
 * and a single node return 0 at once. (A handler that spent the player's rate-limit token
 * before it asked spends one more when it runs again: once per takeover.) */
int api_read_index(struct http_req *r, const char *id);
/* The gate's part of ReadIndex (several nodes): a GET of a hunt this node follows as a
 * replica, carrying a player token, is held (1) until a fetch of the hunt's events sent
 * after it came (tail.h, off the event loop; one fetch per hunt serves every read that
 * came before it was sent) is applied, then its handler runs (http_resume). 0: not such a
 * read, or the hunt is not here yet (api_read_index in the handler loads it). */
int api_read_gate(struct http_req *r);
/* POST /v1/cluster/events (feed.h): committed events another node pushes; only signed by
 * a node of the cluster (the gate checks it: forward_check), else 403. */
void api_cluster_events(struct http_req *r);
/* ---- api_batch.c: POST /v1/cluster/batch, another node's forwarded writes in one go */
void api_cluster_batch(struct http_req *r);
void api_batch_render_metrics(struct metrics_buf *b);
/* The log's landed callback (log_on_landed): the event goes to the feed. */
void api_feed_landed(const struct store_event *ev, void *ctx);
/* How far this node's memory of h trails the store (0, 0 on the owner and a single node):
 * *events committed that memory lacks, *ms since memory was last known to hold every
 * committed event (0 when it holds them now). On a replica the store is asked for the
 * hunt's head on the tail thread: the function holds r and returns 1 (the caller returns;
 * its handler runs again once the answer is in, and this then returns 0 with it). Every
 * request that comes while a look is in flight shares it. The store failing: what the
 * last look of the poll found. */
int api_replica_lag(struct http_req *r, const struct hunt *h, int64_t *ms, uint64_t *events);
/* The node that owns hunt (several nodes: this one while it holds the lease, else the
 * owner in this node's view, NULL while the hunt has none); NULL on a single node. */
const char *api_hunt_owner(const char *hunt);
/* /metrics: veltrix_replica_hunts, veltrix_replication_lag_ms (max over replica hunts of
 * the time since the last poll found memory at the head), veltrix_replication_lag_events
 * (events the last poll of each replica hunt found behind, summed),
 * veltrix_replica_events_applied_total, veltrix_read_index(_waits)_total and the
 * histogram veltrix_replication_event_age_seconds (owner's clock -> applied here). */
void api_cluster_metrics(struct metrics_buf *b);
/* Several nodes: starts following the store for the hunts this node does not own (a timer
 * on loop); a single node only initializes. api_cluster_stop undoes it. */
void api_cluster_start(void *loop);
/* Several nodes: runs run on the store thread, then done on the loop (tail_job). -1: no
 * store thread (a single node), or out of memory. */
int api_store_job(tail_job_run run, tail_job_done done, void *arg);
void api_cluster_stop(void);
/* ---- api_players.c */
struct player *api_add_player(const uint8_t id[16], const char *name, int64_t created,
                              uint32_t gen);
void api_players_create(struct http_req *r);
/* POST /v1/sessions/refresh. Never answered from an idempotency record: the answer holds
 * credentials, and the request's only proof of identity is the refresh token in its body,
 * which a thief may hold too. A refresh token works once; presenting it again, with or
 * without the same Idempotency-Key, is a reuse and revokes every session of the player. */
void api_refresh(struct http_req *r);
void api_me(struct http_req *r);

/* ---- api_hunts.c */
/* engine_define with a fresh secret seed from the OS when h is not defined yet (an
 * update keeps the hunt's seed). */
int api_define_hunt(const struct hunt *h, const char *json, size_t len, struct event *ev, char *err,
                    size_t errcap);
void api_hunt_put(struct http_req *r);
void api_hunt_get(struct http_req *r);
void api_codes(struct http_req *r);
void api_qr(struct http_req *r);
void api_digest(struct http_req *r);

/* ---- api_tiles.c */
void api_tile_get(struct http_req *r);
/* Stages one tile in memory and adds its rows (the blob when new, the draft row) to e.
 * 0, or a tiles error (nothing changed). */
int api_tile_stage(struct log_entry *e, const char *hunt, uint32_t x, uint32_t y, const char *ctype,
                   const void *data, size_t len);
void api_tile_put(struct http_req *r);
/* Publishes h's draft as its next map version: in memory now (O(chunks)), the event and
 * the manifest in e. Returns the version number. */
int64_t api_publish_map(struct hunt *h, struct log_entry *e);
void api_map_publish(struct http_req *r);

/* ---- api_play.c */
void api_scan(struct http_req *r);
void api_collect(struct http_req *r);
void api_open(struct http_req *r);
void api_position(struct http_req *r);
void api_hunt_me(struct http_req *r);
/* Parses an optional integer query parameter in [lo, hi]; -1 after answering 400. */
int api_query_int(struct http_req *r, const char *name, long lo, long hi, long *out);
void api_leaderboard(struct http_req *r);
void api_stats(struct http_req *r);
void api_hunt_log(struct http_req *r);
/* GET /v1/hunts/{hunt}/live?token=...[&since=N]: checks everything, then upgrades. */
void api_live(struct http_req *r);
const char *api_live_name(const uint8_t player[16], void *ctx);

/* ---- api_ops.c */
void api_healthz(struct http_req *r);
void api_metrics(struct http_req *r);
void api_cluster(struct http_req *r);

/* ---- api_web.c: the web pages (player app, organizer console, venue screen). Their
 * files come from web/ as one table generated at build time (web/build.mjs). */
struct web_asset {
    const char *path;  /* "/", "/admin", "/board" or "/assets/<name>-<hash>.<ext>" */
    const char *ctype;
    const unsigned char *body; /* the bytes */
    size_t len;
    const unsigned char *gz;   /* the same bytes gzipped */
    size_t gz_len;
    int immutable;     /* a content-hashed name: cached for a year */
    const char *etag, *gz_etag;
};
extern const struct web_asset web_assets[];
extern const size_t web_assets_n;
/* GET / (player app), GET /admin (console), GET /board/{hunt} (venue screen). */
void api_web_player(struct http_req *r);
void api_web_admin(struct http_req *r);
void api_web_board(struct http_req *r);
/* GET /assets/{name}: the bundle's content-hashed scripts, styles and images. */
void api_web_asset(struct http_req *r);

#endif
