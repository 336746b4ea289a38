/*
 * plugins/lib/ws/wsc.h: a WebSocket client codec (RFC 6455) with optional
 * TLS over OpenSSL memory BIOs, for plugins that own their transport.
 *
 * The codec does no I/O. The plugin dials a TCP connection however it
 * likes (an lws raw socket, a plain socket), then:
 *
 *   wsc_start()  once the TCP connection is up: starts TLS (the
 *                ClientHello) or sends the HTTP upgrade request;
 *   wsc_rx()     with every block of bytes read from the socket;
 *   wsc_pump()   when the consumer can take messages again (below);
 *   wsc_send()   to send a text, binary, ping or pong message;
 *   wsc_close()  to start the close handshake;
 *
 * and the codec calls back through struct wsc_callbacks: send() with bytes
 * for the socket (the transport queues them in order), on_open() when the
 * server accepted the upgrade, on_message() with each complete message,
 * on_pong(), on_close(), on_error().
 *
 * Receiving: bytes are parsed in place in the codec's input buffer. A
 * message that fits one frame is handed to on_message() without a copy;
 * fragments are joined in a second buffer. Control frames between the
 * fragments of a message are handled at once. Messages over max_message
 * bytes (and binary messages when discard_binary is set) are discarded as
 * they arrive, never buffered, and reported through on_discard().
 *
 * Backpressure: before each frame the codec asks can_read(). While it
 * returns 0 nothing more is parsed or delivered; received bytes stay in
 * the codec (with TLS, still encrypted in the read BIO) and the plugin
 * should stop reading its socket, so that TCP flow control reaches the
 * server. When the consumer can take messages again the plugin calls
 * wsc_pump(), which parses what was kept.
 *
 * Threads: a struct wsc_conn is used by one thread at a time; every
 * callback runs on that thread, inside the wsc_* call that caused it.
 * Callbacks may call wsc_send(), wsc_close() and the query functions;
 * they must not call wsc_start(), wsc_rx(), wsc_reset() or
 * wsc_conn_free() (wsc_pump() from a callback returns 0 and does
 * nothing). A struct wsc_tls may be shared by connections on any threads
 * once created (OpenSSL's SSL_CTX rules).
 *
 * Errors: 0 is success, -1 means the connection must be closed by the
 * transport; the reason was already reported through a callback. After a
 * close frame was queued (wsc_closing() is nonzero) the transport should
 * write what send() gave it and then close the socket.
 */
#ifndef FERRY_WS_WSC_H
#define FERRY_WS_WSC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opcodes (RFC 6455 5.2). */
enum {
    WSC_OP_CONT = 0,
    WSC_OP_TEXT = 1,
    WSC_OP_BINARY = 2,
    WSC_OP_CLOSE = 8,
    WSC_OP_PING = 9,
    WSC_OP_PONG = 10
};

/* Where a connection is; see wsc_state(). */
enum wsc_state {
    WSC_IDLE = 0,  /* wsc_start() not called since the last reset */
    WSC_TLS = 1,   /* the TLS handshake runs */
    WSC_HTTP = 2,  /* the upgrade request is out, no answer yet */
    WSC_OPEN = 3,  /* the server answered 101: messages flow */
    WSC_CLOSING = 4 /* a close frame was queued: nothing more is parsed */
};

/* What on_error() reports. */
enum wsc_error {
    /* The handshake failed before on_open(): TLS, or the HTTP answer.
     * http_status is the server's status when it answered another status
     * than 101, else 0. */
    WSC_ERR_HANDSHAKE = 1,
    /* The server broke the framing protocol; the codec queued a close
     * frame with 1002 and reported on_close(1002) before. */
    WSC_ERR_PROTOCOL = 2,
    /* TLS failed after the handshake (a corrupt record). */
    WSC_ERR_TLS = 3
};

/* Why on_discard() dropped a message. */
enum wsc_discard {
    WSC_DISCARD_BINARY = 1,   /* binary, and discard_binary is set */
    WSC_DISCARD_TOO_LARGE = 2 /* over max_message bytes */
};

/*
 * The callbacks of one connection; arg is passed to each. Only send is
 * required; a NULL callback is not called (a NULL can_read means "always").
 */
struct wsc_callbacks {
    /* Bytes for the socket, in order (ciphertext with TLS). The bytes are
     * borrowed for the call: copy or write them before returning. */
    void (*send)(void *arg, const void *bytes, size_t len);
    /* Nonzero while the consumer can take another message. */
    int (*can_read)(void *arg);
    /* The server accepted the upgrade (HTTP 101, the accept key checked). */
    void (*on_open)(void *arg);
    /* A complete message (WSC_OP_TEXT or WSC_OP_BINARY); bytes are
     * borrowed for the call and are not NUL-terminated. */
    void (*on_message)(void *arg, int opcode, const char *bytes, size_t len);
    /* A message was dropped unbuffered; total is its length in bytes. */
    void (*on_discard)(void *arg, enum wsc_discard why, uint64_t total);
    /* A ping from the server, already answered with a pong. */
    void (*on_ping)(void *arg);
    /* A pong from the server. */
    void (*on_pong)(void *arg);
    /* The close handshake began: code is the server's close code (1005
     * when its close frame carried none), or 1002 when the codec closes
     * for a protocol error. The answering close frame is queued. */
    void (*on_close)(void *arg, int code);
    /* Something failed (see enum wsc_error); what is one line, borrowed
     * for the call. The call that reported it returns -1. */
    void (*on_error)(void *arg, enum wsc_error kind, int http_status,
                     const char *what);
};

struct wsc_tls;
struct wsc_conn;

/* The options of one connection. Strings are borrowed: they must stay
 * valid until wsc_conn_free(). */
struct wsc_config {
    const char *host;      /* host name or address: SNI, verification */
    const char *hostport;  /* the Host header */
    const char *path;      /* request target, "/" at least */
    const char *user_agent; /* NULL: none */
    /* Extra header lines, each ending in "\r\n"; NULL: none. They may hold
     * secrets: the codec wipes its copy of the request after sending. */
    const char *headers;
    size_t max_message;    /* 0: unlimited */
    int discard_binary;    /* drop binary messages (on_discard) */
    struct wsc_tls *tls;   /* NULL: plaintext; borrowed */
};

/*
 * Creates a TLS client context: TLS 1.2 at least; when verify is nonzero
 * the server certificate is checked against ca_file (a PEM bundle) or,
 * when ca_file is NULL, the system CAs, and the host name (or IP address)
 * of each connection is checked too. Returns NULL with one line in err
 * (for a CA file that cannot be loaded: "<file>: <reason>"). The caller
 * owns the result (wsc_tls_free). Any thread.
 */
struct wsc_tls *wsc_tls_new(int verify, const char *ca_file, char *err,
                            size_t errlen);

/* Frees a TLS context no connection uses any more. Accepts NULL. */
void wsc_tls_free(struct wsc_tls *tls);

/*
 * Allocates a connection in state WSC_IDLE. cfg and cb are copied (not
 * the strings cfg points to). Returns the connection, owned by the
 * caller (wsc_conn_free); aborts on out-of-memory.
 */
struct wsc_conn *wsc_conn_new(const struct wsc_config *cfg,
                              const struct wsc_callbacks *cb, void *arg);

/* Frees a connection and its buffers. Accepts NULL. */
void wsc_conn_free(struct wsc_conn *c);

/*
 * Forgets the current connection (TLS session, buffered bytes, a partial
 * message) and returns to WSC_IDLE; buffers are kept for the next one.
 * Call it when the transport closed, or before dialling again.
 */
void wsc_reset(struct wsc_conn *c);

/*
 * The transport is connected: resets what a previous connection left,
 * then starts TLS or sends the upgrade request through send(). Returns 0,
 * or -1 after on_error(WSC_ERR_HANDSHAKE).
 */
int wsc_start(struct wsc_conn *c);

/*
 * Bytes read from the socket (copied into the codec), then parsed as far
 * as can_read() allows. Returns 0, or -1 when the connection must close.
 */
int wsc_rx(struct wsc_conn *c, const void *bytes, size_t len);

/*
 * Parses what earlier wsc_rx() calls left while can_read() said no.
 * Returns 0, or -1 when the connection must close.
 */
int wsc_pump(struct wsc_conn *c);

/*
 * Queues one message as a single masked frame through send(). Meant for
 * WSC_OPEN (control frames have at most 125 bytes of payload).
 */
void wsc_send(struct wsc_conn *c, int opcode, const void *payload,
              size_t len);

/* Queues a close frame with code (0: none) and enters WSC_CLOSING; does
 * nothing when closing already. */
void wsc_close(struct wsc_conn *c, int code);

/* The state of the connection. */
enum wsc_state wsc_state(const struct wsc_conn *c);

/* Nonzero once a close frame was queued. */
int wsc_closing(const struct wsc_conn *c);

/*
 * The Sec-WebSocket-Accept value for key (RFC 6455 4.2.2) into out, which
 * needs 29 bytes (else out is set to ""). Any thread.
 */
void wsc_accept_key(const char *key, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif

#endif
