/* leaderboard.c — the order-statistic set of leaderboard.h.
 *
 * Design: a weight-balanced tree (Adams; parameters delta = 3, ratio = 2, the pair
 * Hirai & Yamamoto proved correct for insert and delete) whose nodes live in one array
 * indexed by member, so a member needs no lookup table and no allocation of its own.
 * Children are uint32 indexes (NIL = UINT32_MAX) and each node keeps its subtree size,
 * which serves both rank/select and the balance rule. Nothing is random and there are no
 * parent pointers: the shape depends only on the calls made, and the height is at most
 * log_{4/3}(n + 1) (< 80) whatever scores arrive, so even adversarial input stays
 * O(log n). A node is 28 bytes; the array grows by 1/4, so <= 35 bytes per member.
 *
 * Invariants: node m is in the tree iff nodes[m].size != 0; size = size(left) +
 * size(right) + 1; in-order is score desc, seq asc, member asc; every node has
 * DELTA * (size(a) + 1) >= size(b) + 1 for its children a, b in either order (asserted
 * wherever a node is rebuilt, so each test run checks it on every path touched). */
#include "leaderboard.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define DELTA 3
#define RATIO 2
#define HEIGHT_MAX 96 /* > log_{4/3}(2^32) */

struct node {
    int64_t score;
    uint64_t seq;
    uint32_t left, right;
    uint32_t size; /* 0: member absent */
} __attribute__((packed, aligned(4)));

struct lb {
    struct node *nodes; /* indexed by member, cap of them */
    uint32_t cap;
    uint32_t root;
};

static inline uint32_t size_of(const struct node *n, uint32_t t)
{
    return t == NIL ? 0 : n[t].size;
}

/* Weight = size + 1, in 64 bits so DELTA * weight cannot overflow. */
static inline uint64_t weight(const struct node *n, uint32_t t)
{
    return (uint64_t)size_of(n, t) + 1;
}

/* Whether node a sorts before node b. */
static inline bool before(const struct node *n, uint32_t a, uint32_t b)
{
    if (n[a].score != n[b].score)
        return n[a].score > n[b].score;
    if (n[a].seq != n[b].seq)
        return n[a].seq < n[b].seq;
    return a < b;
}

static bool node_ok(const struct node *n, uint32_t t)
{
    uint64_t wl = weight(n, n[t].left), wr = weight(n, n[t].right);
    return n[t].size == wl + wr - 1 && DELTA * wl >= wr && DELTA * wr >= wl;
}

static uint32_t rotate_left(struct node *n, uint32_t t)
{
    uint32_t r = n[t].right;
    n[t].right = n[r].left;
    n[r].left = t;
    n[r].size = n[t].size;
    n[t].size = size_of(n, n[t].left) + size_of(n, n[t].right) + 1;
    return r;
}

static uint32_t rotate_right(struct node *n, uint32_t t)
{
    uint32_t l = n[t].left;
    n[t].left = n[l].right;
    n[l].right = t;
    n[l].size = n[t].size;
    n[t].size = size_of(n, n[t].left) + size_of(n, n[t].right) + 1;
    return l;
}

/* Restores t's size and balance after one insert or delete below it; its subtrees are
 * already valid. Returns the subtree's new root. */
static uint32_t balance(struct node *n, uint32_t t)
{
    uint64_t wl = weight(n, n[t].left), wr = weight(n, n[t].right);
    n[t].size = (uint32_t)(wl + wr - 1);
    if (wr > DELTA * wl) {
        uint32_t r = n[t].right;
        if (weight(n, n[r].left) >= RATIO * weight(n, n[r].right))
            n[t].right = rotate_right(n, r);
        t = rotate_left(n, t);
        assert(node_ok(n, n[t].left) && node_ok(n, n[t].right));
    } else if (wl > DELTA * wr) {
        uint32_t l = n[t].left;
        if (weight(n, n[l].right) >= RATIO * weight(n, n[l].left))
            n[t].left = rotate_left(n, l);
        t = rotate_right(n, t);
        assert(node_ok(n, n[t].left) && node_ok(n, n[t].right));
    }
    assert(node_ok(n, t));
    return t;
}

/* Links the detached node x (size 1, no children) into the subtree t. */
static uint32_t insert(struct node *n, uint32_t t, uint32_t x)
{
    if (t == NIL)
        return x;
    if (before(n, x, t))
        n[t].left = insert(n, n[t].left, x);
    else
        n[t].right = insert(n, n[t].right, x);
    return balance(n, t);
}

static uint32_t take_min(struct node *n, uint32_t t, uint32_t *min)
{
    if (n[t].left == NIL) {
        *min = t;
        return n[t].right;
    }
    n[t].left = take_min(n, n[t].left, min);
    return balance(n, t);
}

static uint32_t take_max(struct node *n, uint32_t t, uint32_t *max)
{
    if (n[t].right == NIL) {
        *max = t;
        return n[t].left;
    }
    n[t].right = take_max(n, n[t].right, max);
    return balance(n, t);
}

/* Joins the children of a removed node, taking the new root from the larger side. */
static uint32_t glue(struct node *n, uint32_t l, uint32_t r)
{
    uint32_t m;
    if (l == NIL)
        return r;
    if (r == NIL)
        return l;
    if (n[l].size > n[r].size)
        l = take_max(n, l, &m);
    else
        r = take_min(n, r, &m);
    n[m].left = l;
    n[m].right = r;
    return balance(n, m);
}

/* Unlinks x, which is in the subtree t. */
static uint32_t erase(struct node *n, uint32_t t, uint32_t x)
{
    assert(t != NIL);
    if (t == x)
        return glue(n, n[t].left, n[t].right);
    if (before(n, x, t))
        n[t].left = erase(n, n[t].left, x);
    else
        n[t].right = erase(n, n[t].right, x);
    return balance(n, t);
}

/* Makes room for index member; new slots are absent (size 0). */
static int grow(struct lb *lb, uint32_t member)
{
    size_t cap = (size_t)lb->cap + lb->cap / 4 + 16;
    if (cap <= member)
        cap = (size_t)member + 1;
    if (cap > NIL)
        cap = NIL; /* indexes stop below NIL */
    if (cap > SIZE_MAX / sizeof(struct node))
        return -ENOMEM;
    struct node *nodes = realloc(lb->nodes, cap * sizeof(struct node));
    if (!nodes)
        return -ENOMEM;
    memset(nodes + lb->cap, 0, (cap - lb->cap) * sizeof(struct node));
    lb->nodes = nodes;
    lb->cap = (uint32_t)cap;
    return 0;
}

struct lb *lb_create(void)
{
    struct lb *lb = calloc(1, sizeof(*lb));
    if (lb)
        lb->root = NIL;
    return lb;
}

void lb_destroy(struct lb *lb)
{
    if (!lb)
        return;
    free(lb->nodes);
    free(lb);
}

int lb_set(struct lb *lb, uint32_t member, int64_t score, uint64_t seq)
{
    assert(lb && member != NIL);
    if (member >= lb->cap && grow(lb, member) != 0)
        return -ENOMEM;
    struct node *n = lb->nodes;
    if (n[member].size != 0) {
        if (n[member].score == score && n[member].seq == seq)
            return 0;
        lb->root = erase(n, lb->root, member);
    }
    n[member] = (struct node){.score = score, .seq = seq, .left = NIL, .right = NIL, .size = 1};
    lb->root = insert(n, lb->root, member);
    return 0;
}

void lb_remove(struct lb *lb, uint32_t member)
{
    assert(lb);
    if (member >= lb->cap || lb->nodes[member].size == 0)
        return;
    lb->root = erase(lb->nodes, lb->root, member);
    lb->nodes[member].size = 0;
}

uint64_t lb_rank(const struct lb *lb, uint32_t member)
{
    assert(lb);
    if (member >= lb->cap || lb->nodes[member].size == 0)
        return 0;
    const struct node *n = lb->nodes;
    uint64_t rank = 0;
    uint32_t t = lb->root;
    while (t != member) {
        assert(t != NIL);
        if (before(n, member, t)) {
            t = n[t].left;
        } else {
            rank += (uint64_t)size_of(n, n[t].left) + 1;
            t = n[t].right;
        }
    }
    return rank + size_of(n, n[t].left) + 1;
}

size_t lb_count(const struct lb *lb)
{
    assert(lb);
    return lb->root == NIL ? 0 : lb->nodes[lb->root].size;
}

/* The stack holds, in order from the top, the nodes still to be emitted that are not in
 * the right subtree of a node already emitted: at most one root-to-leaf path. */
size_t lb_range(const struct lb *lb, size_t offset, size_t limit, struct lb_entry *out)
{
    assert(lb && (out || limit == 0));
    const struct node *n = lb->nodes;
    uint32_t stack[HEIGHT_MAX], t = lb->root;
    size_t depth = 0, written = 0, k = offset;
    if (offset >= lb_count(lb) || limit == 0)
        return 0;
    for (;;) { /* select the offset-th node */
        size_t left = size_of(n, n[t].left);
        if (k <= left) {
            assert(depth < HEIGHT_MAX);
            stack[depth++] = t;
            if (k == left)
                break;
            t = n[t].left;
        } else {
            k -= left + 1;
            t = n[t].right;
        }
    }
    while (written < limit && depth > 0) {
        t = stack[--depth];
        out[written] = (struct lb_entry){
            .member = t, .score = n[t].score, .seq = n[t].seq, .rank = offset + written + 1};
        written++;
        for (t = n[t].right; t != NIL; t = n[t].left) {
            assert(depth < HEIGHT_MAX);
            stack[depth++] = t;
        }
    }
    return written;
}

size_t lb_memory_bytes(const struct lb *lb)
{
    assert(lb);
    return sizeof(*lb) + (size_t)lb->cap * sizeof(struct node);
}
