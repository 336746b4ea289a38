/*
 * core/timer.c: periodic timers on one lazily started thread.
 *
 * The timers form a list under one mutex (the core has a handful of them:
 * metrics summaries, checkpoints, plugin housekeeping), scanned for the
 * earliest due time. The thread sleeps on a CLOCK_MONOTONIC condvar until
 * then and runs the callback with the mutex released.
 *
 * Periods are kept on a fixed grid (due += period) so they do not drift;
 * when a callback overran one or more whole periods the missed ticks are
 * skipped rather than run back to back.
 */
#include "timer.h"

#include <pthread.h>
#include <stdlib.h>

#include "clock.h"

struct ferry_timer {
    uint64_t period_ns;
    uint64_t due_ns;
    void (*cb)(void *arg);
    void *arg;
    /* The callback is running on the timer thread right now. */
    int running;
    /* Stopped from its own callback: the thread frees it afterwards. */
    int free_after_run;
    struct ferry_timer *next;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the thread sleeps here (CLOCK_MONOTONIC) */
    pthread_cond_t idle; /* timer_stop() waits here for a callback */
    pthread_t thread;
    int started;
    int quit;
    struct ferry_timer *list;
} timers = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
};

static pthread_once_t timer_once = PTHREAD_ONCE_INIT;
static int timer_wake_ok;

static void timer__init_wake(void)
{
    pthread_condattr_t attr;

    if (pthread_condattr_init(&attr) != 0)
        return;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    timer_wake_ok = pthread_cond_init(&timers.wake, &attr) == 0;
    pthread_condattr_destroy(&attr);
}

/* Lock held: the timer due first, or NULL. */
static struct ferry_timer *timer__earliest(void)
{
    struct ferry_timer *best = NULL;

    for (struct ferry_timer *t = timers.list; t; t = t->next) {
        if (!best || t->due_ns < best->due_ns)
            best = t;
    }
    return best;
}

/* Lock held: removes t from the list. Returns nonzero if it was there. */
static int timer__unlink(struct ferry_timer *t)
{
    for (struct ferry_timer **p = &timers.list; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            t->next = NULL;
            return 1;
        }
    }
    return 0;
}

static void *timer__run(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&timers.lock);
    while (!timers.quit) {
        struct ferry_timer *t = timer__earliest();
        uint64_t now = clock_now_ns();

        if (!t) {
            pthread_cond_wait(&timers.wake, &timers.lock);
            continue;
        }
        if (t->due_ns > now) {
            struct timespec ts = clock_ts(t->due_ns);

            pthread_cond_timedwait(&timers.wake, &timers.lock, &ts);
            continue;
        }
        t->due_ns += t->period_ns;
        if (t->due_ns <= now)
            t->due_ns = now + t->period_ns;
        t->running = 1;
        pthread_mutex_unlock(&timers.lock);
        t->cb(t->arg);
        pthread_mutex_lock(&timers.lock);
        t->running = 0;
        if (t->free_after_run)
            free(t);
        else
            pthread_cond_broadcast(&timers.idle);
    }
    pthread_mutex_unlock(&timers.lock);
    return NULL;
}

/*
 * Returns a new timer, or NULL (then cb is never called). Any thread,
 * including the timer thread. The caller owns the timer until it passes
 * it to timer_stop(), which frees it.
 */
struct ferry_timer *timer_start(uint64_t period_ms, void (*cb)(void *arg),
                                void *arg)
{
    struct ferry_timer *t;

    if (period_ms == 0 || !cb)
        return NULL;
    pthread_once(&timer_once, timer__init_wake);
    if (!timer_wake_ok)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->period_ns = period_ms * 1000000ull;
    t->cb = cb;
    t->arg = arg;

    pthread_mutex_lock(&timers.lock);
    if (!timers.started) {
        timers.quit = 0;
        if (pthread_create(&timers.thread, NULL, timer__run, NULL) != 0) {
            pthread_mutex_unlock(&timers.lock);
            free(t);
            return NULL;
        }
        timers.started = 1;
    }
    t->due_ns = clock_now_ns() + t->period_ns;
    t->next = timers.list;
    timers.list = t;
    pthread_mutex_unlock(&timers.lock);
    pthread_cond_signal(&timers.wake);
    return t;
}

/*
 * Stops t and frees it; cb is never called after this returns. From any
 * thread but the timer thread it waits for a running callback to finish.
 * From the timer thread (inside any timer's callback, including t's own)
 * it cannot wait for itself: it only marks t stopped, and t is freed once
 * its running callback returns. Accepts NULL.
 */
void timer_stop(struct ferry_timer *t)
{
    int own_thread;

    if (!t)
        return;
    pthread_mutex_lock(&timers.lock);
    own_thread = timers.started && pthread_equal(pthread_self(), timers.thread);
    timer__unlink(t);
    if (t->running && own_thread) {
        t->free_after_run = 1;
        pthread_mutex_unlock(&timers.lock);
        return;
    }
    while (t->running)
        pthread_cond_wait(&timers.idle, &timers.lock);
    pthread_mutex_unlock(&timers.lock);
    free(t);
}

/*
 * Stops and joins the timer thread. Main thread, not from a timer
 * callback. Timers still registered are not called any more, but stay
 * owned by their callers: timer_stop() still frees them. A later
 * timer_start() starts a new thread.
 */
void timer_shutdown(void)
{
    pthread_t thread;

    pthread_mutex_lock(&timers.lock);
    if (!timers.started) {
        pthread_mutex_unlock(&timers.lock);
        return;
    }
    timers.quit = 1;
    thread = timers.thread;
    pthread_mutex_unlock(&timers.lock);
    pthread_cond_broadcast(&timers.wake);
    pthread_join(thread, NULL);
    pthread_mutex_lock(&timers.lock);
    timers.started = 0;
    /* Leftover timers resume on the grid of a later thread. */
    for (struct ferry_timer *t = timers.list; t; t = t->next)
        t->due_ns = clock_now_ns() + t->period_ns;
    pthread_mutex_unlock(&timers.lock);
}
