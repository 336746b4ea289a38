/*
 * plugins/source_websocket/util.c: the websocket source's pure helpers:
 * URL derivation and splitting, reconnect backoff, the held-message queue,
 * rate-limited logging and the subscription requests. No I/O.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schematic/datastream.h"
#include "wsrc.h"

/* Copies a string into a bounded buffer; -1 when it does not fit. */
static int ws_copy(char *out, size_t outlen, const char *s, size_t n)
{
    if (n >= outlen)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int ws_has_prefix(const char *s, const char *prefix)
{
    return !strncasecmp(s, prefix, strlen(prefix));
}

int ws_url_derive(const char *in, char *out, size_t outlen, char *err,
                  size_t errlen)
{
    const char *scheme, *rest, *auth_end, *host, *query;
    size_t hostlen, n;
    int written;

    if (!in || !*in) {
        snprintf(err, errlen, "empty URL");
        return -1;
    }
    if (ws_has_prefix(in, "ws://") || ws_has_prefix(in, "wss://")) {
        if (ws_copy(out, outlen, in, strlen(in)) < 0) {
            snprintf(err, errlen, "URL too long");
            return -1;
        }
        return 0;
    }
    if (ws_has_prefix(in, "https://")) {
        scheme = "wss";
        rest = in + 8;
    } else if (ws_has_prefix(in, "http://")) {
        scheme = "ws";
        rest = in + 7;
    } else {
        snprintf(err, errlen,
                 "cannot derive a datastream URL from '%.200s': the scheme "
                 "must be http://, https://, ws:// or wss://",
                 in);
        return -1;
    }
    /* The authority ends at the first '/', '?' or '#'. */
    auth_end = rest + strcspn(rest, "/?#");
    if (auth_end == rest) {
        snprintf(err, errlen, "URL '%.200s' has no host", in);
        return -1;
    }
    host = rest;
    hostlen = (size_t)(auth_end - rest);
    query = strchr(auth_end, '?');
    if (query) {
        const char *hash = strchr(query, '#');

        n = hash ? (size_t)(hash - query) : strlen(query);
    } else {
        n = 0;
    }
    /*
     * Go's client splits the host (with its port) on dots: more than one
     * label and a first label of exactly "api" -> "datastream".
     */
    {
        const char *dot = memchr(host, '.', hostlen);

        if (dot && dot - host == 3 && !strncmp(host, "api", 3)) {
            written = snprintf(out, outlen, "%s://datastream%.*s/datastream%.*s",
                               scheme, (int)(hostlen - 3), host + 3, (int)n,
                               query ? query : "");
        } else {
            written = snprintf(out, outlen, "%s://%.*s/datastream%.*s", scheme,
                               (int)hostlen, host, (int)n, query ? query : "");
        }
    }
    if (written < 0 || (size_t)written >= outlen) {
        snprintf(err, errlen, "URL too long");
        return -1;
    }
    return 0;
}

int ws_url_parse(const char *url, struct ws_url *u, char *err, size_t errlen)
{
    const char *rest, *auth_end, *at, *hp, *colon;
    size_t hplen;

    memset(u, 0, sizeof(*u));
    if (ws_has_prefix(url, "wss://")) {
        u->tls = 1;
        rest = url + 6;
    } else if (ws_has_prefix(url, "ws://")) {
        rest = url + 5;
    } else {
        snprintf(err, errlen, "'%.200s' is not a ws:// or wss:// URL", url);
        return -1;
    }
    auth_end = rest + strcspn(rest, "/?#");
    /* Drop any userinfo: credentials go in headers, never the URL. */
    at = memchr(rest, '@', (size_t)(auth_end - rest));
    hp = at ? at + 1 : rest;
    hplen = (size_t)(auth_end - hp);
    if (hplen == 0) {
        snprintf(err, errlen, "URL '%.200s' has no host", url);
        return -1;
    }
    if (ws_copy(u->hostport, sizeof(u->hostport), hp, hplen) < 0) {
        snprintf(err, errlen, "host too long in '%.200s'", url);
        return -1;
    }
    if (hp[0] == '[') {
        const char *close = memchr(hp, ']', hplen);

        if (!close) {
            snprintf(err, errlen, "bad IPv6 host in '%.200s'", url);
            return -1;
        }
        if (ws_copy(u->host, sizeof(u->host), hp + 1,
                    (size_t)(close - hp - 1)) < 0) {
            snprintf(err, errlen, "host too long in '%.200s'", url);
            return -1;
        }
        colon = close + 1 < auth_end && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(hp, ':', hplen);
        if (ws_copy(u->host, sizeof(u->host), hp,
                    colon ? (size_t)(colon - hp) : hplen) < 0) {
            snprintf(err, errlen, "host too long in '%.200s'", url);
            return -1;
        }
    }
    if (!u->host[0]) {
        snprintf(err, errlen, "URL '%.200s' has no host", url);
        return -1;
    }
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);

        if (end != auth_end || port < 1 || port > 65535) {
            snprintf(err, errlen, "bad port in '%.200s'", url);
            return -1;
        }
        u->port = (int)port;
    } else {
        u->port = u->tls ? 443 : 80;
    }
    {
        const char *path = auth_end;
        size_t plen = strcspn(path, "#");
        int n;

        if (*path == '/')
            n = snprintf(u->path, sizeof(u->path), "%.*s", (int)plen, path);
        else
            n = snprintf(u->path, sizeof(u->path), "/%.*s", (int)plen, path);
        if (n < 0 || (size_t)n >= sizeof(u->path)) {
            snprintf(err, errlen, "path too long in '%.200s'", url);
            return -1;
        }
    }
    return 0;
}

uint64_t ws_backoff_ms(unsigned attempt, uint64_t min_ms, uint64_t max_ms,
                       double rnd)
{
    uint64_t base = min_ms ? min_ms : 1, d;
    unsigned i;

    for (i = 1; i < attempt && base < max_ms; i++)
        base *= 2;
    if (base > max_ms)
        base = max_ms;
    if (rnd < 0)
        rnd = 0;
    if (rnd >= 1)
        rnd = 0.999999;
    d = base + (uint64_t)((double)(base / 4) * rnd);
    if (d > max_ms)
        d = max_ms;
    if (d < min_ms)
        d = min_ms;
    return d;
}

const char *ws_fmt_ms(uint64_t ms, char *buf, size_t len)
{
    unsigned long long s = ms / 1000;

    if (ms % 1000)
        snprintf(buf, len, "%llums", (unsigned long long)ms);
    else if (s < 60)
        snprintf(buf, len, "%llus", s);
    else if (s % 60)
        snprintf(buf, len, "%llum%llus", s / 60, s % 60);
    else
        snprintf(buf, len, "%llum", s / 60);
    return buf;
}

static size_t ws_slen(const char *s)
{
    return s ? strlen(s) + 1 : 1;
}

/* Appends s (or "") at *p and returns where it went. */
static const char *ws_put(char **p, const char *s)
{
    char *at = *p;
    size_t n = s ? strlen(s) : 0;

    if (n)
        memcpy(at, s, n);
    at[n] = '\0';
    *p += n + 1;
    return at;
}

struct ws_item *ws_item_new(const struct ferry_msg *msg)
{
    size_t size = sizeof(struct ws_item), i;
    struct ws_item *it;
    struct ferry_kv *kv;
    char *p;

    size += msg->nkeys * sizeof(struct ferry_kv);
    size += ws_slen(msg->entity_type) + ws_slen(msg->entity_id) +
            ws_slen(msg->order_key) + msg->payload_len + 1;
    for (i = 0; i < msg->nkeys; i++)
        size += ws_slen(msg->keys[i].key) + ws_slen(msg->keys[i].value);
    it = malloc(size);
    if (!it)
        abort();
    it->next = NULL;
    it->msg = *msg;
    it->msg.struct_size = sizeof(struct ferry_msg);
    kv = (struct ferry_kv *)(it + 1);
    p = (char *)(kv + msg->nkeys);
    for (i = 0; i < msg->nkeys; i++) {
        kv[i].key = ws_put(&p, msg->keys[i].key);
        kv[i].value = ws_put(&p, msg->keys[i].value);
    }
    it->msg.keys = msg->nkeys ? kv : NULL;
    it->msg.entity_type = ws_put(&p, msg->entity_type);
    it->msg.entity_id = ws_put(&p, msg->entity_id);
    it->msg.order_key = ws_put(&p, msg->order_key);
    if (msg->payload_len)
        memcpy(p, msg->payload, msg->payload_len);
    p[msg->payload_len] = '\0';
    it->msg.payload = p;
    return it;
}

void ws_queue_push(struct ws_queue *q, struct ws_item *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->len++;
}

struct ws_item *ws_queue_pop(struct ws_queue *q)
{
    struct ws_item *it = q->head;

    if (!it)
        return NULL;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    it->next = NULL;
    return it;
}

void ws_queue_clear(struct ws_queue *q)
{
    struct ws_item *it;

    while ((it = ws_queue_pop(q)))
        free(it);
}

int ws_ratelog_ok(struct ws_ratelog *r, uint64_t now_ns, uint64_t interval_ns,
                  unsigned long *suppressed)
{
    if (r->last_ns && now_ns - r->last_ns < interval_ns) {
        r->suppressed++;
        return 0;
    }
    r->last_ns = now_ns ? now_ns : 1;
    *suppressed = r->suppressed;
    r->suppressed = 0;
    return 1;
}

static const struct {
    const char *name;
    unsigned bit;
    const char *entity_type;
} ws_subs[] = {
    { "companies", WS_SUB_COMPANIES, "rulesengine.Companies" },
    { "users", WS_SUB_USERS, "rulesengine.Users" },
    { "flags", WS_SUB_FLAGS, "rulesengine.Flags" },
};

int ws_subscribe_parse(const char *const *items, size_t n, char *err,
                       size_t errlen)
{
    unsigned mask = 0;
    size_t i, j;

    for (i = 0; i < n; i++) {
        for (j = 0; j < sizeof(ws_subs) / sizeof(ws_subs[0]); j++)
            if (!strcasecmp(items[i], ws_subs[j].name))
                break;
        if (j == sizeof(ws_subs) / sizeof(ws_subs[0])) {
            snprintf(err, errlen,
                     "subscribe: unknown item '%.64s' (expected companies, "
                     "users, flags)",
                     items[i]);
            return -1;
        }
        mask |= ws_subs[j].bit;
    }
    if (!mask) {
        snprintf(err, errlen,
                 "subscribe: empty (expected some of companies, users, "
                 "flags)");
        return -1;
    }
    return (int)mask;
}

int ws_subscribe_request(unsigned sub, const struct ferry_pos *pos,
                         char *out, size_t outlen)
{
    const char *et = NULL;
    char cursor[FERRY_POS_STRLEN];
    size_t j;
    int n;

    for (j = 0; j < sizeof(ws_subs) / sizeof(ws_subs[0]); j++)
        if (ws_subs[j].bit == sub)
            et = ws_subs[j].entity_type;
    if (!et)
        return -1;
    if (pos && pos->set) {
        ds_pos_format(pos, cursor, sizeof(cursor));
        n = snprintf(out, outlen,
                     "{\"data\":{\"action\":\"start\",\"entity_type\":\"%s\","
                     "\"replay_from\":\"%s\"}}",
                     et, cursor);
    } else {
        n = snprintf(out, outlen,
                     "{\"data\":{\"action\":\"start\",\"entity_type\":\"%s\"}}",
                     et);
    }
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return n;
}
