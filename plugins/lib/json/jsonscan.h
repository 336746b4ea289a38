/*
 * plugins/lib/json/jsonscan.h: the JSON grammar of the plugin libraries, once. A
 * pull scanner: js_next() hands out a document's tokens in order (object
 * and array brackets, scalars; a member's name comes with its value), each
 * checked as it is read, and the caller keeps what it needs: datastream.c
 * a few envelope fields and the raw span of `data`, jv.c an arena tree.
 *
 * It accepts exactly what jansson's json_loadb(buf, len, JSON_DECODE_ANY)
 * accepts, up to the nesting limit the caller chooses: strict UTF-8 (RFC
 * 3629), no "\u0000", paired surrogate escapes only, integers within 64
 * bits, reals that do not overflow a double, any value at the root.
 *
 * Errors: the first one wins and stops the scan (js_next returns JS_ERROR
 * from then on). When the document is not well-formed UTF-8, the error is
 * always "invalid UTF-8" at its first bad byte (utf8 set), whatever else
 * is wrong earlier: UTF-8 is checked inside strings as they are scanned, a
 * byte >= 0x80 anywhere else is a grammar error, and every failure then
 * checks the whole buffer. So a document that scans to its end is
 * well-formed UTF-8 without a separate pass.
 *
 * A scanner belongs to one thread at a time. It allocates nothing (but a
 * copy of a real number longer than 63 bytes, to check it for overflow);
 * it aborts if even that fails.
 */
#ifndef FERRY_COMMON_JSONSCAN_H
#define FERRY_COMMON_JSONSCAN_H

#include <stddef.h>

/* The highest nesting limit a scanner takes. */
#define JS_DEPTH_LIMIT 256

enum js_type {
    JS_ERROR = -1, /* sc->err, err_at, utf8, too_deep say what */
    JS_END = 0,    /* the root value is complete (js_finish next) */
    JS_OBJ_BEGIN,
    JS_OBJ_END,
    JS_ARR_BEGIN,
    JS_ARR_END,
    JS_STR,
    JS_INT,
    JS_REAL,
    JS_TRUE,
    JS_FALSE,
    JS_NULL
};

/* A scanned string: the raw bytes between the quotes (escapes not
 * decoded: js_decode). */
struct js_str {
    const char *s;
    size_t len;
    int esc; /* s holds a backslash escape */
};

struct js_tok {
    /* A value (a scalar or a BEGIN) inside an object: its member's name;
     * key.s is NULL for anything else. */
    struct js_str key;
    /* JS_STR: the string; any other token: its text (a bracket: 1 byte),
     * esc 0. */
    struct js_str text;
    long long i; /* JS_INT: the value */
};

struct js_scan {
    const char *p; /* the next byte to read */
    const char *end;
    const char *buf;
    int depth; /* open objects and arrays */
    int max_depth;
    int state;
    unsigned long nws; /* whitespace runs skipped so far */
    /* The first error: static text, and its offset in buf. */
    const char *err;
    size_t err_at;
    int too_deep; /* the error is nesting deeper than max_depth */
    int utf8;     /* the error is invalid UTF-8 */
    unsigned char obj[JS_DEPTH_LIMIT / 8 + 1]; /* a bit a level: object */
};

/* Prepares sc to scan buf[0..len) (borrowed until the scan ends), nesting
 * at most max_depth (1..JS_DEPTH_LIMIT) objects and arrays. */
void js_init(struct js_scan *sc, const char *buf, size_t len, int max_depth);

/* Returns the next token (in *t) or JS_ERROR. Whitespace is skipped
 * before a token, never after one, so sc->p is just past the token
 * returned. */
int js_next(struct js_scan *sc, struct js_tok *t);

/* After JS_OBJ_BEGIN or JS_ARR_BEGIN: scans up to and including the
 * matching end bracket (sc->p is then just past it). Returns 0 or -1. */
int js_skip(struct js_scan *sc);

/* Once the root value is read: skips trailing whitespace and fails with
 * `what` (static text) when anything else follows. Returns 0 or -1 (also
 * when the scan had failed before). */
int js_finish(struct js_scan *sc, const char *what);

/* Records an error at `at` (a pointer into buf) unless one is recorded
 * already, and stops the scan. `what` is static text. Returns -1. */
int js_fail(struct js_scan *sc, const char *at, const char *what);

/* Decodes the raw bytes of a scanned string (struct js_str) into out,
 * which has room for len + 1 bytes (the decoded form is never longer), and
 * a NUL. Returns the decoded length. */
size_t js_decode(const char *s, size_t len, char *out);

/* The value of a scanned number (strtod of its text). */
double js_real(const char *s, size_t len);

/* The first byte in [p, end) that is '"', '\\', below 0x20 or above 0x7f,
 * or end: the run of plain ASCII string bytes at p. */
const char *js_span(const char *p, const char *end);

/* Copies the valid JSON text s[0..len) (a scanned value) to out without
 * the whitespace between tokens (escapes and number spellings kept), and
 * a NUL; out has room for len + 1 bytes. Returns the length written. */
size_t js_minify(const char *s, size_t len, char *out);

#endif
