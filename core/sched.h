/*
 * core/sched.h: the pipeline: plugin instances, routes, workers, and the
 * commit tracker that turns out-of-order completions into a replay cursor.
 *
 * Data path: a source calls host->emit(); the core copies the message into
 * one allocation (struct cmsg), picks the worker of each matching route by
 * hashing (entity_type, order key), and pushes it into that worker's
 * bounded channel. Each worker pops up to batch_size messages (waiting at
 * most batch_timeout after the first), runs the route's policies and hands
 * the batch to its sink context. When every route has applied a message,
 * its sequence number is marked done in the source's tracker; the tracker's
 * contiguous done prefix is the committed replay position.
 *
 * Why one channel per worker instead of one per route: per-entity order
 * needs the same entity on the same worker, and a shared queue would need
 * a dispatcher thread (one more hop) to guarantee it. channel_size is split
 * evenly between a route's workers.
 */
#ifndef FERRY_CORE_SCHED_H
#define FERRY_CORE_SCHED_H

#include <stdio.h>

#include "admit.h"
#include "config.h"
#include "sched_int.h"
#include "store.h"

/* Building, printing and freeing (core/pipeline.c). */

/* The option tables of [ferry] and [route.*] (for check and inspect). */
extern const struct ferry_option sched_ferry_options[];
extern const struct ferry_option sched_route_options[];

/*
 * Builds a pipeline from a loaded configuration (ownership of cfg moves
 * to the pipeline, whatever the result): validates [ferry] and every
 * route, loads every plugin, validates each instance's options and calls
 * each init(). No I/O. Returns NULL with "FILE:LINE: [section] message"
 * (or the loader's line) in err.
 */
struct pipeline *pipeline_new(struct config *cfg, const char *plugin_dir,
                              char *err, size_t errlen);
/* After a reload: each source of pl starts from the committed position of
 * the source of the same name in old (sinks that record positions still
 * decide in pipeline_start()). Main thread, before pipeline_start(pl). */
void pipeline_inherit(struct pipeline *pl, struct pipeline *old);
/* Prints the effective configuration, secrets masked (ferry check). */
void pipeline_print(struct pipeline *pl, FILE *out);
/* Calls fini() of every instance and frees everything; every thread must
 * have been joined (pipeline_shutdown()). Accepts NULL. */
void pipeline_free(struct pipeline *pl);

/* Running (core/sched.c). */

/*
 * Starts sinks (may block while standby for a writer lock), reads replay
 * positions, starts workers, then sources. Returns 0, or -1 after logging
 * why (the pipeline must still be shut down).
 */
int pipeline_start(struct pipeline *pl);
/* Asks the pipeline to stop (any thread, not from a signal handler). */
void pipeline_request_stop(struct pipeline *pl, int exit_code,
                           const char *reason);
/* Asks the waiting main thread to reload the configuration (SIGHUP).
 * Requests made while one is pending coalesce into it. */
void pipeline_request_reload(struct pipeline *pl);
/* Blocks until a stop or a reload is requested or every source has
 * finished. Returns 1 when a reload (and no stop) was requested, clearing
 * the request; else 0. */
int pipeline_wait(struct pipeline *pl);
/* `ferry check --connect`: calls every instance's probe() and prints one
 * line per instance. Returns the number of failed probes. */
int pipeline_probe(struct pipeline *pl, FILE *out);
/* Stops sources, drains every channel within shutdown_timeout, writes the
 * final checkpoint, stops sinks. Returns the exit code. */
int pipeline_shutdown(struct pipeline *pl);
/* JSON for /debug: cursor per source, channel depths. malloc'd. */
char *pipeline_debug_json(void *pl);

/* Emitting (core/admit.c: sched_emit()) and the committed position
 * (core/store.c: sched_committed()) are declared in their own headers,
 * included above. */

#endif
