/*
 * plugins/lib/ws/handshake.h: the opening handshake of the WebSocket
 * client codec. Uses buf.h and out.h. Runs on the thread that drives the
 * connection.
 */
#ifndef FERRY_WS_HANDSHAKE_H
#define FERRY_WS_HANDSHAKE_H

#include "ws/internal.h"

/* Sends the upgrade request with a fresh key (kept in c->key). */
void wsc__send_upgrade(struct wsc_conn *c);

/*
 * Parses the answer to the upgrade in c->in. Returns 1 when it was a
 * valid 101 (then the state is WSC_OPEN and on_open was called), 0 when
 * more bytes are needed, -1 on failure (reported).
 */
int wsc__http_response(struct wsc_conn *c);

#endif
