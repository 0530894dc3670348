/* node.c — see node.h: the node's thread, one round every beat_ms. */
#include "node.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "store.h"
#include "vx.h"

struct held {
    char hunt[VX_ID_MAX + 1];
    struct cluster_lease lease;
    int seen; /* returned by this round's renewal */
};

/* What one round read from the store (the thread's own, freed at the end of the round). */
struct peer {
    char *id, *advertise;
    int alive;
    int64_t owned;
};
struct lease_row {
    char *hunt, *owner;
    uint64_t epoch;
    int64_t left_ms;
};
struct round {
    struct peer *peers;
    size_t n_peers;
    struct lease_row *leases;
    size_t n_leases;
    char **hunts;
    size_t n_hunts, cap_hunts;
};

struct node {
    struct node_config c;
    char id[CLUSTER_NODE_ID_MAX + 1];
    char *advertise;
    struct store *s;
    pthread_t thread;
    int started; /* the thread runs */
    pthread_mutex_t mu; /* guards held, n_held, body, stop */
    pthread_cond_t wake;
    struct held *held;
    size_t n_held, cap_held;
    char *body;
    int stop;
    int64_t last_error_ms; /* store errors are logged at most once per 10 s */
};

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void complain(struct node *n, const char *what, int rc)
{
    int64_t now = mono_ms();
    if (n->last_error_ms && now - n->last_error_ms < 10000) return;
    n->last_error_ms = now;
    fprintf(stderr, "veltrix: node %s: %s: %s\n", n->id, what, store_err_str(rc));
}

/* ---- the leases this node holds (under mu) --------------------------------------------- */

static struct held *held_find(struct node *n, const char *hunt)
{
    for (size_t i = 0; i < n->n_held; i++)
        if (!strcmp(n->held[i].hunt, hunt)) return &n->held[i];
    return NULL;
}

static struct held *held_add(struct node *n, const char *hunt)
{
    if (n->n_held == n->cap_held) {
        size_t cap = n->cap_held ? 2 * n->cap_held : 16;
        struct held *h = realloc(n->held, cap * sizeof *h);
        if (!h) return NULL;
        n->held = h;
        n->cap_held = cap;
    }
    struct held *h = &n->held[n->n_held++];
    memset(h, 0, sizeof *h);
    snprintf(h->hunt, sizeof h->hunt, "%s", hunt);
    return h;
}

/* Records the lease of hunt taken at t0 under epoch (the rounds' take, or node_claim:
 * whichever came first added it). 1 when newly held, 0 when held already, -1 when out of
 * memory. */
static int held_taken(struct node *n, const char *hunt, uint64_t epoch, int64_t t0)
{
    pthread_mutex_lock(&n->mu);
    struct held *h = held_find(n, hunt);
    int fresh = !h;
    if (h || (h = held_add(n, hunt))) cluster_lease_renewed(&h->lease, epoch, t0);
    pthread_mutex_unlock(&n->mu);
    return h ? fresh : -1;
}

static void held_drop(struct node *n, struct held *h)
{
    *h = n->held[--n->n_held];
}

/* ---- one round -------------------------------------------------------------------------- */

struct renewal {
    struct node *n;
    int64_t sent_ms;
};

static int on_renewed(const struct store_lease *l, void *ctx)
{
    struct renewal *r = ctx;
    struct held *h = held_find(r->n, l->hunt);
    if (!h && !(h = held_add(r->n, l->hunt))) return 0;
    cluster_lease_renewed(&h->lease, l->epoch, r->sent_ms);
    h->seen = 1;
    return 0;
}

/* Renews every lease of this node; those the store no longer gives are dropped. */
static void renew(struct node *n, int64_t t0)
{
    struct renewal r = {n, t0};
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->n_held; i++) n->held[i].seen = 0;
    int rc = store_lease_renew(n->s, n->id, n->c.lease_ms, on_renewed, &r);
    for (size_t i = 0; !rc && i < n->n_held;) {
        if (n->held[i].seen) {
            i++;
            continue;
        }
        fprintf(stderr, "veltrix: node %s: lost the lease of hunt '%s' (epoch %llu)\n", n->id,
                n->held[i].hunt, (unsigned long long)n->held[i].lease.epoch);
        held_drop(n, &n->held[i]);
    }
    pthread_mutex_unlock(&n->mu);
    if (rc) complain(n, "lease renewal", rc);
}

static int on_peer(const struct store_node *p, void *ctx)
{
    struct node *n = ((void **)ctx)[0];
    struct round *r = ((void **)ctx)[1];
    struct peer *v = realloc(r->peers, (r->n_peers + 1) * sizeof *v);
    if (!v) return -1;
    r->peers = v;
    v[r->n_peers++] = (struct peer){strdup(p->id), strdup(p->advertise),
                                    !p->draining && p->age_ms < n->c.dead_ms, 0};
    return v[r->n_peers - 1].id && v[r->n_peers - 1].advertise ? 0 : -1;
}

static int add_hunt(struct round *r, const char *hunt)
{
    for (size_t i = 0; i < r->n_hunts; i++)
        if (!strcmp(r->hunts[i], hunt)) return 0;
    if (r->n_hunts == r->cap_hunts) {
        size_t cap = r->cap_hunts ? 2 * r->cap_hunts : 16;
        char **h = realloc(r->hunts, cap * sizeof *h);
        if (!h) return -1;
        r->hunts = h;
        r->cap_hunts = cap;
    }
    return (r->hunts[r->n_hunts] = strdup(hunt)) ? (r->n_hunts++, 0) : -1;
}

static int on_hunt(const char *hunt, void *ctx) { return add_hunt(ctx, hunt); }

static int on_lease(const struct store_lease *l, void *ctx)
{
    struct round *r = ctx;
    struct lease_row *v = realloc(r->leases, (r->n_leases + 1) * sizeof *v);
    if (!v) return -1;
    r->leases = v;
    v[r->n_leases++] = (struct lease_row){strdup(l->hunt), strdup(l->owner), l->epoch, l->left_ms};
    return v[r->n_leases - 1].hunt && v[r->n_leases - 1].owner ? 0 : -1;
}

static void round_free(struct round *r)
{
    for (size_t i = 0; i < r->n_peers; i++) free(r->peers[i].id), free(r->peers[i].advertise);
    for (size_t i = 0; i < r->n_leases; i++) free(r->leases[i].hunt), free(r->leases[i].owner);
    for (size_t i = 0; i < r->n_hunts; i++) free(r->hunts[i]);
    free(r->peers);
    free(r->leases);
    free(r->hunts);
    memset(r, 0, sizeof *r);
}

/* Takes the hunts placed on this node that it does not hold; hands over the ones it holds
 * that are placed elsewhere (a node joined or came back). */
static void place(struct node *n, struct round *r, int64_t t0, int draining)
{
    struct cluster_node *live = calloc(r->n_peers ? r->n_peers : 1, sizeof *live);
    if (!live) return;
    for (size_t i = 0; i < r->n_peers; i++) live[i] = (struct cluster_node){r->peers[i].id, r->peers[i].alive};
    for (size_t i = 0; i < r->n_hunts; i++) {
        const char *hunt = r->hunts[i];
        int want = cluster_place(hunt, live, r->n_peers);
        int mine = !draining && want >= 0 && !strcmp(live[want].id, n->id);
        pthread_mutex_lock(&n->mu);
        int held = held_find(n, hunt) != NULL;
        pthread_mutex_unlock(&n->mu);
        uint64_t epoch;
        if (mine && !held) {
            int rc = store_lease_take(n->s, hunt, n->id, n->c.lease_ms, &epoch);
            if (rc < 0) complain(n, "lease", rc);
            if (rc != 1) continue;
            held_taken(n, hunt, epoch, t0); /* node_claim may have taken it meanwhile */
            fprintf(stderr, "veltrix: node %s: owns hunt '%s' (epoch %llu)\n", n->id, hunt,
                    (unsigned long long)epoch);
        } else if (!mine && held && want >= 0) {
            pthread_mutex_lock(&n->mu);
            struct held *h = held_find(n, hunt);
            if (h) held_drop(n, h);
            pthread_mutex_unlock(&n->mu);
            int rc = store_lease_release(n->s, n->id, hunt);
            if (rc) complain(n, "lease release", rc);
            fprintf(stderr, "veltrix: node %s: hands hunt '%s' over to %s\n", n->id, hunt,
                    live[want].id);
        }
    }
    free(live);
}

/* The view for GET /v1/cluster, from this round's rows. */
static char *view(struct node *n, struct round *r)
{
    json_t *nodes = json_array(), *hunts = json_array();
    for (size_t i = 0; i < r->n_leases; i++) {
        const struct lease_row *l = &r->leases[i];
        uint64_t seq = 0;
        for (size_t k = 0; l->left_ms > 0 && k < r->n_peers; k++)
            r->peers[k].owned += !strcmp(r->peers[k].id, l->owner);
        if (store_last_seq(n->s, l->hunt, &seq)) seq = 0;
        json_array_append_new(hunts, json_pack("{s:s, s:o, s:I, s:I}", "hunt", l->hunt, "owner",
                                               l->left_ms > 0 ? json_string(l->owner) : json_null(),
                                               "epoch", (json_int_t)l->epoch, "seq",
                                               (json_int_t)seq));
    }
    for (size_t i = 0; i < r->n_peers; i++)
        json_array_append_new(nodes, json_pack("{s:s, s:s, s:b, s:I}", "node_id", r->peers[i].id,
                                               "advertise", r->peers[i].advertise, "alive",
                                               r->peers[i].alive, "hunts_owned",
                                               (json_int_t)r->peers[i].owned));
    json_t *j = json_pack("{s:s, s:o, s:o}", "node_id", n->id, "nodes", nodes, "hunts", hunts);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* One round: heartbeat, renewals, placement, the published view. 0, or the store's error
 * of the heartbeat (the first round's is fatal at start). */
static int run_round(struct node *n, int draining)
{
    struct round r = {0};
    void *peer_ctx[2] = {n, &r};
    int64_t t0 = mono_ms();
    int rc = store_node_beat(n->s, n->id, n->advertise, draining);
    if (rc) {
        complain(n, "heartbeat", rc);
        return rc;
    }
    renew(n, t0);
    if ((rc = store_each_node(n->s, on_peer, peer_ctx)) || (rc = store_each_lease(n->s, on_lease, &r)) ||
        (rc = store_each_hunt(n->s, on_hunt, &r))) {
        complain(n, "reading the cluster", rc);
        round_free(&r);
        return 0;
    }
    for (size_t i = 0; i < r.n_leases; i++)
        if (add_hunt(&r, r.leases[i].hunt)) break;
    place(n, &r, t0, draining);
    for (size_t i = 0; i < r.n_leases; i++) free(r.leases[i].hunt), free(r.leases[i].owner);
    r.n_leases = 0;
    if (!store_each_lease(n->s, on_lease, &r)) { /* after this round's takes and releases */
        char *body = view(n, &r);
        if (body) {
            pthread_mutex_lock(&n->mu);
            free(n->body);
            n->body = body;
            pthread_mutex_unlock(&n->mu);
        }
    }
    round_free(&r);
    return 0;
}

static void *node_main(void *arg)
{
    struct node *n = arg;
    pthread_mutex_lock(&n->mu);
    while (!n->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += n->c.beat_ms / 1000;
        until.tv_nsec += (n->c.beat_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&n->wake, &n->mu, &until);
        if (n->stop) break;
        pthread_mutex_unlock(&n->mu);
        run_round(n, 0);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

struct node *node_start(const struct node_config *c, struct store *s, char *err, size_t cap)
{
    struct node *n = calloc(1, sizeof *n);
    if (!n || !(n->advertise = strdup(c->advertise))) {
        free(n);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    n->c = *c;
    n->c.id = n->id;
    n->c.advertise = n->advertise;
    snprintf(n->id, sizeof n->id, "%s", c->id);
    n->s = s;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->wake, NULL);
    int rc = run_round(n, 0);
    if (rc || pthread_create(&n->thread, NULL, node_main, n)) {
        snprintf(err, cap, "node %s: %s", n->id,
                 rc ? store_err_str(rc) : "cannot start the node's thread");
        node_stop(n);
        return NULL;
    }
    n->started = 1;
    return n;
}

void node_stop(struct node *n)
{
    if (!n) return;
    if (n->started) {
        pthread_mutex_lock(&n->mu);
        n->stop = 1;
        pthread_cond_signal(&n->wake);
        pthread_mutex_unlock(&n->mu);
        pthread_join(n->thread, NULL);
        /* Hand over: the others stop counting this node and take its hunts at once. */
        if (!store_node_beat(n->s, n->id, n->advertise, 1) &&
            !store_lease_release(n->s, n->id, NULL))
            fprintf(stderr, "veltrix: node %s: released its hunts\n", n->id);
    }
    store_close(n->s);
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->mu);
    free(n->held);
    free(n->body);
    free(n->advertise);
    free(n);
}

char *node_cluster_body(struct node *n)
{
    pthread_mutex_lock(&n->mu);
    char *s = n->body ? strdup(n->body) : NULL;
    pthread_mutex_unlock(&n->mu);
    return s;
}

int node_owns(struct node *n, const char *hunt, uint64_t *epoch)
{
    pthread_mutex_lock(&n->mu);
    struct held *h = held_find(n, hunt);
    int yes = h && cluster_lease_may_write(&h->lease, mono_ms(), n->c.lease_ms, n->c.margin_ms);
    if (yes) *epoch = h->lease.epoch;
    pthread_mutex_unlock(&n->mu);
    return yes;
}

int node_claim(struct node *n, struct store *s, const char *hunt, uint64_t *epoch)
{
    int64_t t0 = mono_ms();
    int rc = store_lease_take(s, hunt, n->id, n->c.lease_ms, epoch);
    if (rc != 1) return rc;
    int fresh = held_taken(n, hunt, *epoch, t0);
    if (fresh < 0) return STORE_EIO; /* out of memory: the lease lapses unused */
    if (fresh)
        fprintf(stderr, "veltrix: node %s: owns hunt '%s' (epoch %llu), claimed for its first "
                        "write\n", n->id, hunt, (unsigned long long)*epoch);
    return 1;
}

const char *node_id(const struct node *n) { return n->id; }
