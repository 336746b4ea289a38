/*
 * plugins/sink_redis/load.h: control messages (9.4, 7.7) and load_complete.
 * Worker threads, one run at a time per worker.
 */
#ifndef FERRY_SINK_REDIS_LOAD_H
#define FERRY_SINK_REDIS_LOAD_H

#include "run.h"

/* load.c: control messages (9.4, 7.7) and load_complete. */
int redis_control(struct redis_worker *w, struct ferry_batch *b, size_t i);
/* Marks the cache complete when the load is done and a snapshot was
 * applied: SET load_complete and set_ready(1). FERRY_OK or FERRY_RETRY. */
int redis_maybe_complete(struct redis_worker *w);

#endif
