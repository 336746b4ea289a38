/*
 * plugins/lib/ws/tls.h: TLS of the WebSocket client codec over memory
 * BIOs. Uses buf.h only; it never sends the upgrade itself: it tells its
 * caller when the handshake is done. All of it runs on the thread that
 * drives the connection.
 */
#ifndef FERRY_WS_TLS_H
#define FERRY_WS_TLS_H

#include "ws/internal.h"

/* Creates the TLS session of c (cfg.tls set). Returns 0 or -1 (reported).
 * c owns the session until wsc__tls_reset. */
int wsc__tls_start(struct wsc_conn *c);

/*
 * Drives the TLS handshake (state WSC_TLS). Returns 1 when it is done
 * (the state is WSC_HTTP then and the caller sends the upgrade), 0 when
 * it wants more bytes, -1 on failure (reported).
 */
int wsc__tls_handshake(struct wsc_conn *c);

/*
 * Decrypts what the read BIO holds into c->in while the consumer can read
 * (always during the HTTP handshake); does nothing in state WSC_TLS.
 * Returns the plaintext bytes added, or -1 when the connection must close.
 */
long wsc__tls_read(struct wsc_conn *c);

/* Hands the ciphertext OpenSSL produced to cb.send. */
void wsc__tls_flush(struct wsc_conn *c);

/* Returns nonzero when decrypted or encrypted input is pending. */
int wsc__tls_more(struct wsc_conn *c);

/* Frees the TLS session of c, if any. */
void wsc__tls_reset(struct wsc_conn *c);

#endif
