/*
 * plugins/lib/ws/tls.c: TLS of the WebSocket client codec, with OpenSSL
 * over memory BIOs: the transport's socket stays the transport's; the
 * codec writes received ciphertext into the read BIO and hands what the
 * write BIO produces to send().
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ws/buf.h"
#include "ws/tls.h"

/* Plaintext read from TLS per SSL_read call. */
#define WSC_TLS_CHUNK 65536

/* See wsc.h. */
struct wsc_tls *wsc_tls_new(int verify, const char *ca_file, char *err,
                            size_t errlen)
{
    struct wsc_tls *t;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char e[160];

    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else if (ca_file) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            ERR_error_string_n(ERR_get_error(), e, sizeof(e));
            snprintf(err, errlen, "%.200s: %s", ca_file, e);
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(err, errlen, "cannot load the system CA certificates");
            goto fail;
        }
    }
    t = wsc__realloc(NULL, sizeof(*t));
    t->ctx = ctx;
    t->verify = verify;
    return t;

fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

/* See wsc.h. */
void wsc_tls_free(struct wsc_tls *tls)
{
    if (!tls)
        return;
    SSL_CTX_free(tls->ctx);
    free(tls);
}

static int wsc_is_ip(const char *host)
{
    unsigned char b[16];

    return inet_pton(AF_INET, host, b) == 1 ||
           inet_pton(AF_INET6, host, b) == 1;
}

/* See tls.h. */
int wsc__tls_start(struct wsc_conn *c)
{
    const char *host = c->cfg.host ? c->cfg.host : "";

    c->ssl = SSL_new(c->cfg.tls->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        SSL_free(c->ssl);
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->ssl = NULL;
        c->rbio = c->wbio = NULL;
        wsc__fail(c, WSC_ERR_HANDSHAKE, 0, "cannot create a TLS session");
        return -1;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio); /* the SSL owns both now */
    SSL_set_connect_state(c->ssl);
    if (!wsc_is_ip(host))
        SSL_set_tlsext_host_name(c->ssl, host);
    if (c->cfg.tls->verify) {
        if (wsc_is_ip(host))
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
        else
            SSL_set1_host(c->ssl, host);
    }
    return 0;
}

/* Why the TLS handshake failed, as precisely as OpenSSL says. */
static void wsc_tls_error(struct wsc_conn *c, char *out, size_t len)
{
    long vr = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_get_error();
    char buf[160];

    if (c->cfg.tls->verify && vr != X509_V_OK) {
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

/* See tls.h. */
void wsc__tls_flush(struct wsc_conn *c)
{
    char buf[16384];
    int n;

    while (c->wbio && (n = BIO_read(c->wbio, buf, sizeof(buf))) > 0)
        c->cb.send(c->arg, buf, (size_t)n);
}

/* See tls.h. */
int wsc__tls_handshake(struct wsc_conn *c)
{
    char why[256];
    int r = SSL_do_handshake(c->ssl), e;

    wsc__tls_flush(c);
    if (r == 1) {
        c->state = WSC_HTTP;
        return 1;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    wsc_tls_error(c, why, sizeof(why));
    wsc__fail(c, WSC_ERR_HANDSHAKE, 0, why);
    return -1;
}

/* See tls.h. */
long wsc__tls_read(struct wsc_conn *c)
{
    char why[256];
    long got = 0;

    /* Bounded by what the transport wrote into the BIO. */
    while (c->state == WSC_HTTP ||
           (c->state == WSC_OPEN && wsc__can_read(c))) {
        int n, e;

        wsc__in_reserve(c, WSC_TLS_CHUNK);
        n = SSL_read(c->ssl, c->in + c->in_len, WSC_TLS_CHUNK);
        if (n > 0) {
            c->in_len += (size_t)n;
            got += n;
            continue;
        }
        e = SSL_get_error(c->ssl, n);
        wsc__tls_flush(c);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN)
            return -1; /* close_notify: the socket close follows */
        wsc_tls_error(c, why, sizeof(why));
        wsc__fail(c, WSC_ERR_TLS, 0, why);
        return -1;
    }
    wsc__tls_flush(c);
    return got;
}

/* See tls.h. */
int wsc__tls_more(struct wsc_conn *c)
{
    return SSL_pending(c->ssl) || BIO_ctrl_pending(c->rbio) != 0;
}

/* See tls.h. */
void wsc__tls_reset(struct wsc_conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl); /* frees both BIOs */
    c->ssl = NULL;
    c->rbio = c->wbio = NULL;
    ERR_clear_error();
}
