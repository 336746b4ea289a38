/*
 * plugins/sink_redis/keys.h: the Schematic key shapes the sink reads when
 * it deletes by SCAN (snapshot and load eviction, cleanup of other
 * versions). Pure functions: any thread.
 */
#ifndef FERRY_SINK_REDIS_KEYS_H
#define FERRY_SINK_REDIS_KEYS_H

#include <stddef.h>

/* Number of ':'-separated segments after "{prefix}:", or -1 when key
 * does not start with it. */
int redis_key_segments(const char *prefix, const char *key, size_t len);
/* Writes a SCAN MATCH pattern "{prefix}:{mid}*" into buf, glob characters
 * of prefix and mid escaped. */
void redis_match_pattern(const char *prefix, const char *mid, char *buf,
                         size_t len);

#endif
