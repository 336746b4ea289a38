/*
 * plugins/lib/ws/conn.c: the connection of the WebSocket client codec:
 * lifecycle, the input buffer, the receive pump and sending frames. The
 * contract is in wsc.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "ws/internal.h"

/* Do not keep buffers larger than this after one big message. */
#define WSC_KEEP_BUFFER (4u * 1024 * 1024)

/*
 * realloc that aborts on out-of-memory (the codec has no way to go on
 * without its buffer). Returns the block.
 */
void *wsc__realloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

/*
 * Makes room for more bytes at the end of c->in, compacting before it
 * grows. Moves c->in: pointers into it are stale afterwards.
 */
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

/* Plaintext for the peer: through TLS when on, then to send(). */
void wsc__write(struct wsc_conn *c, const void *p, size_t n)
{
    const unsigned char *b = p;

    if (!c->ssl) {
        c->cb.send(c->arg, p, n);
        return;
    }
    while (n) {
        int w = SSL_write(c->ssl, b, n > 16384 ? 16384 : (int)n);

        if (w <= 0)
            break; /* memory BIO: does not happen after the handshake */
        b += w;
        n -= (size_t)w;
    }
    wsc__tls_flush(c);
}

/* Nonzero while the consumer takes messages. */
int wsc__can_read(struct wsc_conn *c)
{
    return !c->cb.can_read || c->cb.can_read(c->arg);
}

/* Reports a failure through on_error. */
void wsc__fail(struct wsc_conn *c, enum wsc_error kind, int http_status,
               const char *what)
{
    if (c->cb.on_error)
        c->cb.on_error(c->arg, kind, http_status, what);
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
        return wsc__tls_read(c) < 0 ? -1 : 0; /* sends the ClientHello */
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
        if (c->ssl && (got = wsc__tls_read(c)) < 0) {
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

/* ---- sending ------------------------------------------------------------- */

/* See wsc.h. */
void wsc_send(struct wsc_conn *c, int opcode, const void *payload,
              size_t len)
{
    unsigned char hdr[14], mask[4], buf[4096];
    const unsigned char *p = payload;
    size_t h = 0, i, off;

    hdr[h++] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (i = 0; i < 8; i++)
            hdr[h++] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    RAND_bytes(mask, sizeof(mask));
    memcpy(hdr + h, mask, 4);
    h += 4;
    wsc__write(c, hdr, h);
    for (off = 0; off < len; off += sizeof(buf)) {
        size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

        for (i = 0; i < n; i++)
            buf[i] = p[off + i] ^ mask[(off + i) & 3];
        wsc__write(c, buf, n);
    }
}

/* See wsc.h. */
void wsc_close(struct wsc_conn *c, int code)
{
    unsigned char b[2] = { (unsigned char)(code >> 8), (unsigned char)code };

    if (c->state == WSC_CLOSING || c->state == WSC_IDLE)
        return;
    wsc_send(c, WSC_OP_CLOSE, b, code ? 2 : 0);
    c->state = WSC_CLOSING;
}
