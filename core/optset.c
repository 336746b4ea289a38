/*
 * core/optset.c: typed option values: the value parsers (durations,
 * sizes, booleans, numbers), and validating a section against an option
 * table into a struct optset with typed getters and printing.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"

/* ---- value parsers ------------------------------------------------------ */

/* Each returns NULL on success or the reason the text is refused, worded
 * to follow "'TEXT' ". */

/* Reads decimal digits at *sp. Returns 0 (and advances *sp), -1 when
 * there is no digit, -2 on overflow. */
static int parse_digits(const char **sp, uint64_t *v)
{
    const char *s = *sp;
    uint64_t n = 0;

    if (!isdigit((unsigned char)*s))
        return -1;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');

        if (n > (UINT64_MAX - d) / 10)
            return -2;
        n = n * 10 + d;
        s++;
    }
    *sp = s;
    *v = n;
    return 0;
}

/*
 * Durations: a bare 0, or amounts with units in descending order, each
 * unit at most once (250ms, 30s, 1h30m, 1m30s500ms). A bare number other
 * than 0 is refused: "10" could mean seconds or milliseconds.
 */
static const char *config_duration(const char *s, uint64_t *ms)
{
    /* Longest match first: "ms" before "m". */
    static const struct {
        const char *unit;
        uint64_t ms;
        int rank;
    } units[] = {
        {"ms", 1, 0}, {"h", 3600000, 3}, {"m", 60000, 2}, {"s", 1000, 1}};
    const char *bad = "is not a duration (e.g. 250ms, 30s, 5m, 1h30m)";
    const char *p = s;
    uint64_t total = 0, n;
    int last = 4;

    if (strspn(s, "0") == strlen(s) && *s) {
        *ms = 0;
        return NULL;
    }
    if (strspn(s, "0123456789") == strlen(s) && *s)
        return "needs a unit (ms, s, m, h)";
    while (*p) {
        size_t u, l = 0;
        int rc = parse_digits(&p, &n);

        if (rc == -2)
            return "is too large";
        if (rc < 0)
            return bad;
        for (u = 0; u < 4; u++) {
            l = strlen(units[u].unit);
            if (strncmp(p, units[u].unit, l) == 0)
                break;
        }
        if (u == 4) {
            if (!*p)
                return "needs a unit (ms, s, m, h)";
            return bad;
        }
        if (units[u].rank >= last)
            return bad;
        last = units[u].rank;
        p += l;
        if (n > UINT64_MAX / units[u].ms ||
            total > UINT64_MAX - n * units[u].ms)
            return "is too large";
        total += n * units[u].ms;
    }
    if (p == s)
        return bad;
    *ms = total;
    return NULL;
}

/* Sizes: a number of bytes with an optional unit, case-insensitive; K, KB
 * and KiB all mean 1024 (as in Redis and most daemons' configs). */
static const char *config_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {{"", 0},     {"b", 0},   {"k", 10},   {"kb", 10}, {"kib", 10},
                 {"m", 20},   {"mb", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},
                 {"gib", 30}, {"t", 40},  {"tb", 40},  {"tib", 40}};
    const char *bad = "is not a size (e.g. 512, 64KB, 16MB)";
    const char *p = s;
    uint64_t n;
    int rc;

    rc = parse_digits(&p, &n);
    if (rc == -2)
        return "is too large";
    if (rc < 0)
        return bad;
    while (*p == ' ')
        p++;
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        if (strcasecmp(p, units[u].unit) == 0) {
            if (n > (UINT64_MAX >> units[u].shift))
                return "is too large";
            *bytes = n << units[u].shift;
            return NULL;
        }
    }
    return bad;
}

static const char *config_bool(const char *s, int *b)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *b = 1;
            return NULL;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *b = 0;
            return NULL;
        }
    }
    return "is not a boolean (true/false, yes/no, on/off, 1/0)";
}

static const char *config_int(const char *s, int64_t *v)
{
    const char *p = s;
    uint64_t n;
    int neg = 0, rc;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    rc = parse_digits(&p, &n);
    if (rc == -2)
        return "is too large";
    if (rc < 0 || *p)
        return "is not an integer";
    if (neg) {
        if (n > (uint64_t)INT64_MAX + 1)
            return "is too large";
        *v = n == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n;
    } else {
        if (n > (uint64_t)INT64_MAX)
            return "is too large";
        *v = (int64_t)n;
    }
    return NULL;
}

static const char *config_double(const char *s, double *v)
{
    char *end;
    double d;

    if (!*s || isspace((unsigned char)*s))
        return "is not a number";
    errno = 0;
    d = strtod(s, &end);
    if (*end || !isfinite(d) || errno == ERANGE)
        return "is not a number";
    *v = d;
    return NULL;
}

/* The public parsers: 0 with the value stored, or -1 leaving it alone.
 * Pure functions; any thread. */
int config_parse_duration_ms(const char *s, uint64_t *ms)
{
    return config_duration(s, ms) ? -1 : 0;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    return config_size(s, bytes) ? -1 : 0;
}

int config_parse_bool(const char *s, int *b)
{
    return config_bool(s, b) ? -1 : 0;
}

int config_parse_int(const char *s, int64_t *v)
{
    return config_int(s, v) ? -1 : 0;
}

int config_parse_double(const char *s, double *v)
{
    return config_double(s, v) ? -1 : 0;
}

/* ---- option sets -------------------------------------------------------- */

struct optval {
    int set;
    /* The effective text: the set value or the default; NULL when unset.
     * For enums, the table's spelling. */
    char *text;
    int64_t i;
    uint64_t u;
    double d;
    int b;
    /* FERRY_OPT_LIST: NULL-terminated items. */
    char **items;
    size_t nitems;
};

struct optset {
    const struct ferry_option *table;
    size_t count;
    struct optval *vals;
};

static void format_duration(char *buf, size_t len, uint64_t ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t off = 0;

    if (ms == 0) {
        snprintf(buf, len, "0");
        return;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < 4 && off < len; i++) {
        if (ms >= units[i].ms) {
            int n =
                snprintf(buf + off, len - off, "%llu%s",
                         (unsigned long long)(ms / units[i].ms), units[i].unit);

            if (n > 0)
                off += (size_t)n;
            ms %= units[i].ms;
        }
    }
}

static void format_size(char *buf, size_t len, uint64_t n)
{
    static const char *const units[] = {"GB", "MB", "KB"};
    static const int shifts[] = {30, 20, 10};

    for (int i = 0; i < 3; i++) {
        if (n && n % ((uint64_t)1 << shifts[i]) == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(n >> shifts[i]),
                     units[i]);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)n);
}

static void format_bound(char *buf, size_t len, int type, double v)
{
    switch (type) {
    case FERRY_OPT_DURATION:
        format_duration(buf, len, (uint64_t)v);
        break;
    case FERRY_OPT_SIZE:
        format_size(buf, len, (uint64_t)v);
        break;
    case FERRY_OPT_INT:
        snprintf(buf, len, "%lld", (long long)v);
        break;
    default:
        snprintf(buf, len, "%g", v);
        break;
    }
}

static void optval_release(struct optval *v)
{
    free(v->text);
    for (size_t i = 0; i < v->nitems; i++)
        free(v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static void config_split_list(const char *s, struct optval *v)
{
    const char *p = s;

    v->items = config_xrealloc(NULL, sizeof(char *));
    v->nitems = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p;

        while (b < end && isspace((unsigned char)*b))
            b++;
        while (end > b && isspace((unsigned char)end[-1]))
            end--;
        if (end > b) {
            v->items =
                config_xrealloc(v->items, (v->nitems + 2) * sizeof(char *));
            v->items[v->nitems++] = config_xstrndup(b, (size_t)(end - b));
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    v->items[v->nitems] = NULL;
}

/* Parses text as one of opt's enum values (any case) into v, keeping the
 * table's spelling. Returns 0, or -1 with the choices (and a did-you-mean)
 * in why. */
static int optval_parse_enum(const struct ferry_option *opt, const char *text,
                             struct optval *v, char *why, size_t whylen)
{
    const char *const *ev = opt->enum_values;
    const char *hint;
    struct sbuf b = {0};

    assert(ev && ev[0]);
    for (size_t i = 0; ev[i]; i++) {
        if (strcasecmp(text, ev[i]) == 0) {
            v->text = config_xstrdup(ev[i]);
            return 0;
        }
    }
    config_sbuf_add(&b, "", 0);
    for (size_t i = 0; ev[i]; i++) {
        if (i > 0)
            config_sbuf_add(&b, ", ", 2);
        config_sbuf_add(&b, ev[i], strlen(ev[i]));
    }
    hint = config_suggest(text, ev);
    if (hint)
        config_err(why, whylen,
                   "%s: '%s' is not one of %s (did you mean '%s'?)",
                   opt->name, text, b.s, hint);
    else
        config_err(why, whylen, "%s: '%s' is not one of %s", opt->name,
                   text, b.s);
    free(b.s);
    return -1;
}

/*
 * Parses text as opt's type into v (released first). Returns 0, or -1 with
 * "key: 'text' reason" (or the range) in why.
 */
static int optval_parse(const struct ferry_option *opt, const char *text,
                        struct optval *v, char *why, size_t whylen)
{
    const char *bad = NULL;
    double num = 0;
    int ranged = 0;

    optval_release(v);
    switch (opt->type) {
    case FERRY_OPT_STRING:
        break;
    case FERRY_OPT_INT:
        bad = config_int(text, &v->i);
        num = (double)v->i;
        ranged = 1;
        break;
    case FERRY_OPT_BOOL:
        bad = config_bool(text, &v->b);
        break;
    case FERRY_OPT_DURATION:
        bad = config_duration(text, &v->u);
        num = (double)v->u;
        ranged = 1;
        break;
    case FERRY_OPT_SIZE:
        bad = config_size(text, &v->u);
        num = (double)v->u;
        ranged = 1;
        break;
    case FERRY_OPT_DOUBLE:
        bad = config_double(text, &v->d);
        num = v->d;
        ranged = 1;
        break;
    case FERRY_OPT_LIST:
        config_split_list(text, v);
        break;
    case FERRY_OPT_ENUM:
        return optval_parse_enum(opt, text, v, why, whylen);
    default:
        assert(!"unknown option type");
        return -1;
    }
    if (bad) {
        config_err(why, whylen, "%s: '%s' %s", opt->name, text, bad);
        return -1;
    }
    if (ranged && !(opt->min == 0 && opt->max == 0) &&
        (num < opt->min || num > opt->max)) {
        char lo[64], hi[64];

        format_bound(lo, sizeof(lo), opt->type, opt->min);
        format_bound(hi, sizeof(hi), opt->type, opt->max);
        config_err(why, whylen, "%s: %s is out of range (%s..%s)", opt->name,
                   text, lo, hi);
        return -1;
    }
    v->text = config_xstrdup(text);
    return 0;
}

static int optset_is_extra(const char *key, const char *const *extra)
{
    for (size_t i = 0; extra && extra[i]; i++) {
        if (strcmp(key, extra[i]) == 0)
            return 1;
    }
    return 0;
}

static long optset_index(const struct ferry_option *table, size_t count,
                         const char *name)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(table[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

/* Unknown key: suggests among the table's keys and the extra keys. */
static void optset_unknown(const struct config_entry *e, const char *sname,
                           const struct ferry_option *table, size_t count,
                           const char *const *extra, char *err, size_t errlen)
{
    size_t nextra = 0;
    const char **cands;
    const char *hint;

    while (extra && extra[nextra])
        nextra++;
    cands = config_xrealloc(NULL, (count + nextra + 1) * sizeof(*cands));
    for (size_t i = 0; i < count; i++)
        cands[i] = table[i].name;
    for (size_t i = 0; i < nextra; i++)
        cands[count + i] = extra[i];
    cands[count + nextra] = NULL;
    hint = config_suggest(e->key, cands);
    if (hint)
        config_err(err, errlen,
                   "%s:%d: [%s] unknown key '%s' (did you mean '%s'?)", e->file,
                   e->line, sname, e->key, hint);
    else
        config_err(err, errlen, "%s:%d: [%s] unknown key '%s'", e->file,
                   e->line, sname, e->key);
    free(cands);
}

/*
 * Returns a new optset the caller frees with optset_free(), or NULL with
 * the first error in err. Reads s and table without keeping s: the optset
 * copies every value but points to table, which must outlive it. Any
 * thread; the getters below only read and may be used from any thread.
 */
struct optset *optset_new(const struct config_section *s,
                          const char *section_name,
                          const struct ferry_option *table,
                          const char *const *extra_keys, char *err,
                          size_t errlen)
{
    struct optset *o;
    const char *sname = section_name ? section_name : (s ? s->name : "");
    char why[1024];

    assert(table);
    o = config_xrealloc(NULL, sizeof(*o));
    o->table = table;
    o->count = 0;
    while (table[o->count].name)
        o->count++;
    o->vals = config_xrealloc(NULL, (o->count + 1) * sizeof(*o->vals));
    memset(o->vals, 0, (o->count + 1) * sizeof(*o->vals));

    for (size_t i = 0; s && i < s->count; i++) {
        const struct config_entry *e = &s->entries[i];
        const struct ferry_option *opt;
        long k;

        if (optset_is_extra(e->key, extra_keys))
            continue;
        k = optset_index(table, o->count, e->key);
        if (k < 0) {
            optset_unknown(e, sname, table, o->count, extra_keys, err, errlen);
            goto fail;
        }
        opt = &table[k];
        if ((opt->flags & FERRY_OPT_REQUIRED) &&
            strspn(e->value, " \t,") == strlen(e->value)) {
            config_err(err, errlen, "%s:%d: [%s] %s: must not be empty",
                       e->file, e->line, sname, e->key);
            goto fail;
        }
        if (optval_parse(opt, e->value, &o->vals[k], why, sizeof(why))) {
            config_err(err, errlen, "%s:%d: [%s] %s", e->file, e->line, sname,
                       why);
            goto fail;
        }
        o->vals[k].set = 1;
    }

    for (size_t k = 0; k < o->count; k++) {
        const struct ferry_option *opt = &table[k];
        int rc;

        if (o->vals[k].set)
            continue;
        if (opt->flags & FERRY_OPT_REQUIRED) {
            if (s)
                config_err(err, errlen, "%s:%d: [%s] missing required key '%s'",
                           s->file, s->line, sname, opt->name);
            else
                config_err(err, errlen, "[%s] missing required key '%s'", sname,
                           opt->name);
            goto fail;
        }
        if (!opt->def)
            continue;
        rc = optval_parse(opt, opt->def, &o->vals[k], why, sizeof(why));
        /* A default that does not parse is a bug in the table. */
        assert(rc == 0 || !"invalid default in option table");
        (void)rc;
    }
    return o;

fail:
    optset_free(o);
    return NULL;
}

void optset_free(struct optset *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->count; i++)
        optval_release(&o->vals[i]);
    free(o->vals);
    free(o);
}

/* Finds name, which must be declared with one of the two types (a
 * programming error otherwise: aborts, even without assertions). */
static const struct optval *optset_get(const struct optset *o, const char *name,
                                       int type, int type2)
{
    long k = optset_index(o->table, o->count, name);

    if (k < 0) {
        fprintf(stderr, "ferry: option '%s' is not declared\n", name);
        abort();
    }
    if (o->table[k].type != type && o->table[k].type != type2) {
        fprintf(stderr, "ferry: option '%s' read with the wrong type\n", name);
        abort();
    }
    return &o->vals[k];
}

const char *optset_str(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_STRING, FERRY_OPT_ENUM)->text;
}

int64_t optset_int(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_INT, FERRY_OPT_INT)->i;
}

int optset_bool(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_BOOL, FERRY_OPT_BOOL)->b;
}

uint64_t optset_duration_ms(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_DURATION, FERRY_OPT_DURATION)->u;
}

uint64_t optset_size(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_SIZE, FERRY_OPT_SIZE)->u;
}

double optset_double(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_DOUBLE, FERRY_OPT_DOUBLE)->d;
}

size_t optset_list(const struct optset *o, const char *name,
                   const char *const **items)
{
    static const char *const none[] = {NULL};
    const struct optval *v =
        optset_get(o, name, FERRY_OPT_LIST, FERRY_OPT_LIST);

    if (!v->items) {
        *items = none;
        return 0;
    }
    *items = (const char *const *)v->items;
    return v->nitems;
}

int optset_is_set(const struct optset *o, const char *name)
{
    long k = optset_index(o->table, o->count, name);

    return k >= 0 && o->vals[k].set;
}

int optset_has(const struct optset *o, const char *name)
{
    return optset_index(o->table, o->count, name) >= 0;
}

void optset_print(const struct optset *o, FILE *out)
{
    for (size_t k = 0; k < o->count; k++) {
        const struct ferry_option *opt = &o->table[k];
        const struct optval *v = &o->vals[k];

        if (!v->text) {
            fprintf(out, "%s =\n", opt->name);
        } else if (opt->flags & FERRY_OPT_SECRET) {
            fprintf(out, "%s = ***\n", opt->name);
        } else if (opt->type == FERRY_OPT_LIST) {
            fprintf(out, "%s =", opt->name);
            for (size_t i = 0; i < v->nitems; i++)
                fprintf(out, "%s%s", i ? ", " : " ", v->items[i]);
            fputc('\n', out);
        } else {
            fprintf(out, "%s =%s%s\n", opt->name, *v->text ? " " : "", v->text);
        }
    }
}
