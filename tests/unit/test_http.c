/*
 * tests/unit/test_http.c: core/http.c, the operations HTTP server, driven
 * over real loopback sockets with libcurl.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ferry/host.h"
#include "clock.h"
#include "health.h"
#include "http.h"
#include "metrics.h"

#define JSON_TYPE "application/json"
#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct resp {
    long code;
    char *body;
    size_t len;
    char ctype[128];
    char allow[64];
    long connects; /* new connections curl opened for this request */
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    char *b = realloc(r->body, r->len + size * n + 1);

    if (!b)
        return 0;
    memcpy(b + r->len, p, size * n);
    r->body = b;
    r->len += size * n;
    b[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = size * n;

    if (len > 6 && strncasecmp(p, "allow:", 6) == 0) {
        size_t k = len - 6;

        if (k >= sizeof(r->allow))
            k = sizeof(r->allow) - 1;
        memcpy(r->allow, p + 6, k);
        r->allow[k] = '\0';
        r->allow[strcspn(r->allow, "\r\n")] = '\0';
    }
    return len;
}

static void resp_release(struct resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/*
 * Sends method path to host:port on curl handle c (reusing its connection
 * when possible) and fills r. post is a request body or NULL. Returns the
 * CURLcode. Safe off the main thread (no cmocka assertion).
 */
static int request_on(CURL *c, const char *host, int port, const char *method,
                      const char *path, const char *post, struct resp *r)
{
    char url[256];
    char *ct = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://%s:%d%s", host, port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (post)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    else
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->connects);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
        snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
    return rc;
}

/* GET (or method) path on the running server; asserts the transfer
 * worked. */
static void request(const char *method, const char *path, struct resp *r)
{
    CURL *c = curl_easy_init();
    int rc;

    assert_non_null(c);
    rc = request_on(c, "127.0.0.1", http_port(), method, path, NULL, r);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
}

static json_t *json_body(const struct resp *r)
{
    json_error_t e;
    json_t *j;

    assert_non_null(r->body);
    j = json_loads(r->body, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("invalid JSON (%s): %s", e.text, r->body);
    assert_true(json_is_object(j));
    return j;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!v || !json_is_string(v))
        fail_msg("no string %s", key);
    return json_string_value(v);
}

static int server_up(void **state)
{
    char err[256] = "";

    (void)state;
    health_reset();
    metrics_reset();
    http_set_debug_fn(NULL, NULL);
    if (http_start("127.0.0.1:0", err, sizeof(err)) != 0)
        fail_msg("http_start: %s", err);
    assert_true(http_port() > 0);
    return 0;
}

static int server_down(void **state)
{
    (void)state;
    http_stop();
    http_set_debug_fn(NULL, NULL);
    health_reset();
    metrics_reset();
    return 0;
}

/* ---- /health and /ready ------------------------------------------------- */

static void test_health_follows_components(void **state)
{
    struct resp r;
    json_t *j;

    (void)state;
    health_set_component("redis", FERRY_COMPONENT_CONNECTED);
    health_set_info("cache_version", "c0ffee01");
    request("GET", "/health", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.ctype, JSON_TYPE);
    j = json_body(&r);
    assert_string_equal(jstr(j, "status"), "healthy");
    assert_string_equal(jstr(j, "cache_version"), "c0ffee01");
    assert_string_equal(jstr(json_object_get(j, "components"), "redis"),
                        "connected");
    json_decref(j);
    resp_release(&r);

    /* /health is liveness (issue 11): a disconnected component shows in
     * the body and leaves the code at 200. */
    health_set_component("redis", FERRY_COMPONENT_DISCONNECTED);
    request("GET", "/health", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.ctype, JSON_TYPE);
    j = json_body(&r);
    assert_string_equal(jstr(j, "status"), "unhealthy");
    assert_true(json_is_false(json_object_get(j, "connected")));
    /* The 503 body still carries the contract's fields. */
    assert_string_equal(jstr(j, "cache_version"), "c0ffee01");
    assert_true(json_is_boolean(json_object_get(j, "ready")));
    json_decref(j);
    resp_release(&r);
}

static void test_ready_flips(void **state)
{
    struct resp r;
    json_t *j;

    (void)state;
    health_set_info("cache_version", "c0ffee01");
    request("GET", "/ready", &r);
    assert_int_equal(r.code, 503);
    assert_string_equal(r.ctype, JSON_TYPE);
    j = json_body(&r);
    assert_true(json_is_false(json_object_get(j, "ready")));
    assert_string_equal(jstr(j, "cache_version"), "c0ffee01");
    assert_non_null(json_object_get(j, "timestamp"));
    json_decref(j);
    resp_release(&r);

    health_set_ready("cache", 0);
    request("GET", "/ready", &r);
    assert_int_equal(r.code, 503);
    resp_release(&r);

    health_set_ready("cache", 1);
    request("GET", "/ready", &r);
    assert_int_equal(r.code, 200);
    j = json_body(&r);
    assert_true(json_is_true(json_object_get(j, "ready")));
    assert_string_equal(jstr(j, "cache_version"), "c0ffee01");
    json_decref(j);
    resp_release(&r);

    /* Readiness and liveness both survive a datastream disconnect. */
    health_set_component("datastream", FERRY_COMPONENT_DISCONNECTED);
    request("GET", "/ready", &r);
    assert_int_equal(r.code, 200);
    resp_release(&r);
    request("GET", "/health", &r);
    assert_int_equal(r.code, 200);
    resp_release(&r);

    health_set_ready("cache", 0);
    request("GET", "/ready", &r);
    assert_int_equal(r.code, 503);
    resp_release(&r);
}

/* A watched step stuck past the watchdog bound: /health 503 with the
 * reason; /ready is unaffected; leaving the step heals it. */
static void test_health_wedged(void **state)
{
    struct health_beat *b = health_beat_new("route all worker 0: sink.x "
                                            "write()");
    struct resp r;
    json_t *j;
    const char *reason;

    (void)state;
    health_set_ready("cache", 1);
    health_set_watchdog_ms(50);
    health_beat_enter(b, clock_now_ns());
    usleep(120000);
    request("GET", "/health", &r);
    assert_int_equal(r.code, 503);
    j = json_body(&r);
    assert_string_equal(jstr(j, "status"), "unhealthy");
    reason = jstr(j, "reason");
    assert_non_null(strstr(reason, "route all worker 0: sink.x write() "
                                   "has not returned for"));
    assert_non_null(strstr(reason, "(watchdog bound 0.05 s)"));
    json_decref(j);
    resp_release(&r);
    request("GET", "/ready", &r);
    assert_int_equal(r.code, 200);
    resp_release(&r);

    health_beat_leave(b);
    request("GET", "/health", &r);
    assert_int_equal(r.code, 200);
    j = json_body(&r);
    assert_null(json_object_get(j, "reason"));
    json_decref(j);
    resp_release(&r);
    health_beat_free(b);
    health_set_watchdog_ms(0);
}

static void test_query_string_ignored(void **state)
{
    struct resp r;

    (void)state;
    health_set_ready("cache", 1);
    request("GET", "/ready?probe=1", &r);
    assert_int_equal(r.code, 200);
    resp_release(&r);
}

/* ---- /metrics ------------------------------------------------------------ */

static void test_metrics_body(void **state)
{
    static const char *const labels[] = {"route", "r1", NULL};
    struct ferry_metric *m;
    struct resp r;
    const char *line;
    char *end;

    (void)state;
    m = metrics_get(FERRY_METRIC_COUNTER, "ferry_http_test_total",
                    "Requests seen by the test.", labels);
    assert_non_null(m);
    metrics_add(m, 3);
    request("GET", "/metrics", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.ctype, PROM_TYPE);
    line = strstr(r.body, "\nferry_http_test_total{route=\"r1\"} ");
    if (!line)
        line = strncmp(r.body, "ferry_http_test_total{", 22) == 0 ? r.body - 1
                                                                  : NULL;
    if (!line)
        fail_msg("counter missing from:\n%s", r.body);
    line = strchr(line + 1, ' ') + 1;
    assert_true(strtod(line, &end) == 3.0);
    assert_true(*end == '\n');
    /* The series http_start() registers. */
    assert_non_null(strstr(r.body, "\nferry_build_info{version=\""));
    assert_non_null(strstr(r.body, "\nferry_ready 0\n"));
    assert_non_null(strstr(r.body, "\nprocess_open_fds "));
    resp_release(&r);
}

static void test_large_body_chunked(void **state)
{
    struct ferry_metric *m;
    struct resp r;
    char value[64];
    char *direct;
    size_t len = 0;
    int i;

    (void)state;
    /* Without the process_* series that http_start() registers: their
     * values change between two renders. */
    metrics_reset();
    /* Far more than one 16 KB write. */
    for (i = 0; i < 3000; i++) {
        const char *labels[] = {"route", value, NULL};

        snprintf(value, sizeof(value), "route-with-a-long-name-%05d", i);
        m = metrics_get(FERRY_METRIC_COUNTER, "ferry_http_bulk_total",
                        "Many series.", labels);
        assert_non_null(m);
        metrics_add(m, i);
    }
    direct = metrics_render(&len);
    assert_true(len > 100000);
    request("GET", "/metrics", &r);
    assert_int_equal(r.code, 200);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.body, direct, len);
    free(direct);
    resp_release(&r);
}

/* ---- /debug -------------------------------------------------------------- */

static int debug_calls;

static char *debug_part(void *arg)
{
    debug_calls++;
    return strdup((const char *)arg);
}

static void test_debug_merges_pipeline(void **state)
{
    struct resp r;
    json_t *j, *info;

    (void)state;
    health_set_info("cache_version", "c0ffee01");
    health_set_info("writer_lock", "host-a:4242");
    /* A plugin mistake: set_info must never be given a secret. */
    health_set_info("redis_password", "hunter2");
    health_set_component("redis", FERRY_COMPONENT_CONNECTED);
    debug_calls = 0;
    http_set_debug_fn(debug_part,
                      (void *)"{\"replay\":{\"cursor\":\"1700000000000-3\"},"
                              "\"channels\":{\"company\":{\"depth\":4,"
                              "\"capacity\":1000}},"
                              "\"breakers\":{\"breaker\":\"closed\"},"
                              "\"uptime_s\":12}");
    request("GET", "/debug", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.ctype, JSON_TYPE);
    assert_int_equal(debug_calls, 1);
    assert_null(strstr(r.body, "hunter2"));
    j = json_body(&r);
    assert_string_equal(jstr(json_object_get(j, "replay"), "cursor"),
                        "1700000000000-3");
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(j, "channels"), "company"),
            "depth")),
        4);
    assert_string_equal(jstr(json_object_get(j, "breakers"), "breaker"),
                        "closed");
    assert_string_equal(jstr(j, "writer_lock"), "host-a:4242");
    assert_int_equal(json_integer_value(json_object_get(j, "uptime_s")), 12);
    info = json_object_get(j, "info");
    assert_non_null(info);
    assert_string_equal(jstr(info, "cache_version"), "c0ffee01");
    assert_string_equal(jstr(info, "writer_lock"), "host-a:4242");
    assert_string_equal(jstr(info, "redis_password"), "***");
    assert_string_equal(jstr(j, "status"), "healthy");
    assert_string_equal(jstr(j, "cache_version"), "c0ffee01");
    assert_non_null(jstr(j, "timestamp"));
    json_decref(j);
    resp_release(&r);
}

static void test_debug_defaults(void **state)
{
    static const char *const bad[] = {NULL, "not json", "[1,2]"};
    struct resp r;
    json_t *j;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bad[i])
            http_set_debug_fn(debug_part, (void *)bad[i]);
        else
            http_set_debug_fn(NULL, NULL);
        request("GET", "/debug", &r);
        assert_int_equal(r.code, 200);
        j = json_body(&r);
        assert_true(json_is_null(
            json_object_get(json_object_get(j, "replay"), "cursor")));
        /* The Go replicator's fields are there without a pipeline. */
        assert_true(json_is_false(
            json_object_get(json_object_get(j, "replay"), "enabled")));
        assert_int_equal(json_integer_value(json_object_get(
                             json_object_get(j, "messages"), "processed")),
                         0);
        assert_true(json_is_integer(
            json_object_get(json_object_get(j, "messages"), "dropped")));
        assert_string_equal(jstr(j, "role"), "active");
        assert_true(json_is_object(json_object_get(j, "channels")));
        assert_true(json_is_object(json_object_get(j, "breakers")));
        assert_true(json_is_null(json_object_get(j, "writer_lock")));
        assert_int_equal(json_object_size(json_object_get(j, "info")), 0);
        assert_string_equal(jstr(j, "cache_version"), "");
        json_decref(j);
        resp_release(&r);
    }
}

/* ---- errors -------------------------------------------------------------- */

static void test_not_found(void **state)
{
    static const char *const paths[] = {"/", "/nope", "/health/", "/healthz",
                                        "/metrics/x"};
    struct resp r;
    json_t *j;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        request("GET", paths[i], &r);
        assert_int_equal(r.code, 404);
        assert_string_equal(r.ctype, JSON_TYPE);
        j = json_body(&r);
        assert_string_equal(jstr(j, "error"), "not found");
        json_decref(j);
        resp_release(&r);
    }
}

static void test_method_not_allowed(void **state)
{
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH",
                                          "OPTIONS"};
    struct resp r;
    json_t *j;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        request(methods[i], "/health", &r);
        if (r.code != 405)
            fail_msg("%s /health: %ld", methods[i], r.code);
        assert_string_equal(r.allow, " GET");
        j = json_body(&r);
        assert_string_equal(jstr(j, "error"), "method not allowed");
        json_decref(j);
        resp_release(&r);
    }
}

static void test_post_with_body_then_get(void **state)
{
    CURL *c = curl_easy_init();
    struct resp r;

    (void)state;
    assert_non_null(c);
    assert_int_equal(request_on(c, "127.0.0.1", http_port(), "POST", "/ready",
                                "ready=1&x=2", &r),
                     CURLE_OK);
    assert_int_equal(r.code, 405);
    resp_release(&r);
    /* The server still answers, on this connection or a new one. */
    assert_int_equal(
        request_on(c, "127.0.0.1", http_port(), "GET", "/health", NULL, &r),
        CURLE_OK);
    assert_int_equal(r.code, 200);
    resp_release(&r);
    curl_easy_cleanup(c);
}

static void test_head(void **state)
{
    CURL *c = curl_easy_init();
    struct resp r;

    (void)state;
    assert_non_null(c);
    assert_int_equal(
        request_on(c, "127.0.0.1", http_port(), "HEAD", "/health", NULL, &r),
        CURLE_OK);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.ctype, JSON_TYPE);
    assert_int_equal(r.len, 0);
    resp_release(&r);
    assert_int_equal(
        request_on(c, "127.0.0.1", http_port(), "HEAD", "/ready", NULL, &r),
        CURLE_OK);
    assert_int_equal(r.code, 503);
    resp_release(&r);
    /* The kept-alive connection is still in step: no stray body. */
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    assert_int_equal(
        request_on(c, "127.0.0.1", http_port(), "GET", "/ready", NULL, &r),
        CURLE_OK);
    assert_int_equal(r.code, 503);
    assert_int_equal(r.connects, 0);
    json_decref(json_body(&r));
    resp_release(&r);
    curl_easy_cleanup(c);
}

/* ---- connections --------------------------------------------------------- */

static void test_keep_alive(void **state)
{
    CURL *c = curl_easy_init();
    struct resp r;
    int i;

    (void)state;
    assert_non_null(c);
    for (i = 0; i < 5; i++) {
        assert_int_equal(request_on(c, "127.0.0.1", http_port(), "GET",
                                    i % 2 ? "/metrics" : "/health", NULL, &r),
                         CURLE_OK);
        assert_int_equal(r.code, 200);
        /* One connection for all five requests. */
        assert_int_equal(r.connects, i == 0 ? 1 : 0);
        resp_release(&r);
    }
    curl_easy_cleanup(c);
}

static void *client_thread(void *arg)
{
    int *ok = arg;
    CURL *c = curl_easy_init();
    struct resp r;
    int i;

    if (!c)
        return NULL;
    for (i = 0; i < 25; i++) {
        if (request_on(c, "127.0.0.1", http_port(), "GET",
                       i % 3 ? "/health" : "/debug", NULL, &r) == CURLE_OK &&
            r.code == 200)
            (*ok)++;
        resp_release(&r);
    }
    curl_easy_cleanup(c);
    return NULL;
}

static void test_concurrent_clients(void **state)
{
    pthread_t th[4];
    int ok[4] = {0};
    int i;

    (void)state;
    for (i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, client_thread, &ok[i]),
                         0);
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ok[i], 25);
    }
}

static void test_stop_closes_and_restart(void **state)
{
    CURL *c = curl_easy_init();
    struct resp r;
    char err[256] = "";
    int port = http_port();

    (void)state;
    assert_non_null(c);
    /* Leave a kept-alive connection open across http_stop(). */
    assert_int_equal(
        request_on(c, "127.0.0.1", port, "GET", "/health", NULL, &r), CURLE_OK);
    resp_release(&r);
    http_stop();
    assert_int_equal(http_port(), 0);
    http_stop(); /* harmless when stopped */
    assert_int_not_equal(
        request_on(c, "127.0.0.1", port, "GET", "/health", NULL, &r), CURLE_OK);
    resp_release(&r);

    assert_int_equal(http_start("127.0.0.1:0", err, sizeof(err)), 0);
    assert_true(http_port() > 0);
    assert_int_equal(
        request_on(c, "127.0.0.1", http_port(), "GET", "/health", NULL, &r),
        CURLE_OK);
    assert_int_equal(r.code, 200);
    resp_release(&r);
    curl_easy_cleanup(c);
}

static void test_already_running(void **state)
{
    char err[256] = "";

    (void)state;
    assert_int_equal(http_start("127.0.0.1:0", err, sizeof(err)), -1);
    assert_string_equal(err, "http_listen: server already running");
}

/* ---- listen addresses (no server running) -------------------------------- */

static void test_bad_listen(void **state)
{
    static const struct {
        const char *listen, *err;
    } cases[] = {
        {"8090", "http_listen: invalid address '8090' (expected host:port, "
                 "e.g. 127.0.0.1:8090)"},
        {"127.0.0.1", "http_listen: invalid address '127.0.0.1' (expected "
                      "host:port, e.g. 127.0.0.1:8090)"},
        {"127.0.0.1:", "http_listen: invalid port '' in '127.0.0.1:' "
                       "(expected 0-65535)"},
        {"127.0.0.1:http", "http_listen: invalid port 'http' in "
                           "'127.0.0.1:http' (expected 0-65535)"},
        {"127.0.0.1:65536", "http_listen: invalid port '65536' in "
                            "'127.0.0.1:65536' (expected 0-65535)"},
        {"127.0.0.1:-1", "http_listen: invalid port '-1' in "
                         "'127.0.0.1:-1' (expected 0-65535)"},
        {"127.0.0.1:80x", "http_listen: invalid port '80x' in "
                          "'127.0.0.1:80x' (expected 0-65535)"},
        {"300.1.2.3:8090", "http_listen: invalid host '300.1.2.3' in "
                           "'300.1.2.3:8090' (expected an IPv4 address, "
                           "localhost, [IPv6] or empty for every "
                           "interface)"},
        {"example.com:8090", "http_listen: invalid host 'example.com' in "
                             "'example.com:8090' (expected an IPv4 "
                             "address, localhost, [IPv6] or empty for "
                             "every interface)"},
        {"::1:8090", "http_listen: invalid address '::1:8090' (write IPv6 "
                     "addresses in brackets: [::1]:8090)"},
        {"[::1:8090", "http_listen: invalid address '[::1:8090' (expected "
                      "[IPv6]:port)"},
        {"[::1]8090", "http_listen: invalid address '[::1]8090' (expected "
                      "[IPv6]:port)"},
        {"[]:8090", "http_listen: invalid IPv6 address in '[]:8090'"},
        {"[1.2.3.4]:8090", "http_listen: invalid IPv6 address '1.2.3.4' in "
                           "'[1.2.3.4]:8090'"},
        /* A documentation address no interface holds. */
        {"192.0.2.1:8090", "http_listen: cannot bind 192.0.2.1:8090: "
                           "Cannot assign requested address"},
    };
    char err[512];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        if (http_start(cases[i].listen, err, sizeof(err)) != -1) {
            http_stop();
            fail_msg("%s was accepted", cases[i].listen);
        }
        assert_string_equal(err, cases[i].err);
        assert_int_equal(http_port(), 0);
    }
}

static void test_listen_check(void **state)
{
    static const char *const good[] = {"127.0.0.1:8090",
                                       "localhost:0",
                                       ":8090",
                                       "*:65535",
                                       "[::1]:8090",
                                       "",
                                       NULL};
    char err[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        err[0] = '\0';
        assert_int_equal(http_listen_check(good[i], err, sizeof(err)), 0);
        assert_string_equal(err, "");
    }
    assert_int_equal(http_listen_check("127.0.0.1:80x", err, sizeof(err)), -1);
    assert_string_equal(err, "http_listen: invalid port '80x' in "
                             "'127.0.0.1:80x' (expected 0-65535)");
    assert_int_equal(http_listen_check("host.example:80", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "invalid host 'host.example'"));
    /* Syntax only: an address nobody could bind still passes. */
    assert_int_equal(http_listen_check("192.0.2.1:80", err, sizeof(err)), 0);
    assert_int_equal(http_port(), 0);
}

static void test_port_in_use(void **state)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    char listen_on[64], want[128], err[256] = "";
    int fd, port;
    const char *hosts[] = {"127.0.0.1", "localhost"};
    size_t i;

    (void)state;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    for (i = 0; i < 2; i++) {
        snprintf(listen_on, sizeof(listen_on), "%s:%d", hosts[i], port);
        snprintf(want, sizeof(want),
                 "http_listen: cannot bind %s: Address already in use",
                 listen_on);
        assert_int_equal(http_start(listen_on, err, sizeof(err)), -1);
        assert_string_equal(err, want);
        assert_int_equal(http_port(), 0);
    }
    close(fd);
}

static void test_empty_disables(void **state)
{
    char err[64] = "";

    (void)state;
    assert_int_equal(http_start("", err, sizeof(err)), 0);
    assert_int_equal(http_port(), 0);
    assert_int_equal(http_start(NULL, err, sizeof(err)), 0);
    assert_int_equal(http_port(), 0);
    assert_string_equal(err, "");
    http_stop();
}

/* Starts on listen, GETs /health through host, stops. */
static void serve_once(const char *listen, const char *host)
{
    CURL *c = curl_easy_init();
    struct resp r;
    char err[256] = "";
    int rc;

    assert_non_null(c);
    if (http_start(listen, err, sizeof(err)) != 0)
        fail_msg("http_start(%s): %s", listen, err);
    assert_true(http_port() > 0);
    rc = request_on(c, host, http_port(), "GET", "/health", NULL, &r);
    curl_easy_cleanup(c);
    http_stop();
    if (rc != CURLE_OK)
        fail_msg("%s via %s: %s", listen, host, curl_easy_strerror(rc));
    assert_int_equal(r.code, 200);
    resp_release(&r);
}

static void test_listen_forms(void **state)
{
    struct sockaddr_in6 sa;
    int fd;

    (void)state;
    serve_once("localhost:0", "127.0.0.1");
    serve_once(":0", "127.0.0.1");
    serve_once("*:0", "127.0.0.1");
    /* IPv6 loopback, where the host has it. */
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(fd);
        serve_once("[::1]:0", "[::1]");
    } else if (fd >= 0) {
        close(fd);
    }
}

int main(void)
{
    const struct CMUnitTest served[] = {
        cmocka_unit_test_setup_teardown(test_health_follows_components,
                                        server_up, server_down),
        cmocka_unit_test_setup_teardown(test_ready_flips, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_health_wedged, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_query_string_ignored, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_metrics_body, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_large_body_chunked, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_debug_merges_pipeline, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_debug_defaults, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_not_found, server_up, server_down),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_head, server_up, server_down),
        cmocka_unit_test_setup_teardown(test_post_with_body_then_get, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_keep_alive, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_concurrent_clients, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_stop_closes_and_restart, server_up,
                                        server_down),
        cmocka_unit_test_setup_teardown(test_already_running, server_up,
                                        server_down),
        cmocka_unit_test(test_bad_listen),
        cmocka_unit_test(test_listen_check),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_empty_disables),
        cmocka_unit_test(test_listen_forms),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(served, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
