/*
 * plugins/lib/schematic/rest.c: REST CompanyDetail / UserDetail items
 * (section 10.3) to the cached model (schematic.h: sch_rest_entity,
 * sch_rest_entity). A cold path (the initial load), so it works on jansson
 * trees: the item is converted member by member into the cached model's
 * names and shapes, written as text, and normalised once by the text
 * normaliser, which checks every type.
 */
#include "schematic/schematic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/gojson.h"
#include "schematic/model.h"

#define NEW(x) ((json_t *)sch_check(x))

static const char *sch_tname(json_type type)
{
    switch (type) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static const char *sch_jtype(const json_t *v)
{
    return sch_tname(json_typeof(v));
}

/* ---- REST conversion (section 10.3)
 * ------------------------------------------ */

/* Reads an optional member of JSON type `type`: *out is NULL when absent
 * or null; fails on another type. */
static int rest_member(struct sch_ctx *c, json_t *obj, const char *name,
                       json_type type, json_t **out)
{
    json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_typeof(v) != type) {
        sch_fail_at(c, name, "expected %s, got %s", sch_tname(type),
                    sch_jtype(v));
        return -1;
    }
    *out = v;
    return 0;
}

/* An optional string member: NULL when absent or null. */
static int rest_str(struct sch_ctx *c, json_t *obj, const char *name,
                    const char **out)
{
    json_t *v;
    int rc = rest_member(c, obj, name, JSON_STRING, &v);

    *out = v ? json_string_value(v) : NULL;
    return rc;
}

static void set_str(json_t *o, const char *name, const char *s)
{
    json_object_set_new(o, name, s ? NEW(json_string(s)) : json_null());
}

/* Copies member `name` of `from` to `to` when present (any type: the
 * canonicalisation after the conversion checks it). */
static void copy_member(json_t *to, const char *name, json_t *from,
                        const char *from_name)
{
    json_t *v = json_object_get(from, from_name ? from_name : name);

    if (v)
        json_object_set(to, name, v);
}

/* A number as an int64, truncating a fraction as Go's int64(float) does. */
static int rest_int(struct sch_ctx *c, json_t *obj, const char *name,
                    json_t *to)
{
    json_t *v = json_object_get(obj, name);
    double d;

    if (!v)
        return 0;
    if (json_is_null(v) || json_is_integer(v)) {
        json_object_set(to, name, v);
        return 0;
    }
    if (!json_is_real(v)) {
        sch_fail_at(c, name, "expected number, got %s", sch_jtype(v));
        return -1;
    }
    d = trunc(json_real_value(v));
    if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0)) {
        sch_fail_at(c, name, "number out of int64 range");
        return -1;
    }
    json_object_set_new(to, name, NEW(json_integer((json_int_t)d)));
    return 0;
}

static const char *rest_trait_type(const char *t)
{
    if (!t)
        return "string";
    if (!strcmp(t, "boolean") || !strcmp(t, "bool"))
        return "bool";
    if (!strcmp(t, "number") || !strcmp(t, "int") || !strcmp(t, "integer"))
        return "int";
    if (!strcmp(t, "date"))
        return "date";
    return "string";
}

static const char *rest_operator(const char *op)
{
    static const char *const map[][2] = {
        {"eq", "eq"},
        {"equals", "eq"},
        {"ne", "ne"},
        {"not_equals", "ne"},
        {"gt", "gt"},
        {"greater_than", "gt"},
        {"lt", "lt"},
        {"less_than", "lt"},
        {"gte", "gte"},
        {"greater_than_or_equal", "gte"},
        {"lte", "lte"},
        {"less_than_or_equal", "lte"},
        {"is_empty", "is_empty"},
        {"not_empty", "not_empty"},
    };
    size_t i;

    for (i = 0; op && i < sizeof(map) / sizeof(map[0]); i++) {
        if (!strcmp(op, map[i][0]))
            return map[i][1];
    }
    return "eq";
}

static const char *rest_condition_type(const char *t)
{
    static const char *const known[] = {"base_plan",   "billing_product",
                                        "company",     "credit",
                                        "crm_product", "metric",
                                        "plan",        "plan_version",
                                        "trait",       "user"};
    size_t i;

    for (i = 0; t && i < sizeof(known) / sizeof(known[0]); i++) {
        if (!strcmp(t, known[i]))
            return known[i];
    }
    return "";
}

static const char *rest_period(const char *p, int with_week)
{
    if (p && (!strcmp(p, "all_time") || !strcmp(p, "current_month") ||
              !strcmp(p, "current_day") ||
              (with_week && !strcmp(p, "current_week"))))
        return p;
    return "all_time";
}

static const char *rest_month_reset(const char *r)
{
    if (r && !strcmp(r, "billing_cycle"))
        return "billing_cycle";
    return "first_of_month";
}

/* Each element of arr through fn (NULL result: failure; JSON null: skip). */
static json_t *rest_map_list(struct sch_ctx *c, json_t *arr, const char *name,
                             json_t *(*fn)(struct sch_ctx *, json_t *))
{
    json_t *out = NEW(json_array());
    size_t i;

    sch_push(c, name, -1);
    for (i = 0; i < json_array_size(arr); i++) {
        json_t *e = json_array_get(arr, i), *r;

        if (json_is_null(e))
            continue;
        sch_push(c, NULL, (long)i);
        if (!json_is_object(e)) {
            sch_fail(c, "expected object, got %s", sch_jtype(e));
            r = NULL;
        } else {
            r = fn(c, e);
        }
        sch_pop(c);
        if (!r) {
            sch_pop(c);
            json_decref(out);
            return NULL;
        }
        if (json_is_null(r))
            json_decref(r);
        else
            json_array_append_new(out, r);
    }
    sch_pop(c);
    return out;
}

/* A REST TraitDefinition (condition) -> cached TraitDefinition. */
static json_t *rest_trait_def(struct sch_ctx *c, json_t *td)
{
    const char *id, *ct, *et;
    json_t *o;

    if (rest_str(c, td, "id", &id) || rest_str(c, td, "comparable_type", &ct) ||
        rest_str(c, td, "entity_type", &et))
        return NULL;
    o = NEW(json_object());
    set_str(o, "id", id ? id : "");
    set_str(o, "comparable_type", rest_trait_type(ct));
    set_str(o, "entity_type", et ? et : "");
    return o;
}

static json_t *rest_condition(struct sch_ctx *c, json_t *in)
{
    const char *ct, *op, *mp, *mr;
    json_t *o = NEW(json_object()), *td;
    static const char *const copy[] = {"id",
                                       "account_id",
                                       "environment_id",
                                       "resource_ids",
                                       "event_subtype",
                                       "credit_id",
                                       "consumption_rate",
                                       "trait_value"};
    static const char *const tds[] = {"trait_definition",
                                      "comparison_trait_definition"};
    size_t i;

    for (i = 0; i < sizeof(copy) / sizeof(copy[0]); i++)
        copy_member(o, copy[i], in, NULL);
    if (rest_str(c, in, "condition_type", &ct) ||
        rest_str(c, in, "operator", &op) ||
        rest_str(c, in, "metric_period", &mp) ||
        rest_str(c, in, "metric_period_month_reset", &mr) ||
        rest_int(c, in, "metric_value", o))
        goto fail;
    set_str(o, "condition_type", rest_condition_type(ct));
    set_str(o, "operator", rest_operator(op));
    if (mp)
        set_str(o, "metric_period", rest_period(mp, 1));
    if (mr)
        set_str(o, "metric_period_month_reset", rest_month_reset(mr));
    for (i = 0; i < 2; i++) {
        json_t *def;

        if (rest_member(c, in, tds[i], JSON_OBJECT, &td))
            goto fail;
        if (!td)
            continue;
        sch_push(c, tds[i], -1);
        def = rest_trait_def(c, td);
        sch_pop(c);
        if (!def)
            goto fail;
        json_object_set_new(o, tds[i], def);
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* A condition group: {conditions: [...]}. */
static json_t *rest_condition_group(struct sch_ctx *c, json_t *in)
{
    json_t *conds, *cv, *o;

    if (rest_member(c, in, "conditions", JSON_ARRAY, &conds))
        return NULL;
    cv = rest_map_list(c, conds, "conditions", rest_condition);
    if (!cv)
        return NULL;
    o = NEW(json_object());
    json_object_set_new(o, "conditions", cv);
    return o;
}

static json_t *rest_rule(struct sch_ctx *c, json_t *in)
{
    json_t *o, *conds, *groups, *cv, *gv;
    const char *rt;

    if (rest_str(c, in, "rule_type", &rt))
        return NULL;
    if (!rt || (strcmp(rt, "company_override") &&
                strcmp(rt, "company_override_usage_exceeded")))
        return json_null(); /* dropped */
    if (rest_member(c, in, "conditions", JSON_ARRAY, &conds) ||
        rest_member(c, in, "condition_groups", JSON_ARRAY, &groups))
        return NULL;
    o = NEW(json_object());
    copy_member(o, "id", in, NULL);
    copy_member(o, "flag_id", in, NULL);
    copy_member(o, "account_id", in, NULL);
    copy_member(o, "environment_id", in, NULL);
    set_str(o, "rule_type", rt);
    copy_member(o, "name", in, NULL);
    if (rest_int(c, in, "priority", o))
        goto fail;
    copy_member(o, "value", in, NULL);
    cv = rest_map_list(c, conds, "conditions", rest_condition);
    if (!cv)
        goto fail;
    json_object_set_new(o, "conditions", cv);
    gv = rest_map_list(c, groups, "condition_groups", rest_condition_group);
    if (!gv)
        goto fail;
    json_object_set_new(o, "condition_groups", gv);
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *rest_metric(struct sch_ctx *c, json_t *in)
{
    static const char *const copy[] = {"account_id", "environment_id",
                                       "company_id", "event_subtype",
                                       "created_at", "valid_until"};
    const char *period, *reset;
    json_t *o;
    size_t i;

    if (rest_str(c, in, "period", &period) ||
        rest_str(c, in, "month_reset", &reset))
        return NULL;
    o = NEW(json_object());
    for (i = 0; i < sizeof(copy) / sizeof(copy[0]); i++)
        copy_member(o, copy[i], in, NULL);
    set_str(o, "period", rest_period(period, 0));
    set_str(o, "month_reset",
            reset && !strcmp(reset, "billing_cycle") ? "billing_cycle"
                                                     : "first_of_month");
    if (rest_int(c, in, "value", o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *rest_entitlement(struct sch_ctx *c, json_t *in)
{
    static const char *const copy[] = {
        "feature_id",       "feature_key",   "value_type",   "event_name",
        "metric_reset_at",  "credit_id",     "credit_total", "credit_used",
        "credit_remaining", "metric_period", "month_reset"};
    static const char *const ints[] = {"allocation", "usage", "soft_limit"};
    json_t *o = NEW(json_object());
    size_t i;

    for (i = 0; i < sizeof(copy) / sizeof(copy[0]); i++)
        copy_member(o, copy[i], in, NULL);
    for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (rest_int(c, in, ints[i], o)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *rest_trait(struct sch_ctx *c, json_t *in)
{
    json_t *def, *o, *td;
    const char *id, *tt;

    if (rest_member(c, in, "definition", JSON_OBJECT, &def))
        return NULL;
    if (!def)
        return json_null(); /* traits without a definition are dropped */
    sch_push(c, "definition", -1);
    if (rest_str(c, def, "id", &id) || rest_str(c, def, "trait_type", &tt)) {
        sch_pop(c);
        return NULL;
    }
    sch_pop(c);
    o = NEW(json_object());
    td = NEW(json_object());
    set_str(td, "id", id ? id : "");
    set_str(td, "entity_type", c->entity_type);
    set_str(td, "comparable_type", rest_trait_type(tt));
    json_object_set_new(o, "trait_definition", td);
    copy_member(o, "value", in, NULL);
    return o;
}

/* Unix seconds -> RFC 3339 UTC; 0 -> Go's zero time. */
static int rest_unix_time(struct sch_ctx *c, json_t *obj, const char *name,
                          json_t *to)
{
    json_t *v = json_object_get(obj, name);
    char out[40];
    double d;

    if (!v || json_is_null(v)) {
        set_str(to, name, "0001-01-01T00:00:00Z");
        return 0;
    }
    if (!json_is_number(v)) {
        sch_fail_at(c, name, "expected Unix seconds, got %s", sch_jtype(v));
        return -1;
    }
    d = trunc(json_number_value(v));
    if (d == 0) {
        set_str(to, name, "0001-01-01T00:00:00Z");
        return 0;
    }
    if (!(fabs(d) < 1e15) || sch_time_format((long long)d, 0, out) < 0) {
        sch_fail_at(c, name, "Unix time out of range");
        return -1;
    }
    set_str(to, name, out);
    return 0;
}

/* keys[] {key, value} -> map; traits. Shared by companies and users. */
static int rest_common(struct sch_ctx *c, json_t *in, json_t *o,
                       const char *entity_type)
{
    json_t *keys, *traits, *map, *tv;
    size_t i;

    copy_member(o, "id", in, NULL);
    set_str(o, "account_id", "");
    copy_member(o, "environment_id", in, NULL);
    if (rest_member(c, in, "keys", JSON_ARRAY, &keys) ||
        rest_member(c, in, "entity_traits", JSON_ARRAY, &traits))
        return -1;
    map = NEW(json_object());
    json_object_set_new(o, "keys", map);
    for (i = 0; i < json_array_size(keys); i++) {
        json_t *kv = json_array_get(keys, i);
        const char *k, *v;

        if (json_is_null(kv))
            continue;
        sch_push(c, "keys", -1);
        sch_push(c, NULL, (long)i);
        if (!json_is_object(kv)) {
            sch_fail(c, "expected object, got %s", sch_jtype(kv));
            k = NULL;
        } else if (!rest_str(c, kv, "key", &k) &&
                   !rest_str(c, kv, "value", &v)) {
            set_str(map, k ? k : "", v ? v : "");
        }
        sch_pop(c);
        sch_pop(c);
        if (c->failed)
            return -1;
    }
    c->entity_type = entity_type;
    tv = rest_map_list(c, traits, "entity_traits", rest_trait);
    if (!tv)
        return -1;
    json_object_set_new(o, "traits", tv);
    return 0;
}

/* Appends string member `member` of each object in list `name` to `to`
 * when it is not empty; the error path names the list and, when
 * with_index, the element. */
static int rest_ids(struct sch_ctx *c, json_t *list, const char *name,
                    int with_index, const char *member, json_t *to)
{
    const char *s;
    size_t i;
    int rc;

    for (i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);

        if (!json_is_object(e))
            continue;
        sch_push(c, name, -1);
        if (with_index)
            sch_push(c, NULL, (long)i);
        rc = rest_str(c, e, member, &s);
        if (with_index)
            sch_pop(c);
        sch_pop(c);
        if (rc)
            return -1;
        if (s && *s)
            json_array_append_new(to, NEW(json_string(s)));
    }
    return 0;
}

/* base_plan_id and plan_version_ids (the plan's, then the add-ons'). */
static int rest_plans(struct sch_ctx *c, json_t *plan, json_t *addons,
                      json_t *o)
{
    json_t *pv = NEW(json_array());
    const char *s;
    int rc = -1;

    json_object_set_new(o, "plan_version_ids", pv);
    if (plan) {
        sch_push(c, "plan", -1);
        if (rest_str(c, plan, "id", &s))
            goto pop;
        if (s && *s)
            set_str(o, "base_plan_id", s);
        if (rest_str(c, plan, "plan_version_id", &s))
            goto pop;
        sch_pop(c);
        if (s && *s)
            json_array_append_new(pv, NEW(json_string(s)));
    }
    return rest_ids(c, addons, "add_ons", 1, "plan_version_id", pv);
pop:
    sch_pop(c);
    return rc;
}

/* Appends the non-empty product ids of subscription sv to ids; with
 * dedupe, only those not listed yet. */
static int rest_products(struct sch_ctx *c, json_t *sv, int dedupe, json_t *ids)
{
    json_t *arr;
    const char *s;
    size_t j, k;

    if (rest_member(c, sv, "products", JSON_ARRAY, &arr))
        return -1;
    for (j = 0; j < json_array_size(arr); j++) {
        json_t *p = json_array_get(arr, j);
        int dup = 0;

        if (!json_is_object(p))
            continue;
        if (rest_str(c, p, "id", &s))
            return -1;
        if (!s || !*s)
            continue;
        for (k = 0; dedupe && k < json_array_size(ids); k++) {
            if (!strcmp(json_string_value(json_array_get(ids, k)), s))
                dup = 1;
        }
        if (!dup)
            json_array_append_new(ids, NEW(json_string(s)));
    }
    return 0;
}

/* billing_product_ids: every subscription's products, then the current
 * subscription's products not already listed. */
static int rest_billing_products(struct sch_ctx *c, json_t *subs, json_t *sub,
                                 json_t *o)
{
    json_t *ids = NEW(json_array());
    size_t i, n = json_array_size(subs);

    json_object_set_new(o, "billing_product_ids", ids);
    for (i = 0; i <= n; i++) {
        json_t *sv = i < n ? json_array_get(subs, i) : sub;
        int rc;

        if (!json_is_object(sv))
            continue;
        sch_push(c, i == n ? "billing_subscription" : "billing_subscriptions",
                 -1);
        rc = rest_products(c, sv, i == n, ids);
        sch_pop(c);
        if (rc)
            return -1;
    }
    return 0;
}

static int rest_company(struct sch_ctx *c, json_t *in, json_t *o)
{
    static const struct {
        const char *name;
        json_t *(*fn)(struct sch_ctx *, json_t *);
    } lists[] = {{"metrics", rest_metric},
                 {"rules", rest_rule},
                 {"entitlements", rest_entitlement}};
    json_t *plan, *addons, *plans, *subs, *sub, *credits, *arr;
    size_t i;

    if (rest_common(c, in, o, "company") < 0)
        return -1;
    if (rest_member(c, in, "plan", JSON_OBJECT, &plan) ||
        rest_member(c, in, "add_ons", JSON_ARRAY, &addons) ||
        rest_member(c, in, "plans", JSON_ARRAY, &plans) ||
        rest_member(c, in, "billing_subscriptions", JSON_ARRAY, &subs) ||
        rest_member(c, in, "billing_subscription", JSON_OBJECT, &sub) ||
        rest_member(c, in, "billing_credit_balances", JSON_OBJECT, &credits))
        return -1;

    if (rest_plans(c, plan, addons, o) ||
        rest_billing_products(c, subs, sub, o))
        return -1;

    /* plan_ids */
    arr = NEW(json_array());
    json_object_set_new(o, "plan_ids", arr);
    if (rest_ids(c, plans, "plans", 0, "id", arr))
        return -1;

    /* subscription */
    if (sub) {
        json_t *so = NEW(json_object());

        json_object_set_new(o, "subscription", so);
        sch_push(c, "billing_subscription", -1);
        copy_member(so, "id", sub, NULL);
        if (rest_unix_time(c, sub, "period_start", so) ||
            rest_unix_time(c, sub, "period_end", so)) {
            sch_pop(c);
            return -1;
        }
        sch_pop(c);
    }

    json_object_set_new(o, "credit_balances",
                        credits ? NEW(json_deep_copy(credits))
                                : NEW(json_object()));

    for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (rest_member(c, in, lists[i].name, JSON_ARRAY, &arr))
            return -1;
        arr = rest_map_list(c, arr, lists[i].name, lists[i].fn);
        if (!arr)
            return -1;
        json_object_set_new(o, lists[i].name, arr);
    }
    return 0;
}

/* The REST item converted to the cached model's member names and
 * shapes, not yet checked against the model (a new reference), or NULL
 * with the reason in c. */
static json_t *rest_convert(struct sch_ctx *c, enum sch_type type,
                            json_t *detail)
{
    json_t *o;
    int rc;

    if (!json_is_object(detail)) {
        sch_fail(c, "REST item is not an object");
        return NULL;
    }
    if (type != SCH_COMPANY && type != SCH_USER) {
        sch_fail(c, "REST conversion is for companies and users");
        return NULL;
    }
    o = NEW(json_object());
    if (type == SCH_COMPANY) {
        rc = rest_company(c, detail, o);
    } else {
        rc = rest_common(c, detail, o, "user");
        if (rc == 0)
            json_object_set_new(o, "rules", NEW(json_array()));
    }
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Writes a jansson tree as compact JSON text with Go's string and number
 * formatting (member order kept). Returns 0, or -1 for a non-finite
 * real (jansson never makes one). */
static int rest_write(struct gj_buf *b, const json_t *v)
{
    const char *k;
    json_t *m;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        gj_char(b, '{');
        i = 0;
        json_object_foreach((json_t *)v, k, m)
        {
            if (i++)
                gj_char(b, ',');
            gj_str(b, k, strlen(k));
            gj_char(b, ':');
            if (rest_write(b, m) < 0)
                return -1;
        }
        gj_char(b, '}');
        return 0;
    case JSON_ARRAY:
        gj_char(b, '[');
        for (i = 0; i < json_array_size(v); i++) {
            if (i)
                gj_char(b, ',');
            if (rest_write(b, json_array_get(v, i)) < 0)
                return -1;
        }
        gj_char(b, ']');
        return 0;
    case JSON_STRING:
        gj_str(b, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        gj_int(b, (long long)json_integer_value(v));
        return 0;
    case JSON_REAL:
        if (!isfinite(json_real_value(v)))
            return -1;
        gj_float(b, json_real_value(v));
        return 0;
    case JSON_TRUE:
        gj_raw(b, "true", 4);
        return 0;
    case JSON_FALSE:
        gj_raw(b, "false", 5);
        return 0;
    case JSON_NULL:
        gj_raw(b, "null", 4);
        return 0;
    }
    return -1;
}

/*
 * One parse of the item's text: the converted tree is written as text and
 * normalised by the text normaliser (which checks every type: times,
 * integers, ...), so the bytes are those the sink would store for the
 * converted item.
 */
int sch_rest_entity(enum sch_type type, json_t *detail, struct sch_entity *out,
                    char *err, size_t errlen)
{
    struct sch_ctx c;
    struct gj_buf b;
    json_t *o;
    int rc;

    memset(out, 0, sizeof(*out));
    sch_ctx_init(&c, err, errlen);
    o = rest_convert(&c, type, detail);
    if (!o)
        return -1;
    gj_init(&b);
    rc = rest_write(&b, o);
    json_decref(o);
    if (rc < 0) {
        sch_fail(&c, "non-finite number");
        gj_release(&b);
        return -1;
    }
    rc = sch_entity_normalize(type, b.p, b.len, out, err, errlen);
    gj_release(&b);
    return rc;
}
