/* vx.h — the leaf module the engine, hunt definitions and the API all use: identifiers
 * and RFC 3339 times. It depends on nothing of Veltrix, so that engine.c and huntdef.c no
 * longer need each other for these. */
#ifndef VELTRIX_VX_H
#define VELTRIX_VX_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define VX_ID_MAX 64       /* ids: 1..64 chars of [a-z0-9_-] */
#define VX_CHEST_ID_MAX 96 /* range chest ids are prefix + decimal index */

/* 1 when s[0..len) is 1..max characters of [a-z0-9_-]. */
int vx_is_id(const char *s, size_t len, size_t max);
/* RFC 3339 "2026-12-01T09:00:00.000Z" <-> Unix ms. Parse returns 0 or -1. */
int vx_time_parse(const char *s, int64_t *ms);
void vx_time_format(int64_t ms, char out[32]);

/* Always on, release builds included: a broken invariant, or a small allocation whose
 * failure nothing can answer, stops the process saying where and what (never a silent
 * abort). For bad input from outside, answer a 4xx instead. */
#define VX_FATAL_IF(cond)                                                                  \
    do {                                                                                   \
        if (cond) vx_fatal(__FILE__, __LINE__, #cond);                                     \
    } while (0)
_Noreturn void vx_fatal(const char *file, int line, const char *what);

/* pthread_create with every signal blocked in the new thread: signals (SIGTERM, SIGINT)
 * belong to the event loop's thread. Returns pthread_create's value. */
int vx_thread_start(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

#endif
