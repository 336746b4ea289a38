/*
 * plugins/lib/redis/conn.h: one connection to one Redis server.
 *
 * struct redis_conn is opaque: the sinks queue commands and read replies
 * and never see the transport. That is where the next issue's pieces go,
 * behind the same functions: TLS (rediss://, a TLS session over fd, in
 * conn.c's connect/send/recv), Cluster (MOVED/ASK and slot routing, a
 * redis_conn holding one socket per node) and Sentinel (resolving the
 * master before connect); their options go to redis/options.h and into
 * struct redis_endpoint.
 *
 * The library owns its sockets (non-blocking connect bounded by
 * connect_timeout, poll()-driven pipelined I/O bounded by command_timeout)
 * and uses hiredis only to format commands (argv-style, so untrusted text
 * is never formatted into a command string) and to parse replies. Keeping
 * the transport here lets TLS (hiredis 0.14 has none) and Cluster routing
 * (MOVED/ASK) slot in later without touching the batch logic.
 *
 * Usage: redis_conn_open() (idempotent), then any number of
 * redis_conn_cmd*() calls that queue commands, then redis_conn_exec(),
 * which sends them all and reads one reply per command. Replies stay valid
 * until the next queueing call, redis_conn_reset() or close.
 *
 * Errors come in two classes:
 *  - connection errors (refused, reset, timeout, protocol error): the
 *    connection is closed, and the call returns FERRY_RETRY;
 *  - reply errors (-ERR, -NOPERM, -OOM ...): the connection stays usable;
 *    they are ordinary replies of type REDIS_REPLY_ERROR that the caller
 *    inspects (redis_reply_class() sorts them).
 *
 * A struct redis_conn is not thread-safe: one thread at a time.
 */
#ifndef FERRY_REDIS_CONN_H
#define FERRY_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* Where and how to connect. Strings are copied by redis_conn_new(). */
struct redis_endpoint {
    char *host;     /* TCP host (NULL for a unix socket) */
    int port;       /* TCP port */
    char *path;     /* unix socket path (NULL for TCP) */
    char *username; /* ACL user for AUTH, or NULL */
    char *password; /* AUTH password, or NULL (never logged) */
    int64_t db;     /* SELECT db when > 0 */
    uint64_t connect_timeout_ms;
    uint64_t command_timeout_ms;
};

/*
 * Parses an address: "host:port", "[v6addr]:port", "redis://[user[:pass]@]
 * host[:port][/db]" or "unix:/path". Fills ep's host/port/path and, for a
 * redis:// URL, username/password/db (db is -1 when the URL has none).
 * Returns 0, or -1 with a message in err. ep's strings are malloc'd: free
 * them with redis_endpoint_release() in either case.
 */
int redis_endpoint_parse(const char *addr, struct redis_endpoint *ep, char *err,
                         size_t errlen);
void redis_endpoint_release(struct redis_endpoint *ep);
/* "host:port" or "unix:/path" for log lines (no credentials). */
void redis_endpoint_describe(const struct redis_endpoint *ep, char *buf,
                             size_t len);

struct redis_conn;

/* A new, unconnected connection to ep (copied). Never NULL. */
struct redis_conn *redis_conn_new(const struct redis_endpoint *ep);
/* Closes and frees. Accepts NULL. */
void redis_conn_free(struct redis_conn *c);

/*
 * Connects if not connected: TCP or unix connect within connect_timeout,
 * then AUTH and SELECT as configured. Returns FERRY_OK; FERRY_RETRY when
 * the server cannot be reached (message in redis_conn_error()); FERRY_ERROR
 * when the server refused AUTH or SELECT (a configuration problem).
 */
int redis_conn_open(struct redis_conn *c);
int redis_conn_is_open(const struct redis_conn *c);
/* Closes the socket and drops queued commands and replies. */
void redis_conn_close(struct redis_conn *c);
/* The last connection error, for log lines. */
const char *redis_conn_error(const struct redis_conn *c);

/* Drops queued commands and held replies. */
void redis_conn_reset(struct redis_conn *c);
/* Queues one command given as argc strings of the given lengths. */
void redis_conn_cmd_argv(struct redis_conn *c, int argc, const char **argv,
                         const size_t *lens);
/* Queues one command of NUL-terminated strings, NULL-terminated list. */
void redis_conn_cmd(struct redis_conn *c, const char *arg0, ...);
/* Number of commands queued since the last exec or reset. */
size_t redis_conn_queued(const struct redis_conn *c);

/*
 * Sends every queued command and reads exactly one reply per command, all
 * within command_timeout. Returns FERRY_OK (replies available, some may be
 * reply errors) or FERRY_RETRY (connection error; closed, nothing held).
 * The connection must be open.
 */
int redis_conn_exec(struct redis_conn *c);
/* Reply i of the last exec (0-based), or NULL when out of range. */
redisReply *redis_conn_reply(const struct redis_conn *c, size_t i);
size_t redis_conn_nreplies(const struct redis_conn *c);

/* Classes of a reply, for failure handling. */
enum redis_reply_class {
    REDIS_CLASS_OK = 0,        /* not an error */
    REDIS_CLASS_DATA = 1,      /* refused for this command's content or
                                * keys (NOPERM, WRONGTYPE, ERR ...):
                                * retrying will not help */
    REDIS_CLASS_TRANSIENT = 2, /* server state (OOM, LOADING, BUSY,
                                * TRYAGAIN, MASTERDOWN, MISCONF ...) */
    REDIS_CLASS_RECONNECT = 3  /* this connection is wrong (READONLY
                                * replica, NOAUTH, MOVED/ASK): reconnect */
};
/* Classifies r; NULL counts as a connection problem (RECONNECT). */
int redis_reply_class(const redisReply *r);

#endif
