/*
 * core/config_int.h: helpers shared by the configuration's files:
 * core/config.c (sections and entries), core/ini.c (reading files) and
 * core/optset.c (typed options). Not for the rest of the core, which uses
 * core/config.h. It includes no core header, so each of those files may
 * include it without a circle.
 */
#ifndef FERRY_CORE_CONFIG_INT_H
#define FERRY_CORE_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/host.h"

struct config;
struct config_section;

/* realloc() that never returns NULL: out of memory aborts, as everywhere
 * in the core. n == 0 allocates one byte. */
void *config_xrealloc(void *p, size_t n);
/* A new NUL-terminated copy of s[0..n) (or of s); aborts when out of
 * memory. */
char *config_xstrndup(const char *s, size_t n);
char *config_xstrdup(const char *s);
/* snprintf() into err (nothing when err is NULL or errlen 0). */
void config_err(char *err, size_t errlen, const char *fmt, ...)
    FERRY_PRINTF(3, 4);

/* The value parsers of core/optset.c with their reasons: NULL when s
 * parses (the value stored), else why it is refused, worded to follow
 * "'TEXT' " ("is not a boolean (true/false, ...)"). Pure; any thread. */
const char *config_check_bool(const char *s, int *b);
const char *config_check_int(const char *s, int64_t *v);
const char *config_check_duration(const char *s, uint64_t *ms);

/* A growing string; starts zeroed and owns s. */
struct sbuf {
    char *s;
    size_t len;
    size_t cap;
};

/* Appends s[0..n) to b, keeping b->s NUL-terminated. */
void config_sbuf_add(struct sbuf *b, const char *s, size_t n);

/* The section named name in cfg, writable; NULL when absent. */
struct config_section *config_find(const struct config *cfg, const char *name);
/* Appends a new empty section to cfg and returns it (valid until the
 * next config_add() to cfg). */
struct config_section *config_add(struct config *cfg, const char *name,
                                  const char *kind, const char *inst,
                                  const char *file, int line);
/* Sets key to value in s, replacing an entry of the same key, with the
 * file and line that set it (and no vars: expansion sets them). Copies
 * every string. */
void config_section_set(struct config_section *s, const char *key,
                        const char *value, const char *file, int line);
/* Frees every entry of s (keeping the entries array). */
void config_section_clear(struct config_section *s);

#endif
