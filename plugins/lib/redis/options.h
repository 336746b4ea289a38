/*
 * plugins/lib/redis/options.h: the options every Redis sink shares.
 *
 * A sink lists them in its option table with the macros below (so both
 * `redis` and `redis_kv` accept the same names, defaults and limits) and
 * reads them once in init() with redis_options_read():
 *
 *   static const struct ferry_option my_options[] = {
 *       REDIS_OPTIONS_SERVER,
 *       {.name = "my_own", ...},
 *       REDIS_OPTIONS_TTL,
 *       REDIS_OPTIONS_LINK,
 *       {.name = NULL},
 *   };
 *
 *   REDIS_OPTIONS_SERVER  address, username, password, db, cluster_addrs
 *   REDIS_OPTIONS_TTL     ttl
 *   REDIS_OPTIONS_LINK    connect_timeout, command_timeout, writer_lock,
 *                         lock_ttl
 *
 * The next issue's TLS (tls, tls_ca, ...), Cluster (cluster_addrs, now
 * refused) and Sentinel (sentinel_addrs, sentinel_master) options go into
 * REDIS_OPTIONS_SERVER and struct redis_options, and from there into the
 * struct redis_endpoint that redis_conn_new() takes: a sink never sees
 * them.
 */
#ifndef FERRY_REDIS_OPTIONS_H
#define FERRY_REDIS_OPTIONS_H

#include <stdint.h>

#include <ferry/ferry.h>

#include "redis/conn.h"

#define REDIS_OPTIONS_SERVER                                              \
    {.name = "address",                                                   \
     .type = FERRY_OPT_STRING,                                            \
     .def = "127.0.0.1:6379",                                             \
     .description = "host:port, redis://[user:pass@]host:port[/db] or "  \
                    "unix:/path"},                                        \
    {.name = "username",                                                  \
     .type = FERRY_OPT_STRING,                                            \
     .description = "ACL user name for AUTH"},                            \
    {.name = "password",                                                  \
     .type = FERRY_OPT_STRING,                                            \
     .flags = FERRY_OPT_SECRET,                                           \
     .description = "password for AUTH"},                                 \
    {.name = "db",                                                        \
     .type = FERRY_OPT_INT,                                               \
     .def = "0",                                                          \
     .min = 0,                                                            \
     .max = 2147483647.0,                                                 \
     .description = "database number (SELECT)"},                          \
    {.name = "cluster_addrs",                                             \
     .type = FERRY_OPT_LIST,                                              \
     .description = "Redis Cluster seed nodes (not supported yet)"}

#define REDIS_OPTIONS_TTL                                                 \
    {.name = "ttl",                                                       \
     .type = FERRY_OPT_DURATION,                                          \
     .def = "0",                                                          \
     .min = 0,                                                            \
     .max = 3153600000000.0,                                              \
     .description = "expiry of every cache key; 0 = none"}

#define REDIS_OPTIONS_LINK                                                \
    {.name = "connect_timeout",                                           \
     .type = FERRY_OPT_DURATION,                                          \
     .def = "5s",                                                         \
     .min = 1,                                                            \
     .max = 3600000,                                                      \
     .description = "limit for connecting, AUTH and SELECT"},             \
    {.name = "command_timeout",                                           \
     .type = FERRY_OPT_DURATION,                                          \
     .def = "5s",                                                         \
     .min = 1,                                                            \
     .max = 3600000,                                                      \
     .description = "limit for one pipelined round trip"},                \
    {.name = "writer_lock",                                               \
     .type = FERRY_OPT_BOOL,                                              \
     .def = "true",                                                       \
     .description = "hold a single-writer lease; others wait as standby"},\
    {.name = "lock_ttl",                                                  \
     .type = FERRY_OPT_DURATION,                                          \
     .def = "15s",                                                        \
     .min = 300,                                                          \
     .max = 3600000,                                                      \
     .description = "writer lease; renewed every lock_ttl/3"}

/* The shared options, as read by redis_options_read(). */
struct redis_options {
    struct redis_endpoint ep; /* address, credentials, db, timeouts */
    char where[300];          /* the endpoint for log lines (no secrets) */
    uint64_t ttl_ms;          /* 0: no expiry */
    char ttl_arg[24];         /* ttl_ms as text, for SET ... PX */
    int writer_lock;
    uint64_t lock_ttl_ms;
};

/*
 * Reads the options of the three macros from the host into o (zeroed
 * first). Returns 0, or -1 after logging one line naming the option
 * (o is then released). The caller owns o: redis_options_release().
 * Main thread, from init().
 */
int redis_options_read(const struct ferry_host *host, struct ferry_ctx *ctx,
                       struct redis_options *o);

/* Frees o's strings (the password is wiped). Accepts a zeroed o. */
void redis_options_release(struct redis_options *o);

#endif
