/*
 * plugins/policy_breaker/breaker.h: the circuit breaker as a pure state
 * machine of (state, event, now). No host, no clock, no locking: the
 * plugin wrapper guards it and supplies host->now_ns(); tests drive it
 * with a fake clock.
 */
#ifndef FERRY_POLICY_BREAKER_H
#define FERRY_POLICY_BREAKER_H

#include <stdint.h>

enum breaker_state {
    BREAKER_CLOSED = 0,
    BREAKER_OPEN = 1,
    BREAKER_HALF_OPEN = 2
};

enum breaker_event {
    /* A batch asks to be written. Answered with a breaker_verdict. */
    BREAKER_ASK = 1,
    /* A batch that was not a probe finished: written, or failed (the
     * sink answered FERRY_RETRY or FERRY_ERROR). */
    BREAKER_SUCCESS = 2,
    BREAKER_FAILURE = 3,
    /* A batch let through as a probe (BREAKER_GO_PROBE) finished. */
    BREAKER_PROBE_SUCCESS = 4,
    BREAKER_PROBE_FAILURE = 5,
    /* A probe will never report (its batch was not written): frees its
     * slot. */
    BREAKER_PROBE_CANCEL = 6
};

enum breaker_verdict {
    BREAKER_NONE = 0,     /* for the events other than BREAKER_ASK */
    BREAKER_GO = 1,       /* write the batch */
    BREAKER_GO_PROBE = 2, /* write it as a probe; report PROBE_* after */
    BREAKER_HOLD = 3      /* keep the batch until b->retry_at */
};

/* How long a batch waits when every half-open probe slot is taken. */
#define BREAKER_PROBE_WAIT_NS 50000000ull

struct breaker {
    /* Configuration (set before the first step). */
    uint32_t threshold;  /* consecutive failures that open, >= 1 */
    uint64_t timeout_ns; /* how long open lasts */
    uint32_t max_probes; /* concurrent probes when half-open, >= 1 */

    /* State. */
    int state;             /* enum breaker_state */
    uint32_t failures;     /* consecutive failures while closed */
    uint64_t opened_at;    /* when it last opened */
    uint32_t probes;       /* probes in flight while half-open */
    uint64_t retry_at;     /* set with BREAKER_HOLD */
    uint32_t opened_after; /* failures that caused the last opening */
};

/* Prepares a closed breaker. */
void breaker_init(struct breaker *b, uint32_t threshold, uint64_t timeout_ns,
                  uint32_t max_probes);

/*
 * Applies event at time now (monotonic ns) and returns the verdict for
 * BREAKER_ASK (BREAKER_NONE for the others). Callers compare b->state
 * before and after to see a transition. Not thread-safe.
 *
 *   closed:    ASK -> GO. FAILURE counts; threshold in a row -> open.
 *              SUCCESS resets the count.
 *   open:      ASK -> HOLD until opened_at + timeout; at or after it the
 *              breaker turns half-open and answers as half-open.
 *   half-open: ASK -> GO_PROBE while fewer than max_probes are out, else
 *              HOLD for BREAKER_PROBE_WAIT_NS. PROBE_SUCCESS -> closed,
 *              PROBE_FAILURE -> open again (a new timeout).
 *
 * Results of batches that started in an earlier state (a SUCCESS or
 * FAILURE while open or half-open, a probe result while open) do not
 * move the breaker; a late probe result while closed counts as a plain
 * result.
 */
int breaker_step(struct breaker *b, int event, uint64_t now);

/* "closed", "open" or "half_open" (also the metric label value). */
const char *breaker_state_name(int state);

#endif
