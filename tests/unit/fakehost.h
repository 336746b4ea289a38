/*
 * tests/unit/fakehost.h: one fake struct ferry_host (fh_host) for driving
 * a plugin without the core.
 *
 * A test includes this header once, after <cmocka.h> and the plugin's
 * headers or sources. Everything here is static, so each test binary gets
 * its own copy and the Makefile needs no rule for it.
 *
 * What the test controls and reads back:
 * - Instances: fh_ctx_new() makes the struct ferry_ctx handed to init(),
 *   with the plugin's option table. fh_opt() sets an option as
 *   configuration text; an option the test did not set has its declared
 *   default. Asking for an undeclared option or with the wrong accessor
 *   fails the test, as the core aborts. Each instance captures its log
 *   lines (fh_nlogs, fh_log_line, fh_logged) and what it published
 *   (fh_component, fh_ready, fh_info, fh_stop_code).
 * - The clock: now_ns() is CLOCK_MONOTONIC until the test calls
 *   fh_clock_set(); from then on it is a fake clock that moves only with
 *   fh_clock_set() and fh_clock_advance(). Waits inside the fake (emit_wait,
 *   timers) always use real time.
 * - Metrics: series by name and labels, the labels written "k=v,k=v" in the
 *   plugin's order, without the instance label the core would add. fh_metric
 *   reads one series and fails when it was never registered; fh_metric_sum
 *   adds up the series whose labels include the given ones. A histogram's
 *   value is its number of observations. fh_metric_hook() sees every
 *   registration (to refuse some).
 * - Messages: emit() and emit_wait() copy every message they accept
 *   (fh_emitted). fh_emit_verdict(FERRY_WOULD_BLOCK) makes every route
 *   full: emit() refuses, emit_wait() waits for room or its timeout. Any
 *   other failing verdict is returned at once. committed() returns what
 *   fh_set_committed() stored.
 * - Timers run on their own threads at real time.
 *
 * Every function may be called from any thread; the test thread should
 * call the fh_* setters while no plugin thread runs, except
 * fh_emit_verdict(). fh_reset() frees everything (contexts included):
 * call it before each test and once after the last (leak checks).
 */
#ifndef FERRY_TESTS_FAKEHOST_H
#define FERRY_TESTS_FAKEHOST_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/ferry.h"

#include "clock.h"
#include "config.h"

#if defined(__GNUC__)
#define FH_API static __attribute__((unused))
#else
#define FH_API static
#endif

#define FH_CTX_MAGIC 0x66686378u
#define FH_MAX_OPTS 32
#define FH_MAX_PUBLISHED 16
/* emit_wait(..., 0) waits forever in the core; the fake records it and
 * gives up after this long so that such a test fails instead of hanging. */
#define FH_FOREVER_MS 100

struct fh_line {
    int level;
    char *text;
};

struct fh_kv {
    char *key;
    char *value;
    int state;
};

struct ferry_ctx {
    unsigned magic;
    char *instance;
    const struct ferry_option *decl;
    struct fh_kv opts[FH_MAX_OPTS];
    int nopts;
    struct fh_line *lines;
    int nlines;
    int linecap;
    /* Arrays handed out by opt_list(), freed with the context. */
    char ***lists;
    size_t nlists;
    /* Replaced strings the test may still hold, freed with the context. */
    char **old;
    size_t nold;
    struct fh_kv components[FH_MAX_PUBLISHED];
    int ncomponents;
    struct fh_kv infos[FH_MAX_PUBLISHED];
    int ninfos;
    int ready;     /* last set_ready(), -1 never */
    int stop_code; /* request_stop(), -1 never */
    char *stop_reason;
    struct ferry_ctx *next;
};

struct ferry_metric {
    int type;
    char *name;
    char *labels;
    double value;
};

/* A copy of one accepted message. */
struct fh_msg {
    uint32_t op;
    uint32_t flags;
    char *entity_type;
    char *entity_id;
    char *payload;
    size_t payload_len;
    uint32_t nkeys;
    struct ferry_pos pos;
};

struct ferry_timer {
    pthread_t thread;
    int stop;
    uint64_t period_ms;
    void (*cb)(void *arg);
    void *arg;
};

typedef void (*fh_metric_hook_fn)(int type, const char *name,
                                  const char *labels);

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled on verdict changes */
    pthread_once_t once;
    struct ferry_ctx *ctxs;
    int fake_clock;
    uint64_t now;
    int log_level;
    struct ferry_metric **metrics;
    size_t nmetrics;
    size_t metriccap;
    fh_metric_hook_fn metric_hook;
    struct fh_msg **msgs;
    size_t nmsgs;
    size_t msgcap;
    int verdict;
    unsigned long refused;
    int waited_forever;
    struct ferry_pos committed;
} fh = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

/* ---- small helpers ------------------------------------------------------ */

static void *fh_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

static char *fh_xstrdup(const char *s)
{
    char *d = strdup(s);

    if (d == NULL)
        abort();
    return d;
}

static void fh_init_once(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fh.cond, &ca);
    pthread_condattr_destroy(&ca);
}

static struct ferry_ctx *fh_check(struct ferry_ctx *ctx)
{
    if (ctx == NULL || ctx->magic != FH_CTX_MAGIC)
        fail_msg("%p is not a context from fh_ctx_new()", (void *)ctx);
    return ctx;
}

/* Keeps s (or NULL) until ctx is freed; the caller holds fh.lock. */
static void fh_keep(struct ferry_ctx *ctx, char *s)
{
    if (s == NULL)
        return;
    ctx->old = fh_xrealloc(ctx->old, (ctx->nold + 1) * sizeof(*ctx->old));
    ctx->old[ctx->nold++] = s;
}

static int fh_verbose(void)
{
    return getenv("VERBOSE") != NULL || getenv("TEST_VERBOSE") != NULL;
}

/* ---- instances ---------------------------------------------------------- */

/* A new instance called instance ("cache" for [sink.cache]) of a plugin
 * with the option table options. Freed by fh_ctx_free() or fh_reset(). */
FH_API struct ferry_ctx *fh_ctx_new(const char *instance,
                                    const struct ferry_option *options)
{
    struct ferry_ctx *c = calloc(1, sizeof(*c));

    if (c == NULL)
        abort();
    pthread_once(&fh.once, fh_init_once);
    c->magic = FH_CTX_MAGIC;
    c->instance = fh_xstrdup(instance);
    c->decl = options;
    c->ready = -1;
    c->stop_code = -1;
    pthread_mutex_lock(&fh.lock);
    c->next = fh.ctxs;
    fh.ctxs = c;
    pthread_mutex_unlock(&fh.lock);
    return c;
}

static void fh_kv_release(struct fh_kv *kv, int n)
{
    for (int i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
}

/* Frees ctx and what it captured. Accepts NULL. */
FH_API void fh_ctx_free(struct ferry_ctx *ctx)
{
    struct ferry_ctx **pp;

    if (ctx == NULL)
        return;
    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    for (pp = &fh.ctxs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ctx) {
            *pp = ctx->next;
            break;
        }
    }
    pthread_mutex_unlock(&fh.lock);
    fh_kv_release(ctx->opts, ctx->nopts);
    fh_kv_release(ctx->components, ctx->ncomponents);
    fh_kv_release(ctx->infos, ctx->ninfos);
    for (int i = 0; i < ctx->nlines; i++)
        free(ctx->lines[i].text);
    free(ctx->lines);
    for (size_t i = 0; i < ctx->nlists; i++) {
        for (char **it = ctx->lists[i]; *it != NULL; it++)
            free(*it);
        free(ctx->lists[i]);
    }
    free(ctx->lists);
    for (size_t i = 0; i < ctx->nold; i++)
        free(ctx->old[i]);
    free(ctx->old);
    free(ctx->stop_reason);
    free(ctx->instance);
    ctx->magic = 0;
    free(ctx);
}

static const struct ferry_option *fh_decl(struct ferry_ctx *ctx,
                                          const char *name)
{
    const struct ferry_option *o;

    for (o = ctx->decl; o != NULL && o->name != NULL; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    fail_msg("[%s] undeclared option %s", ctx->instance, name);
    return NULL;
}

/* Sets option name of ctx to value (configuration text, copied), as if
 * the configuration file said so. */
FH_API void fh_opt(struct ferry_ctx *ctx, const char *name, const char *value)
{
    int i;

    fh_decl(fh_check(ctx), name);
    for (i = 0; i < ctx->nopts; i++)
        if (strcmp(ctx->opts[i].key, name) == 0)
            break;
    if (i == ctx->nopts) {
        if (i == FH_MAX_OPTS)
            fail_msg("more than %d options", FH_MAX_OPTS);
        ctx->opts[ctx->nopts++].key = fh_xstrdup(name);
    }
    free(ctx->opts[i].value);
    ctx->opts[i].value = value != NULL ? fh_xstrdup(value) : NULL;
}

/* The text of option name (set, else the default; may be NULL) after
 * checking that it is declared with type (or, for strings, as an enum). */
static const char *fh_opt_text(struct ferry_ctx *ctx, const char *name,
                               int type)
{
    const struct ferry_option *o = fh_decl(fh_check(ctx), name);

    if (o->type != type &&
        !(type == FERRY_OPT_STRING && o->type == FERRY_OPT_ENUM))
        fail_msg("[%s] option %s has type %d, read as type %d", ctx->instance,
                 name, o->type, type);
    for (int i = 0; i < ctx->nopts; i++)
        if (strcmp(ctx->opts[i].key, name) == 0)
            return ctx->opts[i].value;
    return o->def;
}

/* A parsed option value; the member depends on the option's type. */
union fh_value {
    int64_t i;  /* FERRY_OPT_INT */
    int b;      /* FERRY_OPT_BOOL */
    uint64_t u; /* FERRY_OPT_DURATION (ms), FERRY_OPT_SIZE (bytes) */
    double d;   /* FERRY_OPT_DOUBLE */
};

/* The value of option name read as type (0 when it has none). */
static union fh_value fh_opt_value(struct ferry_ctx *ctx, const char *name,
                                   int type)
{
    const char *v = fh_opt_text(ctx, name, type);
    union fh_value x;
    int rc = 0;

    memset(&x, 0, sizeof(x));
    if (v == NULL)
        return x;
    if (type == FERRY_OPT_INT)
        rc = config_parse_int(v, &x.i);
    else if (type == FERRY_OPT_BOOL)
        rc = config_parse_bool(v, &x.b);
    else if (type == FERRY_OPT_DURATION)
        rc = config_parse_duration_ms(v, &x.u);
    else if (type == FERRY_OPT_SIZE)
        rc = config_parse_size(v, &x.u);
    else
        rc = config_parse_double(v, &x.d);
    if (rc != 0)
        fail_msg("[%s] option %s: cannot parse '%s'", ctx->instance, name, v);
    return x;
}

/* ---- the host functions ------------------------------------------------- */

static void fh_log(struct ferry_ctx *ctx, int level, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    fh_check(ctx);
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (fh_verbose())
        fprintf(stderr, "  [%s %d] %s\n", ctx->instance, level, buf);
    pthread_mutex_lock(&fh.lock);
    if (ctx->nlines == ctx->linecap) {
        ctx->linecap = ctx->linecap ? 2 * ctx->linecap : 32;
        ctx->lines =
            fh_xrealloc(ctx->lines, (size_t)ctx->linecap * sizeof(*ctx->lines));
    }
    ctx->lines[ctx->nlines].level = level;
    ctx->lines[ctx->nlines++].text = fh_xstrdup(buf);
    pthread_mutex_unlock(&fh.lock);
}

static int fh_log_enabled(struct ferry_ctx *ctx, int level)
{
    int min;

    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    min = fh.log_level;
    pthread_mutex_unlock(&fh.lock);
    return level >= min || fh_verbose();
}

static void *fh_alloc(size_t size)
{
    return fh_xrealloc(NULL, size);
}

static void *fh_realloc_fn(void *ptr, size_t size)
{
    return fh_xrealloc(ptr, size);
}

static void fh_free(void *ptr)
{
    free(ptr);
}

static char *fh_strdup(const char *s)
{
    return fh_xstrdup(s);
}

FH_API uint64_t fh_now_ns(void)
{
    if (__atomic_load_n(&fh.fake_clock, __ATOMIC_ACQUIRE))
        return __atomic_load_n(&fh.now, __ATOMIC_RELAXED);
    return clock_now_ns();
}

static int64_t fh_realtime_ms(void)
{
    return clock_realtime_ms();
}

static const char *fh_opt_str(struct ferry_ctx *ctx, const char *name)
{
    return fh_opt_text(ctx, name, FERRY_OPT_STRING);
}

static int64_t fh_opt_int(struct ferry_ctx *ctx, const char *name)
{
    return fh_opt_value(ctx, name, FERRY_OPT_INT).i;
}

static int fh_opt_bool(struct ferry_ctx *ctx, const char *name)
{
    return fh_opt_value(ctx, name, FERRY_OPT_BOOL).b;
}

static uint64_t fh_opt_duration_ms(struct ferry_ctx *ctx, const char *name)
{
    return fh_opt_value(ctx, name, FERRY_OPT_DURATION).u;
}

static uint64_t fh_opt_size(struct ferry_ctx *ctx, const char *name)
{
    return fh_opt_value(ctx, name, FERRY_OPT_SIZE).u;
}

static double fh_opt_double(struct ferry_ctx *ctx, const char *name)
{
    return fh_opt_value(ctx, name, FERRY_OPT_DOUBLE).d;
}

/* Splits at commas and trims blanks around items, dropping empty ones, as
 * the core's configuration does. */
static size_t fh_opt_list(struct ferry_ctx *ctx, const char *name,
                          const char *const **items)
{
    const char *v = fh_opt_text(ctx, name, FERRY_OPT_LIST);
    const char *p = v != NULL ? v : "";
    char **list = fh_xrealloc(NULL, sizeof(*list));
    size_t n = 0;

    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p;

        while (b < end && (*b == ' ' || *b == '\t'))
            b++;
        while (end > b && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end > b) {
            list = fh_xrealloc(list, (n + 2) * sizeof(*list));
            list[n] = strndup(b, (size_t)(end - b));
            if (list[n++] == NULL)
                abort();
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    list[n] = NULL;
    pthread_mutex_lock(&fh.lock);
    ctx->lists =
        fh_xrealloc(ctx->lists, (ctx->nlists + 1) * sizeof(*ctx->lists));
    ctx->lists[ctx->nlists++] = list;
    pthread_mutex_unlock(&fh.lock);
    *items = (const char *const *)list;
    return n;
}

static int fh_opt_is_set(struct ferry_ctx *ctx, const char *name)
{
    fh_decl(fh_check(ctx), name);
    for (int i = 0; i < ctx->nopts; i++)
        if (strcmp(ctx->opts[i].key, name) == 0)
            return 1;
    return 0;
}

static const char *fh_instance_name(struct ferry_ctx *ctx)
{
    return fh_check(ctx)->instance;
}

/* Copies m; the caller holds fh.lock. */
static void fh_record(const struct ferry_msg *m)
{
    struct fh_msg *r = calloc(1, sizeof(*r));

    if (r == NULL)
        abort();
    if (fh.nmsgs == fh.msgcap) {
        fh.msgcap = fh.msgcap ? 2 * fh.msgcap : 256;
        fh.msgs = fh_xrealloc(fh.msgs, fh.msgcap * sizeof(*fh.msgs));
    }
    r->op = m->op;
    r->flags = m->flags;
    r->entity_type = fh_xstrdup(m->entity_type);
    r->entity_id = fh_xstrdup(m->entity_id ? m->entity_id : "");
    r->payload = strndup(m->payload ? m->payload : "", m->payload_len);
    if (r->payload == NULL)
        abort();
    r->payload_len = m->payload_len;
    r->nkeys = m->nkeys;
    r->pos = m->pos;
    fh.msgs[fh.nmsgs++] = r;
}

static int fh_emit(struct ferry_ctx *ctx, const struct ferry_msg *m)
{
    int rc;

    fh_check(ctx);
    assert_non_null(m->entity_type);
    pthread_mutex_lock(&fh.lock);
    rc = fh.verdict;
    if (rc == FERRY_OK)
        fh_record(m);
    else if (rc == FERRY_WOULD_BLOCK)
        fh.refused++;
    pthread_mutex_unlock(&fh.lock);
    return rc;
}

static int fh_emit_wait(struct ferry_ctx *ctx, const struct ferry_msg *m,
                        uint64_t timeout_ms)
{
    uint64_t deadline;
    int rc;

    fh_check(ctx);
    assert_non_null(m->entity_type);
    pthread_mutex_lock(&fh.lock);
    if (timeout_ms == 0 && fh.verdict == FERRY_WOULD_BLOCK) {
        fh.waited_forever = 1;
        timeout_ms = FH_FOREVER_MS;
    }
    deadline = clock_now_ns() + timeout_ms * 1000000ull;
    while (fh.verdict == FERRY_WOULD_BLOCK) {
        struct timespec ts = clock_ts(deadline);

        if (pthread_cond_timedwait(&fh.cond, &fh.lock, &ts) != 0 &&
            fh.verdict == FERRY_WOULD_BLOCK) {
            pthread_mutex_unlock(&fh.lock);
            return FERRY_TIMEDOUT;
        }
    }
    rc = fh.verdict;
    if (rc == FERRY_OK)
        fh_record(m);
    pthread_mutex_unlock(&fh.lock);
    return rc;
}

static void fh_committed(struct ferry_ctx *ctx, struct ferry_pos *out)
{
    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    *out = fh.committed;
    pthread_mutex_unlock(&fh.lock);
}

static void *fh_timer_main(void *arg)
{
    struct ferry_timer *t = arg;

    for (;;) {
        for (uint64_t slept = 0; slept < t->period_ms; slept += 10) {
            struct timespec ts = {0, 10000000L};

            if (__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE))
                return NULL;
            nanosleep(&ts, NULL);
        }
        t->cb(t->arg);
    }
}

static struct ferry_timer *fh_timer_start(struct ferry_ctx *ctx,
                                          uint64_t period_ms,
                                          void (*cb)(void *arg), void *arg)
{
    struct ferry_timer *t = calloc(1, sizeof(*t));

    fh_check(ctx);
    if (t == NULL)
        abort();
    t->period_ms = period_ms;
    t->cb = cb;
    t->arg = arg;
    if (pthread_create(&t->thread, NULL, fh_timer_main, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static void fh_timer_stop(struct ferry_timer *t)
{
    if (t == NULL)
        return;
    __atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
    pthread_join(t->thread, NULL);
    free(t);
}

static struct ferry_metric *fh_metric_register(struct ferry_ctx *ctx, int type,
                                               const char *name,
                                               const char *help,
                                               const char *const *labels)
{
    char lab[256] = "";
    struct ferry_metric *m = NULL;
    fh_metric_hook_fn hook;
    int clash = 0;
    size_t i;

    fh_check(ctx);
    for (i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        size_t len = strlen(lab);

        snprintf(lab + len, sizeof(lab) - len, "%s%s=%s", len ? "," : "",
                 labels[i], labels[i + 1]);
    }
    pthread_mutex_lock(&fh.lock);
    hook = fh.metric_hook;
    pthread_mutex_unlock(&fh.lock);
    if (hook != NULL)
        hook(type, name, lab);
    pthread_mutex_lock(&fh.lock);
    for (i = 0; i < fh.nmetrics && m == NULL; i++) {
        if (strcmp(fh.metrics[i]->name, name) != 0)
            continue;
        clash |= fh.metrics[i]->type != type;
        if (strcmp(fh.metrics[i]->labels, lab) == 0)
            m = fh.metrics[i];
    }
    if (m == NULL && !clash) {
        if (fh.nmetrics == fh.metriccap) {
            fh.metriccap = fh.metriccap ? 2 * fh.metriccap : 32;
            fh.metrics =
                fh_xrealloc(fh.metrics, fh.metriccap * sizeof(*fh.metrics));
        }
        m = calloc(1, sizeof(*m));
        if (m == NULL)
            abort();
        m->type = type;
        m->name = fh_xstrdup(name);
        m->labels = fh_xstrdup(lab);
        fh.metrics[fh.nmetrics++] = m;
    }
    pthread_mutex_unlock(&fh.lock);
    if (clash)
        fail_msg("metric %s registered again with another type", name);
    return m;
}

/* Applies one update after checking it suits m's type (ok). */
static void fh_metric_change(struct ferry_metric *m, int ok, const char *what,
                             double v, int set)
{
    if (!ok)
        fail_msg("metric %s{%s} of type %d: %s %g", m->name, m->labels, m->type,
                 what, v);
    pthread_mutex_lock(&fh.lock);
    if (set)
        m->value = v;
    else
        m->value += v;
    pthread_mutex_unlock(&fh.lock);
}

static void fh_metric_add(struct ferry_metric *m, double v)
{
    assert_non_null(m);
    fh_metric_change(m,
                     m->type == FERRY_METRIC_GAUGE ||
                         (m->type == FERRY_METRIC_COUNTER && v >= 0),
                     "add", v, 0);
}

static void fh_metric_set(struct ferry_metric *m, double v)
{
    assert_non_null(m);
    fh_metric_change(m, m->type == FERRY_METRIC_GAUGE, "set", v, 1);
}

static void fh_metric_observe(struct ferry_metric *m, double v)
{
    assert_non_null(m);
    fh_metric_change(m, m->type == FERRY_METRIC_HISTOGRAM, "observe", 1, 0);
}

/* The entry for key in kv[0..n), NULL when none; the caller holds
 * fh.lock. */
static struct fh_kv *fh_kv_find(struct fh_kv *kv, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return &kv[i];
    return NULL;
}

/* Publishes key (with value or state) in kv[0..*n); drops it when the
 * table is full. */
static void fh_set_kv(struct ferry_ctx *ctx, struct fh_kv *kv, int *n,
                      const char *key, const char *value, int state)
{
    struct fh_kv *e;

    pthread_mutex_lock(&fh.lock);
    e = fh_kv_find(kv, *n, key);
    if (e == NULL && *n < FH_MAX_PUBLISHED) {
        e = &kv[(*n)++];
        e->key = fh_xstrdup(key);
    }
    if (e != NULL) {
        fh_keep(ctx, e->value);
        e->value = value != NULL ? fh_xstrdup(value) : NULL;
        e->state = state;
    }
    pthread_mutex_unlock(&fh.lock);
}

static void fh_set_component(struct ferry_ctx *ctx, const char *component,
                             int state)
{
    fh_check(ctx);
    fh_set_kv(ctx, ctx->components, &ctx->ncomponents, component, NULL, state);
}

static void fh_set_ready(struct ferry_ctx *ctx, int ready)
{
    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    ctx->ready = ready;
    pthread_mutex_unlock(&fh.lock);
}

static void fh_set_info(struct ferry_ctx *ctx, const char *key,
                        const char *value)
{
    fh_check(ctx);
    fh_set_kv(ctx, ctx->infos, &ctx->ninfos, key, value, 0);
}

static void fh_request_stop(struct ferry_ctx *ctx, int exit_code,
                            const char *reason)
{
    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    ctx->stop_code = exit_code;
    fh_keep(ctx, ctx->stop_reason);
    ctx->stop_reason = fh_xstrdup(reason ? reason : "");
    pthread_mutex_unlock(&fh.lock);
}

FH_API const struct ferry_host fh_host = {
    .struct_size = sizeof(struct ferry_host),
    .abi_minor = FERRY_ABI_MINOR,
    .log = fh_log,
    .log_enabled = fh_log_enabled,
    .alloc = fh_alloc,
    .realloc = fh_realloc_fn,
    .free = fh_free,
    .strdup = fh_strdup,
    .now_ns = fh_now_ns,
    .realtime_ms = fh_realtime_ms,
    .opt_str = fh_opt_str,
    .opt_int = fh_opt_int,
    .opt_bool = fh_opt_bool,
    .opt_duration_ms = fh_opt_duration_ms,
    .opt_size = fh_opt_size,
    .opt_double = fh_opt_double,
    .opt_list = fh_opt_list,
    .opt_is_set = fh_opt_is_set,
    .instance_name = fh_instance_name,
    .emit = fh_emit,
    .emit_wait = fh_emit_wait,
    .committed = fh_committed,
    .timer_start = fh_timer_start,
    .timer_stop = fh_timer_stop,
    .metric = fh_metric_register,
    .metric_add = fh_metric_add,
    .metric_set = fh_metric_set,
    .metric_observe = fh_metric_observe,
    .set_component = fh_set_component,
    .set_ready = fh_set_ready,
    .set_info = fh_set_info,
    .request_stop = fh_request_stop,
};

/* ---- what the test sets ------------------------------------------------- */

/* Switches now_ns() to the fake clock and sets it to ns. */
FH_API void fh_clock_set(uint64_t ns)
{
    __atomic_store_n(&fh.now, ns, __ATOMIC_RELAXED);
    __atomic_store_n(&fh.fake_clock, 1, __ATOMIC_RELEASE);
}

/* Moves the fake clock forward by ns. */
FH_API void fh_clock_advance(uint64_t ns)
{
    __atomic_add_fetch(&fh.now, ns, __ATOMIC_RELAXED);
}

/* log_enabled() answers nonzero from level up (all levels by default, and
 * always with VERBOSE or TEST_VERBOSE set, which also echo every line to
 * stderr). log() captures every line whatever its level. */
FH_API void fh_set_log_level(int level)
{
    pthread_mutex_lock(&fh.lock);
    fh.log_level = level;
    pthread_mutex_unlock(&fh.lock);
}

/* Calls hook(type, name, labels) on every metric registration. */
FH_API void fh_metric_hook(fh_metric_hook_fn hook)
{
    pthread_mutex_lock(&fh.lock);
    fh.metric_hook = hook;
    pthread_mutex_unlock(&fh.lock);
}

/* What emit() and emit_wait() answer from now on: FERRY_OK (the default),
 * FERRY_WOULD_BLOCK (full: see the top of this file) or any failure. */
FH_API void fh_emit_verdict(int verdict)
{
    pthread_once(&fh.once, fh_init_once);
    pthread_mutex_lock(&fh.lock);
    fh.verdict = verdict;
    pthread_cond_broadcast(&fh.cond);
    pthread_mutex_unlock(&fh.lock);
}

/* What committed() stores from now on. */
FH_API void fh_set_committed(struct ferry_pos pos)
{
    pthread_mutex_lock(&fh.lock);
    fh.committed = pos;
    pthread_mutex_unlock(&fh.lock);
}

/* ---- what the test reads back ------------------------------------------- */

/* *p read under fh.lock. */
static int fh_locked_int(const int *p)
{
    int v;

    pthread_mutex_lock(&fh.lock);
    v = *p;
    pthread_mutex_unlock(&fh.lock);
    return v;
}

/* The number of lines ctx logged. */
FH_API int fh_nlogs(struct ferry_ctx *ctx)
{
    return fh_locked_int(&fh_check(ctx)->nlines);
}

/* A copy of line i of ctx; fails when there is none. */
static struct fh_line fh_line_at(struct ferry_ctx *ctx, int i)
{
    struct fh_line l = {0, NULL};
    int n;

    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    n = ctx->nlines;
    if (i >= 0 && i < n)
        l = ctx->lines[i];
    pthread_mutex_unlock(&fh.lock);
    if (l.text == NULL)
        fail_msg("[%s] logged %d lines, no line %d", ctx->instance, n, i);
    return l;
}

/* Line i (from 0) that ctx logged, without the instance prefix; fails when
 * there is no such line. Valid until the context is freed. */
FH_API const char *fh_log_line(struct ferry_ctx *ctx, int i)
{
    return fh_line_at(ctx, i).text;
}

/* The level of line i. */
FH_API int fh_log_line_level(struct ferry_ctx *ctx, int i)
{
    return fh_line_at(ctx, i).level;
}

/* Forgets the lines ctx logged so far (and invalidates fh_log_line()'s
 * answers for them). */
FH_API void fh_log_clear(struct ferry_ctx *ctx)
{
    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    for (int i = 0; i < ctx->nlines; i++)
        free(ctx->lines[i].text);
    ctx->nlines = 0;
    pthread_mutex_unlock(&fh.lock);
}

/* Nonzero when a line ctx logged contains needle. */
FH_API int fh_logged(struct ferry_ctx *ctx, const char *needle)
{
    int hit = 0;

    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    for (int i = 0; i < ctx->nlines && !hit; i++)
        hit = strstr(ctx->lines[i].text, needle) != NULL;
    pthread_mutex_unlock(&fh.lock);
    return hit;
}

/* The last state ctx published for component, FERRY_COMPONENT_UNKNOWN
 * when none. */
FH_API int fh_component(struct ferry_ctx *ctx, const char *component)
{
    struct fh_kv *e;
    int state;

    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    e = fh_kv_find(ctx->components, ctx->ncomponents, component);
    state = e != NULL ? e->state : FERRY_COMPONENT_UNKNOWN;
    pthread_mutex_unlock(&fh.lock);
    return state;
}

/* The last set_ready() value of ctx, -1 when it never called it. */
FH_API int fh_ready(struct ferry_ctx *ctx)
{
    return fh_locked_int(&fh_check(ctx)->ready);
}

/* The last value ctx published for key, "" when none. Valid until the
 * context is freed. */
FH_API const char *fh_info(struct ferry_ctx *ctx, const char *key)
{
    struct fh_kv *e;
    const char *v;

    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    e = fh_kv_find(ctx->infos, ctx->ninfos, key);
    v = e != NULL && e->value != NULL ? e->value : "";
    pthread_mutex_unlock(&fh.lock);
    return v;
}

/* The exit code ctx asked to stop with, -1 when it did not. */
FH_API int fh_stop_code(struct ferry_ctx *ctx)
{
    return fh_locked_int(&fh_check(ctx)->stop_code);
}

/* The reason ctx gave request_stop(), "" when it did not. */
FH_API const char *fh_stop_reason(struct ferry_ctx *ctx)
{
    const char *r;

    fh_check(ctx);
    pthread_mutex_lock(&fh.lock);
    r = ctx->stop_reason ? ctx->stop_reason : "";
    pthread_mutex_unlock(&fh.lock);
    return r;
}

/* The value of series name{labels} (labels "" for none); fails when it
 * was never registered. */
FH_API double fh_metric(const char *name, const char *labels)
{
    double v = 0;
    int found = 0;

    pthread_mutex_lock(&fh.lock);
    for (size_t i = 0; i < fh.nmetrics && !found; i++) {
        if (strcmp(fh.metrics[i]->name, name) == 0 &&
            strcmp(fh.metrics[i]->labels, labels) == 0) {
            v = fh.metrics[i]->value;
            found = 1;
        }
    }
    pthread_mutex_unlock(&fh.lock);
    if (!found)
        fail_msg("metric %s{%s} not registered", name, labels);
    return v;
}

/* Nonzero when the labels "a=1,b=2" include every pair of want. */
static int fh_labels_include(const char *labels, const char *want)
{
    char have[260], item[260];
    const char *p = want;

    snprintf(have, sizeof(have), ",%s,", labels);
    while (*p != '\0') {
        size_t n = strcspn(p, ",");

        snprintf(item, sizeof(item), ",%.*s,", (int)n, p);
        if (n > 0 && strstr(have, item) == NULL)
            return 0;
        p += n;
        if (*p == ',')
            p++;
    }
    return 1;
}

/* The sum of the series of name whose labels include every pair in labels
 * ("k=v,k=v"; NULL or "" for all series); 0 when there is none. */
FH_API double fh_metric_sum(const char *name, const char *labels)
{
    double v = 0;

    pthread_mutex_lock(&fh.lock);
    for (size_t i = 0; i < fh.nmetrics; i++)
        if (strcmp(fh.metrics[i]->name, name) == 0 &&
            fh_labels_include(fh.metrics[i]->labels, labels ? labels : ""))
            v += fh.metrics[i]->value;
    pthread_mutex_unlock(&fh.lock);
    return v;
}

/* The number of messages emit() and emit_wait() accepted. */
FH_API size_t fh_emitted_count(void)
{
    size_t n;

    pthread_mutex_lock(&fh.lock);
    n = fh.nmsgs;
    pthread_mutex_unlock(&fh.lock);
    return n;
}

/* The copy of accepted message i (from 0); fails when there is none. */
FH_API const struct fh_msg *fh_emitted(size_t i)
{
    const struct fh_msg *m = NULL;
    size_t n;

    pthread_mutex_lock(&fh.lock);
    n = fh.nmsgs;
    if (i < n)
        m = fh.msgs[i];
    pthread_mutex_unlock(&fh.lock);
    if (m == NULL)
        fail_msg("%zu messages emitted, no message %zu", n, i);
    return m;
}

/* How many times emit() answered FERRY_WOULD_BLOCK. */
FH_API unsigned long fh_emit_refused(void)
{
    unsigned long n;

    pthread_mutex_lock(&fh.lock);
    n = fh.refused;
    pthread_mutex_unlock(&fh.lock);
    return n;
}

/* Nonzero when emit_wait() was asked to wait forever while routes were
 * full. */
FH_API int fh_emit_waited_forever(void)
{
    return fh_locked_int(&fh.waited_forever);
}

/* ---- reset -------------------------------------------------------------- */

/* Frees every context, metric and message copy and restores the defaults:
 * real clock, every log level enabled, no hook, verdict FERRY_OK, nothing
 * committed. No plugin may be running. */
FH_API void fh_reset(void)
{
    pthread_once(&fh.once, fh_init_once);
    while (fh.ctxs != NULL)
        fh_ctx_free(fh.ctxs);
    pthread_mutex_lock(&fh.lock);
    for (size_t i = 0; i < fh.nmetrics; i++) {
        free(fh.metrics[i]->name);
        free(fh.metrics[i]->labels);
        free(fh.metrics[i]);
    }
    free(fh.metrics);
    fh.metrics = NULL;
    fh.nmetrics = fh.metriccap = 0;
    for (size_t i = 0; i < fh.nmsgs; i++) {
        free(fh.msgs[i]->entity_type);
        free(fh.msgs[i]->entity_id);
        free(fh.msgs[i]->payload);
        free(fh.msgs[i]);
    }
    free(fh.msgs);
    fh.msgs = NULL;
    fh.nmsgs = fh.msgcap = 0;
    fh.metric_hook = NULL;
    fh.log_level = FERRY_LOG_DEBUG;
    fh.verdict = FERRY_OK;
    fh.refused = 0;
    fh.waited_forever = 0;
    memset(&fh.committed, 0, sizeof(fh.committed));
    __atomic_store_n(&fh.fake_clock, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fh.now, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&fh.lock);
}

/* fh_reset() as a cmocka setup or teardown. */
FH_API int fh_reset_cb(void **state)
{
    (void)state;
    fh_reset();
    return 0;
}

#endif /* FERRY_TESTS_FAKEHOST_H */
