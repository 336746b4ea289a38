/*
 * tests/plugins/lying_size.c: a 24-byte descriptor whose struct_size claims
 * the full size. The loader must trust the ELF symbol size over the
 * plugin's claim and refuse it without reading past the symbol.
 */
#include <stdint.h>

#include <ferry/plugin.h>

struct short_desc {
    uint32_t magic;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t struct_size;
    uint32_t kind;
    const char *name;
};

FERRY_PLUGIN_EXPORT const struct short_desc ferry_plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .abi_major = FERRY_ABI_MAJOR,
    .abi_minor = FERRY_ABI_MINOR,
    .struct_size = sizeof(struct ferry_plugin),
    .kind = FERRY_KIND_SINK,
    .name = "lying",
};
