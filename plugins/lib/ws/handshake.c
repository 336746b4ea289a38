/*
 * plugins/lib/ws/handshake.c: the opening handshake of the WebSocket
 * client codec (RFC 6455 4.1): the upgrade request and the check of the
 * server's HTTP answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ws/buf.h"
#include "ws/handshake.h"
#include "ws/out.h"

#define WSC_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Longest HTTP answer to the upgrade accepted. */
#define WSC_MAX_HTTP 16384
/* Longest upgrade request. */
#define WSC_MAX_REQUEST 8192

/* See wsc.h. */
void wsc_accept_key(const char *key, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[128];
    int n;

    n = snprintf(buf, sizeof(buf), "%.80s" WSC_GUID, key);
    EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha1(), NULL);
    if (outlen >= 29)
        EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    else if (outlen)
        out[0] = '\0';
}

/* See handshake.h. */
void wsc__send_upgrade(struct wsc_conn *c)
{
    unsigned char nonce[16];
    char req[WSC_MAX_REQUEST];
    int n;

    RAND_bytes(nonce, sizeof(nonce));
    EVP_EncodeBlock((unsigned char *)c->key, nonce, sizeof(nonce));
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "%s%s%s%s"
                 "\r\n",
                 c->cfg.path, c->cfg.hostport, c->key,
                 c->cfg.user_agent ? "User-Agent: " : "",
                 c->cfg.user_agent ? c->cfg.user_agent : "",
                 c->cfg.user_agent ? "\r\n" : "",
                 c->cfg.headers ? c->cfg.headers : "");
    if (n > 0 && (size_t)n < sizeof(req))
        wsc__write(c, req, (size_t)n);
    memset(req, 0, sizeof(req)); /* it may hold secrets */
}

/* The value of header name (case-insensitive) in the header block, copied
 * into out; -1 when absent. */
static int wsc_http_header(const char *hdrs, const char *name, char *out,
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

/* Checks a complete header block (NUL-terminated after the last header's
 * CRLF). Returns 0, or -1 after reporting why. */
static int wsc_http_check(struct wsc_conn *c, const char *hdrs)
{
    char val[256], want[64], why[320];
    int status = 0;

    if (sscanf(hdrs, "HTTP/1.%*c %d", &status) != 1) {
        wsc__fail(c, WSC_ERR_HANDSHAKE, 0,
                  "not an HTTP answer to the upgrade");
        return -1;
    }
    if (status != 101) {
        const char *line_end = strstr(hdrs, "\r\n");

        snprintf(why, sizeof(why), "the server answered %.*s",
                 line_end ? (int)(line_end - hdrs) : 40, hdrs);
        wsc__fail(c, WSC_ERR_HANDSHAKE, status, why);
        return -1;
    }
    if (wsc_http_header(hdrs, "Upgrade", val, sizeof(val)) < 0 ||
        strcasecmp(val, "websocket")) {
        wsc__fail(c, WSC_ERR_HANDSHAKE, 0, "101 without Upgrade: websocket");
        return -1;
    }
    wsc_accept_key(c->key, want, sizeof(want));
    if (wsc_http_header(hdrs, "Sec-WebSocket-Accept", val, sizeof(val)) < 0 ||
        strcmp(val, want)) {
        wsc__fail(c, WSC_ERR_HANDSHAKE, 0,
                  "wrong Sec-WebSocket-Accept in the 101");
        return -1;
    }
    if (wsc_http_header(hdrs, "Sec-WebSocket-Extensions", val,
                        sizeof(val)) == 0) {
        wsc__fail(c, WSC_ERR_HANDSHAKE, 0,
                  "the server chose an extension we did not offer");
        return -1;
    }
    return 0;
}

/* See handshake.h. */
int wsc__http_response(struct wsc_conn *c)
{
    size_t n = c->in_len - c->in_off;
    char *hdrs = (char *)c->in + c->in_off, *end;

    end = n ? memmem(hdrs, n, "\r\n\r\n", 4) : NULL;
    if (!end) {
        if (n > WSC_MAX_HTTP) {
            wsc__fail(c, WSC_ERR_HANDSHAKE, 0,
                      "HTTP answer to the upgrade too long");
            return -1;
        }
        return 0;
    }
    end[2] = '\0'; /* keep the last header's CRLF for the scan */
    if (wsc_http_check(c, hdrs) < 0)
        return -1;
    c->in_off += (size_t)(end + 4 - hdrs);
    c->state = WSC_OPEN;
    if (c->cb.on_open)
        c->cb.on_open(c->arg);
    return 1;
}
