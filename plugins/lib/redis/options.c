/*
 * plugins/lib/redis/options.c: reading the shared options (options.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "redis/options.h"
#include "redis/util.h"

/* Merges username/password/db options with what a redis:// URL gave. */
static int redis_merge_auth(const struct ferry_host *h, struct ferry_ctx *ctx,
                            struct redis_endpoint *ep)
{
    const char *user = h->opt_str(ctx, "username");
    const char *pass = h->opt_str(ctx, "password");
    int64_t db = h->opt_int(ctx, "db");

    if (user && *user) {
        if (ep->username) {
            h->log(ctx, FERRY_LOG_ERROR,
                   "username: also given in address; set it once");
            return -1;
        }
        ep->username = redis_xstrdup(user);
    }
    if (pass && *pass)
        ep->password = redis_xstrdup(pass);
    if (ep->username && !ep->password) {
        h->log(ctx, FERRY_LOG_ERROR, "username: needs a password as well");
        return -1;
    }
    if (ep->db >= 0) {
        if (h->opt_is_set(ctx, "db") && db != ep->db) {
            h->log(ctx, FERRY_LOG_ERROR,
                   "db: %lld, but address names database %lld", (long long)db,
                   (long long)ep->db);
            return -1;
        }
    } else {
        ep->db = db;
    }
    return 0;
}

int redis_options_read(const struct ferry_host *host, struct ferry_ctx *ctx,
                       struct redis_options *o)
{
    const char *const *items = NULL;
    char err[256];

    memset(o, 0, sizeof(*o));
    if (host->opt_list(ctx, "cluster_addrs", &items) > 0) {
        host->log(ctx, FERRY_LOG_ERROR,
                  "cluster_addrs: Redis Cluster is not supported yet");
        goto fail;
    }
    if (redis_endpoint_parse(host->opt_str(ctx, "address"), &o->ep, err,
                             sizeof(err)) < 0) {
        host->log(ctx, FERRY_LOG_ERROR, "address: %s", err);
        goto fail;
    }
    if (o->ep.password) {
        /* `ferry check` prints the address and logs name it: the
         * password has its own, secret, option. */
        host->log(ctx, FERRY_LOG_ERROR,
                  "address: holds a password, which ferry check would "
                  "print; set it with the password option instead");
        goto fail;
    }
    if (redis_merge_auth(host, ctx, &o->ep) < 0)
        goto fail;
    o->ep.connect_timeout_ms = host->opt_duration_ms(ctx, "connect_timeout");
    o->ep.command_timeout_ms = host->opt_duration_ms(ctx, "command_timeout");
    redis_endpoint_describe(&o->ep, o->where, sizeof(o->where));
    o->ttl_ms = host->opt_duration_ms(ctx, "ttl");
    snprintf(o->ttl_arg, sizeof(o->ttl_arg), "%" PRIu64, o->ttl_ms);
    o->writer_lock = host->opt_bool(ctx, "writer_lock");
    o->lock_ttl_ms = host->opt_duration_ms(ctx, "lock_ttl");
    return 0;
fail:
    redis_options_release(o);
    return -1;
}

void redis_options_release(struct redis_options *o)
{
    redis_endpoint_release(&o->ep);
    memset(o, 0, sizeof(*o));
}
