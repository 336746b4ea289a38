/*
 * plugins/lib/ws/buf.c: memory, the input buffer and error reporting of
 * the WebSocket client codec. The contract is in buf.h.
 */
#include <stdlib.h>
#include <string.h>

#include "ws/buf.h"

/* See buf.h. */
void *wsc__realloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* See buf.h. */
void wsc__in_reserve(struct wsc_conn *c, size_t more)
{
    size_t cap;

    if (c->in_off && c->in_off == c->in_len) {
        c->in_off = 0;
        c->in_len = 0;
    }
    if (c->in_len + more <= c->in_cap)
        return;
    if (c->in_off) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
        if (c->in_len + more <= c->in_cap)
            return;
    }
    cap = c->in_cap ? c->in_cap : 65536;
    while (cap < c->in_len + more)
        cap *= 2;
    c->in = wsc__realloc(c->in, cap);
    c->in_cap = cap;
}

/* See buf.h. */
int wsc__can_read(struct wsc_conn *c)
{
    return !c->cb.can_read || c->cb.can_read(c->arg);
}

/* See buf.h. */
void wsc__fail(struct wsc_conn *c, enum wsc_error kind, int http_status,
               const char *what)
{
    if (c->cb.on_error)
        c->cb.on_error(c->arg, kind, http_status, what);
}
