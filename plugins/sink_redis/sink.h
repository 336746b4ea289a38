/*
 * plugins/sink_redis/sink.h: state shared by the files of the Redis sink.
 *
 *   sink.c    the descriptor, options, lifecycle, writer lock, replay
 *             cursor, readiness, periodic cleanup of other versions;
 *   apply.c   write(): folding, merging, normalising and the pipelined
 *             MULTI/EXEC round trip, snapshot and load eviction;
 *   conn.c    the transport; keyset.c  hashed key sets.
 *
 * Threads: init/fini/start/stop/load_position on the main thread (stop may
 * come from another one); open/write/checkpoint/close on worker threads,
 * concurrently for different workers; the lock renewal on the core's timer
 * thread; the cleanup on a thread of the sink's own.
 */
#ifndef FERRY_SINK_REDIS_SINK_H
#define FERRY_SINK_REDIS_SINK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <ferry/ferry.h>

#include "redis/conn.h"
#include "redis/keyset.h"
#include "redis/util.h"

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
    const struct ferry_host *host;
    struct ferry_ctx *ctx;

    /* Options. */
    struct redis_endpoint ep;
    char where[300];  /* the endpoint for log lines */
    char *prefix;     /* "schematic" */
    char *version;    /* the cache version {v} */
    uint64_t ttl_ms;  /* 0: no expiry */
    char ttl_arg[24]; /* ttl_ms as text, for SET ... PX */
    int writer_lock;
    uint64_t lock_ttl_ms;
    uint64_t cleanup_ms; /* 0: disabled */
    char *cursor_key;    /* {prefix}:datastream:replay_cursor */
    char *lock_key;      /* {prefix}:datastream:writer_lock */
    char *complete_key;  /* {prefix}:datastream:load_complete */
    char token[160];     /* our writer-lock token */

    /* Lifecycle: stopping, waits in start() and the cleanup thread. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    int starting;           /* start() is running */
    atomic_int warned_type; /* an unsupported entity type was logged */

    /* The instance connection (start, load_position, lock renewal,
     * release), guarded by conn_mu. */
    pthread_mutex_t conn_mu;
    struct redis_conn *conn;
    struct ferry_timer *renew_timer;
    uint64_t lock_confirmed_ns; /* under conn_mu */
    int renew_failing;          /* timer thread only: last renewal failed */
    atomic_int lock_held;
    atomic_int lock_lost;
    atomic_int redis_state; /* last FERRY_COMPONENT_* published */

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

    /* Metrics. */
    struct ferry_metric *m_set;
    struct ferry_metric *m_del;
    struct ferry_metric *m_mget;
    struct ferry_metric *m_scan;
    struct ferry_metric *m_eval;
    struct ferry_metric *m_poison;
    struct ferry_metric *m_reconnects;
    struct ferry_metric *m_evict_snapshot;
    struct ferry_metric *m_evict_load;
    struct ferry_metric *m_evict_cleanup;
    struct ferry_metric *m_roundtrips;
    struct ferry_metric *m_lock_held;
    struct ferry_metric *m_write_seconds;
};

/* One worker context. */
struct redis_worker {
    struct redis_sink *s;
    unsigned index;
    struct redis_conn *conn;
    int was_connected;
    int failing; /* connecting failed since the last success */
    /* Why results[i] became FERRY_ERROR (per message of the batch). */
    char **reasons;
    size_t reasons_cap;
    /* The last reply error seen, for log lines. */
    char last_error[256];
};

/* Lua: set KEYS[1] to ARGV[1] ("<ms>-<seq>") only when it is greater
 * than the stored position (numeric compare, exact for 64-bit values). */
extern const char redis_cursor_script[];

/* apply.c: write() of the plugin. Worker thread. */
int redis_apply(struct redis_worker *w, struct ferry_batch *b);

/* sink.c helpers for apply.c. */
/* Publishes the "redis" component state when it changed. */
void redis_sink_component(struct redis_sink *s, int state);
/* Opens w's connection if needed (counting reconnects). FERRY_OK or
 * FERRY_RETRY. */
int redis_worker_connect(struct redis_worker *w);
/* Marks the cache complete when the load is done and a snapshot was
 * applied: SET load_complete and set_ready(1). FERRY_OK or FERRY_RETRY. */
int redis_maybe_complete(struct redis_worker *w);
/* Number of ':'-separated segments after "{prefix}:", or -1 when key
 * does not start with it. */
int redis_key_segments(const struct redis_sink *s, const char *key, size_t len);
/* Appends a SCAN MATCH pattern "{prefix}:{mid}*" with glob characters of
 * prefix and mid escaped. */
void redis_match_pattern(const struct redis_sink *s, const char *mid, char *buf,
                         size_t len);
/*
 * SCAN MATCH pattern COUNT count over the whole keyspace; for every key
 * for which pred() returns nonzero, a pipelined DEL after that round.
 * pause(parg), when given, runs between rounds and stops the walk when it
 * returns nonzero (FERRY_CLOSED). Adds to *scanned and *deleted. Returns
 * FERRY_OK, FERRY_RETRY (connection error), or FERRY_ERROR (SCAN refused).
 */
int redis_scan_delete(struct redis_sink *s, struct redis_conn *c,
                      const char *pattern, const char *count,
                      int (*pred)(void *arg, const char *key, size_t len),
                      void *arg, int (*pause)(void *parg), void *parg,
                      uint64_t *scanned, uint64_t *deleted);

#endif
