/*
 * tests/unit/test_datastream.c: datastream frame -> ferry message mapping
 * (plugins/lib/schematic/datastream.c) against the spec samples, every rejection
 * reason, and stream positions.
 *
 * Samples are read from $SAMPLES_DIR, else tests/fixtures/samples (a copy
 * committed with the tests), else ../shared/spec/samples.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "schematic/datastream.h"
#include "samples.h"

/* Parses a sample file as a frame; the caller releases f. */
static void parse_sample(struct ds_frame *f, const char *name)
{
    size_t len;
    char *buf = load_sample(name, &len);

    ds_frame_parse(f, buf, len);
    /* The frame must not point into the caller's buffer. */
    memset(buf, 'x', len);
    free(buf);
}

static void parse_str(struct ds_frame *f, const char *s)
{
    ds_frame_parse(f, s, strlen(s));
}

static void assert_pos(const struct ferry_msg *m, uint64_t ms, uint64_t seq)
{
    assert_int_equal(m->pos.set, 1);
    assert_int_equal(m->pos.ms, ms);
    assert_int_equal(m->pos.seq, seq);
}

/* Asserts that the payload is the compact JSON of the sample's data. */
static void assert_payload_is_data(const struct ferry_msg *m, const char *name)
{
    char *buf = load_sample(name, NULL);
    json_t *root = json_loads(buf, 0, NULL);
    char *want;

    assert_non_null(root);
    want = json_dumps(json_object_get(root, "data"),
                      JSON_COMPACT | JSON_ENCODE_ANY);
    assert_string_equal(m->payload, want);
    assert_int_equal(m->payload_len, strlen(want));
    free(want);
    json_decref(root);
    free(buf);
}

static void assert_key(const struct ferry_msg *m, uint32_t i, const char *k,
                       const char *v)
{
    assert_true(i < m->nkeys);
    assert_string_equal(m->keys[i].key, k);
    assert_string_equal(m->keys[i].value, v);
}

static void assert_invalid(const char *frame, size_t len, const char *reason)
{
    struct ds_frame f;

    ds_frame_parse(&f, frame, len);
    if (f.kind != DS_INVALID || strcmp(f.reason, reason))
        fail_msg("frame %.80s: kind %d reason %s (%s), want %s", frame, f.kind,
                 f.reason, f.detail, reason);
    assert_true(f.detail[0] != '\0');
    assert_int_equal(f.msg.op, 0);
    assert_int_equal(f.msg.nkeys, 0);
    ds_frame_release(&f);
}

#define INVALID(s, reason) assert_invalid((s), strlen(s), (reason))

/* ---- samples ----------------------------------------------------------- */

static void test_msg01_flags_snapshot(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-01-flags-full.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.struct_size, sizeof(struct ferry_msg));
    assert_int_equal(f.msg.op, FERRY_OP_SNAPSHOT);
    assert_int_equal(f.msg.flags, 0);
    assert_string_equal(f.msg.entity_type, "flags");
    assert_string_equal(f.msg.order_key, "flags");
    assert_string_equal(f.msg.entity_id, "");
    assert_int_equal(f.msg.nkeys, 0);
    assert_null(f.msg.keys);
    assert_int_equal(f.msg.pos.set, 0);
    assert_int_equal(f.msg.recv_ns, 0);
    assert_string_equal(f.stream_id, "");
    assert_int_equal(f.paginated, 0);
    assert_payload_is_data(&f.msg, "msg-01-flags-full.json");
    assert_int_equal(f.msg.payload[0], '[');
    ds_frame_release(&f);
}

static void test_msg02_company_full(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-02-company-full.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_FULL);
    assert_string_equal(f.msg.entity_type, "company");
    assert_string_equal(f.msg.entity_id, "comp_acme");
    assert_string_equal(f.msg.order_key, "");
    assert_int_equal(f.msg.nkeys, 2);
    assert_key(&f.msg, 0, "domain", "acme.test");
    assert_key(&f.msg, 1, "id", "acme");
    assert_pos(&f.msg, 1767225600000ull, 0);
    assert_string_equal(f.stream_id, "1767225600000-0");
    assert_payload_is_data(&f.msg, "msg-02-company-full.json");
    /* Member order of data is preserved. */
    assert_memory_equal(f.msg.payload, "{\"id\":\"comp_acme\",\"account_id\"",
                        30);
    ds_frame_release(&f);
}

static void test_msg03_user_full(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-03-user-full.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_FULL);
    assert_string_equal(f.msg.entity_type, "user");
    assert_string_equal(f.msg.entity_id, "user_ada");
    assert_int_equal(f.msg.nkeys, 2);
    assert_key(&f.msg, 0, "email", "ada@acme.test");
    assert_key(&f.msg, 1, "id", "ada");
    assert_pos(&f.msg, 1767225600001ull, 0);
    assert_payload_is_data(&f.msg, "msg-03-user-full.json");
    ds_frame_release(&f);
}

static void test_msg04_to_06_partials(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-04-company-partial-metrics-credits.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_PARTIAL);
    assert_string_equal(f.msg.entity_type, "company");
    assert_string_equal(f.msg.entity_id, "comp_acme");
    assert_int_equal(f.msg.nkeys, 0);
    assert_pos(&f.msg, 1767225600002ull, 0);
    assert_payload_is_data(&f.msg,
                           "msg-04-company-partial-metrics-credits.json");
    ds_frame_release(&f);

    parse_sample(&f, "msg-05-company-partial-traits-keys-plans.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_PARTIAL);
    assert_string_equal(f.msg.entity_id, "comp_acme");
    assert_int_equal(f.msg.nkeys, 1);
    assert_key(&f.msg, 0, "slug", "acme-inc");
    assert_pos(&f.msg, 1767225600003ull, 0);
    assert_payload_is_data(&f.msg,
                           "msg-05-company-partial-traits-keys-plans.json");
    ds_frame_release(&f);

    parse_sample(&f, "msg-06-user-partial-traits.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_PARTIAL);
    assert_string_equal(f.msg.entity_type, "user");
    assert_string_equal(f.msg.entity_id, "user_ada");
    assert_int_equal(f.msg.nkeys, 0);
    assert_pos(&f.msg, 1767225600004ull, 0);
    ds_frame_release(&f);
}

static void test_msg07_08_deletes(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-07-company-delete.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_DELETE);
    assert_string_equal(f.msg.entity_type, "company");
    assert_string_equal(f.msg.entity_id, "comp_acme");
    assert_int_equal(f.msg.nkeys, 2);
    assert_key(&f.msg, 0, "domain", "acme.test");
    assert_key(&f.msg, 1, "id", "acme");
    assert_pos(&f.msg, 1767225600005ull, 0);
    assert_payload_is_data(&f.msg, "msg-07-company-delete.json");
    ds_frame_release(&f);

    parse_sample(&f, "msg-08-user-delete.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_DELETE);
    assert_string_equal(f.msg.entity_type, "user");
    assert_string_equal(f.msg.entity_id, "user_ada");
    assert_int_equal(f.msg.nkeys, 2);
    assert_key(&f.msg, 0, "email", "ada@acme.test");
    assert_pos(&f.msg, 1767225600006ull, 0);
    ds_frame_release(&f);
}

static void test_msg09_10_single_flag(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-09-flag-single-full.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_FULL);
    assert_string_equal(f.msg.entity_type, "flags");
    assert_string_equal(f.msg.order_key, "flags");
    assert_string_equal(f.msg.entity_id, "plan-flag");
    assert_int_equal(f.msg.nkeys, 0);
    assert_pos(&f.msg, 1767225600007ull, 0);
    assert_payload_is_data(&f.msg, "msg-09-flag-single-full.json");
    ds_frame_release(&f);

    parse_sample(&f, "msg-10-flag-single-delete.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_DELETE);
    assert_string_equal(f.msg.entity_type, "flags");
    assert_string_equal(f.msg.order_key, "flags");
    assert_string_equal(f.msg.entity_id, "trait-flag");
    assert_pos(&f.msg, 1767225600008ull, 0);
    ds_frame_release(&f);
}

static void test_msg11_12_errors(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-11-error-company-not-found.json");
    assert_int_equal(f.kind, DS_ERROR);
    assert_string_equal(f.detail, "company not found keys={\"id\":\"nope\"} "
                                  "entity_type=rulesengine.Company");
    assert_int_equal(f.msg.op, 0);
    ds_frame_release(&f);

    parse_sample(&f, "msg-12-error-generic.json");
    assert_int_equal(f.kind, DS_ERROR);
    assert_string_equal(f.detail, "invalid request");
    ds_frame_release(&f);
}

static void test_msg13_reload(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-13-reload.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_RELOAD);
    assert_true(FERRY_OP_IS_CONTROL(f.msg.op));
    assert_string_equal(f.msg.entity_type, "control");
    assert_string_equal(f.msg.order_key, "control");
    assert_string_equal(f.msg.entity_id, "");
    assert_string_equal(f.msg.payload, "");
    assert_int_equal(f.msg.payload_len, 0);
    assert_int_equal(f.msg.pos.set, 0);
    ds_frame_release(&f);
}

static void test_msg14_15_pages(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_sample(&f, "msg-14-flags-page-1-of-2.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_SNAPSHOT);
    assert_int_equal(f.msg.flags, FERRY_MSG_F_MORE);
    assert_int_equal(f.paginated, 1);
    assert_int_equal(f.page, 1);
    assert_int_equal(f.total, 6);
    assert_payload_is_data(&f.msg, "msg-14-flags-page-1-of-2.json");
    ds_frame_release(&f);

    parse_sample(&f, "msg-15-flags-page-2-of-2.json");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_SNAPSHOT);
    assert_int_equal(f.msg.flags, 0);
    assert_int_equal(f.paginated, 1);
    assert_int_equal(f.page, 2);
    assert_int_equal(f.total, 6);
    ds_frame_release(&f);
}

/* ---- other valid frames ------------------------------------------------- */

static void test_subscribed_and_ignored(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_str(&f, "{\"data\":{},\"entity_type\":\"rulesengine.Companies\","
                  "\"message_type\":\"full\"}");
    assert_int_equal(f.kind, DS_SUBSCRIBED);
    ds_frame_release(&f);
    parse_str(&f, "{\"entity_type\":\"rulesengine.Users\","
                  "\"message_type\":\"subscribed\"}");
    assert_int_equal(f.kind, DS_SUBSCRIBED);
    ds_frame_release(&f);
    /* An error on a subscription is an error, not a confirmation. */
    parse_str(&f, "{\"data\":{\"error\":\"denied\"},\"entity_type\":"
                  "\"rulesengine.Users\",\"message_type\":\"error\"}");
    assert_int_equal(f.kind, DS_ERROR);
    assert_string_equal(f.detail, "denied");
    ds_frame_release(&f);

    parse_str(&f, "{\"data\":{},\"entity_type\":\"rulesengine.Widget\","
                  "\"message_type\":\"full\"}");
    assert_int_equal(f.kind, DS_IGNORED);
    ds_frame_release(&f);
    parse_str(&f, "{\"data\":[],\"entity_type\":\"rulesengine.Flags\","
                  "\"message_type\":\"partial\"}");
    assert_int_equal(f.kind, DS_IGNORED);
    ds_frame_release(&f);
    parse_str(&f, "{\"data\":[],\"entity_type\":\"rulesengine.Flags\","
                  "\"message_type\":\"delete\"}");
    assert_int_equal(f.kind, DS_IGNORED);
    ds_frame_release(&f);
}

static void test_entity_fallbacks(void **state)
{
    struct ds_frame f;

    (void)state;
    /* delete with a null entity_id falls back to data.id */
    parse_str(&f, "{\"data\":{\"id\":\"c1\",\"keys\":{\"a\":\"B\","
                  "\"n\":null}},\"entity_id\":null,\"entity_type\":"
                  "\"rulesengine.Company\",\"message_type\":\"delete\"}");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_DELETE);
    assert_string_equal(f.msg.entity_id, "c1");
    assert_int_equal(f.msg.nkeys, 2);
    assert_key(&f.msg, 0, "a", "B");
    assert_key(&f.msg, 1, "n", "");
    ds_frame_release(&f);

    /* single flag: key lower-cased (also non-ASCII), partial = full */
    parse_str(&f, "{\"data\":{\"id\":\"f1\",\"key\":\"\xc3\x84pfel-FLAG\"},"
                  "\"entity_type\":\"rulesengine.Flag\","
                  "\"message_type\":\"partial\",\"stream_id\":\"5-6\"}");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_FULL);
    assert_string_equal(f.msg.entity_id, "\xc3\xa4pfel-flag");
    assert_pos(&f.msg, 5, 6);
    ds_frame_release(&f);

    /* flag delete without key falls back to id */
    parse_str(&f, "{\"data\":{\"id\":\"Flag_1\"},\"entity_type\":"
                  "\"rulesengine.Flag\",\"message_type\":\"delete\"}");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_int_equal(f.msg.op, FERRY_OP_DELETE);
    assert_string_equal(f.msg.entity_id, "flag_1");
    ds_frame_release(&f);

    /* absent or empty stream_id: no position; escapes decoded in ids */
    parse_str(&f, "{\"data\":{\"id\":\"x\"},\"entity_id\":\"c\\u00e9\","
                  "\"entity_type\":\"rulesengine.User\","
                  "\"message_type\":\"full\",\"stream_id\":\"\"}");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_string_equal(f.msg.entity_id, "c\xc3\xa9");
    assert_int_equal(f.msg.pos.set, 0);
    ds_frame_release(&f);

    /* Leading whitespace and trailing whitespace are fine. */
    parse_str(&f, " \n{\"data\":{\"id\":\"x\"},\"entity_type\":"
                  "\"rulesengine.User\",\"message_type\":\"full\"}\r\n ");
    assert_int_equal(f.kind, DS_MESSAGE);
    assert_string_equal(f.msg.entity_id, "x");
    assert_string_equal(f.msg.payload, "{\"id\":\"x\"}");
    ds_frame_release(&f);
}

/* ---- rejections ---------------------------------------------------------- */

static void test_invalid_utf8(void **state)
{
    static const char *bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf", /* overlong, 4 bytes */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* F5 lead */
        "\xff",             /* never valid */
        "\x80",             /* lone continuation */
        "\xc3",             /* truncated */
        "\xe2\x82",         /* truncated */
        "\xc1\xbf",         /* C1 lead */
    };
    char frame[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = snprintf(frame, sizeof(frame),
                         "{\"data\":{\"id\":\"a%sb\"},\"entity_id\":\"a\","
                         "\"entity_type\":\"rulesengine.User\","
                         "\"message_type\":\"full\"}",
                         bad[i]);

        assert_invalid(frame, (size_t)n, DS_REASON_UTF8);
    }
    /* Outside strings too, and at the very end. */
    INVALID("{\"data\":1}\xff", DS_REASON_UTF8);
    /* The boundaries themselves are valid. */
    {
        struct ds_frame f;
        const char *ok = "{\"data\":{\"id\":\"\xed\x9f\xbf\xee\x80\x80"
                         "\xf4\x8f\xbf\xbf\xf0\x90\x80\x80\"},"
                         "\"entity_type\":\"rulesengine.User\","
                         "\"message_type\":\"full\"}";

        parse_str(&f, ok);
        assert_int_equal(f.kind, DS_MESSAGE);
        ds_frame_release(&f);
    }
}

static void test_invalid_json(void **state)
{
    static const unsigned char garbage[] = {0x00, 0x01, 0x7b, 0x22, 0x41,
                                            0x00, 0x7d, 0x10, 0x09};

    (void)state;
    INVALID("", DS_REASON_JSON);
    INVALID("   ", DS_REASON_JSON);
    INVALID("not json", DS_REASON_JSON);
    INVALID("{\"data\":", DS_REASON_JSON);
    INVALID("{\"data\":1,}", DS_REASON_JSON);
    INVALID("{\"data\":1} {}", DS_REASON_JSON);
    INVALID("[1,2,3]", DS_REASON_JSON);
    INVALID("\"string\"", DS_REASON_JSON);
    INVALID("42", DS_REASON_JSON);
    INVALID("null", DS_REASON_JSON);
    INVALID("{\"data\":\"a\\u0000b\"}", DS_REASON_JSON);
    INVALID("{\"data\":\"\\ud800\"}", DS_REASON_JSON);
    assert_invalid((const char *)garbage, sizeof(garbage), DS_REASON_JSON);
    /* A NUL byte inside an otherwise fine frame (length-delimited input). */
    assert_invalid("{\"data\":1}\0", 11, DS_REASON_JSON);
}

static void test_too_deep(void **state)
{
    size_t n = 100000, i;
    char *buf = malloc(n * 2 + 64);
    char frame[512];
    int len;

    (void)state;
    assert_non_null(buf);
    /* 100k '[' and no closing bracket. */
    memset(buf, '[', n);
    assert_invalid(buf, n, DS_REASON_DEPTH);
    /* 100k balanced brackets inside data. */
    len = sprintf(buf, "{\"data\":");
    for (i = 0; i < n; i++)
        buf[len++] = '[';
    for (i = 0; i < n; i++)
        buf[len++] = ']';
    len += sprintf(buf + len, "}");
    assert_invalid(buf, (size_t)len, DS_REASON_DEPTH);
    /* 100k '{' is a syntax error at the second byte: the scanner checks
     * the grammar and the depth as it goes. */
    memset(buf, '{', n);
    assert_invalid(buf, n, DS_REASON_JSON);
    /* 100k nested objects {"a":{"a":... */
    len = 0;
    for (i = 0; i < n / 8; i++)
        len += sprintf(buf + len, "{\"a\":");
    assert_invalid(buf, (size_t)len, DS_REASON_DEPTH);
    free(buf);

    /* Exactly DS_MAX_DEPTH levels (the envelope counts) pass; one more
     * does not. Brackets inside strings do not count. */
    len = sprintf(frame, "{\"data\":{\"id\":\"[[[[{{{{\",\"x\":");
    for (i = 0; i < DS_MAX_DEPTH - 2; i++)
        frame[len++] = '[';
    for (i = 0; i < DS_MAX_DEPTH - 2; i++)
        frame[len++] = ']';
    len += sprintf(frame + len, "},\"entity_type\":\"rulesengine.User\","
                                "\"message_type\":\"full\"}");
    {
        struct ds_frame f;

        ds_frame_parse(&f, frame, (size_t)len);
        assert_int_equal(f.kind, DS_MESSAGE);
        ds_frame_release(&f);
    }
    len = sprintf(frame, "{\"data\":{\"id\":\"x\",\"x\":");
    for (i = 0; i < DS_MAX_DEPTH - 1; i++)
        frame[len++] = '[';
    for (i = 0; i < DS_MAX_DEPTH - 1; i++)
        frame[len++] = ']';
    len += sprintf(frame + len, "},\"entity_type\":\"rulesengine.User\","
                                "\"message_type\":\"full\"}");
    assert_invalid(frame, (size_t)len, DS_REASON_DEPTH);
}

static void test_wrong_type(void **state)
{
    (void)state;
    INVALID("{\"entity_type\":5,\"message_type\":\"full\"}", DS_REASON_TYPE);
    INVALID("{\"entity_type\":\"rulesengine.User\",\"message_type\":true}",
            DS_REASON_TYPE);
    INVALID("{\"data\":{\"id\":\"x\"},\"entity_id\":7,\"entity_type\":"
            "\"rulesengine.User\",\"message_type\":\"full\"}",
            DS_REASON_TYPE);
    INVALID("{\"data\":{\"id\":\"x\"},\"entity_id\":\"x\",\"entity_type\":"
            "\"rulesengine.User\",\"message_type\":\"full\","
            "\"stream_id\":17}",
            DS_REASON_TYPE);
    /* keys not an object of strings */
    INVALID("{\"data\":{\"id\":\"x\",\"keys\":[\"a\"]},\"entity_id\":\"x\","
            "\"entity_type\":\"rulesengine.User\",\"message_type\":\"full\"}",
            DS_REASON_TYPE);
    INVALID("{\"data\":{\"id\":\"x\",\"keys\":{\"a\":1}},\"entity_id\":\"x\","
            "\"entity_type\":\"rulesengine.Company\","
            "\"message_type\":\"partial\"}",
            DS_REASON_TYPE);
    /* data not an object / not an array */
    INVALID("{\"data\":null,\"entity_id\":\"x\",\"entity_type\":"
            "\"rulesengine.Company\",\"message_type\":\"full\"}",
            DS_REASON_TYPE);
    INVALID("{\"entity_id\":\"x\",\"entity_type\":\"rulesengine.Company\","
            "\"message_type\":\"delete\"}",
            DS_REASON_TYPE);
    INVALID("{\"data\":[],\"entity_id\":\"x\",\"entity_type\":"
            "\"rulesengine.User\",\"message_type\":\"partial\"}",
            DS_REASON_TYPE);
    INVALID("{\"data\":{},\"entity_type\":\"rulesengine.Flags\","
            "\"message_type\":\"full\"}",
            DS_REASON_TYPE);
    INVALID("{\"data\":\"x\",\"entity_type\":\"rulesengine.Flag\","
            "\"message_type\":\"full\"}",
            DS_REASON_TYPE);
    INVALID("{\"data\":{\"key\":3},\"entity_type\":\"rulesengine.Flag\","
            "\"message_type\":\"full\"}",
            DS_REASON_TYPE);
    /* pagination */
    INVALID("{\"data\":[],\"entity_type\":\"rulesengine.Flags\","
            "\"message_type\":\"full\",\"pagination\":[]}",
            DS_REASON_TYPE);
    INVALID("{\"data\":[],\"entity_type\":\"rulesengine.Flags\","
            "\"message_type\":\"full\",\"pagination\":{\"has_more\":1}}",
            DS_REASON_TYPE);
    INVALID("{\"data\":[],\"entity_type\":\"rulesengine.Flags\","
            "\"message_type\":\"full\",\"pagination\":{\"page\":\"1\"}}",
            DS_REASON_TYPE);
    INVALID("{\"data\":[],\"entity_type\":\"rulesengine.Flags\","
            "\"message_type\":\"full\",\"pagination\":{\"total\":1.5}}",
            DS_REASON_TYPE);
}

static void test_missing_entity_id(void **state)
{
    (void)state;
    /* partial: entity_id is required, data.id does not stand in */
    INVALID("{\"data\":{\"id\":\"comp_acme\"},\"entity_id\":null,"
            "\"entity_type\":\"rulesengine.Company\","
            "\"message_type\":\"partial\"}",
            DS_REASON_MISSING_ID);
    INVALID("{\"data\":{},\"entity_type\":\"rulesengine.User\","
            "\"message_type\":\"partial\"}",
            DS_REASON_MISSING_ID);
    INVALID("{\"data\":{},\"entity_id\":\"\",\"entity_type\":"
            "\"rulesengine.User\",\"message_type\":\"partial\"}",
            DS_REASON_MISSING_ID);
    /* delete / full without entity_id and without data.id */
    INVALID("{\"data\":{\"keys\":{}},\"entity_id\":null,\"entity_type\":"
            "\"rulesengine.Company\",\"message_type\":\"delete\"}",
            DS_REASON_MISSING_ID);
    INVALID("{\"data\":{\"id\":\"\"},\"entity_type\":\"rulesengine.User\","
            "\"message_type\":\"full\"}",
            DS_REASON_MISSING_ID);
    /* flags without key (a full may not use the id) */
    INVALID("{\"data\":{\"id\":\"f\"},\"entity_type\":\"rulesengine.Flag\","
            "\"message_type\":\"full\"}",
            DS_REASON_MISSING_ID);
    INVALID("{\"data\":{},\"entity_type\":\"rulesengine.Flag\","
            "\"message_type\":\"delete\"}",
            DS_REASON_MISSING_ID);
}

static void test_bad_stream_id(void **state)
{
    static const char *bad[] = {
        "abc",
        "1",
        "1-",
        "-1",
        "1-2-3",
        "+1-2",
        "1-+2",
        "1--2",
        " 1-2",
        "1-2 ",
        "18446744073709551616-0",
        "0-18446744073709551616",
        "0x10-1",
        "1.5-2",
        "00000000000000000000000000000000000000000000000001-1",
    };
    char frame[512];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = snprintf(frame, sizeof(frame),
                         "{\"data\":{\"id\":\"x\"},\"entity_id\":\"x\","
                         "\"entity_type\":\"rulesengine.User\","
                         "\"message_type\":\"full\",\"stream_id\":\"%s\"}",
                         bad[i]);

        assert_invalid(frame, (size_t)n, DS_REASON_BAD_STREAM_ID);
    }
}

static void test_unknown_message_type(void **state)
{
    (void)state;
    INVALID("{\"data\":{\"id\":\"x\"},\"entity_id\":\"x\",\"entity_type\":"
            "\"rulesengine.User\",\"message_type\":\"upsert\"}",
            DS_REASON_UNKNOWN_OP);
    INVALID("{\"data\":{\"id\":\"x\"},\"entity_id\":\"x\",\"entity_type\":"
            "\"rulesengine.Company\"}",
            DS_REASON_UNKNOWN_OP);
    INVALID("{\"data\":[],\"entity_type\":\"rulesengine.Flags\","
            "\"message_type\":\"FULL\"}",
            DS_REASON_UNKNOWN_OP);
}

static void test_detail_is_log_safe(void **state)
{
    struct ds_frame f;

    (void)state;
    parse_str(&f, "{\"data\":{\"error\":\"bad\\nline\\u001b[31m\"},"
                  "\"message_type\":\"error\"}");
    assert_int_equal(f.kind, DS_ERROR);
    assert_string_equal(f.detail, "bad?line?[31m");
    ds_frame_release(&f);
}

/* Random bytes and random mutations of a sample: never a crash, always a
 * verdict with a reason when invalid. */
static void test_fuzz_mutations(void **state)
{
    size_t len, i;
    char *base = load_sample("msg-02-company-full.json", &len);
    char *buf = malloc(len);
    unsigned seed = 12345;

    (void)state;
    assert_non_null(buf);
    for (i = 0; i < 3000; i++) {
        struct ds_frame f;
        int k, muts = 1 + (int)(i % 4);

        memcpy(buf, base, len);
        for (k = 0; k < muts; k++) {
            seed = seed * 1103515245u + 12345u;
            buf[(seed >> 8) % len] = (char)(seed >> 20);
        }
        ds_frame_parse(&f, buf, (seed >> 4) % 7 == 0 ? (seed >> 9) % len : len);
        assert_true(f.kind >= DS_MESSAGE && f.kind <= DS_INVALID);
        if (f.kind == DS_INVALID)
            assert_true(f.reason[0] != '\0');
        if (f.kind == DS_MESSAGE)
            assert_int_equal(strlen(f.msg.payload), f.msg.payload_len);
        ds_frame_release(&f);
    }
    free(buf);
    free(base);
}

/* Checks one frame against jansson: the scanner accepts exactly the JSON
 * jansson accepts, and a message carries what jansson sees in the frame. */
static void check_against_jansson(const char *buf, size_t len)
{
    struct ds_frame f;
    json_t *root;
    json_error_t jerr;

    ds_frame_parse(&f, buf, len);
    root = json_loadb(buf, len, 0, &jerr);
    if (f.kind == DS_INVALID && !strcmp(f.reason, DS_REASON_DEPTH)) {
        /* jansson allows 2048 levels; nothing to compare. */
    } else if (f.kind == DS_INVALID && (!strcmp(f.reason, DS_REASON_JSON) ||
                                        !strcmp(f.reason, DS_REASON_UTF8))) {
        if (root && json_is_object(root))
            fail_msg("scanner refused (%s: %s) what jansson accepts: %.*s",
                     f.reason, f.detail, (int)len, buf);
    } else {
        if (!root || !json_is_object(root))
            fail_msg("scanner accepted (kind %d) what jansson refuses "
                     "(%s): %.*s",
                     f.kind, root ? "not an object" : jerr.text, (int)len, buf);
    }
    if (f.kind == DS_MESSAGE && f.msg.op != FERRY_OP_RELOAD) {
        json_t *data = json_object_get(root, "data");
        json_t *payload = json_loadb(f.msg.payload, f.msg.payload_len, 0, NULL);

        assert_non_null(payload);
        assert_true(json_equal(payload, data));
        json_decref(payload);
        if (!strcmp(f.msg.entity_type, "company") ||
            !strcmp(f.msg.entity_type, "user")) {
            json_t *keys = json_object_get(data, "keys");
            json_t *eid = json_object_get(root, "entity_id");
            const char *k;
            json_t *v;
            uint32_t i = 0;

            if (json_is_string(eid) && json_string_length(eid) > 0)
                assert_string_equal(f.msg.entity_id, json_string_value(eid));
            else
                assert_string_equal(
                    f.msg.entity_id,
                    json_string_value(json_object_get(data, "id")));
            assert_int_equal(f.msg.nkeys,
                             json_is_object(keys) ? json_object_size(keys) : 0);
            if (json_is_object(keys)) {
                json_object_foreach(keys, k, v)
                {
                    assert_string_equal(f.msg.keys[i].key, k);
                    assert_string_equal(f.msg.keys[i].value,
                                        json_is_string(v) ? json_string_value(v)
                                                          : "");
                    i++;
                }
            }
        }
    }
    json_decref(root);
    ds_frame_release(&f);
}

static void test_matches_jansson(void **state)
{
    static const char *names[] = {
        "msg-01-flags-full.json", "msg-02-company-full.json",
        "msg-05-company-partial-traits-keys-plans.json",
        "msg-07-company-delete.json", "msg-11-error-company-not-found.json"};
    static const char alphabet[] = "{}[]\",:\\ \t0123456789eE.-+tfnulr"
                                   "u\x01\x7f\xc3\xa9";
    static const char *crafted[] = {
        "{\"data\":{\"id\":\"x\",\"keys\":{\"a\":\"1\",\"b\":\"2\","
        "\"a\":\"3\"}},\"entity_type\":\"rulesengine.User\","
        "\"message_type\":\"full\"}",
        "{\"d\\u0061ta\":{\"id\":\"x\",\"k\\u0065ys\":{\"\\u00e9\":"
        "\"\\ud83d\\ude00\",\"\\u00e9\":\"z\"}},\"entity_type\":"
        "\"rulesengine.\\u0055ser\",\"message_type\":\"full\"}",
        "{\"data\":{\"id\":1e400},\"entity_type\":\"x\"}",
        "{\"data\":{\"id\":1.5e308},\"entity_type\":\"x\"}",
        "{\"data\":{\"id\":-1e-400},\"entity_type\":\"x\"}",
        "{\"data\":{\"n\":9223372036854775807},\"entity_type\":\"x\"}",
        "{\"data\":{\"n\":9223372036854775808},\"entity_type\":\"x\"}",
        "{\"data\":{\"n\":-9223372036854775808},\"entity_type\":\"x\"}",
        "{\"data\":{\"n\":-9223372036854775809},\"entity_type\":\"x\"}",
        "{\"data\":{\"n\":00},\"entity_type\":\"x\"}",
        "{\"data\":{\"n\":-0.0e-0},\"entity_type\":\"x\"}",
        "{\"data\":{\"n\":1.},\"entity_type\":\"x\"}",
        "{\"data\":{\"n\":.5},\"entity_type\":\"x\"}",
        "{\"data\":{\"s\":\"\\ud800\\u0041\"},\"entity_type\":\"x\"}",
        "{\"data\":{\"s\":\"\\udc00\"},\"entity_type\":\"x\"}",
        "{\"data\":{\"s\":\"\\uD83D\\uDE00\\/\\b\\f\"},\"entity_type\":\"x\"}",
        "{\"data\":{\"s\":\"\\x\"},\"entity_type\":\"x\"}",
        "{\"data\":{\"s\":\"tab\there\"},\"entity_type\":\"x\"}",
        "{\"data\":[1,2,],\"entity_type\":\"x\"}",
        "{\"data\":[,],\"entity_type\":\"x\"}",
        "{\"data\" : [ true , false , null ] , \"entity_type\" : \"x\" }",
        "{\"data\":tru}",
        "{\"data\":nulll}",
        "{\"a\":1}}",
        "{} ",
        "{\"\":\"\"}",
    };
    unsigned seed = 777;
    size_t i, len;
    int n, r;

    (void)state;
    for (i = 0; i < sizeof(crafted) / sizeof(crafted[0]); i++)
        check_against_jansson(crafted[i], strlen(crafted[i]));
    for (n = 0; n < (int)(sizeof(names) / sizeof(names[0])); n++) {
        char *base = load_sample(names[n], &len);
        char *buf = malloc(len + 1);

        assert_non_null(buf);
        check_against_jansson(base, len);
        for (r = 0; r < 1500; r++) {
            int k, muts = 1 + r % 3;

            memcpy(buf, base, len);
            for (k = 0; k < muts; k++) {
                seed = seed * 1103515245u + 12345u;
                buf[(seed >> 8) % len] =
                    alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
            }
            check_against_jansson(buf, len);
        }
        free(buf);
        free(base);
    }
}

/* Strings of every length around the scanner's 8- and 16-byte steps with
 * one special sequence at every position, the string ending near the end
 * of the frame: the verdict and the decoded id are jansson's, and a bad
 * UTF-8 byte is reported at its own offset. */
static void test_string_boundaries(void **state)
{
    static const struct {
        const char *s;
        const char *reason; /* NULL: valid */
        int bad;            /* invalid UTF-8: the bad byte's offset */
    } specials[] = {
        {"\xc3\xa9", NULL, 0},         /* U+00E9 */
        {"\xf0\x9f\x98\x80", NULL, 0}, /* U+1F600 */
        {"\xe6\x9d\xb1\xe4\xba\xac", NULL, 0},
        {"\\n", NULL, 0},
        {"\\\"", NULL, 0},
        {"\\\\", NULL, 0},
        {"\\u00e9", NULL, 0},
        {"\\ud83d\\ude00", NULL, 0},
        {"\x7f", NULL, 0},
        {"\x01", DS_REASON_JSON, 0},
        {"\\u0000", DS_REASON_JSON, 0},
        {"\\q", DS_REASON_JSON, 0},
        {"\\ud83d", DS_REASON_JSON, 0},
        {"\xff", DS_REASON_UTF8, 0},
        {"\xc3", DS_REASON_UTF8, 0},         /* cut short by the next byte */
        {"\xed\xa0\x80", DS_REASON_UTF8, 0}, /* a surrogate */
        {"\xc3\xa9\x80", DS_REASON_UTF8, 2}, /* a stray continuation */
    };
    static const char head[] = "{\"entity_type\":\"rulesengine.User\","
                               "\"message_type\":\"full\",\"data\":{\"id\":\"";
    static const char fill[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF";
    char frame[256];
    size_t i, n, k;

    (void)state;
    for (i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
        for (n = 0; n <= 40; n++) {
            for (k = 0; k <= n; k++) {
                struct ds_frame f;
                int len = snprintf(frame, sizeof(frame), "%s%.*s%s%.*s\"}}",
                                   head, (int)k, fill, specials[i].s,
                                   (int)(n - k), fill + k);

                ds_frame_parse(&f, frame, (size_t)len);
                if (!specials[i].reason) {
                    assert_int_equal(f.kind, DS_MESSAGE);
                } else {
                    assert_int_equal(f.kind, DS_INVALID);
                    assert_string_equal(f.reason, specials[i].reason);
                }
                if (specials[i].reason &&
                    !strcmp(specials[i].reason, DS_REASON_UTF8)) {
                    char want[64];

                    snprintf(want, sizeof(want), "invalid UTF-8 at byte %zu",
                             sizeof(head) - 1 + k + (size_t)specials[i].bad);
                    assert_string_equal(f.detail, want);
                }
                ds_frame_release(&f);
                check_against_jansson(frame, (size_t)len);
                /* Cut inside the string: unterminated. */
                check_against_jansson(frame, (size_t)len - 3);
            }
        }
    }
}

/* Invalid UTF-8 anywhere outranks every other error, wherever the
 * scanner stopped. */
static void test_utf8_outranks_json(void **state)
{
    static const char *frames[] = {
        "{\"data\":tru,\"x\":\"\xff\"}",
        "{\"data\":{\"id\":\"x\" \"y\"},\"z\":\"\xc3\"}",
        "{\"data\":\"unterminated \xe2\x82",
        "{\"data\":\"\x01 control, then \xed\xa0\x80\"}",
        "{\"data\":1} trailing \xf4\x90\x80\x80",
        "{\"data\":[1e400,\"\xc0\xaf\"]}",
        "\xfe{\"data\":1}",
    };
    char deep[200];
    size_t i;
    int n;

    (void)state;
    for (i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
        struct ds_frame f;
        const char *bad = frames[i];
        char want[64];

        /* Each frame's first non-ASCII byte starts its bad sequence. */
        while (!(*bad & 0x80))
            bad++;
        snprintf(want, sizeof(want), "invalid UTF-8 at byte %zu",
                 (size_t)(bad - frames[i]));
        parse_str(&f, frames[i]);
        assert_int_equal(f.kind, DS_INVALID);
        assert_string_equal(f.reason, DS_REASON_UTF8);
        assert_string_equal(f.detail, want);
        ds_frame_release(&f);
    }
    /* Too deep first, then a bad byte. */
    n = snprintf(deep, sizeof(deep), "{\"data\":");
    memset(deep + n, '[', DS_MAX_DEPTH + 10);
    n += DS_MAX_DEPTH + 10;
    n += snprintf(deep + n, sizeof(deep) - (size_t)n, "\"\xff\"");
    {
        struct ds_frame f;
        char want[64];

        snprintf(want, sizeof(want), "invalid UTF-8 at byte %d", n - 2);
        ds_frame_parse(&f, deep, (size_t)n);
        assert_string_equal(f.reason, DS_REASON_UTF8);
        assert_string_equal(f.detail, want);
        ds_frame_release(&f);
    }
}

/* ---- positions ----------------------------------------------------------- */

static void test_pos(void **state)
{
    struct ferry_pos a = {0}, b = {0}, none = {0};
    char buf[FERRY_POS_STRLEN];

    (void)state;
    assert_int_equal(ds_pos_parse("1767225600000-0", &a), 0);
    assert_int_equal(a.set, 1);
    assert_int_equal(a.ms, 1767225600000ull);
    assert_int_equal(a.seq, 0);
    assert_string_equal(ds_pos_format(&a, buf, sizeof(buf)), "1767225600000-0");
    assert_int_equal(
        ds_pos_parse("18446744073709551615-18446744073709551615", &b), 0);
    assert_int_equal(b.ms, UINT64_MAX);
    assert_int_equal(b.seq, UINT64_MAX);
    ds_pos_format(&b, buf, sizeof(buf));
    assert_string_equal(buf, "18446744073709551615-18446744073709551615");
    assert_int_equal(strlen(buf) + 1, FERRY_POS_STRLEN);

    /* Compared as integers, not as strings: 9-0 < 10-0, 5-9 < 5-10. */
    assert_int_equal(ds_pos_parse("9-0", &a), 0);
    assert_int_equal(ds_pos_parse("10-0", &b), 0);
    assert_true(ferry_pos_cmp(&a, &b) < 0);
    assert_int_equal(ds_pos_parse("5-9", &a), 0);
    assert_int_equal(ds_pos_parse("5-10", &b), 0);
    assert_true(ferry_pos_cmp(&a, &b) < 0);
    assert_true(ferry_pos_cmp(&b, &a) > 0);
    assert_int_equal(ds_pos_parse("05-010", &a), 0);
    assert_true(ferry_pos_cmp(&a, &b) == 0);
    assert_true(ferry_pos_cmp(&none, &a) < 0);

    /* Failures leave the position untouched. */
    a.ms = 77;
    assert_int_equal(ds_pos_parse("1-x", &a), -1);
    assert_int_equal(ds_pos_parse("", &a), -1);
    assert_int_equal(ds_pos_parse("-", &a), -1);
    assert_int_equal(ds_pos_parse("1-2-", &a), -1);
    assert_int_equal(ds_pos_parse(NULL, &a), -1);
    assert_int_equal(a.ms, 77);
}

/* ---- throughput (reported, not asserted) --------------------------------- */

static void test_throughput(void **state)
{
    size_t len;
    char *buf = load_sample("msg-02-company-full.json", &len);
    json_t *root = json_loads(buf, 0, NULL);
    char *compact = json_dumps(root, JSON_COMPACT);
    size_t clen = strlen(compact);
    struct timespec t0, t1;
    double secs;
    int i, n = 0;

    (void)state;
    /* At most 200k frames or about half a second, whichever is first. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (i = 0; i < 1000; i++) {
            struct ds_frame f;

            ds_frame_parse(&f, compact, clen);
            assert_int_equal(f.kind, DS_MESSAGE);
            ds_frame_release(&f);
        }
        n += i;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    } while (secs < 0.5 && n < 200000);
    printf("ds_frame_parse: %.0f frames/s (%zu-byte company frame, %.0f "
           "MB/s)\n",
           n / secs, clen, n * (double)clen / secs / 1e6);
    free(compact);
    json_decref(root);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg01_flags_snapshot),
        cmocka_unit_test(test_msg02_company_full),
        cmocka_unit_test(test_msg03_user_full),
        cmocka_unit_test(test_msg04_to_06_partials),
        cmocka_unit_test(test_msg07_08_deletes),
        cmocka_unit_test(test_msg09_10_single_flag),
        cmocka_unit_test(test_msg11_12_errors),
        cmocka_unit_test(test_msg13_reload),
        cmocka_unit_test(test_msg14_15_pages),
        cmocka_unit_test(test_subscribed_and_ignored),
        cmocka_unit_test(test_entity_fallbacks),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_missing_entity_id),
        cmocka_unit_test(test_bad_stream_id),
        cmocka_unit_test(test_unknown_message_type),
        cmocka_unit_test(test_detail_is_log_safe),
        cmocka_unit_test(test_fuzz_mutations),
        cmocka_unit_test(test_matches_jansson),
        cmocka_unit_test(test_string_boundaries),
        cmocka_unit_test(test_utf8_outranks_json),
        cmocka_unit_test(test_pos),
        cmocka_unit_test(test_throughput),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
