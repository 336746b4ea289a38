/*
 * plugins/sink_file: appends every message as one JSON line to a file or
 * stdout. For development environments, `make demo` and tests, which read
 * its output: the line format is a contract, documented in PLUGINS.md
 * ("sink_file output"):
 *
 *   {"route":"main","op":"full","entity_type":"company",
 *    "entity_id":"comp_1","stream_id":"1767225600000-3",
 *    "keys":{"id":"acme"},"data":{...},"seq":42}
 *
 * Keys always appear, in this order. stream_id is null when the message
 * has no position. data is the payload itself when it is valid JSON, the
 * payload as a JSON string when it is not, and null when it is empty.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <ferry/ferry.h>

#include "json/utf8.h"

struct file_sink {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    char *path;
    /* Guards fp: workers write concurrently for different contexts. */
    pthread_mutex_t lock;
    FILE *fp;
    struct ferry_metric *lines;
    /* Monotonic time of the last write error logged (rate limit). */
    _Atomic uint64_t last_error_ns;
};

/* One worker's line buffer, reused from batch to batch. */
struct file_worker {
    struct file_sink *s;
    char *buf;
    size_t len;
    size_t cap;
};

static const char *const file_formats[] = {"jsonl", NULL};

static const struct ferry_option file_options[] = {
    {.name = "path",
     .type = FERRY_OPT_STRING,
     .def = "-",
     .flags = FERRY_OPT_PATH,
     .description = "file to append to (relative to the configuration "
                    "file); - is stdout"},
    {.name = "format",
     .type = FERRY_OPT_ENUM,
     .def = "jsonl",
     .enum_values = file_formats,
     .description = "jsonl: one JSON object per message and line"},
    {.name = NULL},
};

/* ---- the line buffer ----------------------------------------------------- */

static void file_reserve(struct file_worker *w, size_t n)
{
    size_t cap = w->cap ? w->cap : 4096;
    char *buf;

    if (w->len + n <= w->cap)
        return;
    while (cap < w->len + n)
        cap *= 2;
    buf = w->s->host->realloc(w->buf, cap);
    /* Out of memory ends the process, as host->alloc() does. */
    if (buf == NULL)
        abort();
    w->buf = buf;
    w->cap = cap;
}

static void file_put(struct file_worker *w, const char *s, size_t n)
{
    file_reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void file_puts(struct file_worker *w, const char *s)
{
    file_put(w, s, strlen(s));
}

/* Appends s[0..n) as a JSON string. Bytes that are not well-formed UTF-8
 * become U+FFFD, so the line stays valid JSON whatever the input. */
static void file_put_json_str(struct file_worker *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    file_reserve(w, n + 2);
    w->buf[w->len++] = '"';
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t k;

        if (c >= 0x80) {
            k = utf8_decode(s + i, n - i, &cp);
            if (k == 0) {
                file_puts(w, "\\ufffd");
                i++;
            } else {
                file_put(w, s + i, k);
                i += k;
            }
            continue;
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            file_put(w, esc, 2);
        } else if (c == '\n') {
            file_puts(w, "\\n");
        } else if (c == '\r') {
            file_puts(w, "\\r");
        } else if (c == '\t') {
            file_puts(w, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            file_put(w, esc, 6);
        } else {
            file_put(w, (const char *)&c, 1);
        }
        i++;
    }
    file_put(w, "\"", 1);
}

static void file_put_str(struct file_worker *w, const char *s)
{
    file_put_json_str(w, s ? s : "", s ? strlen(s) : 0);
}

/* The payload: itself when it is JSON on one line, re-encoded compactly
 * when it is JSON over several lines, a JSON string otherwise. */
static void file_put_data(struct file_worker *w, const char *p, size_t n)
{
    json_error_t jerr;
    json_t *j;
    char *dump;

    if (p == NULL || n == 0) {
        file_puts(w, "null");
        return;
    }
    j = json_loadb(p, n, JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        file_put_json_str(w, p, n);
        return;
    }
    if (memchr(p, '\n', n) == NULL && memchr(p, '\r', n) == NULL) {
        file_put(w, p, n);
    } else {
        dump = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (dump != NULL) {
            file_puts(w, dump);
            free(dump);
        } else {
            file_put_json_str(w, p, n);
        }
    }
    json_decref(j);
}

static void file_put_msg(struct file_worker *w, const char *route,
                         const struct ferry_msg *m)
{
    char num[64];
    uint32_t i;

    file_puts(w, "{\"route\":");
    file_put_str(w, route);
    file_puts(w, ",\"op\":\"");
    file_puts(w, ferry_op_name(m->op));
    file_puts(w, "\",\"entity_type\":");
    file_put_str(w, m->entity_type);
    file_puts(w, ",\"entity_id\":");
    file_put_str(w, m->entity_id);
    file_puts(w, ",\"stream_id\":");
    if (m->pos.set) {
        file_puts(w, "\"");
        file_puts(w, ferry_pos_format(&m->pos, num, sizeof(num)));
        file_puts(w, "\"");
    } else {
        file_puts(w, "null");
    }
    file_puts(w, ",\"keys\":{");
    for (i = 0; i < m->nkeys && m->keys != NULL; i++) {
        if (i > 0)
            file_put(w, ",", 1);
        file_put_str(w, m->keys[i].key);
        file_put(w, ":", 1);
        file_put_str(w, m->keys[i].value);
    }
    file_puts(w, "},\"data\":");
    file_put_data(w, m->payload, m->payload_len);
    snprintf(num, sizeof(num), ",\"seq\":%" PRIu64 "}\n", m->seq);
    file_puts(w, num);
}

/* ---- callbacks ----------------------------------------------------------- */

static int file_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                     void **state)
{
    static const char *const labels[] = {"op", "append", NULL};
    struct file_sink *s = host->alloc(sizeof(*s));

    memset(s, 0, sizeof(*s));
    s->host = host;
    s->ctx = ctx;
    s->path = host->strdup(host->opt_str(ctx, "path"));
    pthread_mutex_init(&s->lock, NULL);
    s->lines =
        host->metric(ctx, FERRY_METRIC_COUNTER, "ferry_sink_operations_total",
                     "Operations applied by the sink", labels);
    *state = s;
    return FERRY_OK;
}

static void file_fini(void *state)
{
    struct file_sink *s = state;

    if (s->fp != NULL && s->fp != stdout)
        fclose(s->fp);
    else if (s->fp == stdout)
        fflush(stdout);
    pthread_mutex_destroy(&s->lock);
    s->host->free(s->path);
    s->host->free(s);
}

/* Opens the file unless it is open; with s->lock held. */
static int file_open_locked(struct file_sink *s)
{
    if (s->fp != NULL)
        return FERRY_OK;
    if (strcmp(s->path, "-") == 0) {
        s->fp = stdout;
        return FERRY_OK;
    }
    s->fp = fopen(s->path, "a");
    if (s->fp == NULL) {
        s->host->log(s->ctx, FERRY_LOG_ERROR, "cannot open %s: %s", s->path,
                     strerror(errno));
        return FERRY_ERROR;
    }
    /* Each batch is one fwrite: unbuffered, a failed write leaves nothing
     * behind in a stdio buffer to be written again after the retry. */
    setvbuf(s->fp, NULL, _IONBF, 0);
    return FERRY_OK;
}

/* Main thread: opens (creates) the file, so that a path that cannot be
 * written stops the pipeline at start rather than at the first batch. */
static int file_start(void *state)
{
    struct file_sink *s = state;
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = file_open_locked(s);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int file_open(void *state, unsigned worker, void **wctx)
{
    struct file_sink *s = state;
    struct file_worker *w = s->host->alloc(sizeof(*w));

    memset(w, 0, sizeof(*w));
    w->s = s;
    *wctx = w;
    return FERRY_OK;
}

static void file_close(void *wctx)
{
    struct file_worker *w = wctx;

    w->s->host->free(w->buf);
    w->s->host->free(w);
}

/* Logs a write error at most once a second. */
static void file_log_error(struct file_sink *s, int err)
{
    uint64_t now = s->host->now_ns();
    uint64_t last = atomic_load(&s->last_error_ns);

    if (last != 0 && now - last < 1000000000ull)
        return;
    if (!atomic_compare_exchange_strong(&s->last_error_ns, &last, now))
        return;
    s->host->log(s->ctx, FERRY_LOG_WARN, "cannot write to %s: %s", s->path,
                 strerror(err));
}

/* Formats the batch outside the lock, then writes and flushes it with
 * one locked fwrite, so lines of concurrent workers never interleave. */
static int file_write(void *wctx, struct ferry_batch *batch)
{
    struct file_worker *w = wctx;
    struct file_sink *s = w->s;
    uint32_t i;
    int rc, err = 0;

    w->len = 0;
    for (i = 0; i < batch->count; i++)
        file_put_msg(w, batch->route, batch->msgs[i]);

    pthread_mutex_lock(&s->lock);
    rc = file_open_locked(s);
    if (rc == FERRY_OK) {
        if (fwrite(w->buf, 1, w->len, s->fp) != w->len || fflush(s->fp) != 0) {
            err = errno;
            clearerr(s->fp);
            rc = FERRY_RETRY;
        }
    } else {
        rc = FERRY_RETRY;
    }
    pthread_mutex_unlock(&s->lock);
    if (err != 0)
        file_log_error(s, err);
    if (rc == FERRY_OK && s->lines != NULL)
        s->host->metric_add(s->lines, batch->count);
    return rc;
}

/* Nothing to persist: the file is the output, not a replica that resumes. */
static int file_checkpoint(void *wctx, const struct ferry_pos *pos)
{
    return FERRY_OK;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "file"),
    .version = "1.0.0",
    .description = "appends each message as a JSON line (development, tests)",
    .options = file_options,
    .init = file_init,
    .fini = file_fini,
    .start = file_start,
    .open = file_open,
    .write = file_write,
    .checkpoint = file_checkpoint,
    .close = file_close,
};
