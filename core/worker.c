/*
 * core/worker.c: the worker threads. Each drains its own channel in
 * batches (up to batch_size, waiting at most batch_timeout after the
 * first message, stopping at a barrier), runs the route's policies around
 * the sink's write(), retries with backoff while the sink says retry,
 * counts the verdicts, and writes checkpoints and the final position.
 */
#include "worker.h"

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

static void log_failed(struct route *r, const struct ferry_msg *m,
                       const char *why)
{
    char pos[FERRY_POS_STRLEN];

    tracker_format_pos(&m->pos, pos, sizeof(pos));
    log_write(FERRY_LOG_ERROR, r->sink->label,
              "route %s: %s %s '%s' at stream position %s not applied: %s",
              r->name, ferry_op_name(m->op), m->entity_type, m->entity_id, pos,
              why);
}

/* Whether a policy's before_write() holds the batch; the one that does may
 * set *retry_at (when to ask again). Policies after it are not asked. */
static int policies_hold(struct route *r, const struct ferry_write_event *ev,
                         uint64_t *retry_at)
{
    for (size_t i = 0; i < r->npolicies; i++) {
        struct ferry_ctx *p = r->policies[i];
        if (p->desc->before_write &&
            p->desc->before_write(p->state, ev, retry_at) ==
                FERRY_WOULD_BLOCK)
            return 1;
    }
    return 0;
}

/* Waits before asking the policies about a held batch again. */
static void wait_held(struct pipeline *pl, uint64_t retry_at)
{
    uint64_t now = clock_now_ns();

    /* Ask again at retry_at, but at least every second (a stop or a
     * policy change is noticed) and not in a busy loop. */
    if (retry_at > now + 1000000000ull)
        retry_at = now + 1000000000ull;
    if (retry_at <= now)
        retry_at = now + 10000000ull;
    sleep_until(pl, retry_at);
}

/* The replay position that becomes committed when msgs[0..n) are applied,
 * for a sink that records it with the batch. */
static struct ferry_pos batch_commit(struct route *r, struct cmsg **msgs,
                                     size_t n)
{
    uint64_t seqs[256];
    size_t ns = 0;

    /* Only messages this batch completes: no other route (and not
     * emit's guard) still holds them. A fanned-out message another
     * route has not applied yet would make the commit lead; so would a
     * barrier, done only when every sink has it. */
    for (size_t i = 0; i < n && ns < 256; i++)
        if (atomic_load(&msgs[i]->refs) == 1 &&
            !atomic_load(&msgs[i]->abandoned) && !cmsg_is_control(msgs[i]))
            seqs[ns++] = msgs[i]->m.seq;
    /* Batches larger than 256 only preview their first 256: the commit
     * may then lag, never lead. */
    return tracker_preview(&r->source->tracker, seqs, ns);
}

/* One write() of the batch, every result preset to FERRY_OK, followed by
 * the policies' after_write(). Returns the sink's verdict. */
static int write_batch(struct worker *w, struct cmsg **msgs, size_t n,
                       struct ferry_batch *batch,
                       struct ferry_write_event *ev)
{
    struct route *r = w->route;
    struct ferry_ctx *sink = r->sink;
    int rc;

    for (size_t i = 0; i < n; i++)
        batch->results[i] = FERRY_OK;
    if (sink->desc->checkpoint)
        batch->commit = batch_commit(r, msgs, n);
    /* The watchdog's heartbeat: inside write() since ev->now_ns. */
    health_beat_enter(health_self, ev->now_ns);
    rc = sink->desc->write(w->wctx, batch);
    health_beat_leave(health_self);
    ev->now_ns = clock_now_ns();
    for (size_t i = 0; i < r->npolicies; i++) {
        struct ferry_ctx *p = r->policies[i];
        if (p->desc->after_write)
            p->desc->after_write(p->state, ev, rc);
    }
    return rc;
}

/* Logs a retried batch: the first attempt and every 20th. */
static void log_retry(struct worker *w, size_t n, unsigned attempt,
                      uint64_t backoff_ms)
{
    struct route *r = w->route;

    if (attempt == 1 || attempt % 20 == 0)
        log_write(FERRY_LOG_WARN, r->sink->label,
                  "route %s worker %u: batch of %zu will be retried "
                  "(attempt %u, next in %llums); nothing is dropped",
                  r->name, w->index, n, attempt,
                  (unsigned long long)backoff_ms);
}

/* Sleeps *backoff_ms before the next attempt, then doubles it up to 5 s. */
static void backoff_sleep(struct pipeline *pl, uint64_t *backoff_ms)
{
    /* Up to 25% jitter so workers do not retry in lockstep. */
    uint64_t jitter = (uint64_t)rand() % (*backoff_ms / 4 + 1);

    sleep_until(pl, clock_now_ns() + (*backoff_ms + jitter) * 1000000ull);
    if (*backoff_ms < 5000)
        *backoff_ms *= 2;
    if (*backoff_ms > 5000)
        *backoff_ms = 5000;
}

/* Counts the verdicts of a batch the sink answered (rc): the latency of
 * each applied message, a log line for each other. */
static void count_verdicts(struct route *r, struct cmsg **msgs, size_t n,
                           const int *results, int rc)
{
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

        if (past_abort(pl))
            goto abandon;

        ev.now_ns = clock_now_ns();
        if (policies_hold(r, &ev, &retry_at)) {
            if (past_abort(pl))
                goto abandon;
            wait_held(pl, retry_at);
            continue;
        }
        rc = write_batch(w, msgs, n, &batch, &ev);
        if (rc == FERRY_OK) {
            metrics_add(r->m_batch_ok, 1);
            break;
        }
        if (rc == FERRY_RETRY) {
            metrics_add(r->m_batch_retry, 1);
            attempt++;
            log_retry(w, n, attempt, backoff_ms);
            if (past_abort(pl))
                goto abandon;
            backoff_sleep(pl, &backoff_ms);
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

    count_verdicts(r, msgs, n, results, rc);
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

/* Sets w->wctx: the sink's worker context from open(), retried every
 * second; NULL when the worker gave up at shutdown. A sink without open()
 * gets its instance state as worker context. */
static void worker_open(struct worker *w)
{
    struct route *r = w->route;
    struct ferry_ctx *sink = r->sink;
    int rc;

    w->wctx = sink->state;
    if (!sink->desc->open)
        return;
    while ((rc = sink->desc->open(sink->state, w->index, &w->wctx)) !=
           FERRY_OK) {
        log_write(FERRY_LOG_ERROR, sink->label,
                  "route %s worker %u: open failed (%s); retrying", r->name,
                  w->index, ferry_status_str(rc));
        sleep_until(r->pl, clock_now_ns() + 1000000000ull);
        if (past_abort(r->pl) || channel_is_closed(w->ch)) {
            w->wctx = NULL;
            break;
        }
    }
}

/*
 * Pops into q[*qlen..cap) up to batch_size or batch_timeout, stopping at a
 * barrier. Returns how many messages at the head of q precede the first
 * barrier (0 when q[0] is one).
 */
static size_t fill_batch(struct worker *w, struct cmsg **q, size_t *qlen,
                         size_t cap)
{
    uint64_t first_ns = clock_now_ns();
    uint64_t until = first_ns + w->route->batch_timeout_ms * 1000000ull;
    size_t k;

    for (;;) {
        for (k = 0; k < *qlen && !cmsg_is_control(q[k]); k++)
            ;
        if (k < *qlen || *qlen == cap)
            break;
        if (clock_now_ns() >= until)
            break;
        size_t got = channel_pop_batch(w->ch, (void **)q + *qlen,
                                       cap - *qlen, until);
        if (got == 0 && channel_is_closed(w->ch))
            break;
        *qlen += got;
    }
    return k;
}

/* Once the channel is drained: waits until every worker of every route of
 * this source has drained, so the final position is the one after the
 * whole drain; the last worker of the route then persists it. */
static void worker_finish(struct worker *w)
{
    struct route *r = w->route;
    struct pipeline *pl = r->pl;

    if (w->abandoned)
        log_write(FERRY_LOG_ERROR, r->sink->label,
                  "route %s worker %u: shutdown_timeout reached; %zu "
                  "messages not applied (they stay behind the replay cursor "
                  "and are replayed on the next start)",
                  r->name, w->index, w->abandoned);
    pthread_mutex_lock(&pl->lock);
    if (--r->source->drain_left == 0)
        pthread_cond_broadcast(&pl->cond);
    while (r->source->drain_left > 0)
        pthread_cond_wait(&pl->cond, &pl->lock);
    pthread_mutex_unlock(&pl->lock);
    if (atomic_fetch_sub(&r->workers_left, 1) == 1 && w->wctx)
        worker_checkpoint(w, 1);
}

/* The worker's thread; see core/worker.h. */
void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct route *r = w->route;
    struct ferry_ctx *sink = r->sink;
    size_t cap = r->batch_size;
    struct cmsg **q = calloc(cap, sizeof(*q));
    size_t qlen = 0;

    if (!q)
        abort();
    health_self = health_beat_new("route %s worker %u: %s write()", r->name,
                                  w->index, sink->label);
    worker_open(w);

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
        size_t k = fill_batch(w, q, &qlen, cap);

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

    worker_finish(w);
    if (sink->desc->open && sink->desc->close && w->wctx)
        sink->desc->close(w->wctx);
    w->wctx = NULL;
    health_beat_free(health_self);
    free(q);
    return NULL;
}
