/*
 * core/admit.c: admission of emitted messages into routes: matching,
 * the policies' admit() verdicts (block, drop newest or oldest,
 * coalesce), all-or-nothing reservations across every matching route,
 * barriers, and sched_emit() itself with its wait for room.
 */
#include "admit.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "clock.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

#define MSG_MIN_SIZE offsetof(struct ferry_msg, seq)

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
        strcmp(cmsg_order_key(&q->m), cmsg_order_key(n)) != 0)
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

static int drop_oldest_ok(void *queued, void *arg)
{
    (void)arg;
    return !cmsg_is_control(queued);
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

/* What one admission has taken so far. A control message takes a
 * reservation in every worker channel of every route of its source. */
struct admission {
    struct reservation {
        struct route *route;
        struct channel *ch;
    } res[ADMIT_MAX_TARGETS * 4];
    size_t nres;
    struct route *coalesce[ADMIT_MAX_TARGETS]; /* placed after the rest */
    size_t ncoalesce;
    size_t matched; /* routes that take the message */
};

/* Not a status: the admission's tables are full (logged by try_admit()). */
#define ADMIT_TOO_MANY 1

/* Reserves room for a barrier in every worker channel of route r.
 * Returns FERRY_OK, a channel's refusal, or ADMIT_TOO_MANY. */
static int reserve_barrier(struct admission *a, struct route *r)
{
    for (unsigned w = 0; w < r->nworkers; w++) {
        if (a->nres == sizeof(a->res) / sizeof(a->res[0]))
            return ADMIT_TOO_MANY;
        int rc = channel_reserve(r->workers[w].ch);
        if (rc != FERRY_OK)
            return rc;
        a->res[a->nres].route = r;
        a->res[a->nres++].ch = r->workers[w].ch;
    }
    return FERRY_OK;
}

/*
 * Admits data message cm into route r as the route's policies decide:
 * dropped (the newest), noted for coalescing, or reserved in the channel
 * of its worker (after dropping the oldest queued message if asked).
 * Returns FERRY_OK, the channel's refusal, or ADMIT_TOO_MANY.
 */
static int reserve_data(struct admission *a, struct route *r,
                        struct cmsg *cm)
{
    struct channel *ch = route_channel(r, cm);
    /* Policies with admit() are asked for every message, so a policy
     * with watermarks can act before the channel is full; without one
     * a full channel blocks. */
    int verdict = r->has_admit ? route_admit(r, cm, ch) : FERRY_ADMIT_BLOCK;
    int rc;

    if (verdict == FERRY_ADMIT_DROP_NEWEST) {
        metrics_add(r->m_dropped_newest, 1);
        return FERRY_OK;
    }
    /* When it cannot be coalesced, the reservation below refuses it
     * (and arms the on_room callback). */
    if (verdict == FERRY_ADMIT_COALESCE &&
        a->ncoalesce < ADMIT_MAX_TARGETS && coalesce_feasible(ch, cm)) {
        a->coalesce[a->ncoalesce++] = r;
        return FERRY_OK;
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
        return rc;
    if (a->nres == sizeof(a->res) / sizeof(a->res[0]))
        return ADMIT_TOO_MANY;
    a->res[a->nres].route = r;
    a->res[a->nres++].ch = ch;
    return FERRY_OK;
}

/*
 * Places cm (its sequence number already chosen) into the channel of each
 * route that coalesces it, replacing a queued message where it may.
 * Returns FERRY_OK, or FERRY_WOULD_BLOCK when the first channel is full
 * with nothing replaceable: then no route holds cm.
 */
static int place_coalesced(struct admission *a, struct cmsg *cm)
{
    size_t placed = 0;

    for (size_t i = 0; i < a->ncoalesce; i++) {
        struct route *r = a->coalesce[i];
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
            return FERRY_WOULD_BLOCK;
        }
        /* Another route already holds cm: wait for room here (a worker is
         * draining this channel, so this is short). */
        if (channel_push(ch, cm) != FERRY_OK) {
            atomic_store(&cm->abandoned, 1);
            atomic_fetch_sub(&cm->refs, 1);
        }
        placed++;
    }
    return FERRY_OK;
}

/* The admission succeeded: cm takes its sequence number, is counted and
 * is pushed into every reserved channel; emit's guard is dropped. */
static void admit_commit(struct ferry_ctx *src, struct admission *a,
                         struct cmsg *cm, int control)
{
    uint64_t seq = tracker_add(&src->tracker, &cm->m.pos);
    (void)seq;
    if (a->matched == 0)
        metrics_add(src->m_unrouted, 1);
    count_received(src, &cm->m);
    /* A control message holds one reference, dropped by the last worker
     * to leave its barrier; other messages one per reservation. */
    if (control && a->nres)
        atomic_fetch_add(&cm->refs, 1);
    for (size_t i = 0; i < a->nres; i++) {
        if (!control)
            atomic_fetch_add(&cm->refs, 1);
        channel_push_reserved(a->res[i].ch, cm);
    }
    /* Drop emit's guard: if nothing took the message it is done now. */
    cmsg_release(cm);
}

/* The admission was refused: gives back every reservation and the
 * barrier, leaving cm as it came. */
static void admit_undo(struct admission *a, struct cmsg *cm)
{
    for (size_t i = 0; i < a->nres; i++)
        channel_unreserve(a->res[i].ch);
    if (cm->barrier) {
        pthread_mutex_destroy(&cm->barrier->lock);
        pthread_cond_destroy(&cm->barrier->cond);
        free(cm->barrier);
        cm->barrier = NULL;
    }
}

/*
 * All-or-nothing admission of cm into every matching route; called with
 * the source's emit lock held. Returns FERRY_OK (cm is owned by the
 * pipeline now), FERRY_WOULD_BLOCK or FERRY_CLOSED (cm still the caller's).
 */
static int try_admit(struct ferry_ctx *src, struct cmsg *cm)
{
    struct admission a;
    int control = cmsg_is_control(cm);
    int rc = FERRY_OK;

    a.nres = 0;
    a.ncoalesce = 0;
    a.matched = 0;
    for (size_t i = 0; i < src->nroutes && rc == FERRY_OK; i++) {
        struct route *r = src->routes[i];

        if (!control && !route_matches(r, cm->m.entity_type))
            continue;
        a.matched++;
        /* A barrier goes into every worker of the route. */
        rc = control ? reserve_barrier(&a, r) : reserve_data(&a, r, cm);
    }
    if (rc == ADMIT_TOO_MANY) {
        log_write(FERRY_LOG_ERROR, src->label,
                  "message fans out to more than %d channels",
                  ADMIT_MAX_TARGETS * 4);
        rc = FERRY_EINVAL;
    }
    if (rc != FERRY_OK)
        goto refuse;

    if (control)
        barrier_init(cm, src);
    /* The sequence number this message will get (we hold the emit lock,
     * so nobody else takes it meanwhile). */
    cm->m.seq = tracker_peek(&src->tracker);
    rc = place_coalesced(&a, cm);
    if (rc != FERRY_OK)
        goto refuse;
    admit_commit(src, &a, cm, control);
    return FERRY_OK;

refuse:
    admit_undo(&a, cm);
    return rc;
}

/* A cheap monotonic stamp for the watchdog's heartbeat (a few ms coarse,
 * against a bound of seconds); no clock is read on threads without a
 * beat (a plugin's own threads). */
static uint64_t admit_beat_now(void)
{
    struct timespec ts;

    if (!health_self)
        return 0;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

    /* The watchdog's heartbeat of the source thread: inside emit() except
     * while it waits for room (backpressure is not a wedge). */
    health_beat_enter(health_self, admit_beat_now());
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
        health_beat_leave(health_self);
        pthread_cond_timedwait(&src->room, &src->emit_lock, &ts);
        health_beat_enter(health_self, admit_beat_now());
    }
    tl_emitting = NULL;
    pthread_mutex_unlock(&src->emit_lock);
    health_beat_leave(health_self);
    if (rc != FERRY_OK)
        cmsg_free(cm);
    return rc;
}

/* channel_on_room callback: a worker made room in a channel that refused
 * this source. */
void source_on_room(void *arg)
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
