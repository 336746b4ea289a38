/*
 * plugins/source_websocket/rest_probe.c: the REST half of `ferry check
 * --connect` (wsrc.h): the two count requests the initial load starts
 * with, made once, synchronously, with libcurl's easy interface.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "wsrc.h"

/* A count response: small, so a fixed buffer (a larger body fails). */
struct ws_probe_body {
    char data[4096];
    size_t len;
};

static size_t ws_probe_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct ws_probe_body *b = arg;
    size_t n = size * nmemb;

    if (n >= sizeof(b->data) - b->len)
        return 0;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/*
 * GET {api_url}/{what}/count with the API key, the first request of the
 * initial load (load.c), within connect_timeout. Returns data.count, or
 * -1 with the HTTP status or the transport error in why.
 */
static long long ws_probe_count(struct ws_source *s, const char *what,
                                char *why, size_t len)
{
    char url[sizeof(s->api_url) + 32], hdr[1024];
    struct ws_probe_body b = {.len = 0};
    struct curl_slist *h = NULL;
    long long n = -1;
    long code = 0;
    json_t *root, *c;
    CURLcode res;
    CURL *e = curl_easy_init();

    if (!e) {
        snprintf(why, len, "cannot start a request");
        return -1;
    }
    snprintf(url, sizeof(url), "%s/%s/count", s->api_url, what);
    snprintf(hdr, sizeof(hdr), "X-Schematic-Api-Key: %s", s->api_key);
    h = curl_slist_append(h, hdr);
    h = curl_slist_append(h, "Accept: application/json");
    memset(hdr, 0, sizeof(hdr));
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ws_probe_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->connect_ms);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!s->tls_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (s->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
    res = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (res != CURLE_OK) {
        snprintf(why, len, "GET /%s/count: %s", what, curl_easy_strerror(res));
        return -1;
    }
    if (code != 200) {
        snprintf(why, len, "GET /%s/count: HTTP %ld%s", what, code,
                 code == 401 || code == 403 ? " (API key refused)" : "");
        return -1;
    }
    root = json_loadb(b.data, b.len, 0, NULL);
    c = json_object_get(json_object_get(root, "data"), "count");
    if (json_is_integer(c) && json_integer_value(c) >= 0)
        n = json_integer_value(c);
    else
        snprintf(why, len, "GET /%s/count: no data.count in the response",
                 what);
    json_decref(root);
    return n;
}

/* The REST half of the probe: both counts, or the first failure, after
 * "; " in msg (which holds the WebSocket half). Returns 0 or -1. */
int ws_probe_rest(struct ws_source *s, char *msg, size_t len)
{
    char why[256];
    size_t off = strlen(msg);
    long long nc = ws_probe_count(s, "companies", why, sizeof(why));
    long long nu = nc < 0 ? -1 : ws_probe_count(s, "users", why, sizeof(why));

    if (nc < 0 || nu < 0)
        snprintf(msg + off, len - off, "; REST %.100s: %s", s->api_url, why);
    else
        snprintf(msg + off, len - off,
                 "; REST %.100s: %lld companies, %lld users", s->api_url, nc,
                 nu);
    return nc < 0 || nu < 0 ? -1 : 0;
}
