/*
 * plugins/sink_redis: writes the Schematic Redis cache that SDKs read in
 * replicator mode (schematic-datastream.md sections 6-9, 11, 13).
 *
 * This file: the descriptor and options, the lifecycle on the Redis
 * library's struct redis_instance (connection, writer lock),
 * load_position() (replay cursor vouched for by load_complete),
 * checkpoint() and the cleanup of other cache versions. The batch path is
 * redis_apply() (apply.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "keys.h"
#include "state.h"

/* Default cache version: the rules-engine version key of the Node SDK
 * 1.6.2 (schematic-datastream.md 13). Readers that poll /ready read
 * whatever version it publishes; readers without a health URL fall back
 * to their own WASM key, so this default also serves them. */
#define REDIS_DEFAULT_VERSION "4b54a537"

/* Keys SCAN asks for per round in the periodic cleanup, and the pause
 * between rounds: the cleanup is background work and yields to traffic. */
#define REDIS_CLEANUP_COUNT "500"
#define REDIS_CLEANUP_PAUSE_MS 10

static const struct ferry_option redis_options[] = {
    REDIS_OPTIONS_SERVER,
    {.name = "key_prefix",
     .type = FERRY_OPT_STRING,
     .def = "schematic",
     .description = "first segment of every key"},
    {.name = "cache_version",
     .type = FERRY_OPT_STRING,
     .def = REDIS_DEFAULT_VERSION,
     .description = "cache version {v}: 3rd key segment, published in "
                    "/ready; keep it stable across restarts"},
    REDIS_OPTIONS_TTL,
    REDIS_OPTIONS_LINK,
    {.name = "lock_key",
     .type = FERRY_OPT_STRING,
     .description = "writer lock key (the Go replicator's WRITER_LOCK_KEY); "
                    "default {key_prefix}:datastream:writer_lock"},
    {.name = "cursor_key",
     .type = FERRY_OPT_STRING,
     .description = "replay cursor key (the Go replicator's "
                    "REPLAY_CURSOR_KEY); default "
                    "{key_prefix}:datastream:replay_cursor"},
    {.name = "cleanup_interval",
     .type = FERRY_OPT_DURATION,
     .def = "1h",
     .min = 0,
     .max = 2592000000.0,
     .description = "delete other cache versions' keys this often; "
                    "0 = never"},
    {.name = NULL},
};

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

/* The key option `name` when it is set and not empty (malloc'd), else
 * {key_prefix}:{tail}: the Go replicator's key names as defaults. */
static char *redis_key_option(const struct redis_sink *s,
                              const struct ferry_host *host,
                              struct ferry_ctx *ctx, const char *name,
                              const char *tail)
{
    const char *v = host->opt_str(ctx, name);

    if (v && *v)
        return redis_xstrdup(v);
    return redis_join(s->prefix, tail);
}

static void redis_register_metrics(struct redis_sink *s)
{
    static const char ev[] = "keys deleted by eviction, per reason";
    static const char name[] = "ferry_sink_evicted_total";
    const char *snapshot[3] = {"reason", "snapshot", NULL};
    const char *load[3] = {"reason", "load", NULL};
    const char *cleanup[3] = {"reason", "cleanup", NULL};

    s->m_evict_snapshot =
        s->host->metric(s->ctx, FERRY_METRIC_COUNTER, name, ev, snapshot);
    s->m_evict_load =
        s->host->metric(s->ctx, FERRY_METRIC_COUNTER, name, ev, load);
    s->m_evict_cleanup =
        s->host->metric(s->ctx, FERRY_METRIC_COUNTER, name, ev, cleanup);
}

static void redis_sink_free(struct redis_sink *s)
{
    redis_instance_release(&s->in);
    free(s->prefix);
    free(s->version);
    free(s->cursor_key);
    free(s->lock_key);
    free(s->complete_key);
    redis_keyset_release(&s->load_keys);
    redis_keyset_release(&s->snap_keys);
    pthread_mutex_destroy(&s->track_mu);
    free(s);
}

static int redis_cleanup_start(void *arg);
static void redis_cleanup_stop(void *arg);

/* Reads key_prefix and cache_version, which name the instance's keys. */
static int redis_read_layout(struct redis_sink *s,
                             const struct ferry_host *host,
                             struct ferry_ctx *ctx)
{
    const char *v = host->opt_str(ctx, "key_prefix");

    if (redis_check_segment(host, ctx, "key_prefix", v, REDIS_MAX_PREFIX, 1) <
        0)
        return -1;
    s->prefix = redis_xstrdup(v);
    v = host->opt_str(ctx, "cache_version");
    if (redis_check_segment(host, ctx, "cache_version", v, REDIS_MAX_VERSION,
                            0) < 0)
        return -1;
    s->version = redis_xstrdup(v);
    s->cursor_key = redis_key_option(s, host, ctx, "cursor_key",
                                     "datastream:replay_cursor");
    s->lock_key =
        redis_key_option(s, host, ctx, "lock_key", "datastream:writer_lock");
    s->complete_key = redis_join(s->prefix, "datastream:load_complete");
    return 0;
}

static int redis_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                      void **state)
{
    struct redis_sink *s = redis_xcalloc(1, sizeof(*s));

    s->host = host;
    s->ctx = ctx;
    pthread_mutex_init(&s->track_mu, NULL);
    atomic_init(&s->warned_type, 0);
    if (redis_instance_init(&s->in, host, ctx, NULL) != FERRY_OK)
        goto fail;
    if (redis_read_layout(s, host, ctx) < 0)
        goto fail;
    redis_instance_set_lock_key(&s->in, s->lock_key);
    s->in.hooks.started = redis_cleanup_start;
    s->in.hooks.stopping = redis_cleanup_stop;
    s->in.hooks.arg = s;
    snprintf(s->in.start_note, sizeof(s->in.start_note),
             " (cache version %s)", s->version);
    s->ttl_arg = s->in.opt.ttl_ms ? s->in.opt.ttl_arg : NULL;
    s->cleanup_ms = host->opt_duration_ms(ctx, "cleanup_interval");
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

/* ---- start / stop ------------------------------------------------------- */

static int redis_start(void *state)
{
    struct redis_sink *s = state;

    return redis_instance_start(&s->in);
}

/* Any thread. Makes a start() in standby return FERRY_CLOSED (it then
 * cleans up itself); otherwise, as the core calls it once every worker
 * has drained, stops the cleanup and releases the writer lock. */
static void redis_stop(void *state)
{
    struct redis_sink *s = state;

    redis_instance_stop(&s->in);
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

/* The cursor is trusted only when load_complete names our version: a
 * cursor without it belongs to a load that never finished. */
static int redis_load_position(void *state, struct ferry_pos *out)
{
    struct redis_sink *s = state;
    const char *keys[2] = {s->cursor_key, s->complete_key};
    char *vals[2];
    int rc = FERRY_NOT_FOUND;

    if (redis_instance_get(&s->in, 2, keys, vals) != FERRY_OK)
        return FERRY_NOT_FOUND;
    if (vals[1] && strcmp(vals[1], s->version) == 0) {
        pthread_mutex_lock(&s->track_mu);
        s->complete_marked = 1;
        pthread_mutex_unlock(&s->track_mu);
        s->host->set_ready(s->ctx, 1);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "cache complete for version %s (load_complete marker)",
                     s->version);
    } else if (vals[0]) {
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "replay cursor %.63s discarded: load_complete is "
                     "'%.*s', not '%s'; a full load follows",
                     vals[0], REDIS_MAX_VERSION + 7, vals[1] ? vals[1] : "",
                     s->version);
        goto out;
    }
    if (!vals[0])
        goto out;
    if (redis_pos_parse(vals[0], out) < 0) {
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "replay cursor '%.63s' is not <ms>-<seq>; a full load "
                     "follows",
                     vals[0]);
        goto out;
    }
    rc = FERRY_OK;
out:
    free(vals[0]);
    free(vals[1]);
    return rc;
}

/* ---- workers ------------------------------------------------------------ */

static int redis_open(void *state, unsigned worker, void **wctx)
{
    struct redis_sink *s = state;
    struct redis_worker *w = redis_xcalloc(1, sizeof(*w));

    w->s = s;
    w->index = worker;
    redis_link_init(&s->in, &w->link, worker);
    w->conn = w->link.conn;
    *wctx = w;
    return FERRY_OK;
}

static void redis_close(void *wctx)
{
    struct redis_worker *w = wctx;

    if (!w)
        return;
    redis_link_release(&w->link);
    redis_verdicts_release(&w->v);
    free(w);
}

static int redis_write(void *wctx, struct ferry_batch *b)
{
    struct redis_worker *w = wctx;
    struct redis_sink *s = w->s;
    uint64_t t0 = s->host->now_ns();
    int rc;

    if (redis_instance_lock_lost(&s->in))
        return FERRY_RETRY;
    rc = redis_apply(w, b);
    s->host->metric_observe(s->in.m.write_seconds,
                            (double)(s->host->now_ns() - t0) / 1e9);
    return rc;
}

static int redis_checkpoint(void *wctx, const struct ferry_pos *pos)
{
    struct redis_worker *w = wctx;

    return redis_cursor_store(&w->link, w->s->cursor_key, pos);
}

/* ---- cleanup of other cache versions (7.9) ------------------------------ */

/* Deletes keys of >= 4 segments whose 3rd segment is another version. */
static int redis_cleanup_pred(void *arg, const char *key, size_t len)
{
    struct redis_sink *s = arg;
    size_t plen = strlen(s->prefix), vlen = strlen(s->version);
    const char *p, *v, *e;

    if (redis_key_segments(s->prefix, key, len) < 3)
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
    struct redis_sink *s = arg;

    return redis_instance_wait(&s->in, REDIS_CLEANUP_PAUSE_MS);
}

static void redis_cleanup_sweep(struct redis_sink *s, struct redis_conn *c)
{
    static const char *const mids[] = {"flags:", "company:", "user:"};
    uint64_t t0 = s->host->now_ns(), scanned = 0, deleted = 0;
    size_t i;
    int rc = FERRY_OK;

    for (i = 0; i < 3 && rc == FERRY_OK; i++) {
        char pat[512];

        redis_match_pattern(s->prefix, mids[i], pat, sizeof(pat));
        rc = redis_scan_delete(&s->in, c, pat, REDIS_CLEANUP_COUNT,
                               redis_cleanup_pred, s, redis_cleanup_pause, s,
                               &scanned, &deleted);
    }
    s->host->metric_add(s->m_evict_cleanup, (double)deleted);
    if (rc == FERRY_OK)
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "cleanup: scanned %" PRIu64 " keys, deleted %" PRIu64
                     " of other cache versions in %.1fs",
                     scanned, deleted,
                     (double)(s->host->now_ns() - t0) / 1e9);
    else if (rc != FERRY_CLOSED)
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "cleanup stopped after %" PRIu64 " deletions: %s", deleted,
                     redis_conn_error(c));
}

static void *redis_cleanup_main(void *arg)
{
    struct redis_sink *s = arg;
    struct redis_conn *c = redis_conn_new(&s->in.opt.ep);

    while (!redis_instance_wait(&s->in, s->cleanup_ms)) {
        if (redis_instance_lock_lost(&s->in))
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

/* hooks.started: the cleanup thread, once the lock is ours. */
static int redis_cleanup_start(void *arg)
{
    struct redis_sink *s = arg;

    if (s->cleanup_ms == 0)
        return 0;
    if (pthread_create(&s->cleanup_thread, NULL, redis_cleanup_main, s) == 0)
        s->cleanup_started = 1;
    else
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "cannot start the cleanup thread; other cache "
                     "versions will not be removed");
    return 0;
}

/* hooks.stopping: joins the cleanup thread (the stop already woke it). */
static void redis_cleanup_stop(void *arg)
{
    struct redis_sink *s = arg;

    if (s->cleanup_started) {
        pthread_join(s->cleanup_thread, NULL);
        s->cleanup_started = 0;
    }
}

/* `ferry check --connect`: connect, AUTH/SELECT, PING. Main thread. */
static int redis_probe(void *state, char *msg, size_t len)
{
    struct redis_sink *s = state;
    char note[REDIS_MAX_VERSION + 24];

    snprintf(note, sizeof(note), " (cache version %s)", s->version);
    return redis_instance_probe(&s->in, msg, len, note);
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
