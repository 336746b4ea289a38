/*
 * core/health.h: process health and readiness, as served by /health and
 * /ready (interface.md "HTTP") and summarised in /debug.
 *
 * Plugins publish through the host table (set_component, set_ready,
 * set_info), which forwards here. Thread-safe.
 */
#ifndef FERRY_CORE_HEALTH_H
#define FERRY_CORE_HEALTH_H

#include <stddef.h>

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

/* Forgets everything (tests). */
void health_reset(void);

#endif
