/*
 * ferry/host.h: the table of core services handed to every plugin.
 *
 * Plugins reach the core only through this table (they are linked with
 * -z defs and may not reference core symbols). The table only grows at its
 * end; check host->struct_size before using a member added after ABI 1.0.
 *
 * Every function taking a struct ferry_ctx needs the instance context the
 * core passed to init(). Unless stated otherwise, every function here is
 * thread-safe and may be called from any thread, including threads the
 * plugin created itself.
 */
#ifndef FERRY_HOST_H
#define FERRY_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One plugin instance ([source.NAME], [sink.NAME], [policy.NAME]). Opaque. */
struct ferry_ctx;
/* A registered metric series. Opaque; lives as long as the process. */
struct ferry_metric;
/* A periodic timer. Opaque. */
struct ferry_timer;

enum ferry_log_level {
    FERRY_LOG_DEBUG = 0,
    FERRY_LOG_INFO = 1,
    FERRY_LOG_WARN = 2,
    FERRY_LOG_ERROR = 3
};

enum ferry_metric_type {
    FERRY_METRIC_COUNTER = 1,
    FERRY_METRIC_GAUGE = 2,
    FERRY_METRIC_HISTOGRAM = 3 /* seconds; default latency buckets */
};

/* Component states for set_component(); shown by /health and /ready. */
enum ferry_component_state {
    FERRY_COMPONENT_UNKNOWN = 0,
    FERRY_COMPONENT_CONNECTED = 1,
    FERRY_COMPONENT_DISCONNECTED = 2
};

#if defined(__GNUC__)
#define FERRY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FERRY_PRINTF(a, b)
#endif

struct ferry_host {
    /* sizeof(struct ferry_host) in the running core. */
    uint32_t struct_size;
    /* FERRY_ABI_MINOR of the running core. */
    uint32_t abi_minor;

    /* ---- logging ---------------------------------------------------- */

    /* Logs one line prefixed with the instance ("[sink.cache]"). Never
     * pass secrets. Lines above the configured level are discarded. */
    void (*log)(struct ferry_ctx *ctx, int level, const char *fmt, ...)
        FERRY_PRINTF(3, 4);
    /* Returns nonzero when lines at level would be written. */
    int (*log_enabled)(struct ferry_ctx *ctx, int level);

    /* ---- memory ------------------------------------------------------ */

    /* malloc/realloc/free/strdup semantics; alloc and strdup abort the
     * process on exhaustion rather than returning NULL. */
    void *(*alloc)(size_t size);
    void *(*realloc)(void *ptr, size_t size);
    void (*free)(void *ptr);
    char *(*strdup)(const char *s);

    /* ---- clocks ------------------------------------------------------ */

    /* Monotonic clock, nanoseconds. Policies take time only from here. */
    uint64_t (*now_ns)(void);
    /* Wall clock, milliseconds since the Unix epoch. */
    int64_t (*realtime_ms)(void);

    /* ---- options (valid from init() to fini()) ----------------------- */

    /* Each returns the validated value of a key declared in the plugin's
     * option table, or its default. Asking for an undeclared key or the
     * wrong type is a programming error and aborts. */
    const char *(*opt_str)(struct ferry_ctx *ctx, const char *name);
    int64_t (*opt_int)(struct ferry_ctx *ctx, const char *name);
    int (*opt_bool)(struct ferry_ctx *ctx, const char *name);
    uint64_t (*opt_duration_ms)(struct ferry_ctx *ctx, const char *name);
    uint64_t (*opt_size)(struct ferry_ctx *ctx, const char *name);
    double (*opt_double)(struct ferry_ctx *ctx, const char *name);
    /* Stores a NULL-terminated array of the list's items in *items and
     * returns their count. The array is owned by the core. */
    size_t (*opt_list)(struct ferry_ctx *ctx, const char *name,
                       const char *const **items);
    /* Nonzero when the key was set in the configuration (not defaulted). */
    int (*opt_is_set)(struct ferry_ctx *ctx, const char *name);
    /* The instance name ("cache" for [sink.cache]). */
    const char *(*instance_name)(struct ferry_ctx *ctx);

    /* ---- messages (sources) ----------------------------------------- */

    /*
     * Offers msg to every route whose `from` is this source and whose
     * `match` covers msg->entity_type. All-or-nothing: either every route
     * accepted a copy (FERRY_OK) or none did.
     *
     * Returns FERRY_OK; FERRY_WOULD_BLOCK when a route is full and its
     * policies say block: the source should stop reading its input and
     * wait for its wakeup() callback before offering msg again;
     * FERRY_CLOSED while the pipeline stops; FERRY_EINVAL for a message
     * without an entity type. emit() copies msg and everything it points
     * to in every case: the caller keeps ownership of its buffers.
     * A message no route matches is counted and returns FERRY_OK.
     */
    int (*emit)(struct ferry_ctx *ctx, const struct ferry_msg *msg);
    /* As emit(), but waits up to timeout_ms (0: forever) for room instead
     * of returning FERRY_WOULD_BLOCK; returns FERRY_TIMEDOUT then. For
     * sources that may block their thread (the file source). */
    int (*emit_wait)(struct ferry_ctx *ctx, const struct ferry_msg *msg,
                     uint64_t timeout_ms);
    /* Stores the source's replay position: the newest position up to
     * which every message this source emitted has been applied by every
     * route, or, before anything is applied, the position the sinks
     * recorded (load_position). out->set is 0 when there is none. */
    void (*committed)(struct ferry_ctx *ctx, struct ferry_pos *out);

    /* ---- timers ------------------------------------------------------ */

    /* Calls cb(arg) every period_ms on the core's timer thread, first
     * after one period. Callbacks must not block for long. Returns NULL
     * on failure (then cb is never called). */
    struct ferry_timer *(*timer_start)(struct ferry_ctx *ctx,
                                       uint64_t period_ms,
                                       void (*cb)(void *arg), void *arg);
    /* Stops the timer and waits for a running callback to return; after
     * it returns cb is never called again. Accepts NULL. Must not be
     * called from the timer's own callback. */
    void (*timer_stop)(struct ferry_timer *timer);

    /* ---- metrics ----------------------------------------------------- */

    /*
     * Registers (or finds) a series. labels is a NULL-terminated list of
     * name, value pairs; the core adds the instance label first
     * (source="ws", sink="cache" or policy="breaker"). Registering the same
     * name and labels again returns the same series. Returns NULL only on
     * a type clash with an existing name.
     */
    struct ferry_metric *(*metric)(struct ferry_ctx *ctx, int type,
                                   const char *name, const char *help,
                                   const char *const *labels);
    /* Counters and gauges: add (counters only accept v >= 0). */
    void (*metric_add)(struct ferry_metric *m, double v);
    /* Gauges: set. */
    void (*metric_set)(struct ferry_metric *m, double v);
    /* Histograms: record one observation (seconds). */
    void (*metric_observe)(struct ferry_metric *m, double v);

    /* ---- health and readiness --------------------------------------- */

    /* Publishes a component's state in /health and /ready, e.g.
     * set_component(ctx, "redis", FERRY_COMPONENT_CONNECTED). */
    void (*set_component)(struct ferry_ctx *ctx, const char *component,
                          int state);
    /* Marks the instance ready (the cache is complete) or not. /ready
     * answers 200 when every sink that ever called set_ready is ready. */
    void (*set_ready)(struct ferry_ctx *ctx, int ready);
    /* Publishes a key/value in /health, /ready and /debug (for example
     * "cache_version"). The value is copied. Never publish a secret. */
    void (*set_info)(struct ferry_ctx *ctx, const char *key,
                     const char *value);
    /* Asks the process to stop (for example: the writer lock was lost).
     * exit_code is the process exit code; reason is logged. */
    void (*request_stop)(struct ferry_ctx *ctx, int exit_code,
                         const char *reason);
};

#ifdef __cplusplus
}
#endif

#endif /* FERRY_HOST_H */
