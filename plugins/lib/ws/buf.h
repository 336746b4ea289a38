/*
 * plugins/lib/ws/buf.h: the leaf of the WebSocket client codec: memory,
 * the input buffer and reporting to the consumer. Calls nothing else of
 * the codec. All of it runs on the thread that drives the connection.
 */
#ifndef FERRY_WS_BUF_H
#define FERRY_WS_BUF_H

#include <stddef.h>

#include "ws/internal.h"

/*
 * realloc that aborts on out-of-memory (the codec has no way to go on
 * without its buffer). Returns the block; the caller owns it.
 */
void *wsc__realloc(void *p, size_t n);

/*
 * Makes room for more bytes at the end of c->in, compacting before it
 * grows. Moves c->in: pointers into it are stale afterwards.
 */
void wsc__in_reserve(struct wsc_conn *c, size_t more);

/* Returns nonzero while the consumer takes messages (cb.can_read). */
int wsc__can_read(struct wsc_conn *c);

/* Reports a failure through cb.on_error; the strings are borrowed. */
void wsc__fail(struct wsc_conn *c, enum wsc_error kind, int http_status,
               const char *what);

#endif
