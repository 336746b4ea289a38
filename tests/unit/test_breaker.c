/*
 * tests/unit/test_breaker.c: plugins/policy_breaker, the state machine
 * (breaker.c) with a fake clock and the plugin through a fake host.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/policy_breaker/breaker.c"
#include "../../plugins/policy_breaker/policy_breaker.c"

#define MS 1000000ull
#define SEC 1000000000ull

/* ---- fake host ---------------------------------------------------------- */

#include "fakehost.h"

static struct ferry_ctx *fake_ctx;

static int setup(void **state)
{
    (void)state;
    fh_reset();
    fh_clock_set(1000 * SEC);
    fake_ctx = fh_ctx_new("breaker", ferry_plugin.options);
    fh_opt(fake_ctx, "threshold", "5");
    fh_opt(fake_ctx, "half_open_probes", "1");
    fh_opt(fake_ctx, "timeout", "30000ms");
    return 0;
}

/* ---- the state machine -------------------------------------------------- */

static void test_sm_opens_after_threshold(void **state)
{
    struct breaker b;
    uint64_t t = 5 * SEC;

    (void)state;
    breaker_init(&b, 3, 30 * SEC, 1);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t), BREAKER_GO);
    breaker_step(&b, BREAKER_FAILURE, t);
    breaker_step(&b, BREAKER_FAILURE, t);
    /* A success in between: the failures were not consecutive. */
    breaker_step(&b, BREAKER_SUCCESS, t);
    breaker_step(&b, BREAKER_FAILURE, t);
    breaker_step(&b, BREAKER_FAILURE, t);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t), BREAKER_GO);
    breaker_step(&b, BREAKER_FAILURE, t + 1);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(b.opened_after, 3);

    /* Open: held until exactly opened_at + timeout. */
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t + 2), BREAKER_HOLD);
    assert_true(b.retry_at == t + 1 + 30 * SEC);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t + 30 * SEC), BREAKER_HOLD);
    assert_true(b.retry_at == t + 1 + 30 * SEC);
    assert_int_equal(b.state, BREAKER_OPEN);

    /* At the timeout: half-open, one probe, the others wait 50 ms. */
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t + 1 + 30 * SEC),
                     BREAKER_GO_PROBE);
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t + 31 * SEC), BREAKER_HOLD);
    assert_true(b.retry_at == t + 31 * SEC + BREAKER_PROBE_WAIT_NS);
    breaker_step(&b, BREAKER_PROBE_SUCCESS, t + 32 * SEC);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t + 32 * SEC), BREAKER_GO);
}

static void test_sm_probe_failure_reopens(void **state)
{
    struct breaker b;

    (void)state;
    breaker_init(&b, 1, 10 * SEC, 1);
    breaker_step(&b, BREAKER_FAILURE, 100);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, 100 + 10 * SEC),
                     BREAKER_GO_PROBE);
    breaker_step(&b, BREAKER_PROBE_FAILURE, 200 + 10 * SEC);
    assert_int_equal(b.state, BREAKER_OPEN);
    /* A new timeout from the probe's failure. */
    assert_int_equal(breaker_step(&b, BREAKER_ASK, 199 + 20 * SEC),
                     BREAKER_HOLD);
    assert_true(b.retry_at == 200 + 20 * SEC);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, 200 + 20 * SEC),
                     BREAKER_GO_PROBE);
}

static void test_sm_probes_and_cancel(void **state)
{
    struct breaker b;
    uint64_t t = 10 * SEC;

    (void)state;
    breaker_init(&b, 2, SEC, 3);
    breaker_step(&b, BREAKER_FAILURE, 0);
    breaker_step(&b, BREAKER_FAILURE, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(breaker_step(&b, BREAKER_ASK, t), BREAKER_GO_PROBE);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t), BREAKER_HOLD);
    breaker_step(&b, BREAKER_PROBE_CANCEL, t);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t), BREAKER_GO_PROBE);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, t), BREAKER_HOLD);
    /* The first probe back decides; later ones count as plain results. */
    breaker_step(&b, BREAKER_PROBE_SUCCESS, t);
    assert_int_equal(b.state, BREAKER_CLOSED);
    breaker_step(&b, BREAKER_PROBE_FAILURE, t);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_int_equal(b.failures, 1);
    breaker_step(&b, BREAKER_PROBE_FAILURE, t);
    assert_int_equal(b.state, BREAKER_OPEN);
}

static void test_sm_stale_results(void **state)
{
    struct breaker b;

    (void)state;
    breaker_init(&b, 1, SEC, 1);
    breaker_step(&b, BREAKER_FAILURE, 0);
    /* Batches that started before the circuit opened finish late. */
    breaker_step(&b, BREAKER_SUCCESS, 1);
    breaker_step(&b, BREAKER_FAILURE, 2);
    breaker_step(&b, BREAKER_PROBE_SUCCESS, 3);
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_true(b.opened_at == 0);
    assert_int_equal(breaker_step(&b, BREAKER_ASK, SEC), BREAKER_GO_PROBE);
    /* Only the probe decides a half-open breaker. */
    breaker_step(&b, BREAKER_SUCCESS, SEC);
    breaker_step(&b, BREAKER_FAILURE, SEC);
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    assert_string_equal(breaker_state_name(b.state), "half_open");
    assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
}

/* ---- the plugin through a fake host ------------------------------------- */

static void *plugin_init(void)
{
    void *st = NULL;

    assert_int_equal(ferry_plugin.init(&fh_host, fake_ctx, &st), FERRY_OK);
    assert_non_null(st);
    return st;
}

static int before(void *st, const char *route, unsigned worker,
                  uint64_t *retry_at)
{
    struct ferry_write_event ev = {.route = route,
                                   .sink = "cache",
                                   .worker = worker,
                                   .count = 10,
                                   .now_ns = fh_now_ns()};

    *retry_at = 0;
    return ferry_plugin.before_write(st, &ev, retry_at);
}

static void after(void *st, const char *route, unsigned worker, int status)
{
    struct ferry_write_event ev = {.route = route,
                                   .sink = "cache",
                                   .worker = worker,
                                   .count = 10,
                                   .now_ns = fh_now_ns()};

    ferry_plugin.after_write(st, &ev, status);
}

static void test_descriptor(void **state)
{
    const struct ferry_option *o = ferry_plugin.options;

    (void)state;
    assert_int_equal(ferry_plugin.hdr.kind, FERRY_KIND_POLICY);
    assert_string_equal(ferry_plugin.hdr.name, "breaker");
    assert_null(ferry_plugin.admit);
    assert_string_equal(o[0].name, "threshold");
    assert_string_equal(o[0].def, "5");
    assert_true(o[0].min == 1 && o[0].max == 1000000);
    assert_string_equal(o[1].name, "timeout");
    assert_int_equal(o[1].type, FERRY_OPT_DURATION);
    assert_string_equal(o[1].def, "30s");
    assert_string_equal(o[2].name, "half_open_probes");
    assert_string_equal(o[2].def, "1");
    assert_null(o[3].name);
}

static void test_plugin_cycle(void **state)
{
    void *st = plugin_init();
    uint64_t retry_at, opened;

    (void)state;
    assert_true(fh_metric("ferry_breaker_state", "") == 0);
    assert_true(fh_metric("ferry_breaker_transitions_total", "to=open") == 0);
    assert_true(fh_metric("ferry_breaker_transitions_total", "to=closed") == 0);
    assert_true(fh_metric("ferry_breaker_transitions_total", "to=half_open") ==
                0);

    /* Four failures (retry and error alike) and a success: still closed. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(before(st, "company", 0, &retry_at), FERRY_OK);
        after(st, "company", 0, i % 2 ? FERRY_ERROR : FERRY_RETRY);
    }
    after(st, "company", 1, FERRY_OK);
    for (int i = 0; i < 4; i++)
        after(st, "company", (unsigned)i, FERRY_RETRY);
    assert_int_equal(fh_nlogs(fake_ctx), 0);
    assert_int_equal(before(st, "company", 0, &retry_at), FERRY_OK);

    /* The fifth consecutive failure opens it. */
    fh_clock_advance(5 * MS);
    opened = fh_now_ns();
    after(st, "company", 0, FERRY_RETRY);
    assert_int_equal(fh_nlogs(fake_ctx), 1);
    assert_int_equal(fh_log_line_level(fake_ctx, 0), FERRY_LOG_WARN);
    assert_string_equal(fh_log_line(fake_ctx, 0),
                        "circuit open after 5 consecutive "
                        "failures; holding batches for 30s");
    assert_true(fh_metric("ferry_breaker_state", "") == 1);
    assert_true(fh_metric("ferry_breaker_transitions_total", "to=open") == 1);

    /* Open: every worker's batch is held (kept) until opened + 30 s. */
    for (unsigned w = 0; w < 8; w++) {
        fh_clock_advance(SEC);
        assert_int_equal(before(st, "company", w, &retry_at),
                         FERRY_WOULD_BLOCK);
        assert_true(retry_at == opened + 30 * SEC);
    }
    fh_clock_set(opened + 30 * SEC - 1);
    assert_int_equal(before(st, "company", 0, &retry_at), FERRY_WOULD_BLOCK);
    /* More failures of batches that were already out: nothing logged. */
    after(st, "company", 3, FERRY_RETRY);
    assert_int_equal(fh_nlogs(fake_ctx), 1);

    /* At the timeout: half-open, exactly one probe. */
    fh_clock_set(opened + 30 * SEC);
    assert_int_equal(before(st, "company", 2, &retry_at), FERRY_OK);
    assert_int_equal(fh_nlogs(fake_ctx), 2);
    assert_int_equal(fh_log_line_level(fake_ctx, 1), FERRY_LOG_INFO);
    assert_string_equal(fh_log_line(fake_ctx, 1),
                        "half-open: probing with 1 batch");
    assert_true(fh_metric("ferry_breaker_state", "") == 2);
    assert_true(fh_metric("ferry_breaker_transitions_total", "to=half_open") ==
                1);
    assert_int_equal(before(st, "company", 0, &retry_at), FERRY_WOULD_BLOCK);
    assert_true(retry_at == fh_now_ns() + 50 * MS);
    assert_int_equal(before(st, "user", 2, &retry_at), FERRY_WOULD_BLOCK);
    /* The probe's worker asking again (a later policy held it) may go. */
    assert_int_equal(before(st, "company", 2, &retry_at), FERRY_OK);
    /* A non-probe batch finishing does not decide. */
    after(st, "company", 5, FERRY_OK);
    assert_true(fh_metric("ferry_breaker_state", "") == 2);

    /* The probe succeeds: closed. */
    fh_clock_advance(20 * MS);
    after(st, "company", 2, FERRY_OK);
    assert_int_equal(fh_nlogs(fake_ctx), 3);
    assert_int_equal(fh_log_line_level(fake_ctx, 2), FERRY_LOG_INFO);
    assert_non_null(strstr(fh_log_line(fake_ctx, 2), "closed"));
    assert_true(fh_metric("ferry_breaker_state", "") == 0);
    assert_true(fh_metric("ferry_breaker_transitions_total", "to=closed") == 1);
    for (unsigned w = 0; w < 8; w++)
        assert_int_equal(before(st, "company", w, &retry_at), FERRY_OK);
    /* The failure count started over. */
    for (int i = 0; i < 4; i++)
        after(st, "company", 0, FERRY_RETRY);
    assert_true(fh_metric("ferry_breaker_state", "") == 0);
    assert_int_equal(fh_nlogs(fake_ctx), 3);
    ferry_plugin.fini(st);
}

static void test_plugin_probe_failure(void **state)
{
    void *st;
    uint64_t retry_at, t;

    (void)state;
    fh_opt(fake_ctx, "threshold", "2");
    fh_opt(fake_ctx, "timeout", "1500ms");
    st = plugin_init();
    after(st, "r", 0, FERRY_RETRY);
    after(st, "r", 0, FERRY_RETRY);
    assert_string_equal(fh_log_line(fake_ctx, 0),
                        "circuit open after 2 consecutive "
                        "failures; holding batches for 1500ms");
    fh_clock_advance(1500 * MS);
    assert_int_equal(before(st, "r", 1, &retry_at), FERRY_OK);
    fh_clock_advance(7 * MS);
    t = fh_now_ns();
    after(st, "r", 1, FERRY_ERROR);
    assert_int_equal(fh_nlogs(fake_ctx), 3);
    assert_int_equal(fh_log_line_level(fake_ctx, 2), FERRY_LOG_WARN);
    assert_string_equal(fh_log_line(fake_ctx, 2),
                        "circuit open again: probe failed; "
                        "holding batches for 1500ms");
    assert_true(fh_metric("ferry_breaker_state", "") == 1);
    assert_true(fh_metric("ferry_breaker_transitions_total", "to=open") == 2);
    assert_int_equal(before(st, "r", 1, &retry_at), FERRY_WOULD_BLOCK);
    assert_true(retry_at == t + 1500 * MS);
    fh_clock_set(t + 1500 * MS);
    assert_int_equal(before(st, "r", 0, &retry_at), FERRY_OK);
    assert_true(fh_metric("ferry_breaker_transitions_total", "to=half_open") ==
                2);
    ferry_plugin.fini(st);
}

static void test_plugin_several_probes(void **state)
{
    void *st;
    uint64_t retry_at;

    (void)state;
    fh_opt(fake_ctx, "threshold", "1");
    fh_opt(fake_ctx, "half_open_probes", "3");
    st = plugin_init();
    after(st, "r", 0, FERRY_RETRY);
    fh_clock_advance(30 * SEC);
    assert_int_equal(before(st, "r", 0, &retry_at), FERRY_OK);
    assert_int_equal(before(st, "r", 1, &retry_at), FERRY_OK);
    assert_int_equal(before(st, "q", 1, &retry_at), FERRY_OK);
    assert_int_equal(before(st, "r", 2, &retry_at), FERRY_WOULD_BLOCK);
    assert_string_equal(fh_log_line(fake_ctx, 1),
                        "half-open: probing with 3 batches");
    /* One probe back with success closes; the others then count as
     * plain results. */
    after(st, "q", 1, FERRY_OK);
    assert_true(fh_metric("ferry_breaker_state", "") == 0);
    after(st, "r", 0, FERRY_RETRY);
    assert_true(fh_metric("ferry_breaker_state", "") == 1);
    ferry_plugin.fini(st);
}

static void test_plugin_reclaims_lost_probe(void **state)
{
    void *st;
    uint64_t retry_at;

    (void)state;
    fh_opt(fake_ctx, "threshold", "1");
    st = plugin_init();
    after(st, "r", 0, FERRY_RETRY);
    fh_clock_advance(30 * SEC);
    /* Worker 0 gets the probe and never reports (it was shut down). */
    assert_int_equal(before(st, "r", 0, &retry_at), FERRY_OK);
    fh_clock_advance(30 * SEC - 1);
    assert_int_equal(before(st, "r", 1, &retry_at), FERRY_WOULD_BLOCK);
    fh_clock_advance(1);
    assert_int_equal(before(st, "r", 1, &retry_at), FERRY_OK);
    after(st, "r", 1, FERRY_OK);
    assert_true(fh_metric("ferry_breaker_state", "") == 0);
    ferry_plugin.fini(st);
}

/* Hooks run concurrently on every worker: hammer them (TSan/ASan). */
struct hammer {
    void *st;
    unsigned worker;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    struct ferry_write_event ev = {
        .route = "r", .sink = "s", .worker = h->worker, .count = 1};

    for (int i = 0; i < 20000; i++) {
        uint64_t retry_at;

        if (ferry_plugin.before_write(h->st, &ev, &retry_at) == FERRY_OK)
            ferry_plugin.after_write(h->st, &ev,
                                     i % 8 < 5 ? FERRY_OK : FERRY_RETRY);
    }
    return NULL;
}

static uint64_t hammer_clock;
static int hammer_logs;

static uint64_t hammer_now(void)
{
    return __atomic_add_fetch(&hammer_clock, MS, __ATOMIC_RELAXED);
}

static void hammer_log(struct ferry_ctx *ctx, int level, const char *fmt, ...)
{
    (void)ctx;
    (void)level;
    (void)fmt;
    __atomic_add_fetch(&hammer_logs, 1, __ATOMIC_RELAXED);
}

static void test_plugin_concurrent(void **state)
{
    struct ferry_host host = fh_host;
    struct hammer h[4];
    pthread_t t[4];
    void *st = NULL;

    (void)state;
    host.now_ns = hammer_now;
    host.log = hammer_log;
    fh_opt(fake_ctx, "threshold", "2");
    fh_opt(fake_ctx, "timeout", "5ms");
    fh_opt(fake_ctx, "half_open_probes", "2");
    assert_int_equal(ferry_plugin.init(&host, fake_ctx, &st), FERRY_OK);
    for (unsigned i = 0; i < 4; i++) {
        h[i].st = st;
        h[i].worker = i;
        assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* Every transition is logged and counted once. */
    assert_true(hammer_logs > 0);
    assert_true(
        fh_metric("ferry_breaker_transitions_total", "to=open") +
            fh_metric("ferry_breaker_transitions_total", "to=closed") +
            fh_metric("ferry_breaker_transitions_total", "to=half_open") ==
        hammer_logs);
    ferry_plugin.fini(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sm_opens_after_threshold),
        cmocka_unit_test(test_sm_probe_failure_reopens),
        cmocka_unit_test(test_sm_probes_and_cancel),
        cmocka_unit_test(test_sm_stale_results),
        cmocka_unit_test_setup(test_descriptor, setup),
        cmocka_unit_test_setup(test_plugin_cycle, setup),
        cmocka_unit_test_setup(test_plugin_probe_failure, setup),
        cmocka_unit_test_setup(test_plugin_several_probes, setup),
        cmocka_unit_test_setup(test_plugin_reclaims_lost_probe, setup),
        cmocka_unit_test_setup(test_plugin_concurrent, setup),
    };

    return cmocka_run_group_tests(tests, NULL, fh_reset_cb);
}
