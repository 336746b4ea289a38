/*
 * plugins/lib/redis/verdict.h: a Redis sink's verdicts on one batch, and
 * the failure policy both Redis sinks share.
 *
 * A sink applies a batch as one or more "runs" (a transaction of the
 * messages at the given batch indexes, with the replay cursor's
 * compare-and-set when commit is given). When Redis refuses a run for its
 * content (REDIS_DATA_ERROR, e.g. an ACL or WRONGTYPE error on one key),
 * redis_verdicts_run() sends it again once, then one message at a time:
 * each message refused alone becomes a poison message (results[i] =
 * FERRY_ERROR with its reason), the others are applied, and the cursor
 * goes last, so it never passes a message that was neither applied nor
 * reported. redis_verdicts_report() then counts and logs the poison
 * messages once, with their stream positions.
 *
 * A struct redis_verdicts belongs to one worker (one thread at a time);
 * zeroed it is valid and empty.
 */
#ifndef FERRY_REDIS_VERDICT_H
#define FERRY_REDIS_VERDICT_H

#include <stddef.h>

#include <ferry/ferry.h>

#include "redis/tx.h" /* REDIS_DATA_ERROR */
#include "redis/util.h"
/* Longest reason kept per message. */
#define REDIS_REASON_LEN 240

struct redis_verdicts {
    char **reasons; /* why results[i] became FERRY_ERROR */
    size_t cap;
    /* The last reply error a run saw, for log lines; runs write it. */
    char last_error[256];
};

/* Prepares v for batch b: every result FERRY_OK, no reasons, no error. */
void redis_verdicts_begin(struct redis_verdicts *v, struct ferry_batch *b);
/* Marks message i of b poison with a reason (printf-style). */
void redis_verdicts_poison(struct redis_verdicts *v, struct ferry_batch *b,
                           size_t i, const char *fmt, ...) REDIS_PRINTF(4, 5);
/* Counts (poison, may be NULL) and logs every message of b marked
 * FERRY_ERROR, with its entity and stream position. */
void redis_verdicts_report(const struct redis_verdicts *v,
                           const struct ferry_batch *b,
                           const struct ferry_host *host,
                           struct ferry_ctx *ctx, struct ferry_metric *poison);
/* Frees the reasons; v is empty and usable again. */
void redis_verdicts_release(struct redis_verdicts *v);

/* One run of a sink: the messages of the batch at idx[0..n), then the
 * cursor when commit is not NULL. Returns FERRY_OK, FERRY_RETRY (nothing
 * may be assumed applied) or REDIS_DATA_ERROR (the reason in the
 * verdicts' last_error). */
typedef int (*redis_run_fn)(void *arg, const size_t *idx, size_t n,
                            const struct ferry_pos *commit);

/* Runs idx[0..n) with the failure policy above; worker names the worker
 * in log lines. Returns FERRY_OK (poison messages marked in v and b) or
 * FERRY_RETRY. */
int redis_verdicts_run(struct redis_verdicts *v, struct ferry_batch *b,
                        const size_t *idx, size_t n,
                        const struct ferry_pos *commit, redis_run_fn run,
                        void *arg, const struct ferry_host *host,
                        struct ferry_ctx *ctx, unsigned worker);

#endif
