/*
 * tests/plugins/short_struct.c: a descriptor only 24 bytes long that says
 * so (struct_size 24). The loader must refuse it after reading no more than
 * magic, ABI and struct_size: the symbol ends right after the name
 * pointer, so a loader that read further (or copied sizeof) would read past
 * it, which AddressSanitizer builds catch.
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
    .struct_size = sizeof(struct short_desc),
    .kind = FERRY_KIND_SINK,
    .name = "short",
};
