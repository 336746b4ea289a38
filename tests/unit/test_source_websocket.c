/*
 * tests/unit/test_source_websocket.c: the datastream source
 * (plugins/source_websocket) without the core: pure helpers (URL
 * derivation, backoff, requests), init() validation through a fake host,
 * and run()/stop()/wakeup() against an in-process libwebsockets server
 * that scripts the datastream side and serves the REST endpoints.
 *
 * The plugin's sources are compiled into this test so that its static
 * functions are reachable. Waits poll a condition with a deadline; no
 * assertion depends on a sleep being long enough except the "nothing more
 * happened while blocked" checks, which give the plugin 100 ms to (wrongly)
 * act.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../../plugins/source_websocket/util.c"
#include "../../plugins/source_websocket/options.c"
#include "../../plugins/source_websocket/stats.c"
#include "../../plugins/source_websocket/load.c"
#include "../../plugins/source_websocket/rest_probe.c"
#include "../../plugins/source_websocket/source.c"

#include "clock.h"
#include "config.h"

/* ---- fake host ------------------------------------------------------------ */

#include "fakehost.h"

static struct ferry_ctx *fake_ctx;

static int fake_setup(void **unused)
{
    (void)unused;
    fh_reset();
    fh_set_log_level(FERRY_LOG_INFO);
    fake_ctx = fh_ctx_new("test", ws_options);
    fh_opt(fake_ctx, "api_key", "test-key");
    return 0;
}

static int fake_teardown(void **unused)
{
    (void)unused;
    fh_reset();
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Polls cond() every 5 ms for up to ms; returns its last value. */
static int wait_until(int (*cond)(void *), void *arg, unsigned ms)
{
    uint64_t end = clock_now_ns() + ms * 1000000ull;

    while (!cond(arg)) {
        if (clock_now_ns() > end)
            return cond(arg);
        sleep_ms(5);
    }
    return 1;
}

static int have_recs(void *arg)
{
    return fh_emitted_count() >= (size_t)(uintptr_t)arg;
}

static int was_refused(void *arg)
{
    (void)arg;
    return fh_emit_refused() > 0;
}

static int have_log(void *arg)
{
    return fh_logged(fake_ctx, arg);
}

/* ---- pure helpers ------------------------------------------------------------- */

static void test_url_derive_table(void **unused)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        /* schematic-datastream.md 1.1 */
        { "https://api.schematichq.com",
          "wss://datastream.schematichq.com/datastream" },
        { "https://api.staging.example.com",
          "wss://datastream.staging.example.com/datastream" },
        { "http://localhost:8080", "ws://localhost:8080/datastream" },
        { "wss://stream.example.com/custom", "wss://stream.example.com/custom" },
        /* the path is replaced, the query kept */
        { "https://api.schematichq.com/v1/x?a=1&b=2",
          "wss://datastream.schematichq.com/datastream?a=1&b=2" },
        { "http://127.0.0.1:9000/", "ws://127.0.0.1:9000/datastream" },
        /* only a first label of exactly "api", and only with a dot */
        { "https://apis.example.com", "wss://apis.example.com/datastream" },
        { "http://api:8080", "ws://api:8080/datastream" },
        { "http://api.local:8080/x", "ws://datastream.local:8080/datastream" },
        { "HTTPS://api.example.com", "wss://datastream.example.com/datastream" },
        { "ws://127.0.0.1:1/datastream?x", "ws://127.0.0.1:1/datastream?x" },
    };
    char out[256], err[256];
    size_t i;

    (void)unused;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(
            ws_url_derive(cases[i].in, out, sizeof(out), err, sizeof(err)),
            0);
        assert_string_equal(out, cases[i].out);
    }
    assert_int_equal(ws_url_derive("ftp://files.example.com", out,
                                   sizeof(out), err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "ftp://files.example.com"));
    assert_non_null(strstr(err, "scheme"));
    assert_int_equal(
        ws_url_derive("api.example.com", out, sizeof(out), err, sizeof(err)),
        -1);
    assert_int_equal(ws_url_derive("https://", out, sizeof(out), err,
                                   sizeof(err)),
                     -1);
}

static void test_url_parse(void **unused)
{
    struct ws_url u;
    char err[256];

    (void)unused;
    assert_int_equal(ws_url_parse("wss://datastream.schematichq.com/datastream",
                                  &u, err, sizeof(err)),
                     0);
    assert_true(u.tls);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.host, "datastream.schematichq.com");
    assert_string_equal(u.hostport, "datastream.schematichq.com");
    assert_string_equal(u.path, "/datastream");

    assert_int_equal(
        ws_url_parse("ws://127.0.0.1:8123/datastream?a=b", &u, err,
                     sizeof(err)),
        0);
    assert_false(u.tls);
    assert_int_equal(u.port, 8123);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.hostport, "127.0.0.1:8123");
    assert_string_equal(u.path, "/datastream?a=b");

    assert_int_equal(ws_url_parse("ws://[::1]:9/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9);
    assert_int_equal(ws_url_parse("ws://h", &u, err, sizeof(err)), 0);
    assert_string_equal(u.path, "/");
    assert_int_equal(u.port, 80);

    assert_int_equal(ws_url_parse("ws://h:0/", &u, err, sizeof(err)), -1);
    assert_int_equal(ws_url_parse("ws://h:99999/", &u, err, sizeof(err)), -1);
    assert_int_equal(ws_url_parse("ws://:80/", &u, err, sizeof(err)), -1);
    assert_int_equal(ws_url_parse("http://h/", &u, err, sizeof(err)), -1);
}

static void test_backoff(void **unused)
{
    uint64_t prev = 0, d;
    unsigned a;

    (void)unused;
    /* Without jitter: 1, 2, 4, 8, 16, 30, 30 s (1.5). */
    assert_int_equal(ws_backoff_ms(1, 1000, 30000, 0), 1000);
    assert_int_equal(ws_backoff_ms(2, 1000, 30000, 0), 2000);
    assert_int_equal(ws_backoff_ms(5, 1000, 30000, 0), 16000);
    assert_int_equal(ws_backoff_ms(6, 1000, 30000, 0), 30000);
    assert_int_equal(ws_backoff_ms(1000, 1000, 30000, 0), 30000);
    /* Jitter adds at most a quarter, never past the bounds. */
    assert_int_equal(ws_backoff_ms(1, 1000, 30000, 0.999), 1249);
    assert_int_equal(ws_backoff_ms(5, 1000, 30000, 0.999), 19996);
    for (a = 1; a < 40; a++) {
        d = ws_backoff_ms(a, 100, 5000, (double)(a % 7) / 7.0);
        assert_true(d >= 100 && d <= 5000);
        assert_true(d >= prev / 2);
        prev = d;
    }
    /* min == max: constant. */
    assert_int_equal(ws_backoff_ms(3, 500, 500, 0.5), 500);
}

static void test_fmt_ms(void **unused)
{
    char b[32];

    (void)unused;
    assert_string_equal(ws_fmt_ms(40000, b, sizeof(b)), "40s");
    assert_string_equal(ws_fmt_ms(1500, b, sizeof(b)), "1500ms");
    assert_string_equal(ws_fmt_ms(120000, b, sizeof(b)), "2m");
    assert_string_equal(ws_fmt_ms(90000, b, sizeof(b)), "1m30s");
}

static void test_subscribe(void **unused)
{
    const char *all[] = { "flags", "Users", "companies" };
    const char *bad[] = { "companies", "widgets" };
    struct ferry_pos pos = { 1767225600123, 7, 1 };
    char out[256], err[256];

    (void)unused;
    assert_int_equal(ws_subscribe_parse(all, 3, err, sizeof(err)),
                     WS_SUB_COMPANIES | WS_SUB_USERS | WS_SUB_FLAGS);
    assert_int_equal(ws_subscribe_parse(bad, 2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'widgets'"));
    assert_int_equal(ws_subscribe_parse(bad, 0, err, sizeof(err)), -1);

    assert_true(ws_subscribe_request(WS_SUB_COMPANIES, NULL, out,
                                     sizeof(out)) > 0);
    assert_string_equal(out, "{\"data\":{\"action\":\"start\",\"entity_type\":"
                             "\"rulesengine.Companies\"}}");
    assert_true(ws_subscribe_request(WS_SUB_FLAGS, &pos, out, sizeof(out)) >
                0);
    assert_string_equal(out, "{\"data\":{\"action\":\"start\",\"entity_type\":"
                             "\"rulesengine.Flags\",\"replay_from\":"
                             "\"1767225600123-7\"}}");
    assert_int_equal(ws_subscribe_request(WS_SUB_USERS, NULL, out, 10), -1);
}

static void test_item_copy_and_queue(void **unused)
{
    struct ferry_kv kv[2] = { { "domain", "acme.test" }, { "k", NULL } };
    struct ferry_msg m;
    struct ws_queue q = { NULL, NULL, 0 };
    struct ws_item *it;
    char payload[] = "{\"id\":\"comp_1\"}";

    (void)unused;
    memset(&m, 0, sizeof(m));
    m.op = FERRY_OP_FULL;
    m.entity_type = "company";
    m.entity_id = "comp_1";
    m.order_key = NULL;
    m.keys = kv;
    m.nkeys = 2;
    m.payload = payload;
    m.payload_len = strlen(payload);
    m.pos.ms = 5;
    m.pos.set = 1;
    it = ws_item_new(&m);
    payload[2] = 'X';
    assert_string_equal(it->msg.payload, "{\"id\":\"comp_1\"}");
    assert_int_equal(it->msg.payload_len, strlen("{\"id\":\"comp_1\"}"));
    assert_string_equal(it->msg.order_key, "");
    assert_string_equal(it->msg.keys[0].value, "acme.test");
    assert_string_equal(it->msg.keys[1].value, "");
    assert_int_equal(it->msg.pos.ms, 5);
    ws_queue_push(&q, it);
    ws_queue_push(&q, ws_item_new(&m));
    assert_int_equal(q.len, 2);
    it = ws_queue_pop(&q);
    assert_non_null(it);
    free(it);
    ws_queue_clear(&q);
    assert_int_equal(q.len, 0);
    assert_null(ws_queue_pop(&q));
}

static void test_ratelog(void **unused)
{
    struct ws_ratelog r = { 0, 0 };
    unsigned long s = 99;

    (void)unused;
    assert_true(ws_ratelog_ok(&r, 1000, WS_SEC_NS, &s));
    assert_int_equal(s, 0);
    assert_false(ws_ratelog_ok(&r, 2000, WS_SEC_NS, &s));
    assert_false(ws_ratelog_ok(&r, 3000, WS_SEC_NS, &s));
    assert_true(ws_ratelog_ok(&r, 1000 + WS_SEC_NS, WS_SEC_NS, &s));
    assert_int_equal(s, 2);
}

/* ---- init validation ------------------------------------------------------------ */

static int init_with(void **state)
{
    return ferry_plugin.init(&fh_host, fake_ctx, state);
}

static void test_init_defaults(void **unused)
{
    struct ws_source *s;
    void *st = NULL;

    (void)unused;
    assert_int_equal(init_with(&st), FERRY_OK);
    s = st;
    assert_string_equal(s->url, "wss://datastream.schematichq.com/datastream");
    assert_string_equal(s->api_url, "https://api.schematichq.com");
    assert_int_equal(s->ping_ms, 30000);
    assert_int_equal(s->pong_ms, 40000);
    assert_int_equal(s->connect_ms, 10000);
    assert_int_equal(s->rmin_ms, 1000);
    assert_int_equal(s->rmax_ms, 30000);
    assert_int_equal(s->max_msg, 16u * 1024 * 1024);
    assert_int_equal(s->subs, WS_SUB_COMPANIES | WS_SUB_USERS | WS_SUB_FLAGS);
    assert_int_equal(s->page_size, 100);
    assert_int_equal(s->concurrency, 5);
    assert_true(s->rate == 10.0);
    assert_int_equal(s->max_held, 100000);
    assert_true(s->tls_verify && s->replay && s->bulk_load);
    ferry_plugin.fini(st);
}

static void test_init_url_from_api_url(void **unused)
{
    struct ws_source *s;
    void *st = NULL;

    (void)unused;
    fh_opt(fake_ctx, "api_url", "http://127.0.0.1:8080/");
    assert_int_equal(init_with(&st), FERRY_OK);
    s = st;
    assert_string_equal(s->url, "ws://127.0.0.1:8080/datastream");
    assert_string_equal(s->api_url, "http://127.0.0.1:8080");
    assert_int_equal(s->wsurl.port, 8080);
    ferry_plugin.fini(st);
}

static void test_init_errors(void **unused)
{
    void *st = NULL;

    (void)unused;
    fh_opt(fake_ctx, "url", "ftp://files.example.com/x");
    assert_int_equal(init_with(&st), FERRY_EINVAL);
    assert_true(fh_logged(fake_ctx, "url: cannot derive a datastream URL from "
                                    "'ftp://files.example.com/x'"));
    fh_opt(fake_ctx, "url", "");

    fh_opt(fake_ctx, "api_url", "ftp://api.example.com");
    assert_int_equal(init_with(&st), FERRY_EINVAL);
    assert_true(fh_logged(fake_ctx,
                          "api_url 'ftp://api.example.com' must start with "
                          "http:// or https://"));
    fh_opt(fake_ctx, "api_url", "https://api.example.com");

    fh_opt(fake_ctx, "subscribe", "companies, gadgets");
    assert_int_equal(init_with(&st), FERRY_EINVAL);
    assert_true(fh_logged(fake_ctx, "subscribe: unknown item 'gadgets'"));
    fh_opt(fake_ctx, "subscribe", "companies");

    fh_opt(fake_ctx, "ping_interval", "30s");
    fh_opt(fake_ctx, "pong_wait", "30s");
    assert_int_equal(init_with(&st), FERRY_EINVAL);
    assert_true(fh_logged(fake_ctx,
                          "pong_wait (30s) must be longer than ping_interval "
                          "(30s)"));
    fh_opt(fake_ctx, "pong_wait", "31s");

    fh_opt(fake_ctx, "reconnect_min", "10s");
    fh_opt(fake_ctx, "reconnect_max", "5s");
    assert_int_equal(init_with(&st), FERRY_EINVAL);
    assert_true(
        fh_logged(fake_ctx, "reconnect_min must not exceed reconnect_max"));
    fh_opt(fake_ctx, "reconnect_max", "10s");

    fh_opt(fake_ctx, "api_key", "");
    assert_int_equal(init_with(&st), FERRY_EINVAL);
    assert_true(fh_logged(fake_ctx, "api_key is empty"));
    fh_opt(fake_ctx, "api_key", "k");

    fh_opt(fake_ctx, "tls_ca_file", "/nonexistent/ca.pem");
    assert_int_equal(init_with(&st), FERRY_EINVAL);
    assert_true(
        fh_logged(fake_ctx, "tls_ca_file '/nonexistent/ca.pem': No such file"));
    fh_opt(fake_ctx, "tls_ca_file", "");

    assert_int_equal(init_with(&st), FERRY_OK);
    ferry_plugin.fini(st);
    /* The key never reaches the log. */
    assert_false(fh_logged(fake_ctx, "test-key"));
}

/* ---- in-process datastream server ------------------------------------------------ */

enum {
    ST_TEXT = 1,  /* one text frame */
    ST_BINARY,    /* one binary frame */
    ST_FRAG,      /* one text message in two frames */
    ST_BIG,       /* a valid JSON text frame of n bytes */
    ST_CLOSE,     /* close frame with code, then close */
    ST_DROP,      /* close the TCP connection, no close frame */
    ST_STALL,     /* stop reading (no pongs) and sending */
    ST_WAIT,      /* send nothing more until srv.go is set */
    ST_BIGMSG,    /* a valid company message of n bytes (stream_id from
                   * code), in one frame */
    ST_BIGFRAGS,  /* the same in three frames */
    ST_PING       /* a ping from the server (the client must answer) */
};

struct step {
    int kind;
    const char *text;
    int code;
    size_t n;
};

struct srv_pss {
    char *body; /* REST response, LWS_PRE bytes of headroom */
    size_t len;
};

struct srv {
    struct lws_context *ctx;
    pthread_t thread;
    atomic_int stop;
    atomic_int go;
    int port;
    pthread_mutex_t lock;
    const struct step *steps;
    size_t nsteps;
    size_t next;
    int frag_half;
    int expect_reqs;
    struct lws *wsi;
    int reqs_conn;
    int conns;
    char key[8][128];
    char mode[8][64];
    char client[8][64];
    char version[8][64];
    char *reqs[64];
    int nreqs;
    int companies;
    int users;
    int rest_requests;
    int rest_401;
    int pongs;
    /* Deferred REST answers: held until the next release tick. */
    int rest_hold;
    int pending;
    int max_pending;
    struct lws *held[64];
    int nheld;
    uint64_t last_arrival;
    uint64_t rest_t[64];
    lws_sorted_usec_list_t sul;
};

static struct srv S;

static void srv_hdr(struct lws *wsi, const char *name, char *out, size_t len)
{
    int n = lws_hdr_custom_length(wsi, name, (int)strlen(name));

    out[0] = '\0';
    if (n > 0 && (size_t)n < len)
        lws_hdr_custom_copy(wsi, out, (int)len, name, (int)strlen(name));
}

/* A valid company message of about n bytes at position code. */
static unsigned char *srv_bigmsg(size_t n, int code, size_t *len)
{
    unsigned char *b = malloc(LWS_PRE + n + 512);
    char *p = (char *)b + LWS_PRE;
    int h = sprintf(p, "{\"data\":{\"id\":\"comp_big\",\"keys\":{},"
                       "\"notes\":\"");

    memset(p + h, 'x', n);
    h += (int)n;
    h += sprintf(p + h, "\"},\"entity_id\":\"comp_big\",\"entity_type\":"
                        "\"rulesengine.Company\",\"message_type\":\"full\","
                        "\"stream_id\":\"17672256000%02d-0\"}",
                 code);
    *len = (size_t)h;
    return b;
}

static int srv_send(struct lws *wsi)
{
    const struct step *st;
    unsigned char buf[LWS_PRE + 8192], *p = buf + LWS_PRE;
    size_t n;

    if (S.next >= S.nsteps || wsi != S.wsi)
        return 0;
    if (lws_send_pipe_choked(wsi)) {
        /* A big frame is still partly unsent: never interleave. */
        lws_callback_on_writable(wsi);
        return 0;
    }
    st = &S.steps[S.next];
    switch (st->kind) {
    case ST_WAIT:
        if (!atomic_load(&S.go))
            return 0;
        S.next++;
        break;
    case ST_TEXT:
    case ST_BINARY:
        n = strlen(st->text);
        memcpy(p, st->text, n);
        if (lws_write(wsi, p, n,
                      st->kind == ST_TEXT ? LWS_WRITE_TEXT
                                          : LWS_WRITE_BINARY) < (int)n)
            return -1;
        S.next++;
        break;
    case ST_FRAG:
        n = strlen(st->text);
        if (!S.frag_half) {
            memcpy(p, st->text, n / 2);
            lws_write(wsi, p, n / 2, LWS_WRITE_TEXT | LWS_WRITE_NO_FIN);
            S.frag_half = 1;
        } else {
            memcpy(p, st->text + n / 2, n - n / 2);
            lws_write(wsi, p, n - n / 2, LWS_WRITE_CONTINUATION);
            S.frag_half = 0;
            S.next++;
        }
        break;
    case ST_BIG:
        n = st->n < sizeof(buf) - LWS_PRE ? st->n : sizeof(buf) - LWS_PRE;
        memset(p, 'a', n);
        memcpy(p, "{\"x\":\"", 6);
        memcpy(p + n - 2, "\"}", 2);
        lws_write(wsi, p, n, LWS_WRITE_TEXT);
        S.next++;
        break;
    case ST_CLOSE:
        S.next++;
        S.wsi = NULL;
        lws_close_reason(wsi, (enum lws_close_status)st->code,
                         (unsigned char *)"bye", 3);
        return -1;
    case ST_DROP:
        S.next++;
        S.wsi = NULL;
        shutdown(lws_get_socket_fd(wsi), SHUT_RDWR);
        return -1;
    case ST_STALL:
        S.next++;
        lws_rx_flow_control(wsi, 0);
        return 0;
    case ST_PING:
        /* A payload the pong must echo. */
        memcpy(p, "ferry", 5);
        lws_write(wsi, p, 5, LWS_WRITE_PING);
        S.next++;
        break;
    case ST_BIGMSG: {
        unsigned char *b = srv_bigmsg(st->n, st->code, &n);

        lws_write(wsi, b + LWS_PRE, n, LWS_WRITE_TEXT);
        free(b);
        S.next++;
        break;
    }
    case ST_BIGFRAGS: {
        /* One frame per writable callback: thirds of the message. */
        unsigned char *b = srv_bigmsg(st->n, st->code, &n);
        size_t third = n / 3, off = third * (size_t)S.frag_half;
        size_t part = S.frag_half == 2 ? n - off : third;
        int flags = S.frag_half ? LWS_WRITE_CONTINUATION : LWS_WRITE_TEXT;

        if (S.frag_half < 2)
            flags |= LWS_WRITE_NO_FIN;
        memmove(b + LWS_PRE, b + LWS_PRE + off, part);
        lws_write(wsi, b + LWS_PRE, part, (enum lws_write_protocol)flags);
        free(b);
        if (++S.frag_half == 3) {
            S.frag_half = 0;
            S.next++;
        }
        break;
    }
    }
    if (S.next < S.nsteps)
        lws_callback_on_writable(wsi);
    return 0;
}

static const char *srv_item(enum sch_type t, int i, char *buf, size_t len)
{
    if (t == SCH_COMPANY)
        snprintf(buf, len,
                 "{\"id\":\"comp_%d\",\"environment_id\":\"env_1\","
                 "\"keys\":[{\"key\":\"domain\",\"value\":\"c%d.test\"}]}",
                 i, i);
    else
        snprintf(buf, len,
                 "{\"id\":\"user_%d\",\"environment_id\":\"env_1\","
                 "\"keys\":[{\"key\":\"email\",\"value\":\"u%d@x.test\"}]}",
                 i, i);
    return buf;
}

static void srv_rest(struct srv_pss *pss, const char *path, long limit,
                     long offset)
{
    size_t cap = 1024 + (size_t)(limit > 0 ? limit : 0) * 200, off = LWS_PRE;
    char item[256];
    enum sch_type t;
    long i, total;

    pss->body = malloc(cap);
    if (!strncmp(path, "/companies", 10)) {
        t = SCH_COMPANY;
        total = S.companies;
    } else {
        t = SCH_USER;
        total = S.users;
    }
    if (strstr(path, "/count")) {
        off += (size_t)snprintf(pss->body + off, cap - off,
                                "{\"data\":{\"count\":%ld}}", total);
    } else {
        off += (size_t)snprintf(pss->body + off, cap - off, "{\"data\":[");
        for (i = offset; i < offset + limit && i < total; i++)
            off += (size_t)snprintf(pss->body + off, cap - off, "%s%s",
                                    i > offset ? "," : "",
                                    srv_item(t, (int)i + 1, item,
                                             sizeof(item)));
        off += (size_t)snprintf(pss->body + off, cap - off, "]}");
    }
    pss->len = off - LWS_PRE;
}

static long srv_arg(struct lws *wsi, const char *name)
{
    char frag[64];
    int i, n;

    for (i = 0; i < 8; i++) {
        n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
                                  WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            break;
        if (!strncmp(frag, name, strlen(name)) && frag[strlen(name)] == '=')
            return atol(frag + strlen(name) + 1);
    }
    return -1;
}

static int srv_cb(struct lws *wsi, enum lws_callback_reasons reason,
                  void *user, void *in, size_t len)
{
    struct srv_pss *pss = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        pthread_mutex_lock(&S.lock);
        if (S.conns < 8) {
            srv_hdr(wsi, "x-schematic-api-key:", S.key[S.conns], 128);
            srv_hdr(wsi, "x-schematic-datastream-mode:", S.mode[S.conns], 64);
            srv_hdr(wsi, "x-schematic-client:", S.client[S.conns], 64);
            srv_hdr(wsi, "x-schematic-client-version:", S.version[S.conns],
                    64);
        }
        S.conns++;
        S.wsi = wsi;
        S.reqs_conn = 0;
        S.frag_half = 0;
        pthread_mutex_unlock(&S.lock);
        if (!S.expect_reqs)
            lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_RECEIVE:
        pthread_mutex_lock(&S.lock);
        if (S.nreqs < 64)
            S.reqs[S.nreqs++] = strndup(in, len);
        S.reqs_conn++;
        pthread_mutex_unlock(&S.lock);
        if (S.reqs_conn == S.expect_reqs)
            lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (len == 5 && !memcmp(in, "ferry", 5))
            S.pongs++;
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (S.reqs_conn < S.expect_reqs)
            break;
        return srv_send(wsi);
    case LWS_CALLBACK_CLOSED:
        if (S.wsi == wsi)
            S.wsi = NULL;
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (S.wsi)
            lws_callback_on_writable(S.wsi);
        break;
    case LWS_CALLBACK_HTTP: {
        char key[128];
        unsigned char hdr[LWS_PRE + 512], *p = hdr + LWS_PRE,
                                          *end = hdr + sizeof(hdr);
        int status = HTTP_STATUS_OK;

        srv_hdr(wsi, "x-schematic-api-key:", key, sizeof(key));
        pthread_mutex_lock(&S.lock);
        S.rest_requests++;
        if (strcmp(key, "test-key")) {
            S.rest_401++;
            status = HTTP_STATUS_UNAUTHORIZED;
        }
        pthread_mutex_unlock(&S.lock);
        if (status == HTTP_STATUS_OK) {
            srv_rest(pss, in, srv_arg(wsi, "limit"), srv_arg(wsi, "offset"));
        } else {
            pss->body = malloc(LWS_PRE + 16);
            pss->len = 2;
            memcpy(pss->body + LWS_PRE, "{}", 2);
        }
        if (lws_add_http_common_headers(wsi, (unsigned)status,
                                        "application/json", pss->len, &p,
                                        end) ||
            lws_finalize_write_http_header(wsi, hdr + LWS_PRE, &p, end))
            return 1;
        pthread_mutex_lock(&S.lock);
        if (S.rest_requests <= 64)
            S.rest_t[S.rest_requests - 1] = clock_now_ns();
        if (S.rest_hold && S.nheld < 64) {
            S.held[S.nheld++] = wsi;
            S.last_arrival = clock_now_ns();
            if (++S.pending > S.max_pending)
                S.max_pending = S.pending;
            pthread_mutex_unlock(&S.lock);
            return 0;
        }
        pthread_mutex_unlock(&S.lock);
        lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!pss || !pss->body)
            break;
        if (lws_write(wsi, (unsigned char *)pss->body + LWS_PRE, pss->len,
                      LWS_WRITE_HTTP_FINAL) < 0)
            return -1;
        free(pss->body);
        pss->body = NULL;
        if (lws_http_transaction_completed(wsi))
            return -1;
        return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss) {
            free(pss->body);
            pss->body = NULL;
        }
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols srv_protocols[] = {
    { "ds", srv_cb, sizeof(struct srv_pss), 65536, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* Answers the held REST requests once none arrived for 150 ms, so that
 * everything a client sends concurrently is held at the same time. */
static void srv_release(lws_sorted_usec_list_t *sul)
{
    int i;

    pthread_mutex_lock(&S.lock);
    if (S.nheld && clock_now_ns() - S.last_arrival >= 150000000ull) {
        for (i = 0; i < S.nheld; i++)
            lws_callback_on_writable(S.held[i]);
        S.pending -= S.nheld;
        S.nheld = 0;
    }
    pthread_mutex_unlock(&S.lock);
    lws_sul_schedule(S.ctx, 0, sul, srv_release, 10 * LWS_US_PER_MS);
}

static void *srv_main(void *arg)
{
    (void)arg;
    if (S.rest_hold)
        lws_sul_schedule(S.ctx, 0, &S.sul, srv_release, 10 * LWS_US_PER_MS);
    while (!atomic_load(&S.stop))
        lws_service(S.ctx, 0);
    return NULL;
}

static void srv_start_hold(const struct step *steps, size_t nsteps,
                           int hold);

static void srv_start(const struct step *steps, size_t nsteps)
{
    srv_start_hold(steps, nsteps, 0);
}

static void srv_start_hold(const struct step *steps, size_t nsteps, int hold)
{
    struct lws_context_creation_info info;

    memset(&S, 0, sizeof(S));
    pthread_mutex_init(&S.lock, NULL);
    S.steps = steps;
    S.nsteps = nsteps;
    S.expect_reqs = 3;
    S.rest_hold = hold;
    memset(&info, 0, sizeof(info));
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = srv_protocols;
    info.gid = -1;
    info.uid = -1;
    lws_set_log_level(0, NULL);
    S.ctx = lws_create_context(&info);
    assert_non_null(S.ctx);
    S.port = lws_get_vhost_listen_port(lws_get_vhost_by_name(S.ctx,
                                                             "default"));
    assert_true(S.port > 0);
    assert_int_equal(pthread_create(&S.thread, NULL, srv_main, NULL), 0);
}

static void srv_stop(void)
{
    int i;

    atomic_store(&S.stop, 1);
    lws_cancel_service(S.ctx);
    pthread_join(S.thread, NULL);
    lws_sul_cancel(&S.sul);
    lws_context_destroy(S.ctx);
    for (i = 0; i < S.nreqs; i++)
        free(S.reqs[i]);
}

/* ---- running the plugin --------------------------------------------------------- */

struct runner {
    void *state;
    pthread_t thread;
    int rc;
    atomic_int finished;
};

static struct runner R;
static char url_buf[128];
static char api_buf[128];

static void *run_main(void *arg)
{
    (void)arg;
    R.rc = ferry_plugin.run(R.state);
    atomic_store(&R.finished, 1);
    return NULL;
}

static void plugin_start(void)
{
    snprintf(url_buf, sizeof(url_buf), "ws://127.0.0.1:%d/datastream",
             S.port);
    snprintf(api_buf, sizeof(api_buf), "http://127.0.0.1:%d", S.port);
    fh_opt(fake_ctx, "url", url_buf);
    fh_opt(fake_ctx, "api_url", api_buf);
    memset(&R, 0, sizeof(R));
    assert_int_equal(init_with(&R.state), FERRY_OK);
    assert_int_equal(pthread_create(&R.thread, NULL, run_main, NULL), 0);
}

static int run_finished(void *arg)
{
    (void)arg;
    return atomic_load(&R.finished);
}

/* Stops the plugin and checks run() returns FERRY_OK within a second. */
static void plugin_stop(void)
{
    ferry_plugin.stop(R.state);
    assert_true(wait_until(run_finished, NULL, 1000));
    pthread_join(R.thread, NULL);
    assert_int_equal(R.rc, FERRY_OK);
    ferry_plugin.fini(R.state);
}

static int srv_has_reqs(void *arg)
{
    int n;

    pthread_mutex_lock(&S.lock);
    n = S.nreqs;
    pthread_mutex_unlock(&S.lock);
    return n >= (int)(uintptr_t)arg;
}

static const char *const company_frames[] = {
    "{\"data\":{\"id\":\"comp_1\",\"keys\":{\"domain\":\"a.test\"}},"
    "\"entity_id\":\"comp_1\",\"entity_type\":\"rulesengine.Company\","
    "\"message_type\":\"full\",\"stream_id\":\"1767225600001-0\"}",
    "{\"data\":{\"id\":\"comp_2\",\"keys\":{\"domain\":\"b.test\"}},"
    "\"entity_id\":\"comp_2\",\"entity_type\":\"rulesengine.Company\","
    "\"message_type\":\"full\",\"stream_id\":\"1767225600002-0\"}",
    "{\"data\":{\"id\":\"comp_1\",\"traits\":[]},"
    "\"entity_id\":\"comp_1\",\"entity_type\":\"rulesengine.Company\","
    "\"message_type\":\"partial\",\"stream_id\":\"1767225600003-0\"}",
    "{\"data\":{\"id\":\"comp_2\",\"keys\":{}},"
    "\"entity_id\":\"comp_2\",\"entity_type\":\"rulesengine.Company\","
    "\"message_type\":\"delete\",\"stream_id\":\"1767225600004-0\"}",
};

static void test_run_headers_and_subscriptions(void **unused)
{
    static const struct step steps[] = { { ST_WAIT, NULL, 0, 0 } };
    struct ferry_pos pos = { 1767225600042, 3, 1 };

    (void)unused;
    srv_start(steps, 1);
    fh_set_committed(pos);
    plugin_start();
    assert_true(wait_until(have_log, "subscribed to companies users flags",
                           2000));
    assert_true(wait_until(srv_has_reqs, (void *)3, 2000));
    pthread_mutex_lock(&S.lock);
    assert_int_equal(S.conns, 1);
    assert_string_equal(S.key[0], "test-key");
    assert_string_equal(S.mode[0], "replicator");
    assert_string_equal(S.client[0], "ferry");
    assert_string_equal(S.version[0], FERRY_VERSION);
    assert_int_equal(S.nreqs, 3);
    assert_string_equal(S.reqs[0],
                        "{\"data\":{\"action\":\"start\",\"entity_type\":"
                        "\"rulesengine.Companies\",\"replay_from\":"
                        "\"1767225600042-3\"}}");
    assert_non_null(strstr(S.reqs[1], "\"rulesengine.Users\",\"replay_from\":"
                                      "\"1767225600042-3\""));
    assert_non_null(strstr(S.reqs[2], "\"rulesengine.Flags\",\"replay_from\":"
                                      "\"1767225600042-3\""));
    pthread_mutex_unlock(&S.lock);
    assert_int_equal(fh_component(fake_ctx, "datastream"),
                     FERRY_COMPONENT_CONNECTED);
    assert_true(fh_metric_sum("ferry_source_connected", NULL) == 1);
    /* A committed position: no initial load. */
    assert_int_equal(S.rest_requests, 0);
    plugin_stop();
    srv_stop();
    assert_int_equal(fh_component(fake_ctx, "datastream"),
                     FERRY_COMPONENT_DISCONNECTED);
    assert_false(fh_logged(fake_ctx, "test-key"));
}

static void test_run_messages_and_invalid(void **unused)
{
    static const struct step steps[] = {
        { ST_TEXT, "{\"data\":{\"id\":\"comp_1\",\"keys\":{\"domain\":"
                   "\"a.test\"}},\"entity_id\":\"comp_1\",\"entity_type\":"
                   "\"rulesengine.Company\",\"message_type\":\"full\","
                   "\"stream_id\":\"1767225600001-0\"}",
          0, 0 },
        { ST_BINARY, "{\"binary\":true}", 0, 0 },
        { ST_BIG, NULL, 0, 3000 },
        { ST_TEXT, "{not json", 0, 0 },
        { ST_TEXT, "{\"data\":{\"error\":\"company not found\"},"
                   "\"entity_type\":\"rulesengine.Company\","
                   "\"message_type\":\"error\"}",
          0, 0 },
        { ST_TEXT, "{\"data\":{},\"entity_type\":\"rulesengine.Companies\","
                   "\"message_type\":\"full\"}",
          0, 0 },
        { ST_FRAG, "{\"data\":{\"id\":\"user_1\",\"keys\":{\"email\":"
                   "\"a@b.test\"}},\"entity_id\":\"user_1\",\"entity_type\":"
                   "\"rulesengine.User\",\"message_type\":\"full\","
                   "\"stream_id\":\"1767225600002-0\"}",
          0, 0 },
        { ST_TEXT, "{\"data\":[],\"entity_type\":\"rulesengine.Flags\","
                   "\"message_type\":\"full\"}",
          0, 0 },
    };

    (void)unused;
    srv_start(steps, sizeof(steps) / sizeof(steps[0]));
    fh_set_committed((struct ferry_pos){.set = 1, .ms = 1});
    fh_opt(fake_ctx, "max_message_size", "2KB");
    plugin_start();
    assert_true(wait_until(have_recs, (void *)3, 2000));
    sleep_ms(50);
    assert_int_equal(fh_emitted_count(), 3);
    assert_string_equal(fh_emitted(0)->entity_type, "company");
    assert_string_equal(fh_emitted(0)->entity_id, "comp_1");
    assert_int_equal(fh_emitted(0)->op, FERRY_OP_FULL);
    assert_int_equal(fh_emitted(0)->pos.ms, 1767225600001ull);
    assert_string_equal(fh_emitted(1)->entity_type, "user");
    assert_string_equal(fh_emitted(1)->entity_id, "user_1");
    assert_int_equal(fh_emitted(1)->pos.ms, 1767225600002ull);
    assert_string_equal(fh_emitted(2)->entity_type, "flags");
    assert_int_equal(fh_emitted(2)->op, FERRY_OP_SNAPSHOT);
    assert_true(fh_metric_sum("ferry_source_invalid_messages_total",
                              "reason=binary") == 1);
    assert_true(fh_metric_sum("ferry_source_invalid_messages_total",
                              "reason=too_large") == 1);
    assert_true(fh_metric_sum("ferry_source_invalid_messages_total",
                              "reason=invalid_json") == 1);
    assert_true(fh_metric_sum("ferry_source_errors_total", NULL) == 1);
    assert_true(fh_metric_sum("ferry_source_messages_total",
                              "entity_type=company") == 1);
    assert_true(
        fh_logged(fake_ctx, "subscription confirmed: rulesengine.Companies"));
    assert_true(fh_logged(fake_ctx, "server error: company not found"));
    /* One invalid line per second at most: the first is logged. */
    assert_true(fh_logged(fake_ctx, "invalid message skipped (binary)"));
    plugin_stop();
    assert_true(fh_logged(fake_ctx, "stopped: 3 messages, 3 invalid (binary=1 "
                                    "too_large=1 invalid_json=1), 1 errors"));
    srv_stop();
}

static void test_run_large_split_messages(void **unused)
{
    /* Frames larger than one socket read arrive in pieces: a 300 KB
     * message in one frame, the same in three frames, a ping in between,
     * and small messages around them. */
    static const struct step steps[] = {
        { ST_TEXT, NULL, 0, 0 },
        { ST_BIGMSG, NULL, 2, 300000 },
        { ST_PING, NULL, 0, 0 },
        { ST_BIGFRAGS, NULL, 3, 300000 },
        { ST_TEXT, NULL, 0, 0 },
        { ST_BIGMSG, NULL, 5, 5000000 }, /* over max_message_size */
        { ST_TEXT, NULL, 0, 0 },
    };
    static struct step s2[7];

    (void)unused;
    memcpy(s2, steps, sizeof(steps));
    s2[0].text = company_frames[0];
    s2[4].text = company_frames[3];
    s2[6].text = "{\"data\":{\"id\":\"comp_9\",\"keys\":{}},"
                 "\"entity_id\":\"comp_9\",\"entity_type\":"
                 "\"rulesengine.Company\",\"message_type\":\"full\","
                 "\"stream_id\":\"1767225600006-0\"}";
    srv_start(s2, 7);
    fh_set_committed((struct ferry_pos){.set = 1});
    fh_opt(fake_ctx, "max_message_size", "1MB");
    plugin_start();
    assert_true(wait_until(have_recs, (void *)5, 5000));
    sleep_ms(50);
    assert_int_equal(fh_emitted_count(), 5);
    assert_int_equal(fh_emitted(0)->pos.ms, 1767225600001ull);
    assert_int_equal(fh_emitted(1)->pos.ms, 1767225600002ull);
    assert_true(strlen(fh_emitted(1)->payload) > 300000);
    assert_int_equal(fh_emitted(2)->pos.ms, 1767225600003ull);
    assert_string_equal(fh_emitted(2)->payload, fh_emitted(1)->payload);
    assert_int_equal(fh_emitted(3)->pos.ms, 1767225600004ull);
    assert_int_equal(fh_emitted(4)->pos.ms, 1767225600006ull);
    assert_true(fh_metric_sum("ferry_source_invalid_messages_total",
                              "reason=too_large") == 1);
    assert_true(S.pongs >= 1); /* the server's ping was answered */
    assert_int_equal(S.conns, 1);
    assert_false(fh_logged(fake_ctx, "protocol_error"));
    plugin_stop();
    srv_stop();
}

static void test_run_backpressure(void **unused)
{
    enum { N = 300 };
    static struct step steps[N];
    static char texts[N][256];
    size_t i;

    (void)unused;
    for (i = 0; i < N; i++) {
        snprintf(texts[i], sizeof(texts[i]),
                 "{\"data\":{\"id\":\"comp_%zu\",\"keys\":{}},"
                 "\"entity_id\":\"comp_%zu\",\"entity_type\":"
                 "\"rulesengine.Company\",\"message_type\":\"full\","
                 "\"stream_id\":\"1767225600%03zu-0\"}",
                 i % 7, i % 7, i + 1);
        steps[i].kind = ST_TEXT;
        steps[i].text = texts[i];
    }
    srv_start(steps, N);
    fh_set_committed((struct ferry_pos){.set = 1});
    fh_emit_verdict(FERRY_WOULD_BLOCK);
    /* Short keepalive: a paused connection must not be declared dead. */
    fh_opt(fake_ctx, "ping_interval", "50ms");
    fh_opt(fake_ctx, "pong_wait", "150ms");
    plugin_start();
    /* The first refusal pauses reading; nothing is accepted meanwhile. */
    assert_true(wait_until(was_refused, NULL, 2000));
    sleep_ms(400); /* well past pong_wait */
    assert_int_equal(fh_emitted_count(), 0);
    assert_int_equal(S.conns, 1);
    assert_false(fh_logged(fake_ctx, "no pong"));
    fh_emit_verdict(FERRY_OK);
    ferry_plugin.wakeup(R.state);
    assert_true(wait_until(have_recs, (void *)N, 3000));
    for (i = 0; i < N; i++)
        assert_int_equal(fh_emitted(i)->pos.ms, 1767225600000ull + i + 1);
    assert_int_equal(S.conns, 1);
    plugin_stop();
    srv_stop();
}

static void test_run_close_4001(void **unused)
{
    static const struct step steps[] = { { ST_CLOSE, NULL, 4001, 0 } };

    (void)unused;
    srv_start(steps, 1);
    fh_set_committed((struct ferry_pos){.set = 1});
    fh_opt(fake_ctx, "reconnect_max", "10s");
    plugin_start();
    assert_true(wait_until(have_log, "API key refused (close 4001)", 2000));
    assert_true(fh_logged(fake_ctx, "retrying in 10s"));
    assert_int_equal(fh_component(fake_ctx, "datastream"),
                     FERRY_COMPONENT_DISCONNECTED);
    assert_true(fh_metric_sum("ferry_source_unhealthy", NULL) == 1);
    sleep_ms(200);
    assert_int_equal(S.conns, 1); /* waits reconnect_max */
    plugin_stop();
    srv_stop();
}

static void test_run_reconnect_resumes(void **unused)
{
    static const struct step steps[] = {
        { ST_TEXT, NULL, 0, 0 }, { ST_TEXT, NULL, 0, 0 },
        { ST_DROP, NULL, 0, 0 }, { ST_TEXT, NULL, 0, 0 },
        { ST_CLOSE, NULL, 1000, 0 }, { ST_TEXT, NULL, 0, 0 },
    };
    static struct step s2[6];
    size_t i;

    (void)unused;
    memcpy(s2, steps, sizeof(steps));
    s2[0].text = company_frames[0];
    s2[1].text = company_frames[1];
    s2[3].text = company_frames[2];
    s2[5].text = company_frames[3];
    srv_start(s2, 6);
    /* A committed position older than what arrived: the cursor is the
     * newest position received in this process. */
    fh_set_committed((struct ferry_pos){.set = 1, .ms = 1767225600001ull});
    fh_opt(fake_ctx, "bulk_load", "false");
    fh_opt(fake_ctx, "reconnect_min", "20ms");
    plugin_start();
    assert_true(wait_until(have_recs, (void *)4, 3000));
    assert_int_equal(S.conns, 3);
    for (i = 0; i < 4; i++)
        assert_int_equal(fh_emitted(i)->pos.ms, 1767225600001ull + i);
    pthread_mutex_lock(&S.lock);
    assert_int_equal(S.nreqs, 9);
    assert_non_null(strstr(S.reqs[0], "\"replay_from\":\"1767225600001-0\""));
    assert_non_null(strstr(S.reqs[3], "\"replay_from\":\"1767225600002-0\""));
    assert_non_null(strstr(S.reqs[8], "\"replay_from\":\"1767225600003-0\""));
    pthread_mutex_unlock(&S.lock);
    assert_true(fh_logged(fake_ctx, "(close 1000)"));
    assert_true(fh_metric_sum("ferry_source_reconnects_total", NULL) == 2);
    /* Exactly once each: resuming after the newest received position
     * replays nothing twice. */
    assert_int_equal(fh_emitted_count(), 4);
    plugin_stop();
    srv_stop();
}

static void test_run_pong_timeout(void **unused)
{
    static const struct step steps[] = { { ST_STALL, NULL, 0, 0 } };

    (void)unused;
    srv_start(steps, 1);
    fh_set_committed((struct ferry_pos){.set = 1});
    fh_opt(fake_ctx, "ping_interval", "100ms");
    fh_opt(fake_ctx, "pong_wait", "300ms");
    fh_opt(fake_ctx, "reconnect_min", "20ms");
    plugin_start();
    assert_true(wait_until(have_log, "no pong within 300ms: connection dead",
                           1500));
    assert_true(wait_until(have_log, "keepalive timeout", 1000));
    plugin_stop();
    srv_stop();
}

static void test_run_initial_load(void **unused)
{
    static struct step s2[4];
    size_t i, n, begin = 0, end = 0, loaded = 0;

    (void)unused;
    for (i = 0; i < 4; i++) {
        s2[i].kind = ST_TEXT;
        s2[i].text = company_frames[i];
    }
    srv_start(s2, 4);
    S.companies = 250;
    S.users = 120;
    fh_opt(fake_ctx, "bulk_rate", "0");
    plugin_start();
    n = 250 + 120 + 2 + 4;
    assert_true(wait_until(have_recs, (void *)n, 5000));
    sleep_ms(50);
    assert_int_equal(fh_emitted_count(), n);
    assert_int_equal(fh_emitted(0)->op, FERRY_OP_LOAD_BEGIN);
    assert_string_equal(fh_emitted(0)->entity_type, "control");
    for (i = 0; i < n; i++) {
        if (fh_emitted(i)->op == FERRY_OP_LOAD_END)
            end = i;
        if (fh_emitted(i)->op == FERRY_OP_LOAD_BEGIN)
            begin++;
        if (fh_emitted(i)->flags & FERRY_MSG_F_LOAD &&
            fh_emitted(i)->op == FERRY_OP_FULL) {
            loaded++;
            assert_true(i < end || !end);
            assert_false(fh_emitted(i)->pos.set);
        }
    }
    assert_int_equal(begin, 1);
    assert_int_equal(loaded, 370);
    assert_int_equal(end, n - 5);
    /* The stream messages, held during the load, come after LOAD_END in
     * arrival order. */
    for (i = 0; i < 4; i++)
        assert_int_equal(fh_emitted(end + 1 + i)->pos.ms, 1767225600001ull + i);
    /* 2 counts + 3 company pages + 2 user pages. */
    assert_int_equal(S.rest_requests, 7);
    assert_true(
        fh_logged(fake_ctx, "initial load complete: 250 companies, 120 users"));
    assert_true(fh_metric("ferry_source_load_progress_ratio", "") == 1.0);
    plugin_stop();
    srv_stop();
}

static void test_run_reload(void **unused)
{
    static struct step s2[4];

    (void)unused;
    s2[0].kind = ST_TEXT;
    s2[0].text = company_frames[0];
    s2[1].kind = ST_TEXT;
    s2[1].text = "{\"data\":null,\"entity_type\":\"\",\"message_type\":"
                 "\"reload\",\"stream_id\":\"1767225600002-0\"}";
    s2[2].kind = ST_TEXT;
    s2[2].text = company_frames[2];
    s2[3].kind = ST_TEXT;
    s2[3].text = company_frames[3];
    srv_start(s2, 4);
    S.companies = 3;
    S.users = 0;
    /* A committed position: no initial load at connect. */
    fh_set_committed((struct ferry_pos){.set = 1});
    fh_opt(fake_ctx, "bulk_rate", "0");
    plugin_start();
    assert_true(wait_until(have_recs, (void *)9, 3000));
    sleep_ms(50);
    assert_int_equal(fh_emitted_count(), 9);
    assert_int_equal(fh_emitted(0)->pos.ms, 1767225600001ull);
    assert_int_equal(fh_emitted(1)->op, FERRY_OP_RELOAD);
    assert_int_equal(fh_emitted(2)->op, FERRY_OP_LOAD_BEGIN);
    assert_int_equal(fh_emitted(3)->flags,
                     FERRY_MSG_F_LOAD | SCH_MSG_F_NORMALIZED);
    assert_int_equal(fh_emitted(6)->op, FERRY_OP_LOAD_END);
    assert_int_equal(fh_emitted(7)->pos.ms, 1767225600003ull);
    assert_int_equal(fh_emitted(8)->pos.ms, 1767225600004ull);
    plugin_stop();
    srv_stop();
}

static void test_run_load_401_never_ends(void **unused)
{
    static struct step s2[1];

    (void)unused;
    s2[0].kind = ST_TEXT;
    s2[0].text = company_frames[0];
    srv_start(s2, 1);
    S.companies = 3;
    fh_opt(fake_ctx, "api_key", "wrong-key");
    fh_opt(fake_ctx, "reconnect_min", "20ms");
    fh_opt(fake_ctx, "reconnect_max", "100ms");
    fh_opt(fake_ctx, "bulk_rate", "0");
    plugin_start();
    assert_true(wait_until(have_log, "HTTP 401 (API key refused)", 2000));
    sleep_ms(300);
    /* LOAD_BEGIN only: no entity, no LOAD_END, the stream message held. */
    assert_int_equal(fh_emitted_count(), 1);
    assert_int_equal(fh_emitted(0)->op, FERRY_OP_LOAD_BEGIN);
    assert_true(S.rest_401 >= 3); /* retried */
    plugin_stop();
    srv_stop();
}

static void test_run_load_concurrency(void **unused)
{
    static struct step s2[1];

    (void)unused;
    s2[0].kind = ST_TEXT;
    s2[0].text = company_frames[0];
    srv_start_hold(s2, 1, 1);
    S.companies = 1000;
    S.users = 0;
    fh_opt(fake_ctx, "bulk_concurrency", "3");
    fh_opt(fake_ctx, "bulk_rate", "0");
    plugin_start();
    /* LOAD_BEGIN, 1000 companies, LOAD_END, the stream message. */
    assert_true(wait_until(have_recs, (void *)1003, 5000));
    assert_int_equal(S.rest_requests, 12);
    /* Answers are held while requests keep coming: they pile up to the
     * limit, never past it. */
    assert_int_equal(S.max_pending, 3);
    plugin_stop();
    srv_stop();
}

static void test_run_load_rate(void **unused)
{
    static struct step s2[1];
    uint64_t min_gap = UINT64_MAX;
    int i;

    (void)unused;
    s2[0].kind = ST_TEXT;
    s2[0].text = company_frames[0];
    srv_start(s2, 1);
    S.companies = 500;
    S.users = 0;
    fh_opt(fake_ctx, "bulk_rate", "40"); /* one request per 25 ms */
    plugin_start();
    assert_true(wait_until(have_recs, (void *)503, 5000));
    assert_int_equal(S.rest_requests, 7);
    for (i = 1; i < 7; i++)
        if (S.rest_t[i] - S.rest_t[i - 1] < min_gap)
            min_gap = S.rest_t[i] - S.rest_t[i - 1];
    /* Starts are 25 ms apart on the client; allow for delivery jitter. */
    assert_true(min_gap >= 15000000ull);
    assert_true(S.rest_t[6] - S.rest_t[0] >= 140000000ull);
    plugin_stop();
    srv_stop();
}

/* Points url and api_url at the test server (WebSocket and REST). */
static void probe_urls(void)
{
    snprintf(url_buf, sizeof(url_buf), "ws://127.0.0.1:%d/datastream",
             S.port);
    snprintf(api_buf, sizeof(api_buf), "http://127.0.0.1:%d", S.port);
    fh_opt(fake_ctx, "url", url_buf);
    fh_opt(fake_ctx, "api_url", api_buf);
}

/* The progress line: every 10 % or 5 s, never twice within a second,
 * only once both counts are in; the gauge follows every entity. */
static void test_load_report(void **unused)
{
    struct ws_load l;
    const uint64_t s = 1000000000ull;

    (void)unused;
    memset(&l, 0, sizeof(l));
    l.host = &fh_host;
    l.ctx = fake_ctx;
    l.m_progress = fh_host.metric(fake_ctx, FERRY_METRIC_GAUGE,
                                  "ferry_source_load_progress_ratio", "h",
                                  NULL);
    fh_clock_set(100 * s);
    l.t0_ns = l.report_ns = 100 * s;
    l.total[0] = 150;
    l.counted = 1;
    l.entities[0] = 30;
    fh_clock_set(102 * s);
    ws_load_report(&l); /* the users count is not in yet */
    assert_int_equal(fh_nlogs(fake_ctx), 0);
    l.total[1] = 50;
    l.counted = 3;
    l.entities[0] = 10;
    fh_clock_set(100 * s + s / 2);
    ws_load_report(&l); /* 5 %, and within a second of the start */
    assert_int_equal(fh_nlogs(fake_ctx), 0);
    assert_true(fh_metric("ferry_source_load_progress_ratio", "") == 0.05);
    l.entities[0] = 30;
    ws_load_report(&l); /* 15 %, still within the first second */
    assert_int_equal(fh_nlogs(fake_ctx), 0);
    fh_clock_set(102 * s);
    ws_load_report(&l);
    assert_int_equal(fh_nlogs(fake_ctx), 1);
    assert_string_equal(fh_log_line(fake_ctx, 0),
                        "initial load: 30/150 companies, 0/50 users (15%), "
                        "15/s, ETA 11s");
    l.entities[0] = 38;
    fh_clock_set(106 * s);
    ws_load_report(&l); /* 19 %, 4 s later: not yet */
    assert_int_equal(fh_nlogs(fake_ctx), 1);
    fh_clock_set(107 * s);
    ws_load_report(&l); /* 5 s later */
    assert_int_equal(fh_nlogs(fake_ctx), 2);
    l.entities[0] = 150;
    l.entities[1] = 10;
    l.skipped = 2;
    fh_clock_set(107 * s + s / 2);
    ws_load_report(&l); /* 81 %, but half a second later */
    assert_int_equal(fh_nlogs(fake_ctx), 2);
    l.entities[1] = 48;
    fh_clock_set(110 * s);
    ws_load_report(&l); /* done: the completion line says it */
    assert_int_equal(fh_nlogs(fake_ctx), 2);
    assert_true(fh_metric("ferry_source_load_progress_ratio", "") == 1.0);
}

static void test_probe(void **unused)
{
    static const struct step wait[] = { { ST_WAIT, NULL, 0, 0 } };
    static const struct step refuse[] = { { ST_CLOSE, NULL, 4001, 0 } };
    char msg[512];
    void *st = NULL;

    (void)unused;
    srv_start(wait, 1);
    S.expect_reqs = 0;
    S.companies = 7;
    S.users = 3;
    probe_urls();
    assert_int_equal(init_with(&st), FERRY_OK);
    if (ferry_plugin.probe(st, msg, sizeof(msg)) != FERRY_OK)
        fail_msg("probe: %s", msg);
    assert_non_null(strstr(msg, "handshake and ping answered"));
    /* The REST API the initial load uses: its two counts, with the key. */
    assert_non_null(strstr(msg, "; REST http://127.0.0.1:"));
    assert_non_null(strstr(msg, ": 7 companies, 3 users"));
    assert_int_equal(S.rest_requests, 2);
    assert_int_equal(S.rest_401, 0);
    assert_int_equal(S.conns, 1);
    assert_int_equal(S.nreqs, 0); /* no subscription */
    ferry_plugin.fini(st);
    srv_stop();

    /* The server refuses the key after the upgrade, and so does REST. */
    srv_start(refuse, 1);
    S.expect_reqs = 0;
    probe_urls();
    fh_opt(fake_ctx, "api_key", "wrong-key");
    assert_int_equal(init_with(&st), FERRY_OK);
    assert_int_equal(ferry_plugin.probe(st, msg, sizeof(msg)), FERRY_ERROR);
    assert_non_null(strstr(msg, "API key refused (close 4001)"));
    assert_non_null(
        strstr(msg, "GET /companies/count: HTTP 401 (API key refused)"));
    /* The users count is not asked once the first one failed. */
    assert_int_equal(S.rest_401, 1);
    ferry_plugin.fini(st);
    srv_stop();

    /* The WebSocket answers but the REST API does not: a failure. */
    srv_start(wait, 1);
    S.expect_reqs = 0;
    probe_urls();
    fh_opt(fake_ctx, "api_key", "test-key");
    fh_opt(fake_ctx, "api_url", "http://127.0.0.1:1");
    assert_int_equal(init_with(&st), FERRY_OK);
    assert_int_equal(ferry_plugin.probe(st, msg, sizeof(msg)), FERRY_ERROR);
    assert_non_null(strstr(msg, "handshake and ping answered"));
    assert_non_null(strstr(msg, "; REST http://127.0.0.1:1: GET "
                                "/companies/count: "));
    ferry_plugin.fini(st);
    srv_stop();

    /* Nothing listens. */
    fh_opt(fake_ctx, "url", "ws://127.0.0.1:1/datastream");
    assert_int_equal(init_with(&st), FERRY_OK);
    assert_int_equal(ferry_plugin.probe(st, msg, sizeof(msg)), FERRY_ERROR);
    assert_non_null(strstr(msg, "cannot connect to ws://127.0.0.1:1/"));
    ferry_plugin.fini(st);
}

/* ---- a raw TCP server for handshake failures -------------------------- */

enum { RAW_SILENT = 1, RAW_401, RAW_BAD_ACCEPT, RAW_MASKED };

struct rawsrv {
    int fd;
    int port;
    int mode;
    pthread_t thread;
    atomic_int stop;
    atomic_int accepted;
};

static struct rawsrv RS;

static void *rawsrv_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&RS.stop)) {
        char req[4096] = "", resp[512], accept[64], key[64] = "";
        struct timeval tv = { 0, 100000 };
        size_t got = 0;
        char *k;
        int c = accept4(RS.fd, NULL, NULL, 0);

        if (c < 0)
            continue;
        atomic_fetch_add(&RS.accepted, 1);
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while (got < sizeof(req) - 1 && !strstr(req, "\r\n\r\n") &&
               !atomic_load(&RS.stop)) {
            ssize_t n = recv(c, req + got, sizeof(req) - 1 - got, 0);

            if (n > 0)
                got += (size_t)n;
            req[got] = '\0';
            if (n == 0)
                break;
        }
        k = strcasestr(req, "Sec-WebSocket-Key: ");
        if (k)
            sscanf(k + 19, "%63[^\r]", key);
        wsc_accept_key(key, accept, sizeof(accept));
        if (RS.mode == RAW_SILENT) {
            while (!atomic_load(&RS.stop) && recv(c, req, sizeof(req), 0))
                ;
        } else if (RS.mode == RAW_401) {
            snprintf(resp, sizeof(resp),
                     "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                     "\r\n");
            send(c, resp, strlen(resp), MSG_NOSIGNAL);
        } else {
            snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     RS.mode == RAW_BAD_ACCEPT ? "bm90IHRoZSByaWdodCBvbmU="
                                               : accept);
            send(c, resp, strlen(resp), MSG_NOSIGNAL);
            if (RS.mode == RAW_MASKED) {
                /* A masked text frame "{}": servers must not mask. */
                unsigned char f[8] = { 0x81, 0x82, 1, 2, 3, 4,
                                       '{' ^ 1, '}' ^ 2 };

                send(c, f, sizeof(f), MSG_NOSIGNAL);
                /* Expect the close frame 1002 back. */
                while (!atomic_load(&RS.stop) &&
                       recv(c, req, sizeof(req), 0) > 0)
                    ;
            }
        }
        close(c);
    }
    return NULL;
}

static void rawsrv_start(int mode)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    struct timeval tv = { 0, 100000 };

    memset(&RS, 0, sizeof(RS));
    RS.mode = mode;
    RS.fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(RS.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(RS.fd, 8), 0);
    setsockopt(RS.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    getsockname(RS.fd, (struct sockaddr *)&a, &al);
    RS.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&RS.thread, NULL, rawsrv_main, NULL), 0);
    snprintf(url_buf, sizeof(url_buf), "ws://127.0.0.1:%d/datastream",
             RS.port);
    fh_opt(fake_ctx, "url", url_buf);
}

static void rawsrv_stop(void)
{
    atomic_store(&RS.stop, 1);
    pthread_join(RS.thread, NULL);
    close(RS.fd);
}

static void raw_run(void)
{
    memset(&R, 0, sizeof(R));
    fh_set_committed((struct ferry_pos){.set = 1});
    assert_int_equal(init_with(&R.state), FERRY_OK);
    assert_int_equal(pthread_create(&R.thread, NULL, run_main, NULL), 0);
}

static void test_handshake_timeout(void **unused)
{
    (void)unused;
    rawsrv_start(RAW_SILENT);
    fh_opt(fake_ctx, "connect_timeout", "300ms");
    fh_opt(fake_ctx, "reconnect_min", "50ms");
    raw_run();
    assert_true(wait_until(have_log, "no WebSocket handshake within 300ms",
                           2000));
    assert_true(fh_logged(fake_ctx, "retrying in"));
    plugin_stop();
    rawsrv_stop();
}

static void test_handshake_401(void **unused)
{
    (void)unused;
    rawsrv_start(RAW_401);
    fh_opt(fake_ctx, "reconnect_max", "10s");
    raw_run();
    assert_true(wait_until(have_log, "the server answered HTTP/1.1 401 "
                                     "Unauthorized (API key refused); "
                                     "retrying in 10s",
                           2000));
    assert_true(fh_metric_sum("ferry_source_unhealthy", NULL) == 1);
    plugin_stop();
    rawsrv_stop();
}

static void test_handshake_bad_accept(void **unused)
{
    (void)unused;
    rawsrv_start(RAW_BAD_ACCEPT);
    raw_run();
    assert_true(wait_until(have_log, "wrong Sec-WebSocket-Accept", 2000));
    assert_int_equal(fh_emitted_count(), 0);
    plugin_stop();
    rawsrv_stop();
}

static void test_masked_server_frame(void **unused)
{
    (void)unused;
    rawsrv_start(RAW_MASKED);
    fh_opt(fake_ctx, "reconnect_min", "1s");
    raw_run();
    assert_true(wait_until(have_log, "masked frame from the server", 2000));
    assert_true(fh_metric_sum("ferry_source_invalid_messages_total",
                              "reason=protocol_error") >= 1);
    assert_true(wait_until(have_log, "disconnected from", 2000));
    assert_int_equal(fh_emitted_count(), 0);
    plugin_stop();
    rawsrv_stop();
}

static void test_accept_value(void **unused)
{
    char out[64];

    (void)unused;
    /* RFC 6455 section 1.3. */
    wsc_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out, sizeof(out));
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_run_stop_while_dialling(void **unused)
{
    (void)unused;
    /* Nothing listens on port 1: dials fail, stop() still ends run(). */
    fh_opt(fake_ctx, "url", "ws://127.0.0.1:1/datastream");
    fh_opt(fake_ctx, "reconnect_min", "20ms");
    fh_opt(fake_ctx, "reconnect_max", "40ms");
    memset(&R, 0, sizeof(R));
    assert_int_equal(init_with(&R.state), FERRY_OK);
    assert_int_equal(pthread_create(&R.thread, NULL, run_main, NULL), 0);
    assert_true(wait_until(have_log, "(attempt 3)", 2000));
    assert_true(
        fh_logged(fake_ctx, "cannot connect to ws://127.0.0.1:1/datastream"));
    plugin_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_derive_table),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_fmt_ms),
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_item_copy_and_queue),
        cmocka_unit_test(test_ratelog),
        cmocka_unit_test_setup_teardown(test_init_defaults, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_init_url_from_api_url,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_init_errors, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_headers_and_subscriptions,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_messages_and_invalid,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_large_split_messages,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_backpressure, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_close_4001, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_reconnect_resumes,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_pong_timeout, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_initial_load, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_reload, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_load_401_never_ends,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_load_concurrency,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_load_rate, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_load_report, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_probe, fake_setup,
                                        fake_teardown),
        cmocka_unit_test(test_accept_value),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_401, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_bad_accept,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_masked_server_frame, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_run_stop_while_dialling,
                                        fake_setup, fake_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
