/*
 * plugins/lib/ws/out.c: the output path of the WebSocket client codec:
 * plaintext to the peer through TLS when it is on, and the masked frames
 * the client sends (RFC 6455 5.3). The contract is in out.h and wsc.h.
 */
#include <string.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "ws/out.h"
#include "ws/tls.h"

/* See out.h. */
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
