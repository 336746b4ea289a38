/*
 * tests/unit/test_file_plugins.c: the development plugins source_file,
 * sink_file and sink_null, loaded from $BUILD/plugins/ with the loader and
 * driven through a fake host table: what they emit, the exact sink_file
 * line format (a contract: PLUGINS.md "sink_file output"), their metrics,
 * logging, pacing and how promptly they stop.
 *
 * Run from the repository root; BUILD names the build directory (default
 * "build").
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
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "loader.h"

/* ---- a fake host --------------------------------------------------------- */

#include "fakehost.h"

static struct ferry_ctx *fake_ctx;

/* These plugins only count. */
static void counters_only(int type, const char *name, const char *labels)
{
    assert_int_equal(type, FERRY_METRIC_COUNTER);
}

/* A fresh fake host with one instance of desc's plugin (none for NULL). */
static void fake_reset(const struct ferry_plugin *desc)
{
    fh_reset();
    fh_metric_hook(counters_only);
    fake_ctx = desc != NULL ? fh_ctx_new("file", desc->options) : NULL;
}

/* ---- helpers ------------------------------------------------------------- */

static struct plugin *load(const char *file, int kind)
{
    const char *build = getenv("BUILD");
    char path[512], err[512];
    struct plugin *p;

    snprintf(path, sizeof(path), "%s/plugins/%s.so",
             build && build[0] ? build : "build", file);
    p = loader_open(path, kind, err, sizeof(err));
    if (p == NULL)
        fail_msg("%s", err);
    fake_reset(&p->desc);
    return p;
}

static char tmpdir[64];

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-fileplug-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    fake_reset(NULL);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int next;
    char *b = buf[next++ % 4];

    snprintf(b, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Returns the file's contents (caller frees). */
static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf;
    long n;

    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    return buf;
}

/* ---- source_file --------------------------------------------------------- */

#define COMPANY_FULL                                                           \
    "{\"entity_type\":\"rulesengine.Company\",\"message_type\":\"full\","      \
    "\"entity_id\":\"comp_1\",\"stream_id\":\"1767225600000-1\","              \
    "\"data\":{\"id\":\"comp_1\",\"keys\":{\"id\":\"acme\"}}}\n"
#define USER_PARTIAL                                                           \
    "{\"entity_type\":\"rulesengine.User\",\"message_type\":\"partial\","      \
    "\"entity_id\":\"user_1\",\"stream_id\":\"1767225600000-2\","              \
    "\"data\":{\"traits\":{\"a\":1}}}\n"
#define COMPANY_DELETE                                                         \
    "{\"entity_type\":\"rulesengine.Company\",\"message_type\":\"delete\","    \
    "\"entity_id\":\"comp_1\",\"stream_id\":\"1767225600001-0\","              \
    "\"data\":{\"id\":\"comp_1\",\"keys\":{\"id\":\"acme\"}}}\n"
#define RELOAD                                                                 \
    "{\"data\":null,\"entity_id\":null,\"entity_type\":\"\","                  \
    "\"message_type\":\"reload\"}\n"
#define ERROR_FRAME                                                            \
    "{\"data\":{\"error\":\"company not found\"},\"entity_id\":null,"          \
    "\"entity_type\":\"rulesengine.Company\",\"message_type\":\"error\"}\n"

/* Four messages, a blank line, an invalid line and an error frame. */
static const char replay_text[] =
    COMPANY_FULL "\n"
                 "   \n"
                 "{not json\n" USER_PARTIAL ERROR_FRAME RELOAD COMPANY_DELETE;

static void *run_thread(void *arg)
{
    struct plugin *p = ((void **)arg)[0];
    void *st = ((void **)arg)[1];
    int *rc = ((void **)arg)[2];

    *rc = p->desc.run(st);
    return NULL;
}

/* Runs the source to completion; returns run()'s status. */
static int run_source(struct plugin *p, void **st)
{
    int rc;

    assert_int_equal(p->desc.init(&fh_host, fake_ctx, st), FERRY_OK);
    rc = p->desc.run(*st);
    return rc;
}

static void assert_replay(size_t base)
{
    const struct fh_msg *e[4];

    for (size_t i = 0; i < 4; i++)
        e[i] = fh_emitted(base + i);
    assert_int_equal(e[0]->op, FERRY_OP_FULL);
    assert_string_equal(e[0]->entity_type, "company");
    assert_string_equal(e[0]->entity_id, "comp_1");
    assert_int_equal(e[0]->nkeys, 1);
    assert_true(e[0]->pos.set);
    assert_int_equal(e[0]->pos.ms, 1767225600000ull);
    assert_int_equal(e[0]->pos.seq, 1);
    assert_int_equal(e[1]->op, FERRY_OP_PARTIAL);
    assert_string_equal(e[1]->entity_type, "user");
    assert_string_equal(e[1]->entity_id, "user_1");
    assert_int_equal(e[2]->op, FERRY_OP_RELOAD);
    assert_int_equal(e[3]->op, FERRY_OP_DELETE);
    assert_int_equal(e[3]->pos.ms, 1767225600001ull);
    assert_int_equal(e[3]->pos.seq, 0);
}

static void test_source_replays(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    char want[512];
    void *st;

    write_file(tmp_path("frames.jsonl"), replay_text);
    fh_opt(fake_ctx, "path", tmp_path("frames.jsonl"));
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 4);
    assert_replay(0);
    assert_true(fh_metric("ferry_source_messages_total",
                          "entity_type=company,message_type=full") == 1);
    assert_true(fh_metric("ferry_source_messages_total",
                          "entity_type=company,message_type=delete") == 1);
    assert_true(fh_metric("ferry_source_messages_total",
                          "entity_type=user,message_type=partial") == 1);
    assert_true(fh_metric("ferry_source_invalid_messages_total",
                          "reason=invalid_json") == 1);
    /* The invalid line is logged with its line number (line 4: the
     * blank lines count). */
    snprintf(want, sizeof(want),
             "%s:4: invalid_json: ", tmp_path("frames.jsonl"));
    assert_true(fh_logged(fake_ctx, want));
    assert_true(fh_logged(fake_ctx, "4 messages emitted, 1 invalid"));
    p->desc.fini(st);
    loader_close(p);
}

static void test_source_repeat_preload(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    void *st;

    write_file(tmp_path("frames.jsonl"), replay_text);
    fh_opt(fake_ctx, "path", tmp_path("frames.jsonl"));
    fh_opt(fake_ctx, "repeat", "3");
    fh_opt(fake_ctx, "preload", "true");
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 12);
    assert_replay(0);
    assert_replay(4);
    assert_replay(8);
    assert_true(fh_metric("ferry_source_invalid_messages_total",
                          "reason=invalid_json") == 3);
    assert_true(fh_logged(fake_ctx, "preloaded 6 frames"));
    p->desc.fini(st);

    /* The same without preload. */
    fake_reset(&p->desc);
    fh_opt(fake_ctx, "path", tmp_path("frames.jsonl"));
    fh_opt(fake_ctx, "repeat", "2");
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 8);
    assert_replay(4);
    p->desc.fini(st);
    loader_close(p);
}

static void test_source_rate(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    char text[4096] = "";
    uint64_t t0, ms;
    void *st;
    int i;

    for (i = 0; i < 11; i++)
        strcat(text, COMPANY_FULL);
    write_file(tmp_path("rate.jsonl"), text);
    fh_opt(fake_ctx, "path", tmp_path("rate.jsonl"));
    fh_opt(fake_ctx, "rate", "100");
    t0 = fh_now_ns();
    assert_int_equal(run_source(p, &st), FERRY_OK);
    ms = (fh_now_ns() - t0) / 1000000;
    assert_int_equal(fh_emitted_count(), 11);
    /* 11 messages at 100/s: the first at once, then every 10ms. */
    assert_true(ms >= 95);
    assert_true(ms < 1000);
    p->desc.fini(st);
    loader_close(p);
}

/* stop() from another thread ends run() promptly, both while it paces
 * (rate) and while every route is full. */
static void test_source_stop(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    struct timespec ts = {0, 50000000};
    pthread_t th;
    void *args[3];
    uint64_t t0, ms;
    void *st;
    int rc = -100, round;

    write_file(tmp_path("stop.jsonl"), COMPANY_FULL COMPANY_FULL COMPANY_FULL);
    for (round = 0; round < 2; round++) {
        fake_reset(&p->desc);
        fh_opt(fake_ctx, "path", tmp_path("stop.jsonl"));
        if (round == 0)
            fh_opt(fake_ctx, "rate", "0.5");
        else
            fh_emit_verdict(FERRY_WOULD_BLOCK);
        assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_OK);
        args[0] = p;
        args[1] = st;
        args[2] = &rc;
        assert_int_equal(pthread_create(&th, NULL, run_thread, args), 0);
        nanosleep(&ts, NULL);
        t0 = fh_now_ns();
        p->desc.stop(st);
        pthread_join(th, NULL);
        ms = (fh_now_ns() - t0) / 1000000;
        assert_int_equal(rc, FERRY_OK);
        assert_true(ms < 500);
        assert_false(fh_emit_waited_forever());
        /* Rate 0.5/s: the first went at once, the second never. */
        assert_int_equal(fh_emitted_count(), round == 0 ? 1 : 0);
        assert_true(fh_logged(fake_ctx, "stopped replaying"));
        p->desc.fini(st);
    }
    loader_close(p);
}

static void test_source_missing_file(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    void *st;

    fh_opt(fake_ctx, "path", tmp_path("nope.jsonl"));
    assert_int_equal(run_source(p, &st), FERRY_ERROR);
    assert_true(fh_logged(fake_ctx, "cannot open "));
    assert_true(fh_logged(fake_ctx, "No such file or directory"));
    p->desc.fini(st);
    loader_close(p);
}

/* Invalid lines are all counted but logged at most about once a second. */
static void test_source_invalid_rate_limited(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    char text[8192] = "";
    void *st;
    int i;

    for (i = 0; i < 200; i++)
        strcat(text, "[1,2\n");
    strcat(text, COMPANY_FULL);
    write_file(tmp_path("bad.jsonl"), text);
    fh_opt(fake_ctx, "path", tmp_path("bad.jsonl"));
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 1);
    assert_true(fh_metric("ferry_source_invalid_messages_total",
                          "reason=invalid_json") == 200);
    /* One warning and the summary line. */
    assert_true(fh_nlogs(fake_ctx) <= 3);
    p->desc.fini(st);
    loader_close(p);
}

/* ---- source_file, format = jsonl --------------------------------------- */

/* A jsonl instance reading `text` from name. */
static void jsonl_setup(struct plugin *p, const char *name, const char *text)
{
    fake_reset(&p->desc);
    write_file(tmp_path(name), text);
    fh_opt(fake_ctx, "path", tmp_path(name));
    fh_opt(fake_ctx, "format", "jsonl");
}

static void assert_msg(size_t i, uint32_t op, const char *type, const char *id,
                       const char *payload, uint64_t ms, uint64_t seq)
{
    const struct fh_msg *e = fh_emitted(i);

    assert_int_equal(e->op, op);
    assert_string_equal(e->entity_type, type);
    assert_string_equal(e->entity_id, id);
    assert_string_equal(e->payload, payload);
    assert_int_equal(e->payload_len, strlen(payload));
    assert_int_equal(e->nkeys, 0);
    assert_true(e->pos.set);
    assert_int_equal(e->pos.ms, ms);
    assert_int_equal(e->pos.seq, seq);
}

/* Default member names, both ops, an absent op, integer ids, escapes,
 * nested and repeated members, and the payload: the whole object,
 * compact. Line N has the position 0-N (blank lines count). */
static void test_jsonl_default_fields(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    void *st;

    jsonl_setup(p, "events.jsonl",
                "{\"id\":\"u1\",\"type\":\"user\",\"op\":\"set\",\"n\":1}\n"
                "\n"
                "{ \"type\" : \"user\", \"id\" : \"u1\", \"op\" : "
                "\"delete\" }\r\n"
                "{\"id\":42,\"type\":\"order\",\"v\":{\"id\":\"inner\","
                "\"s\":\"a b\\\" c\"}}\n"
                "{\"id\":\"\\u0061\\\"b\",\"type\":\"t\\u00e9\",\"op\":"
                "\"s\\u0065t\"}\n"
                "  {\"id\":\"first\",\"type\":\"x\",\"id\":\"last\","
                "\"op\":\"delete\",\"op\":\"set\"}  \n"
                "{\"id\":-7,\"type\":\"order\",\"list\":[1, 2.5e3, "
                "true, null]}\n");
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 6);
    assert_msg(0, FERRY_OP_FULL, "user", "u1",
               "{\"id\":\"u1\",\"type\":\"user\",\"op\":\"set\",\"n\":1}", 0,
               1);
    assert_msg(1, FERRY_OP_DELETE, "user", "u1",
               "{\"type\":\"user\",\"id\":\"u1\",\"op\":\"delete\"}", 0, 3);
    assert_msg(2, FERRY_OP_FULL, "order", "42",
               "{\"id\":42,\"type\":\"order\",\"v\":{\"id\":\"inner\","
               "\"s\":\"a b\\\" c\"}}",
               0, 4);
    assert_msg(3, FERRY_OP_FULL, "t\xc3\xa9", "a\"b",
               "{\"id\":\"\\u0061\\\"b\",\"type\":\"t\\u00e9\",\"op\":"
               "\"s\\u0065t\"}",
               0, 5);
    assert_msg(4, FERRY_OP_FULL, "x", "last",
               "{\"id\":\"first\",\"type\":\"x\",\"id\":\"last\","
               "\"op\":\"delete\",\"op\":\"set\"}",
               0, 6);
    assert_msg(5, FERRY_OP_FULL, "order", "-7",
               "{\"id\":-7,\"type\":\"order\",\"list\":[1,2.5e3,true,null]}", 0,
               7);
    assert_true(fh_metric("ferry_source_messages_total",
                          "entity_type=user,message_type=full") == 1);
    assert_true(fh_metric("ferry_source_messages_total",
                          "entity_type=user,message_type=delete") == 1);
    assert_true(fh_metric("ferry_source_messages_total",
                          "entity_type=order,message_type=full") == 2);
    assert_true(fh_logged(fake_ctx, "6 messages emitted, 0 invalid lines"));
    p->desc.fini(st);
    loader_close(p);
}

/* id_field, type_field and op_field; the default names are then plain
 * members. */
static void test_jsonl_custom_fields(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    void *st;

    jsonl_setup(p, "custom.jsonl",
                "{\"id\":\"no\",\"type\":\"no\",\"op\":\"bogus\","
                "\"key\":\"k1\",\"kind\":\"doc\",\"action\":\"delete\"}\n"
                "{\"key\":\"k2\",\"kind\":\"doc\"}\n"
                "{\"id\":\"k3\",\"type\":\"doc\"}\n");
    fh_opt(fake_ctx, "id_field", "key");
    fh_opt(fake_ctx, "type_field", "kind");
    fh_opt(fake_ctx, "op_field", "action");
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 2);
    assert_msg(0, FERRY_OP_DELETE, "doc", "k1",
               "{\"id\":\"no\",\"type\":\"no\",\"op\":\"bogus\","
               "\"key\":\"k1\",\"kind\":\"doc\",\"action\":\"delete\"}",
               0, 1);
    assert_msg(1, FERRY_OP_FULL, "doc", "k2",
               "{\"key\":\"k2\",\"kind\":\"doc\"}", 0, 2);
    assert_true(fh_metric("ferry_source_invalid_messages_total",
                          "reason=missing_id") == 1);
    p->desc.fini(st);

    /* An empty member name is refused at init. */
    fake_reset(&p->desc);
    fh_opt(fake_ctx, "path", tmp_path("custom.jsonl"));
    fh_opt(fake_ctx, "format", "jsonl");
    fh_opt(fake_ctx, "op_field", "");
    assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_EINVAL);
    assert_true(fh_logged(fake_ctx, "op_field must not be empty"));

    /* With the datastream format the jsonl names are unused: said once. */
    fake_reset(&p->desc);
    fh_opt(fake_ctx, "path", tmp_path("custom.jsonl"));
    fh_opt(fake_ctx, "id_field", "key");
    assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_OK);
    assert_true(
        fh_logged(fake_ctx, "id_field has no effect with format = datastream"));
    p->desc.fini(st);
    loader_close(p);
}

/* Every reason a line is refused: counted under its reason, logged with
 * its line number and without the line's values, skipped; the lines
 * around it still go. */
static void test_jsonl_invalid(void **state)
{
    static const struct {
        const char *line;
        const char *reason;
    } cases[] = {
        {"{\"id\":\"a\",\"type\":\"t\"", "invalid_json"},
        {"{\"id\":\"a\",\"type\":\"t\"} {}", "invalid_json"},
        {"{\"id\":\"a\",\"type\":\"t\",\"secret\":\"s3cr\xff\"}",
         "invalid_utf8"},
        {"{\"id\":\"a\",\"type\":\"t\",\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         "too_deep"},
        {"[{\"id\":\"a\",\"type\":\"t\"}]", "not_object"},
        {"\"s3cret\"", "not_object"},
        {"17", "not_object"},
        {"{\"type\":\"t\",\"secret\":\"s3cret\"}", "missing_id"},
        {"{\"id\":\"a\",\"secret\":\"s3cret\"}", "missing_type"},
        {"{\"id\":\"\",\"type\":\"t\"}", "empty_id"},
        {"{\"id\":\"a\",\"type\":\"\"}", "empty_type"},
        {"{\"id\":true,\"type\":\"t\"}", "wrong_type"},
        {"{\"id\":1.5,\"type\":\"t\"}", "wrong_type"},
        {"{\"id\":null,\"type\":\"t\"}", "wrong_type"},
        {"{\"id\":{\"a\":1},\"type\":\"t\"}", "wrong_type"},
        {"{\"id\":\"a\",\"type\":7}", "wrong_type"},
        {"{\"id\":\"a\",\"type\":[\"t\"]}", "wrong_type"},
        {"{\"id\":\"a\",\"type\":\"t\",\"op\":1}", "wrong_type"},
        {"{\"id\":\"a\",\"type\":\"t\",\"op\":\"s3cret\"}", "unknown_op"},
        {"{\"id\":\"a\",\"type\":\"t\",\"op\":\"SET\"}", "unknown_op"},
        {"{\"id\":\"a\",\"type\":\"t\",\"op\":\"\"}", "unknown_op"},
    };
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    char text[1024], want[512], labels[64];
    size_t i;
    void *st;
    int k;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"id\":\"ok1\",\"type\":\"t\"}\n%s\n"
                 "{\"id\":\"ok2\",\"type\":\"t\"}\n",
                 cases[i].line);
        jsonl_setup(p, "bad.jsonl", text);
        assert_int_equal(run_source(p, &st), FERRY_OK);
        assert_int_equal(fh_emitted_count(), 2);
        assert_string_equal(fh_emitted(0)->entity_id, "ok1");
        assert_string_equal(fh_emitted(1)->entity_id, "ok2");
        assert_int_equal(fh_emitted(1)->pos.seq, 3);
        snprintf(labels, sizeof(labels), "reason=%s", cases[i].reason);
        if (fh_metric("ferry_source_invalid_messages_total", labels) != 1)
            fail_msg("case %zu: not counted as %s", i, cases[i].reason);
        assert_true(fh_metric_sum("ferry_source_invalid_messages_total", "") ==
                    1);
        snprintf(want, sizeof(want), "%s:2: %s: ", tmp_path("bad.jsonl"),
                 cases[i].reason);
        if (!fh_logged(fake_ctx, want))
            fail_msg("case %zu: no log line '%s'", i, want);
        assert_true(fh_logged(fake_ctx, "2 messages emitted, 1 invalid lines"));
        for (k = 0; k < fh_nlogs(fake_ctx); k++)
            assert_null(strstr(fh_log_line(fake_ctx, k), "s3cr"));
        p->desc.fini(st);
    }
    loader_close(p);
}

/* Positions grow through repetitions (R-N), with and without preload. */
static void test_jsonl_positions_repeat(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    static const uint64_t want[][2] = {{0, 1}, {0, 3}, {1, 1}, {1, 3}};
    int preload;
    size_t i;
    void *st;

    for (preload = 0; preload < 2; preload++) {
        jsonl_setup(p, "rep.jsonl",
                    "{\"id\":\"a\",\"type\":\"t\"}\n"
                    "[]\n"
                    "{\"id\":\"b\",\"type\":\"t\",\"op\":\"delete\"}\n");
        fh_opt(fake_ctx, "repeat", "2");
        fh_opt(fake_ctx, "preload", preload ? "true" : "false");
        assert_int_equal(run_source(p, &st), FERRY_OK);
        assert_int_equal(fh_emitted_count(), 4);
        for (i = 0; i < 4; i++) {
            const struct fh_msg *e = fh_emitted(i);

            assert_int_equal(e->pos.ms, want[i][0]);
            assert_int_equal(e->pos.seq, want[i][1]);
            assert_string_equal(e->entity_id, i % 2 ? "b" : "a");
            if (i > 0) {
                const struct fh_msg *d = fh_emitted(i - 1);

                assert_true(ferry_pos_cmp(&d->pos, &e->pos) < 0);
            }
        }
        assert_true(fh_metric("ferry_source_invalid_messages_total",
                              "reason=not_object") == 2);
        if (preload)
            assert_true(fh_logged(fake_ctx, "preloaded 3 lines"));
        p->desc.fini(st);
    }
    loader_close(p);
}

/* A committed position skips the lines up to and including it (not
 * parsed, not counted), and says how many. */
static void test_jsonl_resume(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    static const char text[] = "{\"id\":\"1\",\"type\":\"t\"}\n"
                               "not json\n"
                               "{\"id\":\"3\",\"type\":\"t\"}\n"
                               "{\"id\":\"4\",\"type\":\"t\"}\n"
                               "\n"
                               "{\"id\":\"6\",\"type\":\"t\"}\n";
    struct ferry_pos pos;
    int preload;
    void *st;

    for (preload = 0; preload < 2; preload++) {
        jsonl_setup(p, "resume.jsonl", text);
        fh_opt(fake_ctx, "preload", preload ? "true" : "false");
        pos = (struct ferry_pos){0, 3, 1};
        fh_set_committed(pos);
        assert_int_equal(run_source(p, &st), FERRY_OK);
        assert_int_equal(fh_emitted_count(), 2);
        assert_string_equal(fh_emitted(0)->entity_id, "4");
        assert_int_equal(fh_emitted(0)->pos.seq, 4);
        assert_string_equal(fh_emitted(1)->entity_id, "6");
        /* The invalid line 2 was counted by the run that applied it. */
        assert_true(fh_metric_sum("ferry_source_invalid_messages_total", "") ==
                    0);
        assert_true(fh_logged(fake_ctx, "committed position 0-3"));
        assert_true(fh_logged(
            fake_ctx,
            "resumed from the committed position 0-3: 3 lines skipped"));
        p->desc.fini(st);
    }

    /* Into the second repetition: all of the first and line 1 of the
     * second are skipped. */
    jsonl_setup(p, "resume.jsonl", text);
    fh_opt(fake_ctx, "repeat", "2");
    fh_set_committed((struct ferry_pos){1, 1, 1});
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 3);
    assert_int_equal(fh_emitted(0)->pos.ms, 1);
    assert_int_equal(fh_emitted(0)->pos.seq, 3);
    assert_true(fh_metric("ferry_source_invalid_messages_total",
                          "reason=invalid_json") == 1);
    assert_true(fh_logged(fake_ctx, "1-1: 6 lines skipped"));
    p->desc.fini(st);

    /* At the last line, or past the last repetition: nothing is left. */
    jsonl_setup(p, "resume.jsonl", text);
    fh_set_committed((struct ferry_pos){0, 6, 1});
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 0);
    assert_true(fh_logged(fake_ctx, "0-6: 5 lines skipped"));
    p->desc.fini(st);
    jsonl_setup(p, "resume.jsonl", text);
    fh_set_committed((struct ferry_pos){1767225600000ull, 1, 1});
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 0);
    assert_true(fh_logged(fake_ctx, "past the last repetition"));
    p->desc.fini(st);

    /* The datastream format keeps its own positions and never skips. */
    fake_reset(&p->desc);
    write_file(tmp_path("frames.jsonl"), replay_text);
    fh_opt(fake_ctx, "path", tmp_path("frames.jsonl"));
    fh_set_committed((struct ferry_pos){1767225600001ull, 0, 1});
    assert_int_equal(run_source(p, &st), FERRY_OK);
    assert_int_equal(fh_emitted_count(), 4);
    assert_false(fh_logged(fake_ctx, "skipped"));
    p->desc.fini(st);
    loader_close(p);
}

/* rate paces jsonl lines as it does frames. */
static void test_jsonl_rate(void **state)
{
    struct plugin *p = load("source_file", FERRY_KIND_SOURCE);
    char text[1024] = "";
    uint64_t t0, ms;
    void *st;
    int i;

    for (i = 0; i < 11; i++)
        strcat(text, "{\"id\":\"a\",\"type\":\"t\"}\n");
    jsonl_setup(p, "rate.jsonl", text);
    fh_opt(fake_ctx, "rate", "100");
    t0 = fh_now_ns();
    assert_int_equal(run_source(p, &st), FERRY_OK);
    ms = (fh_now_ns() - t0) / 1000000;
    assert_int_equal(fh_emitted_count(), 11);
    assert_true(ms >= 95);
    assert_true(ms < 1000);
    p->desc.fini(st);
    loader_close(p);
}

/* ---- sink_file ----------------------------------------------------------- */

static const struct ferry_kv acme_keys[] = {{"id", "acme"},
                                            {"domain", "acme.test"}};

static struct ferry_msg mk(uint32_t op, const char *type, const char *id,
                           const char *payload, uint64_t ms, uint64_t seq)
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
    m.pos.ms = ms;
    m.pos.seq = seq;
    m.pos.set = ms != 0;
    return m;
}

static int write_batch(struct plugin *p, void *wctx, const char *route,
                       struct ferry_msg *msgs, uint32_t n)
{
    const struct ferry_msg *ptrs[16];
    int results[16];
    struct ferry_batch b;
    uint32_t i;

    for (i = 0; i < n; i++) {
        ptrs[i] = &msgs[i];
        results[i] = FERRY_OK;
    }
    memset(&b, 0, sizeof(b));
    b.count = n;
    b.msgs = ptrs;
    b.results = results;
    b.route = route;
    return p->desc.write(wctx, &b);
}

static void test_sink_file_format(void **state)
{
    struct plugin *p = load("sink_file", FERRY_KIND_SINK);
    struct ferry_msg m[7];
    void *st, *w;
    char *out;

    fh_opt(fake_ctx, "path", tmp_path("out.jsonl"));
    assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_OK);
    assert_int_equal(p->desc.start(st), FERRY_OK);
    assert_int_equal(p->desc.open(st, 0, &w), FERRY_OK);

    m[0] = mk(FERRY_OP_FULL, "company", "comp_1",
              "{\"id\":\"comp_1\",\"n\":1.50}", 1767225600000ull, 3);
    m[0].keys = acme_keys;
    m[0].nkeys = 2;
    m[0].seq = 1;
    m[1] = mk(FERRY_OP_PARTIAL, "user", "u\"1\\", "not json \"x\"", 0, 0);
    m[1].seq = 2;
    m[2] = mk(FERRY_OP_DELETE, "company", "comp_1", "", 5, 0);
    m[2].seq = 3;
    m[3] = mk(FERRY_OP_SNAPSHOT, "flags", "", "[\n  {\"key\": \"a\"}\n]", 6, 1);
    m[3].seq = 4;
    m[4] = mk(FERRY_OP_RELOAD, "control", "", "", 0, 0);
    m[4].seq = 5;
    m[5] =
        mk(FERRY_OP_LOAD_BEGIN, "company", "id\t\x01\xff\xc3\xa9", "7", 0, 0);
    m[5].seq = 6;
    m[6] = mk(FERRY_OP_LOAD_END, "company", "", "", 0, 0);
    m[6].seq = 7;
    assert_int_equal(write_batch(p, w, "main", m, 7), FERRY_OK);
    assert_int_equal(p->desc.checkpoint(w, &m[0].pos), FERRY_OK);
    p->desc.close(w);
    p->desc.fini(st);

    out = read_file(tmp_path("out.jsonl"));
    assert_string_equal(
        out,
        "{\"route\":\"main\",\"op\":\"full\",\"entity_type\":\"company\","
        "\"entity_id\":\"comp_1\",\"stream_id\":\"1767225600000-3\","
        "\"keys\":{\"id\":\"acme\",\"domain\":\"acme.test\"},"
        "\"data\":{\"id\":\"comp_1\",\"n\":1.50},\"seq\":1}\n"
        "{\"route\":\"main\",\"op\":\"partial\",\"entity_type\":\"user\","
        "\"entity_id\":\"u\\\"1\\\\\",\"stream_id\":null,\"keys\":{},"
        "\"data\":\"not json \\\"x\\\"\",\"seq\":2}\n"
        "{\"route\":\"main\",\"op\":\"delete\",\"entity_type\":\"company\","
        "\"entity_id\":\"comp_1\",\"stream_id\":\"5-0\",\"keys\":{},"
        "\"data\":null,\"seq\":3}\n"
        "{\"route\":\"main\",\"op\":\"snapshot\",\"entity_type\":\"flags\","
        "\"entity_id\":\"\",\"stream_id\":\"6-1\",\"keys\":{},"
        "\"data\":[{\"key\":\"a\"}],\"seq\":4}\n"
        "{\"route\":\"main\",\"op\":\"reload\",\"entity_type\":\"control\","
        "\"entity_id\":\"\",\"stream_id\":null,\"keys\":{},"
        "\"data\":null,\"seq\":5}\n"
        "{\"route\":\"main\",\"op\":\"load_begin\",\"entity_type\":"
        "\"company\",\"entity_id\":\"id\\t\\u0001\\ufffd\xc3\xa9\","
        "\"stream_id\":null,\"keys\":{},\"data\":7,\"seq\":6}\n"
        "{\"route\":\"main\",\"op\":\"load_end\",\"entity_type\":\"company\","
        "\"entity_id\":\"\",\"stream_id\":null,\"keys\":{},"
        "\"data\":null,\"seq\":7}\n");
    free(out);
    assert_true(fh_metric("ferry_sink_operations_total", "op=append") == 7);
    loader_close(p);
}

struct writer_arg {
    struct plugin *p;
    void *st;
    unsigned worker;
    /* Failures seen on the thread (cmocka asserts only on the main one). */
    int failures;
};

#define WRITER_BATCHES 100

static void *writer_thread(void *arg)
{
    struct writer_arg *a = arg;
    struct ferry_msg m[10];
    char id[10][32];
    void *w;
    int b, i;

    if (a->p->desc.open(a->st, a->worker, &w) != FERRY_OK) {
        a->failures++;
        return NULL;
    }
    for (b = 0; b < WRITER_BATCHES; b++) {
        for (i = 0; i < 10; i++) {
            snprintf(id[i], sizeof(id[i]), "w%u-%d", a->worker, b * 10 + i);
            m[i] = mk(FERRY_OP_FULL, "company", id[i],
                      "{\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                      1, (uint64_t)(b * 10 + i));
        }
        if (write_batch(a->p, w, "r", m, 10) != FERRY_OK)
            a->failures++;
    }
    a->p->desc.close(w);
    return NULL;
}

/* Four workers writing at once: every line whole and valid JSON, and each
 * worker's lines in its order. */
static void test_sink_file_concurrent(void **state)
{
    struct plugin *p = load("sink_file", FERRY_KIND_SINK);
    struct writer_arg args[4];
    pthread_t th[4];
    int next[4] = {0, 0, 0, 0};
    char *out, *line, *save = NULL;
    int i, lines = 0;
    void *st;

    fh_opt(fake_ctx, "path", tmp_path("conc.jsonl"));
    assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_OK);
    assert_int_equal(p->desc.start(st), FERRY_OK);
    for (i = 0; i < 4; i++) {
        args[i] = (struct writer_arg){p, st, (unsigned)i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &args[i]),
                         0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    p->desc.fini(st);

    out = read_file(tmp_path("conc.jsonl"));
    for (line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        const char *id;
        unsigned worker;
        int n;

        assert_non_null(j);
        id = json_string_value(json_object_get(j, "entity_id"));
        assert_non_null(id);
        assert_int_equal(sscanf(id, "w%u-%d", &worker, &n), 2);
        assert_true(worker < 4);
        assert_int_equal(n, next[worker]);
        next[worker]++;
        json_decref(j);
        lines++;
    }
    assert_int_equal(lines, 4 * WRITER_BATCHES * 10);
    free(out);
    loader_close(p);
}

/* A write error is transient (FERRY_RETRY); an unopenable path fails at
 * start(). */
static void test_sink_file_errors(void **state)
{
    struct plugin *p = load("sink_file", FERRY_KIND_SINK);
    struct ferry_msg m = mk(FERRY_OP_FULL, "company", "c", "{}", 1, 1);
    void *st, *w;

    if (access("/dev/full", W_OK) == 0) {
        fh_opt(fake_ctx, "path", "/dev/full");
        assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_OK);
        assert_int_equal(p->desc.start(st), FERRY_OK);
        assert_int_equal(p->desc.open(st, 0, &w), FERRY_OK);
        assert_int_equal(write_batch(p, w, "r", &m, 1), FERRY_RETRY);
        assert_int_equal(write_batch(p, w, "r", &m, 1), FERRY_RETRY);
        assert_true(fh_logged(fake_ctx, "cannot write to /dev/full: No "
                                        "space left on device"));
        /* Logged once, not per retry. */
        assert_int_equal(fh_nlogs(fake_ctx), 1);
        p->desc.close(w);
        p->desc.fini(st);
    }

    fake_reset(&p->desc);
    fh_opt(fake_ctx, "path", tmp_path("no/such/dir/out.jsonl"));
    assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_OK);
    assert_int_equal(p->desc.start(st), FERRY_ERROR);
    assert_true(fh_logged(fake_ctx, "cannot open "));
    p->desc.fini(st);
    loader_close(p);
}

/* ---- sink_null ----------------------------------------------------------- */

static void test_sink_null(void **state)
{
    struct plugin *p = load("sink_null", FERRY_KIND_SINK);
    struct ferry_msg m[3];
    uint64_t t0, ms;
    void *st, *w;

    m[0] = mk(FERRY_OP_FULL, "company", "a", "{}", 1, 1);
    m[1] = m[2] = m[0];
    assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_OK);
    assert_int_equal(p->desc.open(st, 0, &w), FERRY_OK);
    assert_int_equal(write_batch(p, w, "r", m, 3), FERRY_OK);
    assert_int_equal(write_batch(p, w, "r", m, 2), FERRY_OK);
    assert_true(fh_metric("ferry_sink_operations_total", "op=discard") == 5);
    p->desc.close(w);
    p->desc.fini(st);

    /* delay makes every write take that long. */
    fake_reset(&p->desc);
    fh_opt(fake_ctx, "delay", "30ms");
    assert_int_equal(p->desc.init(&fh_host, fake_ctx, &st), FERRY_OK);
    assert_int_equal(p->desc.open(st, 0, &w), FERRY_OK);
    t0 = fh_now_ns();
    assert_int_equal(write_batch(p, w, "r", m, 1), FERRY_OK);
    ms = (fh_now_ns() - t0) / 1000000;
    assert_true(ms >= 29);
    p->desc.close(w);
    p->desc.fini(st);
    loader_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_replays),
        cmocka_unit_test(test_source_repeat_preload),
        cmocka_unit_test(test_source_rate),
        cmocka_unit_test(test_source_stop),
        cmocka_unit_test(test_source_missing_file),
        cmocka_unit_test(test_source_invalid_rate_limited),
        cmocka_unit_test(test_jsonl_default_fields),
        cmocka_unit_test(test_jsonl_custom_fields),
        cmocka_unit_test(test_jsonl_invalid),
        cmocka_unit_test(test_jsonl_positions_repeat),
        cmocka_unit_test(test_jsonl_resume),
        cmocka_unit_test(test_jsonl_rate),
        cmocka_unit_test(test_sink_file_format),
        cmocka_unit_test(test_sink_file_concurrent),
        cmocka_unit_test(test_sink_file_errors),
        cmocka_unit_test(test_sink_null),
    };

    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
