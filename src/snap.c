/* snap.c — background snapshots (see snap.h).
 *
 * Flow: snap_after_event (event loop) forks; the child dups the pipe's write end to fd
 * 3, closes every other descriptor (so it never holds the listening socket or the
 * store's files: a restart after kill -9 of the parent can bind at once, and it dies
 * with the parent through PR_SET_PDEATHSIG), encodes, writes, and _exit()s. The parent
 * hands (pid, read end, hunt, seq) to the snapshot thread, the only user of s->store.
 * Invariants: at most one job at a time (s->busy, event loop only, cleared by the
 * thread under s->mu); a snapshot row is written only when store_last_seq(hunt) >= its
 * seq, so recovery = snapshot + log from seq+1 never skips or invents an event. */
#include "snap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "vx.h"
#include "hmap.h"

#define DURABLE_WAIT_MS 60000 /* how long a snapshot waits for the log to reach its seq */

struct job {
    pid_t pid;
    int fd;
    uint64_t seq;
    uint64_t t0_ns, fork_ns;
    char hunt[ENGINE_ID_MAX + 1];
};

struct snap {
    struct store *store;
    uint64_t every;
    struct hmap last; /* hunt -> uint64_t *: seq of its newest snapshot (event loop) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job job; /* valid while has_job (under mu) */
    int has_job, stop, busy;
    struct snap_stats st; /* under mu */
};

/* ---- the child ------------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void child(const struct hunt *h, int fd, pid_t parent)
{
    uint8_t *buf;
    size_t len;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(3);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (dup2(fd, 3) < 0) _exit(4);
    close_range(4, ~0u, 0);
    for (int i = 0; i < 3; i++)
        close(i);
    if (engine_snapshot_encode(h, &buf, &len)) _exit(5);
    _exit(write_all(3, buf, len) ? 6 : 0);
}

/* ---- the snapshot thread -------------------------------------------------------------- */

/* Reads fd to its end into *out. 0 or -1. */
static int read_all(int fd, uint8_t **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) return -1;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) break;
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == 0) {
            *out = buf;
            *len = n;
            return 0;
        }
        n += (size_t)r;
    }
    free(buf);
    return -1;
}

/* Waits until the log holds seq, then stores the snapshot. */
static int store_when_durable(struct snap *s, const struct job *j, const uint8_t *buf, size_t len)
{
    uint64_t last = 0;
    for (int waited = 0; waited < DURABLE_WAIT_MS; waited += 2) {
        int rc = store_last_seq(s->store, j->hunt, &last);
        if (rc) return rc;
        if (last >= j->seq) break;
        usleep(2000);
    }
    if (last < j->seq) return STORE_EIO;
    return store_put_snapshot(s->store, j->hunt, j->seq, buf, len);
}

static void finish(struct snap *s, const struct job *j, const char *why, size_t len)
{
    uint64_t ns = metrics_now_ns() - j->t0_ns;
    pthread_mutex_lock(&s->mu);
    if (why) {
        s->st.failed++;
    } else {
        s->st.taken++;
        s->st.last_seq = j->seq;
        s->st.last_bytes = len;
        s->st.last_ns = ns;
    }
    s->has_job = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (why)
        fprintf(stderr, "veltrix: snapshot of hunt '%s' at seq %" PRIu64 " failed: %s\n", j->hunt,
                j->seq, why);
    else
        fprintf(stderr,
                "veltrix: snapshot of hunt '%s' at seq %" PRIu64 ": %zu bytes, %.1f ms "
                "(event loop paused %.2f ms for fork)\n",
                j->hunt, j->seq, len, ns / 1e6, j->fork_ns / 1e6);
}

static void run_job(struct snap *s, const struct job *j)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int status = 0;
    char err[256];
    int rd = read_all(j->fd, &buf, &len);
    close(j->fd);
    while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR) {
    }
    const char *why = NULL;
    if (rd || !WIFEXITED(status) || WEXITSTATUS(status))
        why = "the snapshot process did not finish";
    else if (engine_snapshot_check(buf, len, err, sizeof err))
        why = err;
    else if (store_when_durable(s, j, buf, len))
        why = "the store refused it or the log did not reach its seq";
    free(buf);
    finish(s, j, why, len);
}

static void *worker(void *arg)
{
    struct snap *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->has_job && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->has_job) break;
        struct job j = s->job;
        pthread_mutex_unlock(&s->mu);
        run_job(s, &j);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the event loop side -------------------------------------------------------------- */

int snap_loaded(struct snap *s, const char *hunt, uint64_t seq)
{
    uint64_t *v = hmap_get(&s->last, hunt, strlen(hunt));
    if (!v && (!(v = malloc(sizeof *v)) || hmap_put(&s->last, hunt, strlen(hunt), v))) {
        free(v);
        return -ENOMEM;
    }
    *v = seq;
    return 0;
}

static void fail_early(struct snap *s, const struct job *j, const char *what)
{
    fprintf(stderr, "veltrix: snapshot of hunt '%s' at seq %" PRIu64 " not started: %s: %s\n",
            j->hunt, j->seq, what, strerror(errno));
    pthread_mutex_lock(&s->mu);
    s->st.failed++;
    pthread_mutex_unlock(&s->mu);
}

/* 1 if the thread has no job (and so none is running). */
static int idle(struct snap *s)
{
    pthread_mutex_lock(&s->mu);
    int idle = !s->has_job;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

static void start(struct snap *s, const struct hunt *h)
{
    int p[2];
    struct job j = {0};
    snprintf(j.hunt, sizeof j.hunt, "%s", engine_hunt_id(h));
    j.seq = engine_seq(h);
    /* The next attempt is due `every` events after this one, even if this one fails. */
    if (snap_loaded(s, j.hunt, j.seq)) return;
    if (pipe2(p, O_CLOEXEC)) {
        fail_early(s, &j, "pipe");
        return;
    }
    j.t0_ns = metrics_now_ns();
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) child(h, p[1], parent);
    j.fork_ns = metrics_now_ns() - j.t0_ns;
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        fail_early(s, &j, "fork");
        return;
    }
    j.pid = pid;
    j.fd = p[0];
    pthread_mutex_lock(&s->mu);
    s->job = j;
    s->has_job = 1;
    s->st.last_fork_ns = j.fork_ns;
    if (j.fork_ns > s->st.max_fork_ns) s->st.max_fork_ns = j.fork_ns;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void snap_after_event(struct snap *s, const struct hunt *h)
{
    if (!s || !s->every) return;
    const char *id = engine_hunt_id(h);
    const uint64_t *last = hmap_get(&s->last, id, strlen(id));
    if (engine_seq(h) - (last ? *last : 0) < s->every || !idle(s)) return;
    start(s, h);
}

void snap_get_stats(struct snap *s, struct snap_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

void snap_render_metrics(struct snap *s, struct metrics_buf *b)
{
    struct snap_stats st;
    if (!s) return;
    snap_get_stats(s, &st);
    metrics_printf(b,
                   "# TYPE veltrix_snapshots_total counter\nveltrix_snapshots_total %" PRIu64 "\n"
                   "# TYPE veltrix_snapshot_failures_total counter\n"
                   "veltrix_snapshot_failures_total %" PRIu64 "\n"
                   "# TYPE veltrix_snapshot_in_progress gauge\nveltrix_snapshot_in_progress %d\n"
                   "# TYPE veltrix_snapshot_last_seq gauge\nveltrix_snapshot_last_seq %" PRIu64 "\n"
                   "# TYPE veltrix_snapshot_last_bytes gauge\n"
                   "veltrix_snapshot_last_bytes %" PRIu64 "\n"
                   "# TYPE veltrix_snapshot_last_duration_seconds gauge\n"
                   "veltrix_snapshot_last_duration_seconds %.6f\n"
                   "# TYPE veltrix_snapshot_last_fork_seconds gauge\n"
                   "veltrix_snapshot_last_fork_seconds %.6f\n"
                   "# TYPE veltrix_snapshot_max_fork_seconds gauge\n"
                   "veltrix_snapshot_max_fork_seconds %.6f\n",
                   st.taken, st.failed, !idle(s), st.last_seq, st.last_bytes, st.last_ns / 1e9,
                   st.last_fork_ns / 1e9, st.max_fork_ns / 1e9);
}

struct snap *snap_create(struct store *store, uint64_t every)
{
    struct snap *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->store = store;
    s->every = every;
    hmap_init(&s->last);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = vx_thread_start(&s->thread, NULL, worker, s);
    if (rc) {
        hmap_deinit(&s->last);
        free(s);
        return NULL;
    }
    return s;
}

static void free_value(void *v, void *ctx)
{
    free(v);
}

void snap_destroy(struct snap *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    hmap_each(&s->last, free_value, NULL);
    hmap_deinit(&s->last);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    store_close(s->store);
    free(s);
}
