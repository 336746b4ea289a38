/*
 * plugins/lib/json/gojson.c: Go encoding/json compatible output (gojson.h).
 */
#include "json/gojson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/utf8.h"

void gj_init(struct gj_buf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void gj_release(struct gj_buf *b)
{
    free(b->p);
    gj_init(b);
}

static void gj_reserve(struct gj_buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->len + n + 1 <= b->cap)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p)
        abort();
    b->p = p;
    b->cap = cap;
}

char *gj_take(struct gj_buf *b)
{
    char *p;

    gj_reserve(b, 0);
    b->p[b->len] = '\0';
    p = b->p;
    gj_init(b);
    return p;
}

void gj_raw(struct gj_buf *b, const char *s, size_t n)
{
    gj_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void gj_char(struct gj_buf *b, char c)
{
    gj_reserve(b, 1);
    b->p[b->len++] = c;
}

/* Bytes Go writes unescaped: printable ASCII except '"', '\\', '<', '>',
 * '&' (htmlSafeSet); DEL included. */
static int gj_safe(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' &&
           c != '>' && c != '&';
}

/* The unsafe ASCII bytes written as a two-byte escape; every other unsafe
 * ASCII byte (0 here) is written as \u00XX. */
static const char gj_short[0x80] = {
    ['\\'] = '\\', ['"'] = '"',  ['\b'] = 'b', ['\f'] = 'f',
    ['\n'] = 'n',  ['\r'] = 'r', ['\t'] = 't',
};

void gj_str(struct gj_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, start = 0;

    gj_reserve(b, n + 2);
    gj_char(b, '"');
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t len;

        if (c < 0x80) {
            char esc[6];

            if (gj_safe(c)) {
                i++;
                continue;
            }
            gj_raw(b, s + start, i - start);
            esc[0] = '\\';
            esc[1] = gj_short[c];
            if (!esc[1]) {
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xF];
                gj_raw(b, esc, 6);
                start = ++i;
                continue;
            }
            gj_raw(b, esc, 2);
            start = ++i;
            continue;
        }
        len = utf8_decode(s + i, n - i, &cp);
        if (len == 0) {
            gj_raw(b, s + start, i - start);
            gj_raw(b, "\\ufffd", 6);
            start = ++i;
            continue;
        }
        if (cp == 0x2028 || cp == 0x2029) {
            gj_raw(b, s + start, i - start);
            gj_raw(b, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
            i += len;
            start = i;
            continue;
        }
        i += len;
    }
    gj_raw(b, s + start, i - start);
    gj_char(b, '"');
}

void gj_int(struct gj_buf *b, long long v)
{
    char tmp[24];
    size_t o = sizeof(tmp);
    unsigned long long u =
        v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;

    do {
        tmp[--o] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--o] = '-';
    gj_raw(b, tmp + o, sizeof(tmp) - o);
}

/*
 * Shortest round-trip digits of v > 0: digits d[0..n) (no leading or
 * trailing zeros) and dp such that v reads back from 0.d[0..n) * 10^dp.
 *
 * For each precision p = 1..17 the correctly rounded p-digit decimal is
 * tried; when it does not read back as v, its neighbour on the other side
 * of v is tried as well. This finds what Go's shortest formatting (Ryu)
 * finds: the shortest digit string inside v's rounding interval, and of
 * those the closest to v. (The neighbour matters next to powers of two,
 * where the interval is lopsided.)
 */
static int gj_shortest(double v, char *d, int *dp)
{
    char buf[40], cand[40];
    int p;

    for (p = 1; p <= 17; p++) {
        char *e;
        int n, exp10, k, len;
        double back;

        snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
        /* buf: d[.ddd]e[+-]XX */
        e = strchr(buf, 'e');
        exp10 = atoi(e + 1);
        n = 0;
        for (k = 0; buf + k < e; k++) {
            if (buf[k] != '.')
                d[n++] = buf[k];
        }
        back = strtod(buf, NULL);
        if (back != v) {
            /* Step the last digit one unit towards v. */
            int up = back < v;

            memcpy(cand, d, (size_t)n);
            if (up) {
                for (k = n - 1; k >= 0 && cand[k] == '9'; k--)
                    cand[k] = '0';
                if (k < 0) {
                    /* 99..9 -> 100..0: one more digit position. */
                    memmove(cand + 1, cand, (size_t)n);
                    cand[0] = '1';
                    exp10++;
                    n++;
                } else {
                    cand[k]++;
                }
            } else {
                for (k = n - 1; k >= 0 && cand[k] == '0'; k--)
                    cand[k] = '9';
                if (k < 0)
                    continue; /* cannot happen: the leading digit >= 1 */
                cand[k]--;
                if (k == 0 && cand[0] == '0') {
                    /* 10..0 -> 09..9: drop the leading zero. */
                    memmove(cand, cand + 1, (size_t)n - 1);
                    n--;
                    exp10--;
                    if (n == 0)
                        continue;
                }
            }
            /* cand[0..n) is the digit string of cand[0].cand[1..] times
             * 10^exp10. */
            len = snprintf(buf, sizeof(buf), "%c.%.*se%d", cand[0], n - 1,
                           cand + 1, exp10);
            (void)len;
            if (strtod(buf, NULL) != v)
                continue;
            memcpy(d, cand, (size_t)n);
        }
        while (n > 1 && d[n - 1] == '0')
            n--;
        *dp = exp10 + 1;
        return n;
    }
    /* 17 significant digits always read back. */
    abort();
}

size_t gj_format_float(double v, char *out)
{
    char d[24];
    int n, dp, i;
    size_t o = 0;
    double a;

    if (signbit(v))
        out[o++] = '-';
    a = fabs(v);
    if (a == 0) {
        out[o++] = '0';
        out[o] = '\0';
        return o;
    }
    if (a < 9007199254740992.0 && a == floor(a)) {
        /* An integer below 2^53: every other integer is another double,
         * so its own digits are the shortest; 'f' form prints it whole. */
        unsigned long long u = (unsigned long long)a;
        char tmp[24];
        size_t k = sizeof(tmp);

        do {
            tmp[--k] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        memcpy(out + o, tmp + k, sizeof(tmp) - k);
        o += sizeof(tmp) - k;
        out[o] = '\0';
        return o;
    }
    n = gj_shortest(a, d, &dp);
    if (a < 1e-6 || a >= 1e21) {
        int x = dp - 1;

        out[o++] = d[0];
        if (n > 1) {
            out[o++] = '.';
            memcpy(out + o, d + 1, (size_t)n - 1);
            o += (size_t)n - 1;
        }
        /* strconv writes at least two exponent digits; encoding/json
         * then turns e-07 into e-7 but leaves e+07 alone. */
        if (x < 0)
            o += (size_t)sprintf(out + o, "e-%d", -x);
        else
            o += (size_t)sprintf(out + o, "e+%02d", x);
        return o;
    }
    /* 'f' with the shortest digits. */
    if (dp > 0) {
        for (i = 0; i < dp; i++)
            out[o++] = i < n ? d[i] : '0';
    } else {
        out[o++] = '0';
    }
    if (n > dp) {
        out[o++] = '.';
        for (i = dp; i < n; i++)
            out[o++] = i < 0 ? '0' : d[i];
    }
    out[o] = '\0';
    return o;
}

void gj_float(struct gj_buf *b, double v)
{
    char tmp[GJ_FLOAT_MAX];
    size_t n = gj_format_float(v, tmp);

    gj_raw(b, tmp, n);
}
