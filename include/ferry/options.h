/*
 * ferry/options.h: how a plugin declares its configuration keys.
 *
 * Every plugin publishes a table of struct ferry_option, terminated by an
 * entry whose name is NULL. The core validates each instance's INI section
 * against it (unknown keys, types, ranges, enum values) before the plugin's
 * init() is called, applies defaults, and hands the plugin typed values
 * through the host's opt_* accessors. A plugin therefore never parses its
 * own configuration text.
 */
#ifndef FERRY_OPTIONS_H
#define FERRY_OPTIONS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ferry_opt_type {
    FERRY_OPT_STRING = 1,
    FERRY_OPT_INT = 2,      /* signed 64-bit integer; min/max apply */
    FERRY_OPT_BOOL = 3,     /* true/false/yes/no/on/off/1/0 */
    FERRY_OPT_DURATION = 4, /* 0, 250ms, 30s, 5m, 1h30m; min/max in ms */
    FERRY_OPT_SIZE = 5,     /* 512, 64KB, 16MB; min/max in bytes */
    FERRY_OPT_ENUM = 6,     /* one of enum_values */
    FERRY_OPT_LIST = 7,     /* comma-separated strings */
    FERRY_OPT_DOUBLE = 8    /* a decimal number; min/max apply */
};

enum {
    /* Shown as *** by `ferry check`, never logged, never served. */
    FERRY_OPT_SECRET = 1u << 0,
    /* Must be set (no default). */
    FERRY_OPT_REQUIRED = 1u << 1,
    /*
     * A file path (FERRY_OPT_STRING): a relative value is resolved against
     * the folder of the configuration file that set the key (the file of
     * an include for keys set there), and opt_str() returns the resolved
     * path; `-`, an empty value, absolute paths and defaults are unchanged.
     * `ferry check` prints the resolved path. An additive bit, so no ABI
     * minor bump: an older core ignores it and the path stays relative to
     * the working directory.
     */
    FERRY_OPT_PATH = 1u << 2
};

struct ferry_option {
    /* The INI key. NULL ends the table. */
    const char *name;
    /* enum ferry_opt_type. */
    int type;
    /* Default in configuration syntax ("30s", "true", "16MB"), or NULL for
     * "unset" (opt_str then returns NULL, numbers return 0). */
    const char *def;
    /* Inclusive range for INT, DOUBLE, DURATION (ms) and SIZE (bytes).
     * Ignored when min == max == 0. */
    double min;
    double max;
    /* NULL-terminated allowed values for FERRY_OPT_ENUM. */
    const char *const *enum_values;
    /* FERRY_OPT_* flags. */
    unsigned flags;
    /* One line for `ferry inspect` and the generated reference. */
    const char *description;
};

#ifdef __cplusplus
}
#endif

#endif /* FERRY_OPTIONS_H */
