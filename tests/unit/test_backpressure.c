/*
 * tests/unit/test_backpressure.c: plugins/policy_backpressure through a
 * fake host with a fake clock.
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

#include "../../plugins/policy_backpressure/policy_backpressure.c"

#define MS 1000000ull
#define SEC 1000000000ull

/* ---- fake host ---------------------------------------------------------- */

#include "fakehost.h"

static struct ferry_ctx *fake_ctx;

/* The plugin counts nothing: the core does. */
static void refuse_metric(int type, const char *name, const char *labels)
{
    fail_msg("the policy registered metric %s", name);
}

static int setup(void **state)
{
    (void)state;
    fh_reset();
    fh_clock_set(500 * SEC);
    fh_metric_hook(refuse_metric);
    fake_ctx = fh_ctx_new("bp", ferry_plugin.options);
    fh_opt(fake_ctx, "mode", "block");
    fh_opt(fake_ctx, "high_watermark", "0");
    fh_opt(fake_ctx, "low_watermark", "0");
    return 0;
}

static void *init_ok(void)
{
    void *st = NULL;

    assert_int_equal(ferry_plugin.init(&fh_host, fake_ctx, &st), FERRY_OK);
    assert_non_null(st);
    return st;
}

static int admit(void *st, const char *route, size_t depth, size_t capacity)
{
    struct ferry_msg m = {.struct_size = sizeof(m),
                          .op = FERRY_OP_FULL,
                          .entity_type = "company",
                          .entity_id = "c1"};
    struct ferry_admission a = {.route = route,
                                .msg = &m,
                                .depth = depth,
                                .capacity = capacity,
                                .now_ns = fh_now_ns()};

    return ferry_plugin.admit(st, &a);
}

/* ---- tests -------------------------------------------------------------- */

static void test_descriptor(void **state)
{
    const struct ferry_option *o = ferry_plugin.options;

    (void)state;
    assert_int_equal(ferry_plugin.hdr.kind, FERRY_KIND_POLICY);
    assert_string_equal(ferry_plugin.hdr.name, "backpressure");
    assert_null(ferry_plugin.before_write);
    assert_null(ferry_plugin.after_write);
    assert_string_equal(o[0].name, "mode");
    assert_int_equal(o[0].type, FERRY_OPT_ENUM);
    assert_string_equal(o[0].def, "block");
    assert_string_equal(o[0].enum_values[0], "block");
    assert_string_equal(o[0].enum_values[1], "coalesce");
    assert_string_equal(o[0].enum_values[2], "drop_newest");
    assert_string_equal(o[0].enum_values[3], "drop_oldest");
    assert_null(o[0].enum_values[4]);
    assert_string_equal(o[1].name, "high_watermark");
    assert_string_equal(o[1].def, "0");
    assert_string_equal(o[2].name, "low_watermark");
    assert_null(o[3].name);
}

static void test_modes_when_full(void **state)
{
    static const struct {
        const char *mode;
        int verdict;
        int logs;
    } cases[] = {
        {"block", FERRY_ADMIT_BLOCK, 0},
        {"coalesce", FERRY_ADMIT_COALESCE, 0},
        {"drop_newest", FERRY_ADMIT_DROP_NEWEST, 1},
        {"drop_oldest", FERRY_ADMIT_DROP_OLDEST, 1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *st;

        fh_log_clear(fake_ctx);
        fh_opt(fake_ctx, "mode", cases[i].mode);
        st = init_ok();
        for (int k = 0; k < 3; k++)
            assert_int_equal(admit(st, "company", 1000, 1000),
                             cases[i].verdict);
        assert_int_equal(fh_nlogs(fake_ctx), cases[i].logs);
        ferry_plugin.fini(st);
    }
}

static void test_drop_log_rate_limited(void **state)
{
    void *st;

    (void)state;
    fh_opt(fake_ctx, "mode", "drop_newest");
    st = init_ok();
    assert_int_equal(admit(st, "company", 1000, 1000), FERRY_ADMIT_DROP_NEWEST);
    assert_int_equal(fh_nlogs(fake_ctx), 1);
    assert_int_equal(fh_log_line_level(fake_ctx, 0), FERRY_LOG_WARN);
    assert_string_equal(fh_log_line(fake_ctx, 0),
                        "route company at 1000 of 1000 "
                        "messages: dropping the newest message "
                        "(mode drop_newest)");
    /* Within 10 s: silent, whatever the route. */
    for (int i = 1; i <= 5; i++) {
        fh_clock_advance(1999 * MS);
        assert_int_equal(admit(st, i % 2 ? "user" : "company", 10, 10),
                         FERRY_ADMIT_DROP_NEWEST);
    }
    assert_int_equal(fh_nlogs(fake_ctx), 1);
    /* 10 s after the first line: the next one, with the silent count. */
    fh_clock_set(510 * SEC);
    assert_int_equal(admit(st, "user", 10, 10), FERRY_ADMIT_DROP_NEWEST);
    assert_int_equal(fh_nlogs(fake_ctx), 2);
    assert_string_equal(fh_log_line(fake_ctx, 1),
                        "route user at 10 of 10 messages: "
                        "dropping the newest message (mode "
                        "drop_newest) (5 more since the last "
                        "line)");
    fh_clock_advance(10 * SEC - 1);
    assert_int_equal(admit(st, "user", 10, 10), FERRY_ADMIT_DROP_NEWEST);
    assert_int_equal(fh_nlogs(fake_ctx), 2);
    ferry_plugin.fini(st);

    fh_log_clear(fake_ctx);
    fh_opt(fake_ctx, "mode", "drop_oldest");
    st = init_ok();
    assert_int_equal(admit(st, "flags", 5, 5), FERRY_ADMIT_DROP_OLDEST);
    assert_string_equal(fh_log_line(fake_ctx, 0),
                        "route flags at 5 of 5 messages: "
                        "dropping the oldest message (mode "
                        "drop_oldest)");
    ferry_plugin.fini(st);
}

static void test_watermarks(void **state)
{
    void *st;

    (void)state;
    fh_opt(fake_ctx, "mode", "drop_oldest");
    fh_opt(fake_ctx, "high_watermark", "80");
    fh_opt(fake_ctx, "low_watermark", "50");
    st = init_ok();
    /* Below the high watermark: proceed as usual. */
    assert_int_equal(admit(st, "a", 7, 10), FERRY_ADMIT_BLOCK);
    /* From the high watermark on... */
    assert_int_equal(admit(st, "a", 8, 10), FERRY_ADMIT_DROP_OLDEST);
    /* ...until the depth falls below the low one. */
    assert_int_equal(admit(st, "a", 6, 10), FERRY_ADMIT_DROP_OLDEST);
    assert_int_equal(admit(st, "a", 5, 10), FERRY_ADMIT_DROP_OLDEST);
    /* Per route: b never reached its high watermark. */
    assert_int_equal(admit(st, "b", 6, 10), FERRY_ADMIT_BLOCK);
    assert_int_equal(admit(st, "a", 4, 10), FERRY_ADMIT_BLOCK);
    assert_int_equal(admit(st, "a", 7, 10), FERRY_ADMIT_BLOCK);
    /* A full channel always applies the mode. */
    assert_int_equal(admit(st, "b", 10, 10), FERRY_ADMIT_DROP_OLDEST);
    /* Only drop verdicts were logged, once. */
    assert_int_equal(fh_nlogs(fake_ctx), 1);
    ferry_plugin.fini(st);

    /* Without low_watermark it is the high one: no hysteresis. Slots
     * round up: 75% of 10 is 8. */
    fh_opt(fake_ctx, "mode", "coalesce");
    fh_opt(fake_ctx, "high_watermark", "75");
    fh_opt(fake_ctx, "low_watermark", "0");
    st = init_ok();
    assert_int_equal(admit(st, "a", 7, 10), FERRY_ADMIT_BLOCK);
    assert_int_equal(admit(st, "a", 8, 10), FERRY_ADMIT_COALESCE);
    assert_int_equal(admit(st, "a", 7, 10), FERRY_ADMIT_BLOCK);
    ferry_plugin.fini(st);
}

static void test_invalid_options(void **state)
{
    void *st = NULL;

    (void)state;
    fh_opt(fake_ctx, "mode", "drop_everything");
    assert_int_equal(ferry_plugin.init(&fh_host, fake_ctx, &st), FERRY_EINVAL);
    assert_int_equal(fh_nlogs(fake_ctx), 1);
    assert_int_equal(fh_log_line_level(fake_ctx, 0), FERRY_LOG_ERROR);

    fh_opt(fake_ctx, "mode", "drop_newest");
    fh_opt(fake_ctx, "high_watermark", "0");
    fh_opt(fake_ctx, "low_watermark", "30");
    assert_int_equal(ferry_plugin.init(&fh_host, fake_ctx, &st), FERRY_EINVAL);
    assert_string_equal(fh_log_line(fake_ctx, 1),
                        "low_watermark 30 needs high_watermark");

    fh_opt(fake_ctx, "high_watermark", "20");
    assert_int_equal(ferry_plugin.init(&fh_host, fake_ctx, &st), FERRY_EINVAL);
    assert_string_equal(fh_log_line(fake_ctx, 2),
                        "low_watermark 30 is above high_watermark 20");
    assert_null(st);
}

struct hammer {
    void *st;
    const char *route;
    int bad;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;

    for (size_t i = 0; i < 50000; i++) {
        size_t depth = i % 11;
        int v = admit(h->st, h->route, depth, 10);

        if (v != FERRY_ADMIT_COALESCE && v != FERRY_ADMIT_BLOCK)
            h->bad++;
        if (depth == 10 && v != FERRY_ADMIT_COALESCE)
            h->bad++;
    }
    return NULL;
}

/* admit() runs on every source thread at once (TSan/ASan). */
static void test_concurrent(void **state)
{
    static const char *routes[] = {"a", "b", "c", "a"};
    struct hammer h[4];
    pthread_t t[4];
    void *st;

    (void)state;
    fh_opt(fake_ctx, "mode", "coalesce");
    fh_opt(fake_ctx, "high_watermark", "60");
    fh_opt(fake_ctx, "low_watermark", "20");
    st = init_ok();
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){.st = st, .route = routes[i]};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(h[i].bad, 0);
    }
    ferry_plugin.fini(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_descriptor, setup),
        cmocka_unit_test_setup(test_modes_when_full, setup),
        cmocka_unit_test_setup(test_drop_log_rate_limited, setup),
        cmocka_unit_test_setup(test_watermarks, setup),
        cmocka_unit_test_setup(test_invalid_options, setup),
        cmocka_unit_test_setup(test_concurrent, setup),
    };

    return cmocka_run_group_tests(tests, NULL, fh_reset_cb);
}
