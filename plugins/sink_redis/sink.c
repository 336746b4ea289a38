/*
 * plugins/sink_redis: writes the Schematic Redis cache that SDKs read in
 * replicator mode (schematic-datastream.md sections 6-9, 11, 13).
 *
 * This file: the descriptor and options, start() (connect, writer lock),
 * load_position() (replay cursor vouched for by load_complete),
 * checkpoint(), the lock renewal timer and the cleanup of other cache
 * versions. The batch path is in apply.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "schematic/datastream.h"
#include "sink.h"

/* Default cache version: the rules-engine version key of the Node SDK
 * 1.6.2 (schematic-datastream.md 13). Readers that poll /ready read
 * whatever version it publishes; readers without a health URL fall back
 * to their own WASM key, so this default also serves them. */
#define REDIS_DEFAULT_VERSION "4b54a537"

/* Keys SCAN asks for per round in the periodic cleanup, and the pause
 * between rounds: the cleanup is background work and yields to traffic. */
#define REDIS_CLEANUP_COUNT "500"
#define REDIS_CLEANUP_PAUSE_MS 10

const char redis_cursor_script[] =
    "local function cmp(a, b)\n"
    "  a = (string.gsub(a, '^0+', ''))\n"
    "  b = (string.gsub(b, '^0+', ''))\n"
    "  if #a ~= #b then if #a < #b then return -1 end return 1 end\n"
    "  if a == b then return 0 end\n"
    "  if a < b then return -1 end return 1\n"
    "end\n"
    "local ms, seq = string.match(ARGV[1], '^(%d+)%-(%d+)$')\n"
    "if not ms then return redis.error_reply('ERR bad position') end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  local cms, cseq = string.match(cur, '^(%d+)%-(%d+)$')\n"
    "  if cms then\n"
    "    local c = cmp(ms, cms)\n"
    "    if c < 0 or (c == 0 and cmp(seq, cseq) <= 0) then return 0 end\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "return 1\n";

/* Extends the lease only while it holds our token. */
static const char redis_renew_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n";

/* Deletes the lock only while it holds our token. */
static const char redis_release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

static const struct ferry_option redis_options[] = {
    {.name = "address",
     .type = FERRY_OPT_STRING,
     .def = "127.0.0.1:6379",
     .description = "host:port, redis://[user:pass@]host:port[/db] or "
                    "unix:/path"},
    {.name = "username",
     .type = FERRY_OPT_STRING,
     .description = "ACL user name for AUTH"},
    {.name = "password",
     .type = FERRY_OPT_STRING,
     .flags = FERRY_OPT_SECRET,
     .description = "password for AUTH"},
    {.name = "db",
     .type = FERRY_OPT_INT,
     .def = "0",
     .min = 0,
     .max = 2147483647.0,
     .description = "database number (SELECT)"},
    {.name = "cluster_addrs",
     .type = FERRY_OPT_LIST,
     .description = "Redis Cluster seed nodes (not supported yet)"},
    {.name = "key_prefix",
     .type = FERRY_OPT_STRING,
     .def = "schematic",
     .description = "first segment of every key"},
    {.name = "cache_version",
     .type = FERRY_OPT_STRING,
     .def = REDIS_DEFAULT_VERSION,
     .description = "cache version {v}: 3rd key segment, published in "
                    "/ready; keep it stable across restarts"},
    {.name = "ttl",
     .type = FERRY_OPT_DURATION,
     .def = "0",
     .min = 0,
     .max = 3153600000000.0,
     .description = "expiry of every cache key; 0 = none"},
    {.name = "connect_timeout",
     .type = FERRY_OPT_DURATION,
     .def = "5s",
     .min = 1,
     .max = 3600000,
     .description = "limit for connecting, AUTH and SELECT"},
    {.name = "command_timeout",
     .type = FERRY_OPT_DURATION,
     .def = "5s",
     .min = 1,
     .max = 3600000,
     .description = "limit for one pipelined round trip"},
    {.name = "writer_lock",
     .type = FERRY_OPT_BOOL,
     .def = "true",
     .description = "hold a single-writer lease; others wait as standby"},
    {.name = "lock_ttl",
     .type = FERRY_OPT_DURATION,
     .def = "15s",
     .min = 300,
     .max = 3600000,
     .description = "writer lease; renewed every lock_ttl/3"},
    {.name = "cleanup_interval",
     .type = FERRY_OPT_DURATION,
     .def = "1h",
     .min = 0,
     .max = 2592000000.0,
     .description = "delete other cache versions' keys this often; "
                    "0 = never"},
    {.name = NULL},
};

/* ---- small helpers shared with apply.c ------------------------------- */

int redis_key_segments(const struct redis_sink *s, const char *key, size_t len)
{
    size_t plen = strlen(s->prefix), i;
    int segs = 1;

    if (len <= plen || memcmp(key, s->prefix, plen) != 0 || key[plen] != ':')
        return -1;
    for (i = plen + 1; i < len; i++)
        if (key[i] == ':')
            segs++;
    return segs;
}

/* Appends src to buf escaping SCAN glob characters. */
static size_t redis_glob_escape(char *buf, size_t pos, size_t len,
                                const char *src)
{
    for (; *src && pos + 2 < len; src++) {
        if (strchr("*?[]\\", *src))
            buf[pos++] = '\\';
        buf[pos++] = *src;
    }
    buf[pos] = '\0';
    return pos;
}

void redis_match_pattern(const struct redis_sink *s, const char *mid, char *buf,
                         size_t len)
{
    size_t pos = redis_glob_escape(buf, 0, len, s->prefix);

    if (pos + 2 < len)
        buf[pos++] = ':';
    pos = redis_glob_escape(buf, pos, len, mid);
    if (pos + 1 < len)
        buf[pos++] = '*';
    buf[pos] = '\0';
}

void redis_sink_component(struct redis_sink *s, int state)
{
    if (atomic_exchange(&s->redis_state, state) != state)
        s->host->set_component(s->ctx, "redis", state);
}

int redis_worker_connect(struct redis_worker *w)
{
    struct redis_sink *s = w->s;
    int rc;

    if (redis_conn_is_open(w->conn))
        return FERRY_OK;
    rc = redis_conn_open(w->conn);
    if (rc == FERRY_OK) {
        if (w->was_connected) {
            s->host->metric_add(s->m_reconnects, 1);
            s->host->log(s->ctx, FERRY_LOG_INFO, "worker %u: reconnected to %s",
                         w->index, s->where);
        }
        w->was_connected = 1;
        w->failing = 0;
        redis_sink_component(s, FERRY_COMPONENT_CONNECTED);
        return FERRY_OK;
    }
    redis_sink_component(s, FERRY_COMPONENT_DISCONNECTED);
    /* Once per outage per worker; the core logs the retries. */
    s->host->log(s->ctx,
                 rc == FERRY_ERROR ? FERRY_LOG_ERROR
                 : w->failing      ? FERRY_LOG_DEBUG
                                   : FERRY_LOG_WARN,
                 "worker %u: %s", w->index, redis_conn_error(w->conn));
    w->failing = 1;
    return FERRY_RETRY;
}

/* ---- waiting ------------------------------------------------------------ */

/* Waits up to ms or until stop(). Returns nonzero when stopping. */
static int redis_wait(struct redis_sink *s, uint64_t ms)
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
    pthread_mutex_lock(&s->mu);
    while (!s->stopping &&
           pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT)
        ;
    stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stopping;
}

/* ---- init / fini -------------------------------------------------------- */

static int redis_check_segment(const struct ferry_host *host,
                               struct ferry_ctx *ctx, const char *name,
                               const char *v, size_t max, int allow_colon)
{
    const char *p;

    if (!v || !*v) {
        host->log(ctx, FERRY_LOG_ERROR, "%s: must not be empty", name);
        return -1;
    }
    if (strlen(v) > max) {
        host->log(ctx, FERRY_LOG_ERROR, "%s: longer than %zu characters", name,
                  max);
        return -1;
    }
    for (p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c <= ' ' || c == 0x7f) {
            host->log(ctx, FERRY_LOG_ERROR,
                      "%s: '%s' contains a space or control character", name,
                      v);
            return -1;
        }
        if (c == ':' && !allow_colon) {
            host->log(ctx, FERRY_LOG_ERROR,
                      "%s: '%s' must not contain ':' (it is one key "
                      "segment)",
                      name, v);
            return -1;
        }
    }
    return 0;
}

static char *redis_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *r = redis_xalloc(la + lb + 2);

    memcpy(r, a, la);
    r[la] = ':';
    memcpy(r + la + 1, b, lb + 1);
    return r;
}

static struct ferry_metric *redis_counter(struct redis_sink *s,
                                          const char *name, const char *help,
                                          const char *label, const char *value)
{
    const char *labels[3] = {label, value, NULL};

    return s->host->metric(s->ctx, FERRY_METRIC_COUNTER, name, help,
                           label ? labels : NULL);
}

static void redis_register_metrics(struct redis_sink *s)
{
    static const char ops[] = "Redis commands (set/del per key) sent";
    static const char ev[] = "keys deleted by eviction, per reason";

    s->m_set =
        redis_counter(s, "ferry_sink_operations_total", ops, "op", "set");
    s->m_del =
        redis_counter(s, "ferry_sink_operations_total", ops, "op", "del");
    s->m_mget =
        redis_counter(s, "ferry_sink_operations_total", ops, "op", "mget");
    s->m_scan =
        redis_counter(s, "ferry_sink_operations_total", ops, "op", "scan");
    s->m_eval =
        redis_counter(s, "ferry_sink_operations_total", ops, "op", "eval");
    s->m_poison =
        redis_counter(s, "ferry_sink_poison_total",
                      "messages skipped as permanently bad", NULL, NULL);
    s->m_reconnects =
        redis_counter(s, "ferry_sink_reconnects_total",
                      "Redis connections re-established", NULL, NULL);
    s->m_evict_snapshot =
        redis_counter(s, "ferry_sink_evicted_total", ev, "reason", "snapshot");
    s->m_evict_load =
        redis_counter(s, "ferry_sink_evicted_total", ev, "reason", "load");
    s->m_evict_cleanup =
        redis_counter(s, "ferry_sink_evicted_total", ev, "reason", "cleanup");
    s->m_roundtrips = redis_counter(s, "ferry_sink_roundtrips_total",
                                    "pipelined Redis round trips", NULL, NULL);
    s->m_lock_held = s->host->metric(s->ctx, FERRY_METRIC_GAUGE,
                                     "ferry_sink_writer_lock_held",
                                     "1 while this instance holds the "
                                     "writer lock",
                                     NULL);
    s->m_write_seconds = s->host->metric(s->ctx, FERRY_METRIC_HISTOGRAM,
                                         "ferry_sink_write_seconds",
                                         "duration of one write() call", NULL);
}

static void redis_sink_free(struct redis_sink *s)
{
    redis_conn_free(s->conn);
    redis_endpoint_release(&s->ep);
    free(s->prefix);
    free(s->version);
    free(s->cursor_key);
    free(s->lock_key);
    free(s->complete_key);
    redis_keyset_release(&s->load_keys);
    redis_keyset_release(&s->snap_keys);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->conn_mu);
    pthread_mutex_destroy(&s->track_mu);
    free(s);
}

/* Merges username/password/db options with what a redis:// URL gave. */
static int redis_merge_auth(struct redis_sink *s)
{
    const struct ferry_host *h = s->host;
    const char *user = h->opt_str(s->ctx, "username");
    const char *pass = h->opt_str(s->ctx, "password");
    int64_t db = h->opt_int(s->ctx, "db");

    if (user && *user) {
        if (s->ep.username) {
            h->log(s->ctx, FERRY_LOG_ERROR,
                   "username: also given in address; set it once");
            return -1;
        }
        s->ep.username = redis_xstrdup(user);
    }
    if (pass && *pass)
        s->ep.password = redis_xstrdup(pass);
    if (s->ep.username && !s->ep.password) {
        h->log(s->ctx, FERRY_LOG_ERROR, "username: needs a password as well");
        return -1;
    }
    if (s->ep.db >= 0) {
        if (h->opt_is_set(s->ctx, "db") && db != s->ep.db) {
            h->log(s->ctx, FERRY_LOG_ERROR,
                   "db: %lld, but address names database %lld", (long long)db,
                   (long long)s->ep.db);
            return -1;
        }
    } else {
        s->ep.db = db;
    }
    return 0;
}

static int redis_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                      void **state)
{
    struct redis_sink *s = redis_xcalloc(1, sizeof(*s));
    const char *const *items = NULL;
    pthread_condattr_t ca;
    char err[256];
    const char *v;

    s->host = host;
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_mutex_init(&s->track_mu, NULL);
    atomic_init(&s->lock_held, 0);
    atomic_init(&s->lock_lost, 0);
    atomic_init(&s->redis_state, FERRY_COMPONENT_UNKNOWN);

    if (host->opt_list(ctx, "cluster_addrs", &items) > 0) {
        host->log(ctx, FERRY_LOG_ERROR,
                  "cluster_addrs: Redis Cluster is not supported yet");
        goto fail;
    }
    v = host->opt_str(ctx, "address");
    if (redis_endpoint_parse(v, &s->ep, err, sizeof(err)) < 0) {
        host->log(ctx, FERRY_LOG_ERROR, "address: %s", err);
        goto fail;
    }
    if (s->ep.password) {
        /* `ferry check` prints the address and logs name it: the
         * password has its own, secret, option. */
        host->log(ctx, FERRY_LOG_ERROR,
                  "address: holds a password, which ferry check would "
                  "print; set it with the password option instead");
        goto fail;
    }
    if (redis_merge_auth(s) < 0)
        goto fail;
    s->ep.connect_timeout_ms = host->opt_duration_ms(ctx, "connect_timeout");
    s->ep.command_timeout_ms = host->opt_duration_ms(ctx, "command_timeout");
    redis_endpoint_describe(&s->ep, s->where, sizeof(s->where));

    v = host->opt_str(ctx, "key_prefix");
    if (redis_check_segment(host, ctx, "key_prefix", v, REDIS_MAX_PREFIX, 1) <
        0)
        goto fail;
    s->prefix = redis_xstrdup(v);
    v = host->opt_str(ctx, "cache_version");
    if (redis_check_segment(host, ctx, "cache_version", v, REDIS_MAX_VERSION,
                            0) < 0)
        goto fail;
    s->version = redis_xstrdup(v);

    s->ttl_ms = host->opt_duration_ms(ctx, "ttl");
    snprintf(s->ttl_arg, sizeof(s->ttl_arg), "%" PRIu64, s->ttl_ms);
    s->writer_lock = host->opt_bool(ctx, "writer_lock");
    s->lock_ttl_ms = host->opt_duration_ms(ctx, "lock_ttl");
    s->cleanup_ms = host->opt_duration_ms(ctx, "cleanup_interval");
    s->cursor_key = redis_join(s->prefix, "datastream:replay_cursor");
    s->lock_key = redis_join(s->prefix, "datastream:writer_lock");
    s->complete_key = redis_join(s->prefix, "datastream:load_complete");
    s->conn = redis_conn_new(&s->ep);

    redis_register_metrics(s);
    /* /ready must show the version and answer 503 until the cache is
     * complete, even before start(). */
    host->set_info(ctx, "cache_version", s->version);
    host->set_ready(ctx, 0);
    *state = s;
    return FERRY_OK;
fail:
    redis_sink_free(s);
    return FERRY_EINVAL;
}

/* ---- the writer lock ---------------------------------------------------- */

static void redis_make_token(struct redis_sink *s)
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
            uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)s;

            for (i = 0; i < sizeof(rnd); i++)
                rnd[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
            break;
        }
        got += (size_t)n;
    }
    for (i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(s->token, sizeof(s->token), "%s-%ld-%s", host, (long)getpid(),
             hex);
}

static uint64_t redis_now_ns(const struct redis_sink *s)
{
    return s->host->now_ns();
}

static uint64_t redis_lock_period_ms(const struct redis_sink *s)
{
    uint64_t p = s->lock_ttl_ms / 3;

    return p < 100 ? 100 : p;
}

/* The renewal timer ticks at most a second apart: a renewal is due every
 * lock_ttl/3, but after a failed one the next tick tries again, so a short
 * outage (a DEBUG SLEEP, a restart) costs the lease only when ownership
 * really cannot be confirmed for a whole lock_ttl. */
static uint64_t redis_lock_tick_ms(const struct redis_sink *s)
{
    uint64_t p = redis_lock_period_ms(s);

    return p > 1000 ? 1000 : p;
}

/* One round trip on the instance connection (conn_mu held). Returns
 * FERRY_OK with the replies, FERRY_RETRY, or FERRY_ERROR (AUTH refused). */
static int redis_inst_exec(struct redis_sink *s)
{
    int rc = redis_conn_open(s->conn);

    if (rc != FERRY_OK) {
        redis_conn_reset(s->conn);
        return rc;
    }
    s->host->metric_add(s->m_roundtrips, 1);
    return redis_conn_exec(s->conn);
}

/* Runs the renewal script (conn_mu held): 1 owner, 0 not, -1 error. */
static int redis_lock_renew_once(struct redis_sink *s)
{
    char ttl[24];
    redisReply *r;

    snprintf(ttl, sizeof(ttl), "%" PRIu64, s->lock_ttl_ms);
    redis_conn_cmd(s->conn, "EVAL", redis_renew_script, "1", s->lock_key,
                   s->token, ttl, NULL);
    s->host->metric_add(s->m_eval, 1);
    if (redis_inst_exec(s) != FERRY_OK)
        return -1;
    r = redis_conn_reply(s->conn, 0);
    if (r->type != REDIS_REPLY_INTEGER)
        return -1;
    if (r->integer == 1)
        return 1;
    /* The lease lapsed. If nobody took it meanwhile, take it back. */
    redis_conn_cmd(s->conn, "SET", s->lock_key, s->token, "NX", "PX", ttl,
                   NULL);
    if (redis_inst_exec(s) != FERRY_OK)
        return -1;
    r = redis_conn_reply(s->conn, 0);
    if (r->type == REDIS_REPLY_STATUS) {
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "writer lock had expired; re-acquired it");
        return 1;
    }
    return r->type == REDIS_REPLY_NIL ? 0 : -1;
}

/* Timer thread: renews the lease; stops the process when ownership cannot
 * be confirmed for a full lock_ttl. */
static void redis_lock_renew(void *arg)
{
    struct redis_sink *s = arg;
    int rc, lost = 0;
    uint64_t now;

    if (!atomic_load(&s->lock_held))
        return;
    now = redis_now_ns(s);
    if (!s->renew_failing &&
        now - s->lock_confirmed_ns < redis_lock_period_ms(s) * 1000000ull)
        return;
    pthread_mutex_lock(&s->conn_mu);
    rc = redis_lock_renew_once(s);
    now = redis_now_ns(s);
    s->renew_failing = rc == -1;
    if (rc == 1) {
        s->lock_confirmed_ns = now;
    } else if (rc == 0) {
        lost = 1;
    } else {
        s->host->log(s->ctx, FERRY_LOG_WARN, "writer lock renewal failed: %s",
                     redis_conn_error(s->conn));
        redis_sink_component(s, FERRY_COMPONENT_DISCONNECTED);
        if (now - s->lock_confirmed_ns >= s->lock_ttl_ms * 1000000ull)
            lost = 1;
    }
    pthread_mutex_unlock(&s->conn_mu);
    if (lost && atomic_exchange(&s->lock_held, 0)) {
        atomic_store(&s->lock_lost, 1);
        s->host->metric_set(s->m_lock_held, 0);
        s->host->log(s->ctx, FERRY_LOG_ERROR, "writer lock lost: %s",
                     rc == 0 ? "another instance holds it"
                             : "ownership unconfirmed for lock_ttl");
        s->host->request_stop(s->ctx, 1, "writer lock lost");
    }
}

/* Releases the lock if we hold it (compare-and-DEL). */
static void redis_lock_release(struct redis_sink *s)
{
    redisReply *r;

    if (!atomic_exchange(&s->lock_held, 0))
        return;
    pthread_mutex_lock(&s->conn_mu);
    redis_conn_cmd(s->conn, "EVAL", redis_release_script, "1", s->lock_key,
                   s->token, NULL);
    if (redis_inst_exec(s) == FERRY_OK &&
        (r = redis_conn_reply(s->conn, 0))->type == REDIS_REPLY_INTEGER)
        s->host->log(s->ctx, FERRY_LOG_INFO, "writer lock %s",
                     r->integer == 1 ? "released" : "was no longer ours");
    else
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "could not release the writer lock (%s); it lapses "
                     "after lock_ttl",
                     redis_conn_error(s->conn));
    redis_conn_reset(s->conn);
    pthread_mutex_unlock(&s->conn_mu);
    s->host->metric_set(s->m_lock_held, 0);
}

/* Tries SET NX once (conn_mu held): 1 acquired, 0 held by another (holder
 * in buf), -1 connection error, -2 refused. */
static int redis_lock_try(struct redis_sink *s, char *holder, size_t len)
{
    char ttl[24];
    redisReply *r;

    snprintf(ttl, sizeof(ttl), "%" PRIu64, s->lock_ttl_ms);
    redis_conn_cmd(s->conn, "SET", s->lock_key, s->token, "NX", "PX", ttl,
                   NULL);
    redis_conn_cmd(s->conn, "GET", s->lock_key, NULL);
    if (redis_inst_exec(s) != FERRY_OK)
        return -1;
    r = redis_conn_reply(s->conn, 0);
    if (r->type == REDIS_REPLY_STATUS)
        return 1;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(holder, len, "%s", r->str);
        return -2;
    }
    r = redis_conn_reply(s->conn, 1);
    snprintf(holder, len, "%s",
             r->type == REDIS_REPLY_STRING ? r->str : "(expired)");
    return 0;
}

/* ---- start / stop ------------------------------------------------------- */

/* Connects the instance connection and PINGs, retrying until stop().
 * conn_mu is held on return with FERRY_OK. */
static int redis_start_connect(struct redis_sink *s)
{
    uint64_t backoff = 500;
    int warned = 0;

    for (;;) {
        int rc;

        pthread_mutex_lock(&s->conn_mu);
        redis_conn_cmd(s->conn, "PING", NULL);
        rc = redis_inst_exec(s);
        if (rc == FERRY_OK) {
            redisReply *r = redis_conn_reply(s->conn, 0);

            if (r->type == REDIS_REPLY_STATUS)
                return FERRY_OK;
            /* NOAUTH: the server wants a password we do not have. */
            s->host->log(s->ctx, FERRY_LOG_ERROR, "%s: PING refused: %s",
                         s->where, r->type == REDIS_REPLY_ERROR ? r->str : "?");
            rc = redis_reply_class(r) == REDIS_CLASS_TRANSIENT ? FERRY_RETRY
                                                               : FERRY_ERROR;
            redis_conn_close(s->conn);
            if (rc == FERRY_ERROR) {
                pthread_mutex_unlock(&s->conn_mu);
                return rc;
            }
        }
        pthread_mutex_unlock(&s->conn_mu);
        if (rc == FERRY_ERROR) {
            s->host->log(s->ctx, FERRY_LOG_ERROR, "%s: %s", s->where,
                         redis_conn_error(s->conn));
            return FERRY_ERROR;
        }
        redis_sink_component(s, FERRY_COMPONENT_DISCONNECTED);
        s->host->log(s->ctx, warned ? FERRY_LOG_DEBUG : FERRY_LOG_WARN,
                     "%s; retrying (backoff up to 30s)",
                     redis_conn_error(s->conn));
        warned = 1;
        if (redis_wait(s, backoff))
            return FERRY_CLOSED;
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    }
}

static void *redis_cleanup_main(void *arg);

static int redis_start_inner(struct redis_sink *s)
{
    char holder[200], last_holder[200] = "";
    int rc;

    rc = redis_start_connect(s);
    if (rc != FERRY_OK)
        return rc;
    pthread_mutex_unlock(&s->conn_mu);
    s->host->log(s->ctx, FERRY_LOG_INFO, "connected to %s (cache version %s)",
                 s->where, s->version);
    redis_sink_component(s, FERRY_COMPONENT_CONNECTED);

    if (!s->writer_lock) {
        s->host->set_info(s->ctx, "writer_lock", "disabled");
    } else {
        redis_make_token(s);
        for (;;) {
            pthread_mutex_lock(&s->conn_mu);
            rc = redis_lock_try(s, holder, sizeof(holder));
            if (rc == 1) {
                s->lock_confirmed_ns = redis_now_ns(s);
                atomic_store(&s->lock_held, 1);
            }
            pthread_mutex_unlock(&s->conn_mu);
            if (rc == 1)
                break;
            if (rc == -2) {
                s->host->log(s->ctx, FERRY_LOG_ERROR,
                             "writer lock: SET refused: %s", holder);
                return FERRY_ERROR;
            }
            if (rc == 0 && strcmp(holder, last_holder) != 0) {
                s->host->log(s->ctx, FERRY_LOG_WARN,
                             "standby: writer lock held by %s; retrying "
                             "every %" PRIu64 "ms",
                             holder, redis_lock_period_ms(s));
                s->host->set_info(s->ctx, "writer_lock", holder);
                snprintf(last_holder, sizeof(last_holder), "%s", holder);
            } else if (rc < 0) {
                redis_sink_component(s, FERRY_COMPONENT_DISCONNECTED);
                s->host->log(s->ctx, FERRY_LOG_WARN,
                             "writer lock: %s; retrying",
                             redis_conn_error(s->conn));
            }
            if (redis_wait(s, redis_lock_period_ms(s)))
                return FERRY_CLOSED;
        }
        redis_sink_component(s, FERRY_COMPONENT_CONNECTED);
        s->host->log(s->ctx, FERRY_LOG_INFO, "writer lock acquired (%s)",
                     s->token);
        s->host->set_info(s->ctx, "writer_lock", s->token);
        s->host->metric_set(s->m_lock_held, 1);
        s->renew_timer = s->host->timer_start(s->ctx, redis_lock_tick_ms(s),
                                              redis_lock_renew, s);
        if (!s->renew_timer) {
            s->host->log(s->ctx, FERRY_LOG_ERROR,
                         "cannot start the writer lock renewal timer");
            return FERRY_ERROR;
        }
    }
    if (s->cleanup_ms > 0) {
        if (pthread_create(&s->cleanup_thread, NULL, redis_cleanup_main, s) ==
            0)
            s->cleanup_started = 1;
        else
            s->host->log(s->ctx, FERRY_LOG_WARN,
                         "cannot start the cleanup thread; other cache "
                         "versions will not be removed");
    }
    return FERRY_OK;
}

/* Stops the cleanup thread and the renewal timer and releases the lock.
 * Not concurrently with start(). */
static void redis_shutdown(struct redis_sink *s)
{
    if (s->cleanup_started) {
        pthread_join(s->cleanup_thread, NULL);
        s->cleanup_started = 0;
    }
    if (s->renew_timer) {
        s->host->timer_stop(s->renew_timer);
        s->renew_timer = NULL;
    }
    redis_lock_release(s);
}

static int redis_start(void *state)
{
    struct redis_sink *s = state;
    int rc, stopping;

    pthread_mutex_lock(&s->mu);
    s->starting = 1;
    pthread_mutex_unlock(&s->mu);
    rc = redis_start_inner(s);
    pthread_mutex_lock(&s->mu);
    s->starting = 0;
    stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    if (rc == FERRY_OK && stopping)
        rc = FERRY_CLOSED;
    if (rc != FERRY_OK)
        redis_shutdown(s);
    return rc;
}

/* Any thread. Makes a start() in standby return FERRY_CLOSED (it then
 * cleans up itself); otherwise, as the core calls it once every worker
 * has drained, stops the background work and releases the writer lock. */
static void redis_stop(void *state)
{
    struct redis_sink *s = state;
    int starting;

    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    starting = s->starting;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!starting)
        redis_shutdown(s);
}

static void redis_fini(void *state)
{
    struct redis_sink *s = state;

    if (!s)
        return;
    redis_stop(s);
    redis_sink_free(s);
}

/* ---- replay position ---------------------------------------------------- */

static int redis_load_position(void *state, struct ferry_pos *out)
{
    struct redis_sink *s = state;
    char cursor[64] = "", marker[REDIS_MAX_VERSION + 8] = "";
    int have_cursor = 0, have_marker = 0;
    uint64_t backoff = 500;

    for (;;) {
        int rc;

        pthread_mutex_lock(&s->conn_mu);
        redis_conn_cmd(s->conn, "GET", s->cursor_key, NULL);
        redis_conn_cmd(s->conn, "GET", s->complete_key, NULL);
        rc = redis_inst_exec(s);
        if (rc == FERRY_OK) {
            redisReply *c = redis_conn_reply(s->conn, 0);
            redisReply *m = redis_conn_reply(s->conn, 1);

            if (c->type == REDIS_REPLY_STRING) {
                have_cursor = 1;
                snprintf(cursor, sizeof(cursor), "%.*s",
                         (int)(c->len < 63 ? c->len : 63), c->str);
            }
            if (m->type == REDIS_REPLY_STRING) {
                have_marker = 1;
                snprintf(marker, sizeof(marker), "%.*s",
                         (int)(m->len < sizeof(marker) - 1
                                   ? m->len
                                   : sizeof(marker) - 1),
                         m->str);
            }
            if (c->type == REDIS_REPLY_ERROR || m->type == REDIS_REPLY_ERROR)
                s->host->log(s->ctx, FERRY_LOG_WARN,
                             "reading the replay cursor: %s",
                             c->type == REDIS_REPLY_ERROR ? c->str : m->str);
            redis_conn_reset(s->conn);
        }
        pthread_mutex_unlock(&s->conn_mu);
        if (rc == FERRY_OK)
            break;
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "reading the replay cursor: %s; retrying",
                     redis_conn_error(s->conn));
        if (redis_wait(s, backoff))
            return FERRY_NOT_FOUND;
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }

    if (have_marker && strcmp(marker, s->version) == 0) {
        pthread_mutex_lock(&s->track_mu);
        s->complete_marked = 1;
        pthread_mutex_unlock(&s->track_mu);
        s->host->set_ready(s->ctx, 1);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "cache complete for version %s (load_complete marker)",
                     s->version);
    } else if (have_cursor) {
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "replay cursor %s discarded: load_complete is '%s', "
                     "not '%s'; a full load follows",
                     cursor, have_marker ? marker : "", s->version);
        return FERRY_NOT_FOUND;
    }
    if (!have_cursor)
        return FERRY_NOT_FOUND;
    if (ds_pos_parse(cursor, out) < 0) {
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "replay cursor '%s' is not <ms>-<seq>; a full load "
                     "follows",
                     cursor);
        return FERRY_NOT_FOUND;
    }
    return FERRY_OK;
}

/* Marks the cache complete once both the load and a snapshot are done. */
int redis_maybe_complete(struct redis_worker *w)
{
    struct redis_sink *s = w->s;
    const char *argv[5] = {"SET", s->complete_key, s->version, "PX",
                           s->ttl_arg};
    size_t lens[5];
    int due, rc, i;

    pthread_mutex_lock(&s->track_mu);
    due = s->load_done && s->snapshot_applied && !s->complete_marked;
    pthread_mutex_unlock(&s->track_mu);
    if (!due)
        return FERRY_OK;
    for (i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    redis_conn_cmd_argv(w->conn, s->ttl_ms ? 5 : 3, argv, lens);
    s->host->metric_add(s->m_set, 1);
    s->host->metric_add(s->m_roundtrips, 1);
    rc = redis_conn_exec(w->conn);
    if (rc != FERRY_OK)
        return FERRY_RETRY;
    if (redis_conn_reply(w->conn, 0)->type == REDIS_REPLY_ERROR) {
        s->host->log(s->ctx, FERRY_LOG_WARN, "setting load_complete: %s",
                     redis_conn_reply(w->conn, 0)->str);
        return FERRY_RETRY;
    }
    pthread_mutex_lock(&s->track_mu);
    s->complete_marked = 1;
    pthread_mutex_unlock(&s->track_mu);
    s->host->set_ready(s->ctx, 1);
    s->host->log(s->ctx, FERRY_LOG_INFO, "cache complete for version %s: ready",
                 s->version);
    return FERRY_OK;
}

/* ---- workers ------------------------------------------------------------ */

static int redis_open(void *state, unsigned worker, void **wctx)
{
    struct redis_sink *s = state;
    struct redis_worker *w = redis_xcalloc(1, sizeof(*w));

    w->s = s;
    w->index = worker;
    w->conn = redis_conn_new(&s->ep);
    *wctx = w;
    return FERRY_OK;
}

static void redis_close(void *wctx)
{
    struct redis_worker *w = wctx;

    if (!w)
        return;
    redis_conn_free(w->conn);
    free(w->reasons);
    free(w);
}

static int redis_write(void *wctx, struct ferry_batch *b)
{
    struct redis_worker *w = wctx;
    struct redis_sink *s = w->s;
    uint64_t t0 = redis_now_ns(s);
    int rc;

    if (atomic_load(&s->lock_lost))
        return FERRY_RETRY;
    rc = redis_apply(w, b);
    s->host->metric_observe(s->m_write_seconds,
                            (double)(redis_now_ns(s) - t0) / 1e9);
    return rc;
}

static int redis_checkpoint(void *wctx, const struct ferry_pos *pos)
{
    struct redis_worker *w = wctx;
    struct redis_sink *s = w->s;
    char p[FERRY_POS_STRLEN];
    redisReply *r;

    if (!pos->set)
        return FERRY_OK;
    if (atomic_load(&s->lock_lost))
        return FERRY_RETRY;
    if (redis_worker_connect(w) != FERRY_OK)
        return FERRY_RETRY;
    ferry_pos_format(pos, p, sizeof(p));
    redis_conn_cmd(w->conn, "EVAL", redis_cursor_script, "1", s->cursor_key, p,
                   NULL);
    s->host->metric_add(s->m_eval, 1);
    s->host->metric_add(s->m_roundtrips, 1);
    if (redis_conn_exec(w->conn) != FERRY_OK) {
        s->host->log(s->ctx, FERRY_LOG_WARN, "checkpoint %s: %s", p,
                     redis_conn_error(w->conn));
        redis_sink_component(s, FERRY_COMPONENT_DISCONNECTED);
        return FERRY_RETRY;
    }
    r = redis_conn_reply(w->conn, 0);
    if (r->type == REDIS_REPLY_ERROR) {
        s->host->log(s->ctx, FERRY_LOG_ERROR, "checkpoint %s: %s", p, r->str);
        redis_conn_reset(w->conn);
        return FERRY_RETRY;
    }
    redis_conn_reset(w->conn);
    return FERRY_OK;
}

/* ---- cleanup of other cache versions (7.9) ------------------------------ */

/* Deletes keys of >= 4 segments whose 3rd segment is another version. */
static int redis_cleanup_pred(void *arg, const char *key, size_t len)
{
    struct redis_sink *s = arg;
    size_t plen = strlen(s->prefix), vlen = strlen(s->version);
    const char *p, *v, *e;

    if (redis_key_segments(s, key, len) < 3)
        return 0;
    p = key + plen + 1;
    v = memchr(p, ':', (size_t)(key + len - p));
    if (!v)
        return 0;
    v++;
    e = memchr(v, ':', (size_t)(key + len - v));
    if (!e)
        return 0;
    return !((size_t)(e - v) == vlen && memcmp(v, s->version, vlen) == 0);
}

/* Pause between SCAN rounds; nonzero when stopping. */
static int redis_cleanup_pause(void *arg)
{
    return redis_wait(arg, REDIS_CLEANUP_PAUSE_MS);
}

static void redis_cleanup_sweep(struct redis_sink *s, struct redis_conn *c)
{
    static const char *const mids[] = {"flags:", "company:", "user:"};
    uint64_t t0 = redis_now_ns(s), scanned = 0, deleted = 0;
    size_t i;
    int rc = FERRY_OK;

    for (i = 0; i < 3 && rc == FERRY_OK; i++) {
        char pat[512];

        redis_match_pattern(s, mids[i], pat, sizeof(pat));
        rc = redis_scan_delete(s, c, pat, REDIS_CLEANUP_COUNT,
                               redis_cleanup_pred, s, redis_cleanup_pause, s,
                               &scanned, &deleted);
    }
    s->host->metric_add(s->m_evict_cleanup, (double)deleted);
    if (rc == FERRY_OK)
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "cleanup: scanned %" PRIu64 " keys, deleted %" PRIu64
                     " of other cache versions in %.1fs",
                     scanned, deleted, (double)(redis_now_ns(s) - t0) / 1e9);
    else if (rc != FERRY_CLOSED)
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "cleanup stopped after %" PRIu64 " deletions: %s", deleted,
                     redis_conn_error(c));
}

static void *redis_cleanup_main(void *arg)
{
    struct redis_sink *s = arg;
    struct redis_conn *c = redis_conn_new(&s->ep);

    while (!redis_wait(s, s->cleanup_ms)) {
        if (atomic_load(&s->lock_lost))
            break;
        if (redis_conn_open(c) != FERRY_OK) {
            s->host->log(s->ctx, FERRY_LOG_WARN, "cleanup skipped: %s",
                         redis_conn_error(c));
            continue;
        }
        redis_cleanup_sweep(s, c);
    }
    redis_conn_free(c);
    return NULL;
}

/* ---- SCAN-driven deletion (shared) -------------------------------------- */

int redis_scan_delete(struct redis_sink *s, struct redis_conn *c,
                      const char *pattern, const char *count,
                      int (*pred)(void *arg, const char *key, size_t len),
                      void *arg, int (*pause)(void *parg), void *parg,
                      uint64_t *scanned, uint64_t *deleted)
{
    char cursor[32] = "0";

    do {
        redisReply *r, *keys;
        size_t i, ndel = 0;

        redis_conn_cmd(c, "SCAN", cursor, "MATCH", pattern, "COUNT", count,
                       NULL);
        s->host->metric_add(s->m_scan, 1);
        s->host->metric_add(s->m_roundtrips, 1);
        if (redis_conn_exec(c) != FERRY_OK)
            return FERRY_RETRY;
        r = redis_conn_reply(c, 0);
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(cursor, sizeof(cursor), "0");
            s->host->log(s->ctx, FERRY_LOG_WARN, "SCAN %s: %s", pattern,
                         r->type == REDIS_REPLY_ERROR ? r->str
                                                      : "unexpected reply");
            redis_conn_reset(c);
            return redis_reply_class(r) == REDIS_CLASS_DATA ? FERRY_ERROR
                                                            : FERRY_RETRY;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        keys = r->element[1];
        *scanned += keys->elements;
        /* Queue the deletions; the SCAN reply stays valid until then. */
        {
            size_t nk = keys->elements;
            char **del = redis_xcalloc(nk ? nk : 1, sizeof(*del));
            size_t *dlen = redis_xcalloc(nk ? nk : 1, sizeof(*dlen));

            for (i = 0; i < nk; i++) {
                redisReply *k = keys->element[i];

                if (k->type == REDIS_REPLY_STRING &&
                    pred(arg, k->str, k->len)) {
                    del[ndel] = redis_xalloc(k->len + 1);
                    memcpy(del[ndel], k->str, k->len + 1);
                    dlen[ndel] = k->len;
                    ndel++;
                }
            }
            for (i = 0; i < ndel; i++) {
                const char *argv[2] = {"DEL", del[i]};
                size_t lens[2] = {3, dlen[i]};

                redis_conn_cmd_argv(c, 2, argv, lens);
                free(del[i]);
            }
            free(del);
            free(dlen);
        }
        if (ndel) {
            s->host->metric_add(s->m_del, (double)ndel);
            s->host->metric_add(s->m_roundtrips, 1);
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

/* `ferry check --connect`: connect, AUTH/SELECT, PING. Main thread. */
static int redis_probe(void *state, char *msg, size_t len)
{
    struct redis_sink *s = state;
    struct redis_conn *c = redis_conn_new(&s->ep);
    redisReply *r;
    int rc = redis_conn_open(c);

    if (rc != FERRY_OK) {
        snprintf(msg, len, "%s", redis_conn_error(c));
        redis_conn_free(c);
        return rc == FERRY_ERROR ? FERRY_ERROR : FERRY_RETRY;
    }
    redis_conn_cmd(c, "PING", NULL);
    rc = redis_conn_exec(c);
    if (rc != FERRY_OK) {
        snprintf(msg, len, "%s: %s", s->where, redis_conn_error(c));
    } else if ((r = redis_conn_reply(c, 0))->type != REDIS_REPLY_STATUS) {
        snprintf(msg, len, "%s: PING refused: %s", s->where,
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
        rc = FERRY_ERROR;
    } else {
        snprintf(msg, len, "%s: PING answered %s (cache version %s)", s->where,
                 r->str, s->version);
    }
    redis_conn_free(c);
    return rc;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "redis"),
    .version = "1.0.0",
    .description = "Schematic cache in Redis (replicator mode layout)",
    .options = redis_options,
    .init = redis_init,
    .fini = redis_fini,
    .start = redis_start,
    .stop = redis_stop,
    .load_position = redis_load_position,
    .open = redis_open,
    .write = redis_write,
    .checkpoint = redis_checkpoint,
    .close = redis_close,
    .probe = redis_probe,
};
