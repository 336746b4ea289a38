/*
 * plugins/source_file: replays recorded Schematic datastream frames, one
 * JSON frame a line, through the same parser as source_websocket
 * (plugins/lib/schematic/datastream.h).
 *
 * The source is finite: run() returns FERRY_OK after the last line (of the
 * last repetition), and the core treats the source as finished: the
 * pipeline keeps running and drains what it emitted; nothing more comes
 * from this source. Blank lines are skipped. Invalid frames are counted in
 * ferry_source_invalid_messages_total{reason} and logged with their line
 * number, at most one line a second.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/ferry.h>

#include "schematic/datastream.h"

/* Longest sleep between checks of the stop flag. */
#define FILE_SLICE_NS 20000000ull
/* emit_wait() timeout: how often a blocked emit looks at the stop flag. */
#define FILE_EMIT_WAIT_MS 100
/* Distinct (entity_type, op) counters kept; more share one series. */
#define FILE_MAX_SERIES 32

struct file_series {
    char entity_type[32];
    uint32_t op;
    struct ferry_metric *m;
};

struct file_source {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    char *path;
    double rate;
    int preload;
    int64_t repeat;
    atomic_int stopping;

    /* Used by the run() thread only. */
    struct file_series series[FILE_MAX_SERIES];
    size_t nseries;
    uint64_t next_ns; /* rate limit: when the next message may go */
    uint64_t interval_ns;
    uint64_t last_log_ns;
    uint64_t suppressed;
    uint64_t emitted;
    uint64_t invalid;
};

/* A parsed line kept for preload. */
struct file_frame {
    struct ds_frame f;
    uint64_t line;
};

static const struct ferry_option file_options[] = {
    {.name = "path",
     .type = FERRY_OPT_STRING,
     .flags = FERRY_OPT_REQUIRED,
     .description = "recorded datastream frames, one JSON frame a line"},
    {.name = "rate",
     .type = FERRY_OPT_DOUBLE,
     .def = "0",
     .min = 0,
     .max = 10000000,
     .description = "messages per second; 0 is as fast as the routes take "
                    "them"},
    {.name = "preload",
     .type = FERRY_OPT_BOOL,
     .def = "false",
     .description = "parse the whole file before emitting (benchmarks)"},
    {.name = "repeat",
     .type = FERRY_OPT_INT,
     .def = "1",
     .min = 1,
     .max = 1000000000,
     .description = "replay the file this many times (stream positions "
                    "repeat)"},
    {.name = NULL},
};

static int file_stopping(struct file_source *s)
{
    return atomic_load(&s->stopping);
}

/* Sleeps until the monotonic time `until`, in slices, returning early
 * (nonzero) when stop() was called. */
static int file_sleep_until(struct file_source *s, uint64_t until)
{
    uint64_t now;

    while (!file_stopping(s)) {
        uint64_t left;
        struct timespec ts;

        now = s->host->now_ns();
        if (now >= until)
            return 0;
        left = until - now;
        if (left > FILE_SLICE_NS)
            left = FILE_SLICE_NS;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)left;
        nanosleep(&ts, NULL);
    }
    return 1;
}

/* Waits for the message's turn under `rate`. Nonzero when stopped. */
static int file_pace(struct file_source *s)
{
    uint64_t now;

    if (s->interval_ns == 0)
        return 0;
    now = s->host->now_ns();
    /* After a stall (a full route) do not burst to catch up more than a
     * second's worth. */
    if (s->next_ns + 1000000000ull < now)
        s->next_ns = now;
    if (file_sleep_until(s, s->next_ns))
        return 1;
    s->next_ns += s->interval_ns;
    return 0;
}

static struct ferry_metric *
file_series_get(struct file_source *s, const char *entity_type, uint32_t op)
{
    const char *labels[] = {"entity_type", entity_type, "message_type",
                            ferry_op_name(op), NULL};
    struct file_series *e;
    size_t i;

    for (i = 0; i < s->nseries; i++) {
        e = &s->series[i];
        if (e->op == op && strcmp(e->entity_type, entity_type) == 0)
            return e->m;
    }
    if (s->nseries == FILE_MAX_SERIES ||
        strlen(entity_type) >= sizeof(e->entity_type)) {
        labels[1] = "other";
        return s->host->metric(s->ctx, FERRY_METRIC_COUNTER,
                               "ferry_source_messages_total",
                               "Messages received by the source", labels);
    }
    e = &s->series[s->nseries++];
    snprintf(e->entity_type, sizeof(e->entity_type), "%s", entity_type);
    e->op = op;
    e->m = s->host->metric(s->ctx, FERRY_METRIC_COUNTER,
                           "ferry_source_messages_total",
                           "Messages received by the source", labels);
    return e->m;
}

/* Logs a problem with one line, at most one log line a second; lines in
 * between are counted and reported with the next one. */
static void file_log_line(struct file_source *s, int level, uint64_t line,
                          const char *what, const char *detail)
{
    uint64_t now = s->host->now_ns();

    if (s->last_log_ns != 0 && now - s->last_log_ns < 1000000000ull) {
        s->suppressed++;
        return;
    }
    if (s->suppressed > 0)
        s->host->log(s->ctx, level,
                     "%s:%llu: %s: %s (%llu similar lines not logged)", s->path,
                     (unsigned long long)line, what, detail,
                     (unsigned long long)s->suppressed);
    else
        s->host->log(s->ctx, level, "%s:%llu: %s: %s", s->path,
                     (unsigned long long)line, what, detail);
    s->last_log_ns = now;
    s->suppressed = 0;
}

/* Emits one parsed frame. Returns nonzero when the source must stop. */
static int file_handle(struct file_source *s, struct ds_frame *f, uint64_t line)
{
    struct ferry_metric *m;
    int rc;

    switch (f->kind) {
    case DS_MESSAGE:
        break;
    case DS_INVALID: {
        const char *labels[] = {"reason", f->reason, NULL};
        m = s->host->metric(s->ctx, FERRY_METRIC_COUNTER,
                            "ferry_source_invalid_messages_total",
                            "Frames the source rejected", labels);
        if (m != NULL)
            s->host->metric_add(m, 1);
        s->invalid++;
        file_log_line(s, FERRY_LOG_WARN, line, f->reason, f->detail);
        return 0;
    }
    case DS_ERROR:
        file_log_line(s, FERRY_LOG_WARN, line, "datastream error", f->detail);
        return 0;
    default:
        if (s->host->log_enabled(s->ctx, FERRY_LOG_DEBUG))
            s->host->log(s->ctx, FERRY_LOG_DEBUG, "%s:%llu: %s", s->path,
                         (unsigned long long)line,
                         f->kind == DS_SUBSCRIBED ? "subscription confirmed"
                                                  : "ignored");
        return 0;
    }
    if (file_pace(s))
        return 1;
    for (;;) {
        rc = s->host->emit_wait(s->ctx, &f->msg, FILE_EMIT_WAIT_MS);
        if (rc != FERRY_TIMEDOUT)
            break;
        /* emit is all or nothing: offering the same message again after
         * a timeout cannot duplicate it. */
        if (file_stopping(s))
            return 1;
    }
    if (rc == FERRY_CLOSED)
        return 1;
    if (rc != FERRY_OK) {
        file_log_line(s, FERRY_LOG_WARN, line, "not emitted",
                      ferry_status_str(rc));
        return 0;
    }
    s->emitted++;
    m = file_series_get(s, f->msg.entity_type, f->msg.op);
    if (m != NULL)
        s->host->metric_add(m, 1);
    return 0;
}

/* Strips the line end; returns nonzero when the line holds only blanks. */
static int file_trim(char *line, size_t *len)
{
    size_t i;

    while (*len > 0 && (line[*len - 1] == '\n' || line[*len - 1] == '\r'))
        line[--*len] = '\0';
    for (i = 0; i < *len; i++)
        if (line[i] != ' ' && line[i] != '\t')
            return 0;
    return 1;
}

/* Reads the file line by line and calls fn for every line that is not
 * blank, until fn returns nonzero. Returns FERRY_OK, or FERRY_ERROR after
 * logging why the file could not be opened or read. */
static int file_each_line(struct file_source *s,
                          int (*fn)(struct file_source *s, const char *line,
                                    size_t len, uint64_t lineno, void *arg),
                          void *arg)
{
    char *line = NULL;
    size_t cap = 0;
    uint64_t lineno = 0;
    ssize_t n;
    FILE *fp;
    int rc = FERRY_OK;

    fp = fopen(s->path, "r");
    if (fp == NULL) {
        s->host->log(s->ctx, FERRY_LOG_ERROR, "cannot open %s: %s", s->path,
                     strerror(errno));
        return FERRY_ERROR;
    }
    while ((n = getline(&line, &cap, fp)) >= 0) {
        size_t len = (size_t)n;

        lineno++;
        if (file_trim(line, &len))
            continue;
        if (fn(s, line, len, lineno, arg))
            break;
    }
    if (ferror(fp)) {
        s->host->log(s->ctx, FERRY_LOG_ERROR, "cannot read %s: %s", s->path,
                     strerror(errno));
        rc = FERRY_ERROR;
    }
    free(line);
    fclose(fp);
    return rc;
}

/* file_each_line() callback streaming the file: parse a line, emit it.
 * arg is the run's `stopped` flag. */
static int file_emit_line(struct file_source *s, const char *line, size_t len,
                          uint64_t lineno, void *arg)
{
    int *stopped = arg;
    struct ds_frame f;

    ds_frame_parse(&f, line, len);
    *stopped = file_handle(s, &f, lineno) || file_stopping(s);
    ds_frame_release(&f);
    return *stopped;
}

/* Frames parsed before emitting (preload). Each frame is allocated on its
 * own: a parsed frame may point into itself, so it must not move. */
struct file_frames {
    struct file_frame **v;
    size_t n;
    size_t cap;
};

/* file_each_line() callback for preload: parse a line and keep it. */
static int file_keep_line(struct file_source *s, const char *line, size_t len,
                          uint64_t lineno, void *arg)
{
    struct file_frames *fr = arg;

    if (fr->n == fr->cap) {
        struct file_frame **grown;
        fr->cap = fr->cap ? fr->cap * 2 : 1024;
        grown = s->host->realloc(fr->v, fr->cap * sizeof(*grown));
        /* Out of memory ends the process, as host->alloc() does. */
        if (grown == NULL)
            abort();
        fr->v = grown;
    }
    fr->v[fr->n] = s->host->alloc(sizeof(struct file_frame));
    ds_frame_parse(&fr->v[fr->n]->f, line, len);
    fr->v[fr->n]->line = lineno;
    fr->n++;
    return file_stopping(s);
}

/* ---- callbacks ----------------------------------------------------------- */

static int file_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                     void **state)
{
    struct file_source *s = host->alloc(sizeof(*s));

    memset(s, 0, sizeof(*s));
    s->host = host;
    s->ctx = ctx;
    s->path = host->strdup(host->opt_str(ctx, "path"));
    s->rate = host->opt_double(ctx, "rate");
    s->preload = host->opt_bool(ctx, "preload");
    s->repeat = host->opt_int(ctx, "repeat");
    if (s->repeat < 1)
        s->repeat = 1;
    if (s->rate > 0)
        s->interval_ns = (uint64_t)(1e9 / s->rate);
    atomic_init(&s->stopping, 0);
    *state = s;
    return FERRY_OK;
}

static void file_fini(void *state)
{
    struct file_source *s = state;

    s->host->free(s->path);
    s->host->free(s);
}

/* The source's own thread. Returns after the last repetition, or soon
 * after stop(). */
static int file_run(void *state)
{
    struct file_source *s = state;
    struct file_frames fr = {NULL, 0, 0};
    size_t i;
    int64_t r;
    int stopped, rc = FERRY_OK;

    if (s->preload) {
        rc = file_each_line(s, file_keep_line, &fr);
        s->host->log(s->ctx, FERRY_LOG_INFO, "preloaded %zu frames from %s",
                     fr.n, s->path);
    }
    stopped = file_stopping(s);
    s->next_ns = s->host->now_ns();
    for (r = 0; r < s->repeat && rc == FERRY_OK && !stopped; r++) {
        if (!s->preload) {
            rc = file_each_line(s, file_emit_line, &stopped);
            continue;
        }
        for (i = 0; i < fr.n && !stopped; i++)
            stopped =
                file_handle(s, &fr.v[i]->f, fr.v[i]->line) || file_stopping(s);
    }
    for (i = 0; i < fr.n; i++) {
        ds_frame_release(&fr.v[i]->f);
        s->host->free(fr.v[i]);
    }
    s->host->free(fr.v);
    s->host->log(s->ctx, FERRY_LOG_INFO,
                 "%s %s: %llu messages emitted, %llu invalid frames",
                 stopped ? "stopped replaying" : "replayed", s->path,
                 (unsigned long long)s->emitted,
                 (unsigned long long)s->invalid);
    return rc;
}

/* Any thread. run() notices within FILE_SLICE_NS while pacing and within
 * FILE_EMIT_WAIT_MS while blocked on a full route. */
static void file_stop(void *state)
{
    struct file_source *s = state;

    atomic_store(&s->stopping, 1);
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_SOURCE, "file"),
    .version = "1.0.0",
    .description = "replays recorded datastream frames from a file",
    .options = file_options,
    .init = file_init,
    .fini = file_fini,
    .run = file_run,
    .stop = file_stop,
};
