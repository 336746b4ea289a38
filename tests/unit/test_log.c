/*
 * tests/unit/test_log.c: core/log.c.
 *
 * Lines are captured by pointing fd 2 at a temporary file (or, for the
 * concurrency test, at a pipe) for the duration of the calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

#define LINE_MAX_BYTES 8192

/* ---- capturing stderr --------------------------------------------------- */

struct capture {
    int saved;
    FILE *tmp;
};

static void capture_start(struct capture *c)
{
    fflush(stderr);
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), 2) == 2);
}

/* Restores stderr and returns everything written meanwhile (malloc'd). */
static char *capture_end(struct capture *c)
{
    long n;
    char *buf;

    assert_true(dup2(c->saved, 2) == 2);
    close(c->saved);
    n = lseek(fileno(c->tmp), 0, SEEK_END);
    assert_true(n >= 0);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fileno(c->tmp), buf, (size_t)n, 0), n);
    buf[n] = '\0';
    fclose(c->tmp);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int reset(void **state)
{
    (void)state;
    log_set_level(FERRY_LOG_INFO);
    log_set_format("text");
    return 0;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ" and that it is within a minute of
 * now. */
static void check_timestamp(const char *ts)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    struct tm tm;
    time_t t;

    for (size_t i = 0; i < sizeof(pattern) - 1; i++) {
        if (pattern[i] == 'd')
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        else
            assert_int_equal(ts[i], pattern[i]);
    }
    memset(&tm, 0, sizeof(tm));
    assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm));
    t = timegm(&tm);
    assert_true(llabs((long long)(t - time(NULL))) < 60);
}

/* ---- text -----------------------------------------------------------------
 */

static void test_text_line(void **state)
{
    struct capture c;
    char *out;

    (void)state;
    capture_start(&c);
    log_write(FERRY_LOG_INFO, "sink.cache", "connected to %s:%d", "127.0.0.1",
              6379);
    out = capture_end(&c);
    assert_true(strlen(out) > 24);
    check_timestamp(out);
    assert_string_equal(out + 24,
                        " INFO  [sink.cache] connected to 127.0.0.1:6379\n");
    free(out);
}

static void test_text_levels_and_no_prefix(void **state)
{
    struct capture c;
    char *out;
    const char *p;

    (void)state;
    log_set_level(FERRY_LOG_DEBUG);
    capture_start(&c);
    log_debug("d %d", 1);
    log_info("i");
    log_warn("w");
    log_error("e");
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 4);
    p = out;
    assert_memory_equal(p + 24, " DEBUG d 1\n", 11);
    p = strchr(p, '\n') + 1;
    assert_memory_equal(p + 24, " INFO  i\n", 9);
    p = strchr(p, '\n') + 1;
    assert_memory_equal(p + 24, " WARN  w\n", 9);
    p = strchr(p, '\n') + 1;
    assert_memory_equal(p + 24, " ERROR e\n", 9);
    free(out);
}

static void test_level_filtering(void **state)
{
    struct capture c;
    char *out;

    (void)state;
    /* Default threshold: info. */
    assert_false(log_enabled(FERRY_LOG_DEBUG));
    assert_true(log_enabled(FERRY_LOG_INFO));
    capture_start(&c);
    log_debug("hidden");
    log_info("shown-1");
    log_set_level(FERRY_LOG_WARN);
    log_info("hidden");
    log_warn("shown-2");
    log_set_level(FERRY_LOG_ERROR);
    log_write(FERRY_LOG_WARN, "sink.x", "hidden");
    log_write(FERRY_LOG_ERROR, "sink.x", "shown-3");
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 3);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "shown-1"));
    assert_non_null(strstr(out, "shown-2"));
    assert_non_null(strstr(out, "shown-3"));
    assert_false(log_enabled(FERRY_LOG_WARN));
    assert_true(log_enabled(FERRY_LOG_ERROR));
    free(out);
}

static void test_level_and_format_names(void **state)
{
    struct capture c;
    char *out;

    (void)state;
    assert_int_equal(log_level_parse("debug"), FERRY_LOG_DEBUG);
    assert_int_equal(log_level_parse("info"), FERRY_LOG_INFO);
    assert_int_equal(log_level_parse("warn"), FERRY_LOG_WARN);
    assert_int_equal(log_level_parse("WARNING"), FERRY_LOG_WARN);
    assert_int_equal(log_level_parse("Error"), FERRY_LOG_ERROR);
    assert_int_equal(log_level_parse("verbose"), -1);
    assert_int_equal(log_level_parse(""), -1);
    assert_int_equal(log_level_parse(NULL), -1);
    assert_int_equal(log_set_format("json"), 0);
    assert_int_equal(log_set_format("xml"), -1);
    assert_int_equal(log_set_format(NULL), -1);
    /* A refused name keeps the format: still JSON. */
    capture_start(&c);
    log_info("x");
    out = capture_end(&c);
    assert_int_equal(out[0], '{');
    free(out);
    assert_int_equal(log_set_format("text"), 0);
}

static void test_text_escapes_control_characters(void **state)
{
    struct capture c;
    char *out;

    (void)state;
    capture_start(&c);
    log_write(FERRY_LOG_WARN, NULL, "a\nfake ERROR line\r\x01\tb");
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 1);
    assert_string_equal(out + 24, " WARN  a\\nfake ERROR line\\r\\x01\tb\n");
    free(out);
}

static void test_text_truncates_long_lines(void **state)
{
    struct capture c;
    char *big = malloc(20000);
    char *out;
    size_t n;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', 19999);
    big[19999] = '\0';
    capture_start(&c);
    log_write(FERRY_LOG_INFO, "sink.cache", "%s", big);
    out = capture_end(&c);
    n = strlen(out);
    assert_int_equal(n, LINE_MAX_BYTES);
    assert_int_equal(count_lines(out), 1);
    assert_memory_equal(out + n - 4, "...\n", 4);
    free(out);
    free(big);
}

static void test_text_line_of_exactly_max_is_kept(void **state)
{
    /* Header: 24 (time) + " INFO  " (7) = 31, plus the newline: a
     * message of 8192 - 32 bytes fills the line exactly. */
    size_t mlen = LINE_MAX_BYTES - 32;
    char *msg = malloc(mlen + 2);
    struct capture c;
    char *out;

    (void)state;
    assert_non_null(msg);
    memset(msg, 'y', mlen);
    msg[mlen] = '\0';
    capture_start(&c);
    log_info("%s", msg);
    out = capture_end(&c);
    assert_int_equal(strlen(out), LINE_MAX_BYTES);
    assert_null(strstr(out, "..."));
    free(out);
    /* One byte more and it is cut. */
    msg[mlen] = 'y';
    msg[mlen + 1] = '\0';
    capture_start(&c);
    log_info("%s", msg);
    out = capture_end(&c);
    assert_int_equal(strlen(out), LINE_MAX_BYTES);
    assert_memory_equal(out + LINE_MAX_BYTES - 4, "...\n", 4);
    free(out);
    free(msg);
}

/* ---- JSON -----------------------------------------------------------------
 */

/* Parses one JSON line, which must end in "\n" and be the whole output. */
static json_t *parse_line(const char *out)
{
    json_error_t e;
    size_t n = strlen(out);
    json_t *j;

    assert_true(n > 0 && out[n - 1] == '\n');
    assert_int_equal(count_lines(out), 1);
    j = json_loadb(out, n - 1, 0, &e);
    if (!j)
        fail_msg("invalid JSON (%s): %s", e.text, out);
    return j;
}

static void test_json_line(void **state)
{
    struct capture c;
    char *out;
    json_t *j;

    (void)state;
    assert_int_equal(log_set_format("json"), 0);
    capture_start(&c);
    log_write(FERRY_LOG_WARN, "sink.cache", "lag %d ms", 250);
    out = capture_end(&c);
    j = parse_line(out);
    assert_int_equal(json_object_size(j), 4);
    check_timestamp(json_string_value(json_object_get(j, "ts")));
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "instance")),
                        "sink.cache");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "lag 250 ms");
    /* Field order as documented. */
    assert_memory_equal(out, "{\"ts\":\"", 7);
    assert_non_null(strstr(out, "\",\"level\":\"warn\",\"instance\":"
                                "\"sink.cache\",\"msg\":\"lag 250 ms\"}\n"));
    json_decref(j);
    free(out);

    capture_start(&c);
    log_error("no instance");
    out = capture_end(&c);
    j = parse_line(out);
    assert_null(json_object_get(j, "instance"));
    assert_string_equal(json_string_value(json_object_get(j, "level")),
                        "error");
    json_decref(j);
    free(out);
}

static void test_json_escaping(void **state)
{
    struct capture c;
    char *out;
    json_t *j;

    (void)state;
    assert_int_equal(log_set_format("json"), 0);
    capture_start(&c);
    log_write(FERRY_LOG_INFO, "source.\"ws\"",
              "say \"hi\" \\ back\nline\t\x01\x1f caf\xc3\xa9 "
              "bad:\xff\xc3( over:\xc0\xaf sur:\xed\xa0\x80 \xf0\x9f\x98\x80");
    out = capture_end(&c);
    j = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "instance")),
                        "source.\"ws\"");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "say \"hi\" \\ back\nline\t\x01\x1f caf\xc3\xa9 "
                        "bad:\xef\xbf\xbd\xef\xbf\xbd( "
                        "over:\xef\xbf\xbd\xef\xbf\xbd "
                        "sur:\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                        "\xf0\x9f\x98\x80");
    json_decref(j);
    free(out);
}

static void test_json_truncation_stays_valid(void **state)
{
    /* Quotes escape to two bytes and U+00E9 is two bytes: a cut in the
     * middle of either would break the JSON. */
    static const char *const fill[] = {"\"", "\xc3\xa9", "x", "\x01"};
    char *big = malloc(30000);
    struct capture c;
    char *out;
    json_t *j;
    const char *msg;

    (void)state;
    assert_non_null(big);
    assert_int_equal(log_set_format("json"), 0);
    for (size_t f = 0; f < sizeof(fill) / sizeof(fill[0]); f++) {
        for (size_t shift = 0; shift < 6; shift++) {
            size_t len = 0, fl = strlen(fill[f]);

            memset(big, 'a', shift);
            len = shift;
            while (len + fl < 12000) {
                memcpy(big + len, fill[f], fl);
                len += fl;
            }
            big[len] = '\0';
            capture_start(&c);
            log_write(FERRY_LOG_INFO, "sink.cache", "%s", big);
            out = capture_end(&c);
            assert_true(strlen(out) <= LINE_MAX_BYTES);
            assert_true(strlen(out) > LINE_MAX_BYTES - 8);
            j = parse_line(out);
            msg = json_string_value(json_object_get(j, "msg"));
            assert_non_null(msg);
            assert_int_equal(strcmp(msg + strlen(msg) - 3, "..."), 0);
            json_decref(j);
            free(out);
        }
    }
    free(big);
}

/* ---- threads ---------------------------------------------------------- */

#define WRITERS 4
#define LINES 50
#define LINE_BODY 6000 /* above PIPE_BUF: a pipe alone may split it */

struct reader {
    int fd;
    char *buf;
    size_t len;
    size_t cap;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    ssize_t n;

    for (;;) {
        if (r->cap - r->len < 65536) {
            r->cap = r->cap * 2 + 65536;
            r->buf = realloc(r->buf, r->cap);
            if (!r->buf)
                return NULL;
        }
        n = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    return NULL;
}

static void *writer_main(void *arg)
{
    char body[LINE_BODY + 1];

    memset(body, (int)(intptr_t)arg, LINE_BODY);
    body[LINE_BODY] = '\0';
    for (int i = 0; i < LINES; i++)
        log_write(FERRY_LOG_INFO, "sink.t", "%s", body);
    return NULL;
}

static void test_lines_from_threads_never_interleave(void **state)
{
    pthread_t writers[WRITERS], rt;
    struct reader r = {0};
    int fds[2], saved, lines = 0;
    char *p, *end;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    r.fd = fds[0];
    assert_int_equal(pthread_create(&rt, NULL, reader_main, &r), 0);
    fflush(stderr);
    saved = dup(2);
    assert_true(dup2(fds[1], 2) == 2);
    close(fds[1]);
    for (intptr_t i = 0; i < WRITERS; i++)
        assert_int_equal(
            pthread_create(&writers[i], NULL, writer_main, (void *)('A' + i)),
            0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(writers[i], NULL);
    assert_true(dup2(saved, 2) == 2); /* closes the last write end */
    close(saved);
    pthread_join(rt, NULL);
    close(fds[0]);
    assert_non_null(r.buf);

    /* Every line: timestamp, level, prefix, then LINE_BODY copies of one
     * letter. */
    for (p = r.buf, end = r.buf + r.len; p < end;
         p += 24 + 16 + LINE_BODY + 1) {
        const char *body = p + 24 + 16;

        assert_true(end - p >= 24 + 16 + LINE_BODY + 1);
        assert_memory_equal(p + 24, " INFO  [sink.t] ", 16);
        for (int k = 1; k < LINE_BODY; k++)
            assert_int_equal(body[k], body[0]);
        assert_int_equal(body[LINE_BODY], '\n');
        lines++;
    }
    assert_int_equal(lines, WRITERS * LINES);
    free(r.buf);
}

static void test_errno_preserved(void **state)
{
    struct capture c;
    char *out;

    (void)state;
    capture_start(&c);
    errno = ENOENT;
    log_info("failed: %m");
    assert_int_equal(errno, ENOENT);
    out = capture_end(&c);
    assert_non_null(strstr(out, "failed: No such file or directory\n"));
    free(out);
}

#define T(f) cmocka_unit_test_setup_teardown(f, reset, reset)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_text_line),
        T(test_text_levels_and_no_prefix),
        T(test_level_filtering),
        T(test_level_and_format_names),
        T(test_text_escapes_control_characters),
        T(test_text_truncates_long_lines),
        T(test_text_line_of_exactly_max_is_kept),
        T(test_json_line),
        T(test_json_escaping),
        T(test_json_truncation_stays_valid),
        T(test_lines_from_threads_never_interleave),
        T(test_errno_preserved),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
