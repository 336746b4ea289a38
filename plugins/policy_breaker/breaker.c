/*
 * plugins/policy_breaker/breaker.c: the circuit breaker state machine
 * (see breaker.h). Pure: no host calls, no clock, no globals.
 */
#include "breaker.h"

void breaker_init(struct breaker *b, uint32_t threshold, uint64_t timeout_ns,
                  uint32_t max_probes)
{
    *b = (struct breaker){
        .threshold = threshold ? threshold : 1,
        .timeout_ns = timeout_ns,
        .max_probes = max_probes ? max_probes : 1,
        .state = BREAKER_CLOSED,
    };
}

static void breaker__open(struct breaker *b, uint64_t now)
{
    b->state = BREAKER_OPEN;
    b->opened_at = now;
    b->opened_after = b->failures;
    b->failures = 0;
    b->probes = 0;
}

static void breaker__close(struct breaker *b)
{
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->probes = 0;
}

static int breaker__ask(struct breaker *b, uint64_t now)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return BREAKER_GO;
    case BREAKER_OPEN:
        if (now < b->opened_at + b->timeout_ns) {
            b->retry_at = b->opened_at + b->timeout_ns;
            return BREAKER_HOLD;
        }
        b->state = BREAKER_HALF_OPEN;
        b->probes = 0;
        /* fall through */
    default:
        if (b->probes < b->max_probes) {
            b->probes++;
            return BREAKER_GO_PROBE;
        }
        b->retry_at = now + BREAKER_PROBE_WAIT_NS;
        return BREAKER_HOLD;
    }
}

static void breaker__failure(struct breaker *b, uint64_t now)
{
    if (b->state != BREAKER_CLOSED)
        return;
    b->failures++;
    if (b->failures >= b->threshold)
        breaker__open(b, now);
}

int breaker_step(struct breaker *b, int event, uint64_t now)
{
    switch (event) {
    case BREAKER_ASK:
        return breaker__ask(b, now);
    case BREAKER_SUCCESS:
        if (b->state == BREAKER_CLOSED)
            b->failures = 0;
        break;
    case BREAKER_FAILURE:
        breaker__failure(b, now);
        break;
    case BREAKER_PROBE_SUCCESS:
        if (b->state == BREAKER_HALF_OPEN)
            breaker__close(b);
        else if (b->state == BREAKER_CLOSED)
            b->failures = 0;
        break;
    case BREAKER_PROBE_FAILURE:
        if (b->state == BREAKER_HALF_OPEN) {
            b->failures = 1;
            breaker__open(b, now);
        } else {
            breaker__failure(b, now);
        }
        break;
    case BREAKER_PROBE_CANCEL:
        if (b->state == BREAKER_HALF_OPEN && b->probes > 0)
            b->probes--;
        break;
    default:
        break;
    }
    return BREAKER_NONE;
}

const char *breaker_state_name(int state)
{
    switch (state) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    default:
        return "half_open";
    }
}
