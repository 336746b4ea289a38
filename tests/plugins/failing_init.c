/*
 * tests/plugins/failing_init.c: a valid sink whose init() logs why and
 * fails. The loader accepts it; the pipeline refuses it when it calls
 * init().
 */
#include <ferry/plugin.h>

static int failing_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                        void **state)
{
    host->log(ctx, FERRY_LOG_ERROR, "refusing to start (test fixture)");
    return FERRY_ERROR;
}

static void failing_fini(void *state)
{
}

static int failing_write(void *wctx, struct ferry_batch *batch)
{
    return FERRY_OK;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "failinginit"),
    .version = "0.0.1",
    .description = "init() always fails",
    .init = failing_init,
    .fini = failing_fini,
    .write = failing_write,
};
