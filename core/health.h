/*
 * core/health.h: process health and readiness, as served by /health and
 * /ready (interface.md "HTTP") and summarised in /debug.
 *
 * Plugins publish through the host table (set_component, set_ready,
 * set_info), which forwards here. Thread-safe.
 */
#ifndef FERRY_CORE_HEALTH_H
#define FERRY_CORE_HEALTH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Component state (FERRY_COMPONENT_*) under a name such as "redis". */
void health_set_component(const char *component, int state);
/* Readiness of one owner (a sink instance name). The process is ready when
 * at least one owner registered and all registered owners are ready. */
void health_set_ready(const char *owner, int ready);
/* A published key/value, e.g. "cache_version". */
void health_set_info(const char *key, const char *value);
/* Returns a malloc'd copy of the info value, or NULL. */
char *health_info(const char *key);
/* Nonzero when the process is ready. */
int health_ready(void);
/* Nonzero when every component is connected (none disconnected). */
int health_healthy(void);

/*
 * The JSON body of /health and /ready (the reference replicator's
 * contract):
 *   {"status":"healthy","ready":true,"connected":true,
 *    "components":{"redis":"connected","datastream":"connected"},
 *    "cache_version":"<v>","timestamp":"2026-11-28T10:00:00.123456789Z"}
 * malloc'd; caller frees.
 */
char *health_json(void);

/* A JSON object of every published info key and its value, sorted by
 * key, for /debug. malloc'd; caller frees; NULL on allocation failure.
 * The registry holds only what plugins publish with set_info(), which
 * must never be given a secret. */
char *health_info_json(void);

/*
 * The JSON body of health_json() and, from the same snapshot, whether
 * ferry is alive (*alive: no watched step is stuck past the watchdog
 * bound; /health answers 503 otherwise) and ready (*ready, /ready).
 * Components being disconnected do not affect *alive: /health is a
 * liveness probe. When a step is stuck the body carries "reason", one
 * sentence naming it and the bound. malloc'd; caller frees; NULL on
 * allocation failure (then *alive and *ready are still set). Any thread.
 */
char *health_body(int *alive, int *ready);

/* ---- watchdog ------------------------------------------------------- */

/*
 * A heartbeat of one watched step of one thread: a worker inside its
 * sink's write(), a source inside emit(), the HTTP thread answering a
 * request. The thread stores the monotonic time it entered the step and
 * 0 when it left it, with relaxed atomic stores (health_beat_enter(),
 * health_beat_leave()); the watchdog reads them when /health is asked.
 * A thread owns its beat from health_beat_new() to health_beat_free().
 */
struct health_beat {
    atomic_uint_least64_t since_ns; /* 0: outside the step */
    char what[112];                 /* "route all worker 0: sink.out write()" */
    struct health_beat *next;       /* registry list, under its lock */
};

/* The calling thread's beat, or NULL (core threads set it once). */
extern _Thread_local struct health_beat *health_self;

/*
 * Registers a beat named by the printf-style fmt. Returns it, or NULL
 * on allocation failure (the enter and leave calls accept NULL). Any
 * thread; not on a hot path.
 */
struct health_beat *health_beat_new(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* Unregisters and frees b; accepts NULL. The owning thread, once. */
void health_beat_free(struct health_beat *b);

/* Marks b inside its step since now_ns (monotonic). */
static inline void health_beat_enter(struct health_beat *b, uint64_t now_ns)
{
    if (b)
        atomic_store_explicit(&b->since_ns, now_ns ? now_ns : 1,
                              memory_order_relaxed);
}

/* Marks b outside its step. */
static inline void health_beat_leave(struct health_beat *b)
{
    if (b)
        atomic_store_explicit(&b->since_ns, 0, memory_order_relaxed);
}

/*
 * The watchdog bound in milliseconds: a watched step taking longer makes
 * ferry wedged. 60000 (60 s: four times the longest default Redis command
 * and connect timeouts of the shipped sinks, with room), or the value of
 * the environment variable FERRY_WATCHDOG_MS read once at the first call
 * (for tests only; not a configuration option). Any thread.
 */
uint64_t health_watchdog_ms(void);
/* Overrides the bound (tests); 0 restores the default. */
void health_set_watchdog_ms(uint64_t ms);

/*
 * Returns 1 when a watched step has been inside for longer than the
 * bound at now_ns (monotonic), with a sentence naming the oldest one in
 * reason ("route all worker 0: sink.out write() has not returned for
 * 75.0 s (watchdog bound 60 s)"); else 0 and reason "". Any thread (the
 * HTTP thread, a systemd watchdog ping).
 */
int health_wedged(uint64_t now_ns, char *reason, size_t len);

/* Forgets everything (tests). */
void health_reset(void);

#endif
