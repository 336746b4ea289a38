/*
 * tests/support/testserver/rest.c: cached model -> REST CompanyDetail /
 * UserDetail, the inverse of sch_rest_entity (schematic-datastream.md 10.3).
 *
 * The workload only produces entities whose every field survives that
 * conversion (account_id "", traits with definitions, whole-second UTC
 * subscription times, metric periods and resets the conversion keeps,
 * company_override rules only, entitlements without the fields REST lacks),
 * and rest_roundtrip_check() proves it for each entity served.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testserver.h"

static void oset(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v);
}

static json_t *copy_or_null(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return v ? json_deep_copy(v) : json_null();
}

/* "2026-09-01T00:00:00Z" -> Unix seconds; 0 for the zero time or an
 * unparsable value. */
static long long unix_of(const char *s)
{
    struct tm tm;
    const char *end;

    if (!s)
        return 0;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || strcmp(end, "Z") != 0 || tm.tm_year + 1900 <= 1)
        return 0;
    return (long long)timegm(&tm);
}

static const char *trait_type_of(const char *ctype)
{
    if (!ctype)
        return "string";
    if (strcmp(ctype, "bool") == 0)
        return "boolean";
    if (strcmp(ctype, "int") == 0)
        return "number";
    if (strcmp(ctype, "date") == 0)
        return "date";
    return "string";
}

static json_t *rest_keys(json_t *keys)
{
    json_t *a = json_array();
    const char *k;
    json_t *v;

    json_object_foreach(keys, k, v)
    {
        json_t *kv = json_object();

        oset(kv, "key", json_string(k));
        oset(kv, "value", json_deep_copy(v));
        json_array_append_new(a, kv);
    }
    return a;
}

static json_t *rest_traits(json_t *traits, const char *etype)
{
    json_t *a = json_array();
    size_t i;
    json_t *t;

    json_array_foreach(traits, i, t)
    {
        json_t *def = json_object_get(t, "trait_definition");
        json_t *rt, *rd;

        if (!json_is_object(def))
            continue;
        rt = json_object();
        rd = json_object();
        oset(rd, "id", copy_or_null(def, "id"));
        oset(rd, "entity_type", json_string(etype));
        oset(rd, "trait_type",
             json_string(trait_type_of(
                 json_string_value(json_object_get(def, "comparable_type")))));
        oset(rt, "definition", rd);
        oset(rt, "value", copy_or_null(t, "value"));
        json_array_append_new(a, rt);
    }
    return a;
}

/* Metrics as REST writes them: month_reset "first" for first_of_month. */
static json_t *rest_metrics(json_t *metrics)
{
    json_t *a = json_array();
    size_t i;
    json_t *m;

    json_array_foreach(metrics, i, m)
    {
        json_t *r = json_deep_copy(m);
        const char *reset =
            json_string_value(json_object_get(m, "month_reset"));

        if (reset && strcmp(reset, "first_of_month") == 0)
            oset(r, "month_reset", json_string("first"));
        json_array_append_new(a, r);
    }
    return a;
}

static json_t *rest_company(json_t *c)
{
    json_t *d = json_object();
    json_t *pv = json_object_get(c, "plan_version_ids");
    json_t *base = json_object_get(c, "base_plan_id");
    json_t *sub = json_object_get(c, "subscription");
    json_t *addons = json_array(), *plans = json_array();
    json_t *products = json_array(), *subs = json_array();
    json_t *bs, *cb;
    size_t i, first = 0;
    json_t *v;

    oset(d, "id", copy_or_null(c, "id"));
    oset(d, "environment_id", copy_or_null(c, "environment_id"));
    oset(d, "keys", rest_keys(json_object_get(c, "keys")));
    oset(d, "entity_traits",
         rest_traits(json_object_get(c, "traits"), "company"));

    /* plan_version_ids = plan.plan_version_id, then the add-ons'. */
    if (json_is_string(base)) {
        json_t *plan = json_object();

        oset(plan, "id", json_deep_copy(base));
        if (json_array_size(pv) > 0) {
            oset(plan, "plan_version_id",
                 json_deep_copy(json_array_get(pv, 0)));
            first = 1;
        } else {
            oset(plan, "plan_version_id", json_string(""));
        }
        oset(d, "plan", plan);
    } else {
        oset(d, "plan", json_null());
    }
    json_array_foreach(pv, i, v)
    {
        json_t *a;

        if (i < first)
            continue;
        a = json_object();
        oset(a, "id", json_sprintf("addon_%zu", i));
        oset(a, "plan_version_id", json_deep_copy(v));
        json_array_append_new(addons, a);
    }
    oset(d, "add_ons", addons);

    json_array_foreach(json_object_get(c, "plan_ids"), i, v)
    {
        json_t *p = json_object();

        oset(p, "id", json_deep_copy(v));
        json_array_append_new(plans, p);
    }
    oset(d, "plans", plans);

    json_array_foreach(json_object_get(c, "billing_product_ids"), i, v)
    {
        json_t *p = json_object();

        oset(p, "id", json_deep_copy(v));
        json_array_append_new(products, p);
    }
    bs = json_object();
    oset(bs, "products", products);
    json_array_append_new(subs, bs);
    oset(d, "billing_subscriptions", subs);

    if (json_is_object(sub)) {
        json_t *s = json_object();

        oset(s, "id", copy_or_null(sub, "id"));
        oset(s, "period_start",
             json_integer(unix_of(
                 json_string_value(json_object_get(sub, "period_start")))));
        oset(s, "period_end",
             json_integer(unix_of(
                 json_string_value(json_object_get(sub, "period_end")))));
        oset(s, "products", json_array());
        oset(d, "billing_subscription", s);
    } else {
        oset(d, "billing_subscription", json_null());
    }

    cb = json_object_get(c, "credit_balances");
    oset(d, "billing_credit_balances",
         json_is_object(cb) ? json_deep_copy(cb) : json_object());
    oset(d, "metrics", rest_metrics(json_object_get(c, "metrics")));
    oset(d, "rules", copy_or_null(c, "rules"));
    v = json_object_get(c, "entitlements");
    oset(d, "entitlements", v ? json_deep_copy(v) : json_array());
    return d;
}

static json_t *rest_user(json_t *u)
{
    json_t *d = json_object();

    oset(d, "id", copy_or_null(u, "id"));
    oset(d, "environment_id", copy_or_null(u, "environment_id"));
    oset(d, "keys", rest_keys(json_object_get(u, "keys")));
    oset(d, "entity_traits", rest_traits(json_object_get(u, "traits"), "user"));
    return d;
}

json_t *rest_from_cached(enum sch_type type, json_t *cached)
{
    return type == SCH_COMPANY ? rest_company(cached) : rest_user(cached);
}

int rest_roundtrip_check(enum sch_type type, json_t *cached, const char *text,
                         size_t len, char *err, size_t errlen)
{
    json_t *detail = rest_from_cached(type, cached);
    char e1[160] = "";
    struct sch_entity back;
    char *want = strndup(text, len);
    char *got = NULL;
    int rc = 0;

    if (sch_rest_entity(type, detail, &back, e1, sizeof(e1)) == 0) {
        got = back.json;
        back.json = NULL;
        sch_entity_release(&back);
    }
    if (!want || !got) {
        snprintf(err, errlen, "REST round trip failed: %s", e1);
        rc = -1;
    } else if (strcmp(want, got) != 0) {
        size_t k = 0;

        while (want[k] && want[k] == got[k])
            k++;
        snprintf(err, errlen,
                 "REST round trip differs at byte %zu:\n  want ...%.120s\n"
                 "  got  ...%.120s",
                 k, want + (k > 40 ? k - 40 : 0), got + (k > 40 ? k - 40 : 0));
        rc = -1;
    }
    free(want);
    free(got);
    json_decref(detail);
    return rc;
}
