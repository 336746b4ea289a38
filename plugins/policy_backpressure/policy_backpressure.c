/*
 * plugins/policy_backpressure: what a source's message meets when its
 * route channel is full.
 *
 *   block        wait for room: the source stops reading, nothing is lost
 *                (the default, and what the core does without a policy);
 *   coalesce     replace the newest queued message for the same entity
 *                when that keeps the final state (the core decides which
 *                replacements are safe, and blocks when none is);
 *   drop_newest  drop the offered message;
 *   drop_oldest  drop the oldest queued message to make room.
 *
 * The plugin only decides (admit() returns an enum ferry_admit verdict).
 * The core carries it out and counts it (ferry_messages_dropped_total
 * {route,reason}, ferry_messages_coalesced_total{route}); the plugin
 * counts nothing itself, but says in the log, at most once per 10 s per
 * instance, that it is dropping.
 *
 * Watermarks. With high_watermark set (percent of capacity), the drop or
 * coalesce verdict applies from that depth on, and keeps applying until
 * the depth falls below low_watermark (default: the high one), per route.
 * Below that, admit() answers FERRY_ADMIT_BLOCK: "proceed as usual". The
 * core as of ABI 1.0 consults admit() only when a channel is full, so
 * watermarks take effect only once the core also consults it from the
 * high watermark on.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

/* At most one "dropping" log line per instance in this interval. */
#define BP_LOG_INTERVAL_NS 10000000000ull

static const char *const bp_modes[] = {"block", "coalesce", "drop_newest",
                                       "drop_oldest", NULL};

/* bp_modes[i] answers bp_verdicts[i]. */
static const int bp_verdicts[] = {FERRY_ADMIT_BLOCK, FERRY_ADMIT_COALESCE,
                                  FERRY_ADMIT_DROP_NEWEST,
                                  FERRY_ADMIT_DROP_OLDEST};

/* Per-route hysteresis between the watermarks. */
struct bp_route {
    char *name;
    int active; /* reached the high watermark, not yet below the low */
};

struct bp_policy {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    int mode;             /* index into bp_modes */
    unsigned high, low;   /* percent of capacity; 0: unset */
    pthread_mutex_t lock; /* guards everything below */
    struct bp_route *routes;
    size_t nroutes;
    int logged;           /* a "dropping" line was written */
    uint64_t last_log_ns; /* when */
    uint64_t unlogged;    /* drop verdicts since that line */
};

static const struct ferry_option bp_options[] = {
    {.name = "mode",
     .type = FERRY_OPT_ENUM,
     .def = "block",
     .enum_values = bp_modes,
     .description = "when a route channel is full: block (lossless), "
                    "coalesce (keep the newest per entity), drop_newest "
                    "or drop_oldest (counted and logged)"},
    {.name = "high_watermark",
     .type = FERRY_OPT_INT,
     .def = "0",
     .min = 0,
     .max = 100,
     .description = "percent of capacity from which mode applies; 0: only "
                    "when full"},
    {.name = "low_watermark",
     .type = FERRY_OPT_INT,
     .def = "0",
     .min = 0,
     .max = 100,
     .description = "percent of capacity below which mode stops applying "
                    "again; 0: the high watermark"},
    {.name = NULL},
};

/* Slots for a percentage of capacity, rounded up, at least 1. */
static size_t bp_slots(size_t capacity, unsigned percent)
{
    size_t n = (capacity * percent + 99) / 100;

    return n ? n : 1;
}

/* Main thread. Validates the watermarks; no I/O. */
static int bp_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                   void **state)
{
    const char *mode = host->opt_str(ctx, "mode");
    int64_t high = host->opt_int(ctx, "high_watermark");
    int64_t low = host->opt_int(ctx, "low_watermark");
    struct bp_policy *p;
    int m = -1;

    for (int i = 0; mode && bp_modes[i]; i++) {
        if (strcmp(mode, bp_modes[i]) == 0)
            m = i;
    }
    if (m < 0) {
        host->log(ctx, FERRY_LOG_ERROR, "unknown mode '%s'", mode ? mode : "");
        return FERRY_EINVAL;
    }
    if (high < 0 || high > 100 || low < 0 || low > 100) {
        host->log(ctx, FERRY_LOG_ERROR, "watermarks are percentages 0-100");
        return FERRY_EINVAL;
    }
    if (low > 0 && high == 0) {
        host->log(ctx, FERRY_LOG_ERROR,
                  "low_watermark %lld needs high_watermark", (long long)low);
        return FERRY_EINVAL;
    }
    if (low > high) {
        host->log(ctx, FERRY_LOG_ERROR,
                  "low_watermark %lld is above high_watermark %lld",
                  (long long)low, (long long)high);
        return FERRY_EINVAL;
    }
    p = host->alloc(sizeof(*p));
    memset(p, 0, sizeof(*p));
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        host->free(p);
        return FERRY_ENOMEM;
    }
    p->host = host;
    p->ctx = ctx;
    p->mode = m;
    p->high = (unsigned)high;
    p->low = low ? (unsigned)low : (unsigned)high;
    *state = p;
    return FERRY_OK;
}

/* Main thread, after the last admit(). */
static void bp_fini(void *state)
{
    struct bp_policy *p = state;

    for (size_t i = 0; i < p->nroutes; i++)
        p->host->free(p->routes[i].name);
    p->host->free(p->routes);
    pthread_mutex_destroy(&p->lock);
    p->host->free(p);
}

/* Lock held. The hysteresis entry of route (created on first use). */
static struct bp_route *bp_route(struct bp_policy *p, const char *route)
{
    struct bp_route *r;

    for (size_t i = 0; i < p->nroutes; i++) {
        if (strcmp(p->routes[i].name, route) == 0)
            return &p->routes[i];
    }
    p->routes =
        p->host->realloc(p->routes, (p->nroutes + 1) * sizeof(*p->routes));
    if (!p->routes)
        return NULL; /* unreachable: the host aborts on exhaustion */
    r = &p->routes[p->nroutes++];
    r->name = p->host->strdup(route);
    r->active = 0;
    return r;
}

/* Lock held. Nonzero when the mode applies at this depth. */
static int bp_applies(struct bp_policy *p, const struct ferry_admission *a)
{
    struct bp_route *r;

    /* The core asks for every message; without watermarks the mode
     * applies only to a full channel. */
    if (a->depth >= a->capacity)
        return 1;
    if (p->high == 0)
        return 0;
    r = bp_route(p, a->route ? a->route : "");
    if (!r)
        return 1;
    if (a->depth >= bp_slots(a->capacity, p->high))
        r->active = 1;
    else if (a->depth < bp_slots(a->capacity, p->low))
        r->active = 0;
    return r->active;
}

/* Lock held. The rate-limited "dropping" line. */
static void bp_log_drop(struct bp_policy *p, const struct ferry_admission *a,
                        int verdict)
{
    uint64_t now = p->host->now_ns();
    char more[64] = "";

    if (p->logged && now - p->last_log_ns < BP_LOG_INTERVAL_NS) {
        p->unlogged++;
        return;
    }
    if (p->unlogged > 0)
        snprintf(more, sizeof(more), " (%llu more since the last line)",
                 (unsigned long long)p->unlogged);
    p->host->log(p->ctx, FERRY_LOG_WARN,
                 "route %s at %zu of %zu messages: dropping the %s message "
                 "(mode %s)%s",
                 a->route ? a->route : "?", a->depth, a->capacity,
                 verdict == FERRY_ADMIT_DROP_NEWEST ? "newest" : "oldest",
                 bp_modes[p->mode], more);
    p->logged = 1;
    p->last_log_ns = now;
    p->unlogged = 0;
}

/* Source threads, concurrently. A route channel is full (or, with a core
 * that supports watermarks, at or above the high watermark). */
static int bp_admit(void *state, const struct ferry_admission *a)
{
    struct bp_policy *p = state;
    int verdict = bp_verdicts[p->mode];

    if (verdict == FERRY_ADMIT_BLOCK)
        return verdict;
    pthread_mutex_lock(&p->lock);
    if (!bp_applies(p, a))
        verdict = FERRY_ADMIT_BLOCK;
    else if (verdict == FERRY_ADMIT_DROP_NEWEST ||
             verdict == FERRY_ADMIT_DROP_OLDEST)
        bp_log_drop(p, a, verdict);
    pthread_mutex_unlock(&p->lock);
    return verdict;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_POLICY, "backpressure"),
    .version = "1.0.0",
    .description = "what to do when a route channel is full: block, "
                   "coalesce, drop_newest or drop_oldest",
    .options = bp_options,
    .init = bp_init,
    .fini = bp_fini,
    .admit = bp_admit,
};
