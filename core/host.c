/*
 * core/host.c: the host table handed to plugins. Each entry translates a
 * plugin's call into the core subsystem that serves it, with the instance
 * (struct ferry_ctx) supplying the log prefix and the metric label.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "health.h"
#include "host.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"
#include "timer.h"

static void host_log(struct ferry_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, ctx ? ctx->label : NULL, fmt, ap);
    va_end(ap);
}

static int host_log_enabled(struct ferry_ctx *ctx, int level)
{
    (void)ctx;
    return log_enabled(level);
}

static void *host_alloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        abort();
    return p;
}

static void *host_realloc(void *ptr, size_t size)
{
    return realloc(ptr, size);
}

static void host_free(void *ptr)
{
    free(ptr);
}

static char *host_strdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static uint64_t host_now_ns(void)
{
    return clock_now_ns();
}

static int64_t host_realtime_ms(void)
{
    return clock_realtime_ms();
}

static const char *host_opt_str(struct ferry_ctx *ctx, const char *name)
{
    return optset_str(ctx->opts, name);
}

static int64_t host_opt_int(struct ferry_ctx *ctx, const char *name)
{
    return optset_int(ctx->opts, name);
}

static int host_opt_bool(struct ferry_ctx *ctx, const char *name)
{
    return optset_bool(ctx->opts, name);
}

static uint64_t host_opt_duration_ms(struct ferry_ctx *ctx, const char *name)
{
    return optset_duration_ms(ctx->opts, name);
}

static uint64_t host_opt_size(struct ferry_ctx *ctx, const char *name)
{
    return optset_size(ctx->opts, name);
}

static double host_opt_double(struct ferry_ctx *ctx, const char *name)
{
    return optset_double(ctx->opts, name);
}

static size_t host_opt_list(struct ferry_ctx *ctx, const char *name,
                            const char *const **items)
{
    return optset_list(ctx->opts, name, items);
}

static int host_opt_is_set(struct ferry_ctx *ctx, const char *name)
{
    return optset_is_set(ctx->opts, name);
}

static const char *host_instance_name(struct ferry_ctx *ctx)
{
    return ctx->name;
}

static int host_emit(struct ferry_ctx *ctx, const struct ferry_msg *msg)
{
    return sched_emit(ctx, msg, 0, 0);
}

static int host_emit_wait(struct ferry_ctx *ctx, const struct ferry_msg *msg,
                          uint64_t timeout_ms)
{
    return sched_emit(ctx, msg, 1, timeout_ms);
}

static void host_committed(struct ferry_ctx *ctx, struct ferry_pos *out)
{
    sched_committed(ctx, out);
}

static struct ferry_timer *host_timer_start(struct ferry_ctx *ctx,
                                            uint64_t period_ms,
                                            void (*cb)(void *arg), void *arg)
{
    (void)ctx;
    return timer_start(period_ms, cb, arg);
}

static void host_timer_stop(struct ferry_timer *t)
{
    timer_stop(t);
}

static const char *kind_label(int kind)
{
    switch (kind) {
    case FERRY_KIND_SOURCE:
        return "source";
    case FERRY_KIND_SINK:
        return "sink";
    default:
        return "policy";
    }
}

static struct ferry_metric *host_metric(struct ferry_ctx *ctx, int type,
                                        const char *name, const char *help,
                                        const char *const *labels)
{
    const char *all[66];
    size_t n = 0;

    all[n++] = kind_label(ctx->kind);
    all[n++] = ctx->name;
    for (size_t i = 0; labels && labels[i] && labels[i + 1] && n < 64;
         i += 2) {
        all[n++] = labels[i];
        all[n++] = labels[i + 1];
    }
    all[n] = NULL;
    return metrics_get(type, name, help, all);
}

static void host_metric_add(struct ferry_metric *m, double v)
{
    if (m)
        metrics_add(m, v);
}

static void host_metric_set(struct ferry_metric *m, double v)
{
    if (m)
        metrics_set(m, v);
}

static void host_metric_observe(struct ferry_metric *m, double v)
{
    if (m)
        metrics_observe(m, v);
}

static void host_set_component(struct ferry_ctx *ctx, const char *component,
                               int state)
{
    (void)ctx;
    health_set_component(component, state);
}

static void host_set_ready(struct ferry_ctx *ctx, int ready)
{
    health_set_ready(ctx->label, ready);
}

static void host_set_info(struct ferry_ctx *ctx, const char *key,
                          const char *value)
{
    (void)ctx;
    health_set_info(key, value);
}

static void host_request_stop(struct ferry_ctx *ctx, int exit_code,
                              const char *reason)
{
    log_write(exit_code ? FERRY_LOG_ERROR : FERRY_LOG_INFO, ctx->label,
              "requests a stop: %s", reason ? reason : "(no reason)");
    pipeline_request_stop(ctx->pl, exit_code, NULL);
}

const struct ferry_host host_table = {
    .struct_size = sizeof(struct ferry_host),
    .abi_minor = FERRY_ABI_MINOR,
    .log = host_log,
    .log_enabled = host_log_enabled,
    .alloc = host_alloc,
    .realloc = host_realloc,
    .free = host_free,
    .strdup = host_strdup,
    .now_ns = host_now_ns,
    .realtime_ms = host_realtime_ms,
    .opt_str = host_opt_str,
    .opt_int = host_opt_int,
    .opt_bool = host_opt_bool,
    .opt_duration_ms = host_opt_duration_ms,
    .opt_size = host_opt_size,
    .opt_double = host_opt_double,
    .opt_list = host_opt_list,
    .opt_is_set = host_opt_is_set,
    .instance_name = host_instance_name,
    .emit = host_emit,
    .emit_wait = host_emit_wait,
    .committed = host_committed,
    .timer_start = host_timer_start,
    .timer_stop = host_timer_stop,
    .metric = host_metric,
    .metric_add = host_metric_add,
    .metric_set = host_metric_set,
    .metric_observe = host_metric_observe,
    .set_component = host_set_component,
    .set_ready = host_set_ready,
    .set_info = host_set_info,
    .request_stop = host_request_stop,
};
