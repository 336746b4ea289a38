/*
 * tests/unit/test_sched_more.c: the scheduler paths test_sched.c does not
 * reach, with the fixture plugins source_mix, sink_probe and
 * policy_verdict (tests/plugins/): fan-out to several routes with `match`
 * filtering, barriers across routes into different sinks, the admission
 * verdicts (coalesce, drop_newest, drop_oldest) with barriers and commit
 * tracking, shutdown while the source waits for room, the emit() +
 * wakeup() handshake, and what batch->commit promises under fan-out.
 *
 * Tests that show a known, not yet fixed scheduler bug are skipped unless
 * FERRY_TEST_KNOWN_BUGS=1 is set; each names the bug it shows.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline_util.h"
#include "tracker.h"

/* The instance called name. */
static struct ferry_ctx *instance(struct pipeline *pl, const char *name)
{
    for (size_t i = 0; i < pl->ninstances; i++)
        if (strcmp(pl->instances[i]->name, name) == 0)
            return pl->instances[i];
    fail();
    return NULL;
}

/* The committed replay position of source name. */
static struct ferry_pos committed(struct pipeline *pl, const char *name)
{
    struct ferry_pos p;

    sched_committed(instance(pl, name), &p);
    return p;
}

static double sink_metric(const char *name, const char *sink)
{
    return metric_l(name, "sink", sink, NULL);
}

static int64_t sink_type(const char *sink, const char *type)
{
    return (int64_t)metric_l("test_probe_type_total", "sink", sink, "type",
                             type, NULL);
}

static int setup(void **state)
{
    (void)state;
    return pipeline_test_reset(FERRY_LOG_ERROR + 1);
}

/* ---- the tracker against a model -------------------------------------- */

/* The committed position a model computes: the newest set position in the
 * contiguous prefix of sequence numbers that are done (or in extra), never
 * below start. */
static struct ferry_pos model_commit(const unsigned char *done,
                                     const struct ferry_pos *pos, uint64_t next,
                                     struct ferry_pos start,
                                     const uint64_t *extra, size_t nextra)
{
    struct ferry_pos out = start;

    for (uint64_t s = 1; s < next; s++) {
        int d = done[s];
        for (size_t i = 0; i < nextra && !d; i++)
            d = extra[i] == s;
        if (!d)
            break;
        if (pos[s].set && ferry_pos_cmp(&pos[s], &out) > 0)
            out = pos[s];
    }
    return out;
}

static int pos_eq(struct ferry_pos a, struct ferry_pos b)
{
    return a.set == b.set && (!a.set || (a.ms == b.ms && a.seq == b.seq));
}

/* Random additions (positions out of order, some unset), completions in
 * any order, and previews of random sets: tracker_committed() and
 * tracker_preview() always equal the model, so the cursor never passes a
 * sequence number that is not done and a preview never promises more than
 * the completion would commit. Crosses the ring's growth. */
static void test_tracker_matches_model(void **state)
{
    (void)state;
    enum { N = 6000 };
    static unsigned char done[N + 1];
    static struct ferry_pos pos[N + 1];
    struct ferry_pos start = {50, 0, 1};
    struct tracker t;
    uint64_t next = 1;
    unsigned seed = 12345;

    memset(done, 0, sizeof(done));
    tracker_init(&t);
    tracker_set_committed(&t, &start);
    for (int step = 0; step < 40000; step++) {
        unsigned r = (unsigned)rand_r(&seed);
        if (r % 3 == 0 && next <= N) {
            struct ferry_pos p = {0, 0, 0};
            if (r % 5)
                p = (struct ferry_pos){(uint64_t)(rand_r(&seed) % 9000), 0, 1};
            pos[next] = p;
            assert_int_equal(tracker_add(&t, &p), next);
            next++;
        } else if (r % 3 == 1 && next > 1) {
            uint64_t s = 1 + (uint64_t)rand_r(&seed) % (next - 1);
            done[s] = 1;
            tracker_done(&t, s);
        } else if (next > 1) {
            uint64_t extra[5];
            size_t n = (size_t)rand_r(&seed) % 5;
            for (size_t i = 0; i < n; i++)
                extra[i] = 1 + (uint64_t)rand_r(&seed) % (next - 1);
            struct ferry_pos want =
                model_commit(done, pos, next, start, extra, n);
            assert_true(pos_eq(tracker_preview(&t, extra, n), want));
        }
        struct ferry_pos want = model_commit(done, pos, next, start, NULL, 0);
        assert_true(pos_eq(tracker_committed(&t), want));
    }
    tracker_release(&t);
}

/* ---- fan-out and match -------------------------------------------------- */

/* One source, three routes with different `match`: each sink gets exactly
 * the types its route matches, every message once and in order per
 * entity, and the cursor reaches the end once all three applied it. */
static void test_fanout_and_match(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 3000\nentities = 50\n"
             "types = company, user, flags\n"
             "[sink.a]\nplugin = probe\n"
             "[sink.b]\nplugin = probe\n"
             "[sink.c]\nplugin = probe\n"
             "[route.r1]\nfrom = mix\nto = a\nmatch = company\nworkers = 3\n"
             "batch_size = 7\nchannel_size = 30\nbatch_timeout = 1ms\n"
             "[route.r2]\nfrom = mix\nto = b\nmatch = user, flags\n"
             "workers = 2\nbatch_size = 5\nchannel_size = 20\n"
             "batch_timeout = 1ms\n"
             "[route.r3]\nfrom = mix\nto = c\nworkers = 4\nbatch_size = 16\n"
             "channel_size = 64\nbatch_timeout = 1ms\n");
    run_to_end(pl);
    assert_int_equal(sink_type("a", "company"), 1000);
    assert_int_equal(sink_type("a", "user"), 0);
    assert_int_equal(sink_type("a", "flags"), 0);
    assert_int_equal(sink_type("b", "company"), 0);
    assert_int_equal(sink_type("b", "user"), 1000);
    assert_int_equal(sink_type("b", "flags"), 1000);
    assert_int_equal(sink_type("c", "company"), 1000);
    assert_int_equal(sink_type("c", "user"), 1000);
    assert_int_equal(sink_type("c", "flags"), 1000);
    assert_int_equal((int64_t)metric("test_probe_order_violations_total"), 0);
    assert_int_equal((int64_t)metric("ferry_source_unrouted_total"), 0);
    assert_int_equal(
        (int64_t)metric_l("ferry_messages_applied_total", "route", "r3", NULL),
        3000);
    /* Every message reached a verdict everywhere: the cursor is at the
     * end. */
    struct ferry_pos p = committed(pl, "mix");
    assert_true(p.set);
    assert_int_equal(p.ms, 3000);
    pipeline_free(pl);
}

/* A type no route matches is counted as unrouted, and still does not hold
 * the cursor back. */
static void test_unrouted_type_moves_cursor(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 600\nentities = 10\n"
             "types = company, user\n"
             "[sink.a]\nplugin = probe\n"
             "[route.r1]\nfrom = mix\nto = a\nmatch = company\nworkers = 2\n"
             "batch_timeout = 1ms\n");
    run_to_end(pl);
    assert_int_equal(sink_type("a", "company"), 300);
    assert_int_equal((int64_t)metric("ferry_source_unrouted_total"), 300);
    assert_int_equal(committed(pl, "mix").ms, 600);
    pipeline_free(pl);
}

/* ---- barriers across routes --------------------------------------------- */

/* Barriers from one source into two sinks over three routes (two of them
 * into sink a): each sink gets every barrier exactly once, alone, after
 * every message emitted before it was applied by every sink, and before
 * anything emitted after it. */
static void test_barrier_across_routes_and_sinks(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 4000\nentities = 40\n"
             "types = company, user\ncontrol_every = 250\n"
             "[sink.a]\nplugin = probe\nexpect = company, user\n"
             "[sink.b]\nplugin = probe\nexpect = user\ndelay = 1ms\n"
             "[route.r1]\nfrom = mix\nto = a\nmatch = company\nworkers = 3\n"
             "batch_size = 8\nchannel_size = 48\nbatch_timeout = 1ms\n"
             "[route.r2]\nfrom = mix\nto = b\nmatch = user\nworkers = 2\n"
             "batch_size = 4\nchannel_size = 16\nbatch_timeout = 1ms\n"
             "[route.r3]\nfrom = mix\nto = a\nmatch = user\nworkers = 2\n"
             "batch_size = 8\nchannel_size = 32\nbatch_timeout = 1ms\n");
    run_to_end(pl);
    assert_int_equal((int64_t)sink_metric("test_probe_controls_total", "a"),
                     16);
    assert_int_equal((int64_t)sink_metric("test_probe_controls_total", "b"),
                     16);
    assert_int_equal((int64_t)metric("test_probe_barrier_violations_total"), 0);
    assert_int_equal((int64_t)metric("test_probe_order_violations_total"), 0);
    assert_int_equal((int64_t)sink_metric("test_probe_messages_total", "a"),
                     4000);
    assert_int_equal((int64_t)sink_metric("test_probe_messages_total", "b"),
                     2000);
    pipeline_free(pl);
}

/* ---- admission verdicts ------------------------------------------------- */

/* drop_oldest never drops a barrier, every message is either applied or
 * counted as dropped, per-entity order holds, and the cursor reaches the
 * end (a dropped message is done, not pending). */
static void test_drop_oldest_keeps_barriers(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 200\nentities = 5\n"
             "control_every = 20\n"
             "[sink.a]\nplugin = probe\ndelay = 3ms\n"
             "[policy.v]\nplugin = verdict\nverdict = drop_oldest\n"
             "[route.r]\nfrom = mix\nto = a\nworkers = 1\nbatch_size = 1\n"
             "channel_size = 4\nbatch_timeout = 0\npolicies = v\n");
    run_to_end(pl);
    double applied = sink_metric("test_probe_messages_total", "a");
    double dropped =
        metric_l("ferry_messages_dropped_total", "reason", "drop_oldest", NULL);
    assert_true(dropped > 0);
    assert_int_equal((int64_t)(applied + dropped), 200);
    assert_int_equal((int64_t)sink_metric("test_probe_controls_total", "a"),
                     10);
    assert_int_equal((int64_t)metric("test_probe_barrier_violations_total"), 0);
    assert_int_equal((int64_t)metric("test_probe_order_violations_total"), 0);
    assert_int_equal((int64_t)sink_metric("test_probe_checkpoint", "a"), 200);
    pipeline_free(pl);
}

/* drop_newest: applied plus dropped is everything, and dropped messages
 * do not hold the cursor back. */
static void test_drop_newest_counts(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 200\nentities = 5\n"
             "control_every = 50\n"
             "[sink.a]\nplugin = probe\ndelay = 3ms\n"
             "[policy.v]\nplugin = verdict\nverdict = drop_newest\n"
             "[route.r]\nfrom = mix\nto = a\nworkers = 1\nbatch_size = 1\n"
             "channel_size = 4\nbatch_timeout = 0\npolicies = v\n");
    run_to_end(pl);
    double applied = sink_metric("test_probe_messages_total", "a");
    double dropped =
        metric_l("ferry_messages_dropped_total", "reason", "drop_newest", NULL);
    assert_true(dropped > 0);
    assert_int_equal((int64_t)(applied + dropped), 200);
    assert_int_equal((int64_t)sink_metric("test_probe_controls_total", "a"), 4);
    assert_int_equal((int64_t)metric("test_probe_barrier_violations_total"), 0);
    assert_int_equal(committed(pl, "mix").ms, 200);
    pipeline_free(pl);
}

/* Coalescing with fan-out: route r1 coalesces, route r2 (no policy)
 * gets every message. Nothing is lost on r2, order holds on both, and
 * the cursor reaches the end. */
static void test_coalesce_with_fanout(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 400\nentities = 3\n"
             "[sink.a]\nplugin = probe\ndelay = 2ms\n"
             "[sink.b]\nplugin = probe\n"
             "[policy.v]\nplugin = verdict\nverdict = coalesce\n"
             "[route.r1]\nfrom = mix\nto = a\nworkers = 1\nbatch_size = 1\n"
             "channel_size = 4\nbatch_timeout = 0\npolicies = v\n"
             "[route.r2]\nfrom = mix\nto = b\nworkers = 2\nbatch_size = 8\n"
             "channel_size = 64\nbatch_timeout = 1ms\n");
    run_to_end(pl);
    double coalesced =
        metric_l("ferry_messages_coalesced_total", "route", "r1", NULL);
    assert_true(coalesced > 0);
    assert_int_equal(
        (int64_t)(sink_metric("test_probe_messages_total", "a") + coalesced),
        400);
    assert_int_equal((int64_t)sink_metric("test_probe_messages_total", "b"),
                     400);
    assert_int_equal((int64_t)metric("test_probe_order_violations_total"), 0);
    assert_int_equal(committed(pl, "mix").ms, 400);
    pipeline_free(pl);
}

/* A message emitted after a barrier must not replace (coalesce) one
 * queued before it: the sink would get it before the barrier. */
static void test_coalesce_never_crosses_barrier(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 60\nentities = 1\n"
             "control_every = 10\n"
             "[sink.a]\nplugin = probe\ndelay = 20ms\n"
             "[policy.v]\nplugin = verdict\nverdict = coalesce\n"
             "[route.r]\nfrom = mix\nto = a\nworkers = 1\nbatch_size = 1\n"
             "channel_size = 4\nbatch_timeout = 0\npolicies = v\n");
    run_to_end(pl);
    assert_true(metric("ferry_messages_coalesced_total") > 0);
    assert_int_equal((int64_t)sink_metric("test_probe_controls_total", "a"), 6);
    assert_int_equal((int64_t)metric("test_probe_barrier_violations_total"), 0);
    assert_int_equal((int64_t)metric("test_probe_order_violations_total"), 0);
    pipeline_free(pl);
}

/* ---- shutdown while the source waits for room --------------------------- */

/* A source blocked in emit_wait() on a full channel (with barriers in the
 * stream) stops promptly, and everything it was told was taken is applied
 * and committed. */
static void test_shutdown_while_blocked_in_emit_wait(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "shutdown_timeout = 30s\n"
             "[source.mix]\nplugin = mix\ncount = 1000000000\n"
             "entities = 7\ncontrol_every = 13\n"
             "[sink.a]\nplugin = probe\ndelay = 10ms\n"
             "[route.r]\nfrom = mix\nto = a\nworkers = 2\nbatch_size = 2\n"
             "channel_size = 4\nbatch_timeout = 0\n");
    assert_int_equal(pipeline_start(pl), 0);
    assert_true(wait_metric("test_probe_messages_total", 10, 5000));
    usleep(50000);
    uint64_t t0 = clock_now_ns();
    pipeline_request_stop(pl, 0, "test");
    assert_int_equal(pipeline_shutdown(pl), 0);
    assert_true(clock_now_ns() - t0 < 3000000000ull);
    double emitted = metric("test_mix_emitted_total");
    assert_true(emitted >= 10);
    assert_int_equal((int64_t)sink_metric("test_probe_messages_total", "a"),
                     (int64_t)emitted);
    assert_int_equal((int64_t)sink_metric("test_probe_checkpoint", "a"),
                     (int64_t)emitted);
    assert_int_equal((int64_t)metric("test_probe_barrier_violations_total"), 0);
    pipeline_free(pl);
}

/* The same with a source that uses emit() and waits for wakeup(). */
static void test_shutdown_while_waiting_for_wakeup(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "shutdown_timeout = 30s\n"
             "[source.mix]\nplugin = mix\ncount = 1000000000\n"
             "entities = 7\ncontrol_every = 13\nmode = wakeup\n"
             "wakeup_timeout = 10s\n"
             "[sink.a]\nplugin = probe\ndelay = 10ms\n"
             "[route.r]\nfrom = mix\nto = a\nworkers = 2\nbatch_size = 2\n"
             "channel_size = 4\nbatch_timeout = 0\n");
    assert_int_equal(pipeline_start(pl), 0);
    assert_true(wait_metric("test_mix_blocked_total", 3, 5000));
    uint64_t t0 = clock_now_ns();
    pipeline_request_stop(pl, 0, "test");
    assert_int_equal(pipeline_shutdown(pl), 0);
    assert_true(clock_now_ns() - t0 < 3000000000ull);
    double emitted = metric("test_mix_emitted_total");
    assert_int_equal((int64_t)sink_metric("test_probe_messages_total", "a"),
                     (int64_t)emitted);
    assert_int_equal((int64_t)sink_metric("test_probe_checkpoint", "a"),
                     (int64_t)emitted);
    pipeline_free(pl);
}

/* ---- emit() + wakeup() -------------------------------------------------- */

/* Every FERRY_WOULD_BLOCK from emit() is followed by a wakeup() once a
 * worker makes room. A worker that pops between the refused reservation
 * and the moment emit() records that the source waits finds nobody
 * waiting, and that wakeup never comes. The window is narrow; sixteen
 * fanned-out routes of one-slot channels widen it (a refusal by a later
 * route first gives back the earlier routes' reservations) and make
 * thousands of round trips a second. With the bug, this measured about
 * eight lost wakeups a second on two cores. */
static void test_emit_wakeup_not_lost(void **state)
{
    (void)state;
    char text[8192];
    int len = snprintf(text, sizeof(text), "%s",
                       HEAD "[source.mix]\nplugin = mix\n"
                            "count = 1000000000\nentities = 100\n"
                            "mode = wakeup\nwakeup_timeout = 1s\n"
                            "max_lost = 1\nlinger = true\n"
                            "[sink.a]\nplugin = probe\n");
    for (int i = 0; i < 16; i++)
        len += snprintf(text + len, sizeof(text) - (size_t)len,
                        "[route.r%d]\nfrom = mix\nto = a\nworkers = 1\n"
                        "batch_size = 1\nchannel_size = 1\n"
                        "batch_timeout = 0\n",
                        i);
    assert_true((size_t)len < sizeof(text));
    struct pipeline *pl = make_pipeline(text);
    assert_int_equal(pipeline_start(pl), 0);
    uint64_t until = clock_now_ns() + 2000000000ull;
    while (clock_now_ns() < until && metric("test_mix_lost_wakeups_total") == 0)
        usleep(10000);
    pipeline_request_stop(pl, 0, "test");
    assert_int_equal(pipeline_shutdown(pl), 0);
    assert_int_equal((int64_t)metric("test_mix_lost_wakeups_total"), 0);
    assert_true(metric("test_mix_blocked_total") > 100);
    pipeline_free(pl);
}

/* ---- what batch->commit promises ---------------------------------------- */

/* With fan-out, batch->commit must not include a message that another
 * route has not applied yet: here route r2's sink never applies anything,
 * so nothing is committed and a's batches must not claim otherwise. */
static void test_fanout_commit_never_leads(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "shutdown_timeout = 200ms\n"
             "[source.mix]\nplugin = mix\ncount = 200\nentities = 10\n"
             "linger = true\n"
             "[sink.a]\nplugin = probe\n"
             "[sink.b]\nplugin = probe\nretry = true\n"
             "[route.r1]\nfrom = mix\nto = a\nworkers = 1\nbatch_size = 10\n"
             "batch_timeout = 1ms\n"
             "[route.r2]\nfrom = mix\nto = b\nworkers = 1\nbatch_size = 10\n"
             "batch_timeout = 1ms\n");
    assert_int_equal(pipeline_start(pl), 0);
    assert_true(wait_metric("test_probe_messages_total", 200, 5000));
    pipeline_request_stop(pl, 0, "test");
    pipeline_shutdown(pl);
    assert_false(committed(pl, "mix").set);
    assert_int_equal((int64_t)sink_metric("test_probe_commit_max", "a"), 0);
    pipeline_free(pl);
}

/* Each route's final checkpoint is the committed position after the whole
 * drain, not the one when that route's own workers happened to finish
 * (which, with a slower second route, is behind). */
static void test_final_checkpoint_after_every_route(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 300\nentities = 10\n"
             "[sink.a]\nplugin = probe\n"
             "[sink.b]\nplugin = probe\ndelay = 2ms\n"
             "[route.r1]\nfrom = mix\nto = a\nworkers = 2\nbatch_size = 10\n"
             "channel_size = 1000\nbatch_timeout = 1ms\n"
             "[route.r2]\nfrom = mix\nto = b\nworkers = 1\nbatch_size = 1\n"
             "channel_size = 1000\nbatch_timeout = 0\n");
    run_to_end(pl);
    assert_int_equal((int64_t)sink_metric("test_probe_checkpoint", "b"), 300);
    assert_int_equal((int64_t)sink_metric("test_probe_checkpoint", "a"), 300);
    pipeline_free(pl);
}

/* ---- sink open() failures ----------------------------------------------- */

/* A worker whose sink open() keeps failing must not hand batches to
 * write() with a NULL context when the pipeline stops; the messages stay
 * behind the cursor. */
static void test_open_failure_never_writes_null(void **state)
{
    (void)state;
    struct pipeline *pl = make_pipeline(
        HEAD "shutdown_timeout = 5s\n"
             "[source.mix]\nplugin = mix\ncount = 20\nentities = 5\n"
             "linger = true\n"
             "[sink.a]\nplugin = probe\nopen_fail = true\n"
             "[route.r]\nfrom = mix\nto = a\nworkers = 1\n"
             "channel_size = 100\nbatch_timeout = 1ms\n");
    assert_int_equal(pipeline_start(pl), 0);
    assert_true(wait_metric("test_mix_emitted_total", 20, 5000));
    pipeline_request_stop(pl, 0, "test");
    pipeline_shutdown(pl);
    assert_int_equal((int64_t)metric("test_probe_null_wctx_total"), 0);
    assert_false(committed(pl, "mix").set);
    pipeline_free(pl);
}

/* ---- freeing leftovers -------------------------------------------------- */

/* Messages still queued when a pipeline is freed (here: emitted into a
 * pipeline that never started) are freed once each, a barrier queued in
 * several worker channels included. */
static void test_free_leftover_barrier_once(void **state)
{
    (void)state;
    struct pipeline *pl =
        make_pipeline(HEAD "[source.mix]\nplugin = mix\n"
                           "[sink.a]\nplugin = probe\n"
                           "[route.r]\nfrom = mix\nto = a\nworkers = 3\n");
    struct ferry_ctx *src = instance(pl, "mix");
    struct ferry_msg m = {
        .struct_size = sizeof(m),
        .op = FERRY_OP_FULL,
        .entity_type = "item",
        .entity_id = "e1",
        .payload = "1",
        .payload_len = 1,
    };
    struct ferry_msg c = {
        .struct_size = sizeof(c),
        .op = FERRY_OP_LOAD_BEGIN,
        .entity_type = "control",
    };
    assert_int_equal(sched_emit(src, &m, 0, 0), FERRY_OK);
    assert_int_equal(sched_emit(src, &c, 0, 0), FERRY_OK);
    assert_int_equal(sched_emit(src, &m, 0, 0), FERRY_OK);
    pipeline_free(pl);
}

/* A barrier goes into every worker channel of every route of its source.
 * With more worker channels than emit's fixed reservation table holds
 * (256), the configuration must be refused up front, or the barrier
 * accepted: a source must never get FERRY_EINVAL for a valid control
 * message (it would lose its LOAD_END). */
static void test_barrier_into_many_workers(void **state)
{
    (void)state;
    char err[1024];
    struct pipeline *pl =
        try_pipeline(HEAD "[source.mix]\nplugin = mix\n"
                          "[sink.a]\nplugin = probe\n"
                          "[route.r1]\nfrom = mix\nto = a\nworkers = 200\n"
                          "[route.r2]\nfrom = mix\nto = a\nworkers = 200\n",
                     err, sizeof(err));
    if (!pl) {
        assert_non_null(strstr(err, "workers"));
        return;
    }
    struct ferry_msg c = {
        .struct_size = sizeof(c),
        .op = FERRY_OP_LOAD_END,
        .entity_type = "control",
    };
    int rc = sched_emit(instance(pl, "mix"), &c, 0, 0);
    pipeline_free(pl);
    assert_int_equal(rc, FERRY_OK);
}

/* ---- reload-time metrics ------------------------------------------------ */

/* A pipeline that fails to build (here: an init() fails, as in a SIGHUP
 * reload of a bad file) must not take the running pipeline's channel
 * gauges with it. */
static void test_failed_build_keeps_running_gauges(void **state)
{
    (void)state;
    char err[1024];
    struct pipeline *pl = make_pipeline(
        HEAD "[source.mix]\nplugin = mix\ncount = 10\nlinger = true\n"
             "[sink.a]\nplugin = probe\n"
             "[route.r]\nfrom = mix\nto = a\nworkers = 2\n"
             "channel_size = 64\n");
    assert_int_equal(pipeline_start(pl), 0);
    assert_true(metric_l("ferry_channel_capacity", "route", "r", NULL) == 64);
    struct pipeline *bad =
        try_pipeline(HEAD "[source.mix]\nplugin = mix\n"
                          "[sink.a]\nplugin = probe\n"
                          "[sink.broken]\nplugin = probe\ninit_fail = true\n"
                          "[route.r]\nfrom = mix\nto = a\nworkers = 3\n"
                          "channel_size = 30\n",
                     err, sizeof(err));
    assert_null(bad);
    assert_non_null(strstr(err, "init failed"));
    assert_true(metric_l("ferry_channel_capacity", "route", "r", NULL) == 64);
    pipeline_request_stop(pl, 0, "test");
    assert_int_equal(pipeline_shutdown(pl), 0);
    pipeline_free(pl);
}

int main(void)
{
    if (tmpdir_create("ferry-sched-more") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_tracker_matches_model),
        T(test_fanout_and_match),
        T(test_unrouted_type_moves_cursor),
        T(test_barrier_across_routes_and_sinks),
        T(test_drop_oldest_keeps_barriers),
        T(test_drop_newest_counts),
        T(test_coalesce_with_fanout),
        T(test_coalesce_never_crosses_barrier),
        T(test_shutdown_while_blocked_in_emit_wait),
        T(test_shutdown_while_waiting_for_wakeup),
        T(test_emit_wakeup_not_lost),
        T(test_fanout_commit_never_leads),
        T(test_final_checkpoint_after_every_route),
        T(test_open_failure_never_writes_null),
        T(test_free_leftover_barrier_once),
        T(test_barrier_into_many_workers),
        T(test_failed_build_keeps_running_gauges),
#undef T
    };
    /* FERRY_TEST_ONLY=test_name (a pattern) runs a subset. */
    if (getenv("FERRY_TEST_ONLY"))
        cmocka_set_test_filter(getenv("FERRY_TEST_ONLY"));
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tmpdir_remove() != 0)
        return 1;
    return rc;
}
