/* leaderboard.c — the order-statistic set of leaderboard.h.
 *
 * Design: a B+tree with counts. Leaves hold up to LEAF_MAX entries (member, score, seq)
 * in leaderboard order, as parallel arrays; inner nodes hold up to INNER_MAX children,
 * the number of members under each and a separator key. slot[member] names the leaf
 * holding the member and every node points to its parent, so a rank is one slot read,
 * one leaf scan and a walk up 2-4 small inner nodes (which stay in cache) adding up the
 * counts to the left: about two cache misses, where a binary tree makes ~20 dependent
 * loads at a million members, the deep ones misses. An update touches the member's old
 * leaf and its new one, found by binary search down the inner nodes, and prefetches
 * both. Nodes live in two pools (arrays grown by 1/8, never shrunk) and are named by
 * uint32 index; nothing is random, so the shape depends only on the calls. Leaves are
 * kept ~80% full (a full leaf shares with a neighbour before splitting; appends at a
 * leaf's end fill it), so a member costs ~30-36 bytes: 20 in a leaf, 4 in slot, slack.
 * Each operation costs O(LEAF_MAX + INNER_MAX * height) = O(log n).
 *
 * Invariants: slot[m] == NIL iff m is absent, else leaf slot[m] holds m; entries in
 * leaf order (following next) are score desc, seq asc, member asc; in an inner node,
 * entry[i].size is the number of members under entry[i].child and, for i >= 1, every
 * key under child i-1 < sep[i] <= every key under child i (sep[0] is unused: the
 * parent's separator bounds it); every inner node has >= 2 children and, below the root,
 * >= INNER_MIN; a leaf below the root is never empty (one that drops under LEAF_MIN
 * borrows from or merges with a neighbour); all leaves are at depth `height`. */
#include "leaderboard.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define LEAF_CAP 64 /* one more than LEAF_MAX: a leaf overflows, then splits */
#define LEAF_MAX (LEAF_CAP - 1)
#define LEAF_MIN (LEAF_MAX / 3)
#define LEAF_SHARE_MAX (LEAF_MAX - 8) /* a neighbour this full takes a share, not a split */
#define INNER_CAP 32
#define INNER_MAX (INNER_CAP - 1)
#define INNER_MIN (INNER_MAX / 3)

struct key {
    int64_t score;
    uint64_t seq;
    uint32_t member;
};

struct leaf {
    uint32_t parent; /* inner node, NIL at the root; links the free list when free */
    uint32_t next;   /* the leaf after this one, NIL for the last */
    uint32_t count;
    uint32_t member[LEAF_CAP];
    int64_t score[LEAF_CAP];
    uint64_t seq[LEAF_CAP];
};

struct inner {
    uint32_t parent; /* first, as in struct leaf, for the free list */
    uint32_t count;
    uint32_t level; /* 1: the children are leaves */
    struct {
        uint32_t child, size; /* side by side: a rank walk reads both */
    } entry[INNER_CAP];
    struct key sep[INNER_CAP]; /* whole keys: a search probe reads one cache line */
};

struct pool {
    char *base;
    size_t elem_bytes;
    uint32_t cap, used, free_head, free_count;
};

struct lb {
    uint32_t *slot; /* member -> leaf, NIL when absent */
    uint32_t slot_cap;
    uint32_t root;   /* a leaf when height == 0, else an inner node */
    uint32_t height; /* inner levels above the leaves */
    uint32_t count;
    struct pool leaves, inners;
};

static inline struct leaf *leaf_at(const struct lb *lb, uint32_t i)
{
    assert(i < lb->leaves.used);
    return (struct leaf *)lb->leaves.base + i;
}

static inline struct inner *inner_at(const struct lb *lb, uint32_t i)
{
    assert(i < lb->inners.used);
    return (struct inner *)lb->inners.base + i;
}

/* ---- pools ---- */

/* Makes sure k more nodes can be taken without allocating, so an update that has begun
 * never fails half-way. */
static int pool_reserve(struct pool *p, uint32_t k)
{
    if (p->cap - p->used + p->free_count >= k) return 0;
    size_t cap = (size_t)p->cap + p->cap / 8 + k;
    if (cap >= NIL || cap > SIZE_MAX / p->elem_bytes) return -ENOMEM;
    char *base = realloc(p->base, cap * p->elem_bytes);
    if (!base) return -ENOMEM;
    p->base = base;
    p->cap = (uint32_t)cap;
    return 0;
}

static uint32_t pool_take(struct pool *p)
{
    uint32_t i;
    if (p->free_count > 0) {
        i = p->free_head;
        memcpy(&p->free_head, p->base + (size_t)i * p->elem_bytes, sizeof(uint32_t));
        p->free_count--;
    } else {
        assert(p->used < p->cap);
        i = p->used++;
    }
    return i;
}

static void pool_give(struct pool *p, uint32_t i)
{
    memcpy(p->base + (size_t)i * p->elem_bytes, &p->free_head, sizeof(uint32_t));
    p->free_head = i;
    p->free_count++;
}

/* ---- keys and node arrays ---- */

/* Whether (s, q, m) sorts before k; branch-free, as the answer is a coin flip. */
static inline uint32_t before(int64_t s, uint64_t q, uint32_t m, const struct key *k)
{
    return (s > k->score) | ((s == k->score) & ((q < k->seq) | ((q == k->seq) & (m < k->member))));
}

/* Whether k sorts before (s, q, m). */
static inline uint32_t key_before(const struct key *k, int64_t s, uint64_t q, uint32_t m)
{
    return (k->score > s) | ((k->score == s) & ((k->seq < q) | ((k->seq == q) & (k->member < m))));
}

static inline struct key leaf_key(const struct leaf *lf, uint32_t i)
{
    return (struct key){.score = lf->score[i], .seq = lf->seq[i], .member = lf->member[i]};
}

/* Moves n entries from s[si..] to d[di..]; the ranges may overlap. */
static void leaf_move(struct leaf *d, uint32_t di, const struct leaf *s, uint32_t si, uint32_t n)
{
    memmove(d->member + di, s->member + si, n * sizeof(d->member[0]));
    memmove(d->score + di, s->score + si, n * sizeof(d->score[0]));
    memmove(d->seq + di, s->seq + si, n * sizeof(d->seq[0]));
}

static void inner_move(struct inner *d, uint32_t di, const struct inner *s, uint32_t si, uint32_t n)
{
    memmove(d->entry + di, s->entry + si, n * sizeof(d->entry[0]));
    memmove(d->sep + di, s->sep + si, n * sizeof(d->sep[0]));
}

/* Position of child c in in. */
static inline uint32_t child_pos(const struct inner *in, uint32_t c)
{
    uint32_t i = 0;
    while (i < in->count && in->entry[i].child != c)
        i++;
    assert(i < in->count);
    return i;
}

/* Index of member, which must be in lf. */
static uint32_t leaf_find(const struct leaf *lf, uint32_t member)
{
    uint32_t i = 0;
    while (i < lf->count && lf->member[i] != member)
        i++;
    assert(i < lf->count);
    return i;
}

static void set_parent(struct lb *lb, uint32_t level, uint32_t node, uint32_t parent)
{
    if (level == 0)
        leaf_at(lb, node)->parent = parent;
    else
        inner_at(lb, node)->parent = parent;
}

/* Sets the parent of in's children [from, from + n) to in_index. */
static void adopt(struct lb *lb, struct inner *in, uint32_t in_index, uint32_t from, uint32_t n)
{
    for (uint32_t i = from; i < from + n; i++)
        set_parent(lb, in->level - 1, in->entry[i].child, in_index);
}

/* Points the slots of lf's entries [from, from + n) at lf_index. */
static void claim(struct lb *lb, const struct leaf *lf, uint32_t lf_index, uint32_t from,
                  uint32_t n)
{
    for (uint32_t i = from; i < from + n; i++)
        lb->slot[lf->member[i]] = lf_index;
}

static uint32_t sum_sizes(const struct inner *in)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i < in->count; i++)
        sum += in->entry[i].size;
    return sum;
}

/* Adds delta to the count of every inner node entry above leaf li. */
static void add_sizes(struct lb *lb, uint32_t li, uint32_t delta)
{
    uint32_t c = li;
    for (uint32_t p = leaf_at(lb, li)->parent; p != NIL;) {
        struct inner *in = inner_at(lb, p);
        in->entry[child_pos(in, c)].size += delta;
        c = p;
        p = in->parent;
    }
}

/* ---- insert ---- */

/* Child of in whose range holds k: the number of separators 1.. that are <= k, found by
 * a branch-free binary search (inner nodes are hot in cache; mispredictions are not). */
static uint32_t child_for(const struct inner *in, const struct key *k)
{
    uint32_t base = 1, len = in->count - 1;
    while (len > 1) {
        uint32_t half = len / 2, j = base + half - 1;
        base += key_before(k, in->sep[j].score, in->sep[j].seq, in->sep[j].member) ? 0 : half;
        len -= half;
    }
    base +=
        len == 1 && !key_before(k, in->sep[base].score, in->sep[base].seq, in->sep[base].member);
    return base - 1;
}

static uint32_t find_leaf(const struct lb *lb, const struct key *k)
{
    uint32_t x = lb->root;
    for (uint32_t h = lb->height; h > 0; h--) {
        const struct inner *in = inner_at(lb, x);
        x = in->entry[child_for(in, k)].child;
    }
    return x;
}

static void split_inner(struct lb *lb, uint32_t ii);

/* Puts node right (size right_size, separator sep) after node left under left's parent
 * pi, whose entry for left becomes left_size; grows a new root when pi is NIL. */
static void add_child(struct lb *lb, uint32_t pi, uint32_t level, uint32_t left, uint32_t left_size,
                      uint32_t right, uint32_t right_size, const struct key *sep)
{
    if (pi == NIL) {
        pi = pool_take(&lb->inners);
        struct inner *root = inner_at(lb, pi);
        *root = (struct inner){.parent = NIL, .count = 1, .level = level + 1};
        root->entry[0].child = left;
        lb->root = pi;
        lb->height++;
        set_parent(lb, level, left, pi);
    }
    struct inner *in = inner_at(lb, pi);
    uint32_t pos = child_pos(in, left) + 1;
    inner_move(in, pos + 1, in, pos, in->count - pos);
    in->count++;
    in->entry[pos].child = right;
    in->entry[pos].size = right_size;
    in->entry[pos - 1].size = left_size;
    in->sep[pos] = *sep;
    set_parent(lb, level, right, pi);
    if (in->count > INNER_MAX) split_inner(lb, pi);
}

static void split_inner(struct lb *lb, uint32_t ii)
{
    uint32_t ri = pool_take(&lb->inners);
    struct inner *in = inner_at(lb, ii), *r = inner_at(lb, ri);
    uint32_t mid = in->count / 2;
    r->parent = in->parent;
    r->level = in->level;
    r->count = in->count - mid;
    inner_move(r, 0, in, mid, r->count);
    in->count = mid;
    adopt(lb, r, ri, 0, r->count);
    add_child(lb, in->parent, in->level, ii, sum_sizes(in), ri, sum_sizes(r), &r->sep[0]);
}

/* Splits an overflowing leaf, leaving mid entries in it. */
static void split_leaf(struct lb *lb, uint32_t li, uint32_t mid)
{
    uint32_t ri = pool_take(&lb->leaves);
    struct leaf *lf = leaf_at(lb, li), *r = leaf_at(lb, ri);
    r->parent = lf->parent;
    r->count = lf->count - mid;
    leaf_move(r, 0, lf, mid, r->count);
    lf->count = mid;
    r->next = lf->next;
    lf->next = ri;
    claim(lb, r, ri, 0, r->count);
    struct key sep = leaf_key(r, 0);
    add_child(lb, lf->parent, 0, li, lf->count, ri, r->count, &sep);
}

static void leaf_insert_at(struct leaf *lf, uint32_t pos, const struct key *k)
{
    leaf_move(lf, pos + 1, lf, pos, lf->count - pos);
    lf->member[pos] = k->member;
    lf->score[pos] = k->score;
    lf->seq[pos] = k->seq;
    lf->count++;
}

/* Position of k in lf. Reads the scores alone unless some equal k's, since a leaf is
 * usually cold and the seq and member arrays are two thirds of it. */
static uint32_t leaf_lower(const struct leaf *lf, const struct key *k)
{
    uint32_t pos = 0, equal = 0;
    for (uint32_t i = 0; i < lf->count; i++) {
        pos += lf->score[i] > k->score;
        equal += lf->score[i] == k->score;
    }
    for (uint32_t i = pos, end = pos + equal; i < end; i++)
        pos += (lf->seq[i] < k->seq) | ((lf->seq[i] == k->seq) & (lf->member[i] < k->member));
    return pos;
}

static void prefetch_leaf(const struct leaf *lf)
{
    for (size_t off = 0; off < offsetof(struct leaf, seq); off += 64)
        __builtin_prefetch((const char *)lf + off);
}

static void fix_leaf_pair(struct lb *lb, uint32_t pi, uint32_t j);

/* Evens out the overflowing leaf li with a neighbour under the same parent that has
 * room; false when neither has. */
static bool share_leaf(struct lb *lb, uint32_t li)
{
    uint32_t pi = leaf_at(lb, li)->parent;
    if (pi == NIL) return false;
    const struct inner *p = inner_at(lb, pi);
    uint32_t pos = child_pos(p, li);
    if (pos > 0 && leaf_at(lb, p->entry[pos - 1].child)->count <= LEAF_SHARE_MAX) {
        fix_leaf_pair(lb, pi, pos);
        return true;
    }
    if (pos + 1 < p->count && leaf_at(lb, p->entry[pos + 1].child)->count <= LEAF_SHARE_MAX) {
        fix_leaf_pair(lb, pi, pos + 1);
        return true;
    }
    return false;
}

/* Inserts k into leaf li, which must be find_leaf(lb, k). */
static void tree_insert(struct lb *lb, const struct key *k, uint32_t li)
{
    struct leaf *lf = leaf_at(lb, li);
    uint32_t pos = leaf_lower(lf, k);
    assert(pos == 0 || before(lf->score[pos - 1], lf->seq[pos - 1], lf->member[pos - 1], k));
    leaf_insert_at(lf, pos, k);
    lb->slot[k->member] = li;
    lb->count++;
    add_sizes(lb, li, 1);
    if (lf->count <= LEAF_MAX) return;
    /* Appending at a leaf's end (new players, equal scores) leaves it full; otherwise
     * a sibling with room takes half the surplus, which keeps leaves ~80% full. */
    if (pos == LEAF_MAX)
        split_leaf(lb, li, LEAF_MAX);
    else if (!share_leaf(lb, li))
        split_leaf(lb, li, LEAF_CAP / 2);
}

/* ---- remove ---- */

static void fix_inner(struct lb *lb, uint32_t ii);

/* Evens out, or merges, leaves a and b = a's right neighbour, child j of p. */
static void fix_leaf_pair(struct lb *lb, uint32_t pi, uint32_t j)
{
    struct inner *p = inner_at(lb, pi);
    uint32_t ai = p->entry[j - 1].child, bi = p->entry[j].child;
    struct leaf *a = leaf_at(lb, ai), *b = leaf_at(lb, bi);
    uint32_t total = a->count + b->count, want = total / 2;
    if (total <= LEAF_MAX) {
        leaf_move(a, a->count, b, 0, b->count);
        claim(lb, a, ai, a->count, b->count);
        a->count = total;
        a->next = b->next;
        p->entry[j - 1].size = total;
        inner_move(p, j, p, j + 1, p->count - j - 1);
        p->count--;
        pool_give(&lb->leaves, bi);
        fix_inner(lb, pi);
        return;
    }
    if (a->count < want) { /* b's head to a's tail */
        uint32_t n = want - a->count;
        leaf_move(a, a->count, b, 0, n);
        claim(lb, a, ai, a->count, n);
        leaf_move(b, 0, b, n, b->count - n);
    } else { /* a's tail to b's head */
        uint32_t n = a->count - want;
        leaf_move(b, n, b, 0, b->count);
        leaf_move(b, 0, a, want, n);
        claim(lb, b, bi, 0, n);
    }
    a->count = want;
    b->count = total - want;
    p->entry[j - 1].size = a->count;
    p->entry[j].size = b->count;
    p->sep[j] = leaf_key(b, 0);
}

/* The same for inner nodes: separators rotate through the parent g. */
static void fix_inner_pair(struct lb *lb, uint32_t gi, uint32_t j)
{
    struct inner *g = inner_at(lb, gi);
    uint32_t ai = g->entry[j - 1].child, bi = g->entry[j].child;
    struct inner *a = inner_at(lb, ai), *b = inner_at(lb, bi);
    uint32_t total = a->count + b->count, want = total / 2, moved = 0;
    b->sep[0] = g->sep[j]; /* b's first child is bounded by g's separator */
    if (total <= INNER_MAX) {
        inner_move(a, a->count, b, 0, b->count);
        adopt(lb, a, ai, a->count, b->count);
        a->count = total;
        g->entry[j - 1].size += g->entry[j].size;
        inner_move(g, j, g, j + 1, g->count - j - 1);
        g->count--;
        pool_give(&lb->inners, bi);
        fix_inner(lb, gi);
        return;
    }
    if (a->count < want) {
        uint32_t n = want - a->count;
        inner_move(a, a->count, b, 0, n);
        adopt(lb, a, ai, a->count, n);
        for (uint32_t i = a->count; i < want; i++)
            moved += a->entry[i].size;
        inner_move(b, 0, b, n, b->count - n);
        g->entry[j - 1].size += moved;
        g->entry[j].size -= moved;
    } else {
        uint32_t n = a->count - want;
        inner_move(b, n, b, 0, b->count);
        inner_move(b, 0, a, want, n);
        adopt(lb, b, bi, 0, n);
        for (uint32_t i = 0; i < n; i++)
            moved += b->entry[i].size;
        g->entry[j - 1].size -= moved;
        g->entry[j].size += moved;
    }
    a->count = want;
    b->count = total - want;
    g->sep[j] = b->sep[0];
}

static void fix_inner(struct lb *lb, uint32_t ii)
{
    struct inner *in = inner_at(lb, ii);
    if (in->parent == NIL) {
        if (in->count == 1) { /* the root has one child: it becomes the root */
            lb->root = in->entry[0].child;
            lb->height--;
            set_parent(lb, in->level - 1, lb->root, NIL);
            pool_give(&lb->inners, ii);
        }
        return;
    }
    if (in->count >= INNER_MIN) return;
    uint32_t pos = child_pos(inner_at(lb, in->parent), ii);
    fix_inner_pair(lb, in->parent, pos > 0 ? pos : 1);
}

/* Returns whether the tree changed shape (so earlier find_leaf answers are stale). */
static bool tree_remove(struct lb *lb, uint32_t member)
{
    uint32_t li = lb->slot[member];
    struct leaf *lf = leaf_at(lb, li);
    uint32_t i = leaf_find(lf, member);
    leaf_move(lf, i, lf, i + 1, lf->count - i - 1);
    lf->count--;
    lb->slot[member] = NIL;
    lb->count--;
    add_sizes(lb, li, (uint32_t)-1);
    if (lf->count >= LEAF_MIN || lf->parent == NIL) return false;
    uint32_t pos = child_pos(inner_at(lb, lf->parent), li);
    fix_leaf_pair(lb, lf->parent, pos > 0 ? pos : 1);
    return true;
}

/* Moves member within its leaf when its new key sorts strictly between two of the leaf's
 * other entries (the common small move), so no count changes; returns false when the
 * tree must change instead. */
static bool move_in_leaf(struct lb *lb, const struct key *k)
{
    struct leaf *lf = leaf_at(lb, lb->slot[k->member]);
    uint32_t i = leaf_find(lf, k->member);
    if (lf->score[i] == k->score && lf->seq[i] == k->seq) return true;
    if (lf->count < 3) return false;
    uint32_t lo = i == 0 ? 1 : 0, hi = i == lf->count - 1 ? lf->count - 2 : lf->count - 1;
    if (!before(lf->score[lo], lf->seq[lo], lf->member[lo], k) ||
        !key_before(k, lf->score[hi], lf->seq[hi], lf->member[hi]))
        return false;
    leaf_move(lf, i, lf, i + 1, lf->count - i - 1);
    lf->count--;
    leaf_insert_at(lf, leaf_lower(lf, k), k);
    return true;
}

/* ---- interface ---- */

static int grow_slots(struct lb *lb, uint32_t member)
{
    size_t cap = (size_t)lb->slot_cap + lb->slot_cap / 4 + 16;
    if (cap <= member) cap = (size_t)member + 1;
    if (cap > NIL) cap = NIL;
    if (cap > SIZE_MAX / sizeof(uint32_t)) return -ENOMEM;
    uint32_t *slot = realloc(lb->slot, cap * sizeof(uint32_t));
    if (!slot) return -ENOMEM;
    memset(slot + lb->slot_cap, 0xff, (cap - lb->slot_cap) * sizeof(uint32_t)); /* NIL */
    lb->slot = slot;
    lb->slot_cap = (uint32_t)cap;
    return 0;
}

struct lb *lb_create(void)
{
    struct lb *lb = calloc(1, sizeof(*lb));
    if (!lb) return NULL;
    lb->leaves.elem_bytes = sizeof(struct leaf);
    lb->inners.elem_bytes = sizeof(struct inner);
    if (pool_reserve(&lb->leaves, 1) != 0) {
        free(lb);
        return NULL;
    }
    lb->root = pool_take(&lb->leaves);
    *leaf_at(lb, lb->root) = (struct leaf){.parent = NIL, .next = NIL, .count = 0};
    return lb;
}

void lb_destroy(struct lb *lb)
{
    if (!lb) return;
    free(lb->slot);
    free(lb->leaves.base);
    free(lb->inners.base);
    free(lb);
}

int lb_set(struct lb *lb, uint32_t member, int64_t score, uint64_t seq)
{
    assert(lb && member != NIL);
    if (member >= lb->slot_cap && grow_slots(lb, member) != 0) return -ENOMEM;
    if (pool_reserve(&lb->leaves, 1) != 0 || pool_reserve(&lb->inners, lb->height + 1) != 0)
        return -ENOMEM;
    struct key k = {.score = score, .seq = seq, .member = member};
    uint32_t old = lb->slot[member];
    /* Both leaves are likely cold: start loading them before either is needed. */
    if (old != NIL) prefetch_leaf(leaf_at(lb, old));
    uint32_t target = find_leaf(lb, &k);
    prefetch_leaf(leaf_at(lb, target));
    if (old != NIL) {
        if (move_in_leaf(lb, &k)) return 0;
        if (tree_remove(lb, member)) target = find_leaf(lb, &k);
    }
    tree_insert(lb, &k, target);
    return 0;
}

void lb_remove(struct lb *lb, uint32_t member)
{
    assert(lb);
    if (member < lb->slot_cap && lb->slot[member] != NIL) (void)tree_remove(lb, member);
}

uint64_t lb_rank(const struct lb *lb, uint32_t member)
{
    assert(lb);
    if (member >= lb->slot_cap || lb->slot[member] == NIL) return 0;
    uint32_t c = lb->slot[member];
    const struct leaf *lf = leaf_at(lb, c);
    uint64_t rank = (uint64_t)leaf_find(lf, member) + 1;
    for (uint32_t p = lf->parent; p != NIL; c = p, p = inner_at(lb, p)->parent) {
        const struct inner *in = inner_at(lb, p);
        uint32_t i = 0;
        for (; i < in->count && in->entry[i].child != c; i++)
            rank += in->entry[i].size;
        assert(i < in->count);
    }
    return rank;
}

size_t lb_count(const struct lb *lb)
{
    assert(lb);
    return lb->count;
}

size_t lb_range(const struct lb *lb, size_t offset, size_t limit, struct lb_entry *out)
{
    assert(lb && (out || limit == 0));
    size_t k = offset, written = 0;
    if (offset >= lb->count || limit == 0) return 0;
    uint32_t x = lb->root;
    for (uint32_t h = lb->height; h > 0; h--) { /* the leaf holding position offset */
        const struct inner *in = inner_at(lb, x);
        uint32_t i = 0;
        for (; i + 1 < in->count && k >= in->entry[i].size; i++)
            k -= in->entry[i].size;
        assert(k < in->entry[i].size);
        x = in->entry[i].child;
    }
    for (; x != NIL && written < limit; x = leaf_at(lb, x)->next, k = 0) {
        const struct leaf *lf = leaf_at(lb, x);
        for (; k < lf->count && written < limit; k++, written++)
            out[written] = (struct lb_entry){.member = lf->member[k],
                                             .score = lf->score[k],
                                             .seq = lf->seq[k],
                                             .rank = offset + written + 1};
    }
    return written;
}

size_t lb_memory_bytes(const struct lb *lb)
{
    assert(lb);
    return sizeof(*lb) + (size_t)lb->slot_cap * sizeof(uint32_t) +
           (size_t)lb->leaves.cap * lb->leaves.elem_bytes +
           (size_t)lb->inners.cap * lb->inners.elem_bytes;
}

/* ---- lb_check ---- */

#define VERIFY(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) return -__LINE__;                                                             \
    } while (0)

/* State carried along the in-order walk. */
struct walk {
    uint32_t prev_leaf; /* NIL before the first leaf */
    uint32_t leaves;
    struct key last; /* the previous entry, valid once entries > 0 */
    uint64_t entries;
};

/* Whether k lies in [lo, hi); NULL bounds are open. */
static bool in_bounds(const struct key *k, const struct key *lo, const struct key *hi)
{
    return (!lo || !key_before(k, lo->score, lo->seq, lo->member)) &&
           (!hi || key_before(k, hi->score, hi->seq, hi->member));
}

static int64_t check_leaf(const struct lb *lb, uint32_t li, uint32_t parent, const struct key *lo,
                          const struct key *hi, struct walk *w)
{
    VERIFY(li < lb->leaves.used);
    const struct leaf *lf = leaf_at(lb, li);
    VERIFY(lf->parent == parent && lf->count <= LEAF_MAX && (parent == NIL || lf->count > 0));
    VERIFY(w->prev_leaf == NIL || leaf_at(lb, w->prev_leaf)->next == li);
    for (uint32_t i = 0; i < lf->count; i++) {
        struct key k = leaf_key(lf, i);
        VERIFY(k.member < lb->slot_cap && lb->slot[k.member] == li && in_bounds(&k, lo, hi));
        VERIFY(w->entries == 0 || key_before(&w->last, k.score, k.seq, k.member));
        w->last = k;
        w->entries++;
    }
    w->prev_leaf = li;
    w->leaves++;
    return lf->count;
}

/* Checks the subtree x, whose keys must lie in [lo, hi); returns its number of
 * members, or minus a line. */
static int64_t check_node(const struct lb *lb, uint32_t x, uint32_t level, uint32_t parent,
                          const struct key *lo, const struct key *hi, struct walk *w)
{
    if (level == 0) return check_leaf(lb, x, parent, lo, hi, w);
    VERIFY(x < lb->inners.used);
    const struct inner *in = inner_at(lb, x);
    VERIFY(in->parent == parent && in->level == level && in->count >= 2);
    VERIFY(in->count <= INNER_MAX && (parent == NIL || in->count >= INNER_MIN));
    int64_t total = 0;
    for (uint32_t i = 0; i < in->count; i++) {
        const struct key *clo = i > 0 ? &in->sep[i] : lo;
        const struct key *chi = i + 1 < in->count ? &in->sep[i + 1] : hi;
        VERIFY(i == 0 || in_bounds(&in->sep[i], lo, hi));
        int64_t n = check_node(lb, in->entry[i].child, level - 1, x, clo, chi, w);
        if (n < 0) return n;
        VERIFY(n == in->entry[i].size);
        total += n;
    }
    return total;
}

int lb_check(const struct lb *lb)
{
    assert(lb);
    struct walk w = {.prev_leaf = NIL};
    int64_t n = check_node(lb, lb->root, lb->height, NIL, NULL, NULL, &w);
    if (n < 0) return (int)n;
    VERIFY(n == lb->count && leaf_at(lb, w.prev_leaf)->next == NIL);
    VERIFY(w.leaves + lb->leaves.free_count == lb->leaves.used);
    uint32_t present = 0;
    for (uint32_t m = 0; m < lb->slot_cap; m++)
        present += lb->slot[m] != NIL;
    VERIFY(present == lb->count);
    return 0;
}
