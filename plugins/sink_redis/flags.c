/*
 * plugins/sink_redis/flags.c: flag messages and flags snapshots (7.4,
 * 7.5, 3.3). A flag is normalised once (its key comes from the same
 * parse); a snapshot is walked once by sch_flags_each(); a flag delete
 * reads its key from one lenient parse. After the transaction, a final
 * snapshot evicts this version's flags it did not keep.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"
#include "keys.h"

void redis_flags_load(struct redis_run *run)
{
    struct redis_sink *s = run->s;

    pthread_mutex_lock(&s->track_mu);
    if (s->snap_open) {
        redis_keyset_merge(&run->fl.acc, &s->snap_keys);
        run->fl.acc_written = s->snap_written;
        run->fl.acc_open = 1;
    }
    pthread_mutex_unlock(&s->track_mu);
    run->fl.loaded = 1;
}

void redis_flags_release(struct redis_flags *fl)
{
    redis_keyset_release(&fl->acc);
    redis_keyset_release(&fl->keep);
}

/* One element of a snapshot, for sch_flags_each(). */
struct redis_snap_walk {
    struct redis_run *run;
    uint64_t written;
};

static int redis_snapshot_each(void *arg, struct sch_entity *flag,
                               const char *why)
{
    struct redis_snap_walk *sw = arg;
    struct redis_run *run = sw->run;
    struct redis_sink *s = run->s;
    char *fk;

    if (!flag->json) {
        /* Skipped, but a flag whose key can be read keeps its cached
         * value: this snapshot does not evict it. */
        fk = flag->flag_key
                 ? sch_key_flag(s->prefix, s->version, flag->flag_key)
                 : NULL;
        s->host->log(s->ctx, FERRY_LOG_ERROR, "snapshot flag %s skipped: %s",
                     fk ? fk : "(without a key)", why);
        s->host->metric_add(s->in.m.poison, 1);
        if (fk)
            redis_keyset_add(&run->fl.acc, fk, strlen(fk));
        free(fk);
        return 0;
    }
    /* Only flags with a key are written (7.4). */
    if (!flag->flag_key)
        return 0;
    fk = sch_key_flag(s->prefix, s->version, flag->flag_key);
    redis_q_set(run, fk, flag->json, flag->len);
    sw->written++;
    redis_keyset_add(&run->fl.acc, fk, strlen(fk));
    free(fk);
    return 0;
}

static void redis_queue_snapshot(struct redis_run *run, size_t k)
{
    const struct ferry_msg *m = redis_msg(run, k);
    struct redis_flags *fl = &run->fl;
    struct redis_snap_walk sw = {run, 0};
    char err[200];

    if (sch_flags_each(m->payload, m->payload_len, redis_snapshot_each, &sw,
                       err, sizeof(err)) < 0) {
        redis_verdicts_poison(&run->w->v, run->b, run->idx[k], "flags snapshot: %s", err);
        return;
    }
    fl->acc_written += sw.written;
    if (m->flags & FERRY_MSG_F_MORE) {
        fl->acc_open = 1;
        return;
    }
    redis_keyset_release(&fl->keep);
    fl->keep = fl->acc;
    fl->keep_written = fl->acc_written;
    memset(&fl->acc, 0, sizeof(fl->acc));
    fl->acc_written = 0;
    fl->acc_open = 0;
    fl->have_final = 1;
}

/* The Redis key of a deleted flag: lower(data.key), else lower(data.id),
 * else the message's entity_id (7.5); NULL when none. */
static char *redis_flag_delete_key(struct redis_run *run,
                                   const struct ferry_msg *m)
{
    struct sch_entity e;
    const char *key = NULL;
    char err[200], *fk;

    memset(&e, 0, sizeof(e));
    if (m->payload_len > 0 &&
        sch_entity_keys(SCH_FLAG, m->payload, m->payload_len, &e, err,
                        sizeof(err)) == 0) {
        if (e.flag_key && *e.flag_key)
            key = e.flag_key;
        else if (e.id && *e.id)
            key = e.id;
    }
    if (!key && m->entity_id && *m->entity_id)
        key = m->entity_id;
    fk = key ? sch_key_flag(run->s->prefix, run->s->version, key) : NULL;
    sch_entity_release(&e);
    return fk;
}

void redis_queue_flag(struct redis_run *run, size_t k)
{
    const struct ferry_msg *m = redis_msg(run, k);
    size_t bi = run->idx[k];
    struct sch_entity f;
    char err[200], *fk;

    if (m->op == FERRY_OP_SNAPSHOT) {
        redis_queue_snapshot(run, k);
        return;
    }
    if (m->op == FERRY_OP_DELETE) {
        fk = redis_flag_delete_key(run, m);
        if (!fk) {
            redis_verdicts_poison(&run->w->v, run->b, bi, "flag delete without a key");
            return;
        }
        redis_q_del(run, fk, NULL);
        free(fk);
        return;
    }
    if (m->op != FERRY_OP_FULL && m->op != FERRY_OP_PARTIAL)
        return;
    if (sch_entity_normalize(SCH_FLAG, m->payload, m->payload_len, &f, err,
                             sizeof(err)) < 0) {
        redis_verdicts_poison(&run->w->v, run->b, bi, "invalid flag: %s", err);
        return;
    }
    if (!f.flag_key) {
        redis_verdicts_poison(&run->w->v, run->b, bi, "flag without a key");
        sch_entity_release(&f);
        return;
    }
    fk = sch_key_flag(run->s->prefix, run->s->version, f.flag_key);
    redis_q_set(run, fk, f.json, f.len);
    /* A flag changed during or after a snapshot is current. */
    if (run->fl.acc_open)
        redis_keyset_add(&run->fl.acc, fk, strlen(fk));
    if (run->fl.have_final)
        redis_keyset_add(&run->fl.keep, fk, strlen(fk));
    free(fk);
    sch_entity_release(&f);
}

/* Deletes 4-segment flag keys of this version not kept by the snapshot. */
static int redis_snapshot_pred(void *arg, const char *key, size_t len)
{
    struct redis_run *run = arg;

    return redis_key_segments(run->s->prefix, key, len) == 3 &&
           !redis_keyset_has(&run->fl.keep, key, len);
}

/* Evicts what a final snapshot did not keep. */
static int redis_snapshot_evict(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    uint64_t scanned = 0, deleted = 0;
    char mid[REDIS_MAX_VERSION_MID], pat[512];
    int rc;

    snprintf(mid, sizeof(mid), "flags:%s:", s->version);
    redis_match_pattern(s->prefix, mid, pat, sizeof(pat));
    rc = redis_scan_delete(&s->in, run->w->conn, pat, REDIS_EVICT_COUNT,
                           redis_snapshot_pred, run, NULL, NULL, &scanned,
                           &deleted);
    if (rc == FERRY_ERROR)
        return REDIS_DATA_ERROR;
    if (rc != FERRY_OK)
        return FERRY_RETRY;
    s->host->metric_add(s->m_evict_snapshot, (double)deleted);
    s->host->log(s->ctx, FERRY_LOG_INFO,
                 "flags snapshot applied: %" PRIu64 " flags, %" PRIu64
                 " stale flags deleted",
                 run->fl.keep_written, deleted);
    return FERRY_OK;
}

int redis_flags_finish(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    int rc;

    if (run->fl.have_final && run->fl.keep_written > 0) {
        rc = redis_snapshot_evict(run);
        if (rc != FERRY_OK)
            return rc;
    } else if (run->fl.have_final) {
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "empty flags snapshot applied: nothing deleted");
    }
    pthread_mutex_lock(&s->track_mu);
    if (run->fl.acc_open) {
        redis_keyset_release(&s->snap_keys);
        s->snap_keys = run->fl.acc;
        memset(&run->fl.acc, 0, sizeof(run->fl.acc));
        s->snap_written = run->fl.acc_written;
        s->snap_open = 1;
    } else {
        redis_keyset_release(&s->snap_keys);
        s->snap_written = 0;
        s->snap_open = 0;
    }
    if (run->fl.have_final)
        s->snapshot_applied = 1;
    pthread_mutex_unlock(&s->track_mu);
    return FERRY_OK;
}
