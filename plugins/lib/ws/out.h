/*
 * plugins/lib/ws/out.h: the output path of the WebSocket client codec:
 * plaintext to the peer, in the clear or through TLS. The masked frames
 * are built by wsc_send and wsc_close (declared in wsc.h, defined in
 * out.c). Uses tls.h. Runs on the thread that drives the connection.
 */
#ifndef FERRY_WS_OUT_H
#define FERRY_WS_OUT_H

#include <stddef.h>

#include "ws/internal.h"

/* Hands n bytes of plaintext for the peer to cb.send, through TLS when it
 * is on. p is borrowed for the call. */
void wsc__write(struct wsc_conn *c, const void *p, size_t n);

#endif
