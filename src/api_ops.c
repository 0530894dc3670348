/* api_ops.c — operations: /healthz, /metrics and /v1/cluster. */
#include "api_int.h"
#include "node.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* ---- operations ---------------------------------------------------------------------- */

void api_healthz(struct http_req *r)
{
    if (!log_store_down(api_app.log) && store_ping(api_app.reader) == 0)
        http_send(r, 200, "application/json", "{\"status\":\"ok\"}", 15);
    else
        http_error(r, 503, "store_unavailable", "the store does not answer");
}

/* A single node's own view: every hunt is its own, at epoch 0 (no leases). */
static void single_hunt(void *value, void *ctx)
{
    const struct hunt *h = value;
    json_array_append_new(ctx, json_pack("{s:s, s:s, s:i, s:I}", "hunt", engine_hunt_id(h),
                                         "owner", "local", "epoch", 0, "seq",
                                         (json_int_t)engine_seq(h)));
}

void api_cluster(struct http_req *r)
{
    if (api_admin(r)) return;
    if (api_app.cfg.node) {
        char *body = node_cluster_body(api_app.cfg.node);
        if (!body) {
            http_error(r, 503, "unavailable", "the cluster view is not ready");
            return;
        }
        http_send(r, 200, "application/json", body, strlen(body));
        free(body);
        return;
    }
    json_t *hunts = json_array();
    hmap_each(&api_app.hunts, single_hunt, hunts);
    json_t *me = json_pack("{s:s, s:s, s:b, s:I}", "node_id", "local", "advertise",
                           api_app.cfg.advertise ? api_app.cfg.advertise : "", "alive", 1,
                           "hunts_owned", (json_int_t)json_array_size(hunts));
    http_send_json(r, 200, json_pack("{s:s, s:[o], s:o}", "node_id", "local", "nodes", me,
                                    "hunts", hunts));
}

static void render_log(struct metrics_buf *b)
{
    const struct log_stats *s = log_stats(api_app.log);
    metrics_printf(b,
                   "# TYPE veltrix_events_appended_total counter\n"
                   "veltrix_events_appended_total %llu\n"
                   "# TYPE veltrix_log_batches_total counter\nveltrix_log_batches_total %llu\n"
                   "# TYPE veltrix_log_commit_failures_total counter\n"
                   "veltrix_log_commit_failures_total %llu\n"
                   "# TYPE veltrix_log_pending gauge\nveltrix_log_pending %zu\n"
                   "# TYPE veltrix_store_down gauge\nveltrix_store_down %d\n"
                   "# TYPE veltrix_store_outages_total counter\nveltrix_store_outages_total %llu\n"
                   "# TYPE veltrix_store_lag_ms gauge\nveltrix_store_lag_ms %llu\n"
                   "# TYPE veltrix_writes_rejected_busy_total counter\n"
                   "veltrix_writes_rejected_busy_total %llu\n",
                   (unsigned long long)metrics_get(&s->events),
                   (unsigned long long)metrics_get(&s->batches),
                   (unsigned long long)metrics_get(&s->failures), log_pending(api_app.log),
                   log_store_down(api_app.log), (unsigned long long)metrics_get(&s->outages),
                   (unsigned long long)log_lag_ms(api_app.log),
                   (unsigned long long)api_app.writes_rejected_busy);
    metrics_printf(b, "# TYPE veltrix_log_fenced_total counter\nveltrix_log_fenced_total %llu\n",
                   (unsigned long long)metrics_get(&s->fenced));
    api_cluster_metrics(b);
    metrics_printf(b, "# TYPE veltrix_log_batch_entries histogram\n");
    metrics_render_hist(b, "veltrix_log_batch_entries", "", &s->batch_entries, 1);
    metrics_printf(b, "# TYPE veltrix_log_commit_seconds histogram\n");
    metrics_render_hist(b, "veltrix_log_commit_seconds", "", &s->commit_ns, 0);
    metrics_printf(b, "# TYPE veltrix_log_wait_seconds histogram\n");
    metrics_render_hist(b, "veltrix_log_wait_seconds", "", &s->wait_ns, 0);
}

static void render_hunt(void *value, void *ctx)
{
    struct hunt *h = value;
    struct metrics_buf *b = ctx;
    struct engine_stats st;
    engine_stats(h, &st);
    const char *id = engine_hunt_id(h);
    metrics_printf(b, "veltrix_hunt_seq{hunt=\"%s\"} %llu\n", id, (unsigned long long)st.seq);
    metrics_printf(b, "veltrix_hunt_players{hunt=\"%s\"} %llu\n", id,
                   (unsigned long long)st.players);
    metrics_printf(b, "veltrix_hunt_chests_left{hunt=\"%s\"} %llu\n", id,
                   (unsigned long long)st.chests_left);
    metrics_printf(b, "veltrix_hunt_memory_bytes{hunt=\"%s\"} %zu\n", id, engine_memory_bytes(h));
}

/* /metrics is public on loopback listeners by default; otherwise it needs the admin key
 * or the metrics token (--metrics-access, --metrics-token). 0 to go on. */
static int metrics_denied(struct http_req *r)
{
    struct http_str t = api_bearer(r);
    const char *mt = api_app.cfg.metrics_token;
    if (api_app.cfg.metrics_public || (t.p && mt && auth_equal(t.p, t.len, mt, strlen(mt))))
        return 0;
    if (t.p && auth_equal(t.p, t.len, api_app.cfg.admin_key, strlen(api_app.cfg.admin_key)))
        return 0;
    http_error(r, 401, "unauthorized", "/metrics needs the admin key or the metrics token");
    return 1;
}

void api_metrics(struct http_req *r)
{
    struct metrics_buf b = {0};
    if (metrics_denied(r)) return;
    const struct idem_stats *is = idem_stats(api_app.idem);
    http_render_metrics(&b);
    net_render_metrics(api_app.net, &b);
    render_log(&b);
    live_render_metrics(api_app.live, &b);
    metrics_printf(
        &b,
        "# TYPE veltrix_idempotent_replays_total counter\n"
        "veltrix_idempotent_replays_total %llu\n"
        "# TYPE veltrix_idempotency_key_reused_total counter\n"
        "veltrix_idempotency_key_reused_total %llu\n"
        "# TYPE veltrix_idempotency_entries gauge\nveltrix_idempotency_entries %llu\n"
        "# TYPE veltrix_players gauge\nveltrix_players %zu\n"
        "# TYPE veltrix_refresh_token_reuse_total counter\n"
        "veltrix_refresh_token_reuse_total %llu\n"
        "# TYPE veltrix_hunt_seq gauge\n# TYPE veltrix_hunt_players gauge\n"
        "# TYPE veltrix_hunt_chests_left gauge\n# TYPE veltrix_hunt_memory_bytes gauge\n",
        (unsigned long long)is->replayed, (unsigned long long)is->mismatched,
        (unsigned long long)is->entries, api_app.players.count,
        (unsigned long long)api_app.refresh_reused);
    hmap_each(&api_app.hunts, render_hunt, &b);
    snap_render_metrics(api_app.cfg.snap, &b);
    api_limits_render(&b);
    tiles_render_metrics(api_app.tiles, &b);
    if (!b.p) {
        http_error(r, 503, "unavailable", "out of memory");
        return;
    }
    http_send(r, 200, "text/plain; version=0.0.4", b.p, b.len);
    free(b.p);
}
