/*
 * tests/plugins/larger_size.c: a descriptor longer than the core's struct
 * ferry_plugin (as a plugin built against a later header would have). The
 * loader accepts it and copies only the members it knows.
 */
#include <ferry/plugin.h>

struct larger_desc {
    struct ferry_plugin p;
    void (*later_callback)(void *state);
    char reserved[56];
};

static int larger_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                       void **state)
{
    *state = NULL;
    return FERRY_OK;
}

static void larger_fini(void *state)
{
}

static int larger_write(void *wctx, struct ferry_batch *batch)
{
    return FERRY_OK;
}

FERRY_PLUGIN_EXPORT const struct larger_desc ferry_plugin = {
    .p =
        {
            .hdr =
                {
                    .magic = FERRY_PLUGIN_MAGIC,
                    .abi_major = FERRY_ABI_MAJOR,
                    .abi_minor = FERRY_ABI_MINOR,
                    .struct_size = sizeof(struct larger_desc),
                    .kind = FERRY_KIND_SINK,
                    .name = "larger",
                    .build = FERRY_BUILD_SIGNATURE,
                },
            .version = "2.0.0",
            .description = "a descriptor with members the core does not know",
            .init = larger_init,
            .fini = larger_fini,
            .write = larger_write,
        },
    .later_callback = larger_fini,
    .reserved = "not for the core",
};
