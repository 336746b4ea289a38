/*
 * tests/unit/test_sink_redis.c: plugins/sink_redis against a real
 * redis-server.
 *
 * The plugin's sources are compiled into this binary and driven through
 * its descriptor with a fake host table. The test starts its own
 * redis-server on a free loopback port (and a unix socket) with
 * persistence off, flushes it before every test, and stops it at the end.
 * Cache values are compared byte for byte with the samples in
 * tests/fixtures/samples (cache version c0ffee01).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "config.h"

#include "../../plugins/sink_redis/apply.c"
#include "../../plugins/sink_redis/flags.c"
#include "../../plugins/sink_redis/fold.c"
#include "../../plugins/sink_redis/keys.c"
#include "../../plugins/sink_redis/load.c"
#include "../../plugins/sink_redis/run.c"
#include "../../plugins/sink_redis/sink.c"

#define SAMPLES "tests/fixtures/samples/"
#define V "c0ffee01"

/* ---- the fake host ------------------------------------------------------ */

#include "fakehost.h"

/* ---- the redis-server --------------------------------------------------- */

static pid_t redis_pid = -1;
static int redis_port;
static char redis_dir[64];
static char redis_sock[128];
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

static void server_start(void)
{
    int i;

    redis_pid = fork();
    assert_true(redis_pid >= 0);
    if (redis_pid == 0) {
        int fd = open("/dev/null", O_WRONLY);

        /* Whatever happens to the test, the server goes with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);

        dup2(fd, 1);
        dup2(fd, 2);
        execlp("redis-server", "redis-server", "--port", port_str, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
               redis_dir, "--unixsocket", redis_sock, "--daemonize", "no",
               (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 200; i++) {
        redisContext *c = redisConnect("127.0.0.1", redis_port);

        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;

            freeReplyObject(r);
            if (ok) {
                rc_ = c;
                return;
            }
        }
        redisFree(c);
        sleep_ms(25);
    }
    fail_msg("redis-server did not start");
}

static void server_stop(void)
{
    int st;

    if (rc_)
        redisFree(rc_);
    rc_ = NULL;
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, &st, 0);
    }
    redis_pid = -1;
}

static int group_setup(void **state)
{
    (void)state;
    redis_port = free_port();
    snprintf(port_str, sizeof(port_str), "%d", redis_port);
    snprintf(addr_str, sizeof(addr_str), "127.0.0.1:%d", redis_port);
    snprintf(redis_dir, sizeof(redis_dir), "/tmp/ferry-sr.XXXXXX");
    assert_non_null(mkdtemp(redis_dir));
    snprintf(redis_sock, sizeof(redis_sock), "%s/redis.sock", redis_dir);
    signal(SIGPIPE, SIG_IGN);
    server_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fh_reset();
    server_stop();
    unlink(redis_sock);
    rmdir(redis_dir);
    return 0;
}

static redisReply *R(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(rc_, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
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

/* GET key as a malloc'd string, NULL when absent. */
static char *get(const char *key)
{
    redisReply *r = R("GET %s", key);
    char *v = NULL;

    if (r->type == REDIS_REPLY_STRING)
        v = strndup(r->str, r->len);
    else
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    return v;
}

static int exists(const char *key)
{
    redisReply *r = R("EXISTS %s", key);
    int e = (int)r->integer;

    freeReplyObject(r);
    return e;
}

static long long dbsize(void)
{
    redisReply *r = R("DBSIZE");
    long long n = r->integer;

    freeReplyObject(r);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void assert_key_file(const char *key, const char *file)
{
    char path[256];
    char *want, *got;

    snprintf(path, sizeof(path), SAMPLES "%s", file);
    want = slurp(path);
    got = get(key);
    if (!got)
        fail_msg("%s is missing", key);
    if (strcmp(want, got) != 0)
        fail_msg("%s differs from %s:\n got  %s\n want %s", key, file, got,
                 want);
    free(want);
    free(got);
}

static void assert_key_value(const char *key, const char *want)
{
    char *got = get(key);

    if (!got)
        fail_msg("%s is missing", key);
    assert_string_equal(got, want);
    free(got);
}

/* ---- messages ----------------------------------------------------------- */

struct tmsg {
    struct ferry_msg m;
    char type[16];
    char id[128];
    char *payload;
    struct ferry_kv kv[8];
    char *kstr[16];
};

static void tmsg_keys_from(struct tmsg *t, json_t *keys)
{
    const char *k;
    json_t *v;

    json_object_foreach(keys, k, v)
    {
        if (t->m.nkeys >= 8 || !json_is_string(v))
            continue;
        t->kstr[2 * t->m.nkeys] = strdup(k);
        t->kstr[2 * t->m.nkeys + 1] = strdup(json_string_value(v));
        t->kv[t->m.nkeys].key = t->kstr[2 * t->m.nkeys];
        t->kv[t->m.nkeys].value = t->kstr[2 * t->m.nkeys + 1];
        t->m.nkeys++;
    }
    t->m.keys = t->m.nkeys ? t->kv : NULL;
}

/* A message of type/op with a JSON payload (data); keys from data.keys. */
static struct tmsg *tmsg_new(const char *type, uint32_t op, const char *id,
                             const char *payload)
{
    struct tmsg *t = calloc(1, sizeof(*t));
    json_t *j;

    t->m.struct_size = sizeof(t->m);
    t->m.op = op;
    snprintf(t->type, sizeof(t->type), "%s", type);
    snprintf(t->id, sizeof(t->id), "%s", id ? id : "");
    t->m.entity_type = t->type;
    t->m.entity_id = t->id;
    t->m.order_key = "";
    t->payload = strdup(payload ? payload : "");
    t->m.payload = t->payload;
    t->m.payload_len = strlen(t->payload);
    j = json_loads(t->payload, JSON_DECODE_ANY, NULL);
    if (json_is_object(j) && strcmp(type, "flags") != 0)
        tmsg_keys_from(t, json_object_get(j, "keys"));
    json_decref(j);
    return t;
}

static void tmsg_pos(struct tmsg *t, uint64_t ms, uint64_t seq)
{
    t->m.pos.ms = ms;
    t->m.pos.seq = seq;
    t->m.pos.set = 1;
}

/* A message from a sample frame, mapped as the datastream source does. */
static struct tmsg *tmsg_file(const char *file)
{
    char path[256];
    json_t *f, *data;
    const char *et, *mt, *sid, *eid;
    uint32_t op = 0;
    const char *type = "";
    char *payload;
    struct tmsg *t;

    snprintf(path, sizeof(path), SAMPLES "%s", file);
    f = json_load_file(path, 0, NULL);
    assert_non_null(f);
    et = json_string_value(json_object_get(f, "entity_type"));
    mt = json_string_value(json_object_get(f, "message_type"));
    eid = json_string_value(json_object_get(f, "entity_id"));
    data = json_object_get(f, "data");
    if (strcmp(et, "rulesengine.Company") == 0)
        type = "company";
    else if (strcmp(et, "rulesengine.User") == 0)
        type = "user";
    else
        type = "flags";
    if (strcmp(mt, "full") == 0)
        op = strcmp(et, "rulesengine.Flags") == 0 ? FERRY_OP_SNAPSHOT
                                                  : FERRY_OP_FULL;
    else if (strcmp(mt, "partial") == 0)
        op = FERRY_OP_PARTIAL;
    else if (strcmp(mt, "delete") == 0)
        op = FERRY_OP_DELETE;
    payload = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    t = tmsg_new(type, op, eid, payload);
    free(payload);
    sid = json_string_value(json_object_get(f, "stream_id"));
    if (sid) {
        unsigned long long ms, seq;

        assert_int_equal(sscanf(sid, "%llu-%llu", &ms, &seq), 2);
        tmsg_pos(t, ms, seq);
    }
    if (json_is_true(
            json_object_get(json_object_get(f, "pagination"), "has_more")))
        t->m.flags |= FERRY_MSG_F_MORE;
    json_decref(f);
    return t;
}

static struct tmsg *tmsg_control(uint32_t op)
{
    return tmsg_new("control", op, "", "");
}

static void tmsg_free(struct tmsg *t)
{
    int i;

    if (!t)
        return;
    for (i = 0; i < 16; i++)
        free(t->kstr[i]);
    free(t->payload);
    free(t);
}

/* ---- sink instances ----------------------------------------------------- */

struct inst {
    struct ferry_ctx *ctx;
    void *state;
};

static struct ferry_ctx *base_ctx(void)
{
    struct ferry_ctx *c = fh_ctx_new("cache", ferry_plugin.options);

    fh_opt(c, "address", addr_str);
    fh_opt(c, "cache_version", V);
    fh_opt(c, "cleanup_interval", "0");
    fh_opt(c, "writer_lock", "false");
    return c;
}

static void inst_init(struct inst *in, struct ferry_ctx *c)
{
    in->ctx = c;
    assert_int_equal(ferry_plugin.init(&fh_host, c, &in->state), FERRY_OK);
}

static void inst_start(struct inst *in, struct ferry_ctx *c)
{
    inst_init(in, c);
    assert_int_equal(ferry_plugin.start(in->state), FERRY_OK);
}

static void inst_end(struct inst *in)
{
    ferry_plugin.stop(in->state);
    ferry_plugin.fini(in->state);
    fh_ctx_free(in->ctx);
}

static void *wopen(struct inst *in, unsigned n)
{
    void *w = NULL;

    assert_int_equal(ferry_plugin.open(in->state, n, &w), FERRY_OK);
    return w;
}

/* Writes msgs as one batch; results into res (may be NULL). */
static int wbatch(void *w, struct tmsg **msgs, size_t n,
                  const struct ferry_pos *commit, int *res)
{
    const struct ferry_msg *ms[64];
    int results[64];
    struct ferry_batch b;
    size_t i;
    int rc;

    assert_true(n <= 64);
    memset(&b, 0, sizeof(b));
    for (i = 0; i < n; i++) {
        ms[i] = &msgs[i]->m;
        results[i] = 12345;
    }
    b.count = (uint32_t)n;
    b.msgs = ms;
    b.results = results;
    b.route = "main";
    if (commit)
        b.commit = *commit;
    rc = ferry_plugin.write(w, &b);
    if (res)
        memcpy(res, results, n * sizeof(int));
    return rc;
}

/* Writes one message alone and expects FERRY_OK and an OK result. */
static void w1(void *w, struct tmsg *t)
{
    int res = -1;

    assert_int_equal(wbatch(w, &t, 1, NULL, &res), FERRY_OK);
    assert_int_equal(res, FERRY_OK);
}

static void w1_file(void *w, const char *file)
{
    struct tmsg *t = tmsg_file(file);

    w1(w, t);
    tmsg_free(t);
}

static int test_setup(void **state)
{
    (void)state;
    fh_reset();
    Rdo("FLUSHALL");
    return 0;
}

/* ---- tests: configuration ----------------------------------------------- */

static void test_endpoint_parse(void **state)
{
    struct redis_endpoint ep;
    char err[256];

    (void)state;
    assert_int_equal(
        redis_endpoint_parse("cache.local:6380", &ep, err, sizeof(err)), 0);
    assert_string_equal(ep.host, "cache.local");
    assert_int_equal(ep.port, 6380);
    redis_endpoint_release(&ep);

    assert_int_equal(redis_endpoint_parse("localhost", &ep, err, sizeof(err)),
                     0);
    assert_int_equal(ep.port, 6379);
    redis_endpoint_release(&ep);

    assert_int_equal(redis_endpoint_parse("[::1]:7000", &ep, err, sizeof(err)),
                     0);
    assert_string_equal(ep.host, "::1");
    assert_int_equal(ep.port, 7000);
    redis_endpoint_release(&ep);

    assert_int_equal(redis_endpoint_parse("redis://al%40x:p%3Ass@h:1/7", &ep,
                                          err, sizeof(err)),
                     0);
    assert_string_equal(ep.username, "al@x");
    assert_string_equal(ep.password, "p:ss");
    assert_string_equal(ep.host, "h");
    assert_int_equal(ep.port, 1);
    assert_int_equal(ep.db, 7);
    redis_endpoint_release(&ep);

    assert_int_equal(
        redis_endpoint_parse("redis://:secret@h", &ep, err, sizeof(err)), 0);
    assert_null(ep.username);
    assert_string_equal(ep.password, "secret");
    assert_int_equal(ep.db, -1);
    redis_endpoint_release(&ep);

    assert_int_equal(
        redis_endpoint_parse("unix:/run/redis.sock", &ep, err, sizeof(err)), 0);
    assert_string_equal(ep.path, "/run/redis.sock");
    redis_endpoint_release(&ep);

    assert_int_equal(redis_endpoint_parse("h:0", &ep, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "port"));
    redis_endpoint_release(&ep);
    assert_int_equal(redis_endpoint_parse("h:70000", &ep, err, sizeof(err)),
                     -1);
    redis_endpoint_release(&ep);
    assert_int_equal(redis_endpoint_parse("rediss://h", &ep, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "TLS"));
    redis_endpoint_release(&ep);
    assert_int_equal(redis_endpoint_parse("http://h", &ep, err, sizeof(err)),
                     -1);
    redis_endpoint_release(&ep);
    assert_int_equal(redis_endpoint_parse("redis://h/x", &ep, err, sizeof(err)),
                     -1);
    redis_endpoint_release(&ep);
    assert_int_equal(
        redis_endpoint_parse("redis://:p%4@h", &ep, err, sizeof(err)), -1);
    assert_null(strstr(err, "p%4"));
    redis_endpoint_release(&ep);
    assert_int_equal(redis_endpoint_parse("::1:5", &ep, err, sizeof(err)), -1);
    redis_endpoint_release(&ep);
}

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
    expect_init_error("cluster_addrs", "10.0.0.1:7000,10.0.0.2:7000",
                      "cluster_addrs: Redis Cluster is not supported yet");
    expect_init_error("cache_version", "a:b", "must not contain ':'");
    expect_init_error("cache_version", "", "cache_version: must not be");
    expect_init_error("cache_version", "a b", "space");
    expect_init_error("key_prefix", "", "key_prefix: must not be empty");
    expect_init_error("address", "localhost:99999", "address: bad port");
    expect_init_error("address", "rediss://x", "TLS");
    expect_init_error("address", "redis://u:hunter2@127.0.0.1:1",
                      "address: holds a password");
    expect_init_error("cluster_addrs", "h:1", "not supported yet");
    {
        struct ferry_ctx *c = base_ctx();
        void *st = NULL;

        fh_opt(c, "address", "redis://127.0.0.1/2");
        fh_opt(c, "db", "3");
        assert_int_not_equal(ferry_plugin.init(&fh_host, c, &st), FERRY_OK);
        assert_true(fh_logged(c, "db: 3, but address names database 2"));
        fh_ctx_free(c);
    }
}

static void test_init_publishes_version(void **state)
{
    struct ferry_ctx *c = base_ctx();
    struct inst in;

    (void)state;
    /* The db conflict check above needs an address with a db. */
    fh_opt(c, "address", "redis://127.0.0.1:1/2");
    fh_opt(c, "db", "2");
    inst_init(&in, c);
    assert_string_equal(fh_info(c, "cache_version"), V);
    assert_int_equal(fh_ready(c), 0);
    assert_string_equal(((struct redis_sink *)in.state)->in.opt.where, "127.0.0.1:1");
    inst_end(&in);

    c = fh_ctx_new("cache", ferry_plugin.options);
    inst_init(&in, c);
    assert_string_equal(fh_info(c, "cache_version"), REDIS_DEFAULT_VERSION);
    inst_end(&in);
}

/* ---- tests: the sample cache -------------------------------------------- */

static void test_samples_exact(void **state)
{
    struct inst in;
    void *w;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w1_file(w, "msg-01-flags-full.json");
    w1_file(w, "msg-02-company-full.json");
    w1_file(w, "msg-03-user-full.json");

    assert_key_file("schematic:flags:" V ":plan-flag",
                    "cache-flag-plan-flag.json");
    assert_key_file("schematic:flags:" V ":trait-flag",
                    "cache-flag-trait-flag.json");
    assert_key_file("schematic:flags:" V ":usage-flag",
                    "cache-flag-usage-flag.json");
    assert_key_file("schematic:flags:" V ":override-flag",
                    "cache-flag-override-flag.json");
    assert_key_file("schematic:flags:" V ":user-flag",
                    "cache-flag-user-flag.json");
    assert_key_file("schematic:flags:" V ":default-on-flag",
                    "cache-flag-default-on-flag.json");
    assert_key_file("schematic:company:" V ":comp_acme",
                    "cache-company-comp_acme.json");
    assert_key_file("schematic:user:" V ":user_ada",
                    "cache-user-user_ada.json");
    assert_key_value("schematic:company:" V ":id:acme", "\"comp_acme\"");
    assert_key_value("schematic:company:" V ":domain:acme.test",
                     "\"comp_acme\"");
    assert_key_value("schematic:user:" V ":id:ada", "\"user_ada\"");
    assert_key_value("schematic:user:" V ":email:ada@acme.test",
                     "\"user_ada\"");
    /* Nothing else: 6 flags + 3 company keys + 3 user keys. */
    assert_int_equal(dbsize(), 12);
    {
        redisReply *r = R("PTTL schematic:company:" V ":comp_acme");

        assert_int_equal(r->integer, -1);
        freeReplyObject(r);
    }
    assert_true(fh_metric_sum("ferry_sink_operations_total", "op=set") >= 12);
    assert_true(fh_metric_sum("ferry_sink_operations_total", "op=mget") >= 2);
    ferry_plugin.close(w);
    inst_end(&in);
}

/* The same samples in one batch give the same cache. */
static void test_samples_one_batch(void **state)
{
    struct tmsg *t[3] = {tmsg_file("msg-01-flags-full.json"),
                         tmsg_file("msg-02-company-full.json"),
                         tmsg_file("msg-03-user-full.json")};
    int res[3];
    struct inst in;
    void *w;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    assert_int_equal(wbatch(w, t, 3, NULL, res), FERRY_OK);
    assert_int_equal(res[0], FERRY_OK);
    assert_int_equal(res[2], FERRY_OK);
    assert_key_file("schematic:company:" V ":comp_acme",
                    "cache-company-comp_acme.json");
    assert_key_file("schematic:user:" V ":user_ada",
                    "cache-user-user_ada.json");
    assert_key_file("schematic:flags:" V ":default-on-flag",
                    "cache-flag-default-on-flag.json");
    assert_int_equal(dbsize(), 12);
    ferry_plugin.close(w);
    inst_end(&in);
    tmsg_free(t[0]);
    tmsg_free(t[1]);
    tmsg_free(t[2]);
}

/* ---- tests: merges ------------------------------------------------------ */

static json_t *get_json(const char *key)
{
    char *s = get(key);
    json_t *j;

    assert_non_null(s);
    j = json_loads(s, 0, NULL);
    assert_non_null(j);
    free(s);
    return j;
}

static void check_after_msg04(void)
{
    json_t *c = get_json("schematic:company:" V ":comp_acme");
    json_t *ms = json_object_get(c, "metrics");
    json_t *ents = json_object_get(c, "entitlements");
    json_t *api = json_array_get(ents, 0), *ai = json_array_get(ents, 1);

    assert_int_equal(json_array_size(ms), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(ms, 0), "value")),
        1200);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(ms, 1), "period")),
        "all_time");
    assert_true(
        json_real_value(json_object_get(json_object_get(c, "credit_balances"),
                                        "bcrd_ai_tokens")) == 1234.5);
    assert_string_equal(json_string_value(json_object_get(api, "feature_id")),
                        "feat_api");
    assert_int_equal(json_integer_value(json_object_get(api, "usage")), 1200);
    assert_true(json_is_null(json_object_get(api, "credit_remaining")));
    assert_true(json_number_value(json_object_get(ai, "credit_remaining")) ==
                1234.5);
    assert_true(json_is_null(json_object_get(ai, "usage")));
    assert_true(json_number_value(json_object_get(ai, "credit_total")) == 2000);
    assert_true(json_number_value(json_object_get(ai, "credit_used")) == 500);
    json_decref(c);
}

static void test_merge_metrics_credits(void **state)
{
    struct tmsg *t[2] = {tmsg_file("msg-02-company-full.json"),
                         tmsg_file("msg-04-company-partial-metrics-"
                                   "credits.json")};
    struct inst in;
    void *w;
    char *sep, *folded;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    /* Two batches: the partial merges into the stored company. */
    w1(w, t[0]);
    w1(w, t[1]);
    check_after_msg04();
    sep = get("schematic:company:" V ":comp_acme");
    /* One batch: the partial merges into the in-batch full (7.6). */
    Rdo("FLUSHALL");
    assert_int_equal(wbatch(w, t, 2, NULL, NULL), FERRY_OK);
    folded = get("schematic:company:" V ":comp_acme");
    assert_non_null(folded);
    assert_string_equal(sep, folded);
    check_after_msg04();
    free(sep);
    free(folded);
    ferry_plugin.close(w);
    inst_end(&in);
    tmsg_free(t[0]);
    tmsg_free(t[1]);
}

static void test_merge_keys_traits(void **state)
{
    struct inst in;
    json_t *c;
    void *w;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w1_file(w, "msg-02-company-full.json");
    w1_file(w, "msg-05-company-partial-traits-keys-plans.json");
    c = get_json("schematic:company:" V ":comp_acme");
    assert_int_equal(json_object_size(json_object_get(c, "keys")), 3);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c, "keys"), "slug")),
        "acme-inc");
    assert_int_equal(json_array_size(json_object_get(c, "traits")), 1);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(c, "traits"), 0), "value")),
        "retail");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(c, "plan_ids"), 0)),
        "plan_free");
    assert_true(json_is_null(json_object_get(c, "base_plan_id")));
    json_decref(c);
    assert_key_value("schematic:company:" V ":slug:acme-inc", "\"comp_acme\"");
    assert_key_value("schematic:company:" V ":id:acme", "\"comp_acme\"");
    assert_key_value("schematic:company:" V ":domain:acme.test",
                     "\"comp_acme\"");

    w1_file(w, "msg-03-user-full.json");
    w1_file(w, "msg-06-user-partial-traits.json");
    c = get_json("schematic:user:" V ":user_ada");
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(c, "traits"), 0), "value")),
        "viewer");
    json_decref(c);
    ferry_plugin.close(w);
    inst_end(&in);
}

static void test_partial_without_base(void **state)
{
    struct inst in;
    void *w;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    /* Applied as a no-op: OK, and nothing written. */
    w1_file(w, "msg-04-company-partial-metrics-credits.json");
    w1_file(w, "msg-06-user-partial-traits.json");
    assert_int_equal(dbsize(), 0);
    ferry_plugin.close(w);
    inst_end(&in);
}

/* ---- tests: lookups and deletes ----------------------------------------- */

static const char comp_v1[] =
    "{\"id\":\"Comp_X\",\"account_id\":\"a\",\"environment_id\":\"e\","
    "\"keys\":{\"Domain\":\"X.Test\",\"id\":\"x1\"}}";
static const char comp_v2[] =
    "{\"id\":\"Comp_X\",\"account_id\":\"a\",\"environment_id\":\"e\","
    "\"keys\":{\"id\":\"x2\"}}";

static void test_stale_lookups(void **state)
{
    struct tmsg *a = tmsg_new("company", FERRY_OP_FULL, "Comp_X", comp_v1);
    struct tmsg *b = tmsg_new("company", FERRY_OP_FULL, "Comp_X", comp_v2);
    struct inst in;
    void *w;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w1(w, a);
    /* ID keys keep their case; lookups are lower-cased (6.1). */
    assert_true(exists("schematic:company:" V ":Comp_X"));
    assert_key_value("schematic:company:" V ":domain:x.test", "\"Comp_X\"");
    assert_key_value("schematic:company:" V ":id:x1", "\"Comp_X\"");
    w1(w, b);
    assert_false(exists("schematic:company:" V ":domain:x.test"));
    assert_false(exists("schematic:company:" V ":id:x1"));
    assert_key_value("schematic:company:" V ":id:x2", "\"Comp_X\"");
    assert_int_equal(dbsize(), 2);
    /* Escapes in keys (Go writes & as \u0026) and non-ASCII letters. */
    {
        struct tmsg *e = tmsg_new(
            "user", FERRY_OP_FULL, "u\"1",
            "{\"id\":\"u\\\"1\",\"account_id\":\"a\",\"environment_id\":"
            "\"e\",\"keys\":{\"Email\":\"A\\u0026B@X.Test\","
            "\"Name\":\"\xc3\x89MILE\"}}");

        w1(w, e);
        assert_key_value("schematic:user:" V ":email:a&b@x.test", "\"u\\\"1\"");
        assert_key_value("schematic:user:" V ":name:\xc3\xa9mile",
                         "\"u\\\"1\"");
        assert_true(exists("schematic:user:" V ":u\"1"));
        tmsg_free(e);
    }
    ferry_plugin.close(w);
    inst_end(&in);
    tmsg_free(a);
    tmsg_free(b);
}

static void test_no_keys_not_cached(void **state)
{
    struct tmsg *a = tmsg_new(
        "user", FERRY_OP_FULL, "u1",
        "{\"id\":\"u1\",\"account_id\":\"a\",\"environment_id\":\"e\"}");
    struct inst in;
    void *w;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w1(w, a);
    assert_int_equal(dbsize(), 0);
    ferry_plugin.close(w);
    inst_end(&in);
    tmsg_free(a);
}

static void test_deletes(void **state)
{
    struct tmsg *slug = tmsg_file("msg-05-company-partial-traits-keys-"
                                  "plans.json");
    struct inst in;
    void *w;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w1_file(w, "msg-02-company-full.json");
    w1(w, slug);
    w1_file(w, "msg-03-user-full.json");
    assert_int_equal(dbsize(), 7);
    /* The delete names id + domain; the cached slug lookup goes too. */
    w1_file(w, "msg-07-company-delete.json");
    w1_file(w, "msg-08-user-delete.json");
    assert_int_equal(dbsize(), 0);

    /* delete then full in one batch re-creates the entity. */
    {
        struct tmsg *t[2] = {tmsg_file("msg-07-company-delete.json"),
                             tmsg_file("msg-02-company-full.json")};

        assert_int_equal(wbatch(w, t, 2, NULL, NULL), FERRY_OK);
        assert_key_file("schematic:company:" V ":comp_acme",
                        "cache-company-comp_acme.json");
        assert_int_equal(dbsize(), 3);
        tmsg_free(t[0]);
        tmsg_free(t[1]);
    }
    ferry_plugin.close(w);
    inst_end(&in);
    tmsg_free(slug);
}

/* ---- tests: flags ------------------------------------------------------- */

static void test_single_flags(void **state)
{
    struct inst in;
    void *w;

    (void)state;
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w1_file(w, "msg-09-flag-single-full.json");
    assert_key_file("schematic:flags:" V ":plan-flag",
                    "cache-flag-plan-flag.json");
    w1_file(w, "msg-01-flags-full.json");
    w1_file(w, "msg-10-flag-single-delete.json");
    assert_false(exists("schematic:flags:" V ":trait-flag"));
    assert_int_equal(dbsize(), 5);
    /* A delete without a key falls back to the id (7.5). */
    {
        struct tmsg *d =
            tmsg_new("flags", FERRY_OP_DELETE, "", "{\"id\":\"User-Flag\"}");
        struct tmsg *bad =
            tmsg_new("flags", FERRY_OP_FULL, "", "{\"id\":\"f\",\"rules\":[]}");
        int res = 0;

        w1(w, d);
        assert_false(exists("schematic:flags:" V ":user-flag"));
        /* A single flag that does not normalise is a poison message. */
        assert_int_equal(wbatch(w, &bad, 1, NULL, &res), FERRY_OK);
        assert_int_equal(res, FERRY_ERROR);
        assert_int_equal(dbsize(), 4);
        tmsg_free(d);
        tmsg_free(bad);
    }
    ferry_plugin.close(w);
    inst_end(&in);
}

static void test_snapshot_eviction(void **state)
{
    struct inst in;
    void *w;

    (void)state;
    Rdo("SET schematic:flags:" V ":stale-flag x");
    Rdo("SET schematic:flags:" V ":odd:extra x");
    Rdo("SET schematic:flags:deadbeef:stale-flag x");
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w1_file(w, "msg-01-flags-full.json");
    assert_false(exists("schematic:flags:" V ":stale-flag"));
    /* Extra segments and other versions are not this step's business. */
    assert_true(exists("schematic:flags:" V ":odd:extra"));
    assert_true(exists("schematic:flags:deadbeef:stale-flag"));
    assert_key_file("schematic:flags:" V ":usage-flag",
                    "cache-flag-usage-flag.json");
    assert_int_equal(
        fh_metric_sum("ferry_sink_evicted_total", "reason=snapshot"), 1);
    assert_true(fh_metric_sum("ferry_sink_operations_total", "op=scan") >= 1);

    /* An empty snapshot deletes nothing (7.4). */
    {
        struct tmsg *e = tmsg_new("flags", FERRY_OP_SNAPSHOT, "", "[]");

        w1(w, e);
        assert_true(exists("schematic:flags:" V ":plan-flag"));
        tmsg_free(e);
    }
    /* A snapshot element that does not normalise is skipped and counted,
     * and keeps its cached value: its key still reads, so it is not
     * evicted, while a flag the snapshot does not name is. */
    {
        struct tmsg *e = tmsg_new(
            "flags", FERRY_OP_SNAPSHOT, "",
            "[{\"id\":\"f1\",\"key\":\"Plan-Flag\",\"rules\":7},"
            "{\"id\":\"f2\",\"rules\":7},"
            "{\"id\":\"f3\",\"key\":\"new-flag\"}]");
        double poison = fh_metric_sum("ferry_sink_poison_total", "");

        Rdo("SET schematic:flags:" V ":gone-flag x");
        w1(w, e);
        assert_key_file("schematic:flags:" V ":plan-flag",
                        "cache-flag-plan-flag.json");
        assert_true(exists("schematic:flags:" V ":new-flag"));
        assert_false(exists("schematic:flags:" V ":gone-flag"));
        assert_int_equal(fh_metric_sum("ferry_sink_poison_total", ""),
                         poison + 2);
        tmsg_free(e);
    }
    ferry_plugin.close(w);
    inst_end(&in);
}

static void test_paginated_snapshot(void **state)
{
    struct inst in;
    void *w, *w2;
    struct tmsg *p1 = tmsg_file("msg-14-flags-page-1-of-2.json");
    struct tmsg *p2 = tmsg_file("msg-15-flags-page-2-of-2.json");
    struct tmsg *mid = tmsg_new(
        "flags", FERRY_OP_FULL, "new-flag",
        "{\"id\":\"f_new\",\"account_id\":\"a\",\"environment_id\":\"e\","
        "\"key\":\"New-Flag\",\"rules\":[],\"default_value\":true}");

    (void)state;
    assert_true(p1->m.flags & FERRY_MSG_F_MORE);
    assert_false(p2->m.flags & FERRY_MSG_F_MORE);
    Rdo("SET schematic:flags:" V ":stale-flag x");
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w2 = wopen(&in, 1);
    w1(w, p1);
    /* Page 1 is written; nothing is deleted before the last page. */
    assert_key_file("schematic:flags:" V ":plan-flag",
                    "cache-flag-plan-flag.json");
    assert_true(exists("schematic:flags:" V ":stale-flag"));
    assert_false(exists("schematic:flags:" V ":user-flag"));
    /* A single-flag change between pages is current: kept. */
    w1(w2, mid);
    w1(w2, p2);
    assert_false(exists("schematic:flags:" V ":stale-flag"));
    assert_true(exists("schematic:flags:" V ":new-flag"));
    assert_key_file("schematic:flags:" V ":plan-flag",
                    "cache-flag-plan-flag.json");
    assert_key_file("schematic:flags:" V ":user-flag",
                    "cache-flag-user-flag.json");
    assert_key_file("schematic:flags:" V ":default-on-flag",
                    "cache-flag-default-on-flag.json");
    assert_int_equal(dbsize(), 7);
    ferry_plugin.close(w);
    ferry_plugin.close(w2);
    inst_end(&in);
    tmsg_free(p1);
    tmsg_free(p2);
    tmsg_free(mid);
}

/* ---- tests: the replay cursor ------------------------------------------- */

static void test_cursor_monotonic(void **state)
{
    struct tmsg *a = tmsg_file("msg-02-company-full.json");
    struct tmsg *u = tmsg_file("msg-03-user-full.json");
    struct ferry_pos p5 = {1767225600005, 0, 1}, p3 = {1767225600003, 7, 1};
    struct ferry_pos p9 = {9, 0, 1}, p10 = {10, 0, 1};
    struct inst in;
    void *w1c, *w2c;

    (void)state;
    inst_start(&in, base_ctx());
    w1c = wopen(&in, 0);
    w2c = wopen(&in, 1);
    /* Two workers finish out of order: 5 then 3. */
    assert_int_equal(wbatch(w1c, &a, 1, &p5, NULL), FERRY_OK);
    assert_key_value("schematic:datastream:replay_cursor", "1767225600005-0");
    assert_int_equal(wbatch(w2c, &u, 1, &p3, NULL), FERRY_OK);
    assert_key_value("schematic:datastream:replay_cursor", "1767225600005-0");
    assert_true(exists("schematic:user:" V ":user_ada"));
    /* checkpoint() compares too. */
    assert_int_equal(ferry_plugin.checkpoint(w2c, &p3), FERRY_OK);
    assert_key_value("schematic:datastream:replay_cursor", "1767225600005-0");
    /* A batch with only a commit position. */
    p5.seq = 3;
    assert_int_equal(wbatch(w2c, NULL, 0, &p5, NULL), FERRY_OK);
    assert_key_value("schematic:datastream:replay_cursor", "1767225600005-3");
    /* Numeric, not string, comparison: 10 > 9. */
    Rdo("SET schematic:datastream:replay_cursor 9-0");
    assert_int_equal(ferry_plugin.checkpoint(w1c, &p10), FERRY_OK);
    assert_key_value("schematic:datastream:replay_cursor", "10-0");
    assert_int_equal(ferry_plugin.checkpoint(w1c, &p9), FERRY_OK);
    assert_key_value("schematic:datastream:replay_cursor", "10-0");
    /* 64-bit positions survive the Lua comparison. */
    {
        struct ferry_pos big = {UINT64_MAX, UINT64_MAX - 1, 1};
        struct ferry_pos big2 = {UINT64_MAX, UINT64_MAX, 1};

        assert_int_equal(ferry_plugin.checkpoint(w1c, &big), FERRY_OK);
        assert_key_value("schematic:datastream:replay_cursor",
                         "18446744073709551615-18446744073709551614");
        assert_int_equal(ferry_plugin.checkpoint(w1c, &big2), FERRY_OK);
        assert_key_value("schematic:datastream:replay_cursor",
                         "18446744073709551615-18446744073709551615");
        assert_int_equal(ferry_plugin.checkpoint(w1c, &p10), FERRY_OK);
        assert_key_value("schematic:datastream:replay_cursor",
                         "18446744073709551615-18446744073709551615");
    }
    ferry_plugin.close(w1c);
    ferry_plugin.close(w2c);
    inst_end(&in);
    tmsg_free(a);
    tmsg_free(u);
}

static void test_load_position(void **state)
{
    struct ferry_pos p = {0, 0, 0};
    struct inst in;

    (void)state;
    /* No cursor. */
    inst_start(&in, base_ctx());
    assert_int_equal(ferry_plugin.load_position(in.state, &p), FERRY_NOT_FOUND);
    assert_int_equal(fh_ready(in.ctx), 0);
    inst_end(&in);

    /* A cursor the marker does not vouch for: full load. */
    Rdo("SET schematic:datastream:replay_cursor 1767225600004-2");
    Rdo("SET schematic:datastream:load_complete deadbeef");
    inst_start(&in, base_ctx());
    assert_int_equal(ferry_plugin.load_position(in.state, &p), FERRY_NOT_FOUND);
    assert_int_equal(fh_ready(in.ctx), 0);
    assert_true(fh_logged(in.ctx, "discarded"));
    inst_end(&in);

    /* Vouched for: the position, and ready at once. */
    Rdo("SET schematic:datastream:load_complete " V);
    inst_start(&in, base_ctx());
    assert_int_equal(ferry_plugin.load_position(in.state, &p), FERRY_OK);
    assert_int_equal(p.set, 1);
    assert_true(p.ms == 1767225600004ull && p.seq == 2);
    assert_int_equal(fh_ready(in.ctx), 1);
    inst_end(&in);

    /* Garbage cursor. */
    Rdo("SET schematic:datastream:replay_cursor nonsense");
    inst_start(&in, base_ctx());
    assert_int_equal(ferry_plugin.load_position(in.state, &p), FERRY_NOT_FOUND);
    inst_end(&in);
}

/* ---- tests: load, readiness, reload ------------------------------------- */

static void test_load_eviction_and_ready(void **state)
{
    struct tmsg *begin = tmsg_control(FERRY_OP_LOAD_BEGIN);
    struct tmsg *end = tmsg_control(FERRY_OP_LOAD_END);
    struct tmsg *acme = tmsg_file("msg-02-company-full.json");
    struct tmsg *x = tmsg_new("company", FERRY_OP_FULL, "Comp_X", comp_v1);
    struct inst in;
    void *w, *w2;

    (void)state;
    acme->m.flags |= FERRY_MSG_F_LOAD;
    x->m.flags |= FERRY_MSG_F_LOAD;
    acme->m.pos.set = 0;
    /* Left over from before the load. */
    Rdo("SET schematic:company:" V ":comp_old x");
    Rdo("SET schematic:company:" V ":id:old \"comp_old\"");
    Rdo("SET schematic:company:" V ":a:b:c x");
    Rdo("SET schematic:company:deadbeef:comp_old x");
    Rdo("SET schematic:user:" V ":user_old x");
    Rdo("SET schematic:user:" V ":id:old \"user_old\"");

    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w2 = wopen(&in, 1);
    assert_int_equal(fh_ready(in.ctx), 0);
    w1(w, begin);
    /* Load entities arrive on every worker. */
    w1(w, acme);
    w1(w2, x);
    w1(w2, end);
    assert_false(exists("schematic:company:" V ":comp_old"));
    assert_false(exists("schematic:company:" V ":id:old"));
    assert_true(exists("schematic:company:" V ":a:b:c"));
    assert_true(exists("schematic:company:deadbeef:comp_old"));
    /* No user was loaded: the user halves do not run. */
    assert_true(exists("schematic:user:" V ":user_old"));
    assert_true(exists("schematic:user:" V ":id:old"));
    assert_key_file("schematic:company:" V ":comp_acme",
                    "cache-company-comp_acme.json");
    assert_true(exists("schematic:company:" V ":Comp_X"));
    assert_true(exists("schematic:company:" V ":domain:x.test"));
    assert_int_equal(fh_metric_sum("ferry_sink_evicted_total", "reason=load"),
                     2);
    /* Load done but no snapshot yet: not complete. */
    assert_false(exists("schematic:datastream:load_complete"));
    assert_int_equal(fh_ready(in.ctx), 0);
    w1_file(w, "msg-01-flags-full.json");
    assert_key_value("schematic:datastream:load_complete", V);
    assert_int_equal(fh_ready(in.ctx), 1);

    /* Reload: cursor and marker go; readiness stays. */
    Rdo("SET schematic:datastream:replay_cursor 5-0");
    {
        struct tmsg *rl = tmsg_control(FERRY_OP_RELOAD);
        struct ferry_pos p7 = {7, 0, 1};

        /* The batch carries a commit position; it must not come back. */
        assert_int_equal(wbatch(w, &rl, 1, &p7, NULL), FERRY_OK);
        tmsg_free(rl);
    }
    assert_false(exists("schematic:datastream:replay_cursor"));
    assert_false(exists("schematic:datastream:load_complete"));
    assert_int_equal(fh_ready(in.ctx), 1);
    ferry_plugin.close(w);
    ferry_plugin.close(w2);
    inst_end(&in);

    /* Snapshot first, then the load: complete at LOAD_END. */
    Rdo("FLUSHALL");
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    w1(w, begin);
    w1_file(w, "msg-01-flags-full.json");
    assert_false(exists("schematic:datastream:load_complete"));
    w1(w, acme);
    assert_int_equal(fh_ready(in.ctx), 0);
    w1(w, end);
    assert_key_value("schematic:datastream:load_complete", V);
    assert_int_equal(fh_ready(in.ctx), 1);
    ferry_plugin.close(w);
    inst_end(&in);

    tmsg_free(begin);
    tmsg_free(end);
    tmsg_free(acme);
    tmsg_free(x);
}

/* ---- tests: poison ------------------------------------------------------ */

static void test_poison_normalisation(void **state)
{
    struct tmsg *t[3] = {
        tmsg_new("company", FERRY_OP_FULL, "Comp_X", comp_v1),
        tmsg_new("company", FERRY_OP_FULL, "c_bad",
                 "{\"id\":\"c_bad\",\"account_id\":\"a\","
                 "\"environment_id\":\"e\",\"keys\":{\"id\":\"bad\"},"
                 "\"traits\":\"not a list\"}"),
        tmsg_file("msg-03-user-full.json")};
    struct ferry_pos commit = {1767225600001, 0, 1};
    int res[3];
    struct inst in;
    void *w;
    double before = fh_metric_sum("ferry_sink_poison_total", NULL);

    (void)state;
    tmsg_pos(t[1], 1767225600000, 5);
    inst_start(&in, base_ctx());
    w = wopen(&in, 0);
    assert_int_equal(wbatch(w, t, 3, &commit, res), FERRY_OK);
    assert_int_equal(res[0], FERRY_OK);
    assert_int_equal(res[1], FERRY_ERROR);
    assert_int_equal(res[2], FERRY_OK);
    assert_true(exists("schematic:company:" V ":Comp_X"));
    assert_false(exists("schematic:company:" V ":c_bad"));
    assert_false(exists("schematic:company:" V ":id:bad"));
    assert_key_file("schematic:user:" V ":user_ada",
                    "cache-user-user_ada.json");
    assert_key_value("schematic:datastream:replay_cursor", "1767225600001-0");
    assert_true(fh_metric_sum("ferry_sink_poison_total", NULL) == before + 1);
    assert_true(fh_logged(in.ctx, "1767225600000-5"));
    ferry_plugin.close(w);
    inst_end(&in);
    tmsg_free(t[0]);
    tmsg_free(t[1]);
    tmsg_free(t[2]);
}

/*
 * A Redis-side poison: an ACL that forbids the ID key of companies whose
 * id starts with 'p' (NOPERM is a queue-time error, so the MULTI is
 * discarded). The batch is sent again, then message by message: the
 * refused one is skipped, every other one applied, the cursor stored.
 */
static void test_poison_redis(void **state)
{
    struct tmsg *t[4] = {
        tmsg_new("company", FERRY_OP_FULL, "Comp_X", comp_v1),
        tmsg_new("company", FERRY_OP_FULL, "poison_co",
                 "{\"id\":\"poison_co\",\"account_id\":\"a\","
                 "\"environment_id\":\"e\",\"keys\":{\"id\":\"pz\"}}"),
        tmsg_file("msg-02-company-full.json"),
        tmsg_file("msg-03-user-full.json")};
    struct ferry_pos commit = {1767225600009, 0, 1};
    struct ferry_ctx *c = base_ctx();
    double before = fh_metric_sum("ferry_sink_poison_total", NULL);
    int res[4];
    struct inst in;
    void *w;

    (void)state;
    Rdo("ACL SETUSER ferry on >s3cret ~schematic:company:" V ":[^p]* "
        "~schematic:user:* ~schematic:flags:* ~schematic:datastream:* "
        "+@all");
    fh_opt(c, "username", "ferry");
    fh_opt(c, "password", "s3cret");
    inst_start(&in, c);
    w = wopen(&in, 0);
    assert_int_equal(wbatch(w, t, 4, &commit, res), FERRY_OK);
    assert_int_equal(res[0], FERRY_OK);
    assert_int_equal(res[1], FERRY_ERROR);
    assert_int_equal(res[2], FERRY_OK);
    assert_int_equal(res[3], FERRY_OK);
    assert_true(exists("schematic:company:" V ":Comp_X"));
    assert_key_file("schematic:company:" V ":comp_acme",
                    "cache-company-comp_acme.json");
    assert_key_file("schematic:user:" V ":user_ada",
                    "cache-user-user_ada.json");
    assert_false(exists("schematic:company:" V ":id:pz"));
    assert_key_value("schematic:datastream:replay_cursor", "1767225600009-0");
    assert_true(fh_metric_sum("ferry_sink_poison_total", NULL) == before + 1);
    assert_true(fh_logged(in.ctx, "NOPERM"));
    /* No secret in any log line. */
    assert_false(fh_logged(in.ctx, "s3cret"));
    ferry_plugin.close(w);
    inst_end(&in);

    /* A wrong password fails start() with a clear error. */
    c = base_ctx();
    fh_opt(c, "username", "ferry");
    fh_opt(c, "password", "hunter2x");
    inst_init(&in, c);
    assert_int_equal(ferry_plugin.start(in.state), FERRY_ERROR);
    assert_true(fh_logged(c, "AUTH refused"));
    assert_false(fh_logged(c, "hunter2x"));
    inst_end(&in);
    Rdo("ACL DELUSER ferry");
    tmsg_free(t[0]);
    tmsg_free(t[1]);
    tmsg_free(t[2]);
    tmsg_free(t[3]);
}

/* ---- tests: writer lock ------------------------------------------------- */

struct starter {
    void *state;
    atomic_int done;
    int rc;
};

static void *start_thread(void *arg)
{
    struct starter *st = arg;

    st->rc = ferry_plugin.start(st->state);
    atomic_store(&st->done, 1);
    return NULL;
}

static struct ferry_ctx *lock_ctx(void)
{
    struct ferry_ctx *c = base_ctx();

    fh_opt(c, "writer_lock", "true");
    fh_opt(c, "lock_ttl", "900ms");
    return c;
}

static void test_writer_lock_takeover(void **state)
{
    struct inst a, b;
    struct starter st = {0};
    pthread_t th;
    char *holder;
    int i;

    (void)state;
    inst_start(&a, lock_ctx());
    holder = get("schematic:datastream:writer_lock");
    assert_non_null(holder);
    assert_string_equal(holder, fh_info(a.ctx, "writer_lock"));
    /* "<hostname>-<pid>-<32 hex>" */
    assert_int_equal(strlen(strrchr(holder, '-') + 1), 32);
    /* Renewal keeps the lease alive past several lock_ttls. */
    sleep_ms(1500);
    assert_key_value("schematic:datastream:writer_lock", holder);

    inst_init(&b, lock_ctx());
    st.state = b.state;
    pthread_create(&th, NULL, start_thread, &st);
    sleep_ms(700);
    assert_false(atomic_load(&st.done));
    assert_true(fh_logged(b.ctx, "standby: writer lock held by"));
    assert_true(fh_logged(b.ctx, holder));
    /* A releases at stop(); B takes over. */
    inst_end(&a);
    for (i = 0; i < 300 && !atomic_load(&st.done); i++)
        sleep_ms(10);
    pthread_join(th, NULL);
    assert_int_equal(st.rc, FERRY_OK);
    assert_key_value("schematic:datastream:writer_lock",
                     fh_info(b.ctx, "writer_lock"));
    assert_string_not_equal(fh_info(b.ctx, "writer_lock"), holder);
    free(holder);
    inst_end(&b);
    assert_false(exists("schematic:datastream:writer_lock"));
}

static void test_writer_lock_lapse_and_stop(void **state)
{
    struct inst b, c;
    struct starter st = {0}, st2 = {0};
    pthread_t th;
    uint64_t t0;
    int i;

    (void)state;
    /* A holder that crashed: its lease lapses, then B takes over. */
    Rdo("SET schematic:datastream:writer_lock crashed-1-abc PX 800");
    inst_init(&b, lock_ctx());
    st.state = b.state;
    t0 = fh_now_ns();
    pthread_create(&th, NULL, start_thread, &st);
    for (i = 0; i < 400 && !atomic_load(&st.done); i++)
        sleep_ms(10);
    pthread_join(th, NULL);
    assert_int_equal(st.rc, FERRY_OK);
    assert_true(fh_now_ns() - t0 > 500000000ull);
    assert_true(fh_logged(b.ctx, "crashed-1-abc"));

    /* stop() during standby makes start() return FERRY_CLOSED. */
    inst_init(&c, lock_ctx());
    st2.state = c.state;
    pthread_create(&th, NULL, start_thread, &st2);
    sleep_ms(400);
    assert_false(atomic_load(&st2.done));
    ferry_plugin.stop(c.state);
    pthread_join(th, NULL);
    assert_int_equal(st2.rc, FERRY_CLOSED);
    ferry_plugin.fini(c.state);
    fh_ctx_free(c.ctx);
    /* B still holds the lock. */
    assert_key_value("schematic:datastream:writer_lock",
                     fh_info(b.ctx, "writer_lock"));

    /* Someone else takes the lock: B asks the process to stop and writes
     * nothing more. */
    {
        void *w = wopen(&b, 0);
        struct tmsg *t = tmsg_file("msg-03-user-full.json");

        Rdo("SET schematic:datastream:writer_lock intruder PX 60000");
        for (i = 0; i < 300 && fh_stop_code(b.ctx) < 0; i++)
            sleep_ms(10);
        assert_int_equal(fh_stop_code(b.ctx), 1);
        assert_string_equal(fh_stop_reason(b.ctx), "writer lock lost");
        assert_int_equal(wbatch(w, &t, 1, NULL, NULL), FERRY_RETRY);
        assert_false(exists("schematic:user:" V ":user_ada"));
        tmsg_free(t);
        ferry_plugin.close(w);
    }
    inst_end(&b);
    /* The intruder's lock is not released by B. */
    assert_key_value("schematic:datastream:writer_lock", "intruder");
}

/* ---- tests: connection -------------------------------------------------- */

static void test_reconnect(void **state)
{
    struct tmsg *t = tmsg_file("msg-02-company-full.json");
    struct ferry_pos p = {1767225600000, 0, 1};
    double before = fh_metric_sum("ferry_sink_reconnects_total", NULL);
    struct ferry_ctx *c = base_ctx();
    struct inst in;
    void *w;

    (void)state;
    fh_opt(c, "connect_timeout", "300ms");
    fh_opt(c, "command_timeout", "1s");
    inst_start(&in, c);
    w = wopen(&in, 0);
    w1_file(w, "msg-03-user-full.json");
    server_stop();
    assert_int_equal(wbatch(w, &t, 1, &p, NULL), FERRY_RETRY);
    assert_int_equal(fh_component(c, "redis"), FERRY_COMPONENT_DISCONNECTED);
    assert_int_equal(wbatch(w, &t, 1, &p, NULL), FERRY_RETRY);
    assert_int_equal(ferry_plugin.checkpoint(w, &p), FERRY_RETRY);
    server_start();
    assert_int_equal(wbatch(w, &t, 1, &p, NULL), FERRY_OK);
    assert_int_equal(fh_component(c, "redis"), FERRY_COMPONENT_CONNECTED);
    assert_key_file("schematic:company:" V ":comp_acme",
                    "cache-company-comp_acme.json");
    assert_key_value("schematic:datastream:replay_cursor", "1767225600000-0");
    assert_true(fh_metric_sum("ferry_sink_reconnects_total", NULL) >=
                before + 1);
    ferry_plugin.close(w);
    inst_end(&in);
    tmsg_free(t);
}

static void test_unix_db_ttl(void **state)
{
    char addr[160];
    struct ferry_ctx *c = base_ctx();
    struct inst in;
    redisReply *r;
    void *w;

    (void)state;
    snprintf(addr, sizeof(addr), "unix:%s", redis_sock);
    fh_opt(c, "address", addr);
    fh_opt(c, "db", "3");
    fh_opt(c, "ttl", "90s");
    fh_opt(c, "key_prefix", "app");
    inst_start(&in, c);
    w = wopen(&in, 0);
    w1_file(w, "msg-02-company-full.json");
    w1_file(w, "msg-01-flags-full.json");
    assert_int_equal(dbsize(), 0);
    Rdo("SELECT 3");
    assert_key_file("app:company:" V ":comp_acme",
                    "cache-company-comp_acme.json");
    r = R("PTTL app:company:" V ":id:acme");
    assert_true(r->integer > 80000 && r->integer <= 90000);
    freeReplyObject(r);
    r = R("PTTL app:flags:" V ":plan-flag");
    assert_true(r->integer > 80000);
    freeReplyObject(r);
    Rdo("SELECT 0");
    ferry_plugin.close(w);
    inst_end(&in);
}

static void test_cleanup_other_versions(void **state)
{
    struct ferry_ctx *c = base_ctx();
    struct inst in;
    char key[64];
    int i;

    (void)state;
    Rdo("SET schematic:flags:" V ":keep x");
    Rdo("SET schematic:company:" V ":keep x");
    Rdo("SET schematic:company:" V ":id:keep x");
    Rdo("SET schematic:flags:old1:gone x");
    Rdo("SET schematic:company:old1:gone x");
    Rdo("SET schematic:user:old2:id:gone x");
    Rdo("SET schematic:user:old2 x"); /* 3 segments: kept */
    Rdo("SET schematic:datastream:replay_cursor 1-0");
    for (i = 0; i < 1200; i++) {
        snprintf(key, sizeof(key), "schematic:company:old3:c%d", i);
        Rdo("SET %s x", key);
    }
    fh_opt(c, "cleanup_interval", "150ms");
    inst_start(&in, c);
    for (i = 0; i < 300 && !fh_logged(c, "cleanup: scanned"); i++)
        sleep_ms(10);
    assert_true(fh_logged(c, "cleanup: scanned"));
    inst_end(&in);
    assert_true(exists("schematic:flags:" V ":keep"));
    assert_true(exists("schematic:company:" V ":keep"));
    assert_true(exists("schematic:company:" V ":id:keep"));
    assert_true(exists("schematic:user:old2"));
    assert_true(exists("schematic:datastream:replay_cursor"));
    assert_false(exists("schematic:flags:old1:gone"));
    assert_false(exists("schematic:company:old1:gone"));
    assert_false(exists("schematic:user:old2:id:gone"));
    assert_int_equal(dbsize(), 5);
}

static void test_keyset(void **state)
{
    struct redis_keyset ks = {0}, ks2 = {0};
    char k[32];
    int i;

    (void)state;
    for (i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "key:%d", i);
        redis_keyset_add(&ks, k, strlen(k));
    }
    redis_keyset_add(&ks, "key:1", 5);
    assert_int_equal(ks.count, 5000);
    assert_true(redis_keyset_has(&ks, "key:4999", 8));
    assert_false(redis_keyset_has(&ks, "key:5000", 8));
    redis_keyset_merge(&ks2, &ks);
    assert_int_equal(ks2.count, 5000);
    redis_keyset_release(&ks);
    redis_keyset_release(&ks2);
    assert_false(redis_keyset_has(&ks, "key:1", 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_keyset),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_init_publishes_version),
        cmocka_unit_test_setup(test_samples_exact, test_setup),
        cmocka_unit_test_setup(test_samples_one_batch, test_setup),
        cmocka_unit_test_setup(test_merge_metrics_credits, test_setup),
        cmocka_unit_test_setup(test_merge_keys_traits, test_setup),
        cmocka_unit_test_setup(test_partial_without_base, test_setup),
        cmocka_unit_test_setup(test_stale_lookups, test_setup),
        cmocka_unit_test_setup(test_no_keys_not_cached, test_setup),
        cmocka_unit_test_setup(test_deletes, test_setup),
        cmocka_unit_test_setup(test_single_flags, test_setup),
        cmocka_unit_test_setup(test_snapshot_eviction, test_setup),
        cmocka_unit_test_setup(test_paginated_snapshot, test_setup),
        cmocka_unit_test_setup(test_cursor_monotonic, test_setup),
        cmocka_unit_test_setup(test_load_position, test_setup),
        cmocka_unit_test_setup(test_load_eviction_and_ready, test_setup),
        cmocka_unit_test_setup(test_poison_normalisation, test_setup),
        cmocka_unit_test_setup(test_poison_redis, test_setup),
        cmocka_unit_test_setup(test_writer_lock_takeover, test_setup),
        cmocka_unit_test_setup(test_writer_lock_lapse_and_stop, test_setup),
        cmocka_unit_test_setup(test_unix_db_ttl, test_setup),
        cmocka_unit_test_setup(test_cleanup_other_versions, test_setup),
        cmocka_unit_test_setup(test_reconnect, test_setup),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
