/*
 * core/sched_int.h: the scheduler's data model, shared by the files that
 * implement the pipeline: instances (struct ferry_ctx), workers, routes
 * and the pipeline itself.
 *
 *   core/store.c     core-owned messages, their references, barriers
 *   core/admit.c     admission into routes, coalescing, emit
 *   core/worker.c    worker threads: batching, verdicts, retries
 *   core/pipeline.c  building routes and instances from the configuration
 *   core/sched.c     start, stop, drain, reload, /debug
 *
 * Other core files use core/sched.h. This header includes no header of
 * those files, so each of them may include it without a circle.
 */
#ifndef FERRY_CORE_SCHED_INT_H
#define FERRY_CORE_SCHED_INT_H

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

#endif
