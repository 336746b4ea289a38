/*
 * tests/unit/test_health.c: core/health.c, the registry behind /health,
 * /ready and /debug, and its JSON body (the reference replicator's
 * contract, schematic-datastream.md section 11).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ferry/host.h"
#include "health.h"

static int reset(void **state)
{
    (void)state;
    health_reset();
    return 0;
}

/* Parses health_json(); also returns the raw text in *raw when asked. */
static json_t *body(char **raw)
{
    char *text = health_json();
    json_t *j;

    assert_non_null(text);
    j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(j);
    assert_true(json_is_object(j));
    if (raw)
        *raw = text;
    else
        free(text);
    return j;
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static int boolean(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    assert_non_null(v);
    assert_true(json_is_boolean(v));
    return json_is_true(v);
}

static void test_empty_registry(void **state)
{
    json_t *j = body(NULL);

    (void)state;
    assert_string_equal(str(j, "status"), "healthy");
    assert_false(boolean(j, "ready"));
    /* No component is disconnected or unknown. */
    assert_true(boolean(j, "connected"));
    assert_true(json_is_object(json_object_get(j, "components")));
    assert_int_equal(json_object_size(json_object_get(j, "components")), 0);
    /* Always present, also when nothing was published. */
    assert_string_equal(str(j, "cache_version"), "");
    assert_int_equal(json_object_size(j), 6);
    assert_false(health_ready());
    assert_true(health_healthy());
    json_decref(j);
}

static void test_exact_shape_and_order(void **state)
{
    char *raw;
    json_t *j;
    regex_t re;

    (void)state;
    health_set_component("redis", FERRY_COMPONENT_CONNECTED);
    health_set_component("datastream", FERRY_COMPONENT_CONNECTED);
    health_set_info("cache_version", "c0ffee01");
    health_set_ready("cache", 1);
    j = body(&raw);
    assert_int_equal(regcomp(&re,
                             "^\\{\"status\":\"healthy\",\"ready\":true,"
                             "\"connected\":true,\"components\":\\{"
                             "\"datastream\":\"connected\","
                             "\"redis\":\"connected\"\\},"
                             "\"cache_version\":\"c0ffee01\","
                             "\"timestamp\":\"[^\"]+\"\\}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    if (regexec(&re, raw, 0, NULL, 0) != 0)
        fail_msg("unexpected body: %s", raw);
    regfree(&re);
    free(raw);
    json_decref(j);
}

static void test_timestamp_format(void **state)
{
    regex_t re;
    json_t *j;
    const char *ts;
    struct tm tm;
    time_t now = time(NULL), t;
    int i;

    (void)state;
    /* Go's RFC3339Nano: up to nine fraction digits, no trailing zero,
     * no fraction at all when it is zero, "Z" for UTC. */
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                             "[0-9]{2}(\\.[0-9]{0,8}[1-9])?Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    for (i = 0; i < 50; i++) {
        j = body(NULL);
        ts = str(j, "timestamp");
        if (regexec(&re, ts, 0, NULL, 0) != 0)
            fail_msg("bad timestamp %s", ts);
        memset(&tm, 0, sizeof(tm));
        assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm));
        t = timegm(&tm);
        assert_true(t >= now - 2 && t <= now + 5);
        json_decref(j);
    }
    regfree(&re);
}

static void test_ready_needs_every_owner(void **state)
{
    json_t *j;

    (void)state;
    health_set_ready("cache", 0);
    assert_false(health_ready());
    health_set_ready("cache", 1);
    assert_true(health_ready());
    health_set_ready("mirror", 0);
    assert_false(health_ready());
    j = body(NULL);
    assert_false(boolean(j, "ready"));
    json_decref(j);
    health_set_ready("mirror", 7);
    assert_true(health_ready());
    j = body(NULL);
    assert_true(boolean(j, "ready"));
    json_decref(j);
    /* Readiness does not depend on connectivity: it stays across a
     * datastream disconnect. */
    health_set_component("datastream", FERRY_COMPONENT_DISCONNECTED);
    assert_true(health_ready());
    j = body(NULL);
    assert_true(boolean(j, "ready"));
    assert_string_equal(str(j, "status"), "unhealthy");
    json_decref(j);
}

static void test_component_combinations(void **state)
{
    static const struct {
        int redis, ds;
        const char *status;
        int connected;
        const char *rname, *dname;
    } cases[] = {
        {FERRY_COMPONENT_CONNECTED, FERRY_COMPONENT_CONNECTED, "healthy", 1,
         "connected", "connected"},
        {FERRY_COMPONENT_CONNECTED, FERRY_COMPONENT_DISCONNECTED, "unhealthy",
         0, "connected", "disconnected"},
        {FERRY_COMPONENT_DISCONNECTED, FERRY_COMPONENT_CONNECTED, "unhealthy",
         0, "disconnected", "connected"},
        {FERRY_COMPONENT_UNKNOWN, FERRY_COMPONENT_CONNECTED, "healthy", 0,
         "unknown", "connected"},
        {FERRY_COMPONENT_UNKNOWN, FERRY_COMPONENT_DISCONNECTED, "unhealthy", 0,
         "unknown", "disconnected"},
        /* An out-of-range state is shown as unknown. */
        {42, FERRY_COMPONENT_CONNECTED, "healthy", 0, "unknown", "connected"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j, *c;

        health_set_component("redis", cases[i].redis);
        health_set_component("datastream", cases[i].ds);
        j = body(NULL);
        c = json_object_get(j, "components");
        assert_string_equal(str(j, "status"), cases[i].status);
        assert_int_equal(boolean(j, "connected"), cases[i].connected);
        assert_int_equal(json_object_size(c), 2);
        assert_string_equal(str(c, "redis"), cases[i].rname);
        assert_string_equal(str(c, "datastream"), cases[i].dname);
        assert_int_equal(health_healthy(),
                         strcmp(cases[i].status, "healthy") == 0);
        json_decref(j);
    }
}

static void test_components_sorted(void **state)
{
    char *raw;
    json_t *j;
    char *a, *b, *c;

    (void)state;
    health_set_component("zeta", FERRY_COMPONENT_CONNECTED);
    health_set_component("alpha", FERRY_COMPONENT_CONNECTED);
    health_set_component("mid", FERRY_COMPONENT_CONNECTED);
    health_set_component("alpha", FERRY_COMPONENT_DISCONNECTED);
    j = body(&raw);
    a = strstr(raw, "\"alpha\":\"disconnected\"");
    b = strstr(raw, "\"mid\"");
    c = strstr(raw, "\"zeta\"");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_int_equal(json_object_size(json_object_get(j, "components")), 3);
    free(raw);
    json_decref(j);
}

static void test_cache_version_when_not_ready(void **state)
{
    json_t *j;

    (void)state;
    health_set_ready("cache", 0);
    health_set_component("redis", FERRY_COMPONENT_DISCONNECTED);
    health_set_info("cache_version", "deadbeef");
    j = body(NULL);
    assert_false(boolean(j, "ready"));
    assert_string_equal(str(j, "status"), "unhealthy");
    assert_string_equal(str(j, "cache_version"), "deadbeef");
    json_decref(j);
    /* A later publication replaces it. */
    health_set_info("cache_version", "c0ffee02");
    j = body(NULL);
    assert_string_equal(str(j, "cache_version"), "c0ffee02");
    json_decref(j);
}

static void test_info_values(void **state)
{
    char *v, *text;
    json_t *j;

    (void)state;
    assert_null(health_info("cache_version"));
    health_set_info("writer_lock", "host-a:123");
    health_set_info("cache_version", "v\"1\\");
    v = health_info("writer_lock");
    assert_string_equal(v, "host-a:123");
    free(v);

    /* Quotes and backslashes are escaped in the body. */
    j = body(NULL);
    assert_string_equal(str(j, "cache_version"), "v\"1\\");
    json_decref(j);

    text = health_info_json();
    assert_non_null(text);
    assert_string_equal(text, "{\"cache_version\":\"v\\\"1\\\\\","
                              "\"writer_lock\":\"host-a:123\"}");
    free(text);

    /* NULL removes a key. */
    health_set_info("writer_lock", NULL);
    assert_null(health_info("writer_lock"));
    text = health_info_json();
    assert_string_equal(text, "{\"cache_version\":\"v\\\"1\\\\\"}");
    free(text);
}

static void test_invalid_utf8_still_valid_json(void **state)
{
    json_t *j;

    (void)state;
    health_set_info("cache_version", "ab\xff\xfe");
    j = body(NULL);
    assert_string_equal(str(j, "cache_version"), "ab??");
    json_decref(j);
}

static void test_reset_forgets(void **state)
{
    json_t *j;

    (void)state;
    health_set_ready("cache", 1);
    health_set_component("redis", FERRY_COMPONENT_DISCONNECTED);
    health_set_info("cache_version", "x");
    health_reset();
    assert_false(health_ready());
    assert_true(health_healthy());
    assert_null(health_info("cache_version"));
    j = body(NULL);
    assert_int_equal(json_object_size(json_object_get(j, "components")), 0);
    assert_string_equal(str(j, "cache_version"), "");
    json_decref(j);
}

static void *hammer(void *arg)
{
    char name[32];
    int id = (int)(intptr_t)arg;
    int i;

    snprintf(name, sizeof(name), "owner%d", id);
    for (i = 0; i < 2000; i++) {
        char *t;

        health_set_component(name, i % 2 ? FERRY_COMPONENT_CONNECTED
                                         : FERRY_COMPONENT_DISCONNECTED);
        health_set_info(name, i % 3 ? "a" : "bb");
        health_set_ready(name, i % 2);
        /* No cmocka assertion off the main thread. */
        t = health_json();
        if (!t)
            abort();
        free(t);
    }
    /* Last iteration (1999) left everything connected and ready. */
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    pthread_t th[4];
    json_t *j;
    int i;

    (void)state;
    for (i = 0; i < 4; i++)
        assert_int_equal(
            pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    j = body(NULL);
    assert_int_equal(json_object_size(json_object_get(j, "components")), 4);
    assert_true(boolean(j, "ready"));
    assert_true(boolean(j, "connected"));
    json_decref(j);
}

/* The watchdog names the oldest stuck step; a step that left, one that
 * is younger than the bound and a freed beat do not count; components
 * do not affect liveness. Time is passed in, so nothing sleeps. */
static void test_watchdog(void **state)
{
    struct health_beat *a = health_beat_new("route r worker %d: sink.x "
                                            "write()", 0);
    struct health_beat *b = health_beat_new("source.ds inside emit()");
    struct health_beat *c = health_beat_new("young");
    const uint64_t s = 1000000000ull;
    char reason[256];
    int alive, ready;
    char *body;

    (void)state;
    assert_non_null(a);
    health_set_watchdog_ms(60000);
    assert_int_equal(health_watchdog_ms(), 60000);
    assert_int_equal(health_wedged(1000 * s, reason, sizeof(reason)), 0);
    assert_string_equal(reason, "");

    health_beat_enter(a, 900 * s);
    health_beat_enter(b, 800 * s);
    health_beat_enter(c, 990 * s);
    assert_int_equal(health_wedged(1000 * s, reason, sizeof(reason)), 1);
    assert_string_equal(reason, "source.ds inside emit() has not returned "
                                "for 200.0 s (watchdog bound 60 s)");
    health_beat_leave(b);
    assert_int_equal(health_wedged(1000 * s, reason, sizeof(reason)), 1);
    assert_string_equal(reason, "route r worker 0: sink.x write() has not "
                                "returned for 100.0 s (watchdog bound 60 s)");
    health_beat_free(a);
    assert_int_equal(health_wedged(1000 * s, reason, sizeof(reason)), 0);

    /* A disconnected component leaves ferry alive (health_body() reads
     * the real clock: no step may be inside). */
    health_beat_leave(c);
    health_set_component("redis", FERRY_COMPONENT_DISCONNECTED);
    body = health_body(&alive, &ready);
    assert_non_null(body);
    assert_int_equal(alive, 1);
    assert_int_equal(ready, 0);
    assert_null(strstr(body, "\"reason\""));
    free(body);

    health_beat_free(b);
    health_beat_free(c);
    health_beat_free(NULL);
    health_set_watchdog_ms(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_registry, reset, reset),
        cmocka_unit_test_setup_teardown(test_exact_shape_and_order, reset,
                                        reset),
        cmocka_unit_test_setup_teardown(test_timestamp_format, reset, reset),
        cmocka_unit_test_setup_teardown(test_ready_needs_every_owner, reset,
                                        reset),
        cmocka_unit_test_setup_teardown(test_component_combinations, reset,
                                        reset),
        cmocka_unit_test_setup_teardown(test_components_sorted, reset, reset),
        cmocka_unit_test_setup_teardown(test_cache_version_when_not_ready,
                                        reset, reset),
        cmocka_unit_test_setup_teardown(test_info_values, reset, reset),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_still_valid_json,
                                        reset, reset),
        cmocka_unit_test_setup_teardown(test_reset_forgets, reset, reset),
        cmocka_unit_test_setup_teardown(test_concurrent_updates, reset, reset),
        cmocka_unit_test_setup_teardown(test_watchdog, reset, reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
