/*
 * plugins/lib/ws/frame.c: the frame parser of the WebSocket client codec
 * (RFC 6455 5): frames are parsed in place in c->in; a message of one
 * frame is delivered without a copy, fragments are joined in c->rx,
 * control frames are handled between fragments, discarded messages are
 * skipped as they arrive.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/buf.h"
#include "ws/frame.h"

/* A protocol violation: close with 1002 and report it. Returns -1. */
static int wsc_protocol_error(struct wsc_conn *c, const char *what)
{
    if (c->cb.on_error)
        c->cb.on_error(c->arg, WSC_ERR_PROTOCOL, 0, what);
    if (c->cb.on_close)
        c->cb.on_close(c->arg, 1002);
    wsc_close(c, 1002);
    return -1;
}

/* Ends the message being assembled: delivers or reports it. */
static void wsc_message_done(struct wsc_conn *c)
{
    if (c->rx_bad) {
        if (c->cb.on_discard)
            c->cb.on_discard(c->arg, c->rx_bad, c->rx_total);
    } else if (c->cb.on_message) {
        c->cb.on_message(c->arg, c->msg_op, c->rx, c->rx_len);
    }
    c->msg_active = 0;
    c->rx_len = 0;
    c->rx_total = 0;
    c->rx_bad = 0;
}

static void wsc_rx_append(struct wsc_conn *c, const unsigned char *p,
                          size_t n)
{
    if (c->rx_len + n > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 65536;

        while (cap < c->rx_len + n)
            cap *= 2;
        c->rx = wsc__realloc(c->rx, cap);
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, p, n);
    c->rx_len += n;
}

/* Handles a complete control frame. Returns 0 or -1 (close). */
static int wsc_control(struct wsc_conn *c, int op, const unsigned char *p,
                       size_t n)
{
    int code;

    switch (op) {
    case WSC_OP_PING:
        wsc_send(c, WSC_OP_PONG, p, n);
        if (c->cb.on_ping)
            c->cb.on_ping(c->arg);
        return 0;
    case WSC_OP_PONG:
        if (c->cb.on_pong)
            c->cb.on_pong(c->arg);
        return 0;
    case WSC_OP_CLOSE:
        code = n >= 2 ? (p[0] << 8) | p[1] : 1005;
        if (c->cb.on_close)
            c->cb.on_close(c->arg, code);
        wsc_close(c, n >= 2 ? code : 0);
        return -1;
    default:
        return wsc_protocol_error(c, "unknown control opcode");
    }
}

/* The frame header at p (avail bytes). */
struct wsc_hdr {
    int fin;
    int op;
    size_t len;     /* header bytes */
    uint64_t plen;  /* payload bytes */
};

/* Parses a frame header. Returns 1 when complete, 0 when more bytes are
 * needed, -1 after a protocol error. */
static int wsc_header(struct wsc_conn *c, const unsigned char *p,
                      size_t avail, struct wsc_hdr *h)
{
    size_t i;

    if (avail < 2)
        return 0;
    h->fin = p[0] & 0x80;
    h->op = p[0] & 0x0f;
    if (p[0] & 0x70)
        return wsc_protocol_error(c, "reserved bits set in a frame");
    if (p[1] & 0x80)
        return wsc_protocol_error(c, "masked frame from the server");
    h->plen = p[1] & 0x7f;
    h->len = 2;
    if (h->plen == 126) {
        if (avail < 4)
            return 0;
        h->plen = ((uint64_t)p[2] << 8) | p[3];
        h->len = 4;
    } else if (h->plen == 127) {
        if (avail < 10)
            return 0;
        h->plen = 0;
        for (i = 0; i < 8; i++)
            h->plen = (h->plen << 8) | p[2 + i];
        h->len = 10;
        if (h->plen >> 63)
            return wsc_protocol_error(c, "frame length out of range");
    }
    return 1;
}

/* Discards what arrived of a skipped payload. Returns 1 when the payload
 * is done, 0 when more is to come. */
static int wsc_skip(struct wsc_conn *c)
{
    size_t avail = c->in_len - c->in_off;
    size_t n = avail < c->skip ? avail : (size_t)c->skip;

    c->in_off += n;
    c->skip -= n;
    c->rx_total += n;
    if (c->skip)
        return 0;
    if (c->skip_fin)
        wsc_message_done(c);
    return 1;
}

/* Why a data frame's message is discarded (0: it is not). */
static enum wsc_discard wsc_verdict(struct wsc_conn *c,
                                    const struct wsc_hdr *h)
{
    int start = h->op != WSC_OP_CONT;
    enum wsc_discard bad = start ? 0 : c->rx_bad;
    uint64_t before = start ? 0 : c->rx_total;

    if (start && h->op == WSC_OP_BINARY && c->cfg.discard_binary)
        bad = WSC_DISCARD_BINARY;
    if (!bad && c->cfg.max_message && before + h->plen > c->cfg.max_message)
        bad = WSC_DISCARD_TOO_LARGE;
    return bad;
}

/*
 * Handles a data frame whose header is complete. Returns 1 when it was
 * taken, 0 when its payload is incomplete (it is parsed again from its
 * header later: state changes only once a frame is taken), -1 on error.
 */
static int wsc_data(struct wsc_conn *c, const unsigned char *p,
                    size_t avail, const struct wsc_hdr *h)
{
    int start = h->op != WSC_OP_CONT;
    enum wsc_discard bad;

    if (h->op != WSC_OP_CONT && h->op != WSC_OP_TEXT &&
        h->op != WSC_OP_BINARY)
        return wsc_protocol_error(c, "unknown data opcode");
    if (!start != (c->msg_active != 0))
        return wsc_protocol_error(c, start ? "new message inside a "
                                             "fragmented one"
                                           : "continuation without a "
                                             "start");
    bad = wsc_verdict(c, h);
    if (bad) {
        /* Discard the payload as it arrives, never buffered. */
        if (start) {
            c->msg_active = 1;
            c->msg_op = h->op;
            c->rx_total = 0;
        }
        c->rx_bad = bad;
        c->rx_len = 0;
        c->in_off += h->len;
        c->skip = h->plen;
        c->skip_fin = h->fin != 0;
        if (!h->plen && h->fin)
            wsc_message_done(c);
        return 1;
    }
    if (avail < h->len + h->plen) {
        /* Wait for the rest; make room for it in one step. */
        wsc__in_reserve(c, h->len + (size_t)h->plen - avail);
        return 0;
    }
    c->in_off += h->len + (size_t)h->plen;
    if (start && h->fin) {
        /* The common case: a whole message in one frame, no copy. */
        if (c->cb.on_message)
            c->cb.on_message(c->arg, h->op, (const char *)p + h->len,
                             (size_t)h->plen);
        return 1;
    }
    if (start) {
        c->msg_active = 1;
        c->msg_op = h->op;
        c->rx_len = 0;
        c->rx_total = 0;
        c->rx_bad = 0;
    }
    c->rx_total += h->plen;
    wsc_rx_append(c, p + h->len, (size_t)h->plen);
    if (h->fin)
        wsc_message_done(c);
    return 1;
}

/* See frame.h. */
int wsc__frames(struct wsc_conn *c)
{
    while (c->state == WSC_OPEN && wsc__can_read(c)) {
        const unsigned char *p = c->in + c->in_off;
        size_t avail = c->in_len - c->in_off;
        struct wsc_hdr h = { 0, 0, 0, 0 };
        int r;

        if (c->skip) {
            if (!wsc_skip(c))
                return 0;
            continue;
        }
        r = wsc_header(c, p, avail, &h);
        if (r <= 0)
            return r;
        if (h.op >= 8) {
            if (!h.fin || h.plen > 125)
                return wsc_protocol_error(c, "bad control frame");
            if (avail < h.len + h.plen)
                return 0;
            c->in_off += h.len + (size_t)h.plen;
            if (wsc_control(c, h.op, p + h.len, (size_t)h.plen) < 0)
                return -1;
            continue;
        }
        r = wsc_data(c, p, avail, &h);
        if (r <= 0)
            return r;
    }
    return 0;
}
