/*
 * plugins/sink_redis/fold.c: a run's company and user messages, grouped
 * per entity and folded in order over the cached value (7.1-7.3, 7.6): a
 * partial after an in-run full merges into it, a delete then a full
 * re-creates the entity, and one write or delete per entity goes out.
 *
 * Each payload is parsed once, by the Schematic entity API, which hands
 * back the normalised value with its id and keys: a full is normalised, a
 * partial merged (with the cached value's keys from the same parse), a
 * full flagged SCH_MSG_F_NORMALIZED (the REST load) written as it is. The
 * cached value is parsed only when its lookups may go stale and no merge
 * read it already.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold.h"

/* The entity after the run's messages so far. */
struct redis_cur {
    struct sch_entity ent;     /* owned when parsed here */
    const char *json;          /* ent.json, or the payload of msg */
    size_t len;
    const struct ferry_msg *m; /* normalised full: keys from m->keys */
};

static void redis_cur_release(struct redis_cur *c)
{
    sch_entity_release(&c->ent);
    memset(c, 0, sizeof(*c));
}

/* The cached value's keys, parsed at most once per group. */
struct redis_base_keys {
    struct sch_entity ent;
    int have;
};

/* ---- string lists ------------------------------------------------------- */

static void redis_strv_push(struct redis_strv *sv, char *str)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 8;
        sv->v = redis_xrealloc(sv->v, sv->cap * sizeof(*sv->v));
    }
    sv->v[sv->n++] = str;
}

static int redis_strv_has(const struct redis_strv *sv, const char *str)
{
    size_t i;

    for (i = 0; i < sv->n; i++)
        if (sv->v[i] && strcmp(sv->v[i], str) == 0)
            return 1;
    return 0;
}

/* Pushes str (owned) unless present; frees it then. */
static void redis_strv_add(struct redis_strv *sv, char *str)
{
    if (!str || redis_strv_has(sv, str))
        free(str);
    else
        redis_strv_push(sv, str);
}

/* ---- lookup keys -------------------------------------------------------- */

static void redis_add_lookup(struct redis_run *run, int t, const char *k,
                             const char *v, struct redis_strv *sv)
{
    redis_strv_add(sv, sch_key_lookup(run->s->prefix, redis_sch_type(t),
                                      run->s->version, k, v));
}

static void redis_lookups_sch(struct redis_run *run, int t,
                              const struct sch_entity *e,
                              struct redis_strv *sv)
{
    size_t i;

    for (i = 0; i < e->nkeys; i++)
        redis_add_lookup(run, t, e->keys[i].key, e->keys[i].value, sv);
}

static void redis_lookups_msg(struct redis_run *run, int t,
                              const struct ferry_msg *m, struct redis_strv *sv)
{
    uint32_t i;

    for (i = 0; i < m->nkeys; i++)
        redis_add_lookup(run, t, m->keys[i].key, m->keys[i].value, sv);
}

static void redis_lookups_cur(struct redis_run *run, int t,
                              const struct redis_cur *c, struct redis_strv *sv)
{
    if (c->m)
        redis_lookups_msg(run, t, c->m, sv);
    else
        redis_lookups_sch(run, t, &c->ent, sv);
}

/* Nonzero when cur's keys are exactly the cached value's (both lists are
 * sorted by key: the normaliser writes maps sorted, and so does the REST
 * load's frame parser). */
static int redis_same_keys(const struct sch_entity *base,
                           const struct redis_cur *c)
{
    size_t n = c->m ? c->m->nkeys : c->ent.nkeys, i;

    if (n != base->nkeys)
        return 0;
    for (i = 0; i < n; i++) {
        const char *k = c->m ? c->m->keys[i].key : c->ent.keys[i].key;
        const char *v = c->m ? c->m->keys[i].value : c->ent.keys[i].value;

        if (strcmp(k, base->keys[i].key) != 0 ||
            strcmp(v, base->keys[i].value) != 0)
            return 0;
    }
    return 1;
}

/* The cached value's keys (one lenient parse, the first time). */
static const struct sch_entity *redis_base_keys(struct redis_group *g,
                                                struct redis_base_keys *bk)
{
    char err[200];

    if (!bk->have) {
        if (sch_entity_keys(redis_sch_type(g->t), g->base, g->base_len,
                            &bk->ent, err, sizeof(err)) < 0)
            memset(&bk->ent, 0, sizeof(bk->ent));
        bk->have = 1;
    }
    return &bk->ent;
}

/* ---- grouping ----------------------------------------------------------- */

static struct redis_group *redis_group_for(struct redis_run *run, int t,
                                           const char *id, size_t k)
{
    uint64_t h = redis_key_hash(id, strlen(id)) ^ (uint64_t)t;
    size_t i = (size_t)h & (run->table_cap - 1);
    struct redis_group *g;

    while (run->table[i]) {
        g = &run->groups[run->table[i] - 1];
        if (g->t == t && strcmp(g->id, id) == 0) {
            run->next[g->tail] = k;
            g->tail = k;
            return g;
        }
        i = (i + 1) & (run->table_cap - 1);
    }
    g = &run->groups[run->ngroups++];
    run->table[i] = run->ngroups;
    memset(g, 0, sizeof(*g));
    g->t = t;
    g->id = id;
    g->id_key =
        sch_key_entity(run->s->prefix, redis_sch_type(t), run->s->version, id);
    g->head = g->tail = k;
    return g;
}

/* The id of a company/user message: entity_id, else data.id (a parse of
 * the payload only for a message without entity_id). */
static const char *redis_msg_id(struct redis_run *run, size_t k, int t)
{
    const struct ferry_msg *m = redis_msg(run, k);
    struct sch_entity e;
    char err[200];

    if (m->entity_id && *m->entity_id)
        return m->entity_id;
    if (sch_entity_keys(redis_sch_type(t), m->payload, m->payload_len, &e, err,
                        sizeof(err)) == 0) {
        if (e.id && *e.id) {
            run->ids[k] = e.id;
            e.id = NULL;
        }
        sch_entity_release(&e);
    }
    return run->ids[k];
}

void redis_group_messages(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    size_t k;

    for (k = 0; k < run->n; k++) {
        const struct ferry_msg *m = redis_msg(run, k);
        int t = redis_type_of(m);
        const char *id;

        run->next[k] = REDIS_NONE;
        if (t == REDIS_T_FLAGS) {
            run->has_flags = 1;
            continue;
        }
        if (t < 0) {
            if (!atomic_exchange(&s->warned_type, 1))
                s->host->log(s->ctx, FERRY_LOG_WARN,
                             "ignoring entity type '%s' (this sink stores "
                             "company, user and flags)",
                             m->entity_type);
            continue;
        }
        if (m->op != FERRY_OP_FULL && m->op != FERRY_OP_PARTIAL &&
            m->op != FERRY_OP_DELETE)
            continue;
        id = redis_msg_id(run, k, t);
        if (!id) {
            redis_verdicts_poison(&run->w->v, run->b, run->idx[k],
                         "%s message without entity_id or data.id",
                         m->entity_type);
            continue;
        }
        redis_group_for(run, t, id, k);
    }
}

/* ---- folding ------------------------------------------------------------ */

/* A full: normalised (or taken as it is when the source normalised it). */
static int redis_fold_full(struct redis_run *run, struct redis_group *g,
                           size_t k, struct redis_cur *cur)
{
    const struct ferry_msg *m = redis_msg(run, k);
    struct redis_cur next;
    char err[200];

    memset(&next, 0, sizeof(next));
    if (m->flags & SCH_MSG_F_NORMALIZED) {
        next.json = m->payload;
        next.len = m->payload_len;
        next.m = m;
    } else {
        if (sch_entity_normalize(redis_sch_type(g->t), m->payload,
                                 m->payload_len, &next.ent, err,
                                 sizeof(err)) < 0) {
            redis_verdicts_poison(&run->w->v, run->b, run->idx[k], "invalid %s: %s",
                         redis_type_name(g->t), err);
            return -1;
        }
        if (strcmp(next.ent.id, g->id) != 0) {
            redis_verdicts_poison(&run->w->v, run->b, run->idx[k],
                         "data.id '%.60s' differs from entity_id",
                         next.ent.id);
            sch_entity_release(&next.ent);
            return -1;
        }
        next.json = next.ent.json;
        next.len = next.ent.len;
    }
    redis_cur_release(cur);
    *cur = next;
    return 0;
}

/* A partial merged into cur, or into the cached value (whose keys the
 * merge hands back when bk has none yet). */
static int redis_fold_partial(struct redis_run *run, struct redis_group *g,
                              size_t k, struct redis_cur *cur,
                              struct redis_base_keys *bk)
{
    const struct ferry_msg *m = redis_msg(run, k);
    struct sch_entity out, bout;
    int on_base = cur->json == NULL, rc;
    char err[200];

    rc = sch_entity_merge(redis_sch_type(g->t), on_base ? g->base : cur->json,
                          on_base ? g->base_len : cur->len, m->payload,
                          m->payload_len, &out,
                          on_base && !bk->have ? &bout : NULL, err,
                          sizeof(err));
    if (rc < 0) {
        redis_verdicts_poison(&run->w->v, run->b, run->idx[k], "partial: %s", err);
        return -1;
    }
    if (on_base && !bk->have) {
        bk->ent = bout;
        bk->have = 1;
    }
    redis_cur_release(cur);
    cur->ent = out;
    cur->json = out.json;
    cur->len = out.len;
    return 0;
}

/* Decides the group's commands once its messages are folded into cur. */
static void redis_fold_finish(struct redis_run *run, struct redis_group *g,
                              struct redis_cur *cur, int exists, int deleted,
                              struct redis_strv *stale,
                              struct redis_base_keys *bk)
{
    size_t k;

    /* Lookups derived from the cached keys go stale unless kept; when
     * the keys map is unchanged (the usual case) there is none. */
    if (g->base) {
        const struct sch_entity *base = redis_base_keys(g, bk);

        if (deleted || !exists || !cur->json || !redis_same_keys(base, cur))
            redis_lookups_sch(run, g->t, base, stale);
    }
    if (exists && cur->json) {
        redis_lookups_cur(run, g->t, cur, &g->sets);
        if (g->sets.n > 0) {
            g->op = GROUP_SET;
            g->val = cur->ent;
            g->value = cur->json;
            g->value_len = cur->len;
            memset(cur, 0, sizeof(*cur));
            for (k = 0; k < stale->n; k++) {
                if (!redis_strv_has(&g->sets, stale->v[k])) {
                    redis_strv_push(&g->dels, stale->v[k]);
                    stale->v[k] = NULL;
                }
            }
            return;
        }
        /* No keys: not cached at all (7.1 step 1). */
        redis_strv_release(&g->sets);
        if (!deleted)
            return;
    }
    g->op = GROUP_DEL;
    g->dels = *stale;
    memset(stale, 0, sizeof(*stale));
}

/* A delete: the message's keys (or its payload's), the cached ones come
 * later (7.3: both, a safe superset). */
static void redis_fold_delete(struct redis_run *run, struct redis_group *g,
                              const struct ferry_msg *m,
                              struct redis_strv *stale)
{
    struct sch_entity e;
    char err[200];

    if (m->nkeys > 0) {
        redis_lookups_msg(run, g->t, m, stale);
    } else if (m->payload_len > 0 &&
               sch_entity_keys(redis_sch_type(g->t), m->payload,
                               m->payload_len, &e, err, sizeof(err)) == 0) {
        redis_lookups_sch(run, g->t, &e, stale);
        sch_entity_release(&e);
    }
}

void redis_fold(struct redis_run *run, struct redis_group *g)
{
    struct redis_cur cur;
    struct redis_base_keys bk;
    struct redis_strv stale = {0};
    int exists = g->base != NULL, changed = 0, deleted = 0;
    size_t k;

    memset(&cur, 0, sizeof(cur));
    memset(&bk, 0, sizeof(bk));
    for (k = g->head; k != REDIS_NONE; k = run->next[k]) {
        const struct ferry_msg *m = redis_msg(run, k);

        switch (m->op) {
        case FERRY_OP_FULL:
            if (redis_fold_full(run, g, k, &cur) == 0)
                exists = changed = 1;
            break;
        case FERRY_OP_PARTIAL:
            /* No base: an applied no-op (5.1). */
            if (exists && redis_fold_partial(run, g, k, &cur, &bk) == 0)
                changed = 1;
            break;
        case FERRY_OP_DELETE:
            redis_fold_delete(run, g, m, &stale);
            redis_cur_release(&cur);
            exists = 0;
            changed = deleted = 1;
            break;
        default:
            break;
        }
    }
    if (changed)
        redis_fold_finish(run, g, &cur, exists, deleted, &stale, &bk);
    redis_strv_release(&stale);
    redis_cur_release(&cur);
    sch_entity_release(&bk.ent);
}

void redis_queue_group(struct redis_run *run, struct redis_group *g)
{
    char *lv;
    size_t i;

    if (g->op == GROUP_SET) {
        lv = sch_lookup_value(g->id);
        redis_q_set(run, g->id_key, g->value, g->value_len);
        for (i = 0; i < g->sets.n; i++)
            redis_q_set(run, g->sets.v[i], lv, strlen(lv));
        free(lv);
        redis_q_del(run, NULL, &g->dels);
    } else if (g->op == GROUP_DEL) {
        redis_q_del(run, g->id_key, &g->dels);
    }
}
