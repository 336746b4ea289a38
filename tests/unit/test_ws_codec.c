/*
 * tests/unit/test_ws_codec.c: the WebSocket client codec (plugins/lib/ws)
 * on its own: no socket, the test plays the server by feeding bytes to
 * wsc_rx() and reading what the codec hands to its send callback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/wsc.h"

/* ---- a recording consumer ------------------------------------------------ */

#define T_MAX_MSGS 64

struct rec {
    unsigned char sent[1 << 18];  /* everything send() got */
    size_t sent_len;
    int can_read_budget;          /* < 0: unlimited */
    int opened;
    int nmsgs;
    int ops[T_MAX_MSGS];
    char *msgs[T_MAX_MSGS];
    size_t lens[T_MAX_MSGS];
    int ndiscards;
    enum wsc_discard discard_why;
    uint64_t discard_total;
    int pings;
    int pongs;
    int close_code;
    int nerrors;
    enum wsc_error err_kind;
    int err_status;
    char err[256];
};

static void r_send(void *arg, const void *b, size_t n)
{
    struct rec *r = arg;

    assert_true(r->sent_len + n <= sizeof(r->sent));
    memcpy(r->sent + r->sent_len, b, n);
    r->sent_len += n;
}

static int r_can_read(void *arg)
{
    struct rec *r = arg;

    return r->can_read_budget != 0;
}

static void r_open(void *arg)
{
    ((struct rec *)arg)->opened++;
}

static void r_message(void *arg, int op, const char *b, size_t n)
{
    struct rec *r = arg;

    assert_true(r->nmsgs < T_MAX_MSGS);
    r->ops[r->nmsgs] = op;
    r->msgs[r->nmsgs] = malloc(n + 1);
    memcpy(r->msgs[r->nmsgs], b, n);
    r->msgs[r->nmsgs][n] = '\0';
    r->lens[r->nmsgs] = n;
    r->nmsgs++;
    if (r->can_read_budget > 0)
        r->can_read_budget--;
}

static void r_discard(void *arg, enum wsc_discard why, uint64_t total)
{
    struct rec *r = arg;

    r->ndiscards++;
    r->discard_why = why;
    r->discard_total = total;
}

static void r_ping(void *arg)
{
    ((struct rec *)arg)->pings++;
}

static void r_pong(void *arg)
{
    ((struct rec *)arg)->pongs++;
}

static void r_close(void *arg, int code)
{
    ((struct rec *)arg)->close_code = code;
}

static void r_error(void *arg, enum wsc_error kind, int status,
                    const char *what)
{
    struct rec *r = arg;

    r->nerrors++;
    r->err_kind = kind;
    r->err_status = status;
    snprintf(r->err, sizeof(r->err), "%s", what);
}

static const struct wsc_callbacks r_cb = {
    .send = r_send,
    .can_read = r_can_read,
    .on_open = r_open,
    .on_message = r_message,
    .on_discard = r_discard,
    .on_ping = r_ping,
    .on_pong = r_pong,
    .on_close = r_close,
    .on_error = r_error,
};

static void rec_clear(struct rec *r)
{
    int i;

    for (i = 0; i < r->nmsgs; i++)
        free(r->msgs[i]);
    memset(r, 0, sizeof(*r));
    r->can_read_budget = -1;
}

static struct wsc_conn *conn_new(struct rec *r, size_t max_message,
                                 int discard_binary)
{
    struct wsc_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "example.com";
    cfg.hostport = "example.com:8080";
    cfg.path = "/datastream?x=1";
    cfg.user_agent = "test/1";
    cfg.headers = "X-Secret: s3cret\r\n";
    cfg.max_message = max_message;
    cfg.discard_binary = discard_binary;
    return wsc_conn_new(&cfg, &r_cb, r);
}

/* ---- the server's side ---------------------------------------------------- */

/* The answer to the request the codec sent, accepting it (or with
 * status and/or a wrong key). Returns its length. */
static size_t server_answer(const struct rec *r, int status, int wrong_key,
                            char *out, size_t outlen)
{
    char key[64] = "", accept[64];
    const char *k;
    int n;

    k = strstr((const char *)r->sent, "Sec-WebSocket-Key: ");
    assert_non_null(k);
    sscanf(k + 19, "%63[^\r]", key);
    wsc_accept_key(wrong_key ? "AAAAAAAAAAAAAAAAAAAAAA==" : key, accept,
                   sizeof(accept));
    if (status != 101)
        n = snprintf(out, outlen, "HTTP/1.1 %d Unauthorized\r\n"
                     "Content-Length: 0\r\n\r\n", status);
    else
        n = snprintf(out, outlen, "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    return (size_t)n;
}

/* An unmasked server frame. Returns its length. */
static size_t frame(unsigned char *out, int fin, int op, const void *p,
                    size_t n)
{
    size_t h = 0, i;

    out[h++] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        out[h++] = (unsigned char)n;
    } else if (n <= 0xffff) {
        out[h++] = 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    } else {
        out[h++] = 127;
        for (i = 0; i < 8; i++)
            out[h++] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    }
    memcpy(out + h, p, n);
    return h + n;
}

/* Starts c and completes its handshake. */
static void open_conn(struct wsc_conn *c, struct rec *r)
{
    char ans[512];
    size_t n;

    assert_int_equal(wsc_start(c), 0);
    assert_int_equal(wsc_state(c), WSC_HTTP);
    n = server_answer(r, 101, 0, ans, sizeof(ans));
    assert_int_equal(wsc_rx(c, ans, n), 0);
    assert_int_equal(r->opened, 1);
    assert_int_equal(wsc_state(c), WSC_OPEN);
    r->sent_len = 0;
}

/* One client frame from r->sent at *off, unmasked into payload. Returns
 * the opcode. */
static int client_frame(const struct rec *r, size_t *off,
                        unsigned char *payload, size_t *len)
{
    const unsigned char *p = r->sent + *off;
    size_t h = 2, n = p[1] & 0x7f, i;
    const unsigned char *mask;

    assert_true(p[0] & 0x80);          /* FIN */
    assert_true(p[1] & 0x80);          /* masked, as a client must */
    if (n == 126) {
        n = ((size_t)p[2] << 8) | p[3];
        h = 4;
    } else if (n == 127) {
        n = 0;
        for (i = 0; i < 8; i++)
            n = (n << 8) | p[2 + i];
        h = 10;
    }
    mask = p + h;
    for (i = 0; i < n; i++)
        payload[i] = p[h + 4 + i] ^ mask[i & 3];
    *len = n;
    *off += h + 4 + n;
    return p[0] & 0x0f;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_accept_key(void **unused)
{
    char out[64];

    (void)unused;
    /* RFC 6455 section 1.3. */
    wsc_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out, sizeof(out));
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    wsc_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out, 10);
    assert_string_equal(out, "");
}

static void test_upgrade_request(void **unused)
{
    static struct rec r;
    struct wsc_conn *c;
    const char *req;

    (void)unused;
    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    assert_int_equal(wsc_state(c), WSC_IDLE);
    assert_int_equal(wsc_start(c), 0);
    req = (const char *)r.sent;
    assert_true(!strncmp(req, "GET /datastream?x=1 HTTP/1.1\r\n", 30));
    assert_non_null(strstr(req, "\r\nHost: example.com:8080\r\n"));
    assert_non_null(strstr(req, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(req, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(req, "\r\nUser-Agent: test/1\r\n"));
    assert_non_null(strstr(req, "\r\nX-Secret: s3cret\r\n\r\n"));
    assert_int_equal(r.sent_len, strlen(req));
    wsc_conn_free(c);
    rec_clear(&r);
}

/* A stream exercising every frame form: the 101, a short text, a 16-bit
 * length, a 64-bit length, a fragmented message with a ping and a pong
 * between its fragments, a binary message. */
static size_t build_stream(const struct rec *r, unsigned char *out,
                           char *big, size_t bign)
{
    size_t n;

    n = server_answer(r, 101, 0, (char *)out, 512);
    n += frame(out + n, 1, WSC_OP_TEXT, "hello", 5);
    memset(big, 'a', bign);
    n += frame(out + n, 1, WSC_OP_TEXT, big, 300);
    n += frame(out + n, 1, WSC_OP_TEXT, big, bign);
    n += frame(out + n, 0, WSC_OP_TEXT, "frag", 4);
    n += frame(out + n, 1, WSC_OP_PING, "p1", 2);
    n += frame(out + n, 0, WSC_OP_CONT, "ment", 4);
    n += frame(out + n, 1, WSC_OP_PONG, "", 0);
    n += frame(out + n, 1, WSC_OP_CONT, "ed", 2);
    n += frame(out + n, 1, WSC_OP_BINARY, "\x01\x02", 2);
    return n;
}

static void check_stream(struct rec *r, size_t bign)
{
    assert_int_equal(r->opened, 1);
    assert_int_equal(r->nerrors, 0);
    assert_int_equal(r->nmsgs, 5);
    assert_string_equal(r->msgs[0], "hello");
    assert_int_equal(r->lens[1], 300);
    assert_int_equal(r->lens[2], bign);
    assert_string_equal(r->msgs[3], "fragmented");
    assert_int_equal(r->ops[3], WSC_OP_TEXT);
    assert_int_equal(r->ops[4], WSC_OP_BINARY);
    assert_int_equal(r->lens[4], 2);
    assert_int_equal(r->pings, 1);
    assert_int_equal(r->pongs, 1);
}

static void test_split_every_boundary(void **unused)
{
    static unsigned char stream[80000];
    static char big[70000];
    static struct rec r;
    size_t n, cut, bign = 66000;

    (void)unused;
    rec_clear(&r);
    for (cut = 0;; cut++) {
        struct wsc_conn *c = conn_new(&r, 0, 0);

        assert_int_equal(wsc_start(c), 0);
        n = build_stream(&r, stream, big, bign);
        if (cut > n) {
            wsc_conn_free(c);
            break;
        }
        assert_int_equal(wsc_rx(c, stream, cut), 0);
        assert_int_equal(wsc_rx(c, stream + cut, n - cut), 0);
        check_stream(&r, bign);
        wsc_conn_free(c);
        rec_clear(&r);
        /* Past the long frames, every byte; inside them, some. */
        if (cut > 1024 && cut < n - 1024)
            cut += 97;
    }
    wsc_conn_free(NULL);
    rec_clear(&r);
}

static void test_byte_at_a_time(void **unused)
{
    static unsigned char stream[80000];
    static char big[70000];
    static struct rec r;
    struct wsc_conn *c;
    size_t n, i;

    (void)unused;
    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    assert_int_equal(wsc_start(c), 0);
    n = build_stream(&r, stream, big, 66000);
    for (i = 0; i < n; i++)
        assert_int_equal(wsc_rx(c, stream + i, 1), 0);
    check_stream(&r, 66000);
    wsc_conn_free(c);
    rec_clear(&r);
}

static void test_ping_answered_between_fragments(void **unused)
{
    unsigned char buf[256], pl[256];
    static struct rec r;
    struct wsc_conn *c;
    size_t n = 0, off = 0, len;

    (void)unused;
    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    open_conn(c, &r);
    n += frame(buf + n, 0, WSC_OP_TEXT, "ab", 2);
    n += frame(buf + n, 1, WSC_OP_PING, "hi!", 3);
    assert_int_equal(wsc_rx(c, buf, n), 0);
    assert_int_equal(r.nmsgs, 0);
    assert_int_equal(r.pings, 1);
    assert_int_equal(client_frame(&r, &off, pl, &len), WSC_OP_PONG);
    assert_int_equal(len, 3);
    assert_memory_equal(pl, "hi!", 3);
    n = frame(buf, 1, WSC_OP_CONT, "cd", 2);
    assert_int_equal(wsc_rx(c, buf, n), 0);
    assert_int_equal(r.nmsgs, 1);
    assert_string_equal(r.msgs[0], "abcd");
    wsc_conn_free(c);
    rec_clear(&r);
}

static void check_protocol_error(const unsigned char *bytes, size_t n,
                                 const char *what)
{
    unsigned char pl[16];
    static struct rec r;
    struct wsc_conn *c;
    size_t off = 0, len;

    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    open_conn(c, &r);
    assert_int_equal(wsc_rx(c, bytes, n), -1);
    assert_int_equal(r.nerrors, 1);
    assert_int_equal(r.err_kind, WSC_ERR_PROTOCOL);
    assert_string_equal(r.err, what);
    assert_int_equal(r.close_code, 1002);
    assert_int_equal(r.nmsgs, 0);
    assert_true(wsc_closing(c));
    assert_int_equal(wsc_state(c), WSC_CLOSING);
    assert_int_equal(client_frame(&r, &off, pl, &len), WSC_OP_CLOSE);
    assert_int_equal(len, 2);
    assert_int_equal((pl[0] << 8) | pl[1], 1002);
    /* Nothing more is parsed once closing. */
    assert_int_equal(wsc_rx(c, "\x81\x01x", 3), 0);
    assert_int_equal(r.nmsgs, 0);
    wsc_conn_free(c);
    rec_clear(&r);
}

static void test_protocol_errors(void **unused)
{
    unsigned char b[32];
    size_t n;

    (void)unused;
    check_protocol_error((const unsigned char *)"\x81\x85\x01\x02\x03\x04"
                                                "abcde",
                         11, "masked frame from the server");
    check_protocol_error((const unsigned char *)"\xc1\x01x", 3,
                         "reserved bits set in a frame");
    check_protocol_error((const unsigned char *)"\x80\x01x", 3,
                         "continuation without a start");
    n = frame(b, 0, WSC_OP_TEXT, "a", 1);
    n += frame(b + n, 1, WSC_OP_TEXT, "b", 1);
    check_protocol_error(b, n, "new message inside a fragmented one");
    check_protocol_error((const unsigned char *)"\x09\x00", 2,
                         "bad control frame");
    check_protocol_error((const unsigned char *)"\x83\x00", 2,
                         "unknown data opcode");
    check_protocol_error((const unsigned char *)"\x8b\x00", 2,
                         "unknown control opcode");
    check_protocol_error((const unsigned char *)"\x81\x7f\x80\0\0\0\0\0\0\0",
                         10, "frame length out of range");
}

static void test_oversize_and_binary_discarded(void **unused)
{
    static unsigned char buf[4096];
    char big[300];
    static struct rec r;
    struct wsc_conn *c;
    size_t n = 0, i;

    (void)unused;
    memset(big, 'z', sizeof(big));
    rec_clear(&r);
    c = conn_new(&r, 100, 1);
    open_conn(c, &r);
    /* One frame over the limit, then a fragmented one over it. */
    n += frame(buf + n, 1, WSC_OP_TEXT, big, 200);
    n += frame(buf + n, 1, WSC_OP_TEXT, "ok1", 3);
    n += frame(buf + n, 0, WSC_OP_TEXT, big, 60);
    n += frame(buf + n, 1, WSC_OP_PING, "", 0);
    n += frame(buf + n, 0, WSC_OP_CONT, big, 60);
    n += frame(buf + n, 1, WSC_OP_CONT, big, 60);
    n += frame(buf + n, 1, WSC_OP_TEXT, big, 100); /* exactly the limit */
    for (i = 0; i < n; i++)
        assert_int_equal(wsc_rx(c, buf + i, 1), 0);
    assert_int_equal(r.ndiscards, 2);
    assert_int_equal(r.discard_why, WSC_DISCARD_TOO_LARGE);
    assert_int_equal(r.discard_total, 180);
    assert_int_equal(r.pings, 1);
    assert_int_equal(r.nmsgs, 2);
    assert_string_equal(r.msgs[0], "ok1");
    assert_int_equal(r.lens[1], 100);
    /* A binary message is dropped, whatever its size. */
    n = frame(buf, 0, WSC_OP_BINARY, "ab", 2);
    n += frame(buf + n, 1, WSC_OP_CONT, "cd", 2);
    n += frame(buf + n, 1, WSC_OP_TEXT, "ok2", 3);
    assert_int_equal(wsc_rx(c, buf, n), 0);
    assert_int_equal(r.ndiscards, 3);
    assert_int_equal(r.discard_why, WSC_DISCARD_BINARY);
    assert_int_equal(r.discard_total, 4);
    assert_int_equal(r.nmsgs, 3);
    assert_string_equal(r.msgs[2], "ok2");
    wsc_conn_free(c);
    rec_clear(&r);
}

static void check_close(const char *payload, size_t plen, int want_code,
                        size_t want_reply_len)
{
    unsigned char buf[64], pl[16];
    static struct rec r;
    struct wsc_conn *c;
    size_t n, off = 0, len;

    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    open_conn(c, &r);
    n = frame(buf, 1, WSC_OP_CLOSE, payload, plen);
    assert_int_equal(wsc_rx(c, buf, n), -1);
    assert_int_equal(r.close_code, want_code);
    assert_int_equal(r.nerrors, 0);
    assert_true(wsc_closing(c));
    assert_int_equal(client_frame(&r, &off, pl, &len), WSC_OP_CLOSE);
    assert_int_equal(len, want_reply_len);
    if (len)
        assert_int_equal((pl[0] << 8) | pl[1], want_code);
    assert_int_equal(off, r.sent_len);
    /* A second close does nothing. */
    wsc_close(c, 1000);
    assert_int_equal(off, r.sent_len);
    wsc_conn_free(c);
    rec_clear(&r);
}

static void test_close_codes(void **unused)
{
    (void)unused;
    check_close("\x03\xe8", 2, 1000, 2);
    check_close("\x0f\xa1" "bad key", 9, 4001, 2);
    check_close("", 0, 1005, 0);
}

static void check_handshake_failure(const char *answer, const char *want,
                                    int status)
{
    static struct rec r;
    struct wsc_conn *c;

    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    assert_int_equal(wsc_start(c), 0);
    assert_int_equal(wsc_rx(c, answer, strlen(answer)), -1);
    assert_int_equal(r.opened, 0);
    assert_int_equal(r.nerrors, 1);
    assert_int_equal(r.err_kind, WSC_ERR_HANDSHAKE);
    assert_int_equal(r.err_status, status);
    assert_string_equal(r.err, want);
    wsc_conn_free(c);
    rec_clear(&r);
}

static void test_handshake_failures(void **unused)
{
    char ans[512];
    static struct rec r;
    struct wsc_conn *c;
    size_t n;

    (void)unused;
    /* The wrong accept key. */
    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    assert_int_equal(wsc_start(c), 0);
    n = server_answer(&r, 101, 1, ans, sizeof(ans));
    assert_int_equal(wsc_rx(c, ans, n), -1);
    assert_int_equal(r.err_kind, WSC_ERR_HANDSHAKE);
    assert_string_equal(r.err, "wrong Sec-WebSocket-Accept in the 101");
    assert_int_equal(r.opened, 0);
    wsc_conn_free(c);
    rec_clear(&r);

    check_handshake_failure("HTTP/1.1 401 Unauthorized\r\n"
                            "Content-Length: 0\r\n\r\n",
                            "the server answered HTTP/1.1 401 Unauthorized",
                            401);
    check_handshake_failure("SSH-2.0-OpenSSH\r\n\r\n",
                            "not an HTTP answer to the upgrade", 0);
    check_handshake_failure("HTTP/1.1 101 Switching\r\n\r\n",
                            "101 without Upgrade: websocket", 0);
    check_handshake_failure("HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n"
                            "\r\n",
                            "wrong Sec-WebSocket-Accept in the 101", 0);
}

static void test_handshake_too_long(void **unused)
{
    static char junk[20000];
    static struct rec r;
    struct wsc_conn *c;

    (void)unused;
    memset(junk, 'x', sizeof(junk));
    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    assert_int_equal(wsc_start(c), 0);
    assert_int_equal(wsc_rx(c, junk, sizeof(junk)), -1);
    assert_string_equal(r.err, "HTTP answer to the upgrade too long");
    wsc_conn_free(c);
    rec_clear(&r);
}

static void test_backpressure_keeps_bytes(void **unused)
{
    unsigned char buf[1024];
    static struct rec r;
    struct wsc_conn *c;
    size_t n = 0;
    int i;

    (void)unused;
    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    open_conn(c, &r);
    for (i = 0; i < 10; i++) {
        char m[8];

        snprintf(m, sizeof(m), "m%d", i);
        n += frame(buf + n, 1, WSC_OP_TEXT, m, strlen(m));
    }
    r.can_read_budget = 3;
    assert_int_equal(wsc_rx(c, buf, n), 0);
    assert_int_equal(r.nmsgs, 3);
    /* Still paused: nothing more. */
    assert_int_equal(wsc_pump(c), 0);
    assert_int_equal(r.nmsgs, 3);
    r.can_read_budget = 4;
    assert_int_equal(wsc_pump(c), 0);
    assert_int_equal(r.nmsgs, 7);
    r.can_read_budget = -1;
    assert_int_equal(wsc_pump(c), 0);
    assert_int_equal(r.nmsgs, 10);
    for (i = 0; i < 10; i++) {
        char m[8];

        snprintf(m, sizeof(m), "m%d", i);
        assert_string_equal(r.msgs[i], m);
    }
    wsc_conn_free(c);
    rec_clear(&r);
}

static void test_send_masks_every_length(void **unused)
{
    static unsigned char payload[70000], got[70000];
    const size_t lens[] = { 0, 1, 125, 126, 65535, 65536, 70000 };
    static struct rec r;
    struct wsc_conn *c;
    size_t i, off, len;

    (void)unused;
    for (i = 0; i < sizeof(payload); i++)
        payload[i] = (unsigned char)(i * 7);
    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    open_conn(c, &r);
    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        r.sent_len = 0;
        off = 0;
        wsc_send(c, WSC_OP_TEXT, payload, lens[i]);
        assert_int_equal(client_frame(&r, &off, got, &len), WSC_OP_TEXT);
        assert_int_equal(len, lens[i]);
        if (len)
            assert_memory_equal(got, payload, len);
        assert_int_equal(off, r.sent_len);
    }
    wsc_conn_free(c);
    rec_clear(&r);
}

static void test_reset_and_restart(void **unused)
{
    unsigned char buf[64];
    static struct rec r;
    struct wsc_conn *c;
    size_t n;

    (void)unused;
    rec_clear(&r);
    c = conn_new(&r, 0, 0);
    open_conn(c, &r);
    /* Half a fragmented message, then the connection drops. */
    n = frame(buf, 0, WSC_OP_TEXT, "half", 4);
    assert_int_equal(wsc_rx(c, buf, n), 0);
    wsc_reset(c);
    assert_int_equal(wsc_state(c), WSC_IDLE);
    /* Bytes for a reset connection are ignored. */
    assert_int_equal(wsc_rx(c, buf, n), 0);
    r.opened = 0;
    r.sent_len = 0;
    open_conn(c, &r);
    n = frame(buf, 1, WSC_OP_TEXT, "whole", 5);
    assert_int_equal(wsc_rx(c, buf, n), 0);
    assert_int_equal(r.nmsgs, 1);
    assert_string_equal(r.msgs[0], "whole");
    wsc_conn_free(c);
    rec_clear(&r);
}

static void test_tls_ca_file_error(void **unused)
{
    char err[256];
    struct wsc_tls *t;

    (void)unused;
    t = wsc_tls_new(1, "/nonexistent/ca.pem", err, sizeof(err));
    assert_null(t);
    assert_true(!strncmp(err, "/nonexistent/ca.pem: ", 21));
    t = wsc_tls_new(0, NULL, err, sizeof(err));
    assert_non_null(t);
    wsc_tls_free(t);
    wsc_tls_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_upgrade_request),
        cmocka_unit_test(test_split_every_boundary),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_ping_answered_between_fragments),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_oversize_and_binary_discarded),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_handshake_failures),
        cmocka_unit_test(test_handshake_too_long),
        cmocka_unit_test(test_backpressure_keeps_bytes),
        cmocka_unit_test(test_send_masks_every_length),
        cmocka_unit_test(test_reset_and_restart),
        cmocka_unit_test(test_tls_ca_file_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
