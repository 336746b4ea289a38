/*
 * plugins/sink_redis/load.c: control messages (9.4: reload; 7.7: the
 * initial load's begin and end, with the eviction of keys the load did
 * not write) and the load_complete marker that makes the instance ready.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "load.h"
#include "keys.h"

int redis_maybe_complete(struct redis_worker *w)
{
    struct redis_sink *s = w->s;
    int due, rc;

    pthread_mutex_lock(&s->track_mu);
    due = s->load_done && s->snapshot_applied && !s->complete_marked;
    pthread_mutex_unlock(&s->track_mu);
    if (!due)
        return FERRY_OK;
    redis_cmd_set(w->conn, s->complete_key, strlen(s->complete_key),
                  s->version, strlen(s->version), s->ttl_arg);
    s->host->metric_add(s->in.m.set, 1);
    s->host->metric_add(s->in.m.roundtrips, 1);
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

/* ---- control messages (9.4, 7.7) ---------------------------------------- */

struct redis_evict_arg {
    struct redis_sink *s;
    int ids;     /* delete unwritten 4-segment keys */
    int lookups; /* delete unwritten 5-segment keys */
};

static int redis_evict_pred(void *arg, const char *key, size_t len)
{
    struct redis_evict_arg *a = arg;
    int segs = redis_key_segments(a->s->prefix, key, len), hit;

    if (!((segs == 3 && a->ids) || (segs == 4 && a->lookups)))
        return 0;
    pthread_mutex_lock(&a->s->track_mu);
    hit = redis_keyset_has(&a->s->load_keys, key, len);
    pthread_mutex_unlock(&a->s->track_mu);
    return !hit;
}

static int redis_load_end(struct redis_worker *w)
{
    struct redis_sink *s = w->s;
    uint64_t shapes[2][2], scanned = 0, deleted = 0;
    int loading, t, rc;

    pthread_mutex_lock(&s->track_mu);
    loading = s->loading;
    memcpy(shapes, s->load_shapes, sizeof(shapes));
    pthread_mutex_unlock(&s->track_mu);
    for (t = 0; loading && t < 2; t++) {
        struct redis_evict_arg a = {s, shapes[t][REDIS_SHAPE_ID] > 0,
                                    shapes[t][REDIS_SHAPE_LOOKUP] > 0};
        char mid[REDIS_MAX_VERSION_MID], pat[512];

        if (!a.ids && !a.lookups)
            continue;
        snprintf(mid, sizeof(mid), "%s:%s:", redis_type_name(t), s->version);
        redis_match_pattern(s->prefix, mid, pat, sizeof(pat));
        rc = redis_scan_delete(&s->in, w->conn, pat, REDIS_EVICT_COUNT,
                               redis_evict_pred, &a, NULL, NULL, &scanned,
                               &deleted);
        if (rc != FERRY_OK)
            return FERRY_RETRY;
    }
    pthread_mutex_lock(&s->track_mu);
    if (loading) {
        s->loading = 0;
        redis_keyset_release(&s->load_keys);
        memset(s->load_shapes, 0, sizeof(s->load_shapes));
    }
    s->load_done = 1;
    pthread_mutex_unlock(&s->track_mu);
    if (loading) {
        s->host->metric_add(s->m_evict_load, (double)deleted);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "initial load complete: %" PRIu64 " companies, %" PRIu64
                     " users written; %" PRIu64
                     " keys it did not write deleted",
                     shapes[REDIS_T_COMPANY][REDIS_SHAPE_ID],
                     shapes[REDIS_T_USER][REDIS_SHAPE_ID], deleted);
    }
    return redis_maybe_complete(w);
}

/* Forgets the load being tracked (a reload, or a new load beginning,
 * loading then 1): nothing written so far counts as loaded. */
static void redis_load_reset(struct redis_sink *s, int loading)
{
    pthread_mutex_lock(&s->track_mu);
    s->loading = loading;
    s->load_done = 0;
    s->complete_marked = 0;
    redis_keyset_release(&s->load_keys);
    memset(s->load_shapes, 0, sizeof(s->load_shapes));
    pthread_mutex_unlock(&s->track_mu);
}

int redis_control(struct redis_worker *w, struct ferry_batch *b,
                         size_t i)
{
    struct redis_sink *s = w->s;
    const struct ferry_msg *m = b->msgs[i];
    redisReply *r;

    switch (m->op) {
    case FERRY_OP_RELOAD:
        if (redis_link_connect(&w->link) != FERRY_OK)
            return FERRY_RETRY;
        /* The marker goes too: until the new load completes, a restart
         * must load everything again. */
        redis_conn_cmd(w->conn, "DEL", s->cursor_key, s->complete_key, NULL);
        s->host->metric_add(s->in.m.del, 2);
        s->host->metric_add(s->in.m.roundtrips, 1);
        if (redis_conn_exec(w->conn) != FERRY_OK) {
            redis_instance_component(&s->in, FERRY_COMPONENT_DISCONNECTED);
            return FERRY_RETRY;
        }
        r = redis_conn_reply(w->conn, 0);
        if (r->type == REDIS_REPLY_ERROR) {
            int cls = redis_reply_class(r);

            snprintf(w->v.last_error, sizeof(w->v.last_error), "%s", r->str);
            redis_conn_reset(w->conn);
            if (cls != REDIS_CLASS_DATA) {
                if (cls == REDIS_CLASS_RECONNECT)
                    redis_conn_close(w->conn);
                return FERRY_RETRY;
            }
            redis_verdicts_poison(&w->v, b, i, "deleting the replay cursor: %s",
                         w->v.last_error);
        }
        redis_conn_reset(w->conn);
        redis_load_reset(s, 0);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "reload: replay cursor deleted; a full load follows");
        return FERRY_OK;
    case FERRY_OP_LOAD_BEGIN:
        redis_load_reset(s, 1);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "initial load started: recording written keys");
        return FERRY_OK;
    case FERRY_OP_LOAD_END:
        if (redis_link_connect(&w->link) != FERRY_OK)
            return FERRY_RETRY;
        return redis_load_end(w);
    default:
        return FERRY_OK;
    }
}
