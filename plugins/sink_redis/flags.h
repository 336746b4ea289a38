/*
 * plugins/sink_redis/flags.h: flag messages and snapshots (7.4, 7.5, 3.3).
 * Worker threads, one run at a time per worker.
 */
#ifndef FERRY_SINK_REDIS_FLAGS_H
#define FERRY_SINK_REDIS_FLAGS_H

#include "run.h"

/* flags.c: flags and snapshots (7.4, 7.5, 3.3). */
void redis_flags_load(struct redis_run *run);
void redis_queue_flag(struct redis_run *run, size_t k);
/* After the transaction: snapshot eviction and the instance's snapshot
 * state. FERRY_OK, FERRY_RETRY or REDIS_DATA_ERROR. */
int redis_flags_finish(struct redis_run *run);
void redis_flags_release(struct redis_flags *fl);

#endif
