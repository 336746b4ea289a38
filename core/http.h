/*
 * core/http.h: the operations HTTP server on [ferry] http_listen
 * (interface.md "HTTP").
 *
 *   GET /health   liveness: 200 while ferry is alive, also while Redis
 *                 or the datastream is down; 503 only when the watchdog
 *                 sees a watched step stuck past its bound (health.h)
 *   GET /ready    200 when ready, else 503
 *                 both with health_body() as application/json; the body
 *                 always carries "ready" and "cache_version", also on 503
 *   GET /metrics  200, metrics_render(), Prometheus text format 0.0.4
 *   GET /debug    200, JSON: the pipeline's part (see http_set_debug_fn),
 *                 health, every info key, a timestamp
 *   anything else 404 {"error":"not found"}
 * HEAD answers as GET without the body; any other method gets 405 with
 * "Allow: GET".
 *
 * One libwebsockets context with its own service thread; HTTP/1.1 with
 * keep-alive. Up to 512 connections at once on one non-blocking loop;
 * each has 10 s to send its request headers and 5 s idle between
 * requests, so slow clients never delay another one. http_start() and http_stop() are called from the main thread
 * only, never concurrently with each other.
 */
#ifndef FERRY_CORE_HTTP_H
#define FERRY_CORE_HTTP_H

#include <stddef.h>

/*
 * Starts serving on listen: "host:port" where host is an IPv4 address,
 * "localhost" or a bracketed IPv6 address ("[::1]:8090"); an empty host
 * (":8090") or "*" listens on every interface. Port 0 picks a free port
 * (see http_port()). NULL or "" disables the server and returns 0.
 *
 * The socket is bound before this returns, so a bad address or a port in
 * use is a startup error. Returns 0, or -1 with a one-line message in err
 * (for example "http_listen: cannot bind 127.0.0.1:8090: Address already
 * in use"); then nothing is left running.
 */
int http_start(const char *listen, char *err, size_t errlen);

/*
 * Checks the syntax of an http_listen value without binding anything, for
 * configuration validation (`ferry check`, SIGHUP). Returns 0 when listen
 * is NULL, empty or well-formed, or -1 with the same message http_start()
 * would give (for example "http_listen: invalid port '80x' in
 * '127.0.0.1:80x' (expected 0-65535)"). Any thread.
 */
int http_listen_check(const char *listen, char *err, size_t errlen);

/* Stops the server and joins its thread. Open connections are closed.
 * Safe to call when the server is not running. */
void http_stop(void);

/* The port the server listens on, or 0 when it is not running. */
int http_port(void);

/*
 * Sets the provider of the pipeline's part of /debug: fn(arg) returns a
 * malloc'd JSON object (for example {"replay":{"enabled":true,
 * "cursor":"1-0"},"messages":{"processed":3,"applied":3,"dropped":0},
 * "channels":{...},"breakers":{...},"role":"active"}), which /debug
 * frees after merging it with the health registry. fn is called on the
 * HTTP thread; it may be NULL (then /debug shows empty defaults). It must
 * never return a secret.
 *
 * May be called at any time from any thread. When it returns, the
 * previous fn is not running and will not be called again, so its arg may
 * be freed (reload swaps the pipeline this way).
 */
void http_set_debug_fn(char *(*fn)(void *arg), void *arg);

#endif
