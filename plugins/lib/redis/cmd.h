/*
 * plugins/lib/redis/cmd.h: the commands and Lua scripts Redis sinks queue
 * on a struct redis_conn, and the replay cursor's text form.
 *
 * Every function here only queues (redis_conn_exec() sends); key names
 * are always parameters: the library knows no key layout. Commands are
 * argv-style, so keys and values may hold any bytes.
 */
#ifndef FERRY_REDIS_CMD_H
#define FERRY_REDIS_CMD_H

#include <stddef.h>

#include <ferry/ferry.h>

#include "redis/conn.h"

/* Lua: set KEYS[1] to ARGV[1] ("<ms>-<seq>") only when it is greater
 * than the stored position (numeric compare, exact for 64-bit values).
 * Returns 1 when it moved, 0 when not, an error for a bad position. */
extern const char redis_cursor_script[];
/* Lua: PEXPIRE KEYS[1] ARGV[2] only while it holds ARGV[1] (our token). */
extern const char redis_renew_script[];
/* Lua: DEL KEYS[1] only while it holds ARGV[1] (our token). */
extern const char redis_release_script[];

/* Queues SET key val, with PX ttl_arg when ttl_arg is not NULL (a
 * decimal number of milliseconds; pass NULL for no expiry). */
void redis_cmd_set(struct redis_conn *c, const char *key, size_t klen,
                   const char *val, size_t vlen, const char *ttl_arg);

/* Queues one DEL of the n keys (nothing when n is 0). lens may be NULL
 * for NUL-terminated keys. */
void redis_cmd_del(struct redis_conn *c, size_t n, const char *const *keys,
                   const size_t *lens);

/* Queues the cursor compare-and-set: EVAL redis_cursor_script 1 key pos.
 * Inside a MULTI it runs in that transaction, after the commands queued
 * before it. */
void redis_cmd_cursor(struct redis_conn *c, const char *key,
                      const struct ferry_pos *pos);

/* Parses "<ms>-<seq>" (decimal, 64-bit) into out (set = 1). Returns 0,
 * or -1 when s is anything else. */
int redis_pos_parse(const char *s, struct ferry_pos *out);

#endif
