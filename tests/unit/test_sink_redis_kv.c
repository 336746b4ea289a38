/*
 * tests/unit/test_sink_redis_kv.c: plugins/sink_redis_kv (plugin
 * redis_kv) against a real redis-server.
 *
 * The plugin's source is compiled into this binary (the Redis library
 * comes from libferry-redis.a) and driven through its descriptor with the
 * fake host. The test starts its own redis-server on a free loopback port
 * with persistence off, flushes it before every test and stops it at the
 * end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "../../plugins/sink_redis_kv/sink_redis_kv.c"

#include "fakehost.h"

/* ---- the redis-server --------------------------------------------------- */

static pid_t kv_pid = -1;
static int kv_port;
static char kv_dir[64];
static char port_str[16];
static char addr_str[64];
static redisContext *rc_;

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int group_setup(void **state)
{
    int i;

    (void)state;
    kv_port = free_port();
    snprintf(port_str, sizeof(port_str), "%d", kv_port);
    snprintf(addr_str, sizeof(addr_str), "127.0.0.1:%d", kv_port);
    snprintf(kv_dir, sizeof(kv_dir), "/tmp/ferry-kv.XXXXXX");
    assert_non_null(mkdtemp(kv_dir));
    signal(SIGPIPE, SIG_IGN);
    kv_pid = fork();
    assert_true(kv_pid >= 0);
    if (kv_pid == 0) {
        int fd = open("/dev/null", O_WRONLY);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("redis-server", "redis-server", "--port", port_str, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
               kv_dir, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 200; i++) {
        redisContext *c = redisConnect("127.0.0.1", kv_port);

        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;

            freeReplyObject(r);
            if (ok) {
                rc_ = c;
                return 0;
            }
        }
        redisFree(c);
        sleep_ms(25);
    }
    fail_msg("redis-server did not start");
    return -1;
}

static int group_teardown(void **state)
{
    int st;

    (void)state;
    fh_reset();
    if (rc_)
        redisFree(rc_);
    if (kv_pid > 0) {
        kill(kv_pid, SIGKILL);
        waitpid(kv_pid, &st, 0);
    }
    rmdir(kv_dir);
    return 0;
}

static void Rdo(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(rc_, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    freeReplyObject(r);
}

static long long Rint(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v;

    va_start(ap, fmt);
    r = redisvCommand(rc_, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Fails unless key holds want (NULL: absent). */
static void assert_key(const char *key, const char *want)
{
    redisReply *r = redisCommand(rc_, "GET %s", key);

    assert_non_null(r);
    if (!want) {
        if (r->type != REDIS_REPLY_NIL)
            fail_msg("%s exists", key);
    } else {
        if (r->type != REDIS_REPLY_STRING)
            fail_msg("%s is missing", key);
        assert_string_equal(r->str, want);
    }
    freeReplyObject(r);
}

/* ---- messages and instances --------------------------------------------- */

static struct ferry_msg msg(uint32_t op, const char *type, const char *id,
                            const char *payload)
{
    struct ferry_msg m;

    memset(&m, 0, sizeof(m));
    m.struct_size = sizeof(m);
    m.op = op;
    m.entity_type = type;
    m.entity_id = id;
    m.order_key = "";
    m.payload = payload;
    m.payload_len = strlen(payload);
    return m;
}

struct inst {
    struct ferry_ctx *ctx;
    void *state;
    void *w;
};

static struct ferry_ctx *base_ctx(void)
{
    struct ferry_ctx *c = fh_ctx_new("kv", ferry_plugin.options);

    fh_opt(c, "address", addr_str);
    fh_opt(c, "writer_lock", "false");
    return c;
}

static void inst_start(struct inst *in, struct ferry_ctx *c)
{
    in->ctx = c;
    assert_int_equal(ferry_plugin.init(&fh_host, c, &in->state), FERRY_OK);
    assert_int_equal(ferry_plugin.start(in->state), FERRY_OK);
    assert_int_equal(ferry_plugin.open(in->state, 0, &in->w), FERRY_OK);
}

static void inst_end(struct inst *in)
{
    ferry_plugin.close(in->w);
    ferry_plugin.stop(in->state);
    ferry_plugin.fini(in->state);
    fh_ctx_free(in->ctx);
}

/* Writes ms[0..n) as one batch with commit (NULL: none). */
static int wbatch(struct inst *in, const struct ferry_msg *ms, size_t n,
                  const struct ferry_pos *commit, int *res)
{
    const struct ferry_msg *p[32];
    int results[32];
    struct ferry_batch b;
    size_t i;
    int rc;

    assert_true(n <= 32);
    memset(&b, 0, sizeof(b));
    for (i = 0; i < n; i++) {
        p[i] = &ms[i];
        results[i] = 12345;
    }
    b.count = (uint32_t)n;
    b.msgs = p;
    b.results = results;
    b.route = "main";
    if (commit)
        b.commit = *commit;
    rc = ferry_plugin.write(in->w, &b);
    if (res)
        memcpy(res, results, n * sizeof(int));
    return rc;
}

static int test_setup(void **state)
{
    (void)state;
    fh_reset();
    Rdo("FLUSHALL");
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void expect_init_error(const char *key, const char *val,
                              const char *needle)
{
    struct ferry_ctx *c = base_ctx();
    void *st = NULL;

    fh_opt(c, key, val);
    assert_int_not_equal(ferry_plugin.init(&fh_host, c, &st), FERRY_OK);
    if (!fh_logged(c, needle))
        fail_msg("no log line with '%s' for %s = %s", needle, key, val);
    fh_ctx_free(c);
}

static void test_init_errors(void **state)
{
    (void)state;
    expect_init_error("key", "app:{kind}:{id}",
                      "key: unknown placeholder '{kind}'");
    expect_init_error("key", "app:{id", "'{' without '}'");
    expect_init_error("key", "", "key: must not be empty");
    expect_init_error("cursor_key", "c:{id}", "unknown placeholder '{id}'");
    expect_init_error("lock_key", "l:{type}", "unknown placeholder");
    expect_init_error("address", "localhost:99999", "address: bad port");
    expect_init_error("cluster_addrs", "h:1", "not supported yet");
    expect_init_error("address", "redis://u:hunter2@127.0.0.1:1",
                      "address: holds a password");
}

/* SET per full/partial, DEL per delete, in batch order, with the cursor
 * in the same transaction; load_position() returns it. */
static void test_set_del_cursor(void **state)
{
    struct ferry_msg ms[] = {
        msg(FERRY_OP_FULL, "company", "c1", "{\"id\":\"c1\",\"v\":1}"),
        msg(FERRY_OP_FULL, "user", "u1", "{\"id\":\"u1\"}"),
        msg(FERRY_OP_PARTIAL, "company", "c1", "{\"v\":2}"),
        msg(FERRY_OP_FULL, "user", "u2", "two"),
        msg(FERRY_OP_DELETE, "user", "u2", "{}"),
        msg(FERRY_OP_DELETE, "user", "u3", ""),
        msg(FERRY_OP_FULL, "user", "u3", "three"),
    };
    struct ferry_pos commit = {1767225600001, 7, 1}, older = {5, 0, 1}, p;
    double rt;
    int res[7], i;
    struct inst in;

    (void)state;
    inst_start(&in, base_ctx());
    assert_int_equal(ferry_plugin.load_position(in.state, &p),
                     FERRY_NOT_FOUND);
    rt = fh_metric_sum("ferry_sink_roundtrips_total", NULL);
    assert_int_equal(wbatch(&in, ms, 7, &commit, res), FERRY_OK);
    for (i = 0; i < 7; i++)
        assert_int_equal(res[i], FERRY_OK);
    /* One round trip for the whole batch. */
    assert_true(fh_metric_sum("ferry_sink_roundtrips_total", NULL) == rt + 1);
    assert_key("company:c1", "{\"v\":2}");
    assert_key("user:u1", "{\"id\":\"u1\"}");
    assert_key("user:u2", NULL);
    assert_key("user:u3", "three");
    assert_key("ferry:kv:replay_cursor", "1767225600001-7");
    assert_true(fh_metric_sum("ferry_sink_operations_total", "op=set") == 5);
    assert_true(fh_metric_sum("ferry_sink_operations_total", "op=del") == 2);
    assert_int_equal(fh_component(in.ctx, "redis"),
                     FERRY_COMPONENT_CONNECTED);

    /* The cursor never moves back. */
    assert_int_equal(wbatch(&in, ms, 1, &older, res), FERRY_OK);
    assert_key("ferry:kv:replay_cursor", "1767225600001-7");
    assert_int_equal(ferry_plugin.checkpoint(in.w, &older), FERRY_OK);
    assert_key("ferry:kv:replay_cursor", "1767225600001-7");
    assert_int_equal(ferry_plugin.load_position(in.state, &p), FERRY_OK);
    assert_true(p.set && p.ms == 1767225600001ull && p.seq == 7);
    inst_end(&in);
}

/* A template, a ttl, and cursor/lock keys of one's own. */
static void test_template_ttl_keys(void **state)
{
    struct ferry_msg ms[] = {
        msg(FERRY_OP_FULL, "company", "c1", "x"),
        msg(FERRY_OP_FULL, "flags", "f:1", "y"),
    };
    struct ferry_pos commit = {9, 1, 1};
    struct ferry_ctx *c = base_ctx();
    struct inst in;
    long long pttl;

    (void)state;
    fh_opt(c, "key", "app:{type}:{id}:v1");
    fh_opt(c, "ttl", "60s");
    fh_opt(c, "cursor_key", "my:{instance}:cur");
    fh_opt(c, "lock_key", "my:{instance}:lock");
    fh_opt(c, "writer_lock", "true");
    inst_start(&in, c);
    assert_key("my:kv:lock", fh_info(c, "writer_lock"));
    assert_int_equal(wbatch(&in, ms, 2, &commit, NULL), FERRY_OK);
    assert_key("app:company:c1:v1", "x");
    assert_key("app:flags:f:1:v1", "y");
    assert_key("my:kv:cur", "9-1");
    pttl = Rint("PTTL %s", "app:company:c1:v1");
    assert_true(pttl > 50000 && pttl <= 60000);
    assert_int_equal(Rint("PTTL %s", "my:kv:cur"), -1);
    inst_end(&in);
    /* stop() released the lock. */
    assert_key("my:kv:lock", NULL);
}

/* Snapshots and control messages are ignored, counted, logged once. */
static void test_ignored(void **state)
{
    struct ferry_msg ms[] = {
        msg(FERRY_OP_SNAPSHOT, "flags", "", "[{\"key\":\"a\"}]"),
        msg(FERRY_OP_LOAD_BEGIN, "control", "", ""),
        msg(FERRY_OP_FULL, "user", "u1", "one"),
        msg(FERRY_OP_SNAPSHOT, "flags", "", "[]"),
        msg(FERRY_OP_LOAD_END, "control", "", ""),
    };
    struct inst in;
    int res[5], i, n = 0;

    (void)state;
    inst_start(&in, base_ctx());
    assert_int_equal(wbatch(&in, ms, 5, NULL, res), FERRY_OK);
    for (i = 0; i < 5; i++)
        assert_int_equal(res[i], FERRY_OK);
    assert_key("user:u1", "one");
    assert_int_equal(Rint("DBSIZE"), 1);
    assert_true(fh_metric_sum("ferry_sink_ignored_total", NULL) == 4);
    for (i = 0; i < fh_nlogs(in.ctx); i++)
        if (strstr(fh_log_line(in.ctx, i), "ignoring"))
            n++;
    assert_int_equal(n, 2);
    inst_end(&in);
}

/* A message Redis refuses (NOPERM on its key) is skipped as poison; the
 * others and the cursor are applied. A message without an id too. */
static void test_poison(void **state)
{
    struct ferry_msg ms[] = {
        msg(FERRY_OP_FULL, "user", "u1", "one"),
        msg(FERRY_OP_FULL, "secret", "s1", "no"),
        msg(FERRY_OP_FULL, "user", "", "no id"),
        msg(FERRY_OP_DELETE, "user", "u2", ""),
        msg(FERRY_OP_FULL, "user", "u3", "three"),
    };
    struct ferry_pos commit = {42, 0, 1};
    struct ferry_ctx *c = base_ctx();
    struct inst in;
    int res[5];

    (void)state;
    Rdo("SET user:u2 old");
    Rdo("ACL SETUSER kv on >s3cret ~user:* ~ferry:* +@all");
    fh_opt(c, "username", "kv");
    fh_opt(c, "password", "s3cret");
    inst_start(&in, c);
    assert_int_equal(wbatch(&in, ms, 5, &commit, res), FERRY_OK);
    assert_int_equal(res[0], FERRY_OK);
    assert_int_equal(res[1], FERRY_ERROR);
    assert_int_equal(res[2], FERRY_ERROR);
    assert_int_equal(res[3], FERRY_OK);
    assert_int_equal(res[4], FERRY_OK);
    assert_key("user:u1", "one");
    assert_key("user:u2", NULL);
    assert_key("user:u3", "three");
    assert_key("secret:s1", NULL);
    assert_key("ferry:kv:replay_cursor", "42-0");
    assert_true(fh_metric_sum("ferry_sink_poison_total", NULL) == 2);
    assert_true(fh_logged(in.ctx, "NOPERM"));
    assert_true(fh_logged(in.ctx, "without entity_id"));
    assert_false(fh_logged(in.ctx, "s3cret"));
    inst_end(&in);
    Rdo("ACL DELUSER kv");
}

/* Redis down: write() asks for a retry and the component says so; back
 * up, the same batch goes through. */
static void test_retry(void **state)
{
    struct ferry_msg ms[] = {msg(FERRY_OP_FULL, "user", "u1", "one")};
    struct ferry_ctx *c = base_ctx();
    struct inst in;
    void *w2 = NULL;
    char msgbuf[256];

    (void)state;
    inst_start(&in, c);
    assert_int_equal(ferry_plugin.probe(in.state, msgbuf, sizeof(msgbuf)),
                     FERRY_OK);
    assert_non_null(strstr(msgbuf, "PING answered PONG"));
    Rdo("CLIENT KILL TYPE normal SKIPME yes");
    /* The killed connection is noticed and replaced within the retry. */
    if (wbatch(&in, ms, 1, NULL, NULL) != FERRY_OK)
        assert_int_equal(wbatch(&in, ms, 1, NULL, NULL), FERRY_OK);
    assert_key("user:u1", "one");
    /* A worker on a dead address retries and marks the component. */
    ferry_plugin.close(in.w);
    ferry_plugin.stop(in.state);
    ferry_plugin.fini(in.state);
    fh_ctx_free(in.ctx);
    c = base_ctx();
    fh_opt(c, "address", "127.0.0.1:1");
    fh_opt(c, "connect_timeout", "200ms");
    assert_int_equal(ferry_plugin.init(&fh_host, c, &in.state), FERRY_OK);
    assert_int_equal(ferry_plugin.open(in.state, 0, &w2), FERRY_OK);
    in.w = w2;
    in.ctx = c;
    assert_int_equal(wbatch(&in, ms, 1, NULL, NULL), FERRY_RETRY);
    assert_int_equal(fh_component(c, "redis"), FERRY_COMPONENT_DISCONNECTED);
    inst_end(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_init_errors, test_setup),
        cmocka_unit_test_setup(test_set_del_cursor, test_setup),
        cmocka_unit_test_setup(test_template_ttl_keys, test_setup),
        cmocka_unit_test_setup(test_ignored, test_setup),
        cmocka_unit_test_setup(test_poison, test_setup),
        cmocka_unit_test_setup(test_retry, test_setup),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
