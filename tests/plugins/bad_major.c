/*
 * tests/plugins/bad_major.c: built for ABI major 2; the loader must refuse
 * it before calling anything.
 */
#include <ferry/plugin.h>

static int fixture_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                        void **state)
{
    *state = NULL;
    return FERRY_OK;
}

static void fixture_fini(void *state)
{
}

static int fixture_write(void *wctx, struct ferry_batch *batch)
{
    return FERRY_OK;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    .hdr =
        {
            .magic = FERRY_PLUGIN_MAGIC,
            .abi_major = 2,
            .abi_minor = 0,
            .struct_size = sizeof(struct ferry_plugin),
            .kind = FERRY_KIND_SINK,
            .name = "badmajor",
            .build = FERRY_BUILD_SIGNATURE,
        },
    .version = "0.0.1",
    .description = "ABI major 2",
    .init = fixture_init,
    .fini = fixture_fini,
    .write = fixture_write,
};
