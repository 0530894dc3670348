/* harness.h — a tiny unit-test harness (after Redis testhelp.h).
 * Each test binary defines tests with TEST(name) and lists them in main with RUN(name).
 * CHECK() records a failure and goes on; the binary prints "N passed, N failed" last
 * and exits non-zero when anything failed. */
#ifndef HARNESS_H
#define HARNESS_H
#include <stdio.h>
#include <string.h>

static int harness_passed, harness_failed, harness_cur_failed;

#define TEST(name) static void name(void)
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
            harness_cur_failed = 1;                                              \
        }                                                                        \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                       \
    do {                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                      \
        if (a_ != b_) {                                                          \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, \
                    __LINE__, #a, #b, a_, b_);                                   \
            harness_cur_failed = 1;                                              \
        }                                                                        \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                       \
    do {                                                                         \
        const char *a_ = (a), *b_ = (b);                                         \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                 \
            fprintf(stderr, "  FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n",       \
                    __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",              \
                    b_ ? b_ : "(null)");                                         \
            harness_cur_failed = 1;                                              \
        }                                                                        \
    } while (0)
#define RUN(name)                                                                \
    do {                                                                         \
        harness_cur_failed = 0;                                                  \
        name();                                                                  \
        if (harness_cur_failed) {                                                \
            harness_failed++;                                                    \
            fprintf(stderr, "not ok %s\n", #name);                               \
        } else {                                                                 \
            harness_passed++;                                                    \
            printf("ok %s\n", #name);                                            \
        }                                                                        \
    } while (0)
#define HARNESS_DONE()                                                           \
    (printf("%d passed, %d failed\n", harness_passed, harness_failed),           \
     harness_failed ? 1 : 0)
#endif
