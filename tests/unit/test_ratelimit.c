/* test_ratelimit.c — token buckets, their bounded tables, and the position check. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ratelimit.h"

static int take(struct rl_limiter *l, uint32_t key, int64_t now, int64_t *retry)
{
    int64_t dummy;
    return rl_take(l, &key, sizeof key, now, retry ? retry : &dummy);
}

TEST(parse_rates)
{
    struct rl_rate r;
    CHECK_EQ_INT(rl_rate_parse("10", &r), RL_OK);
    CHECK(r.per_s == 10 && r.burst == 20);
    CHECK_EQ_INT(rl_rate_parse("2.5:7", &r), RL_OK);
    CHECK(r.per_s == 2.5 && r.burst == 7);
    CHECK_EQ_INT(rl_rate_parse("0.1", &r), RL_OK); /* burst at least 1 */
    CHECK(r.burst == 1);
    CHECK_EQ_INT(rl_rate_parse("0", &r), RL_OK);
    CHECK(r.per_s == 0);
    const char *bad[] = {"", "x", "-1", "1:", "1:0", "1:x", "nan", "inf", "1:2:3", "5 ", "1e8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(rl_rate_parse(bad[i], &r), RL_EINVAL);
}

TEST(burst_then_rate)
{
    struct rl_limiter *l = rl_limiter_create((struct rl_rate){10, 5}, 100, 1);
    int64_t retry = 0, t = 1000000;
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(take(l, 7, t, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 7, t, &retry), RL_LIMITED);
    CHECK_EQ_INT(retry, 100); /* one token every 100 ms */
    CHECK_EQ_INT(take(l, 7, t + 99, NULL), RL_LIMITED);
    CHECK_EQ_INT(take(l, 7, t + 100, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 7, t + 100, NULL), RL_LIMITED);
    /* over 10 s at a steady 20/s only about 10/s get through */
    int ok = 0;
    for (int i = 1; i <= 200; i++) ok += take(l, 7, t + 100 + i * 50, NULL) == RL_OK;
    CHECK(ok >= 99 && ok <= 101);
    /* idle long enough, the whole burst is back, no more */
    t += 60000;
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(take(l, 7, t, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 7, t, NULL), RL_LIMITED);
    const struct rl_stats *st = rl_limiter_stats(l);
    CHECK_EQ_INT(st->keys, 1);
    CHECK(st->limited >= 4);
    rl_limiter_destroy(l);
}

/* A bucket the caller keeps behaves like a key of the table, and costs the table nothing. */
TEST(held_buckets)
{
    struct rl_limiter *l = rl_limiter_create((struct rl_rate){10, 5}, 1, 9);
    int64_t a = 0, b = 0, retry = 0, t = 1000000;
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(rl_take_held(l, &a, t, &retry), RL_OK);
    CHECK_EQ_INT(rl_take_held(l, &a, t, &retry), RL_LIMITED);
    CHECK_EQ_INT(retry, 100);
    CHECK_EQ_INT(rl_take_held(l, &b, t, &retry), RL_OK); /* b is its own bucket */
    CHECK_EQ_INT(rl_take_held(l, &a, t + 99, &retry), RL_LIMITED);
    CHECK_EQ_INT(rl_take_held(l, &a, t + 100, &retry), RL_OK);
    int64_t idle = a;
    CHECK_EQ_INT(rl_take_held(l, &a, t + 100, &retry), RL_LIMITED);
    CHECK_EQ_INT(a, idle); /* a refusal takes nothing */
    const struct rl_stats *st = rl_limiter_stats(l);
    CHECK_EQ_INT(st->keys, 0);
    CHECK_EQ_INT(st->allowed, 7);
    CHECK_EQ_INT(st->limited, 3);
    rl_limiter_destroy(l);
    struct rl_limiter *off = rl_limiter_create((struct rl_rate){0, 0}, 1, 9);
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(rl_take_held(off, &a, 0, &retry), RL_OK);
    rl_limiter_destroy(off);
}

TEST(keys_are_independent)
{
    struct rl_limiter *l = rl_limiter_create((struct rl_rate){1, 2}, 100, 2);
    CHECK_EQ_INT(take(l, 1, 0, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 1, 0, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 1, 0, NULL), RL_LIMITED);
    CHECK_EQ_INT(take(l, 2, 0, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 2, 0, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 2, 0, NULL), RL_LIMITED);
    uint8_t a[16] = {3}, b[24] = {3}; /* a short key equals its zero-padded form */
    CHECK_EQ_INT(rl_take(l, a, 16, 0, &(int64_t){0}), RL_OK);
    CHECK_EQ_INT(rl_take(l, a, 16, 0, &(int64_t){0}), RL_OK);
    CHECK_EQ_INT(rl_take(l, b, 24, 0, &(int64_t){0}), RL_LIMITED);
    rl_limiter_destroy(l);
}

TEST(slow_rates_keep_fractions)
{
    /* 60 per minute, burst 2, polled every 7 ms for 100 s: the burst, then exactly one a
     * second (the lateness of each poll does not drift the schedule) */
    struct rl_limiter *l = rl_limiter_create((struct rl_rate){1.0 / 60 * 60, 2}, 10, 3);
    int ok = 0;
    for (int64_t t = 0; t < 100000; t += 7) ok += take(l, 9, t, NULL) == RL_OK;
    CHECK_EQ_INT(ok, 101);
    rl_limiter_destroy(l);
    /* 2 per minute: Retry-After grows to 30 s */
    struct rl_rate r;
    CHECK_EQ_INT(rl_rate_parse("0.0333333333333:2", &r), RL_OK);
    l = rl_limiter_create(r, 10, 3);
    int64_t retry = 0;
    CHECK_EQ_INT(take(l, 1, 5, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 1, 5, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 1, 5, &retry), RL_LIMITED);
    CHECK(retry >= 29999 && retry <= 30001);
    rl_limiter_destroy(l);
}

TEST(memory_is_bounded)
{
    /* 1,000,000 distinct keys through a table of 1024: keys never exceed the slots; the
     * keys evicted were full buckets (touched once, long ago), so nothing "live" left. */
    struct rl_limiter *l = rl_limiter_create((struct rl_rate){1, 1}, 1024, 4);
    for (uint32_t i = 0; i < 1000000; i++) take(l, i, (int64_t)i * 2000, NULL);
    const struct rl_stats *st = rl_limiter_stats(l);
    CHECK(st->keys <= 1024);
    CHECK(st->keys >= 1000);
    CHECK_EQ_INT(st->evicted_live, 0);
    CHECK_EQ_INT(st->allowed, 1000000);
    /* a hot key in a churning table keeps its state while others come and go */
    int64_t t = 3000000000LL;
    CHECK_EQ_INT(take(l, 4242424, t, NULL), RL_OK);
    CHECK_EQ_INT(take(l, 4242424, t, NULL), RL_LIMITED);
    for (uint32_t i = 0; i < 100; i++) take(l, 5000000 + i, t, NULL);
    CHECK_EQ_INT(take(l, 4242424, t, NULL), RL_LIMITED);
    rl_limiter_destroy(l);
}

TEST(off_means_off)
{
    struct rl_limiter *l = rl_limiter_create((struct rl_rate){0, 0}, 1000, 5);
    for (int i = 0; i < 100000; i++) CHECK_EQ_INT(take(l, 1, 0, NULL), RL_OK);
    CHECK_EQ_INT(rl_limiter_stats(l)->keys, 0);
    rl_limiter_destroy(l);
    struct rl_moves *m = rl_moves_create(0, 1000, 5);
    CHECK_EQ_INT(rl_move_check(m, "k", 1, 0, 0, 0), RL_OK);
    CHECK_EQ_INT(rl_move_check(m, "k", 1, 4000, 4000, 0), RL_OK);
    rl_moves_destroy(m);
}

TEST(moves_speed)
{
    struct rl_moves *m = rl_moves_create(10, 100, 6); /* 10 units/s, 1 s grace */
    CHECK_EQ_INT(rl_move_check(m, "p", 1, 0, 0, 1000), RL_OK);  /* first: accepted */
    CHECK_EQ_INT(rl_move_check(m, "p", 1, 6, 8, 1000), RL_OK);  /* 10 units in the grace */
    CHECK_EQ_INT(rl_move_check(m, "p", 1, 6, 19, 1000), RL_IMPLAUSIBLE); /* 11 > 10 */
    CHECK_EQ_INT(rl_move_check(m, "p", 1, 6, 28, 2000), RL_OK); /* 20 in 1 s + grace */
    CHECK_EQ_INT(rl_move_check(m, "p", 1, 6, 58, 3000), RL_IMPLAUSIBLE); /* 30 > 20 */
    /* a rejected jump is not remembered: the player is still at (6, 28) */
    CHECK_EQ_INT(rl_move_check(m, "p", 1, 6, 47, 3000), RL_OK);
    CHECK_EQ_INT(rl_move_check(m, "p", 1, 6, 47 + 130, 15000), RL_OK); /* 130 in 12+1 s */
    CHECK_EQ_INT(rl_move_check(m, "p", 1, 1e308, 1e308, 20000), RL_IMPLAUSIBLE);
    CHECK_EQ_INT(rl_move_check(m, "q", 1, 1e3, 1e3, 20000), RL_OK); /* another key */
    /* a clock that steps back gives only the grace */
    CHECK_EQ_INT(rl_move_check(m, "q", 1, 1e3 + 11, 1e3, 10000), RL_IMPLAUSIBLE);
    const struct rl_stats *st = rl_moves_stats(m);
    CHECK_EQ_INT(st->limited, 4);
    CHECK_EQ_INT(st->allowed, 6);
    CHECK_EQ_INT(st->keys, 2);
    rl_moves_destroy(m);
}

TEST(moves_per_hunt_and_bounded)
{
    uint8_t player[16] = {0xab}, k1[RL_KEY_BYTES], k2[RL_KEY_BYTES];
    rl_key_hunt(k1, player, "alpha");
    rl_key_hunt(k2, player, "beta");
    CHECK(memcmp(k1, k2, RL_KEY_BYTES) != 0);
    CHECK(memcmp(k1, player, 16) == 0);
    struct rl_moves *m = rl_moves_create(1, 64, 7);
    CHECK_EQ_INT(rl_move_check(m, k1, sizeof k1, 0, 0, 0), RL_OK);
    CHECK_EQ_INT(rl_move_check(m, k2, sizeof k2, 500, 500, 0), RL_OK); /* other hunt */
    CHECK_EQ_INT(rl_move_check(m, k1, sizeof k1, 500, 500, 0), RL_IMPLAUSIBLE);
    for (uint32_t i = 0; i < 100000; i++) rl_move_check(m, &i, sizeof i, i, i, 1 + i);
    CHECK(rl_moves_stats(m)->keys <= 64);
    CHECK(rl_moves_stats(m)->evicted_live > 0);
    rl_moves_destroy(m);
}

int main(void)
{
    RUN(parse_rates);
    RUN(burst_then_rate);
    RUN(held_buckets);
    RUN(keys_are_independent);
    RUN(slow_rates_keep_fractions);
    RUN(memory_is_bounded);
    RUN(off_means_off);
    RUN(moves_speed);
    RUN(moves_per_hunt_and_bounded);
    return HARNESS_DONE();
}
