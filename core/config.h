/*
 * core/config.h: the INI configuration (parsed with inih).
 *
 * Loading reads the file and its includes into sections of key = value
 * entries, each remembering the file and line it came from, with ${VAR}
 * and ${VAR:-default} already expanded. Validation against an option table
 * (a plugin's, or the core's own for [ferry] and [route.*]) turns a
 * section into a struct optset of typed values.
 *
 * Files: core/ini.c reads files, includes and overlays and expands
 * ${VAR}; core/optset.c holds the value parsers and option sets;
 * core/config.c the sections, entries and suggestions they share.
 *
 * Every error message has the form "FILE:LINE: [section] message", e.g.
 *   etc/ferry.ini:14: [sink.cache] unknown key 'adress' (did you mean
 *   'address'?)
 * and names the environment variable an invalid value came from:
 *   etc/ferry.ini:33: [sink.cache] ttl: '1d' is not a duration (e.g.
 *   250ms, 30s, 5m, 1h30m) (from $CACHE_TTL)
 *
 * Two forms serve files that read another program's environment (see
 * etc/ferry.ini and core/ini.c): ${!VAR} and ${!VAR:-default} expand to
 * the boolean negation of the value (WRITER_LOCK_DISABLED=true gives
 * writer_lock = false), and a section [env.VAR] declares a variable that
 * no key reads, or checks one that keys read only as part of a value:
 * its type is checked, a refused value is an error, and a notice is
 * logged once per load when it is set. [env.*] sections never reach the
 * rest of the core.
 */
#ifndef FERRY_CORE_CONFIG_H
#define FERRY_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/options.h"

struct config_entry {
    char *key;
    char *value; /* expanded */
    char *file;  /* the file that set it (last one wins) */
    int line;
    /* The variables whose values the expansion used, as "$A" or "$A, $B";
     * NULL when none did (no ${VAR}, or only defaults). Errors about the
     * value name them: "... (from $CACHE_TTL)". */
    char *vars;
};

struct config_section {
    char *name; /* "sink.cache", "ferry", "route.main" */
    char *kind; /* "ferry", "source", "sink", "policy", "route" */
    char *inst; /* "cache"; "" for [ferry] */
    char *file; /* where the section first appears */
    int line;
    struct config_entry *entries;
    size_t count;
    size_t cap;
};

struct config {
    char *path;
    struct config_section *sections;
    size_t count;
    size_t cap;
    /* Lines config_load() logged about [env.VAR] declarations, e.g.
     * "USE_ASYNC_LOADING=false: ferry's initial load never blocks the
     * stream", for callers and tests; owned by cfg. */
    char **notices;
    size_t nnotices;
};

/*
 * Loads path and everything it includes into cfg (which the caller owns
 * and must config_release() even on failure). Checks syntax, section names
 * (kinds ferry/source/sink/policy/route, a non-empty instance name),
 * include cycles, ${VAR} expansion and [env.VAR] declarations (logging
 * their notices, which it also keeps in cfg->notices). Returns 0, or -1
 * with the message in err.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
void config_release(struct config *cfg);

/* Finds a section by full name ("sink.cache"); NULL when absent. */
const struct config_section *config_section(const struct config *cfg,
                                            const char *name);
/* Finds an entry in a section; NULL when absent. */
const struct config_entry *config_entry(const struct config_section *s,
                                        const char *key);

/* Value parsers shared with the rest of the core. Return 0 or -1. */
int config_parse_duration_ms(const char *s, uint64_t *ms);
int config_parse_size(const char *s, uint64_t *bytes);
int config_parse_bool(const char *s, int *b);
int config_parse_int(const char *s, int64_t *v);
int config_parse_double(const char *s, double *v);

/* Typed, validated values of one section. */
struct optset;

/*
 * Validates section s against table (terminated by a NULL name): every key
 * in s must be in table or in extra_keys (a NULL-terminated list of keys
 * handled elsewhere, such as "plugin"; may be NULL); every value must parse
 * as its type and lie in its range or enum; FERRY_OPT_REQUIRED keys must be
 * set. s may be NULL (all defaults). Returns a new optset, or NULL with the
 * first error in err ("FILE:LINE: [section] ...", with a did-you-mean for
 * unknown keys and enum values). The optset keeps pointers to table.
 */
struct optset *optset_new(const struct config_section *s,
                          const char *section_name,
                          const struct ferry_option *table,
                          const char *const *extra_keys, char *err,
                          size_t errlen);
void optset_free(struct optset *o);

/* Typed getters. The key must be in the table with the matching type
 * (checked with assert). Unset strings return NULL. */
const char *optset_str(const struct optset *o, const char *name);
int64_t optset_int(const struct optset *o, const char *name);
int optset_bool(const struct optset *o, const char *name);
uint64_t optset_duration_ms(const struct optset *o, const char *name);
uint64_t optset_size(const struct optset *o, const char *name);
double optset_double(const struct optset *o, const char *name);
size_t optset_list(const struct optset *o, const char *name,
                   const char *const **items);
int optset_is_set(const struct optset *o, const char *name);
/* Nonzero when name is declared in the optset's table. */
int optset_has(const struct optset *o, const char *name);

/* Prints "key = value" lines of the effective configuration (every key of
 * the table, defaults included), secrets as ***. */
void optset_print(const struct optset *o, FILE *out);

/*
 * Resolves value, a FERRY_OPT_PATH option set in the configuration file
 * file, against that file's folder: "data/in.jsonl" set in "etc/a.ini"
 * gives "etc/data/in.jsonl". Absolute paths, "-" (stdin or stdout), an
 * empty value and a file named without a folder give value unchanged.
 * Returns a new string the caller frees. Pure; any thread.
 */
char *config_resolve_path(const char *file, const char *value);

/* Returns the candidate closest to word by edit distance when it is close
 * enough to be a likely typo, else NULL. candidates is NULL-terminated. */
const char *config_suggest(const char *word, const char *const *candidates);

#endif
