/*
 * tests/unit/test_sched.c: the scheduler end to end inside one process,
 * with the gen_source and check_sink fixture plugins (tests/plugins/):
 * per-entity order with 8 workers, batch flushing at batch_size and at
 * batch_timeout, retries that lose nothing, barriers, the commit tracker,
 * and draining on stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline_util.h"
#include "tracker.h"

static int setup(void **state)
{
    (void)state;
    return pipeline_test_reset(FERRY_LOG_WARN);
}

/* 100k messages for 1k entities through 8 workers: every entity's
 * messages arrive in order, none is lost or repeated, and the final
 * checkpoint is the last position. */
static void test_order_with_8_workers(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.gen]\nplugin = gen\ncount = 100000\nentities = 1000\n"
             "[sink.check]\nplugin = check\n"
             "[route.r]\nfrom = gen\nto = check\nworkers = 8\nbatch_size = 50\n"
             "channel_size = 1000\nbatch_timeout = 5ms\n");
    run_to_end(pl);
    assert_int_equal((int64_t)metric("test_sink_messages_total"), 100000);
    assert_int_equal((int64_t)metric("test_sink_order_violations_total"), 0);
    assert_int_equal((int64_t)metric("test_sink_duplicates_total"), 0);
    assert_true(metric("test_sink_sum_total") == 100000.0 * 100001.0 / 2);
    assert_int_equal((int64_t)metric("ferry_messages_applied_total"), 100000);
    assert_int_equal((int64_t)metric("test_sink_checkpoint"), 100000);
    assert_true(metric("test_sink_max_batch") <= 50);
    pipeline_free(pl);
}

/* A batch is handed over as soon as it has batch_size messages, long
 * before batch_timeout. */
static void test_flush_at_batch_size(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.gen]\nplugin = gen\ncount = 100\nentities = 10\n"
             "linger = true\n"
             "[sink.check]\nplugin = check\n"
             "[route.r]\nfrom = gen\nto = check\nworkers = 1\nbatch_size = 10\n"
             "batch_timeout = 1h\n");
    assert_int_equal(pipeline_start(pl), 0);
    assert_true(wait_metric("test_sink_messages_total", 100, 3000));
    assert_int_equal((int64_t)metric("test_sink_batches_total"), 10);
    assert_int_equal((int64_t)metric("test_sink_max_batch"), 10);
    pipeline_request_stop(pl, 0, NULL);
    assert_int_equal(pipeline_shutdown(pl), 0);
    pipeline_free(pl);
}

/* A short batch is handed over when batch_timeout has passed since its
 * first message, not before. */
static void test_flush_at_batch_timeout(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.gen]\nplugin = gen\ncount = 5\nentities = 5\n"
             "linger = true\n"
             "[sink.check]\nplugin = check\n"
             "[route.r]\nfrom = gen\nto = check\nworkers = 1\n"
             "batch_size = 1000\nbatch_timeout = 150ms\n");
    assert_int_equal(pipeline_start(pl), 0);
    usleep(60000);
    assert_int_equal((int64_t)metric("test_sink_messages_total"), 0);
    assert_true(wait_metric("test_sink_messages_total", 5, 3000));
    assert_int_equal((int64_t)metric("test_sink_batches_total"), 1);
    double waited = metric("test_sink_last_wait_seconds");
    assert_true(waited >= 0.14);
    assert_true(waited < 1.0);
    pipeline_request_stop(pl, 0, NULL);
    assert_int_equal(pipeline_shutdown(pl), 0);
    pipeline_free(pl);
}

/* A sink that answers retry to its first calls loses nothing. */
static void test_retry_loses_nothing(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.gen]\nplugin = gen\ncount = 2000\nentities = 50\n"
             "[sink.check]\nplugin = check\nretry_first = 5\n"
             "[route.r]\nfrom = gen\nto = check\nworkers = 4\nbatch_size = 20\n"
             "channel_size = 100\nbatch_timeout = 5ms\n");
    run_to_end(pl);
    assert_int_equal((int64_t)metric("test_sink_messages_total"), 2000);
    assert_true(metric("test_sink_sum_total") == 2000.0 * 2001.0 / 2);
    assert_int_equal((int64_t)metric("test_sink_order_violations_total"), 0);
    assert_int_equal(
        (int64_t)metric_l("ferry_sink_batches_total", "result", "retry", NULL),
        5);
    assert_int_equal((int64_t)metric("test_sink_checkpoint"), 2000);
    pipeline_free(pl);
}

/* Control messages are barriers: everything emitted before one is
 * applied first, and it is handed to the sink alone. */
static void test_control_barrier(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.gen]\nplugin = gen\ncount = 5000\nentities = 100\n"
             "control_every = 500\n"
             "[sink.check]\nplugin = check\n"
             "[route.r]\nfrom = gen\nto = check\nworkers = 4\nbatch_size = 16\n"
             "channel_size = 200\nbatch_timeout = 2ms\n");
    run_to_end(pl);
    assert_int_equal((int64_t)metric("test_sink_messages_total"), 5000);
    assert_int_equal((int64_t)metric("test_sink_controls_total"), 10);
    assert_int_equal((int64_t)metric("test_sink_barrier_violations_total"),
                     0);
    assert_int_equal((int64_t)metric("test_sink_order_violations_total"), 0);
    pipeline_free(pl);
}

/* A stop drains every queued message into the sink. */
static void test_stop_drains_queue(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "shutdown_timeout = 30s\n"
             "[source.gen]\nplugin = gen\ncount = 10000\nentities = 100\n"
             "linger = true\n"
             "[sink.check]\nplugin = check\ndelay = 20ms\n"
             "[route.r]\nfrom = gen\nto = check\nworkers = 2\nbatch_size = 50\n"
             "channel_size = 20000\nbatch_timeout = 1ms\n");
    assert_int_equal(pipeline_start(pl), 0);
    assert_true(wait_metric("test_source_emitted_total", 10000, 5000));
    /* Most of the 10k are still queued behind the slow sink. */
    assert_true(metric("test_sink_messages_total") < 5000);
    pipeline_request_stop(pl, 0, "test");
    assert_int_equal(pipeline_shutdown(pl), 0);
    assert_int_equal((int64_t)metric("test_sink_messages_total"), 10000);
    assert_int_equal((int64_t)metric("test_sink_checkpoint"), 10000);
    pipeline_free(pl);
}

/* When shutdown_timeout runs out, the rest is abandoned and the final
 * checkpoint stays behind it (it will be replayed). */
static void test_shutdown_timeout_keeps_cursor_behind(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "shutdown_timeout = 200ms\n"
             "[source.gen]\nplugin = gen\ncount = 2000\nentities = 10\n"
             "linger = true\n"
             "[sink.check]\nplugin = check\ndelay = 50ms\n"
             "[route.r]\nfrom = gen\nto = check\nworkers = 1\nbatch_size = 10\n"
             "channel_size = 5000\nbatch_timeout = 1ms\n");
    assert_int_equal(pipeline_start(pl), 0);
    assert_true(wait_metric("test_source_emitted_total", 2000, 5000));
    uint64_t t0 = clock_now_ns();
    pipeline_request_stop(pl, 0, "test");
    pipeline_shutdown(pl);
    assert_true(clock_now_ns() - t0 < 2000000000ull);
    double applied = metric("test_sink_messages_total");
    assert_true(applied < 2000);
    assert_true(metric("test_sink_checkpoint") <= applied);
    pipeline_free(pl);
}

/* The tracker never passes a gap, whatever order messages finish in. */
static void test_tracker_never_passes_gap(void **state)
{
    (void)state;
    struct tracker t;
    uint64_t s[6];

    tracker_init(&t);
    for (int i = 0; i < 6; i++) {
        struct ferry_pos p = {100 + (uint64_t)i, 0, 1};
        s[i] = tracker_add(&t, &p);
    }
    tracker_done(&t, s[2]);
    tracker_done(&t, s[1]);
    assert_false(tracker_committed(&t).set);
    struct ferry_pos pv = tracker_preview(&t, &s[0], 1);
    assert_int_equal(pv.ms, 102);
    assert_false(tracker_committed(&t).set); /* preview changes nothing */
    tracker_done(&t, s[0]);
    assert_int_equal(tracker_committed(&t).ms, 102);
    tracker_done(&t, s[5]);
    assert_int_equal(tracker_committed(&t).ms, 102);
    tracker_done(&t, s[4]);
    tracker_done(&t, s[3]);
    assert_int_equal(tracker_committed(&t).ms, 105);
    assert_int_equal(tracker_pending(&t), 0);

    /* Growth past the initial ring keeps every entry. */
    uint64_t first = 0;
    for (int i = 0; i < 5000; i++) {
        struct ferry_pos p = {1000 + (uint64_t)i, 0, 1};
        uint64_t q = tracker_add(&t, &p);
        if (!first)
            first = q;
    }
    for (uint64_t q = first + 4999; q > first; q--)
        tracker_done(&t, q);
    assert_int_equal(tracker_committed(&t).ms, 105);
    tracker_done(&t, first);
    assert_int_equal(tracker_committed(&t).ms, 5999);
    tracker_release(&t);
}

/* Configuration errors in routes name the file, line and the fix. */
static void test_route_reference_errors(void **state)
{
    (void)state;
    char path[512], plugdir[512], err[1024];
    struct config cfg;

    snprintf(path, sizeof(path), "%s/bad.ini", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[source.gen]\nplugin = gen\n[sink.check]\nplugin = check\n"
               "[route.r]\nfrom = gne\nto = check\n");
    fclose(f);
    snprintf(plugdir, sizeof(plugdir), "%s/tests/plugins", build_dir());
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
    assert_null(pipeline_new(&cfg, plugdir, err, sizeof(err)));
    char want[700];
    snprintf(want, sizeof(want),
             "%s:6: [route.r] from: no source named 'gne' (did you mean "
             "'gen'?)",
             path);
    assert_string_equal(err, want);
}

int main(void)
{
    if (tmpdir_create("ferry-sched") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_with_8_workers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flush_at_batch_size, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flush_at_batch_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retry_loses_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_control_barrier, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_shutdown_timeout_keeps_cursor_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tracker_never_passes_gap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_reference_errors, setup,
                                        teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tmpdir_remove() != 0)
        return 1;
    return rc;
}
