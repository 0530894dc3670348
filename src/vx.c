/* vx.c — see vx.h. */
#include "vx.h"

#include <signal.h>

#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

int vx_is_id(const char *s, size_t len, size_t max)
{
    if (len < 1 || len > max) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return dm[m - 1] + (m == 2 && leap);
}

/* n decimal digits at s; -1 if any is not a digit. */
static int64_t digits(const char *s, int n)
{
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Milliseconds of ".ddd..." (1..9 digits, truncated to ms) at s, and its length. */
static int fraction(const char *s, int64_t *ms, size_t *len)
{
    size_t n = 0;
    *ms = 0;
    if (*s != '.') return *len = 0, 0;
    while (s[1 + n] >= '0' && s[1 + n] <= '9')
        n++;
    if (n < 1 || n > 9) return -1;
    for (size_t i = 0; i < 3; i++)
        *ms = *ms * 10 + (i < n ? s[1 + i] - '0' : 0);
    *len = n + 1;
    return 0;
}

int vx_time_parse(const char *s, int64_t *ms)
{
    if (strnlen(s, 20) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    int64_t y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), hh = digits(s + 11, 2),
            mi = digits(s + 14, 2), ss = digits(s + 17, 2), frac;
    size_t flen;
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, (int)mo) || hh < 0 || hh > 23 ||
        mi < 0 || mi > 59 || ss < 0 || ss > 59 || fraction(s + 19, &frac, &flen) ||
        strcmp(s + 19 + flen, "Z") != 0)
        return -1;
    *ms = ((days_from_civil(y, mo, d) * 24 + hh) * 60 + mi) * 60000 + ss * 1000 + frac;
    return 0;
}

void vx_time_format(int64_t ms, char out[32])
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - days * 86400000, y;
    int m, d;
    char buf[96];
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, sizeof buf, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
             (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
             (int)(rem % 1000));
    size_t n = strnlen(buf, 31);
    memcpy(out, buf, n);
    out[n] = '\0';
}

void vx_fatal(const char *file, int line, const char *what)
{
    fprintf(stderr, "veltrix: fatal: %s:%d: %s (a broken invariant, or out of memory)\n", file,
            line, what);
    abort();
}

int vx_thread_start(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(t, attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
