/*
 * tests/unit/test_channel.c: core/channel.c.
 *
 * Where a test must show that a thread is blocked, it gives the thread
 * 30 ms to (wrongly) finish and checks it has not; the assertions that
 * follow are timing-free.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "clock.h"
#include "ferry/status.h"

#define MS 1000000ull

static void *item(uintptr_t v)
{
    return (void *)v;
}

static uintptr_t val(void *p)
{
    return (uintptr_t)p;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- single-threaded ---------------------------------------------------- */

static void test_new_rejects_zero_capacity(void **state)
{
    (void)state;
    assert_null(channel_new(0));
    channel_free(NULL, NULL);
}

static void test_try_variants(void **state)
{
    struct channel *ch = channel_new(3);
    void *p = NULL;

    (void)state;
    assert_non_null(ch);
    assert_int_equal(channel_capacity(ch), 3);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_WOULD_BLOCK);
    /* Wrap around the ring a few times to check FIFO order across it. */
    for (uintptr_t round = 0; round < 5; round++) {
        assert_int_equal(channel_try_push(ch, item(round * 10 + 1)), FERRY_OK);
        assert_int_equal(channel_try_push(ch, item(round * 10 + 2)), FERRY_OK);
        assert_int_equal(channel_try_push(ch, item(round * 10 + 3)), FERRY_OK);
        assert_int_equal(channel_try_push(ch, item(99)), FERRY_WOULD_BLOCK);
        assert_int_equal(channel_depth(ch), 3);
        assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
        assert_int_equal(val(p), round * 10 + 1);
        assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
        assert_int_equal(val(p), round * 10 + 2);
        assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
        assert_int_equal(val(p), round * 10 + 3);
        assert_int_equal(channel_try_pop(ch, &p), FERRY_WOULD_BLOCK);
        assert_int_equal(channel_depth(ch), 0);
        /* Shift the head so the next round starts mid-ring. */
        assert_int_equal(channel_try_push(ch, item(7)), FERRY_OK);
        assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
        assert_int_equal(val(p), 7);
    }
    channel_free(ch, NULL);
}

static void test_pop_many(void **state)
{
    struct channel *ch = channel_new(8);
    void *items[8];

    (void)state;
    for (uintptr_t i = 1; i <= 6; i++)
        assert_int_equal(channel_push(ch, item(i)), FERRY_OK);
    assert_int_equal(channel_pop_many(ch, items, 4, 0), 4);
    for (uintptr_t i = 0; i < 4; i++)
        assert_int_equal(val(items[i]), i + 1);
    assert_int_equal(channel_pop_many(ch, items, 8, 0), 2);
    assert_int_equal(val(items[0]), 5);
    assert_int_equal(val(items[1]), 6);
    assert_int_equal(channel_pop_many(ch, items, 8, 0), 0);
    assert_int_equal(channel_pop_many(ch, items, 0, 0), 0);
    channel_free(ch, NULL);
}

static void test_reservations(void **state)
{
    struct channel *ch = channel_new(2);
    void *p = NULL;

    (void)state;
    assert_int_equal(channel_reserve(ch), FERRY_OK);
    assert_int_equal(channel_reserve(ch), FERRY_OK);
    /* Reserved slots are occupied. */
    assert_int_equal(channel_depth(ch), 2);
    assert_int_equal(channel_reserve(ch), FERRY_WOULD_BLOCK);
    assert_int_equal(channel_try_push(ch, item(9)), FERRY_WOULD_BLOCK);
    assert_int_equal(channel_push_until(ch, item(9), clock_now_ns()),
                     FERRY_TIMEDOUT);
    /* Nothing is poppable until a reservation is filled. */
    assert_int_equal(channel_try_pop(ch, &p), FERRY_WOULD_BLOCK);
    channel_push_reserved(ch, item(1));
    assert_int_equal(channel_depth(ch), 2);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 1);
    assert_int_equal(channel_depth(ch), 1);
    channel_unreserve(ch);
    assert_int_equal(channel_depth(ch), 0);
    assert_int_equal(channel_try_push(ch, item(2)), FERRY_OK);
    assert_int_equal(channel_try_push(ch, item(3)), FERRY_OK);
    channel_close(ch);
    assert_int_equal(channel_reserve(ch), FERRY_CLOSED);
    channel_free(ch, NULL);
}

struct ent {
    int id;
    int version;
};

static int match_id(void *queued, void *arg)
{
    return ((struct ent *)queued)->id == *(int *)arg;
}

static void test_replace_newest(void **state)
{
    struct ent e[] = {{1, 1}, {2, 1}, {1, 2}, {3, 1}};
    struct ent repl = {1, 3}, repl2 = {4, 1};
    struct channel *ch = channel_new(4);
    void *old = NULL, *p = NULL;
    int id = 1;

    (void)state;
    /* Start mid-ring so the scan wraps. */
    assert_int_equal(channel_try_push(ch, item(0)), FERRY_OK);
    assert_int_equal(channel_try_push(ch, item(0)), FERRY_OK);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(channel_try_push(ch, &e[i]), FERRY_OK);

    assert_int_equal(channel_replace_newest(ch, match_id, &id, &repl, &old),
                     FERRY_OK);
    /* The newest entity 1 (version 2) was replaced, not version 1. */
    assert_ptr_equal(old, &e[2]);
    id = 4;
    old = NULL;
    assert_int_equal(channel_replace_newest(ch, match_id, &id, &repl2, &old),
                     FERRY_NOT_FOUND);
    assert_null(old);

    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_ptr_equal(p, &e[0]);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_ptr_equal(p, &e[1]);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_ptr_equal(p, &repl);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_ptr_equal(p, &e[3]);
    channel_free(ch, NULL);
}

static void test_drop_oldest(void **state)
{
    struct channel *ch = channel_new(2);
    void *old = NULL, *p = NULL;

    (void)state;
    assert_int_equal(channel_drop_oldest(ch, &old), FERRY_NOT_FOUND);
    assert_int_equal(channel_try_push(ch, item(1)), FERRY_OK);
    assert_int_equal(channel_try_push(ch, item(2)), FERRY_OK);
    assert_int_equal(channel_drop_oldest(ch, &old), FERRY_OK);
    assert_int_equal(val(old), 1);
    assert_int_equal(channel_try_push(ch, item(3)), FERRY_OK);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 2);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 3);
    channel_free(ch, NULL);
}

static int is_even(void *queued, void *arg)
{
    (void)arg;
    return val(queued) % 2 == 0;
}

static void test_drop_oldest_if(void **state)
{
    static const uintptr_t in[] = {1, 3, 2, 4}, out[] = {1, 3, 4, 5};
    struct channel *ch = channel_new(4);
    void *old = NULL, *p = NULL;

    (void)state;
    assert_int_equal(channel_drop_oldest_if(ch, is_even, NULL, &old),
                     FERRY_NOT_FOUND);
    /* Start mid-ring so the shift wraps. */
    for (uintptr_t i = 0; i < 3; i++) {
        assert_int_equal(channel_try_push(ch, item(99)), FERRY_OK);
        assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    }
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(channel_try_push(ch, item(in[i])), FERRY_OK);
    /* The oldest even one is 2; the others keep their order. */
    assert_int_equal(channel_drop_oldest_if(ch, is_even, NULL, &old), FERRY_OK);
    assert_int_equal(val(old), 2);
    assert_int_equal(channel_depth(ch), 3);
    assert_int_equal(channel_try_push(ch, item(5)), FERRY_OK);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
        assert_int_equal(val(p), out[i]);
    }
    assert_int_equal(channel_try_pop(ch, &p), FERRY_WOULD_BLOCK);
    assert_int_equal(channel_try_push(ch, item(1)), FERRY_OK);
    assert_int_equal(channel_drop_oldest_if(ch, is_even, NULL, &old),
                     FERRY_NOT_FOUND);
    channel_free(ch, NULL);
}

static int freed_count;

static void count_free(void *p)
{
    freed_count++;
    free(p);
}

static void test_free_frees_leftovers(void **state)
{
    struct channel *ch = channel_new(4);
    void *p = NULL;

    (void)state;
    freed_count = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(channel_try_push(ch, malloc(16)), FERRY_OK);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    free(p);
    assert_int_equal(channel_try_push(ch, malloc(16)), FERRY_OK);
    assert_int_equal(channel_try_push(ch, malloc(16)), FERRY_OK);
    channel_free(ch, count_free);
    assert_int_equal(freed_count, 4);
}

/* ---- close -------------------------------------------------------------- */

static void test_close_drains(void **state)
{
    struct channel *ch = channel_new(4);
    void *p = NULL;
    void *items[4];

    (void)state;
    assert_int_equal(channel_try_push(ch, item(1)), FERRY_OK);
    assert_int_equal(channel_try_push(ch, item(2)), FERRY_OK);
    assert_int_equal(channel_try_push(ch, item(3)), FERRY_OK);
    assert_false(channel_is_closed(ch));
    channel_close(ch);
    channel_close(ch);
    assert_true(channel_is_closed(ch));
    assert_int_equal(channel_push(ch, item(4)), FERRY_CLOSED);
    assert_int_equal(channel_try_push(ch, item(4)), FERRY_CLOSED);
    assert_int_equal(channel_push_until(ch, item(4), clock_now_ns() + MS),
                     FERRY_CLOSED);
    assert_int_equal(channel_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 1);
    assert_int_equal(channel_pop_many(ch, items, 1, UINT64_MAX), 1);
    assert_int_equal(val(items[0]), 2);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 3);
    assert_int_equal(channel_pop(ch, &p), FERRY_CLOSED);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_CLOSED);
    assert_int_equal(channel_pop_until(ch, &p, UINT64_MAX), FERRY_CLOSED);
    assert_int_equal(channel_pop_many(ch, items, 4, UINT64_MAX), 0);
    channel_free(ch, NULL);
}

struct waiter {
    struct channel *ch;
    void *item;
    uint64_t deadline;
    atomic_int done;
    int rc;
    size_t n;
};

static void *push_thread(void *arg)
{
    struct waiter *w = arg;

    w->rc = channel_push(w->ch, w->item);
    atomic_store(&w->done, 1);
    return NULL;
}

static void *pop_thread(void *arg)
{
    struct waiter *w = arg;

    w->rc = channel_pop(w->ch, &w->item);
    atomic_store(&w->done, 1);
    return NULL;
}

static void *pop_until_thread(void *arg)
{
    struct waiter *w = arg;

    w->rc = channel_pop_until(w->ch, &w->item, w->deadline);
    atomic_store(&w->done, 1);
    return NULL;
}

static void *pop_many_thread(void *arg)
{
    struct waiter *w = arg;
    void *items[4];

    w->n = channel_pop_many(w->ch, items, 4, w->deadline);
    w->item = w->n ? items[0] : NULL;
    atomic_store(&w->done, 1);
    return NULL;
}

static void test_close_wakes_waiters(void **state)
{
    struct channel *empty = channel_new(1), *full = channel_new(1);
    struct waiter popper = {.ch = empty}, pusher = {.ch = full};
    struct waiter many = {.ch = empty, .deadline = UINT64_MAX};
    pthread_t t1, t2, t3;

    (void)state;
    assert_int_equal(channel_try_push(full, item(1)), FERRY_OK);
    pusher.item = item(2);
    assert_int_equal(pthread_create(&t1, NULL, pop_thread, &popper), 0);
    assert_int_equal(pthread_create(&t2, NULL, push_thread, &pusher), 0);
    assert_int_equal(pthread_create(&t3, NULL, pop_many_thread, &many), 0);
    sleep_ms(30);
    assert_false(atomic_load(&popper.done));
    assert_false(atomic_load(&pusher.done));
    assert_false(atomic_load(&many.done));
    channel_close(empty);
    channel_close(full);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_join(t3, NULL);
    assert_int_equal(popper.rc, FERRY_CLOSED);
    assert_int_equal(pusher.rc, FERRY_CLOSED);
    assert_int_equal(many.n, 0);
    /* The refused item stayed with the caller; the queued one drains. */
    channel_free(empty, NULL);
    channel_free(full, NULL);
}

/* ---- blocking ----------------------------------------------------------- */

static void test_push_blocks_until_pop(void **state)
{
    struct channel *ch = channel_new(1);
    struct waiter w = {.ch = ch, .item = item(2)};
    pthread_t t;
    void *p = NULL;

    (void)state;
    assert_int_equal(channel_push(ch, item(1)), FERRY_OK);
    assert_int_equal(pthread_create(&t, NULL, push_thread, &w), 0);
    sleep_ms(30);
    assert_false(atomic_load(&w.done));
    assert_int_equal(channel_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 1);
    /* The blocked push completes into the freed slot. */
    assert_int_equal(channel_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 2);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, FERRY_OK);
    channel_free(ch, NULL);
}

static void test_pop_blocks_until_push(void **state)
{
    struct channel *ch = channel_new(1);
    struct waiter w = {.ch = ch}, m = {.ch = ch, .deadline = UINT64_MAX};
    pthread_t t;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, pop_thread, &w), 0);
    sleep_ms(30);
    assert_false(atomic_load(&w.done));
    assert_int_equal(channel_push(ch, item(5)), FERRY_OK);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, FERRY_OK);
    assert_int_equal(val(w.item), 5);

    assert_int_equal(pthread_create(&t, NULL, pop_many_thread, &m), 0);
    sleep_ms(30);
    assert_false(atomic_load(&m.done));
    assert_int_equal(channel_push(ch, item(6)), FERRY_OK);
    pthread_join(t, NULL);
    assert_int_equal(m.n, 1);
    assert_int_equal(val(m.item), 6);
    channel_free(ch, NULL);
}

/* ---- pop_batch ---------------------------------------------------------- */

static void *pop_batch_thread(void *arg)
{
    struct waiter *w = arg;
    void *items[4];

    w->n = channel_pop_batch(w->ch, items, 4, w->deadline);
    w->item = w->n ? items[0] : NULL;
    atomic_store(&w->done, 1);
    return NULL;
}

static void test_pop_batch(void **state)
{
    struct channel *ch = channel_new(8);
    struct waiter w = {.ch = ch, .deadline = UINT64_MAX};
    void *items[4];
    uint64_t start, deadline;
    pthread_t t;

    (void)state;
    /* Enough queued: returns at once. */
    for (uintptr_t i = 1; i <= 5; i++)
        assert_int_equal(channel_try_push(ch, item(i)), FERRY_OK);
    assert_int_equal(channel_pop_batch(ch, items, 4, 0), 4);
    assert_int_equal(val(items[0]), 1);
    assert_int_equal(val(items[3]), 4);
    /* Not enough: waits for the deadline, then takes what is there. */
    start = clock_now_ns();
    deadline = start + 30 * MS;
    assert_int_equal(channel_pop_batch(ch, items, 4, deadline), 1);
    assert_true(clock_now_ns() >= deadline);
    assert_int_equal(val(items[0]), 5);
    assert_int_equal(channel_pop_batch(ch, items, 4, clock_now_ns()), 0);

    /* A waiting batch is not handed out item by item. */
    assert_int_equal(pthread_create(&t, NULL, pop_batch_thread, &w), 0);
    for (uintptr_t i = 1; i <= 3; i++)
        assert_int_equal(channel_push(ch, item(i)), FERRY_OK);
    sleep_ms(30);
    assert_false(atomic_load(&w.done));
    assert_int_equal(channel_push(ch, item(4)), FERRY_OK);
    pthread_join(t, NULL);
    assert_int_equal(w.n, 4);
    assert_int_equal(val(w.item), 1);

    /* Kick and close end the wait with what is there. */
    w = (struct waiter){.ch = ch, .deadline = UINT64_MAX};
    assert_int_equal(pthread_create(&t, NULL, pop_batch_thread, &w), 0);
    assert_int_equal(channel_push(ch, item(7)), FERRY_OK);
    sleep_ms(30);
    assert_false(atomic_load(&w.done));
    channel_kick(ch);
    pthread_join(t, NULL);
    assert_int_equal(w.n, 1);
    assert_int_equal(val(w.item), 7);
    w = (struct waiter){.ch = ch, .deadline = UINT64_MAX};
    assert_int_equal(pthread_create(&t, NULL, pop_batch_thread, &w), 0);
    sleep_ms(30);
    channel_close(ch);
    pthread_join(t, NULL);
    assert_int_equal(w.n, 0);
    channel_free(ch, NULL);
}

/* A batch waiter woken by an item it does not want yet passes the wakeup
 * on to a plain popper that does. */
static void test_pop_batch_with_plain_popper(void **state)
{
    struct channel *ch = channel_new(8);
    struct waiter b = {.ch = ch}, p = {.ch = ch};
    pthread_t tb, tp;
    uint64_t deadline;

    (void)state;
    b.deadline = clock_now_ns() + 60000 * MS;
    assert_int_equal(pthread_create(&tb, NULL, pop_batch_thread, &b), 0);
    sleep_ms(20);
    assert_int_equal(pthread_create(&tp, NULL, pop_thread, &p), 0);
    sleep_ms(20);
    assert_int_equal(channel_push(ch, item(1)), FERRY_OK);
    deadline = clock_now_ns() + 5000 * MS;
    while (!atomic_load(&p.done) && clock_now_ns() < deadline)
        sleep_ms(1);
    assert_true(atomic_load(&p.done));
    assert_int_equal(p.rc, FERRY_OK);
    assert_int_equal(val(p.item), 1);
    assert_false(atomic_load(&b.done));
    channel_close(ch);
    pthread_join(tb, NULL);
    pthread_join(tp, NULL);
    assert_int_equal(b.n, 0);
    channel_free(ch, NULL);
}

/* ---- timeouts ----------------------------------------------------------- */

static void test_timeouts(void **state)
{
    struct channel *ch = channel_new(1);
    void *p = NULL, *items[2];
    uint64_t start, deadline;

    (void)state;
    start = clock_now_ns();
    deadline = start + 40 * MS;
    assert_int_equal(channel_pop_until(ch, &p, deadline), FERRY_TIMEDOUT);
    assert_true(clock_now_ns() >= deadline);
    assert_true(clock_now_ns() < start + 2000 * MS);

    start = clock_now_ns();
    deadline = start + 40 * MS;
    assert_int_equal(channel_pop_many(ch, items, 2, deadline), 0);
    assert_true(clock_now_ns() >= deadline);

    assert_int_equal(channel_push(ch, item(1)), FERRY_OK);
    start = clock_now_ns();
    deadline = start + 40 * MS;
    assert_int_equal(channel_push_until(ch, item(2), deadline), FERRY_TIMEDOUT);
    assert_true(clock_now_ns() >= deadline);
    assert_true(clock_now_ns() < start + 2000 * MS);

    /* A deadline in the past fails at once with TIMEDOUT. */
    assert_int_equal(channel_push_until(ch, item(2), 0), FERRY_TIMEDOUT);
    assert_int_equal(channel_pop_until(ch, &p, 0), FERRY_OK);
    assert_int_equal(channel_pop_until(ch, &p, 0), FERRY_TIMEDOUT);
    channel_free(ch, NULL);
}

static void test_timed_pop_gets_item(void **state)
{
    struct channel *ch = channel_new(1);
    struct waiter w = {.ch = ch};
    pthread_t t;

    (void)state;
    w.deadline = clock_now_ns() + 10000 * MS;
    assert_int_equal(pthread_create(&t, NULL, pop_until_thread, &w), 0);
    sleep_ms(10);
    assert_int_equal(channel_push(ch, item(3)), FERRY_OK);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, FERRY_OK);
    assert_int_equal(val(w.item), 3);
    channel_free(ch, NULL);
}

/* ---- kick --------------------------------------------------------------- */

static void test_kick(void **state)
{
    struct channel *ch = channel_new(2);
    struct waiter a = {.ch = ch}, b = {.ch = ch}, c = {.ch = ch};
    pthread_t ta, tb, tc;
    uint64_t start, deadline;
    void *p = NULL;

    (void)state;
    a.deadline = clock_now_ns() + 60000 * MS;
    b.deadline = UINT64_MAX;
    assert_int_equal(pthread_create(&ta, NULL, pop_until_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, pop_many_thread, &b), 0);
    assert_int_equal(pthread_create(&tc, NULL, pop_thread, &c), 0);
    sleep_ms(30);
    assert_false(atomic_load(&a.done));
    assert_false(atomic_load(&b.done));
    assert_false(atomic_load(&c.done));
    channel_kick(ch);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    assert_int_equal(a.rc, FERRY_TIMEDOUT);
    assert_int_equal(b.n, 0);
    assert_int_equal(c.rc, FERRY_TIMEDOUT);
    assert_false(channel_is_closed(ch));

    /* A kick wakes only those waiting at the time: a later pop waits. */
    start = clock_now_ns();
    deadline = start + 30 * MS;
    assert_int_equal(channel_pop_until(ch, &p, deadline), FERRY_TIMEDOUT);
    assert_true(clock_now_ns() >= deadline);
    /* The channel still works. */
    assert_int_equal(channel_push(ch, item(1)), FERRY_OK);
    assert_int_equal(channel_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 1);
    channel_free(ch, NULL);
}

/* ---- on_room ------------------------------------------------------------ */

struct room {
    struct channel *ch;
    int calls;
    int repush_rc;
};

static void on_room(void *arg)
{
    struct room *r = arg;

    r->calls++;
    /* Would deadlock if the callback ran under the channel lock. */
    r->repush_rc = channel_try_push(r->ch, item(42));
}

static void test_on_room(void **state)
{
    struct channel *ch = channel_new(1);
    struct room r = {.ch = ch, .repush_rc = 1};
    void *p = NULL, *items[1];

    (void)state;
    channel_on_room(ch, on_room, &r);
    assert_int_equal(channel_try_push(ch, item(1)), FERRY_OK);
    /* A pop without a failed push before it: no callback. */
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(r.calls, 0);

    assert_int_equal(channel_try_push(ch, item(1)), FERRY_OK);
    assert_int_equal(channel_try_push(ch, item(2)), FERRY_WOULD_BLOCK);
    assert_int_equal(channel_try_push(ch, item(2)), FERRY_WOULD_BLOCK);
    assert_int_equal(r.calls, 0);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 1);
    /* Once per failure episode, however many pushes failed. */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.repush_rc, FERRY_OK);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(val(p), 42);
    assert_int_equal(r.calls, 1);

    /* A failed reservation arms it too, and pop_many fires it. */
    assert_int_equal(channel_try_push(ch, item(3)), FERRY_OK);
    assert_int_equal(channel_reserve(ch), FERRY_WOULD_BLOCK);
    assert_int_equal(channel_pop_many(ch, items, 1, 0), 1);
    assert_int_equal(r.calls, 2);
    assert_int_equal(channel_pop_many(ch, items, 1, 0), 1);
    assert_int_equal(val(items[0]), 42);

    /* Giving back a reservation makes room as well. */
    assert_int_equal(channel_reserve(ch), FERRY_OK);
    assert_int_equal(channel_try_push(ch, item(4)), FERRY_WOULD_BLOCK);
    r.repush_rc = 1;
    channel_unreserve(ch);
    assert_int_equal(r.calls, 3);
    assert_int_equal(r.repush_rc, FERRY_OK);
    assert_int_equal(channel_drop_oldest(ch, &p), FERRY_OK);
    assert_int_equal(r.calls, 3);

    /* A blocking push that times out does not arm it. */
    assert_int_equal(channel_try_push(ch, item(5)), FERRY_OK);
    assert_int_equal(channel_push_until(ch, item(6), clock_now_ns()),
                     FERRY_TIMEDOUT);
    assert_int_equal(channel_try_pop(ch, &p), FERRY_OK);
    assert_int_equal(r.calls, 3);
    channel_free(ch, NULL);
}

/* ---- concurrency -------------------------------------------------------- */

#define PRODUCERS 4
#define MAX_PER_PRODUCER 100000u
#define CONSUMERS 4

struct mpmc {
    struct channel *ch;
    atomic_uchar *seen; /* one counter per item */
    atomic_uint received;
    atomic_int order_errors;
    int use_pop_many;
    int timed;  /* short deadlines everywhere, to race timeouts */
    int strict; /* single consumer: sequence must be exactly next */
    uintptr_t per_producer;
};

struct producer {
    struct mpmc *m;
    uintptr_t id;
    int rc;
};

struct consumer {
    struct mpmc *m;
    int index;
};

static void *producer_run(void *arg)
{
    struct producer *p = arg;

    p->rc = FERRY_OK;
    for (uintptr_t i = 0; i < p->m->per_producer; i++) {
        void *it = item(p->id * MAX_PER_PRODUCER + i + 1);
        int rc;

        if (p->m->timed) {
            do {
                rc = channel_push_until(p->m->ch, it, clock_now_ns() + 200000);
            } while (rc == FERRY_TIMEDOUT);
        } else {
            rc = channel_push(p->m->ch, it);
        }
        if (rc != FERRY_OK) {
            p->rc = rc;
            break;
        }
    }
    return NULL;
}

static void consume_one(struct mpmc *m, uintptr_t v, long *last)
{
    uintptr_t n = v - 1, prod = n / MAX_PER_PRODUCER;
    long seq = (long)(n % MAX_PER_PRODUCER);

    if (prod >= PRODUCERS || (uintptr_t)seq >= m->per_producer) {
        atomic_fetch_add(&m->order_errors, 1);
        return;
    }
    /* Per producer, one consumer sees a strictly increasing subsequence
     * (exactly consecutive when it is the only consumer). */
    if (m->strict ? seq != last[prod] + 1 : seq <= last[prod])
        atomic_fetch_add(&m->order_errors, 1);
    last[prod] = seq;
    atomic_fetch_add(&m->seen[prod * m->per_producer + (uintptr_t)seq], 1);
    atomic_fetch_add(&m->received, 1);
}

static void *consumer_run(void *arg)
{
    struct consumer *c = arg;
    struct mpmc *m = c->m;
    long last[PRODUCERS];
    void *items[32];

    for (int i = 0; i < PRODUCERS; i++)
        last[i] = -1;
    for (;;) {
        if (m->use_pop_many && c->index % 2 == 0) {
            uint64_t deadline = m->timed ? clock_now_ns() + 100000 : UINT64_MAX;
            size_t n = channel_pop_many(m->ch, items, 32, deadline);

            if (n == 0 && channel_is_closed(m->ch) && channel_depth(m->ch) == 0)
                break;
            for (size_t i = 0; i < n; i++)
                consume_one(m, val(items[i]), last);
        } else {
            void *p;
            int rc = m->timed
                         ? channel_pop_until(m->ch, &p, clock_now_ns() + 300000)
                         : channel_pop(m->ch, &p);

            if (rc == FERRY_CLOSED)
                break;
            if (rc == FERRY_OK)
                consume_one(m, val(p), last);
        }
    }
    return NULL;
}

static void run_mpmc(size_t capacity, int consumers, int use_pop_many,
                     int timed, uintptr_t per_producer)
{
    struct mpmc m = {0};
    struct producer prods[PRODUCERS];
    struct consumer cons[CONSUMERS];
    pthread_t pt[PRODUCERS], ct[CONSUMERS];
    size_t total = (size_t)PRODUCERS * per_producer;

    m.ch = channel_new(capacity);
    m.seen = calloc(total, sizeof(*m.seen));
    m.use_pop_many = use_pop_many;
    m.timed = timed;
    m.strict = consumers == 1;
    m.per_producer = per_producer;
    assert_non_null(m.ch);
    assert_non_null(m.seen);
    for (int i = 0; i < consumers; i++) {
        cons[i].m = &m;
        cons[i].index = i;
        assert_int_equal(pthread_create(&ct[i], NULL, consumer_run, &cons[i]),
                         0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        prods[i].m = &m;
        prods[i].id = (uintptr_t)i;
        assert_int_equal(pthread_create(&pt[i], NULL, producer_run, &prods[i]),
                         0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(pt[i], NULL);
        assert_int_equal(prods[i].rc, FERRY_OK);
    }
    channel_close(m.ch);
    for (int i = 0; i < consumers; i++)
        pthread_join(ct[i], NULL);

    assert_int_equal(atomic_load(&m.order_errors), 0);
    assert_int_equal(atomic_load(&m.received), total);
    for (size_t i = 0; i < total; i++) {
        if (atomic_load(&m.seen[i]) != 1)
            fail_msg("item %zu received %d times", i,
                     (int)atomic_load(&m.seen[i]));
    }
    assert_int_equal(channel_depth(m.ch), 0);
    free(m.seen);
    channel_free(m.ch, NULL);
}

static void test_mpmc_exactly_once(void **state)
{
    (void)state;
    run_mpmc(64, CONSUMERS, 1, 0, MAX_PER_PRODUCER);
}

static void test_mpmc_tiny_capacity(void **state)
{
    (void)state;
    /* Capacity 1 makes every operation a handoff: fewer items keep it fast. */
    run_mpmc(1, CONSUMERS, 0, 0, 5000);
}

/* Waits that time out while items or room arrive must lose nothing. */
static void test_mpmc_timed_waits(void **state)
{
    (void)state;
    run_mpmc(8, CONSUMERS, 1, 1, 20000);
}

static void test_single_consumer_fifo(void **state)
{
    (void)state;
    run_mpmc(100, 1, 0, 0, MAX_PER_PRODUCER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_zero_capacity),
        cmocka_unit_test(test_try_variants),
        cmocka_unit_test(test_pop_many),
        cmocka_unit_test(test_reservations),
        cmocka_unit_test(test_replace_newest),
        cmocka_unit_test(test_drop_oldest),
        cmocka_unit_test(test_drop_oldest_if),
        cmocka_unit_test(test_free_frees_leftovers),
        cmocka_unit_test(test_close_drains),
        cmocka_unit_test(test_close_wakes_waiters),
        cmocka_unit_test(test_push_blocks_until_pop),
        cmocka_unit_test(test_pop_blocks_until_push),
        cmocka_unit_test(test_pop_batch),
        cmocka_unit_test(test_pop_batch_with_plain_popper),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_timed_pop_gets_item),
        cmocka_unit_test(test_kick),
        cmocka_unit_test(test_on_room),
        cmocka_unit_test(test_mpmc_exactly_once),
        cmocka_unit_test(test_mpmc_tiny_capacity),
        cmocka_unit_test(test_mpmc_timed_waits),
        cmocka_unit_test(test_single_consumer_fifo),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
