/*
 * tests/plugins/dup_name_b.c: a sink named "dup", like dup_name_a.c.
 * A plugin set must refuse the second one loaded.
 */
#include <ferry/plugin.h>

static int dup_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                    void **state)
{
    *state = NULL;
    return FERRY_OK;
}

static void dup_fini(void *state)
{
}

static int dup_write(void *wctx, struct ferry_batch *batch)
{
    return FERRY_OK;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "dup"),
    .version = "0.0.1",
    .description = "duplicate name, file b",
    .init = dup_init,
    .fini = dup_fini,
    .write = dup_write,
};
