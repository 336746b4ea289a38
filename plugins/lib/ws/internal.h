/*
 * plugins/lib/ws/internal.h: the connection struct the files of the codec
 * share. Not for plugins: they use wsc.h. Header only: the functions the
 * files share are declared in the header of the file that defines them
 * (buf.h, tls.h, out.h, handshake.h, frame.h), and calls go one way:
 * buf <- tls <- out <- handshake, frame <- conn. Names shared between
 * files carry wsc__.
 */
#ifndef FERRY_WS_INTERNAL_H
#define FERRY_WS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "ws/wsc.h"

struct wsc_tls {
    SSL_CTX *ctx;
    int verify;
};

struct wsc_conn {
    struct wsc_config cfg;
    struct wsc_callbacks cb;
    void *arg;
    enum wsc_state state;
    int in_pump;            /* wsc_pump is running */

    /* TLS of this connection (cfg.tls set). */
    SSL *ssl;
    BIO *rbio;              /* ciphertext from the socket */
    BIO *wbio;              /* ciphertext to the socket */

    char key[32];           /* Sec-WebSocket-Key of this handshake */

    /* Received plaintext not yet parsed: in[in_off, in_len). */
    unsigned char *in;
    size_t in_off;
    size_t in_len;
    size_t in_cap;

    /* Frame and message state. */
    int msg_active;         /* a fragmented message is in progress */
    int msg_op;             /* its opcode */
    uint64_t skip;          /* payload bytes of a frame to discard */
    int skip_fin;           /* the discarded frame ends its message */
    char *rx;               /* fragments joined */
    size_t rx_len;
    size_t rx_cap;
    uint64_t rx_total;      /* bytes of the message so far */
    enum wsc_discard rx_bad; /* 0, or why the message is discarded */
};

#endif
