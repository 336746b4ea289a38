/*
 * core/worker.h: the worker threads that drain a route's channels into
 * its sink (core/worker.c).
 */
#ifndef FERRY_CORE_WORKER_H
#define FERRY_CORE_WORKER_H

#include "sched_int.h"

/*
 * The thread of one worker; arg is its struct worker. Opens the sink's
 * worker context, applies batches until the channel is closed and empty
 * (or the drain deadline passes), waits for every worker of the source's
 * routes to drain, writes the final checkpoint from the route's last
 * worker, closes the context and returns NULL. The messages it pops are
 * its own until it releases them.
 */
void *worker_main(void *arg);

#endif
