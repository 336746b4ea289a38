/*
 * core/log.h: the process log (stderr), text or JSON lines.
 *
 * Text: 2026-11-28T10:00:00.123Z INFO  [sink.cache] connected to 127.0.0.1:6379
 * JSON: {"ts":"...","level":"info","instance":"sink.cache","msg":"..."}
 *
 * Thread-safe: every line is written with one write(2).
 */
#ifndef FERRY_CORE_LOG_H
#define FERRY_CORE_LOG_H

#include <stdarg.h>

#include "ferry/host.h"

/* Sets the threshold (FERRY_LOG_*). Default FERRY_LOG_INFO. */
void log_set_level(int level);
/* Parses "debug", "info", "warn", "error". Returns the level or -1. */
int log_level_parse(const char *name);
/* "text" (default) or "json". Returns 0, or -1 for an unknown name. */
int log_set_format(const char *name);
/* Nonzero when lines at level are written. */
int log_enabled(int level);
/* Writes one line. prefix is the instance ("sink.cache") or NULL. */
void log_write(int level, const char *prefix, const char *fmt, ...)
    FERRY_PRINTF(3, 4);
void log_vwrite(int level, const char *prefix, const char *fmt, va_list ap);

#define log_error(...) log_write(FERRY_LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_write(FERRY_LOG_WARN, NULL, __VA_ARGS__)
#define log_info(...) log_write(FERRY_LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_write(FERRY_LOG_DEBUG, NULL, __VA_ARGS__)

#endif
