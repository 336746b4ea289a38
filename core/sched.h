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

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ferry/plugin.h"
#include "loader.h"
#include "tracker.h"

struct pipeline;
struct route;

/* A plugin instance; this is the struct ferry_ctx plugins see. */
struct ferry_ctx {
    int kind;
    char *name;  /* "cache" */
    char *label; /* "sink.cache": log prefix */
    struct plugin *plugin;
    const struct ferry_plugin *desc;
    struct optset *opts;
    void *state;
    int inited;
    int started;
    int stop_sent; /* sinks: stop() was called (pipeline lock) */
    struct pipeline *pl;

    /* Sources. */
    pthread_t thread;
    int thread_started;
    atomic_int finished;
    pthread_mutex_t emit_lock;
    pthread_cond_t room;         /* signalled when a refusing route has room */
    atomic_int waiting_room;
    struct route **routes;       /* routes whose `from` is this source */
    size_t nroutes;
    struct tracker tracker;
    int drain_left;              /* workers of its routes not yet drained
                                  * (pipeline lock) */
    struct ferry_metric *m_unrouted;
    struct ferry_metric *m_lag;
};

struct worker {
    struct route *route;
    unsigned index;
    pthread_t thread;
    int thread_started;
    struct channel *ch;
    void *wctx;
    uint64_t last_checkpoint_ns;
    struct ferry_pos last_checkpoint;
    size_t abandoned; /* messages given up at the drain deadline */
};

struct route {
    char *name;
    struct pipeline *pl;
    struct ferry_ctx *source;
    struct ferry_ctx *sink;
    struct ferry_ctx **policies;
    size_t npolicies;
    char **match; /* NULL-terminated; NULL means everything */
    size_t channel_size;
    unsigned nworkers;
    size_t batch_size;
    uint64_t batch_timeout_ms;
    struct worker *workers;
    atomic_int workers_left; /* for the final checkpoint */
    int delivers_control;    /* first route of its source into its sink */
    int has_admit;           /* a policy has admit(): ask it every time */

    struct ferry_metric *m_applied;
    struct ferry_metric *m_failed;
    struct ferry_metric *m_latency;
    struct ferry_metric *m_batch_ok;
    struct ferry_metric *m_batch_retry;
    struct ferry_metric *m_batch_error;
    struct ferry_metric *m_dropped_newest;
    struct ferry_metric *m_dropped_oldest;
    struct ferry_metric *m_coalesced;
};

/* Process settings from [ferry]. */
struct ferry_settings {
    const char *plugin_dir;
    int log_level;
    const char *log_format;
    const char *http_listen;
    uint64_t metrics_interval_ms;
    uint64_t shutdown_timeout_ms;
};

struct pipeline {
    struct config cfg;
    struct optset *ferry_opts;
    struct ferry_settings settings;
    struct plugin_set *plugins;
    struct ferry_ctx **instances; /* sinks first, then sources, policies */
    size_t ninstances;
    struct route **routes;
    size_t nroutes;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int stopping;      /* sources asked to stop */
    atomic_uint_least64_t abort_at_ns; /* drain deadline; 0: none */
    int stop_requested;
    int reload_requested;
    int exit_code;
    int sources_running;
};

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
/* After a reload: each source of pl starts from the committed position of
 * the source of the same name in old (sinks that record positions still
 * decide in pipeline_start()). */
void pipeline_inherit(struct pipeline *pl, struct pipeline *old);
/* `ferry check --connect`: calls every instance's probe() and prints one
 * line per instance. Returns the number of failed probes. */
int pipeline_probe(struct pipeline *pl, FILE *out);
/* Stops sources, drains every channel within shutdown_timeout, writes the
 * final checkpoint, stops sinks. Returns the exit code. */
int pipeline_shutdown(struct pipeline *pl);
/* Calls fini() of every instance and frees everything. Accepts NULL. */
void pipeline_free(struct pipeline *pl);
/* Prints the effective configuration, secrets masked (ferry check). */
void pipeline_print(struct pipeline *pl, FILE *out);
/* JSON for /debug: cursor per source, channel depths. malloc'd. */
char *pipeline_debug_json(void *pl);

/* The host table handed to plugins (core/host.c). */
extern const struct ferry_host host_table;

/* Internal: emit implementation used by the host table. */
int sched_emit(struct ferry_ctx *src, const struct ferry_msg *msg,
               int wait, uint64_t timeout_ms);
void sched_committed(struct ferry_ctx *src, struct ferry_pos *out);

#endif
