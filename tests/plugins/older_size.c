/*
 * tests/plugins/older_size.c: a plugin as the first released header (ABI
 * 1.0) laid it out: the descriptor ends with after_write, and struct_size
 * says FERRY_PLUGIN_SIZE_1_0. When the core's struct ferry_plugin has grown
 * since, the loader must copy only these bytes (the symbol ends here) and
 * zero-fill the members it knows and the plugin does not.
 */
#include <ferry/plugin.h>

struct older_desc {
    struct ferry_plugin_header hdr;
    const char *version;
    const char *description;
    const struct ferry_option *options;
    int (*init)(const struct ferry_host *host, struct ferry_ctx *ctx,
                void **state);
    void (*fini)(void *state);
    int (*run)(void *state);
    void (*stop)(void *state);
    void (*wakeup)(void *state);
    int (*start)(void *state);
    int (*load_position)(void *state, struct ferry_pos *out);
    int (*open)(void *state, unsigned worker, void **wctx);
    int (*write)(void *wctx, struct ferry_batch *batch);
    int (*checkpoint)(void *wctx, const struct ferry_pos *pos);
    void (*close)(void *wctx);
    int (*admit)(void *state, const struct ferry_admission *a);
    int (*before_write)(void *state, const struct ferry_write_event *ev,
                        uint64_t *retry_at_ns);
    void (*after_write)(void *state, const struct ferry_write_event *ev,
                        int status);
};

_Static_assert(sizeof(struct older_desc) == FERRY_PLUGIN_SIZE_1_0,
               "older_desc is the ABI 1.0 descriptor");

static int older_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                      void **state)
{
    *state = NULL;
    return FERRY_OK;
}

static void older_fini(void *state)
{
}

static int older_write(void *wctx, struct ferry_batch *batch)
{
    return FERRY_OK;
}

static void older_after_write(void *state, const struct ferry_write_event *ev,
                              int status)
{
}

FERRY_PLUGIN_EXPORT const struct older_desc ferry_plugin = {
    .hdr =
        {
            .magic = FERRY_PLUGIN_MAGIC,
            .abi_major = 1,
            .abi_minor = 0,
            .struct_size = sizeof(struct older_desc),
            .kind = FERRY_KIND_SINK,
            .name = "older",
            .build = FERRY_BUILD_SIGNATURE,
        },
    .version = "1.0.0",
    .description = "built against ABI 1.0",
    .init = older_init,
    .fini = older_fini,
    .write = older_write,
    /* The last 1.0 member, set so the test sees it copied. */
    .after_write = older_after_write,
};
