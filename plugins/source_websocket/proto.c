/*
 * plugins/source_websocket/proto.c: the WebSocket client protocol (RFC
 * 6455) and TLS over an lws raw socket, for the datastream source.
 *
 * Data path: the lws thread hands received bytes to ws_proto_rx(); with TLS
 * they go through OpenSSL memory BIOs (the socket stays lws's); plaintext
 * accumulates in s->in, where the HTTP 101 answer and then the frames are
 * parsed in place: a complete single-frame message is handed on without a
 * copy, fragments are joined in s->rx. Parsing stops whenever the source
 * cannot take more (ws_source_can_read); the unparsed rest stays in s->in
 * (and, with TLS, in the read BIO) and lws stops reading the socket, so TCP
 * flow control reaches the server (schematic-datastream.md 15.1).
 *
 * Output (the upgrade request, subscriptions, pings, pongs, close) is
 * framed and masked here, encrypted when TLS is on, and queued in s->out
 * until the socket is writable.
 *
 * Everything runs on the lws thread.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "wsrc.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Longest HTTP answer to the upgrade accepted. */
#define WS_MAX_HTTP 16384
/* Plaintext read from TLS per SSL_read call. */
#define WS_TLS_CHUNK 65536

/* ---- buffers ------------------------------------------------------------- */

static void ws_in_reserve(struct ws_source *s, size_t more)
{
    size_t cap;

    if (s->in_off && s->in_off == s->in_len) {
        s->in_off = 0;
        s->in_len = 0;
    }
    if (s->in_len + more <= s->in_cap)
        return;
    /* Compact before growing. */
    if (s->in_off) {
        memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
        s->in_len -= s->in_off;
        s->in_off = 0;
        if (s->in_len + more <= s->in_cap)
            return;
    }
    cap = s->in_cap ? s->in_cap : 65536;
    while (cap < s->in_len + more)
        cap *= 2;
    s->in = s->host->realloc(s->in, cap);
    s->in_cap = cap;
}

static void ws_in_append(struct ws_source *s, const void *p, size_t n)
{
    ws_in_reserve(s, n);
    memcpy(s->in + s->in_len, p, n);
    s->in_len += n;
}

static void ws_out_append(struct ws_source *s, const void *p, size_t n)
{
    if (LWS_PRE + s->out_len + n > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 4096;

        while (cap < LWS_PRE + s->out_len + n)
            cap *= 2;
        s->out = s->host->realloc(s->out, cap);
        s->out_cap = cap;
    }
    memcpy(s->out + LWS_PRE + s->out_len, p, n);
    s->out_len += n;
}

/* Moves ciphertext OpenSSL produced into the output queue. */
static void ws_tls_flush(struct ws_source *s)
{
    char buf[16384];
    int n;

    while (s->wbio && (n = BIO_read(s->wbio, buf, sizeof(buf))) > 0)
        ws_out_append(s, buf, (size_t)n);
}

/* Queues plaintext for the peer and asks for a writable callback. */
static void ws_write_plain(struct ws_source *s, const void *p, size_t n)
{
    if (s->ssl) {
        const unsigned char *c = p;

        while (n) {
            int w = SSL_write(s->ssl, c, n > 16384 ? 16384 : (int)n);

            if (w <= 0)
                break; /* memory BIO: does not happen after the handshake */
            c += w;
            n -= (size_t)w;
        }
        ws_tls_flush(s);
    } else {
        ws_out_append(s, p, n);
    }
    if (s->wsi)
        lws_callback_on_writable(s->wsi);
}

/* ---- TLS ------------------------------------------------------------------- */

SSL_CTX *ws_tls_ctx_new(struct ws_source *s, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (s->tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (s->ca_file) {
            if (SSL_CTX_load_verify_locations(ctx, s->ca_file, NULL) != 1) {
                char e[160];

                ERR_error_string_n(ERR_get_error(), e, sizeof(e));
                snprintf(err, errlen, "tls_ca_file %.200s: %s", s->ca_file,
                         e);
                SSL_CTX_free(ctx);
                return NULL;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(err, errlen, "cannot load the system CA certificates");
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

static int ws_is_ip(const char *host)
{
    unsigned char b[16];

    return inet_pton(AF_INET, host, b) == 1 ||
           inet_pton(AF_INET6, host, b) == 1;
}

static int ws_tls_start(struct ws_source *s)
{
    const char *host = s->wsurl.host;

    s->ssl = SSL_new(s->tls_ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->rbio || !s->wbio) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        s->rbio = s->wbio = NULL;
        ws_source_dial_failed(s, "cannot create a TLS session", 0);
        return -1;
    }
    SSL_set_bio(s->ssl, s->rbio, s->wbio); /* the SSL owns both now */
    SSL_set_connect_state(s->ssl);
    if (!ws_is_ip(host))
        SSL_set_tlsext_host_name(s->ssl, host);
    if (s->tls_verify) {
        if (ws_is_ip(host))
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), host);
        else
            SSL_set1_host(s->ssl, host);
    }
    return 0;
}

/* Why the TLS handshake failed, as precisely as OpenSSL says. */
static void ws_tls_error(struct ws_source *s, char *out, size_t len)
{
    long vr = SSL_get_verify_result(s->ssl);
    unsigned long e = ERR_get_error();
    char buf[160];

    if (s->tls_verify && vr != X509_V_OK) {
        snprintf(out, len, "TLS certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e) {
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(out, len, "TLS handshake failed: %s", buf);
    } else {
        snprintf(out, len, "TLS handshake failed");
    }
    ERR_clear_error();
}

/* ---- the HTTP upgrade --------------------------------------------------- */

void ws_proto_accept(const char *key, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[128];
    int n;

    n = snprintf(buf, sizeof(buf), "%s" WS_GUID, key);
    EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha1(), NULL);
    if (outlen >= 29)
        EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    else if (outlen)
        out[0] = '\0';
}

static void ws_send_upgrade(struct ws_source *s)
{
    unsigned char nonce[16];
    char req[4096];
    int n;

    RAND_bytes(nonce, sizeof(nonce));
    EVP_EncodeBlock((unsigned char *)s->ws_key, nonce, sizeof(nonce));
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "User-Agent: ferry/" FERRY_VERSION "\r\n"
                 "X-Schematic-Api-Key: %s\r\n"
                 "X-Schematic-Datastream-Mode: replicator\r\n"
                 "X-Schematic-Client: ferry\r\n"
                 "X-Schematic-Client-Version: " FERRY_VERSION "\r\n"
                 "\r\n",
                 s->wsurl.path, s->wsurl.hostport, s->ws_key, s->api_key);
    if (n > 0 && (size_t)n < sizeof(req))
        ws_write_plain(s, req, (size_t)n);
    memset(req, 0, sizeof(req)); /* it held the key */
}

/* The value of header name (case-insensitive) in the header block, copied
 * into out; -1 when absent. */
static int ws_http_header(const char *hdrs, const char *name, char *out,
                          size_t outlen)
{
    size_t nl = strlen(name);
    const char *p = hdrs;

    while ((p = strstr(p, "\r\n"))) {
        p += 2;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1, *e;

            while (*v == ' ' || *v == '\t')
                v++;
            e = strstr(v, "\r\n");
            if (!e)
                e = v + strlen(v);
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            snprintf(out, outlen, "%.*s", (int)(e - v), v);
            return 0;
        }
    }
    return -1;
}

/* Parses the answer to the upgrade. Returns 1 when done (101 accepted),
 * 0 when more bytes are needed, -1 on failure (reported). */
static int ws_http_response(struct ws_source *s)
{
    char *hdrs, *end, val[256], want[64], why[320];
    size_t n = s->in_len - s->in_off;
    int status = 0;

    hdrs = (char *)s->in + s->in_off;
    end = memmem(hdrs, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > WS_MAX_HTTP) {
            ws_source_dial_failed(s, "HTTP answer to the upgrade too long",
                                  0);
            return -1;
        }
        return 0;
    }
    end[2] = '\0'; /* keep the last header's CRLF for the scan */
    if (sscanf(hdrs, "HTTP/1.%*c %d", &status) != 1) {
        ws_source_dial_failed(s, "not an HTTP answer to the upgrade", 0);
        return -1;
    }
    if (status != 101) {
        const char *line_end = strstr(hdrs, "\r\n");

        snprintf(why, sizeof(why), "the server answered %.*s",
                 line_end ? (int)(line_end - hdrs) : 40, hdrs);
        ws_source_dial_failed(s, why, status);
        return -1;
    }
    if (ws_http_header(hdrs, "Upgrade", val, sizeof(val)) < 0 ||
        strcasecmp(val, "websocket")) {
        ws_source_dial_failed(s, "101 without Upgrade: websocket", 0);
        return -1;
    }
    ws_proto_accept(s->ws_key, want, sizeof(want));
    if (ws_http_header(hdrs, "Sec-WebSocket-Accept", val, sizeof(val)) < 0 ||
        strcmp(val, want)) {
        ws_source_dial_failed(s, "wrong Sec-WebSocket-Accept in the 101",
                              0);
        return -1;
    }
    if (ws_http_header(hdrs, "Sec-WebSocket-Extensions", val,
                       sizeof(val)) == 0) {
        ws_source_dial_failed(s, "the server chose an extension we did not "
                                 "offer", 0);
        return -1;
    }
    s->in_off += (size_t)(end + 4 - hdrs);
    s->http_up = 1;
    ws_source_open(s);
    return 1;
}

/* ---- frames ---------------------------------------------------------------- */

void ws_proto_send(struct ws_source *s, int opcode, const void *payload,
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
    ws_write_plain(s, hdr, h);
    for (off = 0; off < len; off += sizeof(buf)) {
        size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

        for (i = 0; i < n; i++)
            buf[i] = p[off + i] ^ mask[(off + i) & 3];
        ws_write_plain(s, buf, n);
    }
}

void ws_proto_close(struct ws_source *s, int code)
{
    unsigned char c[2] = { (unsigned char)(code >> 8),
                           (unsigned char)code };

    if (s->closing)
        return;
    ws_proto_send(s, WS_OP_CLOSE, c, code ? 2 : 0);
    s->closing = 1;
}

/* A protocol violation: close with 1002 and report it. */
static int ws_protocol_error(struct ws_source *s, const char *what)
{
    ws_source_invalid(s, "protocol_error", what);
    ws_source_close_code(s, 1002);
    ws_proto_close(s, 1002);
    return -1;
}

/* Ends the message being assembled: hands it on, or reports why not. */
static void ws_message_done(struct ws_source *s)
{
    char detail[96];

    if (s->rx_bad) {
        if (!strcmp(s->rx_bad, "binary"))
            snprintf(detail, sizeof(detail), "binary message of %zu bytes",
                     s->rx_total);
        else
            snprintf(detail, sizeof(detail),
                     "message of %zu bytes exceeds max_message_size",
                     s->rx_total);
        ws_source_invalid(s, s->rx_bad, detail);
    } else {
        ws_source_message(s, s->rx, s->rx_len);
    }
    s->msg_active = 0;
    s->rx_len = 0;
    s->rx_total = 0;
    s->rx_bad = NULL;
    if (s->rx_cap > 4 * 1024 * 1024) {
        s->host->free(s->rx);
        s->rx = NULL;
        s->rx_cap = 0;
    }
}

static void ws_rx_append(struct ws_source *s, const unsigned char *p,
                         size_t n)
{
    if (s->rx_len + n > s->rx_cap) {
        size_t cap = s->rx_cap ? s->rx_cap : 65536;

        while (cap < s->rx_len + n)
            cap *= 2;
        s->rx = s->host->realloc(s->rx, cap);
        s->rx_cap = cap;
    }
    memcpy(s->rx + s->rx_len, p, n);
    s->rx_len += n;
}

/* Handles a complete control frame. Returns 0 or -1 (close). */
static int ws_control(struct ws_source *s, int op, const unsigned char *p,
                      size_t n)
{
    switch (op) {
    case WS_OP_PING:
        if (!s->closing)
            ws_proto_send(s, WS_OP_PONG, p, n);
        s->host->log(s->ctx, FERRY_LOG_DEBUG, "ping from the server "
                     "answered");
        return 0;
    case WS_OP_PONG:
        ws_source_pong(s);
        return 0;
    case WS_OP_CLOSE: {
        int code = n >= 2 ? (p[0] << 8) | p[1] : 1005;

        ws_source_close_code(s, code);
        ws_proto_close(s, n >= 2 ? code : 0);
        return -1;
    }
    default:
        return ws_protocol_error(s, "unknown control opcode");
    }
}

/* Parses frames from s->in while the source can take messages. Returns 0
 * or -1 (close). */
static int ws_frames(struct ws_source *s)
{
    while (!s->closing && ws_source_can_read(s)) {
        const unsigned char *p = s->in + s->in_off;
        size_t avail = s->in_len - s->in_off, h, i;
        uint64_t plen;
        const char *bad;
        int fin, op, start;

        if (s->skip) {
            size_t n = avail < s->skip ? avail : (size_t)s->skip;

            s->in_off += n;
            s->skip -= n;
            s->rx_total += n;
            if (s->skip)
                return 0;
            if (s->skip_fin)
                ws_message_done(s);
            continue;
        }
        if (avail < 2)
            return 0;
        fin = p[0] & 0x80;
        op = p[0] & 0x0f;
        if (p[0] & 0x70)
            return ws_protocol_error(s, "reserved bits set in a frame");
        if (p[1] & 0x80)
            return ws_protocol_error(s, "masked frame from the server");
        plen = p[1] & 0x7f;
        h = 2;
        if (plen == 126) {
            if (avail < 4)
                return 0;
            plen = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (plen == 127) {
            if (avail < 10)
                return 0;
            plen = 0;
            for (i = 0; i < 8; i++)
                plen = (plen << 8) | p[2 + i];
            h = 10;
            if (plen >> 63)
                return ws_protocol_error(s, "frame length out of range");
        }
        if (op >= 8) {
            int r;

            if (!fin || plen > 125)
                return ws_protocol_error(s, "bad control frame");
            if (avail < h + plen)
                return 0;
            s->in_off += h + (size_t)plen;
            r = ws_control(s, op, p + h, (size_t)plen);
            if (r < 0)
                return r;
            continue;
        }
        if (op != WS_OP_CONT && op != WS_OP_TEXT && op != WS_OP_BINARY)
            return ws_protocol_error(s, "unknown data opcode");
        if ((op == WS_OP_CONT) != (s->msg_active != 0))
            return ws_protocol_error(s, op == WS_OP_CONT
                                            ? "continuation without a start"
                                            : "new message inside a "
                                              "fragmented one");
        /* State changes only once the frame is taken (below), so that an
         * incomplete frame is parsed again from its header later. */
        start = op != WS_OP_CONT;
        bad = start ? (op == WS_OP_BINARY ? "binary" : NULL) : s->rx_bad;
        if (!bad && (start ? 0 : s->rx_total) + plen > s->max_msg)
            bad = "too_large";
        if (bad) {
            /* Discard the payload as it arrives, never buffered. */
            if (start) {
                s->msg_active = 1;
                s->rx_total = 0;
            }
            s->rx_bad = bad;
            s->rx_len = 0;
            s->in_off += h;
            s->skip = plen;
            s->skip_fin = fin != 0;
            if (!plen && fin)
                ws_message_done(s);
            continue;
        }
        if (avail < h + plen) {
            /* Wait for the rest; make room for it in one step. */
            ws_in_reserve(s, h + (size_t)plen - avail);
            return 0;
        }
        if (start) {
            s->msg_active = 1;
            s->rx_len = 0;
            s->rx_total = 0;
            s->rx_bad = NULL;
        }
        s->in_off += h + (size_t)plen;
        s->rx_total += (size_t)plen;
        if (fin && op == WS_OP_TEXT) {
            /* The common case: a whole message in one frame, no copy. */
            s->msg_active = 0;
            s->rx_total = 0;
            ws_source_message(s, (const char *)p + h, (size_t)plen);
            continue;
        }
        ws_rx_append(s, p + h, (size_t)plen);
        if (fin)
            ws_message_done(s);
    }
    return 0;
}

/* Decrypts what the read BIO holds into s->in while reading is allowed.
 * Returns the number of plaintext bytes added, or -1 when the connection
 * must close. */
static long ws_tls_read(struct ws_source *s)
{
    char why[256];
    long got = 0;

    if (!s->tls_up) {
        int r = SSL_do_handshake(s->ssl);

        ws_tls_flush(s);
        if (s->wsi && s->out_len)
            lws_callback_on_writable(s->wsi);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);

            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            ws_tls_error(s, why, sizeof(why));
            ws_source_dial_failed(s, why, 0);
            return -1;
        }
        s->tls_up = 1;
        ws_send_upgrade(s);
    }
    /* Bounded by what lws read from the socket into the BIO: reading
     * stops while the source cannot take more. */
    while (!s->http_up || ws_source_can_read(s)) {
        int n;

        ws_in_reserve(s, WS_TLS_CHUNK);
        n = SSL_read(s->ssl, s->in + s->in_len, WS_TLS_CHUNK);
        if (n <= 0) {
            int e = SSL_get_error(s->ssl, n);

            ws_tls_flush(s);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            if (e == SSL_ERROR_ZERO_RETURN)
                return -1; /* close_notify: the socket close follows */
            ws_tls_error(s, why, sizeof(why));
            ws_source_invalid(s, "protocol_error", why);
            return -1;
        }
        s->in_len += (size_t)n;
        got += n;
    }
    ws_tls_flush(s);
    if (s->wsi && s->out_len)
        lws_callback_on_writable(s->wsi);
    return got;
}

int ws_proto_pump(struct ws_source *s)
{
    long got = 0;
    int r = 0;

    if (s->in_pump || !s->wsi)
        return 0;
    s->in_pump = 1;
    for (;;) {
        if (s->ssl && (got = ws_tls_read(s)) < 0) {
            r = -1;
            break;
        }
        if (!s->http_up) {
            int h = ws_http_response(s);

            if (h <= 0) {
                r = h;
                break;
            }
        }
        if (ws_frames(s) < 0) {
            r = -1;
            break;
        }
        /* With TLS, more plaintext may wait in the BIO behind what was
         * parsed: go on while decrypting makes progress. */
        if (!s->ssl || s->closing || !ws_source_can_read(s) || got <= 0 ||
            (!SSL_pending(s->ssl) && BIO_ctrl_pending(s->rbio) == 0))
            break;
    }
    if (s->in_off == s->in_len) {
        s->in_off = s->in_len = 0;
        /* Do not keep a huge buffer around after one big frame. */
        if (s->in_cap > 4 * 1024 * 1024) {
            s->host->free(s->in);
            s->in = NULL;
            s->in_cap = 0;
        }
    }
    s->in_pump = 0;
    return r;
}

int ws_proto_connected(struct ws_source *s)
{
    if (s->tls_ctx) {
        if (ws_tls_start(s) < 0)
            return -1;
        return ws_tls_read(s) < 0 ? -1 : 0; /* sends the ClientHello */
    }
    ws_send_upgrade(s);
    return 0;
}

int ws_proto_rx(struct ws_source *s, const void *in, size_t len)
{
    if (s->ssl)
        BIO_write(s->rbio, in, (int)len);
    else
        ws_in_append(s, in, len);
    return ws_proto_pump(s);
}

int ws_proto_writeable(struct ws_source *s, struct lws *wsi)
{
    if (s->out_len && !lws_send_pipe_choked(wsi)) {
        /* lws keeps what the socket did not take and writes it first. */
        if (lws_write(wsi, s->out + LWS_PRE, s->out_len, LWS_WRITE_RAW) < 0)
            return -1;
        s->out_len = 0;
    }
    if (s->out_len) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    return s->closing ? -1 : 0;
}

void ws_proto_reset(struct ws_source *s)
{
    if (s->ssl)
        SSL_free(s->ssl); /* frees both BIOs */
    s->ssl = NULL;
    s->rbio = s->wbio = NULL;
    s->tls_up = 0;
    s->http_up = 0;
    s->closing = 0;
    s->in_off = s->in_len = 0;
    s->out_len = 0;
    s->msg_active = 0;
    s->skip = 0;
    s->skip_fin = 0;
    s->rx_len = 0;
    s->rx_total = 0;
    s->rx_bad = NULL;
    memset(s->ws_key, 0, sizeof(s->ws_key));
    ERR_clear_error();
}
