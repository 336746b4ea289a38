/*
 * core/metrics.h: the process-wide metric registry (counters, gauges,
 * histograms with labels) and its Prometheus text exposition (0.0.4).
 *
 * Thread-safe. Updates are lock-free atomics on the hot path; registration
 * and rendering take a lock. A series lives until metrics_reset().
 * struct ferry_metric (include/ferry/host.h) is this registry's series.
 */
#ifndef FERRY_CORE_METRICS_H
#define FERRY_CORE_METRICS_H

#include <stddef.h>

#include "ferry/host.h"

/*
 * Registers or finds the series name{labels}. labels: NULL-terminated
 * name, value pairs (may be NULL). help is kept from the first
 * registration of the name. Returns NULL when name is already registered
 * with another type.
 */
struct ferry_metric *metrics_get(int type, const char *name, const char *help,
                                 const char *const *labels);
/* A gauge whose value is read by calling fn(arg) at render time. */
struct ferry_metric *metrics_gauge_fn(const char *name, const char *help,
                                      const char *const *labels,
                                      double (*fn)(void *arg), void *arg);
void metrics_add(struct ferry_metric *m, double v);
void metrics_set(struct ferry_metric *m, double v);
void metrics_observe(struct ferry_metric *m, double v);
/* Current value of a counter or gauge; for a histogram its count. */
double metrics_value(struct ferry_metric *m);
/* Sum of every series of name whose labels include all of the given
 * name, value pairs (NULL: all series). For the summary log line. */
double metrics_sum(const char *name, const char *const *labels);
/* The number of series of name whose labels include all of the given
 * pairs (NULL: all series); 0 when name is not registered. */
size_t metrics_count(const char *name, const char *const *labels);
/* For a histogram: the q-quantile (0..1) estimated from its buckets. */
double metrics_quantile(struct ferry_metric *m, double q);

/* Renders every series in Prometheus text format 0.0.4 (HELP, TYPE,
 * histogram _bucket/_sum/_count). Returns a malloc'd string (caller
 * frees) and its length in *len. */
char *metrics_render(size_t *len);

/*
 * Registers the series every ferry process has: ferry_build_info{version},
 * ferry_ready, ferry_config_reloads_total{result="ok"|"failed"},
 * ferry_config_last_reload_success_timestamp_seconds (the process start
 * until a reload succeeds), and the standard process_* families
 * (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds) read from /proc when rendered.
 * http_start() calls it; idempotent until metrics_reset(). Any thread.
 */
void metrics_register_builtin(void);
/* Counts one configuration reload (SIGHUP) that succeeded (ok nonzero:
 * the new pipeline runs; also sets the last-success timestamp to now) or
 * was refused. Any thread. */
void metrics_config_reload(int ok);

/* Drops every series (tests, and reload of gauge callbacks). */
void metrics_reset(void);
/* Removes the callback gauges registered with arg (before arg is freed). */
void metrics_forget(void *arg);

#endif
