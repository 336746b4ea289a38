/*
 * tests/plugins/missing_symbol.c: a shared object that exports something,
 * but no `ferry_plugin`.
 */
#include <ferry/plugin.h>

FERRY_PLUGIN_EXPORT const int not_a_ferry_plugin = 1;
