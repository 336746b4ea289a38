/*
 * plugins/source_websocket/options.c: the options of the datastream
 * source (interface.md) and their checks: what init() reads into struct
 * ws_source before anything runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "wsrc.h"

/* See wsrc.h. */
const struct ferry_option ws_options[] = {
    { "url", FERRY_OPT_STRING, NULL, 0, 0, NULL, 0,
      "datastream URL (ws:// or wss://; http(s):// is converted as for "
      "api_url); default: derived from api_url" },
    { "api_url", FERRY_OPT_STRING, "https://api.schematichq.com", 0, 0, NULL,
      0, "Schematic API base URL (REST initial load; datastream URL "
         "derived from it)" },
    { "api_key", FERRY_OPT_STRING, NULL, 0, 0, NULL,
      FERRY_OPT_SECRET | FERRY_OPT_REQUIRED,
      "Schematic API key, sent as X-Schematic-Api-Key" },
    { "ping_interval", FERRY_OPT_DURATION, "30s", 0, 3600000, NULL, 0,
      "WebSocket ping period; 0 disables keepalive" },
    { "pong_wait", FERRY_OPT_DURATION, "40s", 100, 3600000, NULL, 0,
      "reconnect when no pong arrives for this long" },
    { "connect_timeout", FERRY_OPT_DURATION, "10s", 100, 300000, NULL, 0,
      "TCP + TLS + WebSocket handshake limit" },
    { "reconnect_min", FERRY_OPT_DURATION, "1s", 10, 3600000, NULL, 0,
      "first delay after a failed dial (doubles up to reconnect_max)" },
    { "reconnect_max", FERRY_OPT_DURATION, "30s", 10, 3600000, NULL, 0,
      "longest delay between dials" },
    { "max_message_size", FERRY_OPT_SIZE, "16MB", 1024, 1073741824.0, NULL,
      0, "larger messages are counted (too_large) and skipped" },
    { "tls_verify", FERRY_OPT_BOOL, "true", 0, 0, NULL, 0,
      "verify the server certificate and host name (wss://, https://)" },
    { "tls_ca_file", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_PATH,
      "PEM CA bundle to verify the server with, relative to the "
      "configuration file (default: system CAs)" },
    { "subscribe", FERRY_OPT_LIST, "companies, users, flags", 0, 0, NULL, 0,
      "subscriptions sent on every connect: companies, users, flags" },
    { "replay", FERRY_OPT_BOOL, "true", 0, 0, NULL, 0,
      "resume from the committed position (replay_from)" },
    { "bulk_load", FERRY_OPT_BOOL, "true", 0, 0, NULL, 0,
      "load companies and users over REST when there is no position, and "
      "after a reload" },
    { "bulk_page_size", FERRY_OPT_INT, "100", 1, 1000, NULL, 0,
      "REST page size (limit)" },
    { "bulk_concurrency", FERRY_OPT_INT, "5", 1, 64, NULL, 0,
      "REST requests in flight at most" },
    { "bulk_rate", FERRY_OPT_DOUBLE, "10", 0, 100000, NULL, 0,
      "REST requests per second at most; 0 = unlimited" },
    { "max_held_messages", FERRY_OPT_INT, "100000", 1, 100000000, NULL, 0,
      "stream messages held during an initial load before reading pauses" },
    { NULL, 0, NULL, 0, 0, NULL, 0, NULL }
};

/*
 * See wsrc.h. Reads every option of s->ctx into s; on a bad value logs one
 * line and returns -1 (what was copied so far, api_key and ca_file, is
 * freed by the caller). Main thread, from init().
 */
int ws_options_read(struct ws_source *s)
{
    const struct ferry_host *host = s->host;
    struct ferry_ctx *ctx = s->ctx;
    const char *url, *api_url, *key, *ca;
    const char *const *items;
    size_t nitems, n;
    char err[512];
    int subs;

    api_url = host->opt_str(ctx, "api_url");
    url = host->opt_str(ctx, "url");
    if (!api_url || (strncasecmp(api_url, "http://", 7) &&
                     strncasecmp(api_url, "https://", 8))) {
        host->log(ctx, FERRY_LOG_ERROR,
                  "api_url '%.200s' must start with http:// or https://",
                  api_url ? api_url : "");
        return -1;
    }
    n = strlen(api_url);
    while (n > 0 && api_url[n - 1] == '/')
        n--;
    if (n >= sizeof(s->api_url)) {
        host->log(ctx, FERRY_LOG_ERROR, "api_url is too long");
        return -1;
    }
    memcpy(s->api_url, api_url, n);
    s->api_url[n] = '\0';
    if (ws_url_derive(url && *url ? url : api_url, s->url, sizeof(s->url),
                      err, sizeof(err)) < 0) {
        host->log(ctx, FERRY_LOG_ERROR, "%s: %s",
                  url && *url ? "url" : "api_url", err);
        return -1;
    }
    if (ws_url_parse(s->url, &s->wsurl, err, sizeof(err)) < 0) {
        host->log(ctx, FERRY_LOG_ERROR, "url: %s", err);
        return -1;
    }
    key = host->opt_str(ctx, "api_key");
    if (!key || !*key) {
        host->log(ctx, FERRY_LOG_ERROR, "api_key is empty");
        return -1;
    }
    s->api_key = host->strdup(key);
    s->ping_ms = host->opt_duration_ms(ctx, "ping_interval");
    s->pong_ms = host->opt_duration_ms(ctx, "pong_wait");
    s->connect_ms = host->opt_duration_ms(ctx, "connect_timeout");
    s->rmin_ms = host->opt_duration_ms(ctx, "reconnect_min");
    s->rmax_ms = host->opt_duration_ms(ctx, "reconnect_max");
    if (s->ping_ms && s->pong_ms <= s->ping_ms) {
        char a[32], b[32];

        host->log(ctx, FERRY_LOG_ERROR,
                  "pong_wait (%s) must be longer than ping_interval (%s)",
                  ws_fmt_ms(s->pong_ms, a, sizeof(a)),
                  ws_fmt_ms(s->ping_ms, b, sizeof(b)));
        return -1;
    }
    if (s->rmin_ms > s->rmax_ms) {
        host->log(ctx, FERRY_LOG_ERROR,
                  "reconnect_min must not exceed reconnect_max");
        return -1;
    }
    s->max_msg = (size_t)host->opt_size(ctx, "max_message_size");
    s->tls_verify = host->opt_bool(ctx, "tls_verify");
    ca = host->opt_str(ctx, "tls_ca_file");
    if (ca && *ca) {
        /* A file check, not I/O with a service: fail at check time. */
        if (access(ca, R_OK) != 0) {
            host->log(ctx, FERRY_LOG_ERROR, "tls_ca_file '%.200s': %s", ca,
                      strerror(errno));
            return -1;
        }
        s->ca_file = host->strdup(ca);
    }
    nitems = host->opt_list(ctx, "subscribe", &items);
    subs = ws_subscribe_parse(items, nitems, err, sizeof(err));
    if (subs < 0) {
        host->log(ctx, FERRY_LOG_ERROR, "%s", err);
        return -1;
    }
    s->subs = (unsigned)subs;
    s->replay = host->opt_bool(ctx, "replay");
    s->bulk_load = host->opt_bool(ctx, "bulk_load");
    s->page_size = (int)host->opt_int(ctx, "bulk_page_size");
    s->concurrency = (int)host->opt_int(ctx, "bulk_concurrency");
    s->rate = host->opt_double(ctx, "bulk_rate");
    s->max_held = (size_t)host->opt_int(ctx, "max_held_messages");
    return 0;
}
