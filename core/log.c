/*
 * core/log.c: the process log on stderr, as text or JSON lines.
 *
 * A line is composed in a buffer on the caller's stack and written with
 * one write(2) under a mutex, so lines from different threads never
 * interleave, even above PIPE_BUF where a pipe alone would not keep them
 * whole. Lines longer than LOG_LINE_MAX bytes end in "..." and, in JSON,
 * stay valid JSON.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Longest line written, newline included. */
#define LOG_LINE_MAX 8192
/* Longest instance prefix kept; instance names are at most 64 bytes. */
#define LOG_PREFIX_MAX 128

/* The format attribute lets -Wformat-nonliteral accept vsnprintf below. */
void log_vwrite(int level, const char *prefix, const char *fmt, va_list ap)
    FERRY_PRINTF(3, 0);

static atomic_int log_threshold = FERRY_LOG_INFO;
static atomic_int log_json;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_text_names[] = {"DEBUG", "INFO ", "WARN ",
                                             "ERROR"};
static const char *const log_json_names[] = {"debug", "info", "warn", "error"};

static int log_clamp(int level)
{
    if (level < FERRY_LOG_DEBUG)
        return FERRY_LOG_DEBUG;
    if (level > FERRY_LOG_ERROR)
        return FERRY_LOG_ERROR;
    return level;
}

/* Sets the threshold; any thread. */
void log_set_level(int level)
{
    atomic_store(&log_threshold, log_clamp(level));
}

/* Returns FERRY_LOG_* for a level name (any case; "warning" too), or -1. */
int log_level_parse(const char *name)
{
    if (!name)
        return -1;
    if (strcasecmp(name, "debug") == 0)
        return FERRY_LOG_DEBUG;
    if (strcasecmp(name, "info") == 0)
        return FERRY_LOG_INFO;
    if (strcasecmp(name, "warn") == 0 || strcasecmp(name, "warning") == 0)
        return FERRY_LOG_WARN;
    if (strcasecmp(name, "error") == 0)
        return FERRY_LOG_ERROR;
    return -1;
}

/* Selects "text" or "json"; any thread. Returns 0, or -1 (format kept). */
int log_set_format(const char *name)
{
    if (name && strcmp(name, "text") == 0) {
        atomic_store(&log_json, 0);
        return 0;
    }
    if (name && strcmp(name, "json") == 0) {
        atomic_store(&log_json, 1);
        return 0;
    }
    return -1;
}

int log_enabled(int level)
{
    return level >= atomic_load(&log_threshold);
}

/* The line being composed. */
struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

static void line_add(struct log_line *l, const char *s, size_t n)
{
    if (n > sizeof(l->buf) - l->len)
        n = sizeof(l->buf) - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_adds(struct log_line *l, const char *s)
{
    line_add(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when
 * the bytes are not one (overlong forms and surrogates included). */
static size_t log_utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        need = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

/*
 * Appends the next unit of s (one escaped character or one UTF-8
 * sequence) to out, which must hold 8 bytes. Returns the bytes of s
 * consumed and stores the bytes written in *outlen. JSON escapes quotes,
 * backslashes and control characters and replaces invalid UTF-8 with
 * U+FFFD; text escapes control characters (so a message cannot forge a
 * second line) and passes other bytes through.
 */
static size_t log_escape_unit(const char *s, size_t n, int json, char *out,
                              size_t *outlen)
{
    unsigned char c = (unsigned char)s[0];
    size_t u;

    switch (c) {
    case '\n':
        memcpy(out, "\\n", 2);
        *outlen = 2;
        return 1;
    case '\r':
        memcpy(out, "\\r", 2);
        *outlen = 2;
        return 1;
    case '\t':
        if (!json)
            break;
        memcpy(out, "\\t", 2);
        *outlen = 2;
        return 1;
    case '"':
    case '\\':
        if (!json)
            break;
        out[0] = '\\';
        out[1] = (char)c;
        *outlen = 2;
        return 1;
    default:
        break;
    }
    if ((c < 0x20 && c != '\t') || c == 0x7F) {
        *outlen = (size_t)snprintf(out, 8, json ? "\\u%04x" : "\\x%02x", c);
        return 1;
    }
    if (!json || c < 0x80) {
        out[0] = (char)c;
        *outlen = 1;
        return 1;
    }
    u = log_utf8_len((const unsigned char *)s, n);
    if (u == 0) {
        memcpy(out, "\\ufffd", 6);
        *outlen = 6;
        return 1;
    }
    memcpy(out, s, u);
    *outlen = u;
    return u;
}

/*
 * Appends s escaped, leaving room for tail bytes. When s does not fit,
 * cuts it at a unit boundary and appends "..." instead.
 */
static void line_add_escaped(struct log_line *l, const char *s, size_t n,
                             int json, size_t tail)
{
    size_t limit = sizeof(l->buf) - tail;
    size_t safe = l->len; /* last boundary with room for "..." */
    size_t i = 0;

    while (i < n) {
        char unit[8];
        size_t ulen, used;

        used = log_escape_unit(s + i, n - i, json, unit, &ulen);
        if (l->len + ulen > limit) {
            l->len = safe;
            line_add(l, "...", 3);
            return;
        }
        memcpy(l->buf + l->len, unit, ulen);
        l->len += ulen;
        i += used;
        if (l->len + 3 <= limit)
            safe = l->len;
    }
}

static void log_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void log_emit(const struct log_line *l)
{
    size_t off = 0;

    pthread_mutex_lock(&log_lock);
    while (off < l->len) {
        ssize_t w = write(STDERR_FILENO, l->buf + off, l->len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&log_lock);
}

/*
 * Writes one line when level passes the threshold. prefix is the
 * instance ("sink.cache") or NULL. Any thread; errno is preserved.
 */
void log_vwrite(int level, const char *prefix, const char *fmt, va_list ap)
{
    struct log_line line;
    char msg[LOG_LINE_MAX];
    char ts[40];
    int json, n, saved = errno;
    size_t mlen, plen = 0;

    if (!log_enabled(level))
        return;
    level = log_clamp(level);
    json = atomic_load(&log_json);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    mlen = n < 0 ? 0 : (size_t)n;
    if (mlen >= sizeof(msg))
        mlen = sizeof(msg) - 1;
    if (prefix) {
        plen = strlen(prefix);
        if (plen > LOG_PREFIX_MAX)
            plen = LOG_PREFIX_MAX;
    }
    log_timestamp(ts, sizeof(ts));
    line.len = 0;
    if (json) {
        line_adds(&line, "{\"ts\":\"");
        line_adds(&line, ts);
        line_adds(&line, "\",\"level\":\"");
        line_adds(&line, log_json_names[level]);
        line_adds(&line, "\",");
        if (prefix) {
            line_adds(&line, "\"instance\":\"");
            line_add_escaped(&line, prefix, plen, 1, 0);
            line_adds(&line, "\",");
        }
        line_adds(&line, "\"msg\":\"");
        line_add_escaped(&line, msg, mlen, 1, 3);
        line_add(&line, "\"}\n", 3);
    } else {
        line_adds(&line, ts);
        line_adds(&line, " ");
        line_adds(&line, log_text_names[level]);
        line_adds(&line, " ");
        if (prefix) {
            line_adds(&line, "[");
            line_add_escaped(&line, prefix, plen, 0, 0);
            line_adds(&line, "] ");
        }
        line_add_escaped(&line, msg, mlen, 0, 1);
        line_add(&line, "\n", 1);
    }
    log_emit(&line);
    errno = saved;
}

void log_write(int level, const char *prefix, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, prefix, fmt, ap);
    va_end(ap);
}
