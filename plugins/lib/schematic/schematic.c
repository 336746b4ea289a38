/*
 * plugins/lib/schematic/schematic.c: Schematic's cached data model (schematic.h).
 *
 * Normalisation is schema driven: each rulesengine structure is a table of
 * fields (JSON name, kind, omit-empty, element structure) in the order Go
 * emits them. Decoding follows encoding/json: member names match a field
 * exactly or case-insensitively, the last matching member wins, unknown
 * members are dropped, null leaves a non-pointer field at its zero value,
 * and a value of the wrong JSON type fails the whole entity (Go's Unmarshal
 * returns an error and the reference skips the message). The result is a
 * canonical jansson tree (every field present in order, map keys sorted,
 * int64 as integers, float64 as reals, times re-formatted) that gojson.c
 * writes byte for byte as Go would.
 */
#include "schematic/schematic.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/gojson.h"
#include "json/jv.h"
#include "json/utf8.h"

/* ---- schemas ------------------------------------------------------------- */

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
    const char *name;
    unsigned char kind;
    unsigned char omitempty;
    const struct sch_schema *sub;
};

struct sch_schema {
    const char *name;
    const struct sch_field *fields;
    size_t n;
};

#define SCH_SCHEMA(var, label, arr)                                            \
    static const struct sch_schema var = {label, arr,                          \
                                          sizeof(arr) / sizeof(arr[0])}

/* Tentative definitions: the structures refer to each other. */
static const struct sch_schema s_trait_def;
static const struct sch_schema s_condition;
static const struct sch_schema s_condition_group;
static const struct sch_schema s_rule;

static const struct sch_field f_trait_def[] = {
    {"id", K_STR, 0, NULL},
    {"comparable_type", K_STR, 0, NULL},
    {"entity_type", K_STR, 0, NULL},
};
SCH_SCHEMA(s_trait_def, "TraitDefinition", f_trait_def);

static const struct sch_field f_condition[] = {
    {"id", K_STR, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"condition_type", K_STR, 0, NULL},
    {"operator", K_STR, 0, NULL},
    {"resource_ids", K_STRLIST, 0, NULL},
    {"event_subtype", K_STR_OPT, 0, NULL},
    {"metric_value", K_INT_OPT, 0, NULL},
    {"metric_period", K_STR_OPT, 0, NULL},
    {"metric_period_month_reset", K_STR_OPT, 0, NULL},
    {"credit_id", K_STR_OPT, 0, NULL},
    {"consumption_rate", K_FLOAT_OPT, 0, NULL},
    {"trait_definition", K_STRUCT_OPT, 0, &s_trait_def},
    {"trait_value", K_STR, 0, NULL},
    {"comparison_trait_definition", K_STRUCT_OPT, 0, &s_trait_def},
};
SCH_SCHEMA(s_condition, "Condition", f_condition);

static const struct sch_field f_condition_group[] = {
    {"conditions", K_LIST, 0, &s_condition},
};
SCH_SCHEMA(s_condition_group, "ConditionGroup", f_condition_group);

static const struct sch_field f_rule[] = {
    {"id", K_STR, 0, NULL},
    {"flag_id", K_STR_OPT, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"rule_type", K_STR, 0, NULL},
    {"name", K_STR, 0, NULL},
    {"priority", K_INT, 0, NULL},
    {"conditions", K_LIST, 0, &s_condition},
    {"condition_groups", K_LIST, 0, &s_condition_group},
    {"value", K_BOOL, 0, NULL},
};
SCH_SCHEMA(s_rule, "Rule", f_rule);

static const struct sch_field f_flag[] = {
    {"id", K_STR, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"key", K_STR, 0, NULL},
    {"rules", K_LIST, 0, &s_rule},
    {"default_value", K_BOOL, 0, NULL},
};
SCH_SCHEMA(s_flag, "Flag", f_flag);

static const struct sch_field f_trait[] = {
    {"trait_definition", K_STRUCT_OPT, 0, &s_trait_def},
    {"value", K_STR, 0, NULL},
};
SCH_SCHEMA(s_trait, "Trait", f_trait);

static const struct sch_field f_metric[] = {
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"company_id", K_STR, 0, NULL},
    {"event_subtype", K_STR, 0, NULL},
    {"period", K_STR, 0, NULL},
    {"month_reset", K_STR, 0, NULL},
    {"value", K_INT, 0, NULL},
    {"created_at", K_TIME, 0, NULL},
    {"valid_until", K_TIME_OPT, 0, NULL},
};
SCH_SCHEMA(s_metric, "CompanyMetric", f_metric);

static const struct sch_field f_subscription[] = {
    {"id", K_STR, 0, NULL},
    {"period_start", K_TIME, 0, NULL},
    {"period_end", K_TIME, 0, NULL},
};
SCH_SCHEMA(s_subscription, "Subscription", f_subscription);

/* rulesengine's FeatureEntitlement writes its fields in this (alphabetical)
 * order; see the cache-company sample. */
static const struct sch_field f_entitlement[] = {
    {"allocation", K_INT_OPT, 0, NULL},
    {"consumption_rate", K_FLOAT_OPT, 1, NULL},
    {"credit_id", K_STR_OPT, 0, NULL},
    {"credit_remaining", K_FLOAT_OPT, 0, NULL},
    {"credit_reserved", K_FLOAT_OPT, 1, NULL},
    {"credit_settled", K_FLOAT_OPT, 1, NULL},
    {"credit_total", K_FLOAT_OPT, 0, NULL},
    {"credit_used", K_FLOAT_OPT, 0, NULL},
    {"event_name", K_STR_OPT, 0, NULL},
    {"event_subtype", K_STR_OPT, 1, NULL},
    {"feature_id", K_STR, 0, NULL},
    {"feature_key", K_STR, 0, NULL},
    {"metric_period", K_STR_OPT, 0, NULL},
    {"metric_reset_at", K_TIME_OPT, 0, NULL},
    {"month_reset", K_STR_OPT, 0, NULL},
    {"soft_limit", K_INT_OPT, 0, NULL},
    {"usage", K_INT_OPT, 0, NULL},
    {"value_type", K_STR, 0, NULL},
};
SCH_SCHEMA(s_entitlement, "FeatureEntitlement", f_entitlement);

static const struct sch_field f_company[] = {
    {"id", K_STR, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"base_plan_id", K_STR_OPT, 0, NULL},
    {"billing_product_ids", K_STRLIST, 0, NULL},
    {"credit_balances", K_MAP_FLOAT, 0, NULL},
    {"entitlements", K_LIST, 1, &s_entitlement},
    {"keys", K_MAP_STR, 0, NULL},
    {"metrics", K_LIST, 0, &s_metric},
    {"plan_ids", K_STRLIST, 0, NULL},
    {"plan_version_ids", K_STRLIST, 0, NULL},
    {"rules", K_LIST, 0, &s_rule},
    {"subscription", K_STRUCT_OPT, 0, &s_subscription},
    {"traits", K_LIST, 0, &s_trait},
};
SCH_SCHEMA(s_company, "Company", f_company);

static const struct sch_field f_user[] = {
    {"id", K_STR, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"keys", K_MAP_STR, 0, NULL},
    {"traits", K_LIST, 0, &s_trait},
    {"rules", K_LIST, 0, &s_rule},
};
SCH_SCHEMA(s_user, "User", f_user);

#define SCH_MAX_FIELDS 32
#define SCH_MAX_PATH 24

static const struct sch_schema *sch_schema_of(enum sch_type type)
{
    switch (type) {
    case SCH_COMPANY:
        return &s_company;
    case SCH_USER:
        return &s_user;
    case SCH_FLAG:
        return &s_flag;
    }
    return NULL;
}

/* ---- errors with a path ----------------------------------------------------
 */

struct sch_ctx {
    char *err;
    size_t errlen;
    int failed;
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

static void sch_ctx_init(struct sch_ctx *c, char *err, size_t errlen)
{
    c->err = err;
    c->errlen = errlen;
    c->failed = 0;
    c->depth = 0;
    c->entity_type = NULL;
    c->cap = NULL;
    c->cap_keys = 0;
    if (err && errlen)
        err[0] = '\0';
}

static void sch_push(struct sch_ctx *c, const char *name, long idx)
{
    if (c->depth < SCH_MAX_PATH) {
        c->path[c->depth].name = name;
        c->path[c->depth].idx = idx;
    }
    c->depth++;
}

static void sch_pop(struct sch_ctx *c)
{
    c->depth--;
}

static void sch_vfail(struct sch_ctx *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void sch_vfail(struct sch_ctx *c, const char *fmt, va_list ap)
{
    size_t o = 0;
    int i, n;

    if (c->failed)
        return;
    c->failed = 1;
    if (!c->err || c->errlen == 0)
        return;
    c->err[0] = '\0';
    n = c->depth < SCH_MAX_PATH ? c->depth : SCH_MAX_PATH;
    for (i = 0; i < n && o < c->errlen; i++) {
        int w;

        if (c->path[i].idx >= 0)
            w = snprintf(c->err + o, c->errlen - o, "[%ld]", c->path[i].idx);
        else
            w = snprintf(c->err + o, c->errlen - o, "%s%s", i ? "." : "",
                         c->path[i].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o >= c->errlen)
        return;
    if (o > 0) {
        n = snprintf(c->err + o, c->errlen - o, ": ");
        o += n > 0 ? (size_t)n : 0;
        if (o >= c->errlen)
            return;
    }
    vsnprintf(c->err + o, c->errlen - o, fmt, ap);
}

static void sch_fail(struct sch_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sch_fail(struct sch_ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sch_vfail(c, fmt, ap);
    va_end(ap);
}

/* sch_fail with member `name` appended to the path for this message. */
static void sch_fail_at(struct sch_ctx *c, const char *name,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sch_fail_at(struct sch_ctx *c, const char *name,
                        const char *fmt, ...)
{
    va_list ap;

    sch_push(c, name, -1);
    va_start(ap, fmt);
    sch_vfail(c, fmt, ap);
    va_end(ap);
    sch_pop(c);
}

static const char *sch_tname(json_type type)
{
    switch (type) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static const char *sch_jtype(const json_t *v)
{
    return sch_tname(json_typeof(v));
}

static void *sch_check(void *p)
{
    if (!p)
        abort();
    return p;
}

#define NEW(x) ((json_t *)sch_check(x))

/* ---- time ------------------------------------------------------------------
 */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm; valid far beyond years 0..9999). */
static long long sch_days_from_civil(long long y, unsigned m, unsigned d)
{
    long long era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void sch_civil_from_days(long long z, long long *y, unsigned *m,
                                unsigned *d)
{
    long long era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

static int sch_days_in(unsigned m, long long y)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return 29;
    return days[m - 1];
}

static int sch_num(const char *s, int n, int lo, int hi, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Writes seconds since the epoch + nanoseconds as Go's RFC3339Nano in UTC
 * ("2006-01-02T15:04:05.999999999Z", trailing zeros of the fraction
 * dropped). out must hold 40 bytes. Returns -1 for a year outside
 * 0..9999 (Go's MarshalJSON refuses those too). */
static void sch_digits(char *out, long long v, int n)
{
    while (n-- > 0) {
        out[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

static int sch_time_format(long long secs, long nsec, char *out)
{
    long long days = secs / 86400, rem = secs % 86400, y;
    unsigned m, d;
    int n = 19;

    if (rem < 0) {
        rem += 86400;
        days--;
    }
    sch_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return -1;
    /* 2006-01-02T15:04:05 */
    sch_digits(out, y, 4);
    out[4] = '-';
    sch_digits(out + 5, m, 2);
    out[7] = '-';
    sch_digits(out + 8, d, 2);
    out[10] = 'T';
    sch_digits(out + 11, rem / 3600, 2);
    out[13] = ':';
    sch_digits(out + 14, rem / 60 % 60, 2);
    out[16] = ':';
    sch_digits(out + 17, rem % 60, 2);
    if (nsec > 0) {
        int k = 9;

        out[n++] = '.';
        sch_digits(out + n, nsec, 9);
        while (out[n + k - 1] == '0')
            k--;
        n += k;
    }
    out[n++] = 'Z';
    out[n] = '\0';
    return 0;
}

/*
 * Parses RFC 3339 exactly as Go's time.Time.UnmarshalJSON does (Go >=
 * 1.20, strict): "YYYY-MM-DDTHH:MM:SS", an optional '.' and one or more
 * digits (nanoseconds; digits past the ninth are truncated), then 'Z' or
 * "+HH:MM"/"-HH:MM" (HH < 24, MM < 60). Upper-case 'T' and 'Z' only, day
 * checked against the month. Writes the instant in UTC as Go's
 * RFC3339Nano. Returns 0 or -1.
 */
static int sch_time_norm(const char *s, size_t len, char *out)
{
    int year, mon, day, hh, mm, ss, zh = 0, zm = 0;
    long nsec = 0;
    size_t i = 19;
    long long secs;

    if (len < 20)
        return -1;
    if (sch_num(s, 4, 0, 9999, &year) || s[4] != '-' ||
        sch_num(s + 5, 2, 1, 12, &mon) || s[7] != '-' ||
        sch_num(s + 8, 2, 1, 31, &day) || s[10] != 'T' ||
        sch_num(s + 11, 2, 0, 23, &hh) || s[13] != ':' ||
        sch_num(s + 14, 2, 0, 59, &mm) || s[16] != ':' ||
        sch_num(s + 17, 2, 0, 59, &ss))
        return -1;
    if (day > sch_days_in((unsigned)mon, year))
        return -1;
    if (i + 1 < len && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
        int digits = 0;

        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (digits < 9) {
                nsec = nsec * 10 + (s[i] - '0');
                digits++;
            }
        }
        for (; digits < 9; digits++)
            nsec *= 10;
    }
    if (len - i == 1 && s[i] == 'Z') {
        /* UTC */
    } else if (len - i == 6 && (s[i] == '+' || s[i] == '-') &&
               s[i + 3] == ':' && !sch_num(s + i + 1, 2, 0, 23, &zh) &&
               !sch_num(s + i + 4, 2, 0, 59, &zm)) {
        if (s[i] == '-') {
            zh = -zh;
            zm = -zm;
        }
    } else {
        return -1;
    }
    secs = sch_days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 +
           hh * 3600 + mm * 60 + ss - (zh * 3600 + zm * 60);
    return sch_time_format(secs, nsec, out);
}

/* ---- canonicalisation -------------------------------------------------------
 */

/* Go's case-insensitive member matching (bytes.EqualFold against an ASCII
 * field name): ASCII letters fold, and so do the Kelvin sign (to 'k') and
 * the long s (to 's'). */
static int sch_fold_eq(const char *key, const char *name)
{
    size_t len = strlen(key), i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)key[i];
        uint32_t cp;
        size_t n;
        char want = *name++;

        if (!want)
            return 0;
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c + 32);
            if (c != (unsigned char)want)
                return 0;
            i++;
            continue;
        }
        n = utf8_decode(key + i, len - i, &cp);
        if (n == 0)
            return 0;
        if (!((cp == 0x212A && want == 'k') || (cp == 0x017F && want == 's')))
            return 0;
        i += n;
    }
    return *name == '\0';
}

static int sch_find_field(const struct sch_schema *s, const char *key)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        if (s->fields[i].name[0] == key[0] && !strcmp(s->fields[i].name, key))
            return (int)i;
    }
    for (i = 0; i < s->n; i++) {
        if (sch_fold_eq(key, s->fields[i].name))
            return (int)i;
    }
    return -1;
}

static json_t *sch_struct(struct sch_ctx *c, const struct sch_schema *s,
                          json_t *in, json_t *into);

static json_t *sch_zero(int kind)
{
    switch (kind) {
    case K_STR:
        return NEW(json_string(""));
    case K_BOOL:
        return json_false();
    case K_INT:
        return NEW(json_integer(0));
    case K_TIME:
        return NEW(json_string("0001-01-01T00:00:00Z"));
    case K_STRLIST:
    case K_LIST:
        return NEW(json_array());
    default:
        return json_null();
    }
}

static int sch_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A map: keys sorted (Go sorts map keys when encoding), values strings
 * (null -> "") or float64 (null -> 0). */
static json_t *sch_map(struct sch_ctx *c, json_t *v, int floats)
{
    size_t n = json_object_size(v), i = 0;
    const char **keys;
    const char *k;
    json_t *m, *out;

    if (!json_is_object(v)) {
        sch_fail(c, "expected object, got %s", sch_jtype(v));
        return NULL;
    }
    keys = sch_check(malloc((n ? n : 1) * sizeof(*keys)));
    json_object_foreach(v, k, m)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(*keys), sch_cmp_str);
    out = NEW(json_object());
    for (i = 0; i < n; i++) {
        json_t *val = json_object_get(v, keys[i]), *r;

        if (floats) {
            if (json_is_null(val))
                r = NEW(json_real(0));
            else if (json_is_number(val))
                r = NEW(json_real(json_number_value(val)));
            else
                r = NULL;
        } else {
            if (json_is_null(val))
                r = NEW(json_string(""));
            else if (json_is_string(val))
                r = NEW(json_stringn(json_string_value(val),
                                     json_string_length(val)));
            else
                r = NULL;
        }
        if (!r) {
            sch_push(c, keys[i], -1);
            sch_fail(c, "expected %s, got %s", floats ? "number" : "string",
                     sch_jtype(val));
            sch_pop(c);
            json_decref(out);
            free(keys);
            return NULL;
        }
        json_object_set_new(out, keys[i], r);
    }
    free(keys);
    return out;
}

/* An int64 from a JSON number: integers as they are; a real only when it
 * is integral and fits (1200.0 -> 1200; 12.5 is an error). */
static json_t *sch_int(struct sch_ctx *c, json_t *v)
{
    double d;

    if (json_is_integer(v))
        return NEW(json_integer(json_integer_value(v)));
    if (!json_is_real(v)) {
        sch_fail(c, "expected integer, got %s", sch_jtype(v));
        return NULL;
    }
    d = json_real_value(v);
    if (d != floor(d) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0) {
        sch_fail(c, "expected integer, got %.17g", d);
        return NULL;
    }
    return NEW(json_integer((json_int_t)d));
}

static json_t *sch_time(struct sch_ctx *c, json_t *v)
{
    char out[40];

    if (!json_is_string(v)) {
        sch_fail(c, "expected RFC 3339 time string, got %s", sch_jtype(v));
        return NULL;
    }
    if (sch_time_norm(json_string_value(v), json_string_length(v), out) < 0) {
        sch_fail(c, "not an RFC 3339 time: \"%.40s\"", json_string_value(v));
        return NULL;
    }
    return NEW(json_string(out));
}

static json_t *sch_list(struct sch_ctx *c, const struct sch_field *f, json_t *v)
{
    json_t *out;
    size_t i;

    if (json_is_null(v))
        return NEW(json_array());
    if (!json_is_array(v)) {
        sch_fail(c, "expected array, got %s", sch_jtype(v));
        return NULL;
    }
    out = NEW(json_array());
    for (i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i), *r = NULL;

        sch_push(c, NULL, (long)i);
        if (f->kind == K_STRLIST) {
            if (json_is_null(e))
                r = NEW(json_string(""));
            else if (json_is_string(e))
                r = NEW(
                    json_stringn(json_string_value(e), json_string_length(e)));
            else
                sch_fail(c, "expected string, got %s", sch_jtype(e));
        } else if (json_is_null(e)) {
            r = json_null();
        } else if (json_is_object(e)) {
            r = sch_struct(c, f->sub, e, NULL);
        } else {
            sch_fail(c, "expected object, got %s", sch_jtype(e));
        }
        sch_pop(c);
        if (!r) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, r);
    }
    return out;
}

/* One field's canonical value from a present member v. base is the value
 * decoded into (the existing field when merging into a struct), or NULL. */
static json_t *sch_value(struct sch_ctx *c, const struct sch_field *f,
                         json_t *v, json_t *base)
{
    if (json_is_null(v)) {
        /* Pointers and maps become nil, lists empty; the other kinds never
         * get here (null leaves them unchanged). */
        return f->kind == K_STRLIST || f->kind == K_LIST ? NEW(json_array())
                                                         : json_null();
    }
    switch (f->kind) {
    case K_STR:
    case K_STR_OPT:
        if (json_is_string(v))
            return NEW(
                json_stringn(json_string_value(v), json_string_length(v)));
        sch_fail(c, "expected string, got %s", sch_jtype(v));
        return NULL;
    case K_BOOL:
        if (json_is_boolean(v))
            return json_boolean(json_is_true(v));
        sch_fail(c, "expected bool, got %s", sch_jtype(v));
        return NULL;
    case K_INT:
    case K_INT_OPT:
        return sch_int(c, v);
    case K_FLOAT_OPT:
        if (json_is_number(v))
            return NEW(json_real(json_number_value(v)));
        sch_fail(c, "expected number, got %s", sch_jtype(v));
        return NULL;
    case K_TIME:
    case K_TIME_OPT:
        return sch_time(c, v);
    case K_STRLIST:
    case K_LIST:
        return sch_list(c, f, v);
    case K_STRUCT_OPT:
        if (json_is_object(v))
            return sch_struct(c, f->sub, v, json_is_object(base) ? base : NULL);
        sch_fail(c, "expected object, got %s", sch_jtype(v));
        return NULL;
    case K_MAP_STR:
        return sch_map(c, v, 0);
    case K_MAP_FLOAT:
        return sch_map(c, v, 1);
    }
    return NULL;
}

/* null into a non-pointer scalar leaves it as it was (Go). */
static int sch_null_keeps(int kind)
{
    return kind == K_STR || kind == K_BOOL || kind == K_INT || kind == K_TIME;
}

static int sch_is_empty(const json_t *v)
{
    return json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ||
           (json_is_object(v) && json_object_size(v) == 0);
}

/*
 * Decodes object `in` as structure s. into, when given, is a canonical
 * value of s that `in` is decoded into (Go's Unmarshal into an existing
 * struct): members absent from `in` keep into's values.
 */
static json_t *sch_struct(struct sch_ctx *c, const struct sch_schema *s,
                          json_t *in, json_t *into)
{
    json_t *slot[SCH_MAX_FIELDS] = {NULL};
    const char *k;
    json_t *v, *out;
    size_t i;

    json_object_foreach(in, k, v)
    {
        int idx = sch_find_field(s, k);

        if (idx >= 0)
            slot[idx] = v;
    }
    out = NEW(json_object());
    for (i = 0; i < s->n; i++) {
        const struct sch_field *f = &s->fields[i];
        json_t *base = into ? json_object_get(into, f->name) : NULL, *r;

        v = slot[i];
        if (v && json_is_null(v) && sch_null_keeps(f->kind))
            v = NULL;
        if (!v) {
            r = base ? NEW(json_deep_copy(base)) : sch_zero(f->kind);
        } else {
            sch_push(c, f->name, -1);
            r = sch_value(c, f, v, base);
            sch_pop(c);
            if (!r) {
                json_decref(out);
                return NULL;
            }
        }
        if (f->omitempty && sch_is_empty(r)) {
            json_decref(r);
            continue;
        }
        json_object_set_new(out, f->name, r);
    }
    return out;
}

static json_t *sch_canon(struct sch_ctx *c, enum sch_type type, json_t *entity)
{
    const struct sch_schema *s = sch_schema_of(type);

    if (!s) {
        sch_fail(c, "unknown entity type %d", (int)type);
        return NULL;
    }
    if (!json_is_object(entity)) {
        sch_fail(c, "%s is not an object", s->name);
        return NULL;
    }
    return sch_struct(c, s, entity, NULL);
}

json_t *sch_canonical(enum sch_type type, json_t *entity, char *err,
                      size_t errlen)
{
    struct sch_ctx c;
    json_t *out;

    sch_ctx_init(&c, err, errlen);
    out = sch_canon(&c, type, entity);
    if (out && json_string_length(json_object_get(out, "id")) == 0) {
        sch_fail(&c, "id is missing or empty");
        json_decref(out);
        return NULL;
    }
    return out;
}

char *sch_normalize(enum sch_type type, json_t *entity, char *err,
                    size_t errlen)
{
    json_t *canon = sch_canonical(type, entity, err, errlen);
    struct gj_buf b;

    if (!canon)
        return NULL;
    gj_init(&b);
    if (gj_value(&b, canon) < 0) {
        /* Cannot happen: jansson never yields an infinite real. */
        if (err && errlen)
            snprintf(err, errlen, "non-finite number");
        gj_release(&b);
        json_decref(canon);
        return NULL;
    }
    json_decref(canon);
    return gj_take(&b);
}

/* ---- merge (section 5, schematic-go datastream/merge.go)
 * --------------------- */

static const struct sch_field *sch_field_of(const struct sch_schema *s,
                                            const char *name)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        if (!strcmp(s->fields[i].name, name))
            return &s->fields[i];
    }
    return NULL;
}

/* Decodes partial member v as field `name` of s (Go: json.Unmarshal of the
 * raw member into a fresh variable of the field's type). */
static json_t *sch_member(struct sch_ctx *c, const struct sch_schema *s,
                          const char *name, json_t *v, json_t *base)
{
    const struct sch_field *f = sch_field_of(s, name);
    json_t *r;

    sch_push(c, name, -1);
    if (json_is_null(v)) {
        switch (f->kind) {
        case K_STRLIST:
        case K_LIST:
            r = NEW(json_array());
            break;
        default:
            r = json_null();
        }
    } else {
        r = sch_value(c, f, v, base);
    }
    sch_pop(c);
    return r;
}

static const char *sch_sval(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A copy of object o with its members in key order (Go sorts map keys). */
static json_t *sch_sorted(json_t *o)
{
    size_t n = json_object_size(o), i = 0;
    const char **keys = sch_check(malloc((n ? n : 1) * sizeof(*keys)));
    const char *k;
    json_t *v, *out = NEW(json_object());

    json_object_foreach(o, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(*keys), sch_cmp_str);
    for (i = 0; i < n; i++)
        json_object_set(out, keys[i], json_object_get(o, keys[i]));
    free(keys);
    return out;
}

/* Shallow-merges canonical map src (or null) into member `name` of obj,
 * which is created when it is null: Go's maps.Copy into a made map. */
static void sch_map_merge(json_t *obj, const char *name, json_t *src)
{
    json_t *dst = json_object_get(obj, name);

    if (!json_is_object(dst)) {
        dst = NEW(json_object());
        json_object_set_new(obj, name, dst);
    }
    if (json_is_object(src) && json_object_size(src) > 0) {
        json_object_update(dst, src);
        json_object_set_new(obj, name, sch_sorted(dst));
    }
}

static int sch_metric_is(json_t *m, const char *ev, const char *period,
                         const char *reset)
{
    const char *a = sch_sval(m, "event_subtype");
    const char *b = sch_sval(m, "period");
    const char *r = sch_sval(m, "month_reset");

    return a && b && r && !strcmp(a, ev) && !strcmp(b, period) &&
           !strcmp(r, reset);
}

/* Go's upsertMetrics: each incoming non-null metric replaces the existing
 * element with its identity (the last one when the existing list repeats
 * an identity) in place, or is appended. */
static void sch_upsert_metrics(json_t *metrics, json_t *incoming)
{
    size_t nexist = json_array_size(metrics), i, j;

    for (i = 0; i < json_array_size(incoming); i++) {
        json_t *m = json_array_get(incoming, i);
        const char *ev, *pe, *re;
        size_t hit = (size_t)-1;

        if (json_is_null(m))
            continue;
        ev = sch_sval(m, "event_subtype");
        pe = sch_sval(m, "period");
        re = sch_sval(m, "month_reset");
        for (j = 0; j < nexist; j++) {
            if (sch_metric_is(json_array_get(metrics, j), ev, pe, re))
                hit = j;
        }
        if (hit != (size_t)-1)
            json_array_set(metrics, hit, m);
        else
            json_array_append(metrics, m);
    }
}

/* Go's syncEntitlementDerivedFields. */
static void sch_rederive(json_t *company, json_t *credits, int metrics_upd)
{
    json_t *ents = json_object_get(company, "entitlements");
    json_t *metrics = json_object_get(company, "metrics");
    size_t i, j;

    for (i = 0; i < json_array_size(ents); i++) {
        json_t *e = json_array_get(ents, i);
        const char *credit, *event;

        if (!json_is_object(e))
            continue;
        credit = sch_sval(e, "credit_id");
        event = sch_sval(e, "event_name");
        if (credits && credit) {
            json_t *bal = json_object_get(credits, credit);

            if (bal)
                json_object_set_new(e, "credit_remaining",
                                    NEW(json_real(json_number_value(bal))));
        }
        if (metrics_upd && event) {
            const char *period = sch_sval(e, "metric_period");
            const char *reset = sch_sval(e, "month_reset");
            json_t *found = NULL;

            if (!period)
                period = "all_time";
            if (!reset)
                reset = "first_of_month";
            /* The lookup map keeps the last metric of each identity. */
            for (j = 0; j < json_array_size(metrics); j++) {
                json_t *m = json_array_get(metrics, j);

                if (json_is_object(m) && sch_metric_is(m, event, period, reset))
                    found = m;
            }
            if (found)
                json_object_set_new(e, "usage",
                                    NEW(json_integer(json_integer_value(
                                        json_object_get(found, "value")))));
        }
    }
}

static int sch_merge_company(struct sch_ctx *c, json_t *m, json_t *partial)
{
    const struct sch_schema *s = &s_company;
    json_t *credits = NULL;
    int metrics_upd = 0, ents_in = 0;
    const char *k;
    json_t *v;

    /* Go's DeepCopyCompany always makes a keys map. */
    if (!json_is_object(json_object_get(m, "keys")))
        json_object_set_new(m, "keys", NEW(json_object()));

    json_object_foreach(partial, k, v)
    {
        json_t *r;

        if (!strcmp(k, "id") || !strcmp(k, "account_id") ||
            !strcmp(k, "environment_id")) {
            if (json_is_null(v))
                continue; /* null into a string: unchanged */
        } else if (!strcmp(k, "base_plan_id") ||
                   !strcmp(k, "billing_product_ids") ||
                   !strcmp(k, "plan_ids") || !strcmp(k, "plan_version_ids") ||
                   !strcmp(k, "rules") || !strcmp(k, "traits")) {
            /* replaced below */
        } else if (!strcmp(k, "subscription")) {
            /* Decoded into the existing subscription: absent members keep
             * their values; null clears it. */
            r = sch_member(c, s, k, v, json_object_get(m, k));
            if (!r)
                goto fail;
            json_object_set_new(m, k, r);
            continue;
        } else if (!strcmp(k, "credit_balances")) {
            r = sch_member(c, s, k, v, NULL);
            if (!r)
                goto fail;
            sch_map_merge(m, k, r);
            json_decref(credits);
            credits = json_is_object(r) ? r : NULL;
            if (!credits)
                json_decref(r);
            continue;
        } else if (!strcmp(k, "entitlements")) {
            ents_in = 1;
        } else if (!strcmp(k, "keys")) {
            r = sch_member(c, s, k, v, NULL);
            if (!r)
                goto fail;
            sch_map_merge(m, k, r);
            json_decref(r);
            continue;
        } else if (!strcmp(k, "metrics")) {
            r = sch_member(c, s, k, v, NULL);
            if (!r)
                goto fail;
            sch_upsert_metrics(json_object_get(m, "metrics"), r);
            json_decref(r);
            metrics_upd = 1;
            continue;
        } else {
            continue; /* not a merge field */
        }
        r = sch_member(c, s, k, v, NULL);
        if (!r)
            goto fail;
        json_object_set_new(m, k, r);
    }
    if (!ents_in && (credits || metrics_upd) &&
        json_array_size(json_object_get(m, "entitlements")) > 0)
        sch_rederive(m, credits, metrics_upd);
    json_decref(credits);
    return 0;
fail:
    json_decref(credits);
    return -1;
}

static int sch_merge_user(struct sch_ctx *c, json_t *m, json_t *partial)
{
    const char *k;
    json_t *v;

    json_object_foreach(partial, k, v)
    {
        json_t *r;

        if (!strcmp(k, "id") || !strcmp(k, "account_id") ||
            !strcmp(k, "environment_id")) {
            if (json_is_null(v))
                continue;
        } else if (!strcmp(k, "keys")) {
            r = sch_member(c, &s_user, k, v, NULL);
            if (!r)
                return -1;
            sch_map_merge(m, k, r);
            json_decref(r);
            continue;
        } else if (strcmp(k, "traits") && strcmp(k, "rules")) {
            continue;
        }
        r = sch_member(c, &s_user, k, v, NULL);
        if (!r)
            return -1;
        json_object_set_new(m, k, r);
    }
    return 0;
}

json_t *sch_merge_ex(enum sch_type type, json_t *base, json_t *partial,
                     char *err, size_t errlen)
{
    struct sch_ctx c;
    json_t *m;
    int rc;

    sch_ctx_init(&c, err, errlen);
    if (!json_is_object(partial)) {
        sch_fail(&c, "partial is not an object");
        return NULL;
    }
    if (type == SCH_FLAG) {
        /* A flag partial carries the whole flag (7.5). */
        return sch_canon(&c, type, partial);
    }
    sch_push(&c, "base", -1);
    m = sch_canon(&c, type, base);
    sch_pop(&c);
    if (!m)
        return NULL;
    rc = type == SCH_COMPANY ? sch_merge_company(&c, m, partial)
                             : sch_merge_user(&c, m, partial);
    if (rc < 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *sch_merge(enum sch_type type, json_t *base, json_t *partial)
{
    return sch_merge_ex(type, base, partial, NULL, 0);
}

/* ---- fast path: JSON text in, Go JSON text out (no jansson tree) ----------
 */

/*
 * The same decoding rules as above, over a jv document and writing straight
 * into the output buffer. The unit tests check that both paths give the
 * same bytes and the same errors.
 */

static const char *jv_tname(const struct jv *v)
{
    switch (v->type) {
    case JV_OBJ:
        return "object";
    case JV_ARR:
        return "array";
    case JV_STR:
        return "string";
    case JV_INT:
    case JV_REAL:
        return "number";
    case JV_TRUE:
    case JV_FALSE:
        return "bool";
    default:
        return "null";
    }
}

/* slot[i] = the last member of obj that matches field i (Go's rules).
 * Members usually come in field order, so the field after the previous
 * match is tried first. */
static void jv_slots(const struct sch_schema *s, const struct jv *obj,
                     const struct jv **slot)
{
    uint32_t i;
    size_t hint = 0;

    memset(slot, 0, s->n * sizeof(*slot));
    if (!obj || obj->type != JV_OBJ)
        return;
    for (i = 0; i < obj->n; i++) {
        const char *key = obj->u.members[i].key;
        int idx;

        if (hint < s->n && !strcmp(s->fields[hint].name, key))
            idx = (int)hint;
        else
            idx = sch_find_field(s, key);
        if (idx >= 0) {
            slot[idx] = &obj->u.members[i].val;
            hint = (size_t)idx + 1;
        }
    }
}

/* The last member named exactly `name`, or NULL. */
static const struct jv *jv_get(const struct jv *obj, const char *name)
{
    const struct jv *r = NULL;
    uint32_t i;

    if (!obj || obj->type != JV_OBJ)
        return NULL;
    for (i = 0; i < obj->n; i++) {
        if (!strcmp(obj->u.members[i].key, name))
            r = &obj->u.members[i].val;
    }
    return r;
}

/* The string a struct field decodes to: its value, "" for null or absent,
 * NULL for another type. */
static const char *jv_field_str(const struct sch_schema *s, const struct jv *o,
                                const char *field)
{
    const struct jv *slot[SCH_MAX_FIELDS];
    int i;

    jv_slots(s, o, slot);
    for (i = 0; i < (int)s->n; i++) {
        if (strcmp(s->fields[i].name, field))
            continue;
        if (!slot[i] || slot[i]->type == JV_NULL)
            return "";
        return slot[i]->type == JV_STR ? slot[i]->u.s : NULL;
    }
    return NULL;
}

/* A *string field: NULL for null, absent or another type. */
static const char *jv_field_pstr(const struct sch_schema *s, const struct jv *o,
                                 const char *field)
{
    const char *v = jv_field_str(s, o, field);
    const struct jv *slot[SCH_MAX_FIELDS];
    size_t i;

    jv_slots(s, o, slot);
    for (i = 0; i < s->n; i++) {
        if (!strcmp(s->fields[i].name, field))
            return slot[i] && slot[i]->type == JV_STR ? v : NULL;
    }
    return NULL;
}

/* Field overrides for re-derived entitlements. */
struct sch_ovr {
    const char *name;
    int is_int;
    long long i;
    double d;
};

static int w_struct(struct sch_ctx *c, struct gj_buf *b,
                    const struct sch_schema *s, const struct jv *obj,
                    const struct jv *into, const struct sch_ovr *ovr, int novr);

static void w_zero(struct gj_buf *b, int kind)
{
    switch (kind) {
    case K_STR:
        gj_raw(b, "\"\"", 2);
        break;
    case K_BOOL:
        gj_raw(b, "false", 5);
        break;
    case K_INT:
        gj_char(b, '0');
        break;
    case K_TIME:
        gj_raw(b, "\"0001-01-01T00:00:00Z\"", 22);
        break;
    case K_STRLIST:
    case K_LIST:
        gj_raw(b, "[]", 2);
        break;
    default:
        gj_raw(b, "null", 4);
    }
}

static int w_int(struct sch_ctx *c, struct gj_buf *b, const struct jv *v)
{
    double d;

    if (v->type == JV_INT) {
        gj_int(b, v->u.i);
        return 0;
    }
    if (v->type != JV_REAL) {
        sch_fail(c, "expected integer, got %s", jv_tname(v));
        return -1;
    }
    d = v->u.d;
    if (d != floor(d) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0) {
        sch_fail(c, "expected integer, got %.17g", d);
        return -1;
    }
    gj_int(b, (long long)d);
    return 0;
}

struct w_kv {
    const struct jv_member *m;
    size_t order;
};

static int w_kv_cmp(const void *a, const void *b)
{
    const struct w_kv *x = a, *y = b;
    int r = strcmp(x->m->key, y->m->key);

    if (r)
        return r;
    return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * The members of up to two objects (later members win, the second
 * object's over the first's), sorted by key with duplicates dropped, in
 * *out (malloc'd, *n entries). Fails when a source is not an object.
 */
static int w_map_members(struct sch_ctx *c, const struct jv *m1,
                         const struct jv *m2, struct w_kv **out, size_t *n)
{
    const struct jv *src[2] = {m1, m2};
    struct w_kv *kv;
    size_t i, k, cap = 0, got = 0, kept = 0;

    for (k = 0; k < 2; k++) {
        if (!src[k])
            continue;
        if (src[k]->type != JV_OBJ) {
            sch_fail(c, "expected object, got %s", jv_tname(src[k]));
            return -1;
        }
        cap += src[k]->n;
    }
    kv = sch_check(malloc((cap ? cap : 1) * sizeof(*kv)));
    for (k = 0; k < 2; k++) {
        for (i = 0; src[k] && i < src[k]->n; i++) {
            kv[got].m = &src[k]->u.members[i];
            kv[got].order = got;
            got++;
        }
    }
    qsort(kv, got, sizeof(*kv), w_kv_cmp);
    for (i = 0; i < got; i++) {
        if (i + 1 < got && !strcmp(kv[i].m->key, kv[i + 1].m->key))
            continue; /* a later one wins */
        kv[kept++] = kv[i];
    }
    *out = kv;
    *n = kept;
    return 0;
}

/* Records a keys map in c->cap (values: strings, null as ""; members
 * of another type are left out). */
static void w_cap_map(struct sch_ctx *c, const struct w_kv *kv, size_t n)
{
    struct sch_entity *e = c->cap;
    size_t i;

    if (n == 0)
        return;
    e->keys = sch_check(calloc(n, sizeof(*e->keys)));
    for (i = 0; i < n; i++) {
        const struct jv *v = &kv[i].m->val;
        struct sch_kv *o = &e->keys[e->nkeys];

        if (v->type != JV_STR && v->type != JV_NULL)
            continue; /* only sch_entity_keys gets here: lenient */
        o->key = sch_check(strdup(kv[i].m->key));
        o->value = sch_check(strdup(v->type == JV_STR ? v->u.s : ""));
        e->nkeys++;
    }
}

/* Writes one map value: a string (null: "") or a float64 (null: 0). */
static int w_map_value(struct sch_ctx *c, struct gj_buf *b, int floats,
                       const struct jv_member *m)
{
    const struct jv *v = &m->val;

    if (v->type == JV_NULL) {
        if (floats)
            gj_char(b, '0');
        else
            gj_raw(b, "\"\"", 2);
    } else if (floats && v->type == JV_INT) {
        gj_float(b, (double)v->u.i);
    } else if (floats && v->type == JV_REAL) {
        gj_float(b, v->u.d);
    } else if (!floats && v->type == JV_STR) {
        gj_str(b, v->u.s, v->n);
    } else {
        sch_push(c, m->key, -1);
        sch_fail(c, "expected %s, got %s", floats ? "number" : "string",
                 jv_tname(v));
        sch_pop(c);
        return -1;
    }
    return 0;
}

/* A map from up to two objects (see w_map_members), keys sorted. When
 * c->cap_keys is set, the map written is recorded in c->cap. */
static int w_map(struct sch_ctx *c, struct gj_buf *b, int floats,
                 const struct jv *m1, const struct jv *m2)
{
    struct w_kv *kv;
    size_t n, i;

    if (w_map_members(c, m1, m2, &kv, &n) < 0)
        return -1;
    gj_char(b, '{');
    for (i = 0; i < n; i++) {
        if (i)
            gj_char(b, ',');
        gj_str(b, kv[i].m->key, kv[i].m->klen);
        gj_char(b, ':');
        if (w_map_value(c, b, floats, kv[i].m) < 0) {
            free(kv);
            return -1;
        }
    }
    gj_char(b, '}');
    if (c->cap_keys && !floats)
        w_cap_map(c, kv, n);
    free(kv);
    return 0;
}

/* One list element or list. */
static int w_list(struct sch_ctx *c, struct gj_buf *b,
                  const struct sch_field *f, const struct jv *v)
{
    uint32_t i;

    if (v->type == JV_NULL) {
        gj_raw(b, "[]", 2);
        return 0;
    }
    if (v->type != JV_ARR) {
        sch_fail(c, "expected array, got %s", jv_tname(v));
        return -1;
    }
    gj_char(b, '[');
    for (i = 0; i < v->n; i++) {
        const struct jv *e = &v->u.items[i];
        int rc = 0;

        if (i)
            gj_char(b, ',');
        sch_push(c, NULL, (long)i);
        if (f->kind == K_STRLIST) {
            if (e->type == JV_NULL) {
                gj_raw(b, "\"\"", 2);
            } else if (e->type == JV_STR) {
                gj_str(b, e->u.s, e->n);
            } else {
                sch_fail(c, "expected string, got %s", jv_tname(e));
                rc = -1;
            }
        } else if (e->type == JV_NULL) {
            gj_raw(b, "null", 4);
        } else if (e->type == JV_OBJ) {
            rc = w_struct(c, b, f->sub, e, NULL, NULL, 0);
        } else {
            sch_fail(c, "expected object, got %s", jv_tname(e));
            rc = -1;
        }
        sch_pop(c);
        if (rc < 0)
            return -1;
    }
    gj_char(b, ']');
    return 0;
}

/* A present member v of field f (base: see sch_value). */
static int w_value(struct sch_ctx *c, struct gj_buf *b,
                   const struct sch_field *f, const struct jv *v,
                   const struct jv *base)
{
    char t[40];

    if (v->type == JV_NULL) {
        w_zero(b,
               f->kind == K_STRLIST || f->kind == K_LIST ? K_LIST : K_STR_OPT);
        return 0;
    }
    switch (f->kind) {
    case K_STR:
    case K_STR_OPT:
        if (v->type == JV_STR) {
            gj_str(b, v->u.s, v->n);
            return 0;
        }
        sch_fail(c, "expected string, got %s", jv_tname(v));
        return -1;
    case K_BOOL:
        if (v->type == JV_TRUE || v->type == JV_FALSE) {
            if (v->type == JV_TRUE)
                gj_raw(b, "true", 4);
            else
                gj_raw(b, "false", 5);
            return 0;
        }
        sch_fail(c, "expected bool, got %s", jv_tname(v));
        return -1;
    case K_INT:
    case K_INT_OPT:
        return w_int(c, b, v);
    case K_FLOAT_OPT:
        if (v->type == JV_INT) {
            gj_float(b, (double)v->u.i);
            return 0;
        }
        if (v->type == JV_REAL) {
            gj_float(b, v->u.d);
            return 0;
        }
        sch_fail(c, "expected number, got %s", jv_tname(v));
        return -1;
    case K_TIME:
    case K_TIME_OPT:
        if (v->type != JV_STR) {
            sch_fail(c, "expected RFC 3339 time string, got %s", jv_tname(v));
            return -1;
        }
        if (sch_time_norm(v->u.s, v->n, t) < 0) {
            sch_fail(c, "not an RFC 3339 time: \"%.40s\"", v->u.s);
            return -1;
        }
        gj_str(b, t, strlen(t));
        return 0;
    case K_STRLIST:
    case K_LIST:
        return w_list(c, b, f, v);
    case K_STRUCT_OPT:
        if (v->type == JV_OBJ)
            return w_struct(c, b, f->sub, v,
                            base && base->type == JV_OBJ ? base : NULL, NULL,
                            0);
        sch_fail(c, "expected object, got %s", jv_tname(v));
        return -1;
    case K_MAP_STR:
        return w_map(c, b, 0, v, NULL);
    case K_MAP_FLOAT:
        return w_map(c, b, 1, v, NULL);
    }
    return -1;
}

/* Whether an omit-empty field with this source is left out: absent, null,
 * or an empty list (a value of the wrong type is written, and fails). */
/* Field f's value src, or the zero value of its kind when src is NULL. */
static int w_value_or_zero(struct sch_ctx *c, struct gj_buf *b,
                           const struct sch_field *f, const struct jv *src)
{
    if (!src) {
        w_zero(b, f->kind);
        return 0;
    }
    return w_value(c, b, f, src, NULL);
}

static int w_omit(const struct sch_field *f, const struct jv *v)
{
    return !v || v->type == JV_NULL ||
           (v->type == JV_ARR && v->n == 0 &&
            (f->kind == K_LIST || f->kind == K_STRLIST));
}

static void w_key(struct gj_buf *b, int *first, const char *name)
{
    if (!*first)
        gj_char(b, ',');
    *first = 0;
    gj_char(b, '"');
    gj_raw(b, name, strlen(name)); /* field names need no escaping */
    gj_raw(b, "\":", 2);
}

/*
 * Called before a top-level field f is written from src (NULL: its zero
 * value): records the entity's id and a flag's key in c->cap, and arms
 * c->cap_keys for the keys map.
 */
static void w_cap_field(struct sch_ctx *c, const struct sch_field *f,
                        const struct jv *src)
{
    char **dst;

    if (!c->cap || c->depth != 0)
        return;
    c->cap_keys = 0;
    if (!strcmp(f->name, "id")) {
        dst = &c->cap->id;
    } else if (!strcmp(f->name, "key")) {
        dst = &c->cap->flag_key;
    } else {
        c->cap_keys = f->kind == K_MAP_STR;
        return;
    }
    free(*dst);
    *dst = sch_check(strdup(src && src->type == JV_STR ? src->u.s : ""));
}

static int w_struct(struct sch_ctx *c, struct gj_buf *b,
                    const struct sch_schema *s, const struct jv *obj,
                    const struct jv *into, const struct sch_ovr *ovr, int novr)
{
    const struct jv *slot[SCH_MAX_FIELDS], *bslot[SCH_MAX_FIELDS];
    size_t i;
    int first = 1;

    jv_slots(s, obj, slot);
    jv_slots(s, into, bslot);
    gj_char(b, '{');
    for (i = 0; i < s->n; i++) {
        const struct sch_field *f = &s->fields[i];
        const struct jv *v = slot[i], *bv = into ? bslot[i] : NULL, *src;
        int k, rc;

        if (v && v->type == JV_NULL && sch_null_keeps(f->kind))
            v = NULL;
        if (bv && bv->type == JV_NULL && sch_null_keeps(f->kind))
            bv = NULL;
        for (k = 0; k < novr; k++) {
            if (!strcmp(ovr[k].name, f->name))
                break;
        }
        if (k < novr) {
            w_key(b, &first, f->name);
            if (ovr[k].is_int)
                gj_int(b, ovr[k].i);
            else
                gj_float(b, ovr[k].d);
            continue;
        }
        src = v ? v : bv;
        if (f->omitempty && w_omit(f, src))
            continue;
        w_cap_field(c, f, src);
        w_key(b, &first, f->name);
        if (!src) {
            w_zero(b, f->kind);
            continue;
        }
        sch_push(c, f->name, -1);
        rc = w_value(c, b, f, src, v ? bv : NULL);
        sch_pop(c);
        if (rc < 0)
            return -1;
    }
    gj_char(b, '}');
    return 0;
}

/* A metric and its identity (NULL members: not strings, never equal). */
struct w_metric {
    const struct jv *m;
    const char *ev;
    const char *pe;
    const char *re;
};

struct w_merge {
    const struct jv *pv[SCH_MAX_FIELDS]; /* partial members by field */
    const struct jv *bv[SCH_MAX_FIELDS]; /* base members by field */
    struct w_metric *metrics;            /* merged metrics (elements) */
    size_t nmetrics;
    int metrics_merged;
};

static void w_metric_id(struct w_metric *wm, const struct jv *m)
{
    const struct jv *slot[SCH_MAX_FIELDS];
    const char **out[3];
    static const char *const names[3] = {"event_subtype", "period",
                                         "month_reset"};
    size_t i, k;

    wm->m = m;
    wm->ev = wm->pe = wm->re = NULL;
    if (m->type != JV_OBJ)
        return;
    out[0] = &wm->ev;
    out[1] = &wm->pe;
    out[2] = &wm->re;
    jv_slots(&s_metric, m, slot);
    for (i = 0; i < s_metric.n; i++) {
        for (k = 0; k < 3; k++) {
            if (strcmp(s_metric.fields[i].name, names[k]))
                continue;
            if (!slot[i] || slot[i]->type == JV_NULL)
                *out[k] = "";
            else if (slot[i]->type == JV_STR)
                *out[k] = slot[i]->u.s;
        }
    }
}

static int w_metric_eq(const struct w_metric *a, const char *ev, const char *pe,
                       const char *re)
{
    return a->ev && a->pe && a->re && !strcmp(a->ev, ev) &&
           !strcmp(a->pe, pe) && !strcmp(a->re, re);
}

/* Builds the merged metrics list: base elements, upserted (Go's
 * upsertMetrics). */
static int w_merge_metrics(struct sch_ctx *c, struct w_merge *w,
                           const struct jv *base, const struct jv *in)
{
    size_t nbase = 0, i, j;

    if (base && base->type != JV_NULL && base->type != JV_ARR) {
        sch_push(c, "metrics", -1);
        sch_fail(c, "expected array, got %s", jv_tname(base));
        sch_pop(c);
        return -1;
    }
    if (in->type != JV_NULL && in->type != JV_ARR) {
        sch_push(c, "metrics", -1);
        sch_fail(c, "expected array, got %s", jv_tname(in));
        sch_pop(c);
        return -1;
    }
    if (base && base->type == JV_ARR)
        nbase = base->n;
    w->metrics = sch_check(malloc(
        (nbase + (in->type == JV_ARR ? in->n : 0) + 1) * sizeof(*w->metrics)));
    for (i = 0; i < nbase; i++)
        w_metric_id(&w->metrics[i], &base->u.items[i]);
    w->nmetrics = nbase;
    for (i = 0; in->type == JV_ARR && i < in->n; i++) {
        const struct jv *m = &in->u.items[i];
        struct w_metric wm;
        size_t hit = (size_t)-1;

        if (m->type == JV_NULL)
            continue;
        if (m->type != JV_OBJ) {
            sch_push(c, "metrics", -1);
            sch_push(c, NULL, (long)i);
            sch_fail(c, "expected object, got %s", jv_tname(m));
            sch_pop(c);
            sch_pop(c);
            return -1;
        }
        w_metric_id(&wm, m);
        if (wm.ev && wm.pe && wm.re) {
            for (j = 0; j < nbase; j++) {
                if (w_metric_eq(&w->metrics[j], wm.ev, wm.pe, wm.re))
                    hit = j;
            }
        }
        if (hit != (size_t)-1)
            w->metrics[hit] = wm;
        else
            w->metrics[w->nmetrics++] = wm;
    }
    w->metrics_merged = 1;
    return 0;
}

/* The int64 a metric's value decodes to (0 when it would not decode: the
 * metric itself then fails to write). */
static long long w_metric_value(const struct jv *m)
{
    const struct jv *slot[SCH_MAX_FIELDS];
    size_t i;

    jv_slots(&s_metric, m, slot);
    for (i = 0; i < s_metric.n; i++) {
        const struct jv *v = slot[i];

        if (strcmp(s_metric.fields[i].name, "value") || !v)
            continue;
        if (v->type == JV_INT)
            return v->u.i;
        if (v->type == JV_REAL && v->u.d == floor(v->u.d) &&
            fabs(v->u.d) < 9e18)
            return (long long)v->u.d;
    }
    return 0;
}

/* Writes the base entitlements with credit_remaining / usage re-derived
 * (Go's syncEntitlementDerivedFields). */
static int w_rederived(struct sch_ctx *c, struct gj_buf *b,
                       const struct w_merge *w, const struct jv *ents,
                       const struct jv *credits)
{
    uint32_t i;
    size_t j;

    gj_char(b, '[');
    for (i = 0; i < ents->n; i++) {
        const struct jv *e = &ents->u.items[i];
        struct sch_ovr ovr[2];
        int novr = 0, rc;

        if (i)
            gj_char(b, ',');
        if (e->type != JV_OBJ) {
            sch_push(c, "entitlements", -1);
            sch_push(c, NULL, (long)i);
            if (e->type == JV_NULL) {
                gj_raw(b, "null", 4);
                rc = 0;
            } else {
                sch_fail(c, "expected object, got %s", jv_tname(e));
                rc = -1;
            }
            sch_pop(c);
            sch_pop(c);
            if (rc < 0)
                return -1;
            continue;
        }
        if (credits) {
            const char *cid = jv_field_pstr(&s_entitlement, e, "credit_id");
            const struct jv *bal = cid ? jv_get(credits, cid) : NULL;

            if (bal) {
                ovr[novr].name = "credit_remaining";
                ovr[novr].is_int = 0;
                ovr[novr].d = bal->type == JV_INT    ? (double)bal->u.i
                              : bal->type == JV_REAL ? bal->u.d
                                                     : 0;
                novr++;
            }
        }
        if (w->metrics_merged) {
            const char *ev = jv_field_pstr(&s_entitlement, e, "event_name");
            const char *pe = jv_field_pstr(&s_entitlement, e, "metric_period");
            const char *re = jv_field_pstr(&s_entitlement, e, "month_reset");
            const struct jv *found = NULL;

            for (j = 0; ev && j < w->nmetrics; j++) {
                if (w_metric_eq(&w->metrics[j], ev, pe ? pe : "all_time",
                                re ? re : "first_of_month"))
                    found = w->metrics[j].m;
            }
            if (found) {
                ovr[novr].name = "usage";
                ovr[novr].is_int = 1;
                ovr[novr].i = w_metric_value(found);
                novr++;
            }
        }
        sch_push(c, "entitlements", -1);
        sch_push(c, NULL, (long)i);
        rc = w_struct(c, b, &s_entitlement, e, NULL, ovr, novr);
        sch_pop(c);
        sch_pop(c);
        if (rc < 0)
            return -1;
    }
    gj_char(b, ']');
    return 0;
}

static int w_merge_company(struct sch_ctx *c, struct gj_buf *b,
                           const struct jv *base, const struct jv *partial)
{
    const struct sch_schema *s = &s_company;
    struct w_merge w;
    const struct jv *credits = NULL;
    size_t i;
    int first = 1, rc = 0, ents_in;
    uint32_t k;

    memset(&w, 0, sizeof(w));
    jv_slots(s, base, w.bv);
    /* Partial members match exactly (merge.go switches on the name). */
    for (k = 0; k < partial->n; k++) {
        for (i = 0; i < s->n; i++) {
            if (!strcmp(partial->u.members[k].key, s->fields[i].name))
                w.pv[i] = &partial->u.members[k].val;
        }
    }
    for (i = 0; i < s->n; i++) {
        if (!strcmp(s->fields[i].name, "credit_balances") && w.pv[i] &&
            w.pv[i]->type == JV_OBJ)
            credits = w.pv[i];
        if (!strcmp(s->fields[i].name, "metrics") && w.pv[i] &&
            w_merge_metrics(c, &w, w.bv[i], w.pv[i]) < 0) {
            free(w.metrics);
            return -1;
        }
    }
    ents_in = 0;
    for (i = 0; i < s->n; i++) {
        if (!strcmp(s->fields[i].name, "entitlements") && w.pv[i])
            ents_in = 1;
    }

    gj_char(b, '{');
    for (i = 0; i < s->n && rc == 0; i++) {
        const struct sch_field *f = &s->fields[i];
        const struct jv *pv = w.pv[i], *bv = w.bv[i];

        if (bv && bv->type == JV_NULL && sch_null_keeps(f->kind))
            bv = NULL;
        if (pv && pv->type == JV_NULL && sch_null_keeps(f->kind))
            pv = NULL;
        w_cap_field(c, f, pv ? pv : bv);
        sch_push(c, f->name, -1);
        if (!strcmp(f->name, "keys") || !strcmp(f->name, "credit_balances")) {
            int floats = f->kind == K_MAP_FLOAT;

            w_key(b, &first, f->name);
            if (!pv && !strcmp(f->name, "credit_balances")) {
                rc = w_value_or_zero(c, b, f, bv);
            } else {
                /* Go makes the map, then copies the partial's into it. */
                rc = w_map(c, b, floats, bv && bv->type != JV_NULL ? bv : NULL,
                           pv && pv->type != JV_NULL ? pv : NULL);
            }
        } else if (!strcmp(f->name, "metrics") && w.metrics_merged) {
            size_t j;

            w_key(b, &first, f->name);
            gj_char(b, '[');
            for (j = 0; j < w.nmetrics && rc == 0; j++) {
                const struct jv *m = w.metrics[j].m;

                if (j)
                    gj_char(b, ',');
                sch_push(c, NULL, (long)j);
                if (m->type == JV_NULL) {
                    gj_raw(b, "null", 4);
                } else if (m->type == JV_OBJ) {
                    rc = w_struct(c, b, &s_metric, m, NULL, NULL, 0);
                } else {
                    sch_fail(c, "expected object, got %s", jv_tname(m));
                    rc = -1;
                }
                sch_pop(c);
            }
            gj_char(b, ']');
        } else if (!strcmp(f->name, "entitlements") && !ents_in &&
                   (credits || w.metrics_merged) && bv && bv->type == JV_ARR &&
                   bv->n > 0) {
            sch_pop(c);
            w_key(b, &first, f->name);
            rc = w_rederived(c, b, &w, bv, credits);
            sch_push(c, f->name, -1);
        } else {
            const struct jv *src = pv ? pv : bv;

            if (!strcmp(f->name, "subscription") && pv) {
                /* decoded into the existing subscription */
                w_key(b, &first, f->name);
                rc = w_value(c, b, f, pv, w.bv[i]);
            } else if (f->omitempty && w_omit(f, src)) {
                /* omitted */
            } else {
                w_key(b, &first, f->name);
                rc = w_value_or_zero(c, b, f, src);
            }
        }
        sch_pop(c);
    }
    gj_char(b, '}');
    free(w.metrics);
    return rc;
}

static int w_merge_user(struct sch_ctx *c, struct gj_buf *b,
                        const struct jv *base, const struct jv *partial)
{
    const struct sch_schema *s = &s_user;
    const struct jv *pv[SCH_MAX_FIELDS] = {NULL}, *bv[SCH_MAX_FIELDS];
    size_t i;
    uint32_t k;
    int first = 1, rc = 0;

    jv_slots(s, base, bv);
    for (k = 0; k < partial->n; k++) {
        for (i = 0; i < s->n; i++) {
            if (!strcmp(partial->u.members[k].key, s->fields[i].name))
                pv[i] = &partial->u.members[k].val;
        }
    }
    gj_char(b, '{');
    for (i = 0; i < s->n && rc == 0; i++) {
        const struct sch_field *f = &s->fields[i];
        const struct jv *p = pv[i], *q = bv[i];

        if (q && q->type == JV_NULL && sch_null_keeps(f->kind))
            q = NULL;
        if (p && p->type == JV_NULL && sch_null_keeps(f->kind))
            p = NULL;
        w_cap_field(c, f, p ? p : q);
        w_key(b, &first, f->name);
        sch_push(c, f->name, -1);
        if (f->kind == K_MAP_STR && p) {
            rc = w_map(c, b, 0, q && q->type != JV_NULL ? q : NULL,
                       p->type != JV_NULL ? p : NULL);
        } else {
            rc = w_value_or_zero(c, b, f, p ? p : q);
        }
        sch_pop(c);
    }
    gj_char(b, '}');
    return rc;
}

/* ---- the entity API ------------------------------------------------------
 */

void sch_entity_release(struct sch_entity *e)
{
    size_t i;

    if (!e)
        return;
    free(e->json);
    free(e->id);
    free(e->flag_key);
    for (i = 0; i < e->nkeys; i++) {
        free(e->keys[i].key);
        free(e->keys[i].value);
    }
    free(e->keys);
    memset(e, 0, sizeof(*e));
}

/* Completes an entity written into b with c->cap == out: checks its id
 * (Go's reference skips an entity without one), drops an empty flag key
 * and moves the text into out. */
static int ent_finish(struct sch_ctx *c, struct gj_buf *b,
                      struct sch_entity *out)
{
    c->cap_keys = 0;
    c->cap = NULL;
    if (!out->id || !*out->id) {
        sch_fail(c, "id is missing or empty");
        return -1;
    }
    if (out->flag_key && !*out->flag_key) {
        free(out->flag_key);
        out->flag_key = NULL;
    }
    out->len = b->len;
    out->json = gj_take(b);
    return 0;
}

/* Normalises object root as structure s into out (released on failure). */
static int ent_write(struct sch_ctx *c, const struct sch_schema *s,
                     const struct jv *root, struct sch_entity *out)
{
    struct gj_buf b;

    gj_init(&b);
    c->cap = out;
    if (w_struct(c, &b, s, root, NULL, NULL, 0) < 0 ||
        ent_finish(c, &b, out) < 0) {
        c->cap = NULL;
        gj_release(&b);
        sch_entity_release(out);
        return -1;
    }
    return 0;
}

/* The merge of partial pr into base br, written into out. */
static int ent_merge_write(struct sch_ctx *c, enum sch_type type,
                           const struct jv *br, const struct jv *pr,
                           struct sch_entity *out)
{
    struct gj_buf b;
    int rc;

    gj_init(&b);
    c->cap = out;
    rc = type == SCH_COMPANY ? w_merge_company(c, &b, br, pr)
                             : w_merge_user(c, &b, br, pr);
    if (rc < 0 || ent_finish(c, &b, out) < 0) {
        c->cap = NULL;
        gj_release(&b);
        sch_entity_release(out);
        return -1;
    }
    return 0;
}

/* The id, flag key and keys of object root read leniently (the decoding
 * rules of the normaliser, but no member type is an error). */
static void ent_keys_of(enum sch_type type, const struct jv *root,
                        struct sch_entity *out)
{
    const struct sch_schema *s = sch_schema_of(type);
    const struct jv *slot[SCH_MAX_FIELDS];
    struct sch_ctx c;
    size_t i, n;

    jv_slots(s, root, slot);
    sch_ctx_init(&c, NULL, 0);
    c.cap = out;
    for (i = 0; i < s->n; i++) {
        const struct jv *v = slot[i];
        const char *name = s->fields[i].name;
        struct w_kv *kv;

        if (!v)
            continue;
        if (v->type == JV_STR && *v->u.s && !strcmp(name, "id"))
            out->id = sch_check(strdup(v->u.s));
        if (v->type == JV_STR && *v->u.s && !strcmp(name, "key"))
            out->flag_key = sch_check(strdup(v->u.s));
        if (v->type == JV_OBJ && !strcmp(name, "keys") &&
            w_map_members(&c, v, NULL, &kv, &n) == 0) {
            w_cap_map(&c, kv, n);
            free(kv);
        }
    }
}

/* Parses json as an object for entity type `type` (what names the
 * object in an error). Returns the document or NULL. */
static struct jv_doc *ent_parse(struct sch_ctx *c, const char *json,
                                size_t len, const char *what,
                                const struct jv **root)
{
    struct jv_doc *doc = jv_parse(json, len, root, c->err, c->errlen);

    if (!doc) {
        c->failed = 1;
        return NULL;
    }
    if ((*root)->type != JV_OBJ) {
        sch_fail(c, "%s is not an object", what);
        jv_free(doc);
        return NULL;
    }
    return doc;
}

int sch_entity_normalize(enum sch_type type, const char *json, size_t len,
                         struct sch_entity *out, char *err, size_t errlen)
{
    const struct sch_schema *s = sch_schema_of(type);
    const struct jv *root;
    struct jv_doc *doc;
    struct sch_ctx c;
    int rc;

    memset(out, 0, sizeof(*out));
    sch_ctx_init(&c, err, errlen);
    if (!s) {
        sch_fail(&c, "unknown entity type %d", (int)type);
        return -1;
    }
    doc = ent_parse(&c, json, len, s->name, &root);
    if (!doc)
        return -1;
    rc = ent_write(&c, s, root, out);
    jv_free(doc);
    return rc;
}

int sch_entity_keys(enum sch_type type, const char *json, size_t len,
                    struct sch_entity *out, char *err, size_t errlen)
{
    const struct sch_schema *s = sch_schema_of(type);
    const struct jv *root;
    struct jv_doc *doc;
    struct sch_ctx c;

    memset(out, 0, sizeof(*out));
    sch_ctx_init(&c, err, errlen);
    if (!s) {
        sch_fail(&c, "unknown entity type %d", (int)type);
        return -1;
    }
    doc = ent_parse(&c, json, len, s->name, &root);
    if (!doc)
        return -1;
    ent_keys_of(type, root, out);
    jv_free(doc);
    return 0;
}

/* sch_entity_keys for base_out, ignoring a base that does not parse. */
static void ent_base_keys(enum sch_type type, const char *base, size_t len,
                          struct sch_entity *base_out)
{
    if (base_out && base &&
        sch_entity_keys(type, base, len, base_out, NULL, 0) < 0)
        memset(base_out, 0, sizeof(*base_out));
}

int sch_entity_merge(enum sch_type type, const char *base, size_t base_len,
                     const char *partial, size_t partial_len,
                     struct sch_entity *out, struct sch_entity *base_out,
                     char *err, size_t errlen)
{
    const struct jv *br, *pr;
    struct jv_doc *bd = NULL, *pd;
    struct sch_ctx c;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (base_out)
        memset(base_out, 0, sizeof(*base_out));
    sch_ctx_init(&c, err, errlen);
    pd = ent_parse(&c, partial, partial_len, "partial", &pr);
    if (!pd)
        return -1;
    if (type == SCH_FLAG) {
        /* A flag partial carries the whole flag (7.5): base is read only
         * for base_out. */
        rc = ent_write(&c, &s_flag, pr, out);
        if (rc == 0)
            ent_base_keys(type, base, base_len, base_out);
        goto done;
    }
    if (type != SCH_COMPANY && type != SCH_USER) {
        sch_fail(&c, "unknown entity type %d", (int)type);
        goto done;
    }
    sch_push(&c, "base", -1);
    bd = ent_parse(&c, base, base_len, sch_schema_of(type)->name, &br);
    sch_pop(&c);
    if (!bd)
        goto done;
    rc = ent_merge_write(&c, type, br, pr, out);
    if (rc == 0 && base_out)
        ent_keys_of(type, br, base_out);
done:
    jv_free(bd);
    jv_free(pd);
    return rc;
}

int sch_flags_each(const char *json, size_t len,
                   int (*each)(void *arg, struct sch_entity *flag,
                               const char *why),
                   void *arg, char *err, size_t errlen)
{
    const struct jv *root;
    struct jv_doc *doc;
    struct sch_ctx c;
    uint32_t i;
    int r = 0;

    sch_ctx_init(&c, err, errlen);
    doc = jv_parse(json, len, &root, err, errlen);
    if (!doc)
        return -1;
    if (root->type != JV_ARR) {
        sch_fail(&c, "flags snapshot is not a JSON array");
        jv_free(doc);
        return -1;
    }
    for (i = 0; i < root->n && r == 0; i++) {
        const struct jv *item = &root->u.items[i];
        struct sch_entity f;
        struct sch_ctx ec;
        char why[256];
        int rc = -1;

        memset(&f, 0, sizeof(f));
        sch_ctx_init(&ec, why, sizeof(why));
        if (item->type != JV_OBJ)
            sch_fail(&ec, "%s is not an object", s_flag.name);
        else
            rc = ent_write(&ec, &s_flag, item, &f);
        r = each(arg, rc == 0 ? &f : NULL, rc == 0 ? NULL : why);
        sch_entity_release(&f);
    }
    jv_free(doc);
    return r;
}

char *sch_normalize_text(enum sch_type type, const char *json, size_t len,
                         char **id_out, char *err, size_t errlen)
{
    struct sch_entity e;
    char *out;

    if (id_out)
        *id_out = NULL;
    if (sch_entity_normalize(type, json, len, &e, err, errlen) < 0)
        return NULL;
    out = e.json;
    e.json = NULL;
    if (id_out) {
        *id_out = e.id;
        e.id = NULL;
    }
    sch_entity_release(&e);
    return out;
}

char *sch_merge_text(enum sch_type type, const char *base, size_t base_len,
                     const char *partial, size_t partial_len, char *err,
                     size_t errlen)
{
    struct sch_entity e;
    char *out;

    if (sch_entity_merge(type, base, base_len, partial, partial_len, &e, NULL,
                         err, errlen) < 0)
        return NULL;
    out = e.json;
    e.json = NULL;
    sch_entity_release(&e);
    return out;
}

/* ---- REST conversion (section 10.3)
 * ------------------------------------------ */

/* Reads an optional member of JSON type `type`: *out is NULL when absent
 * or null; fails on another type. */
static int rest_member(struct sch_ctx *c, json_t *obj, const char *name,
                       json_type type, json_t **out)
{
    json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_typeof(v) != type) {
        sch_fail_at(c, name, "expected %s, got %s",
                    sch_tname(type), sch_jtype(v));
        return -1;
    }
    *out = v;
    return 0;
}

/* An optional string member: NULL when absent or null. */
static int rest_str(struct sch_ctx *c, json_t *obj, const char *name,
                    const char **out)
{
    json_t *v;
    int rc = rest_member(c, obj, name, JSON_STRING, &v);

    *out = v ? json_string_value(v) : NULL;
    return rc;
}

static void set_str(json_t *o, const char *name, const char *s)
{
    json_object_set_new(o, name, s ? NEW(json_string(s)) : json_null());
}

/* Copies member `name` of `from` to `to` when present (any type: the
 * canonicalisation after the conversion checks it). */
static void copy_member(json_t *to, const char *name, json_t *from,
                        const char *from_name)
{
    json_t *v = json_object_get(from, from_name ? from_name : name);

    if (v)
        json_object_set(to, name, v);
}

/* A number as an int64, truncating a fraction as Go's int64(float) does. */
static int rest_int(struct sch_ctx *c, json_t *obj, const char *name,
                    json_t *to)
{
    json_t *v = json_object_get(obj, name);
    double d;

    if (!v)
        return 0;
    if (json_is_null(v) || json_is_integer(v)) {
        json_object_set(to, name, v);
        return 0;
    }
    if (!json_is_real(v)) {
        sch_fail_at(c, name, "expected number, got %s", sch_jtype(v));
        return -1;
    }
    d = trunc(json_real_value(v));
    if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0)) {
        sch_fail_at(c, name, "number out of int64 range");
        return -1;
    }
    json_object_set_new(to, name, NEW(json_integer((json_int_t)d)));
    return 0;
}

static const char *rest_trait_type(const char *t)
{
    if (!t)
        return "string";
    if (!strcmp(t, "boolean") || !strcmp(t, "bool"))
        return "bool";
    if (!strcmp(t, "number") || !strcmp(t, "int") || !strcmp(t, "integer"))
        return "int";
    if (!strcmp(t, "date"))
        return "date";
    return "string";
}

static const char *rest_operator(const char *op)
{
    static const char *const map[][2] = {
        {"eq", "eq"},
        {"equals", "eq"},
        {"ne", "ne"},
        {"not_equals", "ne"},
        {"gt", "gt"},
        {"greater_than", "gt"},
        {"lt", "lt"},
        {"less_than", "lt"},
        {"gte", "gte"},
        {"greater_than_or_equal", "gte"},
        {"lte", "lte"},
        {"less_than_or_equal", "lte"},
        {"is_empty", "is_empty"},
        {"not_empty", "not_empty"},
    };
    size_t i;

    for (i = 0; op && i < sizeof(map) / sizeof(map[0]); i++) {
        if (!strcmp(op, map[i][0]))
            return map[i][1];
    }
    return "eq";
}

static const char *rest_condition_type(const char *t)
{
    static const char *const known[] = {"base_plan",   "billing_product",
                                        "company",     "credit",
                                        "crm_product", "metric",
                                        "plan",        "plan_version",
                                        "trait",       "user"};
    size_t i;

    for (i = 0; t && i < sizeof(known) / sizeof(known[0]); i++) {
        if (!strcmp(t, known[i]))
            return known[i];
    }
    return "";
}

static const char *rest_period(const char *p, int with_week)
{
    if (p && (!strcmp(p, "all_time") || !strcmp(p, "current_month") ||
              !strcmp(p, "current_day") ||
              (with_week && !strcmp(p, "current_week"))))
        return p;
    return "all_time";
}

static const char *rest_month_reset(const char *r)
{
    if (r && !strcmp(r, "billing_cycle"))
        return "billing_cycle";
    return "first_of_month";
}

/* Each element of arr through fn (NULL result: failure; JSON null: skip). */
static json_t *rest_map_list(struct sch_ctx *c, json_t *arr, const char *name,
                             json_t *(*fn)(struct sch_ctx *, json_t *))
{
    json_t *out = NEW(json_array());
    size_t i;

    sch_push(c, name, -1);
    for (i = 0; i < json_array_size(arr); i++) {
        json_t *e = json_array_get(arr, i), *r;

        if (json_is_null(e))
            continue;
        sch_push(c, NULL, (long)i);
        if (!json_is_object(e)) {
            sch_fail(c, "expected object, got %s", sch_jtype(e));
            r = NULL;
        } else {
            r = fn(c, e);
        }
        sch_pop(c);
        if (!r) {
            sch_pop(c);
            json_decref(out);
            return NULL;
        }
        if (json_is_null(r))
            json_decref(r);
        else
            json_array_append_new(out, r);
    }
    sch_pop(c);
    return out;
}

/* A REST TraitDefinition (condition) -> cached TraitDefinition. */
static json_t *rest_trait_def(struct sch_ctx *c, json_t *td)
{
    const char *id, *ct, *et;
    json_t *o;

    if (rest_str(c, td, "id", &id) || rest_str(c, td, "comparable_type", &ct) ||
        rest_str(c, td, "entity_type", &et))
        return NULL;
    o = NEW(json_object());
    set_str(o, "id", id ? id : "");
    set_str(o, "comparable_type", rest_trait_type(ct));
    set_str(o, "entity_type", et ? et : "");
    return o;
}

static json_t *rest_condition(struct sch_ctx *c, json_t *in)
{
    const char *ct, *op, *mp, *mr;
    json_t *o = NEW(json_object()), *td;
    static const char *const copy[] = {"id",
                                       "account_id",
                                       "environment_id",
                                       "resource_ids",
                                       "event_subtype",
                                       "credit_id",
                                       "consumption_rate",
                                       "trait_value"};
    static const char *const tds[] = {"trait_definition",
                                      "comparison_trait_definition"};
    size_t i;

    for (i = 0; i < sizeof(copy) / sizeof(copy[0]); i++)
        copy_member(o, copy[i], in, NULL);
    if (rest_str(c, in, "condition_type", &ct) ||
        rest_str(c, in, "operator", &op) ||
        rest_str(c, in, "metric_period", &mp) ||
        rest_str(c, in, "metric_period_month_reset", &mr) ||
        rest_int(c, in, "metric_value", o))
        goto fail;
    set_str(o, "condition_type", rest_condition_type(ct));
    set_str(o, "operator", rest_operator(op));
    if (mp)
        set_str(o, "metric_period", rest_period(mp, 1));
    if (mr)
        set_str(o, "metric_period_month_reset", rest_month_reset(mr));
    for (i = 0; i < 2; i++) {
        json_t *def;

        if (rest_member(c, in, tds[i], JSON_OBJECT, &td))
            goto fail;
        if (!td)
            continue;
        sch_push(c, tds[i], -1);
        def = rest_trait_def(c, td);
        sch_pop(c);
        if (!def)
            goto fail;
        json_object_set_new(o, tds[i], def);
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* A condition group: {conditions: [...]}. */
static json_t *rest_condition_group(struct sch_ctx *c, json_t *in)
{
    json_t *conds, *cv, *o;

    if (rest_member(c, in, "conditions", JSON_ARRAY, &conds))
        return NULL;
    cv = rest_map_list(c, conds, "conditions", rest_condition);
    if (!cv)
        return NULL;
    o = NEW(json_object());
    json_object_set_new(o, "conditions", cv);
    return o;
}

static json_t *rest_rule(struct sch_ctx *c, json_t *in)
{
    json_t *o, *conds, *groups, *cv, *gv;
    const char *rt;

    if (rest_str(c, in, "rule_type", &rt))
        return NULL;
    if (!rt || (strcmp(rt, "company_override") &&
                strcmp(rt, "company_override_usage_exceeded")))
        return json_null(); /* dropped */
    if (rest_member(c, in, "conditions", JSON_ARRAY, &conds) ||
        rest_member(c, in, "condition_groups", JSON_ARRAY, &groups))
        return NULL;
    o = NEW(json_object());
    copy_member(o, "id", in, NULL);
    copy_member(o, "flag_id", in, NULL);
    copy_member(o, "account_id", in, NULL);
    copy_member(o, "environment_id", in, NULL);
    set_str(o, "rule_type", rt);
    copy_member(o, "name", in, NULL);
    if (rest_int(c, in, "priority", o))
        goto fail;
    copy_member(o, "value", in, NULL);
    cv = rest_map_list(c, conds, "conditions", rest_condition);
    if (!cv)
        goto fail;
    json_object_set_new(o, "conditions", cv);
    gv = rest_map_list(c, groups, "condition_groups", rest_condition_group);
    if (!gv)
        goto fail;
    json_object_set_new(o, "condition_groups", gv);
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *rest_metric(struct sch_ctx *c, json_t *in)
{
    static const char *const copy[] = {"account_id", "environment_id",
                                       "company_id", "event_subtype",
                                       "created_at", "valid_until"};
    const char *period, *reset;
    json_t *o;
    size_t i;

    if (rest_str(c, in, "period", &period) ||
        rest_str(c, in, "month_reset", &reset))
        return NULL;
    o = NEW(json_object());
    for (i = 0; i < sizeof(copy) / sizeof(copy[0]); i++)
        copy_member(o, copy[i], in, NULL);
    set_str(o, "period", rest_period(period, 0));
    set_str(o, "month_reset",
            reset && !strcmp(reset, "billing_cycle") ? "billing_cycle"
                                                     : "first_of_month");
    if (rest_int(c, in, "value", o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *rest_entitlement(struct sch_ctx *c, json_t *in)
{
    static const char *const copy[] = {
        "feature_id",       "feature_key",   "value_type",   "event_name",
        "metric_reset_at",  "credit_id",     "credit_total", "credit_used",
        "credit_remaining", "metric_period", "month_reset"};
    static const char *const ints[] = {"allocation", "usage", "soft_limit"};
    json_t *o = NEW(json_object());
    size_t i;

    for (i = 0; i < sizeof(copy) / sizeof(copy[0]); i++)
        copy_member(o, copy[i], in, NULL);
    for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (rest_int(c, in, ints[i], o)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *rest_trait(struct sch_ctx *c, json_t *in)
{
    json_t *def, *o, *td;
    const char *id, *tt;

    if (rest_member(c, in, "definition", JSON_OBJECT, &def))
        return NULL;
    if (!def)
        return json_null(); /* traits without a definition are dropped */
    sch_push(c, "definition", -1);
    if (rest_str(c, def, "id", &id) || rest_str(c, def, "trait_type", &tt)) {
        sch_pop(c);
        return NULL;
    }
    sch_pop(c);
    o = NEW(json_object());
    td = NEW(json_object());
    set_str(td, "id", id ? id : "");
    set_str(td, "entity_type", c->entity_type);
    set_str(td, "comparable_type", rest_trait_type(tt));
    json_object_set_new(o, "trait_definition", td);
    copy_member(o, "value", in, NULL);
    return o;
}

/* Unix seconds -> RFC 3339 UTC; 0 -> Go's zero time. */
static int rest_unix_time(struct sch_ctx *c, json_t *obj, const char *name,
                          json_t *to)
{
    json_t *v = json_object_get(obj, name);
    char out[40];
    double d;

    if (!v || json_is_null(v)) {
        set_str(to, name, "0001-01-01T00:00:00Z");
        return 0;
    }
    if (!json_is_number(v)) {
        sch_fail_at(c, name, "expected Unix seconds, got %s", sch_jtype(v));
        return -1;
    }
    d = trunc(json_number_value(v));
    if (d == 0) {
        set_str(to, name, "0001-01-01T00:00:00Z");
        return 0;
    }
    if (!(fabs(d) < 1e15) || sch_time_format((long long)d, 0, out) < 0) {
        sch_fail_at(c, name, "Unix time out of range");
        return -1;
    }
    set_str(to, name, out);
    return 0;
}

/* keys[] {key, value} -> map; traits. Shared by companies and users. */
static int rest_common(struct sch_ctx *c, json_t *in, json_t *o,
                       const char *entity_type)
{
    json_t *keys, *traits, *map, *tv;
    size_t i;

    copy_member(o, "id", in, NULL);
    set_str(o, "account_id", "");
    copy_member(o, "environment_id", in, NULL);
    if (rest_member(c, in, "keys", JSON_ARRAY, &keys) ||
        rest_member(c, in, "entity_traits", JSON_ARRAY, &traits))
        return -1;
    map = NEW(json_object());
    json_object_set_new(o, "keys", map);
    for (i = 0; i < json_array_size(keys); i++) {
        json_t *kv = json_array_get(keys, i);
        const char *k, *v;

        if (json_is_null(kv))
            continue;
        sch_push(c, "keys", -1);
        sch_push(c, NULL, (long)i);
        if (!json_is_object(kv)) {
            sch_fail(c, "expected object, got %s", sch_jtype(kv));
            k = NULL;
        } else if (!rest_str(c, kv, "key", &k) &&
                   !rest_str(c, kv, "value", &v)) {
            set_str(map, k ? k : "", v ? v : "");
        }
        sch_pop(c);
        sch_pop(c);
        if (c->failed)
            return -1;
    }
    c->entity_type = entity_type;
    tv = rest_map_list(c, traits, "entity_traits", rest_trait);
    if (!tv)
        return -1;
    json_object_set_new(o, "traits", tv);
    return 0;
}

/* Appends string member `member` of each object in list `name` to `to`
 * when it is not empty; the error path names the list and, when
 * with_index, the element. */
static int rest_ids(struct sch_ctx *c, json_t *list, const char *name,
                    int with_index, const char *member, json_t *to)
{
    const char *s;
    size_t i;
    int rc;

    for (i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);

        if (!json_is_object(e))
            continue;
        sch_push(c, name, -1);
        if (with_index)
            sch_push(c, NULL, (long)i);
        rc = rest_str(c, e, member, &s);
        if (with_index)
            sch_pop(c);
        sch_pop(c);
        if (rc)
            return -1;
        if (s && *s)
            json_array_append_new(to, NEW(json_string(s)));
    }
    return 0;
}

static int rest_company(struct sch_ctx *c, json_t *in, json_t *o)
{
    static const struct {
        const char *name;
        json_t *(*fn)(struct sch_ctx *, json_t *);
    } lists[] = {{"metrics", rest_metric},
                 {"rules", rest_rule},
                 {"entitlements", rest_entitlement}};
    json_t *plan, *addons, *plans, *subs, *sub, *credits, *arr, *ids, *pv;
    size_t i, j;
    const char *s;

    if (rest_common(c, in, o, "company") < 0)
        return -1;
    if (rest_member(c, in, "plan", JSON_OBJECT, &plan) ||
        rest_member(c, in, "add_ons", JSON_ARRAY, &addons) ||
        rest_member(c, in, "plans", JSON_ARRAY, &plans) ||
        rest_member(c, in, "billing_subscriptions", JSON_ARRAY, &subs) ||
        rest_member(c, in, "billing_subscription", JSON_OBJECT, &sub) ||
        rest_member(c, in, "billing_credit_balances", JSON_OBJECT, &credits))
        return -1;

    /* base_plan_id, plan_version_ids */
    pv = NEW(json_array());
    json_object_set_new(o, "plan_version_ids", pv);
    if (plan) {
        sch_push(c, "plan", -1);
        if (rest_str(c, plan, "id", &s)) {
            sch_pop(c);
            return -1;
        }
        if (s && *s)
            set_str(o, "base_plan_id", s);
        if (rest_str(c, plan, "plan_version_id", &s)) {
            sch_pop(c);
            return -1;
        }
        sch_pop(c);
        if (s && *s)
            json_array_append_new(pv, NEW(json_string(s)));
    }
    if (rest_ids(c, addons, "add_ons", 1, "plan_version_id", pv))
        return -1;

    /* billing_product_ids: every subscription's products, then the current
     * subscription's products not already listed. */
    ids = NEW(json_array());
    json_object_set_new(o, "billing_product_ids", ids);
    for (i = 0; i <= json_array_size(subs); i++) {
        json_t *sv = i < json_array_size(subs) ? json_array_get(subs, i) : sub;
        int dedupe = i == json_array_size(subs);

        if (!json_is_object(sv))
            continue;
        sch_push(c, dedupe ? "billing_subscription" : "billing_subscriptions",
                 -1);
        if (rest_member(c, sv, "products", JSON_ARRAY, &arr)) {
            sch_pop(c);
            return -1;
        }
        for (j = 0; j < json_array_size(arr); j++) {
            json_t *p = json_array_get(arr, j);
            size_t k;
            int dup = 0;

            if (!json_is_object(p))
                continue;
            if (rest_str(c, p, "id", &s)) {
                sch_pop(c);
                return -1;
            }
            if (!s || !*s)
                continue;
            for (k = 0; dedupe && k < json_array_size(ids); k++) {
                if (!strcmp(json_string_value(json_array_get(ids, k)), s))
                    dup = 1;
            }
            if (!dup)
                json_array_append_new(ids, NEW(json_string(s)));
        }
        sch_pop(c);
    }

    /* plan_ids */
    arr = NEW(json_array());
    json_object_set_new(o, "plan_ids", arr);
    if (rest_ids(c, plans, "plans", 0, "id", arr))
        return -1;

    /* subscription */
    if (sub) {
        json_t *so = NEW(json_object());

        json_object_set_new(o, "subscription", so);
        sch_push(c, "billing_subscription", -1);
        copy_member(so, "id", sub, NULL);
        if (rest_unix_time(c, sub, "period_start", so) ||
            rest_unix_time(c, sub, "period_end", so)) {
            sch_pop(c);
            return -1;
        }
        sch_pop(c);
    }

    json_object_set_new(o, "credit_balances",
                        credits ? NEW(json_deep_copy(credits))
                                : NEW(json_object()));

    for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (rest_member(c, in, lists[i].name, JSON_ARRAY, &arr))
            return -1;
        arr = rest_map_list(c, arr, lists[i].name, lists[i].fn);
        if (!arr)
            return -1;
        json_object_set_new(o, lists[i].name, arr);
    }
    return 0;
}

/* The REST item converted to the cached model's member names and
 * shapes, not yet checked against the model (a new reference), or NULL
 * with the reason in c. */
static json_t *rest_convert(struct sch_ctx *c, enum sch_type type,
                            json_t *detail)
{
    json_t *o;
    int rc;

    if (!json_is_object(detail)) {
        sch_fail(c, "REST item is not an object");
        return NULL;
    }
    if (type != SCH_COMPANY && type != SCH_USER) {
        sch_fail(c, "REST conversion is for companies and users");
        return NULL;
    }
    o = NEW(json_object());
    if (type == SCH_COMPANY) {
        rc = rest_company(c, detail, o);
    } else {
        rc = rest_common(c, detail, o, "user");
        if (rc == 0)
            json_object_set_new(o, "rules", NEW(json_array()));
    }
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Writes a jansson tree as compact JSON text with Go's string and number
 * formatting (member order kept). Returns 0, or -1 for a non-finite
 * real (jansson never makes one). */
static int rest_write(struct gj_buf *b, const json_t *v)
{
    const char *k;
    json_t *m;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        gj_char(b, '{');
        i = 0;
        json_object_foreach((json_t *)v, k, m)
        {
            if (i++)
                gj_char(b, ',');
            gj_str(b, k, strlen(k));
            gj_char(b, ':');
            if (rest_write(b, m) < 0)
                return -1;
        }
        gj_char(b, '}');
        return 0;
    case JSON_ARRAY:
        gj_char(b, '[');
        for (i = 0; i < json_array_size(v); i++) {
            if (i)
                gj_char(b, ',');
            if (rest_write(b, json_array_get(v, i)) < 0)
                return -1;
        }
        gj_char(b, ']');
        return 0;
    case JSON_STRING:
        gj_str(b, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        gj_int(b, (long long)json_integer_value(v));
        return 0;
    case JSON_REAL:
        if (!isfinite(json_real_value(v)))
            return -1;
        gj_float(b, json_real_value(v));
        return 0;
    case JSON_TRUE:
        gj_raw(b, "true", 4);
        return 0;
    case JSON_FALSE:
        gj_raw(b, "false", 5);
        return 0;
    case JSON_NULL:
        gj_raw(b, "null", 4);
        return 0;
    }
    return -1;
}

/*
 * One parse of the item's text: the converted tree is written as text and
 * normalised by the text normaliser (which checks every type: times,
 * integers, ...), so the bytes are those the sink would store for the
 * converted item.
 */
int sch_rest_entity(enum sch_type type, json_t *detail, struct sch_entity *out,
                    char *err, size_t errlen)
{
    struct sch_ctx c;
    struct gj_buf b;
    json_t *o;
    int rc;

    memset(out, 0, sizeof(*out));
    sch_ctx_init(&c, err, errlen);
    o = rest_convert(&c, type, detail);
    if (!o)
        return -1;
    gj_init(&b);
    rc = rest_write(&b, o);
    json_decref(o);
    if (rc < 0) {
        sch_fail(&c, "non-finite number");
        gj_release(&b);
        return -1;
    }
    rc = sch_entity_normalize(type, b.p, b.len, out, err, errlen);
    gj_release(&b);
    return rc;
}

json_t *sch_from_rest_ex(enum sch_type type, json_t *detail, char *err,
                         size_t errlen)
{
    struct sch_entity e;
    json_error_t je;
    json_t *out;

    if (sch_rest_entity(type, detail, &e, err, errlen) < 0)
        return NULL;
    out = json_loadb(e.json, e.len, 0, &je);
    sch_entity_release(&e);
    if (!out && err && errlen)
        snprintf(err, errlen, "%s", je.text);
    return out;
}

json_t *sch_from_rest(enum sch_type type, json_t *detail)
{
    return sch_from_rest_ex(type, detail, NULL, 0);
}

/* ---- keys
 * --------------------------------------------------------------------- */

static const char *sch_segment(enum sch_type type)
{
    switch (type) {
    case SCH_COMPANY:
        return "company";
    case SCH_USER:
        return "user";
    case SCH_FLAG:
        return "flags";
    }
    return NULL;
}

static char *sch_join(const char *a, const char *b, const char *c,
                      const char *d, const char *e)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) +
               (e ? strlen(e) + 1 : 0) + 4;
    char *out = malloc(n);

    if (!out)
        return NULL;
    if (e)
        snprintf(out, n, "%s:%s:%s:%s:%s", a, b, c, d, e);
    else
        snprintf(out, n, "%s:%s:%s:%s", a, b, c, d);
    return out;
}

char *sch_key_flag(const char *prefix, const char *version,
                   const char *flag_key)
{
    char *low, *out;

    if (!version || !flag_key)
        return NULL;
    low = sch_lower(flag_key);
    if (!low)
        return NULL;
    out = sch_join(prefix ? prefix : "schematic", "flags", version, low, NULL);
    free(low);
    return out;
}

char *sch_key_entity(const char *prefix, enum sch_type type,
                     const char *version, const char *id)
{
    if (type == SCH_FLAG)
        return sch_key_flag(prefix, version, id);
    if (!sch_segment(type) || !version || !id)
        return NULL;
    /* ID keys keep the id's case (observed: SDKs do not lower-case it). */
    return sch_join(prefix ? prefix : "schematic", sch_segment(type), version,
                    id, NULL);
}

char *sch_key_lookup(const char *prefix, enum sch_type type,
                     const char *version, const char *k, const char *val)
{
    char *lk, *lv, *out = NULL;

    if (type == SCH_FLAG || !sch_segment(type) || !version || !k || !val)
        return NULL;
    lk = sch_lower(k);
    lv = sch_lower(val);
    if (lk && lv)
        out = sch_join(prefix ? prefix : "schematic", sch_segment(type),
                       version, lk, lv);
    free(lk);
    free(lv);
    return out;
}

char *sch_lookup_value(const char *id)
{
    struct gj_buf b;

    if (!id)
        return NULL;
    /* SDKs json-parse the lookup value into the id string, so it is the
     * id as JSON: quotes included, escaped as Go's json.Marshal does. */
    gj_init(&b);
    gj_str(&b, id, strlen(id));
    return gj_take(&b);
}
