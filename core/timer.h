/*
 * core/timer.h: periodic timers run on one core thread.
 * struct ferry_timer (include/ferry/host.h) is this module's timer.
 */
#ifndef FERRY_CORE_TIMER_H
#define FERRY_CORE_TIMER_H

#include <stdint.h>

#include "ferry/host.h"

/* Calls cb(arg) every period_ms (first after one period) on the timer
 * thread, which is started on first use. NULL on failure. */
struct ferry_timer *timer_start(uint64_t period_ms, void (*cb)(void *arg),
                                void *arg);
/* Stops a timer, waiting for a running callback. Not from its own
 * callback. Accepts NULL. */
void timer_stop(struct ferry_timer *t);
/* Stops the timer thread (after every timer is stopped). */
void timer_shutdown(void);

#endif
