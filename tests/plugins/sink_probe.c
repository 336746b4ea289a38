/*
 * tests/plugins/sink_probe.c: a sink for scheduler tests that checks what
 * sink_check cannot: entity types, barriers across several sinks, the
 * commit position handed with each batch, and write() without a context.
 * Meant for source_mix (payload "<n>", entity id "e<k>", barrier payload
 * "<n> <type>=<count> ...").
 *
 * Checks, each counted in a metric labelled with the instance (sink=NAME):
 *  - test_probe_order_violations_total: a message of an entity that is not
 *    newer than the last one of that (type, entity);
 *  - test_probe_barrier_violations_total: a message emitted before a
 *    barrier arriving after it, a message emitted after a barrier arriving
 *    before it, a barrier that is not alone in its batch, or (for every
 *    probe instance with `expect` set, in this process) fewer messages of
 *    an expected type applied than the barrier says were emitted before it;
 *  - test_probe_null_wctx_total: write() called with a NULL context (open()
 *    failed).
 * And what it saw: test_probe_messages_total, test_probe_controls_total,
 * test_probe_type_total{type}, test_probe_commit_max (largest
 * batch->commit ms), test_probe_checkpoint (last checkpoint ms).
 *
 * Options: delay (sleep per batch), retry (always answer FERRY_RETRY),
 * open_fail (open() fails), init_fail (init() fails), expect (types this
 * sink gets every message of: "*" or a list; empty: no count check),
 * entities.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/plugin.h"

#define PROBE_MAX_TYPES 8
#define PROBE_MAX_INSTANCES 16

struct probe {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    uint64_t delay_ms;
    int retry;
    int open_fail;
    int expect_all;
    const char *const *expect;
    size_t nexpect;
    int64_t nent;
    /* Guarded by probe_lock. */
    char *types[PROBE_MAX_TYPES];
    int64_t count[PROBE_MAX_TYPES];
    int64_t *last; /* [type * nent + entity] */
    int64_t floor; /* payload number of the last barrier */
    int64_t max_seen;
    uint64_t commit_max;
    struct ferry_metric *m_msgs, *m_ctl, *m_order, *m_barrier, *m_null,
        *m_commit, *m_ckpt, *m_type[PROBE_MAX_TYPES];
};

/* Every live instance, so a barrier can check the other sinks too. */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static struct probe *probe_all[PROBE_MAX_INSTANCES];

static const struct ferry_option probe_options[] = {
    {"delay", FERRY_OPT_DURATION, "0", 0, 0, NULL, 0, "sleep per batch"},
    {"retry", FERRY_OPT_BOOL, "false", 0, 0, NULL, 0,
     "answer FERRY_RETRY to every write"},
    {"open_fail", FERRY_OPT_BOOL, "false", 0, 0, NULL, 0,
     "open() fails every time"},
    {"init_fail", FERRY_OPT_BOOL, "false", 0, 0, NULL, 0, "init() fails"},
    {"expect", FERRY_OPT_LIST, "", 0, 0, NULL, 0,
     "types this sink gets every message of (* for all)"},
    {"entities", FERRY_OPT_INT, "10000", 1, 1e7, NULL, 0,
     "entities tracked for order"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static int probe_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                      void **state)
{
    struct probe *p = host->alloc(sizeof(*p));
    size_t slot;

    if (host->opt_bool(ctx, "init_fail")) {
        host->free(p);
        return FERRY_ERROR;
    }
    memset(p, 0, sizeof(*p));
    p->host = host;
    p->ctx = ctx;
    p->delay_ms = host->opt_duration_ms(ctx, "delay");
    p->retry = host->opt_bool(ctx, "retry");
    p->open_fail = host->opt_bool(ctx, "open_fail");
    p->nexpect = host->opt_list(ctx, "expect", &p->expect);
    for (size_t i = 0; i < p->nexpect; i++)
        if (strcmp(p->expect[i], "*") == 0)
            p->expect_all = 1;
    p->nent = host->opt_int(ctx, "entities");
    p->last = host->alloc((size_t)p->nent * PROBE_MAX_TYPES * sizeof(int64_t));
    memset(p->last, 0, (size_t)p->nent * PROBE_MAX_TYPES * sizeof(int64_t));
#define M(field, type, name)                                                   \
    p->field = host->metric(ctx, type, name, name, NULL)
    M(m_msgs, FERRY_METRIC_COUNTER, "test_probe_messages_total");
    M(m_ctl, FERRY_METRIC_COUNTER, "test_probe_controls_total");
    M(m_order, FERRY_METRIC_COUNTER, "test_probe_order_violations_total");
    M(m_barrier, FERRY_METRIC_COUNTER, "test_probe_barrier_violations_total");
    M(m_null, FERRY_METRIC_COUNTER, "test_probe_null_wctx_total");
    M(m_commit, FERRY_METRIC_GAUGE, "test_probe_commit_max");
    M(m_ckpt, FERRY_METRIC_GAUGE, "test_probe_checkpoint");
#undef M
    pthread_mutex_lock(&probe_lock);
    for (slot = 0; slot < PROBE_MAX_INSTANCES && probe_all[slot]; slot++)
        ;
    if (slot < PROBE_MAX_INSTANCES)
        probe_all[slot] = p;
    pthread_mutex_unlock(&probe_lock);
    if (slot == PROBE_MAX_INSTANCES) {
        host->free(p->last);
        host->free(p);
        return FERRY_ERROR;
    }
    *state = p;
    return FERRY_OK;
}

static void probe_fini(void *state)
{
    struct probe *p = state;

    pthread_mutex_lock(&probe_lock);
    for (size_t i = 0; i < PROBE_MAX_INSTANCES; i++)
        if (probe_all[i] == p)
            probe_all[i] = NULL;
    pthread_mutex_unlock(&probe_lock);
    for (size_t i = 0; i < PROBE_MAX_TYPES; i++)
        p->host->free(p->types[i]);
    p->host->free(p->last);
    p->host->free(p);
}

static int probe_open(void *state, unsigned worker, void **wctx)
{
    struct probe *p = state;

    if (p->open_fail)
        return FERRY_ERROR;
    *wctx = p;
    return FERRY_OK;
}

static void probe_close(void *wctx)
{
}

/* probe_lock held. Index of a type name, registered on first sight; -1
 * when the table is full. */
static int probe_type(struct probe *p, const char *name)
{
    for (int i = 0; i < PROBE_MAX_TYPES; i++) {
        if (!p->types[i]) {
            const char *labels[] = {"type", name, NULL};
            p->types[i] = p->host->strdup(name);
            p->m_type[i] = p->host->metric(p->ctx, FERRY_METRIC_COUNTER,
                                           "test_probe_type_total",
                                           "messages by type", labels);
            return i;
        }
        if (strcmp(p->types[i], name) == 0)
            return i;
    }
    return -1;
}

static int probe_expects(const struct probe *p, const char *type)
{
    if (p->expect_all)
        return 1;
    for (size_t i = 0; i < p->nexpect; i++)
        if (strcmp(p->expect[i], type) == 0)
            return 1;
    return 0;
}

/* probe_lock held. Messages of type applied by q so far. */
static int64_t probe_count(struct probe *q, const char *type)
{
    for (int i = 0; i < PROBE_MAX_TYPES && q->types[i]; i++)
        if (strcmp(q->types[i], type) == 0)
            return q->count[i];
    return 0;
}

/* probe_lock held. A barrier "<n> <type>=<count> ...": 0 if it is in
 * place, else 1. */
static int probe_barrier(struct probe *p, const struct ferry_msg *m)
{
    char *end;
    int64_t n = strtoll(m->payload, &end, 10);
    int bad = p->max_seen > n;
    const char *s = end;

    while (*s == ' ') {
        const char *eq = strchr(++s, '=');
        char type[64];
        if (!eq || (size_t)(eq - s) >= sizeof(type))
            return 1;
        memcpy(type, s, (size_t)(eq - s));
        type[eq - s] = '\0';
        int64_t want = strtoll(eq + 1, &end, 10);
        s = end;
        for (size_t i = 0; i < PROBE_MAX_INSTANCES; i++) {
            struct probe *q = probe_all[i];
            if (q && q->nexpect && probe_expects(q, type) &&
                probe_count(q, type) < want)
                bad = 1;
        }
    }
    if (n > p->floor)
        p->floor = n;
    return bad;
}

static int probe_write(void *wctx, struct ferry_batch *b)
{
    struct probe *p = wctx;

    if (!p) {
        /* open() failed; count it on every instance that fails open. */
        pthread_mutex_lock(&probe_lock);
        for (size_t i = 0; i < PROBE_MAX_INSTANCES; i++)
            if (probe_all[i] && probe_all[i]->open_fail)
                probe_all[i]->host->metric_add(probe_all[i]->m_null, 1);
        pthread_mutex_unlock(&probe_lock);
        return FERRY_ERROR;
    }
    if (p->delay_ms) {
        struct timespec ts = {(time_t)(p->delay_ms / 1000),
                              (long)(p->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (p->retry)
        return FERRY_RETRY;

    pthread_mutex_lock(&probe_lock);
    if (b->commit.set && b->commit.ms > p->commit_max) {
        p->commit_max = b->commit.ms;
        p->host->metric_set(p->m_commit, (double)p->commit_max);
    }
    for (uint32_t i = 0; i < b->count; i++) {
        const struct ferry_msg *m = b->msgs[i];
        if (FERRY_OP_IS_CONTROL(m->op)) {
            if (b->count != 1 || probe_barrier(p, m))
                p->host->metric_add(p->m_barrier, 1);
            p->host->metric_add(p->m_ctl, 1);
            continue;
        }
        int64_t n = strtoll(m->payload, NULL, 10);
        int64_t e = strtoll(m->entity_id + 1, NULL, 10);
        int t = probe_type(p, m->entity_type);
        if (n <= p->floor)
            p->host->metric_add(p->m_barrier, 1);
        if (n > p->max_seen)
            p->max_seen = n;
        if (t >= 0) {
            p->count[t]++;
            p->host->metric_add(p->m_type[t], 1);
            if (e >= 0 && e < p->nent) {
                int64_t *last = &p->last[t * p->nent + e];
                if (n <= *last)
                    p->host->metric_add(p->m_order, 1);
                *last = n;
            }
        }
        p->host->metric_add(p->m_msgs, 1);
    }
    pthread_mutex_unlock(&probe_lock);
    return FERRY_OK;
}

static int probe_checkpoint(void *wctx, const struct ferry_pos *pos)
{
    struct probe *p = wctx;

    if (p && pos->set)
        p->host->metric_set(p->m_ckpt, (double)pos->ms);
    return FERRY_OK;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "probe"),
    .version = "1.0.0",
    .description = "test sink: types, barriers across sinks, commits",
    .options = probe_options,
    .init = probe_init,
    .fini = probe_fini,
    .open = probe_open,
    .write = probe_write,
    .checkpoint = probe_checkpoint,
    .close = probe_close,
};
