/*
 * tests/plugins/sink_check.c: a sink for scheduler tests. It checks that
 * every entity's payload numbers arrive in increasing order, and publishes
 * what it saw as metrics the test reads back:
 *   test_sink_messages_total, test_sink_batches_total,
 *   test_sink_order_violations_total, test_sink_duplicates_total,
 *   test_sink_max_batch (gauge), test_sink_last_wait_seconds (gauge: from
 *   the first message's receive time to the write call), and
 *   test_sink_sum_total (sum of payload numbers, to prove nothing is lost).
 * Options: retry_first (answer FERRY_RETRY to the first N calls),
 * delay (sleep per batch), entities (size of the order table).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/plugin.h"

struct check {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    pthread_mutex_t lock;
    int64_t retry_first;
    int64_t calls;
    uint64_t delay_ms;
    int64_t nent;
    int64_t *last; /* last payload number per entity */
    int64_t max_batch;
    struct ferry_metric *m_msgs, *m_batches, *m_viol, *m_dup, *m_max,
        *m_wait, *m_sum, *m_ckpt, *m_barrier, *m_barrier_viol;
    int64_t received;
};

static const struct ferry_option check_options[] = {
    {"retry_first", FERRY_OPT_INT, "0", 0, 1e9, NULL, 0,
     "answer retry to the first N write calls"},
    {"delay", FERRY_OPT_DURATION, "0", 0, 0, NULL, 0, "sleep per batch"},
    {"entities", FERRY_OPT_INT, "100000", 1, 1e8, NULL, 0,
     "entities tracked for order"},
    {"token", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_SECRET,
     "a secret, to test that it is never shown"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static int check_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                      void **state)
{
    struct check *c = host->alloc(sizeof(*c));

    memset(c, 0, sizeof(*c));
    c->host = host;
    c->ctx = ctx;
    pthread_mutex_init(&c->lock, NULL);
    c->retry_first = host->opt_int(ctx, "retry_first");
    c->delay_ms = host->opt_duration_ms(ctx, "delay");
    c->nent = host->opt_int(ctx, "entities");
    c->last = host->alloc((size_t)c->nent * sizeof(int64_t));
    memset(c->last, 0, (size_t)c->nent * sizeof(int64_t));
#define M(field, type, name)                                                 \
    c->field = host->metric(ctx, type, name, name, NULL)
    M(m_msgs, FERRY_METRIC_COUNTER, "test_sink_messages_total");
    M(m_batches, FERRY_METRIC_COUNTER, "test_sink_batches_total");
    M(m_viol, FERRY_METRIC_COUNTER, "test_sink_order_violations_total");
    M(m_dup, FERRY_METRIC_COUNTER, "test_sink_duplicates_total");
    M(m_max, FERRY_METRIC_GAUGE, "test_sink_max_batch");
    M(m_wait, FERRY_METRIC_GAUGE, "test_sink_last_wait_seconds");
    M(m_sum, FERRY_METRIC_COUNTER, "test_sink_sum_total");
    M(m_ckpt, FERRY_METRIC_GAUGE, "test_sink_checkpoint");
    M(m_barrier, FERRY_METRIC_COUNTER, "test_sink_controls_total");
    M(m_barrier_viol, FERRY_METRIC_COUNTER,
      "test_sink_barrier_violations_total");
#undef M
    *state = c;
    return FERRY_OK;
}

static void check_fini(void *state)
{
    struct check *c = state;
    pthread_mutex_destroy(&c->lock);
    c->host->free(c->last);
    c->host->free(c);
}

static int check_open(void *state, unsigned worker, void **wctx)
{
    *wctx = state;
    return FERRY_OK;
}

static int check_write(void *wctx, struct ferry_batch *b)
{
    struct check *c = wctx;

    pthread_mutex_lock(&c->lock);
    int retry = c->calls++ < c->retry_first;
    pthread_mutex_unlock(&c->lock);
    if (c->delay_ms) {
        struct timespec ts = {(time_t)(c->delay_ms / 1000),
                              (long)(c->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (retry)
        return FERRY_RETRY;

    uint64_t now = c->host->now_ns();
    if (b->count && now > b->msgs[0]->recv_ns)
        c->host->metric_set(c->m_wait,
                            (double)(now - b->msgs[0]->recv_ns) / 1e9);
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < b->count; i++) {
        const struct ferry_msg *m = b->msgs[i];
        if (FERRY_OP_IS_CONTROL(m->op)) {
            /* A barrier: everything emitted before it is applied, and it
             * comes alone. */
            if (b->count != 1 || c->received != strtoll(m->payload, NULL, 10))
                c->host->metric_add(c->m_barrier_viol, 1);
            c->host->metric_add(c->m_barrier, 1);
            continue;
        }
        c->received++;
        int64_t n = strtoll(m->payload, NULL, 10);
        int64_t e = strtoll(m->entity_id + 1, NULL, 10);
        if (e >= 0 && e < c->nent) {
            if (n == c->last[e])
                c->host->metric_add(c->m_dup, 1);
            else if (n < c->last[e])
                c->host->metric_add(c->m_viol, 1);
            c->last[e] = n;
        }
        c->host->metric_add(c->m_sum, (double)n);
    }
    if ((int64_t)b->count > c->max_batch) {
        c->max_batch = b->count;
        c->host->metric_set(c->m_max, (double)c->max_batch);
    }
    pthread_mutex_unlock(&c->lock);
    for (uint32_t i = 0; i < b->count; i++)
        if (!FERRY_OP_IS_CONTROL(b->msgs[i]->op))
            c->host->metric_add(c->m_msgs, 1);
    c->host->metric_add(c->m_batches, 1);
    return FERRY_OK;
}

static int check_checkpoint(void *wctx, const struct ferry_pos *pos)
{
    struct check *c = wctx;
    c->host->metric_set(c->m_ckpt, (double)pos->ms);
    return FERRY_OK;
}

static void check_close(void *wctx)
{
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "check"),
    .version = "1.0.0",
    .description = "test sink: checks per-entity order",
    .options = check_options,
    .init = check_init,
    .fini = check_fini,
    .open = check_open,
    .write = check_write,
    .checkpoint = check_checkpoint,
    .close = check_close,
};
