/*
 * plugins/lib/redis/lock.c: the writer lock (lock.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "redis/cmd.h"
#include "redis/instance.h"
#include "redis/lock.h"

void redis_lock_token(char *buf, size_t len)
{
    unsigned char rnd[16];
    char host[64] = "unknown", hex[33];
    size_t i, got = 0;

    if (gethostname(host, sizeof(host) - 1) < 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* No entropy source: time and address still make the token
             * unique enough to tell two processes apart. */
            uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)buf;

            for (i = 0; i < sizeof(rnd); i++)
                rnd[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
            break;
        }
        got += (size_t)n;
    }
    for (i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(buf, len, "%s-%ld-%s", host, (long)getpid(), hex);
}

static uint64_t redis_lock_period_ms(const struct redis_instance *in)
{
    uint64_t p = in->opt.lock_ttl_ms / 3;

    return p < 100 ? 100 : p;
}

/* The renewal timer ticks at most a second apart: a renewal is due every
 * lock_ttl/3, but after a failed one the next tick tries again, so a short
 * outage (a DEBUG SLEEP, a restart) costs the lease only when ownership
 * really cannot be confirmed for a whole lock_ttl. */
static uint64_t redis_lock_tick_ms(const struct redis_instance *in)
{
    uint64_t p = redis_lock_period_ms(in);

    return p > 1000 ? 1000 : p;
}

/* Runs the renewal script (conn_mu held): 1 owner, 0 not, -1 error. */
static int redis_lock_renew_once(struct redis_instance *in)
{
    char ttl[24];
    redisReply *r;

    snprintf(ttl, sizeof(ttl), "%" PRIu64, in->opt.lock_ttl_ms);
    redis_conn_cmd(in->conn, "EVAL", redis_renew_script, "1", in->lock_key,
                   in->token, ttl, NULL);
    in->host->metric_add(in->m.eval, 1);
    if (redis_instance_exec(in) != FERRY_OK)
        return -1;
    r = redis_conn_reply(in->conn, 0);
    if (r->type != REDIS_REPLY_INTEGER)
        return -1;
    if (r->integer == 1)
        return 1;
    /* The lease lapsed. If nobody took it meanwhile, take it back. */
    redis_conn_cmd(in->conn, "SET", in->lock_key, in->token, "NX", "PX", ttl,
                   NULL);
    if (redis_instance_exec(in) != FERRY_OK)
        return -1;
    r = redis_conn_reply(in->conn, 0);
    if (r->type == REDIS_REPLY_STATUS) {
        in->host->log(in->ctx, FERRY_LOG_WARN,
                      "writer lock had expired; re-acquired it");
        return 1;
    }
    return r->type == REDIS_REPLY_NIL ? 0 : -1;
}

void redis_lock_renew(void *arg)
{
    struct redis_instance *in = arg;
    int rc, lost = 0;
    uint64_t now;

    if (!atomic_load(&in->lock_held))
        return;
    now = in->host->now_ns();
    if (!in->renew_failing &&
        now - in->lock_confirmed_ns < redis_lock_period_ms(in) * 1000000ull)
        return;
    pthread_mutex_lock(&in->conn_mu);
    rc = redis_lock_renew_once(in);
    now = in->host->now_ns();
    in->renew_failing = rc == -1;
    if (rc == 1) {
        in->lock_confirmed_ns = now;
    } else if (rc == 0) {
        lost = 1;
    } else {
        in->host->log(in->ctx, FERRY_LOG_WARN,
                      "writer lock renewal failed: %s",
                      redis_conn_error(in->conn));
        redis_instance_component(in, FERRY_COMPONENT_DISCONNECTED);
        if (now - in->lock_confirmed_ns >= in->opt.lock_ttl_ms * 1000000ull)
            lost = 1;
    }
    pthread_mutex_unlock(&in->conn_mu);
    if (lost && atomic_exchange(&in->lock_held, 0)) {
        atomic_store(&in->lock_lost, 1);
        in->host->metric_set(in->m.lock_held, 0);
        in->host->log(in->ctx, FERRY_LOG_ERROR, "writer lock lost: %s",
                      rc == 0 ? "another instance holds it"
                              : "ownership unconfirmed for lock_ttl");
        in->host->request_stop(in->ctx, 1, "writer lock lost");
    }
}

void redis_lock_release(struct redis_instance *in)
{
    redisReply *r;

    if (!atomic_exchange(&in->lock_held, 0))
        return;
    pthread_mutex_lock(&in->conn_mu);
    redis_conn_cmd(in->conn, "EVAL", redis_release_script, "1", in->lock_key,
                   in->token, NULL);
    if (redis_instance_exec(in) == FERRY_OK &&
        (r = redis_conn_reply(in->conn, 0))->type == REDIS_REPLY_INTEGER)
        in->host->log(in->ctx, FERRY_LOG_INFO, "writer lock %s",
                      r->integer == 1 ? "released" : "was no longer ours");
    else
        in->host->log(in->ctx, FERRY_LOG_WARN,
                      "could not release the writer lock (%s); it lapses "
                      "after lock_ttl",
                      redis_conn_error(in->conn));
    redis_conn_reset(in->conn);
    pthread_mutex_unlock(&in->conn_mu);
    in->host->metric_set(in->m.lock_held, 0);
}

/* Tries SET NX once (conn_mu held): 1 acquired, 0 held by another (holder
 * in buf), -1 connection error, -2 refused. */
static int redis_lock_try(struct redis_instance *in, char *holder,
                          size_t len)
{
    char ttl[24];
    redisReply *r;

    snprintf(ttl, sizeof(ttl), "%" PRIu64, in->opt.lock_ttl_ms);
    redis_conn_cmd(in->conn, "SET", in->lock_key, in->token, "NX", "PX", ttl,
                   NULL);
    redis_conn_cmd(in->conn, "GET", in->lock_key, NULL);
    if (redis_instance_exec(in) != FERRY_OK)
        return -1;
    r = redis_conn_reply(in->conn, 0);
    if (r->type == REDIS_REPLY_STATUS)
        return 1;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(holder, len, "%s", r->str);
        return -2;
    }
    r = redis_conn_reply(in->conn, 1);
    snprintf(holder, len, "%s",
             r->type == REDIS_REPLY_STRING ? r->str : "(expired)");
    return 0;
}

/* Retries redis_lock_try() until it is ours, refused or stopped. */
static int redis_lock_wait(struct redis_instance *in)
{
    char holder[200], last_holder[200] = "";
    int rc;

    for (;;) {
        pthread_mutex_lock(&in->conn_mu);
        rc = redis_lock_try(in, holder, sizeof(holder));
        if (rc == 1) {
            in->lock_confirmed_ns = in->host->now_ns();
            atomic_store(&in->lock_held, 1);
        }
        pthread_mutex_unlock(&in->conn_mu);
        if (rc == 1)
            return FERRY_OK;
        if (rc == -2) {
            in->host->log(in->ctx, FERRY_LOG_ERROR,
                          "writer lock: SET refused: %s", holder);
            return FERRY_ERROR;
        }
        if (rc == 0 && strcmp(holder, last_holder) != 0) {
            in->host->log(in->ctx, FERRY_LOG_WARN,
                          "standby: writer lock held by %s; retrying "
                          "every %" PRIu64 "ms",
                          holder, redis_lock_period_ms(in));
            in->host->set_info(in->ctx, "writer_lock", holder);
            snprintf(last_holder, sizeof(last_holder), "%s", holder);
        } else if (rc < 0) {
            redis_instance_component(in, FERRY_COMPONENT_DISCONNECTED);
            in->host->log(in->ctx, FERRY_LOG_WARN,
                          "writer lock: %s; retrying",
                          redis_conn_error(in->conn));
        }
        if (redis_instance_wait(in, redis_lock_period_ms(in)))
            return FERRY_CLOSED;
    }
}

int redis_lock_acquire(struct redis_instance *in)
{
    int rc;

    if (!in->lock_key) {
        in->host->log(in->ctx, FERRY_LOG_ERROR, "writer lock: no lock key");
        return FERRY_ERROR;
    }
    redis_lock_token(in->token, sizeof(in->token));
    rc = redis_lock_wait(in);
    if (rc != FERRY_OK)
        return rc;
    redis_instance_component(in, FERRY_COMPONENT_CONNECTED);
    in->host->log(in->ctx, FERRY_LOG_INFO, "writer lock acquired (%s)",
                  in->token);
    in->host->set_info(in->ctx, "writer_lock", in->token);
    in->host->metric_set(in->m.lock_held, 1);
    in->renew_timer = in->host->timer_start(in->ctx, redis_lock_tick_ms(in),
                                            redis_lock_renew, in);
    if (!in->renew_timer) {
        in->host->log(in->ctx, FERRY_LOG_ERROR,
                      "cannot start the writer lock renewal timer");
        return FERRY_ERROR;
    }
    return FERRY_OK;
}
