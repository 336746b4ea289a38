/*
 * plugins/lib/redis/instance.c: a Redis sink instance's shared parts
 * (instance.h): lifecycle, waits, the instance connection, the writer
 * lock, worker links, the replay cursor, SCAN-driven deletion.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "redis/cmd.h"
#include "redis/instance.h"
#include "redis/util.h"

static int redis_lock_acquire(struct redis_instance *in);
static void redis_lock_release(struct redis_instance *in);

/* ---- init / release ----------------------------------------------------- */

static struct ferry_metric *redis_counter(struct redis_instance *in,
                                          const char *name, const char *help,
                                          const char *label, const char *value)
{
    const char *labels[3] = {label, value, NULL};

    return in->host->metric(in->ctx, FERRY_METRIC_COUNTER, name, help,
                            label ? labels : NULL);
}

static void redis_metrics_register(struct redis_instance *in)
{
    /* The help text every sink shares for this family. */
    static const char ops[] = "Operations applied by the sink";
    static const char total[] = "ferry_sink_operations_total";
    struct redis_metrics *m = &in->m;

    m->set = redis_counter(in, total, ops, "op", "set");
    m->del = redis_counter(in, total, ops, "op", "del");
    m->mget = redis_counter(in, total, ops, "op", "mget");
    m->scan = redis_counter(in, total, ops, "op", "scan");
    m->eval = redis_counter(in, total, ops, "op", "eval");
    m->poison = redis_counter(in, "ferry_sink_poison_total",
                              "messages skipped as permanently bad", NULL,
                              NULL);
    m->reconnects = redis_counter(in, "ferry_sink_reconnects_total",
                                  "Redis connections re-established", NULL,
                                  NULL);
    m->roundtrips = redis_counter(in, "ferry_sink_roundtrips_total",
                                  "pipelined Redis round trips", NULL, NULL);
    m->lock_held = in->host->metric(in->ctx, FERRY_METRIC_GAUGE,
                                    "ferry_sink_writer_lock_held",
                                    "1 while this instance holds the "
                                    "writer lock",
                                    NULL);
    m->write_seconds = in->host->metric(in->ctx, FERRY_METRIC_HISTOGRAM,
                                        "ferry_sink_write_seconds",
                                        "duration of one write() call", NULL);
}

int redis_instance_init(struct redis_instance *in,
                        const struct ferry_host *host, struct ferry_ctx *ctx,
                        const char *lock_key)
{
    pthread_condattr_t ca;

    memset(in, 0, sizeof(*in));
    in->host = host;
    in->ctx = ctx;
    pthread_mutex_init(&in->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&in->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&in->conn_mu, NULL);
    atomic_init(&in->state, FERRY_COMPONENT_UNKNOWN);
    atomic_init(&in->lock_held, 0);
    atomic_init(&in->lock_lost, 0);
    redis_instance_set_lock_key(in, lock_key);
    if (redis_options_read(host, ctx, &in->opt) < 0)
        return FERRY_EINVAL;
    in->conn = redis_conn_new(&in->opt.ep);
    redis_metrics_register(in);
    return FERRY_OK;
}

void redis_instance_set_lock_key(struct redis_instance *in,
                                 const char *lock_key)
{
    free(in->lock_key);
    in->lock_key = lock_key ? redis_xstrdup(lock_key) : NULL;
}

void redis_instance_release(struct redis_instance *in)
{
    redis_conn_free(in->conn);
    in->conn = NULL;
    redis_options_release(&in->opt);
    free(in->lock_key);
    in->lock_key = NULL;
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    pthread_mutex_destroy(&in->conn_mu);
}

/* ---- small shared pieces ------------------------------------------------ */

int redis_instance_wait(struct redis_instance *in, uint64_t ms)
{
    struct timespec ts;
    int stopping;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&in->mu);
    while (!in->stopping &&
           pthread_cond_timedwait(&in->cv, &in->mu, &ts) != ETIMEDOUT)
        ;
    stopping = in->stopping;
    pthread_mutex_unlock(&in->mu);
    return stopping;
}

void redis_instance_component(struct redis_instance *in, int state)
{
    if (atomic_exchange(&in->state, state) != state)
        in->host->set_component(in->ctx, "redis", state);
}

int redis_instance_lock_lost(struct redis_instance *in)
{
    return atomic_load(&in->lock_lost);
}

int redis_instance_exec(struct redis_instance *in)
{
    int rc = redis_conn_open(in->conn);

    if (rc != FERRY_OK) {
        redis_conn_reset(in->conn);
        return rc;
    }
    in->host->metric_add(in->m.roundtrips, 1);
    return redis_conn_exec(in->conn);
}

/* ---- start / stop ------------------------------------------------------- */

/* Connects the instance connection and PINGs, retrying until stop. */
static int redis_start_connect(struct redis_instance *in)
{
    uint64_t backoff = 500;
    int warned = 0, rc;

    for (;;) {
        pthread_mutex_lock(&in->conn_mu);
        redis_conn_cmd(in->conn, "PING", NULL);
        rc = redis_instance_exec(in);
        if (rc == FERRY_OK) {
            redisReply *r = redis_conn_reply(in->conn, 0);

            if (r->type == REDIS_REPLY_STATUS) {
                redis_conn_reset(in->conn);
                pthread_mutex_unlock(&in->conn_mu);
                return FERRY_OK;
            }
            /* NOAUTH: the server wants a password we do not have. */
            in->host->log(in->ctx, FERRY_LOG_ERROR, "%s: PING refused: %s",
                          in->opt.where,
                          r->type == REDIS_REPLY_ERROR ? r->str : "?");
            rc = redis_reply_class(r) == REDIS_CLASS_TRANSIENT ? FERRY_RETRY
                                                               : FERRY_ERROR;
            redis_conn_close(in->conn);
            if (rc == FERRY_ERROR) {
                pthread_mutex_unlock(&in->conn_mu);
                return rc;
            }
        }
        pthread_mutex_unlock(&in->conn_mu);
        if (rc == FERRY_ERROR) {
            in->host->log(in->ctx, FERRY_LOG_ERROR, "%s: %s", in->opt.where,
                          redis_conn_error(in->conn));
            return FERRY_ERROR;
        }
        redis_instance_component(in, FERRY_COMPONENT_DISCONNECTED);
        in->host->log(in->ctx, warned ? FERRY_LOG_DEBUG : FERRY_LOG_WARN,
                      "%s; retrying (backoff up to 30s)",
                      redis_conn_error(in->conn));
        warned = 1;
        if (redis_instance_wait(in, backoff))
            return FERRY_CLOSED;
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    }
}

static int redis_start_inner(struct redis_instance *in)
{
    int rc = redis_start_connect(in);

    if (rc != FERRY_OK)
        return rc;
    in->host->log(in->ctx, FERRY_LOG_INFO, "connected to %s%s", in->opt.where,
                  in->start_note);
    redis_instance_component(in, FERRY_COMPONENT_CONNECTED);
    if (!in->opt.writer_lock) {
        in->host->set_info(in->ctx, "writer_lock", "disabled");
    } else {
        rc = redis_lock_acquire(in);
        if (rc != FERRY_OK)
            return rc;
    }
    if (in->hooks.started && in->hooks.started(in->hooks.arg) != 0)
        return FERRY_ERROR;
    return FERRY_OK;
}

/* ---- the writer lock ----------------------------------------------------
 *
 * The single-writer lease: a key holding a random token with an expiry,
 * taken with SET NX PX, renewed and released only while it holds our
 * token, by scripts from cmd.h. redis_instance_start() takes it and
 * redis_instance_stop() releases it; a sink only reads its state
 * (redis_instance_lock_lost()).
 */

/* Writes "<hostname>-<pid>-<32 hex random>" into buf. Any thread. */
static void redis_lock_token(char *buf, size_t len)
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

/* Timer callback: renews the lease when due; when ownership cannot be
 * confirmed for a whole lock_ttl, or another instance took it, asks the
 * host to stop the process. The host's timer thread. */
static void redis_lock_renew(void *arg)
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

/* Releases the lock if we hold it (compare-and-delete). Any thread, not
 * concurrently with redis_lock_acquire(). */
static void redis_lock_release(struct redis_instance *in)
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

/*
 * Takes the lock, waiting as standby (one attempt every lock_ttl/3)
 * while another instance holds it, then starts the renewal timer.
 * Returns FERRY_OK, FERRY_CLOSED (stopped while waiting) or FERRY_ERROR
 * (SET refused, or no timer; logged). Main thread, from start().
 */
static int redis_lock_acquire(struct redis_instance *in)
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

/* Undoes start. Not concurrently with start(). */
static void redis_shutdown(struct redis_instance *in)
{
    if (in->hooks.stopping)
        in->hooks.stopping(in->hooks.arg);
    if (in->renew_timer) {
        in->host->timer_stop(in->renew_timer);
        in->renew_timer = NULL;
    }
    redis_lock_release(in);
}

int redis_instance_start(struct redis_instance *in)
{
    int rc, stopping;

    pthread_mutex_lock(&in->mu);
    in->starting = 1;
    pthread_mutex_unlock(&in->mu);
    rc = redis_start_inner(in);
    pthread_mutex_lock(&in->mu);
    in->starting = 0;
    stopping = in->stopping;
    pthread_mutex_unlock(&in->mu);
    if (rc == FERRY_OK && stopping)
        rc = FERRY_CLOSED;
    if (rc != FERRY_OK)
        redis_shutdown(in);
    return rc;
}

void redis_instance_stop(struct redis_instance *in)
{
    int starting;

    pthread_mutex_lock(&in->mu);
    in->stopping = 1;
    starting = in->starting;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
    if (!starting)
        redis_shutdown(in);
}

/* ---- reading keys, probing ---------------------------------------------- */

/* Copies the string replies of the last exec into vals (conn_mu held). */
static void redis_get_collect(struct redis_instance *in, size_t n,
                              char **vals)
{
    size_t i;

    for (i = 0; i < n; i++) {
        redisReply *r = redis_conn_reply(in->conn, i);

        if (r && r->type == REDIS_REPLY_STRING) {
            vals[i] = redis_xalloc(r->len + 1);
            memcpy(vals[i], r->str, r->len);
            vals[i][r->len] = '\0';
        } else if (r && r->type == REDIS_REPLY_ERROR) {
            in->host->log(in->ctx, FERRY_LOG_WARN,
                          "reading the replay cursor: %s", r->str);
        }
    }
    redis_conn_reset(in->conn);
}

int redis_instance_get(struct redis_instance *in, size_t n,
                       const char *const *keys, char **vals)
{
    uint64_t backoff = 500;
    size_t i;

    for (i = 0; i < n; i++)
        vals[i] = NULL;
    for (;;) {
        int rc;

        pthread_mutex_lock(&in->conn_mu);
        for (i = 0; i < n; i++)
            redis_conn_cmd(in->conn, "GET", keys[i], NULL);
        rc = redis_instance_exec(in);
        if (rc == FERRY_OK)
            redis_get_collect(in, n, vals);
        pthread_mutex_unlock(&in->conn_mu);
        if (rc == FERRY_OK)
            return FERRY_OK;
        in->host->log(in->ctx, FERRY_LOG_WARN,
                      "reading the replay cursor: %s; retrying",
                      redis_conn_error(in->conn));
        if (redis_instance_wait(in, backoff))
            return FERRY_CLOSED;
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

int redis_instance_probe(struct redis_instance *in, char *msg, size_t len,
                         const char *note)
{
    struct redis_conn *c = redis_conn_new(&in->opt.ep);
    const char *where = in->opt.where;
    redisReply *r;
    int rc = redis_conn_open(c);

    if (!note)
        note = "";
    if (rc != FERRY_OK) {
        snprintf(msg, len, "%s", redis_conn_error(c));
        redis_conn_free(c);
        return rc == FERRY_ERROR ? FERRY_ERROR : FERRY_RETRY;
    }
    redis_conn_cmd(c, "PING", NULL);
    rc = redis_conn_exec(c);
    if (rc != FERRY_OK) {
        snprintf(msg, len, "%s: %s", where, redis_conn_error(c));
    } else if ((r = redis_conn_reply(c, 0))->type != REDIS_REPLY_STATUS) {
        snprintf(msg, len, "%s: PING refused: %s", where,
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
        rc = FERRY_ERROR;
    } else {
        snprintf(msg, len, "%s: PING answered %s%s", where, r->str, note);
    }
    redis_conn_free(c);
    return rc;
}

/* ---- worker links ------------------------------------------------------- */

void redis_link_init(struct redis_instance *in, struct redis_link *link,
                     unsigned index)
{
    memset(link, 0, sizeof(*link));
    link->in = in;
    link->index = index;
    link->conn = redis_conn_new(&in->opt.ep);
}

void redis_link_release(struct redis_link *link)
{
    redis_conn_free(link->conn);
    link->conn = NULL;
}

int redis_link_connect(struct redis_link *link)
{
    struct redis_instance *in = link->in;
    int rc;

    if (redis_conn_is_open(link->conn))
        return FERRY_OK;
    rc = redis_conn_open(link->conn);
    if (rc == FERRY_OK) {
        if (link->was_connected) {
            in->host->metric_add(in->m.reconnects, 1);
            in->host->log(in->ctx, FERRY_LOG_INFO,
                          "worker %u: reconnected to %s", link->index,
                          in->opt.where);
        }
        link->was_connected = 1;
        link->failing = 0;
        redis_instance_component(in, FERRY_COMPONENT_CONNECTED);
        return FERRY_OK;
    }
    redis_instance_component(in, FERRY_COMPONENT_DISCONNECTED);
    /* Once per outage per worker; the core logs the retries. */
    in->host->log(in->ctx,
                  rc == FERRY_ERROR ? FERRY_LOG_ERROR
                  : link->failing   ? FERRY_LOG_DEBUG
                                    : FERRY_LOG_WARN,
                  "worker %u: %s", link->index, redis_conn_error(link->conn));
    link->failing = 1;
    return FERRY_RETRY;
}

int redis_cursor_store(struct redis_link *link, const char *key,
                       const struct ferry_pos *pos)
{
    struct redis_instance *in = link->in;
    char p[FERRY_POS_STRLEN];
    redisReply *r;

    if (!pos->set)
        return FERRY_OK;
    if (redis_instance_lock_lost(in))
        return FERRY_RETRY;
    if (redis_link_connect(link) != FERRY_OK)
        return FERRY_RETRY;
    ferry_pos_format(pos, p, sizeof(p));
    redis_cmd_cursor(link->conn, key, pos);
    in->host->metric_add(in->m.eval, 1);
    in->host->metric_add(in->m.roundtrips, 1);
    if (redis_conn_exec(link->conn) != FERRY_OK) {
        in->host->log(in->ctx, FERRY_LOG_WARN, "checkpoint %s: %s", p,
                      redis_conn_error(link->conn));
        redis_instance_component(in, FERRY_COMPONENT_DISCONNECTED);
        return FERRY_RETRY;
    }
    r = redis_conn_reply(link->conn, 0);
    if (r->type == REDIS_REPLY_ERROR) {
        in->host->log(in->ctx, FERRY_LOG_ERROR, "checkpoint %s: %s", p,
                      r->str);
        redis_conn_reset(link->conn);
        return FERRY_RETRY;
    }
    redis_conn_reset(link->conn);
    return FERRY_OK;
}

/* ---- SCAN-driven deletion ----------------------------------------------- */

/* Queues a DEL for every key of the SCAN reply keys that pred() picks;
 * returns how many. The keys are copied: queueing frees the reply. */
static size_t redis_scan_queue(struct redis_conn *c, const redisReply *keys,
                               int (*pred)(void *, const char *, size_t),
                               void *arg)
{
    size_t nk = keys->elements, i, ndel = 0;
    char **del = redis_xcalloc(nk ? nk : 1, sizeof(*del));
    size_t *dlen = redis_xcalloc(nk ? nk : 1, sizeof(*dlen));

    for (i = 0; i < nk; i++) {
        const redisReply *k = keys->element[i];

        if (k->type == REDIS_REPLY_STRING && pred(arg, k->str, k->len)) {
            del[ndel] = redis_xalloc(k->len + 1);
            memcpy(del[ndel], k->str, k->len + 1);
            dlen[ndel] = k->len;
            ndel++;
        }
    }
    for (i = 0; i < ndel; i++) {
        redis_cmd_del(c, 1, (const char *const *)&del[i], &dlen[i]);
        free(del[i]);
    }
    free(del);
    free(dlen);
    return ndel;
}

int redis_scan_delete(struct redis_instance *in, struct redis_conn *c,
                      const char *pattern, const char *count,
                      int (*pred)(void *arg, const char *key, size_t len),
                      void *arg, int (*pause)(void *parg), void *parg,
                      uint64_t *scanned, uint64_t *deleted)
{
    const struct ferry_host *h = in->host;
    char cursor[32] = "0";

    do {
        redisReply *r;
        size_t i, ndel;

        redis_conn_cmd(c, "SCAN", cursor, "MATCH", pattern, "COUNT", count,
                       NULL);
        h->metric_add(in->m.scan, 1);
        h->metric_add(in->m.roundtrips, 1);
        if (redis_conn_exec(c) != FERRY_OK)
            return FERRY_RETRY;
        r = redis_conn_reply(c, 0);
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            int cls = redis_reply_class(r);

            h->log(in->ctx, FERRY_LOG_WARN, "SCAN %s: %s", pattern,
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            redis_conn_reset(c);
            return cls == REDIS_CLASS_DATA ? FERRY_ERROR : FERRY_RETRY;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        *scanned += r->element[1]->elements;
        ndel = redis_scan_queue(c, r->element[1], pred, arg);
        if (ndel) {
            h->metric_add(in->m.del, (double)ndel);
            h->metric_add(in->m.roundtrips, 1);
            if (redis_conn_exec(c) != FERRY_OK)
                return FERRY_RETRY;
            for (i = 0; i < ndel; i++) {
                r = redis_conn_reply(c, i);
                if (r->type == REDIS_REPLY_INTEGER)
                    *deleted += (uint64_t)r->integer;
            }
        }
        redis_conn_reset(c);
        if (pause && strcmp(cursor, "0") != 0 && pause(parg))
            return FERRY_CLOSED;
    } while (strcmp(cursor, "0") != 0);
    return FERRY_OK;
}
