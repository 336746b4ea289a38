/*
 * plugins/sink_redis/fold.h: grouping and folding a run's messages per entity (7.1-7.3, 7.6).
 * Worker threads, one run at a time per worker.
 */
#ifndef FERRY_SINK_REDIS_FOLD_H
#define FERRY_SINK_REDIS_FOLD_H

#include "run.h"

/* fold.c: grouping and folding (7.1-7.3, 7.6). */
void redis_group_messages(struct redis_run *run);
void redis_fold(struct redis_run *run, struct redis_group *g);
void redis_queue_group(struct redis_run *run, struct redis_group *g);

#endif
