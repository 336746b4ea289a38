/*
 * tests/plugins/source_gen.c: a source that generates `count` messages for
 * `entities` entities (entity e<n % entities>, payload "<n>", stream
 * position n-0), for scheduler tests and the core benchmark. With
 * `burst` > 0 it emits that many, then waits `pause` before the rest. With
 * `linger` it keeps running until stopped instead of finishing.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ferry/plugin.h"

struct gen {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    int64_t count;
    int64_t entities;
    int64_t burst;
    uint64_t pause_ms;
    int linger;
    int64_t payload_bytes;
    int64_t control_every;
    atomic_int stop;
    struct ferry_metric *emitted;
};

static const struct ferry_option gen_options[] = {
    {"count", FERRY_OPT_INT, "1000", 0, 1e12, NULL, 0, "messages to emit"},
    {"entities", FERRY_OPT_INT, "10", 1, 1e9, NULL, 0, "distinct entities"},
    {"burst", FERRY_OPT_INT, "0", 0, 1e12, NULL, 0,
     "emit this many, then pause"},
    {"pause", FERRY_OPT_DURATION, "0", 0, 0, NULL, 0, "pause after burst"},
    {"linger", FERRY_OPT_BOOL, "false", 0, 0, NULL, 0,
     "keep running after the last message"},
    {"control_every", FERRY_OPT_INT, "0", 0, 1e12, NULL, 0,
     "emit a LOAD_END control message after every N messages"},
    {"payload_bytes", FERRY_OPT_INT, "0", 0, 1e8, NULL, 0,
     "pad payloads to this size"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static int gen_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                    void **state)
{
    struct gen *g = host->alloc(sizeof(*g));

    memset(g, 0, sizeof(*g));
    g->host = host;
    g->ctx = ctx;
    g->count = host->opt_int(ctx, "count");
    g->entities = host->opt_int(ctx, "entities");
    g->burst = host->opt_int(ctx, "burst");
    g->pause_ms = host->opt_duration_ms(ctx, "pause");
    g->linger = host->opt_bool(ctx, "linger");
    g->payload_bytes = host->opt_int(ctx, "payload_bytes");
    g->control_every = host->opt_int(ctx, "control_every");
    g->emitted = host->metric(ctx, FERRY_METRIC_COUNTER,
                              "test_source_emitted_total", "emitted", NULL);
    *state = g;
    return FERRY_OK;
}

static void gen_fini(void *state)
{
    struct gen *g = state;
    g->host->free(g);
}

static void nap(struct gen *g, uint64_t ms)
{
    uint64_t until = g->host->now_ns() + ms * 1000000ull;
    while (!g->stop && g->host->now_ns() < until) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
}

static int gen_run(void *state)
{
    struct gen *g = state;
    char id[32];
    char *payload = g->host->alloc((size_t)g->payload_bytes + 32);

    for (int64_t n = 1; n <= g->count && !g->stop; n++) {
        int len = snprintf(payload, 32, "%lld", (long long)n);
        if (g->payload_bytes > len) {
            memset(payload + len, ' ', (size_t)(g->payload_bytes - len));
            len = (int)g->payload_bytes;
        }
        snprintf(id, sizeof(id), "e%lld", (long long)(n % g->entities));
        struct ferry_msg m = {
            .struct_size = sizeof(m),
            .op = FERRY_OP_FULL,
            .entity_type = "item",
            .entity_id = id,
            .order_key = "",
            .payload = payload,
            .payload_len = (size_t)len,
            .pos = {(uint64_t)n, 0, 1},
        };
        int rc = g->host->emit_wait(g->ctx, &m, 0);
        if (rc != FERRY_OK) {
            g->host->free(payload);
            return rc == FERRY_CLOSED ? FERRY_OK : rc;
        }
        g->host->metric_add(g->emitted, 1);
        if (g->control_every && n % g->control_every == 0) {
            char num[32];
            int nl = snprintf(num, sizeof(num), "%lld", (long long)n);
            struct ferry_msg c = {
                .struct_size = sizeof(c),
                .op = FERRY_OP_LOAD_END,
                .entity_type = "control",
                .entity_id = "",
                .order_key = "control",
                .payload = num,
                .payload_len = (size_t)nl,
            };
            rc = g->host->emit_wait(g->ctx, &c, 0);
            if (rc != FERRY_OK) {
                g->host->free(payload);
                return rc == FERRY_CLOSED ? FERRY_OK : rc;
            }
        }
        if (g->burst && n == g->burst)
            nap(g, g->pause_ms);
    }
    g->host->free(payload);
    while (g->linger && !g->stop)
        nap(g, 50);
    return FERRY_OK;
}

static void gen_stop(void *state)
{
    struct gen *g = state;
    g->stop = 1;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SOURCE, "gen"),
    .version = "1.0.0",
    .description = "test source: generated messages",
    .options = gen_options,
    .init = gen_init,
    .fini = gen_fini,
    .run = gen_run,
    .stop = gen_stop,
};
