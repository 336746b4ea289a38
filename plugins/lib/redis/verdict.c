/*
 * plugins/lib/redis/verdict.c: per-batch verdicts and the shared failure
 * policy of the Redis sinks (verdict.h).
 */
#include "redis/verdict.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void redis_verdicts_begin(struct redis_verdicts *v, struct ferry_batch *b)
{
    size_t i;

    if (b->count > v->cap) {
        free(v->reasons);
        v->cap = b->count;
        v->reasons =
            redis_xalloc(b->count * (sizeof(*v->reasons) + REDIS_REASON_LEN));
        for (i = 0; i < b->count; i++)
            v->reasons[i] =
                (char *)(v->reasons + b->count) + i * REDIS_REASON_LEN;
    }
    for (i = 0; i < b->count; i++) {
        b->results[i] = FERRY_OK;
        v->reasons[i][0] = '\0';
    }
    v->last_error[0] = '\0';
}

void redis_verdicts_poison(struct redis_verdicts *v, struct ferry_batch *b,
                           size_t i, const char *fmt, ...)
{
    va_list ap;

    b->results[i] = FERRY_ERROR;
    va_start(ap, fmt);
    vsnprintf(v->reasons[i], REDIS_REASON_LEN, fmt, ap);
    va_end(ap);
}

void redis_verdicts_report(const struct redis_verdicts *v,
                           const struct ferry_batch *b,
                           const struct ferry_host *host,
                           struct ferry_ctx *ctx, struct ferry_metric *poison)
{
    size_t i;

    for (i = 0; i < b->count; i++) {
        const struct ferry_msg *m = b->msgs[i];
        char pos[FERRY_POS_STRLEN] = "none";

        if (b->results[i] != FERRY_ERROR)
            continue;
        if (m->pos.set)
            ferry_pos_format(&m->pos, pos, sizeof(pos));
        if (poison)
            host->metric_add(poison, 1);
        host->log(ctx, FERRY_LOG_ERROR,
                  "poison message skipped: %s '%.80s' at %s: %s",
                  m->entity_type, m->entity_id, pos,
                  v->reasons[i][0] ? v->reasons[i] : "?");
    }
}

void redis_verdicts_release(struct redis_verdicts *v)
{
    free(v->reasons);
    v->reasons = NULL;
    v->cap = 0;
}

int redis_verdicts_run(struct redis_verdicts *v, struct ferry_batch *b,
                        const size_t *idx, size_t n,
                        const struct ferry_pos *commit, redis_run_fn run,
                        void *arg, const struct ferry_host *host,
                        struct ferry_ctx *ctx, unsigned worker)
{
    size_t k;
    int rc;

    rc = run(arg, idx, n, commit);
    if (rc != REDIS_DATA_ERROR)
        return rc;
    host->log(ctx, FERRY_LOG_WARN,
              "worker %u: batch refused by Redis (%s); sending it again",
              worker, v->last_error);
    rc = run(arg, idx, n, commit);
    if (rc != REDIS_DATA_ERROR)
        return rc;
    host->log(ctx, FERRY_LOG_WARN,
              "worker %u: batch refused again (%s); applying its %zu "
              "messages one at a time",
              worker, v->last_error, n);
    for (k = 0; k < n; k++) {
        if (b->results[idx[k]] != FERRY_OK)
            continue;
        rc = run(arg, &idx[k], 1, NULL);
        if (rc == REDIS_DATA_ERROR)
            redis_verdicts_poison(v, b, idx[k], "refused by Redis: %s",
                                  v->last_error);
        else if (rc != FERRY_OK)
            return rc;
    }
    if (commit) {
        rc = run(arg, NULL, 0, commit);
        if (rc == REDIS_DATA_ERROR) {
            host->log(ctx, FERRY_LOG_ERROR, "replay cursor not stored: %s",
                      v->last_error);
            rc = FERRY_OK;
        }
    }
    return rc;
}
