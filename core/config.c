/*
 * core/config.c: the loaded configuration's sections and entries (adding,
 * setting, finding, releasing), did-you-mean suggestions, and the small
 * helpers that core/ini.c and core/optset.c share (core/config_int.h).
 * Reading files is in core/ini.c, typed option sets in core/optset.c.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

/* ---- small helpers ------------------------------------------------------ */

void *config_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q) {
        fputs("ferry: out of memory\n", stderr);
        abort();
    }
    return q;
}

char *config_xstrndup(const char *s, size_t n)
{
    char *d = config_xrealloc(NULL, n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *config_xstrdup(const char *s)
{
    return config_xstrndup(s, strlen(s));
}

void config_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void config_sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = config_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* ---- sections and entries ----------------------------------------------- */

struct config_section *config_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->count; i++) {
        if (strcmp(cfg->sections[i].name, name) == 0)
            return &cfg->sections[i];
    }
    return NULL;
}

struct config_section *config_add(struct config *cfg, const char *name,
                                  const char *kind, const char *inst,
                                  const char *file, int line)
{
    struct config_section *s;

    if (cfg->count == cfg->cap) {
        cfg->cap = cfg->cap ? cfg->cap * 2 : 8;
        cfg->sections =
            config_xrealloc(cfg->sections, cfg->cap * sizeof(*cfg->sections));
    }
    s = &cfg->sections[cfg->count++];
    memset(s, 0, sizeof(*s));
    s->name = config_xstrdup(name);
    s->kind = config_xstrdup(kind);
    s->inst = config_xstrdup(inst);
    s->file = config_xstrdup(file);
    s->line = line;
    return s;
}

void config_section_set(struct config_section *s, const char *key,
                        const char *value, const char *file, int line)
{
    struct config_entry *e = NULL;

    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->entries[i].key, key) == 0) {
            e = &s->entries[i];
            break;
        }
    }
    if (e) {
        free(e->value);
        free(e->file);
        free(e->vars);
    } else {
        if (s->count == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->entries =
                config_xrealloc(s->entries, s->cap * sizeof(*s->entries));
        }
        e = &s->entries[s->count++];
        e->key = config_xstrdup(key);
    }
    e->value = config_xstrdup(value);
    e->file = config_xstrdup(file);
    e->line = line;
    e->vars = NULL;
}

void config_section_clear(struct config_section *s)
{
    for (size_t i = 0; i < s->count; i++) {
        free(s->entries[i].key);
        free(s->entries[i].value);
        free(s->entries[i].file);
        free(s->entries[i].vars);
    }
    s->count = 0;
}

/* Frees everything cfg holds and zeroes it; accepts NULL and a cfg that
 * failed to load. */
void config_release(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->count; i++) {
        struct config_section *s = &cfg->sections[i];

        config_section_clear(s);
        free(s->entries);
        free(s->name);
        free(s->kind);
        free(s->inst);
        free(s->file);
    }
    free(cfg->sections);
    for (size_t i = 0; i < cfg->nnotices; i++)
        free(cfg->notices[i]);
    free(cfg->notices);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

/* Lookups return pointers into cfg, valid until config_release(). Any
 * thread, as long as nobody loads into or releases cfg meanwhile. */
const struct config_section *config_section(const struct config *cfg,
                                            const char *name)
{
    return config_find(cfg, name);
}

const struct config_entry *config_entry(const struct config_section *s,
                                        const char *key)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->entries[i].key, key) == 0)
            return &s->entries[i];
    }
    return NULL;
}

/* ---- suggestions -------------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus adjacent
 * transpositions), case-insensitive. Words longer than 64 get no hint. */
static size_t config_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d[65][65];

    if (la > 64 || lb > 64)
        return (size_t)-1;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned char)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned char)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]);
            int cb = tolower((unsigned char)b[j - 1]);
            unsigned cost = ca != cb;
            unsigned v = d[i - 1][j] + 1u;

            if (d[i][j - 1] + 1u < v)
                v = d[i][j - 1] + 1u;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb &&
                d[i - 2][j - 2] + 1u < v)
                v = d[i - 2][j - 2] + 1u;
            d[i][j] = (unsigned char)v;
        }
    }
    return d[la][lb];
}

/*
 * A candidate is suggested when its distance is at most a third of the
 * word's length (at least 1): one slip in a short word, more in a long
 * one, and never a random neighbour like 'url' for 'ttl'.
 */
const char *config_suggest(const char *word, const char *const *candidates)
{
    size_t limit = strlen(word) / 3, best = (size_t)-1;
    const char *hit = NULL;

    if (!candidates)
        return NULL;
    if (limit < 1)
        limit = 1;
    for (size_t i = 0; candidates[i]; i++) {
        size_t d = config_distance(word, candidates[i]);

        if (d <= limit && d < best) {
            best = d;
            hit = candidates[i];
        }
    }
    return hit;
}
