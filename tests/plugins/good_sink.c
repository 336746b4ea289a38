/*
 * tests/plugins/good_sink.c: a valid sink the loader must accept. Its
 * descriptor values are asserted by tests/unit/test_loader.c.
 */
#include <ferry/plugin.h>

static const char *const good_modes[] = {"fast", "safe", NULL};

static const struct ferry_option good_options[] = {
    {"path", FERRY_OPT_STRING, "-", 0, 0, NULL, 0, "where to write"},
    {"mode", FERRY_OPT_ENUM, "safe", 0, 0, good_modes, 0, "how to write"},
    {"timeout", FERRY_OPT_DURATION, "30s", 1, 60000, NULL, 0,
     "how long to wait"},
    {"limit", FERRY_OPT_INT, "10", 1, 100, NULL, 0, "how many | at most"},
    {"token", FERRY_OPT_STRING, NULL, 0, 0, NULL,
     FERRY_OPT_SECRET | FERRY_OPT_REQUIRED, "the access token"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static int good_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                     void **state)
{
    *state = NULL;
    return FERRY_OK;
}

static void good_fini(void *state)
{
}

static int good_open(void *state, unsigned worker, void **wctx)
{
    *wctx = state;
    return FERRY_OK;
}

static int good_write(void *wctx, struct ferry_batch *batch)
{
    return FERRY_OK;
}

static void good_close(void *wctx)
{
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "good"),
    .version = "1.2.3",
    .description = "a valid test sink",
    .options = good_options,
    .init = good_init,
    .fini = good_fini,
    .open = good_open,
    .write = good_write,
    .close = good_close,
};
