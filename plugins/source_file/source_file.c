/*
 * plugins/source_file: replays a file, one message a line, in one of two
 * formats:
 *  - `datastream` (default): recorded Schematic datastream frames, through
 *    the same parser as source_websocket (schematic/datastream.h), with
 *    the frames' own stream positions;
 *  - `jsonl`: any JSON object a line (jsonl.h: which members become the
 *    entity id, type and operation, and what the payload is).
 *
 * The source is finite: run() returns FERRY_OK after the last line (of the
 * last repetition), and the core treats the source as finished: the
 * pipeline keeps running and drains what it emitted; nothing more comes
 * from this source. Blank lines are skipped. Invalid lines are counted in
 * ferry_source_invalid_messages_total{reason} and logged with their line
 * number (never their contents), at most one log line a second.
 *
 * jsonl positions. Line N of repetition R (both counted from the file's
 * start, R from 0, blank lines included) has the stream position
 * {ms = R, seq = N}, written "R-N": positions grow strictly through every
 * repetition, which is what the sinks' replay cursors need (they store a
 * position only when it is newer, comparing (ms, seq) as numbers). At
 * start, when the host has a committed position, the lines up to and
 * including it are skipped (not parsed, not counted) and the number
 * skipped is logged: a restarted ferry resumes after the last line every
 * route applied. The position is a line number, not a byte offset or a
 * time: resuming is right only while the lines already replayed stay as
 * they were (appending is fine), and the replication lag gauge, which
 * reads ms as a time, means nothing for this source.
 *
 * `path` is taken as written (relative to the working directory): the
 * host table does not tell a plugin where its configuration file is.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/ferry.h>

#include "schematic/datastream.h"

#include "jsonl.h"

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

enum { FILE_FORMAT_DATASTREAM, FILE_FORMAT_JSONL };

struct file_source {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    char *path;
    double rate;
    int preload;
    int64_t repeat;
    int format; /* FILE_FORMAT_* */
    /* jsonl: the member names (owned). */
    struct file_jsonl_fields fields;
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
    /* jsonl: the repetition being replayed (a position's ms), the
     * committed position lines are skipped up to, and how many were. */
    uint64_t pass;
    struct ferry_pos resume;
    uint64_t skipped;
    int resumed; /* the skipping is over (and logged) */
    /* jsonl streaming: the line being handled. */
    struct file_jsonl jl;
};

/* A parsed line kept for preload. */
struct file_frame {
    union {
        struct ds_frame ds;   /* FILE_FORMAT_DATASTREAM */
        struct file_jsonl jl; /* FILE_FORMAT_JSONL */
    } u;
    uint64_t line;
};

static const char *const file_formats[] = {"datastream", "jsonl", NULL};

static const struct ferry_option file_options[] = {
    {.name = "path",
     .type = FERRY_OPT_STRING,
     .flags = FERRY_OPT_REQUIRED | FERRY_OPT_PATH,
     .description = "the file to replay, one message a line (relative to "
                    "the configuration file)"},
    {.name = "format",
     .type = FERRY_OPT_ENUM,
     .def = "datastream",
     .enum_values = file_formats,
     .description = "datastream: recorded datastream frames; jsonl: any "
                    "JSON object a line"},
    {.name = "id_field",
     .type = FERRY_OPT_STRING,
     .def = "id",
     .description = "jsonl: the member holding the entity id (a string or "
                    "an integer)"},
    {.name = "type_field",
     .type = FERRY_OPT_STRING,
     .def = "type",
     .description = "jsonl: the member holding the entity type"},
    {.name = "op_field",
     .type = FERRY_OPT_STRING,
     .def = "op",
     .description = "jsonl: the member holding the operation, set "
                    "(default) or delete"},
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
     .description = "replay the file this many times (datastream: the "
                    "positions repeat; jsonl: they keep growing)"},
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
                               "Messages received by the source, by entity "
                               "and message type",
                               labels);
    }
    e = &s->series[s->nseries++];
    snprintf(e->entity_type, sizeof(e->entity_type), "%s", entity_type);
    e->op = op;
    e->m = s->host->metric(s->ctx, FERRY_METRIC_COUNTER,
                           "ferry_source_messages_total",
                           "Messages received by the source, by entity "
                           "and message type",
                           labels);
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

/* Counts and logs a line the source refused. */
static void file_invalid(struct file_source *s, uint64_t line,
                         const char *reason, const char *detail)
{
    const char *labels[] = {"reason", reason, NULL};
    struct ferry_metric *m;

    m = s->host->metric(s->ctx, FERRY_METRIC_COUNTER,
                        "ferry_source_invalid_messages_total",
                        "Messages the source rejected, by reason", labels);
    if (m != NULL)
        s->host->metric_add(m, 1);
    s->invalid++;
    file_log_line(s, FERRY_LOG_WARN, line, reason, detail);
}

/* Emits one message, paced by `rate`, waiting while the routes are full.
 * Returns nonzero when the source must stop. */
static int file_emit(struct file_source *s, const struct ferry_msg *msg,
                     uint64_t line)
{
    struct ferry_metric *m;
    int rc;

    if (file_pace(s))
        return 1;
    for (;;) {
        rc = s->host->emit_wait(s->ctx, msg, FILE_EMIT_WAIT_MS);
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
    m = file_series_get(s, msg->entity_type, msg->op);
    if (m != NULL)
        s->host->metric_add(m, 1);
    return 0;
}

/* Emits one parsed datastream frame. Returns nonzero when the source must
 * stop. */
static int file_handle_ds(struct file_source *s, struct ds_frame *f,
                          uint64_t line)
{
    switch (f->kind) {
    case DS_MESSAGE:
        return file_emit(s, &f->msg, line);
    case DS_INVALID:
        file_invalid(s, line, f->reason, f->detail);
        return 0;
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
}

/* Emits one parsed jsonl line at its position in the current repetition.
 * Returns nonzero when the source must stop. */
static int file_handle_jsonl(struct file_source *s, struct file_jsonl *l,
                             uint64_t line)
{
    if (l->reason != NULL) {
        file_invalid(s, line, l->reason, l->detail);
        return 0;
    }
    l->msg.pos.ms = s->pass;
    l->msg.pos.seq = line;
    l->msg.pos.set = 1;
    return file_emit(s, &l->msg, line);
}

/* Logs, once, how many lines resuming skipped. */
static void file_resume_end(struct file_source *s)
{
    char pos[FERRY_POS_STRLEN];

    if (!s->resume.set || s->resumed)
        return;
    s->resumed = 1;
    s->host->log(s->ctx, FERRY_LOG_INFO,
                 "resumed from the committed position %s: %llu lines "
                 "skipped",
                 ferry_pos_format(&s->resume, pos, sizeof(pos)),
                 (unsigned long long)s->skipped);
}

/* jsonl: nonzero (and counted) when the line of the current repetition is
 * at or before the committed position, so it was applied by an earlier
 * run. */
static int file_resumed_past(struct file_source *s, uint64_t line)
{
    struct ferry_pos pos = {s->pass, line, 1};

    if (s->format != FILE_FORMAT_JSONL || !s->resume.set || s->resumed)
        return 0;
    if (ferry_pos_cmp(&pos, &s->resume) <= 0) {
        s->skipped++;
        return 1;
    }
    file_resume_end(s);
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

    if (file_resumed_past(s, lineno))
        return 0;
    if (s->format == FILE_FORMAT_JSONL) {
        file_jsonl_parse(&s->jl, &s->fields, line, len);
        *stopped = file_handle_jsonl(s, &s->jl, lineno) || file_stopping(s);
        return *stopped;
    }
    ds_frame_parse(&f, line, len);
    *stopped = file_handle_ds(s, &f, lineno) || file_stopping(s);
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
    if (s->format == FILE_FORMAT_JSONL) {
        file_jsonl_init(&fr->v[fr->n]->u.jl);
        file_jsonl_parse(&fr->v[fr->n]->u.jl, &s->fields, line, len);
    } else {
        ds_frame_parse(&fr->v[fr->n]->u.ds, line, len);
    }
    fr->v[fr->n]->line = lineno;
    fr->n++;
    return file_stopping(s);
}

/* ---- callbacks ----------------------------------------------------------- */

/* Reads the jsonl member names; FERRY_OK, or FERRY_EINVAL after logging
 * an empty one. With format = datastream they are unused: say so when set. */
static int file_init_fields(struct file_source *s)
{
    static const char *const keys[] = {"id_field", "type_field", "op_field"};
    const char **dst[] = {&s->fields.id, &s->fields.type, &s->fields.op};
    const struct ferry_host *host = s->host;
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = host->opt_str(s->ctx, keys[i]);

        if (s->format != FILE_FORMAT_JSONL && host->opt_is_set(s->ctx, keys[i]))
            host->log(s->ctx, FERRY_LOG_WARN,
                      "%s has no effect with format = datastream", keys[i]);
        if (v == NULL || v[0] == '\0') {
            host->log(s->ctx, FERRY_LOG_ERROR, "%s must not be empty", keys[i]);
            return FERRY_EINVAL;
        }
        *dst[i] = host->strdup(v);
    }
    return FERRY_OK;
}

static void file_fini(void *state)
{
    struct file_source *s = state;

    file_jsonl_release(&s->jl);
    s->host->free((char *)s->fields.id);
    s->host->free((char *)s->fields.type);
    s->host->free((char *)s->fields.op);
    s->host->free(s->path);
    s->host->free(s);
}

static int file_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                     void **state)
{
    struct file_source *s = host->alloc(sizeof(*s));
    const char *format = host->opt_str(ctx, "format");

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
    s->format = format != NULL && strcmp(format, "jsonl") == 0
                    ? FILE_FORMAT_JSONL
                    : FILE_FORMAT_DATASTREAM;
    file_jsonl_init(&s->jl);
    atomic_init(&s->stopping, 0);
    if (file_init_fields(s) != FERRY_OK) {
        file_fini(s);
        return FERRY_EINVAL;
    }
    *state = s;
    return FERRY_OK;
}

/* jsonl: takes the committed position to resume after, if any. */
static void file_resume_begin(struct file_source *s)
{
    char pos[FERRY_POS_STRLEN];

    if (s->format != FILE_FORMAT_JSONL)
        return;
    s->host->committed(s->ctx, &s->resume);
    if (!s->resume.set)
        return;
    s->host->log(s->ctx, FERRY_LOG_INFO,
                 "committed position %s: skipping the lines of %s up to it",
                 ferry_pos_format(&s->resume, pos, sizeof(pos)), s->path);
    if (s->resume.ms >= (uint64_t)s->repeat)
        s->host->log(s->ctx, FERRY_LOG_WARN,
                     "committed position %s is past the last repetition "
                     "(repeat = %lld): nothing is replayed",
                     pos, (long long)s->repeat);
}

/* Replays the preloaded lines once (the repetition s->pass). Returns
 * nonzero when the source must stop. */
static int file_replay_preloaded(struct file_source *s,
                                 const struct file_frames *fr)
{
    size_t i;
    int stopped = 0;

    for (i = 0; i < fr->n && !stopped; i++) {
        struct file_frame *f = fr->v[i];

        if (file_resumed_past(s, f->line))
            continue;
        if (s->format == FILE_FORMAT_JSONL)
            stopped = file_handle_jsonl(s, &f->u.jl, f->line);
        else
            stopped = file_handle_ds(s, &f->u.ds, f->line);
        stopped = stopped || file_stopping(s);
    }
    return stopped;
}

static void file_frames_release(struct file_source *s, struct file_frames *fr)
{
    size_t i;

    for (i = 0; i < fr->n; i++) {
        if (s->format == FILE_FORMAT_JSONL)
            file_jsonl_release(&fr->v[i]->u.jl);
        else
            ds_frame_release(&fr->v[i]->u.ds);
        s->host->free(fr->v[i]);
    }
    s->host->free(fr->v);
}

/* The source's own thread. Returns after the last repetition, or soon
 * after stop(). */
static int file_run(void *state)
{
    struct file_source *s = state;
    struct file_frames fr = {NULL, 0, 0};
    const char *noun = s->format == FILE_FORMAT_JSONL ? "lines" : "frames";
    int stopped, rc = FERRY_OK;

    file_resume_begin(s);
    if (s->preload) {
        rc = file_each_line(s, file_keep_line, &fr);
        s->host->log(s->ctx, FERRY_LOG_INFO, "preloaded %zu %s from %s", fr.n,
                     noun, s->path);
    }
    stopped = file_stopping(s);
    s->next_ns = s->host->now_ns();
    for (s->pass = 0;
         s->pass < (uint64_t)s->repeat && rc == FERRY_OK && !stopped;
         s->pass++) {
        if (s->preload)
            stopped = file_replay_preloaded(s, &fr);
        else
            rc = file_each_line(s, file_emit_line, &stopped);
    }
    file_frames_release(s, &fr);
    file_resume_end(s);
    s->host->log(
        s->ctx, FERRY_LOG_INFO, "%s %s: %llu messages emitted, %llu invalid %s",
        stopped ? "stopped replaying" : "replayed", s->path,
        (unsigned long long)s->emitted, (unsigned long long)s->invalid, noun);
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
    .description = "replays a file: recorded datastream frames or JSON "
                   "lines",
    .options = file_options,
    .init = file_init,
    .fini = file_fini,
    .run = file_run,
    .stop = file_stop,
};
