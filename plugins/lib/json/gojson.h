/*
 * plugins/lib/json/gojson.h: a JSON writer that produces the bytes Go's
 * encoding/json (Go >= 1.22, the default HTML-safe encoder) produces:
 *
 *   - strings: '"' and '\\' escaped with a backslash; \b \f \n \r \t as
 *     such; other bytes below 0x20 and '<' '>' '&' as \u00XX (lower-case
 *     hex); U+2028 and U+2029 as \u2028 / \u2029; an invalid UTF-8 byte as
 *     \ufffd; everything else (DEL and all valid non-ASCII) as is;
 *   - float64: strconv.AppendFloat(f, 'f' or 'e', -1, 64), i.e. the
 *     shortest decimal that reads back as the same double, in 'e' form
 *     when |f| < 1e-6 or |f| >= 1e21, with "e-07" cleaned to "e-7";
 *   - compact: no whitespace anywhere.
 *
 * Pure functions over a caller-owned buffer: thread-safe.
 */
#ifndef FERRY_COMMON_GOJSON_H
#define FERRY_COMMON_GOJSON_H

#include <stddef.h>
#include <stdint.h>

struct gj_buf {
    char *p;
    size_t len;
    size_t cap;
};

/* Longest float64 text: "-" + 17 digits + "." + "e-324" and change. */
#define GJ_FLOAT_MAX 32

void gj_init(struct gj_buf *b);
/* Frees the buffer's memory. */
void gj_release(struct gj_buf *b);
/* Returns the NUL-terminated text (malloc'd; the caller frees it) and
 * leaves b empty. */
char *gj_take(struct gj_buf *b);

/* Appenders. They abort on out-of-memory. */
void gj_raw(struct gj_buf *b, const char *s, size_t n);
void gj_char(struct gj_buf *b, char c);
/* A quoted, escaped string of n bytes. */
void gj_str(struct gj_buf *b, const char *s, size_t n);
void gj_int(struct gj_buf *b, long long v);
/* v must be finite. */
void gj_float(struct gj_buf *b, double v);

/* Formats a finite float64 as Go does into out (>= GJ_FLOAT_MAX bytes);
 * returns the length. */
size_t gj_format_float(double v, char *out);

#endif
