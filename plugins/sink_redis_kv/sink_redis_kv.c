/*
 * plugins/sink_redis_kv: a generic Redis sink (plugin `redis_kv`). Each
 * message becomes one command at a key built from the `key` template:
 * FERRY_OP_FULL and FERRY_OP_PARTIAL a SET of the payload as it is (with
 * PX ttl when `ttl` is set), FERRY_OP_DELETE a DEL. Snapshots and control
 * messages are ignored (counted in ferry_sink_ignored_total, logged once
 * per kind).
 *
 * A batch is one round trip: MULTI, its commands in batch order, the
 * replay cursor's compare-and-set, EXEC. When Redis refuses a command for
 * its content the batch goes again once, then one message at a time; a
 * message refused alone is skipped as poison (ferry_sink_poison_total).
 * Connection options, the writer lock, the cursor and the "redis"
 * component state come from the Redis library (plugins/lib/redis), as
 * for the `redis` sink.
 *
 * Options besides the shared ones (redis/options.h):
 *   key         "{type}:{id}": {type} is the entity type, {id} the entity
 *               id; any other {name} is refused at init
 *   cursor_key  "ferry:{instance}:replay_cursor": where the replay cursor
 *               lives; {instance} is this sink's instance name
 *   lock_key    "ferry:{instance}:writer_lock": the writer lock's key
 *
 * Threads: init/fini/start/stop/load_position on the main thread (stop
 * may come from another); open/write/checkpoint/close on worker threads,
 * concurrently for different workers.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ferry.h>

#include "redis/cmd.h"
#include "redis/instance.h"
#include "redis/tx.h"
#include "redis/util.h"
#include "redis/verdict.h"


static const struct ferry_option kv_options[] = {
    REDIS_OPTIONS_SERVER,
    {.name = "key",
     .type = FERRY_OPT_STRING,
     .def = "{type}:{id}",
     .description = "key template: {type} = entity type, {id} = entity id"},
    {.name = "cursor_key",
     .type = FERRY_OPT_STRING,
     .def = "ferry:{instance}:replay_cursor",
     .description = "key of the replay cursor; {instance} = this instance"},
    {.name = "lock_key",
     .type = FERRY_OPT_STRING,
     .def = "ferry:{instance}:writer_lock",
     .description = "key of the writer lock; {instance} = this instance"},
    REDIS_OPTIONS_TTL,
    REDIS_OPTIONS_LINK,
    {.name = NULL},
};

/* A piece of the key template. */
enum { KV_LIT = 0, KV_TYPE = 1, KV_ID = 2, KV_INSTANCE = 3 };

struct kv_part {
    int kind;
    char *lit; /* KV_LIT */
    size_t len;
};

struct kv_template {
    struct kv_part *parts;
    size_t n;
    int uses_id;
};

struct kv_sink {
    struct redis_instance in;
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    struct kv_template key;
    char *cursor_key;
    const char *ttl_arg; /* NULL: no expiry */
    atomic_int warned_snapshot;
    atomic_int warned_control;
    struct ferry_metric *m_ignored;
};

struct kv_worker {
    struct kv_sink *s;
    struct redis_link link;
    struct redis_verdicts v;  /* on the batch being written */
    struct ferry_batch *b;    /* the batch being written */
    char *key; /* the key being built */
    size_t key_cap;
};

/* ---- the key template --------------------------------------------------- */

static void kv_template_release(struct kv_template *t)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        free(t->parts[i].lit);
    free(t->parts);
    memset(t, 0, sizeof(*t));
}

static void kv_template_push(struct kv_template *t, int kind, const char *s,
                             size_t len)
{
    struct kv_part *p;

    t->parts = redis_xrealloc(t->parts, (t->n + 1) * sizeof(*t->parts));
    p = &t->parts[t->n++];
    p->kind = kind;
    p->lit = NULL;
    p->len = len;
    if (kind == KV_LIT) {
        p->lit = redis_xalloc(len + 1);
        memcpy(p->lit, s, len);
        p->lit[len] = '\0';
    }
    if (kind == KV_ID)
        t->uses_id = 1;
}

/* Which placeholder "{name}" s[0..n) is (braces excluded), or -1. */
static int kv_placeholder(const char *s, size_t n, int allow_instance)
{
    if (n == 4 && memcmp(s, "type", 4) == 0 && !allow_instance)
        return KV_TYPE;
    if (n == 2 && memcmp(s, "id", 2) == 0 && !allow_instance)
        return KV_ID;
    if (n == 8 && memcmp(s, "instance", 8) == 0 && allow_instance)
        return KV_INSTANCE;
    return -1;
}

/*
 * Parses the template text of option name into t. Entity templates know
 * {type} and {id}; key-name templates (allow_instance) know {instance}.
 * Returns 0, or -1 after logging which placeholder is wrong.
 */
static int kv_template_parse(struct kv_sink *s, const char *name,
                             const char *text, int allow_instance,
                             struct kv_template *t)
{
    const char *p = text, *open, *close;
    const char *known = allow_instance ? "{instance}" : "{type} and {id}";

    memset(t, 0, sizeof(*t));
    if (!text || !*text) {
        s->host->log(s->ctx, FERRY_LOG_ERROR, "%s: must not be empty", name);
        return -1;
    }
    while (*p) {
        int kind;

        open = strchr(p, '{');
        if (!open) {
            kv_template_push(t, KV_LIT, p, strlen(p));
            break;
        }
        if (open > p)
            kv_template_push(t, KV_LIT, p, (size_t)(open - p));
        close = strchr(open, '}');
        if (!close) {
            s->host->log(s->ctx, FERRY_LOG_ERROR,
                         "%s: '%s' has a '{' without '}' (placeholders: %s)",
                         name, text, known);
            goto fail;
        }
        kind = kv_placeholder(open + 1, (size_t)(close - open - 1),
                              allow_instance);
        if (kind < 0) {
            s->host->log(s->ctx, FERRY_LOG_ERROR,
                         "%s: unknown placeholder '%.*s' in '%s' (known: %s)",
                         name, (int)(close - open + 1), open, text, known);
            goto fail;
        }
        kv_template_push(t, kind, NULL, 0);
        p = close + 1;
    }
    return 0;
fail:
    kv_template_release(t);
    return -1;
}

/* Appends s[0..n) to w's key buffer at *len. */
static void kv_key_append(struct kv_worker *w, size_t *len, const char *s,
                          size_t n)
{
    if (*len + n + 1 > w->key_cap) {
        size_t cap = w->key_cap ? w->key_cap : 128;

        while (cap < *len + n + 1)
            cap *= 2;
        w->key = redis_xrealloc(w->key, cap);
        w->key_cap = cap;
    }
    memcpy(w->key + *len, s, n);
    *len += n;
    w->key[*len] = '\0';
}

/* Builds m's key in w->key; returns its length. */
static size_t kv_key_build(struct kv_worker *w, const struct ferry_msg *m)
{
    const struct kv_template *t = &w->s->key;
    size_t len = 0, i;

    kv_key_append(w, &len, "", 0);
    for (i = 0; i < t->n; i++) {
        const struct kv_part *p = &t->parts[i];
        const char *v = p->kind == KV_TYPE ? m->entity_type : m->entity_id;

        if (p->kind == KV_LIT)
            kv_key_append(w, &len, p->lit, p->len);
        else
            kv_key_append(w, &len, v ? v : "", v ? strlen(v) : 0);
    }
    return len;
}

/* A key name from a template with {instance} (malloc'd). */
static char *kv_key_name(struct kv_sink *s, const struct kv_template *t)
{
    const char *inst = s->host->instance_name(s->ctx);
    size_t len = 0, i;
    char *out = redis_xalloc(1);

    out[0] = '\0';
    for (i = 0; i < t->n; i++) {
        const char *v = t->parts[i].kind == KV_LIT ? t->parts[i].lit : inst;
        size_t n = strlen(v);

        out = redis_xrealloc(out, len + n + 1);
        memcpy(out + len, v, n + 1);
        len += n;
    }
    return out;
}

/* Reads the template option name into *out (a key name). */
static int kv_read_key_name(struct kv_sink *s, const char *name, char **out)
{
    struct kv_template t;

    if (kv_template_parse(s, name, s->host->opt_str(s->ctx, name), 1, &t) < 0)
        return -1;
    *out = kv_key_name(s, &t);
    kv_template_release(&t);
    return 0;
}

/* ---- init / fini / lifecycle -------------------------------------------- */

static void kv_free(struct kv_sink *s)
{
    redis_instance_release(&s->in);
    kv_template_release(&s->key);
    free(s->cursor_key);
    free(s);
}

static int kv_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                   void **state)
{
    struct kv_sink *s = redis_xcalloc(1, sizeof(*s));
    char *lock_key = NULL;

    s->host = host;
    s->ctx = ctx;
    atomic_init(&s->warned_snapshot, 0);
    atomic_init(&s->warned_control, 0);
    if (redis_instance_init(&s->in, host, ctx, NULL) != FERRY_OK)
        goto fail;
    if (kv_template_parse(s, "key", host->opt_str(ctx, "key"), 0, &s->key) <
        0)
        goto fail;
    if (kv_read_key_name(s, "cursor_key", &s->cursor_key) < 0 ||
        kv_read_key_name(s, "lock_key", &lock_key) < 0)
        goto fail;
    redis_instance_set_lock_key(&s->in, lock_key);
    free(lock_key);
    s->ttl_arg = s->in.opt.ttl_ms ? s->in.opt.ttl_arg : NULL;
    s->m_ignored = host->metric(ctx, FERRY_METRIC_COUNTER,
                                "ferry_sink_ignored_total",
                                "snapshots and control messages this sink "
                                "does not store",
                                NULL);
    *state = s;
    return FERRY_OK;
fail:
    kv_free(s);
    return FERRY_EINVAL;
}

static int kv_start(void *state)
{
    struct kv_sink *s = state;

    return redis_instance_start(&s->in);
}

static void kv_stop(void *state)
{
    struct kv_sink *s = state;

    redis_instance_stop(&s->in);
}

static void kv_fini(void *state)
{
    struct kv_sink *s = state;

    if (!s)
        return;
    kv_stop(s);
    kv_free(s);
}

/* The stored cursor, so the source resumes after it. */
static int kv_load_position(void *state, struct ferry_pos *out)
{
    struct kv_sink *s = state;
    const char *keys[1] = {s->cursor_key};
    char *val = NULL;
    int rc = FERRY_NOT_FOUND;

    if (redis_instance_get(&s->in, 1, keys, &val) != FERRY_OK || !val)
        return FERRY_NOT_FOUND;
    if (redis_pos_parse(val, out) == 0) {
        s->host->log(s->ctx, FERRY_LOG_INFO, "resuming after %.63s", val);
        rc = FERRY_OK;
    } else {
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "replay cursor '%.63s' at %s is not <ms>-<seq>; "
                     "ignored",
                     val, s->cursor_key);
    }
    free(val);
    return rc;
}

/* ---- workers ------------------------------------------------------------ */

static int kv_open(void *state, unsigned worker, void **wctx)
{
    struct kv_sink *s = state;
    struct kv_worker *w = redis_xcalloc(1, sizeof(*w));

    w->s = s;
    redis_link_init(&s->in, &w->link, worker);
    *wctx = w;
    return FERRY_OK;
}

static void kv_close(void *wctx)
{
    struct kv_worker *w = wctx;

    if (!w)
        return;
    redis_link_release(&w->link);
    redis_verdicts_release(&w->v);
    free(w->key);
    free(w);
}

/* Nonzero when message m is one this sink writes; counts and logs (once
 * per kind) the ones it ignores. */
static int kv_stored(struct kv_sink *s, const struct ferry_msg *m)
{
    atomic_int *warned;
    const char *what;

    if (m->op == FERRY_OP_FULL || m->op == FERRY_OP_PARTIAL ||
        m->op == FERRY_OP_DELETE)
        return 1;
    s->host->metric_add(s->m_ignored, 1);
    if (m->op == FERRY_OP_SNAPSHOT) {
        warned = &s->warned_snapshot;
        what = "snapshots";
    } else {
        warned = &s->warned_control;
        what = "control messages";
    }
    if (!atomic_exchange(warned, 1))
        s->host->log(s->ctx, FERRY_LOG_INFO,
                     "ignoring %s (first: %s %s); counted in "
                     "ferry_sink_ignored_total",
                     what, ferry_op_name(m->op), m->entity_type);
    return 0;
}

/* Queues the command of batch message i. */
static void kv_queue(struct kv_worker *w, const struct ferry_msg *m)
{
    struct kv_sink *s = w->s;
    size_t klen = kv_key_build(w, m);
    const char *key = w->key;

    if (m->op == FERRY_OP_DELETE) {
        redis_cmd_del(w->link.conn, 1, &key, &klen);
        s->host->metric_add(s->in.m.del, 1);
    } else {
        redis_cmd_set(w->link.conn, key, klen, m->payload, m->payload_len,
                      s->ttl_arg);
        s->host->metric_add(s->in.m.set, 1);
    }
}

/*
 * One transaction of the messages idx[0..n) of the batch being written
 * that are still OK, with the cursor commit when not NULL: a
 * redis_run_fn (redis/verdict.h). Returns FERRY_OK, FERRY_RETRY or
 * REDIS_DATA_ERROR (reason in w->v.last_error).
 */
static int kv_run(void *arg, const size_t *idx, size_t n,
                  const struct ferry_pos *commit)
{
    struct kv_worker *w = arg;
    struct kv_sink *s = w->s;
    struct ferry_batch *b = w->b;
    struct redis_tx tx;
    size_t k;
    int rc;

    if (redis_link_connect(&w->link) != FERRY_OK)
        return FERRY_RETRY;
    redis_tx_begin(&tx, &w->link);
    for (k = 0; k < n; k++)
        if (b->results[idx[k]] == FERRY_OK)
            kv_queue(w, b->msgs[idx[k]]);
    if (commit) {
        redis_tx_cursor(&tx, s->cursor_key, commit);
        s->host->metric_add(s->in.m.eval, 1);
    }
    rc = redis_tx_commit(&tx);
    if (rc != FERRY_OK)
        snprintf(w->v.last_error, sizeof(w->v.last_error), "%s", tx.error);
    return rc;
}

static int kv_write(void *wctx, struct ferry_batch *b)
{
    struct kv_worker *w = wctx;
    struct kv_sink *s = w->s;
    uint64_t t0 = s->host->now_ns();
    size_t *idx, i, n = 0;
    int rc;

    if (redis_instance_lock_lost(&s->in))
        return FERRY_RETRY;
    redis_verdicts_begin(&w->v, b);
    w->b = b;
    idx = redis_xalloc((b->count ? b->count : 1) * sizeof(*idx));
    for (i = 0; i < b->count; i++) {
        const struct ferry_msg *m = b->msgs[i];

        if (!kv_stored(s, m))
            continue;
        if (s->key.uses_id && (!m->entity_id || !*m->entity_id)) {
            redis_verdicts_poison(&w->v, b, i, "%s message without entity_id",
                                  m->entity_type);
            continue;
        }
        idx[n++] = i;
    }
    rc = redis_verdicts_run(&w->v, b, idx, n,
                            b->commit.set ? &b->commit : NULL, kv_run, w,
                            s->host, s->ctx, w->link.index);
    free(idx);
    w->b = NULL;
    if (rc == FERRY_OK)
        redis_verdicts_report(&w->v, b, s->host, s->ctx, s->in.m.poison);
    s->host->metric_observe(s->in.m.write_seconds,
                            (double)(s->host->now_ns() - t0) / 1e9);
    return rc;
}

static int kv_checkpoint(void *wctx, const struct ferry_pos *pos)
{
    struct kv_worker *w = wctx;

    return redis_cursor_store(&w->link, w->s->cursor_key, pos);
}

static int kv_probe(void *state, char *msg, size_t len)
{
    struct kv_sink *s = state;

    return redis_instance_probe(&s->in, msg, len, NULL);
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "redis_kv"),
    .version = "1.0.0",
    .description = "each message's payload at a templated Redis key",
    .options = kv_options,
    .init = kv_init,
    .fini = kv_fini,
    .start = kv_start,
    .stop = kv_stop,
    .load_position = kv_load_position,
    .open = kv_open,
    .write = kv_write,
    .checkpoint = kv_checkpoint,
    .close = kv_close,
    .probe = kv_probe,
};
