/*
 * core/sched.c: running a built pipeline: starting sinks, workers and
 * sources, stop and reload requests, the drain on shutdown, probes, and
 * the /debug view. See core/sched.h for the design and core/sched_int.h
 * for the files that implement the rest.
 */
#include "sched.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "channel.h"
#include "clock.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

/* ---- sources ------------------------------------------------------------ */

static void *source_main(void *arg)
{
    struct ferry_ctx *src = arg;
    struct pipeline *pl = src->pl;
    int rc;

    health_self = health_beat_new("%s inside emit()", src->label);
    rc = src->desc->run(src->state);
    health_beat_free(health_self);

    if (rc != FERRY_OK && !atomic_load(&pl->stopping)) {
        log_write(FERRY_LOG_ERROR, src->label, "source failed: %s",
                  ferry_status_str(rc));
        pipeline_request_stop(pl, 1, "a source failed");
    } else if (!atomic_load(&pl->stopping)) {
        log_write(FERRY_LOG_INFO, src->label, "source finished");
    }
    atomic_store(&src->finished, 1);
    pthread_mutex_lock(&pl->lock);
    pl->sources_running--;
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

static double route_depth(void *arg)
{
    struct route *r = arg;
    size_t d = 0;
    for (unsigned i = 0; i < r->nworkers; i++)
        d += channel_depth(r->workers[i].ch);
    return (double)d;
}

static double route_capacity(void *arg)
{
    struct route *r = arg;
    size_t d = 0;
    for (unsigned i = 0; i < r->nworkers; i++)
        d += channel_capacity(r->workers[i].ch);
    return (double)d;
}

/* ---- running ------------------------------------------------------------ */

void pipeline_request_stop(struct pipeline *pl, int exit_code,
                           const char *reason)
{
    pthread_mutex_lock(&pl->lock);
    if (!pl->stop_requested) {
        pl->stop_requested = 1;
        pl->exit_code = exit_code;
        if (reason)
            log_write(exit_code ? FERRY_LOG_ERROR : FERRY_LOG_INFO, NULL,
                      "stopping: %s", reason);
        /* Interrupt sinks still blocked in start() (standby). */
        for (size_t i = 0; i < pl->ninstances; i++) {
            struct ferry_ctx *c = pl->instances[i];
            if (c->kind == FERRY_KIND_SINK && c->inited && !c->started &&
                c->desc->stop) {
                c->stop_sent = 1;
                c->desc->stop(c->state);
            }
        }
    } else if (exit_code > pl->exit_code) {
        pl->exit_code = exit_code;
    }
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
}

static int stop_requested(struct pipeline *pl)
{
    pthread_mutex_lock(&pl->lock);
    int r = pl->stop_requested;
    pthread_mutex_unlock(&pl->lock);
    return r;
}

/* The replay position for a source: the oldest position its sinks
 * recorded; none when any sink that records positions has none. */
static void load_positions(struct pipeline *pl, struct ferry_ctx *src)
{
    struct ferry_pos best = {0, 0, 0};
    int any = 0;

    for (size_t i = 0; i < src->nroutes; i++) {
        struct ferry_ctx *sink = src->routes[i]->sink;
        struct ferry_pos p;
        if (!sink->desc->load_position)
            continue;
        if (sink->desc->load_position(sink->state, &p) != FERRY_OK ||
            !p.set) {
            log_write(FERRY_LOG_INFO, src->label,
                      "no replay position in %s: starting from a full load",
                      sink->label);
            struct ferry_pos none = {0, 0, 0};
            tracker_set_committed(&src->tracker, &none);
            return;
        }
        if (!any || ferry_pos_cmp(&p, &best) < 0)
            best = p;
        any = 1;
    }
    if (any) {
        char buf[FERRY_POS_STRLEN];
        tracker_format_pos(&best, buf, sizeof(buf));
        log_write(FERRY_LOG_INFO, src->label, "resuming from position %s",
                  buf);
        tracker_set_committed(&src->tracker, &best);
    }
}

/* Starts every sink in order (start() may block while standby). Returns
 * 0, or -1 when one failed or a stop was requested meanwhile. */
static int start_sinks(struct pipeline *pl)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SINK || !c->desc->start) {
            c->started = 1;
            continue;
        }
        int rc = c->desc->start(c->state);
        pthread_mutex_lock(&pl->lock);
        c->started = 1;
        pthread_mutex_unlock(&pl->lock);
        if (rc == FERRY_CLOSED || stop_requested(pl))
            return -1;
        if (rc != FERRY_OK) {
            log_write(FERRY_LOG_ERROR, c->label, "start failed: %s",
                      ferry_status_str(rc));
            pipeline_request_stop(pl, 1, "a sink could not start");
            return -1;
        }
    }
    return 0;
}

/* Registers each route's channel gauges and starts its workers. Returns
 * 0, or -1 after requesting a stop. */
static int start_workers(struct pipeline *pl)
{
    for (size_t i = 0; i < pl->nroutes; i++) {
        struct route *r = pl->routes[i];
        /* Registered here, not in pipeline_new(): a pipeline that is
         * built but refused (a failed reload) must not take over the
         * running pipeline's series, which route_free() then forgets. */
        const char *rl[] = {"route", r->name, NULL};
        metrics_gauge_fn("ferry_channel_depth", "Messages queued in a route.",
                         rl, route_depth, r);
        metrics_gauge_fn("ferry_channel_capacity",
                         "Capacity of a route's channels.", rl,
                         route_capacity, r);
        for (unsigned w = 0; w < r->nworkers; w++) {
            /* Workers exit only after the channels close in
             * pipeline_shutdown(), so the count is complete by then. */
            pthread_mutex_lock(&pl->lock);
            r->source->drain_left++;
            pthread_mutex_unlock(&pl->lock);
            if (pthread_create(&r->workers[w].thread, NULL, worker_main,
                               &r->workers[w]) != 0) {
                pthread_mutex_lock(&pl->lock);
                r->source->drain_left--;
                pthread_mutex_unlock(&pl->lock);
                log_write(FERRY_LOG_ERROR, NULL, "cannot start a worker: %s",
                          strerror(errno));
                pipeline_request_stop(pl, 1, "out of threads");
                return -1;
            }
            r->workers[w].thread_started = 1;
        }
    }
    return 0;
}

/* Starts a thread for every source. Returns 0, or -1 after requesting a
 * stop. */
static int start_sources(struct pipeline *pl)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        pthread_mutex_lock(&pl->lock);
        pl->sources_running++;
        pthread_mutex_unlock(&pl->lock);
        if (pthread_create(&c->thread, NULL, source_main, c) != 0) {
            pthread_mutex_lock(&pl->lock);
            pl->sources_running--;
            pthread_mutex_unlock(&pl->lock);
            log_write(FERRY_LOG_ERROR, c->label, "cannot start: %s",
                      strerror(errno));
            pipeline_request_stop(pl, 1, "out of threads");
            return -1;
        }
        c->thread_started = 1;
    }
    return 0;
}

/* Starts sinks, then workers from the replay positions, then sources;
 * see core/sched.h. Main thread. */
int pipeline_start(struct pipeline *pl)
{
    if (start_sinks(pl) < 0)
        return -1;
    for (size_t i = 0; i < pl->ninstances; i++)
        if (pl->instances[i]->kind == FERRY_KIND_SOURCE)
            load_positions(pl, pl->instances[i]);
    if (start_workers(pl) < 0 || start_sources(pl) < 0)
        return -1;
    return 0;
}

void pipeline_request_reload(struct pipeline *pl)
{
    pthread_mutex_lock(&pl->lock);
    pl->reload_requested = 1;
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
}

int pipeline_wait(struct pipeline *pl)
{
    int reload = 0;

    pthread_mutex_lock(&pl->lock);
    while (!pl->stop_requested && !pl->reload_requested &&
           pl->sources_running > 0)
        pthread_cond_wait(&pl->cond, &pl->lock);
    if (!pl->stop_requested && pl->reload_requested) {
        pl->reload_requested = 0;
        reload = 1;
    } else if (!pl->stop_requested) {
        log_write(FERRY_LOG_INFO, NULL, "every source finished; draining");
    }
    pthread_mutex_unlock(&pl->lock);
    return reload;
}


int pipeline_probe(struct pipeline *pl, FILE *out)
{
    int failed = 0;

    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        char msg[512] = "";
        if (!c->desc->probe) {
            fprintf(out, "# [%s] connect: nothing to probe\n", c->label);
            continue;
        }
        int rc = c->desc->probe(c->state, msg, sizeof(msg));
        fprintf(out, "# [%s] connect: %s%s%s\n", c->label,
                rc == FERRY_OK ? "ok" : "FAILED", msg[0] ? ": " : "", msg);
        if (rc != FERRY_OK)
            failed++;
    }
    return failed;
}

/* Asks every running source to stop, wakes it if it waits for room, and
 * joins its thread. */
static void stop_sources(struct pipeline *pl)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind == FERRY_KIND_SOURCE && c->thread_started) {
            if (!atomic_load(&c->finished) && c->desc->stop)
                c->desc->stop(c->state);
            /* Wake a source blocked in emit_wait(). */
            pthread_mutex_lock(&c->emit_lock);
            pthread_cond_broadcast(&c->room);
            pthread_mutex_unlock(&c->emit_lock);
        }
    }
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind == FERRY_KIND_SOURCE && c->thread_started) {
            pthread_join(c->thread, NULL);
            c->thread_started = 0;
        }
    }
}

/* Closes every channel and joins the workers, which drain what is
 * queued until the shutdown_timeout deadline. */
static void drain_workers(struct pipeline *pl)
{
    atomic_store(&pl->abort_at_ns,
                 clock_now_ns() +
                     pl->settings.shutdown_timeout_ms * 1000000ull + 1);
    size_t queued = 0;
    for (size_t i = 0; i < pl->nroutes; i++)
        queued += (size_t)route_depth(pl->routes[i]);
    if (queued)
        log_write(FERRY_LOG_INFO, NULL,
                  "draining %zu queued messages (shutdown_timeout %llums)",
                  queued,
                  (unsigned long long)pl->settings.shutdown_timeout_ms);
    for (size_t i = 0; i < pl->nroutes; i++)
        for (unsigned w = 0; w < pl->routes[i]->nworkers; w++)
            channel_close(pl->routes[i]->workers[w].ch);
    for (size_t i = 0; i < pl->nroutes; i++) {
        struct route *r = pl->routes[i];
        for (unsigned w = 0; w < r->nworkers; w++) {
            if (r->workers[w].thread_started) {
                pthread_join(r->workers[w].thread, NULL);
                r->workers[w].thread_started = 0;
            }
        }
    }
}

/* Calls stop() of every started sink that has not had it yet. */
static void stop_sinks(struct pipeline *pl)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        /* stop() is called once: a stop request may have interrupted
         * start() with it already. */
        pthread_mutex_lock(&pl->lock);
        int call = c->kind == FERRY_KIND_SINK && c->started &&
                   c->desc->stop && !c->stop_sent;
        c->stop_sent |= call;
        pthread_mutex_unlock(&pl->lock);
        if (call)
            c->desc->stop(c->state);
    }
}

/* Logs where each source stopped: its committed position. */
static void log_stop_positions(struct pipeline *pl)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        struct ferry_pos p;
        char buf[FERRY_POS_STRLEN];
        sched_committed(c, &p);
        tracker_format_pos(&p, buf, sizeof(buf));
        log_write(FERRY_LOG_INFO, c->label, "stopped at position %s", buf);
    }
}

/* Stops and drains in the steps above; see core/sched.h. Main thread. */
int pipeline_shutdown(struct pipeline *pl)
{
    atomic_store(&pl->stopping, 1);
    stop_sources(pl);
    drain_workers(pl);
    stop_sinks(pl);
    log_stop_positions(pl);
    return pl->exit_code;
}

/* ---- /debug ------------------------------------------------------------- */

/* A source's committed cursor as a JSON string, or null before any. */
static json_t *debug_cursor(struct ferry_ctx *src)
{
    struct ferry_pos p;
    char buf[FERRY_POS_STRLEN];

    sched_committed(src, &p);
    if (!p.set)
        return json_null();
    tracker_format_pos(&p, buf, sizeof(buf));
    return json_string(buf);
}

/* Whether replay positions are kept: a sink "replay_enabled" info key
 * when one publishes it, else whether a sink records positions. */
static int debug_replay_enabled(struct pipeline *pl)
{
    char *v = health_info("replay_enabled");
    int on = 0;

    if (v) {
        on = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        free(v);
        return on;
    }
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind == FERRY_KIND_SINK && c->desc->checkpoint)
            on = 1;
    }
    return on;
}

/*
 * "replay": the Go replicator's {"enabled","cursor"} (the cursor of the
 * first source: the datastream in the shipped pipeline) and ferry's own
 * cursor of every source under "sources".
 */
static json_t *debug_replay(struct pipeline *pl)
{
    json_t *replay = json_object(), *sources = json_object();
    json_t *first = NULL;

    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        json_t *cur = debug_cursor(c);
        if (!first)
            first = json_incref(cur);
        json_object_set_new(sources, c->name,
                            json_pack("{s:o}", "cursor", cur));
    }
    json_object_set_new(replay, "enabled",
                        json_boolean(debug_replay_enabled(pl)));
    json_object_set_new(replay, "cursor", first ? first : json_null());
    json_object_set_new(replay, "sources", sources);
    return replay;
}

static json_t *debug_channels(struct pipeline *pl)
{
    json_t *ch = json_object();

    for (size_t i = 0; i < pl->nroutes; i++) {
        struct route *r = pl->routes[i];
        json_object_set_new(ch, r->name,
                            json_pack("{s:I,s:I,s:I}", "depth",
                                      (json_int_t)route_depth(r), "capacity",
                                      (json_int_t)route_capacity(r), "workers",
                                      (json_int_t)r->nworkers));
    }
    return ch;
}

/* "breakers": the state of every policy that publishes one (the breaker
 * policy's ferry_breaker_state gauge); others claim none and are left
 * out. */
static json_t *debug_breakers(struct pipeline *pl)
{
    static const char *const names[] = {"closed", "open", "half-open"};
    json_t *b = json_object();

    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        const char *l[] = {"policy", c->name, NULL};
        if (c->kind != FERRY_KIND_POLICY ||
            metrics_count("ferry_breaker_state", l) == 0)
            continue;
        double st = metrics_sum("ferry_breaker_state", l);
        int k = st >= 0 && st <= 2 ? (int)st : 0;
        json_object_set_new(b, c->name, json_string(names[k]));
    }
    return b;
}

/*
 * "messages", the Go replicator's counts: processed (received from every
 * source), applied (summed over routes), dropped (will not reach a sink:
 * dropped by a policy or refused by the sink), and ferry's own split.
 */
static json_t *debug_messages(void)
{
    json_int_t policy =
        (json_int_t)metrics_sum("ferry_messages_dropped_total", NULL);
    json_int_t failed =
        (json_int_t)metrics_sum("ferry_messages_failed_total", NULL);

    return json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "processed",
        (json_int_t)metrics_sum("ferry_source_messages_total", NULL), "applied",
        (json_int_t)metrics_sum("ferry_messages_applied_total", NULL),
        "dropped", policy + failed, "dropped_by_policy", policy, "failed",
        failed, "coalesced",
        (json_int_t)metrics_sum("ferry_messages_coalesced_total", NULL),
        "invalid",
        (json_int_t)metrics_sum("ferry_source_invalid_messages_total", NULL));
}

/* "standby" while a sink waits in start() for the writer lock, else
 * "active". */
static const char *debug_role(struct pipeline *pl)
{
    const char *role = "active";

    pthread_mutex_lock(&pl->lock);
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind == FERRY_KIND_SINK && c->inited && !c->started &&
            c->desc->start && !pl->stop_requested)
            role = "standby";
    }
    pthread_mutex_unlock(&pl->lock);
    return role;
}

/* The pipeline's part of /debug (core/http.h); the HTTP thread. */
char *pipeline_debug_json(void *arg)
{
    struct pipeline *pl = arg;
    json_t *root = json_object();
    char *out;

    if (!root)
        return NULL;
    json_object_set_new(root, "replay", debug_replay(pl));
    json_object_set_new(root, "messages", debug_messages());
    json_object_set_new(root, "channels", debug_channels(pl));
    json_object_set_new(root, "breakers", debug_breakers(pl));
    json_object_set_new(root, "role", json_string(debug_role(pl)));
    out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}
