/*
 * plugins/lib/schematic/model.c: the rulesengine structures as tables (the
 * one description of the cached model), the error context with a path,
 * RFC 3339 times, and Go's member-name matching (model.h).
 */
#include "schematic/model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/utf8.h"

/* ---- schemas ------------------------------------------------------------- */

#define SCH_SCHEMA(var, label, arr)                                            \
    const struct sch_schema var = {label, arr, sizeof(arr) / sizeof(arr[0])}

static const struct sch_field f_trait_def[] = {
    {"id", K_STR, 0, NULL},
    {"comparable_type", K_STR, 0, NULL},
    {"entity_type", K_STR, 0, NULL},
};
SCH_SCHEMA(sch_schema_trait_def, "TraitDefinition", f_trait_def);

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
    {"trait_definition", K_STRUCT_OPT, 0, &sch_schema_trait_def},
    {"trait_value", K_STR, 0, NULL},
    {"comparison_trait_definition", K_STRUCT_OPT, 0, &sch_schema_trait_def},
};
SCH_SCHEMA(sch_schema_condition, "Condition", f_condition);

static const struct sch_field f_condition_group[] = {
    {"conditions", K_LIST, 0, &sch_schema_condition},
};
SCH_SCHEMA(sch_schema_condition_group, "ConditionGroup", f_condition_group);

static const struct sch_field f_rule[] = {
    {"id", K_STR, 0, NULL},
    {"flag_id", K_STR_OPT, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"rule_type", K_STR, 0, NULL},
    {"name", K_STR, 0, NULL},
    {"priority", K_INT, 0, NULL},
    {"conditions", K_LIST, 0, &sch_schema_condition},
    {"condition_groups", K_LIST, 0, &sch_schema_condition_group},
    {"value", K_BOOL, 0, NULL},
};
SCH_SCHEMA(sch_schema_rule, "Rule", f_rule);

static const struct sch_field f_flag[] = {
    {"id", K_STR, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"key", K_STR, 0, NULL},
    {"rules", K_LIST, 0, &sch_schema_rule},
    {"default_value", K_BOOL, 0, NULL},
};
SCH_SCHEMA(sch_schema_flag, "Flag", f_flag);

static const struct sch_field f_trait[] = {
    {"trait_definition", K_STRUCT_OPT, 0, &sch_schema_trait_def},
    {"value", K_STR, 0, NULL},
};
SCH_SCHEMA(sch_schema_trait, "Trait", f_trait);

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
SCH_SCHEMA(sch_schema_metric, "CompanyMetric", f_metric);

static const struct sch_field f_subscription[] = {
    {"id", K_STR, 0, NULL},
    {"period_start", K_TIME, 0, NULL},
    {"period_end", K_TIME, 0, NULL},
};
SCH_SCHEMA(sch_schema_subscription, "Subscription", f_subscription);

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
SCH_SCHEMA(sch_schema_entitlement, "FeatureEntitlement", f_entitlement);

static const struct sch_field f_company[] = {
    {"id", K_STR, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"base_plan_id", K_STR_OPT, 0, NULL},
    {"billing_product_ids", K_STRLIST, 0, NULL},
    {"credit_balances", K_MAP_FLOAT, 0, NULL},
    {"entitlements", K_LIST, 1, &sch_schema_entitlement},
    {"keys", K_MAP_STR, 0, NULL},
    {"metrics", K_LIST, 0, &sch_schema_metric},
    {"plan_ids", K_STRLIST, 0, NULL},
    {"plan_version_ids", K_STRLIST, 0, NULL},
    {"rules", K_LIST, 0, &sch_schema_rule},
    {"subscription", K_STRUCT_OPT, 0, &sch_schema_subscription},
    {"traits", K_LIST, 0, &sch_schema_trait},
};
SCH_SCHEMA(sch_schema_company, "Company", f_company);

static const struct sch_field f_user[] = {
    {"id", K_STR, 0, NULL},
    {"account_id", K_STR, 0, NULL},
    {"environment_id", K_STR, 0, NULL},
    {"keys", K_MAP_STR, 0, NULL},
    {"traits", K_LIST, 0, &sch_schema_trait},
    {"rules", K_LIST, 0, &sch_schema_rule},
};
SCH_SCHEMA(sch_schema_user, "User", f_user);

const struct sch_schema *sch_schema_of(enum sch_type type)
{
    switch (type) {
    case SCH_COMPANY:
        return &sch_schema_company;
    case SCH_USER:
        return &sch_schema_user;
    case SCH_FLAG:
        return &sch_schema_flag;
    }
    return NULL;
}

/* ---- errors with a path ----------------------------------------------------
 */

void sch_ctx_init(struct sch_ctx *c, char *err, size_t errlen)
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

void sch_push(struct sch_ctx *c, const char *name, long idx)
{
    if (c->depth < SCH_MAX_PATH) {
        c->path[c->depth].name = name;
        c->path[c->depth].idx = idx;
    }
    c->depth++;
}

void sch_pop(struct sch_ctx *c)
{
    c->depth--;
}

void sch_vfail(struct sch_ctx *c, const char *fmt, va_list ap)
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

void sch_fail(struct sch_ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sch_vfail(c, fmt, ap);
    va_end(ap);
}

void sch_fail_at(struct sch_ctx *c, const char *name, const char *fmt, ...)
{
    va_list ap;

    sch_push(c, name, -1);
    va_start(ap, fmt);
    sch_vfail(c, fmt, ap);
    va_end(ap);
    sch_pop(c);
}

void *sch_check(void *p)
{
    if (!p)
        abort();
    return p;
}

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

int sch_time_format(long long secs, long nsec, char *out)
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
int sch_time_norm(const char *s, size_t len, char *out)
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

/* ---- member names ----------------------------------------------------------
 */

/* Go's case-insensitive member matching (bytes.EqualFold against an ASCII
 * field name): ASCII letters fold, and so do the Kelvin sign (to 'k') and
 * the long s (to 's'). */
int sch_fold_eq(const char *key, const char *name)
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

int sch_find_field(const struct sch_schema *s, const char *key)
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

/* null into a non-pointer scalar leaves it as it was (Go). */
int sch_null_keeps(int kind)
{
    return kind == K_STR || kind == K_BOOL || kind == K_INT || kind == K_TIME;
}

const struct sch_field *sch_field_of(const struct sch_schema *s,
                                     const char *name)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        if (!strcmp(s->fields[i].name, name))
            return &s->fields[i];
    }
    return NULL;
}
