/*
 * plugins/lib/redis/instance.h: what every Redis sink instance shares.
 *
 * A struct redis_instance holds the shared options (options.h), the
 * instance connection (start, load_position, lock renewal, release; the
 * workers have their own links), the stop signal and waits, the "redis"
 * component state, the writer lock, and the metrics both Redis sinks
 * publish. A sink embeds one in its state:
 *
 *   init()           redis_instance_init()
 *   start()/stop()   redis_instance_start() / redis_instance_stop()
 *   load_position()  redis_instance_get() of the sink's cursor key, then
 *                    redis_pos_parse()
 *   open()/close()   redis_link_init() / redis_link_release()
 *   write()          redis_link_connect(), then queue on link->conn
 *                    (cmd.h), with redis_cmd_cursor() inside the MULTI
 *   checkpoint()     redis_cursor_store()
 *   probe()          redis_instance_probe()
 *   fini()           redis_instance_stop(), redis_instance_release()
 *
 * Key names (the lock key, the cursor key) are the sink's: the library
 * knows no key layout.
 *
 * The connection is an object the sinks do not look inside: TLS, Cluster
 * routing and Sentinel discovery (the next issue) go into conn.c and
 * options.c; struct redis_link and the functions here keep their shape.
 *
 * Threads: init/start/stop/get/probe on the main thread (stop also from
 * another thread); links on worker threads, one thread per link; the lock
 * renewal on the host's timer thread. Functions that touch the instance
 * connection take conn_mu themselves unless they say otherwise.
 */
#ifndef FERRY_REDIS_INSTANCE_H
#define FERRY_REDIS_INSTANCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/ferry.h>

#include "redis/conn.h"
#include "redis/options.h"

/* The metrics both Redis sinks publish (names in instance.c). */
struct redis_metrics {
    struct ferry_metric *set; /* ferry_sink_operations_total{op=set} */
    struct ferry_metric *del;
    struct ferry_metric *mget;
    struct ferry_metric *scan;
    struct ferry_metric *eval;
    struct ferry_metric *poison;     /* ferry_sink_poison_total */
    struct ferry_metric *reconnects; /* ferry_sink_reconnects_total */
    struct ferry_metric *roundtrips; /* ferry_sink_roundtrips_total */
    struct ferry_metric *lock_held;  /* ferry_sink_writer_lock_held */
    struct ferry_metric *write_seconds; /* ferry_sink_write_seconds */
};

/* Called inside start() after the lock is held (started: nonzero fails
 * the start) and inside the shutdown before the lock is released
 * (stopping: join the sink's own threads). Either may be NULL. */
struct redis_instance_hooks {
    int (*started)(void *arg);
    void (*stopping)(void *arg);
    void *arg;
};

struct redis_instance {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    struct redis_options opt;
    struct redis_metrics m;
    struct redis_instance_hooks hooks;
    /* What start() logs after "connected to <where>", e.g. the cache
     * version; "" for nothing. */
    char start_note[96];

    /* Stopping, start() in progress, and waits. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    int starting;

    /* The instance connection. */
    pthread_mutex_t conn_mu;
    struct redis_conn *conn;
    atomic_int state; /* last FERRY_COMPONENT_* published */

    /* The writer lock. */
    char *lock_key;
    char token[160];
    struct ferry_timer *renew_timer;
    uint64_t lock_confirmed_ns; /* under conn_mu */
    int renew_failing;          /* timer thread only */
    atomic_int lock_held;
    atomic_int lock_lost;
};

/*
 * Prepares in (memory the caller owns): reads the shared options,
 * registers the shared metrics, makes the instance connection (not yet
 * connected). lock_key (copied; NULL to set it later with
 * redis_instance_set_lock_key(), before start) names the writer lock's
 * key; it is used only when the writer_lock option is on. Returns FERRY_OK, or
 * FERRY_EINVAL after logging. Either way in is to be released with
 * redis_instance_release(). Main thread, init().
 */
int redis_instance_init(struct redis_instance *in,
                        const struct ferry_host *host, struct ferry_ctx *ctx,
                        const char *lock_key);

/* Sets the writer lock's key (copied), e.g. once the sink's own options
 * that name it are read. Main thread, before start(). */
void redis_instance_set_lock_key(struct redis_instance *in,
                                 const char *lock_key);

/* Frees what init made. Call after redis_instance_stop(). */
void redis_instance_release(struct redis_instance *in);

/*
 * Connects (PING, retrying with backoff until stop), then, with
 * writer_lock, takes the lock, waiting as standby while another instance
 * holds it, and starts its renewal on the host's timer; then runs
 * hooks.started. Returns FERRY_OK, FERRY_CLOSED (stopped while waiting),
 * or FERRY_ERROR (refused: AUTH, ACL; logged). On failure everything it
 * started is undone. Main thread.
 */
int redis_instance_start(struct redis_instance *in);

/*
 * Any thread. Makes a start() that waits return FERRY_CLOSED; otherwise
 * runs hooks.stopping, stops the renewal and releases the lock (a
 * compare-and-delete). Idempotent.
 */
void redis_instance_stop(struct redis_instance *in);

/* Waits up to ms or until stop. Returns nonzero when stopping. Any
 * thread. */
int redis_instance_wait(struct redis_instance *in, uint64_t ms);

/* Publishes the "redis" component state when it changed. Any thread. */
void redis_instance_component(struct redis_instance *in, int state);

/* Nonzero once the writer lock was lost: write() and checkpoint() must
 * return FERRY_RETRY (the process is being stopped). Any thread. */
int redis_instance_lock_lost(struct redis_instance *in);

/*
 * One round trip on the instance connection, connecting first; conn_mu
 * must be held. Returns FERRY_OK with the replies, FERRY_RETRY, or
 * FERRY_ERROR (AUTH refused). Counts the round trip.
 */
int redis_instance_exec(struct redis_instance *in);

/*
 * GETs the n keys in one round trip on the instance connection, retrying
 * with backoff (up to 5 s) until it answers or stop. vals[i] receives a
 * malloc'd copy (NUL-terminated) of each value, or NULL when the key is
 * absent or the reply an error (logged). Returns FERRY_OK or FERRY_CLOSED
 * (vals all NULL). The caller frees vals[i]. Main thread.
 */
int redis_instance_get(struct redis_instance *in, size_t n,
                       const char *const *keys, char **vals);

/*
 * `ferry check --connect`: a fresh connection, AUTH/SELECT, PING. Writes
 * one line into msg (ending with note when not NULL). Returns FERRY_OK,
 * FERRY_RETRY (unreachable) or FERRY_ERROR (refused). Main thread.
 */
int redis_instance_probe(struct redis_instance *in, char *msg, size_t len,
                         const char *note);

/* One worker's connection. */
struct redis_link {
    struct redis_instance *in;
    struct redis_conn *conn; /* queue commands here */
    unsigned index;          /* the worker, for log lines */
    int was_connected;
    int failing; /* connecting failed since the last success */
};

/* Prepares link for worker index (not connected yet). Worker thread. */
void redis_link_init(struct redis_instance *in, struct redis_link *link,
                     unsigned index);
/* Closes and frees link's connection. */
void redis_link_release(struct redis_link *link);

/*
 * Opens link's connection if it is not open, counting reconnects and
 * publishing the component state; logs once per outage. Returns FERRY_OK
 * or FERRY_RETRY. The link's worker thread.
 */
int redis_link_connect(struct redis_link *link);

/*
 * checkpoint(): stores pos as the cursor at key with the compare-and-set
 * script, one round trip on link. Returns FERRY_OK (also when pos is not
 * set) or FERRY_RETRY (logged). The link's worker thread.
 */
int redis_cursor_store(struct redis_link *link, const char *key,
                       const struct ferry_pos *pos);

/*
 * SCAN MATCH pattern COUNT count over the whole keyspace on c; for every
 * key for which pred() returns nonzero, a pipelined DEL after that round.
 * pause(parg), when given, runs between rounds and stops the walk when it
 * returns nonzero (FERRY_CLOSED). Adds to *scanned and *deleted. Returns
 * FERRY_OK, FERRY_RETRY (connection error), or FERRY_ERROR (SCAN
 * refused). The thread that owns c.
 */
int redis_scan_delete(struct redis_instance *in, struct redis_conn *c,
                      const char *pattern, const char *count,
                      int (*pred)(void *arg, const char *key, size_t len),
                      void *arg, int (*pause)(void *parg), void *parg,
                      uint64_t *scanned, uint64_t *deleted);

#endif
