/*
 * plugins/lib/schematic/merge.c: partial merges on JSON text (section 5,
 * following schematic-go datastream/merge.go where the spec is silent;
 * the rules are listed in schematic.h at sch_entity_merge). The base and
 * the partial are each parsed once; the merged entity is written
 * directly, by the same field writers as the normaliser (write.h).
 */
#include "schematic/schematic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "schematic/write.h"

/* A metric and its identity (NULL members: not strings, never equal). */
struct merge_metric {
    const struct jv *m;
    const char *ev;
    const char *pe;
    const char *re;
};

struct merge_state {
    const struct jv *pv[SCH_MAX_FIELDS]; /* partial members by field */
    const struct jv *bv[SCH_MAX_FIELDS]; /* base members by field */
    struct merge_metric *metrics;        /* merged metrics (elements) */
    size_t nmetrics;
    int metrics_merged;
    const struct jv *credits; /* the partial's credit_balances object */
    int ents_in;              /* the partial carries entitlements */
};

static void merge_metric_id(struct merge_metric *wm, const struct jv *m)
{
    const struct jv *slot[SCH_MAX_FIELDS];
    const char **out[3];
    static const char *const names[3] = {"event_subtype", "period",
                                         "month_reset"};
    size_t i, k;

    wm->m = m;
    wm->ev = wm->pe = wm->re = NULL;
    if (m->type != JV_OBJ)
        return;
    out[0] = &wm->ev;
    out[1] = &wm->pe;
    out[2] = &wm->re;
    sch_jv_slots(&sch_schema_metric, m, slot);
    for (i = 0; i < sch_schema_metric.n; i++) {
        for (k = 0; k < 3; k++) {
            if (strcmp(sch_schema_metric.fields[i].name, names[k]))
                continue;
            if (!slot[i] || slot[i]->type == JV_NULL)
                *out[k] = "";
            else if (slot[i]->type == JV_STR)
                *out[k] = slot[i]->u.s;
        }
    }
}

static int merge_metric_eq(const struct merge_metric *a, const char *ev,
                           const char *pe, const char *re)
{
    return a->ev && a->pe && a->re && !strcmp(a->ev, ev) &&
           !strcmp(a->pe, pe) && !strcmp(a->re, re);
}

/* Builds the merged metrics list: base elements, upserted (Go's
 * upsertMetrics). */
static int merge_metrics(struct sch_ctx *c, struct merge_state *w,
                         const struct jv *base, const struct jv *in)
{
    size_t nbase = 0, i, j;

    if (base && base->type != JV_NULL && base->type != JV_ARR) {
        sch_push(c, "metrics", -1);
        sch_fail(c, "expected array, got %s", sch_jv_tname(base));
        sch_pop(c);
        return -1;
    }
    if (in->type != JV_NULL && in->type != JV_ARR) {
        sch_push(c, "metrics", -1);
        sch_fail(c, "expected array, got %s", sch_jv_tname(in));
        sch_pop(c);
        return -1;
    }
    if (base && base->type == JV_ARR)
        nbase = base->n;
    w->metrics = sch_check(malloc(
        (nbase + (in->type == JV_ARR ? in->n : 0) + 1) * sizeof(*w->metrics)));
    for (i = 0; i < nbase; i++)
        merge_metric_id(&w->metrics[i], &base->u.items[i]);
    w->nmetrics = nbase;
    for (i = 0; in->type == JV_ARR && i < in->n; i++) {
        const struct jv *m = &in->u.items[i];
        struct merge_metric wm;
        size_t hit = (size_t)-1;

        if (m->type == JV_NULL)
            continue;
        if (m->type != JV_OBJ) {
            sch_push(c, "metrics", -1);
            sch_push(c, NULL, (long)i);
            sch_fail(c, "expected object, got %s", sch_jv_tname(m));
            sch_pop(c);
            sch_pop(c);
            return -1;
        }
        merge_metric_id(&wm, m);
        if (wm.ev && wm.pe && wm.re) {
            for (j = 0; j < nbase; j++) {
                if (merge_metric_eq(&w->metrics[j], wm.ev, wm.pe, wm.re))
                    hit = j;
            }
        }
        if (hit != (size_t)-1)
            w->metrics[hit] = wm;
        else
            w->metrics[w->nmetrics++] = wm;
    }
    w->metrics_merged = 1;
    return 0;
}

/* The int64 a metric's value decodes to (0 when it would not decode: the
 * metric itself then fails to write). */
static long long merge_metric_value(const struct jv *m)
{
    const struct jv *slot[SCH_MAX_FIELDS];
    size_t i;

    sch_jv_slots(&sch_schema_metric, m, slot);
    for (i = 0; i < sch_schema_metric.n; i++) {
        const struct jv *v = slot[i];

        if (strcmp(sch_schema_metric.fields[i].name, "value") || !v)
            continue;
        if (v->type == JV_INT)
            return v->u.i;
        if (v->type == JV_REAL && v->u.d == floor(v->u.d) &&
            fabs(v->u.d) < 9e18)
            return (long long)v->u.d;
    }
    return 0;
}

/* Writes the base entitlements with credit_remaining / usage re-derived
 * (Go's syncEntitlementDerivedFields). */
static int merge_rederived(struct sch_ctx *c, struct gj_buf *b,
                           const struct merge_state *w, const struct jv *ents,
                           const struct jv *credits)
{
    uint32_t i;
    size_t j;

    gj_char(b, '[');
    for (i = 0; i < ents->n; i++) {
        const struct jv *e = &ents->u.items[i];
        struct sch_ovr ovr[2];
        int novr = 0, rc;

        if (i)
            gj_char(b, ',');
        if (e->type != JV_OBJ) {
            sch_push(c, "entitlements", -1);
            sch_push(c, NULL, (long)i);
            if (e->type == JV_NULL) {
                gj_raw(b, "null", 4);
                rc = 0;
            } else {
                sch_fail(c, "expected object, got %s", sch_jv_tname(e));
                rc = -1;
            }
            sch_pop(c);
            sch_pop(c);
            if (rc < 0)
                return -1;
            continue;
        }
        if (credits) {
            const char *cid =
                sch_jv_pstr(&sch_schema_entitlement, e, "credit_id");
            const struct jv *bal = cid ? sch_jv_get(credits, cid) : NULL;

            if (bal) {
                ovr[novr].name = "credit_remaining";
                ovr[novr].is_int = 0;
                ovr[novr].d = bal->type == JV_INT    ? (double)bal->u.i
                              : bal->type == JV_REAL ? bal->u.d
                                                     : 0;
                novr++;
            }
        }
        if (w->metrics_merged) {
            const char *ev =
                sch_jv_pstr(&sch_schema_entitlement, e, "event_name");
            const char *pe =
                sch_jv_pstr(&sch_schema_entitlement, e, "metric_period");
            const char *re =
                sch_jv_pstr(&sch_schema_entitlement, e, "month_reset");
            const struct jv *found = NULL;

            for (j = 0; ev && j < w->nmetrics; j++) {
                if (merge_metric_eq(&w->metrics[j], ev, pe ? pe : "all_time",
                                    re ? re : "first_of_month"))
                    found = w->metrics[j].m;
            }
            if (found) {
                ovr[novr].name = "usage";
                ovr[novr].is_int = 1;
                ovr[novr].i = merge_metric_value(found);
                novr++;
            }
        }
        sch_push(c, "entitlements", -1);
        sch_push(c, NULL, (long)i);
        rc =
            sch_write_struct(c, b, &sch_schema_entitlement, e, NULL, ovr, novr);
        sch_pop(c);
        sch_pop(c);
        if (rc < 0)
            return -1;
    }
    gj_char(b, ']');
    return 0;
}

/* Indexes the merge: partial and base members by field, the incoming
 * credit balances, the merged metrics, whether entitlements come in. */
static int merge_index(struct sch_ctx *c, struct merge_state *w,
                       const struct jv *base, const struct jv *partial)
{
    const struct sch_schema *s = &sch_schema_company;
    size_t i;
    uint32_t k;

    sch_jv_slots(s, base, w->bv);
    /* Partial members match exactly (merge.go switches on the name). */
    for (k = 0; k < partial->n; k++) {
        for (i = 0; i < s->n; i++) {
            if (!strcmp(partial->u.members[k].key, s->fields[i].name))
                w->pv[i] = &partial->u.members[k].val;
        }
    }
    for (i = 0; i < s->n; i++) {
        const char *name = s->fields[i].name;

        if (!w->pv[i])
            continue;
        if (!strcmp(name, "credit_balances") && w->pv[i]->type == JV_OBJ)
            w->credits = w->pv[i];
        if (!strcmp(name, "entitlements"))
            w->ents_in = 1;
        if (!strcmp(name, "metrics") &&
            merge_metrics(c, w, w->bv[i], w->pv[i]) < 0)
            return -1;
    }
    return 0;
}

/* The merged metrics list (merge_metrics made it). */
static int merge_write_metrics(struct sch_ctx *c, struct gj_buf *b,
                               const struct merge_state *w)
{
    size_t j;
    int rc = 0;

    gj_char(b, '[');
    for (j = 0; j < w->nmetrics && rc == 0; j++) {
        const struct jv *m = w->metrics[j].m;

        if (j)
            gj_char(b, ',');
        sch_push(c, NULL, (long)j);
        if (m->type == JV_NULL) {
            gj_raw(b, "null", 4);
        } else if (m->type == JV_OBJ) {
            rc = sch_write_struct(c, b, &sch_schema_metric, m, NULL, NULL, 0);
        } else {
            sch_fail(c, "expected object, got %s", sch_jv_tname(m));
            rc = -1;
        }
        sch_pop(c);
    }
    gj_char(b, ']');
    return rc;
}

/* Writes merged company field i (its path pushed by the caller). */
static int merge_company_field(struct sch_ctx *c, struct gj_buf *b,
                               const struct merge_state *w, size_t i,
                               const struct jv *pv, const struct jv *bv,
                               int *first)
{
    const struct sch_field *f = &sch_schema_company.fields[i];
    const struct jv *src = pv ? pv : bv;
    int rc;

    if (!strcmp(f->name, "credit_balances") && !pv) {
        sch_write_key(b, first, f->name);
        return sch_write_value_or_zero(c, b, f, bv);
    }
    if (!strcmp(f->name, "keys") || !strcmp(f->name, "credit_balances")) {
        /* Go makes the map, then copies the partial's into it. */
        sch_write_key(b, first, f->name);
        return sch_write_map(c, b, f->kind == K_MAP_FLOAT,
                             bv && bv->type != JV_NULL ? bv : NULL,
                             pv && pv->type != JV_NULL ? pv : NULL);
    }
    if (!strcmp(f->name, "metrics") && w->metrics_merged) {
        sch_write_key(b, first, f->name);
        return merge_write_metrics(c, b, w);
    }
    if (!strcmp(f->name, "entitlements") && !w->ents_in &&
        (w->credits || w->metrics_merged) && bv && bv->type == JV_ARR &&
        bv->n > 0) {
        /* Re-derived entitlements report their own paths. */
        sch_pop(c);
        sch_write_key(b, first, f->name);
        rc = merge_rederived(c, b, w, bv, w->credits);
        sch_push(c, f->name, -1);
        return rc;
    }
    if (!strcmp(f->name, "subscription") && pv) {
        /* Decoded into the existing subscription. */
        sch_write_key(b, first, f->name);
        return sch_write_value(c, b, f, pv, w->bv[i]);
    }
    if (f->omitempty && sch_omitted(f, src))
        return 0;
    sch_write_key(b, first, f->name);
    return sch_write_value_or_zero(c, b, f, src);
}

static int merge_company(struct sch_ctx *c, struct gj_buf *b,
                         const struct jv *base, const struct jv *partial)
{
    const struct sch_schema *s = &sch_schema_company;
    struct merge_state w;
    size_t i;
    int first = 1, rc;

    memset(&w, 0, sizeof(w));
    rc = merge_index(c, &w, base, partial);
    if (rc == 0)
        gj_char(b, '{');
    for (i = 0; i < s->n && rc == 0; i++) {
        const struct sch_field *f = &s->fields[i];
        const struct jv *pv = w.pv[i], *bv = w.bv[i];

        if (bv && bv->type == JV_NULL && sch_null_keeps(f->kind))
            bv = NULL;
        if (pv && pv->type == JV_NULL && sch_null_keeps(f->kind))
            pv = NULL;
        sch_cap_field(c, f, pv ? pv : bv);
        sch_push(c, f->name, -1);
        rc = merge_company_field(c, b, &w, i, pv, bv, &first);
        sch_pop(c);
    }
    if (rc == 0)
        gj_char(b, '}');
    free(w.metrics);
    return rc;
}

static int merge_user(struct sch_ctx *c, struct gj_buf *b,
                      const struct jv *base, const struct jv *partial)
{
    const struct sch_schema *s = &sch_schema_user;
    const struct jv *pv[SCH_MAX_FIELDS] = {NULL}, *bv[SCH_MAX_FIELDS];
    size_t i;
    uint32_t k;
    int first = 1, rc = 0;

    sch_jv_slots(s, base, bv);
    for (k = 0; k < partial->n; k++) {
        for (i = 0; i < s->n; i++) {
            if (!strcmp(partial->u.members[k].key, s->fields[i].name))
                pv[i] = &partial->u.members[k].val;
        }
    }
    gj_char(b, '{');
    for (i = 0; i < s->n && rc == 0; i++) {
        const struct sch_field *f = &s->fields[i];
        const struct jv *p = pv[i], *q = bv[i];

        if (q && q->type == JV_NULL && sch_null_keeps(f->kind))
            q = NULL;
        if (p && p->type == JV_NULL && sch_null_keeps(f->kind))
            p = NULL;
        sch_cap_field(c, f, p ? p : q);
        sch_write_key(b, &first, f->name);
        sch_push(c, f->name, -1);
        if (f->kind == K_MAP_STR && p) {
            rc = sch_write_map(c, b, 0, q && q->type != JV_NULL ? q : NULL,
                               p->type != JV_NULL ? p : NULL);
        } else {
            rc = sch_write_value_or_zero(c, b, f, p ? p : q);
        }
        sch_pop(c);
    }
    gj_char(b, '}');
    return rc;
}

/* The merge of partial pr into base br, written into out. */
static int merge_write(struct sch_ctx *c, enum sch_type type,
                       const struct jv *br, const struct jv *pr,
                       struct sch_entity *out)
{
    struct gj_buf b;
    int rc;

    gj_init(&b);
    c->cap = out;
    rc = type == SCH_COMPANY ? merge_company(c, &b, br, pr)
                             : merge_user(c, &b, br, pr);
    if (rc < 0 || sch_ent_finish(c, &b, out) < 0) {
        c->cap = NULL;
        gj_release(&b);
        sch_entity_release(out);
        return -1;
    }
    return 0;
}

/* sch_entity_keys for base_out, ignoring a base that does not parse. */
static void merge_base_keys(enum sch_type type, const char *base, size_t len,
                            struct sch_entity *base_out)
{
    if (base_out && base &&
        sch_entity_keys(type, base, len, base_out, NULL, 0) < 0)
        memset(base_out, 0, sizeof(*base_out));
}

int sch_entity_merge(enum sch_type type, const char *base, size_t base_len,
                     const char *partial, size_t partial_len,
                     struct sch_entity *out, struct sch_entity *base_out,
                     char *err, size_t errlen)
{
    const struct jv *br, *pr;
    struct jv_doc *bd = NULL, *pd;
    struct sch_ctx c;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (base_out)
        memset(base_out, 0, sizeof(*base_out));
    sch_ctx_init(&c, err, errlen);
    pd = sch_ent_parse(&c, partial, partial_len, "partial", &pr);
    if (!pd)
        return -1;
    if (type == SCH_FLAG) {
        /* A flag partial carries the whole flag (7.5): base is read only
         * for base_out. */
        rc = sch_ent_write(&c, &sch_schema_flag, pr, out);
        if (rc == 0)
            merge_base_keys(type, base, base_len, base_out);
        goto done;
    }
    if (type != SCH_COMPANY && type != SCH_USER) {
        sch_fail(&c, "unknown entity type %d", (int)type);
        goto done;
    }
    sch_push(&c, "base", -1);
    bd = sch_ent_parse(&c, base, base_len, sch_schema_of(type)->name, &br);
    sch_pop(&c);
    if (!bd)
        goto done;
    rc = merge_write(&c, type, br, pr, out);
    if (rc == 0 && base_out)
        sch_ent_keys_of(type, br, base_out);
done:
    jv_free(bd);
    jv_free(pd);
    return rc;
}
