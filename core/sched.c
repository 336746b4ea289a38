/*
 * core/sched.c: routes, workers, admission, batching, retries, barriers,
 * commit tracking, start and drain. See core/sched.h for the design.
 */
#include "sched.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

/* ---- core-owned messages ------------------------------------------------ */

/*
 * The rendezvous for a control message (a barrier) across every worker of
 * every route of its source: all of them arrive (so everything emitted
 * before it is applied everywhere), then each distinct sink gets it once,
 * from the first worker of the first route into that sink, and then all
 * go on.
 */
struct cbarrier {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned total;     /* workers that must arrive */
    unsigned arrived;
    unsigned sinks;     /* deliveries to wait for */
    unsigned delivered;
    unsigned left;      /* workers still inside */
};

/* A message as the core holds it: the public view first, then bookkeeping.
 * Keys, strings and payload follow in the same allocation. */
struct cmsg {
    struct ferry_msg m;
    atomic_uint refs;      /* routes (plus emit's guard) still holding it */
    atomic_int abandoned;  /* a route gave up on it at shutdown */
    struct ferry_ctx *source;
    uint64_t hash;
    struct cbarrier *barrier; /* control messages only */
};

#define MSG_MIN_SIZE offsetof(struct ferry_msg, seq)

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static const char *order_key(const struct ferry_msg *m)
{
    return m->order_key[0] ? m->order_key : m->entity_id;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

static struct cmsg *cmsg_new(struct ferry_ctx *src, const struct ferry_msg *in)
{
    const char *etype = nz(in->entity_type);
    const char *eid = nz(in->entity_id);
    const char *okey = nz(in->order_key);
    size_t need = sizeof(struct cmsg);
    size_t nkeys = in->keys ? in->nkeys : 0;

    need += nkeys * sizeof(struct ferry_kv);
    need += strlen(etype) + strlen(eid) + strlen(okey) + 3;
    for (size_t i = 0; i < nkeys; i++)
        need += strlen(nz(in->keys[i].key)) + strlen(nz(in->keys[i].value)) +
                2;
    need += in->payload_len + 1;

    struct cmsg *cm = malloc(need);
    if (!cm)
        return NULL;
    memset(cm, 0, sizeof(*cm));
    char *p = (char *)(cm + 1);
    struct ferry_kv *kv = (struct ferry_kv *)p;
    p += nkeys * sizeof(struct ferry_kv);

#define COPY_STR(dst, s)                                                     \
    do {                                                                     \
        size_t l_ = strlen(s) + 1;                                           \
        memcpy(p, (s), l_);                                                  \
        (dst) = p;                                                           \
        p += l_;                                                             \
    } while (0)

    COPY_STR(cm->m.entity_type, etype);
    COPY_STR(cm->m.entity_id, eid);
    COPY_STR(cm->m.order_key, okey);
    for (size_t i = 0; i < nkeys; i++) {
        COPY_STR(kv[i].key, nz(in->keys[i].key));
        COPY_STR(kv[i].value, nz(in->keys[i].value));
    }
#undef COPY_STR
    if (in->payload_len)
        memcpy(p, in->payload, in->payload_len);
    p[in->payload_len] = '\0';

    cm->m.struct_size = sizeof(struct ferry_msg);
    cm->m.op = in->op;
    cm->m.flags = in->flags;
    cm->m.nkeys = (uint32_t)nkeys;
    cm->m.keys = nkeys ? kv : NULL;
    cm->m.payload = p;
    cm->m.payload_len = in->payload_len;
    cm->m.pos = in->pos;
    cm->m.recv_ns = in->recv_ns ? in->recv_ns : clock_now_ns();
    cm->source = src;
    cm->hash = fnv1a(fnv1a(0xcbf29ce484222325ull, cm->m.entity_type) ^ 0xff,
                     order_key(&cm->m));
    atomic_init(&cm->refs, 1); /* emit's guard */
    atomic_init(&cm->abandoned, 0);
    return cm;
}

static void cmsg_free(struct cmsg *cm)
{
    if (cm->barrier) {
        pthread_mutex_destroy(&cm->barrier->lock);
        pthread_cond_destroy(&cm->barrier->cond);
        free(cm->barrier);
    }
    free(cm);
}

/* Drops one reference; the last one marks the sequence number done
 * (unless a route abandoned the message) and frees it. */
static void cmsg_release(struct cmsg *cm)
{
    if (atomic_fetch_sub(&cm->refs, 1) != 1)
        return;
    if (!atomic_load(&cm->abandoned) && cm->m.seq)
        tracker_done(&cm->source->tracker, cm->m.seq);
    cmsg_free(cm);
}

static void cmsg_release_item(void *item)
{
    struct cmsg *cm = item;

    /* A barrier is queued in every worker channel of its source but holds
     * one reference for all of them; no worker has reached it (they would
     * all have had to), so it is in b->left channels: drop the reference
     * with the last copy. */
    if (cm->barrier) {
        pthread_mutex_lock(&cm->barrier->lock);
        int last = --cm->barrier->left == 0;
        pthread_mutex_unlock(&cm->barrier->lock);
        if (!last)
            return;
    }
    /* Still queued when the pipeline is freed: never applied. */
    atomic_store(&cm->abandoned, 1);
    cmsg_release(cm);
}

void sched_committed(struct ferry_ctx *src, struct ferry_pos *out)
{
    *out = tracker_committed(&src->tracker);
}

/* ---- admission ---------------------------------------------------------- */

static int route_matches(const struct route *r, const char *etype)
{
    if (!r->match)
        return 1;
    for (char **m = r->match; *m; m++)
        if (strcmp(*m, etype) == 0 || strcmp(*m, "*") == 0)
            return 1;
    return 0;
}

static struct channel *route_channel(struct route *r, const struct cmsg *cm)
{
    return r->workers[cm->hash % r->nworkers].ch;
}

static int route_admit(struct route *r, struct cmsg *cm, struct channel *ch)
{
    struct ferry_admission a = {
        .route = r->name,
        .msg = &cm->m,
        .depth = channel_depth(ch),
        .capacity = channel_capacity(ch),
        .now_ns = clock_now_ns(),
    };

    for (size_t i = 0; i < r->npolicies; i++) {
        struct ferry_ctx *p = r->policies[i];
        if (!p->desc->admit)
            continue;
        int v = p->desc->admit(p->state, &a);
        if (v != FERRY_ADMIT_BLOCK)
            return v;
    }
    return FERRY_ADMIT_BLOCK;
}

struct coalesce_arg {
    struct cmsg *cm;
    int seen;
    int found;
};

/*
 * Called from the newest queued message to the oldest: only the newest
 * message of the same partition may be replaced, and only when the new
 * message supersedes it (a full or delete replaces anything for the same
 * entity; a snapshot replaces a whole snapshot). A partial never replaces
 * anything: the fields of the queued message would be lost.
 */
static int coalesce_match(void *queued, void *arg)
{
    struct coalesce_arg *a = arg;
    struct cmsg *q = queued;
    const struct ferry_msg *n = &a->cm->m;

    if (a->seen)
        return 0;
    /* Nothing queued before a barrier may be replaced by a message
     * emitted after it: stop at the newest barrier. */
    if (FERRY_OP_IS_CONTROL(q->m.op)) {
        a->seen = 1;
        return 0;
    }
    if (q->hash != a->cm->hash ||
        strcmp(q->m.entity_type, n->entity_type) != 0 ||
        strcmp(order_key(&q->m), order_key(n)) != 0)
        return 0;
    a->seen = 1;
    if (n->op == FERRY_OP_SNAPSHOT)
        return q->m.op == FERRY_OP_SNAPSHOT &&
               !((q->m.flags | n->flags) & FERRY_MSG_F_MORE);
    if (n->op != FERRY_OP_FULL && n->op != FERRY_OP_DELETE)
        return 0;
    if (q->m.op == FERRY_OP_SNAPSHOT)
        return 0;
    return strcmp(q->m.entity_id, n->entity_id) == 0;
}

/* A channel_replace_newest() match that replaces nothing: only records
 * whether coalesce_match() would. */
static int coalesce_probe(void *queued, void *arg)
{
    struct coalesce_arg *a = arg;

    if (coalesce_match(queued, arg))
        a->found = 1;
    return 0;
}

/*
 * Whether cm can be coalesced into ch now: there is room, or a queued
 * message it may replace. Then it still can when it is placed, after every
 * other route accepted it: only this source adds to ch (under its emit
 * lock), and a worker that pops the replaceable message leaves room. So
 * placing never has to wait while other routes already hold cm.
 */
static int coalesce_feasible(struct channel *ch, struct cmsg *cm)
{
    struct coalesce_arg arg = {cm, 0, 0};
    void *unused;

    if (channel_depth(ch) < channel_capacity(ch))
        return 1;
    channel_replace_newest(ch, coalesce_probe, &arg, NULL, &unused);
    return arg.found;
}

static int is_control(const struct cmsg *cm)
{
    return FERRY_OP_IS_CONTROL(cm->m.op);
}

static int drop_oldest_ok(void *queued, void *arg)
{
    (void)arg;
    return !is_control(queued);
}

#define MAX_TARGETS 64

struct reservation {
    struct route *route;
    struct channel *ch;
};

static void unreserve(struct reservation *res, size_t n)
{
    for (size_t i = 0; i < n; i++)
        channel_unreserve(res[i].ch);
}

/* Counts ferry_source_emitted_total{source,entity_type,op} (what entered
 * the pipeline; sources count what they received themselves in
 * ferry_source_messages_total) with a small per-thread cache of series. */
struct count_cache {
    char etype[32];
    uint32_t op;
    struct ferry_metric *m;
};

#define COUNT_CACHE 32

static __thread struct {
    struct ferry_ctx *src;
    struct count_cache e[COUNT_CACHE];
    unsigned n;
} tl_counts;

static void count_received(struct ferry_ctx *src, const struct ferry_msg *m)
{
    if (tl_counts.src != src) {
        tl_counts.src = src;
        tl_counts.n = 0;
    }
    for (unsigned i = 0; i < tl_counts.n; i++) {
        struct count_cache *c = &tl_counts.e[i];
        if (c->op == m->op && strcmp(c->etype, m->entity_type) == 0) {
            metrics_add(c->m, 1);
            return;
        }
    }
    const char *labels[] = {"source",       src->name, "entity_type",
                            m->entity_type, "op",      ferry_op_name(m->op),
                            NULL};
    struct ferry_metric *metric =
        metrics_get(FERRY_METRIC_COUNTER, "ferry_source_emitted_total",
                    "Messages a source emitted into the pipeline.", labels);
    if (!metric)
        return;
    metrics_add(metric, 1);
    if (tl_counts.n < COUNT_CACHE && strlen(m->entity_type) < 32) {
        struct count_cache *c = &tl_counts.e[tl_counts.n++];
        snprintf(c->etype, sizeof(c->etype), "%s", m->entity_type);
        c->op = m->op;
        c->m = metric;
    }
}

static void barrier_init(struct cmsg *cm, struct ferry_ctx *src)
{
    struct cbarrier *b = calloc(1, sizeof(*b));

    if (!b)
        abort();
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    for (size_t i = 0; i < src->nroutes; i++) {
        b->total += src->routes[i]->nworkers;
        b->sinks += src->routes[i]->delivers_control;
    }
    b->left = b->total;
    cm->barrier = b;
}

/*
 * All-or-nothing admission of cm into every matching route; called with
 * the source's emit lock held. Returns FERRY_OK (cm is owned by the
 * pipeline now), FERRY_WOULD_BLOCK or FERRY_CLOSED (cm still the caller's).
 */
static int try_admit(struct ferry_ctx *src, struct cmsg *cm)
{
    struct reservation res[MAX_TARGETS * 4];
    size_t nres = 0;
    struct route *coalesce[MAX_TARGETS];
    size_t ncoalesce = 0;
    size_t matched = 0;
    int control = is_control(cm);
    int rc;

    for (size_t i = 0; i < src->nroutes; i++) {
        struct route *r = src->routes[i];

        if (!control && !route_matches(r, cm->m.entity_type))
            continue;
        matched++;
        if (control) {
            /* A barrier goes into every worker of the route. */
            for (unsigned w = 0; w < r->nworkers; w++) {
                if (nres == sizeof(res) / sizeof(res[0]))
                    goto too_many;
                rc = channel_reserve(r->workers[w].ch);
                if (rc != FERRY_OK)
                    goto refuse;
                res[nres].route = r;
                res[nres++].ch = r->workers[w].ch;
            }
            continue;
        }
        struct channel *ch = route_channel(r, cm);
        /* Policies with admit() are asked for every message, so a policy
         * with watermarks can act before the channel is full; without one
         * a full channel blocks. */
        int verdict = r->has_admit ? route_admit(r, cm, ch)
                                   : FERRY_ADMIT_BLOCK;
        if (verdict == FERRY_ADMIT_DROP_NEWEST) {
            metrics_add(r->m_dropped_newest, 1);
            continue;
        }
        /* When it cannot be coalesced, the reservation below refuses it
         * (and arms the on_room callback). */
        if (verdict == FERRY_ADMIT_COALESCE && ncoalesce < MAX_TARGETS &&
            coalesce_feasible(ch, cm)) {
            coalesce[ncoalesce++] = r;
            continue;
        }
        if (verdict == FERRY_ADMIT_DROP_OLDEST) {
            void *old;
            if (channel_drop_oldest_if(ch, drop_oldest_ok, NULL, &old) ==
                FERRY_OK) {
                metrics_add(r->m_dropped_oldest, 1);
                cmsg_release(old);
            }
        }
        rc = channel_reserve(ch);
        if (rc != FERRY_OK)
            goto refuse;
        if (nres == sizeof(res) / sizeof(res[0]))
            goto too_many;
        res[nres].route = r;
        res[nres++].ch = ch;
    }

    if (control)
        barrier_init(cm, src);

    /* The sequence number this message will get (we hold the emit lock,
     * so nobody else takes it meanwhile). */
    cm->m.seq = tracker_peek(&src->tracker);

    size_t placed = 0;
    for (size_t i = 0; i < ncoalesce; i++) {
        struct route *r = coalesce[i];
        struct channel *ch = route_channel(r, cm);
        struct coalesce_arg arg = {cm, 0, 0};
        void *old;

        atomic_fetch_add(&cm->refs, 1);
        if (channel_replace_newest(ch, coalesce_match, &arg, cm, &old) ==
            FERRY_OK) {
            metrics_add(r->m_coalesced, 1);
            cmsg_release(old);
            placed++;
            continue;
        }
        /* Nothing replaceable: queue it if there is room. */
        if (channel_try_push(ch, cm) == FERRY_OK) {
            placed++;
            continue;
        }
        if (placed == 0) {
            /* Full and nothing replaceable: behave as block. */
            atomic_fetch_sub(&cm->refs, 1);
            cm->m.seq = 0;
            rc = FERRY_WOULD_BLOCK;
            goto refuse;
        }
        /* Another route already holds cm: wait for room here (a worker is
         * draining this channel, so this is short). */
        if (channel_push(ch, cm) != FERRY_OK) {
            atomic_store(&cm->abandoned, 1);
            atomic_fetch_sub(&cm->refs, 1);
        }
        placed++;
    }

    uint64_t seq = tracker_add(&src->tracker, &cm->m.pos);
    (void)seq;
    if (matched == 0)
        metrics_add(src->m_unrouted, 1);
    count_received(src, &cm->m);
    /* A control message holds one reference, dropped by the last worker
     * to leave its barrier; other messages one per reservation. */
    if (control && nres)
        atomic_fetch_add(&cm->refs, 1);
    for (size_t i = 0; i < nres; i++) {
        if (!control)
            atomic_fetch_add(&cm->refs, 1);
        channel_push_reserved(res[i].ch, cm);
    }
    /* Drop emit's guard: if nothing took the message it is done now. */
    cmsg_release(cm);
    return FERRY_OK;

too_many:
    log_write(FERRY_LOG_ERROR, src->label,
              "message fans out to more than %d channels", MAX_TARGETS * 4);
    rc = FERRY_EINVAL;
refuse:
    unreserve(res, nres);
    if (cm->barrier) {
        pthread_mutex_destroy(&cm->barrier->lock);
        pthread_cond_destroy(&cm->barrier->cond);
        free(cm->barrier);
        cm->barrier = NULL;
    }
    return rc;
}

/* The source whose emit lock this thread holds, if any. */
static __thread struct ferry_ctx *tl_emitting;

int sched_emit(struct ferry_ctx *src, const struct ferry_msg *msg, int wait,
               uint64_t timeout_ms)
{
    struct pipeline *pl = src->pl;

    if (!msg || msg->struct_size < MSG_MIN_SIZE || !msg->entity_type ||
        !msg->entity_type[0] || (msg->nkeys && !msg->keys) ||
        (msg->payload_len && !msg->payload))
        return FERRY_EINVAL;
    if (src->kind != FERRY_KIND_SOURCE)
        return FERRY_EINVAL;
    if (atomic_load(&pl->stopping))
        return FERRY_CLOSED;

    struct cmsg *cm = cmsg_new(src, msg);
    if (!cm)
        return FERRY_ENOMEM;

    uint64_t deadline = wait && timeout_ms
                            ? clock_now_ns() + timeout_ms * 1000000ull
                            : 0;
    int rc;

    pthread_mutex_lock(&src->emit_lock);
    tl_emitting = src;
    for (;;) {
        /* Set before the attempt: a worker that makes room after a refused
         * reservation but before we wait must find the flag, or its
         * on_room callback sees nobody waiting and the wakeup is lost. */
        atomic_store(&src->waiting_room, 1);
        rc = try_admit(src, cm);
        if (rc != FERRY_WOULD_BLOCK)
            break;
        atomic_store(&src->waiting_room, 1);
        if (!wait)
            break;
        if (atomic_load(&pl->stopping)) {
            rc = FERRY_CLOSED;
            break;
        }
        uint64_t now = clock_now_ns();
        if (deadline && now >= deadline) {
            rc = FERRY_TIMEDOUT;
            break;
        }
        /* Wake at least every 100 ms to notice a stop. */
        uint64_t until = now + 100000000ull;
        if (deadline && deadline < until)
            until = deadline;
        struct timespec ts = clock_ts(until);
        pthread_cond_timedwait(&src->room, &src->emit_lock, &ts);
    }
    tl_emitting = NULL;
    pthread_mutex_unlock(&src->emit_lock);
    if (rc != FERRY_OK)
        cmsg_free(cm);
    return rc;
}

/* channel_on_room callback: a worker made room in a channel that refused
 * this source. */
static void source_on_room(void *arg)
{
    struct ferry_ctx *src = arg;

    /* The emitting thread itself made room (unreserve, drop_oldest) while
     * holding the emit lock: it is not waiting, and must not relock. */
    if (tl_emitting == src)
        return;
    if (!atomic_exchange(&src->waiting_room, 0))
        return;
    pthread_mutex_lock(&src->emit_lock);
    pthread_cond_broadcast(&src->room);
    pthread_mutex_unlock(&src->emit_lock);
    if (src->desc->wakeup && src->state)
        src->desc->wakeup(src->state);
}

/* ---- workers ------------------------------------------------------------ */

static void sleep_until(struct pipeline *pl, uint64_t until_ns)
{
    for (;;) {
        uint64_t now = clock_now_ns();
        uint64_t abort_at = atomic_load(&pl->abort_at_ns);
        if (now >= until_ns || (abort_at && now >= abort_at))
            return;
        uint64_t d = until_ns - now;
        if (d > 50000000ull)
            d = 50000000ull;
        struct timespec ts = {(time_t)(d / 1000000000ull),
                              (long)(d % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

static int past_abort(struct pipeline *pl)
{
    uint64_t abort_at = atomic_load(&pl->abort_at_ns);
    return abort_at && clock_now_ns() >= abort_at;
}

/* A position for logs: "<ms>-<seq>", or "-" when there is none. */
static void format_pos(const struct ferry_pos *p, char *buf, size_t len)
{
    if (p->set)
        ferry_pos_format(p, buf, len);
    else
        snprintf(buf, len, "-");
}

static void log_failed(struct route *r, const struct ferry_msg *m,
                       const char *why)
{
    char pos[FERRY_POS_STRLEN];

    format_pos(&m->pos, pos, sizeof(pos));
    log_write(FERRY_LOG_ERROR, r->sink->label,
              "route %s: %s %s '%s' at stream position %s not applied: %s",
              r->name, ferry_op_name(m->op), m->entity_type, m->entity_id, pos,
              why);
}

/*
 * Applies msgs[0..n) through the route's policies and sink, retrying with
 * backoff while the sink answers FERRY_RETRY or a policy holds the batch.
 * Returns 0 when the batch reached a verdict, -1 when it was abandoned at
 * the drain deadline.
 */
static int deliver(struct worker *w, struct cmsg **msgs, size_t n)
{
    struct route *r = w->route;
    struct pipeline *pl = r->pl;
    struct ferry_ctx *sink = r->sink;
    int results_buf[256];
    int *results = n <= 256 ? results_buf : malloc(n * sizeof(int));
    struct ferry_batch batch = {
        .count = (uint32_t)n,
        .msgs = (const struct ferry_msg *const *)msgs,
        .results = results,
        .route = r->name,
    };
    struct ferry_write_event ev = {
        .route = r->name,
        .sink = sink->name,
        .worker = w->index,
        .count = (uint32_t)n,
    };
    uint64_t backoff_ms = 50;
    unsigned attempt = 0;
    int rc = FERRY_ERROR;

    if (!results)
        abort();
    /* open() never succeeded (the worker gave up at shutdown): nothing
     * may be written without a context; keep it behind the cursor. */
    if (sink->desc->open && !w->wctx)
        goto abandon;
    for (;;) {
        uint64_t retry_at = 0;
        int held = 0;

        if (past_abort(pl))
            goto abandon;

        ev.now_ns = clock_now_ns();
        for (size_t i = 0; i < r->npolicies && !held; i++) {
            struct ferry_ctx *p = r->policies[i];
            if (p->desc->before_write &&
                p->desc->before_write(p->state, &ev, &retry_at) ==
                    FERRY_WOULD_BLOCK)
                held = 1;
        }
        if (held) {
            if (past_abort(pl))
                goto abandon;
            uint64_t now = clock_now_ns();
            /* Ask again at retry_at, but at least every second (a stop
             * or a policy change is noticed) and not in a busy loop. */
            if (retry_at > now + 1000000000ull)
                retry_at = now + 1000000000ull;
            if (retry_at <= now)
                retry_at = now + 10000000ull;
            sleep_until(pl, retry_at);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            results[i] = FERRY_OK;
        if (sink->desc->checkpoint) {
            uint64_t seqs[256];
            size_t ns = 0;
            /* Only messages this batch completes: no other route (and not
             * emit's guard) still holds them. A fanned-out message another
             * route has not applied yet would make the commit lead; so
             * would a barrier, done only when every sink has it. */
            for (size_t i = 0; i < n && ns < 256; i++)
                if (atomic_load(&msgs[i]->refs) == 1 &&
                    !atomic_load(&msgs[i]->abandoned) && !is_control(msgs[i]))
                    seqs[ns++] = msgs[i]->m.seq;
            /* Batches larger than 256 only preview their first 256: the
             * commit may then lag, never lead. */
            batch.commit = tracker_preview(&r->source->tracker, seqs, ns);
        }
        rc = sink->desc->write(w->wctx, &batch);
        ev.now_ns = clock_now_ns();
        for (size_t i = 0; i < r->npolicies; i++) {
            struct ferry_ctx *p = r->policies[i];
            if (p->desc->after_write)
                p->desc->after_write(p->state, &ev, rc);
        }
        if (rc == FERRY_OK) {
            metrics_add(r->m_batch_ok, 1);
            break;
        }
        if (rc == FERRY_RETRY) {
            metrics_add(r->m_batch_retry, 1);
            attempt++;
            if (attempt == 1 || attempt % 20 == 0)
                log_write(FERRY_LOG_WARN, sink->label,
                          "route %s worker %u: batch of %zu will be retried "
                          "(attempt %u, next in %llums); nothing is dropped",
                          r->name, w->index, n, attempt,
                          (unsigned long long)backoff_ms);
            if (past_abort(pl))
                goto abandon;
            /* Up to 25% jitter so workers do not retry in lockstep. */
            uint64_t jitter = (uint64_t)rand() % (backoff_ms / 4 + 1);
            sleep_until(pl, clock_now_ns() +
                                (backoff_ms + jitter) * 1000000ull);
            if (backoff_ms < 5000)
                backoff_ms *= 2;
            if (backoff_ms > 5000)
                backoff_ms = 5000;
            continue;
        }
        metrics_add(r->m_batch_error, 1);
        for (size_t i = 0; i < n; i++)
            results[i] = FERRY_ERROR;
        break;
    }
    if (attempt)
        log_write(FERRY_LOG_INFO, sink->label,
                  "route %s worker %u: batch applied after %u retries",
                  r->name, w->index, attempt);

    uint64_t now = clock_now_ns();
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (results[i] == FERRY_OK) {
            ok++;
            if (msgs[i]->m.recv_ns && now > msgs[i]->m.recv_ns)
                metrics_observe(r->m_latency,
                                (double)(now - msgs[i]->m.recv_ns) / 1e9);
        } else {
            log_failed(r, &msgs[i]->m,
                       rc == FERRY_OK ? "rejected by the sink"
                                      : "the sink failed the batch");
        }
    }
    metrics_add(r->m_applied, (double)ok);
    if (ok < n)
        metrics_add(r->m_failed, (double)(n - ok));
    if (results != results_buf)
        free(results);
    return 0;

abandon:
    for (size_t i = 0; i < n; i++)
        atomic_store(&msgs[i]->abandoned, 1);
    w->abandoned += n;
    if (results != results_buf)
        free(results);
    return -1;
}

static void worker_barrier(struct worker *w, struct cmsg *cm)
{
    struct cbarrier *b = cm->barrier;
    int last_out;

    pthread_mutex_lock(&b->lock);
    if (++b->arrived == b->total)
        pthread_cond_broadcast(&b->cond);
    while (b->arrived < b->total)
        pthread_cond_wait(&b->cond, &b->lock);
    if (w->index == 0 && w->route->delivers_control) {
        pthread_mutex_unlock(&b->lock);
        deliver(w, &cm, 1);
        pthread_mutex_lock(&b->lock);
        b->delivered++;
        pthread_cond_broadcast(&b->cond);
    }
    while (b->delivered < b->sinks)
        pthread_cond_wait(&b->cond, &b->lock);
    last_out = --b->left == 0;
    pthread_mutex_unlock(&b->lock);
    if (last_out)
        cmsg_release(cm);
}

static void worker_checkpoint(struct worker *w, int force)
{
    struct route *r = w->route;
    struct ferry_pos pos;

    if (!r->sink->desc->checkpoint)
        return;
    sched_committed(r->source, &pos);
    if (!pos.set || ferry_pos_cmp(&pos, &w->last_checkpoint) == 0)
        return;
    uint64_t now = clock_now_ns();
    if (!force && now - w->last_checkpoint_ns < 5000000000ull)
        return;
    w->last_checkpoint_ns = now;
    if (r->sink->desc->checkpoint(w->wctx, &pos) == FERRY_OK)
        w->last_checkpoint = pos;
}

static void update_lag(struct route *r)
{
    struct ferry_pos pos;

    sched_committed(r->source, &pos);
    if (pos.set && r->source->m_lag) {
        double lag = (double)(clock_realtime_ms() - (int64_t)pos.ms) / 1e3;
        metrics_set(r->source->m_lag, lag < 0 ? 0 : lag);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct route *r = w->route;
    struct ferry_ctx *sink = r->sink;
    size_t cap = r->batch_size;
    struct cmsg **q = calloc(cap, sizeof(*q));
    size_t qlen = 0;

    if (!q)
        abort();
    /* A sink without open() gets its instance state as worker context. */
    w->wctx = sink->state;
    if (sink->desc->open) {
        int rc;
        while ((rc = sink->desc->open(sink->state, w->index, &w->wctx)) !=
               FERRY_OK) {
            log_write(FERRY_LOG_ERROR, sink->label,
                      "route %s worker %u: open failed (%s); retrying",
                      r->name, w->index, ferry_status_str(rc));
            sleep_until(r->pl, clock_now_ns() + 1000000000ull);
            if (past_abort(r->pl) || channel_is_closed(w->ch)) {
                w->wctx = NULL;
                break;
            }
        }
    }

    for (;;) {
        if (qlen == 0) {
            size_t got = channel_pop_many(w->ch, (void **)q, cap,
                                          clock_now_ns() + 200000000ull);
            if (got == 0) {
                if (channel_is_closed(w->ch) && channel_depth(w->ch) == 0)
                    break;
                if (w->index == 0)
                    worker_checkpoint(w, 0);
                continue;
            }
            qlen = got;
        }
        uint64_t first_ns = clock_now_ns();
        uint64_t until = first_ns + r->batch_timeout_ms * 1000000ull;
        size_t k;

        /* Fill up to batch_size or batch_timeout, stopping at a barrier. */
        for (;;) {
            for (k = 0; k < qlen && !is_control(q[k]); k++)
                ;
            if (k < qlen || qlen == cap)
                break;
            if (clock_now_ns() >= until)
                break;
            size_t got = channel_pop_batch(w->ch, (void **)q + qlen,
                                           cap - qlen, until);
            if (got == 0 && channel_is_closed(w->ch))
                break;
            qlen += got;
        }
        if (k > 0) {
            deliver(w, q, k);
            for (size_t i = 0; i < k; i++)
                cmsg_release(q[i]);
        } else {
            worker_barrier(w, q[0]);
            k = 1;
        }
        memmove(q, q + k, (qlen - k) * sizeof(*q));
        qlen -= k;
        if (w->index == 0) {
            update_lag(r);
            worker_checkpoint(w, 0);
        }
    }

    if (w->abandoned)
        log_write(FERRY_LOG_ERROR, sink->label,
                  "route %s worker %u: shutdown_timeout reached; %zu "
                  "messages not applied (they stay behind the replay cursor "
                  "and are replayed on the next start)",
                  r->name, w->index, w->abandoned);
    /* Wait until every worker of every route of this source has drained,
     * so the final position is the one after the whole drain. */
    struct pipeline *pl = r->pl;
    pthread_mutex_lock(&pl->lock);
    if (--r->source->drain_left == 0)
        pthread_cond_broadcast(&pl->cond);
    while (r->source->drain_left > 0)
        pthread_cond_wait(&pl->cond, &pl->lock);
    pthread_mutex_unlock(&pl->lock);
    /* The last worker of the route persists the final position. */
    if (atomic_fetch_sub(&r->workers_left, 1) == 1 && w->wctx)
        worker_checkpoint(w, 1);
    if (sink->desc->open && sink->desc->close && w->wctx)
        sink->desc->close(w->wctx);
    w->wctx = NULL;
    free(q);
    return NULL;
}

/* ---- sources ------------------------------------------------------------ */

static void *source_main(void *arg)
{
    struct ferry_ctx *src = arg;
    struct pipeline *pl = src->pl;
    int rc = src->desc->run(src->state);

    if (rc != FERRY_OK && !atomic_load(&pl->stopping)) {
        log_write(FERRY_LOG_ERROR, src->label, "source failed: %s",
                  ferry_status_str(rc));
        pipeline_request_stop(pl, 1, "a source failed");
    } else if (!atomic_load(&pl->stopping)) {
        log_write(FERRY_LOG_INFO, src->label, "source finished");
    }
    atomic_store(&src->finished, 1);
    pthread_mutex_lock(&pl->lock);
    pl->sources_running--;
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* ---- building ----------------------------------------------------------- */

static const char *const log_levels[] = {"debug", "info", "warn", "error",
                                         NULL};
static const char *const log_formats[] = {"text", "json", NULL};

const struct ferry_option sched_ferry_options[] = {
    {"plugin_dir", FERRY_OPT_STRING, NULL, 0, 0, NULL, 0,
     "where plugins (*.so) are found; relative to the configuration file; "
     "default $FERRY_PLUGIN_DIR or the installed plugin folder"},
    {"log_level", FERRY_OPT_ENUM, "info", 0, 0, log_levels, 0,
     "debug, info, warn or error"},
    {"log_format", FERRY_OPT_ENUM, "text", 0, 0, log_formats, 0,
     "text, or json (one object per line)"},
    {"http_listen", FERRY_OPT_STRING, "127.0.0.1:8090", 0, 0, NULL, 0,
     "health, readiness and metrics endpoint (host:port); empty disables"},
    {"metrics_interval", FERRY_OPT_DURATION, "30s", 0, 86400000.0, NULL, 0,
     "a summary log line every interval; 0 disables"},
    {"shutdown_timeout", FERRY_OPT_DURATION, "30s", 0, 3600000.0, NULL, 0,
     "drain limit on SIGTERM"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

const struct ferry_option sched_route_options[] = {
    {"from", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_REQUIRED,
     "source instance name"},
    {"match", FERRY_OPT_LIST, "*", 0, 0, NULL, 0,
     "entity types sent down this route, e.g. company or user, flags"},
    {"to", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_REQUIRED,
     "sink instance name"},
    {"policies", FERRY_OPT_LIST, "", 0, 0, NULL, 0,
     "policy instance names, applied in order"},
    {"channel_size", FERRY_OPT_INT, "1000", 1, 10000000, NULL, 0,
     "bounded channel capacity in messages (split between workers)"},
    {"workers", FERRY_OPT_INT, "8", 1, 256, NULL, 0,
     "workers draining this route"},
    {"batch_size", FERRY_OPT_INT, "10", 1, 100000, NULL, 0,
     "messages per sink batch"},
    {"batch_timeout", FERRY_OPT_DURATION, "25ms", 0, 3600000.0, NULL, 0,
     "longest wait to fill a batch"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

static struct ferry_ctx *find_instance(struct pipeline *pl, int kind,
                                       const char *name)
{
    for (size_t i = 0; i < pl->ninstances; i++)
        if (pl->instances[i]->kind == kind &&
            strcmp(pl->instances[i]->name, name) == 0)
            return pl->instances[i];
    return NULL;
}

/* "FILE:LINE: [section] " for an entry, or the section's own line. */
static void where(char *buf, size_t len, const struct config_section *s,
                  const char *key)
{
    const struct config_entry *e = key ? config_entry(s, key) : NULL;

    snprintf(buf, len, "%s:%d: [%s]", e ? e->file : s->file,
             e ? e->line : s->line, s->name);
}

static int ref_error(struct pipeline *pl, const struct config_section *s,
                     const char *key, int kind, const char *name, char *err,
                     size_t errlen)
{
    char at[512];
    const char *cands[256];
    size_t n = 0;

    for (size_t i = 0; i < pl->ninstances && n < 255; i++)
        if (pl->instances[i]->kind == kind)
            cands[n++] = pl->instances[i]->name;
    cands[n] = NULL;
    const char *hint = config_suggest(name, cands);
    where(at, sizeof(at), s, key);
    if (hint)
        snprintf(err, errlen, "%s %s: no %s named '%s' (did you mean '%s'?)",
                 at, key, loader_kind_name(kind), name, hint);
    else
        snprintf(err, errlen, "%s %s: no %s named '%s'", at, key,
                 loader_kind_name(kind), name);
    return -1;
}

static char *resolve_dir(const char *cfg_path, const char *dir)
{
    if (dir[0] == '/')
        return xstrdup(dir);
    const char *slash = strrchr(cfg_path, '/');
    if (!slash)
        return xstrdup(dir);
    size_t n = (size_t)(slash - cfg_path);
    char *out = malloc(n + strlen(dir) + 2);
    if (!out)
        abort();
    memcpy(out, cfg_path, n);
    out[n] = '/';
    strcpy(out + n + 1, dir);
    return out;
}

static struct ferry_ctx *instance_new(struct pipeline *pl,
                                      const struct config_section *s,
                                      int kind, char *err, size_t errlen)
{
    char at[512];
    char lerr[768];
    static const char *const extra[] = {"plugin", NULL};
    const struct config_entry *pe = config_entry(s, "plugin");

    if (!pe || !pe->value[0]) {
        snprintf(err, errlen, "%s:%d: [%s] missing required key 'plugin'",
                 s->file, s->line, s->name);
        return NULL;
    }
    struct plugin *p =
        plugin_set_get(pl->plugins, kind, pe->value, lerr, sizeof(lerr));
    if (!p) {
        where(at, sizeof(at), s, "plugin");
        snprintf(err, errlen, "%s %s", at, lerr);
        return NULL;
    }
    struct optset *o = optset_new(s, s->name, p->desc.options, extra, err,
                                  errlen);
    if (!o)
        return NULL;

    struct ferry_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->kind = kind;
    c->name = xstrdup(s->inst);
    c->label = xstrdup(s->name);
    c->plugin = p;
    c->desc = &p->desc;
    c->opts = o;
    c->pl = pl;
    pthread_mutex_init(&c->emit_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->room, &ca);
    pthread_condattr_destroy(&ca);
    tracker_init(&c->tracker);
    if (kind == FERRY_KIND_SOURCE) {
        const char *labels[] = {"source", c->name, NULL};
        c->m_unrouted = metrics_get(
            FERRY_METRIC_COUNTER, "ferry_source_unrouted_total",
            "Messages no route matched (counted, not delivered).", labels);
        c->m_lag = metrics_get(
            FERRY_METRIC_GAUGE, "ferry_replication_lag_seconds",
            "Now minus the stream time of the last applied message.",
            labels);
    }
    return c;
}

static void instance_free(struct ferry_ctx *c)
{
    if (!c)
        return;
    if (c->inited && c->desc->fini)
        c->desc->fini(c->state);
    optset_free(c->opts);
    tracker_release(&c->tracker);
    pthread_mutex_destroy(&c->emit_lock);
    pthread_cond_destroy(&c->room);
    free(c->routes);
    free(c->name);
    free(c->label);
    free(c);
}

static double route_depth(void *arg)
{
    struct route *r = arg;
    size_t d = 0;
    for (unsigned i = 0; i < r->nworkers; i++)
        d += channel_depth(r->workers[i].ch);
    return (double)d;
}

static double route_capacity(void *arg)
{
    struct route *r = arg;
    size_t d = 0;
    for (unsigned i = 0; i < r->nworkers; i++)
        d += channel_capacity(r->workers[i].ch);
    return (double)d;
}

static char **list_dup(const char *const *items, size_t n)
{
    char **out = calloc(n + 1, sizeof(*out));
    if (!out)
        abort();
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(items[i]);
    return out;
}

static void list_free(char **l)
{
    if (!l)
        return;
    for (char **p = l; *p; p++)
        free(*p);
    free(l);
}

static struct route *route_new(struct pipeline *pl,
                               const struct config_section *s, char *err,
                               size_t errlen)
{
    struct optset *o = optset_new(s, s->name, sched_route_options, NULL, err,
                                  errlen);
    if (!o)
        return NULL;

    struct route *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->name = xstrdup(s->inst);
    r->pl = pl;
    const char *from = optset_str(o, "from");
    const char *to = optset_str(o, "to");
    r->source = find_instance(pl, FERRY_KIND_SOURCE, from);
    if (!r->source) {
        ref_error(pl, s, "from", FERRY_KIND_SOURCE, from, err, errlen);
        goto fail;
    }
    r->sink = find_instance(pl, FERRY_KIND_SINK, to);
    if (!r->sink) {
        ref_error(pl, s, "to", FERRY_KIND_SINK, to, err, errlen);
        goto fail;
    }
    const char *const *items;
    size_t n = optset_list(o, "policies", &items);
    r->policies = calloc(n + 1, sizeof(*r->policies));
    if (!r->policies)
        abort();
    for (size_t i = 0; i < n; i++) {
        r->policies[i] = find_instance(pl, FERRY_KIND_POLICY, items[i]);
        if (!r->policies[i]) {
            ref_error(pl, s, "policies", FERRY_KIND_POLICY, items[i], err,
                      errlen);
            goto fail;
        }
    }
    r->npolicies = n;
    for (size_t i = 0; i < n; i++)
        if (r->policies[i]->desc->admit)
            r->has_admit = 1;
    n = optset_list(o, "match", &items);
    int all = n == 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i], "*") == 0)
            all = 1;
    r->match = all ? NULL : list_dup(items, n);
    r->nworkers = (unsigned)optset_int(o, "workers");
    r->channel_size = (size_t)optset_int(o, "channel_size");
    r->batch_size = (size_t)optset_int(o, "batch_size");
    r->batch_timeout_ms = optset_duration_ms(o, "batch_timeout");
    optset_free(o);
    o = NULL;

    r->workers = calloc(r->nworkers, sizeof(*r->workers));
    if (!r->workers)
        abort();
    size_t per = (r->channel_size + r->nworkers - 1) / r->nworkers;
    /* A barrier needs one slot in each worker's channel besides data. */
    if (per < 1)
        per = 1;
    for (unsigned i = 0; i < r->nworkers; i++) {
        r->workers[i].route = r;
        r->workers[i].index = i;
        r->workers[i].ch = channel_new(per);
        if (!r->workers[i].ch)
            abort();
        channel_on_room(r->workers[i].ch, source_on_room, r->source);
    }
    atomic_init(&r->workers_left, (int)r->nworkers);

    const char *rl[] = {"route", r->name, NULL};
    r->m_applied = metrics_get(FERRY_METRIC_COUNTER,
                               "ferry_messages_applied_total",
                               "Messages a sink applied.", rl);
    r->m_failed = metrics_get(FERRY_METRIC_COUNTER,
                              "ferry_messages_failed_total",
                              "Messages a sink rejected or failed (logged "
                              "with their stream position).",
                              rl);
    r->m_latency = metrics_get(FERRY_METRIC_HISTOGRAM,
                               "ferry_apply_latency_seconds",
                               "Receive to applied, per message.", rl);
    r->m_coalesced = metrics_get(FERRY_METRIC_COUNTER,
                                 "ferry_messages_coalesced_total",
                                 "Queued messages replaced by a newer one "
                                 "for the same entity.",
                                 rl);
    const char *dn[] = {"route", r->name, "reason", "drop_newest", NULL};
    const char *dol[] = {"route", r->name, "reason", "drop_oldest", NULL};
    r->m_dropped_newest = metrics_get(
        FERRY_METRIC_COUNTER, "ferry_messages_dropped_total",
        "Messages dropped by a backpressure policy.", dn);
    r->m_dropped_oldest = metrics_get(
        FERRY_METRIC_COUNTER, "ferry_messages_dropped_total",
        "Messages dropped by a backpressure policy.", dol);
    const char *bok[] = {"sink", r->sink->name, "result", "ok", NULL};
    const char *bre[] = {"sink", r->sink->name, "result", "retry", NULL};
    const char *ber[] = {"sink", r->sink->name, "result", "error", NULL};
    r->m_batch_ok = metrics_get(FERRY_METRIC_COUNTER,
                                "ferry_sink_batches_total",
                                "Sink batches by verdict.", bok);
    r->m_batch_retry = metrics_get(FERRY_METRIC_COUNTER,
                                   "ferry_sink_batches_total",
                                   "Sink batches by verdict.", bre);
    r->m_batch_error = metrics_get(FERRY_METRIC_COUNTER,
                                   "ferry_sink_batches_total",
                                   "Sink batches by verdict.", ber);
    return r;

fail:
    optset_free(o);
    free(r->policies);
    free(r->name);
    free(r);
    return NULL;
}

static void route_free(struct route *r)
{
    if (!r)
        return;
    metrics_forget(r);
    for (unsigned i = 0; r->workers && i < r->nworkers; i++)
        channel_free(r->workers[i].ch, cmsg_release_item);
    free(r->workers);
    free(r->policies);
    list_free(r->match);
    free(r->name);
    free(r);
}

static void add_instance(struct pipeline *pl, struct ferry_ctx *c)
{
    struct ferry_ctx **n =
        realloc(pl->instances, (pl->ninstances + 1) * sizeof(*n));
    if (!n)
        abort();
    pl->instances = n;
    pl->instances[pl->ninstances++] = c;
}

struct pipeline *pipeline_new(struct config *cfg, const char *plugin_dir,
                              char *err, size_t errlen)
{
    struct pipeline *pl = calloc(1, sizeof(*pl));
    if (!pl)
        abort();
    pl->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    pthread_mutex_init(&pl->lock, NULL);
    pthread_cond_init(&pl->cond, NULL);

    const struct config_section *fs = config_section(&pl->cfg, "ferry");
    pl->ferry_opts =
        optset_new(fs, "ferry", sched_ferry_options, NULL, err, errlen);
    if (!pl->ferry_opts)
        goto fail;
    struct ferry_settings *st = &pl->settings;
    st->log_level = log_level_parse(optset_str(pl->ferry_opts, "log_level"));
    st->log_format = optset_str(pl->ferry_opts, "log_format");
    st->http_listen = optset_str(pl->ferry_opts, "http_listen");
    if (!st->http_listen)
        st->http_listen = "";
    if (st->http_listen[0]) {
        char why[256];
        if (http_listen_check(st->http_listen, why, sizeof(why)) != 0) {
            char at[512];
            where(at, sizeof(at), fs, "http_listen");
            snprintf(err, errlen, "%s %s", at, why);
            goto fail;
        }
    }
    st->metrics_interval_ms =
        optset_duration_ms(pl->ferry_opts, "metrics_interval");
    st->shutdown_timeout_ms =
        optset_duration_ms(pl->ferry_opts, "shutdown_timeout");

    char *dir;
    const char *cfg_dir = optset_str(pl->ferry_opts, "plugin_dir");
    if (plugin_dir)
        dir = xstrdup(plugin_dir);
    else if (cfg_dir && cfg_dir[0])
        dir = resolve_dir(pl->cfg.path, cfg_dir);
    else if (getenv("FERRY_PLUGIN_DIR"))
        dir = xstrdup(getenv("FERRY_PLUGIN_DIR"));
    else
        dir = xstrdup(FERRY_PLUGIN_DIR);
    pl->plugins = plugin_set_new(dir);
    free(dir);
    if (!pl->plugins)
        abort();

    /* Instances: sinks first (they start first), then sources, policies. */
    static const int order[] = {FERRY_KIND_SINK, FERRY_KIND_SOURCE,
                                FERRY_KIND_POLICY};
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < pl->cfg.count; i++) {
            const struct config_section *s = &pl->cfg.sections[i];
            if (loader_kind_parse(s->kind) != order[k])
                continue;
            struct ferry_ctx *c =
                instance_new(pl, s, order[k], err, errlen);
            if (!c)
                goto fail;
            add_instance(pl, c);
        }
    }

    for (size_t i = 0; i < pl->cfg.count; i++) {
        const struct config_section *s = &pl->cfg.sections[i];
        if (strcmp(s->kind, "route") != 0)
            continue;
        struct route *r = route_new(pl, s, err, errlen);
        if (!r)
            goto fail;
        struct route **nr =
            realloc(pl->routes, (pl->nroutes + 1) * sizeof(*nr));
        if (!nr)
            abort();
        pl->routes = nr;
        pl->routes[pl->nroutes++] = r;
        struct ferry_ctx *src = r->source;
        struct route **sr =
            realloc(src->routes, (src->nroutes + 1) * sizeof(*sr));
        if (!sr)
            abort();
        src->routes = sr;
        /* The first route of this source into a sink hands that sink
         * the source's control messages. */
        r->delivers_control = 1;
        for (size_t k = 0; k < src->nroutes; k++)
            if (src->routes[k]->sink == r->sink)
                r->delivers_control = 0;
        src->routes[src->nroutes++] = r;
    }
    if (pl->nroutes == 0) {
        snprintf(err, errlen, "%s: no [route.NAME] section: nothing to run",
                 pl->cfg.path);
        goto fail;
    }
    /* A barrier takes a reservation in every worker channel of every
     * route of its source, from try_admit()'s fixed table. */
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        size_t nw = 0;
        for (size_t k = 0; k < c->nroutes; k++)
            nw += c->routes[k]->nworkers;
        if (nw > MAX_TARGETS * 4) {
            char at[512];
            where(at, sizeof(at), config_section(&pl->cfg, c->label), NULL);
            snprintf(err, errlen,
                     "%s routes from this source have %zu workers in all; "
                     "at most %d",
                     at, nw, MAX_TARGETS * 4);
            goto fail;
        }
    }
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        int used = 0;
        for (size_t j = 0; j < pl->nroutes; j++) {
            struct route *r = pl->routes[j];
            if (r->source == c || r->sink == c)
                used = 1;
            for (size_t k = 0; k < r->npolicies; k++)
                if (r->policies[k] == c)
                    used = 1;
        }
        if (!used)
            log_write(FERRY_LOG_WARN, c->label, "not used by any route");
    }

    /* init() every instance, sinks first. */
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        int rc = c->desc->init(&host_table, c, &c->state);
        if (rc != FERRY_OK) {
            const struct config_section *s =
                config_section(&pl->cfg, c->label);
            snprintf(err, errlen, "%s:%d: [%s] init failed: %s (see the log "
                     "above)",
                     s ? s->file : "?", s ? s->line : 0, c->label,
                     ferry_status_str(rc));
            goto fail;
        }
        c->inited = 1;
    }
    return pl;

fail:
    pipeline_free(pl);
    return NULL;
}

void pipeline_print(struct pipeline *pl, FILE *out)
{
    fprintf(out, "[ferry]\n");
    optset_print(pl->ferry_opts, out);
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        fprintf(out, "\n[%s]\nplugin = %s\n", c->label, c->desc->hdr.name);
        optset_print(c->opts, out);
    }
    for (size_t i = 0; i < pl->cfg.count; i++) {
        const struct config_section *s = &pl->cfg.sections[i];
        if (strcmp(s->kind, "route") != 0)
            continue;
        char err[256];
        struct optset *o = optset_new(s, s->name, sched_route_options, NULL,
                                      err, sizeof(err));
        if (!o)
            continue;
        fprintf(out, "\n[%s]\n", s->name);
        optset_print(o, out);
        optset_free(o);
    }
}

/* ---- running ------------------------------------------------------------ */

void pipeline_request_stop(struct pipeline *pl, int exit_code,
                           const char *reason)
{
    pthread_mutex_lock(&pl->lock);
    if (!pl->stop_requested) {
        pl->stop_requested = 1;
        pl->exit_code = exit_code;
        if (reason)
            log_write(exit_code ? FERRY_LOG_ERROR : FERRY_LOG_INFO, NULL,
                      "stopping: %s", reason);
        /* Interrupt sinks still blocked in start() (standby). */
        for (size_t i = 0; i < pl->ninstances; i++) {
            struct ferry_ctx *c = pl->instances[i];
            if (c->kind == FERRY_KIND_SINK && c->inited && !c->started &&
                c->desc->stop) {
                c->stop_sent = 1;
                c->desc->stop(c->state);
            }
        }
    } else if (exit_code > pl->exit_code) {
        pl->exit_code = exit_code;
    }
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
}

static int stop_requested(struct pipeline *pl)
{
    pthread_mutex_lock(&pl->lock);
    int r = pl->stop_requested;
    pthread_mutex_unlock(&pl->lock);
    return r;
}

/* The replay position for a source: the oldest position its sinks
 * recorded; none when any sink that records positions has none. */
static void load_positions(struct pipeline *pl, struct ferry_ctx *src)
{
    struct ferry_pos best = {0, 0, 0};
    int any = 0;

    for (size_t i = 0; i < src->nroutes; i++) {
        struct ferry_ctx *sink = src->routes[i]->sink;
        struct ferry_pos p;
        if (!sink->desc->load_position)
            continue;
        if (sink->desc->load_position(sink->state, &p) != FERRY_OK ||
            !p.set) {
            log_write(FERRY_LOG_INFO, src->label,
                      "no replay position in %s: starting from a full load",
                      sink->label);
            struct ferry_pos none = {0, 0, 0};
            tracker_set_committed(&src->tracker, &none);
            return;
        }
        if (!any || ferry_pos_cmp(&p, &best) < 0)
            best = p;
        any = 1;
    }
    if (any) {
        char buf[FERRY_POS_STRLEN];
        format_pos(&best, buf, sizeof(buf));
        log_write(FERRY_LOG_INFO, src->label, "resuming from position %s",
                  buf);
        tracker_set_committed(&src->tracker, &best);
    }
}

int pipeline_start(struct pipeline *pl)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SINK || !c->desc->start) {
            c->started = 1;
            continue;
        }
        int rc = c->desc->start(c->state);
        pthread_mutex_lock(&pl->lock);
        c->started = 1;
        pthread_mutex_unlock(&pl->lock);
        if (rc == FERRY_CLOSED || stop_requested(pl))
            return -1;
        if (rc != FERRY_OK) {
            log_write(FERRY_LOG_ERROR, c->label, "start failed: %s",
                      ferry_status_str(rc));
            pipeline_request_stop(pl, 1, "a sink could not start");
            return -1;
        }
    }
    for (size_t i = 0; i < pl->ninstances; i++)
        if (pl->instances[i]->kind == FERRY_KIND_SOURCE)
            load_positions(pl, pl->instances[i]);

    for (size_t i = 0; i < pl->nroutes; i++) {
        struct route *r = pl->routes[i];
        /* Registered here, not in pipeline_new(): a pipeline that is
         * built but refused (a failed reload) must not take over the
         * running pipeline's series, which route_free() then forgets. */
        const char *rl[] = {"route", r->name, NULL};
        metrics_gauge_fn("ferry_channel_depth", "Messages queued in a route.",
                         rl, route_depth, r);
        metrics_gauge_fn("ferry_channel_capacity",
                         "Capacity of a route's channels.", rl,
                         route_capacity, r);
        for (unsigned w = 0; w < r->nworkers; w++) {
            /* Workers exit only after the channels close in
             * pipeline_shutdown(), so the count is complete by then. */
            pthread_mutex_lock(&pl->lock);
            r->source->drain_left++;
            pthread_mutex_unlock(&pl->lock);
            if (pthread_create(&r->workers[w].thread, NULL, worker_main,
                               &r->workers[w]) != 0) {
                pthread_mutex_lock(&pl->lock);
                r->source->drain_left--;
                pthread_mutex_unlock(&pl->lock);
                log_write(FERRY_LOG_ERROR, NULL, "cannot start a worker: %s",
                          strerror(errno));
                pipeline_request_stop(pl, 1, "out of threads");
                return -1;
            }
            r->workers[w].thread_started = 1;
        }
    }
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        pthread_mutex_lock(&pl->lock);
        pl->sources_running++;
        pthread_mutex_unlock(&pl->lock);
        if (pthread_create(&c->thread, NULL, source_main, c) != 0) {
            pthread_mutex_lock(&pl->lock);
            pl->sources_running--;
            pthread_mutex_unlock(&pl->lock);
            log_write(FERRY_LOG_ERROR, c->label, "cannot start: %s",
                      strerror(errno));
            pipeline_request_stop(pl, 1, "out of threads");
            return -1;
        }
        c->thread_started = 1;
    }
    return 0;
}

void pipeline_request_reload(struct pipeline *pl)
{
    pthread_mutex_lock(&pl->lock);
    pl->reload_requested = 1;
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
}

int pipeline_wait(struct pipeline *pl)
{
    int reload = 0;

    pthread_mutex_lock(&pl->lock);
    while (!pl->stop_requested && !pl->reload_requested &&
           pl->sources_running > 0)
        pthread_cond_wait(&pl->cond, &pl->lock);
    if (!pl->stop_requested && pl->reload_requested) {
        pl->reload_requested = 0;
        reload = 1;
    } else if (!pl->stop_requested) {
        log_write(FERRY_LOG_INFO, NULL, "every source finished; draining");
    }
    pthread_mutex_unlock(&pl->lock);
    return reload;
}

void pipeline_inherit(struct pipeline *pl, struct pipeline *old)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        struct ferry_ctx *o = find_instance(old, FERRY_KIND_SOURCE, c->name);
        if (!o)
            continue;
        struct ferry_pos p = tracker_committed(&o->tracker);
        tracker_set_committed(&c->tracker, &p);
    }
}

int pipeline_probe(struct pipeline *pl, FILE *out)
{
    int failed = 0;

    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        char msg[512] = "";
        if (!c->desc->probe) {
            fprintf(out, "# [%s] connect: nothing to probe\n", c->label);
            continue;
        }
        int rc = c->desc->probe(c->state, msg, sizeof(msg));
        fprintf(out, "# [%s] connect: %s%s%s\n", c->label,
                rc == FERRY_OK ? "ok" : "FAILED", msg[0] ? ": " : "", msg);
        if (rc != FERRY_OK)
            failed++;
    }
    return failed;
}

int pipeline_shutdown(struct pipeline *pl)
{
    atomic_store(&pl->stopping, 1);
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind == FERRY_KIND_SOURCE && c->thread_started) {
            if (!atomic_load(&c->finished) && c->desc->stop)
                c->desc->stop(c->state);
            /* Wake a source blocked in emit_wait(). */
            pthread_mutex_lock(&c->emit_lock);
            pthread_cond_broadcast(&c->room);
            pthread_mutex_unlock(&c->emit_lock);
        }
    }
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind == FERRY_KIND_SOURCE && c->thread_started) {
            pthread_join(c->thread, NULL);
            c->thread_started = 0;
        }
    }

    atomic_store(&pl->abort_at_ns,
                 clock_now_ns() +
                     pl->settings.shutdown_timeout_ms * 1000000ull + 1);
    size_t queued = 0;
    for (size_t i = 0; i < pl->nroutes; i++)
        queued += (size_t)route_depth(pl->routes[i]);
    if (queued)
        log_write(FERRY_LOG_INFO, NULL,
                  "draining %zu queued messages (shutdown_timeout %llums)",
                  queued,
                  (unsigned long long)pl->settings.shutdown_timeout_ms);
    for (size_t i = 0; i < pl->nroutes; i++)
        for (unsigned w = 0; w < pl->routes[i]->nworkers; w++)
            channel_close(pl->routes[i]->workers[w].ch);
    for (size_t i = 0; i < pl->nroutes; i++) {
        struct route *r = pl->routes[i];
        for (unsigned w = 0; w < r->nworkers; w++) {
            if (r->workers[w].thread_started) {
                pthread_join(r->workers[w].thread, NULL);
                r->workers[w].thread_started = 0;
            }
        }
    }
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        /* stop() is called once: a stop request may have interrupted
         * start() with it already. */
        pthread_mutex_lock(&pl->lock);
        int call = c->kind == FERRY_KIND_SINK && c->started &&
                   c->desc->stop && !c->stop_sent;
        c->stop_sent |= call;
        pthread_mutex_unlock(&pl->lock);
        if (call)
            c->desc->stop(c->state);
    }
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        struct ferry_pos p;
        char buf[FERRY_POS_STRLEN];
        sched_committed(c, &p);
        format_pos(&p, buf, sizeof(buf));
        log_write(FERRY_LOG_INFO, c->label, "stopped at position %s", buf);
    }
    return pl->exit_code;
}

void pipeline_free(struct pipeline *pl)
{
    if (!pl)
        return;
    for (size_t i = 0; i < pl->nroutes; i++)
        route_free(pl->routes[i]);
    free(pl->routes);
    /* fini in reverse order: policies, sources, then sinks. */
    for (size_t i = pl->ninstances; i-- > 0;)
        instance_free(pl->instances[i]);
    free(pl->instances);
    plugin_set_free(pl->plugins);
    optset_free(pl->ferry_opts);
    config_release(&pl->cfg);
    pthread_mutex_destroy(&pl->lock);
    pthread_cond_destroy(&pl->cond);
    free(pl);
}

char *pipeline_debug_json(void *arg)
{
    struct pipeline *pl = arg;
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);

    if (!out)
        return NULL;
#define APPEND(...)                                                          \
    do {                                                                     \
        int n_ = snprintf(out + len, cap - len, __VA_ARGS__);                \
        if (n_ < 0)                                                          \
            break;                                                           \
        if ((size_t)n_ >= cap - len) {                                       \
            cap = (cap + (size_t)n_) * 2;                                    \
            char *t_ = realloc(out, cap);                                    \
            if (!t_) {                                                       \
                free(out);                                                   \
                return NULL;                                                 \
            }                                                                \
            out = t_;                                                        \
            snprintf(out + len, cap - len, __VA_ARGS__);                     \
        }                                                                    \
        len += (size_t)n_;                                                   \
    } while (0)

    APPEND("{\"replay\":{");
    int first = 1;
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        struct ferry_pos p;
        char buf[FERRY_POS_STRLEN];
        sched_committed(c, &p);
        format_pos(&p, buf, sizeof(buf));
        if (p.set)
            APPEND("%s\"%s\":{\"cursor\":\"%s\"}", first ? "" : ",",
                   c->name, buf);
        else
            APPEND("%s\"%s\":{\"cursor\":null}", first ? "" : ",", c->name);
        first = 0;
    }
    APPEND("},\"channels\":{");
    for (size_t i = 0; i < pl->nroutes; i++) {
        struct route *r = pl->routes[i];
        APPEND("%s\"%s\":{\"depth\":%.0f,\"capacity\":%.0f,\"workers\":%u}",
               i ? "," : "", r->name, route_depth(r), route_capacity(r),
               r->nworkers);
    }
    APPEND("}}");
#undef APPEND
    return out;
}
