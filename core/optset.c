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
 * Durations follow Go's time.ParseDuration, so a value that the reference
 * replicator accepted in its environment is accepted here: an optional
 * sign, then one or more decimal numbers, each with an optional fraction
 * and a unit (ns, us, µs, μs, ms, s, m, h), in any order ("1.5h", "500us",
 * "1h2m3.5s", ".5s", "1.s"), or "0" alone. Two extensions are kept from
 * ferry's earlier grammar: a run of zeros ("00") is 0, and the amount is
 * limited by the uint64 of milliseconds ferry stores rather than by Go's
 * int64 of nanoseconds (about 292 years).
 *
 * ferry keeps milliseconds. The sum is computed exactly in nanoseconds, as
 * Go does (Go truncates a fraction below one nanosecond), and a remainder
 * below a millisecond rounds up to the next millisecond, so a non-zero
 * duration never becomes 0, which means "disabled" for several options:
 * 500us is 1ms and 1.0005s is 1001ms.
 *
 * The sign is returned in *neg; callers refuse a negative non-zero value
 * (an option's range, or config_parse_duration_ms()).
 */
#define NS_PER_MS 1000000ull

/* Go's leadingFraction(): digits after the point, ignoring those that
 * would overflow. Returns the digits as an integer and scale as 10^n. */
static const char *duration_fraction(const char *p, uint64_t *f, double *scale)
{
    int overflow = 0;

    *f = 0;
    *scale = 1;
    for (; isdigit((unsigned char)*p); p++) {
        uint64_t y;

        if (overflow)
            continue;
        if (*f > (((uint64_t)1 << 63) - 1) / 10) {
            overflow = 1;
            continue;
        }
        y = *f * 10 + (uint64_t)(*p - '0');
        if (y > (uint64_t)1 << 63) {
            overflow = 1;
            continue;
        }
        *f = y;
        *scale *= 10;
    }
    return p;
}

/* Adds n milliseconds to *ms. Returns 0, or -1 on overflow. */
static int duration_add_ms(uint64_t *ms, uint64_t n)
{
    if (*ms > UINT64_MAX - n)
        return -1;
    *ms += n;
    return 0;
}

/*
 * Adds one component (integer v, fraction f / scale, of a unit of unit_ns
 * nanoseconds) to the total kept as *ms and *rem (nanoseconds, below
 * a millisecond). Returns 0, or -1 on overflow.
 */
static int duration_add(uint64_t *ms, uint64_t *rem, uint64_t v, uint64_t f,
                        double scale, uint64_t unit_ns)
{
    if (unit_ns >= NS_PER_MS) {
        uint64_t per = unit_ns / NS_PER_MS;

        if (v > UINT64_MAX / per || duration_add_ms(ms, v * per) < 0)
            return -1;
    } else {
        uint64_t div = NS_PER_MS / unit_ns;

        if (duration_add_ms(ms, v / div) < 0)
            return -1;
        *rem += (v % div) * unit_ns;
    }
    if (f > 0) {
        /* Go: v += uint64(float64(f) * (float64(unit) / scale)). At most
         * one unit (3.6e12 ns for h), so it fits. */
        uint64_t ns = (uint64_t)((double)f * ((double)unit_ns / scale));

        if (duration_add_ms(ms, ns / NS_PER_MS) < 0)
            return -1;
        *rem += ns % NS_PER_MS;
    }
    if (duration_add_ms(ms, *rem / NS_PER_MS) < 0)
        return -1;
    *rem %= NS_PER_MS;
    return 0;
}

/* Returns the length of the unit at p (Go: the bytes up to the next digit
 * or '.') and its size in *unit_ns, 0 in *unit_ns when it is unknown. */
static size_t duration_unit(const char *p, uint64_t *unit_ns)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {{"ns", 1},
                 {"us", 1000},
                 {"\xC2\xB5s", 1000}, /* U+00B5 MICRO SIGN */
                 {"\xCE\xBCs", 1000}, /* U+03BC GREEK SMALL LETTER MU */
                 {"ms", NS_PER_MS},
                 {"s", 1000 * NS_PER_MS},
                 {"m", 60000 * NS_PER_MS},
                 {"h", 3600000 * NS_PER_MS}};
    size_t n = 0;

    while (p[n] && p[n] != '.' && !isdigit((unsigned char)p[n]))
        n++;
    *unit_ns = 0;
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        if (strlen(units[u].name) == n && memcmp(p, units[u].name, n) == 0)
            *unit_ns = units[u].ns;
    }
    return n;
}

static const char *config_duration_signed(const char *s, uint64_t *out,
                                          int *neg)
{
    const char *bad = "is not a duration (e.g. 250ms, 30s, 5m, 1h30m)";
    const char *unitless = "needs a unit (ms, s, m, h)";
    const char *p = s;
    uint64_t ms = 0, rem = 0;

    *neg = 0;
    if (*s && strspn(s, "0") == strlen(s)) {
        *out = 0;
        return NULL;
    }
    if (*p == '-' || *p == '+')
        *neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return NULL;
    }
    if (!*p)
        return bad;
    if (strspn(p, "0123456789") == strlen(p))
        return unitless;
    while (*p) {
        uint64_t v = 0, f = 0, unit_ns;
        double scale = 1;
        const char *start = p;
        int pre, post = 0;
        size_t ulen;

        if (*p != '.' && !isdigit((unsigned char)*p))
            return bad;
        if (isdigit((unsigned char)*p) && parse_digits(&p, &v) == -2)
            return "is too large";
        pre = p != start;
        if (*p == '.') {
            const char *q = ++p;

            p = duration_fraction(p, &f, &scale);
            post = p != q;
        }
        if (!pre && !post)
            return bad;
        ulen = duration_unit(p, &unit_ns);
        if (ulen == 0)
            return *p ? bad : unitless;
        if (!unit_ns)
            return bad;
        p += ulen;
        if (duration_add(&ms, &rem, v, f, scale, unit_ns) < 0)
            return "is too large";
    }
    if (rem > 0 && duration_add_ms(&ms, 1) < 0)
        return "is too large";
    *out = ms;
    return NULL;
}

/* Durations that are 0 or more (config_duration_signed() above). */
static const char *config_duration(const char *s, uint64_t *ms)
{
    uint64_t v;
    int neg;
    const char *bad = config_duration_signed(s, &v, &neg);

    if (bad)
        return bad;
    if (neg && v > 0)
        return "is negative";
    *ms = v;
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

const char *config_check_bool(const char *s, int *b)
{
    return config_bool(s, b);
}

const char *config_check_int(const char *s, int64_t *v)
{
    return config_int(s, v);
}

const char *config_check_duration(const char *s, uint64_t *ms)
{
    return config_duration(s, ms);
}

/* ---- option sets -------------------------------------------------------- */

char *config_resolve_path(const char *file, const char *value)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    struct sbuf b = {0};

    if (!slash || !value[0] || value[0] == '/' || strcmp(value, "-") == 0)
        return config_xstrdup(value);
    config_sbuf_add(&b, file, (size_t)(slash - file + 1));
    config_sbuf_add(&b, value, strlen(value));
    return b.s;
}

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
                   "%s: '%s' is not one of %s (did you mean '%s'?)", opt->name,
                   text, b.s, hint);
    else
        config_err(why, whylen, "%s: '%s' is not one of %s", opt->name, text,
                   b.s);
    free(b.s);
    return -1;
}

/* Parses a duration into v->u and its signed value into *num, for the
 * range check. A negative value is refused by the range, or as negative
 * when the option has none. Returns NULL or the reason. */
static const char *optval_parse_duration(const struct ferry_option *opt,
                                         const char *text, struct optval *v,
                                         double *num)
{
    int neg;
    const char *bad = config_duration_signed(text, &v->u, &neg);

    if (bad)
        return bad;
    *num = neg ? -(double)v->u : (double)v->u;
    if (neg && v->u > 0 && opt->min == 0 && opt->max == 0)
        return "is negative";
    return NULL;
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
        bad = optval_parse_duration(opt, text, v, &num);
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
    if (bad && (opt->flags & FERRY_OPT_SECRET)) {
        config_err(why, whylen, "%s: the value %s", opt->name, bad);
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

/* The three strings of " (from $VAR)" after an error about e's value, or
 * three empty strings when no variable supplied it. */
#define FROM_VARS(e)                                                           \
    (e)->vars ? " (from " : "", (e)->vars ? (e)->vars : "", (e)->vars ? ")" : ""

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
            config_err(err, errlen, "%s:%d: [%s] %s: must not be empty%s%s%s",
                       e->file, e->line, sname, e->key, FROM_VARS(e));
            goto fail;
        }
        if (optval_parse(opt, e->value, &o->vals[k], why, sizeof(why))) {
            config_err(err, errlen, "%s:%d: [%s] %s%s%s%s", e->file, e->line,
                       sname, why, FROM_VARS(e));
            goto fail;
        }
        if (opt->type == FERRY_OPT_STRING && (opt->flags & FERRY_OPT_PATH)) {
            char *path = config_resolve_path(e->file, o->vals[k].text);

            free(o->vals[k].text);
            o->vals[k].text = path;
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
