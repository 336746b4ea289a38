/*
 * plugins/sink_redis/state.h: the state shared by the files of the Redis
 * sink (a header of its own, so that no two files include each other).
 *
 *   sink.c    the descriptor, options, lifecycle (on the Redis library's
 *             struct redis_instance: connection, writer lock), the replay
 *             cursor's load, readiness from load_complete, the periodic
 *             cleanup of other cache versions; it calls redis_apply() and
 *             nothing else of the batch path;
 *   apply.c   write() (apply.h): the run's two round trips and the
 *             failure policy, calling the steps below;
 *   run.c     the state of one run and the primitives every step uses
 *             (run.h);
 *   fold.c    grouping and folding a run's messages per entity (fold.h);
 *   flags.c   flag messages and snapshots (flags.h);
 *   load.c    control messages, load eviction, load_complete (load.h);
 *   keys.c    the Schematic key shapes both halves read (keys.h).
 *
 * Calls go one way: sink.c -> apply.c -> fold.c, flags.c, load.c -> run.c,
 * keys.c; the batch files call no function of sink.c.
 *
 * Threads: init/fini/start/stop/load_position on the main thread (stop may
 * come from another one); open/write/checkpoint/close on worker threads,
 * concurrently for different workers; the lock renewal on the core's timer
 * thread; the cleanup on a thread of the sink's own.
 */
#ifndef FERRY_SINK_REDIS_STATE_H
#define FERRY_SINK_REDIS_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <ferry/ferry.h>

#include "redis/cmd.h"
#include "redis/conn.h"
#include "redis/instance.h"
#include "redis/keyset.h"
#include "redis/util.h"
#include "redis/verdict.h"

/* Longest key_prefix and cache_version accepted. */
#define REDIS_MAX_PREFIX 128
#define REDIS_MAX_VERSION 64
/* Room for "company:{v}:" and the like. */
#define REDIS_MAX_VERSION_MID (REDIS_MAX_VERSION + 16)

/* Key shapes counted per entity type during a load (7.7). */
enum { REDIS_SHAPE_ID = 0, REDIS_SHAPE_LOOKUP = 1 };
/* Entity types with ID and lookup keys. */
enum { REDIS_T_COMPANY = 0, REDIS_T_USER = 1 };

struct redis_sink {
    /* Connection options, the instance connection, stop, the writer lock,
     * the shared metrics (in.m). */
    struct redis_instance in;
    const struct ferry_host *host; /* in.host */
    struct ferry_ctx *ctx;         /* in.ctx */

    /* Options of this sink. */
    char *prefix;        /* "schematic" */
    char *version;       /* the cache version {v} */
    const char *ttl_arg; /* SET ... PX argument, NULL for no expiry */
    uint64_t cleanup_ms; /* 0: disabled */
    char *cursor_key;    /* {prefix}:datastream:replay_cursor */
    char *lock_key;      /* {prefix}:datastream:writer_lock */
    char *complete_key;  /* {prefix}:datastream:load_complete */

    atomic_int warned_type; /* an unsupported entity type was logged */

    /* Load and snapshot tracking, guarded by track_mu: load entities
     * arrive on every worker. */
    pthread_mutex_t track_mu;
    int loading;
    struct redis_keyset load_keys;
    uint64_t load_shapes[2][2]; /* [type][shape]: keys written */
    int load_done;
    int snapshot_applied;
    int complete_marked;
    /* Keys of snapshot pages that more pages follow (3.3). */
    struct redis_keyset snap_keys;
    uint64_t snap_written;
    int snap_open;

    /* The cleanup thread. */
    pthread_t cleanup_thread;
    int cleanup_started;

    /* Metrics of this sink (the shared ones are in in.m). */
    struct ferry_metric *m_evict_snapshot;
    struct ferry_metric *m_evict_load;
    struct ferry_metric *m_evict_cleanup;
};

/* One worker context. */
struct redis_worker {
    struct redis_sink *s;
    struct redis_link link;
    struct redis_conn *conn; /* link.conn */
    unsigned index;
    /* Verdicts on the batch being written, and the last reply error. */
    struct redis_verdicts v;
};

#endif
