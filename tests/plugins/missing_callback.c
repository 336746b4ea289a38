/*
 * tests/plugins/missing_callback.c: a sink without write(). The loader must
 * refuse it rather than let a worker call NULL.
 */
#include <ferry/plugin.h>

static int nowrite_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                        void **state)
{
    *state = NULL;
    return FERRY_OK;
}

static void nowrite_fini(void *state)
{
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "nowrite"),
    .version = "0.0.1",
    .description = "a sink without write()",
    .init = nowrite_init,
    .fini = nowrite_fini,
};
