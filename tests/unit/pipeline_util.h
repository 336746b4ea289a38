/*
 * tests/unit/pipeline_util.h: helpers for the scheduler tests that build
 * whole pipelines from INI text and run them inside the test process with
 * the fixture plugins of $BUILD/tests/plugins (BUILD defaults to "build").
 *
 * A test includes this header once, after <cmocka.h>. Everything here is
 * static, so each test binary gets its own copy and the Makefile needs no
 * rule for it. main() calls tmpdir_create() before the tests and
 * tmpdir_remove() after them.
 */
#ifndef FERRY_TESTS_PIPELINE_UTIL_H
#define FERRY_TESTS_PIPELINE_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"
#include "timer.h"

#if defined(__GNUC__)
#define PU_API static __attribute__((unused))
#else
#define PU_API static
#endif

/* The [ferry] section every test pipeline starts with: no HTTP server, no
 * periodic metrics log. */
#define HEAD "[ferry]\nhttp_listen =\nmetrics_interval = 0\n"

/* A private directory for the INI files, made by tmpdir_create(). */
static char tmpdir[256];

/* Makes tmpdir as /tmp/<tag>.XXXXXX; returns 0 or -1. */
PU_API int tmpdir_create(const char *tag)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", tag);
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

/* Removes tmpdir and everything in it; returns 0 or -1. */
PU_API int tmpdir_remove(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

PU_API const char *build_dir(void)
{
    const char *b = getenv("BUILD");
    return b && b[0] ? b : "build";
}

/* Writes text as an INI file and builds a pipeline from it; NULL (with the
 * reason in err) when the configuration or the pipeline refuses it. */
PU_API struct pipeline *try_pipeline(const char *text, char *err, size_t errlen)
{
    char path[512];
    char plugdir[512];
    struct config cfg;

    snprintf(path, sizeof(path), "%s/pipeline.ini", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);

    snprintf(plugdir, sizeof(plugdir), "%s/tests/plugins", build_dir());
    memset(&cfg, 0, sizeof(cfg));
    if (config_load(&cfg, path, err, errlen) != 0) {
        config_release(&cfg);
        return NULL;
    }
    return pipeline_new(&cfg, plugdir, err, errlen);
}

/* As try_pipeline(), failing the test when it refuses. */
PU_API struct pipeline *make_pipeline(const char *text)
{
    char err[1024];
    struct pipeline *pl = try_pipeline(text, err, sizeof(err));

    if (!pl) {
        fprintf(stderr, "%s\n", err);
        fail();
    }
    return pl;
}

/* The sum of every series of a metric. */
PU_API double metric(const char *name)
{
    return metrics_sum(name, NULL);
}

/* The sum of the series of a metric that carry the given label pairs
 * (name, value, ..., NULL; at most four pairs). */
PU_API double metric_l(const char *name, ...)
{
    const char *l[9];
    size_t n = 0;
    va_list ap;

    va_start(ap, name);
    while (n < 8 && (l[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    l[n] = NULL;
    return metrics_sum(name, l);
}

/* Polls until metric name reaches want or timeout_ms passes. */
PU_API int wait_metric(const char *name, double want, int timeout_ms)
{
    uint64_t until = clock_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (clock_now_ns() < until) {
        if (metric(name) >= want)
            return 1;
        usleep(2000);
    }
    return metric(name) >= want;
}

/* Starts pl, waits until its sources are done and shuts it down. */
PU_API void run_to_end(struct pipeline *pl)
{
    assert_int_equal(pipeline_start(pl), 0);
    pipeline_wait(pl);
    assert_int_equal(pipeline_shutdown(pl), 0);
}

/* Fresh metrics and health, and logging from log_level up; for a test's
 * setup. */
PU_API int pipeline_test_reset(int log_level)
{
    metrics_reset();
    health_reset();
    log_set_level(log_level);
    return 0;
}

/* The teardown of every pipeline test. */
PU_API int teardown(void **state)
{
    (void)state;
    timer_shutdown();
    metrics_reset();
    return 0;
}

#endif /* FERRY_TESTS_PIPELINE_UTIL_H */
