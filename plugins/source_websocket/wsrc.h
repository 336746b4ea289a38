/*
 * plugins/source_websocket/wsrc.h: internals of the Schematic datastream
 * source, shared by its files:
 *   source.c   init/run/stop/wakeup, the connection lifecycle on a
 *              libwebsockets event loop (an lws raw socket fed to the
 *              WebSocket codec of plugins/lib/ws, wsc.h), messages,
 *              backpressure;
 *   options.c  the options table and their checks;
 *   stats.c    counters, metrics and the summary line;
 *   load.c     the REST initial load (libcurl multi, its own thread, its
 *              own copy of the options; it does not know struct
 *              ws_source);
 *   rest_probe.c  the REST half of ferry check --connect;
 *   util.c     URL derivation, backoff, the held-message queue, rate-limited
 *              logging: pure functions, unit-tested without I/O.
 *
 * Why not lws's own ws client role: lws 4.1 parses received frames one
 * byte at a time (about 110 MB/s, 70k messages/s of 1.5 KB on the bench
 * machine, with nothing else done), which caps the source far below its
 * 200k messages/s goal; and its raw-socket TLS client fails intermittently,
 * so the codec does TLS with OpenSSL over the raw socket.
 *
 * Nothing here is exported from the .so (-fvisibility=hidden); the names
 * carry the ws_ prefix of the plugin.
 */
#ifndef FERRY_SOURCE_WEBSOCKET_WSRC_H
#define FERRY_SOURCE_WEBSOCKET_WSRC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "ferry/ferry.h"
#include "ws/wsc.h"

/* ---- util.c ------------------------------------------------------------ */

/*
 * Derives the datastream WebSocket URL from a configured URL
 * (schematic-datastream.md 1.1): ws:// and wss:// are used unchanged;
 * http:// and https:// become ws:// and wss://, a first host label "api"
 * (of a host with more than one label) becomes "datastream", the path is
 * replaced by /datastream and the query is kept (a #fragment is dropped).
 * Schemes compare case-insensitively. Returns 0 with the URL in out, or -1
 * with one line in err.
 */
int ws_url_derive(const char *in, char *out, size_t outlen, char *err,
                  size_t errlen);

/* A ws:// or wss:// URL split for lws_client_connect_via_info(). */
struct ws_url {
    int tls;          /* wss:// */
    int port;         /* explicit, or 80 / 443 */
    char host[256];   /* address to dial: "127.0.0.1", "::1" (no []) */
    char hostport[300]; /* Host header: as written in the URL */
    char path[2048];  /* path and query, "/" at least */
};

/* Splits a ws:// or wss:// URL. Returns 0, or -1 with one line in err. */
int ws_url_parse(const char *url, struct ws_url *u, char *err,
                 size_t errlen);

/*
 * The delay before dial attempt number `attempt` (1 = the first retry after
 * a failed dial): base = min_ms * 2^(attempt-1) capped at max_ms, plus a
 * jitter of up to base/4 taken from rnd (uniform in [0, 1)), and the
 * result clamped to [min_ms, max_ms].
 */
uint64_t ws_backoff_ms(unsigned attempt, uint64_t min_ms, uint64_t max_ms,
                       double rnd);

/* Formats a duration in ms as "40s", "1500ms", "2m", "1m30s" into buf. */
const char *ws_fmt_ms(uint64_t ms, char *buf, size_t len);

/*
 * A queued message: one allocation holding the struct and every string it
 * points to (so it outlives the frame it was parsed from).
 */
struct ws_item {
    struct ws_item *next;
    struct ferry_msg msg;
};

/* Deep-copies msg (NULL strings become ""). Aborts on out-of-memory. */
struct ws_item *ws_item_new(const struct ferry_msg *msg);

/* A FIFO of ws_items; owned by one thread. */
struct ws_queue {
    struct ws_item *head;
    struct ws_item *tail;
    size_t len;
};

void ws_queue_push(struct ws_queue *q, struct ws_item *it);
/* Removes and returns the head, or NULL. */
struct ws_item *ws_queue_pop(struct ws_queue *q);
/* Frees every item. */
void ws_queue_clear(struct ws_queue *q);

/*
 * At most one log line per interval: ws_ratelog_ok() returns 1 when a line
 * may be written now (then *suppressed is the number of lines held back
 * since the previous one), else 0 and counts the line as suppressed. One
 * thread per struct.
 */
struct ws_ratelog {
    uint64_t last_ns;
    unsigned long suppressed;
};

int ws_ratelog_ok(struct ws_ratelog *r, uint64_t now_ns,
                  uint64_t interval_ns, unsigned long *suppressed);

/* Subscription bits, in the order the requests are sent. */
enum {
    WS_SUB_COMPANIES = 1u << 0,
    WS_SUB_USERS = 1u << 1,
    WS_SUB_FLAGS = 1u << 2
};

/* Parses the subscribe list. Returns the WS_SUB_* mask, or -1 with the
 * offending item named in err. An empty list is an error. */
int ws_subscribe_parse(const char *const *items, size_t n, char *err,
                       size_t errlen);

/*
 * Builds the subscription request for one WS_SUB_* bit:
 *   {"data":{"action":"start","entity_type":"rulesengine.Companies",
 *    "replay_from":"<ms>-<seq>"}}
 * (replay_from omitted when pos is NULL or unset). Returns the length
 * written to out (NUL-terminated), or -1 when out is too small.
 */
int ws_subscribe_request(unsigned sub, const struct ferry_pos *pos,
                         char *out, size_t outlen);

/* ---- load.c ------------------------------------------------------------- */

struct ws_load;

/* What an initial load needs of the source's options. ws_load_start()
 * copies the struct and its strings. */
struct ws_load_config {
    char api_url[2048];     /* REST base, no trailing '/' */
    const char *api_key;    /* sent as X-Schematic-Api-Key */
    const char *ca_file;    /* NULL: the system CAs */
    int tls_verify;
    uint64_t connect_ms;
    uint64_t rmin_ms;       /* retry backoff of a failed request */
    uint64_t rmax_ms;
    int page_size;
    int concurrency;        /* requests in flight at most */
    double rate;            /* requests per second, 0: unlimited */
};

/* Progress reported to the source (for its metrics). */
enum ws_load_event {
    WS_LOAD_REQUEST = 1,    /* a REST request started */
    WS_LOAD_FAILURE = 2,    /* a REST request failed (it is retried) */
    WS_LOAD_ENTITY = 3      /* a company or user was emitted */
};

/*
 * How the loader reaches the source; every callback runs on the loader
 * thread, with arg. emit offers one message, waiting up to wait_ms, and
 * returns a host emit_wait() status (the message is borrowed for the
 * call); progress and stopping may be NULL; done is called once, as the
 * thread's last action (after ws_load_done() turned nonzero).
 */
struct ws_load_callbacks {
    void *arg;
    int (*emit)(void *arg, const struct ferry_msg *msg, int wait_ms);
    void (*progress)(void *arg, enum ws_load_event ev);
    int (*stopping)(void *arg);
    void (*done)(void *arg);
};

/*
 * Starts an initial load on a new thread: LOAD_BEGIN, every company and
 * user from the REST API (FERRY_OP_FULL, FERRY_MSG_F_LOAD and
 * SCH_MSG_F_NORMALIZED), LOAD_END. host and ctx serve logging, the clock
 * and one metric. Returns NULL when the thread could not start (logged;
 * no callback is called). Any thread.
 */
struct ws_load *ws_load_start(const struct ferry_host *host,
                              struct ferry_ctx *ctx,
                              const struct ws_load_config *cfg,
                              const struct ws_load_callbacks *cb);
/* Nonzero once the loader thread has finished. Any thread. */
int ws_load_done(struct ws_load *l);
/* Asks the loader to stop soon (any thread, does not block). */
void ws_load_cancel(struct ws_load *l);
/* Joins the thread and frees. Returns 1 when LOAD_END was emitted, else
 * 0. Accepts NULL (returns 0). */
int ws_load_finish(struct ws_load *l);

/* ---- source.c ------------------------------------------------------------ */


/* Per-reason invalid-message counters kept for the summary line. */
#define WS_MAX_REASONS 16

struct ws_reason {
    const char *reason; /* a static string */
    struct ferry_metric *metric;
    unsigned long count;
};

/* The instance. Fields are written by the lws (run) thread unless marked
 * otherwise. */
struct ws_source {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;

    /* Options, fixed after init(). */
    char url[2048];         /* the WebSocket URL actually dialled */
    struct ws_url wsurl;
    char api_url[2048];     /* REST base, no trailing '/' */
    char *api_key;
    uint64_t ping_ms;       /* 0: no keepalive */
    uint64_t pong_ms;
    uint64_t connect_ms;
    uint64_t rmin_ms;
    uint64_t rmax_ms;
    size_t max_msg;
    int tls_verify;
    char *ca_file;
    unsigned subs;          /* WS_SUB_* */
    int replay;
    int bulk_load;
    int page_size;
    int concurrency;
    double rate;            /* requests per second, 0: unlimited */
    size_t max_held;

    /* Cross-thread. ctl_lock guards lws for kicks from other threads. */
    pthread_mutex_t ctl_lock;
    struct lws_context *lws;
    atomic_int stopping;
    atomic_int woken;

    /* Connection (lws thread). */
    struct lws *wsi;
    int conn_state;         /* WS_CONN_* */
    unsigned attempts;      /* consecutive failed dials */
    unsigned long dials;
    uint64_t dial_ns;
    uint64_t open_ns;
    int close_code;         /* from the peer's close frame, 0: none */
    int key_refused;        /* the last close was 4001 */
    int confirm_pending;    /* connected after a 4001: wait for data */
    int probe;              /* probe() runs: report, do not retry */
    int probe_done;         /* 1 ok, -1 failed */
    char probe_msg[512];
    int sub_flushed;        /* the subscriptions left the socket */
    char replay_from[FERRY_POS_STRLEN];
    int subscribed_logged;  /* WS_SUB_* confirmations logged this conn */
    lws_sorted_usec_list_t sul_reconnect;
    lws_sorted_usec_list_t sul_ping;
    lws_sorted_usec_list_t sul_pong;
    lws_sorted_usec_list_t sul_retry;
    lws_sorted_usec_list_t sul_connect;
    unsigned int rng;

    /* The WebSocket codec (plugins/lib/ws) of the connection, and what
     * it gave us to write that the socket has not taken yet. */
    struct wsc_tls *tls;    /* wss:// only; for the whole run */
    struct wsc_conn *wsc;   /* for the whole run */
    char *ws_headers;       /* extra upgrade headers (hold the key) */
    unsigned char *out;     /* LWS_PRE + bytes to write */
    size_t out_len;
    size_t out_cap;

    /* Held / blocked messages (lws thread). */
    struct ws_queue queue;
    int holding;            /* an initial load runs: hold stream messages */
    int paused;             /* we disabled rx on the connection */
    int loaded_once;        /* the first-connection load decision is made */
    int load_pending;       /* start a load once subscriptions are sent */
    struct ws_load *load;
    struct ferry_pos last_pos; /* newest stream position received */

    /* Logging and counters (lws thread). */
    struct ws_ratelog rl_invalid;
    struct ws_ratelog rl_error;
    unsigned long n_messages;
    unsigned long n_errors;
    unsigned long n_invalid;
    struct ws_reason reasons[WS_MAX_REASONS];
    size_t nreasons;
    struct ferry_metric *m_msgs[4][6];
    struct ferry_metric *m_connected;
    struct ferry_metric *m_reconnects;
    struct ferry_metric *m_unhealthy;
    struct ferry_metric *m_errors;
    struct ferry_metric *m_stream_time;
    struct ferry_metric *m_held;
    struct ferry_metric *m_paused;

    /* Loader metrics (added to on the loader thread, ws_loader_progress). */
    struct ferry_metric *m_load_requests;
    struct ferry_metric *m_load_failures;
    struct ferry_metric *m_load_entities;
};

enum {
    WS_CONN_IDLE = 0,    /* not connected, maybe a redial is scheduled */
    WS_CONN_DIALING = 1, /* connect_via_info called, not established */
    WS_CONN_OPEN = 2     /* established */
};

/* Shared helpers; everything on the lws thread unless said otherwise. */
#define WS_LOG(s, lvl, ...) (s)->host->log((s)->ctx, (lvl), __VA_ARGS__)
#define WS_SEC_NS 1000000000ull

static inline uint64_t ws_now(struct ws_source *s)
{
    return s->host->now_ns();
}

static inline struct ferry_metric *ws_metric(struct ws_source *s, int type,
                                             const char *name,
                                             const char *help,
                                             const char *const *labels)
{
    return s->host->metric(s->ctx, type, name, help, labels);
}

/* Any thread (the host's metric calls are). */
static inline void ws_metric_add(struct ws_source *s, struct ferry_metric *m,
                                 double v)
{
    if (m)
        s->host->metric_add(m, v);
}

static inline void ws_metric_set(struct ws_source *s, struct ferry_metric *m,
                                 double v)
{
    if (m)
        s->host->metric_set(m, v);
}

/* ---- options.c ------------------------------------------------------------ */

/* The option table of the plugin descriptor. */
extern const struct ferry_option ws_options[];

/* Reads and checks every option into s (host and ctx set). Returns 0, or
 * -1 after logging one line; the caller frees api_key and ca_file. Main
 * thread, from init(). */
int ws_options_read(struct ws_source *s);

/* ---- stats.c -------------------------------------------------------------- */

/* Counts a stream message by entity and message type. */
void ws_count_message(struct ws_source *s, const struct ferry_msg *m);
/* Counts a message that is not applied by reason (a static string) and
 * logs it, at most once a second; stream_id may be NULL. */
void ws_invalid(struct ws_source *s, const char *reason, const char *detail,
                const char *stream_id);
/* Registers the source's metrics (from run()). */
void ws_register_metrics(struct ws_source *s);
/* Logs the closing summary: counts by kind, for operators and tests. */
void ws_summary(struct ws_source *s);

/* ---- rest_probe.c ------------------------------------------------------ */

/* The REST half of the probe (ferry check --connect): GET
 * {api_url}/companies/count and /users/count with the API key, each within
 * connect_timeout; appends "; REST <api_url>: N companies, M users", or
 * the first failure, to the text in msg (len bytes). Returns 0 or -1. Main
 * thread, from probe(). */
int ws_probe_rest(struct ws_source *s, char *msg, size_t len);

#endif
