/*
 * plugins/sink_redis/apply.c: write(): a batch of datastream messages to
 * the exact Schematic cache layout (schematic-datastream.md 5-9).
 *
 * A run (the batch, or the part of it between control messages) costs two
 * round trips:
 *
 *  1. MGET of the ID key of every company and user the run touches: the
 *     base of partial merges and the cached keys whose lookups may go
 *     stale;
 *  2. MULTI, then per entity SET ID key, SET lookups, DEL stale lookups,
 *     then the flag commands in order, then the replay cursor's
 *     compare-and-set script, then EXEC.
 *
 * One transaction per run rather than one per entity: the cursor must not
 * move unless every entity before it is applied, and a pipelined EVAL
 * after per-entity transactions would run even when one of them was
 * discarded. A queue-time refusal (ACL, OOM) discards the whole run, so
 * nothing is half-applied and the run can simply be sent again.
 *
 * Messages for one entity are folded in order first (7.6): a partial after
 * an in-run full merges into it, a delete then a full re-creates the
 * entity, and one write or delete per entity goes out.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "schematic/schematic.h"
#include "sink.h"

/* A run's commands were refused by Redis for their content (internal). */
#define REDIS_DATA_ERROR (-100)
#define REDIS_REASON_LEN 240
#define REDIS_EVICT_COUNT "1000"
#define REDIS_NONE SIZE_MAX

enum { GROUP_NONE = 0, GROUP_SET = 1, GROUP_DEL = 2 };

struct redis_strv {
    char **v;
    size_t n;
    size_t cap;
};

/* One company or user touched by a run. */
struct redis_group {
    int t;          /* REDIS_T_* */
    const char *id; /* borrowed from the message or run->ids */
    char *id_key;
    size_t head, tail; /* run positions of its first/last message */
    char *base;        /* the cached value (MGET), or NULL */
    size_t base_len;
    int op;                 /* GROUP_* */
    char *value;            /* GROUP_SET: the normalised entity */
    struct redis_strv sets; /* lookup keys to SET */
    struct redis_strv dels; /* keys to DEL (besides the ID key) */
};

struct redis_flags {
    int loaded;              /* instance snapshot state copied in */
    struct redis_keyset acc; /* keys of pages since the last final one */
    uint64_t acc_written;
    int acc_open;             /* a paginated snapshot is in progress */
    struct redis_keyset keep; /* keys the last final snapshot keeps */
    uint64_t keep_written;
    int have_final;
};

struct redis_run {
    struct redis_worker *w;
    struct redis_sink *s;
    struct ferry_batch *b;
    const size_t *idx; /* run position -> batch index */
    size_t n;
    const struct ferry_pos *commit;
    size_t *next; /* next message of the same group */
    char **ids;   /* ids taken from payloads (owned) */
    struct redis_group *groups;
    size_t ngroups;
    size_t *table; /* open addressing: group index + 1, 0 empty */
    size_t table_cap;
    int has_flags;
    struct redis_flags fl;
    /* Operation counts, added to the metrics once. */
    uint64_t n_set, n_del, n_mget, n_eval, n_rt;
};

/* Marks the cache complete once both the load and a snapshot are done:
 * SET load_complete and set_ready(1). FERRY_OK or FERRY_RETRY. */
static int redis_maybe_complete(struct redis_worker *w)
{
    struct redis_sink *s = w->s;
    int due, rc;

    pthread_mutex_lock(&s->track_mu);
    due = s->load_done && s->snapshot_applied && !s->complete_marked;
    pthread_mutex_unlock(&s->track_mu);
    if (!due)
        return FERRY_OK;
    redis_cmd_set(w->conn, s->complete_key, strlen(s->complete_key),
                  s->version, strlen(s->version), s->ttl_arg);
    s->host->metric_add(s->in.m.set, 1);
    s->host->metric_add(s->in.m.roundtrips, 1);
    rc = redis_conn_exec(w->conn);
    if (rc != FERRY_OK)
        return FERRY_RETRY;
    if (redis_conn_reply(w->conn, 0)->type == REDIS_REPLY_ERROR) {
        s->host->log(s->ctx, FERRY_LOG_WARN, "setting load_complete: %s",
                     redis_conn_reply(w->conn, 0)->str);
        return FERRY_RETRY;
    }
    pthread_mutex_lock(&s->track_mu);
    s->complete_marked = 1;
    pthread_mutex_unlock(&s->track_mu);
    s->host->set_ready(s->ctx, 1);
    s->host->log(s->ctx, FERRY_LOG_INFO, "cache complete for version %s: ready",
                 s->version);
    return FERRY_OK;
}

/* ---- small helpers ------------------------------------------------------ */

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
        if (strcmp(sv->v[i], str) == 0)
            return 1;
    return 0;
}

/* Pushes str (owned) unless present; frees it then. */
static void redis_strv_add(struct redis_strv *sv, char *str)
{
    if (redis_strv_has(sv, str))
        free(str);
    else
        redis_strv_push(sv, str);
}

static void redis_strv_release(struct redis_strv *sv)
{
    size_t i;

    for (i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    memset(sv, 0, sizeof(*sv));
}

static const struct ferry_msg *redis_msg(const struct redis_run *run, size_t k)
{
    return run->b->msgs[run->idx[k]];
}

static enum sch_type redis_sch_type(int t)
{
    return t == REDIS_T_COMPANY ? SCH_COMPANY : SCH_USER;
}

static const char *redis_type_name(int t)
{
    return t == REDIS_T_COMPANY ? "company" : "user";
}

/* Marks batch message i as poison with a reason (logged by redis_apply). */
static void redis_poison(struct redis_worker *w, struct ferry_batch *b,
                         size_t i, const char *fmt, ...) REDIS_PRINTF(4, 5);

static void redis_poison(struct redis_worker *w, struct ferry_batch *b,
                         size_t i, const char *fmt, ...)
{
    va_list ap;

    b->results[i] = FERRY_ERROR;
    va_start(ap, fmt);
    vsnprintf(w->reasons[i], REDIS_REASON_LEN, fmt, ap);
    va_end(ap);
}

static void redis_q_set(struct redis_run *run, const char *key, const char *val,
                        size_t vlen)
{
    redis_cmd_set(run->w->conn, key, strlen(key), val, vlen, run->s->ttl_arg);
    run->n_set++;
}

/* One DEL of key0 (may be NULL) and every key in more. */
static void redis_q_del(struct redis_run *run, const char *key0,
                        const struct redis_strv *more)
{
    size_t n = (key0 ? 1 : 0) + (more ? more->n : 0), i, a = 1;
    const char **argv;
    size_t *lens;

    if (n == 0)
        return;
    argv = redis_xalloc((n + 1) * sizeof(*argv));
    lens = redis_xalloc((n + 1) * sizeof(*lens));
    argv[0] = "DEL";
    lens[0] = 3;
    if (key0) {
        argv[a] = key0;
        lens[a++] = strlen(key0);
    }
    for (i = 0; more && i < more->n; i++) {
        argv[a] = more->v[i];
        lens[a++] = strlen(more->v[i]);
    }
    redis_conn_cmd_argv(run->w->conn, (int)a, argv, lens);
    run->n_del += n;
    free(argv);
    free(lens);
}

/* ---- a JSON member without a full parse --------------------------------- */

static const char *redis_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Past the closing quote of the string whose opening quote is at p, or
 * NULL. Jumps with memchr: most of a cached entity is string bytes. */
static const char *redis_string_end(const char *p, const char *end)
{
    for (p++; p < end;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        const char *b;

        if (!q)
            return NULL;
        for (b = q; b > p && b[-1] == '\\'; b--)
            ;
        if (((q - b) & 1) == 0)
            return q + 1;
        p = q + 1;
    }
    return NULL;
}

/* End of the JSON value starting at p, or NULL when malformed. */
static const char *redis_value_end(const char *p, const char *end)
{
    int depth = 0;

    while (p < end) {
        char c = *p;

        if (c == '"') {
            p = redis_string_end(p, end);
            if (!p)
                return NULL;
            if (depth == 0)
                return p;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return p;
            if (--depth == 0)
                return p + 1;
        } else if (c == ',' && depth == 0) {
            return p;
        }
        p++;
    }
    return depth == 0 ? p : NULL;
}

/*
 * Finds top-level member name of the JSON object js[0..len) and stores
 * its value's text in *v, *vlen. Returns 0, or -1 when absent or
 * malformed. The cached entities are large and only their "keys" are
 * needed for a full or a delete, so this skips the rest without parsing.
 */
static int redis_json_slice(const char *js, size_t len, const char *name,
                            const char **val, size_t *vlen)
{
    const char *p = js, *end = js + len;
    size_t nlen = strlen(name);

    p = redis_ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    p++;
    for (;;) {
        const char *k, *ke, *v, *ve;

        p = redis_ws(p, end);
        if (p >= end || *p != '"')
            return -1;
        k = p + 1;
        ke = redis_value_end(p, end);
        if (!ke)
            return -1;
        ke--; /* the closing quote */
        p = redis_ws(ke + 1, end);
        if (p >= end || *p != ':')
            return -1;
        v = redis_ws(p + 1, end);
        ve = redis_value_end(v, end);
        if (!ve || ve == v)
            return -1;
        if ((size_t)(ke - k) == nlen && memcmp(k, name, nlen) == 0) {
            *val = v;
            *vlen = (size_t)(ve - v);
            return 0;
        }
        p = redis_ws(ve, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        return -1;
    }
}

/* redis_json_slice, parsed (new reference), or NULL. */
static json_t *redis_json_member(const char *js, size_t len, const char *name)
{
    const char *v;
    size_t vlen;

    if (redis_json_slice(js, len, name, &v, &vlen) < 0)
        return NULL;
    return json_loadb(v, vlen, JSON_DECODE_ANY, NULL);
}

static void redis_add_lookup(struct redis_run *run, int t, const char *k,
                             const char *v, struct redis_strv *sv)
{
    redis_strv_add(sv, sch_key_lookup(run->s->prefix, redis_sch_type(t),
                                      run->s->version, k, v));
}

/*
 * Adds the lookup keys derived from the "keys" member of the entity
 * js[0..len) to sv. Keys maps are small and flat; without escapes they
 * are read in place, otherwise through jansson.
 */
static void redis_lookups(struct redis_run *run, int t, const char *js,
                          size_t len, struct redis_strv *sv)
{
    const char *p, *end;
    size_t n;
    json_t *keys, *jv;
    const char *jk;

    if (redis_json_slice(js, len, "keys", &p, &n) < 0)
        return;
    end = p + n;
    if (memchr(p, '\\', n))
        goto slow;
    if (*p != '{')
        return; /* null or not a map: no lookups */
    p = redis_ws(p + 1, end);
    while (p < end && *p == '"') {
        const char *k = p + 1, *ke = memchr(k, '"', (size_t)(end - k));
        const char *v, *ve;
        char kbuf[256], vbuf[512];

        if (!ke)
            goto slow;
        p = redis_ws(ke + 1, end);
        if (p >= end || *p != ':')
            goto slow;
        v = redis_ws(p + 1, end);
        ve = redis_value_end(v, end);
        if (!ve)
            goto slow;
        if (*v == '"') {
            if ((size_t)(ke - k) >= sizeof(kbuf) ||
                (size_t)(ve - v - 2) >= sizeof(vbuf))
                goto slow;
            memcpy(kbuf, k, (size_t)(ke - k));
            kbuf[ke - k] = '\0';
            memcpy(vbuf, v + 1, (size_t)(ve - v - 2));
            vbuf[ve - v - 2] = '\0';
            redis_add_lookup(run, t, kbuf, vbuf, sv);
        }
        p = redis_ws(ve, end);
        if (p < end && *p == ',')
            p = redis_ws(p + 1, end);
    }
    return;
slow:
    keys = redis_json_member(js, len, "keys");
    if (json_is_object(keys)) {
        json_object_foreach(keys, jk, jv)
        {
            if (json_is_string(jv))
                redis_add_lookup(run, t, jk, json_string_value(jv), sv);
        }
    }
    json_decref(keys);
}

/* ---- grouping ----------------------------------------------------------- */

static int redis_type_of(const struct ferry_msg *m)
{
    if (strcmp(m->entity_type, "company") == 0)
        return REDIS_T_COMPANY;
    if (strcmp(m->entity_type, "user") == 0)
        return REDIS_T_USER;
    if (strcmp(m->entity_type, "flags") == 0)
        return 2;
    return -1;
}

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

/* The id of a company/user message: entity_id, else data.id. */
static const char *redis_msg_id(struct redis_run *run, size_t k)
{
    const struct ferry_msg *m = redis_msg(run, k);
    json_t *j, *id;

    if (m->entity_id && *m->entity_id)
        return m->entity_id;
    j = redis_json_member(m->payload, m->payload_len, "id");
    id = j;
    if (json_is_string(id) && json_string_length(id) > 0)
        run->ids[k] = redis_xstrdup(json_string_value(id));
    json_decref(j);
    return run->ids[k];
}

static void redis_group_messages(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    size_t k;

    for (k = 0; k < run->n; k++) {
        const struct ferry_msg *m = redis_msg(run, k);
        int t = redis_type_of(m);
        const char *id;

        run->next[k] = REDIS_NONE;
        if (t == 2) {
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
        id = redis_msg_id(run, k);
        if (!id) {
            redis_poison(run->w, run->b, run->idx[k],
                         "%s message without entity_id or data.id",
                         m->entity_type);
            continue;
        }
        redis_group_for(run, t, id, k);
    }
}

/* ---- folding (7.1-7.3, 7.6) --------------------------------------------- */

/* Nonzero when the "keys" members of two entities are the same text. */
static int redis_same_keys(const char *a, size_t alen, const char *b)
{
    const char *ka, *kb;
    size_t na, nb;

    if (redis_json_slice(a, alen, "keys", &ka, &na) < 0 ||
        redis_json_slice(b, strlen(b), "keys", &kb, &nb) < 0)
        return 0;
    return na == nb && memcmp(ka, kb, na) == 0;
}

/*
 * Folds the group's messages over the cached value, working on JSON text
 * throughout (sch_normalize_text / sch_merge_text build no trees: on a
 * 2 KB company that is the difference between ~200 us and ~20 us).
 */
static void redis_fold(struct redis_run *run, struct redis_group *g)
{
    struct redis_sink *s = run->s;
    enum sch_type st = redis_sch_type(g->t);
    char *cur = NULL; /* the entity after the run's messages so far */
    struct redis_strv stale = {0};
    int exists = g->base != NULL, changed = 0, deleted = 0;
    size_t k;
    char err[200];

    for (k = g->head; k != REDIS_NONE; k = run->next[k]) {
        const struct ferry_msg *m = redis_msg(run, k);
        size_t bi = run->idx[k];
        char *v, *pid = NULL;
        uint32_t i;

        switch (m->op) {
        case FERRY_OP_FULL:
            v = sch_normalize_text(st, m->payload, m->payload_len, &pid, err,
                                   sizeof(err));
            if (!v) {
                redis_poison(run->w, run->b, bi, "invalid %s: %s",
                             redis_type_name(g->t), err);
                break;
            }
            if (pid && strcmp(pid, g->id) != 0) {
                redis_poison(run->w, run->b, bi,
                             "data.id '%.60s' differs from entity_id", pid);
                free(pid);
                free(v);
                break;
            }
            free(pid);
            free(cur);
            cur = v;
            exists = 1;
            changed = 1;
            break;
        case FERRY_OP_PARTIAL:
            if (!exists)
                break; /* no base: an applied no-op (5.1) */
            v = cur ? sch_merge_text(st, cur, strlen(cur), m->payload,
                                     m->payload_len, err, sizeof(err))
                    : sch_merge_text(st, g->base, g->base_len, m->payload,
                                     m->payload_len, err, sizeof(err));
            if (!v) {
                redis_poison(run->w, run->b, bi, "partial: %s", err);
                break;
            }
            free(cur);
            cur = v;
            changed = 1;
            break;
        case FERRY_OP_DELETE:
            /* The payload's keys; the cached ones are already in stale
             * (7.3: both, a safe superset). */
            for (i = 0; i < m->nkeys; i++)
                redis_strv_add(&stale, sch_key_lookup(s->prefix, st, s->version,
                                                      m->keys[i].key,
                                                      m->keys[i].value));
            if (m->nkeys == 0)
                redis_lookups(run, g->t, m->payload, m->payload_len, &stale);
            free(cur);
            cur = NULL;
            exists = 0;
            changed = 1;
            deleted = 1;
            break;
        default:
            break;
        }
    }
    if (!changed)
        goto out;
    /* Lookups derived from the cached keys go stale unless kept; when
     * the keys map is unchanged (the usual case) there is none. */
    if (g->base && (deleted || !exists || !cur ||
                    !redis_same_keys(g->base, g->base_len, cur)))
        redis_lookups(run, g->t, g->base, g->base_len, &stale);
    if (exists && cur) {
        redis_lookups(run, g->t, cur, strlen(cur), &g->sets);
        if (g->sets.n > 0) {
            g->op = GROUP_SET;
            g->value = cur;
            cur = NULL;
            for (k = 0; k < stale.n; k++) {
                if (!redis_strv_has(&g->sets, stale.v[k])) {
                    redis_strv_push(&g->dels, stale.v[k]);
                    stale.v[k] = NULL;
                }
            }
            goto out;
        }
        /* No keys: not cached at all (7.1 step 1). */
        redis_strv_release(&g->sets);
        if (!deleted)
            goto out;
    }
    g->op = GROUP_DEL;
    g->dels = stale;
    memset(&stale, 0, sizeof(stale));
out:
    for (k = 0; k < stale.n; k++)
        free(stale.v[k]);
    free(stale.v);
    free(cur);
}

static void redis_queue_group(struct redis_run *run, struct redis_group *g)
{
    char *lv;
    size_t i;

    if (g->op == GROUP_SET) {
        lv = sch_lookup_value(g->id);
        redis_q_set(run, g->id_key, g->value, strlen(g->value));
        for (i = 0; i < g->sets.n; i++)
            redis_q_set(run, g->sets.v[i], lv, strlen(lv));
        free(lv);
        redis_q_del(run, NULL, &g->dels);
    } else if (g->op == GROUP_DEL) {
        redis_q_del(run, g->id_key, &g->dels);
    }
}

/* ---- flags (7.4, 7.5, 3.3) ---------------------------------------------- */

static void redis_flags_load(struct redis_run *run)
{
    struct redis_sink *s = run->s;

    pthread_mutex_lock(&s->track_mu);
    if (s->snap_open) {
        redis_keyset_merge(&run->fl.acc, &s->snap_keys);
        run->fl.acc_written = s->snap_written;
        run->fl.acc_open = 1;
    }
    pthread_mutex_unlock(&s->track_mu);
    run->fl.loaded = 1;
}

static void redis_flags_release(struct redis_flags *fl)
{
    redis_keyset_release(&fl->acc);
    redis_keyset_release(&fl->keep);
}

/* A string member of the JSON object js[0..len), malloc'd, or NULL when
 * absent, not a string or empty. */
static char *redis_json_str(const char *js, size_t len, const char *name)
{
    json_t *v = redis_json_member(js, len, name);
    char *r = NULL;

    if (json_is_string(v) && json_string_length(v) > 0)
        r = redis_xstrdup(json_string_value(v));
    json_decref(v);
    return r;
}

/* The Redis key of the flag whose JSON is js[0..len): lower(data.key),
 * else (deletes, 7.5) lower(data.id), else the message's entity_id. */
static char *redis_flag_key(struct redis_run *run, const struct ferry_msg *m,
                            const char *js, size_t len, int allow_id)
{
    char *key = redis_json_str(js, len, "key"), *fk;

    if (!key && allow_id) {
        key = redis_json_str(js, len, "id");
        if (!key && m->entity_id && *m->entity_id)
            key = redis_xstrdup(m->entity_id);
    }
    if (!key)
        return NULL;
    fk = sch_key_flag(run->s->prefix, run->s->version, key);
    free(key);
    return fk;
}

static void redis_queue_snapshot(struct redis_run *run, size_t k)
{
    struct redis_sink *s = run->s;
    const struct ferry_msg *m = redis_msg(run, k);
    struct redis_flags *fl = &run->fl;
    const char *p = m->payload, *end = m->payload + m->payload_len;
    uint64_t written = 0;
    char err[200];

    /* Walk the array's elements as text; each is normalised alone. */
    p = redis_ws(p, end);
    if (p >= end || *p != '[') {
        redis_poison(run->w, run->b, run->idx[k],
                     "flags snapshot data is not a JSON array");
        return;
    }
    p = redis_ws(p + 1, end);
    while (p < end && *p != ']') {
        const char *e = redis_value_end(p, end);
        char *fk, *v;

        if (!e || e == p) {
            redis_poison(run->w, run->b, run->idx[k],
                         "flags snapshot: malformed JSON");
            return;
        }
        fk = *p == '{' ? redis_flag_key(run, m, p, (size_t)(e - p), 0) : NULL;
        /* Only flags with a key are written (7.4). */
        if (fk) {
            v = sch_normalize_text(SCH_FLAG, p, (size_t)(e - p), NULL, err,
                                   sizeof(err));
            if (!v) {
                /* Keep the flag's cached value rather than evict it. */
                s->host->log(s->ctx, FERRY_LOG_ERROR,
                             "snapshot flag %s skipped: %s", fk, err);
                s->host->metric_add(s->in.m.poison, 1);
            } else {
                redis_q_set(run, fk, v, strlen(v));
                written++;
                free(v);
            }
            redis_keyset_add(&fl->acc, fk, strlen(fk));
            free(fk);
        }
        p = redis_ws(e, end);
        if (p < end && *p == ',')
            p = redis_ws(p + 1, end);
    }
    fl->acc_written += written;
    if (m->flags & FERRY_MSG_F_MORE) {
        fl->acc_open = 1;
        return;
    }
    redis_keyset_release(&fl->keep);
    fl->keep = fl->acc;
    fl->keep_written = fl->acc_written;
    memset(&fl->acc, 0, sizeof(fl->acc));
    fl->acc_written = 0;
    fl->acc_open = 0;
    fl->have_final = 1;
}

static void redis_queue_flag(struct redis_run *run, size_t k)
{
    const struct ferry_msg *m = redis_msg(run, k);
    size_t bi = run->idx[k];
    char *fk, *v;
    char err[200];

    if (m->op == FERRY_OP_SNAPSHOT) {
        redis_queue_snapshot(run, k);
        return;
    }
    if (m->op == FERRY_OP_DELETE) {
        fk = redis_flag_key(run, m, m->payload, m->payload_len, 1);
        if (!fk) {
            redis_poison(run->w, run->b, bi, "flag delete without a key");
            return;
        }
        redis_q_del(run, fk, NULL);
        free(fk);
        return;
    }
    if (m->op != FERRY_OP_FULL && m->op != FERRY_OP_PARTIAL)
        return;
    v = sch_normalize_text(SCH_FLAG, m->payload, m->payload_len, NULL, err,
                           sizeof(err));
    if (!v) {
        redis_poison(run->w, run->b, bi, "invalid flag: %s", err);
        return;
    }
    fk = redis_flag_key(run, m, v, strlen(v), 0);
    if (!fk) {
        redis_poison(run->w, run->b, bi, "flag without a key");
        free(v);
        return;
    }
    redis_q_set(run, fk, v, strlen(v));
    /* A flag changed during or after a snapshot is current. */
    if (run->fl.acc_open)
        redis_keyset_add(&run->fl.acc, fk, strlen(fk));
    if (run->fl.have_final)
        redis_keyset_add(&run->fl.keep, fk, strlen(fk));
    free(fk);
    free(v);
}

/* Deletes 4-segment flag keys of this version not kept by the snapshot. */
static int redis_snapshot_pred(void *arg, const char *key, size_t len)
{
    struct redis_run *run = arg;

    return redis_key_segments(run->s, key, len) == 3 &&
           !redis_keyset_has(&run->fl.keep, key, len);
}

static int redis_flags_finish(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    uint64_t scanned = 0, deleted = 0;
    char pat[512];
    int rc;

    if (run->fl.have_final && run->fl.keep_written > 0) {
        char mid[REDIS_MAX_VERSION_MID];

        snprintf(mid, sizeof(mid), "flags:%s:", s->version);
        redis_match_pattern(s, mid, pat, sizeof(pat));
        rc = redis_scan_delete(&s->in, run->w->conn, pat, REDIS_EVICT_COUNT,
                               redis_snapshot_pred, run, NULL, NULL, &scanned,
                               &deleted);
        if (rc == FERRY_ERROR)
            return REDIS_DATA_ERROR;
        if (rc != FERRY_OK)
            return FERRY_RETRY;
        s->host->metric_add(s->m_evict_snapshot, (double)deleted);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "flags snapshot applied: %" PRIu64 " flags, %" PRIu64
                     " stale flags deleted",
                     run->fl.keep_written, deleted);
    } else if (run->fl.have_final) {
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "empty flags snapshot applied: nothing deleted");
    }
    pthread_mutex_lock(&s->track_mu);
    if (run->fl.acc_open) {
        redis_keyset_release(&s->snap_keys);
        s->snap_keys = run->fl.acc;
        memset(&run->fl.acc, 0, sizeof(run->fl.acc));
        s->snap_written = run->fl.acc_written;
        s->snap_open = 1;
    } else {
        redis_keyset_release(&s->snap_keys);
        s->snap_written = 0;
        s->snap_open = 0;
    }
    if (run->fl.have_final)
        s->snapshot_applied = 1;
    pthread_mutex_unlock(&s->track_mu);
    return FERRY_OK;
}

/* ---- replies ------------------------------------------------------------ */

/* Worst class among error replies (cursor_at: the index of the cursor
 * script among the queued commands, whose own data error is only logged). */
static int redis_check_multi(struct redis_run *run, size_t nq, size_t cursor_at)
{
    struct redis_worker *w = run->w;
    struct redis_conn *c = w->conn;
    redisReply *exec = redis_conn_reply(c, nq + 1), *r;
    int worst = REDIS_CLASS_OK, cls;
    size_t i;

    for (i = 1; i <= nq; i++) {
        r = redis_conn_reply(c, i);
        if (!r || r->type != REDIS_REPLY_ERROR)
            continue;
        cls = redis_reply_class(r);
        if (worst < cls)
            worst = cls;
        if (!w->last_error[0] || i - 1 != cursor_at)
            snprintf(w->last_error, sizeof(w->last_error), "%s", r->str);
    }
    if (!exec)
        return REDIS_CLASS_RECONNECT;
    if (exec->type == REDIS_REPLY_ERROR) {
        /* EXECABORT: nothing ran. */
        if (worst == REDIS_CLASS_OK) {
            worst = redis_reply_class(exec);
            snprintf(w->last_error, sizeof(w->last_error), "%s", exec->str);
        }
        return worst ? worst : REDIS_CLASS_DATA;
    }
    if (exec->type != REDIS_REPLY_ARRAY) {
        snprintf(w->last_error, sizeof(w->last_error), "unexpected EXEC reply");
        return REDIS_CLASS_RECONNECT;
    }
    for (i = 0; i < exec->elements; i++) {
        r = exec->element[i];
        if (r->type != REDIS_REPLY_ERROR)
            continue;
        cls = redis_reply_class(r);
        if (i == cursor_at && cls == REDIS_CLASS_DATA) {
            /* The entities were applied; only the cursor did not move,
             * which errs on the side of replaying more. */
            run->s->host->log(run->s->ctx, FERRY_LOG_ERROR,
                              "replay cursor not stored: %s", r->str);
            continue;
        }
        if (worst < cls)
            worst = cls;
        snprintf(w->last_error, sizeof(w->last_error), "%s", r->str);
    }
    return worst;
}

/* Turns a reply class into a run status. */
static int redis_class_status(struct redis_run *run, int cls)
{
    struct redis_sink *s = run->s;

    switch (cls) {
    case REDIS_CLASS_OK:
        return FERRY_OK;
    case REDIS_CLASS_DATA:
        return REDIS_DATA_ERROR;
    case REDIS_CLASS_RECONNECT:
        redis_conn_close(run->w->conn);
        /* fall through */
    default:
        s->host->log(s->ctx, FERRY_LOG_WARN, "worker %u: Redis: %s",
                     run->w->index, run->w->last_error);
        return FERRY_RETRY;
    }
}

/* ---- one run ------------------------------------------------------------ */

static int redis_fetch_bases(struct redis_run *run)
{
    struct redis_conn *c = run->w->conn;
    const char **argv;
    size_t *lens, i;
    redisReply *r;
    int rc;

    argv = redis_xalloc((run->ngroups + 1) * sizeof(*argv));
    lens = redis_xalloc((run->ngroups + 1) * sizeof(*lens));
    argv[0] = "MGET";
    lens[0] = 4;
    for (i = 0; i < run->ngroups; i++) {
        argv[i + 1] = run->groups[i].id_key;
        lens[i + 1] = strlen(run->groups[i].id_key);
    }
    redis_conn_cmd_argv(c, (int)run->ngroups + 1, argv, lens);
    free(argv);
    free(lens);
    run->n_mget++;
    run->n_rt++;
    if (redis_conn_exec(c) != FERRY_OK) {
        snprintf(run->w->last_error, sizeof(run->w->last_error), "%s",
                 redis_conn_error(c));
        return FERRY_RETRY;
    }
    r = redis_conn_reply(c, 0);
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(run->w->last_error, sizeof(run->w->last_error), "%s", r->str);
        rc = redis_class_status(run, redis_reply_class(r));
        redis_conn_reset(c);
        return rc;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != run->ngroups) {
        snprintf(run->w->last_error, sizeof(run->w->last_error),
                 "unexpected MGET reply");
        redis_conn_close(c);
        return FERRY_RETRY;
    }
    for (i = 0; i < run->ngroups; i++) {
        redisReply *e = r->element[i];

        if (e->type == REDIS_REPLY_STRING) {
            run->groups[i].base = redis_xalloc(e->len + 1);
            memcpy(run->groups[i].base, e->str, e->len + 1);
            run->groups[i].base_len = e->len;
        }
    }
    redis_conn_reset(c);
    return FERRY_OK;
}

static void redis_q_cursor(struct redis_run *run, const struct ferry_pos *p)
{
    redis_cmd_cursor(run->w->conn, run->s->cursor_key, p);
    run->n_eval++;
}

/* Records the keys a load wrote (7.7). */
static void redis_record_load(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    size_t i, j;

    pthread_mutex_lock(&s->track_mu);
    if (s->loading) {
        for (i = 0; i < run->ngroups; i++) {
            struct redis_group *g = &run->groups[i];
            int segs;

            if (g->op != GROUP_SET)
                continue;
            for (j = 0; j <= g->sets.n; j++) {
                const char *key = j == 0 ? g->id_key : g->sets.v[j - 1];
                size_t len = strlen(key);

                redis_keyset_add(&s->load_keys, key, len);
                segs = redis_key_segments(s, key, len);
                if (segs == 3)
                    s->load_shapes[g->t][REDIS_SHAPE_ID]++;
                else if (segs == 4)
                    s->load_shapes[g->t][REDIS_SHAPE_LOOKUP]++;
            }
        }
    }
    pthread_mutex_unlock(&s->track_mu);
}

static void redis_run_release(struct redis_run *run)
{
    struct redis_sink *s = run->s;
    size_t i;

    for (i = 0; i < run->ngroups; i++) {
        struct redis_group *g = &run->groups[i];

        free(g->id_key);
        free(g->base);
        free(g->value);
        redis_strv_release(&g->sets);
        redis_strv_release(&g->dels);
    }
    for (i = 0; i < run->n; i++)
        free(run->ids[i]);
    free(run->ids);
    free(run->next);
    free(run->groups);
    free(run->table);
    redis_flags_release(&run->fl);
    if (run->n_set)
        s->host->metric_add(s->in.m.set, (double)run->n_set);
    if (run->n_del)
        s->host->metric_add(s->in.m.del, (double)run->n_del);
    if (run->n_mget)
        s->host->metric_add(s->in.m.mget, (double)run->n_mget);
    if (run->n_eval)
        s->host->metric_add(s->in.m.eval, (double)run->n_eval);
    if (run->n_rt)
        s->host->metric_add(s->in.m.roundtrips, (double)run->n_rt);
}

/*
 * Applies the messages idx[0..n) of b (in order) and, when commit is not
 * NULL, stores it as the replay cursor. Returns FERRY_OK, FERRY_RETRY
 * (nothing may be assumed applied) or REDIS_DATA_ERROR (Redis refused a
 * command for its content; nothing of the transaction ran, or part of it
 * did: sending it again is safe, every step is idempotent).
 */
static int redis_run(struct redis_worker *w, struct ferry_batch *b,
                     const size_t *idx, size_t n,
                     const struct ferry_pos *commit)
{
    struct redis_run run;
    struct redis_conn *c = w->conn;
    size_t i, k, nq, cursor_at = REDIS_NONE;
    int rc = FERRY_OK, cls;

    memset(&run, 0, sizeof(run));
    run.w = w;
    run.s = w->s;
    run.b = b;
    run.idx = idx;
    run.n = n;
    run.commit = commit;
    run.next = redis_xcalloc(n, sizeof(*run.next));
    run.ids = redis_xcalloc(n, sizeof(*run.ids));
    run.groups = redis_xcalloc(n, sizeof(*run.groups));
    for (run.table_cap = 16; run.table_cap < n * 2; run.table_cap *= 2)
        ;
    run.table = redis_xcalloc(run.table_cap, sizeof(*run.table));

    if (redis_link_connect(&w->link) != FERRY_OK) {
        rc = FERRY_RETRY;
        goto out;
    }
    redis_conn_reset(c);
    redis_group_messages(&run);
    if (run.ngroups > 0) {
        rc = redis_fetch_bases(&run);
        if (rc != FERRY_OK)
            goto out;
    }
    for (i = 0; i < run.ngroups; i++)
        redis_fold(&run, &run.groups[i]);

    redis_conn_cmd(c, "MULTI", NULL);
    for (i = 0; i < run.ngroups; i++)
        redis_queue_group(&run, &run.groups[i]);
    if (run.has_flags) {
        redis_flags_load(&run);
        for (k = 0; k < n; k++)
            if (redis_type_of(redis_msg(&run, k)) == 2 &&
                b->results[idx[k]] == FERRY_OK)
                redis_queue_flag(&run, k);
    }
    /* With a final snapshot the cursor waits for its eviction. */
    if (commit && !run.fl.have_final) {
        cursor_at = redis_conn_queued(c) - 1;
        redis_q_cursor(&run, commit);
    }
    nq = redis_conn_queued(c) - 1;
    if (nq == 0) {
        redis_conn_reset(c);
    } else {
        redis_conn_cmd(c, "EXEC", NULL);
        run.n_rt++;
        if (redis_conn_exec(c) != FERRY_OK) {
            snprintf(w->last_error, sizeof(w->last_error), "%s",
                     redis_conn_error(c));
            rc = FERRY_RETRY;
            goto out;
        }
        cls = redis_check_multi(&run, nq, cursor_at);
        redis_conn_reset(c);
        rc = redis_class_status(&run, cls);
        if (rc != FERRY_OK)
            goto out;
    }
    redis_record_load(&run);
    if (run.has_flags) {
        rc = redis_flags_finish(&run);
        if (rc != FERRY_OK)
            goto out;
        if (commit && run.fl.have_final) {
            redis_conn_cmd(c, "MULTI", NULL);
            redis_q_cursor(&run, commit);
            redis_conn_cmd(c, "EXEC", NULL);
            run.n_rt++;
            if (redis_conn_exec(c) != FERRY_OK) {
                rc = FERRY_RETRY;
                goto out;
            }
            cls = redis_check_multi(&run, 1, 0);
            redis_conn_reset(c);
            rc = redis_class_status(&run, cls);
            if (rc != FERRY_OK)
                goto out;
        }
        if (run.fl.have_final)
            rc = redis_maybe_complete(w);
    }
out:
    if (rc == FERRY_RETRY)
        redis_instance_component(&w->s->in, redis_conn_is_open(c)
                                       ? FERRY_COMPONENT_CONNECTED
                                       : FERRY_COMPONENT_DISCONNECTED);
    redis_run_release(&run);
    return rc;
}

/* ---- control messages (9.4, 7.7) ---------------------------------------- */

struct redis_evict_arg {
    struct redis_sink *s;
    int ids;     /* delete unwritten 4-segment keys */
    int lookups; /* delete unwritten 5-segment keys */
};

static int redis_evict_pred(void *arg, const char *key, size_t len)
{
    struct redis_evict_arg *a = arg;
    int segs = redis_key_segments(a->s, key, len), hit;

    if (!((segs == 3 && a->ids) || (segs == 4 && a->lookups)))
        return 0;
    pthread_mutex_lock(&a->s->track_mu);
    hit = redis_keyset_has(&a->s->load_keys, key, len);
    pthread_mutex_unlock(&a->s->track_mu);
    return !hit;
}

static int redis_load_end(struct redis_worker *w)
{
    struct redis_sink *s = w->s;
    uint64_t shapes[2][2], scanned = 0, deleted = 0;
    int loading, t, rc;

    pthread_mutex_lock(&s->track_mu);
    loading = s->loading;
    memcpy(shapes, s->load_shapes, sizeof(shapes));
    pthread_mutex_unlock(&s->track_mu);
    for (t = 0; loading && t < 2; t++) {
        struct redis_evict_arg a = {s, shapes[t][REDIS_SHAPE_ID] > 0,
                                    shapes[t][REDIS_SHAPE_LOOKUP] > 0};
        char mid[REDIS_MAX_VERSION_MID], pat[512];

        if (!a.ids && !a.lookups)
            continue;
        snprintf(mid, sizeof(mid), "%s:%s:", redis_type_name(t), s->version);
        redis_match_pattern(s, mid, pat, sizeof(pat));
        rc = redis_scan_delete(&s->in, w->conn, pat, REDIS_EVICT_COUNT,
                               redis_evict_pred, &a, NULL, NULL, &scanned,
                               &deleted);
        if (rc != FERRY_OK)
            return FERRY_RETRY;
    }
    pthread_mutex_lock(&s->track_mu);
    if (loading) {
        s->loading = 0;
        redis_keyset_release(&s->load_keys);
        memset(s->load_shapes, 0, sizeof(s->load_shapes));
    }
    s->load_done = 1;
    pthread_mutex_unlock(&s->track_mu);
    if (loading) {
        s->host->metric_add(s->m_evict_load, (double)deleted);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "initial load complete: %" PRIu64 " companies, %" PRIu64
                     " users written; %" PRIu64
                     " keys it did not write deleted",
                     shapes[REDIS_T_COMPANY][REDIS_SHAPE_ID],
                     shapes[REDIS_T_USER][REDIS_SHAPE_ID], deleted);
    }
    return redis_maybe_complete(w);
}

static int redis_control(struct redis_worker *w, struct ferry_batch *b,
                         size_t i)
{
    struct redis_sink *s = w->s;
    const struct ferry_msg *m = b->msgs[i];
    redisReply *r;

    switch (m->op) {
    case FERRY_OP_RELOAD:
        if (redis_link_connect(&w->link) != FERRY_OK)
            return FERRY_RETRY;
        /* The marker goes too: until the new load completes, a restart
         * must load everything again. */
        redis_conn_cmd(w->conn, "DEL", s->cursor_key, s->complete_key, NULL);
        s->host->metric_add(s->in.m.del, 2);
        s->host->metric_add(s->in.m.roundtrips, 1);
        if (redis_conn_exec(w->conn) != FERRY_OK) {
            redis_instance_component(&s->in, FERRY_COMPONENT_DISCONNECTED);
            return FERRY_RETRY;
        }
        r = redis_conn_reply(w->conn, 0);
        if (r->type == REDIS_REPLY_ERROR) {
            int cls = redis_reply_class(r);

            snprintf(w->last_error, sizeof(w->last_error), "%s", r->str);
            redis_conn_reset(w->conn);
            if (cls != REDIS_CLASS_DATA) {
                if (cls == REDIS_CLASS_RECONNECT)
                    redis_conn_close(w->conn);
                return FERRY_RETRY;
            }
            redis_poison(w, b, i, "deleting the replay cursor: %s",
                         w->last_error);
        }
        redis_conn_reset(w->conn);
        pthread_mutex_lock(&s->track_mu);
        s->loading = 0;
        s->load_done = 0;
        s->complete_marked = 0;
        redis_keyset_release(&s->load_keys);
        memset(s->load_shapes, 0, sizeof(s->load_shapes));
        pthread_mutex_unlock(&s->track_mu);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "reload: replay cursor deleted; a full load follows");
        return FERRY_OK;
    case FERRY_OP_LOAD_BEGIN:
        pthread_mutex_lock(&s->track_mu);
        s->loading = 1;
        s->load_done = 0;
        s->complete_marked = 0;
        redis_keyset_release(&s->load_keys);
        memset(s->load_shapes, 0, sizeof(s->load_shapes));
        pthread_mutex_unlock(&s->track_mu);
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "initial load started: recording written keys");
        return FERRY_OK;
    case FERRY_OP_LOAD_END:
        if (redis_link_connect(&w->link) != FERRY_OK)
            return FERRY_RETRY;
        return redis_load_end(w);
    default:
        return FERRY_OK;
    }
}

/* ---- the batch ---------------------------------------------------------- */

/*
 * A run with the failure policy: a reply error makes it go again once;
 * failing again for a reason other than the connection, its messages go
 * one at a time in order, each refused one becomes a poison message and
 * the others are applied. Then the cursor.
 */
static int redis_run_isolating(struct redis_worker *w, struct ferry_batch *b,
                               const size_t *idx, size_t n,
                               const struct ferry_pos *commit)
{
    struct redis_sink *s = w->s;
    size_t k;
    int rc;

    rc = redis_run(w, b, idx, n, commit);
    if (rc != REDIS_DATA_ERROR)
        return rc;
    s->host->log(s->ctx, FERRY_LOG_WARN,
                 "worker %u: batch refused by Redis (%s); sending it again",
                 w->index, w->last_error);
    rc = redis_run(w, b, idx, n, commit);
    if (rc != REDIS_DATA_ERROR)
        return rc;
    s->host->log(s->ctx, FERRY_LOG_WARN,
                 "worker %u: batch refused again (%s); applying its %zu "
                 "messages one at a time",
                 w->index, w->last_error, n);
    for (k = 0; k < n; k++) {
        if (b->results[idx[k]] != FERRY_OK)
            continue;
        rc = redis_run(w, b, &idx[k], 1, NULL);
        if (rc == REDIS_DATA_ERROR)
            redis_poison(w, b, idx[k], "refused by Redis: %s", w->last_error);
        else if (rc != FERRY_OK)
            return rc;
    }
    if (commit) {
        rc = redis_run(w, b, NULL, 0, commit);
        if (rc == REDIS_DATA_ERROR) {
            s->host->log(s->ctx, FERRY_LOG_ERROR,
                         "replay cursor not stored: %s", w->last_error);
            rc = FERRY_OK;
        }
    }
    return rc;
}

static void redis_report_poison(struct redis_worker *w, struct ferry_batch *b)
{
    struct redis_sink *s = w->s;
    size_t i;

    for (i = 0; i < b->count; i++) {
        const struct ferry_msg *m = b->msgs[i];
        char pos[FERRY_POS_STRLEN] = "none";

        if (b->results[i] != FERRY_ERROR)
            continue;
        if (m->pos.set)
            ferry_pos_format(&m->pos, pos, sizeof(pos));
        s->host->metric_add(s->in.m.poison, 1);
        s->host->log(s->ctx, FERRY_LOG_ERROR,
                     "poison message skipped: %s '%.80s' at %s: %s",
                     m->entity_type, m->entity_id, pos,
                     w->reasons[i] ? w->reasons[i] : "?");
    }
}

int redis_apply(struct redis_worker *w, struct ferry_batch *b)
{
    size_t *idx, i, n = 0;
    const struct ferry_pos *commit = NULL;
    int rc = FERRY_OK, control = 0;

    if (b->count > w->reasons_cap) {
        free(w->reasons);
        w->reasons_cap = b->count;
        w->reasons = redis_xalloc(b->count * sizeof(*w->reasons) +
                                  b->count * REDIS_REASON_LEN);
        for (i = 0; i < b->count; i++)
            w->reasons[i] =
                (char *)(w->reasons + b->count) + i * REDIS_REASON_LEN;
    }
    for (i = 0; i < b->count; i++) {
        b->results[i] = FERRY_OK;
        w->reasons[i][0] = '\0';
        if (FERRY_OP_IS_CONTROL(b->msgs[i]->op))
            control = 1;
    }
    w->last_error[0] = '\0';
    /* A batch with a control message stores no cursor: after a reload
     * the old position must not come back. */
    if (b->commit.set && !control)
        commit = &b->commit;
    idx = redis_xalloc((b->count ? b->count : 1) * sizeof(*idx));
    for (i = 0; i < b->count && rc == FERRY_OK; i++) {
        if (!FERRY_OP_IS_CONTROL(b->msgs[i]->op)) {
            idx[n++] = i;
            continue;
        }
        if (n)
            rc = redis_run_isolating(w, b, idx, n, NULL);
        n = 0;
        if (rc == FERRY_OK)
            rc = redis_control(w, b, i);
    }
    if (rc == FERRY_OK && (n || commit))
        rc = redis_run_isolating(w, b, idx, n, commit);
    free(idx);
    if (rc == FERRY_OK)
        redis_report_poison(w, b);
    return rc;
}
