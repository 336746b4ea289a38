/*
 * plugins/policy_breaker: a circuit breaker in front of a sink.
 *
 * After `threshold` failed batches in a row (the sink answered
 * FERRY_RETRY or FERRY_ERROR) the circuit opens: before_write() holds
 * every batch (FERRY_WOULD_BLOCK with retry_at = opened + timeout; the
 * core keeps held batches, nothing is dropped) so a dead sink is not
 * hammered. After `timeout` it turns half-open and lets
 * `half_open_probes` batches through; a probe that succeeds closes the
 * circuit, one that fails opens it again for another timeout.
 *
 * The state machine is breaker.c (pure, tested with a fake clock); this
 * file adds the mutex (hooks run concurrently on every worker), probe
 * bookkeeping per worker, logs and metrics. Time comes only from
 * host->now_ns().
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

#include "breaker.h"

/* A worker holding a half-open probe slot. */
struct breaker_probe {
    char *route; /* NULL: free slot */
    unsigned worker;
    uint64_t since;
};

struct breaker_policy {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    pthread_mutex_t lock;
    struct breaker b;
    /* b.max_probes slots; exactly b.probes are used while half-open. */
    struct breaker_probe *probes;
    struct ferry_metric *m_state;
    struct ferry_metric *m_to[3]; /* transitions, by enum breaker_state */
};

static const struct ferry_option breaker_options[] = {
    {.name = "threshold",
     .type = FERRY_OPT_INT,
     .def = "5",
     .min = 1,
     .max = 1000000,
     .description = "consecutive failed batches that open the circuit"},
    {.name = "timeout",
     .type = FERRY_OPT_DURATION,
     .def = "30s",
     .min = 1,
     .max = 86400000,
     .description = "how long an open circuit holds batches before it "
                    "probes the sink"},
    {.name = "half_open_probes",
     .type = FERRY_OPT_INT,
     .def = "1",
     .min = 1,
     .max = 1000,
     .description = "batches let through at once to probe a recovering "
                    "sink"},
    {.name = NULL},
};

/* "30s", "1m30s" style, for log lines. */
static void breaker_fmt_duration(char *out, size_t n, uint64_t ns)
{
    uint64_t ms = ns / 1000000ull;

    if (ms % 3600000 == 0 && ms > 0)
        snprintf(out, n, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0 && ms > 0)
        snprintf(out, n, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0 && ms > 0)
        snprintf(out, n, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, n, "%llums", (unsigned long long)ms);
}

/* Lock held. Frees every probe slot. */
static void breaker_forget_probes(struct breaker_policy *p)
{
    for (uint32_t i = 0; i < p->b.max_probes; i++) {
        p->host->free(p->probes[i].route);
        p->probes[i].route = NULL;
    }
}

/* Lock held. The slot of the worker (route, worker), or NULL. */
static struct breaker_probe *
breaker_find_probe(struct breaker_policy *p, const char *route, unsigned worker)
{
    for (uint32_t i = 0; i < p->b.max_probes; i++) {
        struct breaker_probe *s = &p->probes[i];

        if (s->route && s->worker == worker && strcmp(s->route, route) == 0)
            return s;
    }
    return NULL;
}

/* Lock held. Releases the slot (the breaker is told separately). */
static void breaker_release_probe(struct breaker_policy *p,
                                  struct breaker_probe *s)
{
    p->host->free(s->route);
    s->route = NULL;
}

/*
 * Lock held. Takes back probe slots whose batch never reported within
 * one timeout: its worker gave up on it (shutdown, or another policy
 * kept holding it), and the slot would otherwise block probing forever.
 */
static void breaker_reclaim_probes(struct breaker_policy *p, uint64_t now)
{
    uint64_t limit =
        p->b.timeout_ns > 1000000000ull ? p->b.timeout_ns : 1000000000ull;

    for (uint32_t i = 0; i < p->b.max_probes; i++) {
        struct breaker_probe *s = &p->probes[i];

        if (s->route && now - s->since >= limit) {
            breaker_release_probe(p, s);
            breaker_step(&p->b, BREAKER_PROBE_CANCEL, now);
        }
    }
}

/* Lock held. Logs and exports a transition from prev to the current
 * state (once: each transition happens once). */
static void breaker_report(struct breaker_policy *p, int prev)
{
    const struct ferry_host *h = p->host;
    int state = p->b.state;
    char dur[32];

    if (state == prev)
        return;
    breaker_forget_probes(p);
    h->metric_set(p->m_state, state);
    h->metric_add(p->m_to[state], 1);
    breaker_fmt_duration(dur, sizeof(dur), p->b.timeout_ns);
    switch (state) {
    case BREAKER_OPEN:
        if (prev == BREAKER_HALF_OPEN)
            h->log(p->ctx, FERRY_LOG_WARN,
                   "circuit open again: probe failed; holding batches for "
                   "%s",
                   dur);
        else
            h->log(p->ctx, FERRY_LOG_WARN,
                   "circuit open after %u consecutive failures; holding "
                   "batches for %s",
                   (unsigned)p->b.opened_after, dur);
        break;
    case BREAKER_HALF_OPEN:
        h->log(p->ctx, FERRY_LOG_INFO, "half-open: probing with %u batch%s",
               (unsigned)p->b.max_probes, p->b.max_probes == 1 ? "" : "es");
        break;
    default:
        h->log(p->ctx, FERRY_LOG_INFO, "closed: the sink answers again");
        break;
    }
}

/* Main thread. Reads the options and registers the metrics; no I/O. */
static int breaker_init_policy(const struct ferry_host *host,
                               struct ferry_ctx *ctx, void **state)
{
    static const char *const to_labels[3][3] = {
        {"to", "closed", NULL},
        {"to", "open", NULL},
        {"to", "half_open", NULL},
    };
    struct breaker_policy *p;
    int64_t threshold = host->opt_int(ctx, "threshold");
    int64_t probes = host->opt_int(ctx, "half_open_probes");
    uint64_t timeout_ms = host->opt_duration_ms(ctx, "timeout");

    if (threshold < 1 || probes < 1 || timeout_ms == 0) {
        host->log(ctx, FERRY_LOG_ERROR,
                  "threshold, half_open_probes and timeout must be "
                  "positive");
        return FERRY_EINVAL;
    }
    p = host->alloc(sizeof(*p));
    memset(p, 0, sizeof(*p));
    p->host = host;
    p->ctx = ctx;
    breaker_init(&p->b, (uint32_t)threshold, timeout_ms * 1000000ull,
                 (uint32_t)probes);
    p->probes = host->alloc(p->b.max_probes * sizeof(*p->probes));
    memset(p->probes, 0, p->b.max_probes * sizeof(*p->probes));
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        host->free(p->probes);
        host->free(p);
        return FERRY_ENOMEM;
    }
    p->m_state = host->metric(
        ctx, FERRY_METRIC_GAUGE, "ferry_breaker_state",
        "Circuit breaker state: 0 closed, 1 open, 2 half-open", NULL);
    host->metric_set(p->m_state, BREAKER_CLOSED);
    for (int i = 0; i < 3; i++)
        p->m_to[i] = host->metric(
            ctx, FERRY_METRIC_COUNTER, "ferry_breaker_transitions_total",
            "Circuit breaker transitions, by new state", to_labels[i]);
    *state = p;
    return FERRY_OK;
}

/* Main thread, after every hook has returned. */
static void breaker_fini_policy(void *state)
{
    struct breaker_policy *p = state;

    breaker_forget_probes(p);
    pthread_mutex_destroy(&p->lock);
    p->host->free(p->probes);
    p->host->free(p);
}

/* Any worker thread, concurrently. Holds the batch (FERRY_WOULD_BLOCK)
 * while open, or while half-open and every probe slot is taken. */
static int breaker_before_write(void *state, const struct ferry_write_event *ev,
                                uint64_t *retry_at_ns)
{
    struct breaker_policy *p = state;
    uint64_t now;
    int prev, verdict, rc = FERRY_OK;

    pthread_mutex_lock(&p->lock);
    now = p->host->now_ns();
    /* A probe whose write was held by a later policy asks again. */
    if (breaker_find_probe(p, ev->route, ev->worker))
        goto out;
    if (p->b.state == BREAKER_HALF_OPEN)
        breaker_reclaim_probes(p, now);
    prev = p->b.state;
    verdict = breaker_step(&p->b, BREAKER_ASK, now);
    breaker_report(p, prev);
    if (verdict == BREAKER_HOLD) {
        *retry_at_ns = p->b.retry_at;
        rc = FERRY_WOULD_BLOCK;
    } else if (verdict == BREAKER_GO_PROBE) {
        /* There is a free slot: used slots == b.probes <= max_probes. */
        for (uint32_t i = 0; i < p->b.max_probes; i++) {
            struct breaker_probe *s = &p->probes[i];

            if (!s->route) {
                s->route = p->host->strdup(ev->route);
                s->worker = ev->worker;
                s->since = now;
                break;
            }
        }
    }
out:
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Any worker thread, concurrently, after each write that before_write
 * let through. */
static void breaker_after_write(void *state, const struct ferry_write_event *ev,
                                int status)
{
    struct breaker_policy *p = state;
    struct breaker_probe *s;
    int prev, event;

    pthread_mutex_lock(&p->lock);
    s = breaker_find_probe(p, ev->route, ev->worker);
    if (s) {
        breaker_release_probe(p, s);
        event =
            status == FERRY_OK ? BREAKER_PROBE_SUCCESS : BREAKER_PROBE_FAILURE;
    } else {
        event = status == FERRY_OK ? BREAKER_SUCCESS : BREAKER_FAILURE;
    }
    prev = p->b.state;
    breaker_step(&p->b, event, p->host->now_ns());
    breaker_report(p, prev);
    pthread_mutex_unlock(&p->lock);
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_POLICY, "breaker"),
    .version = "1.0.0",
    .description = "circuit breaker: holds batches while the sink keeps "
                   "failing, then probes it",
    .options = breaker_options,
    .init = breaker_init_policy,
    .fini = breaker_fini_policy,
    .before_write = breaker_before_write,
    .after_write = breaker_after_write,
};
