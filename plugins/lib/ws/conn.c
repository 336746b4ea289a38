/*
 * plugins/lib/ws/conn.c: the connection of the WebSocket client codec:
 * lifecycle, start and the receive pump, on top of the other files (it
 * sends the upgrade when TLS says its handshake is done). The contract is
 * in wsc.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "ws/buf.h"
#include "ws/frame.h"
#include "ws/handshake.h"
#include "ws/tls.h"

/* Do not keep buffers larger than this after one big message. */
#define WSC_KEEP_BUFFER (4u * 1024 * 1024)

/*
 * Drives TLS one step: the handshake while it runs (sending the upgrade
 * once it is done), then decryption into c->in. Returns the plaintext
 * bytes added (0 while the handshake wants more), or -1 when the
 * connection must close (reported).
 */
static long wsc_conn_tls_step(struct wsc_conn *c)
{
    if (c->state == WSC_TLS) {
        int h = wsc__tls_handshake(c);

        if (h <= 0)
            return h;
        wsc__send_upgrade(c);
    }
    return wsc__tls_read(c);
}

/* ---- lifecycle ---------------------------------------------------------- */

/* See wsc.h. */
struct wsc_conn *wsc_conn_new(const struct wsc_config *cfg,
                              const struct wsc_callbacks *cb, void *arg)
{
    struct wsc_conn *c = wsc__realloc(NULL, sizeof(*c));

    memset(c, 0, sizeof(*c));
    c->cfg = *cfg;
    c->cb = *cb;
    c->arg = arg;
    return c;
}

/* See wsc.h. */
void wsc_reset(struct wsc_conn *c)
{
    wsc__tls_reset(c);
    c->state = WSC_IDLE;
    c->in_off = c->in_len = 0;
    c->msg_active = 0;
    c->msg_op = 0;
    c->skip = 0;
    c->skip_fin = 0;
    c->rx_len = 0;
    c->rx_total = 0;
    c->rx_bad = 0;
    memset(c->key, 0, sizeof(c->key));
}

/* See wsc.h. */
void wsc_conn_free(struct wsc_conn *c)
{
    if (!c)
        return;
    wsc_reset(c);
    free(c->in);
    free(c->rx);
    free(c);
}

/* See wsc.h. */
int wsc_start(struct wsc_conn *c)
{
    wsc_reset(c);
    if (c->cfg.tls) {
        c->state = WSC_TLS;
        if (wsc__tls_start(c) < 0)
            return -1;
        return wsc_conn_tls_step(c) < 0 ? -1 : 0; /* the ClientHello */
    }
    c->state = WSC_HTTP;
    wsc__send_upgrade(c);
    return 0;
}

/* See wsc.h. */
enum wsc_state wsc_state(const struct wsc_conn *c)
{
    return c->state;
}

/* See wsc.h. */
int wsc_closing(const struct wsc_conn *c)
{
    return c->state == WSC_CLOSING;
}

/* ---- receiving ---------------------------------------------------------- */

/* See wsc.h. */
int wsc_pump(struct wsc_conn *c)
{
    long got = 0;
    int r = 0;

    if (c->in_pump || c->state == WSC_IDLE)
        return 0;
    c->in_pump = 1;
    for (;;) {
        if (c->ssl && (got = wsc_conn_tls_step(c)) < 0) {
            r = -1;
            break;
        }
        if (c->state == WSC_TLS)
            break; /* the TLS handshake wants more bytes */
        if (c->state == WSC_HTTP) {
            int h = wsc__http_response(c);

            if (h <= 0) {
                r = h;
                break;
            }
        }
        if (wsc__frames(c) < 0) {
            r = -1;
            break;
        }
        /* With TLS, more plaintext may wait in the BIO behind what was
         * parsed: go on while decrypting makes progress. */
        if (!c->ssl || c->state == WSC_CLOSING || !wsc__can_read(c) ||
            got <= 0 || !wsc__tls_more(c))
            break;
    }
    if (c->in_off == c->in_len) {
        c->in_off = c->in_len = 0;
        if (c->in_cap > WSC_KEEP_BUFFER) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    if (c->rx_cap > WSC_KEEP_BUFFER && !c->msg_active) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
    c->in_pump = 0;
    return r;
}

/* See wsc.h. */
int wsc_rx(struct wsc_conn *c, const void *bytes, size_t len)
{
    if (c->state == WSC_IDLE)
        return 0;
    if (c->ssl) {
        BIO_write(c->rbio, bytes, (int)len);
    } else if (len) {
        wsc__in_reserve(c, len);
        memcpy(c->in + c->in_len, bytes, len);
        c->in_len += len;
    }
    return wsc_pump(c);
}
