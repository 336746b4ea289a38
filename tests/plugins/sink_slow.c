/*
 * tests/plugins/sink_slow.c: a deliberately slow sink for backpressure
 * tests of the websocket source. Each write() sleeps `delay`, then appends
 * one line per message to `path`:
 *   <op> <entity_type> <entity_id> <stream_id or ->
 * Loaded as plugin = slow (build/tests/plugins/sink_slow.so).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ferry/plugin.h"

struct slow {
    const struct ferry_host *host;
    pthread_mutex_t lock;
    FILE *fp;
    uint64_t delay_ms;
};

static const struct ferry_option slow_options[] = {
    {"delay", FERRY_OPT_DURATION, "1ms", 0, 0, NULL, 0, "sleep per batch"},
    {"path", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_REQUIRED,
     "file to append one line per message to"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static int slow_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                     void **state)
{
    struct slow *s = host->alloc(sizeof(*s));
    const char *path = host->opt_str(ctx, "path");

    memset(s, 0, sizeof(*s));
    s->host = host;
    s->delay_ms = host->opt_duration_ms(ctx, "delay");
    pthread_mutex_init(&s->lock, NULL);
    s->fp = fopen(path, "a");
    if (!s->fp) {
        host->log(ctx, FERRY_LOG_ERROR, "cannot open %s", path);
        pthread_mutex_destroy(&s->lock);
        host->free(s);
        return FERRY_ERROR;
    }
    *state = s;
    return FERRY_OK;
}

static void slow_fini(void *state)
{
    struct slow *s = state;

    fclose(s->fp);
    pthread_mutex_destroy(&s->lock);
    s->host->free(s);
}

static int slow_start(void *state)
{
    (void)state;
    return FERRY_OK;
}

static void slow_stop(void *state)
{
    (void)state;
}

static int slow_write(void *wctx, struct ferry_batch *b)
{
    struct slow *s = wctx;
    struct timespec ts = {(time_t)(s->delay_ms / 1000),
                          (long)(s->delay_ms % 1000) * 1000000L};
    uint32_t i;

    if (s->delay_ms)
        nanosleep(&ts, NULL);
    pthread_mutex_lock(&s->lock);
    for (i = 0; i < b->count; i++) {
        const struct ferry_msg *m = b->msgs[i];

        if (m->pos.set)
            fprintf(s->fp, "%s %s %s %llu-%llu\n", ferry_op_name(m->op),
                    m->entity_type, m->entity_id[0] ? m->entity_id : "-",
                    (unsigned long long)m->pos.ms,
                    (unsigned long long)m->pos.seq);
        else
            fprintf(s->fp, "%s %s %s -\n", ferry_op_name(m->op),
                    m->entity_type, m->entity_id[0] ? m->entity_id : "-");
    }
    fflush(s->fp);
    pthread_mutex_unlock(&s->lock);
    return FERRY_OK;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "slow"),
    .version = "1.0.0",
    .description = "test sink: sleeps per batch, logs one line a message",
    .options = slow_options,
    .init = slow_init,
    .fini = slow_fini,
    .start = slow_start,
    .stop = slow_stop,
    .write = slow_write,
};
