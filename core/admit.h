/*
 * core/admit.h: admission of emitted messages into routes (core/admit.c).
 *
 * A message enters every route whose match list names its entity type, in
 * the channel of the worker its (entity_type, order key) hashes to, or
 * none of them: admission reserves room in each channel first, so a
 * refused message leaves nothing behind. Policies with admit() may drop
 * or coalesce instead of blocking. A control message (a barrier) enters
 * every worker channel of every route of its source.
 */
#ifndef FERRY_CORE_ADMIT_H
#define FERRY_CORE_ADMIT_H

#include <stdint.h>

#include "ferry/message.h"
#include "sched_int.h"

/* Routes one message may coalesce into; a message may be reserved in at
 * most four times as many channels (a barrier takes one in every worker
 * channel of every route of its source: core/pipeline.c refuses more). */
#define ADMIT_MAX_TARGETS 64

/*
 * Copies msg and admits the copy into every matching route of source src.
 * With wait, blocks while a route refuses it (until timeout_ms when not 0,
 * waking every 100 ms to notice a stop); without, returns at once. Returns
 * FERRY_OK (the pipeline owns the copy; msg stays the caller's),
 * FERRY_WOULD_BLOCK, FERRY_TIMEDOUT, FERRY_CLOSED (stopping), FERRY_EINVAL
 * or FERRY_ENOMEM. Called from the source's own threads; calls for one
 * source are serialised by its emit lock.
 */
int sched_emit(struct ferry_ctx *src, const struct ferry_msg *msg,
               int wait, uint64_t timeout_ms);

/*
 * channel_on_room() callback, arg being the source (struct ferry_ctx):
 * wakes the source's emitter waiting for room, and calls its wakeup().
 * Called by a worker thread (or the emitting thread itself, which it
 * ignores) after room was made in a channel that refused the source.
 */
void source_on_room(void *arg);

#endif
