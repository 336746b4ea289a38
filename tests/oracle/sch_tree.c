/*
 * tests/oracle/sch_tree.c: the differential oracle for the Schematic model
 * (oracle.h). An independent implementation of the normaliser and of the
 * merge rules over jansson trees: every entity is decoded into a canonical
 * tree (every field in Go's order, maps sorted, times re-written), merged
 * as trees, and only then written. It shares with the product only the
 * schema tables, the time parser and the member matching of
 * plugins/lib/schematic/model.c (the model's description), and gojson.c's
 * scalar writers; the walks are its own.
 */
#include "oracle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/gojson.h"
#include "schematic/model.h"

#define NEW(x) ((json_t *)sch_check(x))

static const char *tree_tname(json_type type)
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

static const char *tree_jtype(const json_t *v)
{
    return tree_tname(json_typeof(v));
}

/* Writes a canonical tree: objects in their member order, integers as
 * integers, reals as float64, strings as Go escapes them. Returns 0, or
 * -1 for a non-finite real. */
static int tree_write(struct gj_buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *m;
        int first = 1;

        gj_char(b, '{');
        json_object_foreach((json_t *)v, k, m)
        {
            if (!first)
                gj_char(b, ',');
            first = 0;
            gj_str(b, k, strlen(k));
            gj_char(b, ':');
            if (tree_write(b, m) < 0)
                return -1;
        }
        gj_char(b, '}');
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;

        gj_char(b, '[');
        for (i = 0; i < json_array_size(v); i++) {
            if (i)
                gj_char(b, ',');
            if (tree_write(b, json_array_get(v, i)) < 0)
                return -1;
        }
        gj_char(b, ']');
        return 0;
    }
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

static json_t *tree_struct(struct sch_ctx *c, const struct sch_schema *s,
                           json_t *in, json_t *into);

static json_t *tree_zero(int kind)
{
    switch (kind) {
    case K_STR:
        return NEW(json_string(""));
    case K_BOOL:
        return json_false();
    case K_INT:
        return NEW(json_integer(0));
    case K_TIME:
        return NEW(json_string("0001-01-01T00:00:00Z"));
    case K_STRLIST:
    case K_LIST:
        return NEW(json_array());
    default:
        return json_null();
    }
}

static int tree_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A map: keys sorted (Go sorts map keys when encoding), values strings
 * (null -> "") or float64 (null -> 0). */
static json_t *tree_map(struct sch_ctx *c, json_t *v, int floats)
{
    size_t n = json_object_size(v), i = 0;
    const char **keys;
    const char *k;
    json_t *m, *out;

    if (!json_is_object(v)) {
        sch_fail(c, "expected object, got %s", tree_jtype(v));
        return NULL;
    }
    keys = sch_check(malloc((n ? n : 1) * sizeof(*keys)));
    json_object_foreach(v, k, m)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(*keys), tree_cmp_str);
    out = NEW(json_object());
    for (i = 0; i < n; i++) {
        json_t *val = json_object_get(v, keys[i]), *r;

        if (floats) {
            if (json_is_null(val))
                r = NEW(json_real(0));
            else if (json_is_number(val))
                r = NEW(json_real(json_number_value(val)));
            else
                r = NULL;
        } else {
            if (json_is_null(val))
                r = NEW(json_string(""));
            else if (json_is_string(val))
                r = NEW(json_stringn(json_string_value(val),
                                     json_string_length(val)));
            else
                r = NULL;
        }
        if (!r) {
            sch_push(c, keys[i], -1);
            sch_fail(c, "expected %s, got %s", floats ? "number" : "string",
                     tree_jtype(val));
            sch_pop(c);
            json_decref(out);
            free(keys);
            return NULL;
        }
        json_object_set_new(out, keys[i], r);
    }
    free(keys);
    return out;
}

/* An int64 from a JSON number: integers as they are; a real only when it
 * is integral and fits (1200.0 -> 1200; 12.5 is an error). */
static json_t *tree_int(struct sch_ctx *c, json_t *v)
{
    double d;

    if (json_is_integer(v))
        return NEW(json_integer(json_integer_value(v)));
    if (!json_is_real(v)) {
        sch_fail(c, "expected integer, got %s", tree_jtype(v));
        return NULL;
    }
    d = json_real_value(v);
    if (d != floor(d) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0) {
        sch_fail(c, "expected integer, got %.17g", d);
        return NULL;
    }
    return NEW(json_integer((json_int_t)d));
}

static json_t *tree_time(struct sch_ctx *c, json_t *v)
{
    char out[40];

    if (!json_is_string(v)) {
        sch_fail(c, "expected RFC 3339 time string, got %s", tree_jtype(v));
        return NULL;
    }
    if (sch_time_norm(json_string_value(v), json_string_length(v), out) < 0) {
        sch_fail(c, "not an RFC 3339 time: \"%.40s\"", json_string_value(v));
        return NULL;
    }
    return NEW(json_string(out));
}

static json_t *tree_list(struct sch_ctx *c, const struct sch_field *f,
                         json_t *v)
{
    json_t *out;
    size_t i;

    if (json_is_null(v))
        return NEW(json_array());
    if (!json_is_array(v)) {
        sch_fail(c, "expected array, got %s", tree_jtype(v));
        return NULL;
    }
    out = NEW(json_array());
    for (i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i), *r = NULL;

        sch_push(c, NULL, (long)i);
        if (f->kind == K_STRLIST) {
            if (json_is_null(e))
                r = NEW(json_string(""));
            else if (json_is_string(e))
                r = NEW(
                    json_stringn(json_string_value(e), json_string_length(e)));
            else
                sch_fail(c, "expected string, got %s", tree_jtype(e));
        } else if (json_is_null(e)) {
            r = json_null();
        } else if (json_is_object(e)) {
            r = tree_struct(c, f->sub, e, NULL);
        } else {
            sch_fail(c, "expected object, got %s", tree_jtype(e));
        }
        sch_pop(c);
        if (!r) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, r);
    }
    return out;
}

/* One field's canonical value from a present member v. base is the value
 * decoded into (the existing field when merging into a struct), or NULL. */
static json_t *tree_value(struct sch_ctx *c, const struct sch_field *f,
                          json_t *v, json_t *base)
{
    if (json_is_null(v)) {
        /* Pointers and maps become nil, lists empty; the other kinds never
         * get here (null leaves them unchanged). */
        return f->kind == K_STRLIST || f->kind == K_LIST ? NEW(json_array())
                                                         : json_null();
    }
    switch (f->kind) {
    case K_STR:
    case K_STR_OPT:
        if (json_is_string(v))
            return NEW(
                json_stringn(json_string_value(v), json_string_length(v)));
        sch_fail(c, "expected string, got %s", tree_jtype(v));
        return NULL;
    case K_BOOL:
        if (json_is_boolean(v))
            return json_boolean(json_is_true(v));
        sch_fail(c, "expected bool, got %s", tree_jtype(v));
        return NULL;
    case K_INT:
    case K_INT_OPT:
        return tree_int(c, v);
    case K_FLOAT_OPT:
        if (json_is_number(v))
            return NEW(json_real(json_number_value(v)));
        sch_fail(c, "expected number, got %s", tree_jtype(v));
        return NULL;
    case K_TIME:
    case K_TIME_OPT:
        return tree_time(c, v);
    case K_STRLIST:
    case K_LIST:
        return tree_list(c, f, v);
    case K_STRUCT_OPT:
        if (json_is_object(v))
            return tree_struct(c, f->sub, v,
                               json_is_object(base) ? base : NULL);
        sch_fail(c, "expected object, got %s", tree_jtype(v));
        return NULL;
    case K_MAP_STR:
        return tree_map(c, v, 0);
    case K_MAP_FLOAT:
        return tree_map(c, v, 1);
    }
    return NULL;
}

static int tree_is_empty(const json_t *v)
{
    return json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ||
           (json_is_object(v) && json_object_size(v) == 0);
}

/*
 * Decodes object `in` as structure s. into, when given, is a canonical
 * value of s that `in` is decoded into (Go's Unmarshal into an existing
 * struct): members absent from `in` keep into's values.
 */
static json_t *tree_struct(struct sch_ctx *c, const struct sch_schema *s,
                           json_t *in, json_t *into)
{
    json_t *slot[SCH_MAX_FIELDS] = {NULL};
    const char *k;
    json_t *v, *out;
    size_t i;

    json_object_foreach(in, k, v)
    {
        int idx = sch_find_field(s, k);

        if (idx >= 0)
            slot[idx] = v;
    }
    out = NEW(json_object());
    for (i = 0; i < s->n; i++) {
        const struct sch_field *f = &s->fields[i];
        json_t *base = into ? json_object_get(into, f->name) : NULL, *r;

        v = slot[i];
        if (v && json_is_null(v) && sch_null_keeps(f->kind))
            v = NULL;
        if (!v) {
            r = base ? NEW(json_deep_copy(base)) : tree_zero(f->kind);
        } else {
            sch_push(c, f->name, -1);
            r = tree_value(c, f, v, base);
            sch_pop(c);
            if (!r) {
                json_decref(out);
                return NULL;
            }
        }
        if (f->omitempty && tree_is_empty(r)) {
            json_decref(r);
            continue;
        }
        json_object_set_new(out, f->name, r);
    }
    return out;
}

static json_t *tree_canon(struct sch_ctx *c, enum sch_type type, json_t *entity)
{
    const struct sch_schema *s = sch_schema_of(type);

    if (!s) {
        sch_fail(c, "unknown entity type %d", (int)type);
        return NULL;
    }
    if (!json_is_object(entity)) {
        sch_fail(c, "%s is not an object", s->name);
        return NULL;
    }
    return tree_struct(c, s, entity, NULL);
}

json_t *oracle_canonical(enum sch_type type, json_t *entity, char *err,
                         size_t errlen)
{
    struct sch_ctx c;
    json_t *out;

    sch_ctx_init(&c, err, errlen);
    out = tree_canon(&c, type, entity);
    if (out && json_string_length(json_object_get(out, "id")) == 0) {
        sch_fail(&c, "id is missing or empty");
        json_decref(out);
        return NULL;
    }
    return out;
}

char *oracle_normalize(enum sch_type type, json_t *entity, char *err,
                       size_t errlen)
{
    json_t *canon = oracle_canonical(type, entity, err, errlen);
    struct gj_buf b;

    if (!canon)
        return NULL;
    gj_init(&b);
    if (tree_write(&b, canon) < 0) {
        /* Cannot happen: jansson never yields an infinite real. */
        if (err && errlen)
            snprintf(err, errlen, "non-finite number");
        gj_release(&b);
        json_decref(canon);
        return NULL;
    }
    json_decref(canon);
    return gj_take(&b);
}

/* Decodes partial member v as field `name` of s (Go: json.Unmarshal of the
 * raw member into a fresh variable of the field's type). */
static json_t *tree_member(struct sch_ctx *c, const struct sch_schema *s,
                           const char *name, json_t *v, json_t *base)
{
    const struct sch_field *f = sch_field_of(s, name);
    json_t *r;

    sch_push(c, name, -1);
    if (json_is_null(v)) {
        switch (f->kind) {
        case K_STRLIST:
        case K_LIST:
            r = NEW(json_array());
            break;
        default:
            r = json_null();
        }
    } else {
        r = tree_value(c, f, v, base);
    }
    sch_pop(c);
    return r;
}

static const char *tree_sval(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A copy of object o with its members in key order (Go sorts map keys). */
static json_t *tree_sorted(json_t *o)
{
    size_t n = json_object_size(o), i = 0;
    const char **keys = sch_check(malloc((n ? n : 1) * sizeof(*keys)));
    const char *k;
    json_t *v, *out = NEW(json_object());

    json_object_foreach(o, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(*keys), tree_cmp_str);
    for (i = 0; i < n; i++)
        json_object_set(out, keys[i], json_object_get(o, keys[i]));
    free(keys);
    return out;
}

/* Shallow-merges canonical map src (or null) into member `name` of obj,
 * which is created when it is null: Go's maps.Copy into a made map. */
static void tree_map_merge(json_t *obj, const char *name, json_t *src)
{
    json_t *dst = json_object_get(obj, name);

    if (!json_is_object(dst)) {
        dst = NEW(json_object());
        json_object_set_new(obj, name, dst);
    }
    if (json_is_object(src) && json_object_size(src) > 0) {
        json_object_update(dst, src);
        json_object_set_new(obj, name, tree_sorted(dst));
    }
}

static int tree_metric_is(json_t *m, const char *ev, const char *period,
                          const char *reset)
{
    const char *a = tree_sval(m, "event_subtype");
    const char *b = tree_sval(m, "period");
    const char *r = tree_sval(m, "month_reset");

    return a && b && r && !strcmp(a, ev) && !strcmp(b, period) &&
           !strcmp(r, reset);
}

/* Go's upsertMetrics: each incoming non-null metric replaces the existing
 * element with its identity (the last one when the existing list repeats
 * an identity) in place, or is appended. */
static void tree_upsert_metrics(json_t *metrics, json_t *incoming)
{
    size_t nexist = json_array_size(metrics), i, j;

    for (i = 0; i < json_array_size(incoming); i++) {
        json_t *m = json_array_get(incoming, i);
        const char *ev, *pe, *re;
        size_t hit = (size_t)-1;

        if (json_is_null(m))
            continue;
        ev = tree_sval(m, "event_subtype");
        pe = tree_sval(m, "period");
        re = tree_sval(m, "month_reset");
        for (j = 0; j < nexist; j++) {
            if (tree_metric_is(json_array_get(metrics, j), ev, pe, re))
                hit = j;
        }
        if (hit != (size_t)-1)
            json_array_set(metrics, hit, m);
        else
            json_array_append(metrics, m);
    }
}

/* Go's syncEntitlementDerivedFields. */
static void tree_rederive(json_t *company, json_t *credits, int metrics_upd)
{
    json_t *ents = json_object_get(company, "entitlements");
    json_t *metrics = json_object_get(company, "metrics");
    size_t i, j;

    for (i = 0; i < json_array_size(ents); i++) {
        json_t *e = json_array_get(ents, i);
        const char *credit, *event;

        if (!json_is_object(e))
            continue;
        credit = tree_sval(e, "credit_id");
        event = tree_sval(e, "event_name");
        if (credits && credit) {
            json_t *bal = json_object_get(credits, credit);

            if (bal)
                json_object_set_new(e, "credit_remaining",
                                    NEW(json_real(json_number_value(bal))));
        }
        if (metrics_upd && event) {
            const char *period = tree_sval(e, "metric_period");
            const char *reset = tree_sval(e, "month_reset");
            json_t *found = NULL;

            if (!period)
                period = "all_time";
            if (!reset)
                reset = "first_of_month";
            /* The lookup map keeps the last metric of each identity. */
            for (j = 0; j < json_array_size(metrics); j++) {
                json_t *m = json_array_get(metrics, j);

                if (json_is_object(m) &&
                    tree_metric_is(m, event, period, reset))
                    found = m;
            }
            if (found)
                json_object_set_new(e, "usage",
                                    NEW(json_integer(json_integer_value(
                                        json_object_get(found, "value")))));
        }
    }
}

static int tree_merge_company(struct sch_ctx *c, json_t *m, json_t *partial)
{
    const struct sch_schema *s = &sch_schema_company;
    json_t *credits = NULL;
    int metrics_upd = 0, ents_in = 0;
    const char *k;
    json_t *v;

    /* Go's DeepCopyCompany always makes a keys map. */
    if (!json_is_object(json_object_get(m, "keys")))
        json_object_set_new(m, "keys", NEW(json_object()));

    json_object_foreach(partial, k, v)
    {
        json_t *r;

        if (!strcmp(k, "id") || !strcmp(k, "account_id") ||
            !strcmp(k, "environment_id")) {
            if (json_is_null(v))
                continue; /* null into a string: unchanged */
        } else if (!strcmp(k, "base_plan_id") ||
                   !strcmp(k, "billing_product_ids") ||
                   !strcmp(k, "plan_ids") || !strcmp(k, "plan_version_ids") ||
                   !strcmp(k, "rules") || !strcmp(k, "traits")) {
            /* replaced below */
        } else if (!strcmp(k, "subscription")) {
            /* Decoded into the existing subscription: absent members keep
             * their values; null clears it. */
            r = tree_member(c, s, k, v, json_object_get(m, k));
            if (!r)
                goto fail;
            json_object_set_new(m, k, r);
            continue;
        } else if (!strcmp(k, "credit_balances")) {
            r = tree_member(c, s, k, v, NULL);
            if (!r)
                goto fail;
            tree_map_merge(m, k, r);
            json_decref(credits);
            credits = json_is_object(r) ? r : NULL;
            if (!credits)
                json_decref(r);
            continue;
        } else if (!strcmp(k, "entitlements")) {
            ents_in = 1;
        } else if (!strcmp(k, "keys")) {
            r = tree_member(c, s, k, v, NULL);
            if (!r)
                goto fail;
            tree_map_merge(m, k, r);
            json_decref(r);
            continue;
        } else if (!strcmp(k, "metrics")) {
            r = tree_member(c, s, k, v, NULL);
            if (!r)
                goto fail;
            tree_upsert_metrics(json_object_get(m, "metrics"), r);
            json_decref(r);
            metrics_upd = 1;
            continue;
        } else {
            continue; /* not a merge field */
        }
        r = tree_member(c, s, k, v, NULL);
        if (!r)
            goto fail;
        json_object_set_new(m, k, r);
    }
    if (!ents_in && (credits || metrics_upd) &&
        json_array_size(json_object_get(m, "entitlements")) > 0)
        tree_rederive(m, credits, metrics_upd);
    json_decref(credits);
    return 0;
fail:
    json_decref(credits);
    return -1;
}

static int tree_merge_user(struct sch_ctx *c, json_t *m, json_t *partial)
{
    const char *k;
    json_t *v;

    json_object_foreach(partial, k, v)
    {
        json_t *r;

        if (!strcmp(k, "id") || !strcmp(k, "account_id") ||
            !strcmp(k, "environment_id")) {
            if (json_is_null(v))
                continue;
        } else if (!strcmp(k, "keys")) {
            r = tree_member(c, &sch_schema_user, k, v, NULL);
            if (!r)
                return -1;
            tree_map_merge(m, k, r);
            json_decref(r);
            continue;
        } else if (strcmp(k, "traits") && strcmp(k, "rules")) {
            continue;
        }
        r = tree_member(c, &sch_schema_user, k, v, NULL);
        if (!r)
            return -1;
        json_object_set_new(m, k, r);
    }
    return 0;
}

json_t *oracle_merge(enum sch_type type, json_t *base, json_t *partial,
                     char *err, size_t errlen)
{
    struct sch_ctx c;
    json_t *m;
    int rc;

    sch_ctx_init(&c, err, errlen);
    if (!json_is_object(partial)) {
        sch_fail(&c, "partial is not an object");
        return NULL;
    }
    if (type == SCH_FLAG) {
        /* A flag partial carries the whole flag (7.5). */
        return tree_canon(&c, type, partial);
    }
    sch_push(&c, "base", -1);
    m = tree_canon(&c, type, base);
    sch_pop(&c);
    if (!m)
        return NULL;
    rc = type == SCH_COMPANY ? tree_merge_company(&c, m, partial)
                             : tree_merge_user(&c, m, partial);
    if (rc < 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

char *oracle_normalize_text(enum sch_type type, const char *json, size_t len,
                            char *err, size_t errlen)
{
    json_error_t je;
    json_t *v = json_loadb(json, len, JSON_DECODE_ANY, &je);
    char *out;

    if (!v) {
        if (err && errlen)
            snprintf(err, errlen, "%s", je.text);
        return NULL;
    }
    out = oracle_normalize(type, v, err, errlen);
    json_decref(v);
    return out;
}

char *oracle_merge_text(enum sch_type type, const char *base, size_t base_len,
                        const char *partial, size_t partial_len, char *err,
                        size_t errlen)
{
    json_t *b = NULL, *p, *m;
    json_error_t je;
    char *out = NULL;

    p = json_loadb(partial, partial_len, JSON_DECODE_ANY, &je);
    if (p && json_is_object(p) && type != SCH_FLAG)
        b = json_loadb(base, base_len, JSON_DECODE_ANY, &je);
    if (!p || (json_is_object(p) && type != SCH_FLAG && !b)) {
        if (err && errlen)
            snprintf(err, errlen, "%s", je.text);
        goto done;
    }
    m = oracle_merge(type, b, p, err, errlen);
    if (m)
        out = oracle_normalize(type, m, err, errlen);
    json_decref(m);
done:
    json_decref(b);
    json_decref(p);
    return out;
}
