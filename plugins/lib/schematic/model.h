/*
 * plugins/lib/schematic/model.h: private to plugins/lib/schematic (and the
 * test oracle). The rulesengine structures as tables, the error context
 * every walk reports through, RFC 3339 times, and Go's member-name
 * matching: the model's rules stated once, used by the text normaliser
 * (write.c, normalize.c, merge.c) and the REST conversion (rest.c).
 *
 * Everything here is pure or works on caller-owned memory: thread-safe.
 * Allocation failure aborts (sch_check).
 */
#ifndef FERRY_SCHEMATIC_MODEL_H
#define FERRY_SCHEMATIC_MODEL_H

#include <stdarg.h>
#include <stddef.h>

#include "schematic/schematic.h"

/* ---- schemas: each rulesengine structure in the order Go writes it ---- */

enum sch_kind {
    K_STR,        /* string */
    K_STR_OPT,    /* *string */
    K_BOOL,       /* bool */
    K_INT,        /* int64 */
    K_INT_OPT,    /* *int64 */
    K_FLOAT_OPT,  /* *float64 */
    K_TIME,       /* time.Time */
    K_TIME_OPT,   /* *time.Time */
    K_STRLIST,    /* []string, null/absent emitted as [] */
    K_LIST,       /* []*T, null/absent emitted as [] */
    K_STRUCT_OPT, /* *T */
    K_MAP_STR,    /* map[string]string */
    K_MAP_FLOAT   /* map[string]float64 */
};

struct sch_schema;

struct sch_field {
    const char *name;   /* the JSON name Go writes */
    unsigned char kind; /* enum sch_kind */
    unsigned char omitempty;
    const struct sch_schema *sub; /* K_LIST, K_STRUCT_OPT: the element */
};

struct sch_schema {
    const char *name; /* Go's type name, for errors */
    const struct sch_field *fields;
    size_t n;
};

/* The most fields of any structure, and the deepest error path kept. */
#define SCH_MAX_FIELDS 32
#define SCH_MAX_PATH 24

extern const struct sch_schema sch_schema_trait_def;
extern const struct sch_schema sch_schema_condition;
extern const struct sch_schema sch_schema_condition_group;
extern const struct sch_schema sch_schema_rule;
extern const struct sch_schema sch_schema_flag;
extern const struct sch_schema sch_schema_trait;
extern const struct sch_schema sch_schema_metric;
extern const struct sch_schema sch_schema_subscription;
extern const struct sch_schema sch_schema_entitlement;
extern const struct sch_schema sch_schema_company;
extern const struct sch_schema sch_schema_user;

/* The top-level structure of an entity type, NULL for an unknown type. */
const struct sch_schema *sch_schema_of(enum sch_type type);

/* ---- the context of one walk: errors with a path, captured fields ---- */

struct sch_ctx {
    char *err; /* the caller's buffer (may be NULL) */
    size_t errlen;
    int failed; /* the first failure wins */
    int depth;
    const char *entity_type; /* REST conversion: "company" or "user" */
    /* The text writer records the top-level id, key and keys map here
     * while it writes them (NULL: nothing recorded). */
    struct sch_entity *cap;
    int cap_keys; /* the map being written is the top-level keys */
    struct {
        const char *name;
        long idx; /* -1: a field name */
    } path[SCH_MAX_PATH];
};

/* Prepares c (caller-owned) to report into err[0..errlen) (emptied). */
void sch_ctx_init(struct sch_ctx *c, char *err, size_t errlen);
/* Enters member `name` (idx -1) or element idx (name NULL) of the path. */
void sch_push(struct sch_ctx *c, const char *name, long idx);
void sch_pop(struct sch_ctx *c);
/* Records a failure "path: message" unless one is recorded already. */
void sch_vfail(struct sch_ctx *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void sch_fail(struct sch_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* sch_fail with member `name` appended to the path for this message. */
void sch_fail_at(struct sch_ctx *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns p; aborts when it is NULL (allocation failure). */
void *sch_check(void *p);

/* ---- times ---- */

/*
 * Writes seconds since the epoch + nanoseconds as Go's RFC3339Nano in UTC
 * ("2006-01-02T15:04:05.999999999Z", trailing zeros of the fraction
 * dropped) into out (40 bytes). Returns 0, or -1 for a year outside
 * 0..9999 (Go's MarshalJSON refuses those too).
 */
int sch_time_format(long long secs, long nsec, char *out);

/*
 * Parses RFC 3339 exactly as Go's time.Time.UnmarshalJSON does (Go >=
 * 1.20, strict) and writes the instant as sch_time_format does. Returns 0
 * or -1 (not a time, or out of range).
 */
int sch_time_norm(const char *s, size_t len, char *out);

/* ---- member names ---- */

/* Go's case-insensitive member matching (bytes.EqualFold against an ASCII
 * field name). Returns nonzero when key matches name. */
int sch_fold_eq(const char *key, const char *name);
/* The index of the field member `key` decodes into (exact match first,
 * then folded), or -1. */
int sch_find_field(const struct sch_schema *s, const char *key);
/* The field named exactly `name`, or NULL. */
const struct sch_field *sch_field_of(const struct sch_schema *s,
                                     const char *name);
/* Nonzero when null decoded into a field of this kind leaves it as it was
 * (Go: non-pointer scalars). */
int sch_null_keeps(int kind);

#endif
