/*
 * plugins/lib/ws/frame.h: the frame parser of the WebSocket client codec.
 * Uses buf.h and the output path (out.h, wsc_send, wsc_close). Runs on
 * the thread that drives the connection.
 */
#ifndef FERRY_WS_FRAME_H
#define FERRY_WS_FRAME_H

#include "ws/internal.h"

/*
 * Parses frames from c->in while the state is WSC_OPEN and the consumer
 * can read, delivering messages through the callbacks (payloads are
 * borrowed for the callback). Returns 0, or -1 when the connection must
 * close.
 */
int wsc__frames(struct wsc_conn *c);

#endif
