/*
 * tests/unit/test_timer.c: core/timer.c.
 *
 * Bounds that time cannot break are exact (a periodic timer never fires
 * more often than its period allows); lower bounds are loose so a loaded
 * machine does not fail them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <time.h>

#include "clock.h"
#include "timer.h"

#define MS 1000000ull

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

struct counter {
    atomic_int calls;
    atomic_uint_fast64_t first_ns;
    unsigned sleep_ms; /* inside the callback */
    atomic_int in_cb;
    atomic_int finished; /* callbacks that returned */
    /* Stop this timer from its own callback at call number stop_at. */
    _Atomic(struct ferry_timer *) self;
    int stop_at;
    /* Stop this other timer from the callback. */
    _Atomic(struct ferry_timer *) other;
};

static void count_cb(void *arg)
{
    struct counter *c = arg;
    int n = atomic_fetch_add(&c->calls, 1) + 1;
    uint64_t zero = 0;
    struct ferry_timer *t;

    atomic_compare_exchange_strong(&c->first_ns, &zero, clock_now_ns());
    atomic_store(&c->in_cb, 1);
    if (c->sleep_ms)
        sleep_ms(c->sleep_ms);
    t = atomic_load(&c->self);
    if (c->stop_at && n == c->stop_at && t)
        timer_stop(t);
    t = atomic_exchange(&c->other, NULL);
    if (t)
        timer_stop(t);
    atomic_store(&c->in_cb, 0);
    /* The callback's last access to c. */
    atomic_fetch_add(&c->finished, 1);
}

/* Waits (up to 5 s) until c has been called at least n times. */
static int wait_calls(struct counter *c, int n)
{
    uint64_t deadline = clock_now_ns() + 5000 * MS;

    while (atomic_load(&c->calls) < n) {
        if (clock_now_ns() > deadline)
            return 0;
        sleep_ms(1);
    }
    return 1;
}

static void test_invalid(void **state)
{
    struct counter c = {0};

    (void)state;
    assert_null(timer_start(0, count_cb, &c));
    assert_null(timer_start(10, NULL, &c));
    timer_stop(NULL);
}

static void test_fires_periodically(void **state)
{
    struct counter c = {0};
    struct ferry_timer *t;
    uint64_t start, elapsed;
    int calls;

    (void)state;
    start = clock_now_ns();
    t = timer_start(20, count_cb, &c);
    assert_non_null(t);
    sleep_ms(200);
    timer_stop(t);
    elapsed = clock_now_ns() - start;
    calls = atomic_load(&c.calls);
    /* The first call comes after one period, never before. */
    assert_true(calls >= 1);
    assert_true(atomic_load(&c.first_ns) >= start + 20 * MS);
    /* Never more often than the period allows. */
    assert_true((uint64_t)calls <= elapsed / (20 * MS));
    /* And about as often: 10 expected, at least 3 on a busy machine. */
    assert_true(calls >= 3);
}

static void test_stop_waits_for_callback(void **state)
{
    struct counter c = {.sleep_ms = 60};
    struct ferry_timer *t;
    int calls;

    (void)state;
    t = timer_start(5, count_cb, &c);
    assert_non_null(t);
    while (!atomic_load(&c.in_cb))
        sleep_ms(1);
    timer_stop(t);
    /* The running callback had finished when stop returned. */
    assert_false(atomic_load(&c.in_cb));
    assert_int_equal(atomic_load(&c.finished), atomic_load(&c.calls));
    calls = atomic_load(&c.calls);
    sleep_ms(30);
    assert_int_equal(atomic_load(&c.calls), calls);
}

static void test_stop_before_first_call(void **state)
{
    struct counter c = {0};
    struct ferry_timer *t;

    (void)state;
    t = timer_start(10, count_cb, &c);
    assert_non_null(t);
    timer_stop(t);
    sleep_ms(40);
    assert_int_equal(atomic_load(&c.calls), 0);
}

#define NTIMERS 40

static void test_many_timers(void **state)
{
    static struct counter c[NTIMERS];
    struct ferry_timer *t[NTIMERS];
    uint64_t start, elapsed;
    int total = 0;

    (void)state;
    start = clock_now_ns();
    for (int i = 0; i < NTIMERS; i++) {
        atomic_store(&c[i].calls, 0);
        t[i] = timer_start(5 + (uint64_t)i, count_cb, &c[i]);
        assert_non_null(t[i]);
    }
    assert_true(wait_calls(&c[NTIMERS - 1], 2));
    for (int i = 0; i < NTIMERS; i++)
        timer_stop(t[i]);
    elapsed = clock_now_ns() - start;
    for (int i = 0; i < NTIMERS; i++) {
        int calls = atomic_load(&c[i].calls);

        assert_true(calls >= 1);
        assert_true((uint64_t)calls <= elapsed / ((5 + (uint64_t)i) * MS));
        total += calls;
    }
    sleep_ms(20);
    for (int i = 0; i < NTIMERS; i++)
        total -= atomic_load(&c[i].calls);
    assert_int_equal(total, 0);
}

static void test_stop_from_own_callback(void **state)
{
    struct counter c = {.stop_at = 3};
    struct ferry_timer *t;

    (void)state;
    t = timer_start(2, count_cb, &c);
    assert_non_null(t);
    atomic_store(&c.self, t);
    assert_true(wait_calls(&c, 3));
    while (atomic_load(&c.finished) < 3)
        sleep_ms(1);
    sleep_ms(20);
    /* Stopped at the third call; freed by the thread (ASan checks). */
    assert_int_equal(atomic_load(&c.calls), 3);
}

static void test_stop_other_from_callback(void **state)
{
    struct counter a = {0}, b = {0};
    struct ferry_timer *ta, *tb;
    int calls;

    (void)state;
    tb = timer_start(3, count_cb, &b);
    assert_non_null(tb);
    assert_true(wait_calls(&b, 1));
    atomic_store(&a.other, tb);
    ta = timer_start(5, count_cb, &a);
    assert_non_null(ta);
    assert_true(wait_calls(&a, 1));
    calls = atomic_load(&b.calls);
    sleep_ms(20);
    assert_int_equal(atomic_load(&b.calls), calls);
    timer_stop(ta);
}

static void test_shutdown_and_restart(void **state)
{
    struct counter a = {0}, b = {0};
    struct ferry_timer *ta, *tb;
    int calls;

    (void)state;
    ta = timer_start(3, count_cb, &a);
    assert_non_null(ta);
    assert_true(wait_calls(&a, 1));
    timer_shutdown();
    calls = atomic_load(&a.calls);
    sleep_ms(20);
    assert_int_equal(atomic_load(&a.calls), calls);
    timer_stop(ta);
    timer_shutdown();

    tb = timer_start(3, count_cb, &b);
    assert_non_null(tb);
    assert_true(wait_calls(&b, 2));
    timer_stop(tb);
    timer_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_fires_periodically),
        cmocka_unit_test(test_stop_waits_for_callback),
        cmocka_unit_test(test_stop_before_first_call),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_stop_from_own_callback),
        cmocka_unit_test(test_stop_other_from_callback),
        cmocka_unit_test(test_shutdown_and_restart),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    timer_shutdown();
    return rc;
}
