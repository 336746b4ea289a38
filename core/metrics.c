/*
 * core/metrics.c: the metric registry and its Prometheus text exposition.
 *
 * Families (name, help, type) keep registration order and hold their
 * series (one label set each) in registration order, so /metrics renders
 * one HELP/TYPE block per name, stable between scrapes.
 *
 * Values are doubles stored as their bit pattern in an _Atomic uint64_t:
 * C11 has no atomic add for doubles, so metrics_add() is a relaxed CAS
 * loop (lock-free on every target we build for). Histograms keep one
 * atomic count per bucket, not cumulative: an observation touches one
 * bucket and the sum; rendering accumulates. The count is the sum of the
 * buckets, so a scrape never shows _count disagreeing with le="+Inf".
 *
 * Registration, rendering, metrics_sum() and callback gauges take the
 * registry mutex. Gauge callbacks run under it: they must not call back
 * into this module.
 */
#include "metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "health.h"

/* Seconds: from half a millisecond (a pipelined Redis write) to 10 s. */
static const double metrics_buckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10,
};
#define NBUCKETS (sizeof(metrics_buckets) / sizeof(metrics_buckets[0]))

struct metrics_family;

struct ferry_metric {
    struct metrics_family *fam;
    /* name, value, ..., NULL: as registered, in order. */
    char **labels;
    size_t npairs;
    /* The label pairs rendered and escaped: a="x",b="y" ("" if none). */
    char *rendered;
    /* Counters and gauges: the value's bits. */
    _Atomic uint64_t bits;
    /* Callback gauges. */
    double (*fn)(void *arg);
    void *fn_arg;
    /* Histograms: NBUCKETS + 1 (+Inf) counts, and the sum's bits. */
    _Atomic uint64_t *buckets;
    _Atomic uint64_t sum_bits;
    struct ferry_metric *next;
};

struct metrics_family {
    char *name;
    char *help;
    int type;
    struct ferry_metric *series;
    struct ferry_metric **tail;
    struct metrics_family *next;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_family *metrics_families;
static struct metrics_family **metrics_tail = &metrics_families;

/* ---- doubles in atomics ----------------------------------------------- */

static uint64_t metrics__bits(double v)
{
    uint64_t b;

    memcpy(&b, &v, sizeof(b));
    return b;
}

static double metrics__double(uint64_t b)
{
    double v;

    memcpy(&v, &b, sizeof(v));
    return v;
}

static void metrics__atomic_add(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(
        p, &old, metrics__bits(metrics__double(old) + v), memory_order_relaxed,
        memory_order_relaxed))
        ;
}

/* ---- string building -------------------------------------------------- */

struct metrics_buf {
    char *s;
    size_t len;
    size_t cap;
    int failed;
};

static void metrics__put(struct metrics_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;

        while (b->len + n + 1 > cap)
            cap *= 2;
        p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void metrics__puts(struct metrics_buf *b, const char *s)
{
    metrics__put(b, s, strlen(s));
}

/* Appends s escaped for a label value (\\, \", \n) or, when quotes is 0,
 * for HELP text (\\, \n). */
static void metrics__escape(struct metrics_buf *b, const char *s, int quotes)
{
    const char *run = s;

    for (; *s; s++) {
        const char *esc = NULL;

        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quotes)
            esc = "\\\"";
        if (esc) {
            metrics__put(b, run, (size_t)(s - run));
            metrics__puts(b, esc);
            run = s + 1;
        }
    }
    metrics__put(b, run, (size_t)(s - run));
}

/*
 * Formats v as the exposition format wants it: integral values without
 * exponent or fraction, others in the shortest of %.15g/%.17g that reads
 * back as the same double; NaN, +Inf, -Inf.
 */
static void metrics__fmt(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
    } else if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, n, "%.0f", v == 0 ? 0.0 : v);
    } else {
        snprintf(out, n, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, n, "%.17g", v);
    }
}

static void metrics__put_double(struct metrics_buf *b, double v)
{
    char num[64];

    metrics__fmt(num, sizeof(num), v);
    metrics__puts(b, num);
}

/* ---- registry (lock held) --------------------------------------------- */

static int metrics__name_ok(const char *s, int colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++) {
        char c = *s;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || (colon && c == ':')))
            return 0;
    }
    return 1;
}

static size_t metrics__npairs(const char *const *labels)
{
    size_t n = 0;

    while (labels && labels[2 * n])
        n++;
    return n;
}

/* Nonzero when every pair of want (npairs) is among m's labels. */
static int metrics__has_labels(const struct ferry_metric *m,
                               const char *const *want, size_t npairs)
{
    for (size_t i = 0; i < npairs; i++) {
        size_t j;

        for (j = 0; j < m->npairs; j++) {
            if (strcmp(m->labels[2 * j], want[2 * i]) == 0 &&
                strcmp(m->labels[2 * j + 1], want[2 * i + 1]) == 0)
                break;
        }
        if (j == m->npairs)
            return 0;
    }
    return 1;
}

static struct metrics_family *metrics__family(const char *name)
{
    for (struct metrics_family *f = metrics_families; f; f = f->next) {
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

/* The series of f with exactly these labels (in any order), or NULL. */
static struct ferry_metric *metrics__series(struct metrics_family *f,
                                            const char *const *labels)
{
    size_t npairs = metrics__npairs(labels);

    for (struct ferry_metric *m = f->series; m; m = m->next) {
        if (m->npairs == npairs && metrics__has_labels(m, labels, npairs))
            return m;
    }
    return NULL;
}

static void metrics__free_series(struct ferry_metric *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < 2 * m->npairs; i++)
        free(m->labels[i]);
    free(m->labels);
    free(m->rendered);
    free(m->buckets);
    free(m);
}

static struct ferry_metric *metrics__new_series(struct metrics_family *f,
                                                const char *const *labels)
{
    size_t npairs = metrics__npairs(labels);
    struct metrics_buf b = {0};
    struct ferry_metric *m;

    m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->fam = f;
    m->labels = calloc(2 * npairs + 1, sizeof(*m->labels));
    if (!m->labels)
        goto fail;
    m->npairs = npairs;
    for (size_t i = 0; i < 2 * npairs; i++) {
        m->labels[i] = strdup(labels[i]);
        if (!m->labels[i])
            goto fail;
    }
    metrics__puts(&b, "");
    for (size_t i = 0; i < npairs; i++) {
        if (i > 0)
            metrics__puts(&b, ",");
        metrics__puts(&b, labels[2 * i]);
        metrics__puts(&b, "=\"");
        metrics__escape(&b, labels[2 * i + 1], 1);
        metrics__puts(&b, "\"");
    }
    if (b.failed)
        goto fail;
    m->rendered = b.s;
    b.s = NULL;
    if (f->type == FERRY_METRIC_HISTOGRAM) {
        m->buckets = calloc(NBUCKETS + 1, sizeof(*m->buckets));
        if (!m->buckets)
            goto fail;
    }
    *f->tail = m;
    f->tail = &m->next;
    return m;

fail:
    free(b.s);
    metrics__free_series(m); /* labels[] is NULL-padded */
    return NULL;
}

/* Finds or creates the family and series. NULL on a type clash, an
 * invalid name or label name, or out of memory. */
static struct ferry_metric *metrics__get(int type, const char *name,
                                         const char *help,
                                         const char *const *labels)
{
    struct metrics_family *f;
    struct ferry_metric *m;
    size_t npairs = metrics__npairs(labels);

    if (type < FERRY_METRIC_COUNTER || type > FERRY_METRIC_HISTOGRAM ||
        !metrics__name_ok(name, 1))
        return NULL;
    for (size_t i = 0; i < npairs; i++) {
        if (!metrics__name_ok(labels[2 * i], 0) || !labels[2 * i + 1])
            return NULL;
    }
    f = metrics__family(name);
    if (f && f->type != type)
        return NULL;
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f)
            return NULL;
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        if (!f->name || !f->help) {
            free(f->name);
            free(f->help);
            free(f);
            return NULL;
        }
        f->type = type;
        f->tail = &f->series;
        *metrics_tail = f;
        metrics_tail = &f->next;
    }
    m = metrics__series(f, labels);
    if (!m)
        m = metrics__new_series(f, labels);
    return m;
}

/* Lock held for callback gauges. */
static double metrics__value(struct ferry_metric *m)
{
    double total = 0;

    if (m->fn)
        return m->fn(m->fn_arg);
    if (m->fam->type != FERRY_METRIC_HISTOGRAM)
        return metrics__double(atomic_load(&m->bits));
    for (size_t i = 0; i <= NBUCKETS; i++)
        total += (double)atomic_load(&m->buckets[i]);
    return total;
}

/* ---- public ----------------------------------------------------------- */

/* Any thread. The series stays valid until metrics_reset() (or, for a
 * callback gauge, metrics_forget()). NULL also for an invalid metric or
 * label name. */
struct ferry_metric *metrics_get(int type, const char *name, const char *help,
                                 const char *const *labels)
{
    struct ferry_metric *m;

    pthread_mutex_lock(&metrics_lock);
    m = metrics__get(type, name, help, labels);
    pthread_mutex_unlock(&metrics_lock);
    return m;
}

/* Any thread. Registering the same name and labels again replaces the
 * callback. fn runs under the registry lock (render, metrics_sum(),
 * metrics_value()): it must not call into this module. */
struct ferry_metric *metrics_gauge_fn(const char *name, const char *help,
                                      const char *const *labels,
                                      double (*fn)(void *arg), void *arg)
{
    struct ferry_metric *m;

    if (!fn)
        return NULL;
    pthread_mutex_lock(&metrics_lock);
    m = metrics__get(FERRY_METRIC_GAUGE, name, help, labels);
    if (m) {
        m->fn = fn;
        m->fn_arg = arg;
    }
    pthread_mutex_unlock(&metrics_lock);
    return m;
}

/* Lock-free. Counters ignore negative v; histograms ignore add. Accepts
 * NULL (a registration that failed). */
void metrics_add(struct ferry_metric *m, double v)
{
    if (!m || m->fam->type == FERRY_METRIC_HISTOGRAM)
        return;
    if (m->fam->type == FERRY_METRIC_COUNTER && !(v >= 0))
        return;
    metrics__atomic_add(&m->bits, v);
}

/* Lock-free. For gauges (and counters restoring a value). */
void metrics_set(struct ferry_metric *m, double v)
{
    if (!m || m->fam->type == FERRY_METRIC_HISTOGRAM)
        return;
    atomic_store_explicit(&m->bits, metrics__bits(v), memory_order_relaxed);
}

/* Lock-free. Records v (seconds) in a histogram; NaN is ignored. */
void metrics_observe(struct ferry_metric *m, double v)
{
    size_t i = 0;

    if (!m || m->fam->type != FERRY_METRIC_HISTOGRAM || isnan(v))
        return;
    while (i < NBUCKETS && v > metrics_buckets[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    metrics__atomic_add(&m->sum_bits, v);
}

/* Any thread; 0 for NULL. */
double metrics_value(struct ferry_metric *m)
{
    double v;

    if (!m)
        return 0;
    if (m->fam->type != FERRY_METRIC_GAUGE)
        return metrics__value(m);
    pthread_mutex_lock(&metrics_lock);
    v = metrics__value(m);
    pthread_mutex_unlock(&metrics_lock);
    return v;
}

/* Any thread; 0 when the name is not registered. */
double metrics_sum(const char *name, const char *const *labels)
{
    struct metrics_family *f;
    size_t npairs = metrics__npairs(labels);
    double total = 0;

    if (!name)
        return 0;
    pthread_mutex_lock(&metrics_lock);
    f = metrics__family(name);
    for (struct ferry_metric *m = f ? f->series : NULL; m; m = m->next) {
        if (metrics__has_labels(m, labels, npairs))
            total += metrics__value(m);
    }
    pthread_mutex_unlock(&metrics_lock);
    return total;
}

/* Any thread. */
size_t metrics_count(const char *name, const char *const *labels)
{
    struct metrics_family *f;
    size_t npairs = metrics__npairs(labels);
    size_t n = 0;

    if (!name)
        return 0;
    pthread_mutex_lock(&metrics_lock);
    f = metrics__family(name);
    for (struct ferry_metric *m = f ? f->series : NULL; m; m = m->next) {
        if (metrics__has_labels(m, labels, npairs))
            n++;
    }
    pthread_mutex_unlock(&metrics_lock);
    return n;
}

/*
 * Any thread. As Prometheus' histogram_quantile(): finds the bucket
 * holding the rank q * count and interpolates linearly inside it (from 0
 * for the first bucket); a rank in the +Inf bucket answers the highest
 * finite bound. 0 when there are no observations or m is no histogram.
 */
double metrics_quantile(struct ferry_metric *m, double q)
{
    uint64_t counts[NBUCKETS + 1];
    uint64_t total = 0, below = 0;
    double rank;

    if (!m || m->fam->type != FERRY_METRIC_HISTOGRAM || isnan(q))
        return 0;
    for (size_t i = 0; i <= NBUCKETS; i++) {
        counts[i] = atomic_load(&m->buckets[i]);
        total += counts[i];
    }
    if (total == 0)
        return 0;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    rank = q * (double)total;
    for (size_t i = 0; i <= NBUCKETS; i++) {
        uint64_t cum = below + counts[i];
        double lower, upper;

        if (cum == 0 || (double)cum < rank) {
            below = cum;
            continue;
        }
        if (i == NBUCKETS)
            return metrics_buckets[NBUCKETS - 1];
        lower = i == 0 ? 0 : metrics_buckets[i - 1];
        upper = metrics_buckets[i];
        return lower +
               (upper - lower) * (rank - (double)below) / (double)counts[i];
    }
    return metrics_buckets[NBUCKETS - 1];
}

static const char *metrics__type_name(int type)
{
    switch (type) {
    case FERRY_METRIC_COUNTER:
        return "counter";
    case FERRY_METRIC_GAUGE:
        return "gauge";
    default:
        return "histogram";
    }
}

/* name[suffix]{labels[,extra]} value\n */
static void metrics__sample(struct metrics_buf *b, const char *name,
                            const char *suffix, const char *labels,
                            const char *extra, double v)
{
    metrics__puts(b, name);
    metrics__puts(b, suffix);
    if (*labels || extra) {
        metrics__puts(b, "{");
        metrics__puts(b, labels);
        if (*labels && extra)
            metrics__puts(b, ",");
        if (extra)
            metrics__puts(b, extra);
        metrics__puts(b, "}");
    }
    metrics__puts(b, " ");
    metrics__put_double(b, v);
    metrics__puts(b, "\n");
}

static void metrics__render_histogram(struct metrics_buf *b,
                                      const struct metrics_family *f,
                                      struct ferry_metric *m)
{
    uint64_t cum = 0;
    char le[80], num[64];

    for (size_t i = 0; i <= NBUCKETS; i++) {
        cum += atomic_load(&m->buckets[i]);
        if (i < NBUCKETS)
            metrics__fmt(num, sizeof(num), metrics_buckets[i]);
        else
            snprintf(num, sizeof(num), "+Inf");
        snprintf(le, sizeof(le), "le=\"%s\"", num);
        metrics__sample(b, f->name, "_bucket", m->rendered, le, (double)cum);
    }
    metrics__sample(b, f->name, "_sum", m->rendered, NULL,
                    metrics__double(atomic_load(&m->sum_bits)));
    metrics__sample(b, f->name, "_count", m->rendered, NULL, (double)cum);
}

/* Any thread. NULL when out of memory. */
/* ---- process and build metrics ---------------------------------------- */

/*
 * The standard process_* families of Prometheus client libraries, read
 * from /proc at scrape time, and ferry's own build, readiness and reload
 * series. Registered once (metrics_register_builtin()), again after a
 * metrics_reset().
 */
static atomic_int metrics_builtin_done;
static struct ferry_metric *metrics_reload_ok;
static struct ferry_metric *metrics_reload_failed;
static struct ferry_metric *metrics_reload_ts;

/* Fields of /proc/self/stat after the command name: index 0 is field 3
 * (state), so utime (14) is [11], stime [12], starttime (22) [19], vsize
 * [20], rss (24) [21]. Returns 0, or -1 when it cannot be read. */
static int metrics__proc_stat(double out[22])
{
    char buf[1024], *p, *end;
    FILE *fp = fopen("/proc/self/stat", "r");
    size_t n;

    if (!fp)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* The command name is in parentheses and may contain spaces. */
    p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2;
    for (int i = 0; i < 22; i++) {
        if (i == 0) {
            out[0] = 0;
            p = strchr(p, ' ');
            if (!p)
                return -1;
            continue;
        }
        out[i] = strtod(p, &end);
        if (end == p)
            return -1;
        p = end;
    }
    return 0;
}

static double metrics__proc_field(int i, double scale)
{
    double f[22];

    if (metrics__proc_stat(f) < 0)
        return 0;
    return f[i] * scale;
}

static double metrics__cpu_seconds(void *arg)
{
    double f[22];
    long hz = sysconf(_SC_CLK_TCK);

    (void)arg;
    if (metrics__proc_stat(f) < 0 || hz <= 0)
        return 0;
    return (f[11] + f[12]) / (double)hz;
}

static double metrics__rss_bytes(void *arg)
{
    (void)arg;
    return metrics__proc_field(21, (double)sysconf(_SC_PAGESIZE));
}

static double metrics__vsize_bytes(void *arg)
{
    (void)arg;
    return metrics__proc_field(20, 1);
}

static double metrics__open_fds(void *arg)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    double n = 0;

    (void)arg;
    if (!d)
        return 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static double metrics__max_fds(void *arg)
{
    struct rlimit rl;

    (void)arg;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    return (double)rl.rlim_cur;
}

/* Seconds since the epoch the process started: its start in clock ticks
 * after boot plus the boot time (btime of /proc/stat). */
static double metrics__start_time(void *arg)
{
    char line[256];
    double btime = 0;
    long hz = sysconf(_SC_CLK_TCK);
    FILE *fp = fopen("/proc/stat", "r");

    (void)arg;
    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp)) {
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtod(line + 6, NULL);
            break;
        }
    }
    fclose(fp);
    if (!btime || hz <= 0)
        return 0;
    return btime + metrics__proc_field(19, 1.0 / (double)hz);
}

static double metrics__one(void *arg)
{
    (void)arg;
    return 1;
}

static double metrics__ready(void *arg)
{
    (void)arg;
    return health_ready() ? 1 : 0;
}

/* A callback series of any type; the caller holds no lock. */
static struct ferry_metric *metrics__fn(int type, const char *name,
                                        const char *help,
                                        const char *const *labels,
                                        double (*fn)(void *arg))
{
    struct ferry_metric *m;

    pthread_mutex_lock(&metrics_lock);
    m = metrics__get(type, name, help, labels);
    if (m) {
        m->fn = fn;
        m->fn_arg = NULL;
    }
    pthread_mutex_unlock(&metrics_lock);
    return m;
}

/* Any thread; idempotent until metrics_reset(). */
void metrics_register_builtin(void)
{
    static const char *const build[] = {"version", FERRY_VERSION, NULL};
    static const char *const ok[] = {"result", "ok", NULL};
    static const char *const failed[] = {"result", "failed", NULL};

    if (atomic_exchange(&metrics_builtin_done, 1))
        return;
    metrics__fn(FERRY_METRIC_GAUGE, "ferry_build_info",
                "Always 1; the version label is ferry's version.", build,
                metrics__one);
    metrics__fn(FERRY_METRIC_GAUGE, "ferry_ready",
                "1 when /ready answers 200 (the cache is complete), else 0.",
                NULL, metrics__ready);
    metrics_reload_ok =
        metrics_get(FERRY_METRIC_COUNTER, "ferry_config_reloads_total",
                    "Configuration reloads (SIGHUP) by result.", ok);
    metrics_reload_failed =
        metrics_get(FERRY_METRIC_COUNTER, "ferry_config_reloads_total",
                    "Configuration reloads (SIGHUP) by result.", failed);
    metrics_reload_ts = metrics_get(
        FERRY_METRIC_GAUGE,
        "ferry_config_last_reload_success_timestamp_seconds",
        "When the running configuration was loaded (the start, or the last "
        "successful reload), seconds since the epoch.",
        NULL);
    metrics_set(metrics_reload_ts, metrics__start_time(NULL));
    metrics__fn(FERRY_METRIC_COUNTER, "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.", NULL,
                metrics__cpu_seconds);
    metrics__fn(FERRY_METRIC_GAUGE, "process_resident_memory_bytes",
                "Resident memory size in bytes.", NULL, metrics__rss_bytes);
    metrics__fn(FERRY_METRIC_GAUGE, "process_virtual_memory_bytes",
                "Virtual memory size in bytes.", NULL, metrics__vsize_bytes);
    metrics__fn(FERRY_METRIC_GAUGE, "process_open_fds",
                "Number of open file descriptors.", NULL, metrics__open_fds);
    metrics__fn(FERRY_METRIC_GAUGE, "process_max_fds",
                "Maximum number of open file descriptors.", NULL,
                metrics__max_fds);
    metrics__fn(FERRY_METRIC_GAUGE, "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.", NULL,
                metrics__start_time);
}

/* Any thread (the main thread's reload step). */
void metrics_config_reload(int ok)
{
    struct timespec ts;

    metrics_register_builtin();
    if (!ok) {
        metrics_add(metrics_reload_failed, 1);
        return;
    }
    metrics_add(metrics_reload_ok, 1);
    clock_gettime(CLOCK_REALTIME, &ts);
    metrics_set(metrics_reload_ts,
                (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

char *metrics_render(size_t *len)
{
    struct metrics_buf b = {0};

    metrics__puts(&b, "");
    pthread_mutex_lock(&metrics_lock);
    for (struct metrics_family *f = metrics_families; f; f = f->next) {
        if (!f->series)
            continue;
        metrics__puts(&b, "# HELP ");
        metrics__puts(&b, f->name);
        metrics__puts(&b, " ");
        metrics__escape(&b, f->help, 0);
        metrics__puts(&b, "\n# TYPE ");
        metrics__puts(&b, f->name);
        metrics__puts(&b, " ");
        metrics__puts(&b, metrics__type_name(f->type));
        metrics__puts(&b, "\n");
        for (struct ferry_metric *m = f->series; m; m = m->next) {
            if (f->type == FERRY_METRIC_HISTOGRAM)
                metrics__render_histogram(&b, f, m);
            else
                metrics__sample(&b, f->name, "", m->rendered, NULL,
                                metrics__value(m));
        }
    }
    pthread_mutex_unlock(&metrics_lock);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.s;
}

/* Frees every family and series: no thread may still use a series. */
void metrics_reset(void)
{
    struct metrics_family *f, *fnext;
    struct ferry_metric *m, *mnext;

    pthread_mutex_lock(&metrics_lock);
    for (f = metrics_families; f; f = fnext) {
        fnext = f->next;
        for (m = f->series; m; m = mnext) {
            mnext = m->next;
            metrics__free_series(m);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    metrics_families = NULL;
    metrics_tail = &metrics_families;
    metrics_reload_ok = metrics_reload_failed = metrics_reload_ts = NULL;
    atomic_store(&metrics_builtin_done, 0);
    pthread_mutex_unlock(&metrics_lock);
}

/* Removes and frees the callback gauges registered with arg: their series
 * pointers become invalid. The family stays (rendered once it has series
 * again). */
void metrics_forget(void *arg)
{
    pthread_mutex_lock(&metrics_lock);
    for (struct metrics_family *f = metrics_families; f; f = f->next) {
        struct ferry_metric **p = &f->series;

        while (*p) {
            struct ferry_metric *m = *p;

            if (m->fn && m->fn_arg == arg) {
                *p = m->next;
                metrics__free_series(m);
            } else {
                p = &m->next;
            }
        }
        f->tail = p;
    }
    pthread_mutex_unlock(&metrics_lock);
}
