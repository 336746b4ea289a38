/*
 * tests/plugins/wrong_kind.c: a valid source. Loading it where a sink is
 * expected must be refused, naming both kinds.
 */
#include <ferry/plugin.h>

static int wrong_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                      void **state)
{
    *state = NULL;
    return FERRY_OK;
}

static void wrong_fini(void *state)
{
}

static int wrong_run(void *state)
{
    return FERRY_OK;
}

static void wrong_stop(void *state)
{
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SOURCE, "wrongkind"),
    .version = "0.0.1",
    .description = "a source, not a sink",
    .init = wrong_init,
    .fini = wrong_fini,
    .run = wrong_run,
    .stop = wrong_stop,
};
