/*
 * plugins/lib/redis/conn.c: the Redis transport (see conn.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ferry/status.h>

#include "redis/conn.h"
#include "redis/util.h"

/* Most arguments a command built with redis_conn_cmd() may have. */
#define REDIS_CMD_MAX_ARGS 16
/* Bytes read per recv(). */
#define REDIS_READ_CHUNK 65536

struct redis_conn {
    struct redis_endpoint ep;
    int fd;
    redisReader *reader;
    /* Queued, formatted commands. */
    char *out;
    size_t out_len;
    size_t out_cap;
    size_t queued;
    /* Replies of the last exec. */
    redisReply **replies;
    size_t nreplies;
    size_t replies_cap;
    char *rbuf;
    char err[256];
};

/* ---- addresses ---------------------------------------------------------- */

static char *redis_strndup(const char *s, size_t n)
{
    char *d = redis_xalloc(n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int redis_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape. */
static char *redis_pct_decode(const char *s, size_t n)
{
    char *d = redis_xalloc(n + 1);
    size_t i, j = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= n) {
                free(d);
                return NULL;
            }
            hi = redis_hexval(s[i + 1]);
            lo = redis_hexval(s[i + 2]);
            if (hi < 0 || lo < 0) {
                free(d);
                return NULL;
            }
            d[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = '\0';
    return d;
}

/* Parses a decimal port (1..65535) from s[0..n). */
static int redis_parse_port(const char *s, size_t n, int *port)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 5)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* Parses "host", "host:port", "[v6]" or "[v6]:port" from s[0..n). */
static int redis_parse_hostport(const char *s, size_t n,
                                struct redis_endpoint *ep, char *err,
                                size_t errlen)
{
    const char *colon;
    size_t hlen;

    ep->port = 6379;
    if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);

        if (!end || end == s + 1) {
            snprintf(err, errlen, "bad IPv6 address in '%.*s'", (int)n, s);
            return -1;
        }
        ep->host = redis_strndup(s + 1, (size_t)(end - s - 1));
        if (end + 1 == s + n)
            return 0;
        if (end[1] != ':' ||
            redis_parse_port(end + 2, (size_t)(s + n - end - 2), &ep->port) <
                0) {
            snprintf(err, errlen, "bad port in '%.*s'", (int)n, s);
            return -1;
        }
        return 0;
    }
    colon = memchr(s, ':', n);
    if (colon && memchr(colon + 1, ':', (size_t)(s + n - colon - 1))) {
        snprintf(err, errlen, "'%.*s': write IPv6 addresses as [addr]:port",
                 (int)n, s);
        return -1;
    }
    hlen = colon ? (size_t)(colon - s) : n;
    if (hlen == 0) {
        snprintf(err, errlen, "missing host in '%.*s'", (int)n, s);
        return -1;
    }
    ep->host = redis_strndup(s, hlen);
    if (colon && redis_parse_port(colon + 1, (size_t)(s + n - colon - 1),
                                  &ep->port) < 0) {
        snprintf(err, errlen, "bad port in '%.*s' (1..65535)", (int)n, s);
        return -1;
    }
    return 0;
}

/* redis://[user[:pass]@]host[:port][/db] without the scheme. */
static int redis_parse_url(const char *s, struct redis_endpoint *ep, char *err,
                           size_t errlen)
{
    const char *at, *slash, *hp = s, *end = s + strlen(s);

    slash = strchr(s, '/');
    if (!slash)
        slash = end;
    at = memchr(s, '@', (size_t)(slash - s));
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        const char *uend = colon ? colon : at;

        if (uend > s) {
            ep->username = redis_pct_decode(s, (size_t)(uend - s));
            if (!ep->username) {
                snprintf(err, errlen, "bad %%-escape in the URL's user");
                return -1;
            }
        }
        if (colon) {
            ep->password =
                redis_pct_decode(colon + 1, (size_t)(at - colon - 1));
            if (!ep->password) {
                /* Never echo the password. */
                snprintf(err, errlen, "bad %%-escape in the URL's password");
                return -1;
            }
        }
        hp = at + 1;
    }
    if (redis_parse_hostport(hp, (size_t)(slash - hp), ep, err, errlen) < 0)
        return -1;
    ep->db = -1;
    if (slash < end && slash[1] != '\0') {
        char *dend;
        long long db;

        errno = 0;
        db = strtoll(slash + 1, &dend, 10);
        if (errno || *dend != '\0' || db < 0 || db > INT32_MAX ||
            slash[1] < '0' || slash[1] > '9') {
            snprintf(err, errlen, "bad database number '%s' in the URL",
                     slash + 1);
            return -1;
        }
        ep->db = db;
    }
    return 0;
}

int redis_endpoint_parse(const char *addr, struct redis_endpoint *ep, char *err,
                         size_t errlen)
{
    memset(ep, 0, sizeof(*ep));
    ep->db = -1;
    if (!addr || !*addr) {
        snprintf(err, errlen, "empty address");
        return -1;
    }
    if (strncmp(addr, "unix:", 5) == 0) {
        const char *p = addr + 5;

        /* unix:///path is accepted too. */
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (*p == '\0') {
            snprintf(err, errlen, "'%s': missing socket path", addr);
            return -1;
        }
        if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            snprintf(err, errlen, "'%s': socket path too long", addr);
            return -1;
        }
        ep->path = redis_xstrdup(p);
        return 0;
    }
    if (strncmp(addr, "rediss://", 9) == 0) {
        snprintf(err, errlen, "rediss:// (TLS to Redis) is not supported yet");
        return -1;
    }
    if (strncmp(addr, "redis://", 8) == 0)
        return redis_parse_url(addr + 8, ep, err, errlen);
    if (strstr(addr, "://")) {
        snprintf(err, errlen,
                 "unknown scheme in '%s' (use host:port, redis:// or "
                 "unix:/path)",
                 addr);
        return -1;
    }
    return redis_parse_hostport(addr, strlen(addr), ep, err, errlen);
}

void redis_endpoint_release(struct redis_endpoint *ep)
{
    free(ep->host);
    free(ep->path);
    free(ep->username);
    if (ep->password) {
        memset(ep->password, 0, strlen(ep->password));
        free(ep->password);
    }
    memset(ep, 0, sizeof(*ep));
}

void redis_endpoint_describe(const struct redis_endpoint *ep, char *buf,
                             size_t len)
{
    if (ep->path)
        snprintf(buf, len, "unix:%s", ep->path);
    else if (strchr(ep->host, ':'))
        snprintf(buf, len, "[%s]:%d", ep->host, ep->port);
    else
        snprintf(buf, len, "%s:%d", ep->host, ep->port);
}

/* ---- the connection ----------------------------------------------------- */

static uint64_t redis_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds left until deadline (at least 0), capped for poll(). */
static int redis_left_ms(uint64_t deadline)
{
    uint64_t now = redis_mono_ms();

    if (now >= deadline)
        return 0;
    if (deadline - now > 1000000)
        return 1000000;
    return (int)(deadline - now);
}

static char *redis_xstrdup_or_null(const char *s)
{
    return s ? redis_xstrdup(s) : NULL;
}

struct redis_conn *redis_conn_new(const struct redis_endpoint *ep)
{
    struct redis_conn *c = redis_xcalloc(1, sizeof(*c));

    c->ep = *ep;
    c->ep.host = redis_xstrdup_or_null(ep->host);
    c->ep.path = redis_xstrdup_or_null(ep->path);
    c->ep.username = redis_xstrdup_or_null(ep->username);
    c->ep.password = redis_xstrdup_or_null(ep->password);
    c->fd = -1;
    c->rbuf = redis_xalloc(REDIS_READ_CHUNK);
    return c;
}

static void redis_conn_free_replies(struct redis_conn *c)
{
    size_t i;

    for (i = 0; i < c->nreplies; i++)
        freeReplyObject(c->replies[i]);
    c->nreplies = 0;
}

void redis_conn_reset(struct redis_conn *c)
{
    redis_conn_free_replies(c);
    c->out_len = 0;
    c->queued = 0;
}

void redis_conn_close(struct redis_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->reader)
        redisReaderFree(c->reader);
    c->reader = NULL;
    redis_conn_reset(c);
}

void redis_conn_free(struct redis_conn *c)
{
    if (!c)
        return;
    redis_conn_close(c);
    free(c->out);
    free(c->replies);
    free(c->rbuf);
    redis_endpoint_release(&c->ep);
    free(c);
}

int redis_conn_is_open(const struct redis_conn *c)
{
    return c->fd >= 0;
}

const char *redis_conn_error(const struct redis_conn *c)
{
    return c->err;
}

size_t redis_conn_queued(const struct redis_conn *c)
{
    return c->queued;
}

size_t redis_conn_nreplies(const struct redis_conn *c)
{
    return c->nreplies;
}

redisReply *redis_conn_reply(const struct redis_conn *c, size_t i)
{
    return i < c->nreplies ? c->replies[i] : NULL;
}

void redis_conn_cmd_argv(struct redis_conn *c, int argc, const char **argv,
                         const size_t *lens)
{
    char *cmd = NULL;
    int n;

    if (c->nreplies)
        redis_conn_free_replies(c);
    n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0 || !cmd)
        redis_oom();
    if (c->out_len + (size_t)n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;

        while (cap < c->out_len + (size_t)n)
            cap *= 2;
        c->out = redis_xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, cmd, (size_t)n);
    c->out_len += (size_t)n;
    c->queued++;
    free(cmd);
}

void redis_conn_cmd(struct redis_conn *c, const char *arg0, ...)
{
    const char *argv[REDIS_CMD_MAX_ARGS];
    size_t lens[REDIS_CMD_MAX_ARGS];
    int argc = 0;
    const char *a;
    va_list ap;

    va_start(ap, arg0);
    for (a = arg0; a && argc < REDIS_CMD_MAX_ARGS;
         a = va_arg(ap, const char *)) {
        argv[argc] = a;
        lens[argc] = strlen(a);
        argc++;
    }
    va_end(ap);
    redis_conn_cmd_argv(c, argc, argv, lens);
}

static void redis_conn_fail(struct redis_conn *c, const char *fmt, ...)
    REDIS_PRINTF(2, 3);

static void redis_conn_fail(struct redis_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    redis_conn_close(c);
}

/* Waits for a non-blocking connect on fd; 0 or -1 with errno. */
static int redis_wait_connect(int fd, uint64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    int r;

    for (;;) {
        r = poll(&p, 1, redis_left_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        break;
    }
    if (r == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (r < 0)
        return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return -1;
    if (soerr) {
        errno = soerr;
        return -1;
    }
    return 0;
}

static int redis_connect_unix(struct redis_conn *c, uint64_t deadline)
{
    struct sockaddr_un sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->ep.path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if ((errno != EINPROGRESS && errno != EAGAIN) ||
            redis_wait_connect(fd, deadline) < 0) {
            int e = errno;

            close(fd);
            errno = e;
            goto fail;
        }
    }
    c->fd = fd;
    return 0;
fail:
    snprintf(c->err, sizeof(c->err), "connect unix:%s: %s", c->ep.path,
             strerror(errno));
    return -1;
}

static int redis_connect_tcp(struct redis_conn *c, uint64_t deadline)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int rc, fd = -1, one = 1, e = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", c->ep.port);
    rc = getaddrinfo(c->ep.host, port, &hints, &res);
    if (rc != 0) {
        snprintf(c->err, sizeof(c->err), "resolve %s: %s", c->ep.host,
                 gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && redis_wait_connect(fd, deadline) == 0))
            break;
        e = errno;
        close(fd);
        fd = -1;
        if (redis_left_ms(deadline) == 0)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(c->err, sizeof(c->err), "connect %s:%d: %s", c->ep.host,
                 c->ep.port, strerror(e ? e : ECONNREFUSED));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    c->fd = fd;
    return 0;
}

/* AUTH and SELECT on a fresh connection (nothing else queued). */
static int redis_conn_handshake(struct redis_conn *c)
{
    size_t i;
    int rc;

    if (c->ep.password) {
        if (c->ep.username)
            redis_conn_cmd(c, "AUTH", c->ep.username, c->ep.password, NULL);
        else
            redis_conn_cmd(c, "AUTH", c->ep.password, NULL);
    }
    if (c->ep.db > 0) {
        char db[24];

        snprintf(db, sizeof(db), "%lld", (long long)c->ep.db);
        redis_conn_cmd(c, "SELECT", db, NULL);
    }
    if (c->queued == 0)
        return FERRY_OK;
    rc = redis_conn_exec(c);
    if (rc != FERRY_OK)
        return rc;
    for (i = 0; i < c->nreplies; i++) {
        redisReply *r = c->replies[i];

        if (r->type == REDIS_REPLY_ERROR) {
            /* The server's message never contains the password. */
            redis_conn_fail(c, "%s refused: %s",
                            (c->ep.password && i == 0) ? "AUTH" : "SELECT",
                            r->str);
            return FERRY_ERROR;
        }
    }
    redis_conn_reset(c);
    return FERRY_OK;
}

int redis_conn_open(struct redis_conn *c)
{
    uint64_t deadline;
    char *out;
    size_t out_len, out_cap, queued;
    int rc;

    if (c->fd >= 0)
        return FERRY_OK;
    c->err[0] = '\0';
    deadline = redis_mono_ms() + c->ep.connect_timeout_ms;
    rc = c->ep.path ? redis_connect_unix(c, deadline)
                    : redis_connect_tcp(c, deadline);
    if (rc < 0)
        return FERRY_RETRY;
    c->reader = redisReaderCreate();
    if (!c->reader)
        redis_oom();
    redis_conn_free_replies(c);
    /* Commands the caller queued wait until the handshake is done. */
    out = c->out;
    out_len = c->out_len;
    out_cap = c->out_cap;
    queued = c->queued;
    c->out = NULL;
    c->out_len = c->out_cap = c->queued = 0;
    rc = redis_conn_handshake(c);
    free(c->out);
    c->out = out;
    c->out_len = out_len;
    c->out_cap = out_cap;
    c->queued = queued;
    if (rc != FERRY_OK)
        redis_conn_reset(c);
    return rc;
}

/* Moves every complete reply out of the reader; -1 on a protocol error. */
static int redis_conn_collect(struct redis_conn *c, size_t want)
{
    while (c->nreplies < want) {
        void *reply = NULL;

        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            redis_conn_fail(c, "protocol error: %s", c->reader->errstr);
            return -1;
        }
        if (!reply)
            break;
        if (c->nreplies == c->replies_cap) {
            c->replies_cap = c->replies_cap ? c->replies_cap * 2 : 64;
            c->replies = redis_xrealloc(c->replies,
                                        c->replies_cap * sizeof(*c->replies));
        }
        c->replies[c->nreplies++] = reply;
    }
    return 0;
}

int redis_conn_exec(struct redis_conn *c)
{
    uint64_t deadline = redis_mono_ms() + c->ep.command_timeout_ms;
    size_t want = c->queued, sent = 0;

    if (c->fd < 0) {
        snprintf(c->err, sizeof(c->err), "not connected");
        redis_conn_reset(c);
        return FERRY_RETRY;
    }
    redis_conn_free_replies(c);
    while (c->nreplies < want) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int r;

        if (sent < c->out_len)
            p.events |= POLLOUT;
        r = poll(&p, 1, redis_left_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            redis_conn_fail(c, "poll: %s", strerror(errno));
            return FERRY_RETRY;
        }
        if (r == 0) {
            redis_conn_fail(c, "timed out after %llu ms",
                            (unsigned long long)c->ep.command_timeout_ms);
            return FERRY_RETRY;
        }
        if (p.revents & POLLOUT) {
            ssize_t n =
                send(c->fd, c->out + sent, c->out_len - sent, MSG_NOSIGNAL);

            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                redis_conn_fail(c, "write: %s", strerror(errno));
                return FERRY_RETRY;
            }
            if (n > 0)
                sent += (size_t)n;
        }
        if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t n = recv(c->fd, c->rbuf, REDIS_READ_CHUNK, 0);

            if (n == 0) {
                redis_conn_fail(c, "connection closed by the server");
                return FERRY_RETRY;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                redis_conn_fail(c, "read: %s", strerror(errno));
                return FERRY_RETRY;
            }
            if (n > 0) {
                if (redisReaderFeed(c->reader, c->rbuf, (size_t)n) !=
                    REDIS_OK) {
                    redis_conn_fail(c, "protocol error");
                    return FERRY_RETRY;
                }
                if (redis_conn_collect(c, want) < 0)
                    return FERRY_RETRY;
            }
        }
    }
    c->out_len = 0;
    c->queued = 0;
    return FERRY_OK;
}

/* ---- reply classes ------------------------------------------------------ */

static int redis_err_is(const char *s, const char *code)
{
    size_t n = strlen(code);

    return strncmp(s, code, n) == 0 && (s[n] == ' ' || s[n] == '\0');
}

int redis_reply_class(const redisReply *r)
{
    static const char *const transient[] = {
        "OOM",     "LOADING",     "BUSY",       "TRYAGAIN", "MASTERDOWN",
        "MISCONF", "CLUSTERDOWN", "NOREPLICAS", NULL};
    static const char *const reconnect[] = {"READONLY", "NOAUTH",    "MOVED",
                                            "ASK",      "WRONGPASS", NULL};
    size_t i;

    if (!r)
        return REDIS_CLASS_RECONNECT;
    if (r->type != REDIS_REPLY_ERROR)
        return REDIS_CLASS_OK;
    for (i = 0; transient[i]; i++)
        if (redis_err_is(r->str, transient[i]))
            return REDIS_CLASS_TRANSIENT;
    for (i = 0; reconnect[i]; i++)
        if (redis_err_is(r->str, reconnect[i]))
            return REDIS_CLASS_RECONNECT;
    return REDIS_CLASS_DATA;
}
