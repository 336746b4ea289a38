/*
 * plugins/lib/redis/util.h: allocation helpers and small shared pieces.
 *
 * The allocation helpers abort on exhaustion, like the host table's
 * alloc(), so callers need no NULL checks; memory they return is released
 * with free() (they wrap libc, so hiredis and jansson results mix freely).
 */
#ifndef FERRY_REDIS_UTIL_H
#define FERRY_REDIS_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define REDIS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define REDIS_PRINTF(a, b)
#endif

static inline void redis_oom(void)
{
    fputs("ferry redis library: out of memory\n", stderr);
    abort();
}

static inline void *redis_xalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        redis_oom();
    return p;
}

static inline void *redis_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        redis_oom();
    return p;
}

static inline void *redis_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        redis_oom();
    return p;
}

static inline char *redis_xstrdup(const char *s)
{
    char *d = strdup(s);

    if (!d)
        redis_oom();
    return d;
}

#endif
