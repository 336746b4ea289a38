/*
 * plugins/lib/json/jsonscan.c: the JSON pull scanner (jsonscan.h).
 *
 * The grammar is a state machine instead of recursion: the state says what
 * may come next, and a bit per open level says whether it is an object. So
 * the depth limit bounds a bitmap, not the C stack, js_skip() runs the same
 * loop without handing tokens out, and position, depth and state stay in
 * registers while it runs. A member's name travels with its value: one
 * call per member, not two.
 *
 * Strings are the bulk of every document, so they are scanned 16 bytes at
 * a time with SSE2 where there is SSE2, else 8 at a time (SWAR, as a
 * word-at-a-time memchr does): one test finds the first '"', '\\', control
 * byte or non-ASCII byte, and only a non-ASCII byte costs a UTF-8 sequence
 * check. That check is the whole UTF-8 validation of a document that
 * parses (see jsonscan.h).
 */
#include "json/jsonscan.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/utf8.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum {
    S_ROOT,  /* the root value */
    S_OPEN,  /* after '{' or '[': a member or item, or the end */
    S_AFTER, /* after a member or item: ',' or the end */
    S_DONE,  /* the root value is complete */
    S_FAILED
};

void js_init(struct js_scan *sc, const char *buf, size_t len, int max_depth)
{
    assert(max_depth >= 1 && max_depth <= JS_DEPTH_LIMIT);
    sc->p = sc->buf = buf;
    sc->end = buf + len;
    sc->depth = 0;
    sc->max_depth = max_depth;
    sc->state = S_ROOT;
    sc->nws = 0;
    sc->err = NULL;
    sc->err_at = 0;
    sc->too_deep = 0;
    sc->utf8 = 0;
}

int js_fail(struct js_scan *sc, const char *at, const char *what)
{
    size_t len = (size_t)(sc->end - sc->buf), bad;

    if (sc->err)
        return -1;
    sc->state = S_FAILED;
    sc->err = what;
    sc->err_at = (size_t)(at - sc->buf);
    /* Invalid UTF-8 anywhere outranks every other error. */
    bad = utf8_check(sc->buf, len);
    if (bad != len) {
        sc->err = "invalid UTF-8";
        sc->err_at = bad;
        sc->utf8 = 1;
    }
    return -1;
}

#define JS_ONES 0x0101010101010101ull
#define JS_HIGHS 0x8080808080808080ull

/* js_span(), inlined into the string scanner. */
static inline const char *js_span_in(const char *s, const char *e)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = (const unsigned char *)e;

#ifdef __SSE2__
    {
        const __m128i quote = _mm_set1_epi8('"');
        const __m128i bslash = _mm_set1_epi8('\\');
        const __m128i space = _mm_set1_epi8(0x20);

        /* Signed bytes: a byte above 0x7f is below 0x20 too. */
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                  _mm_cmpeq_epi8(v, bslash)),
                                     _mm_cmplt_epi8(v, space));
            unsigned bits = (unsigned)_mm_movemask_epi8(m);

            if (bits)
                return (const char *)p + __builtin_ctz(bits);
            p += 16;
        }
    }
#endif
#if defined(__GNUC__) && defined(__BYTE_ORDER__) &&                            \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w, q, b, m;

        memcpy(&w, p, 8);
        q = w ^ (JS_ONES * '"');
        b = w ^ (JS_ONES * '\\');
        /* The high bit of a byte is set for a zero byte of q or b, a byte
         * below 0x20 or one above 0x7f. A borrow can mark bytes above the
         * first such byte only, so the lowest mark is exact. */
        m = (((q - JS_ONES) & ~q) | ((b - JS_ONES) & ~b) |
             ((w - JS_ONES * 0x20) & ~w) | w) &
            JS_HIGHS;
        if (m)
            return (const char *)p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80)
        p++;
    return (const char *)p;
}

const char *js_span(const char *s, const char *e)
{
    return js_span_in(s, e);
}

static int js_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Scans the string whose opening quote is at p. Returns the byte after
 * its closing quote, or NULL (error recorded). */
static inline const char *js_string(struct js_scan *sc, const char *p,
                                    struct js_str *t)
{
    const char *open = p, *end = sc->end;

    t->s = ++p;
    t->esc = 0;
    for (;;) {
        unsigned char c;
        unsigned cp, lo;

        p = js_span_in(p, end);
        if (p == end) {
            js_fail(sc, open, "unterminated string");
            return NULL;
        }
        c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c >= 0x80) {
            /* Non-ASCII text tends to come in runs. */
            do {
                uint32_t u;
                size_t n = utf8_decode(p, (size_t)(end - p), &u);

                if (n == 0) {
                    js_fail(sc, p, "invalid UTF-8");
                    return NULL;
                }
                p += n;
            } while (p < end && (unsigned char)*p >= 0x80);
            continue;
        }
        if (c < 0x20) {
            js_fail(sc, p, "control character in a string");
            return NULL;
        }
        t->esc = 1;
        if (end - p < 2) {
            js_fail(sc, p, "unterminated string");
            return NULL;
        }
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            continue;
        case 'u':
            break;
        default:
            js_fail(sc, p, "invalid escape");
            return NULL;
        }
        if (end - p < 6 || js_hex4(p + 2, &cp) < 0) {
            js_fail(sc, p, "invalid \\u escape");
            return NULL;
        }
        if (cp == 0) {
            js_fail(sc, p, "\\u0000 is not allowed");
            return NULL;
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            js_fail(sc, p, "unpaired surrogate");
            return NULL;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
                js_hex4(p + 8, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF) {
                js_fail(sc, p, "unpaired surrogate");
                return NULL;
            }
            p += 6;
        }
        p += 6;
    }
    t->len = (size_t)(p - t->s);
    return p + 1;
}

double js_real(const char *s, size_t len)
{
    char small[64], *copy = len < sizeof(small) ? small : malloc(len + 1);
    double v;

    if (!copy)
        abort();
    memcpy(copy, s, len);
    copy[len] = '\0';
    v = strtod(copy, NULL);
    if (copy != small)
        free(copy);
    return v;
}

/* Scans the number at p into t (type JS_INT or JS_REAL in *type). Returns
 * the byte after it, or NULL (error recorded). */
static const char *js_number(struct js_scan *sc, const char *p,
                             struct js_tok *t, int *type)
{
    const char *end = sc->end, *start = p, *digits;
    int neg = 0, real = 0, expo = 0;
    size_t ndig;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    digits = p;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        goto bad;
    }
    ndig = (size_t)(p - digits);
    if (p < end && *p == '.') {
        p++;
        real = 1;
        if (p == end || *p < '0' || *p > '9')
            goto bad;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        real = expo = 1;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || *p < '0' || *p > '9')
            goto bad;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    t->text.s = start;
    t->text.len = (size_t)(p - start);
    t->text.esc = 0;
    if (!real) {
        /* jansson stores integers as 64-bit signed: refuse what it
         * refuses ("too big integer"). */
        unsigned long long u = 0;
        size_t k;

        if (ndig > 19 ||
            (ndig == 19 &&
             memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807",
                    19) > 0)) {
            js_fail(sc, start, "integer out of 64-bit range");
            return NULL;
        }
        for (k = 0; k < ndig; k++)
            u = u * 10 + (unsigned long long)(digits[k] - '0');
        t->i = neg ? (long long)(0 - u) : (long long)u;
        *type = JS_INT;
        return p;
    }
    /* Only an exponent or more than 308 integer digits can overflow a
     * double (jansson: "real number overflow"). */
    if ((expo || ndig > 308) && isinf(js_real(start, t->text.len))) {
        js_fail(sc, start, "real number overflow");
        return NULL;
    }
    *type = JS_REAL;
    return p;
bad:
    js_fail(sc, start, "invalid number");
    return NULL;
}

static const char *js_ws(struct js_scan *sc, const char *p)
{
    const char *start = p;

    while (p < sc->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    if (p != start)
        sc->nws++;
    return p;
}

/*
 * The scanner: runs from sc's state until it has a token at a depth below
 * `floor` (INT_MAX: every token; js_skip: the end bracket that closes its
 * container), the end of the root value, or an error. The position, depth
 * and state live in locals meanwhile.
 */
static int js_run(struct js_scan *sc, struct js_tok *t, int floor)
{
    const char *p = sc->p, *end = sc->end, *at, *what, *lit;
    struct js_str *str;
    size_t k;
    int depth = sc->depth, state = sc->state, type, c, obj;

    for (;;) {
        /* Compact JSON has no whitespace: one test. */
        if (p < end && (unsigned char)*p <= ' ')
            p = js_ws(sc, p);
        c = p < end ? (unsigned char)*p : -1;
        t->key.s = NULL;
        if (state == S_ROOT)
            goto value;
        if (state == S_DONE) {
            type = JS_END;
            goto out;
        }
        if (state != S_OPEN && state != S_AFTER)
            return JS_ERROR;
        obj = (sc->obj[depth >> 3] >> (depth & 7)) & 1;
        if (c == (obj ? '}' : ']'))
            goto close;
        if (state == S_AFTER) {
            if (c != ',') {
                at = p;
                what = obj ? "',' or '}' expected" : "',' or ']' expected";
                goto fail;
            }
            p++;
            if (p < end && (unsigned char)*p <= ' ')
                p = js_ws(sc, p);
            c = p < end ? (unsigned char)*p : -1;
        }
        if (obj) {
            /* A member: its name and ':' first. */
            if (c != '"') {
                at = p;
                what = "string or '}' expected";
                goto fail;
            }
            str = &t->key;
            goto string;
        }
    value:
        t->text.s = p;
        t->text.esc = 0;
        switch (c) {
        case '{':
        case '[':
            if (depth >= sc->max_depth) {
                sc->depth = depth;
                js_fail(sc, p, "nesting too deep");
                sc->too_deep = !sc->utf8;
                return JS_ERROR;
            }
            depth++;
            if (c == '{')
                sc->obj[depth >> 3] |= (unsigned char)(1u << (depth & 7));
            else
                sc->obj[depth >> 3] &= (unsigned char)~(1u << (depth & 7));
            p++;
            t->text.len = 1;
            state = S_OPEN;
            type = c == '{' ? JS_OBJ_BEGIN : JS_ARR_BEGIN;
            goto emit;
        case '"':
            str = &t->text;
            goto string;
        case 't':
        case 'f':
        case 'n':
            lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
            t->text.len = c == 'f' ? 5 : 4;
            if ((size_t)(end - p) < t->text.len)
                goto bad_token;
            for (k = 1; k < t->text.len; k++) {
                if (p[k] != lit[k])
                    goto bad_token;
            }
            p += t->text.len;
            type = c == 't' ? JS_TRUE : c == 'f' ? JS_FALSE : JS_NULL;
            break;
        case -1:
            at = p;
            what = "value expected";
            goto fail;
        default:
            if (c != '-' && (c < '0' || c > '9'))
                goto bad_token;
            p = js_number(sc, p, t, &type);
            if (!p)
                goto failed;
        }
        state = depth ? S_AFTER : S_DONE;
        goto emit;
    string:
        /* The one place strings are scanned (inlined): a member's name,
         * then on to its value, or a string value. */
        p = js_string(sc, p, str);
        if (!p)
            goto failed;
        if (str == &t->key) {
            if (p < end && (unsigned char)*p <= ' ')
                p = js_ws(sc, p);
            if (p == end || *p != ':') {
                at = p;
                what = "':' expected";
                goto fail;
            }
            p++;
            if (p < end && (unsigned char)*p <= ' ')
                p = js_ws(sc, p);
            c = p < end ? (unsigned char)*p : -1;
            goto value;
        }
        type = JS_STR;
        state = depth ? S_AFTER : S_DONE;
        goto emit;
    close:
        t->text.s = p++;
        t->text.len = 1;
        t->text.esc = 0;
        type = obj ? JS_OBJ_END : JS_ARR_END;
        state = --depth ? S_AFTER : S_DONE;
    emit:
        if (depth < floor)
            goto out;
    }
out:
    sc->p = p;
    sc->depth = depth;
    sc->state = state;
    return type;
bad_token:
    at = p;
    what = "invalid token";
fail:
    js_fail(sc, at, what);
failed:
    /* js_fail() has set the state. */
    sc->depth = depth;
    return JS_ERROR;
}

int js_next(struct js_scan *sc, struct js_tok *t)
{
    return js_run(sc, t, INT_MAX);
}

int js_skip(struct js_scan *sc)
{
    struct js_tok t;

    return js_run(sc, &t, sc->depth) == JS_ERROR ? -1 : 0;
}

int js_finish(struct js_scan *sc, const char *what)
{
    const char *p = sc->p;

    if (sc->err)
        return -1;
    if (p < sc->end && (unsigned char)*p <= ' ')
        p = js_ws(sc, p);
    sc->p = p;
    if (p != sc->end)
        return js_fail(sc, p, what);
    return 0;
}

size_t js_decode(const char *s, size_t len, char *out)
{
    const char *p = s, *end = s + len;
    size_t o = 0;

    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        unsigned cp, lo;

        if (!bs) {
            memcpy(out + o, p, (size_t)(end - p));
            o += (size_t)(end - p);
            break;
        }
        memcpy(out + o, p, (size_t)(bs - p));
        o += (size_t)(bs - p);
        p = bs + 2;
        if (bs[1] != 'u') {
            /* One of the eight single-character escapes (validated). */
            static const char from[] = "\"\\/bfnrt";
            static const char to[] = "\"\\/\b\f\n\r\t";

            out[o++] = to[strchr(from, bs[1]) - from];
            continue;
        }
        js_hex4(p, &cp);
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            js_hex4(p + 2, &lo);
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        o += utf8_encode(cp, out + o);
    }
    out[o] = '\0';
    return o;
}

size_t js_minify(const char *s, size_t len, char *out)
{
    const char *end = s + len;
    size_t o = 0;

    while (s < end) {
        char c = *s++;

        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        out[o++] = c;
        if (c != '"')
            continue;
        /* A string: copied up to its closing quote, an escape as two
         * bytes (it may be \"). */
        for (;;) {
            const char *q = js_span(s, end);

            memcpy(out + o, s, (size_t)(q - s));
            o += (size_t)(q - s);
            s = q;
            if (s >= end)
                break;
            if (*s == '"') {
                out[o++] = *s++;
                break;
            }
            if (*s == '\\')
                out[o++] = *s++;
            out[o++] = *s++;
        }
    }
    out[o] = '\0';
    return o;
}
