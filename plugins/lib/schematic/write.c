/*
 * plugins/lib/schematic/write.c: the text normaliser's writer (write.h):
 * decodes a jv document by the schema tables of model.c, following Go's
 * encoding/json into the rulesengine structures, and writes the result
 * straight into a Go-compatible buffer, recording the top-level id, flag
 * key and keys map as it goes (no second parse of the output). The unit
 * tests compare it with the independent tree oracle (tests/oracle).
 */
#include "schematic/write.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *sch_jv_tname(const struct jv *v)
{
    switch (v->type) {
    case JV_OBJ:
        return "object";
    case JV_ARR:
        return "array";
    case JV_STR:
        return "string";
    case JV_INT:
    case JV_REAL:
        return "number";
    case JV_TRUE:
    case JV_FALSE:
        return "bool";
    default:
        return "null";
    }
}

/* slot[i] = the last member of obj that matches field i (Go's rules).
 * Members usually come in field order, so the field after the previous
 * match is tried first. */
void sch_jv_slots(const struct sch_schema *s, const struct jv *obj,
                  const struct jv **slot)
{
    uint32_t i;
    size_t hint = 0;

    memset(slot, 0, s->n * sizeof(*slot));
    if (!obj || obj->type != JV_OBJ)
        return;
    for (i = 0; i < obj->n; i++) {
        const char *key = obj->u.members[i].key;
        int idx;

        if (hint < s->n && !strcmp(s->fields[hint].name, key))
            idx = (int)hint;
        else
            idx = sch_find_field(s, key);
        if (idx >= 0) {
            slot[idx] = &obj->u.members[i].val;
            hint = (size_t)idx + 1;
        }
    }
}

/* The last member named exactly `name`, or NULL. */
const struct jv *sch_jv_get(const struct jv *obj, const char *name)
{
    const struct jv *r = NULL;
    uint32_t i;

    if (!obj || obj->type != JV_OBJ)
        return NULL;
    for (i = 0; i < obj->n; i++) {
        if (!strcmp(obj->u.members[i].key, name))
            r = &obj->u.members[i].val;
    }
    return r;
}

/* The string a struct field decodes to: its value, "" for null or absent,
 * NULL for another type. */
static const char *sch_jv_str(const struct sch_schema *s, const struct jv *o,
                              const char *field)
{
    const struct jv *slot[SCH_MAX_FIELDS];
    int i;

    sch_jv_slots(s, o, slot);
    for (i = 0; i < (int)s->n; i++) {
        if (strcmp(s->fields[i].name, field))
            continue;
        if (!slot[i] || slot[i]->type == JV_NULL)
            return "";
        return slot[i]->type == JV_STR ? slot[i]->u.s : NULL;
    }
    return NULL;
}

/* A *string field: NULL for null, absent or another type. */
const char *sch_jv_pstr(const struct sch_schema *s, const struct jv *o,
                        const char *field)
{
    const char *v = sch_jv_str(s, o, field);
    const struct jv *slot[SCH_MAX_FIELDS];
    size_t i;

    sch_jv_slots(s, o, slot);
    for (i = 0; i < s->n; i++) {
        if (!strcmp(s->fields[i].name, field))
            return slot[i] && slot[i]->type == JV_STR ? v : NULL;
    }
    return NULL;
}

void sch_write_zero(struct gj_buf *b, int kind)
{
    switch (kind) {
    case K_STR:
        gj_raw(b, "\"\"", 2);
        break;
    case K_BOOL:
        gj_raw(b, "false", 5);
        break;
    case K_INT:
        gj_char(b, '0');
        break;
    case K_TIME:
        gj_raw(b, "\"0001-01-01T00:00:00Z\"", 22);
        break;
    case K_STRLIST:
    case K_LIST:
        gj_raw(b, "[]", 2);
        break;
    default:
        gj_raw(b, "null", 4);
    }
}

static int write_int(struct sch_ctx *c, struct gj_buf *b, const struct jv *v)
{
    double d;

    if (v->type == JV_INT) {
        gj_int(b, v->u.i);
        return 0;
    }
    if (v->type != JV_REAL) {
        sch_fail(c, "expected integer, got %s", sch_jv_tname(v));
        return -1;
    }
    d = v->u.d;
    if (d != floor(d) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0) {
        sch_fail(c, "expected integer, got %.17g", d);
        return -1;
    }
    gj_int(b, (long long)d);
    return 0;
}

static int write_kv_cmp(const void *a, const void *b)
{
    const struct sch_mapent *x = a, *y = b;
    int r = strcmp(x->m->key, y->m->key);

    if (r)
        return r;
    return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * The members of up to two objects (later members win, the second
 * object's over the first's), sorted by key with duplicates dropped, in
 * *out (malloc'd, *n entries). Fails when a source is not an object.
 */
int sch_map_members(struct sch_ctx *c, const struct jv *m1, const struct jv *m2,
                    struct sch_mapent **out, size_t *n)
{
    const struct jv *src[2] = {m1, m2};
    struct sch_mapent *kv;
    size_t i, k, cap = 0, got = 0, kept = 0;

    for (k = 0; k < 2; k++) {
        if (!src[k])
            continue;
        if (src[k]->type != JV_OBJ) {
            sch_fail(c, "expected object, got %s", sch_jv_tname(src[k]));
            return -1;
        }
        cap += src[k]->n;
    }
    kv = sch_check(malloc((cap ? cap : 1) * sizeof(*kv)));
    for (k = 0; k < 2; k++) {
        for (i = 0; src[k] && i < src[k]->n; i++) {
            kv[got].m = &src[k]->u.members[i];
            kv[got].order = got;
            got++;
        }
    }
    qsort(kv, got, sizeof(*kv), write_kv_cmp);
    for (i = 0; i < got; i++) {
        if (i + 1 < got && !strcmp(kv[i].m->key, kv[i + 1].m->key))
            continue; /* a later one wins */
        kv[kept++] = kv[i];
    }
    *out = kv;
    *n = kept;
    return 0;
}

/* Records a keys map in c->cap (values: strings, null as ""; members
 * of another type are left out). */
void sch_cap_map(struct sch_ctx *c, const struct sch_mapent *kv, size_t n)
{
    struct sch_entity *e = c->cap;
    size_t i;

    if (n == 0)
        return;
    e->keys = sch_check(calloc(n, sizeof(*e->keys)));
    for (i = 0; i < n; i++) {
        const struct jv *v = &kv[i].m->val;
        struct sch_kv *o = &e->keys[e->nkeys];

        if (v->type != JV_STR && v->type != JV_NULL)
            continue; /* only sch_entity_keys gets here: lenient */
        o->key = sch_check(strdup(kv[i].m->key));
        o->value = sch_check(strdup(v->type == JV_STR ? v->u.s : ""));
        e->nkeys++;
    }
}

/* Writes one map value: a string (null: "") or a float64 (null: 0). */
static int write_map_value(struct sch_ctx *c, struct gj_buf *b, int floats,
                           const struct jv_member *m)
{
    const struct jv *v = &m->val;

    if (v->type == JV_NULL) {
        if (floats)
            gj_char(b, '0');
        else
            gj_raw(b, "\"\"", 2);
    } else if (floats && v->type == JV_INT) {
        gj_float(b, (double)v->u.i);
    } else if (floats && v->type == JV_REAL) {
        gj_float(b, v->u.d);
    } else if (!floats && v->type == JV_STR) {
        gj_str(b, v->u.s, v->n);
    } else {
        sch_push(c, m->key, -1);
        sch_fail(c, "expected %s, got %s", floats ? "number" : "string",
                 sch_jv_tname(v));
        sch_pop(c);
        return -1;
    }
    return 0;
}

/* A map from up to two objects (see sch_map_members), keys sorted. When
 * c->cap_keys is set, the map written is recorded in c->cap. */
int sch_write_map(struct sch_ctx *c, struct gj_buf *b, int floats,
                  const struct jv *m1, const struct jv *m2)
{
    struct sch_mapent *kv;
    size_t n, i;

    if (sch_map_members(c, m1, m2, &kv, &n) < 0)
        return -1;
    gj_char(b, '{');
    for (i = 0; i < n; i++) {
        if (i)
            gj_char(b, ',');
        gj_str(b, kv[i].m->key, kv[i].m->klen);
        gj_char(b, ':');
        if (write_map_value(c, b, floats, kv[i].m) < 0) {
            free(kv);
            return -1;
        }
    }
    gj_char(b, '}');
    if (c->cap_keys && !floats)
        sch_cap_map(c, kv, n);
    free(kv);
    return 0;
}

/* One list element or list. */
static int write_list(struct sch_ctx *c, struct gj_buf *b,
                      const struct sch_field *f, const struct jv *v)
{
    uint32_t i;

    if (v->type == JV_NULL) {
        gj_raw(b, "[]", 2);
        return 0;
    }
    if (v->type != JV_ARR) {
        sch_fail(c, "expected array, got %s", sch_jv_tname(v));
        return -1;
    }
    gj_char(b, '[');
    for (i = 0; i < v->n; i++) {
        const struct jv *e = &v->u.items[i];
        int rc = 0;

        if (i)
            gj_char(b, ',');
        sch_push(c, NULL, (long)i);
        if (f->kind == K_STRLIST) {
            if (e->type == JV_NULL) {
                gj_raw(b, "\"\"", 2);
            } else if (e->type == JV_STR) {
                gj_str(b, e->u.s, e->n);
            } else {
                sch_fail(c, "expected string, got %s", sch_jv_tname(e));
                rc = -1;
            }
        } else if (e->type == JV_NULL) {
            gj_raw(b, "null", 4);
        } else if (e->type == JV_OBJ) {
            rc = sch_write_struct(c, b, f->sub, e, NULL, NULL, 0);
        } else {
            sch_fail(c, "expected object, got %s", sch_jv_tname(e));
            rc = -1;
        }
        sch_pop(c);
        if (rc < 0)
            return -1;
    }
    gj_char(b, ']');
    return 0;
}

/* A present member v of field f; base: see write.h. */
int sch_write_value(struct sch_ctx *c, struct gj_buf *b,
                    const struct sch_field *f, const struct jv *v,
                    const struct jv *base)
{
    char t[40];

    if (v->type == JV_NULL) {
        sch_write_zero(
            b, f->kind == K_STRLIST || f->kind == K_LIST ? K_LIST : K_STR_OPT);
        return 0;
    }
    switch (f->kind) {
    case K_STR:
    case K_STR_OPT:
        if (v->type == JV_STR) {
            gj_str(b, v->u.s, v->n);
            return 0;
        }
        sch_fail(c, "expected string, got %s", sch_jv_tname(v));
        return -1;
    case K_BOOL:
        if (v->type == JV_TRUE || v->type == JV_FALSE) {
            if (v->type == JV_TRUE)
                gj_raw(b, "true", 4);
            else
                gj_raw(b, "false", 5);
            return 0;
        }
        sch_fail(c, "expected bool, got %s", sch_jv_tname(v));
        return -1;
    case K_INT:
    case K_INT_OPT:
        return write_int(c, b, v);
    case K_FLOAT_OPT:
        if (v->type == JV_INT) {
            gj_float(b, (double)v->u.i);
            return 0;
        }
        if (v->type == JV_REAL) {
            gj_float(b, v->u.d);
            return 0;
        }
        sch_fail(c, "expected number, got %s", sch_jv_tname(v));
        return -1;
    case K_TIME:
    case K_TIME_OPT:
        if (v->type != JV_STR) {
            sch_fail(c, "expected RFC 3339 time string, got %s",
                     sch_jv_tname(v));
            return -1;
        }
        if (sch_time_norm(v->u.s, v->n, t) < 0) {
            sch_fail(c, "not an RFC 3339 time: \"%.40s\"", v->u.s);
            return -1;
        }
        gj_str(b, t, strlen(t));
        return 0;
    case K_STRLIST:
    case K_LIST:
        return write_list(c, b, f, v);
    case K_STRUCT_OPT:
        if (v->type == JV_OBJ)
            return sch_write_struct(c, b, f->sub, v,
                                    base && base->type == JV_OBJ ? base : NULL,
                                    NULL, 0);
        sch_fail(c, "expected object, got %s", sch_jv_tname(v));
        return -1;
    case K_MAP_STR:
        return sch_write_map(c, b, 0, v, NULL);
    case K_MAP_FLOAT:
        return sch_write_map(c, b, 1, v, NULL);
    }
    return -1;
}

/* Field f's value src, or the zero value of its kind when src is NULL. */
int sch_write_value_or_zero(struct sch_ctx *c, struct gj_buf *b,
                            const struct sch_field *f, const struct jv *src)
{
    if (!src) {
        sch_write_zero(b, f->kind);
        return 0;
    }
    return sch_write_value(c, b, f, src, NULL);
}

/* Whether an omit-empty field with this source is left out: absent, null,
 * or an empty list (a value of the wrong type is written, and fails). */
int sch_omitted(const struct sch_field *f, const struct jv *v)
{
    return !v || v->type == JV_NULL ||
           (v->type == JV_ARR && v->n == 0 &&
            (f->kind == K_LIST || f->kind == K_STRLIST));
}

void sch_write_key(struct gj_buf *b, int *first, const char *name)
{
    if (!*first)
        gj_char(b, ',');
    *first = 0;
    gj_char(b, '"');
    gj_raw(b, name, strlen(name)); /* field names need no escaping */
    gj_raw(b, "\":", 2);
}

/*
 * Called before a top-level field f is written from src (NULL: its zero
 * value): records the entity's id and a flag's key in c->cap, and arms
 * c->cap_keys for the keys map.
 */
void sch_cap_field(struct sch_ctx *c, const struct sch_field *f,
                   const struct jv *src)
{
    char **dst;

    if (!c->cap || c->depth != 0)
        return;
    c->cap_keys = 0;
    if (!strcmp(f->name, "id")) {
        dst = &c->cap->id;
    } else if (!strcmp(f->name, "key")) {
        dst = &c->cap->flag_key;
    } else {
        c->cap_keys = f->kind == K_MAP_STR;
        return;
    }
    free(*dst);
    *dst = sch_check(strdup(src && src->type == JV_STR ? src->u.s : ""));
}

int sch_write_struct(struct sch_ctx *c, struct gj_buf *b,
                     const struct sch_schema *s, const struct jv *obj,
                     const struct jv *into, const struct sch_ovr *ovr, int novr)
{
    const struct jv *slot[SCH_MAX_FIELDS], *bslot[SCH_MAX_FIELDS];
    size_t i;
    int first = 1;

    sch_jv_slots(s, obj, slot);
    sch_jv_slots(s, into, bslot);
    gj_char(b, '{');
    for (i = 0; i < s->n; i++) {
        const struct sch_field *f = &s->fields[i];
        const struct jv *v = slot[i], *bv = into ? bslot[i] : NULL, *src;
        int k, rc;

        if (v && v->type == JV_NULL && sch_null_keeps(f->kind))
            v = NULL;
        if (bv && bv->type == JV_NULL && sch_null_keeps(f->kind))
            bv = NULL;
        for (k = 0; k < novr; k++) {
            if (!strcmp(ovr[k].name, f->name))
                break;
        }
        if (k < novr) {
            sch_write_key(b, &first, f->name);
            if (ovr[k].is_int)
                gj_int(b, ovr[k].i);
            else
                gj_float(b, ovr[k].d);
            continue;
        }
        src = v ? v : bv;
        if (f->omitempty && sch_omitted(f, src))
            continue;
        sch_cap_field(c, f, src);
        sch_write_key(b, &first, f->name);
        if (!src) {
            sch_write_zero(b, f->kind);
            continue;
        }
        sch_push(c, f->name, -1);
        rc = sch_write_value(c, b, f, src, v ? bv : NULL);
        sch_pop(c);
        if (rc < 0)
            return -1;
    }
    gj_char(b, '}');
    return 0;
}
