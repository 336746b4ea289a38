/*
 * tests/unit/test_schematic.c: the Schematic data model
 * (plugins/lib/schematic, plugins/lib/json/gojson.c): byte-exact normalisation
 * of the spec samples, the partial-merge examples of section 5.5, REST
 * conversion, Go float and string formatting, times, and key names.
 *
 * Samples are read from $SAMPLES_DIR, else tests/fixtures/samples (a copy
 * committed with the tests), else ../shared/spec/samples.
 *
 * JSON inputs below are written with ' for " (see J()) to stay readable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "json/gojson.h"
#include "json/jv.h"
#include "schematic/schematic.h"
#include "json/utf8.h"
#include "oracle.h"
#include "samples.h"

/* ---- helpers ------------------------------------------------------------ */

static json_t *load_json(const char *name)
{
    char *buf = load_sample(name, NULL);
    json_error_t e;
    json_t *v = json_loads(buf, 0, &e);

    if (!v)
        fail_msg("%s: %s", name, e.text);
    free(buf);
    return v;
}

/* The `data` of a sample message (new reference). */
static json_t *sample_data(const char *name)
{
    json_t *root = load_json(name);
    json_t *data = json_incref(json_object_get(root, "data"));

    json_decref(root);
    assert_non_null(data);
    return data;
}

/* Parses JSON written with ' for ". */
static json_t *J(const char *s)
{
    char *copy = strdup(s), *p;
    json_error_t e;
    json_t *v;

    assert_non_null(copy);
    for (p = copy; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    v = json_loads(copy, JSON_DECODE_ANY, &e);
    if (!v)
        fail_msg("bad test JSON (%s): %s", e.text, copy);
    free(copy);
    return v;
}

/* Replaces ' with " in a copy of s. */
static char *Q(const char *s)
{
    char *copy = strdup(s), *p;

    assert_non_null(copy);
    for (p = copy; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    return copy;
}

static void check_entity_facts(enum sch_type type, const struct sch_entity *e);

/* Both the oracle and the product normalise in to exactly want. */
static void assert_norm(enum sch_type type, json_t *in, const char *want)
{
    char err[256];
    char *got = oracle_normalize(type, in, err, sizeof(err));
    char *text = json_dumps(in, JSON_COMPACT | JSON_ENCODE_ANY);
    struct sch_entity e;

    if (!got)
        fail_msg("normalize failed: %s", err);
    if (strcmp(got, want))
        fail_msg("normalized:\n%s\nwant:\n%s", got, want);
    free(got);
    if (sch_entity_normalize(type, text, strlen(text), &e, err, sizeof(err)))
        fail_msg("sch_entity_normalize failed: %s", err);
    if (strcmp(e.json, want) || e.len != strlen(want))
        fail_msg("sch_entity_normalize:\n%s\nwant:\n%s", e.json, want);
    check_entity_facts(type, &e);
    sch_entity_release(&e);
    free(text);
}

/* Normalises J(in) and compares with Q(want). */
static void norm_q(enum sch_type type, const char *in, const char *want)
{
    json_t *v = J(in);
    char *w = Q(want);

    assert_norm(type, v, w);
    free(w);
    json_decref(v);
}

/* Asserts that normalising J(in) fails with an error containing what. */
static void norm_fails(enum sch_type type, const char *in, const char *what)
{
    json_t *v = J(in);
    char err[256];
    char *got = oracle_normalize(type, v, err, sizeof(err));

    if (got)
        fail_msg("normalized %s to %s, want an error", in, got);
    if (!strstr(err, what))
        fail_msg("error \"%s\" lacks \"%s\"", err, what);
    json_decref(v);
}

/* A minimal valid company with extra members spliced in. */
#define CO(extra) "{'id':'c','account_id':'a','environment_id':'e'" extra "}"
#define CO_OUT(mid, tail)                                                      \
    "{'id':'c','account_id':'a','environment_id':'e','base_plan_id':null,"     \
    "'billing_product_ids':[],'credit_balances':null," mid                     \
    "'keys':null,'metrics':[],'plan_ids':[],'plan_version_ids':[],"            \
    "'rules':[],'subscription':null,'traits':[]" tail "}"

/* ---- byte-exact samples ---------------------------------------------------
 */

static void test_sample_company(void **state)
{
    json_t *data = sample_data("msg-02-company-full.json");
    char *want = load_sample("cache-company-comp_acme.json", NULL);

    (void)state;
    assert_norm(SCH_COMPANY, data, want);
    free(want);
    json_decref(data);
}

static void test_sample_user(void **state)
{
    json_t *data = sample_data("msg-03-user-full.json");
    char *want = load_sample("cache-user-user_ada.json", NULL);

    (void)state;
    assert_norm(SCH_USER, data, want);
    free(want);
    json_decref(data);
}

static void check_flags(json_t *flags, size_t expect)
{
    size_t i;

    assert_int_equal(json_array_size(flags), expect);
    for (i = 0; i < json_array_size(flags); i++) {
        json_t *flag = json_array_get(flags, i);
        char name[128], *low, *want;

        low = sch_lower(json_string_value(json_object_get(flag, "key")));
        snprintf(name, sizeof(name), "cache-flag-%s.json", low);
        want = load_sample(name, NULL);
        assert_norm(SCH_FLAG, flag, want);
        free(want);
        free(low);
    }
}

static void test_sample_flags(void **state)
{
    json_t *flags = sample_data("msg-01-flags-full.json");
    json_t *one = sample_data("msg-09-flag-single-full.json");
    char *want = load_sample("cache-flag-plan-flag.json", NULL);

    (void)state;
    check_flags(flags, 6);
    json_decref(flags);
    flags = sample_data("msg-14-flags-page-1-of-2.json");
    check_flags(flags, 3);
    json_decref(flags);
    flags = sample_data("msg-15-flags-page-2-of-2.json");
    check_flags(flags, 3);
    json_decref(flags);
    assert_norm(SCH_FLAG, one, want);
    free(want);
    json_decref(one);
}

/* Normalising a cached value gives the same bytes back. */
static void test_samples_idempotent(void **state)
{
    static const struct {
        const char *file;
        enum sch_type type;
    } cases[] = {
        {"cache-company-comp_acme.json", SCH_COMPANY},
        {"cache-user-user_ada.json", SCH_USER},
        {"cache-flag-default-on-flag.json", SCH_FLAG},
        {"cache-flag-override-flag.json", SCH_FLAG},
        {"cache-flag-plan-flag.json", SCH_FLAG},
        {"cache-flag-trait-flag.json", SCH_FLAG},
        {"cache-flag-usage-flag.json", SCH_FLAG},
        {"cache-flag-user-flag.json", SCH_FLAG},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = load_sample(cases[i].file, NULL);
        json_t *v = json_loads(text, 0, NULL), *canon;

        assert_non_null(v);
        assert_norm(cases[i].type, v, text);
        canon = oracle_canonical(cases[i].type, v, NULL, 0);
        assert_non_null(canon);
        assert_norm(cases[i].type, canon, text);
        json_decref(canon);
        json_decref(v);
        free(text);
    }
}

/* ---- normalisation rules ----------------------------------------------------
 */

static void test_defaults_and_unknown(void **state)
{
    (void)state;
    /* Everything absent: zero values, [] lists, null pointers and maps,
     * entitlements omitted. */
    norm_q(SCH_COMPANY, CO(",'unknown':{'x':1},'entitlements':[]"),
           CO_OUT("", ""));
    norm_q(SCH_USER, "{'id':'u'}",
           "{'id':'u','account_id':'','environment_id':'','keys':null,"
           "'traits':[],'rules':[]}");
    norm_q(SCH_FLAG, "{'id':'f','key':'K','rules':null,'default_value':null}",
           "{'id':'f','account_id':'','environment_id':'','key':'K',"
           "'rules':[],'default_value':false}");
    /* null elements: a rule stays null, a string becomes "". */
    norm_q(SCH_FLAG, "{'id':'f','rules':[null]}",
           "{'id':'f','account_id':'','environment_id':'','key':'',"
           "'rules':[null],'default_value':false}");
    norm_q(SCH_COMPANY,
           CO(",'plan_ids':['p',null],'keys':{'b':null,'a':'1'},"
              "'credit_balances':{'z':null,'y':2}"),
           "{'id':'c','account_id':'a','environment_id':'e',"
           "'base_plan_id':null,'billing_product_ids':[],"
           "'credit_balances':{'y':2,'z':0},'keys':{'a':'1','b':''},"
           "'metrics':[],'plan_ids':['p',''],'plan_version_ids':[],"
           "'rules':[],'subscription':null,'traits':[]}");
    /* A rule with everything absent: every required field is present. */
    norm_q(SCH_FLAG,
           "{'id':'f','rules':[{'conditions':[{}],"
           "'condition_groups':[{}]}]}",
           "{'id':'f','account_id':'','environment_id':'','key':'',"
           "'rules':[{'id':'','flag_id':null,'account_id':'',"
           "'environment_id':'','rule_type':'','name':'','priority':0,"
           "'conditions':[{'id':'','account_id':'','environment_id':'',"
           "'condition_type':'','operator':'','resource_ids':[],"
           "'event_subtype':null,'metric_value':null,'metric_period':null,"
           "'metric_period_month_reset':null,'credit_id':null,"
           "'consumption_rate':null,'trait_definition':null,"
           "'trait_value':'','comparison_trait_definition':null}],"
           "'condition_groups':[{'conditions':[]}],'value':false}],"
           "'default_value':false}");
}

static void test_member_matching(void **state)
{
    (void)state;
    /* Case-insensitive names, the last match wins, exact or not. */
    norm_q(SCH_USER,
           "{'ID':'x','id':'u','Account_ID':'a','ENVIRONMENT_id':'e'}",
           "{'id':'u','account_id':'a','environment_id':'e','keys':null,"
           "'traits':[],'rules':[]}");
    norm_q(SCH_USER, "{'id':'u','Id':'v'}",
           "{'id':'v','account_id':'','environment_id':'','keys':null,"
           "'traits':[],'rules':[]}");
    /* Kelvin sign folds to k (Go's EqualFold). */
    norm_q(SCH_USER,
           "{'id':'u','\xe2\x84\xaa"
           "eys':{'a':'b'}}",
           "{'id':'u','account_id':'','environment_id':'','keys':{'a':'b'},"
           "'traits':[],'rules':[]}");
    /* camelCase is not a match in Go: dropped. */
    norm_q(SCH_USER, "{'id':'u','accountId':'a'}",
           "{'id':'u','account_id':'','environment_id':'','keys':null,"
           "'traits':[],'rules':[]}");
}

static void test_entitlement_omitempty(void **state)
{
    (void)state;
    norm_q(SCH_COMPANY,
           CO(",'entitlements':[{'feature_id':'f','feature_key':'k',"
              "'value_type':'credit','consumption_rate':0,"
              "'credit_reserved':null,'credit_settled':2.25,"
              "'event_subtype':'','warning_tiers':[1]},null]"),
           CO_OUT("'entitlements':[{'allocation':null,'consumption_rate':0,"
                  "'credit_id':null,'credit_remaining':null,"
                  "'credit_settled':2.25,'credit_total':null,"
                  "'credit_used':null,'event_name':null,"
                  "'event_subtype':'','feature_id':'f','feature_key':'k',"
                  "'metric_period':null,'metric_reset_at':null,"
                  "'month_reset':null,'soft_limit':null,'usage':null,"
                  "'value_type':'credit'},null],",
                  ""));
}

static void test_int64_fields(void **state)
{
    (void)state;
    norm_q(SCH_FLAG, "{'id':'f','rules':[{'priority':1200.0}]}",
           "{'id':'f','account_id':'','environment_id':'','key':'',"
           "'rules':[{'id':'','flag_id':null,'account_id':'',"
           "'environment_id':'','rule_type':'','name':'','priority':1200,"
           "'conditions':[],'condition_groups':[],'value':false}],"
           "'default_value':false}");
    norm_q(SCH_FLAG, "{'id':'f','rules':[{'priority':-9223372036854775808}]}",
           "{'id':'f','account_id':'','environment_id':'','key':'',"
           "'rules':[{'id':'','flag_id':null,'account_id':'',"
           "'environment_id':'','rule_type':'','name':'',"
           "'priority':-9223372036854775808,"
           "'conditions':[],'condition_groups':[],'value':false}],"
           "'default_value':false}");
    norm_fails(SCH_FLAG, "{'id':'f','rules':[{'priority':12.5}]}",
               "rules[0].priority: expected integer");
    norm_fails(SCH_FLAG, "{'id':'f','rules':[{'priority':'1'}]}",
               "rules[0].priority: expected integer, got string");
    norm_fails(SCH_COMPANY, CO(",'metrics':[{'value':1e19}]"),
               "metrics[0].value");
    norm_fails(SCH_COMPANY, CO(",'entitlements':[{'usage':0.5}]"),
               "entitlements[0].usage");
}

static void test_wrong_types(void **state)
{
    (void)state;
    norm_fails(SCH_COMPANY, "[]", "not an object");
    norm_fails(SCH_COMPANY, "null", "not an object");
    norm_fails(SCH_COMPANY, CO(",'keys':['a']"), "keys: expected object");
    norm_fails(SCH_COMPANY, CO(",'keys':{'a':1}"), "keys.a: expected string");
    norm_fails(SCH_COMPANY, CO(",'credit_balances':{'a':'1'}"),
               "credit_balances.a: expected number");
    norm_fails(SCH_COMPANY, CO(",'plan_ids':'p'"), "plan_ids: expected array");
    norm_fails(SCH_COMPANY, CO(",'plan_ids':[1]"), "plan_ids[0]");
    norm_fails(SCH_COMPANY, CO(",'traits':[{'value':42}]"),
               "traits[0].value: expected string, got number");
    norm_fails(SCH_COMPANY, CO(",'traits':['x']"), "traits[0]");
    norm_fails(SCH_COMPANY, CO(",'subscription':'x'"), "subscription");
    norm_fails(SCH_COMPANY, CO(",'base_plan_id':7"), "base_plan_id");
    norm_fails(SCH_FLAG, "{'id':'f','default_value':'true'}",
               "default_value: expected bool");
    norm_fails(SCH_FLAG,
               "{'id':'f','rules':[{'conditions':[{'trait_definition':"
               "{'id':5}}]}]}",
               "rules[0].conditions[0].trait_definition.id");
    /* The id is required. */
    norm_fails(SCH_COMPANY, "{'account_id':'a'}", "id");
    norm_fails(SCH_USER, "{'id':''}", "id");
    norm_fails(SCH_FLAG, "{'id':null,'key':'k'}", "id");
}

static void test_times(void **state)
{
    static const char *const ok[][2] = {
        {"2026-09-01T00:00:00Z", "2026-09-01T00:00:00Z"},
        {"2026-09-01T02:00:00+02:00", "2026-09-01T00:00:00Z"},
        {"2026-08-31T23:30:00-00:30", "2026-09-01T00:00:00Z"},
        {"2026-12-31T23:00:00-01:00", "2027-01-01T00:00:00Z"},
        {"2026-09-01T10:00:00.123456789Z", "2026-09-01T10:00:00.123456789Z"},
        {"2026-09-01T10:00:00.120Z", "2026-09-01T10:00:00.12Z"},
        {"2026-09-01T10:00:00.000Z", "2026-09-01T10:00:00Z"},
        {"2026-09-01T10:00:00.1234567891234Z",
         "2026-09-01T10:00:00.123456789Z"},
        {"2024-02-29T12:00:00+14:00", "2024-02-28T22:00:00Z"},
        {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"},
        {"2000-03-01T00:00:00+23:59", "2000-02-29T00:01:00Z"},
    };
    static const char *const bad[] = {
        "2026-09-01",
        "2026-09-01 00:00:00Z",
        "2026-09-01t00:00:00Z",
        "2026-09-01T00:00:00z",
        "2026-09-01T00:00:00",
        "2026-09-01T24:00:00Z",
        "2026-09-01T00:60:00Z",
        "2026-09-01T00:00:60Z",
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-09-00T00:00:00Z",
        "2026-09-01T00:00:00+24:00",
        "2026-09-01T00:00:00+01:60",
        "2026-09-01T00:00:00+0100",
        "2026-09-01T00:00:00.Z",
        "2026-09-01T00:00:00,5Z",
        "2026-9-01T00:00:00Z",
        "0000-01-01T00:00:00+00:01", /* year -1 in UTC */
        "",
    };
    char in[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(in, sizeof(in),
                 CO(",'subscription':{'id':'s','period_start':'%s',"
                    "'period_end':null}"),
                 ok[i][0]);
        {
            json_t *v = J(in);
            char err[256];
            char *got = oracle_normalize(SCH_COMPANY, v, err, sizeof(err));
            char needle[128];

            if (!got)
                fail_msg("%s: %s", ok[i][0], err);
            snprintf(needle, sizeof(needle),
                     "\"subscription\":{\"id\":\"s\",\"period_start\":\"%s\","
                     "\"period_end\":\"0001-01-01T00:00:00Z\"}",
                     ok[i][1]);
            if (!strstr(got, needle))
                fail_msg("%s -> %s", ok[i][0], got);
            free(got);
            json_decref(v);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(in, sizeof(in), CO(",'metrics':[{'created_at':'%s'}]"),
                 bad[i]);
        norm_fails(SCH_COMPANY, in, "metrics[0].created_at");
    }
    norm_fails(SCH_COMPANY, CO(",'metrics':[{'created_at':0}]"),
               "created_at: expected RFC 3339");
    /* T? null stays null; absent T is the zero time. */
    norm_q(SCH_COMPANY, CO(",'metrics':[{'valid_until':null}]"),
           "{'id':'c','account_id':'a','environment_id':'e',"
           "'base_plan_id':null,'billing_product_ids':[],"
           "'credit_balances':null,'keys':null,'metrics':[{'account_id':'',"
           "'environment_id':'','company_id':'','event_subtype':'',"
           "'period':'','month_reset':'','value':0,"
           "'created_at':'0001-01-01T00:00:00Z','valid_until':null}],"
           "'plan_ids':[],'plan_version_ids':[],'rules':[],"
           "'subscription':null,'traits':[]}");
}

static void check_float(double v, const char *want)
{
    char out[GJ_FLOAT_MAX];

    gj_format_float(v, out);
    if (strcmp(out, want))
        fail_msg("%.17g formatted as %s, want %s", v, out, want);
}

static void test_float_format(void **state)
{
    (void)state;
    check_float(1500, "1500");
    check_float(1234.5, "1234.5");
    check_float(1.5, "1.5");
    check_float(0, "0");
    check_float(-0.0, "-0");
    check_float(0.1, "0.1");
    check_float(0.3, "0.3");
    check_float(2.0 / 3, "0.6666666666666666");
    check_float(-2.5, "-2.5");
    check_float(100, "100");
    check_float(1e20, "100000000000000000000");
    check_float(123456789012345678.0, "123456789012345680");
    check_float(1e21, "1e+21");
    check_float(1.5e21, "1.5e+21");
    check_float(1e100, "1e+100");
    check_float(1e-6, "0.000001");
    check_float(0.000001234, "0.000001234");
    check_float(1e-7, "1e-7");
    check_float(1.25e-7, "1.25e-7");
    check_float(-1e-10, "-1e-10");
    check_float(5e-324, "5e-324");
    check_float(1.7976931348623157e308, "1.7976931348623157e+308");
    check_float(9007199254740993.0, "9007199254740992");
    check_float(0.1 + 0.2, "0.30000000000000004");
    /* Powers of two (lopsided rounding intervals). */
    check_float(ldexp(1, -44), "5.684341886080802e-14");
    /* 'f' pads the shortest digits with zeros, as strconv does. */
    check_float(ldexp(1, 60), "1152921504606847000");
    check_float(ldexp(1, 80), "1.2089258196146292e+24");
    check_float(ldexp(1, -1022), "2.2250738585072014e-308");

    /* float64 fields of an entity: integers and reals alike. */
    norm_q(SCH_COMPANY,
           CO(",'credit_balances':{'e':-12345678901234567890e3,"
              "'a':1500,'b':1500.0,'c':1e3,'d':0.5e-6}"),
           "{'id':'c','account_id':'a','environment_id':'e',"
           "'base_plan_id':null,'billing_product_ids':[],"
           "'credit_balances':{'a':1500,'b':1500,'c':1000,'d':5e-7,"
           "'e':-1.2345678901234568e+22},'keys':null,'metrics':[],"
           "'plan_ids':[],'plan_version_ids':[],'rules':[],"
           "'subscription':null,'traits':[]}");
}

static void test_string_escaping(void **state)
{
    static const char in[] = "a<b>&\"\\/\x01\x1f\b\f\n\r\t\x7f"
                             "\xc3\xa9\xe2\x80\xa8\xe2\x80\xa9"
                             "\xf0\x9f\x98\x80";
    struct gj_buf b;
    char *s;
    json_t *v;

    (void)state;
    gj_init(&b);
    gj_str(&b, in, sizeof(in) - 1);
    s = gj_take(&b);
    assert_string_equal(s, "\"a\\u003cb\\u003e\\u0026\\\"\\\\/\\u0001\\u001f"
                           "\\b\\f\\n\\r\\t\x7f\xc3\xa9\\u2028\\u2029"
                           "\xf0\x9f\x98\x80\"");
    free(s);
    /* Invalid UTF-8 becomes \ufffd, byte by byte. */
    gj_init(&b);
    gj_str(&b, "x\xff\xc3", 3);
    s = gj_take(&b);
    assert_string_equal(s, "\"x\\ufffd\\ufffd\"");
    free(s);
    /* Map keys are escaped the same way, and sorted as bytes. */
    v = json_pack("{s:s,s:{s:s,s:s,s:s}}", "id", "<u>", "keys", "\xc3\xa9", "1",
                  "B", "2", "a", "3");
    assert_non_null(v);
    s = oracle_normalize(SCH_USER, v, NULL, 0);
    assert_non_null(s);
    assert_string_equal(s, "{\"id\":\"\\u003cu\\u003e\",\"account_id\":\"\","
                           "\"environment_id\":\"\",\"keys\":{\"B\":\"2\","
                           "\"a\":\"3\",\"\xc3\xa9\":\"1\"},\"traits\":[],"
                           "\"rules\":[]}");
    free(s);
    json_decref(v);
}

/* ---- merge (section 5.5 and merge.go details) -------------------------------
 */

/* Hand-derived from section 5.5: msg-02 then msg-04. */
static const char merged_02_04[] =
    "{'id':'comp_acme','account_id':'acct_demo','environment_id':'env_demo',"
    "'base_plan_id':'plan_pro','billing_product_ids':['bprod_pro_monthly'],"
    "'credit_balances':{'bcrd_ai_tokens':1234.5},'entitlements':[{"
    "'allocation':1000,'credit_id':null,'credit_remaining':null,"
    "'credit_total':null,'credit_used':null,'event_name':'api_calls',"
    "'feature_id':'feat_api','feature_key':'usage-flag',"
    "'metric_period':'current_month',"
    "'metric_reset_at':'2026-10-01T00:00:00Z','month_reset':'first_of_month',"
    "'soft_limit':null,'usage':1200,'value_type':'numeric'},{"
    "'allocation':null,'consumption_rate':1.5,'credit_id':'bcrd_ai_tokens',"
    "'credit_remaining':1234.5,'credit_total':2000,'credit_used':500,"
    "'event_name':'ai_tokens','event_subtype':'ai_tokens',"
    "'feature_id':'feat_ai','feature_key':'ai-flag','metric_period':null,"
    "'metric_reset_at':null,'month_reset':null,'soft_limit':null,"
    "'usage':null,'value_type':'credit'}],"
    "'keys':{'domain':'acme.test','id':'acme'},'metrics':[{"
    "'account_id':'acct_demo','environment_id':'env_demo',"
    "'company_id':'comp_acme','event_subtype':'api_calls',"
    "'period':'current_month','month_reset':'first_of_month','value':1200,"
    "'created_at':'2026-09-01T00:00:00Z',"
    "'valid_until':'2026-10-01T00:00:00Z'},{'account_id':'acct_demo',"
    "'environment_id':'env_demo','company_id':'comp_acme',"
    "'event_subtype':'api_calls','period':'all_time',"
    "'month_reset':'first_of_month','value':9120,"
    "'created_at':'2026-01-15T10:20:30Z','valid_until':null}],"
    "'plan_ids':['plan_addon_sso','plan_pro'],"
    "'plan_version_ids':['plnv_pro_v3'],'rules':[{"
    "'id':'rule_acme_override','flag_id':'flag_override',"
    "'account_id':'acct_demo','environment_id':'env_demo',"
    "'rule_type':'company_override','name':'Acme override','priority':0,"
    "'conditions':[],'condition_groups':[],'value':true}],"
    "'subscription':{'id':'bsub_acme','period_start':'2026-09-01T00:00:00Z',"
    "'period_end':'2026-10-01T00:00:00Z'},'traits':[{'trait_definition':{"
    "'id':'trdf_industry','comparable_type':'string',"
    "'entity_type':'company'},'value':'fintech'},{'trait_definition':{"
    "'id':'trdf_seats','comparable_type':'int','entity_type':'company'},"
    "'value':'42'}]}";

/* Hand-derived from section 5.5: msg-02 then msg-05. */
static const char merged_02_05[] =
    "{'id':'comp_acme','account_id':'acct_demo','environment_id':'env_demo',"
    "'base_plan_id':null,'billing_product_ids':['bprod_pro_monthly'],"
    "'credit_balances':{'bcrd_ai_tokens':1500},'entitlements':[{"
    "'allocation':1000,'credit_id':null,'credit_remaining':null,"
    "'credit_total':null,'credit_used':null,'event_name':'api_calls',"
    "'feature_id':'feat_api','feature_key':'usage-flag',"
    "'metric_period':'current_month',"
    "'metric_reset_at':'2026-10-01T00:00:00Z','month_reset':'first_of_month',"
    "'soft_limit':null,'usage':250,'value_type':'numeric'},{"
    "'allocation':null,'consumption_rate':1.5,'credit_id':'bcrd_ai_tokens',"
    "'credit_remaining':1500,'credit_total':2000,'credit_used':500,"
    "'event_name':'ai_tokens','event_subtype':'ai_tokens',"
    "'feature_id':'feat_ai','feature_key':'ai-flag','metric_period':null,"
    "'metric_reset_at':null,'month_reset':null,'soft_limit':null,"
    "'usage':null,'value_type':'credit'}],"
    "'keys':{'domain':'acme.test','id':'acme','slug':'acme-inc'},"
    "'metrics':[{'account_id':'acct_demo','environment_id':'env_demo',"
    "'company_id':'comp_acme','event_subtype':'api_calls',"
    "'period':'current_month','month_reset':'first_of_month','value':250,"
    "'created_at':'2026-09-01T00:00:00Z',"
    "'valid_until':'2026-10-01T00:00:00Z'},{'account_id':'acct_demo',"
    "'environment_id':'env_demo','company_id':'comp_acme',"
    "'event_subtype':'api_calls','period':'all_time',"
    "'month_reset':'first_of_month','value':9120,"
    "'created_at':'2026-01-15T10:20:30Z','valid_until':null}],"
    "'plan_ids':['plan_free'],'plan_version_ids':['plnv_pro_v3'],'rules':[{"
    "'id':'rule_acme_override','flag_id':'flag_override',"
    "'account_id':'acct_demo','environment_id':'env_demo',"
    "'rule_type':'company_override','name':'Acme override','priority':0,"
    "'conditions':[],'condition_groups':[],'value':true}],"
    "'subscription':{'id':'bsub_acme','period_start':'2026-09-01T00:00:00Z',"
    "'period_end':'2026-10-01T00:00:00Z'},'traits':[{'trait_definition':{"
    "'id':'trdf_industry','comparable_type':'string',"
    "'entity_type':'company'},'value':'retail'}]}";

static json_t *merge_samples(enum sch_type type, const char *full,
                             const char *partial)
{
    json_t *base = sample_data(full), *p = sample_data(partial), *m;
    char err[256];

    m = oracle_merge(type, base, p, err, sizeof(err));
    if (!m)
        fail_msg("merge failed: %s", err);
    json_decref(base);
    json_decref(p);
    return m;
}

static json_t *path(json_t *v, const char *key, int idx)
{
    json_t *r = key ? json_object_get(v, key) : json_array_get(v, (size_t)idx);

    assert_non_null(r);
    return r;
}

static void test_merge_02_04(void **state)
{
    json_t *m = merge_samples(SCH_COMPANY, "msg-02-company-full.json",
                              "msg-04-company-partial-metrics-credits.json");
    json_t *metrics = path(m, "metrics", 0), *ents = path(m, "entitlements", 0);
    json_t *api = path(ents, NULL, 0), *ai = path(ents, NULL, 1);
    char *want = Q(merged_02_04);

    (void)state;
    /* The current-month metric is replaced in place; all_time stays 2nd. */
    assert_int_equal(json_array_size(metrics), 2);
    assert_int_equal(
        json_integer_value(path(path(metrics, NULL, 0), "value", 0)), 1200);
    assert_string_equal(
        json_string_value(path(path(metrics, NULL, 1), "period", 0)),
        "all_time");
    assert_true(json_real_value(path(path(m, "credit_balances", 0),
                                     "bcrd_ai_tokens", 0)) == 1234.5);
    /* feat_api: usage 250 -> 1200, credit_remaining stays null. */
    assert_int_equal(json_integer_value(path(api, "usage", 0)), 1200);
    assert_true(json_is_null(path(api, "credit_remaining", 0)));
    /* feat_ai: credit_remaining 1500 -> 1234.5, usage stays null, total
     * and used untouched. */
    assert_true(json_real_value(path(ai, "credit_remaining", 0)) == 1234.5);
    assert_true(json_is_null(path(ai, "usage", 0)));
    assert_true(json_number_value(path(ai, "credit_total", 0)) == 2000);
    assert_true(json_number_value(path(ai, "credit_used", 0)) == 500);
    assert_norm(SCH_COMPANY, m, want);
    free(want);
    json_decref(m);
}

static void test_merge_02_05(void **state)
{
    json_t *m = merge_samples(SCH_COMPANY, "msg-02-company-full.json",
                              "msg-05-company-partial-traits-keys-plans.json");
    json_t *keys = path(m, "keys", 0);
    char *want = Q(merged_02_05);

    (void)state;
    assert_int_equal(json_array_size(path(m, "traits", 0)), 1);
    assert_int_equal(json_object_size(keys), 3);
    assert_string_equal(json_string_value(path(keys, "slug", 0)), "acme-inc");
    assert_string_equal(json_string_value(path(keys, "domain", 0)),
                        "acme.test");
    assert_true(json_is_null(path(m, "base_plan_id", 0)));
    assert_int_equal(json_array_size(path(m, "plan_ids", 0)), 1);
    /* Entitlements untouched. */
    assert_int_equal(
        json_integer_value(
            path(path(path(m, "entitlements", 0), NULL, 0), "usage", 0)),
        250);
    assert_norm(SCH_COMPANY, m, want);
    free(want);
    json_decref(m);
}

static void test_merge_03_06(void **state)
{
    json_t *m = merge_samples(SCH_USER, "msg-03-user-full.json",
                              "msg-06-user-partial-traits.json");

    (void)state;
    norm_q(SCH_USER, "{'id':'user_ada'}", /* sanity of the helpers */
           "{'id':'user_ada','account_id':'','environment_id':'',"
           "'keys':null,'traits':[],'rules':[]}");
    {
        char *want = Q("{'id':'user_ada','account_id':'acct_demo',"
                       "'environment_id':'env_demo','keys':{"
                       "'email':'ada@acme.test','id':'ada'},'traits':[{"
                       "'trait_definition':{'id':'trdf_role',"
                       "'comparable_type':'string','entity_type':'user'},"
                       "'value':'viewer'}],'rules':[]}");

        assert_norm(SCH_USER, m, want);
        free(want);
    }
    json_decref(m);
}

/* Merges J(partial) into J(base) and compares the normalised result. */
static void merge_q(enum sch_type type, const char *base, const char *partial,
                    const char *want)
{
    json_t *b = J(base), *p = J(partial), *m;
    char err[256], *w = Q(want);

    m = oracle_merge(type, b, p, err, sizeof(err));
    if (!m)
        fail_msg("merge failed: %s", err);
    assert_norm(type, m, w);
    free(w);
    json_decref(m);
    json_decref(b);
    json_decref(p);
}

static void merge_fails(enum sch_type type, const char *base,
                        const char *partial, const char *what)
{
    json_t *b = J(base), *p = J(partial), *m;
    char err[256];

    m = oracle_merge(type, b, p, err, sizeof(err));
    if (m)
        fail_msg("merge of %s succeeded, want an error", partial);
    if (!strstr(err, what))
        fail_msg("error \"%s\" lacks \"%s\"", err, what);
    json_decref(b);
    json_decref(p);
}

#define M(ev, per, val)                                                        \
    "{'event_subtype':'" ev "','period':'" per                                 \
    "','month_reset':'first_of_month','value':" val "}"
#define M_OUT(ev, per, val)                                                    \
    "{'account_id':'','environment_id':'','company_id':'',"                    \
    "'event_subtype':'" ev "','period':'" per                                  \
    "','month_reset':'first_of_month','value':" val                            \
    ",'created_at':'0001-01-01T00:00:00Z','valid_until':null}"

static void test_merge_rules(void **state)
{
    const char *base = CO(",'metrics':[" M("a", "all_time", "1") "," M(
        "b", "all_time",
        "2") "],'subscription':{'id':'s','period_start':"
             "'2026-01-01T00:00:00Z','period_end':'2026-02-01T00:00:00Z'},"
             "'keys':{'k':'v'},'entitlements':[{'feature_id':'f',"
             "'feature_key':'f','value_type':'credit','credit_id':'cr',"
             "'credit_remaining':5,'event_name':'b','usage':2}]");

    (void)state;
    /* metrics: b replaced in place, c appended, null skipped; entitlement
     * usage re-derived from the merged list (b, all_time default). */
    merge_q(SCH_COMPANY, base,
            "{'metrics':[" M("b", "all_time", "20") ",null," M("c", "all_time",
                                                               "3") "]}",
            "{'id':'c','account_id':'a','environment_id':'e',"
            "'base_plan_id':null,'billing_product_ids':[],"
            "'credit_balances':null,'entitlements':[{'allocation':null,"
            "'credit_id':'cr','credit_remaining':5,'credit_total':null,"
            "'credit_used':null,'event_name':'b','feature_id':'f',"
            "'feature_key':'f','metric_period':null,'metric_reset_at':null,"
            "'month_reset':null,'soft_limit':null,'usage':20,"
            "'value_type':'credit'}],'keys':{'k':'v'},'metrics':[" M_OUT(
                "a", "all_time",
                "1") "," M_OUT("b", "all_time",
                               "20") "," M_OUT("c", "all_time",
                                               "3") "],'plan_ids':[],'plan_"
                                                    "version_ids':[],"
                                                    "'rules':[],'subscription':"
                                                    "{'id':'s',"
                                                    "'period_start':'2026-01-"
                                                    "01T00:00:00Z',"
                                                    "'period_end':'2026-02-"
                                                    "01T00:00:00Z'},"
                                                    "'traits':[]}");
    /* subscription decoded into the existing one; null id unchanged;
     * credit_balances null -> {} without re-derivation; keys merged. */
    merge_q(SCH_COMPANY, base,
            "{'id':null,'subscription':{'id':'s2'},'credit_balances':null,"
            "'keys':{'k':'w','a':'b'},'unknown':1}",
            "{'id':'c','account_id':'a','environment_id':'e',"
            "'base_plan_id':null,'billing_product_ids':[],"
            "'credit_balances':{},'entitlements':[{'allocation':null,"
            "'credit_id':'cr','credit_remaining':5,'credit_total':null,"
            "'credit_used':null,'event_name':'b','feature_id':'f',"
            "'feature_key':'f','metric_period':null,'metric_reset_at':null,"
            "'month_reset':null,'soft_limit':null,'usage':2,"
            "'value_type':'credit'}],'keys':{'a':'b','k':'w'},'metrics':"
            "[" M_OUT("a", "all_time", "1") "," M_OUT(
                "b", "all_time",
                "2") "],'plan_ids':[],'plan_version_ids':[],'rules':[],"
                     "'subscription':{'id':'s2','period_start':'2026-01-01T00:"
                     "00:00Z',"
                     "'period_end':'2026-02-01T00:00:00Z'},'traits':[]}");
    /* credit_balances re-derives credit_remaining; entitlements in the
     * same partial win over re-derivation; subscription null clears. */
    merge_q(SCH_COMPANY, base,
            "{'credit_balances':{'cr':7.25,'zz':1},'subscription':null}",
            "{'id':'c','account_id':'a','environment_id':'e',"
            "'base_plan_id':null,'billing_product_ids':[],"
            "'credit_balances':{'cr':7.25,'zz':1},'entitlements':[{"
            "'allocation':null,'credit_id':'cr','credit_remaining':7.25,"
            "'credit_total':null,'credit_used':null,'event_name':'b',"
            "'feature_id':'f','feature_key':'f','metric_period':null,"
            "'metric_reset_at':null,'month_reset':null,'soft_limit':null,"
            "'usage':2,'value_type':'credit'}],'keys':{'k':'v'},'metrics':"
            "[" M_OUT("a", "all_time", "1") "," M_OUT(
                "b", "all_time",
                "2") "],'plan_ids':[],'plan_version_ids':[],'rules':[],"
                     "'subscription':null,'traits':[]}");
    merge_q(SCH_COMPANY, base,
            "{'credit_balances':{'cr':7},'entitlements':[],'metrics':null}",
            "{'id':'c','account_id':'a','environment_id':'e',"
            "'base_plan_id':null,'billing_product_ids':[],"
            "'credit_balances':{'cr':7},'keys':{'k':'v'},'metrics':[" M_OUT(
                "a", "all_time",
                "1") "," M_OUT("b", "all_time",
                               "2") "],'plan_ids':[],'plan_version_ids':[],'"
                                    "rules':[],"
                                    "'subscription':{'id':'s','period_start':'"
                                    "2026-01-01T00:00:00Z',"
                                    "'period_end':'2026-02-01T00:00:00Z'},'"
                                    "traits':[]}");
    /* A company base without keys gets {} from any merge. */
    merge_q(SCH_COMPANY, CO(""), "{'plan_ids':['p']}",
            "{'id':'c','account_id':'a','environment_id':'e',"
            "'base_plan_id':null,'billing_product_ids':[],"
            "'credit_balances':null,'keys':{},'metrics':[],'plan_ids':['p'],"
            "'plan_version_ids':[],'rules':[],'subscription':null,"
            "'traits':[]}");
    /* User: keys merged (never removed), other members ignored. */
    merge_q(SCH_USER, "{'id':'u','keys':{'a':'1'},'traits':[{'value':'x'}]}",
            "{'keys':{'b':'2'},'traits':null,'plan_ids':['p'],"
            "'account_id':'acct'}",
            "{'id':'u','account_id':'acct','environment_id':'',"
            "'keys':{'a':'1','b':'2'},'traits':[],'rules':[]}");
    /* Wrong types fail the whole merge. */
    merge_fails(SCH_COMPANY, CO(""), "{'metrics':{}}", "metrics");
    merge_fails(SCH_COMPANY, CO(""), "{'keys':{'a':1}}", "keys.a");
    merge_fails(SCH_COMPANY, CO(""), "{'id':5}", "id");
    merge_fails(SCH_USER, "{'id':'u'}", "{'traits':[{'value':1}]}",
                "traits[0].value");
    merge_fails(SCH_USER, "{'id':'u','keys':[]}", "{}", "base");
    merge_fails(SCH_COMPANY, CO(""), "[]", "not an object");
}

/* ---- REST conversion -------------------------------------------------------
 */

static const char rest_company[] =
    "{'id':'comp_rest','environment_id':'env_demo','name':'Rest Co',"
    "'unknown':1,"
    "'keys':[{'key':'Domain','value':'Rest.Test'},{'key':'id',"
    "'value':'rest'}],"
    "'entity_traits':["
    "{'definition':{'id':'trdf_seats','trait_type':'number'},'value':'10'},"
    "{'definition':{'id':'trdf_vip','trait_type':'boolean'},'value':'true'},"
    "{'definition':{'id':'trdf_since','trait_type':'date'},"
    "'value':'2026-01-01'},"
    "{'definition':{'id':'trdf_misc','trait_type':'url'},'value':'x'},"
    "{'value':'orphan'}],"
    "'plan':{'id':'plan_pro','plan_version_id':'plnv_pro_v3'},"
    "'add_ons':[{'id':'plan_sso','plan_version_id':'plnv_sso_v1'},"
    "{'id':'plan_x','plan_version_id':''}],"
    "'plans':[{'id':'plan_pro'},{'id':'plan_sso'}],"
    "'billing_subscriptions':[{'products':[{'id':'bprod_a'},"
    "{'id':'bprod_b'}]}],"
    "'billing_subscription':{'id':'bsub_1','period_start':1788220800,"
    "'period_end':0,'products':[{'id':'bprod_b'},{'id':'bprod_c'}]},"
    "'billing_credit_balances':{'bcrd_z':10,'bcrd_a':2.5},"
    "'metrics':[{'account_id':'acct_demo','environment_id':'env_demo',"
    "'company_id':'comp_rest','event_subtype':'api_calls','value':12.9,"
    "'created_at':'2026-09-01T02:00:00+02:00','valid_until':null,"
    "'period':'current_week','month_reset':'first'},"
    "{'account_id':'acct_demo','environment_id':'env_demo',"
    "'company_id':'comp_rest','event_subtype':'api_calls','value':7,"
    "'created_at':'2026-09-01T00:00:00.500Z',"
    "'valid_until':'2026-10-01T00:00:00Z','period':'current_month',"
    "'month_reset':'billing_cycle'}],"
    "'rules':[{'id':'rule_std','rule_type':'standard','name':'Std',"
    "'priority':1,'value':true,'conditions':[]},"
    "{'id':'rule_ovr','flag_id':'flag_x','account_id':'acct_demo',"
    "'environment_id':'env_demo','rule_type':'company_override',"
    "'name':'Override','priority':3,'value':true,"
    "'conditions':[{'id':'cond_1','account_id':'acct_demo',"
    "'environment_id':'env_demo','condition_type':'trait',"
    "'operator':'greater_than_or_equal','resource_ids':null,"
    "'trait_value':'5','trait_definition':{'id':'trdf_seats',"
    "'comparable_type':'number','entity_type':'company'}}],"
    "'condition_groups':[{'conditions':[{'id':'cond_2',"
    "'condition_type':'metric','operator':'bogus',"
    "'event_subtype':'api_calls','metric_value':100,"
    "'metric_period':'current_month',"
    "'metric_period_month_reset':'weird'}]}]}],"
    "'entitlements':[{'feature_id':'feat_api','feature_key':'api',"
    "'value_type':'numeric','allocation':1000.0,'usage':7,"
    "'soft_limit':null,'event_name':'api_calls',"
    "'metric_period':'current_month','month_reset':'billing_cycle',"
    "'metric_reset_at':'2026-10-01T00:00:00Z'}]}";

static const char rest_company_out[] =
    "{'id':'comp_rest','account_id':'','environment_id':'env_demo',"
    "'base_plan_id':'plan_pro',"
    "'billing_product_ids':['bprod_a','bprod_b','bprod_c'],"
    "'credit_balances':{'bcrd_a':2.5,'bcrd_z':10},"
    "'entitlements':[{'allocation':1000,'credit_id':null,"
    "'credit_remaining':null,'credit_total':null,'credit_used':null,"
    "'event_name':'api_calls','feature_id':'feat_api','feature_key':'api',"
    "'metric_period':'current_month',"
    "'metric_reset_at':'2026-10-01T00:00:00Z','month_reset':'billing_cycle',"
    "'soft_limit':null,'usage':7,'value_type':'numeric'}],"
    "'keys':{'Domain':'Rest.Test','id':'rest'},"
    "'metrics':[{'account_id':'acct_demo','environment_id':'env_demo',"
    "'company_id':'comp_rest','event_subtype':'api_calls',"
    "'period':'all_time','month_reset':'first_of_month','value':12,"
    "'created_at':'2026-09-01T00:00:00Z','valid_until':null},"
    "{'account_id':'acct_demo','environment_id':'env_demo',"
    "'company_id':'comp_rest','event_subtype':'api_calls',"
    "'period':'current_month','month_reset':'billing_cycle','value':7,"
    "'created_at':'2026-09-01T00:00:00.5Z',"
    "'valid_until':'2026-10-01T00:00:00Z'}],"
    "'plan_ids':['plan_pro','plan_sso'],"
    "'plan_version_ids':['plnv_pro_v3','plnv_sso_v1'],"
    "'rules':[{'id':'rule_ovr','flag_id':'flag_x','account_id':'acct_demo',"
    "'environment_id':'env_demo','rule_type':'company_override',"
    "'name':'Override','priority':3,'conditions':[{'id':'cond_1',"
    "'account_id':'acct_demo','environment_id':'env_demo',"
    "'condition_type':'trait','operator':'gte','resource_ids':[],"
    "'event_subtype':null,'metric_value':null,'metric_period':null,"
    "'metric_period_month_reset':null,'credit_id':null,"
    "'consumption_rate':null,'trait_definition':{'id':'trdf_seats',"
    "'comparable_type':'int','entity_type':'company'},'trait_value':'5',"
    "'comparison_trait_definition':null}],'condition_groups':[{"
    "'conditions':[{'id':'cond_2','account_id':'','environment_id':'',"
    "'condition_type':'metric','operator':'eq','resource_ids':[],"
    "'event_subtype':'api_calls','metric_value':100,"
    "'metric_period':'current_month',"
    "'metric_period_month_reset':'first_of_month','credit_id':null,"
    "'consumption_rate':null,'trait_definition':null,'trait_value':'',"
    "'comparison_trait_definition':null}]}],'value':true}],"
    "'subscription':{'id':'bsub_1','period_start':'2026-09-01T00:00:00Z',"
    "'period_end':'0001-01-01T00:00:00Z'},"
    "'traits':[{'trait_definition':{'id':'trdf_seats',"
    "'comparable_type':'int','entity_type':'company'},'value':'10'},"
    "{'trait_definition':{'id':'trdf_vip','comparable_type':'bool',"
    "'entity_type':'company'},'value':'true'},"
    "{'trait_definition':{'id':'trdf_since','comparable_type':'date',"
    "'entity_type':'company'},'value':'2026-01-01'},"
    "{'trait_definition':{'id':'trdf_misc','comparable_type':'string',"
    "'entity_type':'company'},'value':'x'}]}";

/* sch_entity_normalize's text and id, or NULL with the reason in err:
 * the shape the older tests were written against. */
static char *norm_text(enum sch_type type, const char *text, size_t len,
                       char **id_out, char *err, size_t errlen)
{
    struct sch_entity e;
    char *out;

    if (id_out)
        *id_out = NULL;
    if (sch_entity_normalize(type, text, len, &e, err, errlen) < 0)
        return NULL;
    out = e.json;
    e.json = NULL;
    if (id_out) {
        *id_out = e.id;
        e.id = NULL;
    }
    sch_entity_release(&e);
    return out;
}

/* sch_rest_entity's cached form as a jansson tree, for field-level
 * assertions; NULL with the reason in err on a malformed item. */
static json_t *rest_tree_ex(enum sch_type type, json_t *detail, char *err,
                            size_t errlen)
{
    struct sch_entity e;
    json_error_t je;
    json_t *out;

    if (sch_rest_entity(type, detail, &e, err, errlen) < 0)
        return NULL;
    out = json_loadb(e.json, e.len, 0, &je);
    sch_entity_release(&e);
    if (!out && err && errlen)
        snprintf(err, errlen, "%s", je.text);
    return out;
}

static json_t *rest_tree(enum sch_type type, json_t *detail)
{
    return rest_tree_ex(type, detail, NULL, 0);
}

/*
 * sch_rest_entity gives want, its output is a fixed point of the
 * normaliser (what the sink would have written had it normalised the
 * payload again), and its id and keys equal a separate parse's.
 */
static void check_rest_entity(enum sch_type type, json_t *item,
                              const char *want)
{
    json_t *tree = rest_tree(type, item);
    char *dumped = json_dumps(tree, JSON_COMPACT), *old, err[256];
    struct sch_entity e;

    assert_non_null(dumped);
    old = norm_text(type, dumped, strlen(dumped), NULL, NULL, 0);
    assert_non_null(old);
    if (sch_rest_entity(type, item, &e, err, sizeof(err)))
        fail_msg("sch_rest_entity: %s", err);
    assert_string_equal(e.json, old);
    assert_string_equal(e.json, want);
    check_entity_facts(type, &e);
    sch_entity_release(&e);
    free(old);
    free(dumped);
    json_decref(tree);
}

static void test_rest_company(void **state)
{
    json_t *in = J(rest_company), *out;
    char err[256], *want = Q(rest_company_out);

    (void)state;
    out = rest_tree_ex(SCH_COMPANY, in, err, sizeof(err));
    if (!out)
        fail_msg("from_rest: %s", err);
    /* Field-level facts, then the whole value. */
    assert_string_equal(json_string_value(json_object_get(out, "account_id")),
                        "");
    assert_int_equal(json_array_size(json_object_get(out, "rules")), 1);
    assert_int_equal(json_array_size(json_object_get(out, "traits")), 4);
    assert_norm(SCH_COMPANY, out, want);
    check_rest_entity(SCH_COMPANY, in, want);
    json_decref(out);
    free(want);
    json_decref(in);

    /* A minimal item: defaults (credit_balances {}, no subscription). */
    in = J("{'id':'c1'}");
    out = rest_tree(SCH_COMPANY, in);
    assert_non_null(out);
    want = Q("{'id':'c1','account_id':'','environment_id':'',"
             "'base_plan_id':null,'billing_product_ids':[],"
             "'credit_balances':{},'keys':{},'metrics':[],'plan_ids':[],"
             "'plan_version_ids':[],'rules':[],'subscription':null,"
             "'traits':[]}");
    assert_norm(SCH_COMPANY, out, want);
    check_rest_entity(SCH_COMPANY, in, want);
    free(want);
    json_decref(out);
    json_decref(in);
}

static void test_rest_user_and_errors(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{}",
        "{'id':5}",
        "{'id':'c','keys':{'a':'b'}}",
        "{'id':'c','keys':[{'key':1,'value':'x'}]}",
        "{'id':'c','entity_traits':[{'definition':{'id':'t'},'value':3}]}",
        "{'id':'c','metrics':[{'value':'1'}]}",
        "{'id':'c','metrics':[{'value':1,'created_at':'yesterday'}]}",
        "{'id':'c','billing_subscription':{'period_start':'x'}}",
        "{'id':'c','billing_subscription':{'period_start':1e300}}",
        "{'id':'c','plan':[]}",
        "{'id':'c','rules':[{'rule_type':'company_override',"
        "'conditions':[{'operator':5}]}]}",
    };
    json_t *in, *out;
    char *want;
    size_t i;

    (void)state;
    in = J("{'id':'user_rest','environment_id':'env_demo','name':'Ada',"
           "'keys':[{'key':'email','value':'a@b.c'},null],"
           "'entity_traits':[{'definition':{'id':'trdf_role',"
           "'trait_type':'string'},'value':'admin'},{'definition':null}]}");
    out = rest_tree(SCH_USER, in);
    assert_non_null(out);
    want = Q("{'id':'user_rest','account_id':'','environment_id':'env_demo',"
             "'keys':{'email':'a@b.c'},'traits':[{'trait_definition':{"
             "'id':'trdf_role','comparable_type':'string',"
             "'entity_type':'user'},'value':'admin'}],'rules':[]}");
    assert_norm(SCH_USER, out, want);
    check_rest_entity(SCH_USER, in, want);
    free(want);
    json_decref(out);
    json_decref(in);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256];
        struct sch_entity e;

        in = J(bad[i]);
        out = rest_tree_ex(SCH_COMPANY, in, err, sizeof(err));
        if (out)
            fail_msg("converted malformed %s", bad[i]);
        assert_true(err[0] != '\0');
        err[0] = '\0';
        assert_int_equal(sch_rest_entity(SCH_COMPANY, in, &e, err, sizeof(err)),
                         -1);
        assert_null(e.json);
        assert_true(err[0] != '\0');
        json_decref(in);
    }
    in = J("{'id':'f'}");
    assert_null(rest_tree(SCH_FLAG, in));
    json_decref(in);
}

/* ---- the text fast path against the tree path -------------------------------
 */

static void test_text_samples(void **state)
{
    static const struct {
        const char *msg, *cache;
        enum sch_type type;
        const char *id;
    } cases[] = {
        {"msg-02-company-full.json", "cache-company-comp_acme.json",
         SCH_COMPANY, "comp_acme"},
        {"msg-03-user-full.json", "cache-user-user_ada.json", SCH_USER,
         "user_ada"},
        {"msg-09-flag-single-full.json", "cache-flag-plan-flag.json", SCH_FLAG,
         "flag_plan"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *data = sample_data(cases[i].msg);
        char *want = load_sample(cases[i].cache, NULL), *id, err[256], *got;
        char *text = json_dumps(data, JSON_INDENT(3));

        /* Whitespace and member order of the input do not matter. */
        got = norm_text(cases[i].type, text, strlen(text), &id, err,
                                 sizeof(err));
        if (!got)
            fail_msg("%s: %s", cases[i].msg, err);
        assert_string_equal(got, want);
        assert_string_equal(id, cases[i].id);
        free(got);
        free(id);
        free(text);
        free(want);
        json_decref(data);
    }
    {
        char err[256], *id = (char *)1;

        assert_null(norm_text(SCH_USER, "{\"id\":5}", 8, &id, err,
                                       sizeof(err)));
        assert_null(id);
        assert_string_equal(err, "id: expected string, got number");
        assert_null(norm_text(SCH_USER, "{\"id\":", 6, NULL, err,
                                       sizeof(err)));
        assert_true(err[0] != '\0');
        assert_null(
            norm_text(SCH_USER, "[]", 2, NULL, err, sizeof(err)));
        assert_string_equal(err, "User is not an object");
    }
}

static unsigned long long rng_state = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/* Collects every value of a tree with its container (for mutation). */
struct node {
    json_t *parent; /* object or array, NULL for the root */
    const char *key;
    size_t idx;
};

static void collect(json_t *v, json_t *parent, const char *key, size_t idx,
                    struct node *out, size_t *n, size_t cap)
{
    if (*n < cap && parent) {
        out[*n].parent = parent;
        out[*n].key = key;
        out[*n].idx = idx;
        (*n)++;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *m;

        json_object_foreach(v, k, m)
        {
            collect(m, v, k, 0, out, n, cap);
        }
    } else if (json_is_array(v)) {
        size_t i;

        for (i = 0; i < json_array_size(v); i++)
            collect(json_array_get(v, i), v, NULL, i, out, n, cap);
    }
}

static json_t *random_value(void)
{
    static const char *const texts[] = {"null",
                                        "true",
                                        "false",
                                        "0",
                                        "7",
                                        "-3",
                                        "1200.0",
                                        "12.5",
                                        "1e300",
                                        "-0.0",
                                        "1e-7",
                                        "\"\"",
                                        "\"x<&>\\u2028\"",
                                        "\"2026-09-01T00:00:00Z\"",
                                        "\"2026-09-01T02:00:00.500+02:00\"",
                                        "\"bad time\"",
                                        "[]",
                                        "{}",
                                        "[null]",
                                        "[\"a\",null]",
                                        "{\"a\":\"b\",\"C\":null}",
                                        "{\"x\":1.5}",
                                        "[{}]",
                                        "9223372036854775807",
                                        "{\"id\":\"n\"}"};

    return json_loads(texts[rnd(sizeof(texts) / sizeof(texts[0]))],
                      JSON_DECODE_ANY, NULL);
}

/* One random change to a copy of v. */
static json_t *mutate(json_t *v)
{
    json_t *copy = json_deep_copy(v);
    struct node nodes[4096];
    size_t n = 0;
    struct node *pick;

    collect(copy, NULL, NULL, 0, nodes, &n, 4096);
    if (!n)
        return copy;
    pick = &nodes[rnd((unsigned)n)];
    if (json_is_object(pick->parent)) {
        char key[300];

        switch (rnd(4)) {
        case 0:
            json_object_del(pick->parent, pick->key);
            break;
        case 1: {
            /* Rename with different case (Go matches it anyway). */
            json_t *val = json_incref(json_object_get(pick->parent, pick->key));
            size_t i;

            snprintf(key, sizeof(key), "%s", pick->key);
            for (i = 0; key[i]; i++) {
                if (key[i] >= 'a' && key[i] <= 'z' && rnd(2))
                    key[i] = (char)(key[i] - 32);
            }
            json_object_del(pick->parent, pick->key);
            json_object_set_new(pick->parent, key, val);
            break;
        }
        case 2:
            snprintf(key, sizeof(key), "unknown_%u", rnd(100));
            json_object_set_new(pick->parent, key, random_value());
            break;
        default:
            json_object_set_new(pick->parent, pick->key, random_value());
        }
    } else {
        if (rnd(4) == 0)
            json_array_remove(pick->parent, pick->idx);
        else
            json_array_set_new(pick->parent, pick->idx, random_value());
    }
    return copy;
}

/* ---- the entity API: what it reports equals a separate parse ----------- */

/* e's id, flag_key and keys are what a parse of e->json gives (json_loads
 * keeps member order, so the keys come in the order written). Go writes a
 * float64 below 1e21 without an exponent, so an output may hold an
 * integer beyond 64 bits: read numbers as reals. */
static void check_entity_facts(enum sch_type type, const struct sch_entity *e)
{
    json_error_t je;
    json_t *v = json_loadb(e->json, e->len, JSON_DECODE_INT_AS_REAL, &je);
    json_t *keys, *kv;
    const char *id, *fk, *k;
    struct sch_entity again;
    size_t i = 0;

    if (!v)
        fail_msg("output does not parse (%s): %s", je.text, e->json);
    assert_int_equal(strlen(e->json), e->len);
    id = json_string_value(json_object_get(v, "id"));
    assert_non_null(id);
    assert_non_null(e->id);
    assert_string_equal(e->id, id);
    fk = json_string_value(json_object_get(v, "key"));
    if (type == SCH_FLAG && fk && *fk) {
        assert_non_null(e->flag_key);
        assert_string_equal(e->flag_key, fk);
    } else {
        assert_null(e->flag_key);
    }
    keys = json_object_get(v, "keys");
    if (type == SCH_FLAG) {
        assert_null(e->keys);
        assert_int_equal(e->nkeys, 0);
    } else {
        assert_true(json_is_object(keys) || json_is_null(keys));
        assert_int_equal(e->nkeys, json_object_size(keys));
        json_object_foreach(keys, k, kv)
        {
            assert_string_equal(e->keys[i].key, k);
            assert_string_equal(e->keys[i].value, json_string_value(kv));
            i++;
        }
    }
    /* sch_entity_keys reads the stored value back the same way (unless it
     * holds such an integer: jv, like jansson, refuses it). */
    if (sch_entity_keys(type, e->json, e->len, &again, NULL, 0) < 0) {
        json_t *strict = json_loadb(e->json, e->len, 0, NULL);

        assert_null(strict);
        json_decref(v);
        return;
    }
    assert_null(again.json);
    assert_string_equal(again.id, e->id);
    assert_true(!again.flag_key == !e->flag_key);
    if (e->flag_key)
        assert_string_equal(again.flag_key, e->flag_key);
    assert_int_equal(again.nkeys, e->nkeys);
    for (i = 0; i < e->nkeys; i++) {
        assert_string_equal(again.keys[i].key, e->keys[i].key);
        assert_string_equal(again.keys[i].value, e->keys[i].value);
    }
    sch_entity_release(&again);
    json_decref(v);
}

struct flags_seen {
    json_t *arr; /* the array the product walked */
    size_t n;    /* elements seen so far */
    int ok, bad;
    int stop_at; /* return 7 at this element (-1: never) */
};

/* sch_flags_each's callback: each element as the oracle normalises it. */
static int flags_cb(void *arg, struct sch_entity *flag, const char *why)
{
    struct flags_seen *fs = arg;
    json_t *el = json_array_get(fs->arr, fs->n);
    char err[256];
    char *want = oracle_normalize(SCH_FLAG, el, err, sizeof(err));

    assert_non_null(el);
    assert_non_null(flag);
    if (!want != !flag->json)
        fail_msg("flags_each element %zu: oracle %s, product %s", fs->n,
                 want ? want : err, flag->json ? flag->json : why);
    if (want) {
        assert_null(why);
        assert_string_equal(flag->json, want);
        check_entity_facts(SCH_FLAG, flag);
        fs->ok++;
    } else {
        /* Refused: the element's own "key" (exact name) comes along, so
         * the sink can keep that flag's cached value. */
        json_t *key = json_is_object(el) ? json_object_get(el, "key") : NULL;
        const char *ks = json_is_string(key) ? json_string_value(key) : "";

        assert_non_null(why);
        assert_string_equal(why, err);
        if (*ks)
            assert_string_equal(flag->flag_key, ks);
        else
            assert_null(flag->flag_key);
        fs->bad++;
    }
    free(want);
    return (int)fs->n++ == fs->stop_at ? 7 : 0;
}

/* sch_flags_each over the flag samples and mutated snapshots: every
 * element accepted or refused as the oracle does, with the same bytes or
 * reason, in order; a nonzero callback result stops the walk. */
static void test_flags_each_matches_oracle(void **state)
{
    static const char *const msgs[] = {"msg-01-flags-full.json",
                                       "msg-14-flags-page-1-of-2.json",
                                       "msg-15-flags-page-2-of-2.json"};
    struct flags_seen fs = {0};
    char err[256];
    size_t i;
    int r;

    (void)state;
    for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        json_t *data = sample_data(msgs[i]);

        for (r = 0; r < 400; r++) {
            json_t *arr = r ? mutate(data) : json_incref(data);
            char *text = json_dumps(arr, JSON_COMPACT | JSON_ENCODE_ANY);
            int rc;

            fs.arr = arr;
            fs.n = 0;
            fs.stop_at = r % 5 == 4 ? (int)rnd(4) : -1;
            rc = sch_flags_each(text, strlen(text), flags_cb, &fs, err,
                                sizeof(err));
            if (!json_is_array(arr)) {
                assert_int_equal(rc, -1);
                assert_int_equal(fs.n, 0);
            } else if (fs.stop_at >= 0 &&
                       (size_t)fs.stop_at < json_array_size(arr)) {
                assert_int_equal(rc, 7);
                assert_int_equal(fs.n, (size_t)fs.stop_at + 1);
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(fs.n, json_array_size(arr));
            }
            free(text);
            json_decref(arr);
        }
        json_decref(data);
    }
    assert_true(fs.ok > 1000);
    assert_true(fs.bad > 100);
    assert_int_equal(sch_flags_each("{}", 2, flags_cb, &fs, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "not a JSON array"));
    assert_int_equal(sch_flags_each("[", 1, flags_cb, &fs, err, sizeof(err)),
                     -1);
}

/* Both paths: the same bytes, or the same error. */
static void compare_paths(enum sch_type type, json_t *v, int *ok, int *bad)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *back = json_loads(text, JSON_DECODE_ANY, NULL);
    char e1[256], e2[256];
    char *a = oracle_normalize(type, back, e1, sizeof(e1));
    struct sch_entity e;
    int rc = sch_entity_normalize(type, text, strlen(text), &e, e2, sizeof(e2));
    const char *b = rc == 0 ? e.json : NULL;

    if (!a != !b || (a && strcmp(a, b)) || (!a && strcmp(e1, e2)))
        fail_msg("paths differ on %s\ntree: %s\ntext: %s", text, a ? a : e1,
                 b ? b : e2);
    if (a) {
        check_entity_facts(type, &e);
        (*ok)++;
    } else {
        assert_null(e.json);
        (*bad)++;
    }
    free(a);
    sch_entity_release(&e);
    free(text);
    json_decref(back);
}

static void test_text_matches_tree(void **state)
{
    static const struct {
        const char *msg;
        enum sch_type type;
    } seeds[] = {
        {"msg-02-company-full.json", SCH_COMPANY},
        {"msg-03-user-full.json", SCH_USER},
        {"msg-09-flag-single-full.json", SCH_FLAG},
    };
    size_t i;
    int r, ok = 0, bad = 0;

    (void)state;
    for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        json_t *data = sample_data(seeds[i].msg), *cur = json_incref(data);

        for (r = 0; r < 1500; r++) {
            json_t *next = mutate(rnd(3) ? cur : data);

            compare_paths(seeds[i].type, next, &ok, &bad);
            json_decref(cur);
            cur = next;
            if (rnd(8) == 0) {
                json_decref(cur);
                cur = json_incref(data);
            }
        }
        json_decref(cur);
        json_decref(data);
    }
    /* Both outcomes must have been exercised. */
    assert_true(ok > 500);
    assert_true(bad > 500);
}

/* Merge on both paths: the same bytes, or both fail. */
static void compare_merge(enum sch_type type, json_t *base, json_t *partial,
                          int *ok, int *bad)
{
    char *btext = oracle_normalize(type, base, NULL, 0), *ptext, *a = NULL;
    struct sch_entity e, be;
    const char *b;
    json_t *bt, *m;
    char e1[256], e2[256];
    int rc;

    if (!btext)
        return; /* bases are always ferry's own output */
    ptext = json_dumps(partial, JSON_COMPACT | JSON_ENCODE_ANY);
    bt = json_loads(btext, 0, NULL);
    m = oracle_merge(type, bt, partial, e1, sizeof(e1));
    if (m)
        a = oracle_normalize(type, m, e1, sizeof(e1));
    rc = sch_entity_merge(type, btext, strlen(btext), ptext, strlen(ptext), &e,
                          &be, e2, sizeof(e2));
    b = rc == 0 ? e.json : NULL;
    if (!a != !b || (a && strcmp(a, b)))
        fail_msg("merge paths differ\nbase: %s\npartial: %s\ntree: %s\n"
                 "text: %s",
                 btext, ptext, a ? a : e1, b ? b : e2);
    if (a) {
        struct sch_entity bk;
        size_t i;

        check_entity_facts(type, &e);
        /* base_out: the stored value's lookups, as sch_entity_keys. */
        assert_int_equal(
            sch_entity_keys(type, btext, strlen(btext), &bk, NULL, 0), 0);
        assert_null(be.json);
        assert_string_equal(be.id, bk.id);
        assert_int_equal(be.nkeys, bk.nkeys);
        for (i = 0; i < bk.nkeys; i++) {
            assert_string_equal(be.keys[i].key, bk.keys[i].key);
            assert_string_equal(be.keys[i].value, bk.keys[i].value);
        }
        sch_entity_release(&bk);
        (*ok)++;
    } else {
        assert_null(e.json);
        assert_null(be.id);
        (*bad)++;
    }
    free(a);
    sch_entity_release(&e);
    sch_entity_release(&be);
    json_decref(m);
    json_decref(bt);
    free(ptext);
    free(btext);
}

/* A partial: a random subset of a (mutated) entity's members. */
static json_t *random_partial(json_t *from)
{
    json_t *p = json_object();
    const char *k;
    json_t *v;

    json_object_foreach(from, k, v)
    {
        if (rnd(3) == 0)
            json_object_set(p, k, rnd(6) ? v : json_null());
    }
    return p;
}

static void test_merge_text_matches_tree(void **state)
{
    static const struct {
        const char *full, *partial;
        enum sch_type type;
    } seeds[] = {
        {"msg-02-company-full.json",
         "msg-04-company-partial-metrics-credits.json", SCH_COMPANY},
        {"msg-02-company-full.json",
         "msg-05-company-partial-traits-keys-plans.json", SCH_COMPANY},
        {"msg-03-user-full.json", "msg-06-user-partial-traits.json", SCH_USER},
    };
    size_t i;
    int r, ok = 0, bad = 0;

    (void)state;
    for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        json_t *full = sample_data(seeds[i].full);
        json_t *part = sample_data(seeds[i].partial);

        compare_merge(seeds[i].type, full, part, &ok, &bad);
        for (r = 0; r < 800; r++) {
            json_t *base = rnd(2) ? mutate(full) : json_incref(full);
            json_t *src = mutate(rnd(2) ? full : part);
            json_t *p = rnd(3) ? random_partial(src) : mutate(part);

            compare_merge(seeds[i].type, base, p, &ok, &bad);
            json_decref(base);
            json_decref(src);
            json_decref(p);
        }
        json_decref(full);
        json_decref(part);
    }
    assert_true(ok > 500);
    assert_true(bad > 50);
}

/* ---- jv: the text paths' parser ----------------------------------------- */

/* jv's value equals jansson's (jansson keeps the last of duplicate members,
 * jv keeps them all in document order). */
static int jv_same(const struct jv *v, json_t *j)
{
    size_t i, k, distinct = 0;

    switch (v->type) {
    case JV_NULL:
        return json_is_null(j);
    case JV_TRUE:
        return json_is_true(j);
    case JV_FALSE:
        return json_is_false(j);
    case JV_INT:
        return json_is_integer(j) && json_integer_value(j) == v->u.i;
    case JV_REAL:
        return json_is_real(j) && json_real_value(j) == v->u.d;
    case JV_STR:
        return json_is_string(j) && json_string_length(j) == v->n &&
               !memcmp(json_string_value(j), v->u.s, v->n) &&
               v->u.s[v->n] == '\0';
    case JV_ARR:
        if (!json_is_array(j) || json_array_size(j) != v->n)
            return 0;
        for (i = 0; i < v->n; i++) {
            if (!jv_same(&v->u.items[i], json_array_get(j, i)))
                return 0;
        }
        return 1;
    case JV_OBJ:
        if (!json_is_object(j))
            return 0;
        for (i = 0; i < v->n; i++) {
            const struct jv_member *m = &v->u.members[i];
            json_t *jm;

            for (k = i + 1; k < v->n; k++) {
                if (!strcmp(v->u.members[k].key, m->key))
                    break;
            }
            if (k < v->n)
                continue; /* a later member of that name wins */
            distinct++;
            jm = json_object_get(j, m->key);
            if (strlen(m->key) != m->klen || !jm || !jv_same(&m->val, jm))
                return 0;
        }
        return distinct == json_object_size(j);
    default:
        return 0;
    }
}

/* jv_parse accepts what jansson accepts, with the same values; a refusal
 * names the first bad UTF-8 byte whenever there is one. */
static void check_jv(const char *buf, size_t len, int *ok, int *bad)
{
    const struct jv *root;
    char err[128];
    json_error_t jerr;
    struct jv_doc *doc = jv_parse(buf, len, &root, err, sizeof(err));
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
    size_t at = utf8_check(buf, len);

    if (!doc != !j)
        fail_msg("jv: %s, jansson: %s, on %.*s", doc ? "ok" : err,
                 j ? "ok" : jerr.text, (int)len, buf);
    if (doc) {
        if (!jv_same(root, j))
            fail_msg("jv and jansson read %.*s differently", (int)len, buf);
        (*ok)++;
    } else {
        char want[64];

        assert_true(strncmp(err, "byte ", 5) == 0);
        if (at != len) {
            snprintf(want, sizeof(want), "byte %zu: invalid UTF-8", at);
            assert_string_equal(err, want);
        }
        (*bad)++;
    }
    jv_free(doc);
    json_decref(j);
}

static void test_jv_matches_jansson(void **state)
{
    static const char *crafted[] = {
        "",
        " ",
        "1",
        "-0",
        "\"x\"",
        " [ ] ",
        "{}",
        "[1,]",
        "[,1]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "[1 2]",
        "{1:2}",
        "nul",
        "truex",
        "[true,false,null]",
        "1e400",
        "-1e400",
        "1e-400",
        "1.5e308",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-9223372036854775809",
        "01",
        "1.",
        ".1",
        "-",
        "1e",
        "1e+",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\ud800\\u0041\"",
        "\"\\udc00\\ud800\"",
        "\"\\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\n\\r\\t \\\" \\\\\"",
        "\"\\u00\"",
        "\"\\x\"",
        "\"a\tb\"",
        "\"unterminated",
        "\"unterminated \\",
        "[\"\xc3\"]",
        "{\"a\":[\"\xed\xa0\x80\"]}",
        "[1] \xff",
        "{\"k\":1,\"k\":2,\"l\":[{\"k\":3,\"k\":{}}]}",
        "{\"\xc3\xa9\\u00e9\":\"\xf0\x9f\x98\x80 long enough to need two "
        "steps\"}",
        "[\"0123456789abcdef0123456789abcdef\\n0123456789abcdef\"]",
    };
    static const char *names[] = {
        "msg-02-company-full.json", "msg-01-flags-full.json",
        "msg-05-company-partial-traits-keys-plans.json"};
    static const char alphabet[] = "{}[]\",:\\ \t0123456789eE.-+tfnulr"
                                   "u\x01\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f"
                                   "\x98\x80\xff\xed\xa0";
    char deep[600];
    unsigned seed = 4242;
    size_t i;
    int ok = 0, bad = 0, r;

    (void)state;
    for (i = 0; i < sizeof(crafted) / sizeof(crafted[0]); i++)
        check_jv(crafted[i], strlen(crafted[i]), &ok, &bad);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *base = load_sample(names[i], NULL), *buf;
        size_t len = strlen(base);

        buf = malloc(len);
        assert_non_null(buf);
        check_jv(base, len, &ok, &bad);
        for (r = 0; r < 1500; r++) {
            int k, muts = 1 + r % 3;

            memcpy(buf, base, len);
            for (k = 0; k < muts; k++) {
                seed = seed * 1103515245u + 12345u;
                buf[(seed >> 8) % len] =
                    alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
            }
            check_jv(buf, len, &ok, &bad);
        }
        free(buf);
        free(base);
    }
    assert_true(ok > 300);
    assert_true(bad > 1500);

    /* 256 levels are the limit (jansson would take 2048). */
    for (i = 0; i < 2; i++) {
        size_t n = 256 + i, k;
        const struct jv *root;
        char err[128];
        struct jv_doc *doc;

        for (k = 0; k < n; k++) {
            deep[k] = '[';
            deep[2 * n - 1 - k] = ']';
        }
        doc = jv_parse(deep, 2 * n, &root, err, sizeof(err));
        if (i == 0) {
            assert_non_null(doc);
        } else {
            assert_null(doc);
            assert_string_equal(err, "byte 256: nesting too deep");
        }
        jv_free(doc);
    }
}

/* ---- keys -------------------------------------------------------------------
 */

static void check_lower(const char *in, const char *want)
{
    char *got = sch_lower(in);

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_lower(void **state)
{
    (void)state;
    check_lower("Default-On-Flag", "default-on-flag");
    check_lower("ACME.test", "acme.test");
    check_lower("\xc3\x84"
                "BC",
                "\xc3\xa4"
                "bc"); /* ÄBC -> äbc */
    check_lower("\xce\xa3\xce\x91\xce\xa3",
                "\xcf\x83\xce\xb1\xcf\x83"); /* ΣΑΣ */
    check_lower("\xd0\x9f\xd0\xa0\xd0\x98",
                "\xd0\xbf\xd1\x80\xd0\xb8");             /* ПРИ */
    check_lower("\xc4\xb0", "i");                        /* İ -> i (simple) */
    check_lower("\xe2\x84\xaa", "k");                    /* Kelvin sign */
    check_lower("\xc8\xba", "\xe2\xb1\xa5");             /* Ⱥ -> ⱥ (grows) */
    check_lower("\xe1\xba\x9e", "\xc3\x9f");             /* ẞ -> ß */
    check_lower("\xc7\x85", "\xc7\x86");                 /* ǅ -> ǆ */
    check_lower("\xf0\x90\x90\x80", "\xf0\x90\x90\xa8"); /* Deseret */
    check_lower("\xc3\x9f\xc3\xa4", "\xc3\x9f\xc3\xa4"); /* already lower */
    check_lower("a\xff"
                "B\xc3",
                "a\xff"
                "b\xc3"); /* bad bytes kept */
    check_lower("", "");
}

static void test_keys(void **state)
{
    char *s;

    (void)state;
    s = sch_key_flag(NULL, "c0ffee01", "Default-On-Flag");
    assert_string_equal(s, "schematic:flags:c0ffee01:default-on-flag");
    free(s);
    s = sch_key_flag("ferry", "v1", "\xc3\x84pfel");
    assert_string_equal(s, "ferry:flags:v1:\xc3\xa4pfel");
    free(s);
    /* ID keys keep the id's case. */
    s = sch_key_entity("schematic", SCH_COMPANY, "c0ffee01", "Comp_ACME2");
    assert_string_equal(s, "schematic:company:c0ffee01:Comp_ACME2");
    free(s);
    s = sch_key_entity(NULL, SCH_USER, "c0ffee01", "user_ada");
    assert_string_equal(s, "schematic:user:c0ffee01:user_ada");
    free(s);
    s = sch_key_entity(NULL, SCH_FLAG, "v", "Plan-Flag");
    assert_string_equal(s, "schematic:flags:v:plan-flag");
    free(s);
    /* Lookup keys lower-case the key name and the value. */
    s = sch_key_lookup(NULL, SCH_COMPANY, "c0ffee01", "Domain", "ACME.test");
    assert_string_equal(s, "schematic:company:c0ffee01:domain:acme.test");
    free(s);
    s = sch_key_lookup(NULL, SCH_USER, "c0ffee01", "email", "ADA@acme.test");
    assert_string_equal(s, "schematic:user:c0ffee01:email:ada@acme.test");
    free(s);
    s = sch_key_lookup(NULL, SCH_COMPANY, "v",
                       "\xc3\x84"
                       "BC",
                       "x:Y");
    assert_string_equal(s, "schematic:company:v:\xc3\xa4"
                           "bc:x:y");
    free(s);
    assert_null(sch_key_lookup(NULL, SCH_FLAG, "v", "a", "b"));
    assert_null(sch_key_flag(NULL, NULL, "a"));

    /* The lookup value is the id as JSON. */
    s = sch_lookup_value("comp_acme");
    assert_string_equal(s, "\"comp_acme\"");
    free(s);
    s = sch_lookup_value("Comp \"A\" <&>\\\n\xc3\xa9");
    assert_string_equal(
        s, "\"Comp \\\"A\\\" \\u003c\\u0026\\u003e\\\\\\n\xc3\xa9\"");
    free(s);
    {
        json_t *back = json_loads(s = sch_lookup_value("x\"y"), 0, NULL);

        /* SDKs json-parse it back to the id. */
        assert_null(back); /* a bare string needs JSON_DECODE_ANY */
        back = json_loads(s, JSON_DECODE_ANY, NULL);
        assert_string_equal(json_string_value(back), "x\"y");
        json_decref(back);
        free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_company),
        cmocka_unit_test(test_sample_user),
        cmocka_unit_test(test_sample_flags),
        cmocka_unit_test(test_samples_idempotent),
        cmocka_unit_test(test_defaults_and_unknown),
        cmocka_unit_test(test_member_matching),
        cmocka_unit_test(test_entitlement_omitempty),
        cmocka_unit_test(test_int64_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_float_format),
        cmocka_unit_test(test_string_escaping),
        cmocka_unit_test(test_merge_02_04),
        cmocka_unit_test(test_merge_02_05),
        cmocka_unit_test(test_merge_03_06),
        cmocka_unit_test(test_merge_rules),
        cmocka_unit_test(test_rest_company),
        cmocka_unit_test(test_rest_user_and_errors),
        cmocka_unit_test(test_text_samples),
        cmocka_unit_test(test_text_matches_tree),
        cmocka_unit_test(test_merge_text_matches_tree),
        cmocka_unit_test(test_flags_each_matches_oracle),
        cmocka_unit_test(test_jv_matches_jansson),
        cmocka_unit_test(test_lower),
        cmocka_unit_test(test_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
