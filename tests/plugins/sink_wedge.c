/*
 * tests/plugins/sink_wedge.c: a sink that wedges on purpose, for the
 * liveness watchdog (tests/integration/http_liveness.sh). Each write()
 * blocks while the file `gate` exists (checked every 20 ms), then counts
 * the batch's messages and returns FERRY_OK. stop() releases a blocked
 * write() so that ferry still shuts down. Loaded as plugin = wedge
 * (build/tests/plugins/sink_wedge.so).
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry/plugin.h"

struct wedge {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    const char *gate;
    atomic_int stopping;
    struct ferry_metric *m_written;
};

static const struct ferry_option wedge_options[] = {
    {"gate", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_REQUIRED,
     "write() blocks while this file exists"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static int wedge_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                      void **state)
{
    struct wedge *s = host->alloc(sizeof(*s));

    memset(s, 0, sizeof(*s));
    s->host = host;
    s->ctx = ctx;
    s->gate = host->opt_str(ctx, "gate");
    atomic_init(&s->stopping, 0);
    s->m_written = host->metric(ctx, FERRY_METRIC_COUNTER,
                                "ferry_test_wedge_written_total",
                                "Messages the wedge sink let through.", NULL);
    *state = s;
    return FERRY_OK;
}

static void wedge_fini(void *state)
{
    struct wedge *s = state;

    s->host->free(s);
}

static void wedge_stop(void *state)
{
    struct wedge *s = state;

    atomic_store(&s->stopping, 1);
}

static int wedge_write(void *wctx, struct ferry_batch *b)
{
    struct wedge *s = wctx;
    struct timespec ts = {0, 20000000L};

    while (!atomic_load(&s->stopping) && access(s->gate, F_OK) == 0)
        nanosleep(&ts, NULL);
    s->host->metric_add(s->m_written, (double)b->count);
    return FERRY_OK;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "wedge"),
    .version = "1.0.0",
    .description = "test sink: write() blocks while a gate file exists",
    .options = wedge_options,
    .init = wedge_init,
    .fini = wedge_fini,
    .stop = wedge_stop,
    .write = wedge_write,
};
