/*
 * tests/support/testserver/server.c: the libwebsockets side of the test
 * server. One context, one plain vhost (ws:// + http://) and optionally a
 * TLS vhost (wss:// + https://), both on 127.0.0.1, served by one thread.
 *
 * Stream frames are pre-serialised at startup, websocket header included
 * (server frames are unmasked, so the header is fixed), into one
 * contiguous buffer: streaming messages i..j is one raw write of a slice
 * of that buffer (LWS_WRITE_RAW). A write that the socket does not take
 * whole is kept by lws and flushed before anything else is written on the
 * connection, and every slice ends on a frame boundary, so lws' own
 * control frames (pong, close) never land inside a frame.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "testserver.h"

#define CHUNK_BYTES (256 * 1024)
#define HTTP_CHUNK (32 * 1024)
#define MAX_REQUEST (64 * 1024)
#define STALL_CLOSE_US (120LL * 1000000)
#define HUGE_FRAME (16 * 1024 * 1024 + 64)

struct blob {
    unsigned char *p;
    size_t len;
};

struct outq {
    struct outq *next;
    size_t len;
    unsigned char data[];
};

/* Per-connection state (lws per-session data, zeroed by lws). Used by
 * both HTTP and WebSocket connections. */
struct conn {
    struct lws *wsi;
    unsigned id;
    int is_ws;
    int linked;
    struct conn *prev, *next;
    /* ws */
    int reject;
    int streaming;
    int stalled;
    int drop;
    int pending_reload;
    int pending_malformed; /* kind + 1 */
    long next_msg;
    long sent;
    double tokens;
    lws_usec_t last_refill;
    char replay_from[64];
    struct outq *q_head, *q_tail;
    char *rx;
    size_t rx_len;
    /* http */
    char *body;
    size_t body_len, body_off;
};

enum mal_kind {
    MAL_JSON,
    MAL_UTF8,
    MAL_BINARY,
    MAL_DEEP,
    MAL_NO_ENTITY_ID,
    MAL_WRONG_TYPE,
    MAL_HUGE,
    MAL_COUNT
};

static const char *const mal_names[MAL_COUNT] = {
    "invalid_json",      "invalid_utf8", "binary", "too_deep",
    "missing_entity_id", "wrong_type",   "huge"};

/*
 * A REST view: the entities of one type at the position it was taken.
 * Every page of one load comes from one view, so that a load sees one
 * consistent state while the stream moves on: an entity deleted between
 * two page requests would otherwise shift the offsets and make the load
 * skip another one. A load starts with /count (the asynchronous loader)
 * or, without one, with the offset-0 page (the synchronous loader); see
 * rest_page().
 */
struct rest_view {
    struct ts_val *items;
    size_t n;
    int valid;
    int armed;        /* taken by /count, offset 0 not served yet */
    lws_usec_t taken; /* when */
    long pos;
};

/* A view taken by /count serves that load's offset-0 page only if it
 * comes within this time. */
#define VIEW_ARMED_US (30LL * 1000000)

static struct srv {
    const struct ts_opts *o;
    const struct ts_world *w;
    struct ts_val *cur[4]; /* the current state, by type and slot */
    long rest_pos;         /* position cur is at */
    struct lws_context *ctx;
    long max_sent;
    int reload_sent;
    unsigned conn_ids;
    unsigned n_ws;
    struct conn *conns;
    struct blob mal[MAL_COUNT];
    int n_mal;
    struct blob reload;
    struct rest_view view[2];
    unsigned long roundtrip_failures;
    volatile sig_atomic_t stop;
} S;

size_t ws_header(unsigned char *h, int opcode, size_t len)
{
    h[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

static struct blob blob_frame(int opcode, const void *p, size_t len)
{
    struct blob b;
    unsigned char h[10];
    size_t hl = ws_header(h, opcode, len);

    b.p = malloc(hl + len);
    if (!b.p) {
        fprintf(stderr, "testserver: out of memory\n");
        exit(2);
    }
    memcpy(b.p, h, hl);
    memcpy(b.p + hl, p, len);
    b.len = hl + len;
    return b;
}

static void buf_append(struct ts_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        unsigned char *nb;

        while (b->len + n > cap)
            cap *= 2;
        nb = realloc(b->p, cap);
        if (!nb) {
            fprintf(stderr, "testserver: out of memory\n");
            exit(2);
        }
        b->p = nb;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static struct blob blob_text(const char *s)
{
    return blob_frame(1, s, strlen(s));
}

/* The malformed frames, one per kind. Where a frame would change the cache
 * if a client wrongly accepted it, it names an entity that is not in the
 * expected state, so statecheck catches the acceptance. */
static void build_malformed(void)
{
    const char *full_tail = ",\"entity_type\":\"rulesengine.Company\","
                            "\"message_type\":\"full\"}";
    char buf[512];
    char *deep;
    size_t d = 10000, n = 0;

    S.mal[MAL_JSON] = blob_text(
        "{\"data\":{\"id\":\"comp_malformed_json\",\"keys\":{\"id\":"
        "\"malformed-json\"}},\"entity_id\":\"comp_malformed_json\","
        "\"entity_type\":\"rulesengine.Company\",\"message_type\":\"full\"");
    snprintf(buf, sizeof(buf),
             "{\"data\":{\"id\":\"comp_malformed_utf8\",\"keys\":{\"id\":"
             "\"bad-\xff\xfe-utf8\"}},\"entity_id\":\"comp_malformed_utf8\"%s",
             full_tail);
    S.mal[MAL_UTF8] = blob_text(buf);
    snprintf(buf, sizeof(buf),
             "{\"data\":{\"id\":\"comp_malformed_binary\",\"keys\":{\"id\":"
             "\"malformed-binary\"}},\"entity_id\":\"comp_malformed_binary\"%s",
             full_tail);
    S.mal[MAL_BINARY] = blob_frame(2, buf, strlen(buf));
    deep = malloc(2 * d + 256);
    if (!deep)
        exit(2);
    n = (size_t)sprintf(deep, "{\"data\":");
    memset(deep + n, '[', d);
    n += d;
    memset(deep + n, ']', d);
    n += d;
    n += (size_t)sprintf(deep + n, ",\"entity_id\":\"comp_malformed_deep\"%s",
                         full_tail);
    S.mal[MAL_DEEP] = blob_frame(1, deep, n);
    free(deep);
    S.mal[MAL_NO_ENTITY_ID] = blob_text(
        "{\"data\":{\"keys\":{\"id\":\"malformed-noid\"},\"traits\":[]},"
        "\"entity_type\":\"rulesengine.Company\","
        "\"message_type\":\"partial\"}");
    S.mal[MAL_WRONG_TYPE] =
        blob_text("{\"data\":{\"id\":\"comp_malformed_type\",\"keys\":{\"id\":"
                  "\"malformed-type\"}},\"entity_id\":\"comp_malformed_type\","
                  "\"entity_type\":5,\"message_type\":\"full\"}");
    S.n_mal = MAL_HUGE;
    if (S.o->malformed_huge) {
        const char *head =
            "{\"data\":{\"id\":\"comp_malformed_huge\",\"keys\":{\"id\":"
            "\"malformed-huge\"},\"traits\":[{\"trait_definition\":null,"
            "\"value\":\"";
        const char *tail = "\"}]},\"entity_id\":\"comp_malformed_huge\","
                           "\"entity_type\":\"rulesengine.Company\","
                           "\"message_type\":\"full\"}";
        size_t hl = strlen(head), tl = strlen(tail);
        char *h = malloc(HUGE_FRAME);

        if (!h)
            exit(2);
        memcpy(h, head, hl);
        memset(h + hl, 'x', HUGE_FRAME - hl - tl);
        memcpy(h + HUGE_FRAME - tl, tail, tl);
        S.mal[MAL_HUGE] = blob_frame(1, h, HUGE_FRAME);
        free(h);
        S.n_mal = MAL_COUNT;
    }
    S.reload = blob_text("{\"data\":null,\"entity_id\":null,"
                         "\"entity_type\":\"\",\"message_type\":\"reload\"}");
}

/* ---- helpers ------------------------------------------------------------ */

static json_t *ev(const char *name, const struct conn *c)
{
    json_t *o = json_object();

    json_object_set_new(o, "event", json_string(name));
    if (c)
        json_object_set_new(o, "conn", json_integer(c->id));
    return o;
}

/* Reads a custom header ("name:" lower-case) into buf; -1 when absent or
 * longer than buf. */
static int hdr_custom(struct lws *wsi, const char *name, char *buf, int len)
{
    int n = lws_hdr_custom_length(wsi, name, (int)strlen(name));

    buf[0] = '\0';
    if (n < 0)
        return -1;
    if (n >= len)
        return -2;
    return lws_hdr_custom_copy(wsi, buf, len, name, (int)strlen(name));
}

/* 1 when the request carries the right API key. */
static int key_ok(struct lws *wsi, int *present)
{
    char buf[512];
    int n = hdr_custom(wsi, "x-schematic-api-key:", buf, sizeof(buf));

    *present = n != -1;
    return n >= 0 && strcmp(buf, S.o->api_key) == 0;
}

static void queue_frame(struct conn *c, int opcode, const char *p, size_t len)
{
    unsigned char h[10];
    size_t hl = ws_header(h, opcode, len);
    struct outq *q = malloc(sizeof(*q) + hl + len);

    if (!q) {
        fprintf(stderr, "testserver: out of memory\n");
        return;
    }
    q->next = NULL;
    q->len = hl + len;
    memcpy(q->data, h, hl);
    memcpy(q->data + hl, p, len);
    if (c->q_tail)
        c->q_tail->next = q;
    else
        c->q_head = q;
    c->q_tail = q;
}

static void queue_json(struct conn *c, json_t *env)
{
    char *s = json_dumps(env, JSON_COMPACT);

    if (s)
        queue_frame(c, 1, s, strlen(s));
    free(s);
    json_decref(env);
}

static json_t *frame_env(json_t *data, const char *entity_id, const char *etype,
                         const char *mtype)
{
    json_t *e = json_object();

    json_object_set_new(e, "data", data ? data : json_null());
    json_object_set_new(e, "entity_id",
                        entity_id ? json_string(entity_id) : json_null());
    json_object_set_new(e, "entity_type", json_string(etype));
    json_object_set_new(e, "message_type", json_string(mtype));
    return e;
}

static void conn_release(struct conn *c)
{
    struct outq *q = c->q_head;

    while (q) {
        struct outq *n = q->next;

        free(q);
        q = n;
    }
    c->q_head = c->q_tail = NULL;
    free(c->rx);
    c->rx = NULL;
    c->rx_len = 0;
    free(c->body);
    c->body = NULL;
    if (c->linked) {
        if (c->prev)
            c->prev->next = c->next;
        else
            S.conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->linked = 0;
        S.n_ws--;
    }
}

/* Brings the current state (REST, snapshots, lookups) up to the latest
 * position sent. */
static void rest_catch_up(void)
{
    while (S.rest_pos < S.max_sent) {
        const struct ts_delta *d = &S.w->delta[++S.rest_pos];

        if (d->type)
            S.cur[d->type][d->slot] = d->v;
    }
}

/* Position after which a stream resumes: replay_from "<ms>-<seq>" means
 * "messages after it" (9.3). Returns the first message index to send. */
static long start_index(const char *replay_from)
{
    long long ms;
    unsigned long long seq;
    char tail;

    if (!replay_from || !*replay_from)
        return 1;
    if (sscanf(replay_from, "%lld-%llu%c", &ms, &seq, &tail) != 2 || ms < 0)
        return 1;
    if (ms < ts_base_ms + 1)
        return 1;
    if (ms - ts_base_ms + 1 > S.w->n + 1)
        return S.w->n + 1;
    return (long)(ms - ts_base_ms + 1);
}

/* ---- requests ----------------------------------------------------------- */

/* Queues the flags snapshot frame(s) of the current state: the whole
 * array, or pages of page_size flags when the request opts in (3.3). */
static void send_snapshot(struct conn *c, json_t *d)
{
    json_int_t page_size = json_integer_value(json_object_get(d, "page_size"));
    const struct ts_val *fl = S.cur[SCH_FLAG];
    size_t nslot = S.w->nslot[SCH_FLAG], total = 0, page = 0, k = 1;
    struct ts_buf b = {0};

    rest_catch_up();
    for (size_t i = 1; i <= nslot; i++)
        total += fl[i].live;
    if (page_size <= 0)
        page_size = (json_int_t)total + 1;
    do {
        size_t inpage = 0;
        char tail[160];

        b.len = 0;
        buf_append(&b, "{\"data\":[", 9);
        for (; k <= nslot && inpage < (size_t)page_size; k++) {
            if (!fl[k].live)
                continue;
            if (inpage++)
                buf_append(&b, ",", 1);
            buf_append(&b, ts_text(S.w, &fl[k]), fl[k].len);
        }
        /* --samples: the sample flags end an unpaginated snapshot. */
        if (k > nslot &&
            json_integer_value(json_object_get(d, "page_size")) <= 0) {
            for (size_t i = 0; i < ts_samples.nflags; i++) {
                if (inpage++)
                    buf_append(&b, ",", 1);
                buf_append(&b, ts_samples.flags[i],
                           strlen(ts_samples.flags[i]));
            }
        }
        page++;
        if (d && json_integer_value(json_object_get(d, "page_size")) > 0)
            snprintf(tail, sizeof(tail),
                     "],\"entity_id\":null,\"entity_type\":"
                     "\"rulesengine.Flags\",\"message_type\":\"full\","
                     "\"pagination\":{\"has_more\":%s,\"page\":%zu,"
                     "\"total\":%zu}}",
                     (page * (size_t)page_size < total) ? "true" : "false",
                     page, total);
        else
            snprintf(tail, sizeof(tail),
                     "],\"entity_id\":null,\"entity_type\":"
                     "\"rulesengine.Flags\",\"message_type\":\"full\"}");
        buf_append(&b, tail, strlen(tail));
        queue_frame(c, 1, (const char *)b.p, b.len);
    } while (page * (size_t)page_size < total);
    free(b.p);
}

static void start_stream(struct conn *c, const char *replay_from)
{
    long start;

    if (c->streaming && !(replay_from && *replay_from))
        return; /* re-subscription without a cursor: keep going */
    start = start_index(replay_from);
    /* A resuming client already holds everything up to its cursor, so
     * REST and snapshots must not go back behind it. */
    if (start - 1 > S.max_sent)
        S.max_sent = start - 1;
    c->next_msg = start;
    c->streaming = 1;
    c->tokens = 1;
    c->last_refill = lws_now_usecs();
}

static int lower_eq(const char *a, const char *b)
{
    char *la = sch_lower(a), *lb = sch_lower(b);
    int eq = la && lb && strcmp(la, lb) == 0;

    free(la);
    free(lb);
    return eq;
}

/* The current entity having any of keys' (k, v) pairs (compared
 * lower-cased, as SDKs look them up): a new reference, or NULL. */
static json_t *find_by_keys(enum sch_type t, json_t *keys)
{
    for (size_t i = 1; i <= S.w->nslot[t] && json_is_object(keys); i++) {
        const struct ts_val *v = &S.cur[t][i];
        json_t *e, *ek, *kv, *cv;
        const char *k, *ck;

        if (!v->live)
            continue;
        e = json_loadb(ts_text(S.w, v), v->len, 0, NULL);
        ek = json_object_get(e, "keys");
        json_object_foreach(keys, k, kv)
        {
            json_object_foreach(ek, ck, cv)
            {
                if (json_is_string(kv) && lower_eq(k, ck) &&
                    lower_eq(json_string_value(kv), json_string_value(cv)))
                    return e;
            }
        }
        json_decref(e);
    }
    return NULL;
}

/* Direct-mode single-entity lookup: the entity, or an error with the keys
 * (msg-11's shape). */
static void handle_lookup(struct conn *c, enum sch_type t, json_t *d,
                          const char *etype)
{
    json_t *keys = json_object_get(d, "keys");
    json_t *e;

    rest_catch_up();
    e = find_by_keys(t, keys);
    if (e) {
        char id[256];

        snprintf(id, sizeof(id), "%s",
                 json_string_value(json_object_get(e, "id")));
        queue_json(c, frame_env(e, id, etype, "full"));
    } else {
        json_t *data = json_object();

        json_object_set_new(data, "error",
                            json_string(t == SCH_COMPANY ? "company not found"
                                                         : "user not found"));
        json_object_set_new(data, "keys",
                            keys ? json_deep_copy(keys) : json_object());
        json_object_set_new(data, "entity_type", json_string(etype));
        queue_json(c, frame_env(data, NULL, etype, "error"));
    }
}

static void error_frame(struct conn *c, const char *msg)
{
    json_t *data = json_object();

    json_object_set_new(data, "error", json_string(msg));
    queue_json(c, frame_env(data, NULL, "", "error"));
}

static void handle_request(struct conn *c, const char *buf, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(buf, len, 0, &jerr);
    json_t *d = json_object_get(req, "data");
    const char *et = json_string_value(json_object_get(d, "entity_type"));
    const char *rf = json_string_value(json_object_get(d, "replay_from"));
    json_t *e = ev("request", c);

    json_object_set_new(e, "data",
                        d ? json_deep_copy(d) : json_stringn_nocheck(buf, len));
    evlog_write(e);
    if (!json_is_object(d) || !et) {
        error_frame(c, "invalid request");
        goto out;
    }
    if (rf && *rf)
        snprintf(c->replay_from, sizeof(c->replay_from), "%s", rf);
    if (strcmp(et, "rulesengine.Companies") == 0 ||
        strcmp(et, "rulesengine.Users") == 0) {
        /* Subscription confirmation: shape unspecified (3.2, 16). */
        queue_json(c, frame_env(json_object(), NULL, et, "full"));
    } else if (strcmp(et, "rulesengine.Flags") == 0) {
        start_stream(c, rf && *rf ? rf : c->replay_from);
        send_snapshot(c, d);
        if (ts_samples.on) {
            queue_frame(c, 1, ts_samples.company_frame,
                        strlen(ts_samples.company_frame));
            queue_frame(c, 1, ts_samples.user_frame,
                        strlen(ts_samples.user_frame));
        }
    } else if (strcmp(et, "rulesengine.Company") == 0) {
        handle_lookup(c, SCH_COMPANY, d, et);
    } else if (strcmp(et, "rulesengine.User") == 0) {
        handle_lookup(c, SCH_USER, d, et);
    } else {
        error_frame(c, "invalid request");
    }
out:
    json_decref(req);
    lws_callback_on_writable(c->wsi);
}

/* ---- websocket writing -------------------------------------------------- */

static int write_raw(struct lws *wsi, const unsigned char *p, size_t len)
{
    int n = lws_write(wsi, (unsigned char *)p, len, LWS_WRITE_RAW);

    return n < 0 ? -1 : 0;
}

/* Number of stream messages the rate limit allows now (>= 1), or 0 after
 * arming the timer. */
static long rate_allow(struct conn *c)
{
    double rate = S.o->rate;
    double burst = rate / 200 > 1 ? rate / 200 : 1;
    lws_usec_t now;

    if (rate <= 0)
        return S.w->n;
    now = lws_now_usecs();
    c->tokens += (double)(now - c->last_refill) * rate / 1e6;
    c->last_refill = now;
    if (c->tokens > burst)
        c->tokens = burst;
    if (c->tokens < 1) {
        lws_usec_t wait = (lws_usec_t)((1 - c->tokens) * 1e6 / rate);

        lws_set_timer_usecs(c->wsi, wait > 100 ? wait : 100);
        return 0;
    }
    return (long)c->tokens;
}

static void after_batch(struct conn *c, long last)
{
    const struct ts_opts *o = S.o;

    if (last > S.max_sent)
        S.max_sent = last;
    if (o->malformed_every > 0 && last % o->malformed_every == 0 && S.n_mal > 0)
        c->pending_malformed =
            (int)((last / o->malformed_every - 1) % S.n_mal) + 1;
    if (o->reload_at > 0 && last == o->reload_at && !S.reload_sent)
        c->pending_reload = 1;
    if (o->disconnect_every > 0 && c->sent % o->disconnect_every == 0)
        c->drop = 1;
    if (o->stall_after > 0 && c->sent >= o->stall_after && !c->stalled) {
        json_t *e = ev("stall", c);

        c->stalled = 1;
        lws_rx_flow_control(c->wsi, 0);
        lws_set_timer_usecs(c->wsi, STALL_CLOSE_US);
        json_object_set_new(e, "after", json_integer(last));
        evlog_write(e);
    }
}

static int ws_writeable(struct conn *c)
{
    struct lws *wsi = c->wsi;
    const struct ts_opts *o = S.o;
    const size_t *off = S.w->off;

    if (c->reject) {
        static const char reason[] = "invalid api key";

        lws_close_reason(wsi, (enum lws_close_status)4001,
                         (unsigned char *)reason, sizeof(reason) - 1);
        return -1;
    }
    for (;;) {
        long first, last, limit;

        if (lws_send_pipe_choked(wsi)) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        if (c->q_head) {
            struct outq *q = c->q_head;

            if (write_raw(wsi, q->data, q->len))
                return -1;
            c->q_head = q->next;
            if (!c->q_head)
                c->q_tail = NULL;
            free(q);
            continue;
        }
        if (c->pending_malformed) {
            int k = c->pending_malformed - 1;
            json_t *e = ev("malformed", c);

            c->pending_malformed = 0;
            json_object_set_new(e, "kind", json_string(mal_names[k]));
            json_object_set_new(e, "after", json_integer(c->next_msg - 1));
            evlog_write(e);
            if (write_raw(wsi, S.mal[k].p, S.mal[k].len))
                return -1;
            continue;
        }
        if (c->pending_reload) {
            json_t *e;

            /* Once per server lifetime, on whichever connection gets
             * there first. */
            c->pending_reload = 0;
            if (S.reload_sent)
                continue;
            S.reload_sent = 1;
            e = ev("reload", c);
            json_object_set_new(e, "after", json_integer(c->next_msg - 1));
            evlog_write(e);
            if (write_raw(wsi, S.reload.p, S.reload.len))
                return -1;
            continue;
        }
        if (c->drop) {
            json_t *e = ev("drop", c);

            json_object_set_new(e, "after", json_integer(c->next_msg - 1));
            evlog_write(e);
            /* No close frame: the peer sees the TCP connection end. */
            shutdown(lws_get_socket_fd(wsi), SHUT_RDWR);
            return -1;
        }
        if (!c->streaming || c->stalled || c->next_msg > S.w->n)
            return 0;

        first = c->next_msg;
        limit = S.w->n;
        {
            long allow = rate_allow(c);

            if (!allow)
                return 0;
            if (first + allow - 1 < limit)
                limit = first + allow - 1;
        }
        if (o->disconnect_every > 0) {
            long left = o->disconnect_every - c->sent % o->disconnect_every;

            if (first + left - 1 < limit)
                limit = first + left - 1;
        }
        if (o->stall_after > 0 &&
            first + (o->stall_after - c->sent) - 1 < limit)
            limit = first + (o->stall_after - c->sent) - 1;
        if (o->malformed_every > 0) {
            long b = (first + o->malformed_every - 1) / o->malformed_every *
                     o->malformed_every;

            if (b < limit)
                limit = b;
        }
        if (o->reload_at > 0 && !S.reload_sent && first <= o->reload_at &&
            o->reload_at < limit)
            limit = o->reload_at;
        last = first;
        while (last < limit && off[last + 2] - off[first] <= CHUNK_BYTES)
            last++;
        if (write_raw(wsi, S.w->frames.p + off[first],
                      off[last + 1] - off[first]))
            return -1;
        c->sent += last - first + 1;
        c->next_msg = last + 1;
        if (o->rate > 0)
            c->tokens -= (double)(last - first + 1);
        after_batch(c, last);
    }
}

/* ---- REST --------------------------------------------------------------- */

static void view_refresh(int which)
{
    struct rest_view *v = &S.view[which];
    enum sch_type t = which == 0 ? SCH_COMPANY : SCH_USER;

    rest_catch_up();
    free(v->items);
    v->items = calloc(S.w->nslot[t] + 1, sizeof(*v->items));
    v->n = 0;
    for (size_t i = 1; i <= S.w->nslot[t] && v->items; i++)
        if (S.cur[t][i].live)
            v->items[v->n++] = S.cur[t][i];
    v->valid = 1;
    v->armed = 0;
    v->taken = lws_now_usecs();
    v->pos = S.rest_pos;
}

static char *json_body(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    return s;
}

static char *error_body(const char *msg)
{
    json_t *o = json_object();

    json_object_set_new(o, "error", json_string(msg));
    return json_body(o);
}

static int parse_long_arg(struct lws *wsi, const char *name, long dflt,
                          long *out)
{
    char buf[64];
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, sizeof(buf));
    char *end;

    *out = dflt;
    if (!v)
        return 0;
    errno = 0;
    *out = strtol(v, &end, 10);
    if (errno || end == v || *end || *out < 0)
        return -1;
    return 0;
}

static char *rest_page(int which, struct lws *wsi, int *status)
{
    enum sch_type t = which == 0 ? SCH_COMPANY : SCH_USER;
    struct rest_view *v = &S.view[which];
    long limit, offset;
    json_t *arr, *o;

    if (parse_long_arg(wsi, "limit=", 100, &limit) ||
        parse_long_arg(wsi, "offset=", 0, &offset) || limit > 10000) {
        *status = 400;
        return error_body("invalid limit or offset");
    }
    if (offset == 0 && v->armed && lws_now_usecs() - v->taken <= VIEW_ARMED_US)
        v->armed = 0;
    else if (offset == 0 || !v->valid)
        view_refresh(which);
    arr = json_array();
    for (long i = offset; i < offset + limit && (size_t)i < v->n; i++) {
        const struct ts_val *val = &v->items[i];
        const char *text = ts_text(S.w, val);
        json_t *e = json_loadb(text, val->len, 0, NULL);
        char err[512];

        if (!e)
            continue;
        /* Initial values were all checked at startup. */
        if ((val->in_frames || val->off >= S.w->init_len) &&
            rest_roundtrip_check(t, e, text, val->len, err, sizeof(err)) &&
            S.roundtrip_failures++ < 5)
            fprintf(stderr, "testserver: %s\n", err);
        json_array_append_new(arr, rest_from_cached(t, e));
        json_decref(e);
    }
    o = json_object();
    json_object_set_new(o, "data", arr);
    *status = 200;
    return json_body(o);
}

static char *rest_count(int which, int *status)
{
    json_t *o = json_object(), *d = json_object();

    view_refresh(which);
    S.view[which].armed = 1;
    json_object_set_new(d, "count", json_integer((json_int_t)S.view[which].n));
    json_object_set_new(o, "data", d);
    *status = 200;
    return json_body(o);
}

static char *status_body(void)
{
    json_t *o = json_object();

    json_object_set_new(o, "messages", json_integer(S.w->n));
    json_object_set_new(o, "rest_pos", json_integer(S.rest_pos));
    json_object_set_new(o, "max_sent", json_integer(S.max_sent));
    json_object_set_new(o, "connections", json_integer(S.n_ws));
    json_object_set_new(o, "reload_sent", json_boolean(S.reload_sent));
    json_object_set_new(o, "rest_roundtrip_failures",
                        json_integer((json_int_t)S.roundtrip_failures));
    return json_body(o);
}

static char *route(struct lws *wsi, const char *path, int *status)
{
    int present;

    if (strcmp(path, "/_status") == 0) {
        *status = 200;
        return status_body();
    }
    if (strcmp(path, "/datastream") == 0) {
        *status = 400;
        return error_body("websocket upgrade required");
    }
    if (strcmp(path, "/companies/count") && strcmp(path, "/companies") &&
        strcmp(path, "/users/count") && strcmp(path, "/users")) {
        *status = 404;
        return error_body("not found");
    }
    if (!key_ok(wsi, &present)) {
        *status = 401;
        return error_body(present ? "invalid api key" : "missing api key");
    }
    if (strcmp(path, "/companies/count") == 0)
        return rest_count(0, status);
    if (strcmp(path, "/users/count") == 0)
        return rest_count(1, status);
    if (strcmp(path, "/companies") == 0)
        return rest_page(0, wsi, status);
    return rest_page(1, wsi, status);
}

static int http_request(struct conn *c, struct lws *wsi, const char *path)
{
    unsigned char hbuf[LWS_PRE + 1024];
    unsigned char *start = &hbuf[LWS_PRE], *p = start;
    unsigned char *end = &hbuf[sizeof(hbuf) - 1];
    char full[1024], frag[256];
    int status = 500, n;
    json_t *e;

    /* The path with its query string, for the log. */
    snprintf(full, sizeof(full), "%s", path);
    for (n = 0; lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
                                      WSI_TOKEN_HTTP_URI_ARGS, n) >= 0;
         n++) {
        size_t l = strlen(full);

        snprintf(full + l, sizeof(full) - l, "%c%s", n ? '&' : '?', frag);
    }
    free(c->body);
    c->body = route(wsi, path, &status);
    if (!c->body)
        c->body = strdup("{}");
    c->body_len = strlen(c->body);
    c->body_off = 0;
    e = ev("rest", NULL);
    json_object_set_new(e, "path", json_string(full));
    json_object_set_new(e, "status", json_integer(status));
    evlog_write(e);
    if (lws_add_http_common_headers(wsi, (unsigned int)status,
                                    "application/json", c->body_len, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_writeable(struct conn *c, struct lws *wsi)
{
    static unsigned char buf[LWS_PRE + HTTP_CHUNK];
    size_t n;
    int last;

    if (!c->body)
        return 0;
    n = c->body_len - c->body_off;
    if (n > HTTP_CHUNK)
        n = HTTP_CHUNK;
    last = c->body_off + n == c->body_len;
    memcpy(buf + LWS_PRE, c->body + c->body_off, n);
    if (lws_write(wsi, buf + LWS_PRE, n,
                  last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return 1;
    c->body_off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    free(c->body);
    c->body = NULL;
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

/* ---- callback ----------------------------------------------------------- */

static void ws_established(struct conn *c, struct lws *wsi)
{
    static const char *const names[] = {
        "x-schematic-datastream-mode:", "x-schematic-client:",
        "x-schematic-client-version:"};
    json_t *e, *h = json_object();
    char buf[512];
    int present, ok;

    conn_release(c);
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->id = ++S.conn_ids;
    c->is_ws = 1;
    c->linked = 1;
    c->next = S.conns;
    if (S.conns)
        S.conns->prev = c;
    S.conns = c;
    S.n_ws++;

    ok = key_ok(wsi, &present);
    /* The key itself is not logged, only whether it matched. */
    if (present)
        json_object_set_new(h, "x-schematic-api-key",
                            json_string(ok ? "valid" : "invalid"));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (hdr_custom(wsi, names[i], buf, sizeof(buf)) >= 0) {
            char name[64];

            snprintf(name, sizeof(name), "%s", names[i]);
            name[strlen(name) - 1] = '\0';
            json_object_set_new(h, name, json_string(buf));
        }
    }
    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_USER_AGENT) > 0)
        json_object_set_new(h, "user-agent", json_string(buf));
    e = ev("connect", c);
    json_object_set_new(e, "headers", h);
    json_object_set_new(e, "tls", json_boolean(lws_is_ssl(wsi)));
    json_object_set_new(e, "api_key_ok", json_boolean(ok));
    evlog_write(e);
    if (!ok) {
        c->reject = 1;
        lws_callback_on_writable(wsi);
    }
}

static int ws_receive(struct conn *c, const void *in, size_t len)
{
    char *nb;

    if (c->reject || c->stalled)
        return 0;
    if (c->rx_len + len > MAX_REQUEST) {
        lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    nb = realloc(c->rx, c->rx_len + len + 1);
    if (!nb)
        return -1;
    c->rx = nb;
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi))
        return 0;
    handle_request(c, c->rx, c->rx_len);
    c->rx_len = 0;
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    struct conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[128];

        /* Only /datastream upgrades. */
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, "/datastream") != 0)
            return 1;
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        ws_established(c, wsi);
        break;
    case LWS_CALLBACK_RECEIVE:
        return ws_receive(c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(c);
    case LWS_CALLBACK_TIMER:
        if (c->stalled)
            return -1;
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLOSED: {
        json_t *e = ev("close", c);

        json_object_set_new(e, "sent", json_integer(c->sent));
        json_object_set_new(e, "next", json_integer(c->next_msg));
        evlog_write(e);
        conn_release(c);
        break;
    }
    case LWS_CALLBACK_HTTP:
        if (!c)
            return -1;
        return http_request(c, wsi, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c)
            return -1;
        return http_writeable(c, wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c && !c->is_ws) {
            free(c->body);
            c->body = NULL;
        }
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"schematic-datastream", callback, sizeof(struct conn), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* ---- run ---------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    S.stop = 1;
    if (S.ctx)
        lws_cancel_service(S.ctx);
}

static int write_ready(const char *path, int port, int tls_port)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        return -1;
    }
    fprintf(f, "%d %d\n", port, tls_port);
    if (fclose(f) || rename(tmp, path)) {
        perror(path);
        return -1;
    }
    return 0;
}

int server_run(const struct ts_opts *o, const struct ts_world *w)
{
    struct lws_context_creation_info info;
    struct lws_vhost *vh;
    int port, tls_port = 0, rc = 1;

    memset(&S, 0, sizeof(S));
    S.o = o;
    S.w = w;
    for (int k = 1; k < 4; k++) {
        S.cur[k] = malloc((w->nslot[k] + 1) * sizeof(struct ts_val));
        if (!S.cur[k]) {
            fprintf(stderr, "testserver: out of memory\n");
            goto out;
        }
        memcpy(S.cur[k], w->init[k], (w->nslot[k] + 1) * sizeof(struct ts_val));
    }
    build_malformed();

    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (o->tls_port >= 0)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.port = CONTEXT_PORT_NO_LISTEN;
    S.ctx = lws_create_context(&info);
    if (!S.ctx) {
        fprintf(stderr, "testserver: lws_create_context failed\n");
        goto out;
    }

    memset(&info, 0, sizeof(info));
    info.port = o->port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.vhost_name = "plain";
    vh = lws_create_vhost(S.ctx, &info);
    if (!vh) {
        fprintf(stderr, "testserver: cannot listen on 127.0.0.1:%d\n", o->port);
        goto out;
    }
    port = lws_get_vhost_listen_port(vh);
    if (o->tls_port >= 0) {
        info.port = o->tls_port;
        info.vhost_name = "tls";
        info.ssl_cert_filepath = o->cert;
        info.ssl_private_key_filepath = o->key;
        /* HTTP/1.1 only: WebSocket upgrades and REST on one protocol. */
        info.alpn = "http/1.1";
        info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        vh = lws_create_vhost(S.ctx, &info);
        if (!vh) {
            fprintf(stderr, "testserver: cannot listen (TLS) on 127.0.0.1:%d\n",
                    o->tls_port);
            goto out;
        }
        tls_port = lws_get_vhost_listen_port(vh);
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (o->ready_file && write_ready(o->ready_file, port, tls_port))
        goto out;
    if (tls_port)
        printf("testserver: listening on ws://127.0.0.1:%d "
               "wss://127.0.0.1:%d\n",
               port, tls_port);
    else
        printf("testserver: listening on ws://127.0.0.1:%d\n", port);
    fflush(stdout);

    while (!S.stop)
        if (lws_service(S.ctx, 0) < 0)
            break;
    rc = 0;
out:
    if (S.ctx)
        lws_context_destroy(S.ctx);
    S.ctx = NULL;
    for (int i = 0; i < MAL_COUNT; i++)
        free(S.mal[i].p);
    free(S.reload.p);
    for (int k = 0; k < 2; k++)
        free(S.view[k].items);
    for (int k = 1; k < 4; k++)
        free(S.cur[k]);
    return rc;
}
