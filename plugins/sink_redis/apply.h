/*
 * plugins/sink_redis/apply.h: write() of the Redis sink, the one function
 * sink.c calls on the batch path.
 */
#ifndef FERRY_SINK_REDIS_APPLY_H
#define FERRY_SINK_REDIS_APPLY_H

#include "state.h"

/*
 * Applies the batch b and stores its commit position as the replay
 * cursor. Returns FERRY_OK (b->results say which messages were skipped as
 * poison) or FERRY_RETRY (send the batch again). b is borrowed for the
 * call. w's worker thread.
 */
int redis_apply(struct redis_worker *w, struct ferry_batch *b);

#endif
