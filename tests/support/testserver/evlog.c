/*
 * tests/support/testserver/evlog.c: the JSONL event log (--log). One JSON
 * object per line, flushed at once so tests can read it while the server
 * runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "testserver.h"

static FILE *evlog_fp;

int evlog_open(const char *path)
{
    if (!path)
        return 0;
    evlog_fp = fopen(path, "a");
    if (!evlog_fp) {
        perror(path);
        return -1;
    }
    return 0;
}

void evlog_close(void)
{
    if (evlog_fp)
        fclose(evlog_fp);
    evlog_fp = NULL;
}

long long evlog_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void evlog_write(json_t *obj)
{
    char *s;

    if (!evlog_fp || !obj) {
        json_decref(obj);
        return;
    }
    json_object_set_new(obj, "t_ms", json_integer(evlog_now_ms()));
    s = json_dumps(obj, JSON_COMPACT);
    if (s) {
        fputs(s, evlog_fp);
        fputc('\n', evlog_fp);
        fflush(evlog_fp);
        free(s);
    }
    json_decref(obj);
}
