/*
 * plugins/sink_null: a sink that applies nothing and succeeds. For
 * benchmarks (the cost of the core alone) and as the complete example in
 * PLUGINS.md, which must stay identical to this file.
 *
 * Build: cc -std=c11 -shared -fPIC -fvisibility=hidden -Wl,-z,defs \
 *            $(pkg-config --cflags ferry-plugin) -o sink_null.so sink_null.c
 */
/* nanosleep() is POSIX: -std=c11 alone does not declare it. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <time.h>

#include <ferry/ferry.h>

/* The instance: one per [sink.NAME] section using this plugin. */
struct null_sink {
    const struct ferry_host *host;
    struct ferry_metric *discarded;
    uint64_t delay_ms;
};

static const struct ferry_option null_options[] = {
    {.name = "delay",
     .type = FERRY_OPT_DURATION,
     .def = "0",
     .min = 0,
     .max = 10000,
     .description = "sleep this long in every write (a slow sink)"},
    {.name = NULL},
};

/* Main thread. Reads the validated options; does no I/O. */
static int null_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                     void **state)
{
    static const char *const labels[] = {"op", "discard", NULL};
    struct null_sink *s = host->alloc(sizeof(*s));

    s->host = host;
    s->delay_ms = host->opt_duration_ms(ctx, "delay");
    s->discarded =
        host->metric(ctx, FERRY_METRIC_COUNTER, "ferry_sink_operations_total",
                     "Operations applied by the sink", labels);
    *state = s;
    return FERRY_OK;
}

/* Main thread, once per successful init. */
static void null_fini(void *state)
{
    struct null_sink *s = state;

    s->host->free(s);
}

/* Worker thread. No per-worker state: the instance serves as context. */
static int null_open(void *state, unsigned worker, void **wctx)
{
    *wctx = state;
    return FERRY_OK;
}

/* Worker thread; concurrently for different workers. The batch is
 * borrowed: results[] stay FERRY_OK, so every message counts as applied. */
static int null_write(void *wctx, struct ferry_batch *batch)
{
    struct null_sink *s = wctx;

    if (s->delay_ms > 0) {
        struct timespec ts = {.tv_sec = (time_t)(s->delay_ms / 1000),
                              .tv_nsec = (long)(s->delay_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    if (s->discarded != NULL)
        s->host->metric_add(s->discarded, batch->count);
    return FERRY_OK;
}

/* Worker thread: the worker context goes away (nothing to free here). */
static void null_close(void *wctx)
{
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "null"),
    .version = "1.0.0",
    .description = "discards every message (benchmarks, examples)",
    .options = null_options,
    .init = null_init,
    .fini = null_fini,
    .open = null_open,
    .write = null_write,
    .close = null_close,
};
