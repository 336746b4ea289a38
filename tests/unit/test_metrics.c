/*
 * tests/unit/test_metrics.c: core/metrics.c (registry, Prometheus text
 * format 0.0.4, lock-free updates, quantiles).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

static int reset(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

/* Renders and compares the whole exposition. */
static void assert_render(const char *want)
{
    size_t len = 12345;
    char *got = metrics_render(&len);

    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(got);
}

static void test_empty(void **state)
{
    (void)state;
    assert_render("");
}

static void test_counter_and_gauge(void **state)
{
    const char *labels[] = {"route", "company", "reason", "full", NULL};
    struct ferry_metric *c, *g;

    (void)state;
    c = metrics_get(FERRY_METRIC_COUNTER, "ferry_test_total",
                    "Messages dropped.", labels);
    assert_non_null(c);
    metrics_add(c, 3);
    metrics_add(c, 2);
    metrics_add(c, -7); /* counters only go up */
    g = metrics_get(FERRY_METRIC_GAUGE, "ferry_test_depth",
                    "Depth\nof \\ the channel.", NULL);
    assert_non_null(g);
    metrics_set(g, 7);
    metrics_add(g, -4.5);
    assert_true(metrics_value(c) == 5);
    assert_true(metrics_value(g) == 2.5);
    assert_render("# HELP ferry_test_total Messages dropped.\n"
                  "# TYPE ferry_test_total counter\n"
                  "ferry_test_total{route=\"company\",reason=\"full\"} 5\n"
                  "# HELP ferry_test_depth Depth\\nof \\\\ the channel.\n"
                  "# TYPE ferry_test_depth gauge\n"
                  "ferry_test_depth 2.5\n");
}

static void test_series_order_one_block(void **state)
{
    const char *a[] = {"sink", "a", NULL}, *b[] = {"sink", "b", NULL};
    struct ferry_metric *ma, *mb, *mx;

    (void)state;
    ma = metrics_get(FERRY_METRIC_COUNTER, "ferry_x_total", "X.", a);
    mx = metrics_get(FERRY_METRIC_GAUGE, "ferry_y", "Y.", NULL);
    mb = metrics_get(FERRY_METRIC_COUNTER, "ferry_x_total", "ignored", b);
    assert_non_null(ma);
    assert_non_null(mb);
    assert_non_null(mx);
    assert_ptr_not_equal(ma, mb);
    metrics_add(mb, 1);
    /* Families in registration order, one HELP/TYPE each, the help of
     * the first registration. */
    assert_render("# HELP ferry_x_total X.\n"
                  "# TYPE ferry_x_total counter\n"
                  "ferry_x_total{sink=\"a\"} 0\n"
                  "ferry_x_total{sink=\"b\"} 1\n"
                  "# HELP ferry_y Y.\n"
                  "# TYPE ferry_y gauge\n"
                  "ferry_y 0\n");
}

static void test_same_series(void **state)
{
    const char *l1[] = {"route", "r", "reason", "full", NULL};
    const char *l2[] = {"reason", "full", "route", "r", NULL};
    const char *l3[] = {"route", "r", NULL};
    struct ferry_metric *m1, *m2, *m3, *m4;

    (void)state;
    m1 = metrics_get(FERRY_METRIC_COUNTER, "ferry_s_total", "S.", l1);
    m2 = metrics_get(FERRY_METRIC_COUNTER, "ferry_s_total", "S.", l1);
    m3 = metrics_get(FERRY_METRIC_COUNTER, "ferry_s_total", "S.", l2);
    m4 = metrics_get(FERRY_METRIC_COUNTER, "ferry_s_total", "S.", l3);
    assert_non_null(m1);
    assert_ptr_equal(m1, m2);
    /* The same label set in another order is the same series. */
    assert_ptr_equal(m1, m3);
    assert_ptr_not_equal(m1, m4);
}

static void test_type_clash(void **state)
{
    const char *labels[] = {"a", "b", NULL};

    (void)state;
    assert_non_null(
        metrics_get(FERRY_METRIC_COUNTER, "ferry_c_total", "C.", NULL));
    assert_null(metrics_get(FERRY_METRIC_GAUGE, "ferry_c_total", "C.", NULL));
    assert_null(
        metrics_get(FERRY_METRIC_HISTOGRAM, "ferry_c_total", "C.", labels));
    assert_null(metrics_gauge_fn("ferry_c_total", "C.", NULL, NULL, NULL));
    /* Invalid names are refused too. */
    assert_null(metrics_get(FERRY_METRIC_GAUGE, "bad-name", "B.", NULL));
    assert_null(metrics_get(FERRY_METRIC_GAUGE, "0bad", "B.", NULL));
    {
        const char *bad[] = {"le-x", "1", NULL};

        assert_null(metrics_get(FERRY_METRIC_GAUGE, "ferry_ok", "O.", bad));
    }
    assert_null(metrics_get(99, "ferry_ok", "O.", NULL));
    /* NULL series are ignored. */
    metrics_add(NULL, 1);
    metrics_set(NULL, 1);
    metrics_observe(NULL, 1);
    assert_true(metrics_value(NULL) == 0);
    assert_render("# HELP ferry_c_total C.\n"
                  "# TYPE ferry_c_total counter\n"
                  "ferry_c_total 0\n");
}

static void test_label_escaping(void **state)
{
    const char *labels[] = {"path", "a\\b\"c\nd", "empty", "", NULL};
    struct ferry_metric *m;

    (void)state;
    m = metrics_get(FERRY_METRIC_GAUGE, "ferry_esc", "Quote \"kept\".", labels);
    assert_non_null(m);
    metrics_set(m, 1);
    assert_render("# HELP ferry_esc Quote \"kept\".\n"
                  "# TYPE ferry_esc gauge\n"
                  "ferry_esc{path=\"a\\\\b\\\"c\\nd\",empty=\"\"} 1\n");
}

static void test_histogram(void **state)
{
    const char *labels[] = {"route", "company", NULL};
    struct ferry_metric *h;

    (void)state;
    h = metrics_get(FERRY_METRIC_HISTOGRAM, "ferry_lat_seconds", "Latency.",
                    labels);
    assert_non_null(h);
    /* 0.25 falls in le="0.25" (upper bounds are inclusive). */
    metrics_observe(h, 0.25);
    metrics_observe(h, 0.25);
    metrics_observe(h, 0.5);
    metrics_observe(h, 3);
    metrics_observe(h, 20);
    metrics_observe(h, NAN);
    assert_true(metrics_value(h) == 5);
    assert_render(
        "# HELP ferry_lat_seconds Latency.\n"
        "# TYPE ferry_lat_seconds histogram\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.0005\"} 0\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.001\"} 0\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.0025\"} 0\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.005\"} 0\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.01\"} 0\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.025\"} 0\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.05\"} 0\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.1\"} 0\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.25\"} 2\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"0.5\"} 3\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"1\"} 3\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"2.5\"} 3\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"5\"} 4\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"10\"} 4\n"
        "ferry_lat_seconds_bucket{route=\"company\",le=\"+Inf\"} 5\n"
        "ferry_lat_seconds_sum{route=\"company\"} 24\n"
        "ferry_lat_seconds_count{route=\"company\"} 5\n");
}

static void test_histogram_without_labels(void **state)
{
    struct ferry_metric *h;
    char *out;

    (void)state;
    h = metrics_get(FERRY_METRIC_HISTOGRAM, "ferry_h_seconds", "H.", NULL);
    metrics_observe(h, 0.0001);
    out = metrics_render(NULL);
    assert_non_null(out);
    assert_non_null(strstr(out, "\nferry_h_seconds_bucket{le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(out, "\nferry_h_seconds_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(out, "\nferry_h_seconds_sum 0.0001\n"));
    assert_non_null(strstr(out, "\nferry_h_seconds_count 1\n"));
    free(out);
}

static void test_number_format(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {42, "42"},
        {-3, "-3"},
        {123456789012, "123456789012"},
        {0.1, "0.1"},
        {2.5e-7, "2.5e-07"},
        {1.0 / 3, "0.33333333333333331"},
        {1e20, "1e+20"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    struct ferry_metric *m;

    (void)state;
    m = metrics_get(FERRY_METRIC_GAUGE, "ferry_n", "N.", NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[128];
        char *out;

        metrics_set(m, cases[i].v);
        snprintf(want, sizeof(want), "\nferry_n %s\n", cases[i].text);
        out = metrics_render(NULL);
        assert_non_null(out);
        if (!strstr(out, want))
            fail_msg("%g rendered as %s", cases[i].v, out);
        free(out);
    }
}

static double read_double(void *arg)
{
    return *(double *)arg;
}

static void test_gauge_fn(void **state)
{
    const char *la[] = {"route", "a", NULL}, *lb[] = {"route", "b", NULL};
    double a = 3, b = 4;
    struct ferry_metric *ga, *gb;

    (void)state;
    ga = metrics_gauge_fn("ferry_channel_depth", "Depth.", la, read_double, &a);
    gb = metrics_gauge_fn("ferry_channel_depth", "Depth.", lb, read_double, &b);
    assert_non_null(ga);
    assert_non_null(gb);
    /* Read at render time. */
    a = 7;
    assert_true(metrics_value(ga) == 7);
    assert_true(metrics_sum("ferry_channel_depth", NULL) == 11);
    assert_render("# HELP ferry_channel_depth Depth.\n"
                  "# TYPE ferry_channel_depth gauge\n"
                  "ferry_channel_depth{route=\"a\"} 7\n"
                  "ferry_channel_depth{route=\"b\"} 4\n");
    metrics_forget(&a);
    assert_render("# HELP ferry_channel_depth Depth.\n"
                  "# TYPE ferry_channel_depth gauge\n"
                  "ferry_channel_depth{route=\"b\"} 4\n");
    metrics_forget(&b);
    assert_render("");
    /* Registering again after forget works and renders once more. */
    ga = metrics_gauge_fn("ferry_channel_depth", "Depth.", la, read_double, &a);
    assert_non_null(ga);
    assert_render("# HELP ferry_channel_depth Depth.\n"
                  "# TYPE ferry_channel_depth gauge\n"
                  "ferry_channel_depth{route=\"a\"} 7\n");
    metrics_forget(&a);
}

static void test_sum(void **state)
{
    const char *l1[] = {"route", "a", "reason", "full", NULL};
    const char *l2[] = {"route", "b", "reason", "full", NULL};
    const char *l3[] = {"route", "a", "reason", "coalesced", NULL};
    const char *fa[] = {"route", "a", NULL};
    const char *ff[] = {"reason", "full", NULL};
    const char *fnone[] = {"route", "c", NULL};
    struct ferry_metric *h;

    (void)state;
    metrics_add(metrics_get(FERRY_METRIC_COUNTER, "ferry_d_total", "D.", l1),
                1);
    metrics_add(metrics_get(FERRY_METRIC_COUNTER, "ferry_d_total", "D.", l2),
                10);
    metrics_add(metrics_get(FERRY_METRIC_COUNTER, "ferry_d_total", "D.", l3),
                100);
    assert_true(metrics_sum("ferry_d_total", NULL) == 111);
    assert_true(metrics_sum("ferry_d_total", fa) == 101);
    assert_true(metrics_sum("ferry_d_total", ff) == 11);
    assert_true(metrics_sum("ferry_d_total", l3) == 100);
    assert_true(metrics_sum("ferry_d_total", fnone) == 0);
    assert_true(metrics_sum("ferry_unknown", NULL) == 0);
    /* Histograms sum their counts. */
    h = metrics_get(FERRY_METRIC_HISTOGRAM, "ferry_l_seconds", "L.", fa);
    metrics_observe(h, 0.1);
    metrics_observe(h, 0.2);
    assert_true(metrics_sum("ferry_l_seconds", NULL) == 2);
}

static void test_quantile(void **state)
{
    struct ferry_metric *h, *c;

    (void)state;
    h = metrics_get(FERRY_METRIC_HISTOGRAM, "ferry_q_seconds", "Q.", NULL);
    assert_true(metrics_quantile(h, 0.5) == 0);
    /* 100 observations in (0.0025, 0.005]: linear inside the bucket. */
    for (int i = 0; i < 100; i++)
        metrics_observe(h, 0.003);
    assert_float_equal(metrics_quantile(h, 0.5), 0.00375, 1e-12);
    assert_float_equal(metrics_quantile(h, 0.99), 0.0025 + 0.0025 * 0.99,
                       1e-12);
    assert_float_equal(metrics_quantile(h, 1), 0.005, 1e-12);
    assert_float_equal(metrics_quantile(h, 0), 0.0025, 1e-12);
    /* 100 more in (0.05, 0.1]: the median is the first bucket's top. */
    for (int i = 0; i < 100; i++)
        metrics_observe(h, 0.07);
    assert_float_equal(metrics_quantile(h, 0.5), 0.005, 1e-12);
    assert_float_equal(metrics_quantile(h, 0.75), 0.075, 1e-12);
    /* Ranks in +Inf answer the highest finite bound. */
    for (int i = 0; i < 800; i++)
        metrics_observe(h, 60);
    assert_float_equal(metrics_quantile(h, 0.99), 10, 1e-12);
    c = metrics_get(FERRY_METRIC_COUNTER, "ferry_q_total", "Q.", NULL);
    assert_true(metrics_quantile(c, 0.5) == 0);
}

#define THREADS 4
#define ADDS 100000

static struct ferry_metric *conc_counter, *conc_gauge, *conc_hist;

/* The value of the sample line that starts with prefix ("name{...} " or
 * "name "), or NAN when there is none. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *p = text;

    while (p && *p) {
        if (strncmp(p, prefix, n) == 0)
            return strtod(p + n, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NAN;
}

static void test_builtin(void **state)
{
    char *text;
    double v;

    (void)state;
    metrics_register_builtin();
    metrics_register_builtin(); /* idempotent */
    text = metrics_render(NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "# TYPE ferry_build_info gauge\n"
                                 "ferry_build_info{version=\"" FERRY_VERSION
                                 "\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    assert_true(sample(text, "ferry_ready ") == 0);
    v = sample(text, "process_resident_memory_bytes ");
    assert_true(v > 100000 && v < 1e11);
    v = sample(text, "process_open_fds ");
    assert_true(v >= 3 && v < 10000);
    v = sample(text, "process_cpu_seconds_total ");
    assert_true(v >= 0 && v < 1e6);
    v = sample(text, "process_start_time_seconds ");
    /* Started within the last day, not in the future. */
    assert_true(v > (double)time(NULL) - 86400 && v <= (double)time(NULL) + 1);
    assert_true(sample(text, "process_max_fds ") >= 0);
    assert_true(sample(text, "process_virtual_memory_bytes ") > 0);
    assert_true(sample(text, "ferry_config_reloads_total{result=\"ok\"} ") ==
                0);
    assert_true(
        sample(text, "ferry_config_reloads_total{result=\"failed\"} ") == 0);
    assert_true(
        fabs(sample(text,
                    "ferry_config_last_reload_success_timestamp_seconds ") -
             sample(text, "process_start_time_seconds ")) < 1.0);
    free(text);
}

static void test_config_reload(void **state)
{
    char *text;
    double before = (double)time(NULL);

    (void)state;
    metrics_config_reload(0);
    metrics_config_reload(1);
    metrics_config_reload(1);
    text = metrics_render(NULL);
    assert_true(sample(text, "ferry_config_reloads_total{result=\"ok\"} ") ==
                2);
    assert_true(
        sample(text, "ferry_config_reloads_total{result=\"failed\"} ") == 1);
    assert_true(
        sample(text, "ferry_config_last_reload_success_timestamp_seconds ") >=
        before);
    free(text);
    /* A reset forgets them; registering again starts from zero. */
    metrics_reset();
    metrics_register_builtin();
    text = metrics_render(NULL);
    assert_true(sample(text, "ferry_config_reloads_total{result=\"ok\"} ") ==
                0);
    free(text);
}

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < ADDS; i++) {
        metrics_add(conc_counter, 1);
        metrics_add(conc_gauge, 0.5);
        if (i % 10 == 0)
            metrics_observe(conc_hist, 0.001);
    }
    return NULL;
}

static void test_concurrent_adds(void **state)
{
    pthread_t t[THREADS];

    (void)state;
    conc_counter =
        metrics_get(FERRY_METRIC_COUNTER, "ferry_conc_total", "C.", NULL);
    conc_gauge = metrics_get(FERRY_METRIC_GAUGE, "ferry_conc", "G.", NULL);
    conc_hist =
        metrics_get(FERRY_METRIC_HISTOGRAM, "ferry_conc_seconds", "H.", NULL);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, NULL), 0);
    /* Render concurrently with the updates. */
    for (int i = 0; i < 20; i++)
        free(metrics_render(NULL));
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(metrics_value(conc_counter) == THREADS * ADDS);
    assert_true(metrics_value(conc_gauge) == THREADS * ADDS / 2);
    assert_true(metrics_value(conc_hist) == THREADS * ADDS / 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_empty, reset),
        cmocka_unit_test_setup(test_counter_and_gauge, reset),
        cmocka_unit_test_setup(test_series_order_one_block, reset),
        cmocka_unit_test_setup(test_same_series, reset),
        cmocka_unit_test_setup(test_type_clash, reset),
        cmocka_unit_test_setup(test_label_escaping, reset),
        cmocka_unit_test_setup(test_histogram, reset),
        cmocka_unit_test_setup(test_histogram_without_labels, reset),
        cmocka_unit_test_setup(test_number_format, reset),
        cmocka_unit_test_setup(test_gauge_fn, reset),
        cmocka_unit_test_setup(test_sum, reset),
        cmocka_unit_test_setup(test_quantile, reset),
        cmocka_unit_test_setup(test_concurrent_adds, reset),
        cmocka_unit_test_setup(test_builtin, reset),
        cmocka_unit_test_setup(test_config_reload, reset),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    metrics_reset();
    return rc;
}
