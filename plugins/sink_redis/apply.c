/*
 * plugins/sink_redis/apply.c: write(): a batch of datastream messages to
 * the exact Schematic cache layout (schematic-datastream.md 5-9).
 *
 * A run (the batch, or the part of it between control messages) costs two
 * round trips:
 *
 *  1. MGET of the ID key of every company and user the run touches: the
 *     base of partial merges and the cached keys whose lookups may go
 *     stale;
 *  2. one transaction (redis/tx.h): MULTI, then per entity SET ID key,
 *     SET lookups, DEL stale lookups (fold.c), then the flag commands in
 *     order (flags.c), then the replay cursor's compare-and-set script,
 *     then EXEC.
 *
 * One transaction per run rather than one per entity: the cursor must not
 * move unless every entity before it is applied, and a pipelined EVAL
 * after per-entity transactions would run even when one of them was
 * discarded. A queue-time refusal (ACL, OOM) discards the whole run, so
 * nothing is half-applied and the run can simply be sent again.
 *
 * Control messages split the batch into runs (load.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "flags.h"
#include "fold.h"
#include "keys.h"
#include "load.h"
#include "run.h"

/* ---- the MGET of bases -------------------------------------------------- */

/* A refused MGET: FERRY_RETRY, or REDIS_DATA_ERROR for its content. */
static int redis_mget_refused(struct redis_run *run, const redisReply *r)
{
    struct redis_worker *w = run->w;
    struct redis_sink *s = run->s;
    int cls = redis_reply_class(r);

    snprintf(w->v.last_error, sizeof(w->v.last_error), "%s", r->str);
    if (cls == REDIS_CLASS_DATA)
        return REDIS_DATA_ERROR;
    if (cls == REDIS_CLASS_RECONNECT)
        redis_conn_close(w->conn);
    s->host->log(s->ctx, FERRY_LOG_WARN, "worker %u: Redis: %s", w->index,
                 w->v.last_error);
    return FERRY_RETRY;
}

static int redis_fetch_bases(struct redis_run *run)
{
    struct redis_conn *c = run->w->conn;
    const char **argv;
    size_t *lens, i;
    redisReply *r;
    int rc;

    argv = redis_xalloc((run->ngroups + 1) * sizeof(*argv));
    lens = redis_xalloc((run->ngroups + 1) * sizeof(*lens));
    argv[0] = "MGET";
    lens[0] = 4;
    for (i = 0; i < run->ngroups; i++) {
        argv[i + 1] = run->groups[i].id_key;
        lens[i + 1] = strlen(run->groups[i].id_key);
    }
    redis_conn_cmd_argv(c, (int)run->ngroups + 1, argv, lens);
    free(argv);
    free(lens);
    run->n_mget++;
    run->n_rt++;
    if (redis_conn_exec(c) != FERRY_OK) {
        snprintf(run->w->v.last_error, sizeof(run->w->v.last_error), "%s",
                 redis_conn_error(c));
        return FERRY_RETRY;
    }
    r = redis_conn_reply(c, 0);
    if (r->type == REDIS_REPLY_ERROR) {
        rc = redis_mget_refused(run, r);
        redis_conn_reset(c);
        return rc;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != run->ngroups) {
        snprintf(run->w->v.last_error, sizeof(run->w->v.last_error),
                 "unexpected MGET reply");
        redis_conn_close(c);
        return FERRY_RETRY;
    }
    for (i = 0; i < run->ngroups; i++) {
        redisReply *e = r->element[i];

        if (e->type == REDIS_REPLY_STRING) {
            run->groups[i].base = redis_xalloc(e->len + 1);
            memcpy(run->groups[i].base, e->str, e->len + 1);
            run->groups[i].base_len = e->len;
        }
    }
    redis_conn_reset(c);
    return FERRY_OK;
}

/* Records the keys a load wrote (7.7). */
static void redis_record_load(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    size_t i, j;

    pthread_mutex_lock(&s->track_mu);
    if (s->loading) {
        for (i = 0; i < run->ngroups; i++) {
            struct redis_group *g = &run->groups[i];
            int segs;

            if (g->op != GROUP_SET)
                continue;
            for (j = 0; j <= g->sets.n; j++) {
                const char *key = j == 0 ? g->id_key : g->sets.v[j - 1];
                size_t len = strlen(key);

                redis_keyset_add(&s->load_keys, key, len);
                segs = redis_key_segments(s->prefix, key, len);
                if (segs == 3)
                    s->load_shapes[g->t][REDIS_SHAPE_ID]++;
                else if (segs == 4)
                    s->load_shapes[g->t][REDIS_SHAPE_LOOKUP]++;
            }
        }
    }
    pthread_mutex_unlock(&s->track_mu);
}

static void redis_run_release(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    size_t i;

    for (i = 0; i < run->ngroups; i++) {
        struct redis_group *g = &run->groups[i];

        free(g->id_key);
        free(g->base);
        sch_entity_release(&g->val);
        redis_strv_release(&g->sets);
        redis_strv_release(&g->dels);
    }
    for (i = 0; i < run->n; i++)
        free(run->ids[i]);
    free(run->ids);
    free(run->next);
    free(run->groups);
    free(run->table);
    redis_flags_release(&run->fl);
    if (run->n_set)
        s->host->metric_add(s->in.m.set, (double)run->n_set);
    if (run->n_del)
        s->host->metric_add(s->in.m.del, (double)run->n_del);
    if (run->n_mget)
        s->host->metric_add(s->in.m.mget, (double)run->n_mget);
    if (run->n_eval)
        s->host->metric_add(s->in.m.eval, (double)run->n_eval);
    if (run->n_rt)
        s->host->metric_add(s->in.m.roundtrips, (double)run->n_rt);
}

static void redis_run_init(struct redis_run *run, struct redis_worker *w,
                           struct ferry_batch *b, const size_t *idx, size_t n,
                           const struct ferry_pos *commit)
{
    memset(run, 0, sizeof(*run));
    run->w = w;
    run->s = w->s;
    run->b = b;
    run->idx = idx;
    run->n = n;
    run->commit = commit;
    run->next = redis_xcalloc(n, sizeof(*run->next));
    run->ids = redis_xcalloc(n, sizeof(*run->ids));
    run->groups = redis_xcalloc(n, sizeof(*run->groups));
    for (run->table_cap = 16; run->table_cap < n * 2; run->table_cap *= 2)
        ;
    run->table = redis_xcalloc(run->table_cap, sizeof(*run->table));
}

/* Sends one transaction (tx.h, which counts its round trip). */
static int redis_tx_send(struct redis_run *run, struct redis_tx *tx)
{
    int rc = redis_tx_commit(tx);

    if (rc != FERRY_OK)
        snprintf(run->w->v.last_error, sizeof(run->w->v.last_error), "%s",
                 tx->error);
    return rc;
}

/* The second round trip: the folded entities, the flags in order and,
 * unless a final snapshot must evict first, the cursor. */
static int redis_run_tx(struct redis_run *run)
{
    struct redis_tx tx;
    size_t i, k;

    for (i = 0; i < run->ngroups; i++)
        redis_fold(run, &run->groups[i]);
    redis_tx_begin(&tx, &run->w->link);
    for (i = 0; i < run->ngroups; i++)
        redis_queue_group(run, &run->groups[i]);
    if (run->has_flags) {
        redis_flags_load(run);
        for (k = 0; k < run->n; k++)
            if (redis_type_of(redis_msg(run, k)) == REDIS_T_FLAGS &&
                run->b->results[run->idx[k]] == FERRY_OK)
                redis_queue_flag(run, k);
    }
    /* With a final snapshot the cursor waits for its eviction. */
    if (run->commit && !run->fl.have_final) {
        redis_tx_cursor(&tx, run->s->cursor_key, run->commit);
        run->n_eval++;
    }
    return redis_tx_send(run, &tx);
}

/* After a run with flags: snapshot eviction, then the cursor that waited
 * for it, then load_complete. */
static int redis_run_flags_end(struct redis_run *run)
{
    struct redis_tx tx;
    int rc = redis_flags_finish(run);

    if (rc != FERRY_OK || !run->fl.have_final)
        return rc;
    if (run->commit) {
        redis_tx_begin(&tx, &run->w->link);
        redis_tx_cursor(&tx, run->s->cursor_key, run->commit);
        run->n_eval++;
        rc = redis_tx_send(run, &tx);
        if (rc != FERRY_OK)
            return rc;
    }
    return redis_maybe_complete(run->w);
}

/*
 * Applies the messages idx[0..n) of b (in order) and, when commit is not
 * NULL, stores it as the replay cursor. Returns FERRY_OK, FERRY_RETRY
 * (nothing may be assumed applied) or REDIS_DATA_ERROR (Redis refused a
 * command for its content; nothing of the transaction ran, or part of it
 * did: sending it again is safe, every step is idempotent).
 */
static int redis_run(struct redis_worker *w, struct ferry_batch *b,
                     const size_t *idx, size_t n,
                     const struct ferry_pos *commit)
{
    struct redis_run run;
    int rc;

    redis_run_init(&run, w, b, idx, n, commit);
    if (redis_link_connect(&w->link) != FERRY_OK) {
        rc = FERRY_RETRY;
        goto out;
    }
    redis_conn_reset(w->conn);
    redis_group_messages(&run);
    if (run.ngroups > 0) {
        rc = redis_fetch_bases(&run);
        if (rc != FERRY_OK)
            goto out;
    }
    rc = redis_run_tx(&run);
    if (rc != FERRY_OK)
        goto out;
    redis_record_load(&run);
    if (run.has_flags)
        rc = redis_run_flags_end(&run);
out:
    if (rc == FERRY_RETRY)
        redis_instance_component(&w->s->in, redis_conn_is_open(w->conn)
                                                ? FERRY_COMPONENT_CONNECTED
                                                : FERRY_COMPONENT_DISCONNECTED);
    redis_run_release(&run);
    return rc;
}

/* ---- the batch ---------------------------------------------------------- */

/* redis_run() as the Redis library's redis_run_fn. */
struct redis_run_arg {
    struct redis_worker *w;
    struct ferry_batch *b;
};

static int redis_run_cb(void *arg, const size_t *idx, size_t n,
                        const struct ferry_pos *commit)
{
    struct redis_run_arg *ra = arg;

    return redis_run(ra->w, ra->b, idx, n, commit);
}

/* A run with the shared failure policy (redis/verdict.h). */
static int redis_run_isolating(struct redis_worker *w, struct ferry_batch *b,
                               const size_t *idx, size_t n,
                               const struct ferry_pos *commit)
{
    struct redis_run_arg ra = {w, b};

    return redis_verdicts_run(&w->v, b, idx, n, commit, redis_run_cb, &ra,
                                  w->s->host, w->s->ctx, w->index);
}

int redis_apply(struct redis_worker *w, struct ferry_batch *b)
{
    size_t *idx, i, n = 0;
    const struct ferry_pos *commit = NULL;
    int rc = FERRY_OK, control = 0;

    redis_verdicts_begin(&w->v, b);
    for (i = 0; i < b->count; i++)
        if (FERRY_OP_IS_CONTROL(b->msgs[i]->op))
            control = 1;
    /* A batch with a control message stores no cursor: after a reload
     * the old position must not come back. */
    if (b->commit.set && !control)
        commit = &b->commit;
    idx = redis_xalloc((b->count ? b->count : 1) * sizeof(*idx));
    for (i = 0; i < b->count && rc == FERRY_OK; i++) {
        if (!FERRY_OP_IS_CONTROL(b->msgs[i]->op)) {
            idx[n++] = i;
            continue;
        }
        if (n)
            rc = redis_run_isolating(w, b, idx, n, NULL);
        n = 0;
        if (rc == FERRY_OK)
            rc = redis_control(w, b, i);
    }
    if (rc == FERRY_OK && (n || commit))
        rc = redis_run_isolating(w, b, idx, n, commit);
    free(idx);
    if (rc == FERRY_OK)
        redis_verdicts_report(&w->v, b, w->s->host, w->s->ctx,
                              w->s->in.m.poison);
    return rc;
}
