/*
 * core/http.c: the operations HTTP server (core/http.h).
 *
 * One libwebsockets context with one vhost and one service thread. Every
 * request is answered from the LWS_CALLBACK_HTTP callback: the body is
 * built there in full (all bodies are small), the headers are written at
 * once and the body follows in chunks from LWS_CALLBACK_HTTP_WRITEABLE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "clock.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#define HTTP_LOG "http"
/* Bytes handed to lws_write() per writeable callback. */
#define HTTP_CHUNK 16384
/*
 * Connections the server holds at once. lws serves them all from one
 * non-blocking event loop, so a connection that sends its request slowly
 * or not at all (slowloris) costs a descriptor and a header buffer, never
 * time of another client. Each has HTTP_HEADER_S to send its request
 * headers and HTTP_IDLE_S between keep-alive requests before lws closes
 * it. The fd limit also keeps lws from sizing its tables by the process
 * fd limit; lws's own fds (the cancel pipe, the listener) come on top.
 */
#define HTTP_MAX_CONNS 512
#define HTTP_MAX_FDS (HTTP_MAX_CONNS + 16)
#define HTTP_HEADER_S 10
#define HTTP_IDLE_S 5

#define HTTP_JSON "application/json"
#define HTTP_PROM "text/plain; version=0.0.4; charset=utf-8"

/* The parsed value of http_listen. */
struct http_addr {
    char host[64]; /* "" for every interface; IPv6 without brackets */
    int family;    /* AF_INET, AF_INET6, or AF_UNSPEC (every interface) */
    int port;
};

/* Per connection (lws per_session_data): the response being written. */
struct http_session {
    unsigned char *buf; /* LWS_PRE bytes of headroom, then the body */
    size_t len;         /* body length */
    size_t off;         /* body bytes written */
    int head;           /* HEAD request: headers only */
};

static struct lws_context *http_ctx;
static struct lws_vhost *http_vhost;
static pthread_t http_thread;
static atomic_int http_stopping;
static int http_bound_port;

/* The /debug provider; http_debug_lock is held while it runs, so
 * http_set_debug_fn() can promise the old one has returned. */
static pthread_mutex_t http_debug_lock = PTHREAD_MUTEX_INITIALIZER;
static char *(*http_debug_fn)(void *arg);
static void *http_debug_arg;

void http_set_debug_fn(char *(*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&http_debug_lock);
    http_debug_fn = fn;
    http_debug_arg = arg;
    pthread_mutex_unlock(&http_debug_lock);
}

int http_port(void)
{
    return http_ctx ? http_bound_port : 0;
}

/* ---- bodies -------------------------------------------------------------- */

/* Info keys that look like credentials are shown as "***" in /debug, in
 * case a plugin ever publishes one by mistake. */
static int http_secret_key(const char *key)
{
    static const char *const words[] = {
        "password", "secret", "api_key", "apikey", "token", "credential", NULL};
    size_t i;

    for (i = 0; words[i]; i++) {
        if (strcasestr(key, words[i]))
            return 1;
    }
    return 0;
}

/* Parses a malloc'd JSON text, frees it, and returns the object or NULL
 * when it is missing or not an object. */
static json_t *http_take_object(char *text)
{
    json_t *j;

    if (!text)
        return NULL;
    j = json_loads(text, 0, NULL);
    free(text);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Moves key from src to dst, or sets dflt (a new reference, consumed)
 * when src has no such key. */
static void http_move(json_t *dst, json_t *src, const char *key, json_t *dflt)
{
    json_t *v = src ? json_object_get(src, key) : NULL;

    if (v) {
        json_object_set(dst, key, v);
        json_object_del(src, key);
        json_decref(dflt);
    } else {
        json_object_set_new(dst, key, dflt);
    }
}

/*
 * The /debug body: the pipeline's part first (replay, messages, channels,
 * breakers, writer_lock, role, then any other key it returns; the Go
 * replicator's replay.enabled, replay.cursor and messages.* have
 * defaults when the pipeline has none), then the health registry
 * (status, ready, connected, components, cache_version), every info key,
 * and the timestamp of health_json().
 */
static char *http_debug_body(void)
{
    json_t *root, *pipe = NULL, *health, *info, *v;
    const char *key;
    void *tmp;
    char *out;

    pthread_mutex_lock(&http_debug_lock);
    if (http_debug_fn)
        pipe = http_take_object(http_debug_fn(http_debug_arg));
    pthread_mutex_unlock(&http_debug_lock);
    health = http_take_object(health_json());
    info = http_take_object(health_info_json());
    if (!info)
        info = json_object();

    root = json_object();
    http_move(root, pipe, "replay",
              json_pack("{s:b,s:n}", "enabled", 0, "cursor"));
    http_move(
        root, pipe, "messages",
        json_pack("{s:i,s:i,s:i}", "processed", 0, "applied", 0, "dropped", 0));
    http_move(root, pipe, "channels", json_object());
    http_move(root, pipe, "breakers", json_object());
    v = json_object_get(info, "writer_lock");
    http_move(root, pipe, "writer_lock", v ? json_incref(v) : json_null());
    http_move(root, pipe, "role", json_string("active"));
    if (pipe) {
        json_object_foreach_safe(pipe, tmp, key, v)
        {
            json_object_set(root, key, v);
        }
    }
    if (health) {
        json_object_foreach_safe(health, tmp, key, v)
        {
            if (strcmp(key, "timestamp") != 0)
                json_object_set(root, key, v);
        }
    }
    json_object_foreach_safe(info, tmp, key, v)
    {
        if (http_secret_key(key))
            json_object_set_new(info, key, json_string("***"));
    }
    json_object_set(root, "info", info);
    v = health ? json_object_get(health, "timestamp") : NULL;
    json_object_set(root, "timestamp", v ? v : json_null());
    out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    json_decref(pipe);
    json_decref(health);
    json_decref(info);
    return out;
}

/* Copies body (len bytes, which the caller keeps) into the session's
 * buffer behind LWS_PRE bytes of headroom. Returns 0 or -1. */
static int http_session_set(struct http_session *s, const char *body,
                            size_t len)
{
    free(s->buf);
    s->buf = malloc(LWS_PRE + len + 1);
    s->len = 0;
    s->off = 0;
    if (!s->buf)
        return -1;
    memcpy(s->buf + LWS_PRE, body, len);
    s->len = len;
    return 0;
}

static void http_session_release(struct http_session *s)
{
    if (!s)
        return;
    free(s->buf);
    s->buf = NULL;
    s->len = 0;
    s->off = 0;
    s->head = 0;
}

/* ---- requests ------------------------------------------------------------ */

/*
 * Writes the status line and headers for a body of s->len bytes and asks
 * for a writeable callback to send the body. Returns 0, or -1 to close.
 */
static int http_respond(struct lws *wsi, struct http_session *s,
                        unsigned int code, const char *ctype, int allow_get)
{
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start;
    unsigned char *end = hdr + sizeof(hdr) - 1;

    if (lws_add_http_common_headers(wsi, code, ctype, (lws_filepos_t)s->len, &p,
                                    end))
        return -1;
    if (lws_add_http_header_by_name(
            wsi, (const unsigned char *)"cache-control:",
            (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (allow_get &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                    (const unsigned char *)"GET", 3, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* Sets a JSON error body {"error":"<msg>"} and responds with code. */
static int http_error(struct lws *wsi, struct http_session *s,
                      unsigned int code, const char *msg, int allow_get)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg);

    if (http_session_set(s, body, (size_t)n))
        return -1;
    return http_respond(wsi, s, code, HTTP_JSON, allow_get);
}

/* Sets a malloc'd body (freed here) and responds with code. */
static int http_body(struct lws *wsi, struct http_session *s, unsigned int code,
                     const char *ctype, char *body, size_t len)
{
    int rc;

    if (!body)
        return http_error(wsi, s, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                          "internal error", 0);
    rc = http_session_set(s, body, len);
    free(body);
    if (rc)
        return -1;
    return http_respond(wsi, s, code, ctype, 0);
}

static int http_on_request(struct lws *wsi, struct http_session *s,
                           const char *in)
{
    char path[128];
    char *uri = NULL, *body;
    size_t len;
    int ulen = 0;
    int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    unsigned int code;
    int ok;

    http_session_release(s);
    snprintf(path, sizeof(path), "%s", in ? in : "");
    path[strcspn(path, "?")] = '\0';
    if (method == LWSHUMETH_HEAD) {
        s->head = 1;
    } else if (method != LWSHUMETH_GET) {
        log_write(FERRY_LOG_DEBUG, HTTP_LOG, "method %d %s: 405", method, path);
        return http_error(wsi, s, HTTP_STATUS_METHOD_NOT_ALLOWED,
                          "method not allowed", 1);
    }
    if (strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0) {
        int alive, ready;

        /* The status code and the body come from one snapshot of the
         * registry, so the two never disagree. /health is liveness: 503
         * only when the watchdog sees ferry wedged, never because a
         * component is disconnected (Kubernetes restarts a pod whose
         * liveness probe fails, which cures no outage). */
        body = health_body(&alive, &ready);
        ok = path[1] == 'h' ? alive : ready;
        code = ok ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE;
        return http_body(wsi, s, code, HTTP_JSON, body,
                         body ? strlen(body) : 0);
    }
    if (strcmp(path, "/metrics") == 0) {
        len = 0;
        body = metrics_render(&len);
        return http_body(wsi, s, HTTP_STATUS_OK, HTTP_PROM, body, len);
    }
    if (strcmp(path, "/debug") == 0) {
        body = http_debug_body();
        return http_body(wsi, s, HTTP_STATUS_OK, HTTP_JSON, body,
                         body ? strlen(body) : 0);
    }
    return http_error(wsi, s, HTTP_STATUS_NOT_FOUND, "not found", 0);
}

/* Sends the next chunk of the body; after the last one, ends the
 * transaction (keep-alive) or closes. Returns 0, or -1 to close. */
static int http_on_writeable(struct lws *wsi, struct http_session *s)
{
    size_t n = s->len - s->off;
    int final = 1;

    if (!s->buf)
        return 0;
    if (s->head) {
        /* HEAD: the headers announced the body's length; nothing more. */
        http_session_release(s);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    if (n > HTTP_CHUNK) {
        n = HTTP_CHUNK;
        final = 0;
    }
    /* lws may use the LWS_PRE bytes in front of the chunk: they are the
     * headroom or body bytes already sent. */
    if (lws_write(wsi, s->buf + LWS_PRE + s->off, n,
                  final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    s->off += n;
    if (!final) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    http_session_release(s);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
                         void *user, void *in, size_t len)
{
    struct http_session *s = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        int rc;

        if (!s)
            return -1;
        health_beat_enter(health_self, clock_now_ns());
        rc = http_on_request(wsi, s, in);
        health_beat_leave(health_self);
        return rc;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!s)
            return -1;
        return http_on_writeable(wsi, s);
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* Request bodies are never used: every method but GET and HEAD is 405.
         */
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        http_session_release(s);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols http_protocols[] = {
    {"http", http_callback, sizeof(struct http_session), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* ---- start and stop ------------------------------------------------------ */

/* lws's own log lines (errors and warnings only) go to the core log: its
 * errors as warnings (ferry reports what matters itself), the rest as
 * debug. */
static void http_lws_log(int level, const char *line)
{
    int n = (int)strlen(line);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_write(level == LLL_ERR ? FERRY_LOG_WARN : FERRY_LOG_DEBUG, "lws",
              "%.*s", n, line);
}

/* "[IPv6]:port": sets a->host and a->family, and *port to the text after
 * the colon. Returns 0, or -1 with the error in err. */
static int http_parse_ipv6(const char *listen, struct http_addr *a,
                           const char **port, char *err, size_t errlen)
{
    const char *close = strchr(listen, ']');
    unsigned char probe[sizeof(struct in6_addr)];
    size_t hlen;

    if (!close || close[1] != ':') {
        snprintf(err, errlen,
                 "http_listen: invalid address '%s' (expected "
                 "[IPv6]:port)",
                 listen);
        return -1;
    }
    hlen = (size_t)(close - listen - 1);
    *port = close + 2;
    if (hlen == 0 || hlen >= sizeof(a->host)) {
        snprintf(err, errlen, "http_listen: invalid IPv6 address in '%s'",
                 listen);
        return -1;
    }
    memcpy(a->host, listen + 1, hlen);
    a->host[hlen] = '\0';
    if (inet_pton(AF_INET6, a->host, probe) != 1) {
        snprintf(err, errlen,
                 "http_listen: invalid IPv6 address '%s' in '%s'", a->host,
                 listen);
        return -1;
    }
    a->family = AF_INET6;
    return 0;
}

/* "host:port" with an IPv4 address, localhost, or * or nothing for every
 * interface: sets a->host and a->family, and *port to the text after the
 * colon. Returns 0, or -1 with the error in err. */
static int http_parse_host(const char *listen, struct http_addr *a,
                           const char **port, char *err, size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    unsigned char probe[sizeof(struct in6_addr)];
    size_t hlen;

    if (!colon) {
        snprintf(err, errlen,
                 "http_listen: invalid address '%s' (expected "
                 "host:port, e.g. 127.0.0.1:8090)",
                 listen);
        return -1;
    }
    hlen = (size_t)(colon - listen);
    *port = colon + 1;
    if (memchr(listen, ':', hlen)) {
        snprintf(err, errlen,
                 "http_listen: invalid address '%s' (write IPv6 "
                 "addresses in brackets: [::1]:8090)",
                 listen);
        return -1;
    }
    if (hlen >= sizeof(a->host)) {
        snprintf(err, errlen, "http_listen: host too long in '%s'", listen);
        return -1;
    }
    memcpy(a->host, listen, hlen);
    a->host[hlen] = '\0';
    if (hlen == 0 || strcmp(a->host, "*") == 0) {
        a->host[0] = '\0';
        a->family = AF_UNSPEC;
    } else if (strcmp(a->host, "localhost") == 0) {
        strcpy(a->host, "127.0.0.1");
        a->family = AF_INET;
    } else if (inet_pton(AF_INET, a->host, probe) == 1) {
        a->family = AF_INET;
    } else {
        snprintf(err, errlen,
                 "http_listen: invalid host '%s' in '%s' (expected an "
                 "IPv4 address, localhost, [IPv6] or empty for every "
                 "interface)",
                 a->host, listen);
        return -1;
    }
    return 0;
}

/*
 * Parses listen into a. Returns 0, or -1 with a message in err.
 */
static int http_parse_listen(const char *listen, struct http_addr *a, char *err,
                             size_t errlen)
{
    const char *port;
    char *endp;
    long v;
    int rc;

    memset(a, 0, sizeof(*a));
    if (listen[0] == '[')
        rc = http_parse_ipv6(listen, a, &port, err, errlen);
    else
        rc = http_parse_host(listen, a, &port, err, errlen);
    if (rc < 0)
        return -1;
    errno = 0;
    v = strtol(port, &endp, 10);
    if (!*port || *endp || port[0] == '-' || port[0] == '+' || errno || v < 0 ||
        v > 65535) {
        snprintf(err, errlen,
                 "http_listen: invalid port '%s' in '%s' (expected "
                 "0-65535)",
                 port, listen);
        return -1;
    }
    a->port = (int)v;
    return 0;
}

/*
 * Binds a throwaway socket to a, so that an unusable address or a port in
 * use is reported with the system's reason; lws itself only logs that
 * binding failed. Returns 0 or an errno value.
 */
static int http_probe_bind(const struct http_addr *a)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t sl;
    int family = a->family == AF_INET ? AF_INET : AF_INET6;
    int fd, one = 1, rc = 0;

    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 && a->family == AF_UNSPEC) {
        /* No IPv6 on this host: lws binds 0.0.0.0 then. */
        family = AF_INET;
        fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }
    if (fd < 0)
        return errno;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)a->port);
        if (a->host[0])
            inet_pton(AF_INET, a->host, &in4->sin_addr);
        else
            in4->sin_addr.s_addr = htonl(INADDR_ANY);
        sl = sizeof(*in4);
    } else {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)a->port);
        if (a->host[0])
            inet_pton(AF_INET6, a->host, &in6->sin6_addr);
        else
            in6->sin6_addr = in6addr_any;
        sl = sizeof(*in6);
    }
    /* As lws does, so a port in TIME_WAIT is not reported as in use. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
        rc = errno;
    close(fd);
    return rc;
}

int http_listen_check(const char *listen, char *err, size_t errlen)
{
    struct http_addr a;

    if (!listen || !*listen)
        return 0;
    return http_parse_listen(listen, &a, err, errlen);
}

static void *http_main(void *arg)
{
    (void)arg;
    health_self = health_beat_new("the HTTP thread answering a request");
    while (!atomic_load(&http_stopping)) {
        if (lws_service(http_ctx, 0) < 0)
            break;
    }
    health_beat_free(health_self);
    return NULL;
}

int http_start(const char *listen, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    struct http_addr a;
    int rc;

    if (!listen || !*listen) {
        log_write(FERRY_LOG_INFO, HTTP_LOG,
                  "http_listen is empty: HTTP server disabled");
        return 0;
    }
    if (http_ctx) {
        snprintf(err, errlen, "http_listen: server already running");
        return -1;
    }
    if (http_parse_listen(listen, &a, err, errlen))
        return -1;
    rc = http_probe_bind(&a);
    if (rc) {
        snprintf(err, errlen, "http_listen: cannot bind %s: %s", listen,
                 strerror(rc));
        return -1;
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, http_lws_log);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (a.family == AF_INET)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.fd_limit_per_thread = HTTP_MAX_FDS;
    /* One header buffer per connection that is still sending its
     * request: with fewer, the others wait for a buffer in a queue that
     * slow clients can fill. */
    info.max_http_header_pool = HTTP_MAX_CONNS;
    info.timeout_secs = HTTP_HEADER_S;
    info.timeout_secs_ah_idle = HTTP_HEADER_S;
    info.keepalive_timeout = HTTP_IDLE_S;
    info.server_string = "ferry";
    http_ctx = lws_create_context(&info);
    if (!http_ctx) {
        snprintf(err, errlen, "http_listen: cannot create the HTTP server");
        return -1;
    }

    info.port = a.port;
    info.iface = a.host[0] ? a.host : NULL;
    info.protocols = http_protocols;
    info.vhost_name = "ferry";
    http_vhost = lws_create_vhost(http_ctx, &info);
    http_bound_port = http_vhost ? lws_get_vhost_listen_port(http_vhost) : 0;
    if (!http_vhost || http_bound_port <= 0) {
        /* The probe bound, lws did not: someone took the port since. */
        rc = http_probe_bind(&a);
        snprintf(err, errlen, "http_listen: cannot bind %s: %s", listen,
                 rc ? strerror(rc) : "listen failed");
        goto fail_ctx;
    }

    /* The process and build series are there whenever /metrics is. */
    metrics_register_builtin();
    atomic_store(&http_stopping, 0);
    rc = pthread_create(&http_thread, NULL, http_main, NULL);
    if (rc) {
        snprintf(err, errlen, "http_listen: cannot start thread: %s",
                 strerror(rc));
        goto fail_ctx;
    }
    log_write(FERRY_LOG_INFO, HTTP_LOG, "listening on http://%s%s%s:%d",
              a.family == AF_INET6 ? "[" : "", a.host[0] ? a.host : "*",
              a.family == AF_INET6 ? "]" : "", http_bound_port);
    return 0;

fail_ctx:
    lws_context_destroy(http_ctx);
    http_ctx = NULL;
    http_vhost = NULL;
    http_bound_port = 0;
    return -1;
}

void http_stop(void)
{
    if (!http_ctx)
        return;
    atomic_store(&http_stopping, 1);
    lws_cancel_service(http_ctx);
    pthread_join(http_thread, NULL);
    lws_context_destroy(http_ctx);
    http_ctx = NULL;
    http_vhost = NULL;
    http_bound_port = 0;
}
