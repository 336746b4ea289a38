/*
 * tests/plugins/source_mix.c: a source for scheduler tests that needs more
 * than source_gen: several entity types, barriers that say how many
 * messages of each type came before them, and the emit() + wakeup() way of
 * waiting for room.
 *
 * Message n (1..count) has entity type types[n % ntypes], entity id
 * "e<n % entities>", payload "<n>" and stream position n-0. With
 * control_every = K, a LOAD_END control message follows every K-th
 * message; its payload is "<n> <type>=<count> ..." with the number of
 * messages of each type emitted before it.
 *
 * mode = wait: host->emit_wait() (blocks for room).
 * mode = wakeup: host->emit(); on FERRY_WOULD_BLOCK it waits for wakeup()
 * at most wakeup_timeout. A wait that times out counts as a lost wakeup
 * (test_mix_lost_wakeups_total); after max_lost of them the source gives up
 * and finishes.
 *
 * Metrics: test_mix_emitted_total (messages accepted, controls excluded),
 * test_mix_blocked_total (FERRY_WOULD_BLOCK answers),
 * test_mix_lost_wakeups_total.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ferry/plugin.h"

#define MIX_MAX_TYPES 8

struct mix {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    int64_t count;
    int64_t entities;
    int64_t control_every;
    int wakeup_mode;
    uint64_t wakeup_timeout_ms;
    int64_t max_lost;
    int linger;
    const char *const *types;
    size_t ntypes;
    int64_t per_type[MIX_MAX_TYPES];
    atomic_int stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int woken;
    struct ferry_metric *m_emitted, *m_blocked, *m_lost;
};

static const char *const mix_modes[] = {"wait", "wakeup", NULL};

static const struct ferry_option mix_options[] = {
    {"count", FERRY_OPT_INT, "1000", 0, 1e12, NULL, 0, "messages to emit"},
    {"entities", FERRY_OPT_INT, "10", 1, 1e9, NULL, 0, "distinct entities"},
    {"types", FERRY_OPT_LIST, "item", 0, 0, NULL, 0,
     "entity types, used in turn"},
    {"control_every", FERRY_OPT_INT, "0", 0, 1e12, NULL, 0,
     "a LOAD_END barrier after every N messages"},
    {"mode", FERRY_OPT_ENUM, "wait", 0, 0, mix_modes, 0,
     "wait: emit_wait(); wakeup: emit() and wait for wakeup()"},
    {"wakeup_timeout", FERRY_OPT_DURATION, "1s", 1, 60000, NULL, 0,
     "longest wait for wakeup() before counting it lost"},
    {"max_lost", FERRY_OPT_INT, "3", 1, 1e9, NULL, 0,
     "give up after this many lost wakeups"},
    {"linger", FERRY_OPT_BOOL, "false", 0, 0, NULL, 0,
     "keep running after the last message"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static int mix_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                    void **state)
{
    struct mix *g = host->alloc(sizeof(*g));
    pthread_condattr_t ca;

    memset(g, 0, sizeof(*g));
    g->host = host;
    g->ctx = ctx;
    g->count = host->opt_int(ctx, "count");
    g->entities = host->opt_int(ctx, "entities");
    g->control_every = host->opt_int(ctx, "control_every");
    g->wakeup_mode = strcmp(host->opt_str(ctx, "mode"), "wakeup") == 0;
    g->wakeup_timeout_ms = host->opt_duration_ms(ctx, "wakeup_timeout");
    g->max_lost = host->opt_int(ctx, "max_lost");
    g->linger = host->opt_bool(ctx, "linger");
    g->ntypes = host->opt_list(ctx, "types", &g->types);
    if (g->ntypes == 0 || g->ntypes > MIX_MAX_TYPES) {
        host->log(ctx, FERRY_LOG_ERROR, "types: 1 to %d names", MIX_MAX_TYPES);
        host->free(g);
        return FERRY_EINVAL;
    }
    atomic_init(&g->stop, 0);
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cond, &ca);
    pthread_condattr_destroy(&ca);
    g->m_emitted = host->metric(ctx, FERRY_METRIC_COUNTER,
                                "test_mix_emitted_total", "emitted", NULL);
    g->m_blocked = host->metric(ctx, FERRY_METRIC_COUNTER,
                                "test_mix_blocked_total", "blocked", NULL);
    g->m_lost = host->metric(ctx, FERRY_METRIC_COUNTER,
                             "test_mix_lost_wakeups_total", "lost", NULL);
    *state = g;
    return FERRY_OK;
}

static void mix_fini(void *state)
{
    struct mix *g = state;

    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    g->host->free(g);
}

/* Waits for wakeup() (or stop) at most wakeup_timeout. Returns 0 when
 * woken, 1 on a timeout. */
static int mix_wait_wakeup(struct mix *g)
{
    struct timespec ts;
    int timed_out = 0;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(g->wakeup_timeout_ms / 1000);
    ts.tv_nsec += (long)(g->wakeup_timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->lock);
    while (!g->woken && !atomic_load(&g->stop) && !timed_out)
        timed_out = pthread_cond_timedwait(&g->cond, &g->lock, &ts) != 0;
    timed_out = timed_out && !g->woken && !atomic_load(&g->stop);
    pthread_mutex_unlock(&g->lock);
    return timed_out;
}

/* Offers m until it is taken. Returns FERRY_OK, FERRY_CLOSED, or
 * FERRY_TIMEDOUT once max_lost wakeups were lost. */
static int mix_offer(struct mix *g, const struct ferry_msg *m, int64_t *lost)
{
    if (!g->wakeup_mode)
        return g->host->emit_wait(g->ctx, m, 0);
    for (;;) {
        /* A wakeup that arrives while emit() runs counts: clear first. */
        pthread_mutex_lock(&g->lock);
        g->woken = 0;
        pthread_mutex_unlock(&g->lock);
        int rc = g->host->emit(g->ctx, m);
        if (rc != FERRY_WOULD_BLOCK)
            return rc;
        g->host->metric_add(g->m_blocked, 1);
        if (atomic_load(&g->stop))
            return FERRY_CLOSED;
        if (mix_wait_wakeup(g)) {
            g->host->metric_add(g->m_lost, 1);
            if (++*lost >= g->max_lost)
                return FERRY_TIMEDOUT;
        }
    }
}

static int mix_run(void *state)
{
    struct mix *g = state;
    int64_t lost = 0;
    char id[32], num[32], ctl[32 + MIX_MAX_TYPES * 80];

    for (int64_t n = 1; n <= g->count && !atomic_load(&g->stop); n++) {
        size_t t = (size_t)(n % (int64_t)g->ntypes);
        int len = snprintf(num, sizeof(num), "%lld", (long long)n);
        snprintf(id, sizeof(id), "e%lld", (long long)(n % g->entities));
        struct ferry_msg m = {
            .struct_size = sizeof(m),
            .op = FERRY_OP_FULL,
            .entity_type = g->types[t],
            .entity_id = id,
            .order_key = "",
            .payload = num,
            .payload_len = (size_t)len,
            .pos = {(uint64_t)n, 0, 1},
        };
        int rc = mix_offer(g, &m, &lost);
        if (rc == FERRY_TIMEDOUT)
            return FERRY_OK;
        if (rc != FERRY_OK)
            return rc == FERRY_CLOSED ? FERRY_OK : rc;
        g->per_type[t]++;
        g->host->metric_add(g->m_emitted, 1);
        if (!g->control_every || n % g->control_every != 0)
            continue;
        len = snprintf(ctl, sizeof(ctl), "%lld", (long long)n);
        for (size_t i = 0; i < g->ntypes; i++)
            len += snprintf(ctl + len, sizeof(ctl) - (size_t)len, " %.63s=%lld",
                            g->types[i], (long long)g->per_type[i]);
        struct ferry_msg c = {
            .struct_size = sizeof(c),
            .op = FERRY_OP_LOAD_END,
            .entity_type = "control",
            .entity_id = "",
            .order_key = "control",
            .payload = ctl,
            .payload_len = (size_t)len,
        };
        rc = mix_offer(g, &c, &lost);
        if (rc == FERRY_TIMEDOUT)
            return FERRY_OK;
        if (rc != FERRY_OK)
            return rc == FERRY_CLOSED ? FERRY_OK : rc;
    }
    while (g->linger && !atomic_load(&g->stop)) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return FERRY_OK;
}

static void mix_stop(void *state)
{
    struct mix *g = state;

    pthread_mutex_lock(&g->lock);
    atomic_store(&g->stop, 1);
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void mix_wakeup(void *state)
{
    struct mix *g = state;

    pthread_mutex_lock(&g->lock);
    g->woken = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SOURCE, "mix"),
    .version = "1.0.0",
    .description = "test source: several entity types, counted barriers",
    .options = mix_options,
    .init = mix_init,
    .fini = mix_fini,
    .run = mix_run,
    .stop = mix_stop,
    .wakeup = mix_wakeup,
};
