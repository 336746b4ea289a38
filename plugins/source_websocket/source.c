/*
 * plugins/source_websocket/source.c: the Schematic datastream source
 * (schematic-datastream.md sections 1-3, 9, 10, 15.1) on libwebsockets.
 *
 * One thread (run()) owns an lws context (event loop, raw client socket,
 * timers) and everything in struct ws_source not marked otherwise. The
 * WebSocket protocol and TLS on that socket are the codec's (plugins/lib/
 * ws, wsc.h): this file feeds it what the socket reads, writes what it
 * hands to its send callback, and takes messages from it. Other threads
 * reach the loop only through ws_source_kick() (lws_cancel_service), which
 * delivers LWS_CALLBACK_EVENT_WAIT_CANCELLED, where the loop looks at the
 * flags the other thread set: stop(), wakeup() and the end of an initial
 * load.
 *
 * Lossless backpressure (15.1): a message host->emit() refuses with
 * FERRY_WOULD_BLOCK is queued, parsing stops (the rest stays buffered),
 * reading the socket is paused with lws_rx_flow_control(), and wakeup()
 * resumes all three. While an initial load runs, stream messages are held
 * in the same queue and reading pauses when max_held_messages are held.
 *
 * Reconnects: a failed dial (TCP, TLS or the HTTP upgrade) waits
 * reconnect_min doubling up to reconnect_max, plus up to a quarter of
 * jitter; a connection that was established for WS_QUICK_DROP_MS redials at
 * once, a shorter-lived one after reconnect_min; a refused key (close 4001,
 * HTTP 401/403) every reconnect_max. Close 1000/1001 reconnects too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "schematic/datastream.h"
#include "wsrc.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

#define WS_PROTOCOL "ferry-datastream"
#define WS_RX_BUFFER 65536
/* An established connection that lived at least this long is redialled at
 * once after it drops (1.5); a shorter one waits reconnect_min, so a
 * server that accepts and drops at once cannot cause a dial storm. */
#define WS_QUICK_DROP_MS 5000
/* Retry interval for a blocked queue, in case a wakeup() was missed. */
#define WS_RETRY_MS 250

/* ---- small helpers ------------------------------------------------------- */

static double ws_rand(struct ws_source *s)
{
    return (double)rand_r(&s->rng) / ((double)RAND_MAX + 1.0);
}

/* Wakes the lws service loop. Any thread. */
static void ws_source_kick(struct ws_source *s)
{
    pthread_mutex_lock(&s->ctl_lock);
    if (s->lws)
        lws_cancel_service(s->lws);
    pthread_mutex_unlock(&s->ctl_lock);
}

/* ---- lws logging ------------------------------------------------------------ */

/*
 * lws logs process-wide through one function without a user pointer. Its
 * connection-error strings are vague for TLS ("connect SSL err 1"), while
 * its error log line says why ("SSL error: unable to get local issuer
 * certificate"), so the newest error line of each thread is kept and
 * folded into our own message about the failed dial. Nothing else of lws's
 * logging is written.
 */
static _Thread_local char ws_lws_err[200];

static void ws_lws_log(int level, const char *line)
{
    size_t n;

    if (!(level & LLL_ERR))
        return;
    snprintf(ws_lws_err, sizeof(ws_lws_err), "%s", line);
    n = strlen(ws_lws_err);
    while (n && (ws_lws_err[n - 1] == '\n' || ws_lws_err[n - 1] == ' '))
        ws_lws_err[--n] = '\0';
}

/* Formats why a dial failed from lws's reason and its last error line. */
static void ws_dial_error(char *out, size_t len, const void *in, size_t inlen)
{
    const char *reason = in ? (const char *)in : "";
    int rlen = in ? (int)strnlen(reason, inlen) : 0;

    if (ws_lws_err[0] && rlen)
        snprintf(out, len, "%s (%.*s)", ws_lws_err, rlen, reason);
    else if (ws_lws_err[0])
        snprintf(out, len, "%s", ws_lws_err);
    else if (rlen)
        snprintf(out, len, "%.*s", rlen, reason);
    else
        snprintf(out, len, "connection failed");
    ws_lws_err[0] = '\0';
}

/* ---- the queue and flow control ------------------------------------------ */

static void ws_pong_arm(struct ws_source *s);
static void ws_load_begin(struct ws_source *s);
static void ws_kill(struct ws_source *s);

/* Nonzero while parsing may go on (nothing blocked, hold not full); the
 * codec's can_read callback. */
static int ws_source_can_read(void *arg)
{
    struct ws_source *s = arg;

    return s->queue.len == 0 || (s->holding && s->queue.len < s->max_held);
}

/*
 * Reading is enabled while nothing is queued, or while an initial load
 * holds fewer than max_held_messages. The pong deadline never fires while
 * reading is paused by us (the pong sits unread behind the data), and is
 * re-armed when reading resumes.
 */
static void ws_update_flow(struct ws_source *s)
{
    int want;

    ws_metric_set(s, s->m_held, (double)s->queue.len);
    if (!s->wsi || s->conn_state != WS_CONN_OPEN)
        return;
    want = ws_source_can_read(s);
    if (want == !s->paused)
        return;
    lws_rx_flow_control(s->wsi, want);
    s->paused = !want;
    if (want) {
        ws_pong_arm(s);
        WS_LOG(s, FERRY_LOG_DEBUG, "reading resumed");
    } else {
        ws_metric_add(s, s->m_paused, 1);
        WS_LOG(s, FERRY_LOG_DEBUG, "reading paused (%zu messages %s)",
               s->queue.len, s->holding ? "held" : "queued");
    }
}

static void ws_retry_cb(lws_sorted_usec_list_t *sul);

/*
 * Offers queued messages to the core in order until one is refused or an
 * initial load starts holding. A queued RELOAD is emitted and then starts
 * the reload's initial load (9.4): everything queued behind it is held
 * until that load's LOAD_END. Never parses (see ws_resume).
 */
static void ws_drain_queue(struct ws_source *s)
{
    struct ws_item *it;
    int r;

    while ((it = s->queue.head) && !s->holding) {
        r = s->host->emit(s->ctx, &it->msg);
        if (r == FERRY_WOULD_BLOCK)
            break;
        if (r != FERRY_OK && r != FERRY_CLOSED)
            WS_LOG(s, FERRY_LOG_ERROR, "emit refused a %s message: %s",
                   it->msg.entity_type, ferry_status_str(r));
        ws_queue_pop(&s->queue);
        if (it->msg.op == FERRY_OP_RELOAD && r == FERRY_OK) {
            free(it);
            ws_load_begin(s);
            continue;
        }
        free(it);
    }
    if (s->queue.len && !s->holding && s->lws)
        lws_sul_schedule(s->lws, 0, &s->sul_retry, ws_retry_cb,
                         WS_RETRY_MS * LWS_US_PER_MS);
}

/* Emits what is queued, then parses what was left unparsed when reading
 * paused, then re-enables reading if everything fit. */
static void ws_resume(struct ws_source *s)
{
    ws_drain_queue(s);
    if (s->wsi && s->conn_state == WS_CONN_OPEN && ws_source_can_read(s) &&
        wsc_pump(s->wsc) < 0)
        ws_kill(s);
    ws_update_flow(s);
}

static void ws_retry_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_source *s = lws_container_of(sul, struct ws_source, sul_retry);

    if (s->load_pending && !s->load && s->sub_flushed) {
        /* An initial-load thread that could not start before. */
        s->load_pending = 0;
        ws_load_begin(s);
    }
    ws_resume(s);
}

/* Hands one stream message to the core, or queues it. */
static void ws_offer(struct ws_source *s, const struct ferry_msg *m)
{
    int r;

    if (!s->queue.len && !s->holding && m->op != FERRY_OP_RELOAD) {
        r = s->host->emit(s->ctx, m);
        if (r == FERRY_OK || r == FERRY_CLOSED)
            return;
        if (r != FERRY_WOULD_BLOCK) {
            WS_LOG(s, FERRY_LOG_ERROR, "emit refused a %s message: %s",
                   m->entity_type, ferry_status_str(r));
            return;
        }
    }
    ws_queue_push(&s->queue, ws_item_new(m));
    if (m->op == FERRY_OP_RELOAD) {
        WS_LOG(s, FERRY_LOG_WARN,
               "reload received: the replay window no longer covers the "
               "cursor; a full initial load follows");
        if (!s->holding)
            ws_drain_queue(s);
    }
    ws_update_flow(s);
}

/* ---- initial load ---------------------------------------------------------- */

static int ws_loader_emit(void *arg, const struct ferry_msg *msg,
                          int wait_ms)
{
    struct ws_source *s = arg;

    return s->host->emit_wait(s->ctx, msg, wait_ms);
}

static void ws_loader_progress(void *arg, enum ws_load_event ev)
{
    struct ws_source *s = arg;

    ws_metric_add(s, ev == WS_LOAD_REQUEST   ? s->m_load_requests
                     : ev == WS_LOAD_FAILURE ? s->m_load_failures
                                             : s->m_load_entities,
                  1);
}

static int ws_loader_stopping(void *arg)
{
    struct ws_source *s = arg;

    return atomic_load(&s->stopping);
}

/* The loader ended: the lws thread reaps it (ws_load_reap). */
static void ws_loader_done(void *arg)
{
    ws_source_kick(arg);
}

/* Starts the loader thread on a copy of the options it needs. */
static struct ws_load *ws_loader_start(struct ws_source *s)
{
    const struct ws_load_callbacks cb = { s, ws_loader_emit,
                                          ws_loader_progress,
                                          ws_loader_stopping,
                                          ws_loader_done };
    struct ws_load_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    memcpy(cfg.api_url, s->api_url, sizeof(cfg.api_url));
    cfg.api_key = s->api_key;
    cfg.ca_file = s->ca_file;
    cfg.tls_verify = s->tls_verify;
    cfg.connect_ms = s->connect_ms;
    cfg.rmin_ms = s->rmin_ms;
    cfg.rmax_ms = s->rmax_ms;
    cfg.page_size = s->page_size;
    cfg.concurrency = s->concurrency;
    cfg.rate = s->rate;
    return ws_load_start(s->host, s->ctx, &cfg, &cb);
}

/* Starts an initial load now: stream messages are held until it ends. */
static void ws_load_begin(struct ws_source *s)
{
    if (!s->bulk_load) {
        WS_LOG(s, FERRY_LOG_WARN,
               "bulk_load is off: no initial load after the reload");
        return;
    }
    if (s->load)
        return;
    s->holding = 1;
    s->load = ws_loader_start(s);
    if (!s->load) {
        /* Logged by ws_load_start; try again later. */
        s->load_pending = 1;
        lws_sul_schedule(s->lws, 0, &s->sul_retry, ws_retry_cb,
                         s->rmax_ms * LWS_US_PER_MS);
    }
}

/* The loader thread finished: release what it held. */
static void ws_load_reap(struct ws_source *s)
{
    int ok;

    if (!s->load || !ws_load_done(s->load))
        return;
    ok = ws_load_finish(s->load);
    s->load = NULL;
    if (ok) {
        s->holding = 0;
        WS_LOG(s, FERRY_LOG_INFO,
               "initial load done; releasing %zu held stream messages",
               s->queue.len);
    }
}

/* ---- connection ------------------------------------------------------------ */

static void ws_dial(struct ws_source *s);

static void ws_reconnect_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_source *s =
        lws_container_of(sul, struct ws_source, sul_reconnect);

    ws_dial(s);
}

static void ws_schedule_dial(struct ws_source *s, uint64_t delay_ms)
{
    if (atomic_load(&s->stopping) || s->probe)
        return;
    lws_sul_schedule(s->lws, 0, &s->sul_reconnect, ws_reconnect_cb,
                     (lws_usec_t)delay_ms * LWS_US_PER_MS);
}

static void ws_set_connected(struct ws_source *s, int connected)
{
    if (s->probe)
        return;
    s->host->set_component(s->ctx, "datastream",
                           connected ? FERRY_COMPONENT_CONNECTED
                                     : FERRY_COMPONENT_DISCONNECTED);
    ws_metric_set(s, s->m_connected, connected ? 1 : 0);
}

/* Closes the current connection soon (outside its callbacks). */
static void ws_kill(struct ws_source *s)
{
    if (s->wsi)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void ws_probe_result(struct ws_source *s, int ok, const char *fmt,
                            ...) FERRY_PRINTF(3, 4);

static void ws_probe_result(struct ws_source *s, int ok, const char *fmt,
                            ...)
{
    va_list ap;

    if (s->probe_done)
        return;
    s->probe_done = ok ? 1 : -1;
    va_start(ap, fmt);
    vsnprintf(s->probe_msg, sizeof(s->probe_msg), fmt, ap);
    va_end(ap);
}

/* The dial failed (TCP, TLS or HTTP); http_status is 0 unless the server
 * answered with another status than 101. Schedules the redial. */
static void ws_source_dial_failed(struct ws_source *s, const char *why,
                                  int http_status)
{
    char d[32];
    uint64_t delay;

    if (s->conn_state != WS_CONN_DIALING)
        return; /* reported already */
    s->conn_state = WS_CONN_IDLE;
    lws_sul_cancel(&s->sul_connect);
    if (s->probe) {
        ws_probe_result(s, 0, "cannot connect to %.200s: %s", s->url, why);
        return;
    }
    if (atomic_load(&s->stopping))
        return;
    s->attempts++;
    if (http_status == 401 || http_status == 403) {
        s->key_refused = 1;
        ws_metric_set(s, s->m_unhealthy, 1);
    }
    delay = s->key_refused
                ? s->rmax_ms
                : ws_backoff_ms(s->attempts, s->rmin_ms, s->rmax_ms,
                                ws_rand(s));
    WS_LOG(s, s->attempts > 1 ? FERRY_LOG_WARN : FERRY_LOG_ERROR,
           "cannot connect to %s: %s%s; retrying in %s (attempt %u)", s->url,
           why, http_status == 401 || http_status == 403
                    ? " (API key refused)"
                    : "",
           ws_fmt_ms(delay, d, sizeof(d)), s->attempts);
    ws_schedule_dial(s, delay);
}

static void ws_connect_timeout_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_source *s =
        lws_container_of(sul, struct ws_source, sul_connect);
    char why[64], d[32];

    if (s->conn_state != WS_CONN_DIALING)
        return;
    snprintf(why, sizeof(why), "no WebSocket handshake within %s",
             ws_fmt_ms(s->connect_ms, d, sizeof(d)));
    ws_kill(s);
    ws_source_dial_failed(s, why, 0);
}

static void ws_dial(struct ws_source *s)
{
    struct lws_client_connect_info cc;

    if (atomic_load(&s->stopping) || s->conn_state != WS_CONN_IDLE)
        return;
    wsc_reset(s->wsc);
    s->out_len = 0;
    memset(&cc, 0, sizeof(cc));
    cc.context = s->lws;
    cc.address = s->wsurl.host;
    cc.port = s->wsurl.port;
    cc.path = s->wsurl.path;
    cc.host = s->wsurl.hostport;
    /* A raw socket: the WebSocket protocol and TLS are proto.c's. */
    cc.method = "RAW";
    cc.local_protocol_name = WS_PROTOCOL;
    cc.pwsi = &s->wsi;
    if (s->dials++)
        ws_metric_add(s, s->m_reconnects, 1);
    s->conn_state = WS_CONN_DIALING;
    s->close_code = 0;
    s->dial_ns = ws_now(s);
    ws_lws_err[0] = '\0';
    lws_sul_schedule(s->lws, 0, &s->sul_connect, ws_connect_timeout_cb,
                     (lws_usec_t)s->connect_ms * LWS_US_PER_MS);
    WS_LOG(s, FERRY_LOG_DEBUG, "dialling %s", s->url);
    if (!lws_client_connect_via_info(&cc)) {
        s->wsi = NULL;
        ws_source_dial_failed(s, "connection could not be started", 0);
    }
}

static void ws_ping_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_source *s = lws_container_of(sul, struct ws_source, sul_ping);

    if (s->conn_state != WS_CONN_OPEN || !s->wsi)
        return;
    wsc_send(s->wsc, WSC_OP_PING, NULL, 0);
    lws_sul_schedule(s->lws, 0, &s->sul_ping, ws_ping_cb,
                     (lws_usec_t)s->ping_ms * LWS_US_PER_MS);
}

static void ws_pong_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_source *s = lws_container_of(sul, struct ws_source, sul_pong);
    char d[32];

    if (s->conn_state != WS_CONN_OPEN || !s->wsi)
        return;
    if (s->paused) {
        ws_pong_arm(s);
        return;
    }
    WS_LOG(s, FERRY_LOG_WARN, "no pong within %s: connection dead",
           ws_fmt_ms(s->pong_ms, d, sizeof(d)));
    s->close_code = -1; /* our own verdict */
    ws_kill(s);
}

static void ws_pong_arm(struct ws_source *s)
{
    if (!s->ping_ms || !s->lws)
        return;
    lws_sul_schedule(s->lws, 0, &s->sul_pong, ws_pong_cb,
                     (lws_usec_t)s->pong_ms * LWS_US_PER_MS);
}

/* Data or a pong after a connection that followed a refused key: the key
 * is accepted now. */
static void ws_confirmed(struct ws_source *s)
{
    if (!s->confirm_pending)
        return;
    s->confirm_pending = 0;
    s->key_refused = 0;
    ws_metric_set(s, s->m_unhealthy, 0);
    ws_set_connected(s, 1);
}

/* A pong from the server (the codec's on_pong). */
static void ws_source_pong(void *arg)
{
    struct ws_source *s = arg;

    if (s->probe) {
        ws_probe_result(s, 1,
                        "%.200s: WebSocket handshake and ping answered in "
                        "%.1f ms",
                        s->url, (double)(ws_now(s) - s->dial_ns) / 1e6);
        return;
    }
    ws_pong_arm(s);
    ws_confirmed(s);
}

/* The close handshake began (the codec's on_close). */
static void ws_source_close_code(void *arg, int code)
{
    struct ws_source *s = arg;

    s->close_code = code;
}

/* The server accepted the upgrade (the codec's on_open): subscribe. */
static void ws_source_open(void *arg)
{
    struct ws_source *s = arg;
    static const unsigned order[3] = { WS_SUB_COMPANIES, WS_SUB_USERS,
                                       WS_SUB_FLAGS };
    struct ferry_pos cursor = { 0, 0, 0 };
    char req[256];
    int i, n;

    lws_sul_cancel(&s->sul_connect);
    s->conn_state = WS_CONN_OPEN;
    s->open_ns = ws_now(s);
    s->attempts = 0;
    s->paused = 0;
    s->subscribed_logged = 0;
    s->sub_flushed = 0;
    if (s->probe) {
        /* A refused key shows only as close 4001 after the upgrade: wait
         * for the answer to a ping before calling it a success. */
        wsc_send(s->wsc, WSC_OP_PING, NULL, 0);
        return;
    }
    if (s->key_refused)
        s->confirm_pending = 1;
    else
        ws_set_connected(s, 1);

    /*
     * The cursor: the newer of the committed position and the newest
     * position received in this process. Everything received was emitted
     * or is queued here, so nothing is lost by resuming after it; resuming
     * from an older committed position would be wrong, not just wasteful:
     * the replayed run lands behind newer messages still queued (or behind
     * a reload's load) and stops at the next drop, leaving stale values.
     */
    if (s->replay) {
        s->host->committed(s->ctx, &cursor);
        if (s->last_pos.set && ferry_pos_cmp(&s->last_pos, &cursor) > 0)
            cursor = s->last_pos;
    }
    if (!s->loaded_once) {
        struct ferry_pos committed = { 0, 0, 0 };

        s->loaded_once = 1;
        s->host->committed(s->ctx, &committed);
        if (s->bulk_load && (!s->replay || !committed.set)) {
            s->load_pending = 1;
            s->holding = 1; /* hold everything until LOAD_END */
        }
    }
    for (i = 0; i < 3; i++) {
        if (!(s->subs & order[i]))
            continue;
        n = ws_subscribe_request(order[i], &cursor, req, sizeof(req));
        if (n > 0)
            wsc_send(s->wsc, WSC_OP_TEXT, req, (size_t)n);
    }
    if (cursor.set)
        ds_pos_format(&cursor, s->replay_from, sizeof(s->replay_from));
    else
        s->replay_from[0] = '\0';
    if (s->ping_ms) {
        lws_sul_schedule(s->lws, 0, &s->sul_ping, ws_ping_cb,
                         (lws_usec_t)s->ping_ms * LWS_US_PER_MS);
        ws_pong_arm(s);
    }
    ws_update_flow(s);
}

/* The subscriptions left the socket: log it and start a pending load
 * ("subscribe, then load": the stream covers what the load misses). */
static void ws_subscribed(struct ws_source *s)
{
    s->sub_flushed = 1;
    /* After a refused key the server usually closes right away: do not
     * announce every attempt at info. */
    WS_LOG(s, s->confirm_pending ? FERRY_LOG_DEBUG : FERRY_LOG_INFO,
           "connected to %s and subscribed to%s%s%s (%s%s) in %.1f ms",
           s->url, (s->subs & WS_SUB_COMPANIES) ? " companies" : "",
           (s->subs & WS_SUB_USERS) ? " users" : "",
           (s->subs & WS_SUB_FLAGS) ? " flags" : "",
           s->replay_from[0] ? "replay_from " : "no replay cursor",
           s->replay_from, (double)(ws_now(s) - s->dial_ns) / 1e6);
    if (s->load_pending) {
        s->load_pending = 0;
        ws_load_begin(s);
    }
}

static void ws_on_closed(struct ws_source *s)
{
    uint64_t lived_ms, delay;
    char d[32], d2[32], why[64];

    lws_sul_cancel(&s->sul_ping);
    lws_sul_cancel(&s->sul_pong);
    s->conn_state = WS_CONN_IDLE;
    s->paused = 0;
    s->confirm_pending = 0;
    if (s->probe) {
        if (s->close_code == 4001)
            ws_probe_result(s, 0, "%.200s: API key refused (close 4001)",
                            s->url);
        else
            ws_probe_result(s, 0, "%.200s: connection closed (code %d)",
                            s->url, s->close_code);
        return;
    }
    if (atomic_load(&s->stopping))
        return;
    ws_set_connected(s, 0);
    lived_ms = (ws_now(s) - s->open_ns) / 1000000ull;
    if (s->close_code == 4001) {
        s->key_refused = 1;
        ws_metric_set(s, s->m_unhealthy, 1);
        WS_LOG(s, FERRY_LOG_ERROR,
               "API key refused (close 4001); retrying in %s",
               ws_fmt_ms(s->rmax_ms, d, sizeof(d)));
        ws_schedule_dial(s, s->rmax_ms);
        return;
    }
    delay = lived_ms >= WS_QUICK_DROP_MS ? 0 : s->rmin_ms;
    if (s->close_code > 0)
        snprintf(why, sizeof(why), "close %d", s->close_code);
    else if (s->close_code < 0)
        snprintf(why, sizeof(why), "keepalive timeout");
    else
        snprintf(why, sizeof(why), "connection lost");
    WS_LOG(s, FERRY_LOG_WARN,
           "disconnected from %s (%s) after %s; reconnecting%s%s", s->url,
           why, ws_fmt_ms(lived_ms, d, sizeof(d)), delay ? " in " : "",
           delay ? ws_fmt_ms(delay, d2, sizeof(d2)) : "");
    ws_schedule_dial(s, delay);
}

/* ---- messages ----------------------------------------------------------------- */

static void ws_source_invalid(struct ws_source *s, const char *reason,
                              const char *detail)
{
    if (s->probe)
        return;
    ws_invalid(s, reason, detail, NULL);
}

/* A complete text message (the codec's on_message; binary messages are
 * discarded by the codec). */
static void ws_source_message(void *arg, int opcode, const char *buf,
                              size_t len)
{
    struct ws_source *s = arg;
    struct ds_frame f;
    unsigned long suppressed;

    if (s->probe) {
        ws_source_pong(s);
        return;
    }
    ws_confirmed(s);
    ds_frame_parse(&f, buf, len);
    if (f.msg.pos.set && ferry_pos_cmp(&f.msg.pos, &s->last_pos) > 0) {
        s->last_pos = f.msg.pos;
        ws_metric_set(s, s->m_stream_time, (double)f.msg.pos.ms / 1000.0);
    }
    switch (f.kind) {
    case DS_MESSAGE:
        ws_count_message(s, &f.msg);
        ws_offer(s, &f.msg);
        break;
    case DS_SUBSCRIBED: {
        unsigned bit = strstr(f.detail, "Companies") ? WS_SUB_COMPANIES
                                                     : WS_SUB_USERS;

        if (!(s->subscribed_logged & bit)) {
            s->subscribed_logged |= bit;
            WS_LOG(s, FERRY_LOG_INFO, "subscription confirmed: %s",
                   f.detail);
        }
        break;
    }
    case DS_ERROR:
        s->n_errors++;
        ws_metric_add(s, s->m_errors, 1);
        if (ws_ratelog_ok(&s->rl_error, ws_now(s), WS_SEC_NS, &suppressed))
            WS_LOG(s, FERRY_LOG_WARN, "server error: %s%s", f.detail,
                   suppressed ? " (and more, not logged)" : "");
        break;
    case DS_IGNORED:
        if (s->host->log_enabled(s->ctx, FERRY_LOG_DEBUG))
            WS_LOG(s, FERRY_LOG_DEBUG, "ignored: %s", f.detail);
        break;
    default:
        ws_invalid(s, f.reason, f.detail, f.stream_id);
        break;
    }
    ds_frame_release(&f);
}

/* ---- the codec's transport --------------------------------------------- */

/* Bytes the codec wants written: queued until the socket is writable. */
static void ws_wsc_send(void *arg, const void *bytes, size_t len)
{
    struct ws_source *s = arg;

    if (LWS_PRE + s->out_len + len > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 4096;

        while (cap < LWS_PRE + s->out_len + len)
            cap *= 2;
        s->out = s->host->realloc(s->out, cap);
        s->out_cap = cap;
    }
    memcpy(s->out + LWS_PRE + s->out_len, bytes, len);
    s->out_len += len;
    if (s->wsi)
        lws_callback_on_writable(s->wsi);
}

/* The socket is writable: writes what is queued. Returns -1 to close (a
 * write failed, or a close frame left). */
static int ws_writeable(struct ws_source *s, struct lws *wsi)
{
    if (s->out_len && !lws_send_pipe_choked(wsi)) {
        /* lws keeps what the socket did not take and writes it first. */
        if (lws_write(wsi, s->out + LWS_PRE, s->out_len, LWS_WRITE_RAW) < 0)
            return -1;
        s->out_len = 0;
    }
    if (s->out_len) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    return wsc_closing(s->wsc) ? -1 : 0;
}

static void ws_wsc_discard(void *arg, enum wsc_discard why, uint64_t total)
{
    struct ws_source *s = arg;
    char detail[96];

    if (why == WSC_DISCARD_BINARY) {
        snprintf(detail, sizeof(detail), "binary message of %" PRIu64
                 " bytes", total);
        ws_source_invalid(s, "binary", detail);
    } else {
        snprintf(detail, sizeof(detail),
                 "message of %" PRIu64 " bytes exceeds max_message_size",
                 total);
        ws_source_invalid(s, "too_large", detail);
    }
}

static void ws_wsc_ping(void *arg)
{
    struct ws_source *s = arg;

    WS_LOG(s, FERRY_LOG_DEBUG, "ping from the server answered");
}

static void ws_wsc_error(void *arg, enum wsc_error kind, int http_status,
                         const char *what)
{
    struct ws_source *s = arg;

    if (kind == WSC_ERR_HANDSHAKE)
        ws_source_dial_failed(s, what, http_status);
    else
        ws_source_invalid(s, "protocol_error", what);
}

static const struct wsc_callbacks ws_wsc_callbacks = {
    .send = ws_wsc_send,
    .can_read = ws_source_can_read,
    .on_open = ws_source_open,
    .on_message = ws_source_message,
    .on_discard = ws_wsc_discard,
    .on_ping = ws_wsc_ping,
    .on_pong = ws_source_pong,
    .on_close = ws_source_close_code,
    .on_error = ws_wsc_error,
};

/*
 * Creates the codec of s (and, for wss://, its TLS context). Returns 0, or
 * -1 with one line in err.
 */
static int ws_wsc_new(struct ws_source *s, char *err, size_t errlen)
{
    struct wsc_config cfg;
    char e[256];
    size_t n;

    if (s->wsurl.tls) {
        s->tls = wsc_tls_new(s->tls_verify, s->ca_file, e, sizeof(e));
        if (!s->tls) {
            /* The codec names a CA file it could not load first. */
            n = s->ca_file ? strlen(s->ca_file) : 0;
            snprintf(err, errlen, "%s%s",
                     n && !strncmp(e, s->ca_file, n) ? "tls_ca_file " : "",
                     e);
            return -1;
        }
    }
    n = strlen(s->api_key) + 256;
    s->ws_headers = s->host->alloc(n);
    snprintf(s->ws_headers, n,
             "X-Schematic-Api-Key: %s\r\n"
             "X-Schematic-Datastream-Mode: replicator\r\n"
             "X-Schematic-Client: ferry\r\n"
             "X-Schematic-Client-Version: " FERRY_VERSION "\r\n",
             s->api_key);
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = s->wsurl.host;
    cfg.hostport = s->wsurl.hostport;
    cfg.path = s->wsurl.path;
    cfg.user_agent = "ferry/" FERRY_VERSION;
    cfg.headers = s->ws_headers;
    cfg.max_message = s->max_msg;
    cfg.discard_binary = 1;
    cfg.tls = s->tls;
    s->wsc = wsc_conn_new(&cfg, &ws_wsc_callbacks, s);
    return 0;
}

/* Frees what ws_wsc_new made (the headers hold the key: wiped). */
static void ws_wsc_free(struct ws_source *s)
{
    wsc_conn_free(s->wsc);
    s->wsc = NULL;
    wsc_tls_free(s->tls);
    s->tls = NULL;
    if (s->ws_headers) {
        memset(s->ws_headers, 0, strlen(s->ws_headers));
        s->host->free(s->ws_headers);
        s->ws_headers = NULL;
    }
    s->out_len = 0;
}

/* ---- the lws callback ------------------------------------------------------ */

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                       void *user, void *in, size_t len)
{
    struct ws_source *s = lws_context_user(lws_get_context(wsi));
    char why[256];

    (void)user;
    if (!s)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_CONNECTED:
        s->wsi = wsi;
        if (wsc_start(s->wsc) < 0)
            return -1;
        return 0;
    case LWS_CALLBACK_RAW_RX:
        if (wsi != s->wsi)
            return -1;
        if (wsc_rx(s->wsc, in, len) < 0 && !wsc_closing(s->wsc))
            return -1;
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE:
        if (wsi != s->wsi)
            return -1;
        if (ws_writeable(s, wsi) < 0)
            return -1;
        if (s->conn_state == WS_CONN_OPEN && !s->sub_flushed &&
            !s->out_len && !s->probe)
            ws_subscribed(s);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (wsi == s->wsi || !s->wsi) {
            ws_dial_error(why, sizeof(why), in, len);
            s->wsi = NULL;
            ws_source_dial_failed(s, why, 0);
        }
        return 0;
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_WSI_DESTROY:
        if (wsi != s->wsi)
            return 0;
        s->wsi = NULL;
        if (s->conn_state == WS_CONN_DIALING) {
            ws_dial_error(why, sizeof(why), NULL, 0);
            ws_source_dial_failed(s, s->tls && wsc_state(s->wsc) <= WSC_TLS
                                         ? "connection closed during the "
                                           "TLS handshake"
                                         : strcmp(why, "connection failed")
                                               ? why
                                               : "connection closed "
                                                 "during the handshake",
                                  0);
        } else if (s->conn_state == WS_CONN_OPEN) {
            ws_on_closed(s);
        }
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (atomic_load(&s->stopping) || s->probe)
            return 0;
        ws_load_reap(s);
        atomic_store(&s->woken, 0);
        ws_resume(s);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols ws_protocols[] = {
    { WS_PROTOCOL, ws_callback, 0, WS_RX_BUFFER, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ---- plugin entry points ---------------------------------------------------- */

static int ws_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                   void **state)
{
    struct ws_source *s;

    s = host->alloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->host = host;
    s->ctx = ctx;
    pthread_mutex_init(&s->ctl_lock, NULL);
    if (ws_options_read(s) < 0)
        goto fail;
    s->rng = (unsigned)host->now_ns() ^ (unsigned)(uintptr_t)s;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        host->log(ctx, FERRY_LOG_ERROR, "libcurl initialisation failed");
        goto fail;
    }
    *state = s;
    return FERRY_OK;

fail:
    host->free(s->api_key);
    host->free(s->ca_file);
    pthread_mutex_destroy(&s->ctl_lock);
    host->free(s);
    return FERRY_EINVAL;
}

static void ws_fini(void *state)
{
    struct ws_source *s = state;

    if (!s)
        return;
    ws_queue_clear(&s->queue);
    ws_wsc_free(s);
    s->host->free(s->out);
    s->host->free(s->api_key);
    s->host->free(s->ca_file);
    pthread_mutex_destroy(&s->ctl_lock);
    s->host->free(s);
    curl_global_cleanup();
}

/* Creates the client context (and, for wss://, the TLS context) of s;
 * logs and returns -1 on failure. */
static int ws_context_new(struct ws_source *s)
{
    struct lws_context_creation_info info;
    struct lws_context *lws;
    char err[320];

    lws_set_log_level(LLL_ERR, ws_lws_log);
    if (ws_wsc_new(s, err, sizeof(err)) < 0) {
        if (s->probe)
            ws_probe_result(s, 0, "%s", err);
        else
            WS_LOG(s, FERRY_LOG_ERROR, "%s", err);
        return -1;
    }
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ws_protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = s;
    info.connect_timeout_secs = (unsigned)((s->connect_ms + 999) / 1000) + 1;
    info.timeout_secs = (unsigned)((s->connect_ms + 999) / 1000) + 1;
    info.pt_serv_buf_size = WS_RX_BUFFER;
    lws = lws_create_context(&info);
    if (!lws) {
        if (s->probe)
            ws_probe_result(s, 0, "cannot create the event loop");
        else
            WS_LOG(s, FERRY_LOG_ERROR, "cannot create the event loop");
        ws_wsc_free(s);
        return -1;
    }
    pthread_mutex_lock(&s->ctl_lock);
    s->lws = lws;
    pthread_mutex_unlock(&s->ctl_lock);
    return 0;
}

/* Destroys what ws_context_new made, and the connection state. */
static void ws_context_free(struct ws_source *s)
{
    struct lws_context *lws = s->lws;

    lws_sul_cancel(&s->sul_reconnect);
    lws_sul_cancel(&s->sul_ping);
    lws_sul_cancel(&s->sul_pong);
    lws_sul_cancel(&s->sul_retry);
    lws_sul_cancel(&s->sul_connect);
    pthread_mutex_lock(&s->ctl_lock);
    s->lws = NULL;
    pthread_mutex_unlock(&s->ctl_lock);
    lws_context_destroy(lws);
    s->wsi = NULL;
    s->conn_state = WS_CONN_IDLE;
    ws_wsc_free(s);
}

static int ws_run(void *state)
{
    struct ws_source *s = state;

    ws_register_metrics(s);
    ws_set_connected(s, 0);
    if (s->wsurl.tls && !s->tls_verify)
        WS_LOG(s, FERRY_LOG_WARN,
               "tls_verify is off: the datastream server's certificate is "
               "not checked");
    if (ws_context_new(s) < 0)
        return FERRY_ERROR;
    ws_dial(s);
    while (!atomic_load(&s->stopping)) {
        if (lws_service(s->lws, 0) < 0)
            break;
    }

    /* Stop the loader first: it emits and kicks. */
    if (s->load) {
        ws_load_cancel(s->load);
        ws_load_finish(s->load);
        s->load = NULL;
    }
    ws_context_free(s);
    ws_set_connected(s, 0);
    ws_summary(s);
    ws_queue_clear(&s->queue);
    return FERRY_OK;
}

/* ---- probe (ferry check --connect) ----------------------------------------- */

/*
 * Completes one handshake and a ping round trip, then asks the REST API
 * the initial load uses for its two counts, on the instance itself (check
 * never runs it); main thread, blocks up to connect_timeout for each.
 * Subscribes to nothing and loads nothing.
 */
static int ws_probe(void *state, char *msg, size_t len)
{
    struct ws_source *s = state;
    uint64_t deadline;
    int rest;

    s->probe = 1;
    s->probe_done = 0;
    s->probe_msg[0] = '\0';
    if (ws_context_new(s) == 0) {
        deadline = ws_now(s) + s->connect_ms * 1000000ull;
        ws_dial(s);
        while (!s->probe_done) {
            if (ws_now(s) >= deadline) {
                char d[32];

                ws_probe_result(s, 0, "%.200s: no answer within %s", s->url,
                                ws_fmt_ms(s->connect_ms, d, sizeof(d)));
                break;
            }
            /* The connect-timeout timer wakes the loop at the latest. */
            if (lws_service(s->lws, 0) < 0)
                break;
        }
        ws_context_free(s);
    }
    s->probe = 0;
    s->dials = 0;
    s->attempts = 0;
    snprintf(msg, len, "%s", s->probe_msg[0] ? s->probe_msg : "probe failed");
    rest = ws_probe_rest(s, msg, len);
    return s->probe_done > 0 && rest == 0 ? FERRY_OK : FERRY_ERROR;
}

static void ws_stop(void *state)
{
    struct ws_source *s = state;

    atomic_store(&s->stopping, 1);
    ws_source_kick(s);
}

static void ws_wakeup(void *state)
{
    struct ws_source *s = state;

    atomic_store(&s->woken, 1);
    ws_source_kick(s);
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SOURCE, "websocket"),
    .version = FERRY_VERSION,
    .description = "Schematic datastream client (WebSocket + REST initial "
                   "load)",
    .options = ws_options,
    .init = ws_init,
    .fini = ws_fini,
    .run = ws_run,
    .stop = ws_stop,
    .wakeup = ws_wakeup,
    .probe = ws_probe,
};
